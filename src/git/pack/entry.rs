//! What the first pass over a pack learns about each entry.
//!
//! The streaming parser ([`crate::git::pack`]) produces one [`Entry`] per pack entry while the pack is still arriving;
//! the delta resolver ([`crate::git::resolve`]) fills in the ids of delta objects later; the index writer
//! ([`crate::git::idx`]) needs only offset, CRC-32 and id. Keeping this record small matters: it is the one thing held
//! per object for the whole run, so it is 54 bytes ([`ENTRY_BYTES`]), packed to byte alignment: offsets, lengths
//! and sizes in 48 bits each (256 TiB), a delta's base as a 32-bit entry index, the header as a one-byte length,
//! the kind as its pack type number, and one 20-byte slot that holds the object's id once known, or until then a
//! REF delta's base id (resolution replaces it with the base's entry index).

use crate::git::oid::{ObjectId, ObjectKind};

/// Bytes one [`Entry`] takes (a unit test holds it to this).
pub const ENTRY_BYTES: usize = 54;

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

/// A 48-bit unsigned number, little-endian, in 6 bytes of alignment 1.
#[derive(Clone, Copy, PartialEq, Eq)]
struct U48([u8; 6]);

impl U48 {
    /// `value`, or [`Entry::MAX_VALUE`] if it is larger.
    fn new(value: u64) -> U48 {
        let bytes = value.min(Entry::MAX_VALUE).to_le_bytes();
        U48([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]])
    }

    fn get(self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
    }
}

/// One pack entry as recorded by the first pass (see the module doc for its layout).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the entry's header from the start of the pack.
    offset: U48,
    /// Total bytes the entry occupies in the pack, header included.
    packed_len: U48,
    /// Inflated size of the entry's data: the object's size for a base, the delta's size for a delta.
    size: U48,
    /// Size of the object this entry yields: `size` for a base, the delta header's result size for a delta.
    result_size: U48,
    /// CRC-32 of the entry's raw bytes (header included), little-endian.
    crc32: [u8; 4],
    /// A delta's base entry (its index in the pack's entry list), [`Entry::NO_BASE`] when not known;
    /// little-endian.
    base: [u8; 4],
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

    /// The largest offset, length or size an entry holds (2^48 - 1, 256 TiB): a larger one given to a constructor
    /// is held as this value. No pack that reaches a constructor has one (it would have streamed or inflated
    /// 256 TiB), except as a delta's declared result size, which the resolver then refuses: above its limits, or
    /// differing from what the delta yields.
    pub const MAX_VALUE: u64 = (1 << 48) - 1;

    fn new(offset: u64, header_len: u8, packed_len: u64, kind: u8) -> Entry {
        Entry {
            offset: U48::new(offset),
            packed_len: U48::new(packed_len),
            size: U48::new(0),
            result_size: U48::new(0),
            crc32: [0; 4],
            base: Entry::NO_BASE.to_le_bytes(),
            id: ObjectId::ZERO,
            header_len,
            tag: kind,
        }
    }

    fn set_sizes(&mut self, size: u64, result_size: u64, crc32: u32) {
        (self.size, self.result_size) = (U48::new(size), U48::new(result_size));
        self.crc32 = crc32.to_le_bytes();
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
        e.base = base.to_le_bytes();
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
        self.offset.get()
    }

    /// Total bytes the entry occupies in the pack, header included.
    pub fn packed_len(&self) -> u64 {
        self.packed_len.get()
    }

    /// Inflated size of the entry's data: the object's size for a base, the delta's size for a delta.
    pub fn size(&self) -> u64 {
        self.size.get()
    }

    /// Size of the object this entry yields: [`size`](Self::size) for a base, the delta header's result size for
    /// a delta.
    pub fn result_size(&self) -> u64 {
        self.result_size.get()
    }

    /// CRC-32 of the entry's raw bytes (header included), as the `.idx` records it.
    pub fn crc32(&self) -> u32 {
        u32::from_le_bytes(self.crc32)
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
        self.offset() + u64::from(self.header_len)
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
        let base = u32::from_le_bytes(self.base);
        (base != Entry::NO_BASE).then_some(base)
    }

    /// Records that this REF delta's base is entry number `base` (its base id is then that entry's id).
    fn set_base(&mut self, base: u32) {
        self.base = base.to_le_bytes();
        if self.slot() == Slot::RefBase {
            self.set_slot(Slot::Empty);
        }
    }

    /// The id of a REF delta's base while its base entry is not known.
    pub fn ref_base(&self) -> Option<ObjectId> {
        (self.slot() == Slot::RefBase).then_some(self.id)
    }
}

/// The entries of one pack in pack order: what the first pass records, and the later passes read and complete.
/// [`Entries::get`] hands out an entry by value; the few fields that change after the first pass (the id, a REF
/// delta's base) change through the list.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Entries {
    list: Vec<Entry>,
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
        self.list.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Entry number `i` (its index in pack order). Panics if there is none, as indexing a slice does.
    pub fn get(&self, i: usize) -> Entry {
        self.list[i]
    }

    /// The entries in pack order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Entry> + '_ {
        self.into_iter()
    }

    /// Adds the entry that follows the last one in the pack.
    pub fn push(&mut self, entry: Entry) {
        self.list.push(entry);
    }

    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        self.list.reserve(additional);
    }

    /// Releases the room reserved for entries not pushed.
    pub fn shrink_to_fit(&mut self) {
        self.list.shrink_to_fit();
    }

    /// Entries the list has room for without growing (the memory it holds is this many [`ENTRY_BYTES`]).
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// The index of the entry that starts at pack offset `offset`, if any. Delta bases are usually close behind
    /// the end, so this gallops back from the end before searching: it touches few, recently written entries.
    pub fn find_offset(&self, offset: u64) -> Option<u32> {
        // Every entry from `hi` on starts after `offset`.
        let mut hi = self.len();
        let mut step = 1;
        while step <= hi && self.get(hi - step).offset() > offset {
            hi -= step;
            step *= 2;
        }
        // Then the first entry of `lo..hi` that does not start before `offset`.
        let (mut lo, end) = (hi.saturating_sub(step), hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).offset() < offset {
                true => lo = mid + 1,
                false => hi = mid,
            }
        }
        let found = lo < end && self.get(lo).offset() == offset;
        // The pack header counts entries in 32 bits, so every index fits.
        u32::try_from(lo).ok().filter(|_| found)
    }

    /// Applies `change` to entry `i`; does nothing if there is none.
    fn change(&mut self, i: usize, change: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.list.get_mut(i) {
            change(e);
        }
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

impl<'a> IntoIterator for &'a Entries {
    type Item = Entry;
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, Entry>>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter().copied()
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
