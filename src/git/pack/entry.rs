//! What the first pass over a pack learns about each entry.
//!
//! The streaming parser ([`crate::git::pack`]) produces one [`Entry`] per pack entry while the pack is still arriving;
//! the delta resolver ([`crate::git::resolve`]) fills in the ids of delta objects later; the index writer
//! ([`crate::git::idx`]) needs only offset, CRC-32 and id. Keeping this record small matters: it is the one thing held
//! per object for the whole run.

use crate::git::oid::{ObjectId, ObjectKind};

/// How one pack entry stores its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The whole object, zlib-compressed.
    Base(ObjectKind),
    /// A delta against the entry that starts at `base_offset` (earlier in the same pack).
    OfsDelta {
        /// Absolute pack offset of the base entry's header.
        base_offset: u64,
    },
    /// A delta against the object named `base`, which may be anywhere in the pack.
    RefDelta {
        /// The base object's id.
        base: ObjectId,
    },
}

/// One pack entry as recorded by the first pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the entry's header from the start of the pack.
    pub offset: u64,
    /// Offset of the entry's zlib stream (after the type/size header and any delta base reference).
    pub data_offset: u64,
    /// Total bytes the entry occupies in the pack, header included.
    pub packed_len: u64,
    /// How the object is stored.
    pub kind: EntryKind,
    /// Inflated size of the entry's data: the object's size for a base, the delta's size for a delta.
    pub size: u64,
    /// Size of the object this entry yields: `size` for a base, the delta header's result size for a delta.
    pub result_size: u64,
    /// CRC-32 of the entry's raw bytes (header included), as the `.idx` records it.
    pub crc32: u32,
    /// The object's id: known after the first pass for bases, filled in by delta resolution for deltas.
    pub oid: Option<ObjectId>,
}

impl Entry {
    /// Whether the entry is a delta (either form).
    pub fn is_delta(&self) -> bool {
        !matches!(self.kind, EntryKind::Base(_))
    }
}
