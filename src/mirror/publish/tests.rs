use super::*;
use crate::git::layout::{Head, Ref};
use crate::store::{Listed, LocalStore, RangeStream, Upload};
use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

fn oid(n: u8) -> ObjectId {
    ObjectId([n; 20])
}

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("mirror"));
    (dir, store)
}

fn desired(tip: u8) -> Desired {
    let refs = vec![Ref {
        name: "refs/heads/main".to_owned(),
        oid: oid(tip),
        peeled: None,
    }];
    let head = Head::Symbolic("refs/heads/main".to_owned());
    Desired {
        info_refs: layout::render_info_refs(&refs),
        head_file: layout::render_head(&head),
        refs,
        head,
    }
}

async fn listed(store: &dyn Store) -> Vec<ObjectId> {
    let body = store.get(layout::PACKS).await.unwrap().unwrap().body;
    layout::parse_packs(&body).unwrap()
}

async fn put(store: &dyn Store, key: &str, body: Vec<u8>) -> Object {
    let etag = store
        .put(key, Bytes::from(body.clone()), Precondition::None)
        .await
        .unwrap();
    Object {
        body: Bytes::from(body),
        etag,
    }
}

#[tokio::test]
async fn a_first_run_publishes_every_file() {
    let (_dir, store) = store();
    let started = StartedFrom {
        pack_list: None,
        packs: Vec::new(),
        info_refs: None,
        head: None,
    };
    let wanted = desired(1);
    let listed_now = publish(&store, "src", started, &wanted, RunKind::Full, Some(oid(9)))
        .await
        .unwrap();
    assert_eq!(listed_now, [oid(9)]);
    assert_eq!(listed(&store).await, [oid(9)]);
    let store = &store;
    let body = |key| async move { store.get(key).await.unwrap().map(|o| o.body) };
    assert_eq!(body(layout::INFO_REFS).await.unwrap(), wanted.info_refs);
    assert_eq!(body(layout::HEAD).await.unwrap(), wanted.head_file);
    assert_eq!(
        body(layout::PACKED_REFS).await.unwrap(),
        layout::render_packed_refs(&wanted.refs)
    );
    assert_eq!(body(layout::REFS_KEEP).await.unwrap(), "");
}

fn nothing_published() -> StartedFrom {
    StartedFrom {
        pack_list: None,
        packs: Vec::new(),
        info_refs: None,
        head: None,
    }
}

/// Publishes `wanted` with pack 9 as a first run does: from a prefix where nothing was published.
async fn publish_first(store: &dyn Store, wanted: &Desired) {
    publish(
        store,
        "src",
        nothing_published(),
        wanted,
        RunKind::Full,
        Some(oid(9)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_first_run_writes_packed_refs_without_reading_it() {
    let (_dir, inner) = store();
    let store = AlwaysConflicting::recording(inner);
    let wanted = desired(1);
    publish_first(&store, &wanted).await;
    // The one read is the re-check of the pack list.
    assert_eq!(store.reads(), [layout::PACKS]);
    let packed = store.get(layout::PACKED_REFS).await.unwrap().unwrap();
    assert_eq!(packed.body, layout::render_packed_refs(&wanted.refs));
}

#[tokio::test]
async fn a_first_run_replaces_the_packed_refs_a_cut_off_run_left() {
    let (_dir, store) = store();
    // A run cut off after `packed-refs` left one for other refs, and no `info/refs`; another left an empty one.
    for stale in [layout::render_packed_refs(&desired(2).refs), Vec::new()] {
        put(&store, layout::PACKED_REFS, stale).await;
        let wanted = desired(1);
        publish_first(&store, &wanted).await;
        let packed = store.get(layout::PACKED_REFS).await.unwrap().unwrap();
        assert_eq!(packed.body, layout::render_packed_refs(&wanted.refs));
        store.delete(layout::INFO_REFS).await.unwrap();
    }
}

#[tokio::test]
async fn a_run_over_published_refs_reads_packed_refs_before_replacing_it() {
    let (_dir, inner) = store();
    let store = AlwaysConflicting::recording(inner);
    let first = desired(1);
    publish_first(&store, &first).await;
    let started = StartedFrom {
        pack_list: store.get(layout::PACKS).await.unwrap(),
        packs: vec![oid(9)],
        info_refs: store.get(layout::INFO_REFS).await.unwrap(),
        head: store.get(layout::HEAD).await.unwrap(),
    };
    let next = desired(2);
    publish(
        &store,
        "src",
        started,
        &next,
        RunKind::Incremental,
        Some(oid(8)),
    )
    .await
    .unwrap();
    assert!(store.reads().iter().any(|key| key == layout::PACKED_REFS));
    let packed = store.get(layout::PACKED_REFS).await.unwrap().unwrap();
    assert_eq!(packed.body, layout::render_packed_refs(&next.refs));
}

#[tokio::test]
async fn a_lost_race_renders_again_on_top_of_the_winner() {
    let (_dir, store) = store();
    // Another run listed pack 5 after this one read an empty mirror.
    put(&store, layout::PACKS, layout::render_packs(&[oid(5)])).await;
    let published = publish_pack_list(&store, None, &[], Some(oid(9)), false)
        .await
        .unwrap();
    assert_eq!(published, [oid(9), oid(5)]);
    assert_eq!(listed(&store).await, [oid(9), oid(5)]);
}

#[tokio::test]
async fn compaction_replaces_the_packs_it_started_from_and_keeps_the_others() {
    let (_dir, store) = store();
    let read = put(
        &store,
        layout::PACKS,
        layout::render_packs(&[oid(1), oid(2)]),
    )
    .await;
    // Pack 3 was listed by a concurrent run after this one read the list.
    put(
        &store,
        layout::PACKS,
        layout::render_packs(&[oid(1), oid(2), oid(3)]),
    )
    .await;
    let published = publish_pack_list(&store, Some(read), &[oid(1), oid(2)], Some(oid(9)), true)
        .await
        .unwrap();
    assert_eq!(published, [oid(9), oid(3)]);
    assert_eq!(listed(&store).await, [oid(9), oid(3)]);
}

#[tokio::test]
async fn packs_a_concurrent_compaction_unlisted_are_listed_again() {
    let (_dir, store) = store();
    put(&store, layout::PACKS, layout::render_packs(&[oid(7)])).await;
    ensure_listed(&store, "src", &[oid(9), oid(7), oid(1)])
        .await
        .unwrap();
    assert_eq!(listed(&store).await, [oid(7), oid(9), oid(1)]);

    let before = store.requests();
    ensure_listed(&store, "src", &[oid(9), oid(1)])
        .await
        .unwrap();
    assert_eq!(store.requests(), before + 1, "one read, nothing to write");
}

#[tokio::test]
async fn an_unchanged_file_is_not_written() {
    let (_dir, store) = store();
    let current = put(&store, layout::HEAD, b"ref: refs/heads/main\n".to_vec()).await;
    let before = store.requests();
    update_object(&store, layout::HEAD, Some(current), "HEAD", |_| {
        Ok(b"ref: refs/heads/main\n".to_vec())
    })
    .await
    .unwrap();
    assert_eq!(store.requests(), before);
}

/// A directory store that records the keys read, and on which every write of one key loses a race (S3's 409).
#[derive(Debug)]
struct AlwaysConflicting {
    inner: LocalStore,
    key: &'static str,
    attempts: AtomicUsize,
    reads: Mutex<Vec<String>>,
}

impl AlwaysConflicting {
    /// A store on which no write conflicts: it only records reads.
    fn recording(inner: LocalStore) -> Self {
        AlwaysConflicting {
            inner,
            key: "",
            attempts: AtomicUsize::new(0),
            reads: Mutex::new(Vec::new()),
        }
    }

    fn reads(&self) -> Vec<String> {
        self.reads.lock().unwrap().clone()
    }
}

#[async_trait]
impl Store for AlwaysConflicting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn requests(&self) -> u64 {
        self.inner.requests()
    }
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.reads.lock().unwrap().push(key.to_owned());
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
        self.inner.get_stream(key, offset, len).await
    }
    async fn put(&self, key: &str, body: Bytes, pre: Precondition) -> Result<String, StoreError> {
        if key != self.key {
            return self.inner.put(key, body, pre).await;
        }
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Err(StoreError::Conflict {
            store: self.describe(),
            key: key.to_owned(),
        })
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

#[tokio::test]
async fn a_run_that_keeps_losing_gives_up() {
    let (_dir, inner) = store();
    let store = AlwaysConflicting {
        key: layout::INFO_REFS,
        ..AlwaysConflicting::recording(inner)
    };
    let result = update_object(&store, layout::INFO_REFS, None, "info/refs", |_| {
        Ok(b"new".to_vec())
    })
    .await;
    assert!(
        matches!(result, Err(MirrorError::Contention("info/refs"))),
        "{result:?}"
    );
    assert_eq!(store.attempts.load(Ordering::Relaxed), MAX_CONFLICT_RETRIES);
}

#[tokio::test]
async fn the_compare_and_swap_write_reports_a_lost_race() {
    let (_dir, store) = store();
    assert!(
        replace_if_unchanged(&store, "k", None, Bytes::from_static(b"1"))
            .await
            .unwrap()
    );
    // The key exists now: a writer that read it as absent loses.
    assert!(
        !replace_if_unchanged(&store, "k", None, Bytes::from_static(b"2"))
            .await
            .unwrap()
    );
    let current = store.get("k").await.unwrap();
    assert!(
        replace_if_unchanged(&store, "k", current.as_ref(), Bytes::from_static(b"3"))
            .await
            .unwrap()
    );
    // `current` is stale now.
    assert!(
        !replace_if_unchanged(&store, "k", current.as_ref(), Bytes::from_static(b"4"))
            .await
            .unwrap()
    );
    assert_eq!(store.get("k").await.unwrap().unwrap().body, "3");
}

#[tokio::test]
async fn content_named_files_that_exist_count_as_written() {
    let (_dir, store) = store();
    let create = || store.put("x", Bytes::from_static(b"same"), Precondition::IfNoneMatch);
    ignore_existing(create().await).unwrap();
    ignore_existing(create().await).unwrap();
    let invalid = store
        .put("/abs", Bytes::new(), Precondition::IfNoneMatch)
        .await;
    assert!(ignore_existing(invalid).is_err());
}

#[tokio::test]
async fn a_content_named_file_left_short_by_a_cut_off_attempt_is_replaced() {
    let (_dir, store) = store();
    let body = Bytes::from_static(b"the whole index");
    let create = || {
        create_named(&store, "objects/pack/p.idx", body.len() as u64, |pre| {
            store.put("objects/pack/p.idx", body.clone(), pre)
        })
    };
    // What moto keeps of a PUT whose head was cut: an empty object under the final name.
    put(&store, "objects/pack/p.idx", Vec::new()).await;
    create().await.unwrap();
    assert_eq!(
        store.get("objects/pack/p.idx").await.unwrap().unwrap().body,
        body
    );
    // A file of the right size is what its name promises: it stays, and a second creation succeeds.
    let before = store.requests();
    create().await.unwrap();
    assert_eq!(
        store.requests() - before,
        2,
        "a create and a list, no write"
    );
    let wrong = create_named(&store, "/abs", 1, |pre| {
        store.put("/abs", Bytes::new(), pre)
    })
    .await;
    assert!(wrong.is_err());
}
