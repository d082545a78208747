//! What the first pass over a pack learns about each entry, and the list that holds it for the rest of the run.
//!
//! The streaming parser ([`crate::git::pack`]) produces one [`Entry`] per pack entry while the pack is still arriving;
//! the delta resolver ([`crate::git::resolve`]) fills in the ids of delta objects later; the index writer
//! ([`crate::git::idx`]) needs only offset, CRC-32 and id. Keeping what the list holds per entry small matters: it
//! is the one thing held per object for the whole run, so [`Entries`] stores each entry in [`ENTRY_BYTES`] (40)
//! bytes at byte alignment and hands out [`Entry`] values decoded from them:
//! - one 20-byte slot that holds the object's id once known, or until then a REF delta's base id (resolution
//!   replaces it with the base's entry index); the CRC-32; a delta's base as a 32-bit entry index;
//! - the offset's low 32 bits (the high bits change only every 4 GiB of pack, so the list keeps them as runs);
//!   no length: entries are contiguous in pack order, so an entry ends where the next one starts (the last one
//!   where the list was told it ends);
//! - the size of the object the entry yields in 32 bits; a delta's own inflated size in 21 bits (a base's is its
//!   object's size); the header's length in 5 bits, the kind and what the id slot holds in 5.
//!
//! A value that does not fit its bits (an object of 4 GiB or more, a delta of 2 MiB or more, which are rare) makes
//! the entry spill: its sizes and header length go to a side table of [`SPILL_BYTES`] per spilled entry, and
//! every value stays exact. Memory: [`ENTRY_BYTES`] per entry, plus [`SPILL_BYTES`] per spilled entry and 8 bytes
//! per 4 GiB of pack ([`Entries::side_slots`] counts both).

use crate::git::oid::{ObjectId, ObjectKind};

/// Bytes the list holds per entry (a unit test holds the record to this).
pub const ENTRY_BYTES: usize = 40;

/// Bytes one spilled entry adds to the list (a unit test holds it to this, and to at most [`ENTRY_BYTES`]).
pub const SPILL_BYTES: usize = 24;

/// How one pack entry stores its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The whole object, zlib-compressed.
    Base(ObjectKind),
    /// A delta against an earlier entry, which the pack names by its distance back ([`Entry::base`] is its
    /// index).
    OfsDelta,
    /// A delta against the object named by its id, which may be anywhere in the pack ([`Entry::ref_base`] until
    /// resolution finds it, then [`Entry::base`]).
    RefDelta,
}

/// Pack type numbers of the delta kinds (the object kinds' are [`ObjectKind::pack_type`]).
const OFS_DELTA: u8 = 6;
const REF_DELTA: u8 = 7;
/// Bits of [`Entry::tag`] that hold the kind's pack type number; the [`Slot`] is above them.
const KIND_BITS: u8 = 0b111;
const SLOT_SHIFT: u32 = 3;

/// What the 20-byte id slot of an [`Entry`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Nothing yet.
    Empty = 0,
    /// The entry's object id.
    Oid = 1,
    /// A REF delta's base id, its base entry not known yet.
    RefBase = 2,
}

/// One pack entry as recorded by the first pass: a value decoded from [`Entries`], exact in every field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the entry's header from the start of the pack.
    offset: u64,
    /// Total bytes the entry occupies in the pack, header included.
    packed_len: u64,
    /// Inflated size of the entry's data: the object's size for a base, the delta's size for a delta.
    size: u64,
    /// Size of the object this entry yields: `size` for a base, the delta header's result size for a delta.
    result_size: u64,
    /// CRC-32 of the entry's raw bytes (header included).
    crc32: u32,
    /// A delta's base entry (its index in the pack's entry list), [`Entry::NO_BASE`] when not known.
    base: u32,
    /// See [`Slot`].
    id: ObjectId,
    /// Bytes of the type/size header and base reference before the entry's zlib stream.
    header_len: u8,
    /// The kind's pack type number, and the [`Slot`] above it.
    tag: u8,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("offset", &self.offset())
            .field("packed_len", &self.packed_len())
            .field("size", &self.size())
            .field("result_size", &self.result_size())
            .field("crc32", &self.crc32())
            .field("header_len", &self.header_len())
            .field("kind", &self.kind())
            .field("base", &self.base())
            .field("oid", &self.oid())
            .field("ref_base", &self.ref_base())
            .finish()
    }
}

impl Entry {
    /// No base entry: a non-delta entry, or a REF delta not resolved yet.
    pub const NO_BASE: u32 = u32::MAX;

    fn new(offset: u64, header_len: u8, packed_len: u64, kind: u8) -> Entry {
        Entry {
            offset,
            packed_len,
            size: 0,
            result_size: 0,
            crc32: 0,
            base: Entry::NO_BASE,
            id: ObjectId::ZERO,
            header_len,
            tag: kind,
        }
    }

    fn set_sizes(&mut self, size: u64, result_size: u64, crc32: u32) {
        (self.size, self.result_size, self.crc32) = (size, result_size, crc32);
    }

    /// A non-delta entry of `size` bytes whose object's id is `oid` (if known); `header_len` is the length of its
    /// type/size header, `packed_len` of the whole entry.
    pub fn whole(
        offset: u64,
        header_len: u8,
        packed_len: u64,
        kind: ObjectKind,
        size: u64,
        crc32: u32,
        oid: Option<ObjectId>,
    ) -> Entry {
        let mut e = Entry::new(offset, header_len, packed_len, kind.pack_type());
        e.set_sizes(size, size, crc32);
        if let Some(oid) = oid {
            e.set_oid(oid);
        }
        e
    }

    /// An OFS delta on entry number `base` (its index in the pack's entry list).
    pub fn ofs_delta(
        offset: u64,
        header_len: u8,
        packed_len: u64,
        base: u32,
        size: u64,
        result_size: u64,
        crc32: u32,
    ) -> Entry {
        let mut e = Entry::new(offset, header_len, packed_len, OFS_DELTA);
        e.set_sizes(size, result_size, crc32);
        e.base = base;
        e
    }

    /// A REF delta on the object `base`.
    pub fn ref_delta(
        offset: u64,
        header_len: u8,
        packed_len: u64,
        base: ObjectId,
        size: u64,
        result_size: u64,
        crc32: u32,
    ) -> Entry {
        let mut e = Entry::new(offset, header_len, packed_len, REF_DELTA);
        e.set_sizes(size, result_size, crc32);
        e.id = base;
        e.set_slot(Slot::RefBase);
        e
    }

    /// Offset of the entry's header from the start of the pack.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Total bytes the entry occupies in the pack, header included.
    pub fn packed_len(&self) -> u64 {
        self.packed_len
    }

    /// Inflated size of the entry's data: the object's size for a base, the delta's size for a delta.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Size of the object this entry yields: [`size`](Self::size) for a base, the delta header's result size for
    /// a delta.
    pub fn result_size(&self) -> u64 {
        self.result_size
    }

    /// CRC-32 of the entry's raw bytes (header included), as the `.idx` records it.
    pub fn crc32(&self) -> u32 {
        self.crc32
    }

    /// Bytes of the type/size header and base reference before the entry's zlib stream.
    pub fn header_len(&self) -> u8 {
        self.header_len
    }

    /// How the object is stored.
    pub fn kind(&self) -> EntryKind {
        match self.tag & KIND_BITS {
            OFS_DELTA => EntryKind::OfsDelta,
            REF_DELTA => EntryKind::RefDelta,
            // Only the constructors set the kind, from an `ObjectKind` or one of the two above.
            t => EntryKind::Base(ObjectKind::from_pack_type(t).unwrap_or(ObjectKind::Blob)),
        }
    }

    /// Whether the entry is a delta (either form).
    pub fn is_delta(&self) -> bool {
        !matches!(self.kind(), EntryKind::Base(_))
    }

    /// Offset of the entry's zlib stream (after the type/size header and any delta base reference).
    pub fn data_offset(&self) -> u64 {
        self.offset().saturating_add(u64::from(self.header_len))
    }

    fn slot(&self) -> Slot {
        match self.tag >> SLOT_SHIFT {
            1 => Slot::Oid,
            2 => Slot::RefBase,
            _ => Slot::Empty,
        }
    }

    fn set_slot(&mut self, slot: Slot) {
        self.tag = (self.tag & KIND_BITS) | ((slot as u8) << SLOT_SHIFT);
    }

    /// The object's id: known after the first pass for bases, filled in by delta resolution for deltas.
    pub fn oid(&self) -> Option<ObjectId> {
        (self.slot() == Slot::Oid).then_some(self.id)
    }

    /// Records the object's id. A REF delta whose base entry is not known yet forgets its base's id.
    fn set_oid(&mut self, oid: ObjectId) {
        self.id = oid;
        self.set_slot(Slot::Oid);
    }

    /// Forgets the object's id (a REF delta keeps its base only if its base entry is known).
    fn clear_oid(&mut self) {
        if self.slot() == Slot::Oid {
            self.set_slot(Slot::Empty);
        }
    }

    /// A delta's base entry, as an index in the pack's entry list: an OFS delta's from the first pass, a REF
    /// delta's once resolution found it. `None` for a non-delta entry.
    pub fn base(&self) -> Option<u32> {
        (self.base != Entry::NO_BASE).then_some(self.base)
    }

    /// Records that this REF delta's base is entry number `base` (its base id is then that entry's id).
    fn set_base(&mut self, base: u32) {
        self.base = base;
        if self.slot() == Slot::RefBase {
            self.set_slot(Slot::Empty);
        }
    }

    /// The id of a REF delta's base while its base entry is not known.
    pub fn ref_base(&self) -> Option<ObjectId> {
        (self.slot() == Slot::RefBase).then_some(self.id)
    }
}

/// Bits of a [`Record`]'s word: the [`Entry::tag`] (kind and slot), whether the entry spilled, the header's length,
/// and a delta's own inflated size.
const TAG_BITS: u32 = 5;
const TAG_MASK: u32 = (1 << TAG_BITS) - 1;
const SPILLED: u32 = 1 << TAG_BITS;
const HEADER_SHIFT: u32 = TAG_BITS + 1;
const HEADER_BITS: u32 = 5;
const DELTA_SIZE_SHIFT: u32 = HEADER_SHIFT + HEADER_BITS;
const DELTA_SIZE_BITS: u32 = 32 - DELTA_SIZE_SHIFT;

/// One entry as [`Entries`] stores it (see the module doc), in [`ENTRY_BYTES`] at byte alignment; numbers are
/// little-endian.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Record {
    /// See [`Slot`].
    id: ObjectId,
    crc32: [u8; 4],
    /// The offset's low 32 bits.
    offset: [u8; 4],
    /// A delta's base entry, [`Entry::NO_BASE`] when not known.
    base: [u8; 4],
    /// The size of the object the entry yields (unless the entry spilled).
    result_size: [u8; 4],
    /// The tag, [`SPILLED`], the header's length and a delta's own size (unless the entry spilled; 0 for a base).
    word: [u8; 4],
}

impl Record {
    /// The entry's id, if its slot holds it ([`Entry::oid`]).
    fn oid(&self) -> Option<ObjectId> {
        let tag = u32::from_le_bytes(self.word) & TAG_MASK;
        (tag >> SLOT_SHIFT == Slot::Oid as u32).then_some(self.id)
    }
}

/// The exact sizes and header length of an entry whose values do not fit its [`Record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spill {
    entry: u32,
    header_len: u8,
    size: u64,
    result_size: u64,
}

/// The entries of one pack in pack order: what the first pass records, and the later passes read and complete.
/// [`Entries::get`] hands out an entry by value, decoded; the few fields that change after the first pass (the id,
/// a REF delta's base) change through the list. An entry runs up to the start of the next one, so the length
/// given for each entry but the last is not kept.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Entries {
    records: Vec<Record>,
    /// Where the offsets' high 32 bits change: (first entry, high bits), in entry order; none below 4 GiB.
    highs: Vec<(u32, u32)>,
    /// The entries whose values do not fit their records, in entry order.
    spills: Vec<Spill>,
    /// Where the last entry ends.
    end: u64,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Entries {
    /// An empty list.
    pub fn new() -> Entries {
        Entries::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Offset of entry `i`.
    fn offset(&self, i: usize) -> u64 {
        let low = u32::from_le_bytes(self.records[i].offset);
        let runs = self
            .highs
            .partition_point(|&(first, _)| first as usize <= i);
        let high = runs.checked_sub(1).map_or(0, |run| self.highs[run].1);
        u64::from(high) << 32 | u64::from(low)
    }

    /// Entry number `i` (its index in pack order). Panics if there is none, as indexing a slice does.
    pub fn get(&self, i: usize) -> Entry {
        let r = &self.records[i];
        let word = u32::from_le_bytes(r.word);
        let offset = self.offset(i);
        let end = match i + 1 < self.len() {
            true => self.offset(i + 1),
            false => self.end,
        };
        let tag = (word & TAG_MASK) as u8;
        let mut e = Entry::new(offset, 0, end.saturating_sub(offset), tag);
        e.id = r.id;
        e.base = u32::from_le_bytes(r.base);
        e.crc32 = u32::from_le_bytes(r.crc32);
        let spill = (word & SPILLED != 0)
            .then(|| {
                self.spills
                    .binary_search_by_key(&i, |s| s.entry as usize)
                    .ok()
            })
            .flatten();
        match spill {
            Some(at) => {
                let spill = self.spills[at];
                (e.header_len, e.size, e.result_size) =
                    (spill.header_len, spill.size, spill.result_size);
            }
            None => {
                e.header_len = ((word >> HEADER_SHIFT) & ((1 << HEADER_BITS) - 1)) as u8;
                e.result_size = u64::from(u32::from_le_bytes(r.result_size));
                e.size = match e.is_delta() {
                    true => u64::from(word >> DELTA_SIZE_SHIFT),
                    false => e.result_size,
                };
            }
        }
        e
    }

    /// The entries in pack order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            entries: self,
            next: 0..self.len(),
        }
    }

    /// Adds the entry that follows the last one in the pack (where the last one ends from then on).
    pub fn push(&mut self, entry: Entry) {
        // A pack counts its entries in 32 bits: every index fits.
        let i = self.len() as u32;
        let high = (entry.offset >> 32) as u32;
        if self.highs.last().map_or(0, |&(_, high)| high) != high {
            self.highs.push((i, high));
        }
        self.end = entry.offset.saturating_add(entry.packed_len);
        let delta_size = match entry.is_delta() {
            true => entry.size,
            false => 0,
        };
        let fits = u32::try_from(entry.result_size).is_ok()
            && delta_size < 1 << DELTA_SIZE_BITS
            && entry.header_len < 1 << HEADER_BITS
            && (entry.is_delta() || entry.size == entry.result_size);
        let mut word = u32::from(entry.tag);
        match fits {
            true => {
                word |= u32::from(entry.header_len) << HEADER_SHIFT;
                word |= (delta_size as u32) << DELTA_SIZE_SHIFT;
            }
            false => {
                word |= SPILLED;
                self.spills.push(Spill {
                    entry: i,
                    header_len: entry.header_len,
                    size: entry.size,
                    result_size: entry.result_size,
                });
            }
        }
        self.records.push(Record {
            id: entry.id,
            crc32: entry.crc32.to_le_bytes(),
            offset: (entry.offset as u32).to_le_bytes(),
            base: entry.base.to_le_bytes(),
            result_size: (entry.result_size as u32).to_le_bytes(),
            word: word.to_le_bytes(),
        });
    }

    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        self.records.reserve(additional);
    }

    /// Makes room for exactly `additional` more entries (no spare room beyond, as [`Vec::reserve_exact`]).
    pub fn reserve_exact(&mut self, additional: usize) {
        self.records.reserve_exact(additional);
    }

    /// Releases the room reserved for entries not pushed.
    pub fn shrink_to_fit(&mut self) {
        self.records.shrink_to_fit();
        self.highs.shrink_to_fit();
        self.spills.shrink_to_fit();
    }

    /// Entries the list has room for without growing (they hold [`ENTRY_BYTES`] each).
    pub fn capacity(&self) -> usize {
        self.records.capacity()
    }

    /// Slots of the side tables the list has room for (a spilled entry takes one of [`SPILL_BYTES`], a run of
    /// offsets above 4 GiB one of 8 bytes): each holds less than [`ENTRY_BYTES`].
    pub fn side_slots(&self) -> usize {
        self.highs.capacity() + self.spills.capacity()
    }

    /// The index of the entry that starts at pack offset `offset`, if any. Delta bases are usually close behind
    /// the end, so this gallops back from the end before searching: it touches few, recently written entries.
    pub fn find_offset(&self, offset: u64) -> Option<u32> {
        // Every entry from `hi` on starts after `offset`.
        let mut hi = self.len();
        let mut step = 1;
        while step <= hi && self.offset(hi - step) > offset {
            hi -= step;
            step *= 2;
        }
        // Then the first entry of `lo..hi` that does not start before `offset`.
        let (mut lo, end) = (hi.saturating_sub(step), hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.offset(mid) < offset {
                true => lo = mid + 1,
                false => hi = mid,
            }
        }
        let found = lo < end && self.offset(lo) == offset;
        // The pack header counts entries in 32 bits, so every index fits.
        u32::try_from(lo).ok().filter(|_| found)
    }

    /// Applies `change` to the id slot, base and tag of entry `i` (the only fields that change after the first
    /// pass); does nothing if there is no entry `i`.
    fn change(&mut self, i: usize, change: impl FnOnce(&mut Entry)) {
        if i >= self.len() {
            return;
        }
        let mut e = self.get(i);
        change(&mut e);
        let r = &mut self.records[i];
        r.id = e.id;
        r.base = e.base.to_le_bytes();
        let word = u32::from_le_bytes(r.word) & !TAG_MASK | u32::from(e.tag);
        r.word = word.to_le_bytes();
    }

    /// The id of entry `i` ([`Entry::oid`]) without decoding the rest of it. Panics if there is none, as indexing a
    /// slice does.
    pub fn oid(&self, i: usize) -> Option<ObjectId> {
        self.records[i].oid()
    }

    /// The indices of the entries whose ids are known, in the order of their ids: what an index lists, and what
    /// the links to the pack's own objects are compared with. Besides the 4 bytes per entry it returns, it holds
    /// 512 KiB while it sorts: the entries are first placed by the first two bytes of their ids (about one
    /// 65,536th of them each, ids being hashes), then each group is sorted by whole id, which reads each record
    /// a few times instead of the twenty or so times of a sort over all of them.
    pub fn id_order(&self) -> Vec<u32> {
        const GROUPS: usize = 1 << 16;
        let group = |id: &ObjectId| usize::from(u16::from_be_bytes([id.0[0], id.0[1]]));
        let mut starts = vec![0usize; GROUPS + 1];
        for id in self.records.iter().filter_map(Record::oid) {
            starts[group(&id) + 1] += 1;
        }
        for g in 0..GROUPS {
            starts[g + 1] += starts[g];
        }
        let mut order = vec![0u32; starts[GROUPS]];
        let mut next = starts.clone();
        for (i, r) in self.records.iter().enumerate() {
            if let Some(id) = r.oid() {
                let g = group(&id);
                // A pack counts its entries in 32 bits: every index fits.
                order[next[g]] = i as u32;
                next[g] += 1;
            }
        }
        for g in 0..GROUPS {
            order[starts[g]..starts[g + 1]].sort_unstable_by_key(|&i| self.records[i as usize].id);
        }
        order
    }

    /// [`Entry::set_oid`] on entry `i`, if there is one.
    pub fn set_oid(&mut self, i: usize, oid: ObjectId) {
        self.change(i, |e| e.set_oid(oid));
    }

    /// [`Entry::clear_oid`] on entry `i`, if there is one.
    pub fn clear_oid(&mut self, i: usize) {
        self.change(i, Entry::clear_oid);
    }

    /// [`Entry::set_base`] on entry `i`, if there is one.
    pub fn set_base(&mut self, i: usize, base: u32) {
        self.change(i, |e| e.set_base(base));
    }
}

/// The entries of an [`Entries`] list in pack order, by value.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    entries: &'a Entries,
    next: std::ops::Range<usize>,
}

impl Iterator for Iter<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        self.next.next().map(|i| self.entries.get(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.next.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Entries {
    type Item = Entry;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<Entry> for Entries {
    fn from_iter<T: IntoIterator<Item = Entry>>(iter: T) -> Self {
        let mut entries = Entries::new();
        for e in iter {
            entries.push(e);
        }
        entries
    }
}

#[cfg(test)]
mod tests;
