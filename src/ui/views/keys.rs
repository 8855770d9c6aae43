//! Keys: WedSync's platform accounts and suppliers' own accounts with masked
//! fingerprints and their last validation; add (the key typed into a password
//! field that is cleared on submit), validate live with progress, rotate and
//! remove (a supplier's active route needs a second confirmation); and
//! gateway tokens per supplier — issue (the token shown once, with a copy
//! button), list with hints and last use, revoke. Everything goes through
//! console commands; the keychain is reached only by the service.

use super::picker::Picker;
use super::{Cx, ago, cell, confirm, empty_state, error_box, header, loading, text_field};
use crate::console::{ConsoleCommand, ConsoleEvent, KeyRow, KeysView, TokenRow};
use crate::domain::Secret;
use crate::domain::TokenId;
use crate::domain::provider::NewKey;
use crate::domain::{AccountId, AccountOwner, AzureConfig, ProviderKind, SupplierId, ValidationStatus};
use crate::ui::theme;
use egui::{RichText, Ui};
use std::collections::HashSet;
use std::sync::Arc;

/// The add-key form. `key` lives only until submit (then it becomes a `Secret`).
struct AddForm {
    provider: ProviderKind,
    platform: bool,
    owner: Picker,
    label: String,
    base_url: String,
    model: String,
    deployment: String,
    api_version: String,
    key: String,
    validate: bool,
}

impl Default for AddForm {
    fn default() -> Self {
        Self {
            provider: ProviderKind::OpenAi,
            platform: true,
            owner: Picker::default(),
            label: String::new(),
            base_url: String::new(),
            model: String::new(),
            deployment: String::new(),
            api_version: "2024-10-21".into(),
            key: String::new(),
            validate: true,
        }
    }
}

const ADD_KEY_FIELD: &str = "keys.add.secret";
const ROTATE_KEY_FIELD: &str = "keys.rotate.secret";

/// Drops a key field's egui state, whose undo history holds earlier versions of the typed text.
fn forget_field(ui: &Ui, name: &str) {
    ui.ctx().data_mut(|d| d.remove::<egui::text_edit::TextEditState>(egui::Id::unique(name)));
}

struct Rotate {
    id: AccountId,
    label: String,
    key: String,
}

#[derive(Default)]
pub struct State {
    data: Option<Arc<KeysView>>,
    error: Option<String>,
    pub dirty: bool,
    requested: bool,
    form: Option<AddForm>,
    form_error: Option<String>,
    saving: bool,
    validating: HashSet<AccountId>,
    rotate: Option<Rotate>,
    confirm_remove: Option<(AccountId, String)>,
    /// The second confirmation: the account is a supplier's active route.
    force_remove: Option<(AccountId, String)>,
    token_supplier: Picker,
    token_error: Option<String>,
    issuing: bool,
    /// The new token, shown once in a dialog; dropped (and wiped) when closed.
    issued: Option<(String, Secret)>,
    /// A key's pool settings being edited.
    pool_form: Option<super::pools::PoolForm>,
}

impl State {
    pub fn on_event(&mut self, ev: ConsoleEvent, cx_toasts: &mut crate::ui::toasts::Toasts) {
        match ev {
            ConsoleEvent::Keys(v) => {
                self.requested = false;
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::Failed { channel: crate::console::Channel::Keys, message } => {
                self.requested = false;
                self.error = Some(message);
            }
            ConsoleEvent::KeySaved { label, fingerprint, created, validation } => {
                self.saving = false;
                self.form = None;
                self.form_error = None;
                self.rotate = None;
                let v = match &validation {
                    Some(v) if v.status == ValidationStatus::Valid => " — validated".to_string(),
                    Some(v) => format!(" — validation: {} ({})", v.status.as_str().replace('_', " "), v.message),
                    None => String::new(),
                };
                let what = if created { "Added" } else { "Rotated the key of" };
                match validation {
                    Some(val) if val.status != ValidationStatus::Valid => cx_toasts.error(format!("{what} '{label}' ({fingerprint}){v}")),
                    _ => cx_toasts.info(format!("{what} '{label}' ({fingerprint}){v}")),
                }
                self.dirty = true;
            }
            ConsoleEvent::KeyValidated { id, label, validation } => {
                self.validating.remove(&id);
                if validation.status == ValidationStatus::Valid {
                    cx_toasts.info(format!("'{label}': the key is valid"));
                } else {
                    cx_toasts.error(format!("'{label}': {} — {}", validation.status.as_str().replace('_', " "), validation.message));
                }
                self.dirty = true;
            }
            ConsoleEvent::PoolSettingsSaved { label, summary, .. } => {
                self.pool_form = None;
                cx_toasts.info(format!("'{label}' in its pool: {summary}"));
                self.dirty = true;
            }
            ConsoleEvent::KeyRemoved { label, .. } => {
                cx_toasts.info(format!("Removed '{label}' and its keychain entry"));
                self.dirty = true;
            }
            ConsoleEvent::KeyRemoveNeedsForce { id, message } => self.force_remove = Some((id, message)),
            ConsoleEvent::TokenIssued { supplier_name, token, hint, .. } => {
                self.issuing = false;
                self.token_error = None;
                cx_toasts.info(format!("Issued gateway token {hint} for '{supplier_name}'"));
                self.issued = Some((supplier_name, token));
                self.dirty = true;
            }
            ConsoleEvent::TokenRevoked { hint } => {
                cx_toasts.info(format!("Revoked gateway token {hint}"));
                self.dirty = true;
            }
            ConsoleEvent::Failed { message, .. } => {
                // A key or token action failed: show it where it was started.
                if let Some(f) = self.pool_form.as_mut().filter(|f| f.saving) {
                    f.saving = false;
                    f.error = Some(message.clone());
                } else if self.saving {
                    self.form_error = Some(message.clone());
                } else if self.issuing {
                    self.token_error = Some(message.clone());
                }
                self.saving = false;
                self.issuing = false;
                self.validating.clear();
                cx_toasts.error(message);
                self.dirty = true;
            }
            _ => {}
        }
    }

    /// Whether a key action is running (spinners animate).
    fn busy(&self) -> bool {
        self.saving || self.issuing || !self.validating.is_empty() || (self.requested && self.data.is_none())
    }
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    if (st.data.is_none() && st.error.is_none() || st.dirty) && !st.requested {
        st.dirty = false;
        st.requested = true;
        cx.send(ConsoleCommand::LoadKeys);
    }
    header(ui, "Keys", "provider accounts and gateway tokens");
    if let Some(e) = &st.error {
        error_box(ui, e);
    }
    let Some(v) = st.data.clone() else {
        if st.error.is_none() {
            loading(ui, "Loading accounts…");
        }
        return;
    };
    let p = theme::palette(ui);
    ui.horizontal(|ui| {
        let (text, color) = if v.demo { (v.vault.as_str(), p.warn) } else { (v.vault.as_str(), p.muted) };
        theme::card(ui).inner_margin(egui::Margin::symmetric(8, 3)).show(ui, |ui| {
            ui.label(RichText::new(format!("Keys: {text}")).color(color).strong());
        });
        if ui.add_enabled(st.form.is_none(), egui::Button::new("Add key…")).clicked() {
            st.form = Some(AddForm::default());
            st.form_error = None;
        }
    });
    if let Some(e) = &v.vault_error {
        error_box(ui, &format!("The keychain cannot be used: {e}"));
    }
    if !v.orphans.is_empty() {
        orphan_notice(ui, &v.orphans);
    }
    ui.add_space(theme::GAP_S);
    egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        if st.form.is_some() {
            add_form(ui, st, cx);
            ui.add_space(theme::GAP_M);
        }
        let (platform, supplier): (Vec<&KeyRow>, Vec<&KeyRow>) = v.accounts.iter().partition(|a| a.owner == AccountOwner::Platform);
        theme::card(ui).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(format!("Platform accounts ({})", platform.len())).strong());
            ui.label(
                RichText::new("WedSync's own provider accounts: usage counts against the suppliers' tier quotas.").small().color(p.muted),
            );
            ui.add_space(theme::GAP_XS);
            if platform.is_empty() {
                ui.label(
                    RichText::new("No platform account yet: add WedSync's OpenAI, Anthropic or Azure key with Add key.").color(p.muted),
                );
            } else {
                accounts_table(ui, "platform_keys", &platform, st, cx, 10);
            }
        });
        ui.add_space(theme::GAP_M);
        theme::card(ui).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(format!("Supplier accounts ({})", supplier.len())).strong());
            ui.label(RichText::new("Suppliers' own provider accounts (client AI): billed to the supplier.").small().color(p.muted));
            ui.add_space(theme::GAP_XS);
            if supplier.is_empty() {
                ui.label(RichText::new("No supplier has its own account yet.").color(p.muted));
            } else {
                accounts_table(ui, "supplier_keys", &supplier, st, cx, 12);
            }
        });
        ui.add_space(theme::GAP_M);
        tokens_card(ui, &v.tokens, st, cx);
    });
    dialogs(ui, st, cx);
    if st.busy() {
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
    }
}

/// The accounts tables' columns: Account, Owner, Provider, Key, Last
/// validation, Actions, Pool. Provider, Key and Actions (its width given per
/// table: [`ACTIONS_PLATFORM`], [`ACTIONS_SUPPLIER`]) are fixed; the others
/// share what is left by these weights, never below these minimums.
const ACCOUNT_FIXED: [Option<f32>; 7] = [None, None, Some(100.0), Some(120.0), None, Some(0.0), None];
/// Validate, Pool…, Rotate…, Remove….
const ACTIONS_PLATFORM: f32 = 316.0;
/// Validate, Rotate…, Remove….
const ACTIONS_SUPPLIER: f32 = 250.0;
const ACCOUNT_SHARE: [(f32, f32); 7] = [(0.30, 140.0), (0.22, 110.0), (0.0, 0.0), (0.0, 0.0), (0.24, 110.0), (0.0, 0.0), (0.24, 100.0)];

/// The accounts tables' column widths when `avail` points are left for the
/// columns themselves (the spacing between them already taken out). Wider
/// than `avail` only when even the minimums do not fit; the table then
/// scrolls sideways. Without `owner` (the platform's table, where every
/// owner is WedSync) the Owner column is 0 wide and not shown.
fn account_widths(avail: f32, actions: f32, owner: bool) -> [f32; 7] {
    let (mut columns, mut shares) = (ACCOUNT_FIXED, ACCOUNT_SHARE);
    columns[5] = Some(actions);
    if !owner {
        // Owner's share goes to Account, whose labels it was cutting.
        columns[1] = Some(0.0);
        shares[0].0 += shares[1].0;
    }
    let mut w = columns.map(|f| f.unwrap_or(0.0));
    let fixed: f32 = w.iter().sum();
    // A column whose share falls below its minimum takes the minimum, and
    // the others share what is left; until no share falls below.
    let mut at_min = [false; 7];
    loop {
        let pinned: f32 = (0..7).filter(|&i| at_min[i]).map(|i| shares[i].1).sum();
        let left = (avail - fixed - pinned).max(0.0);
        let weight: f32 = (0..7).filter(|&i| columns[i].is_none() && !at_min[i]).map(|i| shares[i].0).sum();
        let mut changed = false;
        for i in (0..7).filter(|&i| columns[i].is_none()) {
            let (share, min) = shares[i];
            w[i] = if at_min[i] { min } else { (left * share / weight.max(f32::EPSILON)).floor() };
            if !at_min[i] && w[i] < min {
                at_min[i] = true;
                changed = true;
            }
        }
        if !changed {
            return w;
        }
    }
}

fn accounts_table(ui: &mut Ui, id: &str, rows: &[&KeyRow], st: &mut State, cx: &mut Cx<'_>, visible: usize) {
    // The platform's table has no Owner column (every owner is WedSync):
    // its Account column gets the room.
    let platform = rows.iter().any(|a| a.owner == AccountOwner::Platform);
    // Room for the vertical scroll bar and the spacing between the cells.
    let cells = if platform { 6.0 } else { 7.0 };
    let gaps = ui.spacing().item_spacing.x * (cells - 1.0) + ui.spacing().scroll.bar_width + ui.spacing().scroll.bar_outer_margin;
    let widths = account_widths(ui.available_width() - gaps, if platform { ACTIONS_PLATFORM } else { ACTIONS_SUPPLIER }, !platform);
    egui::ScrollArea::horizontal().id_salt((id, "sideways")).auto_shrink([false, true]).show(ui, |ui| {
        accounts_rows(ui, id, rows, st, cx, visible, widths);
    });
}

#[allow(clippy::too_many_arguments)]
fn accounts_rows(ui: &mut Ui, id: &str, rows: &[&KeyRow], st: &mut State, cx: &mut Cx<'_>, visible: usize, widths: [f32; 7]) {
    let now = cx.handle.now();
    let p = theme::palette(ui);
    let head = |ui: &mut Ui| {
        ui.horizontal(|ui| {
            for (h, w) in ["Account", "Owner", "Provider", "Key", "Last validation", "Actions", "Pool"].iter().zip(widths) {
                if w > 0.0 {
                    cell(ui, w, RichText::new(*h).small().color(p.muted));
                }
            }
        });
    };
    head(ui);
    let row_h = theme::ROW_HEIGHT + 4.0;
    let max_h = row_h * visible as f32;
    egui::ScrollArea::vertical().id_salt(id).max_height(max_h).auto_shrink([false, true]).show_rows(ui, row_h, rows.len(), |ui, range| {
        for a in &rows[range] {
            ui.horizontal(|ui| {
                ui.set_height(theme::ROW_HEIGHT);
                cell(ui, widths[0], RichText::new(&a.label));
                if widths[1] > 0.0 {
                    cell(ui, widths[1], RichText::new(&a.owner_name));
                }
                cell(ui, widths[2], RichText::new(a.provider.display_name()));
                // A fingerprint in monospace; its absence in words (monospace spaces read as gaps).
                cell(
                    ui,
                    widths[3],
                    a.fingerprint.as_deref().map_or_else(|| RichText::new("no key").color(p.muted), |f| RichText::new(f).monospace()),
                );
                let (text, color) = match a.validation {
                    Some(ValidationStatus::Valid) => ("valid".to_string(), p.ok),
                    Some(s) => (s.as_str().replace('_', " "), p.danger),
                    None => ("not validated".to_string(), p.muted),
                };
                let when = a.validated_at.map(|t| format!(" · {}", ago(t, now))).unwrap_or_default();
                let msg = a.message.as_deref().filter(|m| !m.is_empty() && a.validation != Some(ValidationStatus::Valid));
                let full = match msg {
                    Some(m) => format!("{text}{when} — {m}"),
                    None => format!("{text}{when}"),
                };
                let r = cell(ui, widths[4], RichText::new(&full).color(color));
                if let Some(m) = msg {
                    r.on_hover_text(m);
                }
                // Actions in a fixed width, so that the pool line after them
                // never pushes them out of view.
                ui.allocate_ui_with_layout(
                    egui::vec2(widths[5], theme::ROW_HEIGHT),
                    egui::Layout::left_to_right(egui::Align::Center),
                    |ui| {
                        ui.set_width(widths[5]);
                        if st.validating.contains(&a.id) {
                            ui.spinner();
                            ui.label(RichText::new("validating…").color(p.muted));
                        } else if ui.add_enabled(a.fingerprint.is_some(), egui::Button::new("Validate").small()).clicked() {
                            st.validating.insert(a.id);
                            cx.send(ConsoleCommand::ValidateKey(a.id));
                        }
                        if a.owner == AccountOwner::Platform && ui.add(egui::Button::new("Pool…").small()).clicked() {
                            st.pool_form = Some(super::pools::PoolForm::new(a.id, &a.label, &a.pool_settings));
                        }
                        if ui.add(egui::Button::new("Rotate…").small()).clicked() {
                            st.rotate = Some(Rotate { id: a.id, label: a.label.clone(), key: String::new() });
                        }
                        if ui.add(egui::Button::new("Remove…").small()).clicked() {
                            st.confirm_remove = Some((a.id, a.label.clone()));
                        }
                    },
                );
                let pool = super::pools::summary(a.pool.as_ref(), &a.pool_settings);
                cell(ui, widths[6], RichText::new(&pool).small()).on_hover_text(crate::console::pool_settings_text(&a.pool_settings));
            });
        }
    });
}

fn add_form(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let p = theme::palette(ui);
    let Some(f) = st.form.as_mut() else { return };
    let mut submit = false;
    let mut cancel = false;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new("Add a provider account").strong());
        ui.label(
            RichText::new("The key goes straight to the keychain; the database keeps only its masked fingerprint.").small().color(p.muted),
        );
        ui.add_space(theme::GAP_S);
        egui::Grid::new("add_key_form").num_columns(2).spacing([theme::GAP_M, theme::GAP_S]).show(ui, |ui| {
            ui.label("Provider");
            egui::ComboBox::from_id_salt("key_provider").selected_text(f.provider.display_name()).show_ui(ui, |ui| {
                for k in [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::AzureOpenAi] {
                    ui.selectable_value(&mut f.provider, k, k.display_name());
                }
            });
            ui.end_row();
            ui.label("Owner");
            ui.horizontal(|ui| {
                ui.radio_value(&mut f.platform, true, "WedSync platform");
                ui.radio_value(&mut f.platform, false, "A supplier");
            });
            ui.end_row();
            if !f.platform {
                f.owner.show(ui, "Owner", "type a supplier's name, vendor type, tier or ID", 320.0, &cx.picks.suppliers);
                ui.end_row();
            }
            text_field(ui, "Label", &mut f.label, "optional, e.g. OpenAI production", 320.0);
            ui.end_row();
            let url_hint =
                if f.provider == ProviderKind::AzureOpenAi { "https://RESOURCE.openai.azure.com" } else { "optional: the provider's API" };
            text_field(ui, "Base URL", &mut f.base_url, url_hint, 320.0);
            ui.end_row();
            text_field(ui, "Model", &mut f.model, "optional: a cheap default model", 320.0);
            ui.end_row();
            if f.provider == ProviderKind::AzureOpenAi {
                text_field(ui, "Deployment", &mut f.deployment, "the deployment's name", 320.0);
                ui.end_row();
                text_field(ui, "API version", &mut f.api_version, "2024-10-21", 320.0);
                ui.end_row();
            }
            let l = ui.label("API key");
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut f.key)
                        .password(true)
                        .hint_text("paste the key; it is never shown")
                        .desired_width(320.0),
                )
                .labelled_by(l.id);
            if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                submit = true;
            }
            ui.end_row();
            ui.label("");
            ui.checkbox(&mut f.validate, "Validate live after saving");
            ui.end_row();
        });
        if let Some(e) = &st.form_error {
            ui.label(RichText::new(e).color(p.danger));
        }
        ui.horizontal(|ui| {
            if st.saving {
                ui.spinner();
                ui.label(RichText::new(if f.validate { "Saving and validating…" } else { "Saving…" }).color(p.muted));
            } else {
                submit |= ui.button("Save key").clicked();
                cancel = ui.button("Cancel").clicked();
            }
        });
    });
    if cancel {
        st.form = None;
        st.form_error = None;
        return;
    }
    if submit && !st.saving {
        let owner = if f.platform {
            Ok(AccountOwner::Platform)
        } else {
            f.owner.resolve(&cx.picks.suppliers, "supplier").map(|n| AccountOwner::Supplier(SupplierId(n)))
        };
        let owner = match owner {
            Ok(o) => o,
            Err(e) => {
                st.form_error = Some(e);
                return;
            }
        };
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let new = NewKey {
            owner,
            provider: f.provider,
            label: opt(&f.label),
            base_url: opt(&f.base_url),
            default_model: opt(&f.model),
            azure: (f.provider == ProviderKind::AzureOpenAi)
                .then(|| AzureConfig { deployment: f.deployment.trim().to_string(), api_version: f.api_version.trim().to_string() }),
        };
        // The typed key leaves the text field now; Secret wipes the buffer.
        let key = Secret::new(std::mem::take(&mut f.key));
        forget_field(ui, ADD_KEY_FIELD);
        st.saving = true;
        st.form_error = None;
        cx.send(ConsoleCommand::AddKey { new, key, validate: f.validate });
    }
}

fn tokens_card(ui: &mut Ui, tokens: &[TokenRow], st: &mut State, cx: &mut Cx<'_>) {
    let now = cx.handle.now();
    let p = theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        let active = tokens.iter().filter(|t| t.revoked_at.is_none()).count();
        ui.label(RichText::new(format!("Gateway tokens ({active} active)")).strong());
        ui.label(
            RichText::new("What the WedSync platform presents for one supplier. Only a hash is kept: a token is shown once, when issued.")
                .small()
                .color(p.muted),
        );
        ui.add_space(theme::GAP_XS);
        ui.horizontal(|ui| {
            let picked = st.token_supplier.show(ui, "Token for", "type a supplier's name or ID", 260.0, &cx.picks.suppliers);
            if picked.chosen.is_some() {
                st.token_error = None;
            }
            if st.issuing {
                ui.spinner();
            } else if ui.button("Issue token").clicked() {
                match st.token_supplier.resolve(&cx.picks.suppliers, "supplier") {
                    Ok(n) => {
                        st.issuing = true;
                        st.token_error = None;
                        cx.send(ConsoleCommand::IssueToken(SupplierId(n)));
                    }
                    Err(e) => st.token_error = Some(e),
                }
            }
        });
        if let Some(e) = &st.token_error {
            ui.label(RichText::new(e).color(p.danger));
        }
        ui.add_space(theme::GAP_XS);
        if tokens.is_empty() {
            empty_state(
                ui,
                "No gateway tokens yet",
                "Issue one for a supplier; the WedSync platform sends it as `Authorization: Bearer sbk_…`.",
            );
            return;
        }
        let widths = [220.0, 120.0, 130.0, 130.0, 120.0];
        ui.horizontal(|ui| {
            for (h, w) in ["Supplier", "Token", "Issued", "Last used", "Status"].iter().zip(widths) {
                cell(ui, w, RichText::new(*h).small().color(p.muted));
            }
        });
        let row_h = theme::ROW_HEIGHT + 4.0;
        let mut revoke: Option<TokenId> = None;
        egui::ScrollArea::vertical().id_salt("tokens").max_height(row_h * 10.0).auto_shrink([false, true]).show_rows(
            ui,
            row_h,
            tokens.len(),
            |ui, range| {
                for t in &tokens[range] {
                    ui.horizontal(|ui| {
                        ui.set_height(theme::ROW_HEIGHT);
                        cell(ui, widths[0], RichText::new(format!("{} (#{})", t.supplier_name, t.supplier)));
                        cell(ui, widths[1], RichText::new(&t.hint).monospace());
                        cell(ui, widths[2], RichText::new(t.created_at.format("%Y-%m-%d %H:%M").to_string()));
                        cell(ui, widths[3], RichText::new(t.last_used_at.map(|t| ago(t, now)).unwrap_or_else(|| "never".into())));
                        match t.revoked_at {
                            Some(r) => {
                                cell(ui, widths[4], RichText::new(format!("revoked {}", r.format("%Y-%m-%d"))).color(p.muted));
                            }
                            None => {
                                cell(ui, widths[4], RichText::new("active").color(p.ok));
                                if ui.add(egui::Button::new("Revoke").small()).clicked() {
                                    revoke = Some(t.id);
                                }
                            }
                        }
                    });
                }
            },
        );
        if let Some(id) = revoke {
            cx.send(ConsoleCommand::RevokeToken(id));
        }
    });
}

/// The modal dialogs: the one-time token, rotate, remove and forced remove.
fn dialogs(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let p = theme::palette(ui);
    let ctx = ui.ctx().clone();
    super::pools::dialog(&ctx, &mut st.pool_form, cx);
    if let Some((name, token)) = &st.issued {
        let mut close = false;
        egui::Modal::new(egui::Id::unique("token_once")).show(&ctx, |ui| {
            ui.set_width(560.0);
            ui.label(RichText::new(format!("New gateway token for {name}")).strong().size(16.0));
            ui.add_space(theme::GAP_S);
            ui.label(
                RichText::new("Copy it now: it will not be shown again. Switchboard keeps only its hash; if it is lost, revoke it and issue a new one.")
                    .color(p.warn),
            );
            ui.add_space(theme::GAP_S);
            theme::card(ui).show(ui, |ui| {
                ui.add(egui::Label::new(RichText::new(token.expose()).monospace()).selectable(true).wrap());
            });
            ui.add_space(theme::GAP_S);
            let (url, running) = cx.picks.directory.send_requests_to();
            ui.label(RichText::new("Send requests to").strong());
            ui.add(egui::Label::new(RichText::new(&url).monospace()).selectable(true).wrap());
            ui.label(
                RichText::new(if running {
                    "This console's gateway listens there now. Use it as the OpenAI base URL, with the token as the API key (Authorization: Bearer …)."
                } else {
                    "Where `switchboard serve` listens by default (its --listen sets another address); no gateway runs in this console. Use it as the OpenAI base URL, with the token as the API key."
                })
                .small()
                .color(p.muted),
            );
            ui.add_space(theme::GAP_S);
            ui.horizontal(|ui| {
                if ui.button("Copy").clicked() {
                    ui.ctx().copy_text(token.expose().to_string());
                }
                if ui.button("Copy URL").clicked() {
                    ui.ctx().copy_text(url.clone());
                }
                if ui.button("Done").clicked() {
                    close = true;
                }
            });
        });
        if close {
            st.issued = None;
        }
    }
    if let Some(r) = st.rotate.as_mut() {
        let (mut go, mut cancel) = (false, false);
        egui::Modal::new(egui::Id::unique("rotate_key")).show(&ctx, |ui| {
            ui.set_width(480.0);
            ui.label(RichText::new(format!("Rotate the key of '{}'", r.label)).strong().size(16.0));
            ui.label(RichText::new("The new key is validated live before it replaces the old one.").color(p.muted));
            ui.add_space(theme::GAP_S);
            let l = ui.label("New API key");
            ui.add(
                egui::TextEdit::singleline(&mut r.key)
                    .id(egui::Id::unique(ROTATE_KEY_FIELD))
                    .password(true)
                    .hint_text("paste the new key")
                    .desired_width(440.0),
            )
            .labelled_by(l.id);
            ui.add_space(theme::GAP_S);
            ui.horizontal(|ui| {
                if st.saving {
                    ui.spinner();
                    ui.label(RichText::new("Validating the new key…").color(p.muted));
                } else {
                    go = ui.button("Rotate").clicked();
                    cancel = ui.button("Cancel").clicked();
                }
            });
        });
        if cancel {
            st.rotate = None;
        } else if go {
            let key = Secret::new(std::mem::take(&mut r.key));
            forget_field(ui, ROTATE_KEY_FIELD);
            st.saving = true;
            cx.send(ConsoleCommand::RotateKey { id: r.id, key });
        }
    }
    if let Some((id, label)) = st.confirm_remove.clone() {
        let body = "The account and its keychain entry are deleted; its usage history is kept.";
        if let Some(yes) = confirm(&ctx, "remove_key", &format!("Remove '{label}'?"), body, ("Remove", "Cancel")) {
            st.confirm_remove = None;
            if yes {
                cx.send(ConsoleCommand::RemoveKey { id, force: false });
            }
        }
    }
    if let Some((id, message)) = st.force_remove.clone() {
        let body = message.replace(", or pass --force", "");
        if let Some(yes) =
            confirm(&ctx, "force_remove_key", "This account is a supplier's active route", &body, ("Remove anyway", "Keep it"))
        {
            st.force_remove = None;
            if yes {
                cx.send(ConsoleCommand::RemoveKey { id, force: true });
            }
        }
    }
}

/// The keychain entries whose account no longer exists: names only, and how to remove them.
fn orphan_notice(ui: &mut Ui, orphans: &[crate::console::OrphanKey]) {
    let p = theme::palette(ui);
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        let n = orphans.len();
        ui.label(
            RichText::new(format!("{n} keychain entr{} of provider accounts that no longer exist", if n == 1 { "y" } else { "ies" }))
                .color(p.warn)
                .strong(),
        );
        let names: Vec<String> = orphans.iter().take(5).map(|o| format!("{} (account {})", o.key_ref, o.account)).collect();
        ui.label(RichText::new(names.join(", ") + if n > 5 { ", …" } else { "" }).small().color(p.muted));
        ui.label(
            RichText::new("They hold keys nothing uses. Remove them with `switchboard key prune-orphans` (try `--dry-run` first).").small(),
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounts_columns_fill_the_width_they_get_and_keep_their_minimums() {
        // The console's default window (1360 px) and the snapshot sizes leave
        // about 1,000–1,650 points for the columns: they fit exactly.
        for avail in [1_000.0, 1_090.0, 1_650.0] {
            let w = account_widths(avail, ACTIONS_PLATFORM, true);
            let total: f32 = w.iter().sum();
            assert!(total <= avail && total > avail - 8.0, "{avail}: {w:?} adds up to {total}");
            assert_eq!((w[2], w[3], w[5]), (100.0, 120.0, ACTIONS_PLATFORM), "the fixed columns");
        }
        // Wider windows give the text columns the room, by their weights.
        let (narrow, wide) = (account_widths(1_000.0, ACTIONS_PLATFORM, true), account_widths(1_650.0, ACTIONS_PLATFORM, true));
        assert!(wide[0] > narrow[0] && wide[1] > narrow[1] && wide[4] > narrow[4] && wide[6] > narrow[6]);
        assert!(wide[0] > wide[1], "the account's label gets the most");
        // A supplier's table (three buttons) gives the text columns what the fourth button took.
        let supplier = account_widths(1_000.0, ACTIONS_SUPPLIER, true);
        assert_eq!(supplier[5], ACTIONS_SUPPLIER);
        assert!(supplier[0] > narrow[0] && supplier.iter().sum::<f32>() <= 1_000.0);
        // The smallest window (960 px) cannot hold the minimums: they hold, and the table scrolls.
        let w = account_widths(650.0, ACTIONS_PLATFORM, true);
        assert_eq!([w[0], w[1], w[4], w[6]], [140.0, 110.0, 110.0, 100.0]);
        assert_eq!(account_widths(0.0, ACTIONS_SUPPLIER, true), account_widths(-50.0, ACTIONS_SUPPLIER, true));
        // The platform's table, without Owner: Account takes most of its room, and the columns still fill the width.
        let platform = account_widths(1_000.0, ACTIONS_PLATFORM, false);
        assert_eq!(platform[1], 0.0);
        assert!(platform[0] >= narrow[0] + narrow[1] - 10.0, "Account takes Owner's room: {platform:?} against {narrow:?}");
        let total: f32 = platform.iter().sum();
        assert!(total <= 1_000.0 && total > 992.0, "{platform:?}");
        assert_eq!(account_widths(650.0, ACTIONS_PLATFORM, false)[0], 140.0, "the minimum still holds");
    }
}
