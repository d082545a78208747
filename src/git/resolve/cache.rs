//! The LRU cache of inflated objects that delta resolution keeps bases in, bounded in bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// LRU cache of inflated objects, bounded in bytes.
pub(super) struct Cache {
    pub(super) limit: u64,
    pub(super) used: u64,
    pub(super) peak: u64,
    pub(super) tick: u64,
    pub(super) objects: HashMap<u32, (Arc<Vec<u8>>, u64)>,
    pub(super) by_age: BTreeMap<u64, u32>,
}

impl Cache {
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

    pub(super) fn contains(&self, i: u32) -> bool {
        self.objects.contains_key(&i)
    }

    /// The object, marked as just used.
    pub(super) fn get(&mut self, i: u32) -> Option<Arc<Vec<u8>>> {
        let (data, age) = self.objects.get_mut(&i)?;
        self.by_age.remove(age);
        self.tick += 1;
        *age = self.tick;
        self.by_age.insert(self.tick, i);
        Some(Arc::clone(data))
    }

    /// Adds an object, evicting the least recently used ones to stay within the limit.
    pub(super) fn insert(&mut self, i: u32, data: Arc<Vec<u8>>) {
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

    pub(super) fn remove(&mut self, i: u32) {
        if let Some((data, age)) = self.objects.remove(&i) {
            self.by_age.remove(&age);
            self.used -= data.len() as u64;
        }
    }
}
