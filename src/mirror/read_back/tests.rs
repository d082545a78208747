use super::*;
use crate::store::{LocalStore, Precondition};

const KEY: &str = "objects/pack/incoming-test.pack";

/// A reader of a 1,000-byte pack in a directory store, 64-byte chunks, 2 kept.
async fn reader() -> (tempfile::TempDir, Arc<dyn Store>, Vec<u8>, StorePackReader) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().join("mirror")));
    let pack: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    store
        .put(KEY, Bytes::from(pack.clone()), Precondition::None)
        .await
        .unwrap();
    let reader = StorePackReader::new(store.clone(), KEY.to_owned(), 1000, 64, 2);
    (dir, store, pack, reader)
}

#[tokio::test]
async fn reads_in_pack_order_cost_one_request_per_chunk() {
    let (_dir, store, pack, reader) = reader().await;
    let before = store.requests();
    for offset in (0..128).step_by(16) {
        let got = reader.read_at(offset, 16).await.unwrap();
        assert_eq!(got, pack[offset as usize..offset as usize + 16]);
    }
    assert_eq!(store.requests() - before, 2, "chunks 0 and 1");

    // Across a chunk boundary: the tail of chunk 1 and the head of chunk 2.
    let got = reader.read_at(120, 20).await.unwrap();
    assert_eq!(got, pack[120..140]);
    assert_eq!(store.requests() - before, 3);

    // Longer than a chunk: read directly, not cached.
    let got = reader.read_at(300, 200).await.unwrap();
    assert_eq!(got, pack[300..500]);
    assert_eq!(store.requests() - before, 4);
}

#[tokio::test]
async fn the_least_recently_used_chunk_is_dropped() {
    let (_dir, store, _pack, reader) = reader().await;
    let chunk = |i: u64| reader.read_at(i * 64, 1);
    chunk(0).await.unwrap();
    chunk(1).await.unwrap();
    chunk(0).await.unwrap(); // chunk 0 is now the most recently used
    chunk(2).await.unwrap(); // evicts chunk 1
    let before = store.requests();
    chunk(0).await.unwrap();
    chunk(2).await.unwrap();
    assert_eq!(store.requests(), before, "chunks 0 and 2 stay cached");
    chunk(1).await.unwrap();
    assert_eq!(store.requests(), before + 1, "chunk 1 was dropped");
}

#[tokio::test]
async fn a_read_past_the_end_fails() {
    let (_dir, _store, _pack, reader) = reader().await;
    assert!(reader.read_at(990, 20).await.is_err());
    assert!(reader.read_at(900, 200).await.is_err());
}
