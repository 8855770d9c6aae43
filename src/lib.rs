//! Switchboard: the desktop console and background routing runtime that runs AI
//! for WedSync's wedding suppliers.
//!
//! Layers, with imports pointing down only (see ARCHITECTURE.md):
//! 1. [`domain`] — pure types and rules.
//! 2. adapters — [`store`] (SQLite), [`vault`] (the OS keychain), [`providers`]
//!    (outbound HTTP), [`sim`] (the provider simulator).
//! 3. [`engine`] — services that combine adapters.
//! 4. [`console`] — the console's application layer above the engine services
//!    (commands in, view snapshots and events out; no egui).
//! 5. edges — [`gateway`] (inbound HTTP), [`ui`] (the egui desktop console,
//!    which imports only [`console`] and [`domain`]) and [`cli`].

pub mod cli;
pub mod console;
pub mod domain;
pub mod engine;
pub mod gateway;
pub mod providers;
pub mod sim;
pub mod store;
pub mod ui;
pub mod vault;
