//! Suppliers: a searchable, filterable, sortable table (virtualised rows, so
//! 5,000 suppliers scroll smoothly) and a detail panel to add or edit a
//! supplier's tier, vendor type, AI mode and wedding dates, see its accounts
//! (masked fingerprints only) and its last 90 days of usage. The add/edit
//! form itself is [`super::supplier_form`].

use super::charts::{Unit, date_plot};
use super::overview::accounts_grid;
use super::supplier_form::form_ui;
pub use super::supplier_form::{Form, parse_wedding_date};
use super::{Cx, Goto, empty_state, error_box, fmt_int, fmt_money, loading, quota_bar, text_field};
use crate::console::{ConsoleCommand, ConsoleEvent, ConsoleHandle, SupplierDetail, SupplierList, SupplierQuery, SupplierSort};
use crate::domain::SupplierFilter;
use crate::domain::{AiMode, Supplier, SupplierId, Tier, VendorType};
use crate::ui::theme;
use chrono::NaiveDate;
use egui::{Align, Layout, RichText, Sense, Ui, vec2};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Remembered across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub sort: SupplierSort,
    pub descending: bool,
}

/// The table query as last sent: search, tier, vendor type, mode, sort, descending.
type QueryKey = (String, Option<Tier>, Option<VendorType>, Option<AiMode>, SupplierSort, bool);

pub struct State {
    pub search: String,
    pub tier: Option<Tier>,
    pub vendor_type: Option<VendorType>,
    pub ai_mode: Option<AiMode>,
    pub sort: SupplierSort,
    pub descending: bool,
    list: Option<Arc<SupplierList>>,
    error: Option<String>,
    pub dirty: bool,
    /// The query last sent, to notice changes.
    sent: Option<QueryKey>,
    pub selected: Option<SupplierId>,
    detail: Option<Arc<SupplierDetail>>,
    detail_error: Option<String>,
    pub form: Option<Form>,
    /// The detail's response cache settings being edited.
    pub cache_form: Option<super::cache::CacheForm>,
    confirm_remove: bool,
    pub focus_search: bool,
    /// The "Import CSV…" dialog.
    pub import: super::supplier_import::State,
}

impl State {
    pub fn new(p: Persisted) -> Self {
        State {
            search: String::new(),
            tier: None,
            vendor_type: None,
            ai_mode: None,
            sort: p.sort,
            descending: p.descending,
            list: None,
            error: None,
            dirty: true,
            sent: None,
            selected: None,
            detail: None,
            detail_error: None,
            form: None,
            cache_form: None,
            confirm_remove: false,
            focus_search: false,
            import: Default::default(),
        }
    }

    pub fn persisted(&self) -> Persisted {
        Persisted { sort: self.sort, descending: self.descending }
    }

    pub fn on_event(&mut self, ev: ConsoleEvent) {
        match ev {
            ConsoleEvent::Suppliers(list) => {
                self.list = Some(list);
                self.error = None;
            }
            ConsoleEvent::SupplierDetail(d) if Some(d.supplier.id) == self.selected => {
                self.detail = Some(d);
                self.detail_error = None;
            }
            ConsoleEvent::Failed { channel: crate::console::Channel::SupplierDetail, message } => self.detail_error = Some(message),
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }

    /// Shows `id` in the detail panel.
    pub fn select(&mut self, id: SupplierId, handle: &ConsoleHandle) {
        self.selected = Some(id);
        self.form = None;
        self.confirm_remove = false;
        if self.detail.as_ref().is_none_or(|d| d.supplier.id != id) {
            self.detail = None;
        }
        self.detail_error = None;
        let _ = handle.send(ConsoleCommand::LoadSupplierDetail(id));
    }

    pub fn on_saved(&mut self, s: &Supplier) {
        self.form = None;
        self.selected = Some(s.id);
        self.detail = None;
    }

    pub fn on_removed(&mut self, id: SupplierId) {
        if self.selected == Some(id) {
            self.selected = None;
            self.detail = None;
        }
        self.form = None;
        self.confirm_remove = false;
    }

    pub fn on_write_failed(&mut self, message: &str) {
        if let Some(f) = &mut self.form {
            f.saving = false;
            f.error = Some(message.to_string());
        }
    }

    fn query_key(&self) -> QueryKey {
        (self.search.clone(), self.tier, self.vendor_type, self.ai_mode, self.sort, self.descending)
    }
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    // (Re)load when the query changed or data was invalidated.
    let key = st.query_key();
    if st.dirty || st.sent.as_ref() != Some(&key) {
        st.dirty = false;
        st.sent = Some(key);
        cx.send(ConsoleCommand::LoadSuppliers(SupplierQuery {
            filter: SupplierFilter { search: Some(st.search.clone()), tier: st.tier, vendor_type: st.vendor_type, ai_mode: st.ai_mode },
            sort: st.sort,
            descending: st.descending,
        }));
        if let Some(id) = st.selected
            && st.form.is_none()
        {
            cx.send(ConsoleCommand::LoadSupplierDetail(id));
        }
    }

    ui.horizontal(|ui| {
        ui.heading(RichText::new("Suppliers").strong());
        if let Some(l) = &st.list {
            let text = if l.rows.len() == l.total {
                super::plural(l.total, "supplier")
            } else {
                format!("{} of {}", fmt_int(l.rows.len() as i64), super::plural(l.total, "supplier"))
            };
            ui.label(RichText::new(text).color(theme::palette(ui).muted));
        }
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            if ui.button("Add supplier").clicked() {
                st.form = Some(Form::new());
                st.selected = None;
                st.confirm_remove = false;
            }
            if ui.button("Import CSV…").on_hover_text("Add many suppliers from a CSV file, with a preview first").clicked() {
                st.import.open();
            }
        });
    });
    super::supplier_import::show(ui.ctx(), &mut st.import, cx.handle, cx.toasts);
    ui.add_space(theme::GAP_S);
    filters(ui, st);
    ui.add_space(theme::GAP_S);
    if let Some(e) = &st.error {
        error_box(ui, e);
    }

    if st.form.is_some() || st.selected.is_some() {
        egui::Panel::right("supplier_detail")
            .exact_size(theme::DETAIL_WIDTH)
            .resizable(false)
            .frame(egui::Frame::new().inner_margin(egui::Margin { left: theme::GAP_M as i8, ..Default::default() }))
            .show(ui, |ui| {
                egui::ScrollArea::vertical().id_salt("detail_scroll").auto_shrink(false).show(ui, |ui| detail_panel(ui, st, cx));
            });
    }
    egui::CentralPanel::no_frame().show(ui, |ui| table(ui, st, cx));
}

fn filters(ui: &mut Ui, st: &mut State) {
    ui.horizontal(|ui| {
        let r = text_field(ui, "Search", &mut st.search, "name contains… (Ctrl+F)", 220.0);
        if st.focus_search {
            r.request_focus();
            st.focus_search = false;
        }
        if r.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Escape)) {
            st.search.clear();
        }
        ui.add_space(theme::GAP_S);
        combo(ui, "Tier", &mut st.tier, Tier::ALL);
        combo(ui, "Vendor type", &mut st.vendor_type, VendorType::ALL);
        combo(ui, "Mode", &mut st.ai_mode, AiMode::ALL);
        if (!st.search.is_empty() || st.tier.is_some() || st.vendor_type.is_some() || st.ai_mode.is_some())
            && ui.button("Clear filters").clicked()
        {
            st.search.clear();
            st.tier = None;
            st.vendor_type = None;
            st.ai_mode = None;
        }
    });
}

/// A filter combo box: "any" or one value.
fn combo<T: Copy + PartialEq + std::fmt::Display>(ui: &mut Ui, label: &str, value: &mut Option<T>, all: &[T]) {
    let l = ui.label(label);
    let text = value.map(|v| v.to_string()).unwrap_or_else(|| "any".into());
    egui::ComboBox::from_id_salt(label)
        .selected_text(text)
        .width(120.0)
        .show_ui(ui, |ui| {
            ui.selectable_value(value, None, "any");
            for v in all {
                ui.selectable_value(value, Some(*v), v.to_string());
            }
        })
        .response
        .labelled_by(l.id);
}

/// The ID column's width (IDs are what `switchboard` commands take).
const ID_WIDTH: f32 = 44.0;
/// The narrowest a name column gets.
const NAME_MIN: f32 = 140.0;

struct Widths {
    name: f32,
    cols: [(SupplierSort, &'static str, f32); 5],
}

/// The table's column widths for `available` pixels: the fixed columns at
/// their widths and the name column with the rest; when that does not fit,
/// the fixed columns shrink together (to 60 % at most) first.
fn column_widths(available: f32) -> Widths {
    let gaps = theme::GAP_S * (COLS.len() + 1) as f32 + 4.0;
    let fixed: f32 = COLS.iter().map(|c| c.2).sum();
    let room = available - ID_WIDTH - gaps - NAME_MIN;
    let scale = (room / fixed).clamp(0.6, 1.0);
    let mut cols = COLS;
    for c in &mut cols {
        c.2 = (c.2 * scale).floor();
    }
    let used: f32 = cols.iter().map(|c| c.2).sum();
    Widths { name: (available - ID_WIDTH - gaps - used).max(NAME_MIN), cols }
}

/// Column widths of the table (the name column takes the rest).
const COLS: [(SupplierSort, &str, f32); 5] = [
    (SupplierSort::VendorType, "Vendor type", 110.0),
    (SupplierSort::Tier, "Tier", 105.0),
    (SupplierSort::Mode, "Mode", 80.0),
    (SupplierSort::QuotaUsed, "Quota used", 150.0),
    (SupplierSort::NextWedding, "Next wedding", 110.0),
];

fn table(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    let Some(list) = st.list.clone() else {
        loading(ui, "Loading suppliers…");
        return;
    };
    if list.total == 0 {
        empty_state(
            ui,
            "No suppliers yet",
            "Click “Add supplier” to add the first one, or start `switchboard --demo` to explore with generated data.",
        );
        return;
    }
    // The columns shrink (down to 60 %) so that the table fits beside the
    // detail panel; nothing is drawn past the table's own width.
    let widths = column_widths(ui.available_width());
    let cols = widths.cols;
    let name_w = widths.name;
    // Header with sort buttons, aligned with the cells below.
    ui.horizontal(|ui| {
        ui.add_space(4.0);
        ui.allocate_ui_with_layout(vec2(ID_WIDTH, theme::ROW_HEIGHT), Layout::left_to_right(Align::Center), |ui| {
            ui.set_min_width(ID_WIDTH);
            ui.label(RichText::new("ID").strong().color(theme::palette(ui).muted));
        });
        header_cell(ui, st, SupplierSort::Name, "Name", name_w);
        for (sort, label, w) in cols {
            header_cell(ui, st, sort, label, w);
        }
    });
    ui.separator();
    if list.rows.is_empty() {
        empty_state(ui, "No supplier matches", "Change the search text or clear the filters.");
        return;
    }
    let p = *theme::palette(ui);
    let today = cx.handle.today();
    egui::ScrollArea::vertical().id_salt("supplier_rows").auto_shrink(false).show_rows(
        ui,
        theme::ROW_HEIGHT,
        list.rows.len(),
        |ui, range| {
            for i in range {
                let r = &list.rows[i];
                let width = ui.available_width();
                let (rect, resp) = ui.allocate_exact_size(vec2(width, theme::ROW_HEIGHT), Sense::click());
                let selected = st.selected == Some(r.id);
                let fill = if selected {
                    Some(ui.visuals().selection.bg_fill)
                } else if resp.hovered() {
                    Some(ui.visuals().widgets.hovered.weak_bg_fill)
                } else if i % 2 == 1 {
                    Some(p.stripe)
                } else {
                    None
                };
                if let Some(fill) = fill {
                    ui.painter().rect_filled(rect, 4.0, fill);
                }
                resp.widget_info(|| egui::WidgetInfo::selected(egui::Role::Row, true, selected, format!("Supplier {}", r.name)));
                if resp.clicked() {
                    st.select(r.id, cx.handle);
                }
                let mut x = rect.left() + 4.0;
                let mut cell = |ui: &mut Ui, w: f32, add: &mut dyn FnMut(&mut Ui)| {
                    let cr = egui::Rect::from_min_size(egui::pos2(x, rect.top()), vec2(w - 4.0, theme::ROW_HEIGHT));
                    ui.scope_builder(egui::UiBuilder::new().max_rect(cr).layout(Layout::left_to_right(Align::Center)), |ui| add(ui));
                    x += w + theme::GAP_S;
                };
                cell(ui, ID_WIDTH, &mut |ui| {
                    ui.add(egui::Label::new(RichText::new(r.id.0.to_string()).color(p.muted)).selectable(false));
                });
                cell(ui, name_w, &mut |ui| {
                    ui.add(egui::Label::new(RichText::new(&r.name).strong()).truncate().selectable(false));
                });
                cell(ui, cols[0].2, &mut |ui| {
                    ui.add(egui::Label::new(r.vendor_type.as_str()).selectable(false));
                });
                cell(ui, cols[1].2, &mut |ui| {
                    ui.add(egui::Label::new(r.tier.as_str()).selectable(false));
                });
                cell(ui, cols[2].2, &mut |ui| {
                    let color = if r.ai_mode == AiMode::Client { p.accent } else { ui.visuals().text_color() };
                    ui.add(egui::Label::new(RichText::new(r.ai_mode.as_str()).color(color)).selectable(false));
                });
                cell(ui, cols[3].2, &mut |ui| {
                    if r.ai_mode == AiMode::Client && r.quota.used == 0 {
                        ui.add(egui::Label::new(RichText::new("own account").color(p.muted)).selectable(false));
                    } else {
                        quota_bar(ui, cols[3].2 - 10.0, r.quota_percent());
                    }
                });
                cell(ui, cols[4].2, &mut |ui| {
                    let text = match r.next_wedding {
                        Some(d) if d == today => RichText::new("today").strong().color(p.peak),
                        Some(d) => RichText::new(d.format("%d %b %Y").to_string()),
                        None => RichText::new("—").color(p.muted),
                    };
                    ui.add(egui::Label::new(text).selectable(false));
                });
            }
        },
    );
}

fn header_cell(ui: &mut Ui, st: &mut State, sort: SupplierSort, label: &str, width: f32) {
    let arrow = if st.sort == sort { if st.descending { " v" } else { " ^" } } else { "" };
    let text = RichText::new(format!("{label}{arrow}")).strong().color(theme::palette(ui).muted);
    let r = ui
        .allocate_ui_with_layout(vec2(width, theme::ROW_HEIGHT), Layout::left_to_right(Align::Center), |ui| {
            // Take the column's whole width, so headers line up with the cells below.
            ui.set_min_width(width);
            ui.add(egui::Button::new(text).frame(false)).on_hover_text(format!("Sort by {label}"))
        })
        .inner;
    if r.clicked() {
        if st.sort == sort {
            st.descending = !st.descending;
        } else {
            st.sort = sort;
            st.descending = matches!(sort, SupplierSort::QuotaUsed);
        }
    }
}

fn detail_panel(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    if let Some(form) = &mut st.form {
        let mut close = false;
        if let Some(cmd) = form_ui(ui, form, &mut close, cx.handle.today()) {
            form.saving = true;
            form.error = None;
            cx.send(cmd);
        }
        if close {
            st.form = None;
        }
        return;
    }
    let Some(id) = st.selected else { return };
    ui.horizontal(|ui| {
        if ui.button("Close").clicked() {
            st.selected = None;
            st.detail = None;
        }
    });
    if let Some(e) = &st.detail_error {
        error_box(ui, e);
        return;
    }
    let Some(d) = st.detail.clone().filter(|d| d.supplier.id == id) else {
        loading(ui, "Loading supplier…");
        return;
    };
    let s = &d.supplier;
    let p = theme::palette(ui);
    ui.add(egui::Label::new(RichText::new(&s.name).size(18.0).strong()).wrap());
    ui.add(
        egui::Label::new(
            RichText::new(format!("ID {} · {} · {} tier · {} AI · {}", s.id.0, s.vendor_type, s.tier, s.ai_mode, s.time_zone.name()))
                .color(p.muted),
        )
        .wrap(),
    );
    ui.add_space(theme::GAP_S);
    ui.horizontal(|ui| {
        if ui.button("Edit").clicked() {
            st.form = Some(Form::edit(s, &d.accounts));
        }
        if ui.button("Quota chart").clicked() {
            cx.goto = Some(Goto::Quota(s.id));
        }
        if !st.confirm_remove && ui.button("Remove…").clicked() {
            st.confirm_remove = true;
        }
    });
    if st.confirm_remove {
        theme::card(ui).stroke(egui::Stroke::new(1.0, p.danger)).show(ui, |ui| {
            ui.label(format!("Remove '{}' with its weddings and accounts? Its usage history is kept.", s.name));
            ui.horizontal(|ui| {
                if ui.button(RichText::new("Remove supplier").color(p.danger)).clicked() {
                    cx.send(ConsoleCommand::RemoveSupplier(s.id));
                    st.confirm_remove = false;
                }
                if ui.button("Keep").clicked() {
                    st.confirm_remove = false;
                }
            });
        });
    }
    ui.add_space(theme::GAP_M);
    ui.label(RichText::new("This month").strong());
    egui::Grid::new("detail_month").num_columns(2).spacing([theme::GAP_M, 4.0]).show(ui, |ui| {
        ui.label("Platform quota");
        quota_bar(ui, 200.0, d.quota.percent());
        ui.end_row();
        ui.label("");
        ui.label(
            RichText::new(format!("{} of {} tokens", fmt_int(d.quota.used as i64), fmt_int(d.quota.quota as i64))).small().color(p.muted),
        );
        ui.end_row();
        ui.label("Requests");
        ui.label(fmt_int(d.month_requests));
        ui.end_row();
        ui.label("Cost");
        ui.label(fmt_money(d.month_cost_micros));
        ui.end_row();
        ui.label("Platform failover");
        ui.label(if s.allow_platform_failover { "allowed" } else { "never" });
        ui.end_row();
    });
    ui.add_space(theme::GAP_M);
    ui.label(RichText::new("Tokens per day, last 90 days").strong());
    if d.daily_tokens.is_empty() {
        ui.label(RichText::new("No usage in the last 90 days.").color(p.muted));
    } else {
        let color = p.accent;
        date_plot("detail_usage", Unit::Tokens, 140.0).allow_drag(false).allow_zoom(false).show(ui, |pl| {
            pl.add(egui_plot::Line::new("tokens", d.daily_tokens.clone()).color(color).fill(0.0).fill_alpha(0.15));
        });
    }
    ui.add_space(theme::GAP_M);
    let today = cx.handle.today();
    let upcoming: Vec<&NaiveDate> = s.weddings.iter().filter(|w| **w >= today).collect();
    ui.label(RichText::new(format!("Weddings ({} coming, {} past)", upcoming.len(), s.weddings.len() - upcoming.len())).strong());
    if upcoming.is_empty() {
        ui.label(RichText::new("No coming weddings. Edit the supplier to add dates.").color(p.muted));
    }
    ui.horizontal_wrapped(|ui| {
        for w in upcoming.iter().take(24) {
            // One date never breaks across two lines.
            ui.add(egui::Label::new(RichText::new(w.format("%d %b %Y").to_string()).small()).extend());
        }
        if upcoming.len() > 24 {
            ui.label(RichText::new(format!("and {} more", upcoming.len() - 24)).small().color(p.muted));
        }
    });
    ui.add_space(theme::GAP_M);
    ui.label(RichText::new("Provider accounts").strong());
    accounts_grid(ui, "detail_accounts", &d.accounts);
    ui.add_space(theme::GAP_M);
    super::cache::supplier_card(ui, &d, &mut st.cache_form, cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_fits_its_width_beside_the_detail_panel() {
        for available in [560.0, 676.0, 900.0, 1500.0] {
            let w = column_widths(available);
            let total = ID_WIDTH + w.name + w.cols.iter().map(|c| c.2).sum::<f32>() + theme::GAP_S * (COLS.len() + 1) as f32 + 4.0;
            assert!(total <= available + 0.5 || w.cols.iter().zip(COLS).all(|(a, b)| a.2 <= b.2 * 0.6 + 0.5), "{available}: {total}");
            assert!(w.name >= NAME_MIN);
        }
        // Wide enough: nothing shrinks.
        assert_eq!(column_widths(1500.0).cols, COLS);
    }
}
