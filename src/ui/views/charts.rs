//! Chart conventions shared by every view: dates on the x axis (x = day number,
//! see `console::day_number`) or times (x = Unix seconds, UTC, for
//! health and migration timelines), hover tooltips with the date (and time)
//! and the value in its unit, legends, fixed heights from the theme. Series
//! arrive already decimated by the console service.

use super::fmt_compact;
use crate::console::date_of_day_number;
use crate::ui::theme;
use egui::{RichText, Ui};
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
        // Axis marks are round numbers: "8k", not "8.0k".
        let compact = || {
            let s = fmt_compact(v);
            for suffix in ["k", "M", "B"] {
                if let Some(whole) = s.strip_suffix(&format!(".0{suffix}")) {
                    return format!("{whole}{suffix}");
                }
            }
            s
        };
        match self {
            Unit::Dollars => format!("${}", compact()),
            // A second and more in seconds: "1.5 s", not "1.5k ms".
            Unit::Millis if v.abs() >= 1000.0 => {
                let secs = format!("{:.1}", v / 1000.0);
                format!("{} s", secs.trim_end_matches(".0"))
            }
            Unit::Millis => format!("{} ms", compact()),
            Unit::Percent => format!("{v:.0} %"),
            _ => compact(),
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
            let x = crate::console::day_number(d);
            if x >= lo && (d.month0() % months) == 0 {
                marks.push(GridMark { value: x, step_size: step });
            }
            d = crate::domain::calendar::next_month(crate::domain::calendar::first_of_month(d));
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

/// A "nice" step (1, 2 or 5 times a power of ten) of at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n <= 1.0 + 1e-9 {
        1.0
    } else if n <= 2.0 + 1e-9 {
        2.0
    } else if n <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// The labelled step for a value axis spanning `span`: 1, 2 or 5 times a
/// power of ten, cutting the span into about five parts (at most six and a
/// half).
fn major_step(span: f64) -> f64 {
    if !span.is_finite() || span <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf((span / 5.0).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .filter(|step| span / step <= 6.5)
        .min_by(|a, b| ((span / a) - 5.0).abs().total_cmp(&((span / b) - 5.0).abs()))
        .unwrap_or(10.0 * mag)
}

/// Grid marks for a value axis: labelled lines at a nice step that cuts the
/// visible range into about five parts (see [`major_step`]; a short chart still reads
/// "0, 500, 1k, 1.5k" rather than only "0"), and light lines in between.
/// Counts never get fractional marks.
fn value_marks(bounds: (f64, f64), base_step: f64, integer: bool) -> Vec<GridMark> {
    let (lo, hi) = bounds;
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    // `base_step` is 8 px (egui_plot's smallest grid spacing); a y label
    // needs 30 px to show in full, so a short chart gets fewer lines.
    let mut major = major_step(hi - lo).max(nice_step(base_step * 30.0 / 8.0));
    if integer {
        major = major.max(1.0);
    }
    let mut steps = vec![major];
    let minor = major / if (major / 10f64.powf(major.log10().floor()) - 2.0).abs() < 1e-9 { 4.0 } else { 5.0 };
    if minor >= base_step && (!integer || minor >= 1.0) {
        steps.push(minor);
    }
    let mut marks = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let mut k = (lo / step).ceil();
        while k * step <= hi && marks.len() < 400 {
            // `+ 0.0` turns the -0 that `ceil` gives just below zero into 0.
            let value = k * step + 0.0;
            // A minor line where a major one is would be drawn twice.
            let on_major = i > 0 && ((value / major) - (value / major).round()).abs() < 1e-6;
            if !on_major {
                marks.push(GridMark { value, step_size: *step });
            }
            k += 1.0;
        }
    }
    marks
}

impl Unit {
    /// The label of a value-axis mark: only the labelled lines of
    /// [`value_marks`] get one (the light lines between them stay bare).
    fn axis_label(self, mark: GridMark, range: &RangeInclusive<f64>) -> String {
        let major = major_step(range.end() - range.start());
        if mark.step_size < major * 0.999 {
            return String::new();
        }
        self.axis(mark.value)
    }

    fn y_spacer(self) -> impl Fn(egui_plot::GridInput) -> Vec<GridMark> {
        let integer = matches!(self, Unit::Count | Unit::Tokens);
        move |input| value_marks(input.bounds, input.base_step_size, integer)
    }
}

/// A plot with a date x axis and `unit` on the y axis, fixed height, legend top-left.
pub fn date_plot(id: &str, unit: Unit, height: f32) -> Plot<'static> {
    Plot::new(id)
        .height(height)
        .legend(Legend::default().position(egui_plot::Corner::LeftTop).follow_insertion_order(true))
        .x_axis_formatter(date_tick)
        .x_grid_spacer(date_spacer)
        .y_axis_formatter(move |m, r| unit.axis_label(m, r))
        .y_grid_spacer(unit.y_spacer())
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

/// Shortens category labels so that each fits its bar's slot in a plot
/// `width` pixels wide (about 7 px a character), ending a cut one with "…".
pub fn fit_labels(labels: &[String], width: f32) -> Vec<String> {
    let slot = (width - 60.0).max(60.0) / labels.len().max(1) as f32;
    let max_chars = ((slot - 6.0) / 7.0).floor().max(3.0) as usize;
    labels
        .iter()
        .map(|l| if l.chars().count() <= max_chars { l.clone() } else { format!("{}…", l.chars().take(max_chars - 1).collect::<String>()) })
        .collect()
}

/// A row of coloured swatches with names: the legend of a category plot,
/// drawn above it so that it never covers a bar.
pub fn legend_row(ui: &mut Ui, items: &[(&str, egui::Color32)]) {
    ui.horizontal_wrapped(|ui| {
        for (name, color) in items {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, *color);
            ui.label(RichText::new(*name).small());
            ui.add_space(theme::GAP_S);
        }
    });
}

/// A plot with category labels on the x axis (index → label), every one of
/// them shown (cut to fit with [`fit_labels`] by the caller); it has no
/// legend inside (see [`legend_row`]), so nothing covers the bars.
pub fn category_plot(id: &str, unit: Unit, height: f32, labels: Vec<String>) -> Plot<'static> {
    let tick_labels = labels.clone();
    let last = labels.len().saturating_sub(1) as f64;
    Plot::new(id)
        .height(height)
        // Room on both sides, so the first and last labels are not cut at the edge.
        .include_x(-0.7)
        .include_x(last + 0.7)
        .custom_x_axes(vec![
            egui_plot::AxisHints::new_x()
                .formatter(move |m, _| {
                    let i = m.value.round();
                    if (m.value - i).abs() > 1e-6 || i < 0.0 {
                        return String::new();
                    }
                    tick_labels.get(i as usize).cloned().unwrap_or_default()
                })
                .label_spacing(8.0..=12.0),
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
        .y_axis_formatter(move |m, r| unit.axis_label(m, r))
        .y_grid_spacer(unit.y_spacer())
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
        .y_axis_formatter(move |m, r| unit.axis_label(m, r))
        .y_grid_spacer(unit.y_spacer())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(bounds: (f64, f64), integer: bool) -> Vec<f64> {
        let marks = value_marks(bounds, (bounds.1 - bounds.0) / 200.0, integer);
        let major = marks.iter().map(|m| m.step_size).fold(0.0, f64::max);
        marks.iter().filter(|m| m.step_size == major).map(|m| m.value).collect()
    }

    #[test]
    fn value_axes_get_three_to_six_nice_labelled_lines() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1200.0), 2000.0);
        assert_eq!(labelled((0.0, 1.8), false), vec![0.0, 0.5, 1.0, 1.5]);
        assert_eq!(labelled((0.0, 3500.0), true), vec![0.0, 1000.0, 2000.0, 3000.0]);
        assert_eq!(labelled((-0.2, 3.2), true), vec![0.0, 1.0, 2.0, 3.0], "counts are whole numbers");
        for (lo, hi) in [(0.0, 7.0), (0.0, 0.004), (10.0, 95_000.0), (0.0, 1e9)] {
            let n = labelled((lo, hi), false).len();
            assert!((3..=6).contains(&n), "{n} labelled lines for {lo}..{hi}");
        }
        assert!(value_marks((1.0, 1.0), 0.1, false).is_empty(), "an empty range has no marks");
        assert!(value_marks((-1e-9, 10.0), 0.1, true).iter().all(|m| !(m.value == 0.0 && m.value.is_sign_negative())), "no -0");
        assert_eq!(
            (Unit::Count.axis(8000.0), Unit::Count.axis(1500.0), Unit::Dollars.axis(0.5)),
            ("8k".into(), "1.5k".into(), "$0.50".into())
        );
        assert_eq!(
            [200.0, 1000.0, 1500.0, 12_000.0].map(|v| Unit::Millis.axis(v)),
            ["200 ms".to_string(), "1 s".into(), "1.5 s".into(), "12 s".into()]
        );
        // A chart 110 px high (8 px = 8 % here) gets labels 50 apart, not 20.
        let short: Vec<f64> = value_marks((-5.0, 105.0), 8.0, false).iter().filter(|m| m.step_size == 50.0).map(|m| m.value).collect();
        assert_eq!(short, vec![0.0, 50.0, 100.0]);
        // Light lines between the labelled ones have no label.
        let marks = value_marks((0.0, 105_000.0), 100.0, true);
        let labels: Vec<String> = marks.iter().map(|m| Unit::Count.axis_label(*m, &(0.0..=105_000.0))).filter(|l| !l.is_empty()).collect();
        assert_eq!(labels, ["0", "20k", "40k", "60k", "80k", "100k"]);
        assert!(value_marks((0.0, f64::INFINITY), 0.1, false).is_empty());
    }

    #[test]
    fn minor_lines_sit_between_the_labelled_ones() {
        let marks = value_marks((0.0, 1.8), 0.01, false);
        let minor: Vec<f64> = marks.iter().filter(|m| m.step_size == 0.1).map(|m| m.value).collect();
        assert_eq!(minor.len(), 18 - 3, "0.1 steps up to 1.8, without the three on labelled lines or 0");
        assert!(minor.iter().all(|v| ((v / 0.5) - (v / 0.5).round()).abs() > 1e-6));
    }
}
