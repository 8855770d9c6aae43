//! Usage & cost: daily usage over chosen dates, split by provider, model,
//! route, request type or vendor type; totals per group; months side by side
//! with the peak season marked, and peak vs off-season daily averages;
//! projections (see [`super::projections`]), what the response cache saved
//! (see [`super::cache`]) and the CSV export panel (see [`super::export`]). The charts read the daily rollups; projections come
//! from the analytics engine, recomputed when the end date changes.

use super::charts::{Unit, category_plot, date_plot, fit_labels, legend_row};
use super::export::{Panel, SaveDialog};
use super::{Cx, empty_state, error_box, header, loading, text_field};
use crate::console::{Channel, ConsoleCommand, ConsoleEvent, ProjectionsView, UsageGranularity, UsageMetric, UsageQuery, UsageView};
use crate::domain::UsageDimension;
use crate::ui::theme;
use crate::ui::toasts::Toasts;
use chrono::{Duration, NaiveDate};
use egui::{RichText, Ui};
use egui_plot::{Bar, BarChart, Line};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Range {
    Last30,
    Last90,
    #[default]
    Last365,
    Custom,
}

impl Range {
    const ALL: [Range; 4] = [Range::Last30, Range::Last90, Range::Last365, Range::Custom];
    fn label(self) -> &'static str {
        match self {
            Range::Last30 => "30 days",
            Range::Last90 => "90 days",
            Range::Last365 => "12 months",
            Range::Custom => "Custom",
        }
    }
}

/// Remembered across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub range: Range,
    pub dimension: UsageDimension,
    pub metric: UsageMetric,
    pub granularity: UsageGranularity,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted {
            range: Range::Last365,
            dimension: UsageDimension::Provider,
            metric: UsageMetric::Cost,
            granularity: UsageGranularity::Day,
        }
    }
}

pub struct State {
    p: Persisted,
    from_text: String,
    to_text: String,
    /// The custom dates in use: typed dates change the charts only once applied (Enter or Apply).
    custom: (NaiveDate, NaiveDate),
    range_error: Option<String>,
    data: Option<Arc<UsageView>>,
    error: Option<String>,
    pub dirty: bool,
    sent: Option<UsageQuery>,
    projections: Option<Arc<ProjectionsView>>,
    projections_error: Option<String>,
    /// The `as_of` day of the last projections asked for.
    projections_sent: Option<NaiveDate>,
    pub export: Panel,
    /// The whole cache's purge was asked for and awaits confirmation.
    cache_confirm: bool,
}

impl State {
    /// `today` by the console's clock: the default range ends on it.
    pub fn new(p: Persisted, save_dialog: SaveDialog, today: NaiveDate) -> Self {
        State {
            p,
            from_text: (today - Duration::days(89)).to_string(),
            to_text: today.to_string(),
            custom: (today - Duration::days(89), today),
            range_error: None,
            data: None,
            error: None,
            dirty: true,
            sent: None,
            projections: None,
            projections_error: None,
            projections_sent: None,
            export: Panel::new(save_dialog),
            cache_confirm: false,
        }
    }

    /// Opens the export panel with the view's dates (Ctrl+E, "Export CSV…").
    pub fn open_export(&mut self, today: NaiveDate) {
        let (from, to) = self.dates(today).unwrap_or((today - Duration::days(29), today));
        self.export.open_with(from, to);
    }

    pub fn persisted(&self) -> Persisted {
        self.p.clone()
    }

    pub fn on_event(&mut self, ev: ConsoleEvent, toasts: &mut Toasts) {
        match ev {
            ConsoleEvent::Usage(v) => {
                self.data = Some(v);
                self.error = None;
            }
            // Another view (Quotas) may have asked for another day: ask again for ours when shown.
            ConsoleEvent::Projections(v) if self.projections_sent.is_some_and(|d| d != v.as_of) => self.projections_sent = None,
            ConsoleEvent::Projections(v) => {
                self.projections = Some(v);
                self.projections_error = None;
            }
            ConsoleEvent::Failed { channel: Channel::Projections, message } => self.projections_error = Some(message),
            ev @ (ConsoleEvent::ExportProgress(_)
            | ConsoleEvent::ExportDone(_)
            | ConsoleEvent::ExportExists { .. }
            | ConsoleEvent::ExportCancelled
            | ConsoleEvent::Failed { channel: Channel::Export, .. }) => self.export.on_event(ev, toasts),
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }

    fn dates(&mut self, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        let days = match self.p.range {
            Range::Last30 => 30,
            Range::Last90 => 90,
            Range::Last365 => 365,
            Range::Custom => return Some(self.custom),
        };
        Some((today - Duration::days(days - 1), today))
    }

    /// Applies the typed custom dates (strict `YYYY-MM-DD`), or says what is wrong; the charts keep their range until then.
    fn apply_custom(&mut self) {
        match parse_range(&self.from_text, &self.to_text) {
            Ok(r) => {
                self.custom = r;
                self.range_error = None;
            }
            Err(e) => self.range_error = Some(e),
        }
    }

    /// The typed custom dates differ from the ones in use.
    fn custom_pending(&self) -> bool {
        parse_range(&self.from_text, &self.to_text) != Ok(self.custom)
    }
}

/// A custom range as typed: two strict `YYYY-MM-DD` dates, the second not before the first.
fn parse_range(from: &str, to: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let parse = |s: &str, what: &str| {
        let t = s.trim();
        let ok = t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-';
        t.parse::<NaiveDate>()
            .ok()
            .filter(|_| ok)
            .ok_or_else(|| format!("the {what} date '{t}' is not a date; write YYYY-MM-DD, e.g. 2026-06-20"))
    };
    let (f, t) = (parse(from, "from")?, parse(to, "to")?);
    if t < f { Err("the 'to' date is before the 'from' date".to_string()) } else { Ok((f, t)) }
}

fn unit(m: UsageMetric) -> Unit {
    match m {
        UsageMetric::Cost => Unit::Dollars,
        UsageMetric::Requests => Unit::Count,
        UsageMetric::Tokens => Unit::Tokens,
    }
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    header(ui, "Usage & cost", "from the daily rollups");
    if controls(ui, st) {
        st.open_export(cx.handle.today());
    }
    let today = cx.handle.today();
    if let Some((from, to)) = st.dates(today) {
        let q = UsageQuery {
            from,
            to,
            dimension: st.p.dimension,
            metric: st.p.metric,
            granularity: st.p.granularity,
            max_points: ui.available_width().max(200.0) as usize,
        };
        let changed = st.sent.is_none_or(|s| {
            (s.from, s.to, s.dimension, s.metric, s.granularity) != (q.from, q.to, q.dimension, q.metric, q.granularity)
                || s.max_points.abs_diff(q.max_points) > 200
        });
        let dirty = std::mem::take(&mut st.dirty);
        if dirty || changed {
            st.sent = Some(q);
            cx.send(ConsoleCommand::LoadUsage(q));
        }
        // Projections use the data up to the range's end (never past today).
        let as_of = to.min(today);
        if dirty || st.projections_sent != Some(as_of) {
            st.projections_sent = Some(as_of);
            cx.send(ConsoleCommand::LoadProjections { as_of });
        }
    }
    let suppliers = st.projections.as_ref().map(|p| p.suppliers.clone()).unwrap_or_default();
    st.export.show(ui, cx, &suppliers);
    if let Some(e) = st.range_error.clone().or_else(|| st.error.clone()) {
        error_box(ui, &e);
    }
    let Some(v) = st.data.clone() else {
        loading(ui, "Loading usage…");
        return;
    };
    if v.total == 0.0 {
        empty_state(
            ui,
            "No usage in these dates",
            "Choose a longer range; usage appears here once requests go through the gateway (or with `switchboard --demo`).",
        );
        return;
    }
    let u = unit(v.query.metric);
    let p = *theme::palette(ui);
    egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        theme::card(ui).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!(
                        "{} per {} by {}",
                        v.query.metric.label(),
                        v.query.granularity.noun(),
                        v.query.dimension.label().to_lowercase()
                    ))
                    .strong(),
                );
                ui.label(RichText::new(format!("{} – {} · total {}", v.query.from, v.query.to, u.format(v.total))).color(p.muted));
            });
            let colors: Vec<egui::Color32> = (0..v.series.len()).map(|i| theme::series_color(ui, i)).collect();
            date_plot("usage_daily", u, theme::CHART_HEIGHT + 40.0).show(ui, |pl| {
                for (s, c) in v.series.iter().zip(colors) {
                    pl.add(Line::new(s.key.clone(), s.points.clone()).color(c).width(1.5));
                }
            });
        });
        ui.add_space(theme::GAP_M);
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            theme::card(ui).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new(format!("Total by {}", v.query.dimension.label().to_lowercase())).strong());
                let labels: Vec<String> = fit_labels(&v.series.iter().map(|s| s.key.clone()).collect::<Vec<_>>(), ui.available_width());
                let bars: Vec<Bar> = v
                    .series
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Bar::new(i as f64, s.total).width(0.6).fill(theme::series_color(ui, i)).name(&s.key))
                    .collect();
                category_plot("usage_totals", u, 220.0, labels).show(ui, |pl| pl.add(BarChart::new("total", bars)));
            });
            let ui = &mut cols[1];
            theme::card(ui).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new("Per month: peak season vs off-season").strong());
                ui.label(
                    RichText::new(format!(
                        "Daily average {} in peak months ({} days) vs {} off-season ({} days){}",
                        u.format(v.peak_daily_avg),
                        v.peak_days,
                        u.format(v.off_daily_avg),
                        v.off_days,
                        if v.off_daily_avg > 0.0 && v.peak_days > 0 {
                            format!(" — ×{:.1}", v.peak_daily_avg / v.off_daily_avg)
                        } else {
                            String::new()
                        }
                    ))
                    .small()
                    .color(p.muted),
                );
                // Short month names, so every bar keeps its label (the dates are in the chart above).
                let labels: Vec<String> = v
                    .monthly
                    .iter()
                    .map(|m| match crate::console::date_of_day_number(m.x) {
                        Some(d) => d.format("%b").to_string(),
                        None => m.label.clone(),
                    })
                    .collect();
                legend_row(ui, &[("peak season (Mar–Oct)", p.peak), ("off-season", p.off_peak)]);
                let peak: Vec<Bar> = v
                    .monthly
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.peak)
                    .map(|(i, m)| Bar::new(i as f64, m.value).width(0.7).fill(p.peak))
                    .collect();
                let off: Vec<Bar> = v
                    .monthly
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| !m.peak)
                    .map(|(i, m)| Bar::new(i as f64, m.value).width(0.7).fill(p.off_peak))
                    .collect();
                category_plot("usage_monthly", u, 200.0, labels).show(ui, |pl| {
                    pl.add(BarChart::new("peak season (Mar–Oct)", peak).color(p.peak));
                    pl.add(BarChart::new("off-season", off).color(p.off_peak));
                });
            });
        });
        ui.add_space(theme::GAP_M);
        top_suppliers(ui, &v, cx);
        ui.add_space(theme::GAP_M);
        super::cache::usage_panel(ui, &v.cache, &mut st.cache_confirm, cx);
        ui.add_space(theme::GAP_M);
        match (&st.projections, &st.projections_error) {
            (_, Some(e)) => error_box(ui, e),
            (Some(pv), None) => super::projections::show(ui, pv, v.query.metric),
            (None, None) => loading(ui, "Projecting month end and the next three months…"),
        }
    });
}

/// The filter bar; true when "Export CSV…" was clicked.
fn controls(ui: &mut Ui, st: &mut State) -> bool {
    let mut export = false;
    ui.horizontal_wrapped(|ui| {
        ui.label("Dates");
        for r in Range::ALL {
            ui.selectable_value(&mut st.p.range, r, r.label());
        }
        if st.p.range == Range::Custom {
            let a = text_field(ui, "From", &mut st.from_text, "YYYY-MM-DD", 104.0);
            let b = text_field(ui, "To", &mut st.to_text, "YYYY-MM-DD", 104.0);
            let enter = (a.lost_focus() || b.lost_focus()) && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let pending = st.custom_pending();
            if ui.add_enabled(pending, egui::Button::new("Apply")).clicked() || enter {
                st.apply_custom();
            }
            if pending && st.range_error.is_none() {
                ui.label(
                    RichText::new(format!("showing {} – {}; press Enter or Apply", st.custom.0, st.custom.1))
                        .small()
                        .color(theme::palette(ui).warn),
                );
            }
        }
        ui.separator();
        ui.label("By");
        for d in UsageDimension::ALL {
            ui.selectable_value(&mut st.p.dimension, d, d.label());
        }
        ui.separator();
        for g in UsageGranularity::ALL {
            ui.selectable_value(&mut st.p.granularity, g, g.label());
        }
        ui.separator();
        for m in UsageMetric::ALL {
            ui.selectable_value(&mut st.p.metric, m, m.label());
        }
        ui.separator();
        export = ui.button("Export CSV…").on_hover_text("Export usage as a CSV file for spreadsheets (Ctrl+E)").clicked();
    });
    ui.add_space(theme::GAP_S);
    export
}

/// The suppliers that cost the most over the range: rank, name (opens the
/// supplier), requests, tokens, cost and share of all suppliers' cost.
fn top_suppliers(ui: &mut Ui, v: &UsageView, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Top suppliers by cost").strong());
            ui.label(
                RichText::new(format!(
                    "{} – {} · {} with usage · {} in all",
                    v.query.from,
                    v.query.to,
                    super::plural(v.suppliers_with_usage, "supplier"),
                    super::fmt_money(v.suppliers_cost_micros)
                ))
                .color(p.muted),
            );
        });
        if v.top_suppliers.is_empty() {
            ui.label(RichText::new("No supplier has usage in these dates.").color(p.muted));
            return;
        }
        let w = ui.available_width();
        let widths = [36.0, (w - 36.0 - 120.0 * 3.0 - 90.0 - 40.0).max(160.0), 120.0, 120.0, 120.0, 90.0];
        ui.horizontal(|ui| {
            for (h, width) in ["#", "Supplier", "Requests", "Tokens", "Cost", "Share"].iter().zip(widths) {
                super::cell(ui, width, RichText::new(*h).small().color(p.muted));
            }
        });
        for (i, r) in v.top_suppliers.iter().enumerate() {
            ui.horizontal(|ui| {
                super::cell(ui, widths[0], RichText::new((i + 1).to_string()).color(p.muted));
                let link = ui
                    .allocate_ui_with_layout(
                        egui::vec2(widths[1], theme::ROW_HEIGHT),
                        egui::Layout::left_to_right(egui::Align::Center),
                        |ui| {
                            ui.set_width(widths[1]);
                            ui.add(egui::Link::new(&r.name)).on_hover_text(format!("Open {} (ID {})", r.name, r.id.0))
                        },
                    )
                    .inner;
                if link.clicked() {
                    cx.goto = Some(super::Goto::Supplier(r.id));
                }
                super::cell(ui, widths[2], super::fmt_int(r.requests));
                super::cell(ui, widths[3], super::fmt_compact(r.tokens as f64));
                super::cell(ui, widths[4], super::fmt_money(r.cost_micros));
                let share = if v.suppliers_cost_micros > 0 { r.cost_micros as f64 * 100.0 / v.suppliers_cost_micros as f64 } else { 0.0 };
                super::cell(ui, widths[5], format!("{share:.1} %"));
            });
        }
        if v.suppliers_with_usage > v.top_suppliers.len() {
            ui.label(
                RichText::new(format!(
                    "and {} more; choose “By Supplier” for each one's series, or export the CSV",
                    super::plural(v.suppliers_with_usage - v.top_suppliers.len(), "supplier")
                ))
                .small()
                .color(p.muted),
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_dates_apply_only_when_whole() {
        assert!(parse_range("2026-01-1", "2026-02-01").unwrap_err().contains("'2026-01-1' is not a date"), "a half-typed date is refused");
        assert!(parse_range("2026-1-01", "2026-02-01").is_err());
        assert_eq!(parse_range("2026-01-15", "2026-02-01"), Ok(("2026-01-15".parse().unwrap(), "2026-02-01".parse().unwrap())));
        assert!(parse_range("2026-02-01", "2026-01-15").unwrap_err().contains("before"));
        let today: NaiveDate = "2026-06-15".parse().unwrap();
        let mut st = State::new(Persisted { range: Range::Custom, ..Default::default() }, SaveDialog::answering(None), today);
        let before = st.dates(today);
        st.from_text = "2026-01-1".into();
        assert_eq!(st.dates(today), before, "typing does not change the range");
        st.apply_custom();
        assert_eq!(st.dates(today), before, "nor does applying a half-typed date");
        assert!(st.range_error.is_some());
        st.from_text = "2026-01-10".into();
        st.apply_custom();
        assert_eq!(st.dates(today), Some(("2026-01-10".parse().unwrap(), today)));
    }
}
