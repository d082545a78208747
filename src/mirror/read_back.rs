//! Reading a stored pack back for delta resolution.
//!
//! A pack too big for the memory budget is streamed into the store while it arrives (`fetch.rs`), and the
//! resolver then reads it again through the [`PackReader`] trait. Its reads come mostly in pack order, so
//! [`StorePackReader`] serves them from a few *streams*: each is one streamed read of the pack from some offset to
//! its end ([`Store::get_stream`], one ranged GET on S3), pulled by a task of its own at most a window ahead of the
//! reads it serves, so the resolver rarely waits and memory stays bounded whatever the pack's size. A read is
//! served by a stream when it starts at most its *reach* ahead of where the stream's reads got to: the bytes in
//! between are read through and dropped, which holds no more memory than the window (they flow through it and
//! give it back) and costs their transfer, where a new stream would cost a request. A stream is opened at the
//! first read at or after where the resolver's scan [advises](PackReader::advise_scan) it is, unless a stream
//! already reaches that offset (a later pass reads a few entries here and there: it passes most without reading
//! them), and where a read continues an earlier one (it starts where that one ended, or just after the next
//! entry's header: one of the 2-4 interleaved positions of a streamed big object, the entries of a delta chain
//! read one after the other), or where a read follows [`ALONE_RUN`] reads made on their own, each within reach
//! of the one before (the deltas a pass resolves behind the scan at its end, in pack order); beyond the most
//! streams allowed, the least recently used is closed. Any other read (the entries of a base rebuilt behind the
//! scan) fetches just its own bytes with [`Store::get_range`]. A stream that breaks off is resumed by the store; an error it cannot get past fails the
//! read that meets it, and the stream is closed.

use crate::git::resolve::{PackReader, ReadError};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// How many recent reads' ends are remembered to recognise a read that continues one of them.
const STREAMS: usize = 8;

/// A read that starts at most this far after where a recent read ended continues it: at most the header of the
/// next entry (30 bytes) lies between the data of two neighbouring entries.
const NEAR: u64 = 64;

/// Most bytes of one piece a stream hands over (less when the window is smaller). Pieces are copies of the
/// store's chunks, each an allocation of its own of exactly its length: a chunk of an HTTP client is often a
/// slice of a larger read buffer that it would keep alive whole, so that the bytes held would be more than the
/// window counts. One piece is being filled per stream besides the window, and a read served from a stream
/// (a slice of a piece) keeps that piece alive until it is dropped.
pub(super) const PIECE: usize = 64 << 10;

/// The smallest window a stream is given.
const MIN_WINDOW: u64 = 64 << 10;

/// The largest window a stream is given (far more than any budget's share, so that windows fit a semaphore).
const MAX_WINDOW: u64 = 1 << 30;

/// The least reach of a stream: a read starting at most this far ahead of where its reads got to is served by
/// reading through the gap rather than by another request. On S3 a request costs 20-50 ms before its first byte
/// and one stream carries about 100 MB/s in region, so reading through a gap of 8 MiB costs about as long as
/// 2-3 requests' latency, a gap the stream's window has mostly fetched ahead already while the resolver worked.
const MIN_REACH: u64 = 8 << 20;

/// How many reads made on their own in a row, each within a stream's reach after the one before, make the next
/// such read open a stream: from the third, a stream costs fewer requests than reads on their own would.
const ALONE_RUN: usize = 2;

/// Reads a stored pack back through a few streamed reads, and ranged reads for what they do not serve.
pub(super) struct StorePackReader {
    store: Arc<dyn Store>,
    key: String,
    len: u64,
    /// Bytes a stream may hold ahead of the reads it serves.
    window: u64,
    /// The farthest ahead of where a stream's reads got to that a read it serves may start: the window, or
    /// [`MIN_REACH`] if more.
    reach: u64,
    /// Most streams open at once.
    max_streams: usize,
    state: Mutex<State>,
    /// Bytes the streams skipped to reach the reads they served.
    skipped: AtomicU64,
}

/// The streams and the recent reads of a [`StorePackReader`].
#[derive(Default)]
struct State {
    /// The open streams, least recently used first.
    streams: Vec<Open>,
    /// Where recent reads ended, most recent last.
    ends: VecDeque<u64>,
    /// Where the scan was last advised to be, if no stream reached it then and no read opened one since.
    scan: Option<u64>,
    /// Where the latest read made on its own ended, and how many such reads in a row ended there, each within
    /// reach after the one before.
    alone: Option<(u64, usize)>,
    /// Streams opened so far.
    opened: u64,
    /// Reads served by ranged reads.
    ranged: u64,
}

/// An open stream and where the reads that claimed it will leave it.
struct Open {
    /// The offset after the last read that claimed this stream.
    next: u64,
    stream: Arc<tokio::sync::Mutex<Stream>>,
}

impl StorePackReader {
    /// A reader of the `len`-byte pack stored at `key` through at most `max_streams` (at least 1) streams, each
    /// holding at most `window` bytes ahead of its reads: about `max_streams × window` bytes in all.
    pub(super) fn new(
        store: Arc<dyn Store>,
        key: String,
        len: u64,
        window: u64,
        max_streams: usize,
    ) -> Self {
        let window = window.clamp(MIN_WINDOW, MAX_WINDOW);
        StorePackReader {
            store,
            key,
            len,
            window,
            reach: window.max(MIN_REACH),
            max_streams: max_streams.max(1),
            state: Mutex::new(State::default()),
            skipped: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave the state inconsistent: every change is one Vec operation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The position in `state.streams` of a stream that serves a read at `offset` at most `reach` ahead of it,
    /// if one does.
    fn serving(state: &State, offset: u64, reach: u64) -> Option<usize> {
        state
            .streams
            .iter()
            .rposition(|s| s.next <= offset && offset - s.next <= reach)
    }

    /// Opens a stream from `offset` to the end of the pack as the most recently used, closing the least recently
    /// used beyond the most allowed; returns its position.
    fn open(&self, state: &mut State, offset: u64) -> usize {
        if state.streams.len() >= self.max_streams {
            state.streams.remove(0);
        }
        let stream = Stream::open(
            Arc::clone(&self.store),
            self.key.clone(),
            offset,
            self.len - offset,
            self.window,
        );
        state.opened += 1;
        state.streams.push(Open {
            next: offset,
            stream: Arc::new(tokio::sync::Mutex::new(stream)),
        });
        state.streams.len() - 1
    }

    /// The stream that is to serve the read of `offset..end`, if any: one that serves it already (within its
    /// reach, or only its window for a read that continues a recent one: the interleaved reads of a streamed big
    /// object keep a stream each), or a new one when the read is the first at or after where the scan was advised
    /// to be, continues a recent read, or follows [`ALONE_RUN`] reads made on their own in a row. The stream becomes the most recently used, and the read is its latest.
    fn claim(&self, offset: u64, end: u64) -> Option<Arc<tokio::sync::Mutex<Stream>>> {
        let mut state = self.state();
        let continued = state
            .ends
            .iter()
            .position(|&e| e <= offset && offset - e <= NEAR);
        if let Some(at) = continued {
            state.ends.remove(at);
        }
        if state.ends.len() >= STREAMS {
            state.ends.pop_front();
        }
        state.ends.push_back(end);
        let reach = match continued {
            Some(_) => self.window,
            None => self.reach,
        };
        let run = match state.alone {
            Some((e, run)) if e <= offset && offset - e <= self.reach => run,
            _ => 0,
        };
        let at = match Self::serving(&state, offset, reach) {
            Some(at) => at,
            None if (continued.is_some()
                || run >= ALONE_RUN
                || state.scan.is_some_and(|scan| scan <= offset))
                && offset < self.len =>
            {
                state.scan = None;
                state.alone = None;
                self.open(&mut state, offset)
            }
            None => {
                state.ranged += 1;
                state.alone = Some((end, run + 1));
                let behind = state.streams.iter().map(|s| s.next).max();
                tracing::trace!(offset, end, ?behind, scan = ?state.scan, "a read on its own");
                return None;
            }
        };
        let mut open = state.streams.remove(at);
        open.next = end;
        let stream = Arc::clone(&open.stream);
        state.streams.push(open);
        Some(stream)
    }

    /// Closes `stream` after an error.
    fn close(&self, stream: &Arc<tokio::sync::Mutex<Stream>>) {
        self.state()
            .streams
            .retain(|s| !Arc::ptr_eq(&s.stream, stream));
    }
}

impl Drop for StorePackReader {
    fn drop(&mut self) {
        let state = self.state();
        tracing::debug!(
            key = %self.key,
            streams = state.opened,
            window = self.window,
            ranged_reads = state.ranged,
            skipped_bytes = self.skipped.load(Ordering::Relaxed),
            "pack read back"
        );
    }
}

#[async_trait::async_trait]
impl PackReader for StorePackReader {
    fn advise_scan(&self, offset: u64) {
        let mut state = self.state();
        state.scan = Self::serving(&state, offset, self.reach)
            .is_none()
            .then_some(offset);
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
        if len == 0 {
            return Ok(Bytes::new());
        }
        if let Some(stream) = self.claim(offset, end) {
            let mut open = stream.lock().await;
            // Reads that claimed the stream are served in the order they claimed it, so it is never past the
            // offset; should it be, the read is made on its own below.
            if open.pos <= offset {
                let read = open.read(offset, len, &self.skipped).await;
                drop(open);
                if read.is_err() {
                    self.close(&stream);
                }
                return read;
            }
        }
        Ok(self.store.get_range(&self.key, offset, len).await?)
    }
}

/// One streamed read of the pack from an offset to its end: a task pulls the store's stream in pieces, taking
/// the piece's size from `window` before it hands it over; the reader gives the bytes back as it consumes them.
struct Stream {
    /// The offset of the first byte of `current`.
    pos: u64,
    /// The bytes received and not consumed yet of the piece being read.
    current: Bytes,
    pieces: mpsc::UnboundedReceiver<Result<Bytes, StoreError>>,
    window: Arc<Semaphore>,
    task: JoinHandle<()>,
}

impl Stream {
    /// Starts pulling `len` bytes of `key` from `offset`, at most `window` bytes ahead of the reads.
    fn open(store: Arc<dyn Store>, key: String, offset: u64, len: u64, window: u64) -> Self {
        let (tx, pieces) = mpsc::unbounded_channel();
        // At most MAX_WINDOW: it fits a semaphore.
        let window = Arc::new(Semaphore::new(window as usize));
        let task = tokio::spawn(pull(store, (key, offset, len), Arc::clone(&window), tx));
        Stream {
            pos: offset,
            current: Bytes::new(),
            pieces,
            window,
            task,
        }
    }

    /// Marks `n` bytes of `current` as consumed and gives them back to the window.
    fn consume(&mut self, n: usize) -> Bytes {
        self.pos += n as u64;
        self.window.add_permits(n);
        self.current.split_to(n)
    }

    /// Makes sure `current` holds bytes, waiting for the next piece.
    async fn fill(&mut self) -> Result<(), ReadError> {
        while self.current.is_empty() {
            match self.pieces.recv().await {
                Some(piece) => self.current = piece?,
                None => return Err(format!("the stream ended at offset {}", self.pos).into()),
            }
        }
        Ok(())
    }

    /// `len` bytes at `offset` (at or after `pos`), skipping the bytes before it.
    async fn read(
        &mut self,
        offset: u64,
        len: u64,
        skipped: &AtomicU64,
    ) -> Result<Bytes, ReadError> {
        skipped.fetch_add(offset - self.pos, Ordering::Relaxed);
        while self.pos < offset {
            self.fill().await?;
            let n = self.current.len().min(usize::try_from(offset - self.pos)?);
            self.consume(n);
        }
        self.fill().await?;
        let len = usize::try_from(len)?;
        if self.current.len() >= len {
            return Ok(self.consume(len));
        }
        // The caller asked for `len` bytes of a pack it has parsed: the allocation is bounded by real data.
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            self.fill().await?;
            let n = self.current.len().min(len - out.len());
            out.extend_from_slice(&self.consume(n));
        }
        Ok(out.into())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Pulls the stream of `len` bytes of `key` from `offset` and hands it over in pieces of [`PIECE`] bytes (or the
/// window, if smaller; the last piece may be shorter), each copied out of the store's chunks and taken from
/// `window` first; an error is handed over and ends it.
async fn pull(
    store: Arc<dyn Store>,
    (key, offset, len): (String, u64, u64),
    window: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Result<Bytes, StoreError>>,
) {
    let piece_size = window.available_permits().clamp(1, PIECE);
    let hand_over = |piece: Vec<u8>| {
        let (window, tx) = (&window, &tx);
        async move {
            // The semaphore is never closed, and a piece is at most the whole window (at most MAX_WINDOW).
            let Ok(permit) = window.acquire_many(piece.len() as u32).await else {
                return false;
            };
            permit.forget();
            tx.send(Ok(Bytes::from(piece))).is_ok()
        }
    };
    let mut stream = match store.get_stream(&key, offset, len).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut piece = Vec::new();
    loop {
        let chunk = match stream.next_chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                if !piece.is_empty() {
                    hand_over(piece).await;
                }
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            if piece.capacity() == 0 {
                piece.reserve_exact(piece_size);
            }
            let n = rest.len().min(piece_size - piece.len());
            piece.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if piece.len() == piece_size && !hand_over(std::mem::take(&mut piece)).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
