//! Pass 2 over a pack: compute the id of every delta entry within a fixed memory budget.
//!
//! The first pass ([`crate::git::pack`]) records one [`Entry`] per pack entry, hashes the non-delta objects and
//! may resolve the OFS deltas whose base it still holds ([`PackParser::resolve_early`]; their ids are kept here,
//! and entries with nothing left to do are not read again). A delta's id needs the object it yields, which needs its base, which may itself be a delta: this module rebuilds
//! those objects by reading entries back through a [`PackReader`] (the pack in memory, or ranged reads of the pack
//! in S3).
//!
//! How (`docs/design.md`, "Pack streams", has the measurements behind it):
//! - Entries are visited in pack order, so the reads are mostly one sequential scan that a chunked reader serves
//!   cheaply. Each entry's compressed bytes are fetched with one read. An OFS delta's base is an earlier entry; a
//!   REF delta's base is found by id among base objects and already resolved deltas.
//! - Before the scan the children of every entry are counted. Inflated objects that still have children to come
//!   are kept in an LRU cache bounded by [`ResolveOptions::cache_bytes`]; an object is dropped as soon as its last
//!   child is resolved. Objects without pending children are never cached.
//! - On a cache miss the base is rebuilt from its delta chain (iteratively, down to the nearest cached object or
//!   base entry; chains deeper than [`MAX_CHAIN_DEPTH`] are refused). The compressed bytes of entries with
//!   descendants to come are kept too, up to [`ResolveOptions::retain_bytes`], so that a rebuild far behind the
//!   scan costs CPU, not reads; the entries of a chain that are not kept are read all at once (up to
//!   [`FETCH_AT_ONCE`]), so that a rebuild waits for one round of reads, not one per level.
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
//! Limits and deadlines ([`ResolveLimits`]): no object may be declared bigger than
//! [`ResolveLimits::max_object_bytes`], and all the bytes resolution inflates and produces (rebuilt bases and
//! restarted streams included) may not exceed [`ResolveLimits::max_work_bytes`], so a delta bomb (a few KiB of
//! copy instructions declaring a result of a TiB) ends with an error after bounded work. The work is CPU-bound
//! when the pack is in memory, so the resolver yields to the executor after every [`YIELD_BYTES`] of it and
//! every [`YIELD_ENTRIES`] entries: a caller's timeout or cancellation can stop it at any of those points.
//!
//! Memory: about `cache_bytes` + `retain_bytes`, plus twice [`FETCH_BYTES`] of a chain's entries read at once
//! (with the gaps between neighbours read with them), plus at
//! most four buffers of at most `big_object_bytes` in flight (a base, a compressed delta, the inflated delta, its
//! result), plus for a streamed chain roughly 150 KiB per level and a
//! window of 64 KiB to 1 MiB per level (8 MiB in all at most; at most [`MAX_STREAM_LEVELS`] levels), plus about
//! [`BYTES_PER_ENTRY`] per entry and the bookkeeping of REF deltas waiting for their base. Time is proportional to the bytes
//! the deltas produce (which a hostile delta can make large with little input, as with git itself).
//!
//! [`DeltaDecoder`]: crate::git::delta::DeltaDecoder
//! [`PackParser::resolve_early`]: crate::git::pack::PackParser::resolve_early

pub(crate) mod cache;
mod counts;
mod read;
mod resolver;
mod stream;

pub use read::read_object;
use resolver::Resolver;

use crate::git::delta::DeltaError;
use crate::git::hand_over::{self, HandOverError, InlineSink, ObjectSink};
use crate::git::oid::{ObjectId, ObjectKind};
use crate::git::pack::entry::{Entries, Entry};
use crate::git::pack::inflate::InflateError;
use crate::git::scan::{ScanError, Scanner};
use bytes::Bytes;

/// Bytes the resolver holds per entry besides the [`Entry`] itself, for callers that count memory: its counts of
/// pending children and of live descendants (one byte each; an entry with 255 or more children, which is rare,
/// adds a side-table slot), and one byte for the kind of the entry's object, whether it is resolved and whether
/// it waits for the next pass (`counts.rs`).
pub const BYTES_PER_ENTRY: u64 = 3;

/// Longest delta chain rebuilt (git itself never writes chains deeper than 4095).
pub const MAX_CHAIN_DEPTH: usize = 10_000;
/// Most levels streamed at once for objects bigger than [`ResolveOptions::big_object_bytes`].
pub const MAX_STREAM_LEVELS: usize = 256;
/// Most entries of a delta chain read at once when a base is rebuilt.
pub const FETCH_AT_ONCE: usize = 64;
/// Most bytes of a delta chain's entries read at once when a base is rebuilt (one entry is read at least).
pub const FETCH_BYTES: u64 = 4 << 20;
/// Most passes over the pack in which deltas whose rebuild would read behind the scan are postponed; the pass
/// after them reads what it needs. A pass costs one read of the pack in order; reading behind the scan costs
/// requests for each chain rebuilt: the 800k-object bench repository at a 128 MiB budget (27 MiB of kept entries,
/// against 192 MB of entries with descendants to come) resolves in 7 passes, where a limit of 4 left its last
/// pass rebuilding about 100k deltas from reads behind the scan for minutes.
pub const MAX_PASSES: u64 = 16;
/// Entries of a chain being rebuilt that are at most this far apart in the pack are fetched with one read.
pub const MERGE_GAP: u64 = 256 << 10;
/// Bytes of compressed data fetched per read when an entry is streamed.
const READ_CHUNK: u64 = 64 * 1024;
/// Bytes a streamed level produces per `Level::produce` call (its window must hold at least twice this).
const PRODUCE_CHUNK: usize = 32 * 1024;
/// Size of the buffer a streamed delta is inflated into.
const DELTA_BUF: usize = 32 * 1024;
/// Smallest window of recent output a streamed base keeps (copies reaching further back restart it).
const MIN_WINDOW: usize = 2 * PRODUCE_CHUNK;
/// Largest window of recent output a streamed base keeps.
const MAX_WINDOW: usize = 1024 * 1024;
/// Window bytes shared by the levels of one stream.
const WINDOW_BUDGET: usize = 8 * 1024 * 1024;
/// Bytes of work (inflated or produced) between two yields to the executor.
pub const YIELD_BYTES: u64 = 1 << 20;
/// Entries scanned between two yields to the executor.
pub const YIELD_ENTRIES: usize = 256;

/// The position of an entry in the pack's entry list. 32 bits keep the bookkeeping per entry small; the
/// resolver refuses packs with more entries than fit below [`EntryIndex::NONE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct EntryIndex(u32);

impl EntryIndex {
    /// No entry: the base of a non-delta entry, or of a REF delta whose base is not known yet.
    const NONE: EntryIndex = EntryIndex(u32::MAX);

    /// The index of the `i`th entry, for `i` below [`EntryIndex::NONE`] (which the resolver checked).
    fn new(i: usize) -> Self {
        EntryIndex(i as u32)
    }

    /// The position in the entry list.
    fn get(self) -> usize {
        self.0 as usize
    }
}

/// Error type of [`PackReader`] reads.
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// Random access to the bytes of a pack, for the resolver to read entries back.
#[async_trait::async_trait]
pub trait PackReader: Send + Sync {
    /// Exactly `len` bytes of the pack at `offset`.
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ReadError>;

    /// The resolver's scan in pack order has reached the entry at `offset`: a reader may fetch what follows ahead
    /// of time. Does nothing by default.
    fn advise_scan(&self, _offset: u64) {}
}

/// A whole pack held in memory (small packs).
#[async_trait::async_trait]
impl PackReader for Bytes {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
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
    /// Most bytes of compressed entries with descendants to come kept (overhead included), so that rebuilding
    /// an evicted base does not read the source again: worth it when reads are dear (a pack read back from a
    /// store), 0 when the source is in memory. When it is not 0, reads behind the scan are avoided altogether: a
    /// delta whose rebuild would need entries neither kept nor cached waits for another pass in pack order,
    /// which keeps those entries as it passes them (at most [`MAX_PASSES`] such passes; the last one reads what
    /// it needs wherever it is).
    pub retain_bytes: u64,
    /// Objects (and deltas, and compressed entries) bigger than this are streamed, never held whole.
    pub big_object_bytes: u64,
    /// Called with (entries scanned, total entries) every [`PROGRESS_INTERVAL`] entries of the scan.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Send + Sync)>,
    /// Limits on object size and total work.
    pub limits: ResolveLimits,
}

/// Limits on what a pack may make [`resolve_deltas`] do, each an error when exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolveLimits {
    /// Largest object size an entry may declare (a base's size, a delta's result size).
    pub max_object_bytes: u64,
    /// Most bytes resolution may inflate and produce in all (bases read, delta results, streamed output,
    /// rebuilds and restarts included).
    pub max_work_bytes: u64,
}

impl ResolveLimits {
    /// No limits.
    pub const NONE: ResolveLimits = ResolveLimits {
        max_object_bytes: u64::MAX,
        max_work_bytes: u64::MAX,
    };
}

impl std::fmt::Debug for ResolveOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveOptions")
            .field("cache_bytes", &self.cache_bytes)
            .field("retain_bytes", &self.retain_bytes)
            .field("big_object_bytes", &self.big_object_bytes)
            .field("progress", &self.progress.is_some())
            .field("limits", &self.limits)
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
    /// Passes over the pack in entry order (see [`ResolveOptions::retain_bytes`]).
    pub passes: u64,
    /// Times a delta was left for the next pass because rebuilding it would have read entries behind the scan.
    pub postponed: u64,
    /// Most deltas ever queued to be resolved as soon as their base entry is (visited before it in a pass).
    pub peak_waiting: u64,
    /// Reads issued to the [`PackReader`].
    pub reads: u64,
    /// Bytes those reads returned.
    pub bytes_read: u64,
    /// Most bytes the base cache ever held.
    pub peak_cache_bytes: u64,
    /// Entries read from the retained compressed entries instead of the source.
    pub retained_reads: u64,
    /// Most bytes of compressed entries ever retained.
    pub peak_retained_bytes: u64,
    /// Longest delta chain walked to rebuild an object.
    pub longest_chain: u64,
    /// Bytes inflated and produced in all, as counted against [`ResolveLimits::max_work_bytes`].
    pub work_bytes: u64,
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
        source: ReadError,
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
    /// What hashes the objects handed over ([`resolve_with_sink`]) stopped without an answer: not a fault of the
    /// pack.
    #[error("hashing the pack's objects stopped: {0}")]
    Hashing(String),
}

impl From<HandOverError> for ResolveError {
    fn from(error: HandOverError) -> Self {
        match error {
            HandOverError::Scan { offset, problem } => ResolveError::Entry {
                offset,
                problem: EntryProblem::Scan(problem),
            },
            HandOverError::Stopped(why) => ResolveError::Hashing(why),
        }
    }
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
    /// A delta's base is not another entry of the pack (for an OFS delta: an earlier one).
    #[error("its delta base, entry number {0}, is not an entry it can be based on")]
    BadBase(u64),
    /// The zlib stream is corrupt, inflates to another size than the entry declares, or ends before the entry.
    #[error("{0}")]
    Inflate(#[from] InflateError),
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
    /// The object's content is not what its kind requires, or what the [`Scanner`] collects outgrew its memory.
    #[error("{0}")]
    Scan(#[from] ScanError),
    /// The entry declares an object bigger than [`ResolveLimits::max_object_bytes`].
    #[error("it declares an object of {size} bytes, more than the limit of {limit}")]
    ObjectTooBig {
        /// The size declared.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Resolving the pack took more work than [`ResolveLimits::max_work_bytes`] (a delta bomb?).
    #[error(
        "resolving it would inflate and produce more than {0} bytes, the limit for this pack (a delta bomb?)"
    )]
    TooMuchWork(u64),
    /// The entry could not be resolved although no missing base explains it.
    #[error("delta could not be resolved")]
    Unresolved,
}

/// Computes the id of every delta entry of a pack (and of any base entry whose id is missing), reading entries
/// back from `source` within the limits of `options`. `entries` must be the whole pack, in pack order; ids
/// already set on delta entries are ignored and recomputed.
pub async fn resolve_deltas(
    entries: &mut Entries,
    source: &dyn PackReader,
    options: &ResolveOptions<'_>,
) -> Result<ResolveStats, ResolveError> {
    resolve_and_scan(entries, source, options, &mut Scanner::none()).await
}

/// [`resolve_deltas`], handing the content of every object it rebuilds to `scanner` as it hashes it.
pub async fn resolve_and_scan(
    entries: &mut Entries,
    source: &dyn PackReader,
    options: &ResolveOptions<'_>,
    scanner: &mut Scanner,
) -> Result<ResolveStats, ResolveError> {
    let mut sink = InlineSink::new(std::mem::take(scanner));
    let result = resolve_with_sink(entries, source, options, &mut sink).await;
    *scanner = sink.into_scanner();
    result
}

/// [`resolve_deltas`], handing every object it rebuilds to `sink` to be hashed and scanned
/// ([`crate::git::hand_over`]); the entries have all their ids when it returns. The objects it streams, and those
/// whose id a REF delta may wait for, it hashes itself (and hands over their scans).
pub async fn resolve_with_sink(
    entries: &mut Entries,
    source: &dyn PackReader,
    options: &ResolveOptions<'_>,
    sink: &mut dyn ObjectSink,
) -> Result<ResolveStats, ResolveError> {
    resolve_with_depth(entries, source, options, MAX_CHAIN_DEPTH, sink).await
}

/// [`resolve_with_sink`] with another chain depth limit (tests use a small one).
async fn resolve_with_depth(
    entries: &mut Entries,
    source: &dyn PackReader,
    options: &ResolveOptions<'_>,
    max_chain: usize,
    sink: &mut dyn ObjectSink,
) -> Result<ResolveStats, ResolveError> {
    let result = match Resolver::new(entries, source, options, max_chain, sink) {
        Ok(resolver) => resolver.run(options.progress).await,
        Err(error) => Err(error),
    };
    // After a failure, the objects handed over before it still get their ids, and a problem found in one of
    // them comes first, as it would have had they been hashed here.
    result.map_err(|error| {
        let mut done = Vec::new();
        match sink.flush(&mut done) {
            Err(earlier) => earlier.into(),
            Ok(()) => {
                hand_over::set_ids(entries, &mut done);
                error
            }
        }
    })
}

fn entry_error(entry: &Entry, problem: impl Into<EntryProblem>) -> ResolveError {
    ResolveError::Entry {
        offset: entry.offset(),
        problem: problem.into(),
    }
}

/// Exactly `len` bytes of the pack at `offset`: a failed or short read is an error.
async fn read_exact(source: &dyn PackReader, offset: u64, len: u64) -> Result<Bytes, ResolveError> {
    checked_read(offset, len, source.read_at(offset, len).await)
}

/// The outcome of a read of `len` bytes at `offset`: its error, or exactly `len` bytes.
fn checked_read(
    offset: u64,
    len: u64,
    result: Result<Bytes, ReadError>,
) -> Result<Bytes, ResolveError> {
    let data = result.map_err(|source| ResolveError::Read {
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
    Ok(data)
}

/// End of an entry (offset just past its last byte, where the next one starts); validated by [`Resolver::new`].
fn entry_end(entry: &Entry) -> u64 {
    entry.offset().saturating_add(entry.packed_len())
}

#[cfg(test)]
pub(crate) mod tests;
