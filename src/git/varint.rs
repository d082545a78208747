//! The little-endian base-128 numbers of git's pack formats.
//!
//! A pack entry's size (after the four bits in its first byte) and the two sizes at the start of a delta are
//! written as groups of seven bits, least significant first, each byte's high bit saying whether another follows.
//! Both readers are resumable byte-at-a-time state machines, so they keep the number and the shift themselves and
//! use [`push_le128`] for the one step that can go wrong: a number that no longer fits in 64 bits. (An OFS delta's
//! base distance uses another encoding, most significant group first; the pack parser reads that one itself.)

/// Adds one little-endian base-128 group (the low 7 bits of `byte`, at bit `shift`) to `value`; `None` if the
/// number no longer fits in 64 bits. A group at bit 64 or beyond never fits, even a zero one, so a number that
/// never ends is refused after at most ten bytes.
pub(crate) fn push_le128(value: u64, shift: u32, byte: u8) -> Option<u64> {
    let group = u64::from(byte & 0x7f);
    if shift >= 64 {
        return None;
    }
    let bits = group << shift;
    (bits >> shift == group).then_some(value | bits)
}

#[cfg(test)]
mod tests;
