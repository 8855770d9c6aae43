//! Notifications in the corner of the window: successes fade after a few
//! seconds, errors stay until dismissed.

use super::theme;
use egui::{Align2, RichText};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

struct Toast {
    level: Level,
    text: String,
    /// `None` for sticky toasts; otherwise the UI time at which it disappears.
    until: Option<f64>,
}

#[derive(Default)]
pub struct Toasts {
    list: Vec<Toast>,
    pending: Vec<(Level, String)>,
}

const INFO_SECS: f64 = 4.0;

impl Toasts {
    pub fn info(&mut self, text: impl Into<String>) {
        self.pending.push((Level::Info, text.into()));
    }
    pub fn error(&mut self, text: impl Into<String>) {
        self.pending.push((Level::Error, text.into()));
    }

    /// Draws the toasts and schedules a repaint only for the next expiry.
    pub fn show(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        for (level, text) in self.pending.drain(..) {
            let until = (level == Level::Info).then_some(now + INFO_SECS);
            self.list.push(Toast { level, text, until });
        }
        self.list.retain(|t| t.until.is_none_or(|u| u > now));
        if self.list.len() > 5 {
            let extra = self.list.len() - 5;
            self.list.drain(..extra);
        }
        if let Some(next) = self.list.iter().filter_map(|t| t.until).reduce(f64::min) {
            ctx.request_repaint_after(std::time::Duration::from_secs_f64((next - now).max(0.05)));
        }
        if self.list.is_empty() {
            return;
        }
        let mut dismiss = None;
        egui::Area::new(egui::Id::unique("toasts")).anchor(Align2::RIGHT_BOTTOM, [-theme::GAP_L, -theme::GAP_L]).show(ctx, |ui| {
            ui.set_max_width(420.0);
            for (i, t) in self.list.iter().enumerate() {
                let p = theme::palette(ui);
                let color = if t.level == Level::Error { p.danger } else { p.ok };
                theme::card(ui).stroke(egui::Stroke::new(1.5, color)).show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(if t.level == Level::Error { "Error" } else { "Done" }).strong().color(color));
                        ui.add(egui::Label::new(&t.text).wrap());
                        if t.level == Level::Error && ui.small_button("Dismiss").clicked() {
                            dismiss = Some(i);
                        }
                    });
                });
                ui.add_space(theme::GAP_XS);
            }
        });
        if let Some(i) = dismiss {
            self.list.remove(i);
        }
    }
}
