//! Services that combine the adapters: demo history generation, the key
//! service (`keys`) and gateway tokens (`tokens`); and, as they land, the
//! router, usage ledger, health monitor, migrations and analytics.

pub mod demo;
pub mod keys;
pub mod tokens;
