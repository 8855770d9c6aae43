//! Overview: requests and cost today and month to date, the last 30 days of
//! traffic, the week's weddings and the suppliers they affect, the provider
//! accounts, and the suppliers nearest their platform quota; the console's
//! routing switch (in the first-run checklist's step 4, or on its own card).
//! When the console routes (its switch, or demo mode), a live strip on top:
//! requests and cost today as they happen, every account's breaker, failover
//! events and the last requests.

use super::charts::{Unit, date_plot};
use super::{Cx, Goto, empty_state, error_box, fmt_count, fmt_int, fmt_money, fmt_money_card, header, loading, metric_card, quota_bar};
use crate::console::{AccountSummary, BreakerView, Channel, ConsoleCommand, ConsoleEvent, LiveSnapshot, Overview};
use crate::ui::theme;
use egui::{RichText, Ui};
use std::sync::Arc;

#[derive(Default)]
pub struct State {
    data: Option<Arc<Overview>>,
    error: Option<String>,
    pub dirty: bool,
    requested: bool,
    live: Option<Arc<LiveSnapshot>>,
    live_error: Option<String>,
    /// When the checklist last asked for a fresh Overview.
    polled: Option<std::time::Instant>,
    /// The checklist was shown unfinished: once complete it stays, ticked, until hidden.
    checklist_seen: bool,
    checklist_hidden: bool,
}

impl State {
    /// The console's own routing started or stopped: the checklist and the live strip follow.
    pub fn routing_changed(&mut self, on: bool) {
        self.dirty = true;
        if !on {
            self.live = None;
            self.live_error = None;
        }
    }

    pub fn on_event(&mut self, ev: ConsoleEvent) {
        match ev {
            ConsoleEvent::Overview(o) => {
                self.requested = false;
                self.data = Some(o);
                self.error = None;
            }
            ConsoleEvent::Live(l) => {
                self.live = Some(l);
                self.live_error = None;
            }
            ConsoleEvent::Failed { channel: Channel::Live, message } => self.live_error = Some(message),
            ConsoleEvent::Failed { message, .. } => {
                self.requested = false;
                self.error = Some(message);
            }
            _ => {}
        }
    }
}

pub fn show(ui: &mut Ui, st: &mut State, routing: &mut super::routing::State, cx: &mut Cx<'_>) {
    if (st.data.is_none() && st.error.is_none() || st.dirty) && !st.requested {
        st.dirty = false;
        st.requested = true;
        cx.send(ConsoleCommand::LoadOverview);
    }
    header(ui, "Overview", "today, this month and this week");
    if let Some(e) = &st.error {
        error_box(ui, e);
    }
    let Some(o) = st.data.clone() else {
        loading(ui, "Loading today's figures…");
        return;
    };
    let complete = o.getting_started.complete();
    st.checklist_seen |= !complete;
    if !complete || st.checklist_seen && !st.checklist_hidden {
        // A first run: the checklist leads; the Overview reloads while it waits for the database to say a step is done.
        let available = routing.available;
        let mut switch = |ui: &mut Ui| super::routing::switch(ui, routing, cx);
        let (waits, hide) =
            super::getting_started::checklist(ui, &o.getting_started, available.then_some(&mut switch as &mut dyn FnMut(&mut Ui)));
        st.checklist_hidden |= hide;
        if waits {
            let now = std::time::Instant::now();
            if st.polled.is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(2)) {
                if st.polled.is_some() {
                    st.dirty = true;
                }
                st.polled = Some(now);
            }
            ui.ctx().request_repaint_after(std::time::Duration::from_secs(2));
        }
        ui.add_space(theme::GAP_M);
    } else if routing.available {
        theme::card(ui).show(ui, |ui| {
            ui.set_width(ui.available_width());
            super::routing::switch(ui, routing, cx);
        });
        ui.add_space(theme::GAP_M);
    }
    if o.suppliers == 0 {
        empty_state(
            ui,
            "No suppliers yet",
            "Add one in Suppliers (or with `switchboard supplier add`), or try `switchboard --demo` for a database full of history.",
        );
        return;
    }
    egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        if let Some(e) = &st.live_error {
            error_box(ui, e);
        }
        if let Some(l) = st.live.clone() {
            live_section(ui, &l);
            ui.add_space(theme::GAP_M);
        }
        let gap = theme::GAP_M;
        // While live, today's cards follow the live counters.
        let mut o = o.clone();
        if let Some(l) = &st.live {
            let o2 = Arc::make_mut(&mut o);
            let t = &l.today;
            // This month before today, plus today as the live counters see it.
            o2.month_totals = o2.month_totals.minus(&o2.today_totals);
            o2.month_totals.add(t);
            o2.today_totals = *t;
        }
        let w = ((ui.available_width() - 4.0 * gap) / 5.0 - 2.0 * theme::GAP_M - 2.0).max(110.0);
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = gap;
            let error_note = |t: &crate::domain::UsageTotals| {
                if t.requests == 0 {
                    "no requests".to_string()
                } else {
                    format!("{:.1} % errors", t.errors as f64 * 100.0 / t.requests as f64)
                }
            };
            metric_card(ui, w, "Requests today", &fmt_count(o.today_totals.requests), &error_note(&o.today_totals));
            metric_card(ui, w, "Cost today", &fmt_money_card(o.today_totals.cost.0), &o.today.format("%a %d %b %Y").to_string());
            metric_card(ui, w, "Requests this month", &fmt_count(o.month_totals.requests), &error_note(&o.month_totals));
            metric_card(
                ui,
                w,
                "Cost this month",
                &fmt_money(o.month_totals.cost.0),
                &format!("{} tokens", super::fmt_compact(o.month_totals.tokens() as f64)),
            );
            metric_card(
                ui,
                w,
                "Suppliers",
                &fmt_int(o.suppliers as i64),
                &format!("{} on client AI, {} on platform", o.client_mode, o.suppliers - o.client_mode),
            );
        });
        ui.add_space(gap);
        ui.columns(2, |cols| {
            let left = &mut cols[0];
            theme::card(left).show(left, |ui| {
                ui.label(RichText::new("Requests, last 30 days").strong());
                let color = theme::palette(ui).accent;
                // Headroom above the highest day, so the legend (top left) never covers the line.
                let top = o.last_30_days.iter().map(|pt| pt[1]).fold(0.0_f64, f64::max);
                date_plot("overview_trend", Unit::Count, 200.0).include_y(top * 1.3).show(ui, |p| {
                    p.add(egui_plot::Line::new("requests", o.last_30_days.clone()).color(color).fill(0.0).fill_alpha(0.15));
                });
            });
            left.add_space(gap);
            theme::card(left).show(left, |ui| {
                ui.label(RichText::new("Nearest their platform quota this month").strong());
                ui.add_space(theme::GAP_XS);
                if o.near_quota.is_empty() {
                    ui.label(RichText::new("No platform supplier has used any quota this month.").color(theme::palette(ui).muted));
                }
                egui::Grid::new("near_quota").num_columns(3).spacing([theme::GAP_M, 4.0]).show(ui, |ui| {
                    for r in &o.near_quota {
                        if ui.link(&r.name).on_hover_text("Open in Suppliers").clicked() {
                            cx.goto = Some(Goto::Supplier(r.id));
                        }
                        ui.label(RichText::new(r.tier.as_str()).color(theme::palette(ui).muted));
                        if quota_bar(ui, 160.0, r.quota_percent())
                            .on_hover_text(format!("{} of {} tokens", fmt_int(r.quota.used as i64), fmt_int(r.quota.quota as i64)))
                            .clicked()
                        {
                            cx.goto = Some(Goto::Quota(r.id));
                        }
                        ui.end_row();
                    }
                });
            });
            let right = &mut cols[1];
            theme::card(right).show(right, |ui| {
                ui.set_width(ui.available_width());
                let n: usize = o.weddings_this_week.iter().map(|d| d.suppliers.len()).sum();
                ui.label(RichText::new(format!("Weddings this week ({n})")).strong());
                ui.label(
                    RichText::new("On a wedding day the supplier's requests get priority and stricter health thresholds.")
                        .small()
                        .color(theme::palette(ui).muted),
                );
                ui.add_space(theme::GAP_XS);
                if o.weddings_this_week.is_empty() {
                    ui.label(RichText::new("No weddings in the next seven days.").color(theme::palette(ui).muted));
                }
                egui::ScrollArea::vertical().id_salt("week").max_height(230.0).show(ui, |ui| {
                    for day in &o.weddings_this_week {
                        ui.label(RichText::new(format!("{} · {}", day.day.format("%A %d %b"), day.suppliers.len())).strong());
                        ui.horizontal_wrapped(|ui| {
                            for w in &day.suppliers {
                                let vt = w.vendor_type.map(|v| v.as_str()).unwrap_or("");
                                if ui
                                    .link(&w.supplier_name)
                                    .on_hover_text(format!("{vt}, {}", w.tier.map(|t| t.as_str()).unwrap_or("")))
                                    .clicked()
                                {
                                    cx.goto = Some(Goto::Supplier(w.supplier_id));
                                }
                            }
                        });
                        ui.add_space(theme::GAP_XS);
                    }
                });
            });
            right.add_space(gap);
            theme::card(right).show(right, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new("Provider accounts").strong());
                ui.add_space(theme::GAP_XS);
                accounts_grid(ui, "platform_accounts", &o.platform_accounts);
                ui.add_space(theme::GAP_S);
                let text: Vec<String> = o.client_accounts_by_provider.iter().map(|(p, n)| format!("{} {}", n, p.display_name())).collect();
                ui.label(RichText::new(if text.is_empty() {
                    "No supplier-owned accounts yet.".to_string()
                } else {
                    format!("Supplier-owned accounts: {}", text.join(" · "))
                }));
            });
        });
    });
}

/// Accounts with masked fingerprints and validation state.
pub fn accounts_grid(ui: &mut Ui, id: &str, accounts: &[AccountSummary]) {
    let p = theme::palette(ui);
    if accounts.is_empty() {
        ui.label(RichText::new("No accounts.").color(p.muted));
        return;
    }
    egui::Grid::new(id).num_columns(4).spacing([theme::GAP_M, 4.0]).striped(true).show(ui, |ui| {
        for h in ["Account", "Provider", "Key", "Validation"] {
            ui.label(RichText::new(h).small().color(p.muted));
        }
        ui.end_row();
        for a in accounts {
            ui.label(&a.label);
            ui.label(a.provider.display_name());
            match a.fingerprint.as_deref() {
                Some(f) => ui.monospace(f),
                None => ui.colored_label(p.muted, "no key stored"),
            };
            let (text, color) = match a.validation {
                Some(crate::domain::ValidationStatus::Valid) => ("valid".to_string(), p.ok),
                Some(v) => (v.as_str().replace('_', " "), p.danger),
                None => ("not validated".to_string(), p.muted),
            };
            ui.label(RichText::new(if a.enabled { text } else { format!("{text} (disabled)") }).color(color));
            ui.end_row();
        }
    });
}

/// The live strip: gateway, today's counters, breakers, events and the last requests.
fn live_section(ui: &mut Ui, l: &LiveSnapshot) {
    let p = theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            super::status_dot(ui, p.ok);
            ui.label(RichText::new("Live").strong().color(p.ok));
            if l.demo {
                ui.label(RichText::new("Demo mode — simulator keys in memory").strong().color(p.warn));
            }
            match &l.gateway_url {
                Some(url) => {
                    ui.label(RichText::new("Gateway").color(p.muted));
                    ui.add(egui::Label::new(RichText::new(url).monospace()).selectable(true))
                        .on_hover_text("OpenAI-compatible: POST /chat/completions and /embeddings with a supplier's gateway token");
                }
                None => {
                    ui.label(RichText::new("no gateway in this console").color(p.muted));
                }
            }
            ui.separator();
            ui.label(RichText::new(format!(
                "Today: {} requests · {} · {} errors",
                fmt_count(l.today.requests),
                fmt_money_card(l.today.cost.0),
                fmt_count(l.today.errors)
            )));
        });
        ui.add_space(theme::GAP_S);
        ui.columns(3, |cols| {
            let ui = &mut cols[0];
            let open = l.accounts.iter().filter(|a| a.breaker != BreakerView::Closed).count();
            ui.label(RichText::new(format!("Breakers ({}, {open} not closed)", super::plural(l.accounts.len(), "account"))).strong());
            egui::ScrollArea::vertical().id_salt("live_breakers").max_height(200.0).show(ui, |ui| {
                for a in &l.accounts {
                    let (text, color) = match a.breaker {
                        BreakerView::Closed => ("closed".to_string(), p.ok),
                        BreakerView::Open { held: true, .. } => ("open (down)".to_string(), p.danger),
                        BreakerView::Open { secs_left, .. } => (format!("open · {secs_left} s"), p.danger),
                        BreakerView::HalfOpen => ("half-open".to_string(), p.warn),
                    };
                    ui.horizontal(|ui| {
                        super::status_dot(ui, color);
                        let w = (ui.available_width() - 96.0).max(60.0);
                        super::cell(ui, w, &a.label).on_hover_text(format!("{} · {} — breaker {text}", a.provider.display_name(), a.owner));
                        ui.label(RichText::new(text).color(color));
                    });
                }
            });
            let ui = &mut cols[1];
            ui.label(RichText::new("Breaker and failover events").strong());
            if l.events.is_empty() {
                ui.label(RichText::new("None yet: breakers open and failovers start when a provider fails.").color(p.muted));
            }
            egui::ScrollArea::vertical().id_salt("live_events").max_height(200.0).show(ui, |ui| {
                for e in &l.events {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new(e.at.format("%H:%M:%S").to_string()).monospace().color(p.muted));
                        ui.label(RichText::new(&e.text).color(if e.bad { p.danger } else { p.ok }));
                    });
                }
            });
            let ui = &mut cols[2];
            ui.label(RichText::new("Last requests").strong());
            if l.recent.is_empty() {
                ui.label(RichText::new("No requests through the router yet.").color(p.muted));
            }
            egui::ScrollArea::vertical().id_salt("live_recent").max_height(200.0).show(ui, |ui| {
                for r in &l.recent {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(r.at.format("%H:%M:%S").to_string()).monospace().color(p.muted));
                        super::status_dot(ui, if r.ok { p.ok } else { p.danger });
                        let model = if r.model.is_empty() { "refused" } else { r.model.as_str() };
                        ui.add(egui::Label::new(format!("{} · {model} · {}", r.supplier, r.route.as_str())).truncate()).on_hover_text(
                            format!(
                                "{} · {} · {} · {} ms · {}{}",
                                r.request_type.as_str(),
                                r.route.as_str(),
                                r.status.as_str(),
                                r.latency_ms,
                                fmt_money(r.cost_micros),
                                if r.estimated { " · tokens estimated" } else { "" }
                            ),
                        );
                    });
                }
            });
        });
    });
}
