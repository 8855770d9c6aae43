//! Migrations: every migration (running and paused first), the selected one's
//! timeline — planned and actual phases as bars over time, the traffic share
//! on the new route, each phase's figures against the success criteria, the
//! rollback point — with pause, resume, roll back (with a reason) and abort;
//! a start form that checks the plan first and warns when a phase would fall
//! within 48 h of one of the supplier's weddings, with the suggested start;
//! a parallel test run from that form ("try before you move": the same prompts
//! to the current route and the candidate, with progress and a stop button);
//! and the supplier's parallel test reports side by side, each with a link to
//! plan the migration it suggests.

use super::charts::{Unit, time_plot};
use super::{Cx, Goto, cell, confirm, empty_state, error_box, fmt_money, header, loading, status_dot, text_field};
use crate::console::{
    Channel, ConsoleCommand, ConsoleEvent, MigrationDetail, MigrationQuery, MigrationRow, MigrationsView, MirrorRow, PhaseCheck, PlanView,
    RecommendationRow,
};
use crate::domain::SupplierId;
use crate::domain::migration::{MigrationState, PhasePlan, RouteTarget};
use crate::domain::parallel::{ParallelProgress, SideReport};
use crate::domain::{MirrorPlan, MirrorPlanError};
use crate::ui::theme;
use crate::ui::toasts::Toasts;
use egui::{Color32, RichText, Ui};
use egui_plot::{Bar, BarChart, Line, LineStyle, VLine};
use std::sync::Arc;

mod parallel;
mod start;
use parallel::*;
use start::*;

/// A parallel test on its way.
struct ParallelRun {
    supplier: SupplierId,
    supplier_name: String,
    target: String,
    progress: Option<ParallelProgress>,
    stopping: bool,
}

struct Rollback {
    id: i64,
    title: String,
    reason: String,
}

#[derive(Default)]
pub struct State {
    data: Option<Arc<MigrationsView>>,
    error: Option<String>,
    pub dirty: bool,
    selected: Option<i64>,
    sent: Option<MigrationQuery>,
    form: Option<StartForm>,
    plan: Option<Arc<PlanView>>,
    plan_error: Option<String>,
    planning: bool,
    /// A start, pause, resume, rollback or abort is on its way.
    acting: bool,
    rollback: Option<Rollback>,
    abort: Option<(i64, String)>,
    /// Whose parallel tests to show (the last tested supplier); `None`: the selected migration's.
    parallel_supplier: Option<SupplierId>,
    parallel_run: Option<ParallelRun>,
    parallel_error: Option<String>,
    /// The last parallel test run from the open start form, shown in it.
    form_result: Option<Arc<crate::console::ParallelRow>>,
}

impl State {
    pub fn on_event(&mut self, ev: ConsoleEvent, toasts: &mut Toasts) {
        match ev {
            ConsoleEvent::Migrations(v) => {
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::MigrationPlanned(p) => {
                self.planning = false;
                self.plan_error = None;
                // The parallel tests shown are those of the supplier being planned.
                self.parallel_supplier = Some(p.supplier);
                self.plan = Some(p);
            }
            ConsoleEvent::Failed { channel: Channel::MigrationPlan, message } => {
                self.planning = false;
                self.plan = None;
                self.plan_error = Some(message);
            }
            ConsoleEvent::MigrationChanged { id, what } => {
                if self.acting && self.form.is_some() && self.plan.is_some() {
                    // The start form did its job.
                    self.form = None;
                    self.plan = None;
                }
                self.acting = false;
                self.selected = Some(id);
                toasts.info(what);
                self.dirty = true;
            }
            ConsoleEvent::Failed { channel: Channel::MigrationWrite, message } => {
                self.acting = false;
                toasts.error(message);
                self.dirty = true;
            }
            ConsoleEvent::MirrorChanged { supplier, what, .. } => {
                self.acting = false;
                toasts.info(what);
                self.parallel_supplier = Some(supplier);
                self.dirty = true;
            }
            ConsoleEvent::ScheduleChanged { what, .. } => {
                if self.acting && self.form.is_some() && self.plan.is_some() {
                    self.form = None;
                    self.plan = None;
                }
                self.acting = false;
                toasts.info(what);
                self.dirty = true;
            }
            ConsoleEvent::RecommendationDismissed { what, .. } => {
                self.acting = false;
                toasts.info(what);
                self.dirty = true;
            }
            ConsoleEvent::ParallelProgress(p) => {
                if let Some(run) = self.parallel_run.as_mut().filter(|r| r.supplier == p.supplier) {
                    run.progress = Some(p);
                }
            }
            ConsoleEvent::ParallelDone(row) => {
                self.parallel_run = None;
                if self.form.is_some() && self.plan.as_ref().is_some_and(|p| p.supplier == row.report.supplier) {
                    // Shown in the form that started it, next to its Start and Schedule buttons.
                    self.form_result = Some(row.clone());
                }
                self.parallel_error = None;
                let r = &row.report;
                let saving = r.projected_monthly_saving.0;
                let verdict = if r.basis_requests == 0 {
                    "no usage in the last 30 days to project a monthly saving from".to_string()
                } else if saving > 0 {
                    format!("would save {} per month", fmt_money(saving))
                } else if saving < 0 {
                    format!("would cost {} more per month", fmt_money(-saving))
                } else {
                    "would cost the same per month".to_string()
                };
                toasts.info(format!(
                    "Parallel test {} of {}: {} answered {} of {} prompts; {verdict}",
                    r.id, row.supplier_name, r.candidate.label, r.candidate.successes, r.candidate.requests
                ));
                self.parallel_supplier = Some(r.supplier);
                self.dirty = true;
            }
            ConsoleEvent::ParallelCancelled { done, total } => {
                self.parallel_run = None;
                toasts.info(format!("Parallel test stopped after {done} of {total} prompts; no report was stored"));
                self.dirty = true;
            }
            ConsoleEvent::Failed { channel: Channel::Parallel, message } => {
                self.parallel_run = None;
                toasts.error(message.clone());
                self.parallel_error = Some(message);
                self.dirty = true;
            }
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }

    fn busy(&self) -> bool {
        self.acting || self.planning
    }
}

fn state_style(ui: &Ui, s: MigrationState) -> (&'static str, Color32) {
    let p = theme::palette(ui);
    match s {
        MigrationState::Running => ("running", p.accent),
        MigrationState::Paused => ("paused", p.warn),
        MigrationState::Completed => ("completed", p.ok),
        MigrationState::RolledBack => ("rolled back", p.danger),
        MigrationState::Aborted => ("aborted", p.muted),
    }
}

fn check_color(ui: &Ui, c: PhaseCheck) -> Color32 {
    let p = theme::palette(ui);
    match c {
        PhaseCheck::Planned | PhaseCheck::Aborted => p.muted,
        PhaseCheck::OnTrack => p.accent,
        PhaseCheck::Passed => p.ok,
        PhaseCheck::Failing | PhaseCheck::RolledBack => p.danger,
    }
}

fn minutes(secs: i64) -> String {
    if secs % 3600 == 0 && secs >= 3600 {
        format!("{} h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let q = MigrationQuery { selected: st.selected, parallel_supplier: st.parallel_supplier };
    if st.dirty || st.sent != Some(q) {
        st.dirty = false;
        st.sent = Some(q);
        cx.send(ConsoleCommand::LoadMigrations(q));
    }
    header(ui, "Migrations", "move a supplier between platform AI and its own account, phase by phase");
    if let Some(e) = &st.error {
        error_box(ui, e);
    }
    let Some(v) = st.data.clone() else {
        if st.error.is_none() {
            loading(ui, "Loading migrations…");
        }
        return;
    };
    let p = *theme::palette(ui);
    ui.horizontal(|ui| {
        if ui.add_enabled(st.form.is_none(), egui::Button::new("Start a migration…")).clicked() {
            st.form = Some(StartForm::default());
            st.plan = None;
            st.plan_error = None;
            st.form_result = None;
        }
        if !v.runtime {
            ui.label(
                RichText::new(
                    "This console does not route: what you start or change here is written to the database, and a running `switchboard serve` drives the phases (as with `switchboard migrate`).",
                )
                .small()
                .color(p.muted),
            );
        }
    });
    ui.add_space(theme::GAP_S);
    egui::ScrollArea::vertical().id_salt("migrations_page").auto_shrink(false).show(ui, |ui| {
        if st.form.is_some() {
            start_form(ui, st, cx);
            ui.add_space(theme::GAP_M);
        }
        if !v.recommendations.is_empty() {
            recommendations(ui, &v.recommendations, st, cx);
            ui.add_space(theme::GAP_M);
        }
        if !v.schedules.is_empty() {
            schedules(ui, &v, st, cx);
            ui.add_space(theme::GAP_M);
        }
        if v.rows.is_empty() {
            empty_state(
                ui,
                "No migrations yet",
                "Start one with Start a migration…; its form can run a parallel test first, to compare the two routes before you move.",
            );
        } else {
            let list_w = 340.0_f32.min(ui.available_width() * 0.35);
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(list_w);
                    list(ui, &v.rows, v.detail.as_ref().map(|d| d.row.id), st);
                });
                ui.vertical(|ui| {
                    ui.set_width(ui.available_width());
                    match &v.detail {
                        Some(d) => detail(ui, d, st, cx),
                        None => {
                            ui.label(RichText::new("Choose a migration on the left.").color(p.muted));
                        }
                    }
                });
            });
        }
        ui.add_space(theme::GAP_M);
        parallel(ui, &v, st, cx);
    });
    dialogs(ui, st, cx);
    if st.busy() || st.parallel_run.is_some() {
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
    }
}

/// Scheduled starts: when (in the supplier's time zone), their state, and what a waiting one waits for.
fn schedules(ui: &mut Ui, v: &MigrationsView, st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let mut cancel: Option<i64> = None;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        let waiting = v.schedules.iter().filter(|s| s.waiting).count();
        ui.label(RichText::new(format!("Scheduled starts ({waiting} waiting)")).strong());
        let who = match &v.routed_by {
            Some(h) => format!("Started on time by the runtime that routes this database: {h}. The 48 h wedding guard is checked again at the start time."),
            None => "No runtime routes this database now: a waiting start begins only once routing is on (Overview) or `switchboard serve` runs.".to_string(),
        };
        ui.add(egui::Label::new(RichText::new(who).small().color(if v.routed_by.is_some() { p.muted } else { p.warn })).wrap());
        ui.add_space(theme::GAP_XS);
        for s in &v.schedules {
            ui.horizontal(|ui| {
                let color = match s.state.as_str() {
                    "waiting" | "starting" => if s.note.is_some() { p.warn } else { p.accent },
                    "started" => p.ok,
                    "refused" => p.danger,
                    _ => p.muted,
                };
                status_dot(ui, color);
                let state = match (s.state.as_str(), s.migration_id) {
                    ("waiting", _) if s.note.is_some() => "waiting".to_string(),
                    ("waiting", _) => "scheduled".to_string(),
                    ("started", Some(m)) => format!("started as migration #{m}"),
                    (other, _) => other.to_string(),
                };
                ui.label(RichText::new(format!("{} to {}", s.supplier_name, s.to)).strong());
                ui.label(format!("at {}", s.start_local));
                ui.label(RichText::new(state).color(color));
                if s.waiting && ui.add_enabled(!st.acting, egui::Button::new("Cancel")).on_hover_text("Cancels this scheduled start (audited)").clicked() {
                    cancel = Some(s.id);
                }
            });
            if let Some(n) = &s.note {
                ui.add(egui::Label::new(RichText::new(n).small().color(p.muted)).wrap());
            }
        }
    });
    if let Some(id) = cancel {
        st.acting = true;
        cx.send(ConsoleCommand::CancelSchedule(id));
    }
}

fn list(ui: &mut Ui, rows: &[MigrationRow], chosen: Option<i64>, st: &mut State) {
    let p = *theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        let active = rows.iter().filter(|r| r.state.is_active()).count();
        ui.label(RichText::new(format!("Migrations ({} · {active} in progress)", rows.len())).strong());
        ui.add_space(theme::GAP_XS);
        egui::ScrollArea::vertical().id_salt("migration_list").max_height(520.0).auto_shrink([false, true]).show(ui, |ui| {
            for r in rows {
                let (state, color) = state_style(ui, r.state);
                let text = format!("#{} {}", r.id, r.supplier_name);
                let resp = ui
                    .add_sized([ui.available_width(), theme::ROW_HEIGHT], egui::Button::selectable(chosen == Some(r.id), text).truncate())
                    .on_hover_text(format!("{} to {}", r.from, r.to));
                if resp.clicked() {
                    st.selected = Some(r.id);
                    st.parallel_supplier = None;
                }
                ui.horizontal(|ui| {
                    ui.add_space(theme::GAP_S);
                    status_dot(ui, color);
                    let progress = if r.state.is_active() {
                        format!("{state} · phase {}/{} · {} %", r.phase + 1, r.phases, r.percent)
                    } else {
                        format!("{state} · {}", r.updated_at.format("%d %b %H:%M"))
                    };
                    ui.label(RichText::new(progress).small().color(color));
                });
                ui.add(egui::Label::new(RichText::new(format!("{} to {}", r.from, r.to)).small().color(p.muted)).truncate());
                ui.add_space(theme::GAP_XS);
            }
        });
    });
}

fn detail(ui: &mut Ui, d: &MigrationDetail, st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let r = &d.row;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Migration {} · {}", r.id, r.supplier_name)).size(16.0).strong());
            let (state, color) = state_style(ui, r.state);
            ui.label(RichText::new(state).strong().color(color));
            if ui.link("Open supplier").clicked() {
                cx.goto = Some(Goto::Supplier(r.supplier));
            }
        });
        ui.add(
            egui::Label::new(RichText::new(format!("{} to {} · started {}", r.from, r.to, r.created_at.format("%Y-%m-%d %H:%M UTC"))))
                .wrap(),
        );
        if let Some(reason) = &r.reason {
            let color = if r.state == MigrationState::RolledBack { p.danger } else { p.muted };
            ui.add(egui::Label::new(RichText::new(reason).color(color)).wrap());
        }
        ui.add_space(theme::GAP_XS);
        ui.horizontal(|ui| {
            if st.acting {
                ui.spinner();
                ui.label(RichText::new("Working…").color(p.muted));
            } else if r.state.is_active() {
                if r.state == MigrationState::Running
                    && ui.button("Pause").on_hover_text("The traffic share stays; the phase clock stops").clicked()
                {
                    st.acting = true;
                    cx.send(ConsoleCommand::PauseMigration(r.id));
                }
                if r.state == MigrationState::Paused && ui.button("Resume").clicked() {
                    st.acting = true;
                    cx.send(ConsoleCommand::ResumeMigration(r.id));
                }
                if ui
                    .button(RichText::new("Roll back…").color(p.danger))
                    .on_hover_text("All traffic back to the old route at once")
                    .clicked()
                {
                    st.rollback = Some(Rollback {
                        id: r.id,
                        title: format!("Roll back migration {} of {}?", r.id, r.supplier_name),
                        reason: String::new(),
                    });
                }
                if ui.button("Abort…").on_hover_text("Stop here; traffic stays on the old route").clicked() {
                    st.abort = Some((r.id, r.supplier_name.clone()));
                }
            }
        });
        ui.add_space(theme::GAP_S);
        timeline(ui, d);
        ui.add_space(theme::GAP_S);
        phase_table(ui, d);
    });
}

/// Both timeline plots get the same y-axis width, so their linked time axes line up.
const AXIS_WIDTH: f32 = 108.0;

fn timeline(ui: &mut Ui, d: &MigrationDetail) {
    let p = *theme::palette(ui);
    let n = d.phases.len();
    let y_of = |i: usize| (n - 1 - i) as f64;
    let labels: Vec<String> = d.phases.iter().map(|ph| format!("Phase {} · {} %", ph.index + 1, ph.percent)).collect();
    let mut planned = Vec::new();
    let mut actual = Vec::new();
    // A phase that lasted seconds on a timeline of an hour still gets a visible bar.
    let span =
        d.phases.last().map(|ph| ph.planned[1]).unwrap_or(d.now).max(d.now) - d.phases.first().map(|ph| ph.planned[0]).unwrap_or(d.now);
    let min_len = (span / 150.0).max(1.0);
    for ph in &d.phases {
        let when = |a: f64, b: f64| {
            let t = |x: f64| super::charts::time_of(x).map(|t| t.format("%d %b %H:%M").to_string()).unwrap_or_default();
            format!("{} – {}", t(a), t(b))
        };
        planned.push(
            Bar::new(y_of(ph.index) + 0.2, ph.planned[1] - ph.planned[0])
                .base_offset(ph.planned[0])
                .width(0.32)
                .fill(p.off_peak.gamma_multiply(0.6))
                .name(format!(
                    "Phase {} planned: {} % for at least {}\n{}",
                    ph.index + 1,
                    ph.percent,
                    minutes(ph.min_secs),
                    when(ph.planned[0], ph.planned[1])
                )),
        );
        if let Some([a, b]) = ph.actual {
            actual.push(
                Bar::new(y_of(ph.index) - 0.2, (b - a).max(min_len))
                    .base_offset(a)
                    .width(0.32)
                    .fill(check_color(ui, ph.check))
                    .name(format!("Phase {} actual: {}\n{}", ph.index + 1, ph.check.label(), when(a, b))),
            );
        }
    }
    ui.label(RichText::new("Timeline: planned vs actual phases").strong());
    let ticks = labels.clone();
    let first = d.phases.first().map(|ph| ph.planned[0]).unwrap_or(d.now);
    let last = d.phases.last().map(|ph| ph.planned[1]).unwrap_or(d.now).max(d.now);
    let link = egui::Id::unique(("migration_time", d.row.id));
    time_plot(("migration_timeline", d.row.id), Unit::Count, 40.0 + 34.0 * n as f32)
        .y_axis_formatter(move |m, _| {
            let i = m.value.round();
            if (m.value - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            ticks.get(n.saturating_sub(1 + i as usize)).cloned().unwrap_or_default()
        })
        .y_axis_min_width(AXIS_WIDTH)
        .y_grid_spacer(move |_| (0..n).map(|i| egui_plot::GridMark { value: i as f64, step_size: 1.0 }).collect())
        .include_y(-0.6)
        .include_y(n as f64 - 0.4)
        .include_x(first)
        .include_x(last)
        .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightTop))
        .link_axis(link, [true, false])
        .allow_drag([true, false])
        .allow_zoom([true, false])
        .show(ui, |pl| {
            pl.add(BarChart::new("planned", planned).horizontal().color(p.off_peak).element_formatter(Box::new(|b, _| b.name.clone())));
            pl.add(BarChart::new("actual", actual).horizontal().color(p.accent).element_formatter(Box::new(|b, _| b.name.clone())));
            if let Some(x) = d.rollback_at {
                pl.add(VLine::new("rollback point", x).color(p.danger).width(2.0));
            }
            if d.row.state.is_active() {
                pl.add(VLine::new("now", d.now).color(p.muted).style(LineStyle::dashed_loose()));
            }
        });
    ui.label(RichText::new("Traffic on the new route").small().color(p.muted));
    time_plot(("migration_share", d.row.id), Unit::Percent, 110.0)
        .y_axis_min_width(AXIS_WIDTH)
        .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightTop))
        .include_y(100.0)
        .include_x(first)
        .include_x(last)
        .link_axis(link, [true, false])
        .allow_drag([true, false])
        .allow_zoom([true, false])
        .show(ui, |pl| {
            pl.add(Line::new("share on the new route", d.share.clone()).color(p.accent).fill(0.0).fill_alpha(0.15).width(1.8));
            if let Some(x) = d.rollback_at {
                pl.add(VLine::new("rollback point", x).color(p.danger).width(2.0));
            }
        });
}

fn phase_table(ui: &mut Ui, d: &MigrationDetail) {
    let p = *theme::palette(ui);
    let c = &d.criteria;
    ui.label(RichText::new("Phases against the success criteria").strong());
    ui.label(
        RichText::new(format!(
            "Checked on the new route's traffic in every phase: error rate at most {:.0} %, p95 < {} ms, at least {} requests; otherwise automatic rollback.",
            c.max_error_bp as f64 / 100.0,
            super::fmt_int(c.max_p95_ms as i64),
            c.min_requests
        ))
        .small()
        .color(p.muted),
    );
    let widths = [64.0, 60.0, 76.0, 110.0, 76.0, 60.0, 80.0, 80.0];
    ui.horizontal(|ui| {
        for (h, w) in ["Phase", "Share", "At least", "Started", "Requests", "Errors", "Error rate", "p95"].iter().zip(widths) {
            cell(ui, w, RichText::new(*h).small().color(p.muted));
        }
        ui.label(RichText::new("Check").small().color(p.muted));
    });
    for ph in &d.phases {
        ui.horizontal(|ui| {
            cell(ui, widths[0], format!("{}", ph.index + 1));
            cell(ui, widths[1], format!("{} %", ph.percent));
            cell(ui, widths[2], minutes(ph.min_secs));
            let started = ph.actual.and_then(|[a, _]| super::charts::time_of(a)).map(|t| t.format("%d %b %H:%M").to_string());
            cell(ui, widths[3], RichText::new(started.unwrap_or_else(|| "–".into())).color(p.muted));
            cell(ui, widths[4], super::fmt_int(ph.requests as i64));
            cell(ui, widths[5], super::fmt_int(ph.errors as i64));
            let err_bad = ph.requests > 0 && ph.error_percent > c.max_error_bp as f64 / 100.0;
            let err = if ph.requests == 0 { "–".to_string() } else { format!("{:.1} %", ph.error_percent) };
            cell(ui, widths[6], RichText::new(err).color(if err_bad { p.danger } else { ui.visuals().text_color() }));
            let p95_bad = ph.p95_ms.is_some_and(|v| v >= c.max_p95_ms);
            let p95 = ph.p95_ms.map(|v| format!("{} ms", super::fmt_int(v as i64))).unwrap_or_else(|| "–".into());
            cell(ui, widths[7], RichText::new(p95).color(if p95_bad { p.danger } else { ui.visuals().text_color() }));
            let color = check_color(ui, ph.check);
            status_dot(ui, color);
            ui.label(RichText::new(ph.check.label()).color(color));
        });
    }
}

/// The dialogs: roll back (with a reason) and abort.
fn dialogs(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let ctx = ui.ctx().clone();
    if let Some(r) = st.rollback.as_mut() {
        let (mut go, mut cancel) = (false, false);
        egui::Modal::new(egui::Id::unique("rollback_migration")).show(&ctx, |ui| {
            ui.set_width(480.0);
            ui.label(RichText::new(&r.title).strong().size(16.0));
            ui.label("All of the supplier's traffic goes back to the old route at once; the migration ends and cannot be resumed.");
            ui.add_space(theme::GAP_S);
            text_field(ui, "Reason", &mut r.reason, "e.g. the supplier asked to wait until after the season", 440.0);
            ui.add_space(theme::GAP_S);
            ui.horizontal(|ui| {
                go = ui.button(RichText::new("Roll back").color(p.danger)).clicked();
                cancel = ui.button("Cancel").clicked();
            });
        });
        if cancel {
            st.rollback = None;
        } else if go {
            let (id, reason) = (r.id, r.reason.clone());
            st.rollback = None;
            st.acting = true;
            cx.send(ConsoleCommand::RollbackMigration { id, reason });
        }
    }
    if let Some((id, name)) = st.abort.clone() {
        let body = "The migration stops where it is and the supplier's traffic stays on the old route. This is not a failure; you can start a new one later.";
        if let Some(yes) = confirm(&ctx, "abort_migration", &format!("Abort migration {id} of {name}?"), body, ("Abort", "Keep going")) {
            st.abort = None;
            if yes {
                st.acting = true;
                cx.send(ConsoleCommand::AbortMigration(id));
            }
        }
    }
}
