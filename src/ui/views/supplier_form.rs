//! The Suppliers view's add/edit form: its state ([`Form`]: what is typed,
//! wedding dates added or pending, the routing consequence of the AI mode and
//! the accounts), the wedding-date rules, and drawing it ([`form_ui`], which
//! returns the command to send on Save).

use super::{error_box, text_field};
use crate::console::AccountSummary;
use crate::console::ConsoleCommand;
use crate::domain::SupplierPatch;
use crate::domain::ValidationStatus;
use crate::domain::{AiMode, NewSupplier, Supplier, SupplierId, Tier, VendorType};
use crate::ui::theme;
use chrono::NaiveDate;
use egui::{RichText, Ui};

/// The add/edit form.
#[derive(Debug, Clone)]
pub struct Form {
    /// `None` adds a new supplier.
    pub id: Option<SupplierId>,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub ai_mode: AiMode,
    pub failover: bool,
    /// The time zone as typed (an IANA name); validated before saving.
    pub time_zone: String,
    pub weddings: Vec<NaiveDate>,
    pub new_date: String,
    pub date_error: Option<String>,
    /// A note about the last added date (one in the past is accepted, and said so).
    pub date_note: Option<String>,
    pub error: Option<String>,
    pub saving: bool,
    /// The supplier's accounts when the form opened (none for a new one), to
    /// tell what its AI mode will do with them.
    pub accounts: Vec<AccountSummary>,
    /// The save was asked to be confirmed: the AI mode would strand requests.
    pub confirm: Option<String>,
}

impl Form {
    pub(super) fn new() -> Self {
        Form {
            id: None,
            name: String::new(),
            vendor_type: VendorType::Photographer,
            tier: Tier::Professional,
            ai_mode: AiMode::Platform,
            failover: true,
            time_zone: crate::console::platform_time_zone().name().to_string(),
            weddings: Vec::new(),
            new_date: String::new(),
            date_error: None,
            date_note: None,
            error: None,
            saving: false,
            accounts: Vec::new(),
            confirm: None,
        }
    }

    pub(super) fn edit(s: &Supplier, accounts: &[AccountSummary]) -> Self {
        Form {
            id: Some(s.id),
            name: s.name.clone(),
            vendor_type: s.vendor_type,
            tier: s.tier,
            ai_mode: s.ai_mode,
            failover: s.allow_platform_failover,
            time_zone: s.time_zone.name().to_string(),
            weddings: s.weddings.clone(),
            accounts: accounts.to_vec(),
            ..Form::new()
        }
    }

    /// Adds the date typed in `new_date`, or explains what is wrong with it;
    /// a date before `today` is added with a note that says so.
    pub fn add_date(&mut self, today: NaiveDate) -> bool {
        let text = self.new_date.trim();
        self.date_note = None;
        let (error, added) = match parse_wedding_date(text) {
            Ok(d) if self.weddings.contains(&d) => {
                // Already there: nothing is lost by clearing the field.
                self.new_date.clear();
                (None, true)
            }
            Ok(d) => {
                self.weddings.push(d);
                self.weddings.sort_unstable();
                self.new_date.clear();
                if d < today {
                    self.date_note =
                        Some(format!("{} is in the past: added as a past wedding (it never blocks a migration)", d.format("%a %d %b %Y")));
                }
                (None, true)
            }
            Err(e) => (Some(e), false),
        };
        self.date_error = error;
        added
    }

    /// Before saving: a date still in the field is added (nothing typed is
    /// dropped); one that cannot be added stops the save with its reason.
    pub fn take_pending_date(&mut self, today: NaiveDate) -> Result<(), String> {
        if self.new_date.trim().is_empty() {
            return Ok(());
        }
        let typed = self.new_date.trim().to_string();
        if self.add_date(today) {
            Ok(())
        } else {
            let why = self.date_error.clone().unwrap_or_default();
            Err(format!("The wedding date '{typed}' is not added yet ({why}). Fix it and click Add date, or clear the field, then save."))
        }
    }

    /// What this supplier's AI mode does with its accounts, in one sentence,
    /// and whether it strands its requests (no usable key of its own).
    pub fn routing_consequence(&self) -> (String, bool) {
        if self.ai_mode == AiMode::Platform {
            return ("Requests go to WedSync's platform AI and count against the tier's quota.".into(), false);
        }
        let keyed: Vec<&AccountSummary> = self.accounts.iter().filter(|a| a.enabled && a.fingerprint.is_some()).collect();
        let valid = keyed.iter().any(|a| matches!(a.validation, Some(ValidationStatus::Valid)));
        let fallback = if self.failover {
            "its requests will go to platform AI (and count against its quota)"
        } else {
            "its requests will fail (failing over to platform AI is off)"
        };
        if valid {
            return (
                if self.failover {
                    "Requests go to the supplier's own account; when it is down, to platform AI.".into()
                } else {
                    "Requests go to the supplier's own account only; when it is down, they fail.".into()
                },
                false,
            );
        }
        if keyed.is_empty() {
            let who = if self.id.is_none() { "A new supplier has" } else { "This supplier has" };
            (format!("{who} no key of its own yet: until one is added in Keys, {fallback}."), true)
        } else {
            let status = keyed
                .iter()
                .filter_map(|a| a.validation)
                .map(|v| v.as_str().replace('_', " "))
                .next()
                .unwrap_or_else(|| "not validated".into());
            (format!("Its key failed validation ({status}): until a key validates in Keys, {fallback}."), true)
        }
    }
}

/// Parses a wedding date typed by a user, with a message that says what to write.
pub fn parse_wedding_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("type a date first, e.g. 2026-06-20".into());
    }
    // Strictly YYYY-MM-DD: "2026-09-1" is a date half typed, not the 1st.
    let whole = t.len() == 10 && t.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    let d = t
        .parse::<NaiveDate>()
        .ok()
        .filter(|_| whole)
        .ok_or_else(|| format!("'{t}' is not a date; write it as YYYY-MM-DD, e.g. 2026-06-20"))?;
    if !(2000..=2100).contains(&chrono::Datelike::year(&d)) {
        return Err(format!("{d} is outside 2000–2100; check the year"));
    }
    Ok(d)
}

/// The add/edit form; returns the command to send when the user saves.
pub(super) fn form_ui(ui: &mut Ui, f: &mut Form, close: &mut bool, today: NaiveDate) -> Option<ConsoleCommand> {
    let p = theme::palette(ui);
    ui.label(RichText::new(if f.id.is_some() { "Edit supplier" } else { "Add a supplier" }).size(18.0).strong());
    ui.add_space(theme::GAP_S);
    egui::Grid::new("supplier_form").num_columns(2).spacing([theme::GAP_M, 8.0]).show(ui, |ui| {
        let l = ui.label("Name");
        ui.add(egui::TextEdit::singleline(&mut f.name).hint_text("e.g. Capture Moments").desired_width(220.0)).labelled_by(l.id);
        ui.end_row();
        enum_row(ui, "Vendor type", &mut f.vendor_type, VendorType::ALL);
        enum_row(ui, "Tier", &mut f.tier, Tier::ALL);
        enum_row(ui, "AI mode", &mut f.ai_mode, AiMode::ALL);
        let l = ui.label("Time zone");
        ui.add(egui::TextEdit::singleline(&mut f.time_zone).hint_text("e.g. America/Los_Angeles").desired_width(220.0))
            .labelled_by(l.id)
            .on_hover_text("Wedding days are the supplier's local days in this time zone");
        ui.end_row();
    });
    // Checked after the fields took this frame's typing: checked before, the
    // first letter typed would show "name required" for one frame and move
    // everything below it.
    let name_err = crate::domain::supplier::validate_name(&f.name).err();
    let tz = crate::domain::supplier::parse_time_zone(&f.time_zone);
    // Outside the grid, so the sentence has the panel's whole width.
    ui.checkbox(&mut f.failover, "Fail over to platform AI when its own provider is down");
    let (consequence, strands) = f.routing_consequence();
    ui.add(egui::Label::new(RichText::new(consequence).small().color(if strands { p.warn } else { p.muted })).wrap());
    if let Err(e) = &tz {
        ui.add(egui::Label::new(RichText::new(e).color(p.danger)).wrap());
        // Suggestions to click: names containing what was typed.
        let typed = f.time_zone.rsplit('/').next().unwrap_or_default().to_string();
        ui.horizontal_wrapped(|ui| {
            for name in crate::domain::supplier::time_zone_suggestions(&typed, 6) {
                if ui.small_button(name).clicked() {
                    f.time_zone = name.to_string();
                }
            }
        });
    }
    if let (Some(e), false) = (&name_err, f.name.is_empty()) {
        ui.label(RichText::new(e.replace(" (use --name \"Studio Name\")", "")).color(p.danger));
    }
    ui.add_space(theme::GAP_S);
    ui.label(RichText::new(format!("Wedding dates ({})", f.weddings.len())).strong());
    ui.horizontal(|ui| {
        let r = text_field(ui, "Wedding date", &mut f.new_date, "YYYY-MM-DD", 110.0);
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if r.changed() {
            f.date_error = None;
        }
        if ui.button("Add date").clicked() || enter {
            f.add_date(today);
        }
    });
    if let Some(e) = &f.date_error {
        ui.add(egui::Label::new(RichText::new(e).color(p.danger)).wrap());
    }
    if let Some(n) = &f.date_note {
        ui.add(egui::Label::new(RichText::new(n).color(p.warn)).wrap());
    }
    let mut remove = None;
    egui::ScrollArea::vertical().id_salt("form_weddings").max_height(150.0).show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            for (i, d) in f.weddings.iter().enumerate() {
                if ui.small_button(format!("{d}  ×")).on_hover_text("Remove this date").clicked() {
                    remove = Some(i);
                }
            }
        });
    });
    if let Some(i) = remove {
        f.weddings.remove(i);
    }
    if let Some(e) = &f.error {
        ui.add_space(theme::GAP_S);
        error_box(ui, e);
    }
    ui.add_space(theme::GAP_M);
    let mut cmd = None;
    ui.horizontal(|ui| {
        let can_save = name_err.is_none() && tz.is_ok() && !f.saving && f.confirm.is_none();
        let mut save = ui.add_enabled(can_save, egui::Button::new(RichText::new("Save").strong())).clicked();
        if save {
            if let Err(e) = f.take_pending_date(today) {
                f.error = Some(e);
                save = false;
            } else if let (c, true) = f.routing_consequence() {
                // Ask first: saving would strand the supplier's requests.
                f.confirm = Some(c);
                save = false;
            }
        }
        if save {
            f.error = None;
            cmd = Some(f.command(tz.clone().ok()));
        }
        if ui.button("Cancel").clicked() {
            *close = true;
        }
        if f.saving {
            ui.spinner();
        }
    });
    if let Some(c) = f.confirm.clone() {
        theme::card(ui).stroke(egui::Stroke::new(1.0, p.warn)).show(ui, |ui| {
            ui.add(egui::Label::new(RichText::new("Save this supplier in client mode?").strong()).wrap());
            ui.add(egui::Label::new(c).wrap());
            ui.horizontal(|ui| {
                if ui.button(RichText::new("Save anyway").color(p.warn)).clicked() {
                    f.confirm = None;
                    cmd = Some(f.command(tz.clone().ok()));
                }
                if ui.button("Go back").clicked() {
                    f.confirm = None;
                }
            });
        });
    }
    if name_err.is_some() && f.name.is_empty() {
        ui.label(RichText::new("A name is needed before saving.").small().color(p.muted));
    }
    cmd
}

impl Form {
    /// The add or edit command for what the form holds.
    fn command(&self, tz: Option<crate::domain::supplier::Tz>) -> ConsoleCommand {
        match self.id {
            None => {
                let mut n = NewSupplier::new(self.name.trim(), self.vendor_type, self.tier, self.ai_mode);
                n.allow_platform_failover = self.failover;
                n.weddings = self.weddings.clone();
                n.time_zone = tz.unwrap_or(n.time_zone);
                ConsoleCommand::AddSupplier(n)
            }
            Some(id) => ConsoleCommand::EditSupplier {
                id,
                patch: SupplierPatch {
                    name: Some(self.name.trim().to_string()),
                    vendor_type: Some(self.vendor_type),
                    tier: Some(self.tier),
                    ai_mode: Some(self.ai_mode),
                    allow_platform_failover: Some(self.failover),
                    time_zone: tz,
                    set_weddings: Some(self.weddings.clone()),
                    ..Default::default()
                },
            },
        }
    }
}

fn enum_row<T: Copy + PartialEq + std::fmt::Display>(ui: &mut Ui, label: &str, value: &mut T, all: &[T]) {
    let l = ui.label(label);
    egui::ComboBox::from_id_salt(("form", label))
        .selected_text(value.to_string())
        .width(160.0)
        .show_ui(ui, |ui| {
            for v in all {
                ui.selectable_value(value, *v, v.to_string());
            }
        })
        .response
        .labelled_by(l.id);
    ui.end_row();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_wedding_date_is_added_and_said_so_and_a_pending_one_is_not_dropped() {
        let today: NaiveDate = "2026-06-15".parse().unwrap();
        let mut f = Form::new();
        f.new_date = "2026-05-02".into();
        assert!(f.add_date(today));
        assert!(f.date_note.as_deref().is_some_and(|n| n.contains("is in the past")));
        f.new_date = "2026-09-1".into();
        assert!(f.take_pending_date(today).unwrap_err().contains("'2026-09-1' is not added yet"));
        f.new_date = "2026-09-12".into();
        assert!(f.take_pending_date(today).is_ok());
        assert_eq!(f.weddings.len(), 2);
        assert!(f.new_date.is_empty() && f.date_note.is_none());
    }

    #[test]
    fn wedding_dates_are_validated_with_clear_messages() {
        assert!(parse_wedding_date("2026-06-20").is_ok());
        assert!(parse_wedding_date("20/06/2026").unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_wedding_date("").unwrap_err().contains("type a date"));
        assert!(parse_wedding_date("1900-01-01").unwrap_err().contains("2000–2100"));
        assert!(parse_wedding_date("2026-02-30").is_err());
    }
}
