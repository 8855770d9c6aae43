//! The Overview's first-run checklist (shown until every step is done): each
//! step ticked from the database's own state, where to do it (view or
//! command), the gateway's URL with copyable curl / Python / Node snippets,
//! and a live "waiting for the first request" light that turns green.

use crate::console::GettingStarted;
use crate::ui::theme;
use egui::{RichText, Ui};

/// Draws the checklist; `routing` draws the console's routing switch under
/// step 4. Returns whether it waits for something the database will say (the
/// caller reloads the Overview every few seconds then) and whether the user
/// hid a complete checklist.
pub fn checklist(ui: &mut Ui, g: &GettingStarted, routing: Option<&mut dyn FnMut(&mut Ui)>) -> (bool, bool) {
    let p = *theme::palette(ui);
    let mut hide = false;
    theme::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new(format!("Getting started · {} of 5 done", g.done())).strong());
        ui.label(RichText::new("Each step is ticked when the database says it is done.").small().color(p.muted));
        ui.add_space(theme::GAP_XS);
        let step = |ui: &mut Ui, done: bool, title: &str, how: &str| {
            ui.horizontal_wrapped(|ui| {
                let (mark, color) = if done { ("done", p.ok) } else { ("to do", p.muted) };
                super::status_dot(ui, color);
                ui.label(RichText::new(title).strong());
                ui.label(RichText::new(mark).small().color(color));
                ui.label(RichText::new(how).small().color(p.muted));
            });
        };
        step(
            ui,
            g.platform_keys > 0,
            "1. Add a platform key",
            "Keys, Add key, owner Platform (or `switchboard key add --platform …`); WedSync's own provider account.",
        );
        step(
            ui,
            g.suppliers > 0,
            &format!("2. Add suppliers ({})", g.suppliers),
            "Suppliers, Add, or Import CSV… there (or `switchboard supplier import FILE.csv`; columns name, vendor_type, tier, mode, time_zone, weddings).",
        );
        step(ui, g.tokens > 0, &format!("3. Issue gateway tokens ({})", g.tokens), "Keys, Issue token: one per supplier, shown once.");
        let running = match &g.routed_by {
            Some(h) => format!("Routing: {h}."),
            None if routing.is_some() => {
                "Switch on \"Route requests from this console\" below, or run `switchboard serve` on this database.".to_string()
            }
            None => "Run `switchboard serve` on this database.".to_string(),
        };
        step(ui, g.routed_by.is_some(), "4. Start the gateway", &running);
        if let Some(routing) = routing {
            ui.indent("routing-switch", |ui| routing(ui));
        }
        ui.add_space(theme::GAP_XS);
        ui.horizontal(|ui| {
            ui.label("Gateway URL:");
            ui.label(RichText::new(&g.gateway_url).monospace());
            if ui.button("Copy").on_hover_text("Copies the URL").clicked() {
                ui.ctx().copy_text(g.gateway_url.clone());
            }
        });
        let s = g.snippets();
        ui.horizontal(|ui| {
            for (label, text) in [("Copy curl", &s.curl), ("Copy Python (OpenAI SDK)", &s.python), ("Copy Node", &s.node)] {
                if ui.button(label).on_hover_text(text.as_str()).clicked() {
                    ui.ctx().copy_text(text.clone());
                }
            }
            ui.label(RichText::new("the token goes in SWITCHBOARD_TOKEN").small().color(p.muted));
        });
        ui.horizontal(|ui| {
            if g.first_request {
                super::status_dot(ui, p.ok);
                ui.label(RichText::new("First request received").color(p.ok));
                if g.complete() && ui.button("Hide the checklist").clicked() {
                    hide = true;
                }
            } else {
                super::status_dot(ui, p.warn);
                ui.label(RichText::new("Waiting for the first request…").color(p.warn));
                ui.spinner();
            }
        });
    });
    (!g.complete(), hide)
}
