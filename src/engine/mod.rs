//! Services that combine the adapters: demo history generation (`demo`), live
//! demo mode with simulator and synthetic traffic (`demo_traffic`), the key
//! service (`keys`),
//! gateway tokens (`gateway_tokens`), idempotency keys (`idempotency`), the response cache (`cache`), the usage ledger writer (`ledger`), the router
//! (`router`) and its metrics (`metrics`), migrations (`migrations`), parallel
//! tests (`parallel`), the provider health monitor (`health`), the alert
//! service (`alerts`), usage analytics (`analytics`), CSV export (`export`),
//! fleet coordination on PostgreSQL (`fleet`: heartbeats, leader leases,
//! LISTEN/NOTIFY) and the runtime that assembles them.

pub mod alerts;
pub mod analytics;
pub mod cache;
pub mod demo;
pub mod demo_traffic;
pub mod export;
pub mod fleet;
pub mod gateway_tokens;
pub mod health;
pub mod idempotency;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod migration_schedule;
pub mod migrations;
pub mod parallel;
pub mod pool_alerts;
pub mod pool_settings;
pub mod quota_lease;
pub mod router;
pub mod runtime;
pub mod sealed_keys;
pub mod supplier_import;
