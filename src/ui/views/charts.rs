//! Chart conventions shared by every view: dates on the x axis (x = day number,
//! see `engine::console::day_number`) or times (x = Unix seconds, UTC, for
//! health and migration timelines), hover tooltips with the date (and time)
//! and the value in its unit, legends, fixed heights from the theme. Series
//! arrive already decimated by the console service.

use super::fmt_compact;
use crate::engine::console::date_of_day_number;
use egui_plot::{GridMark, Legend, Plot};
use std::ops::RangeInclusive;

/// How chart values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Dollars,
    Count,
    Tokens,
    /// Milliseconds (latency).
    Millis,
    /// Percent (error rate, traffic share).
    Percent,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Dollars if v.abs() < 100.0 => format!("${v:.2}"),
            Unit::Dollars => format!("${}", fmt_compact(v)),
            Unit::Count => fmt_compact(v),
            Unit::Tokens => format!("{} tokens", fmt_compact(v)),
            Unit::Millis => format!("{} ms", super::fmt_int(v.round() as i64)),
            Unit::Percent => format!("{v:.1} %"),
        }
    }
    fn axis(self, v: f64) -> String {
        match self {
            Unit::Dollars => format!("${}", fmt_compact(v)),
            Unit::Millis => format!("{} ms", fmt_compact(v)),
            Unit::Percent => format!("{v:.0} %"),
            _ => fmt_compact(v),
        }
    }
}

fn date_tick(mark: GridMark, range: &RangeInclusive<f64>) -> String {
    let span = range.end() - range.start();
    match date_of_day_number(mark.value) {
        // Only label whole days.
        Some(d) if (mark.value - mark.value.round()).abs() < 1e-6 => {
            if span > 240.0 {
                d.format("%b %Y").to_string()
            } else {
                d.format("%d %b").to_string()
            }
        }
        _ => String::new(),
    }
}

/// Grid marks for a day-number axis: days, weeks, months or quarters depending on zoom.
fn date_spacer(input: egui_plot::GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let span = (hi - lo).max(1.0);
    let step = [1.0, 7.0, 14.0, 30.0, 61.0, 91.0, 182.0, 365.0].into_iter().find(|s| span / s <= 8.0).unwrap_or(365.0);
    let mut marks = Vec::new();
    if step >= 30.0 {
        // Month starts.
        let (Some(a), Some(b)) = (date_of_day_number(lo), date_of_day_number(hi)) else { return marks };
        let months = (step / 30.0).round().max(1.0) as u32;
        let mut d = a.with_day0(0).unwrap_or(a);
        use chrono::Datelike;
        while d <= b {
            let x = crate::engine::console::day_number(d);
            if x >= lo && (d.month0() % months) == 0 {
                marks.push(GridMark { value: x, step_size: step });
            }
            d = (d + chrono::Duration::days(32)).with_day(1).unwrap_or(b + chrono::Duration::days(1));
        }
    } else {
        let mut x = (lo / step).ceil() * step;
        while x <= hi && marks.len() < 64 {
            marks.push(GridMark { value: x, step_size: step });
            x += step;
        }
    }
    marks
}

trait WithDay0 {
    fn with_day0(self, d: u32) -> Option<chrono::NaiveDate>;
}
impl WithDay0 for chrono::NaiveDate {
    fn with_day0(self, d: u32) -> Option<chrono::NaiveDate> {
        chrono::Datelike::with_day0(&self, d)
    }
}

/// A plot with a date x axis and `unit` on the y axis, fixed height, legend top-left.
pub fn date_plot(id: &str, unit: Unit, height: f32) -> Plot<'static> {
    Plot::new(id)
        .height(height)
        .legend(Legend::default().position(egui_plot::Corner::LeftTop).follow_insertion_order(true))
        .x_axis_formatter(date_tick)
        .x_grid_spacer(date_spacer)
        .y_axis_formatter(move |m, _| unit.axis(m.value))
        .y_axis_min_width(48.0)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .label_formatter(move |pos| {
            use egui_plot::HoverPosition;
            // Only near data: a tooltip at an arbitrary spot would invent a value.
            let HoverPosition::NearDataPoint { plot_name, position, .. } = pos else { return None };
            let date = date_of_day_number(position.x)?;
            Some(format!("{plot_name}\n{}\n{}", date.format("%a %d %b %Y"), unit.format(position.y)))
        })
}

/// A plot with category labels on the x axis (index → label).
pub fn category_plot(id: &str, unit: Unit, height: f32, labels: Vec<String>) -> Plot<'static> {
    let tick_labels = labels.clone();
    Plot::new(id)
        .height(height)
        .legend(Legend::default().position(egui_plot::Corner::RightTop).follow_insertion_order(true))
        .custom_x_axes(vec![
            egui_plot::AxisHints::new_x()
                .formatter(move |m, _| {
                    let i = m.value.round();
                    if (m.value - i).abs() > 1e-6 || i < 0.0 {
                        return String::new();
                    }
                    tick_labels.get(i as usize).cloned().unwrap_or_default()
                })
                .label_spacing(20.0..=60.0),
        ])
        .x_grid_spacer(|input| {
            let (lo, hi) = input.bounds;
            let mut v = Vec::new();
            let mut x = lo.ceil().max(0.0);
            while x <= hi && v.len() < 64 {
                v.push(GridMark { value: x, step_size: 1.0 });
                x += 1.0;
            }
            v
        })
        .y_axis_formatter(move |m, _| unit.axis(m.value))
        .y_axis_min_width(48.0)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .label_formatter(move |pos| {
            use egui_plot::HoverPosition;
            match pos {
                HoverPosition::NearDataPoint { plot_name, position, .. } => {
                    let label = labels.get(position.x.round().max(0.0) as usize).cloned().unwrap_or_default();
                    Some(format!("{plot_name}\n{label}\n{}", unit.format(position.y)))
                }
                HoverPosition::Elsewhere { .. } => None,
            }
        })
}

/// The UTC time of a Unix-seconds x coordinate.
pub fn time_of(x: f64) -> Option<chrono::DateTime<chrono::Utc>> {
    if !x.is_finite() || x.abs() > 1.0e12 {
        return None;
    }
    chrono::DateTime::from_timestamp(x.floor() as i64, 0)
}

/// Steps for a time axis, in seconds: minutes up to weeks.
const TIME_STEPS: [f64; 14] =
    [60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0, 86400.0, 172800.0, 604800.0, 2419200.0];

fn time_tick(mark: GridMark, range: &RangeInclusive<f64>) -> String {
    let span = range.end() - range.start();
    let Some(t) = time_of(mark.value) else { return String::new() };
    // Days on long ranges; on short ones hours, with the date at midnight.
    let midnight = t.timestamp().rem_euclid(86_400) == 0;
    if span > 3.0 * 86400.0 || midnight { t.format("%d %b").to_string() } else { t.format("%H:%M").to_string() }
}

/// Grid marks for a Unix-seconds axis at round UTC minutes, hours or days.
fn time_spacer(input: egui_plot::GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let span = (hi - lo).max(1.0);
    let step = TIME_STEPS.into_iter().find(|s| span / s <= 7.0).unwrap_or(2419200.0);
    let mut marks = Vec::new();
    let mut x = (lo / step).ceil() * step;
    while x <= hi && marks.len() < 64 {
        marks.push(GridMark { value: x, step_size: step });
        x += step;
    }
    marks
}

/// A plot with a time x axis (x = Unix seconds, shown in UTC) and `unit` on the y axis.
pub fn time_plot(id: impl egui::AsIdSalt, unit: Unit, height: f32) -> Plot<'static> {
    Plot::new(id)
        .height(height)
        .legend(Legend::default().position(egui_plot::Corner::LeftTop).follow_insertion_order(true))
        .x_axis_formatter(time_tick)
        .x_grid_spacer(time_spacer)
        .y_axis_formatter(move |m, _| unit.axis(m.value))
        .y_axis_min_width(56.0)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .label_formatter(move |pos| {
            use egui_plot::HoverPosition;
            let HoverPosition::NearDataPoint { plot_name, position, .. } = pos else { return None };
            let t = time_of(position.x)?;
            Some(format!("{plot_name}\n{}\n{}", t.format("%a %d %b %Y %H:%M UTC"), unit.format(position.y)))
        })
}
