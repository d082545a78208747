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
    // Every entry has its id: the order lists them all.
    let order = entries.id_order();
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

/// Writes the index of `count` objects (at most [`MAX_OBJECTS`]), the `k`th in id order being `at(k)`. Each
/// object is asked for once, and its id, CRC-32 and offset go straight to their tables: the objects come in id
/// order, which is no order in the pack, so each is a read from anywhere in a list of them.
fn write_sorted(
    count: usize,
    at: impl Fn(usize) -> IdxEntry,
    pack_checksum: &ObjectId,
    offset32_limit: u64,
) -> Result<Vec<u8>, IdxError> {
    const TABLES: usize = 8 + 256 * 4;
    let (ids, crcs, offsets) = (TABLES, TABLES + count * 20, TABLES + count * 24);
    // Room for all but the 8-byte offsets, which only packs past 2 GiB have.
    let mut out = Vec::with_capacity(TABLES + count * (20 + 4 + 4) + 20 + 20);
    out.resize(TABLES + count * (20 + 4 + 4), 0);
    out[..4].copy_from_slice(b"\xfftOc");
    out[4..8].copy_from_slice(&2u32.to_be_bytes());
    let is_large = |offset: u64| offset >> 31 != 0 || offset > offset32_limit;
    let mut large = Vec::new();
    let mut fanout = [0u32; 256];
    let mut previous: Option<IdxEntry> = None;
    for k in 0..count {
        let object = at(k);
        if let Some(before) = previous.filter(|before| before.oid == object.oid) {
            return Err(IdxError::DuplicateObject {
                oid: object.oid,
                first: before.offset.min(object.offset),
                second: before.offset.max(object.offset),
            });
        }
        fanout[usize::from(object.oid.0[0])] += 1;
        out[ids + k * 20..][..20].copy_from_slice(&object.oid.0);
        out[crcs + k * 4..][..4].copy_from_slice(&object.crc32.to_be_bytes());
        // Large offsets are numbered in id order. Both casts are lossless: there are fewer than 2^31 objects,
        // and an offset that is not large is below 2^31.
        let small = match is_large(object.offset) {
            true => {
                large.push(object.offset);
                0x8000_0000 | (large.len() - 1) as u32
            }
            false => object.offset as u32,
        };
        out[offsets + k * 4..][..4].copy_from_slice(&small.to_be_bytes());
        previous = Some(object);
    }
    let mut up_to = 0u32;
    for (first_byte, n) in fanout.iter().enumerate() {
        up_to += n;
        out[8 + first_byte * 4..][..4].copy_from_slice(&up_to.to_be_bytes());
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(&pack_checksum.0);
    let digest: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&digest);
    Ok(out)
}

#[cfg(test)]
mod tests;
