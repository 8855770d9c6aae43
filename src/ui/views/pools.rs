//! Key pools in the console: a key's pool line in Keys (share of its
//! pool's traffic, headroom, 429 rate, spend against its budget), the form
//! that edits its pool settings (weight, requests and tokens per minute,
//! monthly budget; sent as a console command), and the pools card of the
//! Health view.

use super::{Cx, cell, text_field};
use crate::console::ConsoleCommand;
use crate::domain::keypool::{KeySnapshot, PoolSettings};
use crate::domain::{AccountId, Micros};
use crate::ui::theme;
use egui::{RichText, Ui};

/// A key's pool figures in one line.
pub fn summary(k: Option<&KeySnapshot>, s: &PoolSettings) -> String {
    let mut parts = Vec::new();
    if let Some(k) = k {
        parts.push(format!("{:.0} % of traffic", k.share * 100.0));
        match k.blocked {
            Some(b) => parts.push(b.describe().to_string()),
            None => parts.push(format!("{:.0} % headroom", k.headroom * 100.0)),
        }
        parts.push(format!("{:.1} % 429s", k.rate_429() * 100.0));
        if let Some(b) = s.monthly_budget {
            parts.push(format!("{} of {b}", k.spent));
        }
    } else {
        if s.weight.is_some() {
            parts.push(format!("weight {}", s.weight()));
        }
        if let Some(b) = s.monthly_budget {
            parts.push(format!("budget {b}"));
        }
    }
    if parts.is_empty() { "—".into() } else { parts.join(" · ") }
}

/// The pool settings form of one key; numbers as typed until saved.
pub struct PoolForm {
    pub id: AccountId,
    pub label: String,
    weight: String,
    rpm: String,
    tpm: String,
    budget: String,
    pub error: Option<String>,
    pub saving: bool,
}

fn text<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl PoolForm {
    pub fn new(id: AccountId, label: &str, s: &PoolSettings) -> Self {
        Self {
            id,
            label: label.to_string(),
            weight: text(s.weight),
            rpm: text(s.rpm),
            tpm: text(s.tpm),
            budget: s
                .monthly_budget
                .map(|b| b.to_decimal_string().trim_end_matches('0').trim_end_matches('.').to_string())
                .unwrap_or_default(),
            error: None,
            saving: false,
        }
    }

    /// The settings typed (an empty field: unset).
    pub fn parse(&self) -> Result<PoolSettings, String> {
        fn num<T: std::str::FromStr>(v: &str, what: &str) -> Result<Option<T>, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<T>().map(Some).map_err(|_| format!("{what}: '{v}' is not a whole number"))
        }
        let budget = match self.budget.trim().trim_start_matches('$') {
            "" => None,
            b => Some(Micros::parse_decimal(b).map_err(|e| format!("monthly budget: {e}"))?),
        };
        Ok(PoolSettings {
            weight: num(&self.weight, "weight")?,
            rpm: num(&self.rpm, "requests per minute")?,
            tpm: num(&self.tpm, "tokens per minute")?,
            monthly_budget: budget,
        })
    }
}

/// The form as a modal; closes itself on Cancel.
pub fn dialog(ctx: &egui::Context, form: &mut Option<PoolForm>, cx: &mut Cx<'_>) {
    let Some(f) = form.as_mut() else { return };
    let mut close = false;
    egui::Modal::new(egui::Id::unique("pool_settings")).show(ctx, |ui| {
        ui.set_width(460.0);
        ui.label(RichText::new(format!("Pool settings of {}", f.label)).strong().size(16.0));
        ui.label(
            RichText::new("Empty fields are unset. The router skips the key at its limits or budget; the rest of the pool carries on.")
                .small()
                .color(theme::palette(ui).muted),
        );
        ui.add_space(theme::GAP_S);
        egui::Grid::new("pool_form").num_columns(2).spacing([theme::GAP_M, theme::GAP_S]).show(ui, |ui| {
            text_field(ui, "Weight", &mut f.weight, "1 (1–1000)", 200.0);
            ui.end_row();
            text_field(ui, "Requests per minute", &mut f.rpm, "no limit", 200.0);
            ui.end_row();
            text_field(ui, "Tokens per minute", &mut f.tpm, "no limit", 200.0);
            ui.end_row();
            text_field(ui, "Monthly budget ($)", &mut f.budget, "no budget", 200.0);
            ui.end_row();
        });
        if let Some(e) = &f.error {
            ui.label(RichText::new(e).color(theme::palette(ui).danger));
        }
        ui.horizontal(|ui| {
            if f.saving {
                ui.spinner();
            } else if ui.button("Save").clicked() {
                match f.parse() {
                    Ok(settings) => {
                        f.saving = true;
                        f.error = None;
                        cx.send(ConsoleCommand::SetPoolSettings { id: f.id, settings });
                    }
                    Err(e) => f.error = Some(e),
                }
            }
            if ui.button("Cancel").clicked() {
                close = true;
            }
        });
    });
    if close {
        *form = None;
    }
}

/// The Health view's card: every platform key's share, headroom and 429 rate.
pub fn card(ui: &mut Ui, keys: &[KeySnapshot]) {
    let platform: Vec<&KeySnapshot> = keys.iter().filter(|k| k.platform).collect();
    if platform.is_empty() {
        return;
    }
    let p = *theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new("Key pools").strong());
        ui.label(
            RichText::new("Platform keys per provider pool: share of the last five minutes' calls, headroom now, 429 rate.")
                .small()
                .color(p.muted),
        );
        let widths = [90.0, 220.0, 110.0, 160.0, 110.0, 120.0];
        ui.horizontal(|ui| {
            for (h, w) in ["Pool", "Key", "Share", "Headroom", "429 rate", "Last minute"].iter().zip(widths) {
                cell(ui, w, RichText::new(*h).small().color(p.muted));
            }
        });
        for k in platform {
            ui.horizontal(|ui| {
                cell(ui, widths[0], k.pool);
                cell(ui, widths[1], k.label.as_str());
                cell(ui, widths[2], format!("{:.0} %", k.share * 100.0));
                let (h, color) = match k.blocked {
                    Some(b) => (b.describe().to_string(), p.danger),
                    None if k.headroom < 0.2 => (format!("{:.0} %", k.headroom * 100.0), p.warn),
                    None => (format!("{:.0} %", k.headroom * 100.0), p.ok),
                };
                cell(ui, widths[3], RichText::new(h).color(color));
                let r = k.rate_429();
                let rate = RichText::new(format!("{:.1} %", r * 100.0));
                cell(ui, widths[4], if r > 0.05 { rate.color(p.warn) } else { rate });
                cell(ui, widths[5], format!("{} req · {} tok", k.last_minute.0, k.last_minute.1));
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_parses_what_is_typed() {
        let s = PoolSettings { weight: Some(2), rpm: Some(60), tpm: None, monthly_budget: Some(Micros(250_500_000)) };
        let f = PoolForm::new(AccountId(1), "k", &s);
        assert_eq!(f.budget, "250.5");
        assert_eq!(f.parse().unwrap(), s);
        let mut f = PoolForm::new(AccountId(1), "k", &PoolSettings::default());
        assert_eq!(f.parse().unwrap(), PoolSettings::default());
        f.rpm = "lots".into();
        assert!(f.parse().unwrap_err().contains("requests per minute"));
        assert_eq!(summary(None, &PoolSettings::default()), "—");
    }
}
