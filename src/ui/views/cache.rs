//! The response cache in the console: on Usage & cost, what the cache saved
//! (hit rate and dollars saved per day, by supplier; per supplier, model and
//! request type) with the purge of the whole cache; in a supplier's detail,
//! its cache settings (on/off, how long answers are kept) and the purge of
//! its entries. Everything is read from the console's snapshots and changed
//! through console commands (audited by the service).

use super::charts::{Unit, date_plot};
use super::{Cx, cell, fmt_int, fmt_money, plural};
use crate::console::{CacheGroup, CacheReport, ConsoleCommand, SupplierDetail, day_number, describe_cache_settings};
use crate::domain::SupplierId;
use crate::domain::cache::CacheSettings;
use crate::ui::theme;
use egui::{RichText, Ui};

/// How many supplier-days the daily table lists.
const DAY_ROWS: usize = 30;

/// A supplier's cache settings being edited.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheForm {
    pub supplier: SupplierId,
    pub enabled: bool,
    pub chat_hours: String,
    pub embeddings_days: String,
    pub error: Option<String>,
}

impl CacheForm {
    pub fn of(supplier: SupplierId, s: &CacheSettings) -> Self {
        CacheForm {
            supplier,
            enabled: s.enabled,
            chat_hours: (s.chat_ttl_secs / 3600).max(1).to_string(),
            embeddings_days: (s.embeddings_ttl_secs / 86_400).max(1).to_string(),
            error: None,
        }
    }

    /// The settings typed, or why they cannot be saved.
    pub fn settings(&self) -> Result<CacheSettings, String> {
        let hours: u64 =
            self.chat_hours.trim().parse().map_err(|_| format!("'{}' is not a whole number of hours", self.chat_hours.trim()))?;
        let days: u64 =
            self.embeddings_days.trim().parse().map_err(|_| format!("'{}' is not a whole number of days", self.embeddings_days.trim()))?;
        let s = CacheSettings {
            enabled: self.enabled,
            chat_ttl_secs: hours.saturating_mul(3600),
            embeddings_ttl_secs: days.saturating_mul(86_400),
        };
        s.validate()?;
        Ok(s)
    }
}

fn fmt_bytes(b: u64) -> String {
    match b {
        0..1_024 => format!("{b} B"),
        1_024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

fn rate(g: &CacheGroup) -> String {
    format!("{:.1} %", g.hit_rate() * 100.0)
}

/// The supplier detail's cache card.
pub fn supplier_card(ui: &mut Ui, d: &SupplierDetail, form: &mut Option<CacheForm>, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    let id = d.supplier.id;
    if form.as_ref().is_some_and(|f| f.supplier != id) {
        *form = None;
    }
    ui.label(RichText::new("Response cache").strong());
    ui.label(
        RichText::new(format!(
            "{} · {} kept ({})",
            describe_cache_settings(&d.cache),
            plural(d.cache_usage.entries as usize, "answer"),
            fmt_bytes(d.cache_usage.bytes)
        ))
        .small()
        .color(p.muted),
    );
    let Some(f) = form.as_mut() else {
        ui.horizontal(|ui| {
            if ui.button("Cache settings…").clicked() {
                *form = Some(CacheForm::of(id, &d.cache));
            }
            if ui.button("Purge this supplier's cache").on_hover_text("Deletes its cached answers (audited)").clicked() {
                cx.send(ConsoleCommand::PurgeCache(Some(id)));
            }
        });
        return;
    };
    ui.checkbox(&mut f.enabled, "Answer repeated deterministic requests from the cache");
    egui::Grid::new("cache_form").num_columns(2).spacing([theme::GAP_M, 6.0]).show(ui, |ui| {
        let l = ui.label("Chat answers kept (hours)");
        ui.add(egui::TextEdit::singleline(&mut f.chat_hours).desired_width(80.0)).labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Embeddings kept (days)");
        ui.add(egui::TextEdit::singleline(&mut f.embeddings_days).desired_width(80.0)).labelled_by(l.id);
        ui.end_row();
    });
    if let Some(e) = &f.error {
        ui.add(egui::Label::new(RichText::new(e).color(p.danger)).wrap());
    }
    let mut close = false;
    ui.horizontal(|ui| {
        if ui.button(RichText::new("Save cache settings").strong()).clicked() {
            match f.settings() {
                Ok(s) => {
                    cx.send(ConsoleCommand::SetCacheSettings { id, settings: s });
                    close = true;
                }
                Err(e) => f.error = Some(e),
            }
        }
        if ui.button("Cancel").clicked() {
            close = true;
        }
    });
    if close {
        *form = None;
    }
}

/// The Usage & cost view's cache panel.
pub fn usage_panel(ui: &mut Ui, r: &CacheReport, confirm_purge: &mut bool, cx: &mut Cx<'_>) {
    let p = *theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Response cache").strong());
            ui.label(
                RichText::new(format!(
                    "{} hits of {} answered requests ({}) · {} saved",
                    fmt_int(r.total.hits as i64),
                    fmt_int(r.total.answered as i64),
                    rate(&r.total),
                    fmt_money(r.total.saved.0)
                ))
                .color(p.muted),
            );
            if ui.small_button("Purge the whole cache…").clicked() {
                *confirm_purge = true;
            }
        });
        if *confirm_purge {
            theme::card(ui).stroke(egui::Stroke::new(1.0, p.danger)).show(ui, |ui| {
                ui.label("Delete every supplier's cached answers? The next requests go to the providers again.");
                ui.horizontal(|ui| {
                    if ui.button(RichText::new("Purge the cache").color(p.danger)).clicked() {
                        cx.send(ConsoleCommand::PurgeCache(None));
                        *confirm_purge = false;
                    }
                    if ui.button("Keep it").clicked() {
                        *confirm_purge = false;
                    }
                });
            });
        }
        if r.total.hits == 0 {
            ui.label(
                RichText::new("No request was answered from the cache in these dates. Deterministic requests (temperature 0, embeddings) are cached by default.")
                    .color(p.muted),
            );
            return;
        }
        let saved: Vec<[f64; 2]> = r.days.iter().map(|(d, g)| [day_number(*d), g.saved.as_dollars_f64()]).collect();
        let hit_rate: Vec<[f64; 2]> = r.days.iter().map(|(d, g)| [day_number(*d), g.hit_rate() * 100.0]).collect();
        ui.columns(2, |c| {
            c[0].label(RichText::new("Dollars saved per day").small().color(p.muted));
            date_plot("cache_saved", Unit::Dollars, 140.0).allow_drag(false).allow_zoom(false).show(&mut c[0], |pl| {
                pl.add(egui_plot::Line::new("saved", saved).color(p.accent).fill(0.0).fill_alpha(0.15));
            });
            c[1].label(RichText::new("Hit rate per day").small().color(p.muted));
            date_plot("cache_hit_rate", Unit::Percent, 140.0).allow_drag(false).allow_zoom(false).show(&mut c[1], |pl| {
                pl.add(egui_plot::Line::new("hit rate", hit_rate).color(p.accent));
            });
        });
        ui.add_space(theme::GAP_S);
        let w = ui.available_width();
        let widths = [110.0, (w - 110.0 - 100.0 * 4.0 - 20.0).max(140.0), 100.0, 100.0, 100.0, 100.0];
        ui.label(RichText::new("Per day, by supplier").small().strong());
        ui.horizontal(|ui| {
            for (h, width) in ["Day", "Supplier", "Hits", "Answered", "Hit rate", "Saved"].iter().zip(widths) {
                cell(ui, width, RichText::new(*h).small().color(p.muted));
            }
        });
        for d in r.supplier_days.iter().take(DAY_ROWS) {
            ui.horizontal(|ui| {
                cell(ui, widths[0], d.day.format("%a %d %b").to_string());
                if cell(ui, widths[1], egui::WidgetText::from(RichText::new(&d.name))).clicked() {
                    cx.goto = Some(super::Goto::Supplier(d.supplier));
                }
                cell(ui, widths[2], fmt_int(d.group.hits as i64));
                cell(ui, widths[3], fmt_int(d.group.answered as i64));
                cell(ui, widths[4], rate(&d.group));
                cell(ui, widths[5], fmt_money(d.group.saved.0));
            });
        }
        if r.supplier_days.len() > DAY_ROWS {
            ui.label(
                RichText::new(format!("and {} earlier; the CSV export has every row (route cache, saved_usd)", plural(r.supplier_days.len() - DAY_ROWS, "supplier-day")))
                    .small()
                    .color(p.muted),
            );
        }
        ui.add_space(theme::GAP_S);
        ui.columns(3, |c| {
            for (ui, (title, groups)) in c.iter_mut().zip([("By supplier", &r.by_supplier), ("By model", &r.by_model), ("By request type", &r.by_request_type)]) {
                ui.label(RichText::new(title).small().strong());
                egui::Grid::new(("cache_groups", title)).num_columns(3).spacing([theme::GAP_S, 2.0]).show(ui, |ui| {
                    for g in groups.iter().take(10) {
                        ui.add(egui::Label::new(&g.key).truncate());
                        ui.label(rate(g));
                        ui.label(fmt_money(g.saved.0));
                        ui.end_row();
                    }
                });
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_whole_hours_and_days_and_refuses_the_rest() {
        let mut f = CacheForm::of(SupplierId(1), &CacheSettings::default());
        assert_eq!((f.chat_hours.as_str(), f.embeddings_days.as_str()), ("24", "30"));
        f.chat_hours = " 2 ".into();
        f.enabled = false;
        assert_eq!(f.settings(), Ok(CacheSettings { enabled: false, chat_ttl_secs: 7200, embeddings_ttl_secs: 30 * 86_400 }));
        f.chat_hours = "0".into();
        assert!(f.settings().unwrap_err().contains("between 1 second and 365 days"));
        f.chat_hours = "1.5".into();
        assert!(f.settings().unwrap_err().contains("not a whole number of hours"));
    }
}
