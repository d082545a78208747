//! An exact set of object ids in about 20 bytes per id: the distinct ids a pack's objects link to.
//!
//! A hash set of ids costs 23 to 46 bytes per id (control bytes, load factor, capacities that double) and holds
//! its old and new tables together while it grows. Here new ids are appended, unsorted and possibly repeated,
//! to a small buffer; when it fills, it is sorted, repeats are dropped, and so are the ids already held; what is
//! left becomes a sorted run. Runs are pairwise disjoint and merged as they grow (a run is merged into the one
//! before it once it is at least half as long), so there are about log2(n / buffer) of them. Each run is a list
//! of blocks of at most [`BLOCK`] ids, the last one allocated to its exact length, and a merge frees each input
//! block once it is consumed: memory never doubles, and stays at 20 bytes per distinct id plus the buffer (and,
//! for a moment during a merge, a few blocks).
//!
//! Most ids given are repeats: trees name the same blobs and subtrees version after version (on the 800k-object
//! bench repository, 9.2 million links name 0.8 million distinct ids). A small direct-mapped table of the ids most
//! recently taken ([`Recent`]) drops nine in ten of them before they reach the buffer, so that few are sorted and
//! looked up in the runs. It only ever holds ids the set holds, so it never drops a new one.
//!
//! Ids known to need no check (those of the pack's own objects, once their ids are computed) can be removed
//! ([`LinkSet::remove_sorted`]), so that the set holds little more than the links that leave the pack.
//!
//! Membership is exact (whole ids compared), as the connectivity check needs: a source chooses the ids its trees
//! name, so a probabilistic filter could be made to accept an object that is not there.

use crate::git::oid::ObjectId;
use std::cmp::Ordering;

/// Bytes one id takes in a run.
pub const ID_BYTES: u64 = std::mem::size_of::<ObjectId>() as u64;
/// Most ids in one block of a run.
pub const BLOCK: usize = 4096;
/// Fewest and most ids the buffer of new ids holds (an eighth of the limit, within these bounds).
const MIN_BUFFER: usize = 16;
const MAX_BUFFER: usize = 1 << 15;

/// Slots of the table of recent ids: a sixteenth of the buffer's ids, rounded down to a power of two.
const RECENT_PER_BUFFER: usize = 16;

/// A direct-mapped table of ids recently taken into a [`LinkSet`]: a slot per id, chosen from its first bytes,
/// overwritten by the next id for that slot. Every id in it is held by the set; ids a source chose to share a slot
/// only make it miss.
#[derive(Debug, Clone, Default)]
struct Recent {
    slots: Box<[Option<ObjectId>]>,
}

impl Recent {
    /// Bytes the table takes with `slots` slots.
    fn bytes(slots: usize) -> u64 {
        (slots * std::mem::size_of::<Option<ObjectId>>()) as u64
    }

    /// The slot of `id` among `len` (a power of two) slots.
    fn slot(id: &ObjectId, len: usize) -> usize {
        let mut first = [0; 8];
        first.copy_from_slice(&id.0[..8]);
        let mixed = u64::from_le_bytes(first).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as usize & (len - 1)
    }

    /// Whether `id` was taken recently.
    fn has(&self, id: &ObjectId) -> bool {
        !self.slots.is_empty() && self.slots[Self::slot(id, self.slots.len())] == Some(*id)
    }

    /// Records that `id` was taken, in a table of `len` slots (allocated on first use).
    fn record(&mut self, id: ObjectId, len: usize) {
        if self.slots.is_empty() {
            self.slots = vec![None; len].into_boxed_slice();
        }
        self.slots[Self::slot(&id, self.slots.len())] = Some(id);
    }
}

/// A [`LinkSet`] has no room for the ids it was given within its memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{held} distinct ids fill the {limit} bytes allowed")]
pub struct Full {
    /// Distinct ids held.
    pub held: usize,
    /// The memory limit, in bytes.
    pub limit: u64,
}

/// One sorted run of distinct ids, in blocks.
#[derive(Debug, Clone, Default)]
struct Run {
    blocks: Vec<Box<[ObjectId]>>,
    len: usize,
}

impl Run {
    /// The run of `sorted` (sorted, distinct) ids.
    fn from_sorted(sorted: &[ObjectId]) -> Run {
        Run {
            blocks: sorted.chunks(BLOCK).map(Box::from).collect(),
            len: sorted.len(),
        }
    }

    /// Removes from `sorted` (sorted, distinct) the ids this run holds.
    fn remove_held(&self, sorted: &mut Vec<ObjectId>) {
        let mut block = 0;
        sorted.retain(|id| {
            // Both are sorted: the block that may hold `id` is never before the previous id's.
            while self.blocks.get(block).is_some_and(|b| b.last() < Some(id)) {
                block += 1;
            }
            self.blocks
                .get(block)
                .is_none_or(|b| b.binary_search(id).is_err())
        });
    }

    /// Whether the run holds `id`.
    fn contains(&self, id: &ObjectId) -> bool {
        let block = self.blocks.partition_point(|b| b.last() < Some(id));
        self.blocks
            .get(block)
            .is_some_and(|b| b.binary_search(id).is_ok())
    }

    fn iter(&self) -> impl Iterator<Item = &ObjectId> {
        self.blocks.iter().flat_map(|b| b.iter())
    }

    /// This run and `other` merged (an id in both is kept once), each input block freed once consumed.
    fn merge(self, other: Run) -> Run {
        let mut out = Builder::new(self.len + other.len);
        let (mut a, mut b) = (Drain::new(self), Drain::new(other));
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.cmp(&y) {
                    Ordering::Less => a.take(),
                    Ordering::Greater => b.take(),
                    Ordering::Equal => {
                        b.take();
                        a.take()
                    }
                },
                (Some(_), None) => a.take(),
                (None, Some(_)) => b.take(),
                (None, None) => break,
            };
            out.push(next);
        }
        out.finish()
    }
}

/// Consumes a run in order, freeing each block once it is read.
struct Drain {
    blocks: std::vec::IntoIter<Box<[ObjectId]>>,
    block: Box<[ObjectId]>,
    pos: usize,
}

impl Drain {
    fn new(run: Run) -> Drain {
        let mut blocks = run.blocks.into_iter();
        let block = blocks.next().unwrap_or_default();
        Drain {
            blocks,
            block,
            pos: 0,
        }
    }

    fn peek(&self) -> Option<ObjectId> {
        self.block.get(self.pos).copied()
    }

    /// The next id (the caller peeked it); moves past it.
    fn take(&mut self) -> ObjectId {
        let id = self.block.get(self.pos).copied().unwrap_or_default();
        self.pos += 1;
        if self.pos >= self.block.len() {
            self.block = self.blocks.next().unwrap_or_default();
            self.pos = 0;
        }
        id
    }
}

/// Builds a run from ids pushed in order, at most `left` of them.
struct Builder {
    blocks: Vec<Box<[ObjectId]>>,
    current: Vec<ObjectId>,
    left: usize,
    len: usize,
}

impl Builder {
    fn new(most: usize) -> Builder {
        Builder {
            blocks: Vec::with_capacity(most.div_ceil(BLOCK)),
            current: Vec::new(),
            left: most,
            len: 0,
        }
    }

    fn push(&mut self, id: ObjectId) {
        if self.current.len() == self.current.capacity() {
            self.seal();
            // The last block gets the exact room it needs (when the inputs are disjoint).
            self.current = Vec::with_capacity(self.left.clamp(1, BLOCK));
        }
        self.current.push(id);
        self.left = self.left.saturating_sub(1);
        self.len += 1;
    }

    fn seal(&mut self) {
        if !self.current.is_empty() {
            let block = std::mem::take(&mut self.current).into_boxed_slice();
            self.blocks.push(block);
        }
    }

    fn finish(mut self) -> Run {
        self.seal();
        Run {
            blocks: self.blocks,
            len: self.len,
        }
    }
}

/// An exact set of object ids held in at most a given number of bytes (see the module doc).
#[derive(Debug, Clone)]
pub struct LinkSet {
    /// New ids, unsorted, possibly repeated or already held; allocated with the first insert.
    buffer: Vec<ObjectId>,
    /// Ids the buffer holds when full.
    buffer_len: usize,
    /// Ids recently taken (held by the buffer or the runs); allocated with the first insert.
    recent: Recent,
    /// Slots of `recent` when allocated (a power of two).
    recent_len: usize,
    /// Sorted runs of distinct ids, pairwise disjoint, each more than twice as long as the next.
    runs: Vec<Run>,
    /// Ids in the runs.
    held: usize,
    /// Most bytes the set may take.
    limit: u64,
}

impl LinkSet {
    /// An empty set that may take at most `limit` bytes.
    pub fn new(limit: u64) -> LinkSet {
        let buffer_len = usize::try_from(limit / ID_BYTES / 8)
            .unwrap_or(MAX_BUFFER)
            .clamp(MIN_BUFFER, MAX_BUFFER);
        LinkSet {
            buffer: Vec::new(),
            buffer_len,
            recent: Recent::default(),
            // The largest power of two not above a sixteenth of the buffer (at least one slot).
            recent_len: (buffer_len / RECENT_PER_BUFFER + 1).next_power_of_two() / 2,
            runs: Vec::new(),
            held: 0,
            limit,
        }
    }

    /// Adds `id`; fails when the set could outgrow its limit (it then holds what it held before).
    pub fn insert(&mut self, id: ObjectId) -> Result<(), Full> {
        if self.recent.has(&id) {
            return Ok(());
        }
        if self.buffer.len() == self.buffer_len
            || self.bytes_with(self.buffer.len() + 1) > self.limit
        {
            self.flush();
            if self.bytes_with(1) > self.limit {
                return Err(Full {
                    held: self.held,
                    limit: self.limit,
                });
            }
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve_exact(self.buffer_len);
        }
        self.buffer.push(id);
        self.recent.record(id, self.recent_len);
        Ok(())
    }

    /// The bytes the set would take if `pending` more distinct ids joined its runs: the runs' ids and block
    /// lists, and the full lengths of the buffer and of the table of recent ids.
    fn bytes_with(&self, pending: usize) -> u64 {
        let block_lists: usize = self
            .runs
            .iter()
            .map(|r| r.blocks.capacity() * std::mem::size_of::<Box<[ObjectId]>>())
            .sum();
        (self.held + pending + self.buffer_len) as u64 * ID_BYTES
            + Recent::bytes(self.recent_len)
            + block_lists as u64
    }

    /// Moves the buffer's new ids into a run, and merges the runs that have become comparable in length.
    fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        self.buffer.sort_unstable();
        self.buffer.dedup();
        for run in &self.runs {
            run.remove_held(&mut self.buffer);
        }
        if !self.buffer.is_empty() {
            self.held += self.buffer.len();
            self.runs.push(Run::from_sorted(&self.buffer));
        }
        self.buffer.clear();
        while let [.., bigger, smaller] = self.runs.as_slice() {
            if smaller.len * 2 < bigger.len {
                break;
            }
            let (Some(smaller), Some(bigger)) = (self.runs.pop(), self.runs.pop()) else {
                break;
            };
            self.runs.push(bigger.merge(smaller));
        }
    }

    /// Makes the set one sorted run and frees its buffer and its table of recent ids, for reading; further
    /// inserts still work.
    pub fn compact(&mut self) {
        self.flush();
        while self.runs.len() > 1 {
            let (Some(smaller), Some(bigger)) = (self.runs.pop(), self.runs.pop()) else {
                break;
            };
            self.runs.push(bigger.merge(smaller));
        }
        self.buffer = Vec::new();
        self.recent = Recent::default();
    }

    /// Removes from the set every id of `sorted` (ascending; repeats and ids the set does not hold are fine), and
    /// makes it one sorted run as [`compact`](Self::compact) does. Each block of the run is freed once read, so
    /// memory never grows; further inserts still work.
    pub fn remove_sorted(&mut self, sorted: impl IntoIterator<Item = ObjectId>) {
        self.compact();
        let Some(run) = self.runs.pop() else {
            return;
        };
        let mut kept = Builder::new(run.len);
        let mut drain = Drain::new(run);
        let mut remove = sorted.into_iter().peekable();
        while let Some(id) = drain.peek() {
            drain.take();
            while remove.next_if(|r| *r < id).is_some() {}
            if remove.peek() != Some(&id) {
                kept.push(id);
            }
        }
        let kept = kept.finish();
        self.held = kept.len;
        if kept.len > 0 {
            self.runs.push(kept);
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.buffer.contains(id) || self.runs.iter().any(|r| r.contains(id))
    }

    /// How many distinct ids the set holds.
    pub fn len(&self) -> usize {
        let mut fresh: Vec<&ObjectId> = self
            .buffer
            .iter()
            .filter(|id| !self.runs.iter().any(|r| r.contains(id)))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        self.held + fresh.len()
    }

    /// Whether the set holds no id.
    pub fn is_empty(&self) -> bool {
        self.held == 0 && self.buffer.is_empty()
    }

    /// The bytes the set takes now, as counted against its limit: the runs' ids and block lists, and the buffer's
    /// full length.
    pub fn bytes(&self) -> u64 {
        self.bytes_with(0)
    }

    /// The distinct ids, in order, when the set is [compacted](Self::compact); otherwise each run in order, then
    /// the buffer as it came.
    pub fn iter(&self) -> impl Iterator<Item = &ObjectId> {
        self.runs.iter().flat_map(Run::iter).chain(&self.buffer)
    }
}

impl PartialEq for LinkSet {
    fn eq(&self, other: &Self) -> bool {
        let sorted = |s: &LinkSet| {
            let mut ids: Vec<ObjectId> = s.iter().copied().collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        sorted(self) == sorted(other)
    }
}

impl Eq for LinkSet {}

#[cfg(test)]
mod tests;
