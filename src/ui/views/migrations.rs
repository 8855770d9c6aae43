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
    RecommendationRow, RouteTarget,
};
use crate::domain::SupplierId;
use crate::domain::migration::MigrationState;
use crate::domain::{MirrorPlan, MirrorPlanError};
use crate::engine::parallel::{ParallelProgress, SideReport};
use crate::ui::theme;
use crate::ui::toasts::Toasts;
use egui::{Color32, RichText, Ui};
use egui_plot::{Bar, BarChart, Line, LineStyle, VLine};
use std::sync::Arc;

#[derive(Default)]
struct StartForm {
    supplier: String,
    field_error: Option<String>,
    /// Bring the form into view on its next frame (opened from further down the page).
    scroll_to: bool,
    mirror: MirrorFields,
}

impl StartForm {
    fn new(supplier: SupplierId) -> Self {
        StartForm { supplier: supplier.0.to_string(), field_error: None, scroll_to: true, mirror: MirrorFields::default() }
    }
}

/// A live-traffic mirror's settings as typed in the start form; an empty
/// field takes the default shown as its hint.
#[derive(Default)]
struct MirrorFields {
    percent: String,
    requests: String,
    days: String,
}

impl MirrorFields {
    /// The plan typed so far; its limits are the ones [`MirrorPlan::validate`] checks.
    fn plan(&self) -> Result<MirrorPlan, String> {
        let d = MirrorPlan::default();
        let (percent_max, requests_max) = (*MirrorPlan::SAMPLE_PERCENT.end(), *MirrorPlan::REQUESTS.end());
        let refused = |text: &str, name: &str, default: u32, max: u32| {
            format!("{name}: '{}' is not a whole number from 1 to {max}; leave it empty for {default}", text.trim())
        };
        let field = |text: &str, name: &str, default: u32, max: u32| -> Result<u32, String> {
            let t = text.trim().trim_end_matches('%').trim();
            if t.is_empty() {
                return Ok(default);
            }
            t.parse::<u32>().map_err(|_| refused(text, name, default, max))
        };
        let default_days = u32::try_from(d.duration.num_days()).unwrap_or(1);
        let days = field(&self.days, "Days at most", default_days, MirrorPlan::MAX_DAYS)?;
        let plan = MirrorPlan {
            sample_percent: field(&self.percent, "Sample %", d.sample_percent, percent_max)?,
            requests: field(&self.requests, "Requests to compare", d.requests, requests_max)?,
            duration: chrono::Duration::days(i64::from(days)),
        };
        plan.validate().map_err(|e| match e {
            MirrorPlanError::SamplePercent(_) => refused(&self.percent, "Sample %", d.sample_percent, percent_max),
            MirrorPlanError::Requests(_) => refused(&self.requests, "Requests to compare", d.requests, requests_max),
            MirrorPlanError::Duration => refused(&self.days, "Days at most", default_days, MirrorPlan::MAX_DAYS),
        })?;
        Ok(plan)
    }
}

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

fn start_form(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let Some(form) = st.form.as_mut() else { return };
    let mut close = false;
    let mut check: Option<(SupplierId, Option<RouteTarget>)> = None;
    let mut start: Option<(SupplierId, RouteTarget)> = None;
    let mut test: Option<ParallelRun> = None;
    let mut start_test: Option<(SupplierId, RouteTarget)> = None;
    let mut mirror: Option<(SupplierId, RouteTarget, MirrorPlan)> = None;
    let mut mirror_error: Option<String> = None;
    let mut stop = false;
    let card = theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new("Start a migration").strong());
        ui.label(
            RichText::new("5 %, 25 %, 75 %, then 100 % of the supplier's traffic, each phase checked; no phase begins within 48 h of one of its weddings.")
                .small()
                .color(p.muted),
        );
        ui.add_space(theme::GAP_XS);
        ui.horizontal(|ui| {
            let r = text_field(ui, "Supplier ID", &mut form.supplier, "e.g. 12 (see Suppliers)", 140.0);
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Check").clicked() || enter {
                match form.supplier.trim().parse::<i64>() {
                    Ok(n) if n > 0 => {
                        form.field_error = None;
                        check = Some((SupplierId(n), None));
                    }
                    _ => form.field_error = Some(format!("'{}' is not a supplier ID; type the number shown in Suppliers", form.supplier.trim())),
                }
            }
            if ui.button("Cancel").clicked() {
                close = true;
            }
            if st.planning {
                ui.spinner();
            }
        });
        if let Some(e) = &form.field_error {
            ui.label(RichText::new(e).color(p.danger));
        }
        if let Some(e) = &st.plan_error {
            ui.label(RichText::new(e).color(p.danger));
        }
        let Some(plan) = st.plan.clone() else { return };
        ui.add_space(theme::GAP_XS);
        ui.horizontal(|ui| {
            ui.label(RichText::new(&plan.supplier_name).strong());
            ui.label(RichText::new(format!("on {} AI now", plan.ai_mode)).color(p.muted));
            let current = plan.to.and_then(|t| plan.targets.iter().find(|(x, _)| *x == t)).map(|(_, l)| l.clone()).unwrap_or_else(|| "choose…".into());
            let mut chosen = plan.to;
            egui::ComboBox::from_label("Move to").selected_text(current).width(300.0).show_ui(ui, |ui| {
                for (t, label) in &plan.targets {
                    ui.selectable_value(&mut chosen, Some(*t), label);
                }
            });
            if chosen != plan.to
                && let Some(t) = chosen
            {
                check = Some((plan.supplier, Some(t)));
            }
        });
        if !plan.next_weddings.is_empty() {
            let list: Vec<String> = plan.next_weddings.iter().map(|d| d.format("%a %d %b %Y").to_string()).collect();
            ui.label(RichText::new(format!("Weddings: {}", list.join(" · "))).small().color(p.muted));
        }
        // Try before you move: allowed even when a wedding blocks the start.
        match st.parallel_run.as_ref().filter(|r| r.supplier == plan.supplier) {
            Some(run) => stop = parallel_progress(ui, run),
            None => {
                ui.horizontal(|ui| {
                    let target = plan.to.and_then(|t| plan.targets.iter().find(|(x, _)| *x == t)).map(|(_, l)| l.clone());
                    let on_it = plan.to == Some(RouteTarget::Platform) && plan.ai_mode == crate::domain::AiMode::Platform;
                    let free = st.parallel_run.is_none();
                    let resp = ui
                        .add_enabled(plan.to.is_some() && !on_it && free, egui::Button::new("Run a parallel test"))
                        .on_hover_text(
                            "Sends the same prompts to the current route and to the chosen one at the same time; both answers are recorded as shadow usage, never billed to the quota",
                        );
                    if !free {
                        resp.on_disabled_hover_text("Another parallel test is running; wait for it or stop it first");
                    } else if resp.clicked()
                        && let (Some(to), Some(target)) = (plan.to, target)
                    {
                        test = Some(ParallelRun {
                            supplier: plan.supplier,
                            supplier_name: plan.supplier_name.clone(),
                            target: target.clone(),
                            progress: None,
                            stopping: false,
                        });
                        start_test = Some((plan.supplier, to));
                    }
                    let shown = form.mirror.plan().unwrap_or_default();
                    let resp = ui
                        .add_enabled(plan.to.is_some() && !on_it && !st.acting, egui::Button::new("Mirror live traffic"))
                        .on_hover_text(format!(
                            "Copies {} % of the supplier's live requests to the chosen route as well, in the background, until {} are compared (at most {} days); the answers still come from the current route, and the copies are shadow usage, never billed to the quota",
                            shown.sample_percent,
                            shown.requests,
                            shown.duration.num_days()
                        ));
                    if resp.clicked()
                        && let Some(to) = plan.to
                    {
                        match form.mirror.plan() {
                            Ok(m) => mirror = Some((plan.supplier, to, m)),
                            Err(e) => mirror_error = Some(e),
                        }
                    }
                    ui.label(RichText::new("compare success, latency and cost before you move").small().color(p.muted));
                });
                ui.horizontal(|ui| {
                    ui.label(RichText::new("Live-traffic mirror:").small().color(p.muted));
                    text_field(ui, "Sample %", &mut form.mirror.percent, "25", 36.0);
                    text_field(ui, "Requests to compare", &mut form.mirror.requests, "50", 52.0);
                    text_field(ui, "Days at most", &mut form.mirror.days, "7", 36.0);
                });
            }
        }
        if let Some(e) = &st.parallel_error {
            ui.add(egui::Label::new(RichText::new(e).color(p.danger)).wrap());
        }
        match &plan.plan {
            Err(e) => error_box(ui, e),
            Ok(s) => {
                let phases: Vec<String> = s.phases.iter().map(|ph| format!("{} % for {}", ph.percent, minutes(ph.min_secs))).collect();
                ui.label(format!("{} to {}: {}", s.from, s.to, phases.join(", then ")));
                ui.label(
                    RichText::new(format!(
                        "Each phase: error rate at most {:.0} %, p95 < {} ms, at least {} requests on the new route; otherwise automatic rollback.",
                        s.criteria.max_error_bp as f64 / 100.0,
                        super::fmt_int(s.criteria.max_p95_ms as i64),
                        s.criteria.min_requests
                    ))
                    .small()
                    .color(p.muted),
                );
                let suggested = s.earliest_start.format("%a %d %b %Y %H:%M UTC").to_string();
                if let Some(d) = s.blocked_by {
                    theme::card(ui).stroke(egui::Stroke::new(1.5, p.danger)).show(ui, |ui| {
                        ui.label(RichText::new(format!("Wedding on {}: no migration may start within 48 h of it.", d.format("%a %d %b"))).strong().color(p.danger));
                        ui.label(format!("Suggested start, clear of weddings for the whole plan: {suggested}."));
                    });
                } else if let Some(d) = s.overlaps {
                    theme::card(ui).stroke(egui::Stroke::new(1.5, p.warn)).show(ui, |ui| {
                        ui.label(RichText::new("Wedding-window warning").strong().color(p.warn));
                        ui.label(format!(
                            "{} has a wedding on {}: started now, a phase would begin within 48 h of it, so the migration would wait there until the window passes.",
                            plan.supplier_name,
                            d.format("%a %d %b")
                        ));
                        ui.label(RichText::new(format!("Suggested start: {suggested}.")).strong());
                    });
                }
                ui.add_space(theme::GAP_XS);
                ui.horizontal(|ui| {
                    let allowed = s.blocked_by.is_none() && !st.acting;
                    let label = if s.overlaps.is_some() { "Start now anyway" } else { "Start migration" };
                    if ui.add_enabled(allowed, egui::Button::new(RichText::new(label).strong())).clicked()
                        && let Some(to) = plan.to
                    {
                        start = Some((plan.supplier, to));
                    }
                    if st.acting {
                        ui.spinner();
                        ui.label(RichText::new("Starting…").color(p.muted));
                    }
                });
            }
        }
    });
    if st.form.as_ref().is_some_and(|f| f.scroll_to) {
        ui.scroll_to_rect(card.response.rect, Some(egui::Align::Min));
        if let Some(f) = st.form.as_mut() {
            f.scroll_to = false;
        }
    }
    if stop {
        stop_test(st, cx);
    }
    if let Some(e) = mirror_error {
        st.parallel_error = Some(e);
    }
    if let Some((supplier, to, plan)) = mirror {
        st.acting = true;
        st.parallel_error = None;
        st.parallel_supplier = Some(supplier);
        cx.send(ConsoleCommand::MirrorLiveTraffic { supplier, to, plan });
    }
    if let (Some(run), Some((supplier, to))) = (test, start_test) {
        st.parallel_error = None;
        st.parallel_supplier = Some(supplier);
        st.parallel_run = Some(run);
        st.dirty = true;
        cx.send(ConsoleCommand::RunParallelTest { supplier, to });
    }
    if close {
        st.form = None;
        st.plan = None;
        st.plan_error = None;
    }
    if let Some((supplier, to)) = check {
        st.planning = true;
        st.plan_error = None;
        cx.send(ConsoleCommand::PlanMigration { supplier, to });
    }
    if let Some((supplier, to)) = start {
        st.acting = true;
        cx.send(ConsoleCommand::StartMigration { supplier, to });
    }
}

fn side(ui: &mut Ui, title: &str, s: &SideReport) {
    let p = *theme::palette(ui);
    ui.vertical(|ui| {
        ui.label(RichText::new(title).small().color(p.muted));
        ui.add(egui::Label::new(RichText::new(format!("{} · {}", s.label, s.model)).strong()).truncate());
        let ok_color = if s.successes == s.requests { p.ok } else { p.danger };
        ui.label(RichText::new(format!("{:.0} % success ({} of {})", s.success_percent(), s.successes, s.requests)).color(ok_color));
        ui.label(format!("latency p50 {} ms · p95 {} ms", super::fmt_int(s.p50_ms as i64), super::fmt_int(s.p95_ms as i64)));
        ui.label(format!("{} per request", fmt_money(s.cost_per_request.0)));
        ui.label(format!("{} per month (projected)", fmt_money(s.projected_monthly_cost.0)));
        if let Some(e) = s.errors.first() {
            ui.add(egui::Label::new(RichText::new(e).small().color(p.danger)).truncate()).on_hover_text(s.errors.join("\n"));
        }
    });
}

/// Open recommendations, each with "Plan migration…" (the start form, checked
/// with the supplier's usual target) and "Dismiss".
fn recommendations(ui: &mut Ui, recs: &[RecommendationRow], st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let mut plan: Option<SupplierId> = None;
    let mut dismiss: Option<i64> = None;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Recommendations ({} open)", recs.len())).strong());
            ui.label(RichText::new("raised at 90 % of a platform quota, by parallel tests and by rollbacks").small().color(p.muted));
        });
        egui::ScrollArea::vertical().id_salt("recommendations").max_height(220.0).auto_shrink([false, true]).show(ui, |ui| {
            for r in recs {
                ui.add_space(theme::GAP_XS);
                ui.horizontal(|ui| {
                    status_dot(ui, p.warn);
                    if ui.link(RichText::new(&r.supplier_name).strong()).on_hover_text("Open the supplier").clicked() {
                        cx.goto = Some(Goto::Supplier(r.supplier));
                    }
                    ui.label(RichText::new(r.kind_label()).small().color(p.warn));
                    ui.label(RichText::new(r.created_at.format("%d %b %H:%M").to_string()).small().color(p.muted));
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui.add_enabled(!st.acting, egui::Button::new("Dismiss")).clicked() {
                            dismiss = Some(r.id);
                        }
                        let free = r.migrating.is_none() && !st.busy();
                        let resp = ui.add_enabled(free, egui::Button::new("Plan migration…"));
                        let resp = match r.migrating {
                            Some(m) => resp.on_disabled_hover_text(format!("Migration {m} of {} is in progress", r.supplier_name)),
                            None => resp.on_hover_text("Opens the start form for this supplier, checked against its weddings"),
                        };
                        if resp.clicked() {
                            plan = Some(r.supplier);
                        }
                    });
                });
                ui.add(egui::Label::new(RichText::new(&r.message).color(p.muted)).wrap());
            }
        });
    });
    if let Some(id) = dismiss {
        st.acting = true;
        cx.send(ConsoleCommand::DismissRecommendation(id));
    }
    if let Some(supplier) = plan {
        st.form = Some(StartForm::new(supplier));
        st.plan = None;
        st.plan_error = None;
        st.planning = true;
        cx.send(ConsoleCommand::PlanMigration { supplier, to: None });
    }
}

/// One live-traffic mirror: progress and "Stop and report" while it runs, how
/// it ended otherwise. Returns the id when stop was clicked.
fn mirror_row(ui: &mut Ui, m: &MirrorRow, runtime: bool, acting: bool) -> Option<i64> {
    let p = *theme::palette(ui);
    let mut stop = None;
    ui.add_space(theme::GAP_XS);
    if m.is_running() {
        ui.horizontal(|ui| {
            let fraction = m.compared as f32 / m.target_requests.max(1) as f32;
            ui.add(egui::ProgressBar::new(fraction.min(1.0)).desired_width(160.0).text(format!("{} of {}", m.compared, m.target_requests)));
            ui.label(format!(
                "Mirror {}: {} % of {}'s live requests also go to {} · until {}",
                m.id,
                m.sample_percent,
                m.supplier_name,
                m.candidate,
                m.ends_at.format("%a %d %b %H:%M UTC")
            ));
            if ui
                .add_enabled(!acting && m.state == "running", egui::Button::new("Stop and report"))
                .on_hover_text("Ends the mirror now; the report compares what was mirrored so far")
                .clicked()
            {
                stop = Some(m.id);
            }
        });
        if !runtime {
            ui.label(
                RichText::new("This console does not route: a running `switchboard serve` copies the requests and writes the report.")
                    .small()
                    .color(p.muted),
            );
        }
    } else {
        let how = match (m.state.as_str(), m.report_id) {
            ("done", Some(r)) => format!("done: test {r} below"),
            (state, _) => format!("{state}: {}", m.reason.as_deref().unwrap_or("no report")),
        };
        ui.label(
            RichText::new(format!(
                "Mirror {} to {} ({} %, started {}) · {how}",
                m.id,
                m.candidate,
                m.sample_percent,
                m.created_at.format("%d %b %H:%M")
            ))
            .small()
            .color(p.muted),
        );
    }
    stop
}

/// A running parallel test: a progress bar and a stop button; true when stop was clicked.
fn parallel_progress(ui: &mut Ui, run: &ParallelRun) -> bool {
    let p = *theme::palette(ui);
    let mut stop = false;
    ui.horizontal(|ui| {
        let (done, total) = run.progress.map(|x| (x.done, x.total)).unwrap_or((0, 0));
        let fraction = if total == 0 { 0.0 } else { done as f32 / total as f32 };
        ui.add(egui::ProgressBar::new(fraction).desired_width(160.0).show_percentage().animate(true));
        let text = if run.stopping {
            "Stopping after the prompt under way…".to_string()
        } else if total == 0 {
            format!("Parallel test of {} against {}: starting…", run.supplier_name, run.target)
        } else {
            format!("Parallel test of {} against {}: {done} of {total} prompts answered by both routes", run.supplier_name, run.target)
        };
        ui.label(RichText::new(text).color(p.muted));
        stop = ui.add_enabled(!run.stopping, egui::Button::new("Stop the test")).clicked();
    });
    stop
}

fn stop_test(st: &mut State, cx: &mut Cx<'_>) {
    if let Some(run) = st.parallel_run.as_mut() {
        run.stopping = true;
        cx.send(ConsoleCommand::CancelParallelTest);
    }
}

fn parallel(ui: &mut Ui, v: &MigrationsView, st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let mut plan: Option<(SupplierId, RouteTarget)> = None;
    let mut stop = false;
    let mut stop_mirror: Option<i64> = None;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        let title = match &v.parallel_supplier {
            Some((_, s)) => format!("Parallel tests of {s}"),
            None => "Parallel tests".to_string(),
        };
        ui.label(RichText::new(title).strong());
        ui.label(
            RichText::new(
                "The same prompts sent to the current route and the candidate, side by side (recorded as shadow usage, never billed).",
            )
            .small()
            .color(p.muted),
        );
        // The running test shows here unless the start form it came from shows it.
        let in_form = st.form.is_some() && st.plan.as_ref().zip(st.parallel_run.as_ref()).is_some_and(|(pl, r)| pl.supplier == r.supplier);
        if let Some(run) = st.parallel_run.as_ref().filter(|_| !in_form) {
            stop = parallel_progress(ui, run);
        }
        for m in &v.mirrors {
            if let Some(id) = mirror_row(ui, m, v.runtime, st.acting) {
                stop_mirror = Some(id);
            }
        }
        if v.parallel.is_empty() && v.mirrors.is_empty() {
            ui.label(
                RichText::new(
                    "No parallel test yet. Open Start a migration…, check the supplier, choose where to move it and Run a parallel test (or use `switchboard parallel-test --supplier ID --account ID`).",
                )
                .color(p.muted),
            );
            return;
        }
        for r in &v.parallel {
            let rep = &r.report;
            ui.add_space(theme::GAP_S);
            ui.separator();
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Test {} · {}", rep.id, r.supplier_name)).strong());
                ui.label(RichText::new(rep.created_at.format("%Y-%m-%d %H:%M UTC").to_string()).color(p.muted));
            });
            ui.columns(3, |cols| {
                side(&mut cols[0], "Current route", &rep.current);
                side(&mut cols[1], "Candidate", &rep.candidate);
                let ui = &mut cols[2];
                ui.label(RichText::new("Projected monthly saving").small().color(p.muted));
                let saving = rep.projected_monthly_saving.0;
                let color = if saving >= 0 { p.ok } else { p.danger };
                ui.label(RichText::new(fmt_money(saving)).font(theme::metric_font()).color(color));
                ui.label(
                    RichText::new(format!("from the last {} days: {} requests", rep.basis_days, super::fmt_int(rep.basis_requests as i64)))
                        .small()
                        .color(p.muted),
                );
                ui.label(format!("Suggested start: {}", rep.suggested_start.format("%a %d %b %H:%M UTC")));
                if let Some(rec) = &rep.recommendation {
                    ui.add(egui::Label::new(RichText::new(rec).small()).wrap());
                }
                if ui
                    .add_enabled(!st.busy(), egui::Button::new(format!("Plan a migration to {}…", rep.candidate.label)))
                    .on_hover_text("Opens the start form with this supplier and route, checked against its weddings")
                    .clicked()
                {
                    plan = Some((rep.supplier, r.candidate_target));
                }
            });
        }
    });
    if stop {
        stop_test(st, cx);
    }
    if let Some(id) = stop_mirror {
        st.acting = true;
        cx.send(ConsoleCommand::StopMirror(id));
    }
    if let Some((supplier, to)) = plan {
        st.form = Some(StartForm::new(supplier));
        st.plan = None;
        st.plan_error = None;
        st.planning = true;
        cx.send(ConsoleCommand::PlanMigration { supplier, to: Some(to) });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(percent: &str, requests: &str, days: &str) -> MirrorFields {
        MirrorFields { percent: percent.into(), requests: requests.into(), days: days.into() }
    }

    #[test]
    fn mirror_fields_default_when_empty_and_refuse_what_start_mirror_would() {
        assert_eq!(fields("", " ", "").plan(), Ok(MirrorPlan::default()));
        let p = fields("50 %", "200", "14").plan().unwrap();
        assert_eq!((p.sample_percent, p.requests, p.duration.num_days()), (50, 200, 14));
        let e = fields("150", "", "").plan().unwrap_err();
        assert!(e.contains("Sample %: '150' is not a whole number from 1 to 100") && e.contains("empty for 25"), "{e}");
        assert!(fields("", "0", "").plan().unwrap_err().starts_with("Requests to compare: '0'"));
        assert!(fields("", "", "31").plan().unwrap_err().starts_with("Days at most: '31'"));
        assert!(fields("ten", "", "").plan().is_err());
    }
}
