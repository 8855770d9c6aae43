//! Every integration test in one binary: each test binary links egui, wgpu and
//! the whole crate, so one link instead of nine saves most of the suite's build
//! time on two cores. Run one group with `scripts/test -- --test it gateway::`.
//!
//! - `support`: what the groups share (the binary, the test keyring, dates,
//!   simulator accounts, a router on the simulator).
//! - one module per area: `accounting` (usage recorded whatever the client
//!   does, event ids), `foundation` (store and CLI on real files),
//!   `providers`, `gateway`, `anthropic` (the `/v1/messages` ingress), `durability` (kill -9), `health`, `alerts` (incidents), `keys` (the real
//!   keychain), `pools` (key pools on the simulator, and their benchmark), `cache` (the response cache), `analytics`, `console` (egui_kittest), `layers` (the layer rule), `pg` (the PostgreSQL adapter and `store copy`, on the private cluster scripts/test starts), `fleet_coord` (instances, leader leases with fencing, LISTEN/NOTIFY, on the same cluster), `fleet_idempotency` (idempotency keys shared by the fleet, two serve processes), `fleet_duties` (the leaders' duties with two serve processes: verdicts, alerts, migrations handed over and fenced), `fleet_ledger` (usage folded into PostgreSQL and quota leases across instances), `store_backends` (the same store tests on SQLite and on PostgreSQL).

// Tests may read the wall clock and start plain threads; the crate may not.
#![allow(clippy::disallowed_methods)]

mod support;

mod accounting;
mod alerts;
mod analytics;
mod anthropic;
mod cache;
mod console;
mod durability;
mod fleet;
mod fleet_cli;
mod fleet_coord;
mod fleet_duties;
mod fleet_idempotency;
mod fleet_keys;
mod fleet_ledger;
mod foundation;
mod gateway;
mod health;
mod ingress;
mod keys;
mod layers;
mod ops;
mod pg;
mod pools;
mod providers;
mod store_backends;
mod suppliers;
mod translate;
mod ui_snapshots;
