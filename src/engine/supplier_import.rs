//! Importing suppliers from a CSV file (`switchboard supplier import`, the
//! console's import dialog): reading and validating every row into an
//! [`ImportPreview`] before anything is written (the rules are
//! `domain::supplier_import`'s; names already in the database or repeated in
//! the file are rejected too), then writing the valid rows with progress and
//! cancellation between rows, one audit entry for the whole import, and a
//! report of the rejected rows that can be saved as CSV.

use crate::domain::supplier::Tz;
use crate::domain::supplier_import::{ImportPreview, ImportProgress, ImportReport, MAX_ROWS, RejectedRow, check_header};
use crate::engine::analytics::CancelHandle;
use crate::store::{Store, StoreError, SupplierFilter};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file as a whole is refused (its header, its size, not CSV).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Reads and validates the file at `path` (see [`preview_reader`]).
pub fn preview_file(path: &Path, store: &Store, default_tz: Tz) -> Result<ImportPreview, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Read { path: path.display().to_string(), source })?;
    preview_reader(file, store, default_tz)
}

/// Reads and validates a whole import file; writes nothing. Rows whose name
/// is already a supplier's, or appeared earlier in the file, are rejected.
pub fn preview_reader(input: impl Read, store: &Store, default_tz: Tz) -> Result<ImportPreview, ImportError> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(input);
    let mut records = rdr.records();
    let header = match records.next() {
        None => return Err(ImportError::Refused("the file is empty; it needs a header row (save the template to start from)".into())),
        Some(Err(e)) => return Err(ImportError::Refused(format!("the header row cannot be read as CSV: {e}"))),
        Some(Ok(h)) => h,
    };
    let fields: Vec<&str> = header.iter().collect();
    let header = check_header(&fields).map_err(ImportError::Refused)?;
    let mut taken: HashSet<String> =
        store.list_suppliers(&SupplierFilter::default())?.into_iter().map(|s| s.name.to_ascii_lowercase()).collect();
    let mut preview = ImportPreview { total: 0, valid: Vec::new(), rejected: Vec::new() };
    for rec in records {
        let line = rdr_line(&rec);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                preview.total += 1;
                preview.rejected.push(RejectedRow { line, name: String::new(), reason: format!("not readable as CSV: {e}") });
                continue;
            }
        };
        if rec.iter().all(str::is_empty) {
            continue; // blank line
        }
        preview.total += 1;
        if preview.total > MAX_ROWS {
            return Err(ImportError::Refused(format!("the file has more than {MAX_ROWS} rows; split it into smaller files")));
        }
        let fields: Vec<&str> = rec.iter().collect();
        let name = header.name(&fields).to_string();
        match header.row(&fields, default_tz) {
            Ok(s) => {
                if !taken.insert(s.name.to_ascii_lowercase()) {
                    preview.rejected.push(RejectedRow {
                        line,
                        name,
                        reason: "name: a supplier with this name already exists (in the database or earlier in the file)".into(),
                    });
                } else {
                    preview.valid.push((line, s));
                }
            }
            Err(reason) => preview.rejected.push(RejectedRow { line, name, reason }),
        }
    }
    Ok(preview)
}

fn rdr_line(rec: &Result<csv::StringRecord, csv::Error>) -> u64 {
    match rec {
        Ok(r) => r.position().map(|p| p.line()).unwrap_or(0),
        Err(e) => e.position().map(|p| p.line()).unwrap_or(0),
    }
}

/// Writes the valid rows of `preview`, reporting progress every 100 rows (and
/// at the end); stops between rows when `cancel` is cancelled. One audit
/// entry records the import.
pub fn import(
    store: &Store,
    preview: ImportPreview,
    now: DateTime<Utc>,
    actor: &str,
    cancel: &CancelHandle,
    mut progress: impl FnMut(ImportProgress),
) -> Result<ImportReport, ImportError> {
    let total = preview.valid.len();
    let mut report = ImportReport { total: preview.total, imported: 0, rejected: preview.rejected, cancelled: false };
    let mut processed = 0;
    for (i, (line, s)) in preview.valid.into_iter().enumerate() {
        if cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
        processed = i + 1;
        match store.insert_supplier(&s, now) {
            Ok(_) => report.imported += 1,
            Err(StoreError::Invalid(reason)) => report.rejected.push(RejectedRow { line, name: s.name, reason }),
            Err(e) => return Err(e.into()),
        }
        if (i + 1) % 100 == 0 {
            progress(ImportProgress { done: i + 1, total });
        }
    }
    report.rejected.sort_by_key(|r| r.line);
    progress(ImportProgress { done: processed, total });
    let detail = format!(
        "imported {} of {} suppliers; {} rows rejected{}",
        report.imported,
        report.total,
        report.rejected.len(),
        if report.cancelled { "; cancelled" } else { "" }
    );
    store.audit(now, actor, "supplier.import", None, None, if report.cancelled { "cancelled" } else { "ok" }, &detail)?;
    Ok(report)
}

/// The rejected rows as CSV (`line, name, reason`), for a spreadsheet.
pub fn rejected_csv(rows: &[RejectedRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["line", "name", "reason"]);
    for r in rows {
        // A name starting with = + - @ would run as a formula in a spreadsheet.
        let name = if r.name.starts_with(['=', '+', '-', '@']) { format!("'{}", r.name) } else { r.name.clone() };
        let _ = w.write_record([r.line.to_string(), name, r.reason.clone()]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
