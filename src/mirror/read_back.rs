//! Reading a stored pack back for delta resolution.
//!
//! A pack too big for the memory budget is streamed into the store while it arrives (`fetch.rs`), and the
//! resolver then reads it again through the [`PackReader`] trait. Its reads come mostly in pack order and are
//! small, so [`StorePackReader`] serves them from aligned chunks fetched with ranged GETs, and never lets the
//! resolver wait on one request at a time: the resolver's scan [advises](PackReader::advise_scan) where it is,
//! and the chunks ahead of it are fetched while it works on the current one; a read that starts exactly where an
//! earlier one ended (one of the 2-4 interleaved positions of a streamed big object) does the same for its own
//! stream. Any other read (the entries of a base rebuilt far behind the scan) fetches just its own bytes, unless
//! a chunk already holds them, and never evicts the chunks of the scan. A read longer than a chunk bypasses the
//! chunks.

use crate::git::resolve::{PackReader, ReadError};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::JoinHandle;

/// How many recent reads' ends are remembered to recognise a read that continues one of them exactly.
const STREAMS: usize = 8;

/// Reads a stored pack back: aligned chunks fetched with ranged GETs ahead of the scan and of sequential reads, a
/// few kept in an LRU, so a scan in pack order costs one request per chunk and rarely waits for one.
pub(super) struct StorePackReader {
    store: Arc<dyn Store>,
    key: String,
    len: u64,
    chunk: u64,
    /// Most chunks held or in flight.
    capacity: usize,
    /// Chunks fetched ahead of a sequential read.
    ahead: u64,
    state: Mutex<State>,
}

/// The chunks and the recent reads of a [`StorePackReader`].
#[derive(Default)]
struct State {
    /// Chunk index and chunk, least recently used first.
    slots: Vec<(u64, Slot)>,
    /// Where recent reads ended, most recent last.
    ends: VecDeque<u64>,
}

/// A chunk held, or being fetched by a task of its own.
enum Slot {
    Ready(Bytes),
    Fetching(JoinHandle<Result<Bytes, StoreError>>),
}

impl StorePackReader {
    /// A reader of the `len`-byte pack stored at `key`, fetching `chunk` bytes at a time, `ahead` chunks ahead of
    /// a sequential read, and holding at most `capacity` chunks (at least `ahead + 2`) in all.
    pub(super) fn new(
        store: Arc<dyn Store>,
        key: String,
        len: u64,
        chunk: u64,
        capacity: usize,
        ahead: usize,
    ) -> Self {
        StorePackReader {
            store,
            key,
            len,
            chunk: chunk.max(1),
            capacity: capacity.max(ahead + 2),
            ahead: ahead as u64,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave the state inconsistent: every change is one Vec operation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a read at `offset` starts exactly where a recent read ended, and remembers where this one ends.
    fn continues(&self, offset: u64, end: u64) -> bool {
        let mut state = self.state();
        let continued = state.ends.iter().position(|&e| e == offset);
        let sequential = continued.is_some();
        if let Some(at) = continued {
            state.ends.remove(at);
        }
        if state.ends.len() >= STREAMS {
            state.ends.pop_front();
        }
        state.ends.push_back(end);
        sequential
    }

    /// Whether chunk `index` is held or being fetched.
    fn has(&self, index: u64) -> bool {
        self.state().slots.iter().any(|(i, _)| *i == index)
    }

    /// Starts fetching chunk `index` in a task of its own, unless it is held, in flight, or past the end.
    fn prefetch(&self, index: u64) {
        let start = index.saturating_mul(self.chunk);
        if start >= self.len {
            return;
        }
        let mut state = self.state();
        if state.slots.iter().any(|(i, _)| *i == index) {
            return;
        }
        let len = self.chunk.min(self.len - start);
        let (store, key) = (Arc::clone(&self.store), self.key.clone());
        let task = tokio::spawn(async move { store.get_range(&key, start, len).await });
        self.push(&mut state, index, Slot::Fetching(task));
    }

    /// Adds a chunk as the most recently used, dropping the least recently used ones beyond the capacity
    /// (held chunks first, then fetches in flight, which are cancelled).
    fn push(&self, state: &mut State, index: u64, slot: Slot) {
        state.slots.push((index, slot));
        while state.slots.len() > self.capacity {
            let victim = state
                .slots
                .iter()
                .position(|(_, s)| matches!(s, Slot::Ready(_)))
                .unwrap_or(0);
            if let (_, Slot::Fetching(task)) = state.slots.remove(victim) {
                task.abort();
            }
        }
    }

    /// Chunk `index`: held, awaited if in flight, fetched otherwise.
    async fn chunk(&self, index: u64) -> Result<Bytes, ReadError> {
        let taken = {
            let mut state = self.state();
            match state.slots.iter().position(|(i, _)| *i == index) {
                Some(pos) => {
                    let (i, slot) = state.slots.remove(pos);
                    match slot {
                        Slot::Ready(data) => {
                            state.slots.push((i, Slot::Ready(data.clone())));
                            return Ok(data);
                        }
                        Slot::Fetching(task) => Some(task),
                    }
                }
                None => None,
            }
        };
        let data = match taken {
            Some(task) => task
                .await
                .map_err(|e| format!("reading pack {} back: {e}", self.key))??,
            None => {
                let start = index.saturating_mul(self.chunk);
                let len = self.chunk.min(self.len.saturating_sub(start));
                self.store.get_range(&self.key, start, len).await?
            }
        };
        let mut state = self.state();
        self.push(&mut state, index, Slot::Ready(data.clone()));
        Ok(data)
    }
}

impl Drop for StorePackReader {
    fn drop(&mut self) {
        for (_, slot) in self.state().slots.drain(..) {
            if let Slot::Fetching(task) = slot {
                task.abort();
            }
        }
    }
}

#[async_trait::async_trait]
impl PackReader for StorePackReader {
    fn advise_scan(&self, offset: u64) {
        let first = offset / self.chunk;
        for index in first..=first + self.ahead {
            self.prefetch(index);
        }
    }

    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| {
                format!(
                    "cannot read {len} bytes at offset {offset} of pack {} of {} bytes",
                    self.key, self.len
                )
            })?;
        let sequential = self.continues(offset, end);
        let first = offset / self.chunk;
        let last = end.saturating_sub(1).max(offset) / self.chunk;
        if len > self.chunk || !(sequential || self.has(first) && self.has(last)) {
            return Ok(self.store.get_range(&self.key, offset, len).await?);
        }
        if sequential {
            for index in first..=last + self.ahead {
                self.prefetch(index);
            }
        }
        let head = self.chunk(first).await?;
        let start = (offset - first * self.chunk) as usize;
        if first == last {
            return head
                .get(start..start + len as usize)
                .map(|_| head.slice(start..start + len as usize))
                .ok_or_else(|| format!("pack {} is shorter than offset {end}", self.key).into());
        }
        let tail = self.chunk(last).await?;
        let need = (end - last * self.chunk) as usize;
        match (head.get(start..), tail.get(..need)) {
            (Some(a), Some(b)) => {
                let mut out = Vec::with_capacity(a.len() + b.len());
                out.extend_from_slice(a);
                out.extend_from_slice(b);
                Ok(Bytes::from(out))
            }
            _ => Err(format!("pack {} is shorter than offset {end}", self.key).into()),
        }
    }
}

#[cfg(test)]
mod tests;
