//! Reading a stored pack back for delta resolution.
//!
//! A pack too big for the memory budget is streamed into the store while it arrives (`fetch.rs`), and the
//! resolver then reads it again through the [`PackReader`] trait. Its reads come mostly in pack order and are
//! small, so [`StorePackReader`] fetches aligned chunks with ranged GETs and keeps the last few in an LRU: a scan
//! costs about one request per chunk, and the few interleaved positions of a streamed big object (2-4 per delta
//! level) stay cached. A read longer than a chunk bypasses the cache.

use crate::git::resolve::PackReader;
use crate::store::{Store, StoreError};
use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// Reads a stored pack back: aligned chunks fetched with ranged GETs, a few kept in an LRU, so a scan in pack
/// order costs one request per chunk.
pub(super) struct StorePackReader {
    store: Arc<dyn Store>,
    key: String,
    len: u64,
    chunk: u64,
    capacity: usize,
    /// Chunk index and bytes, least recently used first.
    cache: Mutex<Vec<(u64, Bytes)>>,
}

impl StorePackReader {
    /// A reader of the `len`-byte pack stored at `key`, fetching `chunk` bytes at a time and keeping `capacity`
    /// chunks.
    pub(super) fn new(
        store: Arc<dyn Store>,
        key: String,
        len: u64,
        chunk: u64,
        capacity: usize,
    ) -> Self {
        StorePackReader {
            store,
            key,
            len,
            chunk: chunk.max(1),
            capacity,
            cache: Mutex::new(Vec::new()),
        }
    }

    async fn chunk(&self, index: u64) -> Result<Bytes, StoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(pos) = cache.iter().position(|(i, _)| *i == index) {
                let hit = cache.remove(pos);
                let data = hit.1.clone();
                cache.push(hit);
                return Ok(data);
            }
        }
        let start = index * self.chunk;
        let len = self.chunk.min(self.len.saturating_sub(start));
        let data = self.store.get_range(&self.key, start, len).await?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.capacity {
                cache.remove(0);
            }
            cache.push((index, data.clone()));
        }
        Ok(data)
    }
}

#[async_trait::async_trait]
impl PackReader for StorePackReader {
    async fn read_at(
        &self,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        if len > self.chunk {
            return Ok(self.store.get_range(&self.key, offset, len).await?);
        }
        let first = offset / self.chunk;
        let start = (offset % self.chunk) as usize;
        let head = self.chunk(first).await?;
        let end = start + len as usize;
        if end <= head.len() {
            return Ok(head.slice(start..end));
        }
        let tail = self.chunk(first + 1).await?;
        let mut out = Vec::with_capacity(len as usize);
        out.extend_from_slice(head.get(start..).unwrap_or_default());
        let need = end - head.len().max(start);
        let Some(rest) = tail.get(..need) else {
            return Err(
                format!("pack {} is shorter than offset {}", self.key, offset + len).into(),
            );
        };
        out.extend_from_slice(rest);
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests;
