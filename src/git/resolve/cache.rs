//! The LRU cache of inflated objects that delta resolution keeps bases in, bounded in bytes.

use super::EntryIndex;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

/// LRU cache of inflated objects by entry, bounded in bytes (keyed by [`EntryIndex`] in pass 2, by the parser's
/// `u32` entry positions in pass 1).
pub(crate) struct Cache<K> {
    limit: u64,
    used: u64,
    peak: u64,
    /// Advances on every use; an object's age is the tick of its last use.
    tick: u64,
    objects: HashMap<K, (Arc<Vec<u8>>, u64)>,
    by_age: BTreeMap<u64, K>,
}

impl<K: Copy + Eq + Hash> Cache<K> {
    /// An empty cache holding at most `limit` bytes.
    pub(crate) fn new(limit: u64) -> Self {
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
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Lowers (or raises) the most bytes the cache holds, evicting the least recently used objects beyond it.
    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
        self.evict_to(limit);
    }

    /// Evicts the least recently used objects until at most `bytes` are held.
    fn evict_to(&mut self, bytes: u64) {
        while self.used > bytes {
            match self.by_age.first_key_value() {
                Some((_, &oldest)) => self.remove(oldest),
                None => break,
            }
        }
    }

    /// Most bytes the cache ever held.
    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }

    /// Whether the object of entry `i` is cached.
    pub(crate) fn contains(&self, i: K) -> bool {
        self.objects.contains_key(&i)
    }

    /// The object, marked as just used.
    pub(crate) fn get(&mut self, i: K) -> Option<Arc<Vec<u8>>> {
        let (data, age) = self.objects.get_mut(&i)?;
        self.by_age.remove(age);
        self.tick += 1;
        *age = self.tick;
        self.by_age.insert(self.tick, i);
        Some(Arc::clone(data))
    }

    /// Adds an object, evicting the least recently used ones to stay within the limit.
    pub(crate) fn insert(&mut self, i: K, data: Arc<Vec<u8>>) {
        let len = cost(&data);
        if len > self.limit {
            return;
        }
        self.remove(i);
        self.evict_to(self.limit - len);
        self.tick += 1;
        self.by_age.insert(self.tick, i);
        self.objects.insert(i, (data, self.tick));
        self.used += len;
        self.peak = self.peak.max(self.used);
    }

    /// Drops the object of entry `i`, if cached.
    pub(crate) fn remove(&mut self, i: K) {
        if let Some((data, age)) = self.objects.remove(&i) {
            self.by_age.remove(&age);
            self.used -= cost(&data);
        }
    }
}

/// Bytes counted for each cached object besides its data: its allocation's spare capacity, the allocation, the
/// `Arc`, and its slots in the two maps.
const CACHED_OVERHEAD: u64 = 96;

/// The bytes a cached object counts for.
fn cost(data: &Arc<Vec<u8>>) -> u64 {
    data.capacity() as u64 + CACHED_OVERHEAD
}

/// One slot of the map of retained entries.
pub(super) type Slot = (EntryIndex, Box<[u8]>);

/// The bytes of the table of a map that holds `capacity` entries without growing: a power of two of slots, at
/// most 7/8 of them full (but one of fewer than 8), each with a control byte, and a group of 16 control bytes more.
pub(super) fn table_bytes(capacity: usize) -> u64 {
    let buckets = match capacity {
        0 => return 0,
        c if c < 8 => (c + 1).next_power_of_two(),
        c => (c * 8 / 7).next_power_of_two(),
    };
    buckets as u64 * (std::mem::size_of::<Slot>() as u64 + 1) + 16
}

/// The bytes an allocation of `len` bytes takes: the allocator's size classes are 16 bytes apart up to 128, then
/// four per power of two.
pub(super) fn allocation_bytes(len: usize) -> u64 {
    let len = len as u64;
    match len {
        0..=128 => len.next_multiple_of(16).max(16),
        _ => len.next_multiple_of((1 << (len - 1).ilog2()) / 4),
    }
}

/// Compressed entries read back from the pack that still have descendants to come,
/// bounded in bytes: rebuilding an evicted base from them costs CPU instead of a read far behind the scan. Nothing
/// is evicted: an entry is dropped when its last descendant is resolved, and none is added while the limit is
/// reached. What is counted is what is held: each entry's allocation, and the map's table, which never shrinks,
/// and which, while it grows, is held twice (the old table and the new one, twice as large). On the 800k-object
/// bench repository at a 128 MiB budget, about 270k entries of 40-100 bytes each were retained, and the tables
/// took 8 MB at their peak, where 64 bytes counted per entry had made 4 MB of them. An entry is held as a plain
/// allocation and read as a copy: a `Bytes` held and cloned would add a shared header of 32 bytes to each entry
/// at its first read, which nothing counted (up to 8.6 MB more at that peak).
pub(super) struct Retained {
    limit: u64,
    /// Bytes of the entries' allocations.
    data: u64,
    /// Bytes of the map's table at its largest (its capacity less the slots that removals left unusable until
    /// it is rebuilt would understate it).
    table: u64,
    peak: u64,
    entries: HashMap<EntryIndex, Box<[u8]>>,
}

impl Retained {
    /// An empty set holding at most `limit` bytes, overhead included.
    pub(super) fn new(limit: u64) -> Self {
        Retained {
            limit,
            data: 0,
            table: 0,
            peak: 0,
            entries: HashMap::new(),
        }
    }

    /// Most bytes ever held.
    pub(super) fn peak(&self) -> u64 {
        self.peak
    }

    /// How many entries are retained.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held now: the entries and the map's table.
    #[cfg(test)]
    pub(super) fn used(&self) -> u64 {
        self.data + self.table
    }

    /// Whether entry `i` is retained.
    pub(super) fn contains(&self, i: EntryIndex) -> bool {
        self.entries.contains_key(&i)
    }

    /// A copy of the compressed bytes of entry `i`, if retained (the caller's, freed when it is done with them).
    pub(super) fn get(&self, i: EntryIndex) -> Option<bytes::Bytes> {
        self.entries
            .get(&i)
            .map(|data| bytes::Bytes::copy_from_slice(data))
    }

    /// The bytes held once one more entry of `len` bytes is kept: the entries, its allocation and the map's
    /// table, with the table grown for it if it must (the old table and the new one are held at once then).
    fn held_with(&self, len: usize) -> u64 {
        let capacity = self.entries.capacity();
        let growing = match self.entries.len() < capacity {
            true => 0,
            false => table_bytes(capacity + 1).max(2 * self.table),
        };
        self.data + allocation_bytes(len) + self.table + growing
    }

    /// Whether an entry of `len` compressed bytes would be kept by [`Self::insert`] now: a caller that reads an
    /// entry only to keep it need not read it when it would not be kept.
    pub(super) fn fits(&self, len: usize) -> bool {
        self.held_with(len) <= self.limit
    }

    /// Keeps a copy of entry `i`'s compressed bytes (a copy, so that the chunk they were read from is not held),
    /// if they fit ([`Self::fits`]), with the map's table grown for them if it must.
    pub(super) fn insert(&mut self, i: EntryIndex, data: &[u8]) {
        if self.entries.contains_key(&i) {
            return;
        }
        let held = self.held_with(data.len());
        if held > self.limit {
            return;
        }
        self.entries.insert(i, Box::from(data));
        self.data += allocation_bytes(data.len());
        self.table = self.table.max(table_bytes(self.entries.capacity()));
        self.peak = self.peak.max(held);
    }

    /// Drops entry `i`, if retained.
    pub(super) fn remove(&mut self, i: EntryIndex) {
        if let Some(data) = self.entries.remove(&i) {
            self.data -= allocation_bytes(data.len());
        }
    }
}
