//! The Suppliers view's CSV import dialog on a real SQLite file: the preview
//! (counts, first rows, rejected rows with their lines and reasons; nothing
//! written), the template saved from the dialog, a file with an unknown
//! column refused with the message, and an import of 5,000 suppliers with a
//! generated file's bad rows reported (shown, and saved as CSV); the console
//! service's progress events during that import, and a cancelled import.

use super::*;
use std::path::{Path, PathBuf};
use switchboard::console::{ConsoleCommand, ConsoleEvent};

/// A generated file: `good` valid rows, and every 137th line a bad one
/// (alternately an unknown tier and a half-typed wedding date).
fn generated_csv(dir: &Path, good: usize) -> (PathBuf, Vec<u64>) {
    let mut text = String::from("name,vendor_type,tier,mode,time_zone,weddings\n");
    let (mut line, mut written, mut bad_lines) = (1u64, 0usize, Vec::new());
    while written < good {
        line += 1;
        if line.is_multiple_of(137) {
            let row = if bad_lines.len().is_multiple_of(2) {
                format!("Bad Tier Studio {line},photographer,gold,platform,UTC,\n")
            } else {
                format!("Bad Date Florals {line},florist,starter,platform,UTC,2026-06-1\n")
            };
            text.push_str(&row);
            bad_lines.push(line);
            continue;
        }
        written += 1;
        text.push_str(&format!("Imported Studio {written:05},photographer,professional,platform,Europe/London,2026-06-13;2026-07-04\n"));
    }
    let path = dir.join("suppliers-5000.csv");
    std::fs::write(&path, text).unwrap();
    (path, bad_lines)
}

fn open_dialog(h: &mut Harness<'static, ConsoleApp>) {
    wait_until(h, "the suppliers view", |h| shows(h, "No suppliers yet") || shows(h, "suppliers"));
    button(h, "Import CSV…").click();
    h.step();
    h.step();
}

fn set_field(h: &mut Harness<'static, ConsoleApp>, label: &str, text: &str) {
    h.step();
    field(h, label).click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    field(h, label).type_text(text);
    h.step();
    assert_eq!(field(h, label).value().as_deref(), Some(text), "typed into {label}");
}

#[test]
fn previews_a_file_saves_the_template_and_refuses_an_unknown_column() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("few.csv");
    std::fs::write(
        &file,
        "name,vendor_type,tier,mode,time_zone,weddings\n\
         Willow Promise Catering,caterer,professional,platform,Europe/London,2026-06-13;2026-07-04\n\
         Capture Moments,photographer,starter,client,America/Los_Angeles,\n\
         ,florist,starter,platform,UTC,\n\
         Golden Hour Venue,venue,platinum,platform,UTC,\n\
         Blush Petal Florals,florist,scale,platform,UTC,\n",
    )
    .unwrap();
    let mut h = harness(&f, start(View::Suppliers));
    open_dialog(&mut h);
    assert!(shows(&h, "Import suppliers from CSV"));
    let default = field(&h, "File").value().unwrap_or_default();
    assert!(Path::new(&default).is_absolute() && default.ends_with("suppliers.csv"), "a full default path: {default}");

    set_field(&mut h, "File", &file.display().to_string());
    button(&h, "Preview").click();
    wait_until(&mut h, "the preview", |h| shows(h, "5 rows: 3 valid, 2 rejected"));
    for name in ["Willow Promise Catering", "Capture Moments", "Blush Petal Florals"] {
        assert!(shows(&h, name), "{name} in the first rows");
    }
    assert!(shows(&h, "line 4: name"), "the nameless row, by line");
    assert!(shows(&h, "line 5 (Golden Hour Venue): tier"), "the unknown tier, by line and name");
    assert!(h.query_by_label("Import 3 suppliers").is_some());
    assert_eq!(f.store.count_suppliers().unwrap(), 0, "a preview writes nothing");

    // The template, written where the user says.
    button(&h, "Save template…").click();
    wait_until(&mut h, "the template's path", |h| h.query_by_label("Write template").is_some());
    let template = dir.path().join("template.csv");
    set_field(&mut h, "Template file", &template.display().to_string());
    button(&h, "Write template").click();
    wait_until(&mut h, "the saved template", |h| shows(h, "Saved the template to"));
    assert_eq!(std::fs::read_to_string(&template).unwrap(), switchboard::domain::supplier_import::template());

    // An unknown column refuses the whole file, saying which and what is allowed.
    let odd = dir.path().join("odd.csv");
    std::fs::write(&odd, "name,vendor_type,tier,email\nA Studio,photographer,starter,a@example.com\n").unwrap();
    set_field(&mut h, "File", &odd.display().to_string());
    button(&h, "Preview").click();
    wait_until(&mut h, "the refusal", |h| shows(h, "unknown column 'email'"));
    assert!(shows(&h, "is refused"));
    assert!(!shows(&h, "rows:"), "no preview of a refused file");
    assert!(h.query_by_label("Import 3 suppliers").is_none());
    // A relative path is refused with a full example.
    set_field(&mut h, "File", "suppliers.csv");
    button(&h, "Preview").click();
    wait_until(&mut h, "the path refusal", |h| shows(h, "'suppliers.csv' is not a full path"));
    assert_eq!(f.store.count_suppliers().unwrap(), 0);
}

#[test]
fn imports_5000_suppliers_through_the_dialog_with_a_report_of_rejected_rows_saved_as_csv() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (file, bad_lines) = generated_csv(dir.path(), 5_000);
    let bad = bad_lines.len();
    let total = 5_000 + bad;
    let mut h = harness(&f, start(View::Suppliers));
    open_dialog(&mut h);
    set_field(&mut h, "File", &file.display().to_string());
    button(&h, "Preview").click();
    let counts = format!("{} rows: 5,000 valid, {bad} rejected", fmt(total));
    wait_until(&mut h, "the preview", |h| shows(h, &counts));
    button(&h, "Import 5,000 suppliers").click();
    // (The service's progress events are counted in the next test; here the import may end before a frame.)
    let done = format!("Imported 5,000 suppliers of {} rows; {bad} rejected", fmt(total));
    wait_until(&mut h, "the report", |h| shows(h, &done));
    assert_eq!(f.store.count_suppliers().unwrap(), 5_000);
    assert!(shows(&h, &format!("Rejected rows ({bad})")));
    assert!(shows(&h, &format!("line {} (Bad Tier Studio {}): tier", bad_lines[0], bad_lines[0])));
    assert!(shows(&h, &format!("line {} (Bad Date Florals {}): ", bad_lines[1], bad_lines[1])));

    // The report, saved as CSV: every rejected row with its line and reason.
    let report = dir.path().join("rejected.csv");
    set_field(&mut h, "Report file", &report.display().to_string());
    button(&h, "Save report").click();
    wait_until(&mut h, "the saved report", |h| shows(h, "Saved the report of rejected rows to"));
    let mut rdr = csv::Reader::from_path(&report).unwrap();
    assert_eq!(rdr.headers().unwrap().iter().collect::<Vec<_>>(), ["line", "name", "reason"]);
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.iter().map(|r| r[0].parse::<u64>().unwrap()).collect::<Vec<_>>(), bad_lines);
    assert!(rows.iter().all(|r| !r[2].is_empty()), "every row says why");
    let audit = f.store.audit_entries(&AuditFilter::default()).unwrap();
    assert_eq!(audit[0].action, "supplier.import");
    assert_eq!(audit[0].detail, format!("imported 5000 of {total} suppliers; {bad} rows rejected"));
    button(&h, "Close").click();
    h.step();
    wait_until(&mut h, "the table", |h| shows(h, "5,000 suppliers"));
}

fn fmt(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The console service's side of the dialog: progress events while 5,000
/// rows are written, then the report; and an import cancelled between rows.
#[test]
fn the_service_reports_import_progress_and_stops_a_cancelled_import_between_rows() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (file, bad_lines) = generated_csv(dir.path(), 5_000);
    let (handle, mut events) =
        console::spawn(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
    let next = |events: &mut console::ConsoleEvents| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(ev) = events.try_next() {
                return ev;
            }
            assert!(Instant::now() < deadline, "no event from the service");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    handle.send(ConsoleCommand::ImportSuppliers { path: file.clone() }).unwrap();
    let mut progress = Vec::new();
    let report = loop {
        match next(&mut events) {
            ConsoleEvent::ImportProgress(p) => progress.push(p),
            ConsoleEvent::ImportDone(r) => break r,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(progress.len() >= 50, "progress every 100 rows: {} events", progress.len());
    assert!(progress.windows(2).all(|w| w[0].done <= w[1].done), "progress never goes back");
    assert!(progress.iter().all(|p| p.total == 5_000));
    assert_eq!(progress.last().unwrap().done, 5_000);
    assert_eq!((report.imported, report.rejected.len(), report.cancelled), (5_000, bad_lines.len(), false));

    // The same file again: every name is taken now, so nothing is imported and every row says why.
    let (handle2, mut events2) =
        console::spawn(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
    handle2.send(ConsoleCommand::PreviewImport(file)).unwrap();
    match next(&mut events2) {
        ConsoleEvent::ImportPreview(p) => {
            assert_eq!(p.valid, 0);
            assert!(p.rejected.iter().filter(|r| r.reason.contains("already exists")).count() == 5_000);
        }
        other => panic!("unexpected {other:?}"),
    }

    // A new file on a new database, cancelled after the first progress event: the rows written are kept, no more.
    let g = fixture();
    let (file, _) = generated_csv(g._dir.path(), 5_000);
    let (handle, mut events) =
        console::spawn(g._rt.handle(), g.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
    handle.send(ConsoleCommand::ImportSuppliers { path: file }).unwrap();
    let mut cancelled = false;
    let report = loop {
        match next(&mut events) {
            ConsoleEvent::ImportProgress(_) if !cancelled => {
                handle.send(ConsoleCommand::CancelImport).unwrap();
                cancelled = true;
            }
            ConsoleEvent::ImportProgress(_) => {}
            ConsoleEvent::ImportDone(r) => break r,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(report.cancelled, "the import stopped between rows");
    assert!(report.imported < 5_000, "{} imported", report.imported);
    assert_eq!(g.store.count_suppliers().unwrap(), report.imported as i64);
}
