//! The console's protocol: what the UI sends ([`ConsoleCommand`], each on a
//! [`Channel`]), what it gets back ([`ConsoleEvent`]), the queries the views
//! send, and the generation-numbered tickets that let a newer command on a
//! superseding channel make older ones stale ([`ConsoleHandle`], [`ConsoleEvents`]).

use crate::console::*;
use crate::domain::AccountId;
use crate::domain::Secret;
use crate::domain::migration::{PhasePlan, RouteTarget};
use crate::domain::{AuditQuery, SupplierFilter, SupplierPatch, TokenId, UsageDimension};
use crate::domain::{Clock, NewSupplier, Supplier, SupplierId};
use crate::engine::demo::{DemoConfig, DemoSummary};
use crate::engine::export::{ExportOptions, ExportProgress, ExportSummary};
use crate::engine::keys::{NewKey, Validation};
use crate::engine::parallel::ParallelProgress;
use crate::store::Alert;
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The Alerts view's groups.
    Alerts,
    /// The Request log's searches.
    Requests,
    /// The suppliers and accounts the pickers choose from.
    Directory,
    /// The console's own routing runtime: never superseded (every state is delivered).
    Routing,
    /// Reading and checking a supplier import file.
    ImportPreview,
    /// The Instances view (the fleet's `serve` instances and leaders).
    Instances,
    /// Writing off a gone instance's quota lease: never superseded.
    InstancesWrite,
    /// Importing suppliers, saving the template or the report: never superseded.
    Import,
}

pub(in crate::console) const CHANNELS: usize = 27;

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
        Channel::Alerts,
        Channel::Requests,
        Channel::Directory,
        Channel::Routing,
        Channel::ImportPreview,
        Channel::Import,
        Channel::Instances,
        Channel::InstancesWrite,
    ];

    pub(in crate::console) fn index(self) -> usize {
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
                | Channel::Routing
                | Channel::Import
                | Channel::InstancesWrite
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

/// How the usage series are bucketed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum UsageGranularity {
    #[default]
    Day,
    /// Weeks from Monday.
    Week,
    Month,
}

impl UsageGranularity {
    pub const ALL: [UsageGranularity; 3] = [UsageGranularity::Day, UsageGranularity::Week, UsageGranularity::Month];
    pub fn label(self) -> &'static str {
        match self {
            UsageGranularity::Day => "Daily",
            UsageGranularity::Week => "Weekly",
            UsageGranularity::Month => "Monthly",
        }
    }
    /// "day", "week", "month".
    pub fn noun(self) -> &'static str {
        match self {
            UsageGranularity::Day => "day",
            UsageGranularity::Week => "week",
            UsageGranularity::Month => "month",
        }
    }
    /// The first day of the bucket `d` falls in.
    pub fn bucket(self, d: NaiveDate) -> NaiveDate {
        use chrono::Datelike;
        match self {
            UsageGranularity::Day => d,
            UsageGranularity::Week => d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday())),
            UsageGranularity::Month => crate::domain::calendar::first_of_month(d),
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
    pub granularity: UsageGranularity,
    pub max_points: usize,
}

/// What the UI asks the runtime to do.
#[derive(Debug, Clone)]
pub enum ConsoleCommand {
    LoadOverview,
    /// Every supplier and account by name, for the pickers ([`Directory`]).
    LoadDirectory,
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
    /// A supplier's response cache settings (on/off, TTLs): checked, stored, audited.
    SetCacheSettings {
        id: SupplierId,
        settings: crate::domain::cache::CacheSettings,
    },
    /// Purges the response cache: every supplier's (`None`) or one's. Audited;
    /// a routing runtime drops its memory entries within a second.
    PurgeCache(Option<SupplierId>),
    /// A key's pool settings (weight, limits, monthly budget): checked, stored, audited.
    SetPoolSettings {
        id: AccountId,
        settings: crate::domain::keypool::PoolSettings,
    },
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
    /// The Alerts view: alerts grouped by incident, filtered.
    LoadAlerts(AlertsQuery),
    /// Acknowledges several alerts at once (each audited): `AlertsAcknowledged`.
    AcknowledgeAlerts(Vec<i64>),
    /// Writes all alerts as CSV into a folder (a new file): `ListExported`.
    ExportAlerts(std::path::PathBuf),
    /// Writes the audit log matching the query as CSV into a folder (a new file): `ListExported`.
    ExportAudit {
        query: AuditQuery,
        dir: std::path::PathBuf,
    },
    /// The Request log: the ledger's requests matching the query (always within a bounded window).
    SearchRequests(RequestQuery),
    /// The fleet's instances and leaders (`all`: also those last seen more than a day ago).
    LoadInstances {
        all: bool,
    },
    /// Writes off the unfolded part of a gone instance's quota lease (audited).
    WriteOffLease {
        supplier: SupplierId,
        month: NaiveDate,
        instance: i64,
        reason: String,
    },
    /// Desktop notifications of critical alerts and wedding-day incidents on or off.
    SetDesktopNotifications(bool),
    /// The Migrations view; while it is watched, pushed again whenever it changes.
    LoadMigrations(MigrationQuery),
    /// Checks a migration; `to: None` picks the usual target (client → platform AI, platform → its own validated account).
    /// `phases: None` checks the default plan (5 %, 25 %, 75 %, 100 %).
    PlanMigration {
        supplier: SupplierId,
        to: Option<RouteTarget>,
        phases: Option<Vec<PhasePlan>>,
    },
    /// Starts the plan as checked (`phases: None`: the default plan).
    StartMigration {
        supplier: SupplierId,
        to: RouteTarget,
        phases: Option<Vec<PhasePlan>>,
    },
    /// Schedules a migration's start for `at` (the routing runtime starts it
    /// then, checking the wedding guard again): `ScheduleChanged`.
    ScheduleMigration {
        supplier: SupplierId,
        to: RouteTarget,
        at: chrono::DateTime<chrono::Utc>,
        phases: Option<Vec<PhasePlan>>,
    },
    /// Cancels a waiting scheduled start: `ScheduleChanged`.
    CancelSchedule(i64),
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
    /// The console routes this database itself: the runtime and the gateway on `127.0.0.1:port`.
    StartRouting {
        port: u16,
    },
    /// Stops the console's routing (the ledger flushed, the routing lock released).
    StopRouting,
    /// Reads and checks a supplier import file; writes nothing.
    PreviewImport(std::path::PathBuf),
    /// Reads the file again and imports its valid rows, with progress (cancellable).
    ImportSuppliers {
        path: std::path::PathBuf,
    },
    CancelImport,
    /// Writes the import template (the header and an example row) to a file.
    SaveImportTemplate(std::path::PathBuf),
    /// Writes an import's rejected rows (`line, name, reason`) to a file.
    SaveImportReport {
        path: std::path::PathBuf,
        rows: Arc<Vec<crate::domain::supplier_import::RejectedRow>>,
    },
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
    /// The Instances view, with the query of its last `LoadInstances`.
    Instances,
}

impl ConsoleCommand {
    pub fn channel(&self) -> Channel {
        match self {
            ConsoleCommand::LoadOverview => Channel::Overview,
            ConsoleCommand::LoadDirectory => Channel::Directory,
            ConsoleCommand::LoadSuppliers(_) => Channel::Suppliers,
            ConsoleCommand::LoadSupplierDetail(_) => Channel::SupplierDetail,
            ConsoleCommand::AddSupplier(_)
            | ConsoleCommand::EditSupplier { .. }
            | ConsoleCommand::RemoveSupplier(_)
            | ConsoleCommand::SetCacheSettings { .. }
            | ConsoleCommand::PurgeCache(_) => Channel::Write,
            ConsoleCommand::LoadQuota(_) => Channel::Quota,
            ConsoleCommand::LoadUsage(_) => Channel::Usage,
            ConsoleCommand::LoadAudit(_) => Channel::Audit,
            ConsoleCommand::GenerateDemo(_) => Channel::Demo,
            ConsoleCommand::Watch(_) | ConsoleCommand::SetDesktopNotifications(_) => Channel::Live,
            ConsoleCommand::LoadKeys => Channel::Keys,
            ConsoleCommand::AddKey { .. }
            | ConsoleCommand::ValidateKey(_)
            | ConsoleCommand::RotateKey { .. }
            | ConsoleCommand::RemoveKey { .. }
            | ConsoleCommand::IssueToken(_)
            | ConsoleCommand::RevokeToken(_)
            | ConsoleCommand::SetPoolSettings { .. } => Channel::KeyWrite,
            ConsoleCommand::LoadProjections { .. } => Channel::Projections,
            ConsoleCommand::ExportUsage(_) | ConsoleCommand::CancelExport => Channel::Export,
            ConsoleCommand::LoadHealth(_) => Channel::Health,
            // Alert actions and the small list exports are never superseded.
            ConsoleCommand::AcknowledgeAlert(_)
            | ConsoleCommand::ResolveAlert(_)
            | ConsoleCommand::AcknowledgeAlerts(_)
            | ConsoleCommand::ExportAlerts(_)
            | ConsoleCommand::ExportAudit { .. } => Channel::HealthWrite,
            ConsoleCommand::LoadAlerts(_) => Channel::Alerts,
            ConsoleCommand::SearchRequests(_) => Channel::Requests,
            ConsoleCommand::LoadInstances { .. } => Channel::Instances,
            ConsoleCommand::WriteOffLease { .. } => Channel::InstancesWrite,
            ConsoleCommand::LoadMigrations(_) => Channel::Migrations,
            ConsoleCommand::PlanMigration { .. } => Channel::MigrationPlan,
            ConsoleCommand::StartMigration { .. }
            | ConsoleCommand::ScheduleMigration { .. }
            | ConsoleCommand::CancelSchedule(_)
            | ConsoleCommand::PauseMigration(_)
            | ConsoleCommand::ResumeMigration(_)
            | ConsoleCommand::RollbackMigration { .. }
            | ConsoleCommand::AbortMigration(_)
            | ConsoleCommand::DismissRecommendation(_)
            | ConsoleCommand::MirrorLiveTraffic { .. }
            | ConsoleCommand::StopMirror(_) => Channel::MigrationWrite,
            ConsoleCommand::RunParallelTest { .. } | ConsoleCommand::CancelParallelTest => Channel::Parallel,
            ConsoleCommand::StartRouting { .. } | ConsoleCommand::StopRouting => Channel::Routing,
            ConsoleCommand::PreviewImport(_) => Channel::ImportPreview,
            ConsoleCommand::ImportSuppliers { .. }
            | ConsoleCommand::CancelImport
            | ConsoleCommand::SaveImportTemplate(_)
            | ConsoleCommand::SaveImportReport { .. } => Channel::Import,
        }
    }
}

/// What the runtime tells the UI.
#[derive(Debug, Clone)]
pub enum ConsoleEvent {
    Overview(Arc<Overview>),
    Directory(Arc<Directory>),
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
    /// A supplier's cache settings were saved (`summary`: in words).
    CacheSettingsSaved {
        id: SupplierId,
        summary: String,
    },
    /// Cached answers were purged (`supplier`: `None` for the whole cache);
    /// `entries`: `None` when the purge was filed for the fleet's instances.
    CachePurged {
        supplier: Option<SupplierId>,
        entries: Option<u64>,
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
    /// A key's pool settings were saved (`summary`: as `engine::pool_settings::describe` says them).
    PoolSettingsSaved {
        id: AccountId,
        label: String,
        summary: String,
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
    Alerts(Arc<AlertsView>),
    /// Alerts acknowledged in bulk.
    AlertsAcknowledged {
        count: usize,
    },
    /// Alerts or the audit log written as CSV (`what` names which).
    ListExported {
        what: &'static str,
        summary: ExportSummary,
    },
    Requests(Arc<RequestLogView>),
    Instances(Arc<InstancesView>),
    /// A gone instance's lease was written off: `tokens` no longer count against the quota.
    LeaseWrittenOff {
        supplier: SupplierId,
        instance: i64,
        tokens: u64,
    },
    Migrations(Arc<MigrationsView>),
    MigrationPlanned(Arc<PlanView>),
    /// A migration was started, paused, resumed, rolled back or aborted; `what` is a sentence.
    MigrationChanged {
        id: i64,
        what: String,
    },
    /// A migration start was scheduled or a schedule cancelled; `what` is a sentence.
    ScheduleChanged {
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
    /// The console's own routing changed state.
    Routing(crate::console::routing::RoutingState),
    ImportPreview(Arc<crate::console::views::supplier_import::ImportPreviewView>),
    /// Valid rows written so far by the running import.
    ImportProgress(crate::domain::supplier_import::ImportProgress),
    /// The import ended (completely, or cancelled between rows).
    ImportDone(Arc<crate::domain::supplier_import::ImportReport>),
    /// The template or a report was written; `what` names which.
    ImportFileSaved {
        what: &'static str,
        path: std::path::PathBuf,
    },
    /// A command failed; `message` is a sentence for the user.
    Failed {
        channel: Channel,
        message: String,
    },
}

/// Generation counters per channel, shared by the handle, the service and the event stream.
#[derive(Debug, Default)]
pub(in crate::console) struct Generations {
    pub(in crate::console) requested: [AtomicU64; CHANNELS],
    pub(in crate::console) delivered: [AtomicU64; CHANNELS],
}

impl Generations {
    pub(in crate::console) fn latest(&self, c: Channel) -> u64 {
        self.requested[c.index()].load(Ordering::SeqCst)
    }
    pub(in crate::console) fn is_current(&self, c: Channel, generation: u64) -> bool {
        !c.supersedes() || generation >= self.latest(c)
    }
}

/// A command's place in its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub channel: Channel,
    pub generation: u64,
}

/// The UI's side of the command channel. Cheap to clone. It carries the
/// service's injected [`Clock`], so that the views tell time as the service
/// does (and as a test's `ManualClock` says).
#[derive(Clone)]
pub struct ConsoleHandle {
    pub(in crate::console) tx: mpsc::UnboundedSender<(Ticket, ConsoleCommand)>,
    pub(in crate::console) gens: Arc<Generations>,
    pub(in crate::console) clock: Arc<dyn Clock>,
}

impl ConsoleHandle {
    /// Now, by the console's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today (UTC), by the console's clock.
    pub fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

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
    pub(in crate::console) rx: mpsc::UnboundedReceiver<(Ticket, ConsoleEvent)>,
    pub(in crate::console) gens: Arc<Generations>,
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
