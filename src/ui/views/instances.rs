//! Instances: the `serve` instances on the fleet's PostgreSQL database —
//! host, version, when each started and was last seen, its requests per
//! second, live / gone / stopped — and which one leads health probes,
//! migrations and alert escalation. Refreshed every second while shown.
//! Below, the quota leases of gone instances that still hold quota, each of
//! which an account manager can write off (with a reason, audited). On a
//! SQLite file it says there is no fleet and how to make one.

use super::{Cx, ago, empty_state, error_box, header, loading, metric_card, status_dot};
use crate::console::{ConsoleCommand, ConsoleEvent, Duty, InstanceLine, InstanceState, InstancesView, LeaderLine, StrandedLease};
use crate::ui::theme;
use egui::{Align, Layout, RichText, Ui, vec2};
use std::sync::Arc;

#[derive(Default)]
pub struct State {
    /// Also list instances last seen more than a day ago.
    pub all: bool,
    data: Option<Arc<InstancesView>>,
    error: Option<String>,
    pub dirty: bool,
    sent: Option<bool>,
    /// The lease being written off, and the reason typed so far.
    writing_off: Option<(StrandedLease, String)>,
}

impl State {
    pub fn on_event(&mut self, ev: ConsoleEvent) {
        match ev {
            ConsoleEvent::Instances(v) => {
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }
}

fn duty_name(d: Duty) -> &'static str {
    match d {
        Duty::Probes => "Health probes",
        Duty::Migrations => "Migrations",
        Duty::Alerts => "Alert escalation",
    }
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    header(ui, "Instances", "the gateways serving this database, and who leads each duty");
    if st.dirty || st.sent != Some(st.all) {
        st.dirty = false;
        st.sent = Some(st.all);
        cx.send(ConsoleCommand::LoadInstances { all: st.all });
    }
    if let Some(e) = &st.error {
        error_box(ui, e);
    }
    let Some(v) = st.data.clone() else {
        loading(ui, "Reading the fleet's instances…");
        return;
    };
    if !v.fleet {
        empty_state(
            ui,
            "One machine: this database is a SQLite file",
            "Requests are routed by one 'switchboard serve' (or this console's own switch on the Overview). \
             To run several gateways behind a load balancer, move the installation to PostgreSQL \
             ('switchboard store copy') and start each instance with --database postgres://… (docs/deploy.md).",
        );
        return;
    }
    let live = v.instances.iter().filter(|i| i.state == InstanceState::Live).count();
    let rps: f64 = v.instances.iter().filter(|i| i.state == InstanceState::Live).map(|i| i.requests_per_second).sum();
    ui.horizontal_wrapped(|ui| {
        metric_card(ui, 150.0, "Live instances", &live.to_string(), &format!("of {} listed", v.instances.len()));
        metric_card(ui, 150.0, "Requests / s", &format!("{rps:.1}"), "the live instances together");
        for l in &v.leaders {
            leader_card(ui, l);
        }
    });
    ui.add_space(theme::GAP_M);
    ui.horizontal(|ui| {
        ui.checkbox(&mut st.all, "Show instances last seen more than a day ago")
            .on_hover_text("Stopped and gone instances are listed for a day after they were last seen");
        if v.older > 0 && !st.all {
            ui.label(RichText::new(format!("({} older)", v.older)).color(theme::palette(ui).muted));
        }
    });
    if v.instances.is_empty() {
        empty_state(
            ui,
            "No instance has run here in the last day",
            "Start one on a server: switchboard --database postgres://… serve --fleet-dir DIR (docs/deploy.md).",
        );
        return;
    }
    table(ui, &v);
    stranded(ui, st, &v, cx);
}

/// The leases of gone instances that still hold quota, with "Write off…".
fn stranded(ui: &mut Ui, st: &mut State, v: &InstancesView, cx: &mut Cx<'_>) {
    if v.stranded.is_empty() {
        return;
    }
    let p = *theme::palette(ui);
    ui.add_space(theme::GAP_L);
    ui.label(RichText::new(format!("Quota held by gone instances ({})", v.stranded.len())).strong());
    ui.label(
        RichText::new(
            "These leases ended with tokens not folded into the ledger: they count against the supplier's quota until the \
             instance restarts on its host (its journal is then folded) or they are written off.",
        )
        .color(p.muted),
    );
    for l in &v.stranded {
        ui.horizontal(|ui| {
            status_dot(ui, p.warn);
            ui.label(RichText::new(&l.supplier_name).strong());
            ui.label(format!(
                "{} · instance #{} · {} tokens · ended {}",
                l.month.format("%Y-%m"),
                l.instance,
                super::fmt_int(l.outstanding),
                ago(l.ended_at, v.at)
            ));
            if ui
                .button("Write off…")
                .on_hover_text("The tokens stop counting against the quota; the audit log keeps who and why")
                .clicked()
            {
                st.writing_off = Some((l.clone(), String::new()));
            }
        });
    }
    write_off_dialog(ui.ctx(), st, cx);
}

fn write_off_dialog(ctx: &egui::Context, st: &mut State, cx: &mut Cx<'_>) {
    let Some((lease, reason)) = st.writing_off.as_mut() else { return };
    let mut close = false;
    egui::Modal::new(egui::Id::unique("write_off_lease")).show(ctx, |ui| {
        ui.set_width(480.0);
        ui.label(RichText::new(format!("Write off instance #{}'s lease on {}?", lease.instance, lease.supplier_name)).strong().size(16.0));
        ui.label(format!(
            "{} tokens of {} stop counting against the quota. If that instance's usage is folded later, it still counts, once.",
            super::fmt_int(lease.outstanding),
            lease.month.format("%B %Y")
        ));
        ui.add_space(theme::GAP_S);
        super::text_field(ui, "Reason", reason, "e.g. host decommissioned, journal lost", 300.0);
        ui.add_space(theme::GAP_S);
        ui.horizontal(|ui| {
            let ok = !reason.trim().is_empty();
            if ui.add_enabled(ok, egui::Button::new(RichText::new("Write off").color(theme::palette(ui).danger))).clicked() {
                cx.send(ConsoleCommand::WriteOffLease {
                    supplier: lease.supplier,
                    month: lease.month,
                    instance: lease.instance,
                    reason: reason.trim().to_string(),
                });
                close = true;
            }
            if ui.button("Cancel").clicked() {
                close = true;
            }
        });
    });
    if close {
        st.writing_off = None;
    }
}

fn leader_card(ui: &mut Ui, l: &LeaderLine) {
    let (value, note) = match (&l.instance, l.expires_at) {
        (Some((id, host)), Some(_)) => (format!("#{id}"), format!("{host} · epoch {}", l.epoch.unwrap_or(0))),
        (Some((id, host)), None) => (format!("#{id}"), host.clone()),
        (None, Some(_)) => ("none".into(), "the last leader's lease ran out; a live instance takes over within seconds".into()),
        (None, None) => ("none".into(), "no instance has led it yet".into()),
    };
    metric_card(ui, 190.0, duty_name(l.duty), &value, &note);
}

fn table(ui: &mut Ui, v: &InstancesView) {
    let p = *theme::palette(ui);
    const COLS: [(&str, f32); 8] = [
        ("", 14.0),
        ("ID", 50.0),
        ("Host", 180.0),
        ("PID", 70.0),
        ("Version", 80.0),
        ("State", 70.0),
        ("Req/s", 70.0),
        ("Started (UTC)", 150.0),
    ];
    let last_w = 110.0;
    let leads_w = (ui.available_width() - COLS.iter().map(|c| c.1 + theme::GAP_S).sum::<f32>() - last_w - theme::GAP_S).max(140.0);
    let widths: Vec<f32> = COLS.iter().map(|c| c.1).chain([last_w, leads_w]).collect();
    let heads: Vec<&str> = COLS.iter().map(|c| c.0).chain(["Last seen", "Leads"]).collect();
    row(ui, &widths, heads.iter().map(|h| RichText::new(*h).strong().color(p.muted)).collect(), None, false);
    ui.separator();
    for (i, inst) in v.instances.iter().enumerate() {
        let (color, state) = match inst.state {
            InstanceState::Live => (p.ok, "live"),
            InstanceState::Gone => (p.danger, "gone"),
            InstanceState::Stopped => (p.muted, "stopped"),
        };
        let leads = if inst.leads.is_empty() {
            RichText::new("—").color(p.muted)
        } else {
            RichText::new(inst.leads.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")).strong()
        };
        let cells = vec![
            RichText::new(""),
            RichText::new(format!("#{}", inst.id)).monospace(),
            RichText::new(&inst.host),
            RichText::new(inst.pid.to_string()).monospace(),
            RichText::new(&inst.version),
            RichText::new(state).color(color),
            RichText::new(format!("{:.1}", inst.requests_per_second)).monospace(),
            RichText::new(inst.started_at.format("%Y-%m-%d %H:%M:%S").to_string()).monospace(),
            RichText::new(ago(inst.last_seen, v.at)),
            leads,
        ];
        let r = row(ui, &widths, cells, Some(color), i % 2 == 1);
        r.on_hover_text(hover(inst));
    }
}

fn hover(i: &InstanceLine) -> String {
    match i.state {
        InstanceState::Live => format!("{} (pid {}) heartbeats every few seconds", i.host, i.pid),
        InstanceState::Gone => format!(
            "No heartbeat since {}: killed, hung or cut off from the database. Its leader leases and quota leases expire; \
             its usage journal is folded when it restarts on the same --fleet-dir.",
            i.last_seen.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        InstanceState::Stopped => "Stopped cleanly: its journal was folded and its unused quota returned.".into(),
    }
}

/// One table row; `dot` draws a state dot in the first column.
fn row(ui: &mut Ui, widths: &[f32], cells: Vec<RichText>, dot: Option<egui::Color32>, stripe: bool) -> egui::Response {
    let (rect, resp) = ui.allocate_exact_size(vec2(ui.available_width(), theme::ROW_HEIGHT), egui::Sense::hover());
    if stripe {
        ui.painter().rect_filled(rect, 4.0, theme::palette(ui).stripe);
    }
    let mut x = rect.left();
    for (n, (text, w)) in cells.into_iter().zip(widths.iter().copied()).enumerate() {
        let cr = egui::Rect::from_min_size(egui::pos2(x + 2.0, rect.top()), vec2(w - 4.0, theme::ROW_HEIGHT));
        ui.scope_builder(egui::UiBuilder::new().max_rect(cr).layout(Layout::left_to_right(Align::Center)), |ui| {
            if n == 0 {
                if let Some(c) = dot {
                    status_dot(ui, c);
                }
            } else {
                ui.add(egui::Label::new(text).truncate());
            }
        });
        x += w + theme::GAP_S;
    }
    resp
}
