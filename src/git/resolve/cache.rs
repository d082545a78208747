//! The LRU cache of inflated objects that delta resolution keeps bases in, bounded in bytes.

use super::EntryIndex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// LRU cache of inflated objects, bounded in bytes.
pub(super) struct Cache {
    limit: u64,
    used: u64,
    peak: u64,
    /// Advances on every use; an object's age is the tick of its last use.
    tick: u64,
    objects: HashMap<EntryIndex, (Arc<Vec<u8>>, u64)>,
    by_age: BTreeMap<u64, EntryIndex>,
}

impl Cache {
    /// An empty cache holding at most `limit` bytes.
    pub(super) fn new(limit: u64) -> Self {
        Cache {
            limit,
            used: 0,
            peak: 0,
            tick: 0,
            objects: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    /// Most bytes the cache holds (larger objects are never cached).
    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    /// Most bytes the cache ever held.
    pub(super) fn peak(&self) -> u64 {
        self.peak
    }

    /// Whether the object of entry `i` is cached.
    pub(super) fn contains(&self, i: EntryIndex) -> bool {
        self.objects.contains_key(&i)
    }

    /// The object, marked as just used.
    pub(super) fn get(&mut self, i: EntryIndex) -> Option<Arc<Vec<u8>>> {
        let (data, age) = self.objects.get_mut(&i)?;
        self.by_age.remove(age);
        self.tick += 1;
        *age = self.tick;
        self.by_age.insert(self.tick, i);
        Some(Arc::clone(data))
    }

    /// Adds an object, evicting the least recently used ones to stay within the limit.
    pub(super) fn insert(&mut self, i: EntryIndex, data: Arc<Vec<u8>>) {
        let len = data.len() as u64;
        if len > self.limit {
            return;
        }
        self.remove(i);
        while self.used + len > self.limit {
            match self.by_age.first_key_value() {
                Some((_, &oldest)) => self.remove(oldest),
                None => break,
            }
        }
        self.tick += 1;
        self.by_age.insert(self.tick, i);
        self.objects.insert(i, (data, self.tick));
        self.used += len;
        self.peak = self.peak.max(self.used);
    }

    /// Drops the object of entry `i`, if cached.
    pub(super) fn remove(&mut self, i: EntryIndex) {
        if let Some((data, age)) = self.objects.remove(&i) {
            self.by_age.remove(&age);
            self.used -= data.len() as u64;
        }
    }
}
