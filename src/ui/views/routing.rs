//! The Overview's routing switch, "Route requests from this console": the
//! port, the state the service reports (starting, routing at URL, stopping,
//! stopped, refused with the other runtime's process and host), and the
//! question asked when the window is closed while it routes. The switch is
//! remembered per database ([`Persisted`], in the app's per-database settings).

use super::{Cx, text_field};
use crate::console::{ConsoleCommand, ConsoleEvent, DEFAULT_ROUTING_PORT, RoutingState};
use crate::ui::theme;
use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

/// What is remembered per database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    /// The user switched routing on (and did not switch it off).
    pub on: bool,
    pub port: u16,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted { on: false, port: DEFAULT_ROUTING_PORT }
    }
}

/// The answer to the close question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseChoice {
    StopAndQuit,
    KeepInBackground,
    Cancel,
}

pub struct State {
    /// This console may route (a database file with the keychain; not demo mode).
    pub available: bool,
    pub state: RoutingState,
    pub remembered: Persisted,
    port_text: String,
    port_error: Option<String>,
    /// Sent at start when remembered on.
    started_once: bool,
}

impl State {
    pub fn new(available: bool, remembered: Persisted) -> Self {
        State {
            available,
            state: RoutingState::Off,
            remembered,
            port_text: remembered.port.to_string(),
            port_error: None,
            started_once: false,
        }
    }

    pub fn on_event(&mut self, ev: ConsoleEvent) {
        if let ConsoleEvent::Routing(s) = ev {
            self.state = s;
        }
    }

    /// Starts routing once at launch when it was on for this database.
    pub fn resume(&mut self, cx: &mut Cx<'_>) {
        if !self.started_once {
            self.started_once = true;
            if self.available && self.remembered.on {
                cx.send(ConsoleCommand::StartRouting { port: self.remembered.port });
            }
        }
    }

    pub fn persisted(&self) -> Persisted {
        self.remembered
    }

    /// The gateway's URL while this console routes.
    pub fn url(&self) -> Option<&str> {
        match &self.state {
            RoutingState::On { url, .. } => Some(url),
            _ => None,
        }
    }
}

/// The switch with its port and state.
pub fn switch(ui: &mut Ui, st: &mut State, cx: &mut Cx<'_>) {
    if !st.available {
        return;
    }
    let p = *theme::palette(ui);
    let mut on = matches!(st.state, RoutingState::Starting { .. } | RoutingState::On { .. });
    let settling = matches!(st.state, RoutingState::Starting { .. } | RoutingState::Stopping);
    ui.horizontal_wrapped(|ui| {
        let r = ui.add_enabled(!settling, egui::Checkbox::new(&mut on, "Route requests from this console")).on_hover_text(
            "Runs the routing runtime and the gateway in this window's process, as `switchboard serve` would; remembered for this database",
        );
        let port_field = ui.add_enabled_ui(!on && !settling, |ui| text_field(ui, "Port", &mut st.port_text, "4480", 64.0)).inner;
        if port_field.changed() {
            st.port_error = None;
        }
        if r.changed() {
            if on {
                match st.port_text.trim().parse::<u16>() {
                    Ok(port) if port > 0 => {
                        st.port_error = None;
                        st.remembered = Persisted { on: true, port };
                        cx.send(ConsoleCommand::StartRouting { port });
                    }
                    _ => st.port_error = Some(format!("'{}' is not a port; type a number from 1 to 65535", st.port_text.trim())),
                }
            } else {
                st.remembered.on = false;
                cx.send(ConsoleCommand::StopRouting);
            }
        }
    });
    if let Some(e) = &st.port_error {
        ui.label(RichText::new(e).color(p.danger));
    }
    match &st.state {
        RoutingState::Off => {
            ui.label(
                RichText::new("Stopped: this console does not route. Switch it on, or run `switchboard serve` on this database.")
                    .color(p.muted),
            );
        }
        RoutingState::Starting { port } => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Starting the routing runtime and the gateway on 127.0.0.1:{port}…"));
            });
        }
        RoutingState::On { url, holder, left_behind } => {
            ui.horizontal_wrapped(|ui| {
                super::status_dot(ui, p.ok);
                ui.label(RichText::new(format!("Routing at {url}")).color(p.ok).strong());
                if ui.button("Copy URL").clicked() {
                    ui.ctx().copy_text(url.clone());
                }
            });
            ui.label(RichText::new(format!("This console holds the database's routing lock: {holder}.")).small().color(p.muted));
            if let Some(h) = left_behind {
                ui.label(
                    RichText::new(format!("The previous runtime, {h}, ended without stopping (killed or crashed); its lock went with it."))
                        .small()
                        .color(p.warn),
                );
            }
        }
        RoutingState::Stopping => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Stopping: finishing requests in flight and flushing the usage ledger…");
            });
        }
        RoutingState::Refused { message } => {
            ui.label(RichText::new(format!("Refused: {message}")).color(p.danger));
        }
        RoutingState::Failed { message } => {
            ui.label(RichText::new(message).color(p.danger));
        }
    }
}

/// The question asked when the window is closed while this console routes.
pub fn close_question(ctx: &egui::Context, st: &State) -> Option<CloseChoice> {
    let mut answer = None;
    egui::Modal::new(egui::Id::unique("close-while-routing")).show(ctx, |ui| {
        ui.set_width(480.0);
        ui.label(RichText::new("This console is routing requests").strong().size(16.0));
        let at = st.url().map(|u| format!(" at {u}")).unwrap_or_default();
        ui.label(format!(
            "Its gateway{at} serves your suppliers' requests. Stop routing and quit, or close the window and keep routing in the background (until the process gets Ctrl+C or SIGTERM, like `switchboard serve`)."
        ));
        ui.add_space(theme::GAP_S);
        if matches!(st.state, RoutingState::Stopping) {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Stopping: flushing the usage ledger…");
            });
            return;
        }
        ui.horizontal(|ui| {
            if ui.button("Stop routing and quit").clicked() {
                answer = Some(CloseChoice::StopAndQuit);
            }
            if ui.button("Keep routing in the background").clicked() {
                answer = Some(CloseChoice::KeepInBackground);
            }
            if ui.button("Cancel").clicked() {
                answer = Some(CloseChoice::Cancel);
            }
        });
    });
    answer
}
