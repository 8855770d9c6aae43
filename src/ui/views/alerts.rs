//! Alerts: one row per incident (an account's trouble from its first failure
//! to its recovery, with every alert it caused; expand it for them) or per
//! alert outside any incident; filters (open, severity, supplier); select
//! rows and acknowledge them together; export every alert as CSV. Uses the
//! whole height of the window. Reloads every few seconds while on screen.

use super::{Cx, empty_state, error_box, header, loading, status_dot};
use crate::console::{AlertGroup, AlertsQuery, AlertsView, Channel, ConsoleCommand, ConsoleEvent};
use crate::domain::SupplierId;
use crate::domain::health::Severity;
use crate::ui::theme;
use crate::ui::toasts::Toasts;
use chrono::{DateTime, Utc};
use egui::{Color32, RichText, Ui};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the view reloads while it is on screen.
const REFRESH: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct State {
    data: Option<Arc<AlertsView>>,
    error: Option<String>,
    pub dirty: bool,
    pub query: AlertsQuery,
    sent: Option<(AlertsQuery, Instant)>,
    /// Selected groups, by their first alert's id.
    selected: HashSet<i64>,
    /// Expanded groups, by their first alert's id.
    expanded: HashSet<i64>,
    /// A bulk acknowledge is on its way.
    acting: bool,
    /// Desktop notifications of critical alerts and wedding-day incidents:
    /// `None` where they are not available (tests), else the user's switch.
    pub notify: Option<bool>,
}

/// A group's stable key: its first alert's id.
fn key(g: &AlertGroup) -> i64 {
    g.alerts.first().map(|a| a.alert.id).unwrap_or(0)
}

impl State {
    pub fn on_event(&mut self, ev: ConsoleEvent, toasts: &mut Toasts) {
        match ev {
            ConsoleEvent::Alerts(v) => {
                let shown: HashSet<i64> = v.groups.iter().map(key).collect();
                self.selected.retain(|k| shown.contains(k));
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::AlertsAcknowledged { count } => {
                self.acting = false;
                self.selected.clear();
                toasts.info(format!("Acknowledged {count} {}", if count == 1 { "alert" } else { "alerts" }));
                self.dirty = true;
            }
            ConsoleEvent::Failed { channel: Channel::HealthWrite, .. } => {
                self.acting = false;
                self.dirty = true;
            }
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
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

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let due = st.sent.as_ref().is_none_or(|(q, at)| *q != st.query || at.elapsed() >= REFRESH);
    if st.dirty || due {
        st.dirty = false;
        st.sent = Some((st.query, Instant::now()));
        cx.send(ConsoleCommand::LoadAlerts(st.query));
    }
    ui.ctx().request_repaint_after(REFRESH);
    header(ui, "Alerts", "one row per incident: an account's trouble from its first failure to its recovery");
    let p = *theme::palette(ui);
    let data = st.data.clone();
    filters(ui, st, data.as_deref(), cx);
    if let Some(e) = &st.error {
        error_box(ui, e);
    }
    let Some(v) = data else {
        loading(ui, "Loading alerts…");
        return;
    };
    ui.label(
        RichText::new(format!(
            "{} open {} in {} open {} · failovers are alerted once they last a minute, or at once on a supplier's wedding day",
            v.open_alerts,
            if v.open_alerts == 1 { "alert" } else { "alerts" },
            v.open_incidents,
            if v.open_incidents == 1 { "incident" } else { "incidents" },
        ))
        .small()
        .color(p.muted),
    );
    if v.groups.is_empty() {
        if st.query.open_only && st.query.min_severity.is_none() && st.query.supplier.is_none() {
            empty_state(ui, "No open alerts", "Alerts appear here when a provider fails, a failover lasts, or a quota runs low.");
        } else {
            empty_state(ui, "No alert matches", "Show all alerts, or clear the severity and supplier filters.");
        }
        return;
    }
    ui.add_space(theme::GAP_XS);
    // The rest of the window: a tall list, not a card of ten rows.
    egui::ScrollArea::vertical().id_salt("alerts_groups").auto_shrink([false, false]).show(ui, |ui| {
        for g in &v.groups {
            group_row(ui, g, st);
        }
    });
}

fn filters(ui: &mut Ui, st: &mut State, v: Option<&AlertsView>, cx: &mut Cx<'_>) {
    ui.horizontal_wrapped(|ui| {
        ui.selectable_value(&mut st.query.open_only, true, "Open");
        ui.selectable_value(&mut st.query.open_only, false, "All");
        ui.separator();
        let sev = |s: Option<Severity>| match s {
            None => "Any severity",
            Some(Severity::Info) => "Info and up",
            Some(Severity::Warning) => "Warning and up",
            Some(Severity::Critical) => "Critical only",
        };
        let l = ui.label("Severity");
        egui::ComboBox::from_id_salt("alerts_severity")
            .selected_text(sev(st.query.min_severity))
            .show_ui(ui, |ui| {
                for s in [None, Some(Severity::Warning), Some(Severity::Critical)] {
                    ui.selectable_value(&mut st.query.min_severity, s, sev(s));
                }
            })
            .response
            .labelled_by(l.id);
        let suppliers: &[(SupplierId, String)] = v.map(|v| v.suppliers.as_slice()).unwrap_or(&[]);
        let current = st
            .query
            .supplier
            .map(|id| suppliers.iter().find(|(s, _)| *s == id).map(|(_, n)| n.clone()).unwrap_or_else(|| format!("supplier {id}")))
            .unwrap_or_else(|| "All suppliers".into());
        let l = ui.label("Supplier");
        egui::ComboBox::from_id_salt("alerts_supplier")
            .selected_text(current)
            .width(220.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut st.query.supplier, None, "All suppliers");
                for (id, name) in suppliers {
                    ui.selectable_value(&mut st.query.supplier, Some(*id), name);
                }
            })
            .response
            .labelled_by(l.id);
        ui.separator();
        let groups: &[AlertGroup] = v.map(|v| v.groups.as_slice()).unwrap_or(&[]);
        let ackable: Vec<i64> = groups.iter().filter(|g| !g.to_acknowledge().is_empty()).map(key).collect();
        if ui.add_enabled(!ackable.is_empty(), egui::Button::new("Select all")).clicked() {
            st.selected = ackable.into_iter().collect();
        }
        let ids: Vec<i64> = groups.iter().filter(|g| st.selected.contains(&key(g))).flat_map(|g| g.to_acknowledge()).collect::<Vec<_>>();
        let label = format!("Acknowledge selected ({})", ids.len());
        if st.acting {
            ui.spinner();
        } else if ui
            .add_enabled(!ids.is_empty(), egui::Button::new(label))
            .on_hover_text("Acknowledges every open alert of the selected rows; each is written to the audit log and stops escalating")
            .clicked()
        {
            st.acting = true;
            cx.send(ConsoleCommand::AcknowledgeAlerts(ids));
        }
        if let Some(on) = st.notify.as_mut()
            && ui
                .checkbox(on, "Desktop notifications")
                .on_hover_text("Critical alerts and wedding-day incidents pop up on the desktop; remembered")
                .changed()
        {
            cx.send(ConsoleCommand::SetDesktopNotifications(*on));
        }
        if ui
            .button("Export CSV")
            .on_hover_text(format!("Writes every alert to a new CSV file in {}", super::export::default_export_dir().display()))
            .clicked()
        {
            cx.send(ConsoleCommand::ExportAlerts(super::export::default_export_dir()));
        }
    });
}

fn group_row(ui: &mut Ui, g: &AlertGroup, st: &mut State) {
    let p = *theme::palette(ui);
    let k = key(g);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            let mut sel = st.selected.contains(&k);
            let can = !g.to_acknowledge().is_empty();
            if ui.add_enabled(can, egui::Checkbox::without_text(&mut sel)).on_hover_text("Select to acknowledge").changed() {
                if sel {
                    st.selected.insert(k);
                } else {
                    st.selected.remove(&k);
                }
            }
            status_dot(ui, severity_color(ui, g.severity));
            ui.label(RichText::new(g.severity.as_str()).strong().color(severity_color(ui, g.severity)));
            let kind = if g.incident.is_some() { "Incident" } else { "Alert" };
            ui.label(RichText::new(kind).strong());
            let (state, color) = match (g.resolved_at, g.acknowledged) {
                (Some(t), _) => (format!("over {}", when(t)), p.ok),
                (None, true) => ("acknowledged".to_string(), p.muted),
                (None, false) => ("open".to_string(), p.danger),
            };
            ui.label(RichText::new(state).color(color));
            ui.label(RichText::new(format!("since {}", when(g.started_at))).color(p.muted));
            let n = g.alerts.len();
            if n > 1 || g.incident.is_some() {
                let open = st.expanded.contains(&k);
                let text = format!("{} {n} {}", if open { "Hide" } else { "Show" }, if n == 1 { "alert" } else { "alerts" });
                if ui.small_button(text).clicked() {
                    if open {
                        st.expanded.remove(&k);
                    } else {
                        st.expanded.insert(k);
                    }
                }
            }
        });
        ui.add(egui::Label::new(RichText::new(&g.title).strong()).wrap());
        if !g.suppliers.is_empty() {
            ui.label(RichText::new(format!("Suppliers: {}", g.suppliers.join(", "))).small().color(p.muted));
        }
        if st.expanded.contains(&k) {
            ui.add_space(theme::GAP_XS);
            for a in &g.alerts {
                let a = &a.alert;
                ui.horizontal(|ui| {
                    ui.label(RichText::new(when(a.raised_at)).small().color(p.muted));
                    ui.label(RichText::new(a.severity.as_str()).small().color(severity_color(ui, a.severity)));
                    let state = match (a.resolved_at, a.acknowledged_at) {
                        (Some(_), _) => "resolved",
                        (None, Some(_)) => "acknowledged",
                        (None, None) => "open",
                    };
                    ui.label(RichText::new(state).small().color(p.muted));
                    ui.add(egui::Label::new(RichText::new(&a.message).small()).wrap())
                        .on_hover_text(format!("Alert {} · {}", a.id, a.condition_key));
                });
            }
        }
    });
    ui.add_space(theme::GAP_XS);
}
