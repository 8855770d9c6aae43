//! A least-recently-used map bounded by bytes: each entry costs what its
//! caller says (its body plus a fixed overhead); inserting past the cap
//! drops the least recently used entries first; reading an entry makes it
//! the most recently used. An entry larger than the whole cap is not kept.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub(crate) struct ByteLru<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Use order: the smallest tick is the least recently used.
    order: BTreeMap<u64, K>,
    bytes: usize,
    cap: usize,
    tick: u64,
}

struct Slot<V> {
    value: V,
    cost: usize,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> ByteLru<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        ByteLru { map: HashMap::new(), order: BTreeMap::new(), bytes: 0, cap, tick: 0 }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// The entry under `k`, now the most recently used.
    pub(crate) fn get(&mut self, k: &K) -> Option<&V> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.map.get_mut(k)?;
        self.order.remove(&slot.tick);
        slot.tick = tick;
        self.order.insert(tick, k.clone());
        Some(&slot.value)
    }

    /// Adds or replaces `k`, then drops the least recently used entries while
    /// over the cap. Returns false when the entry alone is over the cap (not kept).
    pub(crate) fn insert(&mut self, k: K, value: V, cost: usize) -> bool {
        self.remove(&k);
        if cost > self.cap {
            return false;
        }
        self.tick += 1;
        self.order.insert(self.tick, k.clone());
        self.map.insert(k, Slot { value, cost, tick: self.tick });
        self.bytes += cost;
        while self.bytes > self.cap {
            let Some((_, old)) = self.order.pop_first() else { break };
            if let Some(s) = self.map.remove(&old) {
                self.bytes -= s.cost;
            }
        }
        true
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let s = self.map.remove(k)?;
        self.order.remove(&s.tick);
        self.bytes -= s.cost;
        Some(s.value)
    }

    /// Keeps only the entries `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let gone: Vec<K> = self.map.iter().filter(|(k, s)| !keep(k, &s.value)).map(|(k, _)| k.clone()).collect();
        for k in gone {
            self.remove(&k);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_leaves_first_and_bytes_never_pass_the_cap() {
        let mut c: ByteLru<u32, &str> = ByteLru::new(300);
        assert!(c.insert(1, "a", 100));
        assert!(c.insert(2, "b", 100));
        assert!(c.insert(3, "c", 100));
        assert_eq!((c.len(), c.bytes()), (3, 300));
        // Reading 1 makes 2 the least recently used.
        assert_eq!(c.get(&1), Some(&"a"));
        assert!(c.insert(4, "d", 100));
        assert!(c.get(&2).is_none(), "the least recently used left");
        assert!(c.get(&1).is_some() && c.get(&3).is_some() && c.get(&4).is_some());
        assert_eq!(c.bytes(), 300);
        // A replacement counts once.
        assert!(c.insert(3, "c2", 50));
        assert_eq!((c.len(), c.bytes()), (3, 250));
        // A big entry evicts as many as it takes, least recently used first (1, then 4).
        assert!(c.insert(5, "e", 250));
        assert_eq!((c.len(), c.bytes()), (2, 300));
        assert!(c.get(&3).is_some() && c.get(&1).is_none() && c.get(&4).is_none());
        // Larger than the whole cap: not kept, nothing evicted for it.
        assert!(!c.insert(6, "f", 301));
        assert_eq!((c.len(), c.bytes()), (2, 300));
    }

    #[test]
    fn remove_retain_and_clear_keep_the_byte_count_true() {
        let mut c: ByteLru<u32, u32> = ByteLru::new(1_000);
        for i in 0..10 {
            c.insert(i, i % 2, 10 + i as usize);
        }
        let total: usize = (0..10).map(|i| 10 + i).sum();
        assert_eq!(c.bytes(), total);
        assert_eq!(c.remove(&3), Some(1));
        c.retain(|_, v| *v == 0);
        assert_eq!(c.len(), 5);
        assert_eq!(c.bytes(), [0, 2, 4, 6, 8].iter().map(|i| 10 + i).sum::<usize>());
        c.clear();
        assert_eq!((c.len(), c.bytes()), (0, 0));
        // The order map is emptied with the entries: inserting again works.
        c.insert(1, 1, 999);
        c.insert(2, 2, 2);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_bound_holds_under_many_distinct_inserts() {
        let mut c: ByteLru<u64, ()> = ByteLru::new(64 * 1024);
        let mut seed = 7u64;
        for i in 0..20_000u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            c.insert(i, (), 100 + (seed >> 52) as usize);
            assert!(c.bytes() <= c.cap());
            if i % 3 == 0 {
                c.get(&(i / 2));
            }
        }
        assert_eq!(c.map.len(), c.order.len());
    }
}
