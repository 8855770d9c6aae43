//! The memory side of idempotency: the recent completed keys with their
//! answers, so that a replay needs no database read. Bounded by bytes (the
//! answers' bodies plus a fixed overhead per entry); the oldest completed
//! entries leave first. The database stays the record of truth: an entry
//! that left the cache is read from there.

use crate::domain::SupplierId;
use crate::domain::idempotency::{BodyState, IdempotencyKey, KeyRecord};
use crate::store::StoredAnswer;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What an entry costs besides its body: the record, the key, the map slot.
pub(super) const ENTRY_OVERHEAD: usize = 320;

pub(super) type Key = (SupplierId, IdempotencyKey);

pub(super) struct Entry {
    pub(super) record: KeyRecord,
    pub(super) answer: Option<Arc<StoredAnswer>>,
    seq: u64,
}

impl Entry {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.answer.as_ref().map_or(0, |a| a.body.len())
    }
}

pub(super) struct Cache {
    map: HashMap<Key, Entry>,
    /// Insertion order; an item whose sequence number no longer matches its
    /// entry's was replaced and is skipped.
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    cap: usize,
    seq: u64,
}

impl Cache {
    pub(super) fn new(cap: usize) -> Self {
        Cache { map: HashMap::new(), order: VecDeque::new(), bytes: 0, cap, seq: 0 }
    }

    pub(super) fn get(&self, k: &Key) -> Option<&Entry> {
        self.map.get(k)
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Adds (or replaces) a completed key, then drops the oldest entries
    /// while over the cap. An entry larger than the whole cap is not kept.
    pub(super) fn insert(&mut self, k: Key, record: KeyRecord, answer: Option<Arc<StoredAnswer>>) {
        self.remove(&k);
        self.seq += 1;
        let e = Entry { record, answer, seq: self.seq };
        if e.cost() > self.cap {
            return;
        }
        self.bytes += e.cost();
        self.order.push_back((k.clone(), self.seq));
        self.map.insert(k, e);
        while self.bytes > self.cap {
            let Some((old, seq)) = self.order.pop_front() else { break };
            if self.map.get(&old).is_some_and(|e| e.seq == seq) {
                self.remove(&old);
            }
        }
        // Replaced entries leave stale order items behind: compact now and then.
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order.retain(|(k, seq)| map.get(k).is_some_and(|e| e.seq == *seq));
        }
    }

    pub(super) fn remove(&mut self, k: &Key) {
        if let Some(e) = self.map.remove(k) {
            self.bytes -= e.cost();
        }
    }

    /// The database dropped `k`'s body to stay under its total cap.
    pub(super) fn evict_body(&mut self, k: &Key) {
        if let Some(e) = self.map.get_mut(k) {
            let before = e.cost();
            e.answer = None;
            e.record.body = BodyState::Evicted;
            self.bytes -= before - e.cost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::idempotency::{Endpoint, Fingerprint, KeyState};
    use bytes::Bytes;
    use chrono::{TimeZone, Utc};

    fn k(n: i64) -> Key {
        (SupplierId(n), IdempotencyKey::parse(b"key").unwrap())
    }

    fn rec() -> KeyRecord {
        let t = Utc.with_ymd_and_hms(2026, 6, 10, 12, 0, 0).unwrap();
        KeyRecord {
            endpoint: Endpoint::ChatCompletions,
            fingerprint: Fingerprint::of(b"x"),
            state: KeyState::Completed,
            status: Some(200),
            request_id: None,
            body: BodyState::Kept,
            created_at: t,
            lease_until: t,
            expires_at: t,
        }
    }

    fn answer(n: usize) -> Option<Arc<StoredAnswer>> {
        Some(Arc::new(StoredAnswer { status: 200, request_id: None, headers: vec![], body: Bytes::from(vec![b'a'; n]) }))
    }

    #[test]
    fn the_oldest_entries_leave_first_and_bytes_stay_under_the_cap() {
        let mut c = Cache::new(3 * (ENTRY_OVERHEAD + 100));
        for i in 0..3 {
            c.insert(k(i), rec(), answer(100));
        }
        assert_eq!((c.len(), c.bytes()), (3, 3 * (ENTRY_OVERHEAD + 100)));
        c.insert(k(3), rec(), answer(100));
        assert!(c.get(&k(0)).is_none(), "the oldest left");
        assert!(c.get(&k(1)).is_some() && c.get(&k(3)).is_some());
        // A replaced key counts once, and its stale order item does not evict it.
        c.insert(k(1), rec(), answer(50));
        assert_eq!(c.bytes(), 3 * ENTRY_OVERHEAD + 250);
        c.insert(k(4), rec(), answer(100));
        assert!(c.get(&k(2)).is_none() && c.get(&k(1)).is_some(), "k(1) is newer than k(2) now");
        assert!(c.bytes() <= 3 * (ENTRY_OVERHEAD + 100));
    }

    #[test]
    fn an_evicted_body_keeps_its_record_and_frees_its_bytes() {
        let mut c = Cache::new(10_000);
        c.insert(k(1), rec(), answer(1_000));
        c.evict_body(&k(1));
        let e = c.get(&k(1)).unwrap();
        assert!(e.answer.is_none());
        assert_eq!(e.record.body, BodyState::Evicted);
        assert_eq!(c.bytes(), ENTRY_OVERHEAD);
        // Larger than the whole cache: not kept at all.
        c.insert(k(2), rec(), answer(20_000));
        assert!(c.get(&k(2)).is_none());
        c.remove(&k(1));
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }
}
