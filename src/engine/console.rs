//! The console service: the boundary between the desktop console (an edge) and
//! everything that touches disk. The UI sends [`ConsoleCommand`]s through a
//! [`ConsoleHandle`]; a task on the tokio runtime executes them against the
//! [`Store`] (on the blocking pool) and sends back [`ConsoleEvent`]s — ready-made
//! view snapshots, write confirmations, progress and errors as clear sentences —
//! then calls a repaint callback so the UI wakes up. No egui types here.
//!
//! Commands on a *channel* that supersede earlier ones (a new search, a new date
//! range) carry a generation number: a command that is already stale when its
//! turn comes is skipped, and an event that is stale when it arrives is dropped
//! by [`ConsoleEvents::try_next`], so the UI only ever sees the latest answer.
//!
//! With [`LiveServices`] (the key service, and in demo mode or `serve` the
//! router, the health monitor, the migration service and the gateway's URL)
//! the service also runs key and token commands. Health and migration commands
//! work with or without a runtime (see `health_view` and `migrations_view`).
//! While the UI watches a live view ([`ConsoleCommand::Watch`]) the service
//! refreshes it about once a second — the Overview's [`LiveSnapshot`], the
//! [`HealthView`] or the [`MigrationsView`] — and sends it only when it changed.
//!
//! The Usage & cost view's projections run through the
//! [`AnalyticsService`] (a newer request cancels the running query), and its
//! CSV export runs [`export_usage`] on the blocking pool, one at a time,
//! with progress events and cancellation ([`ConsoleCommand::ExportUsage`]).

use crate::domain::Secret;
use crate::domain::breaker::BreakerState;
use crate::domain::calendar::{add_months, month_start};
use crate::domain::{AccountId, AzureConfig, RequestType, Route, UsageStatus};
use crate::domain::{
    AccountOwner, AiMode, Clock, NewSupplier, ProviderAccount, ProviderKind, QuotaPolicy, QuotaStatus, Supplier, SupplierId, Tier,
    ValidationStatus, VendorType,
};
use crate::engine::analytics::{
    AnalyticsAnswer, AnalyticsError, AnalyticsQuery, AnalyticsResult, AnalyticsService, CancelHandle, Dimension, Granularity,
    ProjectionMethod, ProjectionReport, SeriesQuery, TimeSeries,
};
use crate::engine::demo::{DemoConfig, DemoSummary, generate};
use crate::engine::export::{ExportError, ExportOptions, ExportProgress, ExportSummary, export_usage};
use crate::engine::health::HealthMonitor;
use crate::engine::keys::{KeyError, KeyService, NewKey, Validation};
use crate::engine::migrations::MigrationService;
use crate::engine::parallel::ParallelProgress;
use crate::engine::router::{Router, RouterEvent};
use crate::store::{
    AuditQuery, AuditRow, Store, SupplierFilter, SupplierPatch, TokenId, UsageDimension, UsageTotals, WeddingRow, audit_actor,
};

mod health_view;
mod migrations_view;
pub use crate::domain::migration::RouteTarget;
pub use crate::store::Alert;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use futures::future::BoxFuture;
pub use health_view::{AlertRow, HealthChart, HealthQuery, HealthRow, HealthView, LastProbe};
pub use migrations_view::{
    MigrationDetail, MigrationQuery, MigrationRow, MigrationsView, MirrorRow, ParallelRow, PhaseCheck, PhaseView, PlanSummary, PlanView,
    RecommendationRow,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::mpsc;

/// Wakes the UI after an event was sent (the UI passes `ctx.request_repaint`).
pub type Repaint = Arc<dyn Fn() + Send + Sync>;

/// A stream of related commands; a newer command on a superseding channel
/// makes older ones on the same channel stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Overview,
    Suppliers,
    SupplierDetail,
    Quota,
    Usage,
    Audit,
    /// Adds, edits, removals: never superseded, always delivered.
    Write,
    /// Demo data generation: never superseded.
    Demo,
    /// Live snapshots pushed by the service, and the live runtime's start.
    Live,
    /// The Keys view's accounts and tokens.
    Keys,
    /// Key and token actions: never superseded, always delivered.
    KeyWrite,
    /// The Usage & cost view's projections.
    Projections,
    /// CSV export: never superseded (progress, then the result).
    Export,
    /// The Health view's board, chart and alerts.
    Health,
    /// Acknowledging and resolving alerts: never superseded.
    HealthWrite,
    /// The Migrations view's list, timeline and parallel tests.
    Migrations,
    /// Checking a migration before it starts.
    MigrationPlan,
    /// Starting, pausing, resuming, rolling back and aborting: never superseded.
    MigrationWrite,
    /// A parallel test from the console: never superseded (progress, then the report).
    Parallel,
}

const CHANNELS: usize = 19;

impl Channel {
    const ALL: [Channel; CHANNELS] = [
        Channel::Overview,
        Channel::Suppliers,
        Channel::SupplierDetail,
        Channel::Quota,
        Channel::Usage,
        Channel::Audit,
        Channel::Write,
        Channel::Demo,
        Channel::Live,
        Channel::Keys,
        Channel::KeyWrite,
        Channel::Projections,
        Channel::Export,
        Channel::Health,
        Channel::HealthWrite,
        Channel::Migrations,
        Channel::MigrationPlan,
        Channel::MigrationWrite,
        Channel::Parallel,
    ];

    fn index(self) -> usize {
        Channel::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// Whether a newer command on this channel makes older ones stale.
    pub fn supersedes(self) -> bool {
        !matches!(
            self,
            Channel::Write
                | Channel::Demo
                | Channel::Live
                | Channel::KeyWrite
                | Channel::Export
                | Channel::HealthWrite
                | Channel::MigrationWrite
                | Channel::Parallel
        )
    }
}

/// How the supplier table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SupplierSort {
    #[default]
    Name,
    Tier,
    VendorType,
    Mode,
    QuotaUsed,
    NextWedding,
}

#[derive(Debug, Clone, Default)]
pub struct SupplierQuery {
    pub filter: SupplierFilter,
    pub sort: SupplierSort,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaQuery {
    /// The supplier whose chart to show; `None` picks the one nearest its quota.
    pub supplier: Option<SupplierId>,
    /// How many months of history the chart covers (including this one).
    pub months: u32,
    /// Width of the chart in pixels: series are decimated to it.
    pub max_points: usize,
}

/// What the usage charts measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum UsageMetric {
    #[default]
    Cost,
    Requests,
    Tokens,
}

impl UsageMetric {
    pub const ALL: [UsageMetric; 3] = [UsageMetric::Cost, UsageMetric::Requests, UsageMetric::Tokens];
    pub fn label(self) -> &'static str {
        match self {
            UsageMetric::Cost => "Cost (USD)",
            UsageMetric::Requests => "Requests",
            UsageMetric::Tokens => "Tokens",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    pub dimension: UsageDimension,
    pub metric: UsageMetric,
    pub max_points: usize,
}

/// What the UI asks the runtime to do.
#[derive(Debug, Clone)]
pub enum ConsoleCommand {
    LoadOverview,
    LoadSuppliers(SupplierQuery),
    LoadSupplierDetail(SupplierId),
    AddSupplier(NewSupplier),
    EditSupplier {
        id: SupplierId,
        patch: SupplierPatch,
    },
    RemoveSupplier(SupplierId),
    LoadQuota(QuotaQuery),
    LoadUsage(UsageQuery),
    LoadAudit(AuditQuery),
    GenerateDemo(DemoConfig),
    /// Which view with live data is visible (its data is refreshed and pushed only then).
    Watch(Watch),
    LoadKeys,
    /// A new account with its key (the key goes to the keychain only).
    AddKey {
        new: NewKey,
        key: Secret,
        validate: bool,
    },
    ValidateKey(AccountId),
    /// A new key for an account: validated live before it replaces the old one.
    RotateKey {
        id: AccountId,
        key: Secret,
    },
    /// `force` removes a client-mode supplier's only enabled account too.
    RemoveKey {
        id: AccountId,
        force: bool,
    },
    IssueToken(SupplierId),
    RevokeToken(TokenId),
    /// Month-end and next-three-months projections as of a day (the last day
    /// of data to use); cancels a projection still running.
    LoadProjections {
        as_of: NaiveDate,
    },
    /// Writes usage as CSV: `ExportProgress` events, then `ExportDone`,
    /// `ExportExists`, `ExportCancelled` or `Failed`. One export at a time.
    ExportUsage(ExportOptions),
    /// Stops the running export; nothing is left under its file name.
    CancelExport,
    /// The Health view; while it is watched, pushed again whenever it changes.
    LoadHealth(HealthQuery),
    /// Acknowledges an alert (audited); it stops escalating.
    AcknowledgeAlert(i64),
    /// Resolves an alert by hand (audited).
    ResolveAlert(i64),
    /// The Migrations view; while it is watched, pushed again whenever it changes.
    LoadMigrations(MigrationQuery),
    /// Checks a migration; `to: None` picks the usual target (client → platform AI, platform → its own validated account).
    PlanMigration {
        supplier: SupplierId,
        to: Option<RouteTarget>,
    },
    StartMigration {
        supplier: SupplierId,
        to: RouteTarget,
    },
    PauseMigration(i64),
    ResumeMigration(i64),
    RollbackMigration {
        id: i64,
        reason: String,
    },
    AbortMigration(i64),
    /// Sends the same prompts to the supplier's current route and to `to`
    /// (platform AI, or one of its accounts) side by side: `ParallelProgress`
    /// events, then `ParallelDone`, `ParallelCancelled` or `Failed`. One at a time.
    RunParallelTest {
        supplier: SupplierId,
        to: RouteTarget,
    },
    /// Stops the running parallel test after the prompt under way.
    CancelParallelTest,
    /// Dismisses an open recommendation (audited).
    DismissRecommendation(i64),
    /// Starts a parallel test on live traffic: a sample of the supplier's
    /// served requests is copied to `to` by the routing runtime (see
    /// `engine::parallel::start_mirror`).
    MirrorLiveTraffic {
        supplier: SupplierId,
        to: RouteTarget,
        plan: crate::engine::parallel::MirrorPlan,
    },
    /// Ends a live-traffic mirror now and writes its report from what it compared.
    StopMirror(i64),
}

/// Which view with live data is on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Watch {
    #[default]
    Nothing,
    /// The live strip of the Overview (needs a routing runtime).
    Overview,
    /// The Health view, with the query of its last `LoadHealth`.
    Health,
    /// The Migrations view, with the query of its last `LoadMigrations`.
    Migrations,
}

impl ConsoleCommand {
    pub fn channel(&self) -> Channel {
        match self {
            ConsoleCommand::LoadOverview => Channel::Overview,
            ConsoleCommand::LoadSuppliers(_) => Channel::Suppliers,
            ConsoleCommand::LoadSupplierDetail(_) => Channel::SupplierDetail,
            ConsoleCommand::AddSupplier(_) | ConsoleCommand::EditSupplier { .. } | ConsoleCommand::RemoveSupplier(_) => Channel::Write,
            ConsoleCommand::LoadQuota(_) => Channel::Quota,
            ConsoleCommand::LoadUsage(_) => Channel::Usage,
            ConsoleCommand::LoadAudit(_) => Channel::Audit,
            ConsoleCommand::GenerateDemo(_) => Channel::Demo,
            ConsoleCommand::Watch(_) => Channel::Live,
            ConsoleCommand::LoadKeys => Channel::Keys,
            ConsoleCommand::AddKey { .. }
            | ConsoleCommand::ValidateKey(_)
            | ConsoleCommand::RotateKey { .. }
            | ConsoleCommand::RemoveKey { .. }
            | ConsoleCommand::IssueToken(_)
            | ConsoleCommand::RevokeToken(_) => Channel::KeyWrite,
            ConsoleCommand::LoadProjections { .. } => Channel::Projections,
            ConsoleCommand::ExportUsage(_) | ConsoleCommand::CancelExport => Channel::Export,
            ConsoleCommand::LoadHealth(_) => Channel::Health,
            ConsoleCommand::AcknowledgeAlert(_) | ConsoleCommand::ResolveAlert(_) => Channel::HealthWrite,
            ConsoleCommand::LoadMigrations(_) => Channel::Migrations,
            ConsoleCommand::PlanMigration { .. } => Channel::MigrationPlan,
            ConsoleCommand::StartMigration { .. }
            | ConsoleCommand::PauseMigration(_)
            | ConsoleCommand::ResumeMigration(_)
            | ConsoleCommand::RollbackMigration { .. }
            | ConsoleCommand::AbortMigration(_)
            | ConsoleCommand::DismissRecommendation(_)
            | ConsoleCommand::MirrorLiveTraffic { .. }
            | ConsoleCommand::StopMirror(_) => Channel::MigrationWrite,
            ConsoleCommand::RunParallelTest { .. } | ConsoleCommand::CancelParallelTest => Channel::Parallel,
        }
    }
}

/// What the runtime tells the UI.
#[derive(Debug, Clone)]
pub enum ConsoleEvent {
    Overview(Arc<Overview>),
    Suppliers(Arc<SupplierList>),
    SupplierDetail(Arc<SupplierDetail>),
    SupplierSaved {
        supplier: Supplier,
        created: bool,
    },
    SupplierRemoved {
        id: SupplierId,
        name: String,
    },
    Quota(Arc<QuotaView>),
    Usage(Arc<UsageView>),
    Audit(Arc<AuditView>),
    DemoProgress {
        stage: String,
        /// Share of the generation done, 0–1.
        done: f32,
        elapsed_secs: f64,
    },
    DemoReady {
        summary: DemoSummary,
        elapsed_secs: f64,
    },
    /// The live runtime is up (demo mode: simulator, router, gateway, traffic).
    LiveReady {
        gateway_url: Option<String>,
    },
    Live(Arc<LiveSnapshot>),
    Keys(Arc<KeysView>),
    /// An account was added or its key rotated.
    KeySaved {
        label: String,
        fingerprint: String,
        created: bool,
        validation: Option<Validation>,
    },
    KeyValidated {
        id: AccountId,
        label: String,
        validation: Validation,
    },
    KeyRemoved {
        id: AccountId,
        label: String,
    },
    /// Removal was refused because the account is a supplier's active route;
    /// the UI may ask again and send `force`.
    KeyRemoveNeedsForce {
        id: AccountId,
        message: String,
    },
    /// A new gateway token: the value is shown once and never again.
    TokenIssued {
        supplier: SupplierId,
        supplier_name: String,
        token: Secret,
        hint: String,
    },
    TokenRevoked {
        hint: String,
    },
    Projections(Arc<ProjectionsView>),
    /// Rows written so far by the running export.
    ExportProgress(ExportProgress),
    ExportDone(ExportSummary),
    /// The file exists and overwriting was not asked for; nothing was written.
    ExportExists {
        path: std::path::PathBuf,
    },
    /// The export was cancelled; nothing was written under its name.
    ExportCancelled,
    Health(Arc<HealthView>),
    /// An alert was acknowledged or resolved by hand.
    AlertUpdated {
        alert: Alert,
        resolved: bool,
    },
    Migrations(Arc<MigrationsView>),
    MigrationPlanned(Arc<PlanView>),
    /// A migration was started, paused, resumed, rolled back or aborted; `what` is a sentence.
    MigrationChanged {
        id: i64,
        what: String,
    },
    /// A live-traffic mirror was started or stopped; `what` is a sentence.
    MirrorChanged {
        id: i64,
        supplier: SupplierId,
        what: String,
    },
    /// A recommendation was dismissed; `what` is a sentence.
    RecommendationDismissed {
        id: i64,
        what: String,
    },
    /// Prompts answered by both routes so far in the running parallel test.
    ParallelProgress(ParallelProgress),
    /// The parallel test's report, stored.
    ParallelDone(Arc<ParallelRow>),
    /// The parallel test stopped when asked; no report was stored.
    ParallelCancelled {
        done: u32,
        total: u32,
    },
    /// A command failed; `message` is a sentence for the user.
    Failed {
        channel: Channel,
        message: String,
    },
}

/// A provider account as the console shows it: never a key, only its masked fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    pub default_model: String,
    /// `sk-…a1b2`, or `None` when no key is stored yet.
    pub fingerprint: Option<String>,
    pub validation: Option<ValidationStatus>,
    pub enabled: bool,
}

impl From<&ProviderAccount> for AccountSummary {
    fn from(a: &ProviderAccount) -> Self {
        AccountSummary {
            label: a.label.clone(),
            provider: a.provider,
            owner: a.owner,
            default_model: a.default_model.clone(),
            fingerprint: a.key_fingerprint.clone(),
            validation: a.last_validation,
            enabled: a.enabled,
        }
    }
}

/// One row of the supplier table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierRow {
    pub id: SupplierId,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub ai_mode: AiMode,
    /// This month's platform-quota usage against this month's (seasonal) quota.
    pub quota: QuotaStatus,
    pub next_wedding: Option<NaiveDate>,
    pub weddings: usize,
}

impl SupplierRow {
    pub fn quota_percent(&self) -> f64 {
        self.quota.percent()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupplierList {
    pub rows: Vec<SupplierRow>,
    /// Suppliers in the database, before filtering.
    pub total: usize,
    pub query_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupplierDetail {
    pub supplier: Supplier,
    pub accounts: Vec<AccountSummary>,
    pub quota: QuotaStatus,
    pub month_cost_micros: i64,
    pub month_requests: i64,
    /// Tokens per day over the last 90 days: `[day number, tokens]` (see [`day_number`]).
    pub daily_tokens: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeddingDay {
    pub day: NaiveDate,
    pub suppliers: Vec<WeddingRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub today: NaiveDate,
    pub today_totals: UsageTotals,
    pub month_totals: UsageTotals,
    pub suppliers: usize,
    pub client_mode: usize,
    pub weddings_this_week: Vec<WeddingDay>,
    pub platform_accounts: Vec<AccountSummary>,
    pub client_accounts_by_provider: Vec<(ProviderKind, usize)>,
    pub near_quota: Vec<SupplierRow>,
    /// Requests per day over the last 30 days: `[day number, requests]`.
    pub last_30_days: Vec<[f64; 2]>,
}

/// How many suppliers of a tier sit in each band of quota use this month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierQuota {
    pub tier: Tier,
    /// Under 50 %, 50–75 %, 75–90 %, 90–100 %, over 100 %.
    pub bands: [usize; 5],
    pub quota_tokens: u64,
}

pub const QUOTA_BANDS: [&str; 5] = ["under 50 %", "50–75 %", "75–90 %", "90–100 %", "over quota"];

fn band(percent: f64) -> usize {
    match percent {
        p if p >= 100.0 => 4,
        p if p >= 90.0 => 3,
        p if p >= 75.0 => 2,
        p if p >= 50.0 => 1,
        _ => 0,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupplierQuotaChart {
    pub row: SupplierRow,
    /// Cumulative platform-quota tokens within each month: `[day number, tokens]`.
    pub cumulative: Vec<[f64; 2]>,
    /// The monthly quota as a step line over the same months.
    pub quota_line: Vec<[f64; 2]>,
    /// Platform-quota tokens per day.
    pub daily: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuotaView {
    pub today: NaiveDate,
    pub chart: Option<SupplierQuotaChart>,
    pub tiers: Vec<TierQuota>,
    /// Platform-mode suppliers at 75 % or more, highest first.
    pub near: Vec<SupplierRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub key: String,
    pub points: Vec<[f64; 2]>,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonthBar {
    /// Day number of the month's first day.
    pub x: f64,
    pub label: String,
    pub value: f64,
    pub peak: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageView {
    pub query: UsageQuery,
    /// One daily series per group (the largest eight, the rest summed as "other").
    pub series: Vec<Series>,
    pub monthly: Vec<MonthBar>,
    pub total: f64,
    /// Averages per day over the days from the first usage in the range on.
    pub peak_daily_avg: f64,
    pub off_daily_avg: f64,
    pub peak_days: usize,
    pub off_days: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditView {
    pub rows: Vec<AuditRow>,
    pub actions: Vec<String>,
    /// True when the limit cut the list short.
    pub truncated: bool,
}

/// A breaker as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerView {
    Closed,
    /// Refusing traffic for this many more seconds.
    Open {
        secs_left: i64,
        /// Held open by the health monitor until the account answers again.
        held: bool,
    },
    HalfOpen,
}

impl BreakerView {
    fn of(state: BreakerState, now: DateTime<Utc>) -> Self {
        match state {
            BreakerState::Closed => BreakerView::Closed,
            BreakerState::Open { until, held } => BreakerView::Open { secs_left: (until - now).num_seconds().max(0), held },
            BreakerState::HalfOpen { .. } => BreakerView::HalfOpen,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            BreakerView::Closed => "closed",
            BreakerView::Open { .. } => "open",
            BreakerView::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAccount {
    pub id: AccountId,
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    pub breaker: BreakerView,
}

/// One of the last requests the router committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRequest {
    pub at: DateTime<Utc>,
    pub supplier: String,
    pub model: String,
    pub request_type: RequestType,
    pub route: Route,
    pub ok: bool,
    pub latency_ms: u32,
    pub cost_micros: i64,
}

/// A breaker, failover or quota event, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    pub at: DateTime<Utc>,
    pub text: String,
    /// Something went wrong (breaker opened, failover started, quota).
    pub bad: bool,
}

/// What the live parts of the Overview show; pushed about once a second while watched.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSnapshot {
    pub gateway_url: Option<String>,
    /// Demo mode: simulator keys in memory, synthetic traffic.
    pub demo: bool,
    pub today: UsageTotals,
    /// Every provider account's breaker: open ones first, then platform accounts.
    pub accounts: Vec<LiveAccount>,
    /// The newest requests first.
    pub recent: Vec<RecentRequest>,
    /// The newest events first.
    pub events: Vec<LiveEvent>,
}

/// A provider account in the Keys view: masked fingerprint and validation, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: AccountId,
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    pub owner_name: String,
    pub base_url: String,
    pub default_model: String,
    pub azure: Option<AzureConfig>,
    pub fingerprint: Option<String>,
    pub validation: Option<ValidationStatus>,
    pub validated_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub enabled: bool,
}

/// A gateway token as the Keys view shows it: its hint, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub supplier: SupplierId,
    pub supplier_name: String,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysView {
    /// Platform accounts first, then suppliers' accounts by supplier.
    pub accounts: Vec<KeyRow>,
    pub tokens: Vec<TokenRow>,
    /// Where keys live, in words.
    pub vault: String,
    /// Why the keychain cannot be used now (the vault's own sentence).
    pub vault_error: Option<String>,
    pub demo: bool,
}

/// One month's usage, all suppliers together (actual or projected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthUsage {
    /// The first of the month.
    pub month: NaiveDate,
    pub tokens: u64,
    pub cost_micros: i64,
}

/// A supplier projected to exceed its platform quota before the month ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedSupplier {
    pub id: SupplierId,
    pub name: String,
    pub tier: Tier,
    /// Platform-quota tokens used so far this month.
    pub used: u64,
    /// Platform-quota tokens projected by the end of the month.
    pub projected: u64,
    /// This month's quota (seasonal).
    pub quota: u64,
    /// When the quota runs (or ran) out.
    pub runs_out: Option<NaiveDate>,
    /// How its rest of the month was projected, in words.
    pub method: String,
    pub history_months: u32,
}

/// The projections section of the Usage & cost view.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionsView {
    /// The last day of data used.
    pub as_of: NaiveDate,
    /// The complete months before `as_of`'s month (up to twelve), actual.
    pub history: Vec<MonthUsage>,
    /// `as_of`'s month so far, actual.
    pub to_date: MonthUsage,
    /// `as_of`'s month projected to its end, then the next three months.
    pub projected: Vec<MonthUsage>,
    /// How many suppliers were projected with each method, most used first.
    pub methods: Vec<(String, usize)>,
    /// The longest history any supplier has, in whole months.
    pub max_history_months: u32,
    pub flagged: Vec<FlaggedSupplier>,
    /// Every supplier (id, name) by name, for the export's supplier choice.
    pub suppliers: Vec<(SupplierId, String)>,
}

/// A projection method in words.
pub fn method_label(m: &ProjectionMethod) -> String {
    match m {
        ProjectionMethod::SeasonalTrend { token_trend, .. } => format!("same month last year × trend {token_trend:.2}"),
        ProjectionMethod::RecentAverage { months: 1 } => "last month's daily average, adjusted for the season".into(),
        ProjectionMethod::RecentAverage { months } => format!("daily average of the last {months} months, adjusted for the season"),
        ProjectionMethod::MonthToDate => "this month's daily rate so far".into(),
        ProjectionMethod::NoHistory => "no usage yet".into(),
    }
}

fn method_kind(m: &ProjectionMethod) -> &'static str {
    match m {
        ProjectionMethod::SeasonalTrend { .. } => "seasonal trend",
        ProjectionMethod::RecentAverage { .. } => "recent average",
        ProjectionMethod::MonthToDate => "month to date",
        ProjectionMethod::NoHistory => "no history",
    }
}

/// Sums the per-supplier report into the view (money stays integer micro-dollars).
fn projections_view(r: ProjectionReport, history: TimeSeries) -> ProjectionsView {
    let this_month = r.as_of.with_day(1).unwrap_or(r.as_of);
    let total = history.series.first();
    let month_of = |i: usize, m: NaiveDate| MonthUsage {
        month: m,
        tokens: total.and_then(|s| s.tokens.get(i)).copied().unwrap_or(0),
        cost_micros: total.and_then(|s| s.cost.get(i)).map(|c| c.0).unwrap_or(0),
    };
    let history_months: Vec<MonthUsage> =
        history.buckets.iter().enumerate().filter(|(_, m)| **m < this_month).map(|(i, m)| month_of(i, *m)).collect();
    let mut to_date = MonthUsage { month: this_month, tokens: 0, cost_micros: 0 };
    let mut projected: Vec<MonthUsage> =
        (0..4).map(|i| MonthUsage { month: add_months(this_month, i), tokens: 0, cost_micros: 0 }).collect();
    let mut methods: HashMap<&'static str, usize> = HashMap::new();
    let mut flagged = Vec::new();
    for s in &r.suppliers {
        let e = &s.month_end;
        to_date.tokens += e.to_date_tokens;
        to_date.cost_micros += e.to_date_cost.0;
        projected[0].tokens += e.month.tokens;
        projected[0].cost_micros += e.month.cost.0;
        for (p, m) in projected[1..].iter_mut().zip(&s.next_months) {
            p.tokens += m.tokens;
            p.cost_micros += m.cost.0;
        }
        *methods.entry(method_kind(&s.method)).or_default() += 1;
        if s.exceeds_quota_this_month {
            flagged.push(FlaggedSupplier {
                id: s.supplier_id,
                name: s.name.clone(),
                tier: s.tier,
                used: e.to_date_quota_tokens,
                projected: e.month.quota_tokens,
                quota: e.month.quota,
                runs_out: e.quota_exhausted_on,
                method: if e.rest_of_month.starts_with("month-to-date") { e.rest_of_month.clone() } else { method_label(&s.method) },
                history_months: s.history_months,
            });
        }
    }
    flagged.sort_by(|a, b| a.runs_out.cmp(&b.runs_out).then_with(|| b.projected.cmp(&a.projected)).then_with(|| a.name.cmp(&b.name)));
    let mut methods: Vec<(String, usize)> = methods.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    methods.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut suppliers: Vec<(SupplierId, String)> = r.suppliers.iter().map(|s| (s.supplier_id, s.name.clone())).collect();
    suppliers.sort_by(|a, b| a.1.to_lowercase().cmp(&b.1.to_lowercase()).then(a.0.cmp(&b.0)));
    ProjectionsView {
        as_of: r.as_of,
        history: history_months,
        to_date,
        projected,
        methods,
        max_history_months: r.suppliers.iter().map(|s| s.history_months).max().unwrap_or(0),
        flagged,
        suppliers,
    }
}

/// Days since 1970-01-01, the x coordinate of every date axis.
pub fn day_number(d: NaiveDate) -> f64 {
    (d - NaiveDate::default()).num_days() as f64
}

/// The date of a day number (rounded to the nearest day).
pub fn date_of_day_number(x: f64) -> Option<NaiveDate> {
    if !x.is_finite() || x.abs() > 1.0e7 {
        return None;
    }
    NaiveDate::default().checked_add_signed(Duration::days(x.round() as i64))
}

/// Keeps a line series within `max_points` by keeping, per bucket of
/// consecutive points, the first point and the minimum and maximum (in x
/// order), so peaks survive. Series already small enough are returned as is.
pub fn decimate(points: &[[f64; 2]], max_points: usize) -> Vec<[f64; 2]> {
    let max_points = max_points.max(8);
    if points.len() <= max_points {
        return points.to_vec();
    }
    let buckets = max_points / 3;
    let per = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(buckets * 3 + 1);
    for chunk in points.chunks(per) {
        let first = chunk[0];
        let (mut lo, mut hi) = (first, first);
        for p in chunk {
            if p[1] < lo[1] {
                lo = *p;
            }
            if p[1] > hi[1] {
                hi = *p;
            }
        }
        let mut keep = vec![first, lo, hi];
        keep.sort_by(|a, b| a[0].total_cmp(&b[0]));
        keep.dedup();
        out.extend(keep);
    }
    if let (Some(last), Some(end)) = (points.last(), out.last())
        && last != end
    {
        out.push(*last);
    }
    out
}

/// Orders supplier rows (stable, by name as the tie-breaker).
pub fn sort_rows(rows: &mut [SupplierRow], sort: SupplierSort, descending: bool) {
    use std::cmp::Ordering as O;
    let key = |a: &SupplierRow, b: &SupplierRow| -> O {
        match sort {
            SupplierSort::Name => O::Equal,
            SupplierSort::Tier => a.tier.cmp(&b.tier),
            SupplierSort::VendorType => a.vendor_type.cmp(&b.vendor_type),
            SupplierSort::Mode => a.ai_mode.as_str().cmp(b.ai_mode.as_str()),
            SupplierSort::QuotaUsed => a.quota.used_bp().cmp(&b.quota.used_bp()),
            // Suppliers without a coming wedding go last.
            SupplierSort::NextWedding => match (a.next_wedding, b.next_wedding) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => O::Less,
                (None, Some(_)) => O::Greater,
                (None, None) => O::Equal,
            },
        }
    };
    rows.sort_by(|a, b| {
        let o = key(a, b).then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()));
        if descending { o.reverse() } else { o }
    });
}

/// Generation counters per channel, shared by the handle, the service and the event stream.
#[derive(Debug, Default)]
struct Generations {
    requested: [AtomicU64; CHANNELS],
    delivered: [AtomicU64; CHANNELS],
}

impl Generations {
    fn latest(&self, c: Channel) -> u64 {
        self.requested[c.index()].load(Ordering::SeqCst)
    }
    fn is_current(&self, c: Channel, generation: u64) -> bool {
        !c.supersedes() || generation >= self.latest(c)
    }
}

/// A command's place in its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub channel: Channel,
    pub generation: u64,
}

/// The UI's side of the command channel. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleHandle {
    tx: mpsc::UnboundedSender<(Ticket, ConsoleCommand)>,
    gens: Arc<Generations>,
}

impl ConsoleHandle {
    /// Queues a command; never blocks. Fails only when the runtime has stopped.
    pub fn send(&self, cmd: ConsoleCommand) -> Result<Ticket, String> {
        let channel = cmd.channel();
        let generation = self.gens.requested[channel.index()].fetch_add(1, Ordering::SeqCst) + 1;
        let ticket = Ticket { channel, generation };
        self.tx.send((ticket, cmd)).map_err(|_| "the background runtime has stopped; restart Switchboard".to_string())?;
        Ok(ticket)
    }

    /// Whether a command on `channel` is still waiting for its answer.
    pub fn is_loading(&self, channel: Channel) -> bool {
        let i = channel.index();
        self.gens.requested[i].load(Ordering::SeqCst) > self.gens.delivered[i].load(Ordering::SeqCst)
    }
}

/// The UI's side of the event channel.
pub struct ConsoleEvents {
    rx: mpsc::UnboundedReceiver<(Ticket, ConsoleEvent)>,
    gens: Arc<Generations>,
}

impl ConsoleEvents {
    /// The next event that is still current, without waiting.
    pub fn try_next(&mut self) -> Option<ConsoleEvent> {
        while let Ok((ticket, ev)) = self.rx.try_recv() {
            if self.gens.is_current(ticket.channel, ticket.generation) {
                self.gens.delivered[ticket.channel.index()].fetch_max(ticket.generation, Ordering::SeqCst);
                return Some(ev);
            }
        }
        None
    }
}

/// The services behind the Keys view and the live Overview, started by the edge.
pub struct LiveServices {
    pub keys: Arc<KeyService>,
    /// The routing runtime, when this process routes (demo mode).
    pub router: Option<Arc<Router>>,
    /// The gateway's base URL, when one listens.
    pub gateway_url: Option<String>,
    /// The provider health monitor of the routing runtime (probes, verdicts, alerts).
    pub health: Option<Arc<HealthMonitor>>,
    /// The migration service of the routing runtime (drives running migrations).
    pub migrations: Option<Arc<MigrationService>>,
    /// Demo mode: the keys are simulator keys in the in-memory demo store.
    pub demo: bool,
    /// Whatever must live as long as the services (simulator, gateway,
    /// traffic); wrap a value that is not `Sync` in a `Mutex`.
    pub keep_alive: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl LiveServices {
    /// Only the key service: a console that does not route (health comes from
    /// the stored history, migration actions are written to the store).
    pub fn keys_only(keys: Arc<KeyService>) -> Self {
        LiveServices { keys, router: None, health: None, migrations: None, gateway_url: None, demo: false, keep_alive: Vec::new() }
    }
}

/// Starts the live services once demo history is written (demo mode).
pub type LiveStarter = Arc<dyn Fn(Arc<Store>) -> BoxFuture<'static, Result<LiveServices, String>> + Send + Sync>;

/// Optional parts of the console service.
#[derive(Default)]
pub struct ServiceOptions {
    /// Available from the start (the key service on the OS keychain; tests).
    pub live: Option<LiveServices>,
    /// Demo mode: called after `GenerateDemo` succeeded; its services replace `live`.
    pub after_demo: Option<LiveStarter>,
}

/// Starts the console service on `rt` and returns the UI's two ends.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    policy: QuotaPolicy,
    repaint: Repaint,
) -> (ConsoleHandle, ConsoleEvents) {
    spawn_with(rt, store, clock, policy, repaint, ServiceOptions::default())
}

/// How often live snapshots are taken while watched.
const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// [`spawn`] with key, token and live services.
pub fn spawn_with(
    rt: &tokio::runtime::Handle,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    policy: QuotaPolicy,
    repaint: Repaint,
    opts: ServiceOptions,
) -> (ConsoleHandle, ConsoleEvents) {
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<(Ticket, ConsoleCommand)>();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let gens = Arc::new(Generations::default());
    let service = Arc::new(Service {
        analytics: AnalyticsService::new(store.clone(), crate::domain::PricingTable::builtin(), policy.clone()),
        projections: Mutex::new(Vec::new()),
        export: Mutex::new(None),
        parallel: Mutex::new(None),
        store,
        clock,
        policy,
        cache: Mutex::new(None),
        live: RwLock::new(None),
        after_demo: opts.after_demo,
        watch: Mutex::new(Watch::Nothing),
        health_query: Mutex::new(None),
        migrations_query: Mutex::new(None),
        fresh: AtomicBool::new(false),
    });
    if let Some(l) = opts.live {
        service.install_live(l, rt);
    }
    let out = Outbox { tx: ev_tx, repaint, gens: gens.clone() };
    {
        let (svc, out) = (service.clone(), out.clone());
        rt.spawn(async move { svc.live_ticker(out).await });
    }
    let rt2 = rt.clone();
    rt.spawn(async move {
        while let Some((ticket, cmd)) = cmd_rx.recv().await {
            if !out.gens.is_current(ticket.channel, ticket.generation) {
                continue; // superseded while it waited
            }
            if let ConsoleCommand::GenerateDemo(cfg) = cmd {
                let (svc, out, rt) = (service.clone(), out.clone(), rt2.clone());
                tokio::spawn(async move {
                    let ok = {
                        let (svc, out) = (svc.clone(), out.clone());
                        tokio::task::spawn_blocking(move || svc.generate_demo(&cfg, ticket, &out)).await.unwrap_or(false)
                    };
                    if ok && let Some(start) = svc.after_demo.clone() {
                        let ev = match start(svc.store.clone()).await {
                            Ok(l) => {
                                let gateway_url = l.gateway_url.clone();
                                svc.install_live(l, &rt);
                                svc.fresh.store(true, Ordering::SeqCst);
                                ConsoleEvent::LiveReady { gateway_url }
                            }
                            Err(message) => ConsoleEvent::Failed { channel: Channel::Live, message },
                        };
                        out.send(out.live_ticket(), ev);
                    }
                });
                continue;
            }
            if let ConsoleCommand::Watch(w) = cmd {
                *lock(&service.watch) = w;
                service.fresh.store(w != Watch::Nothing, Ordering::SeqCst);
                continue;
            }
            // The ticker keeps the watched view fresh with the latest query.
            match &cmd {
                ConsoleCommand::LoadHealth(q) => *lock(&service.health_query) = Some((ticket.generation, *q)),
                ConsoleCommand::LoadMigrations(q) => *lock(&service.migrations_query) = Some((ticket.generation, *q)),
                _ => {}
            }
            let cmd = match cmd {
                ConsoleCommand::LoadProjections { as_of } => {
                    service.start_projections(as_of, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::ExportUsage(opts) => {
                    service.start_export(opts, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::CancelExport => {
                    if let Some(c) = service.export.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                        c.cancel();
                    }
                    continue;
                }
                ConsoleCommand::RunParallelTest { supplier, to } => {
                    service.start_parallel(supplier, to, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::CancelParallelTest => {
                    if let Some(c) = lock(&service.parallel).as_ref() {
                        c.cancel();
                    }
                    continue;
                }
                cmd => cmd,
            };
            if matches!(cmd.channel(), Channel::Keys | Channel::KeyWrite) {
                let (svc, out) = (service.clone(), out.clone());
                let channel = ticket.channel;
                tokio::spawn(async move {
                    let ev = svc.key_command(cmd).await.unwrap_or_else(|message| ConsoleEvent::Failed { channel, message });
                    out.send(ticket, ev);
                });
                continue;
            }
            let svc = service.clone();
            let channel = ticket.channel;
            let ev = tokio::task::spawn_blocking(move || svc.execute(cmd))
                .await
                .unwrap_or_else(|e| Err(format!("the console service failed unexpectedly ({e}); try again, and report it if it repeats")));
            out.send(ticket, ev.unwrap_or_else(|message| ConsoleEvent::Failed { channel, message }));
        }
    });
    (ConsoleHandle { tx: cmd_tx, gens: gens.clone() }, ConsoleEvents { rx: ev_rx, gens })
}

#[derive(Clone)]
struct Outbox {
    tx: mpsc::UnboundedSender<(Ticket, ConsoleEvent)>,
    repaint: Repaint,
    gens: Arc<Generations>,
}

impl Outbox {
    /// Live events answer the latest `Watch`, so `is_loading(Channel::Live)` settles.
    fn live_ticket(&self) -> Ticket {
        Ticket { channel: Channel::Live, generation: self.gens.latest(Channel::Live) }
    }

    fn send(&self, ticket: Ticket, ev: ConsoleEvent) {
        if self.gens.is_current(ticket.channel, ticket.generation) && self.tx.send((ticket, ev)).is_ok() {
            (self.repaint)();
        }
    }
}

/// Suppliers and this month's quota use, cached between queries so that typing
/// in the search field stays instant with thousands of suppliers.
struct Catalog {
    loaded: Instant,
    month: NaiveDate,
    suppliers: Arc<Vec<Supplier>>,
    quota_used: HashMap<SupplierId, u64>,
}

const CATALOG_TTL_SECS: u64 = 30;

struct Service {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    policy: QuotaPolicy,
    cache: Mutex<Option<Arc<Catalog>>>,
    live: RwLock<Option<Arc<Live>>>,
    after_demo: Option<LiveStarter>,
    /// The view with live data that is visible.
    watch: Mutex<Watch>,
    /// The Health view's latest query and its generation.
    health_query: Mutex<Option<(u64, HealthQuery)>>,
    /// The Migrations view's latest query and its generation.
    migrations_query: Mutex<Option<(u64, MigrationQuery)>>,
    /// Send the next snapshot even if it did not change (a view just became visible).
    fresh: AtomicBool,
    analytics: AnalyticsService,
    /// The running projection queries, cancelled by the next request.
    projections: Mutex<Vec<CancelHandle>>,
    /// The running export's cancel handle (one export at a time).
    export: Mutex<Option<CancelHandle>>,
    /// The running parallel test's cancel handle (one at a time).
    parallel: Mutex<Option<CancelHandle>>,
}

/// The installed live services and the router events collected so far.
struct Live {
    services: LiveServices,
    events: Mutex<VecDeque<(DateTime<Utc>, RouterEvent)>>,
}

const LIVE_EVENTS: usize = 40;
const LIVE_RECENT: usize = 14;

type Res<T> = Result<T, String>;

fn msg(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Service {
    fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    fn execute(&self, cmd: ConsoleCommand) -> Res<ConsoleEvent> {
        Ok(match cmd {
            ConsoleCommand::LoadOverview => ConsoleEvent::Overview(Arc::new(self.overview()?)),
            ConsoleCommand::LoadSuppliers(q) => ConsoleEvent::Suppliers(Arc::new(self.suppliers(&q)?)),
            ConsoleCommand::LoadSupplierDetail(id) => ConsoleEvent::SupplierDetail(Arc::new(self.detail(id)?)),
            ConsoleCommand::AddSupplier(new) => {
                let s = self.store.insert_supplier(&new, self.clock.now()).map_err(msg)?;
                self.invalidate();
                self.store
                    .audit(
                        self.clock.now(),
                        &audit_actor(),
                        "supplier.add",
                        Some(s.id),
                        None,
                        "ok",
                        &format!("{} ({}, {}, {})", s.name, s.vendor_type, s.tier, s.ai_mode),
                    )
                    .map_err(msg)?;
                ConsoleEvent::SupplierSaved { supplier: s, created: true }
            }
            ConsoleCommand::EditSupplier { id, patch } => {
                let s = self.store.update_supplier(id, &patch, self.clock.now()).map_err(msg)?;
                self.invalidate();
                self.store
                    .audit(self.clock.now(), &audit_actor(), "supplier.edit", Some(s.id), None, "ok", &patch.describe())
                    .map_err(msg)?;
                ConsoleEvent::SupplierSaved { supplier: s, created: false }
            }
            ConsoleCommand::RemoveSupplier(id) => {
                let s = self.store.supplier(id).map_err(msg)?;
                self.store.delete_supplier(id).map_err(msg)?;
                self.invalidate();
                self.store.audit(self.clock.now(), &audit_actor(), "supplier.remove", Some(id), None, "ok", &s.name).map_err(msg)?;
                ConsoleEvent::SupplierRemoved { id, name: s.name }
            }
            ConsoleCommand::LoadQuota(q) => ConsoleEvent::Quota(Arc::new(self.quota(q)?)),
            ConsoleCommand::LoadUsage(q) => ConsoleEvent::Usage(Arc::new(self.usage(q)?)),
            ConsoleCommand::LoadAudit(q) => ConsoleEvent::Audit(Arc::new(self.audit(&q)?)),
            ConsoleCommand::LoadHealth(q) => ConsoleEvent::Health(Arc::new(self.health_view(&q)?)),
            ConsoleCommand::AcknowledgeAlert(id) => self.alert_action(id, false)?,
            ConsoleCommand::ResolveAlert(id) => self.alert_action(id, true)?,
            ConsoleCommand::LoadMigrations(q) => ConsoleEvent::Migrations(Arc::new(self.migrations_view(&q)?)),
            ConsoleCommand::PlanMigration { supplier, to } => ConsoleEvent::MigrationPlanned(Arc::new(self.plan_migration(supplier, to)?)),
            cmd @ (ConsoleCommand::StartMigration { .. }
            | ConsoleCommand::PauseMigration(_)
            | ConsoleCommand::ResumeMigration(_)
            | ConsoleCommand::RollbackMigration { .. }
            | ConsoleCommand::AbortMigration(_)
            | ConsoleCommand::DismissRecommendation(_)
            | ConsoleCommand::MirrorLiveTraffic { .. }
            | ConsoleCommand::StopMirror(_)) => self.migration_action(cmd)?,
            ConsoleCommand::GenerateDemo(_)
            | ConsoleCommand::Watch(_)
            | ConsoleCommand::LoadKeys
            | ConsoleCommand::AddKey { .. }
            | ConsoleCommand::ValidateKey(_)
            | ConsoleCommand::RotateKey { .. }
            | ConsoleCommand::RemoveKey { .. }
            | ConsoleCommand::IssueToken(_)
            | ConsoleCommand::RevokeToken(_)
            | ConsoleCommand::LoadProjections { .. }
            | ConsoleCommand::ExportUsage(_)
            | ConsoleCommand::CancelExport
            | ConsoleCommand::RunParallelTest { .. }
            | ConsoleCommand::CancelParallelTest => return Err("internal: this command runs on its own task".into()),
        })
    }

    fn generate_demo(&self, cfg: &DemoConfig, ticket: Ticket, out: &Outbox) -> bool {
        let started = Instant::now();
        let res = generate(&self.store, cfg, |stage, done| {
            out.send(ticket, ConsoleEvent::DemoProgress { stage: stage.to_string(), done, elapsed_secs: started.elapsed().as_secs_f64() });
        });
        self.invalidate();
        let ok = res.is_ok();
        let ev = match res {
            Ok(summary) => ConsoleEvent::DemoReady { summary, elapsed_secs: started.elapsed().as_secs_f64() },
            Err(e) => ConsoleEvent::Failed { channel: Channel::Demo, message: format!("demo data could not be written: {e}") },
        };
        out.send(ticket, ev);
        ok
    }

    fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn catalog(&self) -> Res<Arc<Catalog>> {
        let today = self.today();
        let month = today.with_day(1).unwrap_or(today);
        if let Some(c) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && c.month == month
            && c.loaded.elapsed().as_secs() < CATALOG_TTL_SECS
        {
            return Ok(c.clone());
        }
        let suppliers = self.store.list_suppliers(&SupplierFilter::default()).map_err(msg)?;
        let quota_used = self.store.quota_tokens_by_supplier(month, today + Duration::days(1)).map_err(msg)?;
        let c = Arc::new(Catalog { loaded: Instant::now(), month, suppliers: Arc::new(suppliers), quota_used });
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    fn row(&self, s: &Supplier, cat: &Catalog, today: NaiveDate) -> SupplierRow {
        let used = cat.quota_used.get(&s.id).copied().unwrap_or(0);
        SupplierRow {
            id: s.id,
            name: s.name.clone(),
            vendor_type: s.vendor_type,
            tier: s.tier,
            ai_mode: s.ai_mode,
            quota: self.policy.status(s.tier, today, used),
            next_wedding: s.next_wedding(today),
            weddings: s.weddings.len(),
        }
    }

    fn suppliers(&self, q: &SupplierQuery) -> Res<SupplierList> {
        let started = Instant::now();
        let cat = self.catalog()?;
        let today = self.today();
        let needle = q.filter.search.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
        let f = &q.filter;
        let mut rows: Vec<SupplierRow> = cat
            .suppliers
            .iter()
            .filter(|s| needle.as_ref().is_none_or(|n| s.name.to_lowercase().contains(n.as_str())))
            .filter(|s| f.tier.is_none_or(|t| s.tier == t))
            .filter(|s| f.vendor_type.is_none_or(|v| s.vendor_type == v))
            .filter(|s| f.ai_mode.is_none_or(|m| s.ai_mode == m))
            .map(|s| self.row(s, &cat, today))
            .collect();
        sort_rows(&mut rows, q.sort, q.descending);
        Ok(SupplierList { rows, total: cat.suppliers.len(), query_ms: started.elapsed().as_secs_f64() * 1000.0 })
    }

    fn detail(&self, id: SupplierId) -> Res<SupplierDetail> {
        let supplier = self.store.supplier(id).map_err(msg)?;
        let today = self.today();
        let month = today.with_day(1).unwrap_or(today);
        let accounts = self.store.list_accounts(Some(AccountOwner::Supplier(id))).map_err(msg)?;
        let days = self.store.supplier_daily_usage(id, today - Duration::days(89), today + Duration::days(1)).map_err(msg)?;
        let this_month = days.iter().filter(|d| d.day >= month);
        let (mut used, mut cost, mut requests) = (0i64, 0i64, 0i64);
        for d in this_month {
            used += d.quota_tokens;
            cost += d.cost_micros;
            requests += d.requests;
        }
        Ok(SupplierDetail {
            quota: self.policy.status(supplier.tier, today, used.max(0) as u64),
            supplier,
            accounts: accounts.iter().map(AccountSummary::from).collect(),
            month_cost_micros: cost,
            month_requests: requests,
            daily_tokens: days.iter().map(|d| [day_number(d.day), d.tokens as f64]).collect(),
        })
    }

    fn overview(&self) -> Res<Overview> {
        let today = self.today();
        let tomorrow = today + Duration::days(1);
        let month = today.with_day(1).unwrap_or(today);
        let cat = self.catalog()?;
        let mut rows: Vec<SupplierRow> =
            cat.suppliers.iter().filter(|s| s.ai_mode == AiMode::Platform).map(|s| self.row(s, &cat, today)).collect();
        sort_rows(&mut rows, SupplierSort::QuotaUsed, true);
        rows.truncate(8);
        let weddings = self.store.weddings_between(today, today + Duration::days(7)).map_err(msg)?;
        let mut weddings_this_week: Vec<WeddingDay> = Vec::new();
        for w in weddings {
            match weddings_this_week.last_mut() {
                Some(d) if d.day == w.day => d.suppliers.push(w),
                _ => weddings_this_week.push(WeddingDay { day: w.day, suppliers: vec![w] }),
            }
        }
        let accounts = self.store.list_accounts(None).map_err(msg)?;
        let mut by_provider: HashMap<ProviderKind, usize> = HashMap::new();
        for a in accounts.iter().filter(|a| a.owner != AccountOwner::Platform) {
            *by_provider.entry(a.provider).or_default() += 1;
        }
        let mut client_accounts_by_provider: Vec<(ProviderKind, usize)> = by_provider.into_iter().collect();
        client_accounts_by_provider.sort();
        let trend = self.store.usage_breakdown(UsageDimension::Route, today - Duration::days(29), tomorrow).map_err(msg)?;
        let mut per_day: std::collections::BTreeMap<NaiveDate, i64> = std::collections::BTreeMap::new();
        for c in trend {
            *per_day.entry(c.day).or_default() += c.requests;
        }
        Ok(Overview {
            today,
            today_totals: self.store.usage_totals(today, tomorrow).map_err(msg)?,
            month_totals: self.store.usage_totals(month, tomorrow).map_err(msg)?,
            suppliers: cat.suppliers.len(),
            client_mode: cat.suppliers.iter().filter(|s| s.ai_mode == AiMode::Client).count(),
            weddings_this_week,
            platform_accounts: accounts.iter().filter(|a| a.owner == AccountOwner::Platform).map(AccountSummary::from).collect(),
            client_accounts_by_provider,
            near_quota: rows.into_iter().filter(|r| r.quota.used > 0).collect(),
            last_30_days: per_day.into_iter().map(|(d, n)| [day_number(d), n as f64]).collect(),
        })
    }

    fn quota(&self, q: QuotaQuery) -> Res<QuotaView> {
        let today = self.today();
        let cat = self.catalog()?;
        let platform: Vec<SupplierRow> =
            cat.suppliers.iter().filter(|s| s.ai_mode == AiMode::Platform).map(|s| self.row(s, &cat, today)).collect();
        let tiers = Tier::ALL
            .iter()
            .map(|&tier| {
                let mut bands = [0usize; 5];
                for r in platform.iter().filter(|r| r.tier == tier) {
                    bands[band(r.quota_percent())] += 1;
                }
                TierQuota { tier, bands, quota_tokens: self.policy.monthly_tokens(tier, today) }
            })
            .collect();
        let mut near: Vec<SupplierRow> = platform.iter().filter(|r| r.quota_percent() >= 75.0).cloned().collect();
        sort_rows(&mut near, SupplierSort::QuotaUsed, true);
        let chosen = match q.supplier {
            Some(id) => cat.suppliers.iter().find(|s| s.id == id).map(|s| self.row(s, &cat, today)),
            None => near.first().cloned().or_else(|| {
                let mut all = platform.clone();
                sort_rows(&mut all, SupplierSort::QuotaUsed, true);
                all.into_iter().next()
            }),
        };
        if let Some(id) = q.supplier
            && chosen.is_none()
        {
            return Err(format!("supplier {id} no longer exists; pick another one"));
        }
        let chart = match chosen {
            Some(row) => Some(self.quota_chart(row, q, today)?),
            None => None,
        };
        Ok(QuotaView { today, chart, tiers, near })
    }

    fn quota_chart(&self, row: SupplierRow, q: QuotaQuery, today: NaiveDate) -> Res<SupplierQuotaChart> {
        let months = q.months.clamp(1, 36);
        let mut first = today.with_day(1).unwrap_or(today);
        for _ in 1..months {
            first = (first - Duration::days(1)).with_day(1).unwrap_or(first);
        }
        let days = self.store.supplier_daily_usage(row.id, first, today + Duration::days(1)).map_err(msg)?;
        let by_day: HashMap<NaiveDate, i64> = days.iter().map(|d| (d.day, d.quota_tokens)).collect();
        let (mut cumulative, mut daily, mut quota_line) = (Vec::new(), Vec::new(), Vec::new());
        let mut running = 0i64;
        let mut d = first;
        while d <= today {
            if d.day() == 1 {
                running = 0;
                let start = month_start(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()).date_naive();
                let next = (start + Duration::days(32)).with_day(1).unwrap_or(start);
                let quota = self.policy.monthly_tokens(row.tier, start) as f64;
                quota_line.push([day_number(start), quota]);
                quota_line.push([day_number(next) - 0.001, quota]);
            }
            let tokens = by_day.get(&d).copied().unwrap_or(0);
            running += tokens;
            cumulative.push([day_number(d), running as f64]);
            daily.push([day_number(d), tokens as f64]);
            d += Duration::days(1);
        }
        Ok(SupplierQuotaChart { row, cumulative: decimate(&cumulative, q.max_points), quota_line, daily })
    }

    fn usage(&self, q: UsageQuery) -> Res<UsageView> {
        if q.to < q.from {
            return Err(format!("the range ends ({}) before it starts ({}); swap the dates", q.to, q.from));
        }
        if (q.to - q.from).num_days() > 3 * 366 {
            return Err("choose at most three years at a time".into());
        }
        let cells = self.store.usage_breakdown(q.dimension, q.from, q.to + Duration::days(1)).map_err(msg)?;
        let value = |requests: i64, tokens: i64, cost: i64| -> f64 {
            match q.metric {
                UsageMetric::Cost => cost as f64 / 1e6,
                UsageMetric::Requests => requests as f64,
                UsageMetric::Tokens => tokens as f64,
            }
        };
        let n_days = (q.to - q.from).num_days() as usize + 1;
        let mut by_key: HashMap<String, Vec<f64>> = HashMap::new();
        let mut per_day = vec![0.0; n_days];
        for c in &cells {
            let i = (c.day - q.from).num_days() as usize;
            if i >= n_days {
                continue;
            }
            let v = value(c.requests, c.tokens, c.cost_micros);
            by_key.entry(c.key.clone()).or_insert_with(|| vec![0.0; n_days])[i] += v;
            per_day[i] += v;
        }
        let mut keyed: Vec<(String, Vec<f64>, f64)> = by_key
            .into_iter()
            .map(|(k, v)| {
                let t = v.iter().sum();
                (k, v, t)
            })
            .collect();
        keyed.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        if keyed.len() > 8 {
            let rest = keyed.split_off(7);
            let mut other = vec![0.0; n_days];
            for (_, v, _) in &rest {
                for (o, x) in other.iter_mut().zip(v) {
                    *o += x;
                }
            }
            let t = other.iter().sum();
            keyed.push((format!("other ({})", rest.len()), other, t));
        }
        let x0 = day_number(q.from);
        let series = keyed
            .into_iter()
            .map(|(key, v, total)| {
                let pts: Vec<[f64; 2]> = v.iter().enumerate().map(|(i, y)| [x0 + i as f64, *y]).collect();
                Series { key, points: decimate(&pts, q.max_points), total }
            })
            .collect();
        let season = &self.policy.season;
        let mut monthly: Vec<MonthBar> = Vec::new();
        let (mut peak_sum, mut off_sum, mut peak_days, mut off_days) = (0.0, 0.0, 0, 0);
        // Days before the first usage in the range are not history yet: counting
        // them would dilute one season's average more than the other's.
        let first_used = per_day.iter().position(|v| *v != 0.0).unwrap_or(per_day.len());
        for (i, v) in per_day.iter().enumerate() {
            let d = q.from + Duration::days(i as i64);
            let peak = season.is_peak(d);
            if i >= first_used && peak {
                peak_sum += v;
                peak_days += 1;
            } else if i >= first_used {
                off_sum += v;
                off_days += 1;
            }
            let m = d.with_day(1).unwrap_or(d);
            match monthly.last_mut() {
                Some(b) if b.x == day_number(m) => b.value += v,
                _ => monthly.push(MonthBar { x: day_number(m), label: m.format("%b %Y").to_string(), value: *v, peak }),
            }
        }
        Ok(UsageView {
            query: q,
            series,
            monthly,
            total: per_day.iter().sum(),
            peak_daily_avg: if peak_days > 0 { peak_sum / peak_days as f64 } else { 0.0 },
            off_daily_avg: if off_days > 0 { off_sum / off_days as f64 } else { 0.0 },
            peak_days,
            off_days,
        })
    }

    fn audit(&self, q: &AuditQuery) -> Res<AuditView> {
        if let (Some(f), Some(t)) = (q.from, q.to)
            && t <= f
        {
            return Err("the 'to' date must be after the 'from' date".into());
        }
        let limit = if q.limit == 0 { 2_000 } else { q.limit };
        let mut q = q.clone();
        q.limit = limit + 1;
        let mut rows = self.store.audit_search(&q).map_err(msg)?;
        let truncated = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(AuditView { rows, actions: self.store.audit_actions().map_err(msg)?, truncated })
    }
}

/// Projections and CSV export: analytics queries and the export run on the
/// blocking pool, each cancellable.
impl Service {
    /// Cancels the projection still running, then runs the projections and
    /// twelve months of monthly totals (the chart's history) side by side.
    fn start_projections(self: &Arc<Self>, as_of: NaiveDate, ticket: Ticket, out: Outbox) {
        let this_month = as_of.with_day(1).unwrap_or(as_of);
        let report = self.analytics.spawn(AnalyticsQuery::Projections { as_of });
        let history = self.analytics.spawn(AnalyticsQuery::Series(SeriesQuery::new(
            add_months(this_month, -12),
            as_of,
            Granularity::Month,
            Dimension::Total,
        )));
        {
            let mut running = self.projections.lock().unwrap_or_else(|e| e.into_inner());
            for c in running.drain(..) {
                c.cancel();
            }
            running.extend([report.cancel.clone(), history.cancel.clone()]);
        }
        let joined = |r: Result<AnalyticsResult<AnalyticsAnswer>, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| Err(AnalyticsError::Invalid(format!("the projection failed unexpectedly ({e}); try again"))))
        };
        tokio::spawn(async move {
            let (r, h) = (joined(report.result.await), joined(history.result.await));
            let ev = match (r, h) {
                (Err(AnalyticsError::Cancelled), _) | (_, Err(AnalyticsError::Cancelled)) => return,
                (Ok(AnalyticsAnswer::Projections(r)), Ok(AnalyticsAnswer::Series(h))) => {
                    ConsoleEvent::Projections(Arc::new(projections_view(r, h)))
                }
                (Err(e), _) | (_, Err(e)) => {
                    ConsoleEvent::Failed { channel: Channel::Projections, message: format!("the projections could not be computed: {e}") }
                }
                _ => ConsoleEvent::Failed { channel: Channel::Projections, message: "internal: unexpected analytics answer".into() },
            };
            out.send(ticket, ev);
        });
    }

    /// Runs one export on the blocking pool; refuses a second one while it runs.
    fn start_export(self: &Arc<Self>, opts: ExportOptions, ticket: Ticket, out: Outbox) {
        let cancel = CancelHandle::new();
        {
            let mut running = self.export.lock().unwrap_or_else(|e| e.into_inner());
            if running.is_some() {
                let message = "an export is already running; wait for it to finish or cancel it first".to_string();
                out.send(ticket, ConsoleEvent::Failed { channel: Channel::Export, message });
                return;
            }
            *running = Some(cancel.clone());
        }
        let svc = self.clone();
        tokio::spawn(async move {
            let (store, progress_out) = (svc.store.clone(), out.clone());
            let res = tokio::task::spawn_blocking(move || {
                export_usage(&store, &opts, &cancel, |p| progress_out.send(ticket, ConsoleEvent::ExportProgress(p)))
            })
            .await;
            *svc.export.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let ev = match res {
                Ok(Ok(summary)) => ConsoleEvent::ExportDone(summary),
                Ok(Err(ExportError::Exists(path))) => ConsoleEvent::ExportExists { path },
                Ok(Err(ExportError::Cancelled)) => ConsoleEvent::ExportCancelled,
                Ok(Err(e)) => ConsoleEvent::Failed { channel: Channel::Export, message: format!("the export failed: {e}") },
                Err(e) => ConsoleEvent::Failed {
                    channel: Channel::Export,
                    message: format!("the export failed unexpectedly ({e}); nothing was written under its name. Try again"),
                },
            };
            out.send(ticket, ev);
        });
    }
}

/// Key, token and live commands (async: the keychain and providers are reached
/// through the key service, which never blocks a runtime worker on them).
impl Service {
    fn install_live(self: &Arc<Self>, services: LiveServices, rt: &tokio::runtime::Handle) {
        let router = services.router.clone();
        let live = Arc::new(Live { services, events: Mutex::new(VecDeque::new()) });
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
        if let Some(router) = router {
            let mut rx = router.subscribe_events();
            let clock = self.clock.clone();
            let weak = Arc::downgrade(&live);
            rt.spawn(async move {
                loop {
                    let ev = match rx.recv().await {
                        Ok(ev) => ev,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    };
                    let Some(live) = weak.upgrade() else { return };
                    let mut q = live.events.lock().unwrap_or_else(|e| e.into_inner());
                    q.push_front((clock.now(), ev));
                    q.truncate(LIVE_EVENTS);
                }
            });
        }
    }

    fn live(&self) -> Option<Arc<Live>> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn keys(&self) -> Res<Arc<KeyService>> {
        match self.live() {
            Some(l) => Ok(l.services.keys.clone()),
            None if self.after_demo.is_some() => Err("keys are available once the demo runtime has started; wait for the demo data".into()),
            None => Err("the key service is not running in this console".into()),
        }
    }

    /// Refreshes the watched view every second; sends it only when it changed.
    async fn live_ticker(self: Arc<Self>, out: Outbox) {
        let mut tick = tokio::time::interval(LIVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last: Option<Arc<LiveSnapshot>> = None;
        let mut last_health: Option<Arc<HealthView>> = None;
        let mut last_migrations: Option<Arc<MigrationsView>> = None;
        loop {
            tick.tick().await;
            let watch = *lock(&self.watch);
            match watch {
                Watch::Nothing => {}
                Watch::Overview => {
                    let Some(live) = self.live() else { continue };
                    if live.services.router.is_none() {
                        continue;
                    }
                    let svc = self.clone();
                    let snap = match tokio::task::spawn_blocking(move || svc.live_snapshot(&live)).await {
                        Ok(Ok(s)) => Arc::new(s),
                        Ok(Err(message)) => {
                            out.send(out.live_ticket(), ConsoleEvent::Failed { channel: Channel::Live, message });
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let fresh = self.fresh.swap(false, Ordering::SeqCst);
                    if fresh || last.as_deref() != Some(&*snap) {
                        last = Some(snap.clone());
                        out.send(out.live_ticket(), ConsoleEvent::Live(snap));
                    }
                }
                Watch::Health => {
                    let Some((generation, q)) = *lock(&self.health_query) else { continue };
                    let svc = self.clone();
                    // Failures are shown by the view's own load; a refresh just waits for the next second.
                    let Ok(Ok(v)) = tokio::task::spawn_blocking(move || svc.health_view(&q)).await else { continue };
                    let fresh = self.fresh.swap(false, Ordering::SeqCst);
                    if fresh || last_health.as_deref() != Some(&v) {
                        let v = Arc::new(v);
                        last_health = Some(v.clone());
                        out.send(Ticket { channel: Channel::Health, generation }, ConsoleEvent::Health(v));
                    }
                }
                Watch::Migrations => {
                    let Some((generation, q)) = *lock(&self.migrations_query) else { continue };
                    let svc = self.clone();
                    let Ok(Ok(v)) = tokio::task::spawn_blocking(move || svc.migrations_view(&q)).await else { continue };
                    let fresh = self.fresh.swap(false, Ordering::SeqCst);
                    if fresh || last_migrations.as_deref() != Some(&v) {
                        let v = Arc::new(v);
                        last_migrations = Some(v.clone());
                        out.send(Ticket { channel: Channel::Migrations, generation }, ConsoleEvent::Migrations(v));
                    }
                }
            }
        }
    }

    fn live_snapshot(&self, live: &Live) -> Res<LiveSnapshot> {
        let Some(router) = &live.services.router else { return Err("no routing runtime in this console".into()) };
        let now = self.clock.now();
        let today = now.date_naive();
        let cat = self.catalog()?;
        let name_of =
            |id: SupplierId| cat.suppliers.iter().find(|s| s.id == id).map(|s| s.name.clone()).unwrap_or_else(|| format!("supplier {id}"));
        let mut accounts: Vec<LiveAccount> = router
            .breaker_states()
            .into_iter()
            .map(|(a, st)| LiveAccount {
                id: a.id,
                label: a.label,
                provider: a.provider,
                owner: a.owner,
                breaker: BreakerView::of(st, now),
            })
            .collect();
        accounts.sort_by_key(|a| (a.breaker == BreakerView::Closed, a.owner != AccountOwner::Platform, a.id));
        let label_of =
            |id: AccountId| accounts.iter().find(|a| a.id == id).map(|a| a.label.clone()).unwrap_or_else(|| format!("account {id}"));
        let mut recent = router.ledger().recent(LIVE_RECENT);
        recent.sort_by_key(|e| std::cmp::Reverse(e.ts));
        let recent = recent
            .into_iter()
            .map(|e| RecentRequest {
                at: e.ts,
                supplier: name_of(e.supplier_id),
                model: e.model,
                request_type: e.request_type,
                route: e.route,
                ok: e.status == UsageStatus::Ok,
                latency_ms: e.latency_ms,
                cost_micros: e.cost.0,
            })
            .collect();
        let events = live
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(at, ev)| {
                let (text, bad) = match ev {
                    RouterEvent::BreakerOpened { account } => (format!("Breaker opened on {}", label_of(*account)), true),
                    RouterEvent::BreakerClosed { account } => (format!("Breaker closed on {}", label_of(*account)), false),
                    RouterEvent::FailoverStarted { supplier, account } => (
                        format!(
                            "Failover: {}'s own provider is failing; {} (platform AI) serves it",
                            name_of(*supplier),
                            label_of(*account)
                        ),
                        true,
                    ),
                    RouterEvent::FailoverEnded { supplier } => {
                        (format!("Failover over: {} is back on its own provider", name_of(*supplier)), false)
                    }
                    RouterEvent::QuotaWarning { supplier, used, quota } => {
                        (format!("{} used {} % of its platform quota", name_of(*supplier), used * 100 / (*quota).max(1)), true)
                    }
                    RouterEvent::QuotaExceeded { supplier, .. } => (format!("{} is over its platform quota", name_of(*supplier)), true),
                };
                LiveEvent { at: *at, text, bad }
            })
            .collect();
        Ok(LiveSnapshot {
            gateway_url: live.services.gateway_url.clone(),
            demo: live.services.demo,
            today: self.store.usage_totals(today, today + Duration::days(1)).map_err(msg)?,
            accounts,
            recent,
            events,
        })
    }

    async fn key_command(self: Arc<Self>, cmd: ConsoleCommand) -> Res<ConsoleEvent> {
        let keys = self.keys()?;
        let k = |e: KeyError| e.to_string();
        Ok(match cmd {
            ConsoleCommand::LoadKeys => {
                let vault_error = keys.vault().check().await.err().map(|e| e.to_string());
                let demo = keys.vault().is_demo();
                let svc = self.clone();
                let mut view = tokio::task::spawn_blocking(move || svc.keys_view())
                    .await
                    .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))??;
                view.vault_error = vault_error;
                view.demo = demo;
                view.vault = if demo { "Demo mode — simulator keys in memory".into() } else { "OS keychain".into() };
                ConsoleEvent::Keys(Arc::new(view))
            }
            ConsoleCommand::AddKey { new, key, validate } => {
                let o = keys.add(new, key, validate).await.map_err(k)?;
                ConsoleEvent::KeySaved {
                    label: o.account.label,
                    fingerprint: o.account.key_fingerprint.unwrap_or_default(),
                    created: true,
                    validation: o.validation,
                }
            }
            ConsoleCommand::ValidateKey(id) => {
                let validation = keys.validate(id).await.map_err(k)?;
                let label = self.store.account(id).map(|a| a.label).unwrap_or_else(|_| format!("account {id}"));
                ConsoleEvent::KeyValidated { id, label, validation }
            }
            ConsoleCommand::RotateKey { id, key } => {
                let o = keys.rotate(id, key).await.map_err(k)?;
                ConsoleEvent::KeySaved {
                    label: o.account.label,
                    fingerprint: o.account.key_fingerprint.unwrap_or_default(),
                    created: false,
                    validation: o.validation,
                }
            }
            ConsoleCommand::RemoveKey { id, force } => match keys.remove(id, force).await {
                Ok(a) => ConsoleEvent::KeyRemoved { id, label: a.label },
                Err(e @ KeyError::ActiveRoute { .. }) => ConsoleEvent::KeyRemoveNeedsForce { id, message: e.to_string() },
                Err(e) => return Err(e.to_string()),
            },
            ConsoleCommand::IssueToken(supplier) => {
                let svc = self.clone();
                tokio::task::spawn_blocking(move || {
                    let s = svc.store.supplier(supplier).map_err(msg)?;
                    let t = crate::engine::gateway_tokens::issue(&svc.store, supplier, svc.clock.now(), &audit_actor()).map_err(msg)?;
                    Ok::<_, String>(ConsoleEvent::TokenIssued {
                        supplier,
                        supplier_name: s.name,
                        hint: t.record.hint.clone(),
                        token: t.token,
                    })
                })
                .await
                .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))??
            }
            ConsoleCommand::RevokeToken(id) => {
                let svc = self.clone();
                tokio::task::spawn_blocking(move || {
                    let t = crate::engine::gateway_tokens::revoke(&svc.store, id, svc.clock.now(), &audit_actor()).map_err(msg)?;
                    Ok::<_, String>(ConsoleEvent::TokenRevoked { hint: t.hint })
                })
                .await
                .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))??
            }
            other => return Err(format!("internal: {:?} is not a key command", other.channel())),
        })
    }

    fn keys_view(&self) -> Res<KeysView> {
        let cat = self.catalog()?;
        let names: HashMap<SupplierId, &str> = cat.suppliers.iter().map(|s| (s.id, s.name.as_str())).collect();
        let name = |id: SupplierId| names.get(&id).map(|n| n.to_string()).unwrap_or_else(|| format!("supplier {id}"));
        let mut accounts: Vec<KeyRow> = self
            .store
            .list_accounts(None)
            .map_err(msg)?
            .into_iter()
            .map(|a| KeyRow {
                owner_name: match a.owner {
                    AccountOwner::Platform => "WedSync platform".into(),
                    AccountOwner::Supplier(s) => name(s),
                },
                id: a.id,
                label: a.label,
                provider: a.provider,
                owner: a.owner,
                base_url: a.base_url,
                default_model: a.default_model,
                azure: a.azure,
                fingerprint: a.key_fingerprint,
                validation: a.last_validation,
                validated_at: a.last_validated_at,
                message: a.last_validation_message,
                enabled: a.enabled,
            })
            .collect();
        accounts.sort_by(|a, b| {
            (a.owner != AccountOwner::Platform, &a.owner_name, a.id).cmp(&(b.owner != AccountOwner::Platform, &b.owner_name, b.id))
        });
        let tokens = self
            .store
            .list_tokens(None)
            .map_err(msg)?
            .into_iter()
            .map(|t| TokenRow {
                supplier_name: name(t.supplier_id),
                id: t.id,
                supplier: t.supplier_id,
                hint: t.hint,
                created_at: t.created_at,
                last_used_at: t.last_used_at,
                revoked_at: t.revoked_at,
            })
            .collect();
        Ok(KeysView { accounts, tokens, vault: String::new(), vault_error: None, demo: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_peaks_and_ends() {
        let pts: Vec<[f64; 2]> = (0..10_000).map(|i| [i as f64, if i == 5_001 { 1e6 } else { (i % 7) as f64 }]).collect();
        let d = decimate(&pts, 300);
        assert!(d.len() <= 301, "{}", d.len());
        assert!(d.iter().any(|p| p[1] == 1e6));
        assert_eq!(d.first(), pts.first());
        assert_eq!(d.last(), pts.last());
        assert!(d.windows(2).all(|w| w[0][0] < w[1][0]));
        assert_eq!(decimate(&pts[..50], 300).len(), 50);
    }

    #[test]
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 6, 20).unwrap();
        assert_eq!(date_of_day_number(day_number(d)), Some(d));
        assert_eq!(date_of_day_number(f64::NAN), None);
        assert_eq!(date_of_day_number(1e300), None);
    }

    #[test]
    fn quota_bands() {
        assert_eq!([band(10.0), band(60.0), band(80.0), band(95.0), band(130.0)], [0, 1, 2, 3, 4]);
    }
}
