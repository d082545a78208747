//! Streaming objects too big to hold whole: chunked pack input inflated with the size-checked
//! [`EntryInflater`], the output window of each streamed level, and the levels that produce a big object (an
//! inflated base, or a delta applied to the level below) a chunk at a time.

use super::{
    entry_end, EntryIndex, EntryProblem, ResolveError, DELTA_BUF, PRODUCE_CHUNK, READ_CHUNK,
};
use crate::git::delta::{DeltaDecoder, DeltaError, DeltaStep};
use crate::git::oid::{ObjectHasher, ObjectId, ObjectKind};
use crate::git::pack::entry::Entry;
use crate::git::pack::inflate::{EntryInflater, InflateError};
use crate::git::scan::{ObjectScan, ScanPlan};
use bytes::Bytes;
use std::sync::Arc;

/// Compressed bytes of one entry, fetched from the pack in chunks and inflated as a stream.
struct StreamInput {
    /// Pack offsets of the entry's zlib stream, and of the next byte to fetch.
    start: u64,
    end: u64,
    next: u64,
    /// The latest bytes fetched; `chunk[pos..]` not inflated yet.
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
        inflater.reset(e.size());
        StreamInput {
            start: e.data_offset(),
            end: entry_end(e),
            next: e.data_offset(),
            chunk: Bytes::new(),
            pos: 0,
            inflater,
        }
    }

    fn restart(&mut self) {
        self.next = self.start;
        self.chunk = Bytes::new();
        self.pos = 0;
        let expected = self.inflater.expected();
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
            if self.inflater.has_ended() {
                self.inflater
                    .finish(self.pos < self.chunk.len() || self.next < self.end)?;
                return Ok(Pull::Ended);
            }
            let step = self.inflater.inflate(&self.chunk[self.pos..], out)?;
            self.pos += step.consumed;
            if step.written > 0 {
                return Ok(Pull::Wrote(step.written));
            }
            if self.inflater.has_ended() {
                continue;
            }
            if self.pos == self.chunk.len() {
                if self.next < self.end {
                    return Ok(Pull::NeedInput {
                        offset: self.next,
                        len: READ_CHUNK.min(self.end - self.next),
                    });
                }
                return Err(InflateError::Zlib("truncated").into());
            }
            if step.consumed == 0 {
                return Err(InflateError::Zlib("no progress").into());
            }
        }
    }
}

/// Ring buffer of the latest bytes a level produced, addressed by absolute position in its output. (Visible in
/// `resolve` for its tests.)
pub(super) struct Ring {
    buf: Vec<u8>,
    cap: usize,
    /// Index in `buf` of the next byte to write once `buf` is full.
    write: usize,
    len: usize,
    /// Position, in the level's output, just past the newest byte.
    pub(super) end: u64,
}

impl Ring {
    /// A ring keeping up to `cap` bytes (allocated as bytes arrive).
    pub(super) fn new(cap: usize) -> Self {
        Ring {
            buf: Vec::new(),
            cap,
            write: 0,
            len: 0,
            end: 0,
        }
    }

    /// Position, in the level's output, of the oldest byte kept.
    pub(super) fn start(&self) -> u64 {
        self.end - self.len as u64
    }

    /// Forgets everything: the level starts its output again.
    pub(super) fn clear(&mut self) {
        self.write = 0;
        self.len = 0;
        self.end = 0;
        self.buf.clear();
    }

    /// Appends the level's next output bytes, dropping the oldest beyond the capacity.
    pub(super) fn push(&mut self, data: &[u8]) {
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
    pub(super) fn slice(&self, pos: u64, max: u64) -> &[u8] {
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
pub(super) struct Level {
    entry: EntryIndex,
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
    /// Reads the output with the hasher, for the resolver's [`Scanner`](crate::git::scan::Scanner).
    scan: Option<ObjectScan>,
}

/// Where a level's bytes come from.
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

/// A delta entry being inflated, decoded and applied to the level below.
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

/// What one [`Level::produce`] call did.
pub(super) enum LevelStep {
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
    fn new(entry: EntryIndex, offset: u64, size: u64, producer: Producer, window: usize) -> Self {
        Level {
            entry,
            offset,
            size,
            producer,
            out: Ring::new(window),
            hasher: None,
            hashed: 0,
            collect: None,
            scan: None,
        }
    }

    /// The lowest level of a stream whose base is already in memory.
    pub(super) fn memory(data: Arc<Vec<u8>>) -> Self {
        let size = data.len() as u64;
        Level::new(EntryIndex::NONE, 0, size, Producer::Memory(data), 0)
    }

    /// Non-delta entry `e` (number `entry`), inflated from the pack, keeping `window` bytes for the level above.
    pub(super) fn inflate(e: &Entry, entry: EntryIndex, window: usize) -> Self {
        let producer = Producer::Inflate {
            input: StreamInput::new(e),
            scratch: vec![0; PRODUCE_CHUNK],
        };
        Level::new(entry, e.offset(), e.size(), producer, window)
    }

    /// Delta entry `e` (number `entry`) applied to the level below, keeping `window` bytes for the level above.
    pub(super) fn delta(e: &Entry, entry: EntryIndex, window: usize) -> Self {
        let producer = Producer::Delta(Box::new(DeltaProducer {
            input: StreamInput::new(e),
            buf: vec![0; DELTA_BUF],
            start: 0,
            end: 0,
            decoder: DeltaDecoder::new(),
            copy: None,
        }));
        Level::new(entry, e.offset(), e.result_size(), producer, window)
    }

    /// Pack offset of the level's entry (0 for an object in memory).
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes this level has produced since it (last) started: its position in its output.
    pub(super) fn produced(&self) -> u64 {
        self.out.end
    }

    /// Makes this the top of its stream: nothing copies from it, so it keeps no window.
    pub(super) fn drop_window(&mut self) {
        self.out = Ring::new(0);
    }

    /// Keeps all of this level's output, for [`take_collected`](Self::take_collected).
    pub(super) fn collect(&mut self) {
        self.collect = Some(Vec::new());
    }

    /// The output kept since [`collect`](Self::collect).
    pub(super) fn take_collected(&mut self) -> Vec<u8> {
        self.collect.take().unwrap_or_default()
    }

    /// Hashes this level's output as an object of `kind`, and scans it if `plan` wants it, for
    /// [`take_id`](Self::take_id).
    pub(super) fn hash_as(&mut self, kind: ObjectKind, plan: &ScanPlan) {
        self.hasher = Some(ObjectHasher::new(kind, self.size));
        self.scan = plan.begin(kind, self.size);
    }

    /// The entry this level produces, its id and its scan, once hashed (see [`hash_as`](Self::hash_as)).
    pub(super) fn take_id(&mut self) -> Option<(EntryIndex, ObjectId, Option<ObjectScan>)> {
        let hasher = self.hasher.take()?;
        Some((self.entry, hasher.finish(), self.scan.take()))
    }

    /// Hands this level pack bytes it asked for with [`LevelStep::NeedInput`].
    pub(super) fn feed(&mut self, data: Bytes) {
        match &mut self.producer {
            Producer::Memory(_) => {}
            Producer::Inflate { input, .. } => input.feed(data),
            Producer::Delta(d) => d.input.feed(data),
        }
    }

    /// The error `problem` of this level's entry.
    pub(super) fn error(&self, problem: EntryProblem) -> ResolveError {
        ResolveError::Entry {
            offset: self.offset,
            problem,
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

    /// Produces up to about [`PRODUCE_CHUNK`] bytes of this level's object; a delta copies from `base`, the level
    /// below (restarting it when a copy reaches behind its window, counted in `restarts`).
    pub(super) fn produce(
        &mut self,
        base: Option<&mut Level>,
        restarts: &mut u64,
    ) -> Result<LevelStep, ResolveError> {
        let Level {
            offset,
            size,
            producer,
            out,
            hasher,
            hashed,
            collect,
            scan,
            ..
        } = self;
        let offset = *offset;
        let fail = move |problem: EntryProblem| ResolveError::Entry { offset, problem };
        match producer {
            Producer::Memory(_) => Ok(LevelStep::End),
            Producer::Inflate { input, scratch } => match input.inflate(scratch).map_err(fail)? {
                Pull::Wrote(n) => {
                    emit(out, (hasher, scan), hashed, collect, &scratch[..n]);
                    Ok(LevelStep::Produced)
                }
                Pull::NeedInput { offset, len } => Ok(LevelStep::NeedInput { offset, len }),
                Pull::Ended => Ok(LevelStep::End),
            },
            Producer::Delta(d) => {
                let Some(base) = base else {
                    return Err(fail(EntryProblem::BaseEndedEarly));
                };
                let mut made = 0;
                let blocked = |made: usize, step: LevelStep| {
                    if made > 0 {
                        LevelStep::Produced
                    } else {
                        step
                    }
                };
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
                                emit(out, (hasher, scan), hashed, collect, bytes);
                                made += bytes.len();
                                d.copy = (left > n).then_some((pos + n, left - n));
                            }
                            Access::Ahead => return Ok(blocked(made, LevelStep::NeedBase)),
                            Access::Behind => {
                                base.restart();
                                *restarts += 1;
                                return Ok(blocked(made, LevelStep::NeedBase));
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
                                emit(out, (hasher, scan), hashed, collect, bytes);
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
                            return Ok(blocked(made, LevelStep::NeedInput { offset, len }))
                        }
                        Pull::Ended => {
                            d.decoder.finish().map_err(|e| fail(e.into()))?;
                            return Ok(blocked(made, LevelStep::End));
                        }
                    }
                }
                Ok(LevelStep::Produced)
            }
        }
    }
}

/// Hands freshly produced bytes to a level's window, hasher (and its scan) and collector.
fn emit(
    out: &mut Ring,
    (hasher, scan): (&mut Option<ObjectHasher>, &mut Option<ObjectScan>),
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
        if let Some(scan) = scan {
            scan.update(fresh);
        }
        if let Some(collect) = collect {
            collect.extend_from_slice(fresh);
        }
        *hashed = end;
    }
    out.push(data);
}
