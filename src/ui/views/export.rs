//! The Usage & cost view's CSV export panel (button "Export CSV…" or Ctrl+E):
//! dates, supplier and grouping, then the native save dialog — injectable as a
//! [`SaveDialog`] so tests answer with a temporary path, and driven on its own
//! thread so the UI never waits on it. Without a dialog (no desktop portal)
//! the panel asks for a typed path instead. The export itself runs on the
//! runtime (`ConsoleCommand::ExportUsage`): a progress bar with Cancel, a
//! notification with rows, size and path when done, and "Overwrite" when the
//! file exists. Row counts and sizes come from the export; nothing is summed here.

use super::{Cx, error_box, fmt_int, text_field};
use crate::console::{ConsoleCommand, ConsoleEvent};
use crate::domain::SupplierId;
use crate::domain::reporting::{ExportOptions, GroupBy};
use crate::ui::theme;
use crate::ui::toasts::Toasts;
use chrono::NaiveDate;
use egui::{RichText, Ui};
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

/// What the save dialog is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveRequest {
    pub title: String,
    /// Suggested file name, e.g. `usage-2026-01-01-to-2026-01-31.csv`.
    pub default_name: String,
}

/// Asks the user where to save a file. Called on the UI thread; the future it
/// returns is awaited on a separate thread (`None`: no file chosen, or no dialog
/// available). The default is the native dialog (rfd).
#[derive(Clone)]
pub struct SaveDialog(Arc<dyn Fn(SaveRequest) -> BoxFuture<'static, Option<PathBuf>> + Send + Sync>);

impl SaveDialog {
    pub fn new(f: impl Fn(SaveRequest) -> BoxFuture<'static, Option<PathBuf>> + Send + Sync + 'static) -> Self {
        SaveDialog(Arc::new(f))
    }

    /// The operating system's save dialog (on Linux through the XDG desktop portal).
    pub fn native() -> Self {
        SaveDialog::new(|req: SaveRequest| {
            let fut = rfd::AsyncFileDialog::new()
                .set_title(req.title)
                .set_directory(default_export_dir())
                .set_file_name(req.default_name)
                .add_filter("CSV (comma-separated values)", &["csv"])
                .save_file();
            Box::pin(async move { fut.await.map(|h| h.path().to_path_buf()) })
        })
    }

    /// A dialog that always answers `path` (tests, scripted runs).
    pub fn answering(path: Option<PathBuf>) -> Self {
        SaveDialog::new(move |_| {
            let p = path.clone();
            Box::pin(async move { p })
        })
    }
}

/// Where exports go by default: the user's documents folder (XDG
/// `documents`, `~/Documents` or the platform's own), else the home folder,
/// else the temporary folder. Always a full path.
pub fn default_export_dir() -> PathBuf {
    directories::UserDirs::new()
        .and_then(|u| u.document_dir().filter(|d| d.is_dir()).map(PathBuf::from).or_else(|| Some(u.home_dir().to_path_buf())))
        .filter(|d| d.is_absolute())
        .unwrap_or_else(std::env::temp_dir)
}

impl Default for SaveDialog {
    fn default() -> Self {
        SaveDialog::native()
    }
}

impl std::fmt::Debug for SaveDialog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaveDialog")
    }
}

/// The options of the panel, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Choice {
    from: NaiveDate,
    to: NaiveDate,
    supplier: Option<SupplierId>,
    group_by: Option<GroupBy>,
}

impl Choice {
    fn default_name(&self) -> String {
        format!("usage-{}-to-{}.csv", self.from, self.to)
    }

    /// The default file: the default name in the user's documents folder.
    fn default_path(&self) -> PathBuf {
        default_export_dir().join(self.default_name())
    }

    fn options(&self, out: PathBuf, force: bool) -> ExportOptions {
        ExportOptions { from: self.from, to: self.to, supplier: self.supplier, group_by: self.group_by, out, force }
    }
}

struct Running {
    path: PathBuf,
    rows: u64,
    events_in_range: u64,
    grouped: bool,
    cancelling: bool,
}

pub struct Panel {
    pub open: bool,
    from_text: String,
    to_text: String,
    supplier: Option<(SupplierId, String)>,
    group_by: Option<GroupBy>,
    /// The dialog gave no file: a path is typed instead.
    manual: bool,
    path_text: String,
    /// In-place information (not an error).
    notice: Option<String>,
    error: Option<String>,
    /// The save dialog is open; its answer arrives here.
    choosing: Option<(Choice, mpsc::Receiver<Option<PathBuf>>)>,
    running: Option<Running>,
    /// The options of the export that found its file already there.
    exists: Option<ExportOptions>,
    dialog: SaveDialog,
}

impl Default for Panel {
    fn default() -> Self {
        Panel::new(SaveDialog::default())
    }
}

impl Panel {
    pub fn new(dialog: SaveDialog) -> Self {
        Panel {
            open: false,
            from_text: String::new(),
            to_text: String::new(),
            supplier: None,
            group_by: None,
            manual: false,
            path_text: String::new(),
            notice: None,
            error: None,
            choosing: None,
            running: None,
            exists: None,
            dialog,
        }
    }

    /// Opens the panel with the view's dates (kept as they are while an export runs).
    pub fn open_with(&mut self, from: NaiveDate, to: NaiveDate) {
        if !self.open && self.running.is_none() && self.choosing.is_none() {
            self.from_text = from.to_string();
            self.to_text = to.to_string();
            self.error = None;
            self.notice = None;
            self.exists = None;
        }
        self.open = true;
    }

    pub fn is_busy(&self) -> bool {
        self.running.is_some() || self.choosing.is_some()
    }

    pub fn on_event(&mut self, ev: ConsoleEvent, toasts: &mut Toasts) {
        match ev {
            ConsoleEvent::ExportProgress(p) => {
                if let Some(r) = &mut self.running {
                    r.rows = p.rows;
                    r.events_in_range = p.events_in_range;
                }
            }
            ConsoleEvent::ExportDone(s) => {
                self.running = None;
                self.exists = None;
                self.manual = false;
                self.open = false;
                toasts.info(format!("Exported {} rows ({}) to {}", fmt_int(s.rows as i64), fmt_bytes(s.bytes), s.path.display()));
            }
            ConsoleEvent::ExportExists { path } => {
                self.running = None;
                self.exists = self.pending_options(&path);
                self.open = true;
            }
            ConsoleEvent::ExportCancelled => {
                self.running = None;
                self.notice = Some("The export was cancelled; no file was written.".into());
            }
            ConsoleEvent::Failed { message, .. } => {
                self.running = None;
                self.open = true;
                self.error = Some(message);
            }
            _ => {}
        }
    }

    /// The options to re-run with overwrite for the export that found `path` taken.
    fn pending_options(&self, path: &Path) -> Option<ExportOptions> {
        let c = self.parse().ok()?;
        Some(c.options(path.to_path_buf(), true))
    }

    fn parse(&self) -> Result<Choice, String> {
        let date = |s: &str, what: &str| {
            s.trim().parse::<NaiveDate>().map_err(|_| format!("the '{what}' date '{}' is not a date; write it as YYYY-MM-DD", s.trim()))
        };
        let (from, to) = (date(&self.from_text, "from")?, date(&self.to_text, "to")?);
        if to < from {
            return Err(format!(
                "the 'to' date ({to}) is before the 'from' date ({from}); the export covers from the first day to the last, inclusive"
            ));
        }
        Ok(Choice { from, to, supplier: self.supplier.as_ref().map(|s| s.0), group_by: self.group_by })
    }

    fn start(&mut self, opts: ExportOptions, cx: &mut Cx<'_>) {
        self.error = None;
        self.notice = None;
        self.exists = None;
        self.running =
            Some(Running { path: opts.out.clone(), rows: 0, events_in_range: 0, grouped: opts.group_by.is_some(), cancelling: false });
        cx.send(ConsoleCommand::ExportUsage(opts));
    }

    /// Opens the save dialog on its own thread.
    fn choose(&mut self, ctx: &egui::Context) {
        let choice = match self.parse() {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        self.error = None;
        self.notice = None;
        self.exists = None;
        let fut = (self.dialog.0)(SaveRequest { title: "Export usage as CSV".into(), default_name: choice.default_name() });
        let (tx, rx) = mpsc::channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new().name("save-dialog".into()).spawn(move || {
            let path = futures::executor::block_on(fut);
            let _ = tx.send(path);
            ctx.request_repaint();
        });
        match spawned {
            Ok(_) => self.choosing = Some((choice, rx)),
            Err(e) => {
                self.manual = true;
                self.notice = Some(format!("The save dialog could not be opened ({e}); type the path of the CSV file below instead."));
            }
        }
    }

    /// Picks up the dialog's answer.
    fn poll(&mut self, cx: &mut Cx<'_>) {
        let Some((choice, rx)) = &self.choosing else { return };
        let choice = *choice;
        match rx.try_recv() {
            Err(mpsc::TryRecvError::Empty) => {}
            Ok(Some(path)) => {
                self.choosing = None;
                self.path_text = path.display().to_string();
                self.start(choice.options(path, false), cx);
            }
            Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                self.choosing = None;
                self.manual = true;
                if self.path_text.trim().is_empty() {
                    self.path_text = choice.default_path().display().to_string();
                }
                self.notice = Some(
                    "No file was chosen. If no save dialog appeared (some desktops have no file-dialog portal), type the full path of the CSV file below instead."
                        .into(),
                );
            }
        }
    }

    /// The typed path, checked: absolute (or starting with `~/`) and naming a file.
    fn typed_path(&self) -> Result<PathBuf, String> {
        let t = self.path_text.trim();
        if t.is_empty() {
            return Err("type the path of the CSV file, e.g. /home/you/usage.csv".into());
        }
        let p = match t.strip_prefix("~/") {
            Some(rest) => match directories::BaseDirs::new() {
                Some(b) => b.home_dir().join(rest),
                None => return Err("your home folder is unknown here; write the full path instead of ~/".into()),
            },
            None => PathBuf::from(t),
        };
        if !p.is_absolute() {
            return Err(format!("'{t}' is not a full path; write it from the root, e.g. /home/you/{t}"));
        }
        if t.ends_with('/') || t.ends_with(std::path::MAIN_SEPARATOR) || p.file_name().is_none() {
            return Err(format!("'{t}' names a folder; add a file name, e.g. {}", p.join("usage.csv").display()));
        }
        Ok(p)
    }

    /// Draws the panel (when open) and picks up the dialog's answer.
    /// `suppliers` are the choices of the supplier filter (id, name).
    pub fn show(&mut self, ui: &mut Ui, cx: &mut Cx<'_>, suppliers: &[(SupplierId, String)]) {
        self.poll(cx);
        if !self.open {
            return;
        }
        let p = *theme::palette(ui);
        theme::card(ui).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(RichText::new("Export usage as CSV").strong());
                ui.label(RichText::new("for spreadsheets: UTF-8, header row, money as dollars with six decimals").small().color(p.muted));
            });
            ui.add_space(theme::GAP_XS);
            let busy = self.is_busy();
            ui.add_enabled_ui(!busy, |ui| {
                ui.horizontal_wrapped(|ui| {
                    text_field(ui, "Export from", &mut self.from_text, "YYYY-MM-DD", 96.0);
                    text_field(ui, "to", &mut self.to_text, "YYYY-MM-DD", 96.0);
                    ui.separator();
                    let l = ui.label("Supplier");
                    let selected = self.supplier.as_ref().map(|s| s.1.clone()).unwrap_or_else(|| "All suppliers".into());
                    egui::ComboBox::from_id_salt("export_supplier")
                        .selected_text(selected)
                        .width(200.0)
                        .show_ui(ui, |ui| {
                            ui.selectable_value(&mut self.supplier, None, "All suppliers");
                            for (id, name) in suppliers {
                                ui.selectable_value(&mut self.supplier, Some((*id, name.clone())), format!("{name} (#{id})"));
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    ui.separator();
                    ui.label("Rows");
                    for (g, label) in [(None, "One per event"), (Some(GroupBy::Day), "Per day"), (Some(GroupBy::Month), "Per month")] {
                        ui.selectable_value(&mut self.group_by, g, label);
                    }
                });
                ui.add_space(theme::GAP_XS);
                ui.horizontal(|ui| {
                    if ui.button("Choose file…").on_hover_text("Opens the save dialog; the export starts once a file is chosen").clicked()
                    {
                        self.choose(ui.ctx());
                    }
                    if ui.button("Close").clicked() {
                        self.open = false;
                        self.manual = false;
                        self.error = None;
                        self.notice = None;
                        self.exists = None;
                    }
                });
            });
            if self.choosing.is_some() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(RichText::new("Waiting for the save dialog…").color(p.muted));
                    // A dialog that never answers must not lock the panel.
                    if ui.button("Type a path instead").clicked() {
                        let name = self.choosing.take().map(|(c, _)| c.default_path().display().to_string()).unwrap_or_default();
                        self.manual = true;
                        if self.path_text.trim().is_empty() {
                            self.path_text = name;
                        }
                    }
                });
            }
            if let Some(n) = &self.notice {
                ui.label(RichText::new(n).color(p.muted));
            }
            if self.manual && !busy {
                ui.horizontal(|ui| {
                    text_field(ui, "CSV file path", &mut self.path_text, "/home/you/usage.csv", 420.0);
                    if ui.button("Export").clicked() {
                        match self.parse().and_then(|c| self.typed_path().map(|path| c.options(path, false))) {
                            Ok(opts) => self.start(opts, cx),
                            Err(e) => self.error = Some(e),
                        }
                    }
                });
            }
            if let Some(opts) = self.exists.clone() {
                theme::card(ui).stroke(egui::Stroke::new(1.0, p.warn)).show(ui, |ui| {
                    ui.label(
                        RichText::new(format!(
                            "{} already exists, so nothing was written. Overwrite it, or choose another file.",
                            opts.out.display()
                        ))
                        .color(p.warn),
                    );
                    ui.horizontal(|ui| {
                        if ui.button("Overwrite").clicked() {
                            self.start(opts.clone(), cx);
                        }
                        if ui.button("Keep it").clicked() {
                            self.exists = None;
                        }
                    });
                });
            }
            if let Some(r) = &mut self.running {
                ui.add_space(theme::GAP_XS);
                ui.label(RichText::new(format!("Writing {}", r.path.display())).small().color(p.muted));
                ui.horizontal(|ui| {
                    let rows = format!("{} rows", fmt_int(r.rows as i64));
                    let bar = if !r.grouped && r.events_in_range > 0 {
                        let f = (r.rows as f64 / r.events_in_range as f64).clamp(0.0, 1.0) as f32;
                        egui::ProgressBar::new(f).text(format!("{rows} of {}", fmt_int(r.events_in_range as i64)))
                    } else {
                        egui::ProgressBar::new(0.0).animate(true).text(rows)
                    };
                    ui.add(bar.desired_width(360.0));
                    let label = if r.cancelling { "Cancelling…" } else { "Cancel" };
                    if ui.add_enabled(!r.cancelling, egui::Button::new(label)).clicked() {
                        r.cancelling = true;
                        cx.send(ConsoleCommand::CancelExport);
                    }
                });
                ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
            }
            if let Some(e) = &self.error {
                error_box(ui, e);
            }
        });
        ui.add_space(theme::GAP_S);
    }
}

/// `1536` → `1.5 KB`.
pub fn fmt_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_typed_paths() {
        assert_eq!([fmt_bytes(900), fmt_bytes(1536), fmt_bytes(3 << 20)], ["900 bytes", "1.5 KB", "3.0 MB"]);
        let mut p = Panel::new(SaveDialog::answering(None));
        for bad in ["", "usage.csv", "/tmp/"] {
            p.path_text = bad.into();
            assert!(p.typed_path().is_err(), "{bad}");
        }
        p.path_text = " /tmp/usage.csv ".into();
        assert_eq!(p.typed_path().unwrap(), PathBuf::from("/tmp/usage.csv"));
        p.from_text = "2026-02-30".into();
        p.to_text = "2026-03-01".into();
        assert!(p.parse().unwrap_err().contains("is not a date"));
        p.from_text = "2026-03-02".into();
        assert!(p.parse().unwrap_err().contains("before"));
        p.from_text = "2026-01-01".into();
        assert_eq!(p.parse().unwrap().default_name(), "usage-2026-01-01-to-2026-03-01.csv");
        // The pre-filled default is a full path the panel accepts (never a bare name it then refuses).
        let d = p.parse().unwrap().default_path();
        assert!(d.is_absolute(), "{}", d.display());
        p.path_text = d.display().to_string();
        assert_eq!(p.typed_path().unwrap(), d);
    }
}
