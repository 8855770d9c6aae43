//! Request log: the ledger's requests within a time window (one UTC day by
//! default, at most 31), searchable by supplier, model, route and status,
//! newest first, a page at a time; click a request for its details (event
//! id, request id, idempotency key, tokens, cost, latency, error class). The
//! search runs in the console service, never on this thread.

use super::{Cx, empty_state, error_box, fmt_count, fmt_money, header, loading, text_field};
use crate::console::{ConsoleCommand, ConsoleEvent, RequestLine, RequestLogView, RequestQuery, StatusFilter};
use crate::domain::{Route, SupplierId, UsageStatus};
use crate::ui::theme;
use chrono::NaiveDate;
use egui::{Align, Layout, RichText, Ui, vec2};
use std::sync::Arc;

pub struct State {
    pub from: String,
    pub to: String,
    pub supplier: Option<SupplierId>,
    pub model: Option<String>,
    pub route: Option<Route>,
    pub status: Option<StatusFilter>,
    limit: u32,
    data: Option<Arc<RequestLogView>>,
    error: Option<String>,
    input_error: Option<String>,
    pub dirty: bool,
    sent: Option<RequestQuery>,
    /// The request whose details are shown (its row id).
    selected: Option<i64>,
}

impl State {
    pub fn new(today: NaiveDate) -> Self {
        State {
            from: today.to_string(),
            to: today.to_string(),
            supplier: None,
            model: None,
            route: None,
            status: None,
            limit: crate::console::views::requests::PAGE,
            data: None,
            error: None,
            input_error: None,
            dirty: false,
            sent: None,
            selected: None,
        }
    }

    pub fn on_event(&mut self, ev: ConsoleEvent) {
        match ev {
            ConsoleEvent::Requests(v) => {
                self.data = Some(v);
                self.error = None;
            }
            ConsoleEvent::Failed { message, .. } => self.error = Some(message),
            _ => {}
        }
    }

    /// The query the filters describe, or what is wrong with them.
    fn query(&self) -> Result<RequestQuery, String> {
        let date = |s: &str, what: &str| -> Result<NaiveDate, String> {
            s.trim().parse::<NaiveDate>().map_err(|_| format!("the {what} day '{}' is not a date; write YYYY-MM-DD", s.trim()))
        };
        let from = date(&self.from, "first")?;
        let to = date(&self.to, "last")?;
        crate::console::views::requests::check_window(from, to)?;
        Ok(RequestQuery {
            from,
            to,
            supplier: self.supplier,
            model: self.model.clone(),
            route: self.route,
            status: self.status,
            limit: self.limit,
        })
    }
}

fn status_label(s: Option<StatusFilter>) -> &'static str {
    match s {
        None => "any status",
        Some(StatusFilter::Answered) => "answered",
        Some(StatusFilter::Failed) => "failed or cancelled",
        Some(StatusFilter::Exactly(UsageStatus::Ok)) => "ok",
        Some(StatusFilter::Exactly(UsageStatus::Error)) => "error",
        Some(StatusFilter::Exactly(UsageStatus::Cancelled)) => "cancelled",
        Some(StatusFilter::Exactly(UsageStatus::ClientGone)) => "client gone",
    }
}

pub fn show(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    header(ui, "Request log", "the ledger's requests, newest first, within a window of days (UTC)");
    filters(ui, st);
    match st.query() {
        Ok(q) => {
            st.input_error = None;
            if st.dirty || st.sent.as_ref() != Some(&q) {
                st.dirty = false;
                st.sent = Some(q.clone());
                cx.send(ConsoleCommand::SearchRequests(q));
            }
        }
        Err(e) => st.input_error = Some(e),
    }
    if let Some(e) = st.input_error.clone().or_else(|| st.error.clone()) {
        error_box(ui, &e);
    }
    let Some(v) = st.data.clone() else {
        loading(ui, "Searching the request log…");
        return;
    };
    let p = *theme::palette(ui);
    ui.horizontal(|ui| {
        let n = v.rows.len();
        ui.label(
            RichText::new(format!(
                "{} {}{} · {} ms",
                fmt_count(n as u64),
                if n == 1 { "request" } else { "requests" },
                if v.more { " (newest first; more match)" } else { "" },
                v.elapsed_ms
            ))
            .color(p.muted),
        );
        if v.more && ui.button("Show more").clicked() {
            st.limit = st.limit.saturating_add(crate::console::views::requests::PAGE);
        }
    });
    if v.rows.is_empty() {
        empty_state(ui, "No request matches", "Widen the window, or clear the supplier, model, route and status filters.");
        return;
    }
    if let Some(sel) = st.selected
        && let Some(r) = v.rows.iter().find(|r| r.row.id == sel)
    {
        details(ui, r, st);
    }
    const COLS: [(&str, f32); 8] = [
        ("Time (UTC)", 140.0),
        ("Supplier", 200.0),
        ("Model", 150.0),
        ("Route", 80.0),
        ("Status", 90.0),
        ("Tokens", 80.0),
        ("Cost", 90.0),
        ("Latency", 80.0),
    ];
    let (hrect, _) = ui.allocate_exact_size(vec2(ui.available_width(), theme::ROW_HEIGHT), egui::Sense::hover());
    let mut x = hrect.left();
    for (h, w) in COLS {
        let cr = egui::Rect::from_min_size(egui::pos2(x + 2.0, hrect.top()), vec2(w - 4.0, theme::ROW_HEIGHT));
        ui.scope_builder(egui::UiBuilder::new().max_rect(cr).layout(Layout::left_to_right(Align::Center)), |ui| {
            ui.label(RichText::new(h).strong().color(p.muted));
        });
        x += w + theme::GAP_S;
    }
    ui.separator();
    egui::ScrollArea::vertical().id_salt("request_rows").auto_shrink(false).show_rows(ui, theme::ROW_HEIGHT, v.rows.len(), |ui, range| {
        for i in range {
            let r = &v.rows[i];
            let (rect, resp) = ui.allocate_exact_size(vec2(ui.available_width(), theme::ROW_HEIGHT), egui::Sense::click());
            if st.selected == Some(r.row.id) {
                ui.painter().rect_filled(rect, 4.0, p.accent.gamma_multiply(0.25));
            } else if i % 2 == 1 {
                ui.painter().rect_filled(rect, 4.0, p.stripe);
            }
            let row = &r.row;
            let status = row.status.map(|s| s.as_str()).unwrap_or("unknown");
            let tokens = row.input_tokens.saturating_add(row.output_tokens).saturating_add(row.cached_tokens);
            let cells = [
                row.ts.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.supplier_name.clone(),
                row.model.clone(),
                row.route.map(|x| x.as_str().to_string()).unwrap_or_else(|| "unknown".into()),
                status.to_string(),
                fmt_count(tokens),
                fmt_money(row.cost.0),
                format!("{} ms", fmt_count(row.latency_ms.max(0) as u64)),
            ];
            let failed = status != "ok" && status != "client_gone";
            let mut x = rect.left();
            for (c, ((_, w), text)) in COLS.iter().zip(cells).enumerate() {
                let cr = egui::Rect::from_min_size(egui::pos2(x + 2.0, rect.top()), vec2(w - 4.0, theme::ROW_HEIGHT));
                ui.scope_builder(egui::UiBuilder::new().max_rect(cr).layout(Layout::left_to_right(Align::Center)), |ui| {
                    let t = RichText::new(text);
                    let t = if failed && c == 4 { t.color(p.danger) } else { t };
                    ui.add(egui::Label::new(t).truncate().selectable(false));
                });
                x += w + theme::GAP_S;
            }
            let selected = st.selected == Some(row.id);
            resp.widget_info(|| egui::WidgetInfo::selected(egui::Role::Row, true, selected, format!("Request {}", row.event_id)));
            if resp.on_hover_text("Show this request's details").clicked() {
                st.selected = if st.selected == Some(row.id) { None } else { Some(row.id) };
            }
        }
    });
}

fn filters(ui: &mut Ui, st: &mut State) {
    let suppliers = st.data.as_ref().map(|d| d.suppliers.clone()).unwrap_or_default();
    let models = st.data.as_ref().map(|d| d.models.clone()).unwrap_or_default();
    ui.horizontal_wrapped(|ui| {
        text_field(ui, "From", &mut st.from, "YYYY-MM-DD", 104.0);
        text_field(ui, "To", &mut st.to, "YYYY-MM-DD", 104.0);
        let l = ui.label("Supplier");
        let current = st
            .supplier
            .map(|id| suppliers.iter().find(|(s, _)| *s == id).map(|(_, n)| n.clone()).unwrap_or_else(|| format!("supplier {id}")))
            .unwrap_or_else(|| "all".into());
        egui::ComboBox::from_id_salt("requests_supplier")
            .selected_text(current)
            .width(200.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut st.supplier, None, "all");
                for (id, name) in &suppliers {
                    ui.selectable_value(&mut st.supplier, Some(*id), name);
                }
            })
            .response
            .labelled_by(l.id);
        let l = ui.label("Model");
        egui::ComboBox::from_id_salt("requests_model")
            .selected_text(st.model.clone().unwrap_or_else(|| "any".into()))
            .width(150.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut st.model, None, "any");
                for m in &models {
                    ui.selectable_value(&mut st.model, Some(m.clone()), m);
                }
            })
            .response
            .labelled_by(l.id);
        let l = ui.label("Route");
        egui::ComboBox::from_id_salt("requests_route")
            .selected_text(st.route.map(|r| r.as_str()).unwrap_or("any"))
            .width(100.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut st.route, None, "any");
                for r in Route::ALL {
                    ui.selectable_value(&mut st.route, Some(*r), r.as_str());
                }
            })
            .response
            .labelled_by(l.id);
        let l = ui.label("Status");
        egui::ComboBox::from_id_salt("requests_status")
            .selected_text(status_label(st.status))
            .width(150.0)
            .show_ui(ui, |ui| {
                for s in [
                    None,
                    Some(StatusFilter::Answered),
                    Some(StatusFilter::Failed),
                    Some(StatusFilter::Exactly(UsageStatus::Error)),
                    Some(StatusFilter::Exactly(UsageStatus::Cancelled)),
                    Some(StatusFilter::Exactly(UsageStatus::ClientGone)),
                ] {
                    ui.selectable_value(&mut st.status, s, status_label(s));
                }
            })
            .response
            .labelled_by(l.id);
    });
    ui.add_space(theme::GAP_S);
}

fn details(ui: &mut Ui, r: &RequestLine, st: &mut State) {
    let p = *theme::palette(ui);
    let row = &r.row;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new("Request details").strong());
            if ui.small_button("Close").clicked() {
                st.selected = None;
            }
        });
        let none = || "—".to_string();
        let lines: [(&str, String); 14] = [
            ("Event id", row.event_id.clone()),
            ("Request id", row.request_id.clone().unwrap_or_else(none)),
            ("Idempotency key", row.idempotency_key.clone().unwrap_or_else(none)),
            ("Time (UTC)", row.ts.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
            ("Supplier", format!("{} (ID {})", r.supplier_name, row.supplier_id)),
            ("Account", r.account_label.clone().map(|l| format!("{l} · {}", row.provider)).unwrap_or_else(|| row.provider.clone())),
            ("Model", row.model.clone()),
            (
                "Type · route",
                format!(
                    "{} · {}",
                    row.request_type.map(|t| t.as_str()).unwrap_or("unknown"),
                    row.route.map(|t| t.as_str()).unwrap_or("unknown")
                ),
            ),
            (
                "Tokens",
                format!(
                    "{} in ({} cached, {} cache write) · {} out ({} reasoning){}",
                    fmt_count(row.input_tokens),
                    fmt_count(row.cached_tokens),
                    fmt_count(row.cache_write_tokens),
                    fmt_count(row.output_tokens),
                    fmt_count(row.reasoning_tokens),
                    if row.estimated { " · estimated" } else { "" }
                ),
            ),
            ("Cost", format!("{} ({} micro-dollars)", fmt_money(row.cost.0), row.cost.0)),
            ("Latency", format!("{} ms", fmt_count(row.latency_ms.max(0) as u64))),
            ("Status", row.status.map(|s| s.as_str()).unwrap_or("unknown").to_string()),
            ("Error class", row.error_class.clone().unwrap_or_else(none)),
            ("Ledger row", row.id.to_string()),
        ];
        egui::Grid::new("request_details").num_columns(2).spacing([theme::GAP_M, 2.0]).show(ui, |ui| {
            for (k, v) in lines {
                ui.label(RichText::new(k).color(p.muted));
                ui.add(egui::Label::new(v).selectable(true));
                ui.end_row();
            }
        });
    });
    ui.add_space(theme::GAP_S);
}
