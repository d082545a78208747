//! What the first pass over a pack learns about each entry.
//!
//! The streaming parser ([`crate::git::pack`]) produces one [`Entry`] per pack entry while the pack is still arriving;
//! the delta resolver ([`crate::git::resolve`]) fills in the ids of delta objects later; the index writer
//! ([`crate::git::idx`]) needs only offset, CRC-32 and id. Keeping this record small matters: it is the one thing held
//! per object for the whole run, so it is 64 bytes ([`ENTRY_BYTES`]): a delta's base is a 32-bit entry index, the
//! header is a one-byte length, and one 20-byte slot holds the object's id once known, or until then a REF delta's
//! base id (resolution replaces it with the base's entry index).

use crate::git::oid::{ObjectId, ObjectKind};

/// Bytes one [`Entry`] takes (a unit test holds it to this).
pub const ENTRY_BYTES: usize = 64;

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

/// What the 20-byte id slot of an [`Entry`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Nothing yet.
    Empty,
    /// The entry's object id.
    Oid,
    /// A REF delta's base id, its base entry not known yet.
    RefBase,
}

/// One pack entry as recorded by the first pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the entry's header from the start of the pack.
    pub offset: u64,
    /// Total bytes the entry occupies in the pack, header included.
    pub packed_len: u64,
    /// Inflated size of the entry's data: the object's size for a base, the delta's size for a delta.
    pub size: u64,
    /// Size of the object this entry yields: `size` for a base, the delta header's result size for a delta.
    pub result_size: u64,
    /// CRC-32 of the entry's raw bytes (header included), as the `.idx` records it.
    pub crc32: u32,
    /// A delta's base entry (its index in the pack's entry list), [`Entry::NO_BASE`] when not known.
    base: u32,
    /// See [`Slot`].
    id: ObjectId,
    /// Bytes of the type/size header and base reference before the entry's zlib stream.
    pub header_len: u8,
    kind: EntryKind,
    slot: Slot,
}

impl Entry {
    /// No base entry: a non-delta entry, or a REF delta not resolved yet.
    pub const NO_BASE: u32 = u32::MAX;

    fn new(offset: u64, header_len: u8, packed_len: u64, kind: EntryKind) -> Entry {
        Entry {
            offset,
            packed_len,
            size: 0,
            result_size: 0,
            crc32: 0,
            base: Entry::NO_BASE,
            id: ObjectId::ZERO,
            header_len,
            kind,
            slot: Slot::Empty,
        }
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
        let mut e = Entry::new(offset, header_len, packed_len, EntryKind::Base(kind));
        (e.size, e.result_size, e.crc32) = (size, size, crc32);
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
        let mut e = Entry::new(offset, header_len, packed_len, EntryKind::OfsDelta);
        (e.size, e.result_size, e.crc32, e.base) = (size, result_size, crc32, base);
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
        let mut e = Entry::new(offset, header_len, packed_len, EntryKind::RefDelta);
        (e.size, e.result_size, e.crc32) = (size, result_size, crc32);
        (e.id, e.slot) = (base, Slot::RefBase);
        e
    }

    /// How the object is stored.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// Whether the entry is a delta (either form).
    pub fn is_delta(&self) -> bool {
        !matches!(self.kind, EntryKind::Base(_))
    }

    /// Offset of the entry's zlib stream (after the type/size header and any delta base reference).
    pub fn data_offset(&self) -> u64 {
        self.offset + u64::from(self.header_len)
    }

    /// The object's id: known after the first pass for bases, filled in by delta resolution for deltas.
    pub fn oid(&self) -> Option<ObjectId> {
        (self.slot == Slot::Oid).then_some(self.id)
    }

    /// Records the object's id. A REF delta whose base entry is not known yet forgets its base's id.
    pub fn set_oid(&mut self, oid: ObjectId) {
        (self.id, self.slot) = (oid, Slot::Oid);
    }

    /// Forgets the object's id (a REF delta keeps its base only if its base entry is known).
    pub fn clear_oid(&mut self) {
        if self.slot == Slot::Oid {
            self.slot = Slot::Empty;
        }
    }

    /// A delta's base entry, as an index in the pack's entry list: an OFS delta's from the first pass, a REF
    /// delta's once resolution found it. `None` for a non-delta entry.
    pub fn base(&self) -> Option<u32> {
        (self.base != Entry::NO_BASE).then_some(self.base)
    }

    /// Records that this REF delta's base is entry number `base` (its base id is then that entry's id).
    pub fn set_base(&mut self, base: u32) {
        self.base = base;
        if self.slot == Slot::RefBase {
            self.slot = Slot::Empty;
        }
    }

    /// The id of a REF delta's base while its base entry is not known.
    pub fn ref_base(&self) -> Option<ObjectId> {
        (self.slot == Slot::RefBase).then_some(self.id)
    }
}

#[cfg(test)]
mod tests;
