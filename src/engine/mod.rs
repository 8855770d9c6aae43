//! Services that combine the adapters: demo history generation (`demo`), live demo mode with simulator and synthetic traffic (`demo_traffic`), the
//! console service behind the desktop UI (`console`), the key service (`keys`),
//! gateway tokens (`tokens`), the usage ledger writer (`ledger`), the router
//! (`router`), its metrics (`metrics`) and the runtime that assembles them.

pub mod console;
pub mod demo;
pub mod demo_traffic;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod router;
pub mod runtime;
pub mod tokens;
