//! Pass 2 over a pack: compute the id of every delta entry within a fixed memory budget.
//!
//! The first pass ([`crate::pack`]) records one [`Entry`] per pack entry and hashes the non-delta objects. A
//! delta's id needs the object it yields, which needs its base, which may itself be a delta: this module rebuilds
//! those objects by reading entries back through a [`PackSource`] (the pack in memory, or ranged reads of the pack
//! in S3).
//!
//! How (the design notes' section on pack stream facts has the measurements behind it):
//! - Entries are visited in pack order, so the reads are mostly one sequential scan that a chunked reader serves
//!   cheaply. Each entry's compressed bytes are fetched with one read. An OFS delta's base is an earlier entry; a
//!   REF delta's base is found by id among base objects and already resolved deltas.
//! - Before the scan the children of every entry are counted. Inflated objects that still have children to come
//!   are kept in an LRU cache bounded by [`ResolveOptions::cache_bytes`]; an object is dropped as soon as its last
//!   child is resolved. Objects without pending children are never cached.
//! - On a cache miss the base is rebuilt from its delta chain (iteratively, down to the nearest cached object or
//!   base entry; chains deeper than [`MAX_CHAIN_DEPTH`] are refused).
//! - A REF delta whose base is not known yet waits until an object with that id is resolved, then is resolved
//!   out of order (so a pack that lists deltas before their bases still works, in one linear pass). Anything still
//!   waiting at the end (a thin pack's missing base, or a REF cycle such as A→B→A, which can never produce the
//!   awaited id) is reported as "delta base ... not found in pack".
//! - Objects bigger than [`ResolveOptions::big_object_bytes`] are never held whole. They are hashed while being
//!   streamed: the delta is inflated in chunks and decoded with [`DeltaDecoder`]; copies read the base through a
//!   forward-only stream of the base object (inflated from the pack, or itself streamed through its own delta),
//!   which keeps a window of its latest output and restarts from the start when a copy reaches further back. A
//!   chain of big objects is streamed as a stack of such levels, and the big descendants of the object being
//!   streamed ride along on the same pass, so a linear history of a big file costs one pass per branch, not one
//!   per version. Memory stays bounded; time can degrade on pathological deltas that copy backwards a lot (each
//!   such copy replays the base from its start).
//!
//! Memory: about `cache_bytes`, plus at most four buffers of at most `big_object_bytes` in flight (a base, a
//! compressed delta, the inflated delta, its result), plus for a streamed chain roughly 150 KiB per level and a
//! window of 64 KiB to 1 MiB per level (8 MiB in all at most; at most [`MAX_STREAM_LEVELS`] levels), plus about
//! 10 bytes per entry and the bookkeeping of REF deltas waiting for their base. Time is proportional to the bytes
//! the deltas produce (which a hostile delta can make large with little input, as with git itself).

use crate::delta::{self, DeltaDecoder, DeltaError, DeltaStep};
use crate::entry::{Entry, EntryKind};
use crate::oid::{hash_object, ObjectHasher, ObjectId, ObjectKind};
use bytes::Bytes;
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Longest delta chain rebuilt (git itself never writes chains deeper than 4095).
pub const MAX_CHAIN_DEPTH: usize = 10_000;
/// Most levels streamed at once for objects bigger than [`ResolveOptions::big_object_bytes`].
pub const MAX_STREAM_LEVELS: usize = 256;
/// Bytes of compressed data fetched per read when an entry is streamed.
const READ_CHUNK: u64 = 64 * 1024;
/// Bytes a streamed level produces per step (its window must hold at least twice this).
const PRODUCE_CHUNK: usize = 32 * 1024;
/// Size of the buffer a streamed delta is inflated into.
const DELTA_BUF: usize = 32 * 1024;
/// Smallest window of recent output a streamed base keeps (copies reaching further back restart it).
const MIN_WINDOW: usize = 2 * PRODUCE_CHUNK;
/// Largest window of recent output a streamed base keeps.
const MAX_WINDOW: usize = 1024 * 1024;
/// Window bytes shared by the levels of one stream.
const WINDOW_BUDGET: usize = 8 * 1024 * 1024;
/// zlib cannot expand data by more than about 1032:1; inflated buffers are never reserved beyond that.
const MAX_INFLATE_RATIO: u64 = 1032;
/// Marks an entry without a known base (a base object, or a REF delta whose base is not resolved yet).
const NO_PARENT: u32 = u32::MAX;

/// Error type of [`PackSource`] reads.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Random access to the bytes of a pack, for the resolver to read entries back.
#[async_trait::async_trait]
pub trait PackSource: Send + Sync {
    /// Exactly `len` bytes of the pack at `offset`.
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, SourceError>;
}

/// A whole pack held in memory (small packs).
#[async_trait::async_trait]
impl PackSource for Bytes {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, SourceError> {
        let range = usize::try_from(offset)
            .ok()
            .zip(
                offset
                    .checked_add(len)
                    .and_then(|end| usize::try_from(end).ok()),
            )
            .filter(|&(_, end)| end <= self.len());
        match range {
            Some((start, end)) => Ok(self.slice(start..end)),
            None => Err(format!(
                "cannot read {len} bytes at offset {offset} of a pack of {} bytes",
                self.len()
            )
            .into()),
        }
    }
}

/// Limits for [`resolve_deltas`], and an optional progress observer.
#[derive(Clone, Copy)]
pub struct ResolveOptions<'a> {
    /// Most bytes of inflated objects kept in the base cache.
    pub cache_bytes: u64,
    /// Objects (and deltas, and compressed entries) bigger than this are streamed, never held whole.
    pub big_object_bytes: u64,
    /// Called with (entries scanned, total entries) every [`PROGRESS_INTERVAL`] entries of the scan.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Send + Sync)>,
}

impl std::fmt::Debug for ResolveOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveOptions")
            .field("cache_bytes", &self.cache_bytes)
            .field("big_object_bytes", &self.big_object_bytes)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// How many entries the scan covers between two calls of [`ResolveOptions::progress`].
pub const PROGRESS_INTERVAL: usize = 4096;

/// What [`resolve_deltas`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveStats {
    /// The kind of every entry's object, in entry order (for a delta: the kind of the object it yields).
    pub kinds: Vec<ObjectKind>,
    /// Delta entries resolved.
    pub deltas: u64,
    /// Non-delta entries whose id the first pass had not filled in, hashed here.
    pub bases_hashed: u64,
    /// Deltas whose base was found in the cache.
    pub cache_hits: u64,
    /// Deltas whose base had to be read or rebuilt from the pack.
    pub cache_misses: u64,
    /// Intermediate objects rebuilt from their delta chain after a cache miss.
    pub rebuilt: u64,
    /// Objects bigger than the limit whose id was computed by streaming.
    pub streamed: u64,
    /// Times a streamed base had to start over because a copy reached behind its window.
    pub stream_restarts: u64,
    /// Deltas resolved after entries that follow them, because their base (or their base's base...) is a REF
    /// delta's base that comes later in the pack.
    pub deferred: u64,
    /// Reads issued to the [`PackSource`].
    pub reads: u64,
    /// Bytes those reads returned.
    pub bytes_read: u64,
    /// Most bytes the base cache ever held.
    pub peak_cache_bytes: u64,
    /// Longest delta chain walked to rebuild an object.
    pub longest_chain: u64,
}

/// Why delta resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The pack source failed.
    #[error("reading {len} bytes of the pack at offset {offset}: {source}")]
    Read {
        /// Where the read started.
        offset: u64,
        /// How many bytes were asked for.
        len: u64,
        /// What went wrong.
        #[source]
        source: SourceError,
    },
    /// The pack source returned another number of bytes than asked for.
    #[error("reading {expected} bytes of the pack at offset {offset} returned {actual}")]
    ShortRead {
        /// Where the read started.
        offset: u64,
        /// How many bytes were asked for.
        expected: u64,
        /// How many came back.
        actual: u64,
    },
    /// A REF delta's base is neither in the pack nor producible from it.
    #[error("pack entry at offset {offset}: delta base {base} not found in pack (thin pack?)")]
    MissingBase {
        /// Offset of the delta entry.
        offset: u64,
        /// The base it names.
        base: ObjectId,
    },
    /// Something is wrong with one entry.
    #[error("pack entry at offset {offset}: {problem}")]
    Entry {
        /// Offset of the entry.
        offset: u64,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// More entries than the resolver's 32-bit indices can address.
    #[error("pack has {0} entries, more than delta resolution supports")]
    TooManyEntries(usize),
}

/// What is wrong with one pack entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// Entries must be given in pack order.
    #[error("entries are not in pack order")]
    OutOfOrder,
    /// The recorded offsets and length do not describe a zlib stream inside the entry.
    #[error("inconsistent entry bounds (data at {data_offset}, entry length {packed_len})")]
    BadBounds {
        /// Recorded start of the zlib stream.
        data_offset: u64,
        /// Recorded entry length.
        packed_len: u64,
    },
    /// A non-delta entry whose two recorded sizes differ.
    #[error("object size {size} and result size {result_size} differ")]
    BadSizes {
        /// Recorded inflated size.
        size: u64,
        /// Recorded object size.
        result_size: u64,
    },
    /// An OFS delta's base offset is not the start of an earlier entry.
    #[error("delta base offset {0} is not the start of an earlier entry")]
    BadBaseOffset(u64),
    /// The zlib stream is corrupt.
    #[error("corrupt zlib stream ({0})")]
    Zlib(&'static str),
    /// The zlib stream inflates to more bytes than the entry declares.
    #[error("inflates to more than the {declared} bytes its header declares")]
    InflatedTooLong {
        /// Size from the entry header.
        declared: u64,
    },
    /// The zlib stream inflates to fewer bytes than the entry declares.
    #[error("inflates to {actual} bytes, but its header declares {declared}")]
    InflatedTooShort {
        /// Size from the entry header.
        declared: u64,
        /// Bytes the stream produced.
        actual: u64,
    },
    /// The zlib stream ends before the entry does.
    #[error("zlib stream ends before the entry's last byte")]
    TrailingBytes,
    /// The delta is invalid or does not fit its base.
    #[error("{0}")]
    Delta(#[from] DeltaError),
    /// The delta's header disagrees with the result size the first pass recorded.
    #[error("delta yields {header} bytes, but the first pass recorded {recorded}")]
    ResultSizeMismatch {
        /// Result size in the delta header.
        header: u64,
        /// Result size recorded in the entry.
        recorded: u64,
    },
    /// The delta chain is deeper than [`MAX_CHAIN_DEPTH`].
    #[error("delta chain deeper than {0}")]
    ChainTooDeep(usize),
    /// Too many objects bigger than the memory limit would have to be streamed through each other.
    #[error("delta chain of more than {MAX_STREAM_LEVELS} objects too big to hold in memory")]
    StreamTooDeep,
    /// A streamed base object ended before a copy from it was satisfied.
    #[error("delta base ended early")]
    BaseEndedEarly,
    /// The entry could not be resolved although no missing base explains it.
    #[error("delta could not be resolved")]
    Unresolved,
}

/// Computes the id of every delta entry of a pack (and of any base entry whose id is missing), reading entries
/// back from `source` within the limits of `options`. `entries` must be the whole pack, in pack order; ids
/// already set on delta entries are ignored and recomputed.
pub async fn resolve_deltas(
    entries: &mut [Entry],
    source: &dyn PackSource,
    options: &ResolveOptions<'_>,
) -> Result<ResolveStats, ResolveError> {
    resolve_with_depth(entries, source, options, MAX_CHAIN_DEPTH).await
}

/// [`resolve_deltas`] with another chain depth limit (tests use a small one).
async fn resolve_with_depth(
    entries: &mut [Entry],
    source: &dyn PackSource,
    options: &ResolveOptions<'_>,
    max_chain: usize,
) -> Result<ResolveStats, ResolveError> {
    let mut resolver = Resolver::new(entries, source, options, max_chain)?;
    resolver.run(options.progress).await?;
    resolver.stats.kinds = resolver.kinds;
    resolver.stats.peak_cache_bytes = resolver.cache.peak;
    Ok(resolver.stats)
}

fn entry_error(entry: &Entry, problem: impl Into<EntryProblem>) -> ResolveError {
    ResolveError::Entry {
        offset: entry.offset,
        problem: problem.into(),
    }
}

/// End of an entry (offset just past its last byte); validated by [`Resolver::new`].
fn entry_end(entry: &Entry) -> u64 {
    entry.offset.saturating_add(entry.packed_len)
}

fn as_index(i: usize) -> u32 {
    // `Resolver::new` refuses packs with `NO_PARENT` or more entries, so every index fits.
    i as u32
}

/// The state of one run of [`resolve_deltas`].
struct Resolver<'a> {
    entries: &'a mut [Entry],
    source: &'a dyn PackSource,
    big: u64,
    max_chain: usize,
    /// The base entry of each delta, `NO_PARENT` when not known (yet).
    parent: Vec<u32>,
    /// Children of each entry not resolved yet.
    pending: Vec<u32>,
    kinds: Vec<ObjectKind>,
    /// REF deltas whose base id is not known yet, by that id.
    waiting_for_oid: HashMap<ObjectId, Vec<u32>>,
    /// Deltas visited while their (known) base entry was not resolved yet, by that entry.
    waiting_for_entry: HashMap<u32, Vec<u32>>,
    /// Children bigger than the limit of each entry bigger than the limit (to stream them in one pass).
    big_children: HashMap<u32, Vec<u32>>,
    /// Deltas that became resolvable behind the scan.
    ready: Vec<u32>,
    scan_pos: u32,
    cache: Cache,
    inflater: EntryInflater,
    stats: ResolveStats,
}

/// How far a rebuild has got: an object in memory, or a stack of streamed levels.
enum Built {
    Memory(Arc<Vec<u8>>),
    Stream(Vec<Level>),
}

impl<'a> Resolver<'a> {
    fn new(
        entries: &'a mut [Entry],
        source: &'a dyn PackSource,
        options: &ResolveOptions<'_>,
        max_chain: usize,
    ) -> Result<Self, ResolveError> {
        let n = entries.len();
        if n >= NO_PARENT as usize {
            return Err(ResolveError::TooManyEntries(n));
        }
        // Delta ids are (re)computed from scratch: a delta counts as resolved only once this run produced it.
        for e in entries.iter_mut().filter(|e| e.is_delta()) {
            e.oid = None;
        }
        let mut kinds = Vec::with_capacity(n);
        let mut previous_end = 0;
        for (i, e) in entries.iter().enumerate() {
            let end = e.offset.checked_add(e.packed_len);
            if end.is_none_or(|end| e.data_offset <= e.offset || e.data_offset >= end) {
                return Err(entry_error(
                    e,
                    EntryProblem::BadBounds {
                        data_offset: e.data_offset,
                        packed_len: e.packed_len,
                    },
                ));
            }
            if i > 0 && e.offset < previous_end {
                return Err(entry_error(e, EntryProblem::OutOfOrder));
            }
            previous_end = entry_end(e);
            match e.kind {
                EntryKind::Base(kind) => {
                    if e.size != e.result_size {
                        return Err(entry_error(
                            e,
                            EntryProblem::BadSizes {
                                size: e.size,
                                result_size: e.result_size,
                            },
                        ));
                    }
                    kinds.push(kind);
                }
                // Replaced by the base's kind when the delta is resolved.
                _ => kinds.push(ObjectKind::Blob),
            }
        }
        let mut resolver = Resolver {
            parent: vec![NO_PARENT; n],
            pending: vec![0; n],
            kinds,
            waiting_for_oid: HashMap::new(),
            waiting_for_entry: HashMap::new(),
            big_children: HashMap::new(),
            ready: Vec::new(),
            scan_pos: 0,
            cache: Cache::new(options.cache_bytes),
            inflater: EntryInflater::new(),
            stats: ResolveStats::default(),
            big: options.big_object_bytes,
            max_chain,
            entries,
            source,
        };
        for i in 0..n {
            let e = &resolver.entries[i];
            match e.kind {
                EntryKind::Base(_) => {}
                EntryKind::OfsDelta { base_offset } => {
                    let j = resolver.entries.partition_point(|b| b.offset < base_offset);
                    if j >= i || resolver.entries[j].offset != base_offset {
                        return Err(entry_error(e, EntryProblem::BadBaseOffset(base_offset)));
                    }
                    resolver.attach(as_index(i), as_index(j));
                }
                EntryKind::RefDelta { base } => {
                    let waiting = resolver.waiting_for_oid.entry(base).or_default();
                    waiting.push(as_index(i));
                }
            }
        }
        // REF deltas on non-delta objects (whose ids the first pass computed) know their base now; the others
        // learn it when the object with that id is resolved.
        for j in 0..n {
            let Some(oid) = resolver.entries[j].oid else {
                continue;
            };
            if let Some(waiting) = resolver.waiting_for_oid.remove(&oid) {
                for w in waiting {
                    resolver.attach(w, as_index(j));
                }
            }
        }
        Ok(resolver)
    }

    /// Records that delta `child` applies to entry `base`.
    fn attach(&mut self, child: u32, base: u32) {
        self.parent[child as usize] = base;
        self.pending[base as usize] += 1;
        if self.is_big(child) && self.is_big(base) {
            self.big_children.entry(base).or_default().push(child);
        }
    }

    /// Whether an entry's object, delta data or compressed bytes exceed the in-memory limit.
    fn is_big(&self, i: u32) -> bool {
        let e = &self.entries[i as usize];
        e.size > self.big || e.result_size > self.big || entry_end(e) - e.data_offset > self.big
    }

    fn is_resolved(&self, i: u32) -> bool {
        self.entries[i as usize].oid.is_some()
    }

    async fn run(
        &mut self,
        progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
    ) -> Result<(), ResolveError> {
        let total = self.entries.len() as u64;
        for i in 0..self.entries.len() {
            if let Some(report) = progress.filter(|_| i % PROGRESS_INTERVAL == 0 && i > 0) {
                report(i as u64, total);
            }
            self.scan_pos = as_index(i);
            self.visit(as_index(i)).await?;
            while let Some(j) = self.ready.pop() {
                self.visit(j).await?;
            }
        }
        for (i, e) in self.entries.iter().enumerate() {
            if let (None, EntryKind::RefDelta { base }, NO_PARENT) = (e.oid, e.kind, self.parent[i])
            {
                return Err(ResolveError::MissingBase {
                    offset: e.offset,
                    base,
                });
            }
        }
        match self.entries.iter().find(|e| e.oid.is_none()) {
            Some(e) => Err(entry_error(e, EntryProblem::Unresolved)),
            None => Ok(()),
        }
    }

    /// Resolves entry `i` if it can be now; otherwise leaves it for when its base is resolved.
    async fn visit(&mut self, i: u32) -> Result<(), ResolveError> {
        let idx = i as usize;
        if self.is_resolved(i) {
            return self.preload(i).await;
        }
        let parent = self.parent[idx];
        if self.entries[idx].is_delta() {
            if parent == NO_PARENT {
                // A REF delta whose base id is unknown: `resolved` queues it once an object with that id exists.
                return Ok(());
            }
            if !self.is_resolved(parent) {
                self.waiting_for_entry.entry(parent).or_default().push(i);
                return Ok(());
            }
        }
        self.resolve(i).await
    }

    /// Caches a non-delta object that has children to come while the scan passes it (a sequential read now
    /// saves a random one later).
    async fn preload(&mut self, i: u32) -> Result<(), ResolveError> {
        let e = &self.entries[i as usize];
        if e.is_delta()
            || self.pending[i as usize] == 0
            || self.is_big(i)
            || e.size > self.cache.limit
        {
            return Ok(());
        }
        if self.cache.contains(i) {
            return Ok(());
        }
        let data = self.read_whole(i).await?;
        self.cache.insert(i, Arc::new(data));
        Ok(())
    }

    /// Computes the id of unresolved entry `i`, whose base (if any) is resolved.
    async fn resolve(&mut self, i: u32) -> Result<(), ResolveError> {
        let chain = self.chain(i)?;
        let root = *chain.last().unwrap_or(&i);
        if chain.len() > 1 {
            if self.cache.contains(self.parent[i as usize]) {
                self.stats.cache_hits += 1;
            } else {
                self.stats.cache_misses += 1;
            }
        }
        let path = if self.is_big(i) {
            self.big_path(i, chain.len())
        } else {
            Vec::new()
        };
        let window = (WINDOW_BUDGET / (chain.len() + path.len())).clamp(MIN_WINDOW, MAX_WINDOW);

        let mut built = match self.cache.get(root) {
            Some(data) if root != i => Built::Memory(data),
            _ if self.is_big(root) => Built::Stream(vec![Level::inflate(
                &self.entries[root as usize],
                root,
                window,
            )]),
            _ => {
                let data = Arc::new(self.read_whole(root).await?);
                if root != i {
                    self.keep(root, &data);
                }
                Built::Memory(data)
            }
        };
        for &x in chain.iter().rev().skip(1) {
            built = self.extend(built, x, window).await?;
            if x != i {
                if let Built::Memory(data) = &built {
                    self.keep(x, data);
                }
            }
        }
        self.kinds[i as usize] = self.kinds[root as usize];
        match built {
            Built::Memory(data) => {
                let oid = hash_object(self.kinds[i as usize], &data);
                self.resolved(i, oid, Some(data));
            }
            Built::Stream(levels) => self.stream_hash(levels, i, &path, window).await?,
        }
        Ok(())
    }

    /// `i`, its base, its base's base... down to the nearest cached object or non-delta entry.
    fn chain(&mut self, i: u32) -> Result<Vec<u32>, ResolveError> {
        let mut chain = vec![i];
        let mut x = i;
        while self.entries[x as usize].is_delta() && (x == i || !self.cache.contains(x)) {
            // Resolved deltas, and the delta being resolved, always have a base.
            x = match self.parent.get(x as usize) {
                Some(&p) if p != NO_PARENT => p,
                _ => {
                    return Err(entry_error(
                        &self.entries[x as usize],
                        EntryProblem::Unresolved,
                    ))
                }
            };
            chain.push(x);
            if chain.len() > self.max_chain + 1 {
                return Err(entry_error(
                    &self.entries[i as usize],
                    EntryProblem::ChainTooDeep(self.max_chain),
                ));
            }
        }
        self.stats.longest_chain = self.stats.longest_chain.max(chain.len() as u64 - 1);
        Ok(chain)
    }

    /// Unresolved big descendants of big entry `i` along one line (first child each time), so that streaming `i`
    /// hashes them too.
    fn big_path(&self, i: u32, chain_len: usize) -> Vec<u32> {
        let mut path = Vec::new();
        let mut x = i;
        while chain_len + path.len() < MAX_STREAM_LEVELS {
            let next = self
                .big_children
                .get(&x)
                .and_then(|children| children.iter().copied().find(|&c| !self.is_resolved(c)));
            match next {
                Some(c) => {
                    path.push(c);
                    x = c;
                }
                None => break,
            }
        }
        path
    }

    /// Applies delta entry `x` to what has been built so far.
    async fn extend(&mut self, built: Built, x: u32, window: usize) -> Result<Built, ResolveError> {
        let small = !self.is_big(x);
        let mut levels = match built {
            Built::Memory(base) if small => {
                let delta = self.read_whole(x).await?;
                let e = &self.entries[x as usize];
                let result = delta::apply(&base, &delta).map_err(|err| entry_error(e, err))?;
                if result.len() as u64 != e.result_size {
                    return Err(entry_error(
                        e,
                        EntryProblem::ResultSizeMismatch {
                            header: result.len() as u64,
                            recorded: e.result_size,
                        },
                    ));
                }
                return Ok(Built::Memory(Arc::new(result)));
            }
            Built::Memory(base) => vec![Level::memory(base)],
            Built::Stream(levels) => levels,
        };
        if levels.len() >= MAX_STREAM_LEVELS {
            return Err(entry_error(
                &self.entries[x as usize],
                EntryProblem::StreamTooDeep,
            ));
        }
        levels.push(Level::delta(&self.entries[x as usize], x, window));
        if !small {
            return Ok(Built::Stream(levels));
        }
        // A small object on top of a streamed one: stream it into memory.
        let top = levels.len() - 1;
        levels[top].out = Ring::new(0);
        levels[top].collect = Some(Vec::new());
        self.drive_all(&mut levels).await?;
        let data = levels[top].collect.take().unwrap_or_default();
        Ok(Built::Memory(Arc::new(data)))
    }

    /// Streams big object `i` (the top of `levels`) and the big descendants in `path`, hashing each.
    async fn stream_hash(
        &mut self,
        mut levels: Vec<Level>,
        i: u32,
        path: &[u32],
        window: usize,
    ) -> Result<(), ResolveError> {
        let first = levels.len() - 1;
        for &c in path {
            levels.push(Level::delta(&self.entries[c as usize], c, window));
        }
        let top = levels.len() - 1;
        levels[top].out = Ring::new(0);
        let kind = self.kinds[i as usize];
        for level in &mut levels[first..] {
            level.hasher = Some(ObjectHasher::new(kind, level.size));
        }
        self.drive_all(&mut levels).await?;
        for level in &mut levels[first..] {
            if let Some(hasher) = level.hasher.take() {
                let x = level.entry;
                self.kinds[x as usize] = kind;
                self.stats.streamed += 1;
                self.resolved(x, hasher.finish(), None);
            }
        }
        Ok(())
    }

    /// Runs every level of a stream to its end, the top first: each object is hashed exactly once, and every
    /// entry's zlib stream and delta are verified to their last byte even where no copy reached.
    async fn drive_all(&mut self, levels: &mut [Level]) -> Result<(), ResolveError> {
        for at in (0..levels.len()).rev() {
            self.drive(levels, at).await?;
        }
        Ok(())
    }

    /// Runs level `top` of a stream to its end, pulling its bases forward (or restarting them) as its copies
    /// require.
    async fn drive(&mut self, levels: &mut [Level], top: usize) -> Result<(), ResolveError> {
        let mut at = top;
        loop {
            match step(levels, at, &mut self.stats.stream_restarts)? {
                Step::Produced => {
                    if at < top {
                        at += 1;
                    }
                }
                Step::NeedBase => match at.checked_sub(1) {
                    Some(below) => at = below,
                    None => return Err(level_error(&levels[at], EntryProblem::BaseEndedEarly)),
                },
                Step::NeedInput { offset, len } => {
                    let data = self.read(offset, len).await?;
                    levels[at].feed(data);
                }
                Step::End => {
                    if at == top {
                        return Ok(());
                    }
                    return Err(level_error(&levels[at + 1], EntryProblem::BaseEndedEarly));
                }
            }
        }
    }

    /// Caches a rebuilt object if it still has children to come.
    fn keep(&mut self, x: u32, data: &Arc<Vec<u8>>) {
        self.stats.rebuilt += u64::from(self.entries[x as usize].is_delta());
        if self.pending[x as usize] > 0 {
            self.cache.insert(x, Arc::clone(data));
        }
    }

    /// Records the id of entry `x` and wakes whatever waited for it.
    fn resolved(&mut self, x: u32, oid: ObjectId, data: Option<Arc<Vec<u8>>>) {
        let idx = x as usize;
        if self.entries[idx].is_delta() {
            self.stats.deltas += 1;
        } else {
            self.stats.bases_hashed += 1;
        }
        if x < self.scan_pos {
            self.stats.deferred += 1;
        }
        self.entries[idx].oid = Some(oid);
        for w in self.waiting_for_oid.remove(&oid).unwrap_or_default() {
            self.attach(w, x);
            if w <= self.scan_pos {
                self.ready.push(w);
            }
        }
        if let Some(waiting) = self.waiting_for_entry.remove(&x) {
            self.ready.extend(waiting);
        }
        let parent = self.parent[idx];
        if parent != NO_PARENT {
            let p = parent as usize;
            self.pending[p] = self.pending[p].saturating_sub(1);
            if self.pending[p] == 0 {
                self.cache.remove(parent);
                self.big_children.remove(&parent);
            }
        }
        if let Some(data) = data {
            if self.pending[idx] > 0 {
                self.cache.insert(x, data);
            }
        }
    }

    /// Reads and inflates a whole entry that is not big.
    async fn read_whole(&mut self, i: u32) -> Result<Vec<u8>, ResolveError> {
        let e = &self.entries[i as usize];
        let (start, size) = (e.data_offset, e.size);
        let data = self.read(start, entry_end(e) - start).await?;
        let e = &self.entries[i as usize];
        self.inflater
            .inflate_whole(&data, size)
            .map_err(|p| entry_error(e, p))
    }

    async fn read(&mut self, offset: u64, len: u64) -> Result<Bytes, ResolveError> {
        let data = self
            .source
            .read_at(offset, len)
            .await
            .map_err(|source| ResolveError::Read {
                offset,
                len,
                source,
            })?;
        if data.len() as u64 != len {
            return Err(ResolveError::ShortRead {
                offset,
                expected: len,
                actual: data.len() as u64,
            });
        }
        self.stats.reads += 1;
        self.stats.bytes_read += len;
        Ok(data)
    }
}

/// LRU cache of inflated objects, bounded in bytes.
struct Cache {
    limit: u64,
    used: u64,
    peak: u64,
    tick: u64,
    objects: HashMap<u32, (Arc<Vec<u8>>, u64)>,
    by_age: BTreeMap<u64, u32>,
}

impl Cache {
    fn new(limit: u64) -> Self {
        Cache {
            limit,
            used: 0,
            peak: 0,
            tick: 0,
            objects: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    fn contains(&self, i: u32) -> bool {
        self.objects.contains_key(&i)
    }

    /// The object, marked as just used.
    fn get(&mut self, i: u32) -> Option<Arc<Vec<u8>>> {
        let (data, age) = self.objects.get_mut(&i)?;
        self.by_age.remove(age);
        self.tick += 1;
        *age = self.tick;
        self.by_age.insert(self.tick, i);
        Some(Arc::clone(data))
    }

    /// Adds an object, evicting the least recently used ones to stay within the limit.
    fn insert(&mut self, i: u32, data: Arc<Vec<u8>>) {
        let len = data.len() as u64;
        if len > self.limit {
            return;
        }
        self.remove(i);
        while self.used + len > self.limit {
            match self.by_age.first_key_value() {
                Some((_, &oldest)) => self.remove(oldest),
                None => break,
            }
        }
        self.tick += 1;
        self.by_age.insert(self.tick, i);
        self.objects.insert(i, (data, self.tick));
        self.used += len;
        self.peak = self.peak.max(self.used);
    }

    fn remove(&mut self, i: u32) {
        if let Some((data, age)) = self.objects.remove(&i) {
            self.by_age.remove(&age);
            self.used -= data.len() as u64;
        }
    }
}

/// Inflates one entry's zlib stream, checking that it yields exactly the declared size and ends exactly where
/// the entry does.
struct EntryInflater {
    state: Box<InflateState>,
    expected: u64,
    produced: u64,
    ended: bool,
}

/// Progress of [`EntryInflater::inflate`].
struct Inflated {
    consumed: usize,
    written: usize,
}

impl EntryInflater {
    fn new() -> Self {
        EntryInflater {
            state: InflateState::new_boxed(DataFormat::Zlib),
            expected: 0,
            produced: 0,
            ended: false,
        }
    }

    /// Starts over for a stream that must inflate to `expected` bytes.
    fn reset(&mut self, expected: u64) {
        self.state.reset(DataFormat::Zlib);
        self.expected = expected;
        self.produced = 0;
        self.ended = false;
    }

    /// Inflates from `input` into `out`.
    fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<Inflated, EntryProblem> {
        if self.ended {
            return Ok(Inflated {
                consumed: 0,
                written: 0,
            });
        }
        let result = inflate(&mut self.state, input, out, MZFlush::None);
        match result.status {
            Ok(MZStatus::StreamEnd) => self.ended = true,
            // `Buf`: no progress possible without more input.
            Ok(_) | Err(MZError::Buf) => {}
            Err(_) => return Err(EntryProblem::Zlib("invalid data or checksum")),
        }
        self.produced += result.bytes_written as u64;
        if self.produced > self.expected {
            return Err(EntryProblem::InflatedTooLong {
                declared: self.expected,
            });
        }
        Ok(Inflated {
            consumed: result.bytes_consumed,
            written: result.bytes_written,
        })
    }

    /// Checks the end of the stream once its input is exhausted (`input_left`: entry bytes after it).
    fn finish(&self, input_left: bool) -> Result<(), EntryProblem> {
        if !self.ended {
            return Err(EntryProblem::Zlib("truncated"));
        }
        if input_left {
            return Err(EntryProblem::TrailingBytes);
        }
        if self.produced != self.expected {
            return Err(EntryProblem::InflatedTooShort {
                declared: self.expected,
                actual: self.produced,
            });
        }
        Ok(())
    }

    /// Inflates a whole zlib stream held in memory. The buffer starts no larger than zlib's maximum expansion of
    /// the real input and grows as output arrives; it never exceeds `expected + 1` bytes.
    fn inflate_whole(&mut self, data: &[u8], expected: u64) -> Result<Vec<u8>, EntryProblem> {
        self.reset(expected);
        let limit = expected.saturating_add(1);
        let first = limit.min(
            (data.len() as u64)
                .saturating_mul(MAX_INFLATE_RATIO)
                .saturating_add(64),
        );
        let mut out = vec![0; usize::try_from(first).unwrap_or(usize::MAX)];
        let (mut consumed, mut written) = (0, 0);
        while !self.ended {
            if written == out.len() {
                let grown = (out.len() as u64).saturating_mul(2).min(limit);
                out.resize(usize::try_from(grown).unwrap_or(usize::MAX), 0);
            }
            let step = self.inflate(&data[consumed..], &mut out[written..])?;
            consumed += step.consumed;
            written += step.written;
            if step.consumed == 0 && step.written == 0 && !self.ended {
                return Err(EntryProblem::Zlib("truncated"));
            }
        }
        self.finish(consumed < data.len())?;
        out.truncate(written);
        Ok(out)
    }
}

/// Compressed bytes of one entry, fetched from the pack in chunks and inflated as a stream.
struct StreamInput {
    start: u64,
    end: u64,
    next: u64,
    chunk: Bytes,
    pos: usize,
    inflater: EntryInflater,
}

/// Result of [`StreamInput::inflate`].
enum Pull {
    Wrote(usize),
    NeedInput { offset: u64, len: u64 },
    Ended,
}

impl StreamInput {
    fn new(e: &Entry) -> Self {
        let mut inflater = EntryInflater::new();
        inflater.reset(e.size);
        StreamInput {
            start: e.data_offset,
            end: entry_end(e),
            next: e.data_offset,
            chunk: Bytes::new(),
            pos: 0,
            inflater,
        }
    }

    fn restart(&mut self) {
        self.next = self.start;
        self.chunk = Bytes::new();
        self.pos = 0;
        let expected = self.inflater.expected;
        self.inflater.reset(expected);
    }

    fn feed(&mut self, data: Bytes) {
        self.next += data.len() as u64;
        self.chunk = data;
        self.pos = 0;
    }

    /// Inflates into `out`: at least one byte, or a request for more input, or the verified end.
    fn inflate(&mut self, out: &mut [u8]) -> Result<Pull, EntryProblem> {
        loop {
            if self.inflater.ended {
                self.inflater
                    .finish(self.pos < self.chunk.len() || self.next < self.end)?;
                return Ok(Pull::Ended);
            }
            let step = self.inflater.inflate(&self.chunk[self.pos..], out)?;
            self.pos += step.consumed;
            if step.written > 0 {
                return Ok(Pull::Wrote(step.written));
            }
            if self.inflater.ended {
                continue;
            }
            if self.pos == self.chunk.len() {
                if self.next < self.end {
                    return Ok(Pull::NeedInput {
                        offset: self.next,
                        len: READ_CHUNK.min(self.end - self.next),
                    });
                }
                return Err(EntryProblem::Zlib("truncated"));
            }
            if step.consumed == 0 {
                return Err(EntryProblem::Zlib("no progress"));
            }
        }
    }
}

/// Ring buffer of the latest bytes a level produced, addressed by absolute position in its output.
struct Ring {
    buf: Vec<u8>,
    cap: usize,
    /// Index in `buf` of the next byte to write once `buf` is full.
    write: usize,
    len: usize,
    /// Position, in the level's output, just past the newest byte.
    end: u64,
}

impl Ring {
    /// A ring keeping up to `cap` bytes (allocated as bytes arrive).
    fn new(cap: usize) -> Self {
        Ring {
            buf: Vec::new(),
            cap,
            write: 0,
            len: 0,
            end: 0,
        }
    }

    fn start(&self) -> u64 {
        self.end - self.len as u64
    }

    fn clear(&mut self) {
        self.write = 0;
        self.len = 0;
        self.end = 0;
        self.buf.clear();
    }

    fn push(&mut self, data: &[u8]) {
        self.end += data.len() as u64;
        let mut data = &data[data.len().saturating_sub(self.cap)..];
        while !data.is_empty() {
            let n = if self.buf.len() < self.cap {
                let n = data.len().min(self.cap - self.buf.len());
                self.buf.extend_from_slice(&data[..n]);
                n
            } else {
                let n = data.len().min(self.cap - self.write);
                self.buf[self.write..self.write + n].copy_from_slice(&data[..n]);
                n
            };
            self.write = (self.write + n) % self.cap;
            self.len = (self.len + n).min(self.cap);
            data = &data[n..];
        }
    }

    /// Up to `max` contiguous bytes starting at absolute position `pos` (`start() <= pos < end`).
    fn slice(&self, pos: u64, max: u64) -> &[u8] {
        let oldest = if self.buf.len() < self.cap {
            0
        } else {
            self.write
        };
        // `pos - start() < len <= cap`, so these fit in usize.
        let from = (oldest + (pos - self.start()) as usize) % self.cap.max(1);
        let available = (self.end - pos).min(max) as usize;
        let to = (from + available).min(self.buf.len());
        &self.buf[from..to]
    }
}

/// One object of a stream: how it is produced, and where its output goes.
struct Level {
    entry: u32,
    /// Pack offset of the entry, for error messages.
    offset: u64,
    /// Size of the object this level produces.
    size: u64,
    producer: Producer,
    /// The latest output, for the level above to copy from.
    out: Ring,
    hasher: Option<ObjectHasher>,
    /// Output bytes fed to `hasher` so far (output replayed after a restart is not hashed twice).
    hashed: u64,
    collect: Option<Vec<u8>>,
}

enum Producer {
    /// An object already in memory (only ever the lowest level).
    Memory(Arc<Vec<u8>>),
    /// A non-delta entry inflated from the pack.
    Inflate {
        input: StreamInput,
        scratch: Vec<u8>,
    },
    /// A delta entry applied to the level below.
    Delta(Box<DeltaProducer>),
}

struct DeltaProducer {
    input: StreamInput,
    /// Inflated delta bytes; `buf[start..end]` not decoded yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    decoder: DeltaDecoder,
    /// A copy instruction not finished yet: position in the base and bytes left.
    copy: Option<(u64, u64)>,
}

/// What one [`step`] of a level did.
enum Step {
    /// Produced at least one byte.
    Produced,
    /// Needs the level below to produce more first.
    NeedBase,
    /// Needs these pack bytes fed first.
    NeedInput { offset: u64, len: u64 },
    /// The level's object is complete and verified.
    End,
}

/// Where a copy's bytes are in a base level.
enum Access<'a> {
    Bytes(&'a [u8]),
    /// Not produced yet.
    Ahead,
    /// Already dropped from the window.
    Behind,
}

impl Level {
    fn new(entry: u32, offset: u64, size: u64, producer: Producer, window: usize) -> Self {
        Level {
            entry,
            offset,
            size,
            producer,
            out: Ring::new(window),
            hasher: None,
            hashed: 0,
            collect: None,
        }
    }

    fn memory(data: Arc<Vec<u8>>) -> Self {
        Level::new(NO_PARENT, 0, data.len() as u64, Producer::Memory(data), 0)
    }

    fn inflate(e: &Entry, entry: u32, window: usize) -> Self {
        let producer = Producer::Inflate {
            input: StreamInput::new(e),
            scratch: vec![0; PRODUCE_CHUNK],
        };
        Level::new(entry, e.offset, e.size, producer, window)
    }

    fn delta(e: &Entry, entry: u32, window: usize) -> Self {
        let producer = Producer::Delta(Box::new(DeltaProducer {
            input: StreamInput::new(e),
            buf: vec![0; DELTA_BUF],
            start: 0,
            end: 0,
            decoder: DeltaDecoder::new(),
            copy: None,
        }));
        Level::new(entry, e.offset, e.result_size, producer, window)
    }

    fn feed(&mut self, data: Bytes) {
        match &mut self.producer {
            Producer::Memory(_) => {}
            Producer::Inflate { input, .. } => input.feed(data),
            Producer::Delta(d) => d.input.feed(data),
        }
    }

    /// Starts producing the object again from its first byte.
    fn restart(&mut self) {
        match &mut self.producer {
            Producer::Memory(_) => return,
            Producer::Inflate { input, .. } => input.restart(),
            Producer::Delta(d) => {
                d.input.restart();
                d.decoder = DeltaDecoder::new();
                d.copy = None;
                d.start = 0;
                d.end = 0;
            }
        }
        self.out.clear();
    }

    /// Where `len` bytes at `pos` of this level's output are.
    fn access(&self, pos: u64, len: u64) -> Option<Access<'_>> {
        match &self.producer {
            Producer::Memory(data) => {
                let start = usize::try_from(pos).ok()?;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                data.get(start..end).map(Access::Bytes)
            }
            _ if pos < self.out.start() => Some(Access::Behind),
            _ if pos >= self.out.end => Some(Access::Ahead),
            _ => Some(Access::Bytes(self.out.slice(pos, len))),
        }
    }
}

fn level_error(level: &Level, problem: EntryProblem) -> ResolveError {
    ResolveError::Entry {
        offset: level.offset,
        problem,
    }
}

/// Hands freshly produced bytes to a level's window, hasher and collector.
fn emit(
    out: &mut Ring,
    hasher: &mut Option<ObjectHasher>,
    hashed: &mut u64,
    collect: &mut Option<Vec<u8>>,
    data: &[u8],
) {
    let pos = out.end;
    let end = pos + data.len() as u64;
    if end > *hashed {
        // Production is sequential, so `pos <= *hashed` and the new part is the tail.
        let fresh = &data[(*hashed - pos) as usize..];
        if let Some(hasher) = hasher {
            hasher.update(fresh);
        }
        if let Some(collect) = collect {
            collect.extend_from_slice(fresh);
        }
        *hashed = end;
    }
    out.push(data);
}

/// Lets level `at` of a stream produce up to about [`PRODUCE_CHUNK`] bytes.
fn step(levels: &mut [Level], at: usize, restarts: &mut u64) -> Result<Step, ResolveError> {
    let (below, rest) = levels.split_at_mut(at);
    let Some(level) = rest.first_mut() else {
        return Ok(Step::End);
    };
    let Level {
        offset,
        size,
        producer,
        out,
        hasher,
        hashed,
        collect,
        ..
    } = level;
    let offset = *offset;
    let fail = move |problem: EntryProblem| ResolveError::Entry { offset, problem };
    match producer {
        Producer::Memory(_) => Ok(Step::End),
        Producer::Inflate { input, scratch } => match input.inflate(scratch).map_err(fail)? {
            Pull::Wrote(n) => {
                emit(out, hasher, hashed, collect, &scratch[..n]);
                Ok(Step::Produced)
            }
            Pull::NeedInput { offset, len } => Ok(Step::NeedInput { offset, len }),
            Pull::Ended => Ok(Step::End),
        },
        Producer::Delta(d) => {
            let Some(base) = below.last_mut() else {
                return Err(fail(EntryProblem::BaseEndedEarly));
            };
            let mut made = 0;
            let blocked = |made: usize, step: Step| if made > 0 { Step::Produced } else { step };
            while made < PRODUCE_CHUNK {
                if let Some((pos, left)) = d.copy {
                    let want = left.min((PRODUCE_CHUNK - made) as u64);
                    let out_of_range = DeltaError::CopyOutOfRange {
                        offset: pos,
                        len: left,
                        base_size: base.size,
                    };
                    let access = base
                        .access(pos, want)
                        .ok_or_else(|| fail(out_of_range.into()))?;
                    match access {
                        Access::Bytes(bytes) => {
                            let n = bytes.len() as u64;
                            emit(out, hasher, hashed, collect, bytes);
                            made += bytes.len();
                            d.copy = (left > n).then_some((pos + n, left - n));
                        }
                        Access::Ahead => return Ok(blocked(made, Step::NeedBase)),
                        Access::Behind => {
                            base.restart();
                            *restarts += 1;
                            return Ok(blocked(made, Step::NeedBase));
                        }
                    }
                    continue;
                }
                if d.start < d.end {
                    let (used, decoded) = d
                        .decoder
                        .step(&d.buf[d.start..d.end])
                        .map_err(|e| fail(e.into()))?;
                    d.start += used;
                    match decoded {
                        DeltaStep::Header(header) => {
                            if header.base_size != base.size {
                                return Err(fail(EntryProblem::Delta(
                                    DeltaError::BaseSizeMismatch {
                                        declared: header.base_size,
                                        actual: base.size,
                                    },
                                )));
                            }
                            if header.result_size != *size {
                                return Err(fail(EntryProblem::ResultSizeMismatch {
                                    header: header.result_size,
                                    recorded: *size,
                                }));
                            }
                        }
                        DeltaStep::Copy { offset, len } => d.copy = Some((offset, len)),
                        DeltaStep::Insert(bytes) => {
                            emit(out, hasher, hashed, collect, bytes);
                            made += bytes.len();
                        }
                        DeltaStep::NeedInput => {}
                    }
                    continue;
                }
                match d.input.inflate(&mut d.buf).map_err(fail)? {
                    Pull::Wrote(n) => {
                        d.start = 0;
                        d.end = n;
                    }
                    Pull::NeedInput { offset, len } => {
                        return Ok(blocked(made, Step::NeedInput { offset, len }))
                    }
                    Pull::Ended => {
                        d.decoder.finish().map_err(|e| fail(e.into()))?;
                        return Ok(blocked(made, Step::End));
                    }
                }
            }
            Ok(Step::Produced)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::testutil::{encode, make, Op};
    use crate::pack::test_support::{
        entry_header, git, make_repo, ofs_distance, pack_repo, verify_pack, zlib, Rng,
    };
    use crate::pack::PackParser;

    const LOTS: u64 = 1 << 30;
    /// Everything in memory and cached.
    const ROOMY: ResolveOptions<'static> = ResolveOptions {
        cache_bytes: LOTS,
        big_object_bytes: LOTS,
        progress: None,
    };
    /// No cache at all: every base is rebuilt from its chain.
    const NO_CACHE: ResolveOptions<'static> = ResolveOptions {
        cache_bytes: 0,
        big_object_bytes: LOTS,
        progress: None,
    };
    /// A cache too small for most objects: constant eviction.
    const TINY_CACHE: ResolveOptions<'static> = ResolveOptions {
        cache_bytes: 3000,
        big_object_bytes: LOTS,
        progress: None,
    };
    /// Every object streamed.
    const STREAMED: ResolveOptions<'static> = ResolveOptions {
        cache_bytes: LOTS,
        big_object_bytes: 0,
        progress: None,
    };
    const MODES: [ResolveOptions<'static>; 4] = [ROOMY, NO_CACHE, TINY_CACHE, STREAMED];

    /// Hand-built packs (only the entries matter to the resolver; no pack header or trailer), with the ids the
    /// resolver should find, computed from the intended contents rather than by applying the deltas.
    #[derive(Clone)]
    struct TestPack {
        bytes: Vec<u8>,
        entries: Vec<Entry>,
        contents: Vec<Vec<u8>>,
        expected: Vec<(ObjectId, ObjectKind)>,
    }

    impl TestPack {
        fn new() -> Self {
            TestPack {
                bytes: b"PACK\0\0\0\x02\0\0\0\0".to_vec(),
                entries: Vec::new(),
                contents: Vec::new(),
                expected: Vec::new(),
            }
        }

        /// Appends an entry with raw zlib data and the sizes to record; returns its index.
        fn raw(
            &mut self,
            kind: EntryKind,
            size: u64,
            result_size: u64,
            zdata: &[u8],
            expected: (ObjectKind, &[u8]),
        ) -> usize {
            let offset = self.bytes.len() as u64;
            let type_num = match kind {
                EntryKind::Base(k) => k.pack_type(),
                EntryKind::OfsDelta { .. } => 6,
                EntryKind::RefDelta { .. } => 7,
            };
            let mut raw = entry_header(type_num, size);
            match kind {
                EntryKind::OfsDelta { base_offset } => {
                    raw.extend(ofs_distance(offset - base_offset))
                }
                EntryKind::RefDelta { base } => raw.extend_from_slice(&base.0),
                EntryKind::Base(_) => {}
            }
            let data_offset = offset + raw.len() as u64;
            raw.extend_from_slice(zdata);
            let oid = hash_object(expected.0, expected.1);
            self.entries.push(Entry {
                offset,
                data_offset,
                packed_len: raw.len() as u64,
                kind,
                size,
                result_size,
                crc32: crc32fast::hash(&raw),
                oid: matches!(kind, EntryKind::Base(_)).then_some(oid),
            });
            self.bytes.extend_from_slice(&raw);
            self.contents.push(expected.1.to_vec());
            self.expected.push((oid, expected.0));
            self.entries.len() - 1
        }

        fn base(&mut self, kind: ObjectKind, data: &[u8]) -> usize {
            let len = data.len() as u64;
            self.raw(EntryKind::Base(kind), len, len, &zlib(data), (kind, data))
        }

        /// An OFS delta on entry `base` yielding `target`.
        fn ofs(&mut self, base: usize, target: &[u8]) -> usize {
            let delta = make(&self.contents[base], target);
            self.ofs_raw(base, &delta, target)
        }

        /// An OFS delta on entry `base` with this delta data, expected to yield `target`.
        fn ofs_raw(&mut self, base: usize, delta: &[u8], target: &[u8]) -> usize {
            let kind = EntryKind::OfsDelta {
                base_offset: self.entries[base].offset,
            };
            let expected = (self.expected[base].1, target);
            self.raw(
                kind,
                delta.len() as u64,
                target.len() as u64,
                &zlib(delta),
                expected,
            )
        }

        /// A REF delta on the object `(kind, base)` (wherever it is) yielding `target`.
        fn ref_to(&mut self, kind: ObjectKind, base: &[u8], target: &[u8]) -> usize {
            let delta = make(base, target);
            let entry_kind = EntryKind::RefDelta {
                base: hash_object(kind, base),
            };
            self.raw(
                entry_kind,
                delta.len() as u64,
                target.len() as u64,
                &zlib(&delta),
                (kind, target),
            )
        }

        fn source(&self) -> Bytes {
            Bytes::from(self.bytes.clone())
        }

        async fn resolve(
            &self,
            options: ResolveOptions<'_>,
        ) -> Result<(Vec<Entry>, ResolveStats), ResolveError> {
            let mut entries = self.entries.clone();
            // Ids already on deltas are not trusted.
            for e in entries.iter_mut().filter(|e| e.is_delta()) {
                e.oid = Some(ObjectId::ZERO);
            }
            let stats = resolve_deltas(&mut entries, &self.source(), &options).await?;
            Ok((entries, stats))
        }

        /// Resolves in every mode and checks every id and kind.
        async fn check(&self) -> Vec<ResolveStats> {
            let mut all = Vec::new();
            for options in MODES {
                let (entries, stats) = self
                    .resolve(options)
                    .await
                    .unwrap_or_else(|e| panic!("{options:?}: {e}"));
                for (i, e) in entries.iter().enumerate() {
                    assert_eq!(
                        e.oid,
                        Some(self.expected[i].0),
                        "entry {i} with {options:?}"
                    );
                    assert_eq!(
                        stats.kinds[i], self.expected[i].1,
                        "kind of entry {i} with {options:?}"
                    );
                }
                let deltas = self.entries.iter().filter(|e| e.is_delta()).count() as u64;
                assert_eq!(stats.deltas, deltas);
                all.push(stats);
            }
            all
        }
    }

    /// Text that changes a little from version to version.
    fn version(n: usize) -> Vec<u8> {
        let mut s = String::new();
        for line in 0..200 {
            if line % 37 == n % 37 {
                s.push_str(&format!("line {line} edited in version {n}\n"));
            } else {
                s.push_str(&format!("line {line} stays the same in every version\n"));
            }
        }
        s.into_bytes()
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        (0..len).map(|_| rng.next() as u8).collect()
    }

    fn problem(err: ResolveError) -> (u64, EntryProblem) {
        match err {
            ResolveError::Entry { offset, problem } => (offset, problem),
            other => panic!("expected an entry error, got {other}"),
        }
    }

    #[tokio::test]
    async fn resolves_chains_and_branches_in_every_mode() {
        let mut p = TestPack::new();
        let commit = p.base(
            ObjectKind::Commit,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nfirst\n",
        );
        p.ofs(
            commit,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nsecond\n",
        );
        let tree = p.base(
            ObjectKind::Tree,
            &[b"100644 a\0".as_slice(), &[7; 20]].concat(),
        );
        p.ofs(tree, &[b"100644 b\0".as_slice(), &[7; 20]].concat());
        let mut prev = p.base(ObjectKind::Blob, &version(0));
        let first = prev;
        for n in 1..40 {
            prev = p.ofs(prev, &version(n));
            // Unrelated entries in between, and a second child of some objects.
            if n % 5 == 0 {
                p.base(ObjectKind::Blob, format!("filler {n}").as_bytes());
                p.ofs(prev, &version(1000 + n));
            }
        }
        p.ofs(first, b"");
        let tag = p.base(
            ObjectKind::Tag,
            b"object 0000000000000000000000000000000000000000\ntype commit\n",
        );
        p.ofs(
            tag,
            b"object 1111111111111111111111111111111111111111\ntype commit\n",
        );
        let stats = p.check().await;
        let [roomy, no_cache, tiny, streamed] = &stats[..] else {
            unreachable!()
        };
        assert_eq!(
            (roomy.cache_misses, roomy.rebuilt, roomy.streamed),
            (0, 0, 0)
        );
        assert!(roomy.cache_hits > 40);
        // The first version (whose last child is at the end), the current one and a branch point at most.
        assert!(
            roomy.peak_cache_bytes as usize <= 3 * version(0).len() + 100,
            "{roomy:?}"
        );
        assert_eq!((no_cache.cache_hits, no_cache.peak_cache_bytes), (0, 0));
        assert!(
            no_cache.longest_chain >= 39 && no_cache.rebuilt > 700,
            "{no_cache:?}"
        );
        assert!(
            tiny.peak_cache_bytes <= 3000 && tiny.cache_misses > 0,
            "{tiny:?}"
        );
        assert_eq!(streamed.streamed, roomy.deltas);
        // In memory, each entry is read once, in pack order.
        assert_eq!(
            roomy.reads as usize,
            p.entries.iter().filter(|e| e.is_delta()).count() + 4
        );
    }

    #[tokio::test]
    async fn base_entries_without_ids_are_hashed() {
        let mut p = TestPack::new();
        let blob = p.base(ObjectKind::Blob, &version(1));
        p.ofs(blob, &version(2));
        let big = p.base(ObjectKind::Blob, &pseudo_random(200_000, 3));
        let mut target = p.contents[big].clone();
        target[100..110].copy_from_slice(b"0123456789");
        p.ofs(big, &target);
        p.entries[blob].oid = None;
        p.entries[big].oid = None;
        for stats in p.check().await {
            assert_eq!(stats.bases_hashed, 2);
        }
    }

    #[tokio::test]
    async fn ref_deltas_wait_for_bases_that_come_later() {
        let mut p = TestPack::new();
        let v: Vec<Vec<u8>> = (0..5).map(version).collect();
        // v4 -> v3 -> v2 -> v1 -> v0 with every delta before its base, and the base object last.
        let d4 = p.ref_to(ObjectKind::Blob, &v[3], &v[4]);
        p.ofs(d4, &version(44));
        p.ref_to(ObjectKind::Blob, &v[2], &v[3]);
        p.ref_to(ObjectKind::Blob, &v[1], &v[2]);
        p.base(ObjectKind::Blob, b"unrelated");
        p.ref_to(ObjectKind::Blob, &v[0], &v[1]);
        p.base(ObjectKind::Blob, &v[0]);
        // A REF delta to an earlier delta, and one to an earlier base.
        p.ref_to(ObjectKind::Blob, &v[2], &version(22));
        p.ref_to(ObjectKind::Blob, &v[0], &version(11));
        for stats in p.check().await {
            assert_eq!(stats.deferred, 4, "{stats:?}");
        }
    }

    #[tokio::test]
    async fn missing_ref_base_is_reported_as_thin_pack() {
        let mut p = TestPack::new();
        p.base(ObjectKind::Blob, b"present");
        let d = p.ref_to(ObjectKind::Blob, b"absent", b"absent, changed");
        // A delta on the unresolvable one is stuck too, but the cause is reported.
        p.ofs(d, b"absent, changed twice");
        for options in MODES {
            let err = p.resolve(options).await.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ResolveError::MissingBase { offset, base }
                if offset == p.entries[d].offset && base == hash_object(ObjectKind::Blob, b"absent")));
            assert!(msg.contains("not found in pack (thin pack?)"), "{msg}");
        }
    }

    #[tokio::test]
    async fn ref_cycles_error_instead_of_looping() {
        let (a, b) = (version(1), version(2));
        let mut p = TestPack::new();
        p.ref_to(ObjectKind::Blob, &b, &a);
        p.ref_to(ObjectKind::Blob, &a, &b);
        let err = p.resolve(ROOMY).await.unwrap_err();
        assert!(
            matches!(err, ResolveError::MissingBase { offset, .. } if offset == p.entries[0].offset),
            "{err}"
        );
        // A delta on itself.
        let mut p = TestPack::new();
        let delta = make(&a, &a);
        let oid = hash_object(ObjectKind::Blob, &a);
        p.raw(
            EntryKind::RefDelta { base: oid },
            delta.len() as u64,
            a.len() as u64,
            &zlib(&delta),
            (ObjectKind::Blob, &a),
        );
        assert!(
            matches!(p.resolve(STREAMED).await, Err(ResolveError::MissingBase { base, .. }) if base == oid)
        );
    }

    /// Entry data, the size to declare for it, and a test of the problem resolving it must report.
    type BrokenCase = (Vec<u8>, u64, fn(&EntryProblem) -> bool);

    /// A pack with a base and one delta entry made of `delta` (declared result size `result_size`).
    fn with_delta(base: &[u8], delta: &[u8], result_size: u64) -> TestPack {
        let mut p = TestPack::new();
        let b = p.base(ObjectKind::Blob, base);
        let kind = EntryKind::OfsDelta {
            base_offset: p.entries[b].offset,
        };
        p.raw(
            kind,
            delta.len() as u64,
            result_size,
            &zlib(delta),
            (ObjectKind::Blob, b""),
        );
        p
    }

    /// Resolves `p` in memory and streamed; both must fail on entry `at` with a problem `check` accepts.
    async fn assert_fails(p: &TestPack, at: usize, check: impl Fn(&EntryProblem) -> bool) {
        for options in MODES {
            let (offset, problem) = problem(p.resolve(options).await.unwrap_err());
            assert_eq!(offset, p.entries[at].offset, "{options:?}: {problem}");
            assert!(check(&problem), "{options:?}: unexpected {problem:?}");
        }
    }

    #[tokio::test]
    async fn rejects_bad_deltas_in_memory_and_streamed() {
        let base = b"0123456789".as_slice();
        let cases: Vec<BrokenCase> = vec![
            (encode(10, 4, &[Op::Copy(8, 4)]), 4, |p| {
                matches!(
                    p,
                    EntryProblem::Delta(DeltaError::CopyOutOfRange {
                        offset: 8,
                        len: 4,
                        base_size: 10
                    })
                )
            }),
            (encode(11, 4, &[Op::Copy(0, 4)]), 4, |p| {
                matches!(
                    p,
                    EntryProblem::Delta(DeltaError::BaseSizeMismatch {
                        declared: 11,
                        actual: 10
                    })
                )
            }),
            (encode(10, 4, &[Op::Copy(0, 4)]), 5, |p| {
                matches!(
                    p,
                    EntryProblem::ResultSizeMismatch {
                        header: 4,
                        recorded: 5
                    }
                )
            }),
            (encode(10, 4, &[Op::Copy(0, 5)]), 4, |p| {
                matches!(
                    p,
                    EntryProblem::Delta(DeltaError::ResultTooLong { declared: 4 })
                )
            }),
            (encode(10, 6, &[Op::Copy(0, 5)]), 6, |p| {
                matches!(
                    p,
                    EntryProblem::Delta(DeltaError::ResultTooShort {
                        produced: 5,
                        declared: 6
                    })
                )
            }),
            ([&encode(10, 4, &[])[..], &[0]].concat(), 4, |p| {
                matches!(p, EntryProblem::Delta(DeltaError::ReservedInstruction))
            }),
            (
                encode(10, 4, &[Op::Insert(b"abcd".to_vec())])[..5].to_vec(),
                4,
                |p| matches!(p, EntryProblem::Delta(DeltaError::Truncated)),
            ),
            (
                encode(10, 4, &[Op::Copy(0x0102, 4)])[..3].to_vec(),
                4,
                |p| matches!(p, EntryProblem::Delta(DeltaError::Truncated)),
            ),
            (vec![0x8a], 4, |p| {
                matches!(p, EntryProblem::Delta(DeltaError::Truncated))
            }),
            (vec![0x80; 12], 4, |p| {
                matches!(p, EntryProblem::Delta(DeltaError::SizeOverflow))
            }),
        ];
        for (delta, result_size, check) in cases {
            let p = with_delta(base, &delta, result_size);
            assert_fails(&p, 1, check).await;
        }
    }

    /// The ways a zlib stream of `data` can be broken: (stream, declared size, expected problem).
    fn broken_streams(data: &[u8]) -> Vec<BrokenCase> {
        let good = zlib(data);
        let len = data.len() as u64;
        let mut garbage = good.clone();
        for b in &mut garbage[2..] {
            *b ^= 0x55;
        }
        let mut bad_checksum = good.clone();
        *bad_checksum.last_mut().unwrap() ^= 1;
        vec![
            (garbage, len, |p| matches!(p, EntryProblem::Zlib(_))),
            (b"not zlib at all".to_vec(), len, |p| {
                matches!(p, EntryProblem::Zlib(_))
            }),
            (bad_checksum, len, |p| matches!(p, EntryProblem::Zlib(_))),
            (good[..good.len() - 6].to_vec(), len, |p| {
                matches!(p, EntryProblem::Zlib("truncated"))
            }),
            (good.clone(), len - 1, |p| {
                matches!(p, EntryProblem::InflatedTooLong { .. })
            }),
            (good.clone(), len + 1, |p| {
                matches!(p, EntryProblem::InflatedTooShort { .. })
            }),
            ([&good[..], b"xx"].concat(), len, |p| {
                matches!(p, EntryProblem::TrailingBytes)
            }),
        ]
    }

    #[tokio::test]
    async fn rejects_bad_zlib_streams() {
        let data = version(3);
        let blob = EntryKind::Base(ObjectKind::Blob);
        let expected = (ObjectKind::Blob, data.as_slice());
        // The broken entry as the base of a delta (read to rebuild it).
        for (zdata, size, check) in broken_streams(&data) {
            let mut p = TestPack::new();
            p.raw(blob, size, size, &zdata, expected);
            p.ofs(0, &version(4));
            for options in MODES {
                let (offset, problem) = problem(p.resolve(options).await.unwrap_err());
                // Streamed, a wrong declared size shows first as the delta not fitting it.
                let misfit = matches!(
                    problem,
                    EntryProblem::Delta(DeltaError::BaseSizeMismatch { .. })
                ) && offset == p.entries[1].offset
                    && size != data.len() as u64;
                assert!(
                    misfit || (offset == p.entries[0].offset && check(&problem)),
                    "{options:?}: {problem:?}"
                );
            }
        }
        // The broken entry as a delta.
        let delta = make(&version(5), &data);
        for (zdata, size, check) in broken_streams(&delta) {
            let mut p = TestPack::new();
            let b = p.base(ObjectKind::Blob, &version(5));
            let kind = EntryKind::OfsDelta {
                base_offset: p.entries[b].offset,
            };
            p.raw(kind, size, data.len() as u64, &zdata, expected);
            assert_fails(&p, 1, check).await;
        }
        // A big declared size with a tiny stream: an error, not a huge allocation.
        let mut p = TestPack::new();
        p.raw(blob, 1 << 40, 1 << 40, &zlib(b"tiny"), expected);
        p.ofs(0, b"x");
        p.entries[0].oid = None;
        let options = ResolveOptions {
            cache_bytes: LOTS,
            big_object_bytes: u64::MAX,
            progress: None,
        };
        let (_, err) = problem(p.resolve(options).await.unwrap_err());
        assert!(
            matches!(err, EntryProblem::InflatedTooShort { declared, actual: 4 } if declared == 1 << 40)
        );
    }

    #[tokio::test]
    async fn rejects_inconsistent_entries() {
        let mut p = TestPack::new();
        p.base(ObjectKind::Blob, &version(1));
        p.ofs(0, &version(2));
        p.ofs(1, &version(3));
        let check = |mut entries: Vec<Entry>, at: usize, expect: EntryProblem| {
            let source = p.source();
            async move {
                let err = resolve_deltas(&mut entries, &source, &ROOMY)
                    .await
                    .unwrap_err();
                let (offset, problem) = problem(err);
                assert_eq!((offset, problem), (entries[at].offset, expect));
            }
        };
        let mut e = p.entries.clone();
        e.swap(1, 2);
        check(e, 2, EntryProblem::OutOfOrder).await;
        let mut e = p.entries.clone();
        e[2].kind = EntryKind::OfsDelta {
            base_offset: e[1].offset + 1,
        };
        check(e.clone(), 2, EntryProblem::BadBaseOffset(e[1].offset + 1)).await;
        let mut e = p.entries.clone();
        e[1].kind = EntryKind::OfsDelta {
            base_offset: e[2].offset,
        };
        check(e.clone(), 1, EntryProblem::BadBaseOffset(e[2].offset)).await;
        let mut e = p.entries.clone();
        e[1].kind = EntryKind::OfsDelta {
            base_offset: e[1].offset,
        };
        check(e.clone(), 1, EntryProblem::BadBaseOffset(e[1].offset)).await;
        let mut e = p.entries.clone();
        e[1].data_offset = e[1].offset + e[1].packed_len;
        let bounds = EntryProblem::BadBounds {
            data_offset: e[1].data_offset,
            packed_len: e[1].packed_len,
        };
        check(e, 1, bounds).await;
        let mut e = p.entries.clone();
        e[0].packed_len = u64::MAX;
        let bounds = EntryProblem::BadBounds {
            data_offset: e[0].data_offset,
            packed_len: u64::MAX,
        };
        check(e, 0, bounds).await;
        let mut e = p.entries.clone();
        e[0].result_size += 1;
        let sizes = EntryProblem::BadSizes {
            size: e[0].size,
            result_size: e[0].size + 1,
        };
        check(e, 0, sizes).await;
        // Entries pointing past the end of the pack.
        let mut e = p.entries.clone();
        let short = Bytes::from(p.bytes[..p.bytes.len() - 5].to_vec());
        let err = resolve_deltas(&mut e, &short, &ROOMY).await.unwrap_err();
        assert!(
            matches!(err, ResolveError::Read { offset, .. } if offset == p.entries[2].data_offset),
            "{err}"
        );
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    /// A source that returns one byte less than asked for.
    struct ShortSource(Bytes);

    #[async_trait::async_trait]
    impl PackSource for ShortSource {
        async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, SourceError> {
            let bytes = self.0.read_at(offset, len).await?;
            Ok(bytes.slice(..bytes.len() - 1))
        }
    }

    #[tokio::test]
    async fn short_reads_are_errors() {
        let mut p = TestPack::new();
        p.base(ObjectKind::Blob, &version(1));
        p.ofs(0, &version(2));
        for options in [ROOMY, STREAMED] {
            let mut entries = p.entries.clone();
            let err = resolve_deltas(&mut entries, &ShortSource(p.source()), &options)
                .await
                .unwrap_err();
            let offsets = [p.entries[0].data_offset, p.entries[1].data_offset];
            assert!(
                matches!(err, ResolveError::ShortRead { offset, .. } if offsets.contains(&offset)),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_chains_deeper_than_the_limit() {
        let mut p = TestPack::new();
        let mut prev = p.base(ObjectKind::Blob, &version(0));
        for n in 1..=30 {
            prev = p.ofs(prev, &version(n));
        }
        let mut entries = p.entries.clone();
        // With a cache, no chain is ever walked far.
        resolve_with_depth(&mut entries, &p.source(), &ROOMY, 5)
            .await
            .unwrap();
        let mut entries = p.entries.clone();
        let err = resolve_with_depth(&mut entries, &p.source(), &NO_CACHE, 29)
            .await
            .unwrap_err();
        assert_eq!(
            problem(err),
            (p.entries[30].offset, EntryProblem::ChainTooDeep(29))
        );
        assert_eq!(entries[29].oid, Some(p.expected[29].0));
        // Streamed levels have their own limit.
        let mut p = TestPack::new();
        let mut prev = p.base(ObjectKind::Blob, b"0");
        for n in 1..=MAX_STREAM_LEVELS + 5 {
            prev = p.ofs(prev, n.to_string().as_bytes());
        }
        let err = p.resolve(STREAMED).await.unwrap_err();
        let (offset, problem) = problem(err);
        assert_eq!(problem, EntryProblem::StreamTooDeep);
        assert_eq!(offset, p.entries[MAX_STREAM_LEVELS].offset);
        p.check_mode(ROOMY).await;
    }

    impl TestPack {
        async fn check_mode(&self, options: ResolveOptions<'_>) -> ResolveStats {
            let (entries, stats) = self.resolve(options).await.unwrap();
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(
                    e.oid,
                    Some(self.expected[i].0),
                    "entry {i} with {options:?}"
                );
            }
            stats
        }
    }

    /// Big objects (1 MiB limit): edits, backward copies that overflow the window, objects shrinking below the
    /// limit and growing above it, and branches.
    #[tokio::test]
    async fn streams_big_objects() {
        const MIB: usize = 1 << 20;
        let options = ResolveOptions {
            cache_bytes: 4 * MIB as u64,
            big_object_bytes: MIB as u64,
            progress: None,
        };
        let mut p = TestPack::new();
        let v0 = pseudo_random(3 * MIB + 12345, 1);
        let base = p.base(ObjectKind::Blob, &v0);
        // Small edits: copies in order.
        let mut v1 = v0.clone();
        v1[1000..1010].copy_from_slice(b"edit one..");
        v1.splice(2 * MIB..2 * MIB, b"inserted".iter().copied());
        let d1 = p.ofs(base, &v1);
        // 48 KiB blocks of v1 in reverse order: every copy goes backwards.
        let block = 48 * 1024;
        let blocks: Vec<(usize, usize)> = (0..v1.len())
            .step_by(block)
            .map(|s| (s, block.min(v1.len() - s)))
            .collect();
        let mut v2 = Vec::new();
        let mut ops = Vec::new();
        for &(s, n) in blocks.iter().rev() {
            v2.extend_from_slice(&v1[s..s + n]);
            ops.push(Op::Copy(s as u64, n as u64));
        }
        let d2 = p.ofs_raw(d1, &encode(v1.len() as u64, v2.len() as u64, &ops), &v2);
        // And reversed again on top: both streamed levels restart.
        let mut v3 = Vec::new();
        let mut ops = Vec::new();
        for s in (0..v2.len())
            .step_by(block)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let n = block.min(v2.len() - s);
            v3.extend_from_slice(&v2[s..s + n]);
            ops.push(Op::Copy(s as u64, n as u64));
        }
        p.ofs_raw(d2, &encode(v2.len() as u64, v3.len() as u64, &ops), &v3);
        // A second child of d1 (a branch), shrinking below the limit, with a child of its own.
        let mut v4 = v1.clone();
        v4[5..9].copy_from_slice(b"four");
        p.ofs(d1, &v4);
        let small = p.ofs(d1, &v1[MIB..MIB + 5000]);
        let grown = p.ofs(small, &[&v1[MIB..MIB + 4000], b"!".as_slice()].concat());
        // Growing from a small cached base to a big object (copying the same bytes many times).
        let mut ops = Vec::new();
        let mut big_again = Vec::new();
        for _ in 0..400 {
            ops.push(Op::Copy(0, 4001));
            big_again.extend_from_slice(&p.contents[grown]);
        }
        let g = p.ofs_raw(
            grown,
            &encode(4001, big_again.len() as u64, &ops),
            &big_again,
        );
        p.ofs(g, &big_again[..big_again.len() - 1]);
        // A big base entry without an id, and a big REF delta on it placed before it.
        let other = pseudo_random(MIB + 7, 2);
        let mut other2 = other.clone();
        other2[0] = !other2[0];
        p.ref_to(ObjectKind::Blob, &other, &other2);
        let ob = p.base(ObjectKind::Blob, &other);
        p.entries[ob].oid = None;

        let stats = p.check_mode(options).await;
        assert!(
            stats.streamed >= 6 && stats.stream_restarts >= 3,
            "{stats:?}"
        );
        assert_eq!(stats.bases_hashed, 1);
        // Far less than the objects themselves stay cached.
        assert!(stats.peak_cache_bytes < MIB as u64, "{stats:?}");
        let all = p.check().await;
        assert!(all[3].stream_restarts > 0);
    }

    /// `git verify-pack -v` must agree with every id and kind, in every mode.
    async fn check_against_git(
        pack_bytes: Vec<u8>,
        verified: &HashMap<u64, crate::pack::test_support::Verified>,
    ) {
        let mut parser = PackParser::new();
        parser.feed(&pack_bytes).unwrap();
        let parsed = parser.finish().unwrap();
        let source = Bytes::from(pack_bytes);
        assert!(parsed.entries.iter().filter(|e| e.is_delta()).count() > 50);
        for options in MODES {
            let mut entries = parsed.entries.clone();
            let stats = resolve_deltas(&mut entries, &source, &options)
                .await
                .unwrap();
            assert_eq!(entries.len(), verified.len());
            for (e, kind) in entries.iter().zip(&stats.kinds) {
                let v = &verified[&e.offset];
                assert_eq!(e.oid, Some(v.oid), "entry at {} with {options:?}", e.offset);
                assert_eq!(
                    kind.as_str(),
                    v.kind,
                    "entry at {} with {options:?}",
                    e.offset
                );
            }
        }
    }

    #[tokio::test]
    async fn matches_git_on_real_packs() {
        let dir = tempfile::tempdir().unwrap();
        let repo = make_repo(dir.path(), 80);
        for options in [
            &["--delta-base-offset", "--no-reuse-delta"][..],
            &["--no-reuse-delta", "--depth=100"],
        ] {
            let pack = pack_repo(&repo, &dir.path().join("out"), options);
            let verified = verify_pack(&pack);
            check_against_git(pack.pack, &verified).await;
        }
    }

    #[tokio::test]
    async fn real_thin_pack_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = make_repo(dir.path(), 40);
        let pack = git(
            &repo,
            &["pack-objects", "--stdout", "--thin", "--revs", "-q"],
            b"main\n^main~10\n",
        );
        let mut parser = PackParser::new();
        parser.feed(&pack).unwrap();
        let mut entries = parser.finish().unwrap().entries;
        assert!(entries
            .iter()
            .any(|e| matches!(e.kind, EntryKind::RefDelta { .. })));
        let err = resolve_deltas(&mut entries, &Bytes::from(pack), &ROOMY)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not found in pack (thin pack?)"),
            "{err}"
        );
    }

    /// Reads a pack file on demand, so that the measured process never holds the pack.
    struct FileSource(std::fs::File);

    #[async_trait::async_trait]
    impl PackSource for FileSource {
        async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, SourceError> {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0; usize::try_from(len)?];
            self.0.read_exact_at(&mut buf, offset)?;
            Ok(Bytes::from(buf))
        }
    }

    /// A line of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`).
    fn status_kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    const BLOB_CHUNK: usize = 64 * 1024;
    const BLOB_CHUNKS: usize = 800;

    /// Chunk `i` of version `v` (1-3) of a 50 MiB pseudo-random blob, generated on the fly. Version 2 edits two
    /// chunks of version 1 and inserts a short one; version 3 edits another chunk of version 2 and drops one.
    fn blob_chunk(v: u32, i: usize) -> Vec<u8> {
        let mut chunk = pseudo_random(BLOB_CHUNK, 0x5eed_0000 + i as u64);
        let edit = |chunk: &mut Vec<u8>, tag: &str| {
            chunk[1000..1000 + tag.len()].copy_from_slice(tag.as_bytes())
        };
        match (v, i) {
            (2.., 16) => edit(&mut chunk, "edited in version 2 at chunk 16"),
            (2.., 320) => edit(&mut chunk, "edited in version 2 at chunk 320"),
            (2.., 500) => chunk.extend_from_slice(b"a few bytes inserted in version 2"),
            (3, 100) => edit(&mut chunk, "edited in version 3 at chunk 100"),
            (3, 700) => chunk.clear(),
            _ => {}
        }
        chunk
    }

    /// The measured part of [`big_blob_is_streamed_in_bounded_memory`], run in a process of its own so that its
    /// peak memory is its own.
    #[tokio::test]
    #[ignore = "run by big_blob_is_streamed_in_bounded_memory in a child process"]
    async fn big_blob_child() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo.git");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "--bare"], b"");
        let mut import = std::process::Command::new("git")
            .args(["fast-import", "--quiet"])
            .current_dir(&repo)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = std::io::BufWriter::new(import.stdin.take().unwrap());
        for v in 1..=3u32 {
            let len: usize = (0..BLOB_CHUNKS).map(|i| blob_chunk(v, i).len()).sum();
            write!(
                stdin,
                "commit refs/heads/main\ncommitter A <a@example.com> {} +0000\ndata 3\nv{v}\nM 100644 inline big.bin\ndata {len}\n",
                1_700_000_000 + v
            )
            .unwrap();
            for i in 0..BLOB_CHUNKS {
                stdin.write_all(&blob_chunk(v, i)).unwrap();
            }
            stdin.write_all(b"\n").unwrap();
        }
        drop(stdin);
        assert!(import.wait().unwrap().success());
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let prefix = out.join("p");
        let args = [
            "pack-objects",
            "--all",
            "-q",
            "--no-reuse-delta",
            "--delta-base-offset",
            "--window=10",
        ];
        let name = git(
            &repo,
            &[&args[..], &[prefix.to_str().unwrap()]].concat(),
            b"",
        );
        let name = String::from_utf8(name).unwrap();
        let pack_path = out.join(format!("p-{}.pack", name.trim()));
        let fake = crate::pack::test_support::GitPack {
            pack: Vec::new(),
            pack_path: pack_path.clone(),
            idx: Vec::new(),
        };
        let verified = verify_pack(&fake);

        let mut parser = PackParser::new();
        let mut file = std::fs::File::open(&pack_path).unwrap();
        let mut buf = vec![0; BLOB_CHUNK];
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            parser.feed(&buf[..n]).unwrap();
        }
        drop(buf);
        let mut entries = parser.finish().unwrap().entries;
        let big = 8 << 20;
        let big_deltas = entries
            .iter()
            .filter(|e| e.is_delta() && e.result_size > big)
            .count();
        assert_eq!(
            big_deltas, 2,
            "git should store two versions as deltas: {verified:?}"
        );
        let source = FileSource(std::fs::File::open(&pack_path).unwrap());
        let options = ResolveOptions {
            cache_bytes: 16 << 20,
            big_object_bytes: big,
            progress: None,
        };
        let before_kib = status_kib("VmHWM");
        // Reset the peak to the current size: what follows is the resolver alone.
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let rss_kib = status_kib("VmRSS");
        let started = std::time::Instant::now();
        let stats = resolve_deltas(&mut entries, &source, &options)
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let peak_kib = status_kib("VmHWM");
        for e in &entries {
            assert_eq!(
                e.oid,
                Some(verified[&e.offset].oid),
                "entry at {}",
                e.offset
            );
        }
        assert_eq!(stats.streamed, 2, "{stats:?}");
        println!("stats: {stats:?}");
        println!("resolve took {elapsed:?}; peak before resolving {before_kib} KiB");
        println!("RESOLVE_MEMORY rss_before_kib={rss_kib} peak_kib={peak_kib}");
    }

    #[test]
    fn big_blob_is_streamed_in_bounded_memory() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "resolve::tests::big_blob_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with("RESOLVE_MEMORY"))
            .expect("memory report");
        let value = |key: &str| -> u64 {
            let field = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix(key))
                .unwrap();
            field.parse().unwrap()
        };
        let (rss, peak) = (value("rss_before_kib="), value("peak_kib="));
        // 16 MiB of cache (unused here: nothing small has children) plus stream windows, against 50 MiB objects.
        assert!(
            peak < 24 * 1024 && peak - rss < 16 * 1024,
            "peak {peak} KiB (from {rss} KiB)"
        );
    }

    #[test]
    fn ring_keeps_the_latest_bytes() {
        let mut ring = Ring::new(10);
        ring.push(b"abcdef");
        assert_eq!((ring.start(), ring.end), (0, 6));
        assert_eq!(ring.slice(2, 100), b"cdef");
        ring.push(b"ghijklm");
        assert_eq!((ring.start(), ring.end), (3, 13));
        assert_eq!(ring.slice(3, 100), b"defghij");
        assert_eq!(ring.slice(10, 2), b"kl");
        ring.push(b"0123456789ABC");
        assert_eq!((ring.start(), ring.end), (16, 26));
        let mut all = Vec::new();
        let mut pos = ring.start();
        while pos < ring.end {
            let s = ring.slice(pos, 100);
            all.extend_from_slice(s);
            pos += s.len() as u64;
        }
        assert_eq!(all, b"3456789ABC");
        ring.clear();
        assert_eq!((ring.start(), ring.end), (0, 0));
        let mut none = Ring::new(0);
        none.push(b"xyz");
        assert_eq!((none.start(), none.end), (3, 3));
    }

    #[test]
    fn resolution_can_run_on_any_runtime_thread() {
        fn assert_send<T: Send>(_: &T) {}
        let mut entries = Vec::new();
        let source = Bytes::new();
        assert_send(&resolve_deltas(&mut entries, &source, &ROOMY));
    }

    #[tokio::test]
    async fn bytes_source_reads_exact_ranges() {
        let source = Bytes::from_static(b"0123456789");
        assert_eq!(&source.read_at(2, 3).await.unwrap()[..], b"234");
        assert_eq!(&source.read_at(10, 0).await.unwrap()[..], b"");
        assert!(source.read_at(8, 3).await.is_err());
        assert!(source.read_at(u64::MAX, 2).await.is_err());
    }
}
