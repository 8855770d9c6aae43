//! Notifications in the corner of the window: successes fade after a few
//! seconds; errors stay longer (until dismissed, or for half a minute), and
//! close by themselves once a later action succeeds ([`Toasts::resolve_errors`]).
//! The same message is never stacked twice.

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
const ERROR_SECS: f64 = 30.0;

impl Toasts {
    pub fn info(&mut self, text: impl Into<String>) {
        self.pending.push((Level::Info, text.into()));
    }
    pub fn error(&mut self, text: impl Into<String>) {
        self.pending.push((Level::Error, text.into()));
    }

    /// Closes the error notifications: what they reported was resolved (a later write succeeded).
    pub fn resolve_errors(&mut self) {
        self.list.retain(|t| t.level != Level::Error);
        self.pending.retain(|(l, _)| *l != Level::Error);
    }

    /// How many notifications are up or waiting, of a level.
    pub fn count(&self, level: Level) -> usize {
        self.list.iter().filter(|t| t.level == level).count() + self.pending.iter().filter(|(l, _)| *l == level).count()
    }

    /// Draws the toasts and schedules a repaint only for the next expiry.
    pub fn show(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        for (level, text) in self.pending.drain(..) {
            let until = Some(now + if level == Level::Info { INFO_SECS } else { ERROR_SECS });
            // The same message again: keep one, for longer.
            self.list.retain(|t| !(t.level == level && t.text == text));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ctx: &egui::Context, toasts: &mut Toasts, t: f64) {
        let input = egui::RawInput { time: Some(t), ..Default::default() };
        let mut out = ctx.run_ui(input, |ui| toasts.show(ui.ctx()));
        out.textures_delta.clear();
    }

    #[test]
    fn errors_close_once_resolved_or_after_a_while_and_never_stack() {
        let ctx = egui::Context::default();
        let mut t = Toasts::default();
        t.error("the key service is not running");
        t.error("the key service is not running");
        frame(&ctx, &mut t, 0.0);
        assert_eq!(t.count(Level::Error), 1, "the same message is shown once");
        t.resolve_errors();
        assert_eq!(t.count(Level::Error), 0, "a later success closes it");
        t.error("disk full");
        t.info("Saved");
        frame(&ctx, &mut t, 1.0);
        frame(&ctx, &mut t, 10.0);
        assert_eq!((t.count(Level::Info), t.count(Level::Error)), (0, 1));
        frame(&ctx, &mut t, 40.0);
        assert_eq!(t.count(Level::Error), 0, "an error closes by itself in the end");
    }
}
