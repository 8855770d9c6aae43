//! The supplier catalog's lifetime on real SQLite files: ids of suppliers,
//! provider accounts and gateway tokens are never handed out again after a
//! removal (also on a database upgraded from schema v7 whose highest ids were
//! already removed), so a new supplier never inherits an old one's usage,
//! audit history or CSV rows; supplier time zones survive the upgrade; and
//! CSV cells cannot become spreadsheet formulas (checked in LibreOffice too).

use crate::support::{day, june, sb};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use switchboard::domain::{
    AccountOwner, AiMode, NewSupplier, PricingTable, ProviderKind, RequestType, Route, SupplierId, Tier, TokenUsage, UsageEvent,
    UsageStatus, VendorType,
};
use switchboard::engine::export::{ExportOptions, export_usage};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::store::{AuditFilter, NewAccount, Store, schema};

fn add(store: &Store, name: &str) -> SupplierId {
    store.insert_supplier(&NewSupplier::new(name, VendorType::Photographer, Tier::Starter, AiMode::Platform), june()).unwrap().id
}

fn account(store: &Store, owner: SupplierId) -> switchboard::domain::AccountId {
    let n = NewAccount {
        owner: AccountOwner::Supplier(owner),
        provider: ProviderKind::OpenAi,
        label: "Own OpenAI".into(),
        base_url: "http://127.0.0.1:9".into(),
        azure: None,
        default_model: "gpt-4o-mini".into(),
    };
    store.insert_account(&n, june()).unwrap().id
}

fn usage(id: &str, supplier: SupplierId, model: &str) -> UsageEvent {
    let usage = TokenUsage { input: 1200, output: 300, cached_read: 0, cache_write: 0, reasoning: 0, estimated: false };
    UsageEvent {
        request_id: id.into(),
        ts: june(),
        supplier_id: supplier,
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: model.into(),
        request_type: RequestType::EmailTemplate,
        route: Route::Platform,
        cost: PricingTable::builtin().cost(ProviderKind::OpenAi, "gpt-4o-mini", &usage).unwrap(),
        usage,
        latency_ms: 400,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

fn export_rows(store: &Store, out: &Path, supplier: Option<SupplierId>) -> Vec<csv::StringRecord> {
    let opts =
        ExportOptions { from: day("2026-06-01"), to: day("2026-06-30"), supplier, group_by: None, out: out.to_path_buf(), force: true };
    export_usage(store, &opts, &Default::default(), |_| {}).unwrap();
    csv::Reader::from_path(out).unwrap().records().map(|r| r.unwrap()).collect()
}

#[test]
fn add_remove_add_never_reuses_an_id_or_inherits_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("ids.db")).unwrap();
    let first = add(&store, "Old Studio");
    let first_account = account(&store, first);
    let first_token = tokens::issue(&store, first, june(), "test").unwrap().record.id;
    store.append_usage(&[usage("old-1", first, "gpt-4o-mini")]).unwrap();
    store.audit(june(), "test", "supplier.add", Some(first), Some(first_account), "ok", "Old Studio").unwrap();
    store.delete_supplier(first).unwrap();

    let second = add(&store, "New Studio");
    let second_account = account(&store, second);
    let second_token = tokens::issue(&store, second, june(), "test").unwrap().record.id;
    assert_ne!(second, first, "a removed supplier's id is never given to a new one");
    assert!(second.0 > first.0);
    assert_ne!(second_account, first_account);
    assert_ne!(second_token, first_token);
    // Nothing of the old supplier shows up as the new one's.
    let audit = store.audit_entries(&AuditFilter { supplier_id: Some(second), ..Default::default() }).unwrap();
    assert!(audit.is_empty(), "{audit:?}");
    let rows = export_rows(&store, &dir.path().join("new.csv"), Some(second));
    assert!(rows.is_empty(), "{rows:?}");
    // The old usage stays in the ledger under its own id.
    let all = export_rows(&store, &dir.path().join("all.csv"), None);
    assert_eq!(all.len(), 1);
    assert_eq!(&all[0][3], first.0.to_string().as_str());
}

#[test]
fn a_v7_database_whose_highest_ids_were_removed_does_not_hand_them_out_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    let (kept, kept_account, version_before) = {
        let old = Store::open_at_version(&path, 7).unwrap();
        let kept = add(&old, "Kept Studio");
        let mut w = NewSupplier::new("Wedding Hall", VendorType::Venue, Tier::Scale, AiMode::Client);
        w.weddings = vec![day("2026-06-13")];
        let with_weddings = old.insert_supplier(&w, june()).unwrap().id;
        let kept_account = account(&old, with_weddings);
        tokens::issue(&old, with_weddings, june(), "test").unwrap();
        // The highest supplier (id 4) and account (id 3) are removed; their ids
        // survive only in the ledger and the audit log.
        let gone = add(&old, "Gone Studio");
        let top = add(&old, "Top Studio");
        account(&old, gone);
        let top_account = account(&old, top);
        old.append_usage(&[usage("gone-1", top, "gpt-4o-mini")]).unwrap();
        old.audit(june(), "test", "key.add", Some(gone), Some(top_account), "ok", "").unwrap();
        old.delete_supplier(top).unwrap();
        old.delete_supplier(gone).unwrap();
        assert_eq!(old.schema_version().unwrap(), 7);
        let v = old.catalog_version().unwrap();
        (kept, kept_account, v)
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::LATEST_VERSION);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    // The rebuild kept every row, child rows included (no cascade), in UTC.
    let all = store.list_suppliers(&Default::default()).unwrap();
    assert_eq!(all.len(), 2);
    let hall = all.iter().find(|s| s.name == "Wedding Hall").unwrap();
    assert_eq!(hall.weddings, vec![day("2026-06-13")]);
    assert_eq!(hall.time_zone.name(), "UTC");
    assert_eq!(store.account(kept_account).unwrap().owner, AccountOwner::Supplier(hall.id));
    assert_eq!(store.list_tokens(Some(hall.id)).unwrap().len(), 1);
    assert!(store.find_supplier(kept).unwrap().is_some());
    // New ids start above every id ever seen.
    let new = add(&store, "Brand New Studio");
    assert_eq!(new.0, 5, "above the removed supplier 4 that only the ledger remembers");
    let new_account = account(&store, new);
    assert_eq!(new_account.0, 4, "above the removed account 3 that only the audit log remembers");
    assert!(export_rows(&store, &dir.path().join("n.csv"), Some(new)).is_empty());
    // The catalog triggers are back (the router reloads on changes) and foreign keys hold.
    let v = store.catalog_version().unwrap();
    assert!(v > version_before);
    store.update_supplier(new, &switchboard::domain::SupplierPatch { tier: Some(Tier::Scale), ..Default::default() }, june()).unwrap();
    assert!(store.catalog_version().unwrap() > v);
    store.delete_supplier(new).unwrap();
    assert!(store.account(new_account).is_err(), "accounts still cascade with their supplier");
    let fk: i64 = store.with_conn(|c| c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))).unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn a_supplier_time_zone_is_stored_edited_and_validated_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tz.db");
    let run = |args: &[&str]| sb(&db).args(args).output().unwrap();
    let o = run(&[
        "supplier",
        "add",
        "--name",
        "Golden Gate",
        "--vendor-type",
        "venue",
        "--tier",
        "starter",
        "--time-zone",
        "America/Los_Angeles",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["time_zone"], "America/Los_Angeles");
    let id = s["id"].to_string();
    let o = run(&["supplier", "edit", &id, "--time-zone", "europe/london", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["time_zone"], "Europe/London");
    let o = run(&["supplier", "edit", &id, "--time-zone", "Los Angeles"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not an IANA time zone") && err.contains("America/Los_Angeles"), "{err}");
    // The platform default comes from SWITCHBOARD_TIME_ZONE.
    let o = sb(&db)
        .env("SWITCHBOARD_TIME_ZONE", "Australia/Sydney")
        .args(["supplier", "add", "--name", "Harbour Bride", "--vendor-type", "planner", "--tier", "starter", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["time_zone"], "Australia/Sydney");
    let shown = String::from_utf8(run(&["supplier", "show", &id]).stdout).unwrap();
    assert!(shown.contains("time zone          Europe/London"), "{shown}");
}

#[test]
fn csv_cells_cannot_become_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("csv.db")).unwrap());
    let evil = r#"=HYPERLINK("http://x")"#;
    let s = add(&store, evil);
    // A client picks the model name too.
    store.append_usage(&[usage("@SUM(1+1)", s, "-2+3")]).unwrap();
    let out = dir.path().join("usage.csv");
    let rows = export_rows(&store, &out, None);
    let row = &rows[0];
    let header: Vec<String> = csv::Reader::from_path(&out).unwrap().headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&row[col("supplier_name")], format!("'{evil}"));
    assert_eq!(&row[col("model")], "'-2+3");
    assert_eq!(&row[col("request_id")], "'@SUM(1+1)");
    // Numbers stay numbers.
    assert_eq!(&row[col("input_tokens")], "1200");
    assert!(row[col("cost_usd")].parse::<f64>().is_ok());
    // Grouped exports too.
    let grouped = dir.path().join("grouped.csv");
    let opts = ExportOptions {
        from: day("2026-06-01"),
        to: day("2026-06-30"),
        supplier: None,
        group_by: Some(switchboard::engine::export::GroupBy::Day),
        out: grouped.clone(),
        force: false,
    };
    export_usage(&store, &opts, &Default::default(), |_| {}).unwrap();
    let text = std::fs::read_to_string(&grouped).unwrap();
    assert!(text.contains(r#""'=HYPERLINK(""http://x"")""#) && text.contains("'-2+3"), "{text}");
    // LibreOffice opens the cell as text, not as a formula.
    let profile = dir.path().join("lo-profile");
    let o = Command::new("soffice")
        .arg(format!("-env:UserInstallation=file://{}", profile.display()))
        .args(["--headless", "--convert-to", "xlsx", "--outdir"])
        .arg(dir.path())
        .arg(&out)
        .output()
        .expect("LibreOffice (soffice) is installed: Debian package libreoffice-calc-nogui; scripts/test installs it");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unzip = |member: &str| {
        let o = Command::new("unzip").arg("-p").arg(dir.path().join("usage.xlsx")).arg(member).output().unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    let sheet = unzip("xl/worksheets/sheet1.xml");
    assert!(!sheet.contains("<f>") && !sheet.contains("<f "), "no formula in the sheet: {sheet}");
    let strings = unzip("xl/sharedStrings.xml");
    assert!(strings.contains("HYPERLINK"), "the name is kept as text: {strings}");
}
