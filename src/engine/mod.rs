//! Services that combine the adapters: demo history generation (and, as they
//! land, the router, usage ledger, health monitor, migrations and analytics).

pub mod demo;
