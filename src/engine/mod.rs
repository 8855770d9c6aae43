//! Services that combine the adapters: demo history generation and the console
//! service behind the desktop UI (and, as they land, the router, usage ledger,
//! health monitor, migrations and analytics).

pub mod console;
pub mod demo;
