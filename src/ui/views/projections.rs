//! The projections section of the Usage & cost view: the last twelve months
//! and this month so far (solid), the projected month end and the next three
//! months (dashed), the methods and history the projections used, and the
//! suppliers projected to exceed their platform quota before the month ends.
//! Everything arrives summed from the analytics engine; nothing is computed here
//! but chart coordinates.

use super::charts::{Unit, date_plot};
use super::{cell, fmt_int};
use crate::console::{MonthUsage, ProjectionsView, UsageMetric, day_number};
use crate::ui::theme;
use egui::{RichText, Ui};
use egui_plot::{Line, LineStyle, MarkerShape, Points};

/// Cost in dollars for the cost metric, tokens otherwise (requests are not projected).
fn value(m: &MonthUsage, metric: UsageMetric) -> f64 {
    match metric {
        UsageMetric::Cost => m.cost_micros as f64 / 1e6,
        UsageMetric::Requests | UsageMetric::Tokens => m.tokens as f64,
    }
}

fn format(m: &MonthUsage, metric: UsageMetric) -> String {
    match metric {
        UsageMetric::Cost => super::fmt_money(m.cost_micros),
        UsageMetric::Requests | UsageMetric::Tokens => format!("{} tokens", super::fmt_compact(m.tokens as f64)),
    }
}

pub fn show(ui: &mut Ui, v: &ProjectionsView, metric: UsageMetric) {
    let p = *theme::palette(ui);
    let unit = if metric == UsageMetric::Cost { Unit::Dollars } else { Unit::Tokens };
    let what = if metric == UsageMetric::Cost { "cost" } else { "tokens" };
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("Projections: monthly {what}, as of {}", v.as_of)).strong());
            ui.label(RichText::new("all suppliers; dashed = projected").color(p.muted));
        });
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            let x = |m: &MonthUsage| day_number(m.month);
            let mut actual: Vec<[f64; 2]> = v.history.iter().map(|m| [x(m), value(m, metric)]).collect();
            let mut projected: Vec<[f64; 2]> = Vec::new();
            if let Some(last) = actual.last() {
                projected.push(*last);
            }
            projected.extend(v.projected.iter().map(|m| [x(m), value(m, metric)]));
            let to_date = [x(&v.to_date), value(&v.to_date, metric)];
            if actual.is_empty() {
                actual.push(to_date);
            }
            date_plot("usage_projection", unit, 200.0).show(ui, |pl| {
                pl.add(Line::new("actual", actual).color(p.series[0]).width(2.0));
                pl.add(Line::new("projected", projected).color(p.series[1]).width(2.0).style(LineStyle::dashed_loose()));
                pl.add(Points::new("this month so far", vec![to_date]).color(p.series[0]).shape(MarkerShape::Diamond).radius(4.0));
            });
            if let Some((end, next)) = v.projected.split_first() {
                ui.label(
                    RichText::new(format!(
                        "This month: {} so far, {} projected by its end. Next three months: {}.",
                        format(&v.to_date, metric),
                        format(end, metric),
                        next.iter().map(|m| format!("{} {}", m.month.format("%b"), format(m, metric))).collect::<Vec<_>>().join(", ")
                    ))
                    .small(),
                );
            }
            let methods: Vec<String> =
                v.methods.iter().map(|(m, n)| format!("{m} for {n} supplier{}", if *n == 1 { "" } else { "s" })).collect();
            ui.label(
                RichText::new(format!(
                    "Method: {}. History: up to {} whole months (the seasonal trend needs 15).",
                    methods.join(", "),
                    v.max_history_months
                ))
                .small()
                .color(p.muted),
            );

            let ui = &mut cols[1];
            ui.label(RichText::new(format!("Projected to exceed platform quota this month ({})", v.flagged.len())).strong());
            if v.flagged.is_empty() {
                ui.label(RichText::new("No supplier is projected to exceed its quota before the month ends.").color(p.muted));
                return;
            }
            let w = ui.available_width();
            let widths = [w * 0.38, w * 0.14, w * 0.26, w * 0.2];
            ui.horizontal(|ui| {
                for (h, width) in ["Supplier", "Tier", "Projected / quota", "Runs out"].iter().zip(widths) {
                    cell(ui, width, RichText::new(*h).small().color(p.muted));
                }
            });
            const ROWS: usize = 8;
            for f in v.flagged.iter().take(ROWS) {
                let r = ui.horizontal(|ui| {
                    cell(ui, widths[0], &f.name);
                    cell(ui, widths[1], f.tier.as_str());
                    let pct = f.projected as f64 * 100.0 / f.quota.max(1) as f64;
                    let text = format!("{} / {}", super::fmt_compact(f.projected as f64), super::fmt_compact(f.quota as f64));
                    cell(ui, widths[2], RichText::new(text).color(theme::quota_color(ui, pct)));
                    let out = match f.runs_out {
                        Some(d) if d <= v.as_of => "already".to_string(),
                        Some(d) => d.format("%d %b").to_string(),
                        None => "—".to_string(),
                    };
                    cell(ui, widths[3], out);
                });
                r.response.on_hover_text(format!(
                    "{}: {} of {} quota tokens used so far, {} ({:.0} %) projected by month end; rest of the month from {}; {} months of history",
                    f.name,
                    fmt_int(f.used as i64),
                    fmt_int(f.quota as i64),
                    fmt_int(f.projected as i64),
                    f.projected as f64 * 100.0 / f.quota.max(1) as f64,
                    f.method,
                    f.history_months
                ));
            }
            if v.flagged.len() > ROWS {
                ui.label(RichText::new(format!("and {} more (see Quotas)", v.flagged.len() - ROWS)).small().color(p.muted));
            }
        });
    });
}
