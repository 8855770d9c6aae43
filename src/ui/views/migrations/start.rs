//! The Migrations view's start form: the supplier, the route to move to, the
//! checked plan (with the 48 h wedding guard and the suggested start), a
//! parallel test run from the form, and a live-traffic mirror's settings.

use super::*;
use crate::domain::schedule::{format_local, parse_start_time, rfc3339_local};
use crate::ui::views::picker::Picker;

#[derive(Default)]
pub(super) struct StartForm {
    supplier: Picker,
    field_error: Option<String>,
    /// Bring the form into view on its next frame (opened from further down the page).
    scroll_to: bool,
    mirror: MirrorFields,
    /// A start time typed for a schedule (RFC 3339 with its offset), and what is wrong with it.
    at: String,
    at_error: Option<String>,
    /// The phases as typed (`PERCENT:DURATION,…`); empty: the default plan.
    phases: String,
}

impl StartForm {
    pub(super) fn new(supplier: SupplierId) -> Self {
        // The name is filled in from the directory when the form is drawn.
        StartForm { supplier: Picker::with(supplier.0, format!("#{}", supplier.0)), scroll_to: true, ..StartForm::default() }
    }
}

impl StartForm {
    /// The phases typed, checked; `None` when the field is empty (the default plan).
    fn phases(&self) -> Result<Option<Vec<PhasePlan>>, String> {
        let t = self.phases.trim();
        if t.is_empty() {
            return Ok(None);
        }
        crate::domain::migration::parse_plan(t).map(Some).map_err(|e| format!("Phases: {e}"))
    }
}

/// A live-traffic mirror's settings as typed in the start form; an empty
/// field takes the default shown as its hint.
#[derive(Default)]
pub(super) struct MirrorFields {
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

pub(super) fn start_form(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let Some(form) = st.form.as_mut() else { return };
    let mut close = false;
    let mut check: Option<(SupplierId, Option<RouteTarget>)> = None;
    let mut start: Option<(SupplierId, RouteTarget, Vec<PhasePlan>)> = None;
    let mut schedule: Option<(SupplierId, RouteTarget, chrono::DateTime<chrono::Utc>, Vec<PhasePlan>)> = None;
    let mut test: Option<ParallelRun> = None;
    let mut start_test: Option<(SupplierId, RouteTarget)> = None;
    let mut mirror: Option<(SupplierId, RouteTarget, MirrorPlan)> = None;
    let mut mirror_error: Option<String> = None;
    let mut stop = false;
    let card = theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new("Start a migration").strong());
        ui.label(
            RichText::new("By default 5 %, 25 %, 75 %, then 100 % of the supplier's traffic, each phase checked; no phase begins within 48 h of one of its weddings.")
                .small()
                .color(p.muted),
        );
        ui.add_space(theme::GAP_XS);
        ui.horizontal(|ui| {
            if let Some(k) = form.supplier.chosen()
                && form.supplier.text == format!("#{k}")
                && let Some(name) = cx.picks.supplier_name(SupplierId(k))
            {
                form.supplier.text = name.to_string();
            }
            let picked = form.supplier.show(ui, "Supplier", "type a name, vendor type, tier or ID", 260.0, &cx.picks.suppliers);
            // Picking a supplier checks its plan at once.
            if let Some(k) = picked.chosen {
                form.field_error = None;
                check = Some((SupplierId(k), None));
            }
            if ui.button("Check").clicked() {
                match form.supplier.resolve(&cx.picks.suppliers, "supplier") {
                    Ok(n) => {
                        form.field_error = None;
                        check = Some((SupplierId(n), None));
                    }
                    Err(e) => form.field_error = Some(e),
                }
            }
            if ui.button("Cancel").clicked() {
                close = true;
            }
            if st.planning {
                ui.spinner();
            }
        });
        ui.horizontal(|ui| {
            let default = crate::domain::migration::format_plan(&crate::domain::migration::default_plan());
            let r = text_field(ui, "Phases", &mut form.phases, &default, 260.0).on_hover_text(
                "Each phase as PERCENT:DURATION, separated by commas: the share of the supplier's traffic on the new route and how long the phase lasts at least (s, m or h); the last phase sends 100 %. Empty: the default plan. Press Enter or Check to check it.",
            );
            if r.lost_focus()
                && ui.input(|i| i.key_pressed(egui::Key::Enter))
                && let Ok(n) = form.supplier.resolve(&cx.picks.suppliers, "supplier")
            {
                check = Some((SupplierId(n), st.plan.as_ref().filter(|p| p.supplier.0 == n).and_then(|p| p.to)));
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
                        crate::ui::views::fmt_int(s.criteria.max_p95_ms as i64),
                        s.criteria.min_requests
                    ))
                    .small()
                    .color(p.muted),
                );
                let suggested = format_local(s.earliest_start, plan.time_zone);
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
                if let Some(row) = st.form_result.as_ref().filter(|r| r.report.supplier == plan.supplier) {
                    form_result(ui, row);
                }
                ui.add_space(theme::GAP_XS);
                ui.horizontal_wrapped(|ui| {
                    // Within 48 h of a wedding a start now is refused: no button for it, the reason and the way out instead.
                    if s.blocked_by.is_none() {
                        let label = if s.overlaps.is_some() { "Start now anyway" } else { "Start migration" };
                        let resp = ui.add_enabled(!st.acting, egui::Button::new(RichText::new(label).strong()));
                        let resp = if s.overlaps.is_some() {
                            resp.on_hover_text("Starts now; the phase that would begin near the wedding waits until its 48 h window has passed")
                        } else {
                            resp
                        };
                        if resp.clicked()
                            && let Some(to) = plan.to
                        {
                            start = Some((plan.supplier, to, s.phases.clone()));
                        }
                    } else {
                        ui.label(RichText::new("Starting now is refused (a wedding is within 48 h).").color(p.muted));
                    }
                    if (s.blocked_by.is_some() || s.overlaps.is_some() || s.earliest_start > s.now)
                        && ui
                            .add_enabled(!st.acting, egui::Button::new(RichText::new(format!("Schedule for {suggested}")).strong()))
                            .on_hover_text("The routing runtime starts it then, checking the wedding guard again")
                            .clicked()
                        && let Some(to) = plan.to
                    {
                        schedule = Some((plan.supplier, to, s.earliest_start, s.phases.clone()));
                    }
                    if st.acting {
                        ui.spinner();
                        ui.label(RichText::new("Saving…").color(p.muted));
                    }
                });
                ui.horizontal(|ui| {
                    let hint = rfc3339_local(s.earliest_start.max(s.now + chrono::Duration::hours(1)), plan.time_zone);
                    let r = text_field(ui, "Or start at", &mut form.at, &hint, 230.0).on_hover_text(format!(
                        "An RFC 3339 time with its offset, e.g. {hint}; {}'s time zone is {}",
                        plan.supplier_name,
                        plan.time_zone.name()
                    ));
                    let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    if (ui.add_enabled(!st.acting, egui::Button::new("Schedule")).clicked() || enter)
                        && let Some(to) = plan.to
                    {
                        match parse_start_time(&form.at) {
                            Ok(at) => {
                                form.at_error = None;
                                schedule = Some((plan.supplier, to, at, s.phases.clone()));
                            }
                            Err(e) => form.at_error = Some(e),
                        }
                    }
                    if let Ok(at) = parse_start_time(&form.at) {
                        ui.label(RichText::new(format_local(at, plan.time_zone)).small().color(p.muted));
                    }
                });
                if let Some(e) = &form.at_error {
                    ui.add(egui::Label::new(RichText::new(e).color(p.danger)).wrap());
                }
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
        st.form_result = None;
    }
    if let Some((supplier, to)) = check {
        // The phases as typed go with every check; what was checked is what starts.
        match st.form.as_ref().map(StartForm::phases).unwrap_or(Ok(None)) {
            Ok(phases) => {
                st.planning = true;
                st.plan_error = None;
                cx.send(ConsoleCommand::PlanMigration { supplier, to, phases });
            }
            Err(e) => {
                if let Some(f) = st.form.as_mut() {
                    f.field_error = Some(e);
                }
            }
        }
    }
    if let Some((supplier, to, phases)) = start {
        st.acting = true;
        cx.send(ConsoleCommand::StartMigration { supplier, to, phases: Some(phases) });
    }
    if let Some((supplier, to, at, phases)) = schedule {
        st.acting = true;
        cx.send(ConsoleCommand::ScheduleMigration { supplier, to, at, phases: Some(phases) });
    }
}

/// The parallel test this form ran, next to its Start and Schedule buttons.
fn form_result(ui: &mut Ui, row: &crate::console::ParallelRow) {
    let p = *theme::palette(ui);
    let r = &row.report;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new(format!("Parallel test {} (run from this form)", r.id)).strong());
        ui.columns(3, |cols| {
            side(&mut cols[0], "Current route", &r.current);
            side(&mut cols[1], "Candidate", &r.candidate);
            let ui = &mut cols[2];
            ui.label(RichText::new("Projected monthly saving").small().color(p.muted));
            let saving = r.projected_monthly_saving.0;
            ui.label(RichText::new(fmt_money(saving)).font(theme::metric_font()).color(if saving >= 0 { p.ok } else { p.danger }));
            if let Some(rec) = &r.recommendation {
                ui.add(egui::Label::new(RichText::new(rec).small()).wrap());
            }
        });
    });
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
