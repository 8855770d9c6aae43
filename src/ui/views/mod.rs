//! The console's views, one module each, and what they share: the [`View`]
//! enum behind the navigation, the [`Cx`] a view gets each frame (the command
//! handle, notifications, navigation requests), and small widgets (metric
//! cards, empty states, number formats). Charts live in [`charts`].

pub mod alerts;
pub mod audit;
pub mod cache;
pub mod charts;
pub mod export;
pub mod getting_started;
pub mod health;
pub mod instances;
pub mod keys;
pub mod migrations;
pub mod overview;
pub mod picker;
pub mod pools;
pub mod projections;
pub mod quotas;
pub mod requests;
pub mod routing;
pub mod supplier_form;
pub mod supplier_import;
pub mod suppliers;
pub mod usage;

use super::theme;
use super::toasts::Toasts;
use crate::console::{ConsoleCommand, ConsoleHandle};
use crate::domain::SupplierId;
use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

/// The views in the navigation, in [`View::ALL`]'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum View {
    #[default]
    Overview,
    Suppliers,
    Keys,
    Quotas,
    Health,
    Alerts,
    Migrations,
    Usage,
    Requests,
    Audit,
    Instances,
}

impl View {
    /// The views shown in the navigation, in order (Ctrl+1… selects them).
    pub const ALL: &'static [View] = &[
        View::Overview,
        View::Suppliers,
        View::Keys,
        View::Quotas,
        View::Health,
        View::Alerts,
        View::Migrations,
        View::Usage,
        View::Requests,
        View::Audit,
        View::Instances,
    ];

    pub fn label(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Suppliers => "Suppliers",
            View::Keys => "Keys",
            View::Quotas => "Quotas",
            View::Health => "Health",
            View::Alerts => "Alerts",
            View::Migrations => "Migrations",
            View::Usage => "Usage & cost",
            View::Requests => "Request log",
            View::Audit => "Audit log",
            View::Instances => "Instances",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            View::Overview => "Today, this month, this week's weddings",
            View::Suppliers => "Tiers, AI mode, weddings, accounts",
            View::Keys => "Provider keys and gateway tokens",
            View::Quotas => "Platform token quotas and the season",
            View::Health => "Provider health, breakers and alerts",
            View::Alerts => "Incidents and alerts: filter, acknowledge, export",
            View::Migrations => "Move suppliers between routes, phase by phase",
            View::Usage => "Cost and requests by provider, model, route…",
            View::Requests => "Search the ledger's requests by supplier, model, route, status",
            View::Audit => "Who changed what, and when",
            View::Instances => "The gateways on this database and who leads probes and migrations",
        }
    }

    /// Parses a view name as given to `--view` (`overview`, `suppliers`, `keys`, `quotas`, `health`, `alerts`, `migrations`, `usage`, `requests`, `audit`, `instances`).
    pub fn from_name(name: &str) -> Result<View, String> {
        let n = name.trim().to_ascii_lowercase();
        View::ALL.iter().copied().find(|v| v.slug() == n).ok_or_else(|| {
            format!("'{name}' is not a view; choose one of: {}", View::ALL.iter().map(|v| v.slug()).collect::<Vec<_>>().join(", "))
        })
    }

    pub fn slug(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Suppliers => "suppliers",
            View::Keys => "keys",
            View::Quotas => "quotas",
            View::Health => "health",
            View::Alerts => "alerts",
            View::Migrations => "migrations",
            View::Usage => "usage",
            View::Requests => "requests",
            View::Audit => "audit",
            View::Instances => "instances",
        }
    }
}

/// A request from one view to show something in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goto {
    Supplier(SupplierId),
    Quota(SupplierId),
}

/// What a view gets each frame besides its own state.
pub struct Cx<'a> {
    pub handle: &'a ConsoleHandle,
    /// Suppliers and accounts by name, for the pickers.
    pub picks: &'a picker::Picks,
    pub toasts: &'a mut Toasts,
    pub goto: Option<Goto>,
}

impl Cx<'_> {
    /// Sends a command; a stopped runtime becomes an error notification.
    pub fn send(&mut self, cmd: ConsoleCommand) {
        if let Err(e) = self.handle.send(cmd) {
            self.toasts.error(e);
        }
    }
}

/// The title line of a view.
pub fn header(ui: &mut Ui, title: &str, subtitle: &str) {
    ui.horizontal(|ui| {
        ui.heading(RichText::new(title).strong());
        ui.label(RichText::new(subtitle).color(theme::palette(ui).muted));
    });
    ui.add_space(theme::GAP_S);
}

/// A centred message for a view with nothing to show, saying what to do next.
pub fn empty_state(ui: &mut Ui, title: &str, next: &str) {
    ui.vertical_centered(|ui| {
        ui.add_space(theme::GAP_L * 2.0);
        ui.label(RichText::new(title).size(16.0).strong());
        ui.add_space(theme::GAP_XS);
        ui.label(RichText::new(next).color(theme::palette(ui).muted));
    });
}

/// A spinner with a sentence.
pub fn loading(ui: &mut Ui, what: &str) {
    ui.horizontal(|ui| {
        ui.spinner();
        ui.label(RichText::new(what).color(theme::palette(ui).muted));
    });
}

/// How long before `now` `t` was: "4 s ago", "3 min ago", "2 h ago", and
/// the date from a day on (a `t` after `now` reads "0 s ago").
pub fn ago(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// A left-aligned, truncated table cell of a fixed width (the full text on hover).
pub fn cell(ui: &mut Ui, width: f32, text: impl Into<egui::WidgetText>) -> egui::Response {
    ui.allocate_ui_with_layout(egui::vec2(width, theme::ROW_HEIGHT), egui::Layout::left_to_right(egui::Align::Center), |ui| {
        ui.set_width(width);
        ui.add(egui::Label::new(text).truncate())
    })
    .inner
}

/// A small filled circle in a status colour (the bundled fonts have no "●").
pub fn status_dot(ui: &mut Ui, color: egui::Color32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.0, color);
}

/// An error shown where the data would be.
pub fn error_box(ui: &mut Ui, message: &str) {
    let p = theme::palette(ui);
    theme::card(ui).stroke(egui::Stroke::new(1.0, p.danger)).show(ui, |ui| {
        ui.label(RichText::new(message).color(p.danger));
    });
}

/// A big number with a caption, in a card.
pub fn metric_card(ui: &mut Ui, width: f32, caption: &str, value: &str, note: &str) {
    theme::card(ui).show(ui, |ui| {
        ui.vertical(|ui| {
            ui.set_width(width);
            ui.label(RichText::new(caption).color(theme::palette(ui).muted));
            ui.label(RichText::new(value).font(theme::metric_font()).strong());
            ui.add(egui::Label::new(RichText::new(note).small().color(theme::palette(ui).muted)).truncate());
        });
    });
}

/// `1234567` → `1,234,567`.
pub fn fmt_int(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3 + 1);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// [`fmt_int`] for a count that cannot be negative.
pub fn fmt_count(n: u64) -> String {
    fmt_int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `n` with its noun in the right number: `1 supplier`, `2 suppliers`, `1,200 suppliers`.
pub fn plural(n: usize, noun: &str) -> String {
    let n_text = fmt_count(n as u64);
    if n == 1 { format!("{n_text} {noun}") } else { format!("{n_text} {noun}s") }
}

/// Money for reading: dollars with cents from a dollar up (`$1,234.56`);
/// below a dollar up to four decimals from a cent up (`$0.0143`, `$0.50`),
/// six for smaller amounts (`$0.000003`, the exact micro-dollars); nothing is
/// written as `$0.000000`.
pub fn fmt_money(micros: i64) -> String {
    let abs = micros.unsigned_abs();
    let sign = if micros < 0 { "-" } else { "" };
    if abs == 0 {
        return "$0.00".into();
    }
    if abs >= 1_000_000 {
        return crate::domain::Micros(micros).to_string();
    }
    let digits = if abs >= 10_000 {
        // Four decimals, rounded; at least two.
        let d = format!("{:04}", (abs + 50) / 100);
        if d.len() > 4 {
            return format!("{sign}$1.00");
        }
        let trimmed = d.trim_end_matches('0');
        if trimmed.len() < 2 { d[..2].to_string() } else { trimmed.to_string() }
    } else {
        format!("{abs:06}").trim_end_matches('0').to_string()
    };
    format!("{sign}$0.{digits}")
}

/// Money on a metric card: whole cents from one cent up (`$0.93`, not
/// `$0.925001`); smaller amounts keep their digits.
pub fn fmt_money_card(micros: i64) -> String {
    if (10_000..1_000_000).contains(&micros.abs()) {
        let cents = (micros.abs() + 5_000) / 10_000;
        let sign = if micros < 0 { "-" } else { "" };
        if cents >= 100 { format!("{sign}$1.00") } else { format!("{sign}$0.{cents:02}") }
    } else {
        fmt_money(micros)
    }
}

/// A short compact number: `1.2M`, `34.5k`, `980`.
pub fn fmt_compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A coloured quota bar with its percentage.
pub fn quota_bar(ui: &mut Ui, width: f32, percent: f64) -> egui::Response {
    let color = theme::quota_color(ui, percent);
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = theme::GAP_XS;
        ui.add(
            egui::ProgressBar::new((percent / 100.0).clamp(0.0, 1.0) as f32)
                .desired_width((width - 48.0).max(24.0))
                .desired_height(ROW_BAR_HEIGHT)
                .fill(color),
        );
        ui.label(RichText::new(format!("{percent:.0} %")).color(color))
    })
    .inner
}

const ROW_BAR_HEIGHT: f32 = 10.0;

/// A labelled single-line text field whose label is its accessible name.
pub fn text_field(ui: &mut Ui, label: &str, value: &mut String, hint: &str, width: f32) -> egui::Response {
    let l = ui.label(label);
    ui.add(egui::TextEdit::singleline(value).hint_text(hint).desired_width(width)).labelled_by(l.id)
}

/// A modal yes/no question with a destructive "yes": `Some(answer)` once clicked.
pub fn confirm(ctx: &egui::Context, id: &str, title: &str, body: &str, (yes, no): (&str, &str)) -> Option<bool> {
    let mut answer = None;
    egui::Modal::new(egui::Id::unique(id)).show(ctx, |ui| {
        let danger = theme::palette(ui).danger;
        ui.set_width(460.0);
        ui.label(RichText::new(title).strong().size(16.0));
        ui.label(body);
        ui.add_space(theme::GAP_S);
        ui.horizontal(|ui| {
            if ui.button(RichText::new(yes).color(danger)).clicked() {
                answer = Some(true);
            }
            if ui.button(no).clicked() {
                answer = Some(false);
            }
        });
    });
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_in_the_largest_whole_unit_then_as_a_date() {
        use chrono::TimeZone;
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
        assert_eq!(ago(now, now), "0 s ago");
        assert_eq!(ago(now - chrono::Duration::seconds(59), now), "59 s ago");
        assert_eq!(ago(now - chrono::Duration::seconds(61), now), "1 min ago");
        assert_eq!(ago(now - chrono::Duration::hours(5), now), "5 h ago");
        assert_eq!(ago(now - chrono::Duration::days(3), now), "2026-11-30");
        assert_eq!(ago(now + chrono::Duration::seconds(3), now), "0 s ago", "a clock ahead of the database is not 'in the future'");
    }

    #[test]
    fn money_reads_well_at_every_size() {
        assert_eq!(fmt_money(0), "$0.00", "never $0.000000");
        assert_eq!(fmt_money(3), "$0.000003", "a tiny cost keeps its digits");
        assert_eq!(fmt_money(1_500), "$0.0015");
        assert_eq!(fmt_money(14_321), "$0.0143");
        assert_eq!(fmt_money(500_000), "$0.50");
        assert_eq!(fmt_money(999_990), "$1.00");
        assert_eq!(fmt_money(1_234_567_890), "$1,234.57");
        assert_eq!(fmt_money(-14_321), "-$0.0143");
    }

    #[test]
    fn plurals_agree_with_their_number() {
        assert_eq!(plural(1, "supplier"), "1 supplier");
        assert_eq!(plural(0, "supplier"), "0 suppliers");
        assert_eq!(plural(1200, "account"), "1,200 accounts");
    }
}
