//! Services that combine the adapters: demo history generation, usage
//! analytics and CSV export (and, as they land, the router, usage ledger,
//! health monitor and migrations).

pub mod analytics;
pub mod demo;
pub mod export;
