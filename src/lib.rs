//! Switchboard: the desktop console and background routing runtime that runs AI
//! for WedSync's wedding suppliers.
//!
//! Layers, with imports pointing down only (see ARCHITECTURE.md):
//! 1. [`domain`] — pure types and rules.
//! 2. adapters — [`store`] (SQLite), [`providers`] (outbound HTTP), [`sim`]
//!    (the provider simulator).
//! 3. [`engine`] — services that combine adapters.
//! 4. edges — [`cli`].

pub mod cli;
pub mod domain;
pub mod engine;
pub mod gateway;
pub mod providers;
pub mod sim;
pub mod store;
pub mod vault;
