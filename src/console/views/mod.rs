//! One module per view's data: its snapshot types and the service's handlers
//! that build them (and the view's actions).

pub mod alerts;
pub mod audit;
pub mod directory;
pub mod export;
pub mod getting_started;
pub mod health;
pub mod instances;
pub mod keys;
pub mod migration_start;
pub mod migrations;
pub mod overview;
pub mod projections;
pub mod quota;
pub mod requests;
pub mod schedules;
pub mod supplier_import;
pub mod suppliers;
pub mod usage;
