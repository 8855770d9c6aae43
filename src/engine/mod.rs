//! Services that combine the adapters: demo history generation (`demo`), the
//! key service (`keys`), gateway tokens (`tokens`), the usage ledger writer
//! (`ledger`), the router (`router`) and its metrics (`metrics`), the provider
//! health monitor (`health`) and the alert service (`alerts`).

pub mod alerts;
pub mod demo;
pub mod health;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod router;
pub mod runtime;
pub mod tokens;
