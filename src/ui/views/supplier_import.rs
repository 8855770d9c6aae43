//! The Suppliers view's "Import CSV…" dialog: a typed path (the documents
//! folder by default, as the export dialogs), a preview (the file's counts,
//! its first valid rows and every rejected row with its line and reason), the
//! import with a progress bar and Cancel (run by the console service), then the
//! report of rejected rows, which can be saved as CSV; and "Save template…".
//! A file with an unknown column is refused as a whole, with the message.

use super::{error_box, fmt_int, plural, text_field};
use crate::console::{ConsoleCommand, ConsoleEvent, ConsoleHandle, ImportPreviewView, default_import_dir};
use crate::domain::supplier_import::{COLUMNS, ImportProgress, ImportReport, RejectedRow};
use crate::ui::theme;
use crate::ui::toasts::Toasts;
use egui::{RichText, Ui};
use std::sync::Arc;

/// How many rejected rows the dialog lists (all of them go into the saved report).
const SHOWN_REJECTED: usize = 200;

#[derive(Default)]
pub struct State {
    pub open: bool,
    path: String,
    preview: Option<Arc<ImportPreviewView>>,
    previewing: bool,
    error: Option<String>,
    /// Some while the import runs.
    progress: Option<ImportProgress>,
    cancelling: bool,
    report: Option<Arc<ImportReport>>,
    /// The template's path field, once "Save template…" was clicked.
    template_path: Option<String>,
    report_path: String,
    /// Progress events received during the last import (shown as the bar; counted for tests).
    pub progress_events: usize,
}

fn in_documents(name: &str) -> String {
    default_import_dir().join(name).display().to_string()
}

impl State {
    pub fn open(&mut self) {
        self.open = true;
        if self.path.is_empty() {
            self.path = in_documents("suppliers.csv");
        }
    }

    pub fn importing(&self) -> bool {
        self.progress.is_some()
    }

    pub fn on_event(&mut self, ev: ConsoleEvent, toasts: &mut Toasts) {
        match ev {
            ConsoleEvent::ImportPreview(p) => {
                self.previewing = false;
                self.error = None;
                self.preview = Some(p);
            }
            ConsoleEvent::ImportProgress(p) => {
                self.progress_events += 1;
                if self.progress.is_some() {
                    self.progress = Some(p);
                }
            }
            ConsoleEvent::ImportDone(r) => {
                self.progress = None;
                self.cancelling = false;
                self.preview = None;
                toasts.info(format!(
                    "Imported {} of {}{}",
                    plural(r.imported, "supplier"),
                    plural(r.total, "row"),
                    if r.cancelled { " (cancelled)" } else { "" }
                ));
                self.report = Some(r);
                self.report_path = in_documents("switchboard-import-rejected.csv");
            }
            ConsoleEvent::ImportFileSaved { what, path } => {
                toasts.info(format!("Saved the {what} to {}", path.display()));
                if what == "template" {
                    self.template_path = None;
                }
            }
            ConsoleEvent::Failed { message, .. } => {
                self.previewing = false;
                self.progress = None;
                self.cancelling = false;
                self.error = Some(message);
            }
            _ => {}
        }
    }
}

/// Draws the dialog while it is open.
pub fn show(ctx: &egui::Context, st: &mut State, handle: &ConsoleHandle, toasts: &mut Toasts) {
    if !st.open {
        return;
    }
    let mut send = |cmd: ConsoleCommand| {
        if let Err(e) = handle.send(cmd) {
            toasts.error(e);
        }
    };
    egui::Modal::new(egui::Id::unique("supplier-import")).show(ctx, |ui| {
        let p = *theme::palette(ui);
        ui.set_width(760.0);
        ui.label(RichText::new("Import suppliers from CSV").strong().size(16.0));
        ui.label(
            RichText::new(format!(
                "Columns: {} (name, vendor_type and tier required; weddings as dates separated by ;). Nothing is written before Import.",
                COLUMNS.join(", ")
            ))
            .small()
            .color(p.muted),
        );
        ui.add_space(theme::GAP_S);
        let busy = st.importing();
        ui.horizontal(|ui| {
            ui.add_enabled_ui(!busy, |ui| {
                let r = text_field(ui, "File", &mut st.path, "/home/you/Documents/suppliers.csv", 470.0);
                let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.button("Preview").clicked() || enter {
                    st.previewing = true;
                    st.error = None;
                    st.preview = None;
                    st.report = None;
                    send(ConsoleCommand::PreviewImport(st.path.trim().into()));
                }
                if ui.button("Save template…").clicked() {
                    st.template_path = Some(in_documents("switchboard-suppliers-template.csv"));
                }
            });
        });
        if let Some(t) = &mut st.template_path {
            ui.horizontal(|ui| {
                text_field(ui, "Template file", t, "", 470.0);
                if ui.button("Write template").clicked() {
                    send(ConsoleCommand::SaveImportTemplate(t.trim().into()));
                }
            });
        }
        if let Some(e) = &st.error {
            error_box(ui, e);
        }
        if st.previewing {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading and checking the file…");
            });
        }
        if let Some(pv) = st.preview.clone() {
            preview(ui, &pv);
            ui.add_space(theme::GAP_S);
            if let Some(pr) = st.progress {
                let frac = if pr.total == 0 { 1.0 } else { pr.done as f32 / pr.total as f32 };
                ui.add(egui::ProgressBar::new(frac).text(format!(
                    "Importing… {} of {}",
                    fmt_int(pr.done as i64),
                    fmt_int(pr.total as i64)
                )));
                ui.add_enabled_ui(!st.cancelling, |ui| {
                    if ui.button("Cancel import").clicked() {
                        st.cancelling = true;
                        send(ConsoleCommand::CancelImport);
                    }
                });
            } else if pv.valid > 0 && ui.button(format!("Import {}", plural(pv.valid, "supplier"))).clicked() {
                st.progress = Some(ImportProgress { done: 0, total: pv.valid });
                st.progress_events = 0;
                st.error = None;
                send(ConsoleCommand::ImportSuppliers { path: pv.path.clone() });
            }
        }
        if let Some(r) = st.report.clone() {
            report(ui, &r, &mut st.report_path, &mut send);
        }
        ui.add_space(theme::GAP_S);
        ui.add_enabled_ui(!busy, |ui| {
            if ui.button("Close").clicked() {
                st.open = false;
                st.preview = None;
                st.report = None;
                st.error = None;
                st.template_path = None;
            }
        });
    });
}

fn preview(ui: &mut Ui, pv: &ImportPreviewView) {
    let p = *theme::palette(ui);
    ui.label(
        RichText::new(format!(
            "{}: {} valid, {} rejected",
            plural(pv.total, "row"),
            fmt_int(pv.valid as i64),
            fmt_int(pv.rejected.len() as i64)
        ))
        .strong(),
    );
    if !pv.first.is_empty() {
        ui.label(RichText::new(format!("First {} valid rows", pv.first.len())).small().color(p.muted));
        egui::Grid::new("import-preview").striped(true).spacing([12.0, 2.0]).show(ui, |ui| {
            for h in ["line", "name", "vendor type", "tier", "mode", "time zone", "weddings"] {
                ui.label(RichText::new(h).small().strong());
            }
            ui.end_row();
            for r in &pv.first {
                ui.label(r.line.to_string());
                // Names are at most 100 characters (the store's rule); a long one widens the grid, never hides.
                ui.label(&r.name);
                ui.label(r.vendor_type.to_string());
                ui.label(r.tier.to_string());
                ui.label(r.mode.to_string());
                ui.label(&r.time_zone);
                ui.label(r.weddings.to_string());
                ui.end_row();
            }
        });
    }
    rejected_list(ui, &pv.rejected, "import-preview-rejected");
}

fn rejected_list(ui: &mut Ui, rows: &[RejectedRow], id: &str) {
    if rows.is_empty() {
        return;
    }
    let p = *theme::palette(ui);
    ui.label(RichText::new(format!("Rejected rows ({})", fmt_int(rows.len() as i64))).color(p.danger));
    egui::ScrollArea::vertical().id_salt(id).max_height(150.0).auto_shrink([false, true]).show(ui, |ui| {
        for r in rows.iter().take(SHOWN_REJECTED) {
            let name = if r.name.is_empty() { String::new() } else { format!(" ({})", r.name) };
            ui.add(egui::Label::new(RichText::new(format!("line {}{name}: {}", r.line, r.reason)).small()).wrap());
        }
        if rows.len() > SHOWN_REJECTED {
            ui.label(RichText::new(format!("… and {} more in the saved report", rows.len() - SHOWN_REJECTED)).small().color(p.muted));
        }
    });
}

fn report(ui: &mut Ui, r: &ImportReport, path: &mut String, send: &mut dyn FnMut(ConsoleCommand)) {
    let p = *theme::palette(ui);
    ui.separator();
    let color = if r.rejected.is_empty() && !r.cancelled { p.ok } else { p.warn };
    ui.label(
        RichText::new(format!(
            "Imported {} of {}; {} rejected{}",
            plural(r.imported, "supplier"),
            plural(r.total, "row"),
            fmt_int(r.rejected.len() as i64),
            if r.cancelled { "; cancelled before the end (the rows written are kept)" } else { "" }
        ))
        .color(color)
        .strong(),
    );
    rejected_list(ui, &r.rejected, "import-report-rejected");
    if !r.rejected.is_empty() {
        ui.horizontal(|ui| {
            text_field(ui, "Report file", path, "", 470.0);
            if ui.button("Save report").clicked() {
                send(ConsoleCommand::SaveImportReport { path: path.trim().into(), rows: Arc::new(r.rejected.clone()) });
            }
        });
    }
}
