//! Quotas: one supplier's platform-token use, cumulative within each month,
//! against its monthly quota line over the last twelve months (the line steps
//! up ×1.5 in the March–October season), its daily use as bars, and a tier
//! overview of how many suppliers sit near or over their quota.

use super::charts::{Unit, category_plot, date_plot, fit_labels, legend_row};
use super::picker::Picker;
use super::{Cx, Goto, empty_state, error_box, fmt_int, header, loading, quota_bar};
use crate::console::{ConsoleCommand, ConsoleEvent, ProjectionsView, QUOTA_BANDS, QuotaQuery, QuotaView};
use crate::domain::SupplierId;
use crate::ui::theme;
use egui::{RichText, Ui};
use egui_plot::{Bar, BarChart, Line, LineStyle};
use std::sync::Arc;

#[derive(Default)]
pub struct State {
    data: Option<Arc<QuotaView>>,
    error: Option<String>,
    pub dirty: bool,
    supplier: Option<SupplierId>,
    sent: Option<QuotaQuery>,
    picker: Picker,
    /// The month-end projection (the same one Usage & cost shows), as of today.
    projections: Option<Arc<ProjectionsView>>,
    projections_sent: Option<chrono::NaiveDate>,
    /// Why the last projection failed (shown instead of waiting for it).
    projections_error: Option<String>,
}

impl State {
    pub fn on_event(&mut self, ev: ConsoleEvent) {
        match ev {
            ConsoleEvent::Quota(v) => {
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }

    pub fn on_projections(&mut self, v: Arc<ProjectionsView>) {
        self.projections = Some(v);
        self.projections_error = None;
    }

    /// The projection both views share failed.
    pub fn on_projections_failed(&mut self, message: &str) {
        self.projections_error = Some(message.to_string());
    }

    pub fn select(&mut self, id: SupplierId) {
        self.supplier = Some(id);
    }
}

const MONTHS: u32 = 12;

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let q = QuotaQuery { supplier: st.supplier, months: MONTHS, max_points: ui.available_width().max(200.0) as usize };
    // Width changes by a few pixels do not need a new query.
    let changed = st.sent.is_none_or(|s| s.supplier != q.supplier || s.max_points.abs_diff(q.max_points) > 200);
    let today = cx.handle.today();
    if st.dirty || st.projections_sent != Some(today) {
        let have = st.projections.as_ref().is_some_and(|p| p.as_of == today);
        if st.dirty || !have {
            cx.send(ConsoleCommand::LoadProjections { as_of: today });
        }
        st.projections_sent = Some(today);
    }
    if st.dirty || changed {
        st.dirty = false;
        st.sent = Some(q);
        cx.send(ConsoleCommand::LoadQuota(q));
    }
    header(ui, "Quotas", "platform AI tokens against each tier's monthly quota (×1.5 from March to October)");
    ui.horizontal(|ui| {
        let picked = st.picker.show(ui, "Show supplier", "type a name, vendor type, tier or ID", 280.0, &cx.picks.suppliers);
        if let Some(k) = picked.chosen {
            st.supplier = Some(SupplierId(k));
        }
        let p = theme::palette(ui);
        if st.supplier.is_none() {
            ui.label(RichText::new("showing the supplier nearest its quota").small().color(p.muted));
        } else if ui.button("Nearest its quota").on_hover_text("Show the platform supplier nearest its quota again").clicked() {
            st.supplier = None;
            st.picker.clear();
        }
    });
    ui.add_space(theme::GAP_S);
    if let Some(e) = &st.error {
        error_box(ui, e);
    }
    let Some(v) = st.data.clone() else {
        loading(ui, "Loading quotas…");
        return;
    };
    let p = *theme::palette(ui);
    egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        match &v.chart {
            None => empty_state(
                ui,
                "No supplier on platform AI",
                "Quotas apply to platform AI; add a supplier on the platform mode in Suppliers.",
            ),
            Some(c) => {
                theme::card(ui).show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(&c.row.name).size(16.0).strong());
                        ui.label(
                            RichText::new(format!("{} · {} tier · {} AI", c.row.vendor_type, c.row.tier, c.row.ai_mode)).color(p.muted),
                        );
                        quota_bar(ui, 180.0, c.row.quota_percent());
                        ui.label(
                            RichText::new(format!(
                                "{} of {} tokens this month",
                                fmt_int(c.row.quota.used as i64),
                                fmt_int(c.row.quota.quota as i64)
                            ))
                            .color(p.muted),
                        );
                        if ui.link("Open supplier").clicked() {
                            cx.goto = Some(Goto::Supplier(c.row.id));
                        }
                    });
                    ui.label(RichText::new("Month-to-date usage against the monthly quota, last 12 months").strong());
                    date_plot("quota_cumulative", Unit::Tokens, theme::CHART_HEIGHT).show(ui, |pl| {
                        pl.add(
                            Line::new("monthly quota", c.quota_line.clone()).color(p.danger).style(LineStyle::dashed_loose()).width(1.5),
                        );
                        pl.add(Line::new("used this month", c.cumulative.clone()).color(p.accent).fill(0.0).fill_alpha(0.12).width(2.0));
                    });
                    ui.add_space(theme::GAP_S);
                    ui.label(RichText::new("Platform tokens per day").strong());
                    let bars: Vec<Bar> = c.daily.iter().map(|d| Bar::new(d[0], d[1]).width(0.8).fill(p.accent)).collect();
                    date_plot("quota_daily", Unit::Tokens, 150.0).show(ui, |pl| {
                        pl.add(BarChart::new("tokens per day", bars).color(p.accent));
                    });
                });
            }
        }
        ui.add_space(theme::GAP_M);
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            theme::card(ui).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new("Platform suppliers by quota use, per tier (this month)").strong());
                let labels: Vec<String> =
                    v.tiers.iter().map(|t| format!("{} ({})", t.tier, super::fmt_compact(t.quota_tokens as f64))).collect();
                let colors = [p.ok, p.ok.gamma_multiply(0.6), p.warn.gamma_multiply(0.7), p.warn, p.danger];
                let legend: Vec<(&str, egui::Color32)> = QUOTA_BANDS.iter().copied().zip(colors).collect();
                legend_row(ui, &legend);
                let labels = fit_labels(&labels, ui.available_width());
                category_plot("tier_bands", Unit::Count, 220.0, labels).show(ui, |pl| {
                    let mut below: Vec<BarChart> = Vec::new();
                    for (b, name) in QUOTA_BANDS.iter().enumerate() {
                        let bars: Vec<Bar> = v
                            .tiers
                            .iter()
                            .enumerate()
                            .map(|(i, t)| Bar::new(i as f64, t.bands[b] as f64).width(0.6).fill(colors[b]))
                            .collect();
                        let refs: Vec<&BarChart> = below.iter().collect();
                        let chart = BarChart::new(*name, bars).color(colors[b]).stack_on(&refs);
                        below.push(chart);
                    }
                    for c in below {
                        pl.add(c);
                    }
                });
            });
            let ui = &mut cols[1];
            theme::card(ui).show(ui, |ui| {
                ui.set_width(ui.available_width());
                projected_card(ui, st, today);
                ui.add_space(theme::GAP_S);
                ui.label(RichText::new(format!("Near or over quota now ({})", v.near.len())).strong());
                ui.label(RichText::new("From 90 % Switchboard alerts and recommends client AI.").small().color(p.muted));
                if v.near.is_empty() {
                    ui.label(RichText::new("Every platform supplier is below 75 % of its quota.").color(p.muted));
                }
                egui::ScrollArea::vertical().id_salt("near").max_height(200.0).show(ui, |ui| {
                    egui::Grid::new("near_grid").num_columns(3).spacing([theme::GAP_M, 4.0]).striped(true).show(ui, |ui| {
                        for r in &v.near {
                            let chosen = v.chart.as_ref().is_some_and(|c| c.row.id == r.id);
                            if ui.selectable_label(chosen, &r.name).on_hover_text("Show its chart").clicked() {
                                st.supplier = Some(r.id);
                            }
                            ui.label(RichText::new(r.tier.as_str()).color(p.muted));
                            quota_bar(ui, 140.0, r.quota_percent());
                            ui.end_row();
                        }
                    });
                });
            });
        });
    });
}

/// The suppliers projected to exceed their platform quota this month: the
/// projection Usage & cost shows, so both views name the same suppliers.
fn projected_card(ui: &mut Ui, st: &mut State, today: chrono::NaiveDate) {
    let p = *theme::palette(ui);
    let Some(pv) = st.projections.clone().filter(|v| v.as_of == today) else {
        match &st.projections_error {
            Some(e) => error_box(ui, &format!("The month-end projection failed: {e}")),
            None => loading(ui, "Projecting this month's use…"),
        }
        return;
    };
    ui.label(RichText::new(format!("Projected to exceed platform quota this month ({})", pv.flagged.len())).strong());
    if pv.flagged.is_empty() {
        ui.label(RichText::new("No supplier is projected to exceed its quota before the month ends.").color(p.muted));
        return;
    }
    egui::ScrollArea::vertical().id_salt("projected").max_height(160.0).show(ui, |ui| {
        egui::Grid::new("projected_grid").num_columns(3).spacing([theme::GAP_M, 4.0]).striped(true).show(ui, |ui| {
            for f in &pv.flagged {
                let chosen = st.supplier == Some(f.id);
                if ui.selectable_label(chosen, &f.name).on_hover_text("Show its chart").clicked() {
                    st.supplier = Some(f.id);
                    st.picker = Picker::with(f.id.0, f.name.clone());
                }
                let pct = f.projected as f64 * 100.0 / f.quota.max(1) as f64;
                ui.label(RichText::new(format!("{pct:.0} % projected")).color(theme::quota_color(ui, pct)));
                let out = match f.runs_out {
                    Some(d) if d <= pv.as_of => "over already".to_string(),
                    Some(d) => format!("runs out {}", d.format("%d %b")),
                    None => String::new(),
                };
                ui.label(RichText::new(out).color(p.muted));
                ui.end_row();
            }
        });
    });
}
