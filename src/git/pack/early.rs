//! Resolving deltas while the pack arrives (pass 1).
//!
//! Most deltas of a pack come soon after their base, so the parser keeps the objects it has just inflated (whole
//! objects, and deltas it resolved) in a bounded LRU cache, and an OFS delta whose base is still cached is applied
//! as soon as its data has been inflated: it gets its id in pass 1, its content is scanned there, and pass 2
//! ([`crate::git::resolve`]) only rebuilds the deltas left, reading back only the entries those need. This saves
//! a second inflation of most entries and, for a pack spooled to the store, most of the reads back.
//!
//! Nothing here can make a result wrong or an error go unseen: a delta is resolved early only when it applies
//! cleanly to its base and yields exactly the size it declared; any problem (or a REF delta, or a base no longer
//! cached) leaves the delta to pass 2, which reports what is wrong with it.
//!
//! Memory: the cache's limit, plus the delta being collected and its result, each at most
//! [`EarlyResolution::object_bytes`], plus one byte per entry (the kind of each object). Work: the bytes deltas
//! produce here stay within [`EarlyResolution::work_bytes`] of the pack bytes received so far (past that, pass 2
//! and its own limit take over, so a delta bomb costs at most twice that limit before it is refused), and at most
//! [`WORK_PER_FEED`] per call to [`PackParser::feed`](super::PackParser::feed), so a caller that awaits its input
//! between calls looks at its deadline at least that often.

use crate::git::delta;
use crate::git::oid::ObjectKind;
use crate::git::resolve::cache::Cache;
use std::sync::Arc;

/// Most bytes of delta data and results one call to [`PackParser::feed`](super::PackParser::feed) resolves early;
/// the deltas past it in the same call are left to pass 2.
pub const WORK_PER_FEED: u64 = 64 << 20;

/// How much pass 1 may hold and do to resolve deltas early ([`PackParser::resolve_early`](super::PackParser::resolve_early)).
pub struct EarlyResolution {
    /// Most bytes of inflated objects kept for the deltas to come.
    pub cache_bytes: u64,
    /// Largest object (or delta data) held whole; bigger ones are left to pass 2, which streams them.
    pub object_bytes: u64,
    /// Most bytes deltas may produce here once this many pack bytes have been received (the limit pass 2
    /// applies to the whole pack: [`ResolveLimits::max_work_bytes`](crate::git::resolve::ResolveLimits)).
    pub work_bytes: Box<dyn Fn(u64) -> u64 + Send + Sync>,
}

/// The state of early resolution in one parser.
pub(super) struct Early {
    cache: Cache<u32>,
    object_bytes: u64,
    work_bytes: Box<dyn Fn(u64) -> u64 + Send + Sync>,
    /// Bytes produced by deltas so far.
    work: u64,
    /// Work done since the current call to `feed` began.
    work_this_feed: u64,
    /// The kind of each entry's object, known for whole objects and deltas resolved early (a placeholder for the
    /// others, which are never cached, so never looked up).
    kinds: Vec<ObjectKind>,
    /// Deltas resolved early.
    resolved: u64,
}

impl Early {
    /// Early resolution within `limits`.
    pub(super) fn new(limits: EarlyResolution) -> Self {
        Early {
            cache: Cache::new(limits.cache_bytes),
            object_bytes: limits.object_bytes.min(limits.cache_bytes),
            work_bytes: limits.work_bytes,
            work: 0,
            work_this_feed: 0,
            kinds: Vec::new(),
            resolved: 0,
        }
    }

    /// Lowers (or raises) the most bytes the cache of recent objects holds.
    pub(super) fn limit_cache(&mut self, bytes: u64) {
        self.cache.set_limit(bytes);
    }

    /// A call to `feed` begins.
    pub(super) fn start_feed(&mut self) {
        self.work_this_feed = 0;
    }

    /// Whether the content of a whole object of `size` bytes is worth collecting for the cache.
    pub(super) fn keeps(&self, size: u64) -> bool {
        size <= self.object_bytes
    }

    /// Whether to collect the data of an OFS delta of `size` bytes on entry `base`, to apply it at its end.
    pub(super) fn can_apply(&self, base: u32, size: u64) -> bool {
        self.work_this_feed < WORK_PER_FEED
            && size <= self.object_bytes
            && self.cache.contains(base)
    }

    /// Records the entry just read: its object's kind and, if collected, its content (without spare capacity:
    /// the cache counts what is allocated), which is cached; `None` for a delta left to pass 2.
    pub(super) fn record(&mut self, object: Option<(ObjectKind, Option<Arc<Vec<u8>>>)>) {
        let i = self.kinds.len() as u32;
        let (kind, content) = object.unwrap_or((ObjectKind::Blob, None));
        self.kinds.push(kind);
        if let Some(content) = content {
            self.cache.insert(i, content);
        }
    }

    /// Applies `delta` to cached entry `base` once `received` pack bytes have arrived; the result and its kind
    /// when it applies cleanly and yields exactly `result_size` bytes, `None` (leave it to pass 2) otherwise.
    pub(super) fn apply(
        &mut self,
        base: u32,
        delta: &[u8],
        result_size: u64,
        received: u64,
    ) -> Option<(ObjectKind, Vec<u8>)> {
        let work = self.work.saturating_add(result_size);
        if result_size > self.object_bytes || work > (self.work_bytes)(received) {
            return None;
        }
        let kind = *self.kinds.get(base as usize)?;
        let object = self.cache.get(base)?;
        let result = delta::apply(&object, delta).ok()?;
        if result.len() as u64 != result_size {
            return None;
        }
        self.work = work;
        self.work_this_feed += result_size + delta.len() as u64;
        self.resolved += 1;
        Some((kind, result))
    }

    /// Deltas resolved early so far.
    pub(super) fn resolved(&self) -> u64 {
        self.resolved
    }
}

#[cfg(test)]
mod tests;
