//! The Suppliers view's CSV import dialog: the preview of a file (its first
//! rows, every rejected row with its line and reason, the counts), the import
//! of its valid rows on the blocking pool with progress and cancellation (one
//! at a time), and the template and rejected-rows report written to files.
//! The rules and the writing are `engine::supplier_import`'s, as for
//! `switchboard supplier import`.

use crate::console::service::{Outbox, Res, Service, msg};
use crate::console::*;
use crate::domain::supplier_import::RejectedRow;
use crate::domain::{AiMode, Tier, VendorType};
use crate::engine::analytics::CancelHandle;
use crate::engine::supplier_import as imp;
use crate::store::audit_actor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many of the file's valid rows the preview shows.
pub const PREVIEW_ROWS: usize = 8;

/// One valid row as the preview shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRow {
    pub line: u64,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub mode: AiMode,
    pub time_zone: String,
    pub weddings: usize,
}

/// What an import file holds, checked, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPreviewView {
    pub path: PathBuf,
    /// Data rows in the file.
    pub total: usize,
    /// Rows that can be imported.
    pub valid: usize,
    /// The first valid rows.
    pub first: Vec<PreviewRow>,
    /// Every rejected row, by line.
    pub rejected: Vec<RejectedRow>,
}

/// The import dialog's default folder: the user's documents folder (as the
/// export dialogs), else the home folder, else the temporary folder.
pub fn default_import_dir() -> PathBuf {
    directories::UserDirs::new()
        .and_then(|u| u.document_dir().filter(|d| d.is_dir()).map(PathBuf::from).or_else(|| Some(u.home_dir().to_path_buf())))
        .filter(|d| d.is_absolute())
        .unwrap_or_else(std::env::temp_dir)
}

fn full_path(path: &Path) -> Res<()> {
    if path.as_os_str().is_empty() {
        return Err("type the path of the CSV file".into());
    }
    if !path.is_absolute() {
        return Err(format!("'{}' is not a full path; start it with / (for example {})", path.display(), default_import_dir().display()));
    }
    Ok(())
}

impl Service {
    pub(in crate::console) fn preview_import(&self, path: &Path) -> Res<ImportPreviewView> {
        full_path(path)?;
        let p = imp::preview_file(path, &self.store, super::suppliers::platform_time_zone()).map_err(|e| match e {
            imp::ImportError::Refused(m) => format!("{} is refused: {m}", path.display()),
            e => e.to_string(),
        })?;
        let first = p
            .valid
            .iter()
            .take(PREVIEW_ROWS)
            .map(|(line, s)| PreviewRow {
                line: *line,
                name: s.name.clone(),
                vendor_type: s.vendor_type,
                tier: s.tier,
                mode: s.ai_mode,
                time_zone: s.time_zone.to_string(),
                weddings: s.weddings.len(),
            })
            .collect();
        Ok(ImportPreviewView { path: path.to_path_buf(), total: p.total, valid: p.valid.len(), first, rejected: p.rejected })
    }

    /// Reads and checks the file again (the database may have changed since
    /// the preview), then writes its valid rows with progress; one import at a time.
    pub(in crate::console) fn start_import(self: &Arc<Self>, path: PathBuf, ticket: Ticket, out: Outbox) {
        let cancel = CancelHandle::new();
        {
            let mut running = self.import.lock();
            if running.is_some() {
                let message = "an import is already running; wait for it to finish or cancel it first".to_string();
                out.send(ticket, ConsoleEvent::Failed { channel: Channel::Import, message });
                return;
            }
            *running = Some(cancel.clone());
        }
        let svc = self.clone();
        tokio::spawn(async move {
            let (svc2, progress_out) = (svc.clone(), out.clone());
            let res = tokio::task::spawn_blocking(move || -> Res<_> {
                full_path(&path)?;
                let preview = imp::preview_file(&path, &svc2.store, super::suppliers::platform_time_zone()).map_err(|e| match e {
                    imp::ImportError::Refused(m) => format!("{} is refused: {m}", path.display()),
                    e => e.to_string(),
                })?;
                let report = imp::import(&svc2.store, preview, svc2.clock.now(), &audit_actor(), &cancel, |p| {
                    progress_out.send(ticket, ConsoleEvent::ImportProgress(p))
                });
                svc2.invalidate();
                report.map_err(|e| format!("the import stopped: {e}; the rows written before it are kept"))
            })
            .await;
            *svc.import.lock() = None;
            let ev = match res {
                Ok(Ok(report)) => ConsoleEvent::ImportDone(Arc::new(report)),
                Ok(Err(message)) => ConsoleEvent::Failed { channel: Channel::Import, message },
                Err(e) => ConsoleEvent::Failed { channel: Channel::Import, message: format!("the import failed unexpectedly ({e})") },
            };
            out.send(ticket, ev);
        });
    }

    pub(in crate::console) fn save_import_template(&self, path: &Path) -> Res<ConsoleEvent> {
        full_path(path)?;
        write_new(path, &crate::domain::supplier_import::template())?;
        Ok(ConsoleEvent::ImportFileSaved { what: "template", path: path.to_path_buf() })
    }

    pub(in crate::console) fn save_import_report(&self, path: &Path, rows: &[RejectedRow]) -> Res<ConsoleEvent> {
        full_path(path)?;
        write_new(path, &imp::rejected_csv(rows))?;
        Ok(ConsoleEvent::ImportFileSaved { what: "report of rejected rows", path: path.to_path_buf() })
    }
}

/// Writes a file that must not exist yet (nothing is overwritten silently).
fn write_new(path: &Path, text: &str) -> Res<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!("{} already exists; choose another name", path.display()),
        _ => format!("cannot write {}: {e}", path.display()),
    })?;
    f.write_all(text.as_bytes()).map_err(msg)?;
    Ok(())
}
