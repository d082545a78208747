//! Streaming pack parser: the first pass over a pack as it arrives.
//!
//! A pack is `PACK`, a version (2 or 3) and an object count, then one entry per object (a type/size header, a
//! delta base reference for deltas, a zlib stream), then the SHA-1 of everything before it. The mirror streams a
//! pack to storage while it downloads, so [`PackParser`] is a sans-IO state machine fed chunks of any size: it
//! never holds pack bytes beyond the current chunk, inflates each entry into one fixed buffer only to find where
//! its zlib stream ends, and records for each entry what the later passes need (an [`Entry`]): offset, kind,
//! sizes, the CRC-32 that the `.idx` stores, and the id of every non-delta object. Deltas are checked for shape
//! (declared size, the delta header's two sizes, an OFS delta's base being an earlier entry) but resolved later
//! by [`crate::resolve`].
//!
//! Memory is bounded by the entry list: no buffer is sized from a count or size the pack declares.

use crate::entry::{Entry, EntryKind};
use crate::oid::{ObjectHasher, ObjectId, ObjectKind};
use miniz_oxide::inflate::stream::{inflate, InflateState, MinReset};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
use sha1::{Digest, Sha1};

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
    /// The entry's zlib stream is corrupt.
    #[error("pack entry at offset {offset}: corrupt zlib data ({detail})")]
    Zlib {
        /// Offset of the entry.
        offset: u64,
        /// What the decompressor reported.
        detail: &'static str,
    },
    /// The zlib stream ended before producing the size the entry header declares.
    #[error("pack entry at offset {offset}: inflates to {actual} bytes but its header declares {declared}")]
    TooShort {
        /// Offset of the entry.
        offset: u64,
        /// Size from the entry header.
        declared: u64,
        /// Bytes the stream actually produced.
        actual: u64,
    },
    /// The zlib stream produces more than the size the entry header declares.
    #[error("pack entry at offset {offset}: inflates to more than the {declared} bytes its header declares")]
    TooLong {
        /// Offset of the entry.
        offset: u64,
        /// Size from the entry header.
        declared: u64,
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
    /// Bytes arrived after the trailer.
    #[error("unexpected data after the pack trailer at offset {offset}")]
    TrailingData {
        /// Offset of the first extra byte.
        offset: u64,
    },
}

/// Everything the first pass learned about a complete, checksum-verified pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPack {
    /// Pack format version from the header (2 or 3).
    pub version: u32,
    /// One record per entry, in pack order (so sorted by offset). Deltas have `oid: None`.
    pub entries: Vec<Entry>,
    /// The pack's trailing SHA-1 (it names the pack: `pack-<checksum>.pack`).
    pub checksum: ObjectId,
    /// Total length of the pack in bytes, trailer included.
    pub pack_len: u64,
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
    /// Header or trailer bytes collected so far (at most 20).
    fixed: [u8; TRAILER_LEN],
    fixed_len: usize,
    version: u32,
    count: u32,
    entries: Vec<Entry>,
    pack_hash: Sha1,
    /// SHA-1 of everything before the trailer, known once the trailer starts.
    computed: ObjectId,
    /// The entry being read.
    entry_offset: u64,
    crc: crc32fast::Hasher,
    header: EntryHeaderParser,
    current: Current,
    inflater: Box<InflateState>,
    out: Box<[u8]>,
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
    kind: EntryKind,
    size: u64,
    data_offset: u64,
    inflated: u64,
    content: Content,
}

/// What is done with an entry's inflated bytes.
enum Content {
    /// A whole object: hash it.
    Base(ObjectHasher),
    /// A delta: read its header, discard the rest.
    Delta(DeltaHeader),
}

impl Default for PackParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PackParser {
    /// A parser expecting the first byte of a pack.
    pub fn new() -> Self {
        PackParser {
            state: State::Header,
            consumed: 0,
            fixed: [0; TRAILER_LEN],
            fixed_len: 0,
            version: 0,
            count: 0,
            entries: Vec::new(),
            pack_hash: Sha1::new(),
            computed: ObjectId::ZERO,
            entry_offset: 0,
            crc: crc32fast::Hasher::new(),
            header: EntryHeaderParser::default(),
            current: Current {
                kind: EntryKind::OfsDelta { base_offset: 0 },
                size: 0,
                data_offset: 0,
                inflated: 0,
                content: Content::Delta(DeltaHeader::default()),
            },
            inflater: InflateState::new_boxed(DataFormat::Zlib),
            out: vec![0; INFLATE_BUF_LEN].into_boxed_slice(),
            error: None,
        }
    }

    /// Number of bytes fed so far (the pack offset of the next byte).
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// The object count from the pack header, once the header has arrived.
    pub fn object_count(&self) -> Option<u32> {
        (self.state != State::Header).then_some(self.count)
    }

    /// Entries completely read so far, in pack order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Consumes all of `data`, the next bytes of the pack. After an error every later call returns it again.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), PackError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        let result = self.feed_inner(data);
        if let Err(err) = &result {
            self.error = Some(err.clone());
        }
        result
    }

    /// Ends the input: succeeds only if exactly one complete pack with a matching trailer was fed.
    pub fn finish(self) -> Result<ParsedPack, PackError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let during = match self.state {
            State::Done => {
                return Ok(ParsedPack {
                    version: self.version,
                    entries: self.entries,
                    checksum: ObjectId(self.fixed),
                    pack_len: self.consumed,
                })
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
                    pos += self.collect_fixed(&data[pos..], HEADER_LEN);
                    if self.fixed_len == HEADER_LEN {
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
                    pos += self.collect_fixed(&data[pos..], TRAILER_LEN);
                    if self.fixed_len == TRAILER_LEN {
                        if self.fixed != self.computed.0 {
                            return Err(PackError::ChecksumMismatch {
                                offset: start + pos as u64 - TRAILER_LEN as u64,
                                count: self.count,
                                computed: self.computed,
                                found: ObjectId(self.fixed),
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
            self.fixed_len = 0;
            self.state = State::Trailer;
        } else {
            self.state = State::EntryHeader;
            self.entry_offset = self.consumed + pos as u64;
            self.crc = crc32fast::Hasher::new();
            self.header = EntryHeaderParser::default();
            marks.crc_from = Some(pos);
        }
    }

    /// Copies up to `want - fixed_len` bytes of `data` into the header/trailer buffer; returns how many.
    fn collect_fixed(&mut self, data: &[u8], want: usize) -> usize {
        let n = (want - self.fixed_len).min(data.len());
        self.fixed[self.fixed_len..self.fixed_len + n].copy_from_slice(&data[..n]);
        self.fixed_len += n;
        n
    }

    fn parse_pack_header(&mut self) -> Result<(), PackError> {
        let h = &self.fixed;
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
        self.fixed_len = 0;
        Ok(())
    }

    /// The entry header is complete: check the base reference and get ready to inflate.
    fn start_data(&mut self, parsed: ParsedHeader, data_offset: u64) -> Result<(), PackError> {
        let offset = self.entry_offset;
        let (kind, content) = match parsed.base {
            HeaderBase::None(kind) => (
                EntryKind::Base(kind),
                Content::Base(ObjectHasher::new(kind, parsed.size)),
            ),
            HeaderBase::Distance(distance) => {
                let base_offset = match offset.checked_sub(distance) {
                    Some(base) if distance != 0 => base,
                    _ => return Err(PackError::BaseOutOfRange { offset, distance }),
                };
                if !is_entry_start(&self.entries, base_offset) {
                    return Err(PackError::BaseNotAnEntry {
                        offset,
                        base_offset,
                    });
                }
                (
                    EntryKind::OfsDelta { base_offset },
                    Content::Delta(DeltaHeader::default()),
                )
            }
            HeaderBase::Id(base) => (
                EntryKind::RefDelta { base },
                Content::Delta(DeltaHeader::default()),
            ),
        };
        self.current = Current {
            kind,
            size: parsed.size,
            data_offset,
            inflated: 0,
            content,
        };
        self.inflater.reset_as(MinReset);
        self.state = State::EntryData;
        Ok(())
    }

    /// Inflates from `input` into the output buffer until the input is used up or the zlib stream ends.
    /// Returns the input bytes consumed and whether the stream ended.
    fn inflate_some(&mut self, input: &[u8]) -> Result<(usize, bool), PackError> {
        let offset = self.entry_offset;
        let current = &mut self.current;
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let res = inflate(&mut self.inflater, rest, &mut self.out, MZFlush::None);
            used += res.bytes_consumed;
            current.absorb(&self.out[..res.bytes_written], offset)?;
            match res.status {
                Ok(MZStatus::StreamEnd) => return Ok((used, true)),
                Ok(_) => {
                    let output_full = res.bytes_written == self.out.len();
                    if !output_full && used == input.len() {
                        return Ok((used, false));
                    }
                    if res.bytes_consumed == 0 && res.bytes_written == 0 {
                        return Err(PackError::Zlib {
                            offset,
                            detail: "decompressor made no progress",
                        });
                    }
                }
                // No input left and no output pending: wait for the next chunk.
                Err(MZError::Buf) if rest.is_empty() => return Ok((used, false)),
                Err(err) => {
                    return Err(PackError::Zlib {
                        offset,
                        detail: zlib_detail(err),
                    })
                }
            }
        }
    }

    /// The zlib stream of the current entry ended at pack offset `end`: check it and record the entry.
    fn end_entry(&mut self, end: u64) -> Result<(), PackError> {
        let offset = self.entry_offset;
        let current = &mut self.current;
        if current.inflated != current.size {
            return Err(PackError::TooShort {
                offset,
                declared: current.size,
                actual: current.inflated,
            });
        }
        let content =
            std::mem::replace(&mut current.content, Content::Delta(DeltaHeader::default()));
        let (result_size, oid) = match content {
            Content::Base(hasher) => (current.size, Some(hasher.finish())),
            Content::Delta(header) => match header.result_size() {
                Some(result_size) => (result_size, None),
                None => {
                    return Err(PackError::BadDeltaHeader {
                        offset,
                        problem: "is truncated",
                    })
                }
            },
        };
        let crc32 = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        self.entries.push(Entry {
            offset,
            data_offset: current.data_offset,
            packed_len: end - offset,
            kind: current.kind,
            size: current.size,
            result_size,
            crc32,
            oid,
        });
        Ok(())
    }
}

impl Current {
    /// Takes freshly inflated bytes: checks them against the declared size, then hashes them or reads the
    /// delta header from them.
    fn absorb(&mut self, bytes: &[u8], offset: u64) -> Result<(), PackError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.inflated += bytes.len() as u64;
        if self.inflated > self.size {
            return Err(PackError::TooLong {
                offset,
                declared: self.size,
            });
        }
        match &mut self.content {
            Content::Base(hasher) => hasher.update(bytes),
            Content::Delta(header) => {
                if !header.push(bytes) {
                    return Err(PackError::BadDeltaHeader {
                        offset,
                        problem: "has a size that does not fit in 64 bits",
                    });
                }
            }
        }
        Ok(())
    }
}

/// Whether an entry of `entries` (sorted by offset) starts at `offset`. Delta bases are usually close behind,
/// so this gallops back from the end before searching: it touches few, recently written entries.
fn is_entry_start(entries: &[Entry], offset: u64) -> bool {
    // Every entry from `hi` on starts after `offset`.
    let mut hi = entries.len();
    let mut step = 1;
    while step <= hi && entries[hi - step].offset > offset {
        hi -= step;
        step *= 2;
    }
    let lo = hi.saturating_sub(step);
    entries[lo..hi]
        .binary_search_by_key(&offset, |e| e.offset)
        .is_ok()
}

fn zlib_detail(err: MZError) -> &'static str {
    match err {
        MZError::Data => "invalid deflate stream or checksum",
        MZError::Buf => "decompressor could not make progress",
        MZError::Stream => "inconsistent stream state",
        _ => "unexpected decompressor error",
    }
}

/// Adds one 7-bit group at bit `shift` to a little-endian base-128 number; `false` if it does not fit in 64
/// bits. At most ten groups are accepted, so a number that never ends is caught too.
fn push_group(value: &mut u64, shift: &mut u32, byte: u8) -> bool {
    let group = u64::from(byte & 0x7f);
    if *shift >= 64 || (*shift > 0 && group >> (64 - *shift) != 0) {
        return false;
    }
    *value |= group << *shift;
    *shift += 7;
    true
}

/// What an entry header says about the base of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderBase {
    /// A whole object of this kind.
    None(ObjectKind),
    /// OFS_DELTA: the base starts this many bytes before the entry.
    Distance(u64),
    /// REF_DELTA: the base is the object with this id.
    Id(ObjectId),
}

/// A complete entry header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ParsedHeader {
    size: u64,
    base: HeaderBase,
}

/// Which part of an entry header comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum HeaderStage {
    /// The first byte: type and low size bits.
    #[default]
    First,
    /// Further size bytes.
    Size,
    /// The OFS_DELTA base distance.
    Distance,
    /// The REF_DELTA base id.
    BaseId,
}

/// Byte-at-a-time parser for an entry's type/size header and delta base reference.
#[derive(Debug, Clone, Default)]
struct EntryHeaderParser {
    stage: HeaderStage,
    kind: u8,
    size: u64,
    shift: u32,
    distance: u64,
    distance_len: u32,
    base: [u8; 20],
    base_len: usize,
}

impl EntryHeaderParser {
    /// Reads header bytes from `data`; returns how many it used and the header once complete.
    fn push(
        &mut self,
        data: &[u8],
        offset: u64,
    ) -> Result<(usize, Option<ParsedHeader>), PackError> {
        for (i, &byte) in data.iter().enumerate() {
            if let Some(parsed) = self.push_byte(byte, offset)? {
                return Ok((i + 1, Some(parsed)));
            }
        }
        Ok((data.len(), None))
    }

    fn push_byte(&mut self, byte: u8, offset: u64) -> Result<Option<ParsedHeader>, PackError> {
        let more = byte & 0x80 != 0;
        match self.stage {
            HeaderStage::First => {
                self.kind = (byte >> 4) & 7;
                if !matches!(self.kind, 1..=4 | 6 | 7) {
                    return Err(PackError::InvalidType {
                        offset,
                        kind: self.kind,
                    });
                }
                self.size = u64::from(byte & 0x0f);
                self.shift = 4;
                if more {
                    self.stage = HeaderStage::Size;
                    return Ok(None);
                }
                Ok(self.after_size())
            }
            HeaderStage::Size => {
                if !push_group(&mut self.size, &mut self.shift, byte) {
                    return Err(PackError::SizeOverflow { offset });
                }
                if more {
                    return Ok(None);
                }
                Ok(self.after_size())
            }
            HeaderStage::Distance => {
                // Git's encoding: each continuation adds one before shifting, so no number has two spellings.
                let group = u64::from(byte & 0x7f);
                if self.distance_len == 0 {
                    self.distance = group;
                } else {
                    self.distance = match self.distance.checked_add(1) {
                        Some(d) if d >> 57 == 0 => (d << 7) | group,
                        _ => return Err(PackError::BaseDistanceOverflow { offset }),
                    };
                }
                self.distance_len += 1;
                if more {
                    return Ok(None);
                }
                Ok(Some(ParsedHeader {
                    size: self.size,
                    base: HeaderBase::Distance(self.distance),
                }))
            }
            HeaderStage::BaseId => {
                self.base[self.base_len] = byte;
                self.base_len += 1;
                if self.base_len < self.base.len() {
                    return Ok(None);
                }
                Ok(Some(ParsedHeader {
                    size: self.size,
                    base: HeaderBase::Id(ObjectId(self.base)),
                }))
            }
        }
    }

    /// The size is complete: the header ends here for whole objects, a base reference follows for deltas.
    fn after_size(&mut self) -> Option<ParsedHeader> {
        match self.kind {
            6 => {
                self.stage = HeaderStage::Distance;
                None
            }
            7 => {
                self.stage = HeaderStage::BaseId;
                None
            }
            kind => ObjectKind::from_pack_type(kind).map(|kind| ParsedHeader {
                size: self.size,
                base: HeaderBase::None(kind),
            }),
        }
    }
}

/// Reads a delta's header (base size, then result size, both base-128 varints) from inflated bytes that may
/// arrive in pieces.
#[derive(Debug, Clone, Copy, Default)]
struct DeltaHeader {
    /// 0: reading the base size, 1: reading the result size, 2: done.
    field: u8,
    value: u64,
    shift: u32,
    result_size: u64,
}

impl DeltaHeader {
    /// Takes the next inflated bytes of the delta; `false` if a size overflows 64 bits.
    fn push(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            if self.field == 2 {
                return true;
            }
            if !push_group(&mut self.value, &mut self.shift, byte) {
                return false;
            }
            if byte & 0x80 == 0 {
                if self.field == 1 {
                    self.result_size = self.value;
                }
                self.field += 1;
                self.value = 0;
                self.shift = 0;
            }
        }
        true
    }

    /// The result size, once both sizes have been read.
    fn result_size(&self) -> Option<u64> {
        (self.field == 2).then_some(self.result_size)
    }
}

/// Fixtures shared by the pack and index tests: repositories generated with real git, packs written by
/// `git pack-objects`, git's own view of them, and a builder for hand-crafted (often hostile) packs.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::oid::ObjectId;
    use sha1::{Digest, Sha1};
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// Runs git in `dir` with a clean configuration; panics with git's stderr on failure.
    pub fn git(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let mut child = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run git");
        let mut input = child.stdin.take().expect("stdin");
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || input.write_all(&stdin));
        let out = child.wait_with_output().expect("wait for git");
        writer
            .join()
            .expect("stdin writer")
            .expect("write git stdin");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Deterministic pseudo-random numbers (xorshift64*), so tests need no extra crate.
    pub struct Rng(pub u64);

    impl Rng {
        /// The next number.
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number in `0..n`.
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Text of `lines` lines, with line `changed` (if any) replaced by a marker of `version`.
    fn text_file(name: &str, lines: usize, changed: Option<(usize, usize)>) -> String {
        let mut s = String::new();
        for i in 0..lines {
            match changed {
                Some((line, version)) if line == i => {
                    writeln!(s, "{name}: line {i} changed in version {version}")
                }
                _ => writeln!(
                    s,
                    "{name}: line {i} of some text that stays the same across versions"
                ),
            }
            .expect("write to string");
        }
        s
    }

    /// A `git fast-import` stream for a small history with every object type: two branches of commits editing
    /// similar text files (so packs get deltas), nested trees, an empty blob, a blob of a few hundred KiB (its
    /// inflated data spans several output buffers), and annotated tags (one pointing at another tag).
    pub fn history_stream(commits: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let big: Vec<u8> = (0..300_000)
            .map(|i| {
                if i % 61 == 60 {
                    b'\n'
                } else {
                    b"abcdefghijklmnopqrstuvwxyz0123456789 "[rng.below(37) as usize]
                }
            })
            .collect();
        let files = [
            "README",
            "src/lib.rs",
            "src/deep/nested/mod.rs",
            "docs/guide.md",
            "docs/api/index.md",
        ];
        let mut time = 1_700_000_000u64;
        for c in 0..commits {
            let branch = if c % 5 == 4 { "side" } else { "main" };
            time += 60;
            write!(
                out,
                "commit refs/heads/{branch}\nmark :{}\ncommitter A U Thor <author@example.com> {time} +0000\n",
                c + 1
            )
            .expect("write");
            let msg = format!("commit number {c}\n\nWith a body.\n");
            write!(out, "data {}\n{msg}", msg.len()).expect("write");
            if c == 4 {
                out.extend_from_slice(b"from :1\n");
            }
            let changes: Vec<(String, Vec<u8>)> = if c == 0 {
                let mut v: Vec<(String, Vec<u8>)> = files
                    .iter()
                    .map(|f| (f.to_string(), text_file(f, 80, None).into_bytes()))
                    .collect();
                v.push(("empty".into(), Vec::new()));
                v.push(("big.txt".into(), big.clone()));
                v
            } else {
                let f = files[c % files.len()];
                let mut v = vec![(
                    f.to_string(),
                    text_file(f, 80, Some((c * 7 % 80, c))).into_bytes(),
                )];
                if c % 4 == 0 {
                    let mut b = big.clone();
                    let at = c * 997 % (b.len() - 20);
                    b[at..at + 12].copy_from_slice(b"CHANGED HERE");
                    v.push(("big.txt".into(), b));
                }
                v
            };
            for (path, data) in changes {
                write!(out, "M 100644 inline {path}\ndata {}\n", data.len()).expect("write");
                out.extend_from_slice(&data);
                out.push(b'\n');
            }
        }
        for (i, (name, from)) in [("v1.0", ":1".to_string()), ("v2.0", format!(":{commits}"))]
            .iter()
            .enumerate()
        {
            let msg = format!("release {name}\n");
            write!(
                out,
                "tag {name}\nfrom {from}\ntagger A U Thor <author@example.com> {} +0000\ndata {}\n{msg}",
                time + i as u64,
                msg.len()
            )
            .expect("write");
        }
        out
    }

    /// A bare repository holding [`history_stream`]`(commits)` plus a tag of a tag.
    pub fn make_repo(dir: &Path, commits: usize) -> PathBuf {
        let repo = dir.join("repo.git");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "--bare"], b"");
        git(&repo, &["fast-import", "--quiet"], &history_stream(commits));
        git(
            &repo,
            &[
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.com",
                "tag",
                "-a",
                "-m",
                "tag of a tag",
                "nested",
                "v1.0",
            ],
            b"",
        );
        repo
    }

    /// A pack and git's view of it.
    pub struct GitPack {
        /// The pack's bytes.
        pub pack: Vec<u8>,
        /// Path of the pack file.
        pub pack_path: PathBuf,
        /// The `.idx` that `git index-pack` wrote for it.
        pub idx: Vec<u8>,
    }

    /// Packs every object reachable from any ref with `git pack-objects <options>` and indexes the result with
    /// `git index-pack` (into `out_dir`).
    pub fn pack_repo(repo: &Path, out_dir: &Path, options: &[&str]) -> GitPack {
        let mut args = vec!["pack-objects", "--all", "--stdout", "-q"];
        args.extend_from_slice(options);
        let pack = git(repo, &args, b"");
        write_and_index(out_dir, pack)
    }

    /// A scratch directory holding a repository and a pack of it; the files go when it is dropped.
    pub struct PackedRepo {
        /// The scratch directory, kept so its files live as long as this value.
        _dir: tempfile::TempDir,
        /// The bare repository, [`make_repo`]`(commits)`.
        pub repo: PathBuf,
        /// The repository packed with [`pack_repo`]`(options)` into `out/` of the scratch directory.
        pub pack: GitPack,
    }

    /// [`make_repo`]`(commits)` in a new scratch directory, packed with `git pack-objects <options>`.
    pub fn packed_repo(commits: usize, options: &[&str]) -> PackedRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = make_repo(dir.path(), commits);
        let pack = pack_repo(&repo, &dir.path().join("out"), options);
        PackedRepo {
            _dir: dir,
            repo,
            pack,
        }
    }

    /// Writes `pack` into `out_dir` and runs `git index-pack` on it.
    pub fn write_and_index(out_dir: &Path, pack: Vec<u8>) -> GitPack {
        std::fs::create_dir_all(out_dir).expect("mkdir");
        let pack_path = out_dir.join("test.pack");
        std::fs::write(&pack_path, &pack).expect("write pack");
        let idx_path = out_dir.join("test.idx");
        git(
            out_dir,
            &[
                "index-pack",
                "-o",
                idx_path.to_str().expect("utf-8 path"),
                pack_path.to_str().expect("utf-8 path"),
            ],
            b"",
        );
        let idx = std::fs::read(&idx_path).expect("read idx");
        GitPack {
            pack,
            pack_path,
            idx,
        }
    }

    /// One object as `git verify-pack -v` describes it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Verified {
        /// The object's id.
        pub oid: ObjectId,
        /// Its type name (the resolved type for deltas).
        pub kind: String,
        /// The size git reports.
        pub size: u64,
        /// Bytes the entry occupies in the pack.
        pub packed_len: u64,
        /// Id of the delta base, for deltas.
        pub base: Option<ObjectId>,
    }

    /// `git verify-pack -v` of the pack (whose `.idx` sits next to it), keyed by entry offset.
    pub fn verify_pack(pack: &GitPack) -> HashMap<u64, Verified> {
        let out = git(
            pack.pack_path.parent().expect("parent dir"),
            &[
                "verify-pack",
                "-v",
                pack.pack_path.to_str().expect("utf-8 path"),
            ],
            b"",
        );
        let mut map = HashMap::new();
        for line in String::from_utf8(out).expect("utf-8").lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(Ok(oid)) = f.first().map(|h| h.parse::<ObjectId>()) else {
                continue;
            };
            let num = |i: usize| f[i].parse::<u64>().expect("number");
            let base = f.get(6).map(|b| b.parse().expect("base id"));
            map.insert(
                num(4),
                Verified {
                    oid,
                    kind: f[1].to_string(),
                    size: num(2),
                    packed_len: num(3),
                    base,
                },
            );
        }
        map
    }

    /// `git show-index` of an `.idx`: entry offset to (id, CRC-32).
    pub fn show_index(dir: &Path, idx: &[u8]) -> HashMap<u64, (ObjectId, u32)> {
        let out = git(dir, &["show-index", "--object-format=sha1"], idx);
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let crc = u32::from_str_radix(f[2].trim_matches(|c| c == '(' || c == ')'), 16)
                    .expect("crc");
                (
                    f[0].parse().expect("offset"),
                    (f[1].parse().expect("id"), crc),
                )
            })
            .collect()
    }

    /// The type/size header of a pack entry.
    pub fn entry_header(kind: u8, size: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut byte = (kind << 4) | (size & 0x0f) as u8;
        let mut rest = size >> 4;
        while rest != 0 {
            out.push(byte | 0x80);
            byte = (rest & 0x7f) as u8;
            rest >>= 7;
        }
        out.push(byte);
        out
    }

    /// Git's encoding of an OFS_DELTA base distance.
    pub fn ofs_distance(mut distance: u64) -> Vec<u8> {
        let mut out = vec![(distance & 0x7f) as u8];
        distance >>= 7;
        while distance != 0 {
            distance -= 1;
            out.push(0x80 | (distance & 0x7f) as u8);
            distance >>= 7;
        }
        out.reverse();
        out
    }

    /// A little-endian base-128 number, as in delta headers.
    pub fn varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// zlib-compressed `data`.
    pub fn zlib(data: &[u8]) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
    }

    /// Builds packs byte by byte, so that any header or stream can be crafted.
    pub struct PackBuilder {
        /// The pack so far.
        pub bytes: Vec<u8>,
        /// Offsets of the entries added.
        pub offsets: Vec<u64>,
    }

    impl PackBuilder {
        /// A pack header with this version and object count.
        pub fn new(version: u32, count: u32) -> Self {
            let mut bytes = b"PACK".to_vec();
            bytes.extend_from_slice(&version.to_be_bytes());
            bytes.extend_from_slice(&count.to_be_bytes());
            PackBuilder {
                bytes,
                offsets: Vec::new(),
            }
        }

        /// Appends an entry made of raw parts (header, base reference, compressed data).
        pub fn raw(mut self, parts: &[&[u8]]) -> Self {
            self.offsets.push(self.bytes.len() as u64);
            for part in parts {
                self.bytes.extend_from_slice(part);
            }
            self
        }

        /// Appends a whole object of pack type `kind` (1-4).
        pub fn object(self, kind: u8, data: &[u8]) -> Self {
            self.raw(&[&entry_header(kind, data.len() as u64), &zlib(data)])
        }

        /// Appends an OFS_DELTA `distance` bytes back with this delta data.
        pub fn ofs_delta(self, distance: u64, delta: &[u8]) -> Self {
            self.raw(&[
                &entry_header(6, delta.len() as u64),
                &ofs_distance(distance),
                &zlib(delta),
            ])
        }

        /// Appends the SHA-1 trailer of everything so far.
        pub fn finish(mut self) -> Vec<u8> {
            let digest = Sha1::digest(&self.bytes);
            self.bytes.extend_from_slice(&digest);
            self.bytes
        }
    }

    /// Replaces the trailer of `pack` by the SHA-1 of the rest (after editing the pack's bytes).
    pub fn rehash(pack: &mut Vec<u8>) {
        pack.truncate(pack.len() - 20);
        let digest = Sha1::digest(&pack[..]);
        pack.extend_from_slice(&digest);
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::oid::hash_object;

    /// Parses `pack` fed in one piece.
    fn parse(pack: &[u8]) -> Result<ParsedPack, PackError> {
        let mut parser = PackParser::new();
        parser.feed(pack)?;
        parser.finish()
    }

    /// Parses `pack` fed in chunks whose sizes `next_len` chooses.
    fn parse_chunked(
        pack: &[u8],
        mut next_len: impl FnMut() -> usize,
    ) -> Result<ParsedPack, PackError> {
        let mut parser = PackParser::new();
        let mut rest = pack;
        while !rest.is_empty() {
            let n = next_len().clamp(1, rest.len());
            parser.feed(&rest[..n])?;
            rest = &rest[n..];
        }
        parser.finish()
    }

    fn kind_name(entry: &Entry) -> Option<&'static str> {
        match entry.kind {
            EntryKind::Base(kind) => Some(kind.as_str()),
            _ => None,
        }
    }

    /// Checks every entry against `git verify-pack -v`, `git show-index` and the sizes `git cat-file` reports in
    /// `repo`; returns the parse.
    fn check_against_git(repo: &std::path::Path, pack: &GitPack) -> ParsedPack {
        let parsed = parse(&pack.pack).expect("git's pack parses");
        let verified = verify_pack(pack);
        let index = show_index(repo, &pack.idx);
        let mut query = String::new();
        for entry in &parsed.entries {
            query.push_str(&format!("{}\n", verified[&entry.offset].oid));
        }
        let sizes = git(
            repo,
            &["cat-file", "--batch-check=%(objectsize)"],
            query.as_bytes(),
        );
        let sizes: Vec<u64> = String::from_utf8(sizes)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        for (entry, size) in parsed.entries.iter().zip(&sizes) {
            assert_eq!(
                entry.result_size, *size,
                "result size of entry at {}",
                entry.offset
            );
        }
        assert_eq!(parsed.entries.len(), verified.len());
        assert_eq!(parsed.pack_len, pack.pack.len() as u64);
        assert_eq!(&parsed.checksum.0[..], &pack.pack[pack.pack.len() - 20..]);
        for entry in &parsed.entries {
            let v = &verified[&entry.offset];
            assert_eq!(
                entry.packed_len, v.packed_len,
                "length of entry at {}",
                entry.offset
            );
            assert_eq!(
                entry.crc32, index[&entry.offset].1,
                "crc of entry at {}",
                entry.offset
            );
            assert!(
                entry.data_offset > entry.offset
                    && entry.data_offset < entry.offset + entry.packed_len
            );
            match entry.kind {
                EntryKind::Base(_) => {
                    assert_eq!(kind_name(entry), Some(v.kind.as_str()));
                    assert_eq!(entry.oid, Some(v.oid));
                    assert_eq!(entry.size, v.size);
                    assert_eq!(entry.result_size, v.size);
                    assert_eq!(v.base, None);
                }
                EntryKind::OfsDelta { base_offset } => {
                    assert_eq!(entry.oid, None);
                    assert_eq!(Some(verified[&base_offset].oid), v.base);
                    assert_eq!(
                        entry.size, v.size,
                        "delta size of entry at {}",
                        entry.offset
                    );
                }
                EntryKind::RefDelta { base } => {
                    assert_eq!(entry.oid, None);
                    assert_eq!(Some(base), v.base);
                    assert_eq!(
                        entry.size, v.size,
                        "delta size of entry at {}",
                        entry.offset
                    );
                }
            }
        }
        parsed
    }

    #[test]
    fn bases_only_pack_matches_git() {
        let packed = packed_repo(30, &["--window=0", "--no-reuse-delta"]);
        let parsed = check_against_git(&packed.repo, &packed.pack);
        assert!(parsed.entries.iter().all(|e| !e.is_delta()));
        assert_eq!(parsed.version, 2);
        for kind in [
            ObjectKind::Commit,
            ObjectKind::Tree,
            ObjectKind::Blob,
            ObjectKind::Tag,
        ] {
            assert!(
                parsed
                    .entries
                    .iter()
                    .any(|e| e.kind == EntryKind::Base(kind)),
                "{kind:?} present"
            );
        }
        // The big blob inflates through several output buffers.
        assert!(parsed
            .entries
            .iter()
            .any(|e| e.size > 4 * INFLATE_BUF_LEN as u64));
        assert!(parsed.entries.iter().any(|e| e.size == 0));
    }
    #[test]
    fn ofs_delta_pack_matches_git() {
        let packed = packed_repo(30, &["--delta-base-offset", "--no-reuse-delta"]);
        let parsed = check_against_git(&packed.repo, &packed.pack);
        let deltas = parsed
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::OfsDelta { .. }))
            .count();
        assert!(deltas >= 20, "only {deltas} OFS deltas");
        assert!(!parsed
            .entries
            .iter()
            .any(|e| matches!(e.kind, EntryKind::RefDelta { .. })));
    }

    #[test]
    fn ref_delta_pack_matches_git() {
        let packed = packed_repo(30, &["--no-reuse-delta"]);
        let parsed = check_against_git(&packed.repo, &packed.pack);
        let deltas = parsed
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::RefDelta { .. }))
            .count();
        assert!(deltas >= 20, "only {deltas} REF deltas");
        assert!(!parsed
            .entries
            .iter()
            .any(|e| matches!(e.kind, EntryKind::OfsDelta { .. })));
    }

    #[test]
    fn stored_blocks_pack_matches_git() {
        let packed = packed_repo(
            10,
            &[
                "--delta-base-offset",
                "--no-reuse-object",
                "--compression=0",
            ],
        );
        check_against_git(&packed.repo, &packed.pack);
    }

    #[test]
    fn empty_pack_from_git() {
        let dir = tempfile::tempdir().unwrap();
        let repo = make_repo(dir.path(), 1);
        let pack = git(&repo, &["pack-objects", "--stdout", "-q"], b"");
        assert_eq!(pack.len(), 32);
        let parsed = parse(&pack).unwrap();
        assert!(parsed.entries.is_empty());
        assert_eq!(parsed.pack_len, 32);
        assert_eq!(&parsed.checksum.0[..], &pack[12..]);
    }

    #[test]
    fn any_chunking_gives_identical_results() {
        let dir = tempfile::tempdir().unwrap();
        let repo = make_repo(dir.path(), 12);
        for options in [
            &["--delta-base-offset", "--no-reuse-delta"][..],
            &["--no-reuse-delta"][..],
        ] {
            let pack = pack_repo(&repo, &dir.path().join("out"), options).pack;
            let whole = parse(&pack).unwrap();
            assert_eq!(parse_chunked(&pack, || 1).unwrap(), whole);
            for seed in 1..=8u64 {
                let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let max = [3, 20, 200, 5000, 70_000, 300_000, 1 << 20, 7][seed as usize % 8];
                assert_eq!(
                    parse_chunked(&pack, || rng.below(max) as usize + 1).unwrap(),
                    whole,
                    "seed {seed}"
                );
            }
            // Chunks split exactly at every entry boundary, and one byte either side of it.
            for shift in [-1i64, 0, 1] {
                let mut cuts: Vec<usize> = whole
                    .entries
                    .iter()
                    .map(|e| (e.offset as i64 + shift) as usize)
                    .collect();
                cuts.push(pack.len() - 20);
                let mut parser = PackParser::new();
                let mut from = 0;
                for cut in cuts {
                    parser.feed(&pack[from..cut]).unwrap();
                    from = cut;
                }
                parser.feed(&pack[from..]).unwrap();
                assert_eq!(parser.finish().unwrap(), whole);
            }
        }
    }

    #[test]
    fn reports_progress_while_feeding() {
        let pack = PackBuilder::new(2, 2)
            .object(3, b"one")
            .object(3, b"two")
            .finish();
        let mut parser = PackParser::new();
        assert_eq!(parser.object_count(), None);
        parser.feed(&pack[..12]).unwrap();
        assert_eq!(parser.object_count(), Some(2));
        parser.feed(&pack[12..pack.len() - 20]).unwrap();
        assert_eq!(parser.entries().len(), 2);
        assert_eq!(parser.bytes_consumed(), pack.len() as u64 - 20);
    }

    #[test]
    fn crafted_pack_with_every_entry_form() {
        let base = b"hello hello hello\n";
        let mut delta = varint(base.len() as u64);
        delta.extend(varint(1 << 40));
        delta.extend_from_slice(b"\x05hello");
        let base_id = hash_object(ObjectKind::Blob, base);
        let builder = PackBuilder::new(3, 5)
            .object(3, base)
            .object(
                1,
                b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nempty\n",
            )
            .object(3, b"");
        let distance = builder.bytes.len() as u64 - builder.offsets[0];
        let builder = builder.ofs_delta(distance, &delta).raw(&[
            &entry_header(7, delta.len() as u64),
            &base_id.0,
            &zlib(&delta),
        ]);
        let offsets = builder.offsets.clone();
        let pack = builder.finish();
        let parsed = parse(&pack).unwrap();
        assert_eq!(parsed.version, 3);
        assert_eq!(parse_chunked(&pack, || 1).unwrap(), parsed);
        let e = &parsed.entries;
        assert_eq!(e.iter().map(|e| e.offset).collect::<Vec<_>>(), offsets);
        assert_eq!(e[0].oid, Some(base_id));
        assert_eq!(e[2].oid, Some(hash_object(ObjectKind::Blob, b"")));
        assert_eq!(
            e[3].kind,
            EntryKind::OfsDelta {
                base_offset: offsets[0]
            }
        );
        assert_eq!(e[4].kind, EntryKind::RefDelta { base: base_id });
        for d in &e[3..] {
            assert_eq!(
                (d.size, d.result_size, d.oid),
                (delta.len() as u64, 1 << 40, None)
            );
        }
        // CRC-32 over the raw entry, header and base reference included.
        assert_eq!(
            e[4].crc32,
            crc32fast::hash(&pack[offsets[4] as usize..pack.len() - 20])
        );
        assert_eq!(e[4].data_offset, offsets[4] + 1 + 20);
    }

    #[test]
    fn rejects_bad_pack_headers() {
        let good = PackBuilder::new(2, 1).object(3, b"x").finish();
        let mut bad = good.clone();
        bad[0] = b'K';
        assert_eq!(
            parse(&bad),
            Err(PackError::BadSignature { found: *b"KACK" })
        );
        for version in [0, 1, 4, u32::MAX] {
            let pack = PackBuilder::new(version, 1).object(3, b"x").finish();
            assert_eq!(parse(&pack), Err(PackError::UnsupportedVersion { version }));
        }
        // An HTML error page instead of a pack.
        assert!(matches!(
            parse(b"<html><body>503</body></html>"),
            Err(PackError::BadSignature { .. })
        ));
    }

    #[test]
    fn rejects_truncation_anywhere() {
        let pack = packed_repo(8, &["--delta-base-offset"]).pack.pack;
        let entries = parse(&pack).unwrap().entries;
        let mut cuts = vec![
            0,
            1,
            11,
            12,
            13,
            pack.len() - 20,
            pack.len() - 19,
            pack.len() - 1,
        ];
        for e in entries.iter().take(20) {
            cuts.extend([
                e.offset as usize + 1,
                e.data_offset as usize,
                e.data_offset as usize + 3,
            ]);
            cuts.push((e.offset + e.packed_len) as usize - 1);
        }
        for cut in cuts {
            let err = parse(&pack[..cut]).unwrap_err();
            assert!(
                matches!(err, PackError::Truncated { offset, .. } if offset == cut as u64),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let pack = packed_repo(6, &["--delta-base-offset", "--no-reuse-delta"])
            .pack
            .pack;
        let big = parse(&pack)
            .unwrap()
            .entries
            .into_iter()
            .max_by_key(|e| e.packed_len)
            .unwrap();
        for i in 0..pack.len() {
            // Every byte of small entries; a sample inside the big blob's stream.
            if i > big.data_offset as usize + 64
                && i < (big.offset + big.packed_len) as usize - 64
                && i % 997 != 0
            {
                continue;
            }
            let mut bad = pack.clone();
            bad[i] ^= 0x40;
            assert!(parse(&bad).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn corrupt_data_names_the_entry() {
        let pack = PackBuilder::new(2, 2)
            .object(3, b"first object")
            .object(3, b"second object")
            .finish();
        let second = parse(&pack).unwrap().entries[1].clone();
        // Damage the deflate data of the second entry, then fix the trailer: only zlib can notice.
        let mut bad = pack.clone();
        bad[second.data_offset as usize + 4] ^= 0xff;
        rehash(&mut bad);
        let err = parse(&bad).unwrap_err();
        assert!(
            matches!(err, PackError::Zlib { offset, .. } | PackError::TooShort { offset, .. } | PackError::TooLong { offset, .. } if offset == second.offset),
            "{err}"
        );
        // Damage the adler32 checksum at the end of the zlib stream.
        let mut bad = pack.clone();
        bad[pack.len() - 21] ^= 1;
        rehash(&mut bad);
        assert_eq!(
            parse(&bad),
            Err(PackError::Zlib {
                offset: second.offset,
                detail: "invalid deflate stream or checksum"
            })
        );
        // A damaged trailer.
        let mut bad = pack.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            matches!(parse(&bad), Err(PackError::ChecksumMismatch { offset, count: 2, .. }) if offset == last as u64 - 19)
        );
    }

    #[test]
    fn rejects_wrong_object_counts_and_trailing_data() {
        let pack = PackBuilder::new(2, 3)
            .object(3, b"a")
            .object(3, b"b")
            .object(3, b"c")
            .finish();
        let entries = parse(&pack).unwrap().entries;
        // Too low: the last entry is taken for the trailer.
        let mut low = pack.clone();
        low[11] = 2;
        rehash(&mut low);
        assert!(
            matches!(parse(&low), Err(PackError::ChecksumMismatch { offset, count: 2, .. }) if offset == entries[2].offset)
        );
        // Too high: the trailer is taken for an entry, and the data ends early.
        for count in [4, 1000, u32::MAX] {
            let mut high = pack.clone();
            high[8..12].copy_from_slice(&count.to_be_bytes());
            rehash(&mut high);
            assert!(parse(&high).is_err(), "count {count}");
        }
        // Trailing garbage, in the same chunk or a later one.
        let mut extra = pack.clone();
        extra.push(0);
        assert_eq!(
            parse(&extra),
            Err(PackError::TrailingData {
                offset: pack.len() as u64
            })
        );
        let mut parser = PackParser::new();
        parser.feed(&pack).unwrap();
        assert_eq!(
            parser.feed(b"more"),
            Err(PackError::TrailingData {
                offset: pack.len() as u64
            })
        );
        // The error sticks.
        assert_eq!(
            parser.feed(b""),
            Err(PackError::TrailingData {
                offset: pack.len() as u64
            })
        );
        assert_eq!(
            parser.finish(),
            Err(PackError::TrailingData {
                offset: pack.len() as u64
            })
        );
    }

    #[test]
    fn rejects_bad_ofs_delta_bases() {
        let delta = [1u8, 1, 0x01, b'x'];
        let builder = PackBuilder::new(2, 2).object(3, b"y");
        let here = builder.bytes.len() as u64;
        for (distance, expected) in [
            (
                0,
                PackError::BaseOutOfRange {
                    offset: here,
                    distance: 0,
                },
            ),
            (
                here + 1,
                PackError::BaseOutOfRange {
                    offset: here,
                    distance: here + 1,
                },
            ),
            (
                here,
                PackError::BaseNotAnEntry {
                    offset: here,
                    base_offset: 0,
                },
            ),
            (
                1,
                PackError::BaseNotAnEntry {
                    offset: here,
                    base_offset: here - 1,
                },
            ),
            (
                here - 13,
                PackError::BaseNotAnEntry {
                    offset: here,
                    base_offset: 13,
                },
            ),
        ] {
            let pack = PackBuilder {
                bytes: builder.bytes.clone(),
                offsets: Vec::new(),
            }
            .ofs_delta(distance, &delta)
            .finish();
            assert_eq!(parse(&pack), Err(expected.clone()), "distance {distance}");
            assert_eq!(
                parse_chunked(&pack, || 1),
                Err(expected),
                "distance {distance}, bytewise"
            );
        }
        // A valid distance parses.
        let pack = PackBuilder {
            bytes: builder.bytes.clone(),
            offsets: Vec::new(),
        }
        .ofs_delta(here - 12, &delta)
        .finish();
        assert_eq!(
            parse(&pack).unwrap().entries[1].kind,
            EntryKind::OfsDelta { base_offset: 12 }
        );
        // A distance that overflows 64 bits.
        let mut raw = entry_header(6, delta.len() as u64);
        raw.extend([0xff; 11]);
        raw.push(0);
        let pack = PackBuilder {
            bytes: builder.bytes.clone(),
            offsets: Vec::new(),
        }
        .raw(&[&raw, &zlib(&delta)])
        .finish();
        assert_eq!(
            parse(&pack),
            Err(PackError::BaseDistanceOverflow { offset: here })
        );
        // The largest encodable distance still points before the pack.
        let pack = PackBuilder {
            bytes: builder.bytes.clone(),
            offsets: Vec::new(),
        }
        .ofs_delta(u64::MAX, &delta)
        .finish();
        assert_eq!(
            parse(&pack),
            Err(PackError::BaseOutOfRange {
                offset: here,
                distance: u64::MAX
            })
        );
    }

    #[test]
    fn rejects_bad_entry_headers() {
        for kind in [0u8, 5] {
            let pack = PackBuilder::new(2, 1)
                .raw(&[&entry_header(kind, 1), &zlib(b"x")])
                .finish();
            assert_eq!(
                parse(&pack),
                Err(PackError::InvalidType { offset: 12, kind })
            );
        }
        // A size varint that never ends, and one that overflows 64 bits.
        let mut never_ending = vec![0xb0];
        never_ending.extend([0x80; 100]);
        let overflowing = [&[0xbf][..], &[0xff; 9], &[0x7f]].concat();
        for raw in [never_ending, overflowing] {
            let pack = PackBuilder::new(2, 1).raw(&[&raw]).finish();
            assert_eq!(parse(&pack), Err(PackError::SizeOverflow { offset: 12 }));
            assert_eq!(
                parse_chunked(&pack, || 1),
                Err(PackError::SizeOverflow { offset: 12 })
            );
        }
        // The largest size that fits is accepted as a header (the data is then too short).
        let pack = PackBuilder::new(2, 1)
            .raw(&[&entry_header(3, u64::MAX), &zlib(b"x")])
            .finish();
        assert_eq!(
            parse(&pack),
            Err(PackError::TooShort {
                offset: 12,
                declared: u64::MAX,
                actual: 1
            })
        );
    }

    #[test]
    fn rejects_declared_size_mismatch() {
        for (declared, data, expected) in [
            (
                10,
                &b"eleven byte"[..],
                PackError::TooLong {
                    offset: 12,
                    declared: 10,
                },
            ),
            (
                12,
                b"eleven byte",
                PackError::TooShort {
                    offset: 12,
                    declared: 12,
                    actual: 11,
                },
            ),
            (
                0,
                b"x",
                PackError::TooLong {
                    offset: 12,
                    declared: 0,
                },
            ),
            (
                1,
                b"",
                PackError::TooShort {
                    offset: 12,
                    declared: 1,
                    actual: 0,
                },
            ),
        ] {
            let pack = PackBuilder::new(2, 1)
                .raw(&[&entry_header(3, declared), &zlib(data)])
                .finish();
            assert_eq!(parse(&pack), Err(expected.clone()));
            assert_eq!(parse_chunked(&pack, || 1), Err(expected));
        }
        // A zlib bomb declared tiny is stopped after one output buffer, not inflated whole.
        let bomb = zlib(&vec![0u8; 50 << 20]);
        let pack = PackBuilder::new(2, 1)
            .raw(&[&entry_header(3, 100), &bomb])
            .finish();
        assert_eq!(
            parse(&pack),
            Err(PackError::TooLong {
                offset: 12,
                declared: 100
            })
        );
        // Same for a delta.
        let pack = PackBuilder::new(2, 2)
            .object(3, b"base")
            .raw(&[&entry_header(7, 100), &[0; 20], &bomb])
            .finish();
        assert!(matches!(
            parse(&pack),
            Err(PackError::TooLong { declared: 100, .. })
        ));
    }

    #[test]
    fn rejects_bad_delta_headers() {
        let bad_deltas: [(&[u8], &str); 4] = [
            (&[], "is truncated"),
            (&[0x05], "is truncated"),
            (&[0x85, 0x80], "is truncated"),
            (&[0xff; 12], "has a size that does not fit in 64 bits"),
        ];
        for (delta, problem) in bad_deltas {
            let builder = PackBuilder::new(2, 2).object(3, b"base");
            let here = builder.bytes.len() as u64;
            let pack = builder.ofs_delta(here - 12, delta).finish();
            let expected = PackError::BadDeltaHeader {
                offset: here,
                problem,
            };
            assert_eq!(parse(&pack), Err(expected.clone()), "{delta:?}");
            assert_eq!(parse_chunked(&pack, || 1), Err(expected), "{delta:?}");
        }
        // Ten-byte sizes (u64::MAX) are fine.
        let mut delta = varint(u64::MAX);
        delta.extend(varint(u64::MAX));
        let builder = PackBuilder::new(2, 2).object(3, b"base");
        let distance = builder.bytes.len() as u64 - 12;
        let pack = builder.ofs_delta(distance, &delta).finish();
        assert_eq!(
            parse_chunked(&pack, || 1).unwrap().entries[1].result_size,
            u64::MAX
        );
    }

    #[test]
    fn delta_header_straddles_output_pieces() {
        let mut bytes = varint(300);
        bytes.extend(varint(1 << 35));
        bytes.extend_from_slice(b"rest of the delta");
        for split in 0..bytes.len() {
            let mut header = DeltaHeader::default();
            assert!(header.push(&bytes[..split]));
            assert!(header.push(&bytes[split..]));
            assert_eq!(header.result_size(), Some(1 << 35));
        }
        let mut header = DeltaHeader::default();
        for byte in &bytes[..8] {
            assert_eq!(header.result_size(), None);
            assert!(header.push(&[*byte]));
        }
        assert_eq!(header.result_size(), Some(1 << 35));
    }

    #[test]
    fn finds_entry_starts_at_any_distance() {
        let entries: Vec<Entry> = (0..1000u64)
            .map(|i| Entry {
                offset: 12 + i * 10,
                data_offset: 14 + i * 10,
                packed_len: 10,
                kind: EntryKind::Base(ObjectKind::Blob),
                size: 1,
                result_size: 1,
                crc32: 0,
                oid: None,
            })
            .collect();
        for len in [0, 1, 2, 3, 7, 8, 9, 1000] {
            let entries = &entries[..len];
            for offset in 0..12 + len as u64 * 10 + 5 {
                let expected = offset >= 12 && offset % 10 == 2 && offset < 12 + len as u64 * 10;
                assert_eq!(
                    is_entry_start(entries, offset),
                    expected,
                    "offset {offset} of {len}"
                );
            }
        }
    }

    #[test]
    fn error_messages_name_the_place() {
        let err = parse(b"<html><body>503</body></html>").unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a git pack: it starts with \"<htm\" instead of \"PACK\""
        );
        let pack = PackBuilder::new(2, 2)
            .object(3, b"a")
            .object(3, b"b")
            .finish();
        let err = parse(&pack[..pack.len() - 25]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "pack truncated at offset {}: input ended in an entry's compressed data (1 of 2 objects read)",
                pack.len() - 25
            )
        );
        let err = PackError::TooShort {
            offset: 1234,
            declared: 10,
            actual: 3,
        };
        assert_eq!(
            err.to_string(),
            "pack entry at offset 1234: inflates to 3 bytes but its header declares 10"
        );
    }
}
