//! CSV export of usage for spreadsheets: one row per usage event, or per day /
//! month group, written with the `csv` crate (RFC 4180, UTF-8, header row).
//!
//! Spreadsheets type every column: the per-event `timestamp_utc` is
//! `2026-06-20T14:03:07` (UTC, ISO 8601 without a zone suffix: the form
//! LibreOffice's CSV import reads as a date-time — with a `Z`, or with a space
//! instead of the `T`, it keeps text), with a separate `date` column (`2026-06-20`) read as a date;
//! grouped files call their period `date` too (a month as its first day,
//! `2026-06-01`); money is decimal dollars with six decimals (`cost_usd`)
//! beside the exact integer `cost_micro_usd`, so a tiny cost never shows as
//! `3E-006`. A cache hit's row (route `cache`) costs nothing and says what it
//! saved (`saved_usd`, `saved_micro_usd`: the cost of the call whose answer
//! was replayed), so cache usage and savings group by supplier, model and
//! request type in a spreadsheet like any other column. Rows are streamed from the database (SQLite, or PostgreSQL through a portal) to the file, so memory stays flat at
//! any size; progress goes to a callback. No key, key reference, fingerprint
//! or gateway token is ever read, let alone written.
//!
//! Text cells that a spreadsheet would read as a formula (starting with `=`,
//! `+`, `-`, `@`, a tab or a carriage return: supplier names, models and
//! request ids come from users and clients) are prefixed with `'`, as OWASP
//! advises against CSV injection ([`csv_text`]); numeric columns are written
//! as numbers, so a negative number stays a number.
//!
//! The file is written under a temporary name in the destination folder and
//! renamed at the end, so a failed or cancelled export leaves nothing under the
//! final name; an existing file is refused unless `force` (and without
//! `force` the final step is a hard link, which also refuses a file created
//! meanwhile).

use super::analytics::CancelHandle;
use crate::domain::calendar::{day_start, next_day_start};
pub use crate::domain::reporting::{ExportOptions, GroupBy};
use crate::domain::{RequestType, Route, UsageStatus};
use crate::store::analytics::UsageTotals;
use crate::store::analytics::{EventRow, GroupRow, is_interrupted};
use crate::store::{Store, StoreError, SupplierInfo};
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Reported while exporting (every 4,096 rows, and at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportProgress {
    pub rows: u64,
    /// Events in the range (from the rollups). For grouped exports this
    /// counts events, not groups, so use it only as an upper bound.
    pub events_in_range: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSummary {
    pub path: PathBuf,
    /// Data rows written (the header not counted).
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Invalid(String),
    #[error("{} already exists; choose another file, or pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}. Nothing was written under that name; check the folder and free space, then try again", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the export was cancelled; nothing was written")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The per-event columns, in order.
pub const EVENT_HEADER: &[&str] = &[
    "timestamp_utc",
    "date",
    "request_id",
    "event_id",
    "supplier_id",
    "supplier_name",
    "vendor_type",
    "provider",
    "model",
    "request_type",
    "route",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "tokens_estimated",
    "cost_usd",
    "cost_micro_usd",
    "latency_ms",
    "status",
    "error_class",
    "saved_usd",
    "saved_micro_usd",
];

/// The grouped columns, in order.
pub const GROUP_HEADER: &[&str] = &[
    "date",
    "supplier_id",
    "supplier_name",
    "vendor_type",
    "provider",
    "model",
    "request_type",
    "route",
    "requests",
    "errors",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "cost_micro_usd",
    "avg_latency_ms",
    "saved_usd",
    "saved_micro_usd",
];

const PROGRESS_EVERY: u64 = 4_096;

/// A UTC time as spreadsheets read a date-time: `2026-06-13T14:05:09`.
pub fn csv_timestamp(ts_ms: i64) -> String {
    Utc.timestamp_millis_opt(ts_ms).single().unwrap_or_default().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A grouped row's period as a date: a day as it is, a month (`2026-06`) as its first day.
pub fn period_date(period: &str) -> std::borrow::Cow<'_, str> {
    if period.len() == 7 && period.as_bytes()[4] == b'-' { format!("{period}-01").into() } else { period.into() }
}

/// A file under a temporary name next to its destination, removed on drop
/// unless it was moved into place.
struct TempFile {
    path: PathBuf,
    done: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Checks the options before anything is written.
fn validate(opts: &ExportOptions) -> Result<(), ExportError> {
    if opts.from > opts.to {
        return Err(ExportError::Invalid(format!(
            "--from {} is after --to {}; the range is from the first day to the last day, inclusive",
            opts.from, opts.to
        )));
    }
    let out = &opts.out;
    if out.file_name().is_none() {
        return Err(ExportError::Invalid(format!("{} is not a file name; write e.g. --out usage.csv", out.display())));
    }
    if out.is_dir() {
        return Err(ExportError::Invalid(format!(
            "{} is a folder; give a file name, e.g. {}",
            out.display(),
            out.join("usage.csv").display()
        )));
    }
    if out.exists() && !opts.force {
        return Err(ExportError::Exists(out.clone()));
    }
    Ok(())
}

/// Exports usage per `opts`. `progress` is called as rows are written;
/// cancelling `cancel` stops the export and removes the partial file.
pub fn export_usage(
    store: &Store,
    opts: &ExportOptions,
    cancel: &CancelHandle,
    mut progress: impl FnMut(ExportProgress),
) -> Result<ExportSummary, ExportError> {
    validate(opts)?;
    let reader = store.analytics_reader()?;
    let suppliers: HashMap<i64, SupplierInfo> = reader.suppliers()?.into_iter().map(|s| (s.id.0, s)).collect();
    if let Some(id) = opts.supplier
        && !suppliers.contains_key(&id.0)
    {
        return Err(ExportError::Invalid(format!(
            "supplier {id} does not exist; `switchboard supplier list` shows the suppliers and their ids"
        )));
    }
    let (from_day, to_day) = (opts.from.to_string(), opts.to.to_string());
    let events_in_range = reader.count_requests(&from_day, &to_day, opts.supplier)?;

    let out = &opts.out;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = TempFile { path: dir.join(format!(".{name}.{}.partial", std::process::id())), done: false };
    let io_err = |e: std::io::Error| ExportError::Io { path: out.clone(), source: e };
    let file = File::options().write(true).create_new(true).open(&tmp.path).map_err(io_err)?;
    let flusher = EarlyFlush::new(&file);
    let mut w = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 16, FlushingFile { file, written: 0, flusher }));
    let csv_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => io_err(io),
        other => io_err(std::io::Error::other(format!("{other:?}"))),
    };

    let interrupter = reader.interrupter();
    let mut fmt = Fmt::default();
    let mut rows = 0u64;
    let mut tick = |rows: u64| -> Result<(), ExportError> {
        if cancel.is_cancelled() {
            interrupter.interrupt();
            return Err(ExportError::Cancelled);
        }
        if rows.is_multiple_of(PROGRESS_EVERY) {
            progress(ExportProgress { rows, events_in_range });
        }
        Ok(())
    };
    let vendor = |id: i64| suppliers.get(&id).map(|s| (s.name.as_str(), s.vendor_type.as_str())).unwrap_or(("", "unknown"));
    let result = match opts.group_by {
        None => {
            w.write_record(EVENT_HEADER).map_err(csv_err)?;
            let from_ms = day_start(opts.from).timestamp_millis();
            let to_ms = next_day_start(opts.to).timestamp_millis();
            // Two stages on two threads: SQLite steps through the rows and
            // copies them into batches on one, the CSV is formatted and
            // written on this one. Batches go back to the reader for reuse.
            let supplier = opts.supplier;
            std::thread::scope(|s| {
                let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<EventBatch>(BATCHES_IN_FLIGHT);
                let (empty_tx, empty_rx) = std::sync::mpsc::channel::<EventBatch>();
                let reading = s.spawn(move || -> Result<u64, Stage> {
                    let mut batch = EventBatch::default();
                    let n = reader.for_each_event(from_ms, to_ms, supplier, |e: &EventRow<'_>| {
                        batch.push(e);
                        if batch.len() >= BATCH_ROWS {
                            let next = empty_rx.try_recv().unwrap_or_default();
                            full_tx.send(std::mem::replace(&mut batch, next)).map_err(|_| Stage::Stopped)?;
                        }
                        Ok::<(), Stage>(())
                    })?;
                    if batch.len() > 0 {
                        full_tx.send(batch).map_err(|_| Stage::Stopped)?;
                    }
                    Ok(n)
                });
                let written = (|| -> Result<(), ExportError> {
                    for mut batch in full_rx.iter() {
                        for e in batch.rows() {
                            write_event(&mut w, &mut fmt, &e, vendor(e.supplier_id)).map_err(csv_err)?;
                            rows += 1;
                            tick(rows)?;
                        }
                        batch.clear();
                        let _ = empty_tx.send(batch);
                    }
                    Ok(())
                })();
                // On a write error or a cancel, dropping the receiver stops the reader.
                drop(full_rx);
                let read = reading.join().unwrap_or(Err(Stage::Stopped));
                written?;
                match read {
                    Ok(n) => Ok(n),
                    Err(Stage::Store(e)) => Err(ExportError::Store(e)),
                    Err(Stage::Stopped) => Err(ExportError::Cancelled),
                }
            })
        }
        Some(g) => {
            w.write_record(GROUP_HEADER).map_err(csv_err)?;
            reader.for_each_group(&from_day, &to_day, opts.supplier, g == GroupBy::Month, |r: &GroupRow| {
                write_group(&mut w, &mut fmt, r, vendor(r.supplier_id)).map_err(csv_err)?;
                rows += 1;
                tick(rows)
            })
        }
    };
    match result {
        Ok(_) => {}
        Err(ExportError::Store(e)) if is_interrupted(&e) || cancel.is_cancelled() => return Err(ExportError::Cancelled),
        Err(e) => return Err(e),
    }
    if cancel.is_cancelled() {
        return Err(ExportError::Cancelled);
    }
    let file =
        w.into_inner().map_err(|e| io_err(std::io::Error::other(e.to_string())))?.into_inner().map_err(|e| io_err(e.into_error()))?.file;
    file.sync_all().map_err(io_err)?;
    let bytes = file.metadata().map_err(io_err)?.len();
    drop(file);
    put_in_place(&tmp.path, out, opts.force)?;
    let mut tmp = tmp;
    tmp.done = true;
    progress(ExportProgress { rows, events_in_range });
    Ok(ExportSummary { path: out.clone(), rows, bytes })
}

/// Writes a small table (alerts, the audit log) as CSV to `out`, which must
/// not exist yet: under a temporary name, then moved into place. Every cell
/// goes through [`csv_text`] except the columns listed in `numeric`.
pub fn write_csv(
    out: &Path,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
    numeric: &[usize],
) -> Result<ExportSummary, ExportError> {
    let io_err = |e: std::io::Error| ExportError::Io { path: out.to_path_buf(), source: e };
    if out.exists() {
        return Err(ExportError::Exists(out.to_path_buf()));
    }
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = TempFile { path: dir.join(format!(".{name}.{}.partial", std::process::id())), done: false };
    let file = File::options().write(true).create_new(true).open(&tmp.path).map_err(io_err)?;
    let mut w = csv::Writer::from_writer(BufWriter::new(file));
    let csv_err = |e: csv::Error| io_err(std::io::Error::other(e.to_string()));
    w.write_record(header).map_err(csv_err)?;
    let mut n = 0u64;
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if numeric.contains(&i) { w.write_field(cell) } else { w.write_field(csv_text(cell).as_ref()) }.map_err(csv_err)?;
        }
        w.write_record(None::<&[u8]>).map_err(csv_err)?;
        n += 1;
    }
    let file =
        w.into_inner().map_err(|e| io_err(std::io::Error::other(e.to_string())))?.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    let bytes = file.metadata().map_err(io_err)?.len();
    drop(file);
    put_in_place(&tmp.path, out, false)?;
    tmp.done = true;
    Ok(ExportSummary { path: out.to_path_buf(), rows: n, bytes })
}

/// Rows per batch handed from the reading thread to the writing one, and how
/// many full batches may wait (memory stays flat: a few MB at most).
const BATCH_ROWS: usize = 8_192;
const BATCHES_IN_FLIGHT: usize = 2;

/// Written bytes between two background `fdatasync`s.
const FLUSH_EVERY: u64 = 16 << 20;

/// The export file, which asks [`EarlyFlush`] to sync every [`FLUSH_EVERY`]
/// bytes, so the disk writes overlap the export instead of all waiting for
/// the final `fsync`.
struct FlushingFile {
    file: File,
    written: u64,
    flusher: Option<EarlyFlush>,
}

impl Write for FlushingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        let before = self.written / FLUSH_EVERY;
        self.written += n as u64;
        if self.written / FLUSH_EVERY != before
            && let Some(f) = &self.flusher
        {
            f.poke();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A thread that runs `fdatasync` on a second handle of the export file when
/// poked (pokes while it is busy are merged). Its errors are ignored: the
/// final `fsync` reports any.
struct EarlyFlush {
    tx: std::sync::mpsc::SyncSender<()>,
}

impl EarlyFlush {
    fn new(file: &File) -> Option<EarlyFlush> {
        let clone = file.try_clone().ok()?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("export-flush".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    let _ = clone.sync_data();
                }
            })
            .ok()?;
        Some(EarlyFlush { tx })
    }

    fn poke(&self) {
        let _ = self.tx.try_send(());
    }
}

/// Why the reading stage stopped early.
enum Stage {
    Store(StoreError),
    /// The writing stage hung up (write error or cancel; it reports why).
    Stopped,
}

impl From<StoreError> for Stage {
    fn from(e: StoreError) -> Self {
        Stage::Store(e)
    }
}

/// One event with its text columns as ranges into the batch's text buffer.
struct PackedEvent {
    event_id: (u32, u32),
    request_id: (u32, u32),
    provider: (u32, u32),
    model: (u32, u32),
    error_class: Option<(u32, u32)>,
    ts_ms: i64,
    supplier_id: i64,
    account_id: Option<i64>,
    request_type: i64,
    route: i64,
    tokens: [u64; 5],
    estimated: bool,
    cost_micros: i64,
    latency_ms: i64,
    status: i64,
    saved_micros: i64,
}

/// A batch of events copied out of SQLite without an allocation per row.
#[derive(Default)]
struct EventBatch {
    text: String,
    rows: Vec<PackedEvent>,
}

impl EventBatch {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    fn put(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        (start, self.text.len() as u32)
    }

    fn push(&mut self, e: &EventRow<'_>) {
        let packed = PackedEvent {
            event_id: self.put(e.event_id),
            request_id: self.put(e.request_id),
            provider: self.put(e.provider),
            model: self.put(e.model),
            error_class: e.error_class.map(|c| self.put(c)),
            ts_ms: e.ts_ms,
            supplier_id: e.supplier_id,
            account_id: e.account_id,
            request_type: e.request_type,
            route: e.route,
            tokens: [e.input_tokens, e.output_tokens, e.cached_tokens, e.cache_write_tokens, e.reasoning_tokens],
            estimated: e.estimated,
            cost_micros: e.cost_micros,
            latency_ms: e.latency_ms,
            status: e.status,
            saved_micros: e.saved_micros,
        };
        self.rows.push(packed);
    }

    fn rows(&self) -> impl Iterator<Item = EventRow<'_>> {
        let text = |(a, b): (u32, u32)| &self.text[a as usize..b as usize];
        self.rows.iter().map(move |p| EventRow {
            event_id: text(p.event_id),
            request_id: text(p.request_id),
            ts_ms: p.ts_ms,
            supplier_id: p.supplier_id,
            account_id: p.account_id,
            provider: text(p.provider),
            model: text(p.model),
            request_type: p.request_type,
            route: p.route,
            input_tokens: p.tokens[0],
            output_tokens: p.tokens[1],
            cached_tokens: p.tokens[2],
            cache_write_tokens: p.tokens[3],
            reasoning_tokens: p.tokens[4],
            estimated: p.estimated,
            cost_micros: p.cost_micros,
            latency_ms: p.latency_ms,
            status: p.status,
            error_class: p.error_class.map(text),
            saved_micros: p.saved_micros,
        })
    }
}

/// Moves the finished temporary file to `out`: a rename with `force`, else a
/// hard link that fails if `out` exists (falling back to a checked rename on
/// file systems without hard links).
fn put_in_place(tmp: &Path, out: &Path, force: bool) -> Result<(), ExportError> {
    let io_err = |e: std::io::Error| ExportError::Io { path: out.to_path_buf(), source: e };
    if force {
        return std::fs::rename(tmp, out).map_err(io_err);
    }
    match std::fs::hard_link(tmp, out) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(ExportError::Exists(out.to_path_buf())),
        Err(_) if out.exists() => Err(ExportError::Exists(out.to_path_buf())),
        Err(_) => std::fs::rename(tmp, out).map_err(io_err),
    }
}

fn request_type_name(code: i64) -> std::borrow::Cow<'static, str> {
    match RequestType::from_code(code) {
        Some(t) => t.as_str().into(),
        None => format!("unknown({code})").into(),
    }
}

fn route_name(code: i64) -> std::borrow::Cow<'static, str> {
    match Route::from_code(code) {
        Some(r) => r.as_str().into(),
        None => format!("unknown({code})").into(),
    }
}

/// Formats integers and timestamps into reusable buffers: the per-event export
/// writes about twenty fields a row, a million rows a couple of seconds, so no
/// field allocates.
#[derive(Default)]
struct Fmt {
    num: [u8; 24],
    /// `YYYY-MM-DDTHH:MM:SS`; the date part is recomputed only when the day changes.
    ts: [u8; 19],
    day: Option<i64>,
}

impl Fmt {
    fn u64(&mut self, mut v: u64) -> &[u8] {
        let mut i = self.num.len();
        loop {
            i -= 1;
            self.num[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        &self.num[i..]
    }

    fn i64(&mut self, v: i64) -> &[u8] {
        if v >= 0 {
            return self.u64(v as u64);
        }
        let start = {
            let digits = self.u64(v.unsigned_abs());
            24 - digits.len() - 1
        };
        self.num[start] = b'-';
        &self.num[start..]
    }

    /// Micro-dollars as dollars with six decimals (the same text as `Micros::to_decimal_string`).
    fn micros(&mut self, m: i64) -> &[u8] {
        let abs = m.unsigned_abs();
        let (whole, frac) = (abs / 1_000_000, abs % 1_000_000);
        let mut i = self.num.len();
        let mut f = frac;
        for _ in 0..6 {
            i -= 1;
            self.num[i] = b'0' + (f % 10) as u8;
            f /= 10;
        }
        i -= 1;
        self.num[i] = b'.';
        let mut w = whole;
        loop {
            i -= 1;
            self.num[i] = b'0' + (w % 10) as u8;
            w /= 10;
            if w == 0 {
                break;
            }
        }
        if m < 0 {
            i -= 1;
            self.num[i] = b'-';
        }
        &self.num[i..]
    }

    /// The UTC time as [`csv_timestamp`] writes it.
    fn timestamp(&mut self, ts_ms: i64) -> &[u8; 19] {
        let day = ts_ms.div_euclid(86_400_000);
        if self.day != Some(day) {
            self.ts.copy_from_slice(csv_timestamp(day * 86_400_000).as_bytes());
            self.day = Some(day);
        }
        let ms = ts_ms.rem_euclid(86_400_000);
        let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
        for (pos, v) in [(11, h), (14, m), (17, s)] {
            self.ts[pos] = b'0' + (v / 10) as u8;
            self.ts[pos + 1] = b'0' + (v % 10) as u8;
        }
        &self.ts
    }
}

/// Writes the five token columns and their total (input, cached, cache write, output, reasoning, total).
fn write_tokens<W: Write>(
    w: &mut csv::Writer<W>,
    f: &mut Fmt,
    [input, cached, cache_write, output, reasoning]: [u64; 5],
) -> csv::Result<()> {
    let total = input.saturating_add(cached).saturating_add(cache_write).saturating_add(output);
    for v in [input, cached, cache_write, output, reasoning, total] {
        w.write_field(f.u64(v))?;
    }
    Ok(())
}

/// A text cell as written to CSV: prefixed with `'` when it starts with a
/// character that makes spreadsheets evaluate it (`=`, `+`, `-`, `@`, tab,
/// carriage return), so `=HYPERLINK("http://x")` is shown as text, never run.
/// Only for text columns: numbers are written as they are.
pub fn csv_text(s: &str) -> std::borrow::Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

fn status_name(code: i64) -> std::borrow::Cow<'static, str> {
    match UsageStatus::from_code(code) {
        Some(s) => s.as_str().into(),
        None => format!("unknown({code})").into(),
    }
}

fn write_event<W: Write>(w: &mut csv::Writer<W>, f: &mut Fmt, e: &EventRow<'_>, (name, vendor): (&str, &str)) -> csv::Result<()> {
    let ts = *f.timestamp(e.ts_ms);
    w.write_field(ts)?;
    w.write_field(&ts[..10])?;
    w.write_field(csv_text(e.request_id).as_ref())?;
    w.write_field(csv_text(e.event_id).as_ref())?;
    w.write_field(f.i64(e.supplier_id))?;
    w.write_field(csv_text(name).as_ref())?;
    w.write_field(csv_text(vendor).as_ref())?;
    w.write_field(csv_text(e.provider).as_ref())?;
    w.write_field(csv_text(e.model).as_ref())?;
    w.write_field(request_type_name(e.request_type).as_ref())?;
    w.write_field(route_name(e.route).as_ref())?;
    write_tokens(w, f, [e.input_tokens, e.cached_tokens, e.cache_write_tokens, e.output_tokens, e.reasoning_tokens])?;
    w.write_field(if e.estimated { "true" } else { "false" })?;
    w.write_field(f.micros(e.cost_micros))?;
    w.write_field(f.i64(e.cost_micros))?;
    w.write_field(f.i64(e.latency_ms))?;
    w.write_field(status_name(e.status).as_ref())?;
    w.write_field(csv_text(e.error_class.unwrap_or("")).as_ref())?;
    w.write_field(f.micros(e.saved_micros))?;
    w.write_field(f.i64(e.saved_micros))?;
    w.write_record(None::<&[u8]>)
}

fn write_group<W: Write>(w: &mut csv::Writer<W>, f: &mut Fmt, g: &GroupRow, (name, vendor): (&str, &str)) -> csv::Result<()> {
    let t: &UsageTotals = &g.totals;
    w.write_field(csv_text(&period_date(&g.period)).as_ref())?;
    w.write_field(g.supplier_id.to_string())?;
    w.write_field(csv_text(name).as_ref())?;
    w.write_field(csv_text(vendor).as_ref())?;
    w.write_field(csv_text(&g.provider).as_ref())?;
    w.write_field(csv_text(&g.model).as_ref())?;
    w.write_field(request_type_name(g.request_type).as_ref())?;
    w.write_field(route_name(g.route).as_ref())?;
    w.write_field(t.requests.to_string())?;
    w.write_field(t.errors.to_string())?;
    write_tokens(w, f, [t.input_tokens, t.cached_tokens, t.cache_write_tokens, t.output_tokens, t.reasoning_tokens])?;
    w.write_field(f.micros(t.cost.0))?;
    w.write_field(f.i64(t.cost.0))?;
    w.write_field(t.latency_ms_sum.checked_div(t.requests).map(|v| v.to_string()).unwrap_or_default())?;
    w.write_field(f.micros(g.saved_micros))?;
    w.write_field(f.i64(g.saved_micros))?;
    w.write_record(None::<&[u8]>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Micros;

    #[test]
    fn text_cells_that_would_be_formulas_are_prefixed() {
        for bad in ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_text(bad), format!("'{bad}"), "{bad:?}");
        }
        for ok in ["Capture Moments", "", "gpt-4o-mini", "1-2", "'quoted", " =x"] {
            assert_eq!(csv_text(ok), ok);
        }
    }

    #[test]
    fn fast_formatting_matches_the_reference() {
        let mut f = Fmt::default();
        for v in [0u64, 7, 10, 999_999, u64::MAX] {
            assert_eq!(f.u64(v), v.to_string().as_bytes());
        }
        for v in [0i64, -1, -1_234_567, i64::MIN + 1, i64::MAX] {
            assert_eq!(f.i64(v), v.to_string().as_bytes());
            assert_eq!(f.micros(v), Micros(v).to_decimal_string().as_bytes(), "{v}");
        }
        for ts in [0i64, 1_750_000_000_123, 1_750_000_000_999, 1_750_086_399_999, -1, 4_102_444_800_000] {
            assert_eq!(&f.timestamp(ts)[..], csv_timestamp(ts).as_bytes(), "{ts}");
        }
        assert_eq!(csv_timestamp(1_750_000_000_123), "2025-06-15T15:06:40");
        assert_eq!(period_date("2026-06"), "2026-06-01");
        assert_eq!(period_date("2026-06-13"), "2026-06-13");
    }
}
