//! Audit log: every change, newest first (by time, then by entry), filterable
//! by supplier (id or part of the name), action and date range; an edit's
//! detail says what changed, before → after; virtualised rows; the entries
//! matching the filters can be exported as CSV.

use super::{Cx, empty_state, error_box, fmt_int, header, loading, text_field};
use crate::console::{AuditView, ConsoleCommand, ConsoleEvent};
use crate::domain::AuditQuery;
use crate::ui::theme;
use chrono::{NaiveDate, TimeZone, Utc};
use egui::{Align, Layout, RichText, Ui, vec2};
use std::sync::Arc;

#[derive(Default)]
pub struct State {
    pub supplier: String,
    pub action: Option<String>,
    pub from: String,
    pub to: String,
    data: Option<Arc<AuditView>>,
    error: Option<String>,
    input_error: Option<String>,
    pub dirty: bool,
    sent: Option<AuditQuery>,
    pub focus_search: bool,
}

impl State {
    pub fn on_event(&mut self, ev: ConsoleEvent) {
        match ev {
            ConsoleEvent::Audit(v) => {
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }

    /// The query the filters describe, or what is wrong with them.
    fn query(&self) -> Result<AuditQuery, String> {
        let date = |s: &str, what: &str| -> Result<Option<NaiveDate>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<NaiveDate>().map(Some).map_err(|_| format!("the {what} date '{s}' is not a date; write YYYY-MM-DD"))
        };
        let from = date(&self.from, "from")?;
        let to = date(&self.to, "to")?;
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            return Err("the 'to' date is before the 'from' date".into());
        }
        let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        Ok(AuditQuery {
            supplier: Some(self.supplier.trim().to_string()).filter(|s| !s.is_empty()),
            action_prefix: self.action.clone(),
            from: from.map(midnight),
            // The 'to' day is included.
            to: to.map(|d| midnight(d + chrono::Duration::days(1))),
            limit: 2_000,
        })
    }
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    header(ui, "Audit log", "every change, newest first");
    filters(ui, st);
    if let Some(q) = st.sent.clone() {
        let dir = super::export::default_export_dir();
        if ui
            .button("Export CSV")
            .on_hover_text(format!("Writes the entries matching the filters to a new CSV file in {}", dir.display()))
            .clicked()
        {
            cx.send(ConsoleCommand::ExportAudit { query: q, dir });
        }
    }
    match st.query() {
        Ok(q) => {
            st.input_error = None;
            if st.dirty || st.sent.as_ref() != Some(&q) {
                st.dirty = false;
                st.sent = Some(q.clone());
                cx.send(ConsoleCommand::LoadAudit(q));
            }
        }
        Err(e) => st.input_error = Some(e),
    }
    if let Some(e) = st.input_error.clone().or_else(|| st.error.clone()) {
        error_box(ui, &e);
    }
    let Some(v) = st.data.clone() else {
        loading(ui, "Loading the audit log…");
        return;
    };
    if v.rows.is_empty() {
        if v.actions.is_empty() {
            empty_state(ui, "Nothing recorded yet", "Changes to suppliers, keys and migrations appear here as they happen.");
        } else {
            empty_state(ui, "No entry matches", "Widen the dates, or clear the supplier and action filters.");
        }
        return;
    }
    let p = *theme::palette(ui);
    ui.label(
        RichText::new(if v.truncated {
            format!("Showing the newest {} entries; narrow the filters to see older ones.", fmt_int(v.rows.len() as i64))
        } else {
            format!("{} {}", fmt_int(v.rows.len() as i64), if v.rows.len() == 1 { "entry" } else { "entries" })
        })
        .color(p.muted),
    );
    const COLS: [(&str, f32); 5] = [("Time (UTC)", 150.0), ("Actor", 100.0), ("Action", 130.0), ("Supplier", 200.0), ("Result", 60.0)];
    let detail_w = (ui.available_width() - COLS.iter().map(|c| c.1 + theme::GAP_S).sum::<f32>()).max(160.0);
    let (hrect, _) = ui.allocate_exact_size(vec2(ui.available_width(), theme::ROW_HEIGHT), egui::Sense::hover());
    let mut x = hrect.left();
    for (h, w) in COLS.iter().copied().chain([("Detail", detail_w)]) {
        let cr = egui::Rect::from_min_size(egui::pos2(x + 2.0, hrect.top()), vec2(w - 4.0, theme::ROW_HEIGHT));
        ui.scope_builder(egui::UiBuilder::new().max_rect(cr).layout(Layout::left_to_right(Align::Center)), |ui| {
            ui.label(RichText::new(h).strong().color(p.muted));
        });
        x += w + theme::GAP_S;
    }
    ui.separator();
    egui::ScrollArea::vertical().id_salt("audit_rows").auto_shrink(false).show_rows(ui, theme::ROW_HEIGHT, v.rows.len(), |ui, range| {
        for i in range {
            let r = &v.rows[i];
            let (rect, _) = ui.allocate_exact_size(vec2(ui.available_width(), theme::ROW_HEIGHT), egui::Sense::hover());
            if i % 2 == 1 {
                ui.painter().rect_filled(rect, 4.0, p.stripe);
            }
            let supplier = match (&r.supplier_name, r.supplier_id) {
                (Some(n), _) => n.clone(),
                (None, Some(id)) => format!("#{id} (removed)"),
                (None, None) => "—".into(),
            };
            let result_color = if matches!(r.result.as_str(), "ok" | "valid") { p.ok } else { p.danger };
            let cells: [(RichText, f32); 6] = [
                (RichText::new(r.ts.format("%Y-%m-%d %H:%M:%S").to_string()).monospace(), COLS[0].1),
                (RichText::new(&r.actor), COLS[1].1),
                (RichText::new(&r.action).strong(), COLS[2].1),
                (RichText::new(supplier), COLS[3].1),
                (RichText::new(&r.result).color(result_color), COLS[4].1),
                (RichText::new(&r.detail).color(p.muted), detail_w),
            ];
            let mut x = rect.left();
            for (text, w) in cells {
                let cr = egui::Rect::from_min_size(egui::pos2(x + 2.0, rect.top()), vec2(w - 4.0, theme::ROW_HEIGHT));
                ui.scope_builder(egui::UiBuilder::new().max_rect(cr).layout(Layout::left_to_right(Align::Center)), |ui| {
                    ui.add(egui::Label::new(text).truncate());
                });
                x += w + theme::GAP_S;
            }
        }
    });
}

fn filters(ui: &mut Ui, st: &mut State) {
    ui.horizontal(|ui| {
        let r = text_field(ui, "Supplier", &mut st.supplier, "id or part of the name (Ctrl+F)", 220.0);
        if st.focus_search {
            r.request_focus();
            st.focus_search = false;
        }
        let l = ui.label("Action");
        let actions = st.data.as_ref().map(|d| d.actions.clone()).unwrap_or_default();
        egui::ComboBox::from_id_salt("audit_action")
            .selected_text(st.action.clone().unwrap_or_else(|| "any".into()))
            .width(150.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut st.action, None, "any");
                // Prefixes (`supplier.`) and exact actions.
                let mut prefixes: Vec<String> = actions.iter().filter_map(|a| a.split_once('.').map(|(p, _)| format!("{p}."))).collect();
                prefixes.dedup();
                for a in prefixes.iter().chain(actions.iter()) {
                    ui.selectable_value(&mut st.action, Some(a.clone()), a);
                }
            })
            .response
            .labelled_by(l.id);
        text_field(ui, "From", &mut st.from, "YYYY-MM-DD", 104.0);
        text_field(ui, "To", &mut st.to, "YYYY-MM-DD", 104.0);
        if (!st.supplier.is_empty() || st.action.is_some() || !st.from.is_empty() || !st.to.is_empty()) && ui.button("Clear").clicked() {
            *st = State { data: st.data.take(), ..Default::default() };
        }
    });
    ui.add_space(theme::GAP_S);
}
