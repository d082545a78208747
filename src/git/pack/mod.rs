//! Streaming pack parser: the first pass over a pack as it arrives.
//!
//! A pack is `PACK`, a version (2 or 3) and an object count, then one entry per object (a type/size header, a
//! delta base reference for deltas, a zlib stream), then the SHA-1 of everything before it. The mirror streams a
//! pack to storage while it downloads, so [`PackParser`] is a sans-IO state machine fed chunks of any size: it
//! never holds pack bytes beyond the current chunk, inflates each entry into one fixed buffer only to find where
//! its zlib stream ends, and records for each entry what the later passes need (an [`Entry`]): offset, kind,
//! sizes, the CRC-32 that the `.idx` stores, and the id of every non-delta object. Deltas are checked for shape
//! (declared size, the delta header's two sizes, an OFS delta's base being an earlier entry) and, with
//! [`PackParser::resolve_early`], those whose base is still in a cache of recent objects are resolved as they
//! arrive (`early.rs`); the rest are resolved later by [`crate::git::resolve`].
//!
//! Memory is bounded by the entry list (and the early resolution's limits): no buffer is sized from a count or
//! size the pack declares.

mod early;
pub mod entry;
mod header;
pub mod inflate;

use crate::git::delta::{DeltaDecoder, DeltaError};
use crate::git::hand_over::{self, Finished, HandOverError, Hashed, InlineSink, ObjectSink};
use crate::git::oid::{ObjectHasher, ObjectId, ObjectKind};
use crate::git::pack::entry::{Entries, Entry};
use crate::git::pack::inflate::{EntryInflater, InflateError};
use crate::git::scan::{ObjectScan, ScanError, ScanPlan, Scanner};
use early::Early;
pub use early::{EarlyResolution, WORK_PER_FEED};
use header::{EntryHeaderParser, HeaderBase, ParsedHeader};
use sha1::{Digest, Sha1};
use std::sync::Arc;

/// Length of the pack header: `PACK`, version, object count.
const HEADER_LEN: usize = 12;
/// Length of the trailing SHA-1.
const TRAILER_LEN: usize = 20;
/// Size of the reusable inflate output buffer.
const INFLATE_BUF_LEN: usize = 64 * 1024;
/// Most entries reserved up front, whatever the header's object count claims.
const MAX_ENTRY_RESERVE: usize = 1 << 16;

/// Why a pack was rejected. Every variant names the offset where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// The first four bytes are not `PACK`.
    #[error(
        "not a git pack: it starts with {:?} instead of \"PACK\"",
        String::from_utf8_lossy(found)
    )]
    BadSignature {
        /// The bytes found.
        found: [u8; 4],
    },
    /// The header names a version other than 2 or 3.
    #[error("unsupported pack version {version} at offset 4 (only versions 2 and 3 exist)")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// An entry's type is 0 or 5 (neither exists).
    #[error("pack entry at offset {offset}: invalid object type {kind}")]
    InvalidType {
        /// Offset of the entry.
        offset: u64,
        /// The type number found.
        kind: u8,
    },
    /// An entry's size varint does not fit in 64 bits (or never ends).
    #[error("pack entry at offset {offset}: object size does not fit in 64 bits")]
    SizeOverflow {
        /// Offset of the entry.
        offset: u64,
    },
    /// An OFS_DELTA's base distance does not fit in 64 bits.
    #[error("pack entry at offset {offset}: delta base distance does not fit in 64 bits")]
    BaseDistanceOverflow {
        /// Offset of the entry.
        offset: u64,
    },
    /// An OFS_DELTA's base distance is zero (the entry itself) or reaches before the start of the pack.
    #[error("pack entry at offset {offset}: delta base distance {distance} does not point to an earlier entry")]
    BaseOutOfRange {
        /// Offset of the entry.
        offset: u64,
        /// The distance back to the base, as encoded.
        distance: u64,
    },
    /// An OFS_DELTA's base offset is inside the pack but not where an entry starts.
    #[error("pack entry at offset {offset}: delta base offset {base_offset} is not the start of an entry")]
    BaseNotAnEntry {
        /// Offset of the entry.
        offset: u64,
        /// The offset its header points to.
        base_offset: u64,
    },
    /// The entry's zlib stream is corrupt, or inflates to another size than its header declares.
    #[error("pack entry at offset {offset}: {problem}")]
    Inflate {
        /// Offset of the entry.
        offset: u64,
        /// What is wrong with the stream.
        problem: InflateError,
    },
    /// A delta's own header (base size, result size) is truncated or overflows 64 bits.
    #[error("pack entry at offset {offset}: delta header {problem}")]
    BadDeltaHeader {
        /// Offset of the entry.
        offset: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The input ended before the pack did.
    #[error("pack truncated at offset {offset}: input ended {during} ({parsed} of {count} objects read)")]
    Truncated {
        /// How many bytes arrived.
        offset: u64,
        /// Which part of the pack was being read.
        during: &'static str,
        /// Entries completely read.
        parsed: u64,
        /// Entries the header announced (0 if the header itself was cut).
        count: u32,
    },
    /// The 20 bytes after the last announced entry are not the SHA-1 of the pack.
    #[error(
        "pack checksum mismatch at offset {offset}: the bytes after the {count} announced objects are {found}, \
         but the pack hashes to {computed}"
    )]
    ChecksumMismatch {
        /// Offset of the trailer.
        offset: u64,
        /// Entries the header announced.
        count: u32,
        /// SHA-1 of the pack up to `offset`.
        computed: ObjectId,
        /// The 20 bytes found there.
        found: ObjectId,
    },
    /// The object's content is not what its kind requires, or what the [`Scanner`] collects outgrew its memory.
    #[error("pack entry at offset {offset}: {problem}")]
    Scan {
        /// Offset of the entry.
        offset: u64,
        /// What went wrong.
        problem: ScanError,
    },
    /// An entry declares more bytes than [`PackParser::max_object_bytes`] allows.
    #[error(
        "pack entry at offset {offset}: it declares {size} bytes, more than the limit of {limit}"
    )]
    ObjectTooBig {
        /// Offset of the entry.
        offset: u64,
        /// The size declared (of the object, or of a delta's data).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Bytes arrived after the trailer.
    #[error("unexpected data after the pack trailer at offset {offset}")]
    TrailingData {
        /// Offset of the first extra byte.
        offset: u64,
    },
    /// What hashes the objects handed over ([`PackParser::with_sink`]) stopped without an answer: not a fault
    /// of the pack.
    #[error("hashing the pack's objects stopped: {0}")]
    Hashing(String),
}

impl From<HandOverError> for PackError {
    fn from(error: HandOverError) -> Self {
        match error {
            HandOverError::Scan { offset, problem } => PackError::Scan { offset, problem },
            HandOverError::Stopped(why) => PackError::Hashing(why),
        }
    }
}

/// Everything the first pass learned about a complete, checksum-verified pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPack {
    /// Pack format version from the header (2 or 3).
    pub version: u32,
    /// One record per entry, in pack order (so sorted by offset). Deltas have no id yet.
    pub entries: Entries,
    /// The pack's trailing SHA-1 (it names the pack: `pack-<checksum>.pack`).
    pub checksum: ObjectId,
    /// Total length of the pack in bytes, trailer included.
    pub pack_len: u64,
    /// What the scanner given to [`PackParser::with_scanner`] (or its sink's) read from the whole objects and the
    /// deltas resolved early (the other deltas are scanned when pass 2 rebuilds them).
    pub scanner: Scanner,
    /// Deltas resolved in this pass ([`PackParser::resolve_early`]): they have their ids already.
    pub resolved_early: u64,
}

/// Where the parser is in the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the 12-byte pack header.
    Header,
    /// Reading an entry's type/size header and base reference.
    EntryHeader,
    /// Inflating an entry's zlib stream.
    EntryData,
    /// Collecting the 20-byte trailer.
    Trailer,
    /// The trailer matched; any further byte is an error.
    Done,
}

/// A streaming, sans-IO parser for one pack. Feed it the pack in chunks, then call [`PackParser::finish`].
pub struct PackParser {
    state: State,
    /// Pack offset of the next byte to be fed.
    consumed: u64,
    /// Header or trailer bytes collected so far: `header_or_trailer[..header_or_trailer_len]` (at most 20).
    header_or_trailer: [u8; TRAILER_LEN],
    header_or_trailer_len: usize,
    version: u32,
    count: u32,
    entries: Entries,
    pack_hash: Sha1,
    /// SHA-1 of everything before the trailer, known once the trailer starts.
    computed: ObjectId,
    /// The entry being read.
    entry_offset: u64,
    crc: crc32fast::Hasher,
    header: EntryHeaderParser,
    current: Current,
    inflater: EntryInflater,
    /// Where the current entry is inflated to (and then hashed or skipped).
    out: Box<[u8]>,
    /// Hashes and scans the objects held whole when they end.
    sink: Box<dyn ObjectSink>,
    /// What the sink's scanner reads, for the objects streamed here.
    plan: ScanPlan,
    /// Ids the sink computed, not yet given to their entries.
    done: Vec<Hashed>,
    /// Largest size an entry may declare.
    max_object_bytes: u64,
    /// Resolution of deltas whose base is still cached, if asked for.
    early: Option<Early>,
    /// The first error, returned again by any later call.
    error: Option<PackError>,
}

/// Positions in the chunk being fed from which bytes still have to be hashed.
struct Marks {
    /// `data[hash_from..]` still has to go into the pack hash (`None` once the trailer starts).
    hash_from: Option<usize>,
    /// `data[crc_from..]` still has to go into the current entry's CRC-32 (`None` outside entries).
    crc_from: Option<usize>,
}

/// The entry whose zlib stream is being inflated.
struct Current {
    kind: CurrentKind,
    size: u64,
    header_len: u8,
    content: Content,
}

/// How the entry being inflated stores its object.
#[derive(Clone, Copy)]
enum CurrentKind {
    Base(ObjectKind),
    /// An OFS delta on this entry index.
    Ofs(u32),
    Ref(ObjectId),
}

/// What is done with an entry's inflated bytes.
enum Content {
    /// A whole object collected for early resolution: handed over to the sink at its end, to be hashed and
    /// scanned.
    Collected(Vec<u8>),
    /// A whole object not held: hash it, and scan it if the scanner wants its content (boxed: most entries are
    /// not scanned, and the scan's state is several times the size of a delta's).
    Streamed(ObjectHasher, Option<Box<ObjectScan>>),
    /// A delta: read its header (base size, result size); collect its data to apply it at its end when its
    /// base is cached for early resolution, else skip the instructions (pass 2 decodes them).
    Delta(DeltaDecoder, Option<Vec<u8>>),
}

impl Default for PackParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PackParser {
    /// A parser expecting the first byte of a pack.
    pub fn new() -> Self {
        Self::with_scanner(Scanner::none())
    }

    /// A parser that hands the content of every whole object to `scanner` ([`ParsedPack::scanner`]).
    pub fn with_scanner(scanner: Scanner) -> Self {
        Self::with_sink(Box::new(InlineSink::new(scanner)))
    }

    /// A parser that hands the objects it holds whole, when they end, to `sink` to be hashed and scanned
    /// ([`crate::git::hand_over`]); the objects it streams, it hashes itself and hands over their scans. The
    /// entries get the ids back as the sink computes them, all of them by [`finish`](Self::finish).
    pub fn with_sink(sink: Box<dyn ObjectSink>) -> Self {
        PackParser {
            state: State::Header,
            consumed: 0,
            header_or_trailer: [0; TRAILER_LEN],
            header_or_trailer_len: 0,
            version: 0,
            count: 0,
            entries: Entries::new(),
            pack_hash: Sha1::new(),
            computed: ObjectId::ZERO,
            entry_offset: 0,
            crc: crc32fast::Hasher::new(),
            header: EntryHeaderParser::default(),
            current: Current {
                kind: CurrentKind::Ofs(0),
                size: 0,
                header_len: 0,
                content: Content::Delta(DeltaDecoder::new(), None),
            },
            inflater: EntryInflater::new(),
            out: vec![0; INFLATE_BUF_LEN].into_boxed_slice(),
            plan: sink.plan(),
            sink,
            done: Vec::new(),
            max_object_bytes: u64::MAX,
            early: None,
            error: None,
        }
    }

    /// Resolves the deltas whose base is still in a cache of recent objects as they arrive, within `limits`
    /// (`early.rs`): they get their ids (and are scanned) in this pass.
    pub fn resolve_early(mut self, limits: EarlyResolution) -> Self {
        self.early = Some(Early::new(limits));
        self
    }

    /// Lowers (or raises) the bytes of recent objects kept for early resolution, when it was asked for (the
    /// caller's memory shrinks as the entries grow); the objects beyond it are dropped, least recently used first.
    pub fn limit_early_cache(&mut self, bytes: u64) {
        if let Some(early) = &mut self.early {
            early.limit_cache(bytes);
        }
    }

    /// Reserves room for as many entries as the pack header declares, but at most `most` (what the caller's
    /// memory holds); nothing before the header has arrived. A list that grows by doubling copies itself, holding
    /// its old and new allocations at once, and does so late in the pack, when the pass holds the most; the room
    /// reserved and not filled yet is not touched, so a header that declares too many costs no memory.
    pub fn reserve_entries(&mut self, most: usize) {
        if let Some(count) = self.object_count() {
            let wanted = usize::try_from(count).unwrap_or(usize::MAX).min(most);
            self.entries
                .reserve_exact(wanted.saturating_sub(self.entries.len()));
        }
    }

    /// Refuses entries that declare more than `limit` bytes ([`PackError::ObjectTooBig`]) as soon as their
    /// header arrives, before inflating them.
    pub fn max_object_bytes(mut self, limit: u64) -> Self {
        self.max_object_bytes = limit;
        self
    }

    /// Number of bytes fed so far (the pack offset of the next byte).
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// The object count from the pack header, once the header has arrived.
    pub fn object_count(&self) -> Option<u32> {
        (self.state != State::Header).then_some(self.count)
    }

    /// Entries completely read so far, in pack order (an id the sink has not computed yet is missing).
    pub fn entries(&self) -> &Entries {
        &self.entries
    }

    /// Consumes all of `data`, the next bytes of the pack. After an error every later call returns it again.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), PackError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        if let Some(early) = &mut self.early {
            early.start_feed();
        }
        let result = self.feed_inner(data).and_then(|()| {
            self.sink.take_done(&mut self.done)?;
            self.give_ids();
            Ok(())
        });
        result.map_err(|err| self.fail(err))
    }

    /// Records `err` as the parser's error, unless an object handed over before it was found wrong: that comes
    /// first, as it would have had the objects been hashed here.
    fn fail(&mut self, err: PackError) -> PackError {
        let err = match self.sink.flush(&mut self.done) {
            Err(earlier) => earlier.into(),
            Ok(()) => err,
        };
        self.error = Some(err.clone());
        err
    }

    /// Gives the ids the sink computed to their entries.
    fn give_ids(&mut self) {
        hand_over::set_ids(&mut self.entries, &mut self.done);
    }

    /// Ends the input: succeeds only if exactly one complete pack with a matching trailer was fed (and every
    /// object handed over was hashed and scanned).
    pub fn finish(mut self) -> Result<ParsedPack, PackError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        self.sink.flush(&mut self.done)?;
        self.give_ids();
        let during = match self.state {
            State::Done => {
                // The list is held for the rest of the run: without its spare capacity (up to as much again).
                let mut entries = self.entries;
                entries.shrink_to_fit();
                return Ok(ParsedPack {
                    version: self.version,
                    entries,
                    checksum: ObjectId(self.header_or_trailer),
                    pack_len: self.consumed,
                    scanner: self.sink.finish()?,
                    resolved_early: self.early.as_ref().map_or(0, Early::resolved),
                });
            }
            State::Header => "in the pack header",
            State::EntryHeader if self.consumed == self.entry_offset => "before the next entry",
            State::EntryHeader => "in an entry header",
            State::EntryData => "in an entry's compressed data",
            State::Trailer => "in the trailing checksum",
        };
        Err(PackError::Truncated {
            offset: self.consumed,
            during,
            parsed: self.entries.len() as u64,
            count: self.count,
        })
    }

    fn feed_inner(&mut self, data: &[u8]) -> Result<(), PackError> {
        let start = self.consumed;
        let mut pos = 0;
        let mut marks = Marks {
            hash_from: match self.state {
                State::Trailer | State::Done => None,
                _ => Some(0),
            },
            crc_from: match self.state {
                State::EntryHeader | State::EntryData => Some(0),
                _ => None,
            },
        };
        while pos < data.len() {
            match self.state {
                State::Header => {
                    pos += self.collect_header_or_trailer(&data[pos..], HEADER_LEN);
                    if self.header_or_trailer_len == HEADER_LEN {
                        self.parse_pack_header()?;
                        self.advance(data, pos, &mut marks);
                    }
                }
                State::EntryHeader => {
                    let (used, parsed) = self.header.push(&data[pos..], self.entry_offset)?;
                    pos += used;
                    if let Some(parsed) = parsed {
                        self.start_data(parsed, start + pos as u64)?;
                    }
                }
                State::EntryData => {
                    let (used, ended) = self.inflate_some(&data[pos..])?;
                    pos += used;
                    if ended {
                        if let Some(from) = marks.crc_from.take() {
                            self.crc.update(&data[from..pos]);
                        }
                        self.end_entry(start + pos as u64)?;
                        self.advance(data, pos, &mut marks);
                    }
                }
                State::Trailer => {
                    pos += self.collect_header_or_trailer(&data[pos..], TRAILER_LEN);
                    if self.header_or_trailer_len == TRAILER_LEN {
                        if self.header_or_trailer != self.computed.0 {
                            return Err(PackError::ChecksumMismatch {
                                offset: start + pos as u64 - TRAILER_LEN as u64,
                                count: self.count,
                                computed: self.computed,
                                found: ObjectId(self.header_or_trailer),
                            });
                        }
                        self.state = State::Done;
                    }
                }
                State::Done => {
                    return Err(PackError::TrailingData {
                        offset: start + pos as u64,
                    })
                }
            }
        }
        if let Some(from) = marks.hash_from {
            self.pack_hash.update(&data[from..]);
        }
        if let Some(from) = marks.crc_from {
            self.crc.update(&data[from..]);
        }
        self.consumed = start + data.len() as u64;
        Ok(())
    }

    /// Moves on after the pack header or an entry that ended at `data[pos]`: to the next entry, or to the
    /// trailer once all announced entries are read (then the pack hash is complete).
    fn advance(&mut self, data: &[u8], pos: usize, marks: &mut Marks) {
        if self.entries.len() as u64 == u64::from(self.count) {
            if let Some(from) = marks.hash_from.take() {
                self.pack_hash.update(&data[from..pos]);
            }
            self.computed = ObjectId(self.pack_hash.finalize_reset().into());
            marks.crc_from = None;
            self.header_or_trailer_len = 0;
            self.state = State::Trailer;
        } else {
            self.state = State::EntryHeader;
            self.entry_offset = self.consumed + pos as u64;
            self.crc = crc32fast::Hasher::new();
            self.header = EntryHeaderParser::default();
            marks.crc_from = Some(pos);
        }
    }

    /// Copies up to `want - header_or_trailer_len` bytes of `data` into the header/trailer buffer; returns how many.
    fn collect_header_or_trailer(&mut self, data: &[u8], want: usize) -> usize {
        let n = (want - self.header_or_trailer_len).min(data.len());
        self.header_or_trailer[self.header_or_trailer_len..self.header_or_trailer_len + n]
            .copy_from_slice(&data[..n]);
        self.header_or_trailer_len += n;
        n
    }

    fn parse_pack_header(&mut self) -> Result<(), PackError> {
        let h = &self.header_or_trailer;
        if &h[0..4] != b"PACK" {
            return Err(PackError::BadSignature {
                found: [h[0], h[1], h[2], h[3]],
            });
        }
        let version = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if version != 2 && version != 3 {
            return Err(PackError::UnsupportedVersion { version });
        }
        self.version = version;
        self.count = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let reserve =
            usize::try_from(self.count).map_or(MAX_ENTRY_RESERVE, |c| c.min(MAX_ENTRY_RESERVE));
        self.entries.reserve(reserve);
        self.header_or_trailer_len = 0;
        Ok(())
    }

    /// The entry header is complete: check the base reference and get ready to inflate.
    fn start_data(&mut self, parsed: ParsedHeader, data_offset: u64) -> Result<(), PackError> {
        let offset = self.entry_offset;
        if parsed.size > self.max_object_bytes {
            return Err(PackError::ObjectTooBig {
                offset,
                size: parsed.size,
                limit: self.max_object_bytes,
            });
        }
        let (kind, content) = match parsed.base {
            HeaderBase::None(kind) => (
                CurrentKind::Base(kind),
                match &self.early {
                    Some(early) if early.keeps(parsed.size) => Content::Collected(Vec::new()),
                    _ => Content::Streamed(
                        ObjectHasher::new(kind, parsed.size),
                        self.plan.begin(kind, parsed.size).map(Box::new),
                    ),
                },
            ),
            HeaderBase::Distance(distance) => {
                let base_offset = match offset.checked_sub(distance) {
                    Some(base) if distance != 0 => base,
                    _ => return Err(PackError::BaseOutOfRange { offset, distance }),
                };
                let Some(base) = self.entries.find_offset(base_offset) else {
                    return Err(PackError::BaseNotAnEntry {
                        offset,
                        base_offset,
                    });
                };
                let collect = self
                    .early
                    .as_ref()
                    .filter(|early| early.can_apply(base, parsed.size))
                    .map(|_| Vec::new());
                (
                    CurrentKind::Ofs(base),
                    Content::Delta(DeltaDecoder::new(), collect),
                )
            }
            HeaderBase::Id(base) => (
                CurrentKind::Ref(base),
                Content::Delta(DeltaDecoder::new(), None),
            ),
        };
        // A header is at most 30 bytes (two 10-byte varints, or one and a 20-byte id).
        let header_len = data_offset
            .checked_sub(offset)
            .and_then(|len| u8::try_from(len).ok())
            .ok_or(PackError::SizeOverflow { offset })?;
        self.current = Current {
            kind,
            size: parsed.size,
            header_len,
            content,
        };
        self.inflater.reset(parsed.size);
        self.state = State::EntryData;
        Ok(())
    }

    /// Inflates from `input` into the output buffer until the input is used up or the zlib stream ends.
    /// Returns the input bytes consumed and whether the stream ended.
    fn inflate_some(&mut self, input: &[u8]) -> Result<(usize, bool), PackError> {
        let offset = self.entry_offset;
        let fail = |problem| PackError::Inflate { offset, problem };
        let mut used = 0;
        loop {
            let step = self
                .inflater
                .inflate(&input[used..], &mut self.out)
                .map_err(fail)?;
            used += step.consumed;
            self.current.absorb(&self.out[..step.written], offset)?;
            if self.inflater.has_ended() {
                return Ok((used, true));
            }
            let output_full = step.written == self.out.len();
            if !output_full && used == input.len() {
                // Wait for the next chunk.
                return Ok((used, false));
            }
            if step.consumed == 0 && step.written == 0 {
                return Err(fail(InflateError::Zlib("decompressor made no progress")));
            }
        }
    }

    /// The zlib stream of the current entry ended at pack offset `end`: check it and record the entry.
    fn end_entry(&mut self, end: u64) -> Result<(), PackError> {
        let offset = self.entry_offset;
        self.inflater
            .finish(false)
            .map_err(|problem| PackError::Inflate { offset, problem })?;
        let current = &mut self.current;
        let content = std::mem::replace(
            &mut current.content,
            Content::Delta(DeltaDecoder::new(), None),
        );
        let entry = self.entries.len() as u32;
        // Hands an object held whole to the sink; the content stays shared with the early cache.
        let mut hand_over = |kind, content: Vec<u8>| {
            let content = Arc::new(shrunk(content));
            let finished = Finished {
                entry,
                offset,
                kind,
                content: hand_over::Content::Whole(Arc::clone(&content)),
            };
            self.sink.submit(finished).map(|()| content)
        };
        // The object's kind and content, for early resolution.
        let mut object = None;
        let (result_size, oid) = match content {
            Content::Collected(content) => {
                if let CurrentKind::Base(kind) = current.kind {
                    object = Some((kind, Some(hand_over(kind, content)?)));
                }
                (current.size, None)
            }
            Content::Streamed(hasher, scan) => {
                let oid = hasher.finish();
                if let CurrentKind::Base(kind) = current.kind {
                    if let Some(scan) = scan {
                        let content = hand_over::Content::Hashed(oid, Some(scan));
                        self.sink.submit(Finished {
                            entry,
                            offset,
                            kind,
                            content,
                        })?;
                    }
                    object = Some((kind, None));
                }
                (current.size, Some(oid))
            }
            Content::Delta(decoder, collected) => {
                let Some(header) = decoder.header() else {
                    return Err(PackError::BadDeltaHeader {
                        offset,
                        problem: "is truncated",
                    });
                };
                let applied = match (&mut self.early, collected, current.kind) {
                    (Some(early), Some(delta), CurrentKind::Ofs(base)) => {
                        early.apply(base, &delta, header.result_size, end)
                    }
                    _ => None,
                };
                if let Some((kind, result)) = applied {
                    object = Some((kind, Some(hand_over(kind, result)?)));
                }
                (header.result_size, None)
            }
        };
        if let Some(early) = &mut self.early {
            early.record(object);
        }
        let crc32 = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let (header_len, packed_len, size) = (current.header_len, end - offset, current.size);
        self.entries.push(match current.kind {
            CurrentKind::Base(kind) => {
                Entry::whole(offset, header_len, packed_len, kind, size, crc32, oid)
            }
            CurrentKind::Ofs(base) => Entry::ofs_delta(
                offset,
                header_len,
                packed_len,
                base,
                size,
                result_size,
                crc32,
            ),
            CurrentKind::Ref(base) => Entry::ref_delta(
                offset,
                header_len,
                packed_len,
                base,
                size,
                result_size,
                crc32,
            ),
        });
        if let Some(oid) = oid.filter(|_| matches!(current.kind, CurrentKind::Ofs(_))) {
            self.entries.set_oid(entry as usize, oid);
        }
        Ok(())
    }
}

impl Current {
    /// Takes freshly inflated bytes (already checked against the declared size): hashes them or reads the delta
    /// header from them.
    fn absorb(&mut self, bytes: &[u8], offset: u64) -> Result<(), PackError> {
        if bytes.is_empty() {
            return Ok(());
        }
        match &mut self.content {
            Content::Collected(collected) => collected.extend_from_slice(bytes),
            Content::Streamed(hasher, scan) => {
                hasher.update(bytes);
                if let Some(scan) = scan {
                    scan.update(bytes);
                }
            }
            Content::Delta(decoder, collected) => {
                if let Some(collected) = collected {
                    collected.extend_from_slice(bytes);
                }
                // Before its header, a delta can only be wrong in a size beyond 64 bits.
                read_delta_header(decoder, bytes).map_err(|_| PackError::BadDeltaHeader {
                    offset,
                    problem: "has a size that does not fit in 64 bits",
                })?;
            }
        }
        Ok(())
    }
}

/// `content` without its spare capacity: the early cache counts what is allocated.
fn shrunk(mut content: Vec<u8>) -> Vec<u8> {
    content.shrink_to_fit();
    content
}

/// Feeds the next inflated bytes of a delta to `decoder` until it has read the delta's header; bytes after the
/// header are ignored, so pass 1 never decodes instructions.
fn read_delta_header(decoder: &mut DeltaDecoder, bytes: &[u8]) -> Result<(), DeltaError> {
    if decoder.header().is_none() {
        // In the header, `step` consumes bytes until the header is complete or `bytes` runs out.
        decoder.step(bytes)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;
