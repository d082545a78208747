//! Pack index (`.idx`, version 2) writer.
//!
//! A dumb-HTTP client downloads every listed `.idx` to find which pack holds an object, so each pack the mirror
//! publishes needs one. This writes exactly the bytes `git index-pack` writes for the same pack: `\377tOc`,
//! version 2, a 256-entry fan-out table, the sorted object ids, their CRC-32s, their 4-byte offsets (with the
//! top bit set for offsets that go to the 8-byte large-offset table instead), the pack's checksum, and the
//! SHA-1 of all of that. The writer is pure: it turns a list of entries into bytes.

use crate::git::oid::ObjectId;
use crate::git::pack::entry::Entries;
use sha1::{Digest, Sha1};

pub mod lookup;

/// Largest offset git stores in the 4-byte table by default (`pack.indexVersion=2`, no explicit limit).
pub const DEFAULT_OFFSET32_LIMIT: u64 = 0x7fff_ffff;

/// Most objects one index can hold here (git's own limit is the pack header's 32-bit count).
const MAX_OBJECTS: usize = 0x7fff_ffff;

/// What the index records about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxEntry {
    /// The object's id.
    pub oid: ObjectId,
    /// CRC-32 of the object's raw entry in the pack.
    pub crc32: u32,
    /// Offset of the entry in the pack.
    pub offset: u64,
}

/// Why no index could be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdxError {
    /// An entry's object id is not known yet (an unresolved delta).
    #[error("pack entry at offset {offset} has no object id yet (unresolved delta)")]
    MissingOid {
        /// Offset of the entry.
        offset: u64,
    },
    /// The same object is stored twice; git refuses such packs.
    #[error("object {oid} appears twice in the pack (at offsets {first} and {second})")]
    DuplicateObject {
        /// The duplicated id.
        oid: ObjectId,
        /// One offset where it is stored.
        first: u64,
        /// Another offset where it is stored.
        second: u64,
    },
    /// More objects than the index format can count.
    #[error("{count} objects is more than a pack index can hold")]
    TooManyObjects {
        /// Number of objects given.
        count: usize,
    },
}

/// Writes the version 2 index of a parsed pack whose deltas are resolved, exactly as `git index-pack` does by
/// default. Fails if an entry still lacks its id or an object appears twice. Besides the index itself it allocates
/// 4 bytes per entry (their order by id).
pub fn write_idx_v2(entries: &Entries, pack_checksum: &ObjectId) -> Result<Vec<u8>, IdxError> {
    if entries.len() > MAX_OBJECTS {
        return Err(IdxError::TooManyObjects {
            count: entries.len(),
        });
    }
    if let Some(e) = entries.iter().find(|e| e.oid().is_none()) {
        return Err(IdxError::MissingOid { offset: e.offset() });
    }
    // Fewer than 2^31 entries: every position fits in a u32.
    let mut order: Vec<u32> = (0..entries.len() as u32).collect();
    order.sort_unstable_by_key(|&i| entries.get(i as usize).oid());
    let at = |k: usize| {
        let e = entries.get(order[k] as usize);
        IdxEntry {
            oid: e.oid().unwrap_or(ObjectId::ZERO),
            crc32: e.crc32(),
            offset: e.offset(),
        }
    };
    write_sorted(order.len(), at, pack_checksum, DEFAULT_OFFSET32_LIMIT)
}

/// Writes a version 2 index whose 4-byte offset table holds offsets up to `offset32_limit`; larger ones go to the
/// 8-byte table, as `git index-pack --index-version=2,<offset32_limit>` does. Offsets of 2^31 and above always
/// go to the 8-byte table. Sorts `objects` by id.
pub fn write_idx_v2_with_limit(
    objects: &mut [IdxEntry],
    pack_checksum: &ObjectId,
    offset32_limit: u64,
) -> Result<Vec<u8>, IdxError> {
    if objects.len() > MAX_OBJECTS {
        return Err(IdxError::TooManyObjects {
            count: objects.len(),
        });
    }
    objects.sort_unstable_by_key(|o| o.oid);
    write_sorted(objects.len(), |k| objects[k], pack_checksum, offset32_limit)
}

/// Writes the index of `count` objects (at most [`MAX_OBJECTS`]), the `k`th in id order being `at(k)`.
fn write_sorted(
    count: usize,
    at: impl Fn(usize) -> IdxEntry,
    pack_checksum: &ObjectId,
    offset32_limit: u64,
) -> Result<Vec<u8>, IdxError> {
    if let Some(k) = (1..count).find(|&k| at(k - 1).oid == at(k).oid) {
        let (a, b) = (at(k - 1), at(k));
        return Err(IdxError::DuplicateObject {
            oid: a.oid,
            first: a.offset.min(b.offset),
            second: a.offset.max(b.offset),
        });
    }
    let is_large = |offset: u64| offset >> 31 != 0 || offset > offset32_limit;
    let large_count = (0..count).filter(|&k| is_large(at(k).offset)).count();
    let len = 8 + 256 * 4 + count * (20 + 4 + 4) + large_count * 8 + 20 + 20;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"\xfftOc");
    out.extend_from_slice(&2u32.to_be_bytes());
    let mut up_to = 0;
    for first_byte in 0..=255u8 {
        while up_to < count && at(up_to).oid.0[0] <= first_byte {
            up_to += 1;
        }
        // At most MAX_OBJECTS.
        out.extend_from_slice(&(up_to as u32).to_be_bytes());
    }
    for k in 0..count {
        out.extend_from_slice(&at(k).oid.0);
    }
    for k in 0..count {
        out.extend_from_slice(&at(k).crc32.to_be_bytes());
    }
    // Large offsets are numbered in id order. Both casts are lossless: there are fewer than 2^31 objects, and an
    // offset that is not large is below 2^31.
    let mut large_index = 0;
    for k in 0..count {
        let offset = at(k).offset;
        let small = if is_large(offset) {
            large_index += 1;
            0x8000_0000 | (large_index - 1) as u32
        } else {
            offset as u32
        };
        out.extend_from_slice(&small.to_be_bytes());
    }
    for offset in (0..count).map(|k| at(k).offset).filter(|&o| is_large(o)) {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(&pack_checksum.0);
    let digest: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&digest);
    Ok(out)
}

#[cfg(test)]
mod tests;
