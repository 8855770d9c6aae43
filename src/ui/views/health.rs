//! Health: a status board with every provider account (platform and
//! supplier-owned) — verdict, breaker, latency p50/p95, error rate, uptime
//! over 24 h, last probe — the latency and error-rate charts of one account
//! over 1 h / 24 h / 30 d, and the alert list (open or all) with Acknowledge
//! and Resolve. The service keeps it fresh while the view is visible.

use super::charts::{Unit, time_plot};
use super::{Cx, cell, empty_state, error_box, header, loading, status_dot};
use crate::console::{AlertRow, BreakerView, Channel, ConsoleCommand, ConsoleEvent, HealthQuery, HealthRow, HealthView};
use crate::domain::AccountId;
use crate::domain::health::ChartRange;
use crate::domain::health::{Severity, Verdict};
use crate::ui::theme;
use crate::ui::toasts::Toasts;
use chrono::{DateTime, NaiveDate, Utc};
use egui::{Color32, RichText, Ui};
use egui_plot::{Line, LineStyle, Points};
use std::collections::HashSet;
use std::sync::Arc;

pub struct State {
    data: Option<Arc<HealthView>>,
    error: Option<String>,
    pub dirty: bool,
    account: Option<AccountId>,
    range: ChartRange,
    open_only: bool,
    sent: Option<HealthQuery>,
    /// Alerts with an acknowledge or resolve on its way.
    acting: HashSet<i64>,
}

impl Default for State {
    fn default() -> Self {
        State {
            data: None,
            error: None,
            dirty: false,
            account: None,
            range: ChartRange::Hour,
            open_only: true,
            sent: None,
            acting: HashSet::new(),
        }
    }
}

impl State {
    pub fn on_event(&mut self, ev: ConsoleEvent, toasts: &mut Toasts) {
        match ev {
            ConsoleEvent::Health(v) => {
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::AlertUpdated { alert, resolved } => {
                self.acting.remove(&alert.id);
                toasts.info(format!("Alert {} {}: {}", alert.id, if resolved { "resolved" } else { "acknowledged" }, alert.message));
                self.dirty = true;
            }
            ConsoleEvent::Failed { channel: Channel::HealthWrite, message } => {
                self.acting.clear();
                toasts.error(message);
                self.dirty = true;
            }
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }
}

fn verdict_style(ui: &Ui, v: Verdict) -> (&'static str, Color32) {
    let p = theme::palette(ui);
    match v {
        Verdict::Healthy => ("up", p.ok),
        Verdict::Degraded => ("degraded", p.warn),
        Verdict::Down => ("down", p.danger),
        Verdict::Unknown => ("unknown", p.muted),
    }
}

fn breaker_text(ui: &Ui, b: Option<BreakerView>) -> (String, Color32) {
    let p = theme::palette(ui);
    match b {
        None => ("not routed here".into(), p.muted),
        Some(BreakerView::Closed) => ("closed".into(), p.ok),
        Some(BreakerView::Open { held: true, .. }) => ("open (down)".to_string(), p.danger),
        Some(BreakerView::Open { secs_left, .. }) => (format!("open · {secs_left} s left"), p.danger),
        Some(BreakerView::HalfOpen) => ("half-open".into(), p.warn),
    }
}

fn severity_color(ui: &Ui, s: Severity) -> Color32 {
    let p = theme::palette(ui);
    match s {
        Severity::Info => p.muted,
        Severity::Warning => p.warn,
        Severity::Critical => p.danger,
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%d %b %H:%M:%S").to_string()
}

/// A probe time: the time of day for today's (every probe of a live monitor), with the date otherwise.
fn probe_time(t: DateTime<Utc>, today: NaiveDate) -> String {
    if t.date_naive() == today { t.format("%H:%M:%S").to_string() } else { t.format("%d %b %H:%M").to_string() }
}

fn ms(v: Option<u32>) -> String {
    v.map(|v| format!("{} ms", super::fmt_int(v as i64))).unwrap_or_else(|| "–".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} %")).unwrap_or_else(|| "–".into())
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let q = HealthQuery {
        account: st.account,
        range: st.range,
        open_only: st.open_only,
        max_points: (ui.available_width() / 2.0).max(100.0) as usize,
    };
    let changed = st.sent.is_none_or(|s| {
        (s.account, s.range, s.open_only) != (q.account, q.range, q.open_only) || s.max_points.abs_diff(q.max_points) > 150
    });
    if st.dirty || changed {
        st.dirty = false;
        st.sent = Some(q);
        cx.send(ConsoleCommand::LoadHealth(q));
    }
    header(ui, "Health", "provider accounts: probes, verdicts, breakers and alerts");
    if let Some(e) = &st.error {
        error_box(ui, e);
    }
    let Some(v) = st.data.clone() else {
        if st.error.is_none() {
            loading(ui, "Loading provider health…");
        }
        return;
    };
    let p = *theme::palette(ui);
    if !v.monitored {
        ui.label(
            RichText::new(
                "No health monitor runs in this console: figures come from the stored health history (probes and sampled requests). Live verdicts and breakers appear while `switchboard serve` (or `--demo`) runs.",
            )
            .small()
            .color(p.muted),
        );
        ui.add_space(theme::GAP_XS);
    }
    if v.rows.is_empty() {
        empty_state(ui, "No provider accounts yet", "Add a key in Keys: every account with a key is probed every 30 s and shows here.");
        alerts_card(ui, &v, st, cx);
        return;
    }
    egui::ScrollArea::vertical().id_salt("health_page").auto_shrink(false).show(ui, |ui| {
        board(ui, &v, st, cx.handle.today());
        ui.add_space(theme::GAP_M);
        if v.pools.iter().any(|k| k.platform) {
            super::pools::card(ui, &v.pools);
            ui.add_space(theme::GAP_M);
        }
        charts(ui, &v, st);
        ui.add_space(theme::GAP_M);
        alerts_card(ui, &v, st, cx);
    });
    if !st.acting.is_empty() {
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
    }
}

const BOARD_WIDTHS: [f32; 9] = [92.0, 180.0, 96.0, 140.0, 120.0, 60.0, 60.0, 60.0, 70.0];

/// The board's one-line verdict: green only when every account was judged
/// and none is down or degraded; accounts not judged yet are said so.
fn board_summary(total: usize, down: usize, degraded: usize, unknown: usize, p: &theme::Palette) -> (String, egui::Color32) {
    let accounts = |n: usize| if n == 1 { "1 account".to_string() } else { format!("{n} accounts") };
    match (down, degraded, unknown) {
        (0, 0, 0) => ("no account down or degraded".to_string(), p.ok),
        (0, 0, u) if u == total => (format!("{} not probed yet: no verdict", accounts(u)), p.muted),
        (0, 0, u) => (format!("none down or degraded · {} not probed yet", accounts(u)), p.muted),
        (d, g, 0) => (format!("{d} down · {g} degraded"), if d > 0 { p.danger } else { p.warn }),
        (d, g, u) => (format!("{d} down · {g} degraded · {} not probed yet", accounts(u)), if d > 0 { p.danger } else { p.warn }),
    }
}

fn board(ui: &mut Ui, v: &HealthView, st: &mut State, today: NaiveDate) {
    let p = *theme::palette(ui);
    let down = v.rows.iter().filter(|r| r.verdict == Verdict::Down).count();
    let degraded = v.rows.iter().filter(|r| r.verdict == Verdict::Degraded).count();
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Provider accounts ({})", v.rows.len())).strong());
            let unknown = v.rows.iter().filter(|r| r.verdict == Verdict::Unknown).count();
            let (text, color) = board_summary(v.rows.len(), down, degraded, unknown, &p);
            ui.label(RichText::new(text).color(color));
            ui.label(
                RichText::new(format!("probes every {} s · click an account for its charts", v.probe_interval_secs)).small().color(p.muted),
            );
        });
        ui.add_space(theme::GAP_XS);
        ui.horizontal(|ui| {
            for (h, w) in ["Status", "Account", "Provider", "Owner", "Breaker", "p50", "p95", "Errors", "Up 24 h"].iter().zip(BOARD_WIDTHS)
            {
                cell(ui, w, RichText::new(*h).small().color(p.muted));
            }
            ui.label(RichText::new("Last probe").small().color(p.muted));
        });
        let row_h = theme::ROW_HEIGHT + 6.0;
        let chosen = v.chart.as_ref().map(|c| c.account);
        egui::ScrollArea::vertical().id_salt("health_board").max_height(row_h * 9.0).auto_shrink([false, true]).show_rows(
            ui,
            row_h,
            v.rows.len(),
            |ui, range| {
                for r in &v.rows[range] {
                    board_row(ui, r, chosen == Some(r.id), st, today);
                }
            },
        );
        if v.rows.iter().any(|r| r.wedding_day) {
            ui.label(
                RichText::new(
                    "* serves a supplier with a wedding today: judged with the stricter wedding-day thresholds (at most 2 s and 2 % errors).",
                )
                .small()
                .color(p.muted),
            );
        }
    });
}

fn board_row(ui: &mut Ui, r: &HealthRow, chosen: bool, st: &mut State, today: NaiveDate) {
    let p = *theme::palette(ui);
    let w = BOARD_WIDTHS;
    ui.horizontal(|ui| {
        ui.set_height(theme::ROW_HEIGHT);
        let (verdict, color) = verdict_style(ui, r.verdict);
        ui.allocate_ui_with_layout(egui::vec2(w[0], theme::ROW_HEIGHT), egui::Layout::left_to_right(egui::Align::Center), |ui| {
            ui.set_width(w[0]);
            status_dot(ui, color);
            let text = if r.wedding_day { format!("{verdict} *") } else { verdict.to_string() };
            ui.label(RichText::new(text).color(color).strong());
        });
        let label = if r.enabled { r.label.clone() } else { format!("{} (disabled)", r.label) };
        let resp = ui
            .allocate_ui_with_layout(egui::vec2(w[1], theme::ROW_HEIGHT), egui::Layout::left_to_right(egui::Align::Center), |ui| {
                ui.set_width(w[1]);
                ui.add(egui::Button::selectable(chosen, label).truncate())
            })
            .inner;
        if resp.on_hover_text(format!("Show the charts of {}", r.label)).clicked() {
            st.account = Some(r.id);
        }
        cell(ui, w[2], r.provider.display_name());
        cell(
            ui,
            w[3],
            RichText::new(&r.owner_name).color(if r.owner_name == "WedSync platform" { p.accent } else { ui.visuals().text_color() }),
        );
        let (b, bc) = breaker_text(ui, r.breaker);
        let held = matches!(r.breaker, Some(BreakerView::Open { held: true, .. }));
        let resp = cell(ui, w[4], RichText::new(b).color(bc));
        if held {
            resp.on_hover_text("Held open by the health monitor: traffic fails over until probes see the account answering again");
        }
        cell(ui, w[5], ms(r.p50_ms));
        cell(ui, w[6], ms(r.p95_ms));
        let err_color = match r.error_percent {
            Some(e) if e > 5.0 => p.danger,
            Some(e) if e > 2.0 => p.warn,
            _ => ui.visuals().text_color(),
        };
        cell(ui, w[7], RichText::new(pct(r.error_percent)).color(err_color));
        cell(ui, w[8], pct(r.uptime_24h));
        let last = match &r.last_probe {
            _ if !r.has_key => RichText::new("no key: add one in Keys").color(p.warn),
            None => RichText::new("not probed yet").color(p.muted),
            Some(pr) if pr.ok => RichText::new(format!("{} · ok in {} ms", probe_time(pr.at, today), pr.latency_ms)),
            Some(pr) => {
                RichText::new(format!("{} · {}", probe_time(pr.at, today), if pr.message.is_empty() { "failed" } else { &pr.message }))
                    .color(p.danger)
            }
        };
        let full = last.text().to_string();
        ui.add(egui::Label::new(last).truncate()).on_hover_text(full);
    });
}

/// Below this many points a series is also drawn as markers.
const SPARSE: usize = 40;

fn charts(ui: &mut Ui, v: &HealthView, st: &mut State) {
    let p = *theme::palette(ui);
    let Some(c) = &v.chart else { return };
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("{} — latency and errors", c.label)).strong());
            ui.separator();
            for r in ChartRange::ALL {
                ui.selectable_value(&mut st.range, r, r.label());
            }
            ui.label(
                RichText::new(format!("{} sample{}", super::fmt_int(c.samples as i64), if c.samples == 1 { "" } else { "s" }))
                    .small()
                    .color(p.muted),
            );
        });
        if c.samples == 0 {
            ui.label(RichText::new("No probes or requests recorded for this account in this range yet.").color(p.muted));
        }
        // One plot id per account and range, so a new choice starts with fitting bounds.
        let key = (c.account.0, c.range.label());
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            ui.label(RichText::new("Latency (successful samples)").small().color(p.muted));
            // At least 0–100 ms, so near-instant samples never centre the axis on 0 (negative latencies).
            time_plot(("health_latency", key), Unit::Millis, 200.0).include_x(c.from).include_x(c.to).include_y(100.0).show(ui, |pl| {
                pl.add(Line::new("average", c.latency_avg.clone()).color(p.accent).width(1.8));
                pl.add(Line::new("slowest", c.latency_max.clone()).color(p.warn).style(LineStyle::dashed_loose()).width(1.0));
                // Markers keep sparse history (a few probes so far) visible.
                if c.latency_avg.len() < SPARSE {
                    pl.add(Points::new("average", c.latency_avg.clone()).color(p.accent).radius(2.5));
                }
            });
            let ui = &mut cols[1];
            ui.label(RichText::new("Error rate").small().color(p.muted));
            time_plot(("health_errors", key), Unit::Percent, 200.0).include_x(c.from).include_x(c.to).include_y(5.0).show(ui, |pl| {
                pl.add(Line::new("error rate", c.error_percent.clone()).color(p.danger).fill(0.0).fill_alpha(0.15).width(1.5));
                if c.error_percent.len() < SPARSE {
                    pl.add(Points::new("error rate", c.error_percent.clone()).color(p.danger).radius(2.5));
                }
            });
        });
    });
}

fn alerts_card(ui: &mut Ui, v: &HealthView, st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Alerts ({} open)", v.open_alerts)).strong());
            ui.separator();
            ui.selectable_value(&mut st.open_only, true, "Open");
            ui.selectable_value(&mut st.open_only, false, "All");
            ui.label(RichText::new("Unacknowledged alerts escalate one level after 15 minutes.").small().color(p.muted));
        });
        ui.add_space(theme::GAP_XS);
        if v.alerts.is_empty() {
            ui.label(RichText::new(if st.open_only { "No open alerts." } else { "No alerts yet." }).color(p.muted));
            return;
        }
        let widths = [70.0, 130.0, 120.0, 120.0, 100.0];
        ui.horizontal(|ui| {
            for (h, w) in ["Severity", "Raised", "Escalated", "State", "Actions"].iter().zip(widths) {
                cell(ui, w, RichText::new(*h).small().color(p.muted));
            }
            ui.label(RichText::new("What").small().color(p.muted));
        });
        let row_h = theme::ROW_HEIGHT + 6.0;
        egui::ScrollArea::vertical().id_salt("health_alerts").max_height(row_h * 10.0).auto_shrink([false, true]).show_rows(
            ui,
            row_h,
            v.alerts.len(),
            |ui, range| {
                for a in &v.alerts[range] {
                    alert_row(ui, a, &widths, st, cx);
                }
            },
        );
    });
}

fn alert_row(ui: &mut Ui, row: &AlertRow, w: &[f32; 5], st: &mut State, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let a = &row.alert;
    ui.horizontal(|ui| {
        ui.set_height(theme::ROW_HEIGHT);
        cell(ui, w[0], RichText::new(a.severity.as_str()).strong().color(severity_color(ui, a.severity)));
        cell(ui, w[1], when(a.raised_at));
        cell(ui, w[2], RichText::new(a.escalated_at.map(when).unwrap_or_else(|| "–".into())).color(p.muted));
        let (state, color) = match (a.resolved_at, a.acknowledged_at) {
            (Some(t), _) => (format!("resolved {}", t.format("%H:%M")), p.ok),
            (None, Some(t)) => (format!("acknowledged {}", t.format("%H:%M")), p.muted),
            (None, None) => ("open".to_string(), p.danger),
        };
        cell(ui, w[3], RichText::new(state).color(color));
        ui.allocate_ui_with_layout(egui::vec2(w[4], theme::ROW_HEIGHT), egui::Layout::left_to_right(egui::Align::Center), |ui| {
            ui.set_width(w[4]);
            if st.acting.contains(&a.id) {
                ui.spinner();
            } else if a.is_open() {
                if a.acknowledged_at.is_none()
                    && ui
                        .add(egui::Button::new("Acknowledge").small())
                        .on_hover_text("Stops its escalation; written to the audit log")
                        .clicked()
                {
                    st.acting.insert(a.id);
                    cx.send(ConsoleCommand::AcknowledgeAlert(a.id));
                }
                if a.acknowledged_at.is_some()
                    && ui.add(egui::Button::new("Resolve").small()).on_hover_text("Close it by hand; written to the audit log").clicked()
                {
                    st.acting.insert(a.id);
                    cx.send(ConsoleCommand::ResolveAlert(a.id));
                }
            }
        });
        let what = if row.subject.is_empty() {
            format!("{} — {}", a.kind.as_str().replace('_', " "), a.message)
        } else {
            format!("{}: {} — {}", row.subject, a.kind.as_str().replace('_', " "), a.message)
        };
        ui.add(egui::Label::new(what).truncate()).on_hover_text(format!("Alert {} · {}\n{}", a.id, a.condition_key, a.message));
    });
}
