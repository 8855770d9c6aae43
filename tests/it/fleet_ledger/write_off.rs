//! `switchboard fleet leases` and `fleet write-off` on the test cluster: a
//! lease that ended with unfolded tokens is listed, refused while still
//! live, written off with a reason (audited), and no longer counted.

use super::{base_url, fresh_db, raw};
use chrono::Utc;
use std::process::Command;
use switchboard::domain::SupplierId;
use switchboard::engine::quota_lease::quota_month;
use switchboard::store::pg::PgStore;
use switchboard::store::pg::leases::{self, LeaseKey};

fn fleet(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard")).arg("--database").arg(url).arg("fleet").args(args).output().unwrap()
}

#[test]
fn an_ended_lease_is_listed_and_written_off_with_a_reason() {
    let Some(base) = base_url("fleet_ledger::write_off::an_ended_lease_is_listed_and_written_off_with_a_reason") else { return };
    let rt = super::rt();
    let url = rt.block_on(fresh_db(&base, "sbt_fl_writeoff"));
    let store = rt.block_on(PgStore::open(&url)).unwrap();
    let now = Utc::now();
    let month = quota_month(now);
    let live = LeaseKey { supplier: SupplierId(4), month, instance: 7 };
    let ended = LeaseKey { supplier: SupplierId(4), month, instance: 8 };
    rt.block_on(async {
        leases::lease(&store, live, 3_000, 100_000, now, now + chrono::Duration::minutes(5)).await.unwrap();
        leases::lease(&store, ended, 4_000, 100_000, now, now - chrono::Duration::seconds(1)).await.unwrap();
    });
    let out = fleet(&url, &["leases", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "only the ended lease: {listed:?}");
    assert_eq!((listed[0]["instance"].as_i64(), listed[0]["outstanding"].as_i64()), (Some(8), Some(4_000)));

    let month_arg = month.format("%Y-%m").to_string();
    // A live lease is refused; a missing reason too.
    let out = fleet(&url, &["write-off", "--supplier", "4", "--instance", "7", "--month", &month_arg, "--reason", "test"]);
    assert!(!out.status.success());
    let out = fleet(&url, &["write-off", "--supplier", "4", "--instance", "8", "--reason", " "]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"), "{}", String::from_utf8_lossy(&out.stderr));
    // Written off (this month by default).
    let out = fleet(&url, &["write-off", "--supplier", "4", "--instance", "8", "--reason", "host lost its disk"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote off 4000 tokens"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = fleet(&url, &["leases"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No ended lease holds quota"));
    let f = rt.block_on(leases::month_figures(&store, SupplierId(4), month)).unwrap();
    assert_eq!(f.counted(), 3_000, "only the live lease counts");
    let detail: String = rt.block_on(async {
        raw(&url).await.query_one("SELECT detail FROM audit_log WHERE action = 'quota.lease_write_off'", &[]).await.unwrap().get(0)
    });
    assert!(detail.contains("host lost its disk") && detail.contains("instance 8"), "{detail}");
}
