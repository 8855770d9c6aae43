//! The console layer: the application layer between the engine services and
//! the desktop console (an edge). It owns no egui types. The UI sends
//! [`ConsoleCommand`]s through a [`ConsoleHandle`]; a task on the tokio runtime
//! executes them against the [`Store`](crate::store::Store) (on the blocking
//! pool) and the engine services, and sends back [`ConsoleEvent`]s — ready-made
//! view snapshots, write confirmations, progress and errors as clear sentences —
//! then calls a repaint callback so the UI wakes up.
//!
//! - [`protocol`]: commands, events, channels, queries and the tickets with
//!   their generations: commands on a *channel* that supersede earlier ones (a
//!   new search, a new date range) carry a generation number; a command that is
//!   already stale when its turn comes is skipped, and an event that is stale
//!   when it arrives is dropped by [`ConsoleEvents::try_next`], so the UI only
//!   ever sees the latest answer.
//! - [`service`]: the service loop ([`spawn`], [`spawn_with`]).
//! - [`live`]: with [`LiveServices`] (the key service, and in demo mode or
//!   `serve` the router, the health monitor, the migration service and the
//!   gateway's URL) the service also runs key and token commands; while the UI
//!   watches a live view ([`ConsoleCommand::Watch`]) the service refreshes it
//!   about once a second — the Overview's [`LiveSnapshot`], the [`HealthView`]
//!   or the [`MigrationsView`] — and sends it only when it changed.
//! - [`views`]: one module per view's data and actions. Health and migration
//!   commands work with or without a routing runtime. The Usage & cost view's
//!   projections run through the analytics service (a newer request cancels the
//!   running query), and its CSV export runs on the blocking pool, one at a
//!   time, with progress events and cancellation.
//! - [`routing`]: the console's own routing runtime and gateway, switched from
//!   the Overview; one runtime per database (the routing lock).
//! - [`notify`]: desktop notifications of critical alerts and wedding-day
//!   incidents, switched by the UI, polled on the runtime, sent from a named thread.
//! - [`present`]: presentation helpers (day numbers, decimation to the chart's
//!   pixel width, quota band labels).
//!
//! Layer: above `engine` (it imports the engine services and the store), below
//! the edges; `ui` imports only this module and `domain`.

pub mod live;
pub mod notify;
pub mod present;
pub mod protocol;
pub mod routing;
pub mod service;
pub mod views;

/// The response cache's analytics and settings, as the views show them.
pub use crate::engine::analytics::cache::{CacheDay, CacheGroup, CacheReport};
pub use crate::engine::cache::describe as describe_cache_settings;
/// The fleet's duties and an instance's state (engine types the Instances view may name through here).
pub use crate::engine::fleet::{Duty, InstanceState};
/// The request log's status filter (a store type the UI may name through here).
pub use crate::store::StatusFilter;
pub use live::{BreakerView, LiveAccount, LiveEvent, LiveSnapshot, RecentRequest};
pub use present::{QUOTA_BANDS, date_of_day_number, day_number, decimate};
pub use protocol::*;
pub use routing::{ConsoleRouting, DEFAULT_ROUTING_PORT, GatewayStarter, RoutingSetup, RoutingState, RunningGateway};
pub use service::{LiveServices, LiveStarter, ServiceOptions, spawn, spawn_with};
pub use views::alerts::{AlertGroup, AlertsQuery, AlertsView};
pub use views::audit::AuditView;
pub use views::directory::{Directory, DirectoryAccount, DirectorySupplier, SERVE_DEFAULT_URL};
pub use views::getting_started::{GettingStarted, Snippets};
pub use views::health::{AlertRow, HealthChart, HealthQuery, HealthRow, HealthView, LastProbe};
pub use views::instances::{InstanceLine, InstancesView, LeaderLine, StrandedLease};
pub use views::keys::{KeyRow, KeysView, OrphanKey, TokenRow, pool_settings_text};
pub use views::migration_start::{PlanSummary, PlanView};
pub use views::migrations::{
    MigrationDetail, MigrationQuery, MigrationRow, MigrationsView, MirrorRow, ParallelRow, PhaseCheck, PhaseView, RecommendationRow,
};
pub use views::overview::{AccountSummary, Overview, WeddingDay};
pub use views::projections::{FlaggedSupplier, MonthUsage, ProjectionsView, method_label};
pub use views::quota::{QuotaView, SupplierQuotaChart, TierQuota};
pub use views::requests::{RequestLine, RequestLogView, RequestQuery};
pub use views::schedules::ScheduleRow;
pub use views::supplier_import::{ImportPreviewView, default_import_dir};
pub use views::suppliers::{SupplierDetail, SupplierList, SupplierRow, platform_time_zone, sort_rows};
pub use views::usage::{MonthBar, Series, SupplierSpendRow, TOP_SUPPLIERS, UsageView, bucketed};
