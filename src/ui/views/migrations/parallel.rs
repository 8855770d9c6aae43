//! The Migrations view's parallel tests: the supplier's stored reports side
//! by side, the running test's progress and stop button, the live-traffic
//! mirrors, and the open recommendations with "Plan migration…".

use super::*;

pub(super) fn side(ui: &mut Ui, title: &str, s: &SideReport) {
    let p = *theme::palette(ui);
    ui.vertical(|ui| {
        ui.label(RichText::new(title).small().color(p.muted));
        ui.add(egui::Label::new(RichText::new(format!("{} · {}", s.label, s.model)).strong()).truncate());
        let ok_color = if s.successes == s.requests { p.ok } else { p.danger };
        ui.label(RichText::new(format!("{:.0} % success ({} of {})", s.success_percent(), s.successes, s.requests)).color(ok_color));
        ui.label(format!(
            "latency p50 {} ms · p95 {} ms",
            crate::ui::views::fmt_int(s.p50_ms as i64),
            crate::ui::views::fmt_int(s.p95_ms as i64)
        ));
        ui.label(format!("{} per request", fmt_money(s.cost_per_request.0)));
        ui.label(format!("{} per month (projected)", fmt_money(s.projected_monthly_cost.0)));
        if let Some(e) = s.errors.first() {
            ui.add(egui::Label::new(RichText::new(e).small().color(p.danger)).truncate()).on_hover_text(s.errors.join("\n"));
        }
    });
}

/// Open recommendations, each with "Plan migration…" (the start form, checked
/// with the supplier's usual target) and "Dismiss".
pub(super) fn recommendations(ui: &mut Ui, recs: &[RecommendationRow], st: &mut State, cx: &mut Cx<'_>) {
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
        cx.send(ConsoleCommand::PlanMigration { supplier, to: None, phases: None });
    }
}

/// One live-traffic mirror: progress and "Stop and report" while it runs, how
/// it ended otherwise. Returns the id when stop was clicked.
pub(super) fn mirror_row(ui: &mut Ui, m: &MirrorRow, runtime: bool, acting: bool) -> Option<i64> {
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
pub(super) fn parallel_progress(ui: &mut Ui, run: &ParallelRun) -> bool {
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

pub(super) fn stop_test(st: &mut State, cx: &mut Cx<'_>) {
    if let Some(run) = st.parallel_run.as_mut() {
        run.stopping = true;
        cx.send(ConsoleCommand::CancelParallelTest);
    }
}

pub(super) fn parallel(ui: &mut Ui, v: &MigrationsView, st: &mut State, cx: &mut Cx<'_>) {
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
        // The shown supplier's own mirrors with its tests; other suppliers' running mirrors apart, below.
        let shown = v.parallel_supplier.as_ref().map(|(s, _)| *s);
        let (own, others): (Vec<&MirrorRow>, Vec<&MirrorRow>) = v.mirrors.iter().partition(|m| shown.is_none_or(|s| s == m.supplier));
        for m in own {
            if let Some(id) = mirror_row(ui, m, v.runtime, st.acting) {
                stop_mirror = Some(id);
            }
        }
        if !others.is_empty() {
            ui.add_space(theme::GAP_S);
            ui.label(RichText::new(format!("Live-traffic mirrors of other suppliers ({})", others.len())).strong().color(p.muted));
            for m in others {
                if let Some(id) = mirror_row(ui, m, v.runtime, st.acting) {
                    stop_mirror = Some(id);
                }
            }
            ui.separator();
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
                    RichText::new(format!("from the last {} days: {} requests", rep.basis_days, crate::ui::views::fmt_int(rep.basis_requests as i64)))
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
        cx.send(ConsoleCommand::PlanMigration { supplier, to: Some(to), phases: None });
    }
}
