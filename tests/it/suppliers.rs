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
        saved: switchboard::domain::Micros::ZERO,
        event_id: id.into(),
        request_id: id.into(),
        idempotency_key: None,
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
    assert!(audit.iter().all(|e| e.action == "token.issue" && !e.detail.contains("Old Studio")), "{audit:?}");
    assert_eq!(audit.len(), 1, "only the new supplier's own token: {audit:?}");
    let rows = export_rows(&store, &dir.path().join("new.csv"), Some(second));
    assert!(rows.is_empty(), "{rows:?}");
    // The old usage stays in the ledger under its own id.
    let all = export_rows(&store, &dir.path().join("all.csv"), None);
    assert_eq!(all.len(), 1);
    let supplier_col = switchboard::engine::export::EVENT_HEADER.iter().position(|h| *h == "supplier_id").unwrap();
    assert_eq!(&all[0][supplier_col], first.0.to_string().as_str());
}

#[test]
fn a_v7_database_whose_highest_ids_were_removed_does_not_hand_them_out_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    // Written as schema v7 stood (this build's row code knows only the latest schema).
    let version_before = {
        let old = Store::open_at_version(&path, 7).unwrap();
        assert_eq!(old.schema_version().unwrap(), 7);
        let t = "'2026-06-10T12:00:00.000Z'";
        old.with_conn(|c| {
            c.execute_batch(&format!(
                "INSERT INTO suppliers (name, vendor_type, tier, ai_mode, created_at, updated_at) VALUES
                    ('Kept Studio', 'photographer', 'starter', 'platform', {t}, {t}),
                    ('Wedding Hall', 'venue', 'scale', 'client', {t}, {t}),
                    ('Gone Studio', 'florist', 'starter', 'platform', {t}, {t}),
                    ('Top Studio', 'planner', 'starter', 'platform', {t}, {t});
                 INSERT INTO weddings (supplier_id, day) VALUES (2, '2026-06-13');
                 INSERT INTO provider_accounts (owner_supplier_id, provider, label, base_url, default_model, created_at) VALUES
                    (2, 'openai', 'Hall OpenAI', 'http://127.0.0.1:9', 'gpt-4o-mini', {t}),
                    (3, 'openai', 'Gone OpenAI', 'http://127.0.0.1:9', 'gpt-4o-mini', {t}),
                    (4, 'openai', 'Top OpenAI', 'http://127.0.0.1:9', 'gpt-4o-mini', {t});
                 INSERT INTO gateway_tokens (supplier_id, token_hash, hint, created_at) VALUES (2, 'h1', 'sbk_…0001', {t});
                 INSERT INTO migrations (supplier_id, from_route, to_route, state, plan, created_at, updated_at)
                    VALUES (2, 'platform', 'account', 'completed', '[]', {t}, {t});
                 -- The highest supplier (4) and account (3) are removed below; their
                 -- ids survive only in the ledger and the audit log.
                 INSERT INTO usage_events (request_id, ts, supplier_id, provider, model, request_type, route, input_tokens,
                    output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms, status)
                    VALUES ('top-1', 1781092800000, 4, 'openai', 'gpt-4o-mini', 0, 0, 10, 5, 0, 0, 0, 7, 300, 0);
                 INSERT INTO audit_log (ts, actor, action, supplier_id, account_id, result) VALUES ({t}, 'test', 'key.add', 3, 3, 'ok');
                 DELETE FROM suppliers WHERE id IN (3, 4);"
            ))
        })
        .unwrap();
        old.catalog_version().unwrap()
    };
    let (kept, kept_account) = (SupplierId(1), switchboard::domain::AccountId(1));
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
    let migrations: i64 =
        store.with_conn(|c| c.query_row("SELECT count(*) FROM migrations WHERE supplier_id = ?1", [hall.id.0], |r| r.get(0))).unwrap();
    assert_eq!(migrations, 1, "child rows are not cascaded away by the rebuild");
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
