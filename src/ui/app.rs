//! The eframe application: owns the console handle and event stream, the
//! per-view state, notifications and the persisted UI state. `logic` drains
//! events from the runtime and handles shortcuts; `ui` draws the navigation
//! and the current view. Nothing repaints while idle: the runtime wakes the UI
//! when an event arrives, and a view asks for a repaint only while it animates.

use super::theme;
use super::toasts::Toasts;
use super::views::{self, Cx, Goto, View};
use crate::console::{Channel, ConsoleCommand, ConsoleEvent, ConsoleEvents, ConsoleHandle, Watch};
use crate::domain::demo::{DemoConfig, DemoSummary};
use egui::{Key, KeyboardShortcut, Modifiers, RichText};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How the app starts.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// Shown in the title bar and the navigation footer.
    pub db_label: String,
    /// Overrides the remembered view (`--view`).
    pub start_view: Option<View>,
    /// Demo mode: write this demo history first, showing progress.
    pub demo: Option<DemoConfig>,
    /// Where the usage CSV export asks for a file (the native dialog unless a test injects one).
    pub save_dialog: views::export::SaveDialog,
    /// Desktop notifications of critical alerts may be sent (the desktop app;
    /// not tests). The user's off switch in the Alerts view is remembered.
    pub desktop_notifications: bool,
    /// The console may route this database itself (the Overview's switch; not demo mode).
    pub can_route: bool,
}

/// What survives a restart (eframe storage; window size is kept by eframe).
/// The views' settings belong to the database they were made on (the demo's
/// stay with the demo), so a real database never opens with the demo's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub view: View,
    /// Settings per database: its path, or `demo` for demo mode.
    pub databases: std::collections::BTreeMap<String, ViewSettings>,
    /// The user switched desktop notifications off (for every database).
    pub notifications_off: bool,
}

/// One database's view settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewSettings {
    pub suppliers: views::suppliers::Persisted,
    pub usage: views::usage::Persisted,
    /// "Route requests from this console", and its port.
    pub routing: views::routing::Persisted,
}

/// The key of a database's settings: `demo` in demo mode (a new throwaway file each time), its label otherwise.
fn settings_key(opts: &AppOptions) -> String {
    if opts.demo.is_some() { "demo".into() } else { opts.db_label.clone() }
}

const STORAGE_KEY: &str = "switchboard.console";

enum Demo {
    Off,
    Running { stage: String, done: f32, started: Instant },
    Ready(DemoSummary, f64),
    Failed(String),
}

pub struct ConsoleApp {
    handle: ConsoleHandle,
    events: ConsoleEvents,
    view: View,
    toasts: Toasts,
    demo: Demo,
    db_label: String,
    overview: views::overview::State,
    suppliers: views::suppliers::State,
    keys: views::keys::State,
    /// Which live view the service was told is on screen.
    watching: Watch,
    first_frame_done: bool,
    quotas: views::quotas::State,
    health: views::health::State,
    alerts: views::alerts::State,
    migrations: views::migrations::State,
    requests: views::requests::State,
    usage: views::usage::State,
    audit: views::audit::State,
    instances: views::instances::State,
    /// The pickers' candidates (the console's directory snapshot).
    picks: views::picker::Picks,
    /// The directory must be loaded again (after a write).
    directory_dirty: bool,
    /// Whose view settings these are (see [`Persisted::databases`]).
    settings_key: String,
    /// The saved settings of every database, written back with this one's.
    other_databases: std::collections::BTreeMap<String, ViewSettings>,
    /// The console's own routing (the Overview's switch).
    routing: views::routing::State,
    /// The window was asked to close while routing: the question is on screen.
    asking_close: bool,
    /// "Stop routing and quit" was chosen: the window closes once routing stopped.
    quitting: bool,
    /// The window may close now (the question was answered).
    close_choice: Option<views::routing::CloseChoice>,
}

const SEARCH: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::F);
const EXPORT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::E);
/// Ctrl+1 … Ctrl+9, then Ctrl+0 for the tenth view; later views have no shortcut.
const VIEW_KEYS: [Key; 10] = [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8, Key::Num9, Key::Num0];

impl ConsoleApp {
    /// Builds the app; starts demo generation when asked. `storage` restores the last UI state.
    pub fn new(handle: ConsoleHandle, events: ConsoleEvents, opts: AppOptions, storage: Option<&dyn eframe::Storage>) -> Self {
        let saved: Persisted = storage.and_then(|s| eframe::get_value(s, STORAGE_KEY)).unwrap_or_default();
        let key = settings_key(&opts);
        let mine = saved.databases.get(&key).cloned().unwrap_or_default();
        let mut toasts = Toasts::default();
        let can_route = opts.can_route && opts.demo.is_none();
        let demo = match opts.demo {
            Some(cfg) => match handle.send(ConsoleCommand::GenerateDemo(cfg)) {
                Ok(_) => Demo::Running { stage: "starting".into(), done: 0.0, started: Instant::now() },
                Err(e) => {
                    toasts.error(e.clone());
                    Demo::Failed(e)
                }
            },
            None => Demo::Off,
        };
        let today = handle.today();
        let mut alerts = views::alerts::State::default();
        if opts.desktop_notifications {
            let on = !saved.notifications_off;
            alerts.notify = Some(on);
            if on && let Err(e) = handle.send(ConsoleCommand::SetDesktopNotifications(true)) {
                toasts.error(e);
            }
        }
        ConsoleApp {
            handle,
            events,
            view: opts.start_view.unwrap_or(saved.view),
            toasts,
            demo,
            db_label: opts.db_label,
            overview: Default::default(),
            suppliers: views::suppliers::State::new(mine.suppliers),
            keys: Default::default(),
            watching: Watch::Nothing,
            first_frame_done: false,
            quotas: Default::default(),
            health: Default::default(),
            alerts,
            migrations: Default::default(),
            requests: views::requests::State::new(today),
            usage: views::usage::State::new(mine.usage, opts.save_dialog, today),
            audit: Default::default(),
            instances: Default::default(),
            picks: Default::default(),
            directory_dirty: true,
            settings_key: key,
            other_databases: saved.databases,
            routing: views::routing::State::new(can_route, mine.routing),
            asking_close: false,
            quitting: false,
            close_choice: None,
        }
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn persisted(&self) -> Persisted {
        let mut databases = self.other_databases.clone();
        databases.insert(self.settings_key.clone(), self.view_settings());
        Persisted { view: self.view, databases, notifications_off: self.alerts.notify == Some(false) }
    }

    /// This database's view settings as they would be saved now.
    pub fn view_settings(&self) -> ViewSettings {
        ViewSettings { suppliers: self.suppliers.persisted(), usage: self.usage.persisted(), routing: self.routing.persisted() }
    }

    /// The console's routing as the service last reported it.
    pub fn routing_state(&self) -> &crate::console::RoutingState {
        &self.routing.state
    }

    /// How the close question was answered, once the window may close.
    pub fn close_choice(&self) -> Option<views::routing::CloseChoice> {
        self.close_choice
    }

    /// Drains runtime events and handles global shortcuts. Call once per frame before [`Self::ui`].
    pub fn logic(&mut self, ctx: &egui::Context) {
        while let Some(ev) = self.events.try_next() {
            self.on_event(ev);
        }
        // Closing the window while this console routes asks first.
        if ctx.input(|i| i.viewport().close_requested()) && self.routing.state.busy() && self.close_choice.is_none() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.asking_close = true;
        }
        if self.quitting && !self.routing.state.busy() {
            self.quitting = false;
            self.asking_close = false;
            self.close_choice = Some(views::routing::CloseChoice::StopAndQuit);
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&SEARCH)) {
            if !matches!(self.view, View::Suppliers | View::Audit) {
                self.view = View::Suppliers;
            }
            self.suppliers.focus_search = true;
            self.audit.focus_search = true;
        }
        if ctx.input_mut(|i| i.consume_shortcut(&EXPORT)) {
            self.view = View::Usage;
            self.usage.open_export(self.handle.today());
        }
        for (i, key) in VIEW_KEYS.iter().enumerate().take(View::ALL.len()) {
            if ctx.input_mut(|inp| inp.consume_key(Modifiers::COMMAND, *key)) {
                self.view = View::ALL[i];
            }
        }
    }

    fn on_event(&mut self, ev: ConsoleEvent) {
        if matches!(
            ev,
            ConsoleEvent::SupplierSaved { .. }
                | ConsoleEvent::SupplierRemoved { .. }
                | ConsoleEvent::KeySaved { .. }
                | ConsoleEvent::KeyRemoved { .. }
                | ConsoleEvent::LiveReady { .. }
                | ConsoleEvent::DemoReady { .. }
        ) {
            self.directory_dirty = true;
        }
        // A write that succeeded resolves the errors shown before it.
        if matches!(
            ev,
            ConsoleEvent::SupplierSaved { .. }
                | ConsoleEvent::SupplierRemoved { .. }
                | ConsoleEvent::KeyRemoved { .. }
                | ConsoleEvent::TokenIssued { .. }
                | ConsoleEvent::TokenRevoked { .. }
                | ConsoleEvent::AlertUpdated { .. }
                | ConsoleEvent::MigrationChanged { .. }
                | ConsoleEvent::ExportDone(_)
        ) {
            self.toasts.resolve_errors();
        }
        match ev {
            ConsoleEvent::Directory(d) => self.picks = views::picker::Picks::new(d),
            ConsoleEvent::Failed { channel: Channel::Directory, message } => self.toasts.error(message),
            ConsoleEvent::DemoProgress { stage, done, .. } => {
                if let Demo::Running { stage: s, done: d, .. } = &mut self.demo {
                    *s = stage;
                    *d = done.clamp(0.0, 1.0);
                }
            }
            ConsoleEvent::DemoReady { summary, elapsed_secs } => {
                self.toasts.info(format!(
                    "Demo data ready: {}, {} usage events in {elapsed_secs:.1} s",
                    views::plural(summary.suppliers as usize, "supplier"),
                    views::fmt_int(summary.usage_events as i64)
                ));
                self.demo = Demo::Ready(summary, elapsed_secs);
                self.invalidate_all();
            }
            ConsoleEvent::Failed { channel: Channel::Demo, message } => {
                self.toasts.error(message.clone());
                self.demo = Demo::Failed(message);
            }
            ConsoleEvent::SupplierSaved { supplier, created } => {
                self.toasts.info(format!("{} '{}'", if created { "Added" } else { "Saved" }, supplier.name));
                self.invalidate_all();
                self.suppliers.on_saved(&supplier);
            }
            ConsoleEvent::SupplierRemoved { id, name } => {
                self.toasts.info(format!("Removed '{name}' (its usage history is kept)"));
                self.invalidate_all();
                self.suppliers.on_removed(id);
            }
            ConsoleEvent::CacheSettingsSaved { summary, .. } => {
                self.toasts.info(format!("Response cache: {summary}"));
                self.invalidate_all();
            }
            ConsoleEvent::CachePurged { supplier, entries } => {
                let whose = if supplier.is_some() { "the supplier's cache" } else { "the whole response cache" };
                self.toasts.info(match entries {
                    Some(n) => format!("Purged {whose}: {}", views::plural(usize::try_from(n).unwrap_or(usize::MAX), "answer")),
                    None => format!("Purge of {whose} sent to the fleet: every instance purges its own within a second"),
                });
                self.invalidate_all();
            }
            ConsoleEvent::Failed { channel: Channel::Write, message } => {
                self.suppliers.on_write_failed(&message);
                self.toasts.error(message);
            }
            ConsoleEvent::LiveReady { gateway_url } => {
                if let Some(url) = gateway_url {
                    self.toasts.info(format!("Demo runtime started: gateway on {url}, synthetic traffic running"));
                }
                // The live start issues tokens and may start a migration: both are audited.
                self.keys.dirty = true;
                self.audit.dirty = true;
                self.migrations.dirty = true;
            }
            ConsoleEvent::Routing(state) => {
                let was_on = self.routing.url().is_some();
                let on = matches!(state, crate::console::RoutingState::On { .. });
                match &state {
                    crate::console::RoutingState::Refused { message } | crate::console::RoutingState::Failed { message } => {
                        self.toasts.error(message.clone())
                    }
                    crate::console::RoutingState::On { url, .. } if !was_on => {
                        self.toasts.info(format!("Routing from this console: gateway on {url}"))
                    }
                    _ => {}
                }
                self.routing.on_event(ConsoleEvent::Routing(state));
                if was_on != on {
                    // The gateway's URL, the checklist, health and migrations now come from (or no longer from) this runtime.
                    self.directory_dirty = true;
                    self.overview.routing_changed(on);
                    self.health.dirty = true;
                    self.migrations.dirty = true;
                }
            }
            ConsoleEvent::Failed { channel: Channel::Routing, message } => {
                self.toasts.error(message.clone());
                self.routing.on_event(ConsoleEvent::Routing(crate::console::RoutingState::Failed { message }));
            }
            ev @ (ConsoleEvent::ImportPreview(_)
            | ConsoleEvent::ImportProgress(_)
            | ConsoleEvent::ImportDone(_)
            | ConsoleEvent::ImportFileSaved { .. }
            | ConsoleEvent::Failed { channel: Channel::Import | Channel::ImportPreview, .. }) => {
                if matches!(ev, ConsoleEvent::ImportDone(_)) {
                    self.invalidate_all();
                    self.directory_dirty = true;
                }
                self.suppliers.import.on_event(ev, &mut self.toasts);
            }
            ev @ (ConsoleEvent::Overview(_)
            | ConsoleEvent::Live(_)
            | ConsoleEvent::Failed { channel: Channel::Overview | Channel::Live, .. }) => self.overview.on_event(ev),
            ev @ (ConsoleEvent::Keys(_)
            | ConsoleEvent::KeySaved { .. }
            | ConsoleEvent::KeyValidated { .. }
            | ConsoleEvent::PoolSettingsSaved { .. }
            | ConsoleEvent::KeyRemoved { .. }
            | ConsoleEvent::KeyRemoveNeedsForce { .. }
            | ConsoleEvent::TokenIssued { .. }
            | ConsoleEvent::TokenRevoked { .. }
            | ConsoleEvent::Failed { channel: Channel::Keys | Channel::KeyWrite, .. }) => {
                let audit_changed = !matches!(ev, ConsoleEvent::Keys(_) | ConsoleEvent::KeyRemoveNeedsForce { .. });
                self.keys.on_event(ev, &mut self.toasts);
                if audit_changed {
                    self.audit.dirty = true;
                    self.overview.dirty = true;
                }
            }
            ev @ (ConsoleEvent::Suppliers(_)
            | ConsoleEvent::SupplierDetail(_)
            | ConsoleEvent::Failed { channel: Channel::Suppliers | Channel::SupplierDetail, .. }) => self.suppliers.on_event(ev),
            ev @ (ConsoleEvent::Quota(_) | ConsoleEvent::Failed { channel: Channel::Quota, .. }) => self.quotas.on_event(ev),
            ev @ (ConsoleEvent::Usage(_)
            | ConsoleEvent::Projections(_)
            | ConsoleEvent::ExportProgress(_)
            | ConsoleEvent::ExportDone(_)
            | ConsoleEvent::ExportExists { .. }
            | ConsoleEvent::ExportCancelled
            | ConsoleEvent::Failed { channel: Channel::Usage | Channel::Projections | Channel::Export, .. }) => {
                // One projection for both views: Quotas lists the same flagged suppliers.
                match &ev {
                    ConsoleEvent::Projections(v) => self.quotas.on_projections(v.clone()),
                    ConsoleEvent::Failed { channel: Channel::Projections, message } => self.quotas.on_projections_failed(message),
                    _ => {}
                }
                self.usage.on_event(ev, &mut self.toasts)
            }
            ev @ (ConsoleEvent::Audit(_) | ConsoleEvent::Failed { channel: Channel::Audit, .. }) => self.audit.on_event(ev),
            ev @ (ConsoleEvent::Instances(_) | ConsoleEvent::Failed { channel: Channel::Instances, .. }) => self.instances.on_event(ev),
            ConsoleEvent::LeaseWrittenOff { instance, tokens, .. } => {
                self.toasts.info(format!("Wrote off {} tokens of instance #{instance}'s lease", views::fmt_int(tokens as i64)));
                self.invalidate_all();
            }
            ConsoleEvent::Failed { channel: Channel::InstancesWrite, message } => self.toasts.error(message),
            ev @ (ConsoleEvent::Alerts(_)
            | ConsoleEvent::AlertsAcknowledged { .. }
            | ConsoleEvent::Failed { channel: Channel::Alerts, .. }) => {
                if matches!(ev, ConsoleEvent::AlertsAcknowledged { .. }) {
                    self.audit.dirty = true;
                    self.health.dirty = true;
                }
                self.alerts.on_event(ev, &mut self.toasts);
            }
            ConsoleEvent::ListExported { what, summary } => {
                self.toasts.info(format!("Exported the {what}: {} rows to {}", views::fmt_count(summary.rows), summary.path.display()));
            }
            ev @ (ConsoleEvent::Requests(_) | ConsoleEvent::Failed { channel: Channel::Requests, .. }) => self.requests.on_event(ev),
            ev @ (ConsoleEvent::Health(_)
            | ConsoleEvent::AlertUpdated { .. }
            | ConsoleEvent::Failed { channel: Channel::Health | Channel::HealthWrite, .. }) => {
                if matches!(ev, ConsoleEvent::AlertUpdated { .. }) {
                    self.audit.dirty = true;
                    self.alerts.dirty = true;
                }
                if matches!(ev, ConsoleEvent::Failed { channel: Channel::HealthWrite, .. }) {
                    self.alerts.on_event(ev.clone(), &mut self.toasts);
                }
                self.health.on_event(ev, &mut self.toasts);
            }
            ev @ (ConsoleEvent::Migrations(_)
            | ConsoleEvent::MigrationPlanned(_)
            | ConsoleEvent::MigrationChanged { .. }
            | ConsoleEvent::ScheduleChanged { .. }
            | ConsoleEvent::RecommendationDismissed { .. }
            | ConsoleEvent::MirrorChanged { .. }
            | ConsoleEvent::ParallelProgress(_)
            | ConsoleEvent::ParallelDone(_)
            | ConsoleEvent::ParallelCancelled { .. }
            | ConsoleEvent::Failed {
                channel: Channel::Migrations | Channel::MigrationPlan | Channel::MigrationWrite | Channel::Parallel,
                ..
            }) => {
                if matches!(ev, ConsoleEvent::MigrationChanged { .. }) {
                    self.audit.dirty = true;
                    self.health.dirty = true;
                }
                if matches!(ev, ConsoleEvent::RecommendationDismissed { .. } | ConsoleEvent::ScheduleChanged { .. }) {
                    self.audit.dirty = true;
                }
                if matches!(ev, ConsoleEvent::ParallelDone(_) | ConsoleEvent::ParallelCancelled { .. } | ConsoleEvent::MirrorChanged { .. })
                {
                    // Audited, recorded as shadow usage, and maybe a recommendation.
                    self.audit.dirty = true;
                    self.usage.dirty = true;
                    self.overview.dirty = true;
                    self.suppliers.dirty = true;
                }
                self.migrations.on_event(ev, &mut self.toasts);
            }
        }
    }

    fn invalidate_all(&mut self) {
        self.overview.dirty = true;
        self.suppliers.dirty = true;
        self.keys.dirty = true;
        self.quotas.dirty = true;
        self.health.dirty = true;
        self.alerts.dirty = true;
        self.migrations.dirty = true;
        self.usage.dirty = true;
        self.requests.dirty = true;
        self.audit.dirty = true;
        self.instances.dirty = true;
    }

    /// Tells the service which live view is on screen (it refreshes and pushes only that one).
    fn watch_live(&mut self) {
        let want = match self.view {
            _ if matches!(self.demo, Demo::Running { .. }) => Watch::Nothing,
            View::Overview => Watch::Overview,
            View::Health => Watch::Health,
            View::Migrations => Watch::Migrations,
            View::Instances => Watch::Instances,
            _ => Watch::Nothing,
        };
        if want != self.watching {
            self.watching = want;
            if let Err(e) = self.handle.send(ConsoleCommand::Watch(want)) {
                self.toasts.error(e);
            }
        }
    }

    /// Draws the whole window.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.watch_live();
        if self.directory_dirty && !matches!(self.demo, Demo::Running { .. }) {
            self.directory_dirty = false;
            if let Err(e) = self.handle.send(ConsoleCommand::LoadDirectory) {
                self.toasts.error(e);
            }
        }
        let nav_fill = theme::palette(ui).nav;
        egui::Panel::left("nav")
            .exact_size(theme::NAV_WIDTH)
            .resizable(false)
            .frame(egui::Frame::new().fill(nav_fill).inner_margin(egui::Margin::same(theme::GAP_M as i8)))
            .show(ui, |ui| self.nav(ui));
        egui::CentralPanel::default()
            .frame(egui::Frame::central_panel(ui.style()).inner_margin(egui::Margin::same(theme::GAP_L as i8)))
            .show(ui, |ui| {
                let mut cx = Cx { handle: &self.handle, picks: &self.picks, toasts: &mut self.toasts, goto: None };
                self.routing.resume(&mut cx);
                if let Demo::Running { stage, done, started } = &self.demo {
                    demo_progress(ui, stage, *done, started.elapsed().as_secs_f64());
                    return;
                }
                match self.view {
                    View::Overview => views::overview::show(ui, &mut self.overview, &mut self.routing, &mut cx),
                    View::Suppliers => views::suppliers::show(ui, &mut self.suppliers, &mut cx),
                    View::Keys => views::keys::show(ui, &mut self.keys, &mut cx),
                    View::Quotas => views::quotas::show(ui, &mut self.quotas, &mut cx),
                    View::Health => views::health::show(ui, &mut self.health, &mut cx),
                    View::Alerts => views::alerts::show(ui, &mut self.alerts, &mut cx),
                    View::Requests => views::requests::show(ui, &mut self.requests, &mut cx),
                    View::Migrations => views::migrations::show(ui, &mut self.migrations, &mut cx),
                    View::Usage => views::usage::show(ui, &mut self.usage, &mut cx),
                    View::Audit => views::audit::show(ui, &mut self.audit, &mut cx),
                    View::Instances => views::instances::show(ui, &mut self.instances, &mut cx),
                }
                match cx.goto.take() {
                    Some(Goto::Supplier(id)) => {
                        self.view = View::Suppliers;
                        self.suppliers.select(id, &self.handle);
                    }
                    Some(Goto::Quota(id)) => {
                        self.view = View::Quotas;
                        self.quotas.select(id);
                    }
                    None => {}
                }
            });
        if self.asking_close {
            match views::routing::close_question(ui.ctx(), &self.routing) {
                Some(views::routing::CloseChoice::StopAndQuit) => {
                    self.quitting = true;
                    if let Err(e) = self.handle.send(ConsoleCommand::StopRouting) {
                        self.toasts.error(e);
                    }
                }
                Some(views::routing::CloseChoice::KeepInBackground) => {
                    self.asking_close = false;
                    self.close_choice = Some(views::routing::CloseChoice::KeepInBackground);
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
                Some(views::routing::CloseChoice::Cancel) => self.asking_close = false,
                None => {}
            }
        }
        self.toasts.show(ui.ctx());
        if !self.first_frame_done {
            self.first_frame_done = true;
            if let Some(ms) = super::since_launch_ms() {
                tracing::info!(ms = format!("{ms:.0}"), "first frame");
            }
        }
    }

    /// [`Self::logic`] then [`Self::ui`]: one frame, for tests and benchmarks that drive the app without eframe.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        self.logic(&ui.ctx().clone());
        self.ui(ui);
    }

    fn nav(&mut self, ui: &mut egui::Ui) {
        let p = theme::palette(ui);
        ui.label(RichText::new("Switchboard").size(18.0).strong().color(p.accent));
        ui.label(RichText::new("WedSync AI routing").small().color(p.muted));
        ui.add_space(theme::GAP_L);
        for (i, v) in View::ALL.iter().enumerate() {
            let selected = self.view == *v;
            let text = RichText::new(v.label()).size(14.5);
            let hint = match VIEW_KEYS.get(i) {
                Some(k) => format!("{} (Ctrl+{})", v.hint(), k.symbol_or_name()),
                None => v.hint().to_string(),
            };
            let r = ui.add_sized([ui.available_width(), 30.0], egui::Button::selectable(selected, text)).on_hover_text(hint);
            if r.clicked() {
                self.view = *v;
            }
        }
        ui.with_layout(egui::Layout::bottom_up(egui::Align::Min), |ui| {
            ui.add(egui::Label::new(RichText::new(&self.db_label).small().color(p.muted)).truncate());
            match &self.demo {
                Demo::Ready(s, secs) => {
                    ui.label(
                        RichText::new(format!("Demo data: {} ({secs:.0} s)", views::plural(s.suppliers as usize, "supplier")))
                            .small()
                            .color(p.muted),
                    );
                }
                Demo::Failed(e) => {
                    ui.label(RichText::new("Demo data failed").small().color(p.danger)).on_hover_text(e);
                }
                Demo::Running { .. } => {
                    ui.label(RichText::new("Writing demo data…").small().color(p.muted));
                }
                Demo::Off => {}
            }
            ui.label(RichText::new("Ctrl+F search · Ctrl+E export · Ctrl+1…9, 0 views").small().color(p.muted));
        });
    }
}

fn demo_progress(ui: &mut egui::Ui, stage: &str, done: f32, secs: f64) {
    views::header(ui, "Preparing the demo", "a throwaway database with a year of generated history");
    theme::card(ui).show(ui, |ui| {
        ui.set_width(520.0);
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(RichText::new(format!("Writing {stage}…")).strong());
        });
        ui.add_space(theme::GAP_S);
        ui.add(egui::ProgressBar::new(done).animate(true).text(format!("{:.0} % · {secs:.0} s", done * 100.0)));
        ui.add_space(theme::GAP_S);
        ui.label(
            RichText::new("Suppliers, weddings, provider accounts, a year of usage and a month of provider health are generated on the background runtime; the views open as soon as they are written.")
                .color(theme::palette(ui).muted),
        );
    });
    // The spinner animates; repaint at a modest rate while generation runs.
    ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
}

impl eframe::App for ConsoleApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        ConsoleApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        ConsoleApp::ui(self, ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, &self.persisted());
    }
}
