//! The journal on real files: a segment cut at every byte offset of its last
//! record recovers every complete record and drops the torn one.

use super::*;
use crate::domain::{Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageStatus};
use crate::engine::ledger::{Ledger, LedgerOptions, fold_leftovers};
use crate::store::Store;
use chrono::{TimeZone, Utc};

fn event(i: usize) -> UsageEvent {
    UsageEvent {
        saved: crate::domain::Micros::ZERO,
        event_id: format!("torn-{i}"),
        request_id: format!("req-{i}"),
        idempotency_key: i.is_multiple_of(2).then(|| format!("key-{i}")),
        ts: Utc.with_ymd_and_hms(2026, 6, 6, 12, 0, 0).unwrap(),
        supplier_id: SupplierId(1),
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::EmailTemplate,
        route: Route::Client,
        usage: TokenUsage { input: 10 + i as u64, output: 3, ..Default::default() },
        cost: Micros(1),
        latency_ms: 2,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

/// The one segment of a ledger that wrote `n` events, as a crash would
/// leave it: (its number, its bytes, the last record's start and end).
async fn written_segment(store: &Store, scratch: &Path, n: usize) -> (u64, Vec<u8>, u64, u64) {
    // Small segments keep the copies below small.
    let l = Ledger::start_opts(store, LedgerOptions { segment_bytes: 8_192, ..LedgerOptions::default() }).unwrap();
    for i in 0..n {
        l.record(event(i)).await.unwrap();
    }
    // Read while the ledger lives: the fold never deletes the segment being written.
    let dir = l.journal_dir();
    let segs = segments(&dir).unwrap();
    assert_eq!(segs.len(), 1);
    let bytes = std::fs::read(segment_path(&dir, segs[0])).unwrap();
    drop(l);
    std::fs::write(segment_path(scratch, segs[0]), &bytes).unwrap();
    let before_last = scan(scratch, JournalPos::default(), None, n - 1).unwrap().to;
    let all = scan(scratch, JournalPos::default(), None, usize::MAX).unwrap();
    assert_eq!(all.events.len(), n);
    (segs[0], bytes, before_last.offset, all.to.offset)
}

#[tokio::test]
async fn a_segment_cut_at_every_byte_of_its_last_record_keeps_the_complete_ones() {
    const N: usize = 5;
    let tmp = tempfile::tempdir().unwrap();
    let src_db = tmp.path().join("src.db");
    let store = Store::open(&src_db).unwrap();
    let scratch = tmp.path().join("cut");
    std::fs::create_dir_all(&scratch).unwrap();
    let (seg, pristine, last_start, last_end) = written_segment(&store, &scratch, N).await;
    let size = pristine.len() as u64;
    assert!(last_end > last_start + record::RECORD_HEAD as u64);
    for cut in last_start..=last_end {
        for zero_filled in [false, true] {
            // A crash mid-write: the record's first `cut - last_start` bytes
            // reached the file; the rest of the preallocated segment is zeros,
            // or the file ends there.
            let mut bytes = pristine[..cut as usize].to_vec();
            if zero_filled {
                bytes.resize(size as usize, 0);
            }
            std::fs::write(segment_path(&scratch, seg), &bytes).unwrap();
            let s = scan(&scratch, JournalPos::default(), None, usize::MAX).unwrap();
            // A cut whose missing bytes are all zeros, followed by the
            // preallocated zeros, is the whole record again, byte for byte
            // (its checksum matches): complete, not torn.
            let whole = cut == last_end || (zero_filled && pristine[cut as usize..last_end as usize].iter().all(|b| *b == 0));
            let complete = if whole { N } else { N - 1 };
            assert_eq!(s.events.len(), complete, "cut at {cut} (zeros after: {zero_filled})");
            assert_eq!(s.events, (0..complete).map(event).collect::<Vec<_>>(), "cut at {cut}: the records are read as written");
            let expect_to = if whole { last_end } else { last_start };
            assert_eq!(
                s.to,
                JournalPos { segment: seg, offset: expect_to },
                "cut at {cut}: the fold would resume after the last complete record"
            );
        }
    }

    // The whole recovery on a database, for a cut in the middle of the last
    // record's payload, in its head, and none.
    for cut in [last_start + (last_end - last_start) / 2, last_start + 3, last_end] {
        let db = tmp.path().join(format!("recover-{cut}.db"));
        let fresh = Store::open(&db).unwrap();
        let inst_dir = root_of(&db).join("0");
        std::fs::create_dir_all(&inst_dir).unwrap();
        let mut bytes = pristine[..cut as usize].to_vec();
        bytes.resize(size as usize, 0);
        std::fs::write(segment_path(&inst_dir, seg), &bytes).unwrap();
        let r = fold_leftovers(&fresh).unwrap();
        let complete = if cut == last_end { N } else { N - 1 };
        assert_eq!((r.records, r.new), (complete, complete), "cut at {cut}");
        assert_eq!(fresh.count_usage_events().unwrap(), complete as i64);
        assert_eq!(fresh.integrity_check().unwrap(), "ok");
        assert!(segments(&inst_dir).unwrap().is_empty(), "the folded segment is deleted");
    }
}

#[test]
fn a_journal_an_older_build_left_in_format_1_is_folded_by_this_one() {
    // As a build before format 2 left it when killed: a preallocated segment
    // whose header says version 1 and whose records are JSON, the last torn.
    const N: usize = 4;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("old.db");
    let store = Store::open(&db).unwrap();
    let inst_dir = root_of(&db).join("0");
    std::fs::create_dir_all(&inst_dir).unwrap();
    let mut bytes = record::encode_header_version(1, record::VERSION_JSON).to_vec();
    for i in 0..=N {
        let mut rec = Vec::new();
        record::encode_record_json(&event(i), &mut rec).unwrap();
        if i == N {
            rec.truncate(rec.len() / 2);
        }
        bytes.extend_from_slice(&rec);
    }
    bytes.resize(8_192, 0);
    std::fs::write(segment_path(&inst_dir, 1), &bytes).unwrap();

    let r = fold_leftovers(&store).unwrap();
    assert_eq!((r.records, r.new), (N, N), "every complete record, the torn one dropped");
    assert_eq!(store.count_usage_events().unwrap(), N as i64);
    assert!(segments(&inst_dir).unwrap().is_empty(), "the folded segment is deleted");

    // This build's own journal on the same database is format 2.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let l = Ledger::start(&store).unwrap();
    rt.block_on(l.record(event(N + 1))).unwrap();
    let dir = l.journal_dir();
    let seg = segments(&dir).unwrap()[0];
    let head = std::fs::read(segment_path(&dir, seg)).unwrap();
    assert_eq!(record::decode_header(&head).unwrap().version, record::VERSION);
}

/// A scan reads a segment a window at a time. Whatever the window's size
/// (down to one byte, where a record that does not fit is read again in a
/// window of its own), it reads the same events, stops at the same place and
/// finds the same torn record as a scan that reads the segment at once — and
/// so does a scanner reused for batches, as the fold thread uses it.
#[tokio::test]
async fn a_scan_reads_the_same_records_whatever_its_window() {
    const N: usize = 12;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("src.db")).unwrap();
    let scratch = tmp.path().join("windows");
    std::fs::create_dir_all(&scratch).unwrap();
    let (seg, pristine, last_start, last_end) = written_segment(&store, &scratch, N).await;
    let size = pristine.len();
    for (cut, complete) in [(last_end, N), (last_start + 5, N - 1), ((last_start + last_end) / 2, N - 1)] {
        let mut bytes = pristine[..cut as usize].to_vec();
        bytes.resize(size, 0);
        std::fs::write(segment_path(&scratch, seg), &bytes).unwrap();
        let at_once = scan(&scratch, JournalPos::default(), None, usize::MAX).unwrap();
        assert_eq!(at_once.events, (0..complete).map(event).collect::<Vec<_>>(), "cut at {cut}");
        assert_eq!(at_once.torn.is_some(), complete < N, "cut at {cut}");
        for window in (1..=300).chain([last_end as usize - 1, last_end as usize, size, size + 1]) {
            let mut scanner = Scanner::with_window(window);
            let s = scanner.scan(&scratch, JournalPos::default(), None, usize::MAX).unwrap();
            assert_eq!(s.events, at_once.events, "cut at {cut}, window {window}");
            assert_eq!((s.to, s.torn, s.unreadable), (at_once.to, at_once.torn, 0), "cut at {cut}, window {window}");
            scanner.recycle(s);
            // In batches of five from where the last one stopped, as a fold reads.
            let (mut read, mut at) = (Vec::new(), JournalPos::default());
            loop {
                let s = scanner.scan(&scratch, at, None, 5).unwrap();
                assert!(s.events.len() <= 5);
                if s.events.is_empty() && s.to == at {
                    break;
                }
                read.extend(s.events.iter().cloned());
                at = s.to;
                scanner.recycle(s);
            }
            assert_eq!((read.len(), at), (complete, at_once.to), "cut at {cut}, window {window}, batches of five");
            assert_eq!(read, at_once.events);
        }
    }
    // Up to a live writer's end, which may fall inside a record: never past it.
    let until = JournalPos { segment: seg, offset: last_start + 3 };
    for window in [1, 7, 64, 4096] {
        let s = Scanner::with_window(window).scan(&scratch, JournalPos::default(), Some(until), usize::MAX).unwrap();
        assert_eq!(s.events.len(), N - 1, "window {window}");
        assert_eq!(s.to, JournalPos { segment: seg, offset: last_start });
    }
}
