use super::*;
use crate::store::{Listed, LocalStore, Object, Precondition, RangeStream, Upload};
use async_trait::async_trait;
use std::sync::atomic::AtomicBool;

const KEY: &str = "objects/pack/incoming-test.pack";
const LEN: u64 = 1 << 20;
const WINDOW: u64 = 64 << 10;

/// A directory store that counts the bytes its streams hand out and can make them fail past an offset.
#[derive(Debug)]
struct Watched {
    inner: LocalStore,
    /// Bytes handed out by streams.
    pulled: Arc<AtomicU64>,
    /// Streams fail at the first chunk that reaches past this offset.
    fail_past: u64,
    /// Whether streams hand out their whole range as one chunk (however large the reader's window).
    one_chunk: AtomicBool,
    /// Chunks handed out by streams and still alive (held by the reader or by bytes sliced from them).
    live_chunks: Arc<AtomicU64>,
}

struct WatchedStream {
    inner: Box<dyn RangeStream>,
    pulled: Arc<AtomicU64>,
    offset: u64,
    fail_past: u64,
    one_chunk: bool,
    live_chunks: Arc<AtomicU64>,
}

/// The memory of a chunk handed out by a [`WatchedStream`]: counts itself among the live chunks.
struct Chunk(Vec<u8>, Arc<AtomicU64>);

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl RangeStream for WatchedStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        let mut chunk = self.inner.next_chunk().await?;
        if let Some(first) = chunk.as_ref().filter(|_| self.one_chunk) {
            let mut whole = first.to_vec();
            while let Some(more) = self.inner.next_chunk().await? {
                whole.extend_from_slice(&more);
            }
            self.live_chunks.fetch_add(1, Ordering::SeqCst);
            chunk = Some(Bytes::from_owner(Chunk(
                whole,
                Arc::clone(&self.live_chunks),
            )));
        }
        if let Some(chunk) = &chunk {
            self.offset += chunk.len() as u64;
            if self.offset > self.fail_past {
                return Err(StoreError::range("test", KEY, self.offset, 0, "cut".into()));
            }
            self.pulled.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        Ok(chunk)
    }
}

#[async_trait]
impl Store for Watched {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn requests(&self) -> u64 {
        self.inner.requests()
    }
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.inner.get_range(key, offset, len).await
    }
    async fn get_stream(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn RangeStream>, StoreError> {
        Ok(Box::new(WatchedStream {
            inner: self.inner.get_stream(key, offset, len).await?,
            pulled: Arc::clone(&self.pulled),
            offset,
            fail_past: self.fail_past,
            one_chunk: self.one_chunk.load(Ordering::SeqCst),
            live_chunks: Arc::clone(&self.live_chunks),
        }))
    }
    async fn put(&self, key: &str, body: Bytes, pre: Precondition) -> Result<String, StoreError> {
        self.inner.put(key, body, pre).await
    }
    async fn copy(
        &self,
        from: &str,
        to: &str,
        len: u64,
        pre: Precondition,
    ) -> Result<(), StoreError> {
        self.inner.copy(from, to, len, pre).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn create_upload(
        &self,
        key: &str,
        part_size: u64,
    ) -> Result<Box<dyn Upload>, StoreError> {
        self.inner.create_upload(key, part_size).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Watched>,
    pack: Vec<u8>,
}

impl Fixture {
    /// A [`LEN`]-byte pack in a directory store whose streams fail past `fail_past`.
    async fn new(fail_past: u64) -> Fixture {
        Self::sized(LEN, fail_past).await
    }

    /// A `len`-byte pack in a directory store whose streams fail past `fail_past`.
    async fn sized(len: u64, fail_past: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let inner = LocalStore::new(dir.path().join("mirror"));
        let pack: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        inner
            .put(KEY, Bytes::from(pack.clone()), Precondition::None)
            .await
            .unwrap();
        let store = Arc::new(Watched {
            inner,
            pulled: Arc::default(),
            fail_past,
            one_chunk: AtomicBool::new(false),
            live_chunks: Arc::default(),
        });
        Fixture {
            _dir: dir,
            store,
            pack,
        }
    }

    /// A reader of the pack with `streams` streams of [`WINDOW`] bytes.
    fn reader(&self, streams: usize) -> StorePackReader {
        let len = self.pack.len() as u64;
        StorePackReader::new(self.store.clone(), KEY.to_owned(), len, WINDOW, streams)
    }

    /// Requests made since the pack was stored.
    fn requests(&self) -> u64 {
        self.store.requests() - 1
    }

    async fn check(&self, reader: &StorePackReader, offset: u64, len: u64) {
        let got = reader.read_at(offset, len).await.unwrap();
        assert_eq!(got, self.pack[offset as usize..(offset + len) as usize]);
    }
}

#[tokio::test]
async fn a_scan_in_pack_order_is_one_streamed_read() {
    let f = Fixture::new(u64::MAX).await;
    let reader = f.reader(2);
    // Entries of uneven sizes with gaps between them (headers, entries the resolver skips), some larger than
    // the window, some gaps too.
    let mut offset = 12;
    let mut reads = 0;
    for i in 0u64.. {
        let size = match i % 50 {
            0 => WINDOW * 2 + 7,
            n => 5 + n * 37,
        };
        let gap = if i % 40 == 0 {
            WINDOW - 100
        } else {
            3 + i % 11
        };
        if offset + size + gap > LEN {
            break;
        }
        reader.advise_scan(offset);
        f.check(&reader, offset + 2, size).await;
        offset += size + gap;
        reads += 1;
    }
    reader.advise_scan(offset);
    f.check(&reader, offset, LEN - offset).await;
    assert!(reads > 100, "{reads}");
    assert_eq!(f.requests(), 1, "one stream");
    let skipped = reader.skipped.load(Ordering::Relaxed);
    assert!(skipped > WINDOW, "{skipped}");
}

#[tokio::test]
async fn a_stream_never_pulls_more_than_its_window_ahead() {
    let f = Fixture::new(u64::MAX).await;
    let reader = f.reader(1);
    reader.advise_scan(0);
    f.check(&reader, 0, 10).await;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    // What was read, the window, and at most one piece of the directory store pulled but not yet handed over.
    let bound = 10 + WINDOW + crate::store::LOCAL_STREAM_CHUNK;
    assert!(f.store.pulled.load(Ordering::SeqCst) <= bound);
    // Reading on frees the window: the stream goes on.
    f.check(&reader, 10, LEN / 2).await;
    f.check(&reader, LEN / 2 + 10, LEN / 2 - 10).await;
    assert_eq!(f.requests(), 1);
}

#[tokio::test]
async fn a_store_chunk_larger_than_the_window_is_copied_out_not_kept_alive_by_the_reads() {
    let f = Fixture::new(u64::MAX).await;
    // A hostile store: the whole pack at once, 16 windows in one chunk.
    f.store.one_chunk.store(true, Ordering::SeqCst);
    let reader = f.reader(1);
    reader.advise_scan(0);
    let first = reader.read_at(0, 10).await.unwrap();
    assert_eq!(first, f.pack[..10]);
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    // The stream holds its window (and the chunk it is copying from), never more.
    assert_eq!(f.store.live_chunks.load(Ordering::SeqCst), 1);
    f.check(&reader, 10, LEN - 10).await;
    // Every piece was copied out of the chunk: the first read, still held, does not keep it alive.
    drop(reader);
    tokio::task::yield_now().await;
    assert_eq!(f.store.live_chunks.load(Ordering::SeqCst), 0);
    assert_eq!(first, f.pack[..10]);
    assert_eq!(f.requests(), 1);
}

#[tokio::test]
async fn reads_behind_the_streams_fetch_only_their_bytes_and_the_scan_goes_on() {
    let f = Fixture::sized(3 * MIN_REACH, u64::MAX).await;
    let reader = f.reader(2);
    reader.advise_scan(0);
    f.check(&reader, 0, 300_000).await;
    // Entries of a chain rebuilt behind the scan: one ranged read each.
    for i in 0..ALONE_RUN as u64 {
        f.check(&reader, 10 + i * 20_000, 15).await;
    }
    assert_eq!(f.requests(), 1 + ALONE_RUN as u64);
    // More in a row, each within reach of the one before: a stream for the rest of them.
    for i in ALONE_RUN as u64..6 {
        f.check(&reader, 10 + i * 20_000, 15).await;
    }
    let requests = 2 + ALONE_RUN as u64;
    assert_eq!(f.requests(), requests);
    // The scan's stream still serves what follows, a window ahead and as far as its reach too.
    f.check(&reader, 300_000, 100).await;
    f.check(&reader, 300_100 + WINDOW, 100).await;
    f.check(&reader, 300_200 + WINDOW + MIN_REACH, 100).await;
    assert_eq!(f.requests(), requests);
    // Beyond its reach: a read on its own, and the scan's advice opens a stream at its next read there.
    let far = 400_000 + WINDOW + 2 * MIN_REACH;
    f.check(&reader, far, 100).await;
    assert_eq!(f.requests(), requests + 1);
    reader.advise_scan(far + 50_000);
    assert_eq!(f.requests(), requests + 1, "advice alone opens no stream");
    f.check(&reader, far + 50_010, 100).await;
    f.check(&reader, far + 60_000, 100).await;
    assert_eq!(f.requests(), requests + 2);
}

#[tokio::test]
async fn reads_on_their_own_open_a_stream_only_in_a_row_within_reach() {
    let f = Fixture::sized(4 * MIN_REACH, u64::MAX).await;
    let reader = f.reader(2);
    // Each out of the reach of the one before (and behind one another): one request each, however many.
    let apart = [10, 2 * MIN_REACH, 3 * MIN_REACH + 100, MIN_REACH, 10_000];
    for offset in apart {
        f.check(&reader, offset, 50).await;
    }
    assert_eq!(f.requests(), apart.len() as u64);
    // A run in pack order, within reach of each other: on their own until the run is long enough.
    let run: Vec<u64> = (1..6).map(|i| 3 * MIN_REACH + i * 1_000_000).collect();
    for &offset in &run {
        f.check(&reader, offset, 50).await;
    }
    assert_eq!(f.requests(), (apart.len() + ALONE_RUN + 1) as u64);
    assert_eq!(reader.state().ranged, (apart.len() + ALONE_RUN) as u64);
}

#[tokio::test]
async fn a_later_pass_reading_a_few_entries_far_apart_is_one_streamed_read() {
    let len = 3 * MIN_REACH;
    let f = Fixture::sized(len, u64::MAX).await;
    let reader = f.reader(2);
    // The scan passes entries every few hundred bytes, and reads one now and then, from a few windows to almost
    // its reach apart.
    let gaps = [
        3 * WINDOW,
        MIN_REACH / 2,
        10 * WINDOW + 7,
        MIN_REACH - 100,
        5 * WINDOW,
    ];
    let mut offset = 1000;
    let mut next_read = offset;
    let mut reads = 0;
    while offset + 1000 < len {
        reader.advise_scan(offset);
        if offset >= next_read {
            f.check(&reader, offset + 20, 300).await;
            next_read = offset + gaps[reads % gaps.len()];
            reads += 1;
        }
        offset += 700;
    }
    assert!(reads > 8, "{reads}");
    assert_eq!(f.requests(), 1, "one stream reads through the gaps");
    // Skipping holds no more than the window: what the stream pulled is what it was read through and at most a
    // window (and a chunk of the store) beyond.
    let pulled = f.store.pulled.load(Ordering::SeqCst);
    assert!(pulled <= len + WINDOW + crate::store::LOCAL_STREAM_CHUNK);
    let skipped = reader.skipped.load(Ordering::Relaxed);
    assert!(skipped > 2 * MIN_REACH, "{skipped}");
}

#[tokio::test]
async fn a_gap_past_the_reach_opens_a_stream_at_the_next_read_the_scan_makes() {
    let f = Fixture::sized(4 * MIN_REACH, u64::MAX).await;
    let reader = f.reader(4);
    reader.advise_scan(100);
    f.check(&reader, 120, 50).await;
    // The scan passes far ahead without reading: its advice opens nothing.
    for offset in (200..3 * MIN_REACH).step_by(WINDOW as usize) {
        reader.advise_scan(offset);
    }
    assert_eq!(f.requests(), 1);
    // Its next read, past the first stream's reach, opens a second stream where it reads, not where it was first
    // advised beyond the reach.
    let at = 3 * MIN_REACH + 10;
    reader.advise_scan(at - 5);
    f.check(&reader, at, 50).await;
    f.check(&reader, at + MIN_REACH / 2, 50).await;
    assert_eq!(f.requests(), 2);
    assert!(f.store.pulled.load(Ordering::SeqCst) < 2 * MIN_REACH);
    // A read behind the advice, out of any stream's reach: on its own.
    reader.advise_scan(3 * MIN_REACH + MIN_REACH / 2 + 1000);
    f.check(&reader, MIN_REACH + 500_000, 50).await;
    assert_eq!(f.requests(), 3);
}

#[tokio::test]
async fn a_stream_that_fails_while_reading_through_a_gap_fails_only_that_read() {
    let len = 2 * MIN_REACH;
    let f = Fixture::sized(len, MIN_REACH).await;
    let reader = f.reader(2);
    reader.advise_scan(0);
    f.check(&reader, 10, 100).await;
    // The next read is within reach, across where the stream breaks: it meets the error.
    let err = reader.read_at(MIN_REACH - 50, 100).await.unwrap_err();
    assert!(err.to_string().contains("cut"), "{err}");
    assert_eq!(f.requests(), 1);
    // The broken stream is closed: the next read is made on its own, and reads before the break still work.
    f.check(&reader, MIN_REACH + 2000, 100).await;
    assert_eq!(f.requests(), 2);
    f.check(&reader, 5000, 100).await;
}

#[tokio::test]
async fn interleaved_sequential_reads_each_get_a_stream() {
    let f = Fixture::sized(4 * MIN_REACH, u64::MAX).await;
    let reader = f.reader(3);
    // A streamed big object reads its base and its delta in turns, 4 KiB at a time, more than a window apart
    // (within a stream's reach, but the reads continuing a position keep to the stream of that position).
    let starts = [1000u64, 500_000];
    for step in 0..60u64 {
        for start in starts {
            f.check(&reader, start + step * 4096, 4096).await;
        }
    }
    // The first read of each is made on its own; the next one continues it, and opens its stream.
    assert_eq!(f.requests(), 4);

    // A third stream, then a fourth, out of the others' reach: the least recently used (the first) is closed.
    let (third, fourth) = (2 * MIN_REACH, 3 * MIN_REACH + 1000);
    f.check(&reader, third, 10).await;
    f.check(&reader, third + 10, 10).await;
    f.check(&reader, 500_000 + 60 * 4096, 10).await;
    f.check(&reader, fourth, 10).await;
    f.check(&reader, fourth + 10, 10).await;
    assert_eq!(f.requests(), 8);
    f.check(&reader, 1000 + 60 * 4096, 10).await;
    assert_eq!(f.requests(), 9, "the closed stream's reads need a new one");
}

#[tokio::test]
async fn entries_read_one_after_the_other_get_a_stream() {
    let f = Fixture::new(u64::MAX).await;
    let reader = f.reader(2);
    // The entries of a delta chain, each after its header, far from any stream.
    let mut offset = 700_000;
    for i in 0..20 {
        f.check(&reader, offset, 40 + i).await;
        offset += 40 + i + 3 + i % 20;
    }
    assert_eq!(
        f.requests(),
        2,
        "a read on its own, then the stream of the next ones"
    );
    // Farther than a header from the last read: on its own.
    f.check(&reader, 100, 10).await;
    f.check(&reader, 110 + NEAR + 1, 10).await;
    assert_eq!(f.requests(), 4);
}

#[tokio::test]
async fn concurrent_reads_of_one_stream_get_their_own_bytes() {
    let f = Fixture::new(u64::MAX).await;
    let reader = f.reader(1);
    reader.advise_scan(0);
    let reads = (0..20u64).map(|i| reader.read_at(i * 5000, 4000));
    let got = futures_util::future::join_all(reads).await;
    for (i, got) in got.into_iter().enumerate() {
        let at = i * 5000;
        assert_eq!(got.unwrap(), f.pack[at..at + 4000]);
    }
    assert_eq!(f.requests(), 1);
}

#[tokio::test]
async fn a_read_past_the_end_fails() {
    let f = Fixture::new(u64::MAX).await;
    let reader = f.reader(2);
    // Advice past the end (or anywhere) opens nothing, and no read can reach past the end.
    reader.advise_scan(u64::MAX);
    assert!(reader.read_at(u64::MAX - 1, 1).await.is_err());
    assert!(reader.read_at(LEN, 1).await.is_err());
    reader.advise_scan(LEN - 10);
    assert!(reader.read_at(LEN - 10, 20).await.is_err());
    assert!(reader.read_at(LEN - 100, 200).await.is_err());
    assert!(reader.read_at(u64::MAX, 2).await.is_err());
    assert_eq!(reader.read_at(LEN, 0).await.unwrap(), "");
    f.check(&reader, LEN - 10, 10).await;
}

#[tokio::test]
async fn a_stream_that_fails_fails_the_read_and_is_closed() {
    let f = Fixture::new(LEN / 2).await;
    let reader = f.reader(2);
    reader.advise_scan(0);
    for offset in (0..LEN / 2 - 10_000).step_by(10_000) {
        f.check(&reader, offset, 1000).await;
    }
    assert_eq!(f.requests(), 1);
    let err = reader.read_at(LEN / 2 - 10, 100).await.unwrap_err();
    assert!(err.to_string().contains("cut"), "{err}");
    // Its bytes are not served from a broken stream again: a read on its own.
    let before = f.requests();
    f.check(&reader, LEN / 2 + 5, 100).await;
    assert_eq!(f.requests(), before + 1);

    // A reader told the pack is longer than it is: the stream ends early, the read fails.
    let long = StorePackReader::new(f.store.clone(), KEY.to_owned(), LEN * 2, WINDOW, 2);
    long.advise_scan(LEN - 10);
    assert!(long.read_at(LEN - 10, 100).await.is_err());
}
