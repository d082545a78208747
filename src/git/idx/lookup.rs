//! Finding objects in a version 2 `.idx` without reading it whole.
//!
//! The index's fan-out table (1 KiB after an 8-byte header) says, for every first byte, how many ids sort before
//! the ids that start with it; the ids follow as one sorted table of 20-byte entries. So finding a set of ids
//! takes the header and fan-out, then only the slices of the id table whose first bytes the set uses:
//! [`Fanout::plan_reads`] turns the set into a few byte ranges (neighbouring slices merged), and
//! [`Fanout::find_in`] searches each range once it is read. The caller does the reading (a ranged GET per range).

use crate::git::oid::ObjectId;
use std::ops::Range;

/// Bytes of the header (`\377tOc`, version 2) and the fan-out table: the first read of a lookup.
pub const FANOUT_END: u64 = 8 + 256 * 4;
/// Size of one entry of the id table.
const ID_LEN: u64 = 20;

/// Why an index cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The first bytes are not a version 2 index header and fan-out table.
    #[error("not a version 2 pack index")]
    NotAnIndex,
    /// The fan-out table decreases somewhere.
    #[error("its fan-out table is not sorted")]
    BadFanout,
}

/// The fan-out table of one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fanout {
    /// `counts[b]`: ids whose first byte is at most `b`.
    counts: [u32; 256],
}

impl Fanout {
    /// Parses the first [`FANOUT_END`] bytes of an index.
    pub fn parse(head: &[u8]) -> Result<Self, LookupError> {
        let head = head
            .get(..FANOUT_END as usize)
            .filter(|h| h.starts_with(b"\xfftOc\0\0\0\x02"))
            .ok_or(LookupError::NotAnIndex)?;
        let mut counts = [0u32; 256];
        for (count, bytes) in counts.iter_mut().zip(head[8..].chunks_exact(4)) {
            *count = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        if counts.windows(2).any(|w| w[0] > w[1]) {
            return Err(LookupError::BadFanout);
        }
        Ok(Fanout { counts })
    }

    /// Objects in the index.
    pub fn objects(&self) -> u32 {
        self.counts[255]
    }

    /// Positions in the id table of the ids that start with `first`.
    fn bucket(&self, first: u8) -> Range<u32> {
        let start = first
            .checked_sub(1)
            .map_or(0, |before| self.counts[usize::from(before)]);
        start..self.counts[usize::from(first)]
    }

    /// Byte ranges of the id table (positions in the `.idx`) to read to find every id of `sorted` (sorted by
    /// id): the slice of each first byte they use, neighbours merged while the gap between them is at most
    /// `max_gap` bytes and the merged read at most `max_read` bytes (a single slice is never split).
    pub fn plan_reads(&self, sorted: &[ObjectId], max_gap: u64, max_read: u64) -> Vec<Range<u64>> {
        let mut reads: Vec<Range<u64>> = Vec::new();
        let mut last_bucket = None;
        for id in sorted {
            let first = id.0[0];
            if last_bucket == Some(first) {
                continue;
            }
            last_bucket = Some(first);
            let bucket = self.bucket(first);
            if bucket.is_empty() {
                continue;
            }
            let range = FANOUT_END + u64::from(bucket.start) * ID_LEN
                ..FANOUT_END + u64::from(bucket.end) * ID_LEN;
            match reads.last_mut() {
                Some(last)
                    if range.start - last.end <= max_gap && range.end - last.start <= max_read =>
                {
                    last.end = range.end
                }
                _ => reads.push(range),
            }
        }
        reads
    }

    /// Whether `id` is in `table`, the bytes of the id table read at `read` (one of [`Self::plan_reads`]'
    /// ranges). `None` when the slice of `id`'s first byte is not inside `read`.
    pub fn find_in(&self, read: &Range<u64>, table: &[u8], id: &ObjectId) -> Option<bool> {
        let bucket = self.bucket(id.0[0]);
        let start = FANOUT_END + u64::from(bucket.start) * ID_LEN;
        let end = FANOUT_END + u64::from(bucket.end) * ID_LEN;
        if bucket.is_empty() {
            return Some(false);
        }
        if start < read.start || end > read.end || table.len() as u64 != read.end - read.start {
            return None;
        }
        // Inside `table`, whose length fits in usize.
        let slice = &table[(start - read.start) as usize..(end - read.start) as usize];
        let mut lo = 0;
        let mut hi = slice.len() / ID_LEN as usize;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let at = &slice[mid * ID_LEN as usize..(mid + 1) * ID_LEN as usize];
            match at.cmp(&id.0[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(true),
            }
        }
        Some(false)
    }

    /// The range of the whole id table, for an index held in memory.
    pub fn table_range(&self) -> Range<u64> {
        FANOUT_END..FANOUT_END + u64::from(self.objects()) * ID_LEN
    }
}

#[cfg(test)]
mod tests;
