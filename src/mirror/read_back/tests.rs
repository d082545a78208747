use super::*;
use crate::store::{LocalStore, Precondition};

const KEY: &str = "objects/pack/incoming-test.pack";

/// A reader of a 1,000-byte pack in a directory store, 64-byte chunks, `ahead` fetched ahead, `capacity` kept.
async fn reader(
    capacity: usize,
    ahead: usize,
) -> (tempfile::TempDir, Arc<dyn Store>, Vec<u8>, StorePackReader) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().join("mirror")));
    let pack: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    store
        .put(KEY, Bytes::from(pack.clone()), Precondition::None)
        .await
        .unwrap();
    let reader = StorePackReader::new(store.clone(), KEY.to_owned(), 1000, 64, capacity, ahead);
    (dir, store, pack, reader)
}

#[tokio::test]
async fn contiguous_reads_go_through_chunks() {
    let (_dir, store, pack, reader) = reader(2, 0).await;
    let before = store.requests();
    for offset in (0..128).step_by(16) {
        let got = reader.read_at(offset, 16).await.unwrap();
        assert_eq!(got, pack[offset as usize..offset as usize + 16]);
    }
    // The first read continues nothing (its own bytes); then chunks 0 and 1.
    assert_eq!(store.requests() - before, 3);

    // Across a chunk boundary: the tail of chunk 1 and the head of chunk 2.
    let got = reader.read_at(128, 20).await.unwrap();
    assert_eq!(got, pack[128..148]);
    let got = reader.read_at(148, 40).await.unwrap();
    assert_eq!(got, pack[148..188]);
    assert_eq!(store.requests() - before, 4, "chunk 2");

    // Longer than a chunk: read directly, not held.
    let got = reader.read_at(188, 200).await.unwrap();
    assert_eq!(got, pack[188..388]);
    assert_eq!(store.requests() - before, 5);
}

#[tokio::test]
async fn a_scan_with_read_ahead_fetches_each_chunk_once() {
    let (_dir, store, pack, reader) = reader(4, 2).await;
    let before = store.requests();
    let mut got = Vec::new();
    // Entries of uneven sizes with small gaps between them (headers the resolver does not read).
    let mut offset = 12;
    for size in (0..).map(|i| 5 + i % 37) {
        if offset + size > 1000 {
            break;
        }
        reader.advise_scan(offset - 3);
        let data = reader.read_at(offset, size).await.unwrap();
        assert_eq!(data, pack[offset as usize..(offset + size) as usize]);
        got.push(data);
        offset += size + 3;
    }
    let from = offset.min(990);
    reader.advise_scan(from);
    let tail = reader.read_at(from, 1000 - from).await.unwrap();
    assert_eq!(tail, pack[from as usize..]);
    assert!(got.len() > 30);
    assert_eq!(
        store.requests() - before,
        16,
        "1,000 bytes in 64-byte chunks"
    );
}

#[tokio::test]
async fn reads_behind_the_scan_fetch_only_their_bytes_and_keep_the_scan_s_chunks() {
    // Nothing fetched ahead: every fetch of the scan is awaited before the counting starts.
    let (_dir, store, pack, reader) = reader(2, 0).await;
    for offset in (0..640).step_by(16) {
        reader.advise_scan(offset);
        reader.read_at(offset, 16).await.unwrap();
    }
    let before = store.requests();
    // Entries of a chain rebuilt far behind, close together but each after a header.
    for i in 0..9u64 {
        let offset = 10 + i * 20;
        let got = reader.read_at(offset, 15).await.unwrap();
        assert_eq!(got, pack[offset as usize..offset as usize + 15]);
    }
    assert_eq!(store.requests() - before, 9, "one small GET each");
    let before = store.requests();
    reader.read_at(630, 10).await.unwrap();
    assert_eq!(store.requests(), before, "the scan's chunk is still held");
}

#[tokio::test]
async fn the_least_recently_used_chunk_is_dropped() {
    let (_dir, store, _pack, reader) = reader(2, 0).await;
    let chunk = |i: u64| {
        reader.advise_scan(i * 64);
        reader.read_at(i * 64, 1)
    };
    chunk(0).await.unwrap();
    chunk(1).await.unwrap();
    reader.read_at(0, 1).await.unwrap(); // chunk 0 is now the most recently used
    chunk(2).await.unwrap(); // evicts chunk 1
    let before = store.requests();
    reader.read_at(0, 1).await.unwrap();
    reader.read_at(128, 1).await.unwrap();
    assert_eq!(store.requests(), before, "chunks 0 and 2 stay held");
    reader.read_at(64, 1).await.unwrap();
    assert_eq!(store.requests(), before + 1, "chunk 1 was dropped");
}

#[tokio::test]
async fn a_read_past_the_end_fails() {
    let (_dir, _store, _pack, reader) = reader(2, 1).await;
    assert!(reader.read_at(990, 20).await.is_err());
    assert!(reader.read_at(900, 200).await.is_err());
    assert!(reader.read_at(u64::MAX, 2).await.is_err());
}

#[tokio::test]
async fn a_failing_store_fails_the_read() {
    let (_dir, store, _pack, _reader) = reader(2, 1).await;
    // A reader told the pack is longer than it is: the chunk past the stored end cannot be read.
    let reader = StorePackReader::new(store, KEY.to_owned(), 5000, 64, 4, 2);
    assert!(reader.read_at(0, 10).await.is_ok());
    assert!(reader.read_at(2000, 10).await.is_err());
    assert!(reader.read_at(990, 20).await.is_err());
}
