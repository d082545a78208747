//! The storage layer against real storage: the [`Store`] contract on both backends, then what only S3 promises.
//!
//! Each contract test runs twice: as `local::<name>` on a `LocalStore` in a temporary directory and as
//! `s3::<name>` on an `S3Store` on a fresh bucket of a real S3 API server (moto_server). Both stores are rooted
//! at `mirror/` below their directory or bucket, next to an `outside` file or object. After every contract test
//! the harness checks that the directory or bucket holds exactly the keys the store lists (no temporary files,
//! nothing written beside the root), that no upload is pending, and that `outside` is untouched.
//!
//! The S3-only tests (module `s3_only`) cover part counts, multipart copies, storage classes, racing creates and
//! the errors a user sees for a missing bucket or an unreachable server. The local directory's own tests
//! (directories, temporary files, racing creates) are unit tests in `src/store/local.rs`.

use bytes::Bytes;
use mirror_git_to_s3::store::{
    self, LocalStore, Object, Precondition, RangeStream, S3Options, Store, StoreError, Upload,
    FIRST_PART_SIZE,
};
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const MIB: usize = 1024 * 1024;

/// Where both backends root their store, below the directory or bucket.
const ROOT: &str = "mirror";

/// A file or object beside the root that no store operation may touch, and its content.
const OUTSIDE: (&str, &[u8]) = ("outside", b"secret");

fn opts() -> S3Options {
    S3Options {
        endpoint_url: Some(testkit::s3().endpoint.clone()),
        force_path_style: true,
        ..S3Options::default()
    }
}

async fn open(bucket: &str, prefix: &str) -> Arc<dyn Store> {
    store::open(&format!("s3://{bucket}/{prefix}"), &opts())
        .await
        .unwrap()
}

/// How many multipart uploads are started and neither completed nor aborted in `bucket`.
async fn open_uploads(bucket: &str) -> usize {
    testkit::s3().open_multipart_uploads(bucket).await.len()
}

/// Deterministic, non-repeating-looking test data.
fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The keys `s.list(prefix)` returns.
async fn keys(s: &dyn Store, prefix: &str) -> Vec<String> {
    let listed = s.list(prefix).await.unwrap();
    listed.into_iter().map(|l| l.key).collect()
}

/// Starts an upload of `key` and writes `body` to it in writes of `write_len` bytes (none for an empty body).
async fn upload(s: &dyn Store, key: &str, body: &[u8], write_len: usize) -> Box<dyn Upload> {
    let mut up = s.create_upload(key, FIRST_PART_SIZE).await.unwrap();
    for chunk in body.chunks(write_len) {
        up.write(chunk).await.unwrap();
    }
    up
}

/// Asserts that `result` is a [`StoreError::PreconditionFailed`]; `what` says which write.
#[track_caller]
fn assert_precondition_failed<T: Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::PreconditionFailed { .. })),
        "{what}: {result:?}"
    );
}

/// Every file below `dir` as a relative `/`-separated path, sorted; nothing if `dir` does not exist.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", d.display()),
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

/// A store under test, with the view of its storage that the [`Store`] trait does not give.
struct Backend {
    store: Arc<dyn Store>,
    storage: Storage,
}

enum Storage {
    /// A `LocalStore` at `<dir>/mirror`.
    Local(tempfile::TempDir),
    /// An `S3Store` at `s3://<bucket>/mirror`.
    S3(String),
}

impl Backend {
    /// A `LocalStore` in a new temporary directory (async only so that the test macro treats both backends alike).
    async fn local() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OUTSIDE.0), OUTSIDE.1).unwrap();
        Backend {
            store: Arc::new(LocalStore::new(dir.path().join(ROOT))),
            storage: Storage::Local(dir),
        }
    }

    /// An `S3Store` on a new bucket.
    async fn s3() -> Backend {
        let bucket = testkit::new_bucket();
        testkit::s3()
            .client()
            .put_object()
            .bucket(&bucket)
            .key(OUTSIDE.0)
            .body(Bytes::from_static(OUTSIDE.1).into())
            .send()
            .await
            .unwrap();
        Backend {
            store: open(&bucket, ROOT).await,
            storage: Storage::S3(bucket),
        }
    }

    /// Everything in the directory (files) or bucket (objects), relative to it, sorted.
    fn stored(&self) -> Vec<String> {
        match &self.storage {
            Storage::Local(dir) => files(dir.path()),
            Storage::S3(bucket) => testkit::list_keys(bucket, ""),
        }
    }

    /// Uploads started and neither completed nor aborted that hold storage: S3 multipart uploads, local
    /// temporary files (the files below the root that the store does not list).
    async fn pending_uploads(&self) -> usize {
        match &self.storage {
            Storage::Local(dir) => {
                let listed = keys(&*self.store, "").await;
                let on_disk = files(&dir.path().join(ROOT));
                on_disk.iter().filter(|f| !listed.contains(f)).count()
            }
            Storage::S3(bucket) => open_uploads(bucket).await,
        }
    }

    /// What every contract test must leave behind: exactly the listed keys below the root, `outside` as it was,
    /// no pending upload.
    async fn assert_clean(&self) {
        let mut expected: Vec<String> = keys(&*self.store, "")
            .await
            .into_iter()
            .map(|k| format!("{ROOT}/{k}"))
            .collect();
        expected.push(OUTSIDE.0.to_owned());
        expected.sort();
        assert_eq!(self.stored(), expected, "stored vs listed");
        let outside = match &self.storage {
            Storage::Local(dir) => std::fs::read(dir.path().join(OUTSIDE.0)).ok(),
            Storage::S3(bucket) => testkit::get_object(bucket, OUTSIDE.0),
        };
        assert_eq!(outside.as_deref(), Some(OUTSIDE.1));
        assert_eq!(self.pending_uploads().await, 0);
    }
}

/// Lets a contract test take `&dyn Store` when it needs nothing but the store, and `&Backend` when it also looks
/// at the storage.
impl<'a> From<&'a Backend> for &'a dyn Store {
    fn from(backend: &'a Backend) -> Self {
        &*backend.store
    }
}

/// Declares each contract test once per backend, in modules `local` and `s3`.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        contract_tests!(@backend local: $($name)*);
        contract_tests!(@backend s3: $($name)*);
    };
    (@backend $backend:ident: $($name:ident)*) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::Backend::$backend().await;
                    super::$name((&backend).into()).await;
                    backend.assert_clean().await;
                }
            )*
        }
    };
}

contract_tests!(
    put_get_and_etags,
    preconditions,
    ranged_reads,
    streamed_reads,
    uploads_publish_atomically,
    small_uploads_honour_preconditions,
    aborted_and_dropped_uploads_leave_nothing,
    unfinished_uploads_are_listed_and_discarded,
    copies,
    copies_are_whole_whatever_length_is_given,
    list_and_delete,
    hostile_keys_are_rejected,
);

// ---- The contract: what every `Store` does ----

/// Whole-object writes and reads; every write gives a new ETag, the one `get` reports.
async fn put_get_and_etags(s: &dyn Store) {
    assert!(
        keys(s, "").await.is_empty(),
        "a store never written lists nothing"
    );
    assert_eq!(s.get("info/refs").await.unwrap(), None);
    let mut etags = Vec::new();
    for body in ["hello", "world"] {
        let etag = s
            .put("info/refs", Bytes::from(body), Precondition::None)
            .await
            .unwrap();
        let written = Object {
            body: Bytes::from(body),
            etag: etag.clone(),
        };
        assert_eq!(s.get("info/refs").await.unwrap(), Some(written));
        etags.push(etag);
    }
    assert_ne!(etags[0], etags[1], "a new write has a new ETag");

    s.put("empty", Bytes::new(), Precondition::None)
        .await
        .unwrap();
    assert_eq!(s.get("empty").await.unwrap().unwrap().body, "");
    s.delete("empty").await.unwrap();
    s.delete("empty").await.unwrap();
    assert_eq!(s.get("empty").await.unwrap(), None);
    assert_eq!(keys(s, "").await, ["info/refs"]);
}

/// Create-only and compare-and-swap writes; a failed precondition names the store and key and changes nothing.
async fn preconditions(s: &dyn Store) {
    let e1 = s
        .put("HEAD", Bytes::from_static(b"a"), Precondition::IfNoneMatch)
        .await
        .unwrap();
    let err = s
        .put("HEAD", Bytes::from_static(b"b"), Precondition::IfNoneMatch)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { ref key, .. } if key == "HEAD"),
        "{err}"
    );
    assert!(
        err.to_string().contains("HEAD") && err.to_string().contains(&s.describe()),
        "{err}"
    );
    let e2 = s
        .put(
            "HEAD",
            Bytes::from_static(b"c"),
            Precondition::IfMatch(e1.clone()),
        )
        .await
        .unwrap();
    assert_ne!(e1, e2);
    assert_precondition_failed(
        s.put(
            "HEAD",
            Bytes::from_static(b"d"),
            Precondition::IfMatch(e1.clone()),
        )
        .await,
        "stale ETag",
    );
    assert_precondition_failed(
        s.put(
            "absent",
            Bytes::from_static(b"x"),
            Precondition::IfMatch(e1),
        )
        .await,
        "IfMatch on a missing key",
    );
    assert_eq!(s.get("absent").await.unwrap(), None);
    let current = Object {
        body: Bytes::from_static(b"c"),
        etag: e2,
    };
    assert_eq!(s.get("HEAD").await.unwrap(), Some(current));
    assert_eq!(keys(s, "").await, ["HEAD"]);
}

/// A ranged read returns exactly the bytes asked for, or an error naming the key.
async fn ranged_reads(s: &dyn Store) {
    s.put(
        "pack",
        Bytes::from_static(b"0123456789"),
        Precondition::None,
    )
    .await
    .unwrap();
    assert_eq!(s.get_range("pack", 2, 3).await.unwrap(), "234");
    assert_eq!(s.get_range("pack", 0, 10).await.unwrap(), "0123456789");
    assert_eq!(s.get_range("pack", 9, 1).await.unwrap(), "9");
    assert_eq!(s.get_range("pack", 10, 0).await.unwrap(), "");
    for (offset, len) in [
        (8, 3),
        (10, 1),
        (11, 0),
        (100, 5),
        (u64::MAX, 2),
        (1, u64::MAX),
    ] {
        let err = s.get_range("pack", offset, len).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Range { .. }),
            "{offset}+{len}: {err}"
        );
        assert!(err.to_string().contains("pack"), "{err}");
    }
    let err = s.get_range("missing", 0, 1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { ref key, .. } if key == "missing"),
        "{err}"
    );
}

/// All the chunks of a streamed read, joined.
async fn collect(mut stream: Box<dyn RangeStream>) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next_chunk().await? {
        assert!(!chunk.is_empty());
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A streamed read hands out exactly the bytes of its range, in order; the range is checked before any byte, as
/// a ranged read's.
async fn streamed_reads(s: &dyn Store) {
    let body = data(3 * MIB + 17);
    s.put("pack", Bytes::from(body.clone()), Precondition::None)
        .await
        .unwrap();
    for (offset, len) in [(0, body.len()), (1, 3 * MIB), (MIB + 5, 1), (7, 0)] {
        let stream = s.get_stream("pack", offset as u64, len as u64).await;
        let got = collect(stream.unwrap()).await.unwrap();
        assert!(got == body[offset..offset + len], "{offset}+{len}");
    }
    let size = body.len() as u64;
    for (offset, len) in [(size - 2, 3), (size + 1, 0), (u64::MAX, 2), (1, u64::MAX)] {
        let err = s
            .get_stream("pack", offset, len)
            .await
            .map(drop)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Range { .. }),
            "{offset}+{len}: {err}"
        );
    }
    let err = s.get_stream("missing", 0, 1).await.map(drop).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

/// A large upload in odd-sized writes (three parts on S3) is invisible until complete and then whole; a complete
/// whose precondition fails keeps the old object and leaves nothing pending.
async fn uploads_publish_atomically(b: &Backend) {
    const KEY: &str = "objects/pack/pack-a.pack";
    let s = &*b.store;
    let body = data(20 * MIB + 12_345);
    let up = upload(s, KEY, &body, 1_234_567).await;
    assert_eq!(up.bytes_written(), body.len() as u64);
    assert_eq!(
        s.get(KEY).await.unwrap(),
        None,
        "nothing visible before complete"
    );
    assert!(
        keys(s, "").await.is_empty(),
        "nothing listed before complete"
    );
    assert_eq!(b.pending_uploads().await, 1);
    up.complete(Precondition::IfNoneMatch).await.unwrap();
    let got = s.get(KEY).await.unwrap().unwrap();
    assert!(got.body == body, "content differs");
    assert_eq!(
        s.get_range(KEY, 8 * MIB as u64 - 2, 4).await.unwrap(),
        body[8 * MIB - 2..][..4]
    );
    // A range that arrives in many chunks of the response body comes back whole and in order.
    let long = s.get_range(KEY, 3 * MIB as u64 - 7, 9 * MIB as u64 + 11);
    assert!(long.await.unwrap() == body[3 * MIB - 7..][..9 * MIB + 11]);

    // A second create-only upload of the same key fails at complete and leaves no upload behind.
    let replacement = &body[..9 * MIB];
    let up = upload(s, KEY, replacement, replacement.len()).await;
    assert_precondition_failed(
        up.complete(Precondition::IfNoneMatch).await,
        "create-only upload of an existing key",
    );
    assert_eq!(b.pending_uploads().await, 0);
    assert!(s.get(KEY).await.unwrap().unwrap().body == body);

    // Replacing needs the current ETag.
    let up = upload(s, KEY, replacement, replacement.len()).await;
    let stale = Precondition::IfMatch("\"0123456789abcdef0123456789abcdef-2\"".to_owned());
    assert_precondition_failed(up.complete(stale).await, "upload with a stale ETag");
    assert_eq!(b.pending_uploads().await, 0);
    let up = upload(s, KEY, replacement, replacement.len()).await;
    up.complete(Precondition::IfMatch(got.etag)).await.unwrap();
    assert!(s.get(KEY).await.unwrap().unwrap().body == replacement);
    assert_eq!(keys(s, "").await, [KEY]);
}

/// Small uploads (one PutObject on S3) honour preconditions like `put`; an upload may be empty.
async fn small_uploads_honour_preconditions(s: &dyn Store) {
    const HEAD: &[u8] = b"ref: refs/heads/main\n";
    // In two writes: "ref: refs/heads/" and "main\n".
    let up = upload(s, "HEAD", HEAD, 16).await;
    up.complete(Precondition::IfNoneMatch).await.unwrap();
    assert_eq!(s.get("HEAD").await.unwrap().unwrap().body, HEAD);

    let up = upload(s, "HEAD", b"other", 5).await;
    assert_precondition_failed(up.complete(Precondition::IfNoneMatch).await, "create-only");
    let up = s.create_upload("HEAD", FIRST_PART_SIZE).await.unwrap();
    assert_precondition_failed(
        up.complete(Precondition::IfMatch("\"0123\"".to_owned()))
            .await,
        "stale ETag",
    );
    // No write at all, and one empty write.
    let up = s.create_upload("empty", FIRST_PART_SIZE).await.unwrap();
    up.complete(Precondition::None).await.unwrap();
    let mut up = s
        .create_upload("empty-write", FIRST_PART_SIZE)
        .await
        .unwrap();
    up.write(b"").await.unwrap();
    up.complete(Precondition::None).await.unwrap();
    assert_eq!(s.get("empty").await.unwrap().unwrap().body, "");
    assert_eq!(s.get("empty-write").await.unwrap().unwrap().body, "");
    assert_eq!(s.get("HEAD").await.unwrap().unwrap().body, HEAD);
    assert_eq!(keys(s, "").await, ["HEAD", "empty", "empty-write"]);
}

/// Aborted and dropped uploads leave no object and nothing pending.
async fn aborted_and_dropped_uploads_leave_nothing(b: &Backend) {
    let s = &*b.store;
    let body = data(9 * MIB);
    let up = upload(s, "pack", &body, body.len()).await;
    assert_eq!(b.pending_uploads().await, 1, "the first part was sent");
    up.abort().await.unwrap();
    assert_eq!(b.pending_uploads().await, 0);
    assert_eq!(s.get("pack").await.unwrap(), None);

    drop(upload(s, "pack", &body, body.len()).await);
    // S3 aborts a dropped upload in the background.
    for _ in 0..100 {
        if b.pending_uploads().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.pending_uploads().await, 0);

    // Aborting an upload that never reached S3 is a no-op.
    let up = upload(s, "small", b"x", 1).await;
    up.abort().await.unwrap();
    assert!(keys(s, "").await.is_empty());
}

/// Uploads left open (as by a run killed hard) are listed below the prefix's directory with their start, and can be
/// discarded; the owner of a discarded upload can still abort it.
async fn unfinished_uploads_are_listed_and_discarded(b: &Backend) {
    let s = &*b.store;
    let body = data(9 * MIB);
    let started = SystemTime::now() - Duration::from_secs(1);
    let killed = upload(s, "objects/pack/incoming-killed.pack", &body, body.len()).await;
    let elsewhere = upload(s, "objects/other/incoming-x.pack", &body, body.len()).await;
    assert_eq!(b.pending_uploads().await, 2);
    let prefix = "objects/pack/incoming-";
    let pending = s.pending_uploads(prefix).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(pending[0].key.starts_with("objects/pack/"), "{pending:?}");
    if matches!(b.storage, Storage::Local(_)) {
        // moto reports one fixed date in 2010 as every upload's start; S3 and directories tell the truth.
        assert!(pending[0].started >= started, "{pending:?}");
    }
    assert!(s
        .pending_uploads("never/written-")
        .await
        .unwrap()
        .is_empty());
    s.discard_upload(&pending[0]).await.unwrap();
    assert_eq!(
        b.pending_uploads().await,
        1,
        "only the upload below the prefix goes"
    );
    assert!(s.pending_uploads(prefix).await.unwrap().is_empty());
    s.discard_upload(&pending[0]).await.unwrap();
    killed.abort().await.unwrap();
    elsewhere.abort().await.unwrap();
    assert!(keys(s, "").await.is_empty());
}

/// Copies (keys with a space, `+` and non-ASCII) honour preconditions on the destination as documented, report
/// a missing source, and do not follow later writes of the source.
async fn copies(b: &Backend) {
    const SRC: &str = "a b+c";
    const DST: &str = "copy/é";
    let s = &*b.store;
    s.put(SRC, Bytes::from_static(b"1"), Precondition::None)
        .await
        .unwrap();
    s.copy(SRC, DST, 1, Precondition::IfNoneMatch)
        .await
        .unwrap();
    assert_eq!(s.get(DST).await.unwrap().unwrap().body, "1");
    let err = s
        .copy("missing", "x", 1, Precondition::None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { ref key, .. } if key == "missing"),
        "{err}"
    );
    assert_eq!(s.get("x").await.unwrap(), None);
    // Replacing the source afterwards does not change the copy.
    s.put(SRC, Bytes::from_static(b"2"), Precondition::None)
        .await
        .unwrap();
    assert_eq!(s.get(DST).await.unwrap().unwrap().body, "1");
    // A create-only copy onto an existing key fails in a directory and on AWS; a server that ignores
    // If-None-Match on CopyObject (moto 5.2 does) replaces the key with the source's content, which is all a
    // caller may rely on there (`Store::copy`).
    let create_only = s.copy(SRC, DST, 1, Precondition::IfNoneMatch).await;
    let now = s.get(DST).await.unwrap().unwrap().body;
    match &b.storage {
        Storage::Local(_) => {
            assert_precondition_failed(create_only, "create-only copy onto an existing key");
            assert_eq!(now, "1");
        }
        Storage::S3(_) => match create_only {
            Err(StoreError::PreconditionFailed { .. }) => assert_eq!(now, "1"),
            Ok(()) => assert_eq!(now, "2"),
            Err(e) => panic!("create-only copy onto an existing key: {e}"),
        },
    }

    let old = s
        .put(DST, Bytes::from_static(b"old"), Precondition::None)
        .await
        .unwrap();
    assert_precondition_failed(
        s.copy(SRC, DST, 1, Precondition::IfMatch("\"stale\"".to_owned()))
            .await,
        "copy with a stale ETag",
    );
    assert_precondition_failed(
        s.copy(SRC, "absent", 1, Precondition::IfMatch(old.clone()))
            .await,
        "IfMatch copy onto a missing key",
    );
    assert_eq!(s.get("absent").await.unwrap(), None);
    let current = Object {
        body: Bytes::from_static(b"old"),
        etag: old.clone(),
    };
    assert_eq!(s.get(DST).await.unwrap(), Some(current));
    s.copy(SRC, DST, 1, Precondition::IfMatch(old.clone()))
        .await
        .unwrap();
    assert_eq!(s.get(DST).await.unwrap().unwrap().body, "2");
    assert_precondition_failed(
        s.copy(SRC, DST, 1, Precondition::IfMatch(old)).await,
        "copy with the ETag the last copy replaced",
    );
    assert_eq!(s.get(DST).await.unwrap().unwrap().body, "2");
    assert_eq!(keys(s, "").await, [SRC, DST]);
}

/// A copy takes the whole source, whatever length the caller gives (shorter, longer, far above S3's single-copy
/// limit, zero), or fails with nothing written: a wrong length never makes a wrong copy.
async fn copies_are_whole_whatever_length_is_given(s: &dyn Store) {
    let body = Bytes::from(data(1000));
    s.put("src", body.clone(), Precondition::None)
        .await
        .unwrap();
    for (i, len) in [0, 1, 999, 1001, 6 << 30, u64::MAX].into_iter().enumerate() {
        let to = format!("copy-{i}");
        s.copy("src", &to, len, Precondition::IfNoneMatch)
            .await
            .unwrap();
        assert!(
            s.get(&to).await.unwrap().unwrap().body == body,
            "copy given a length of {len}"
        );
        s.delete(&to).await.unwrap();
    }
    for len in [1000, 6 << 30] {
        let err = s
            .copy("missing", "x", len, Precondition::IfNoneMatch)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { ref key, .. } if key == "missing"),
            "{err}"
        );
    }
    assert_eq!(keys(s, "").await, ["src"]);
}

/// Listing is by plain string prefix, sorted, with sizes and times; deleting is idempotent.
async fn list_and_delete(s: &dyn Store) {
    for (key, body) in [
        ("a/x", "1"),
        ("refs/heads/main", "abc"),
        ("refs/.keep", ""),
        ("refsx", ""),
    ] {
        s.put(key, Bytes::from(body), Precondition::None)
            .await
            .unwrap();
    }
    assert_eq!(
        keys(s, "").await,
        ["a/x", "refs/.keep", "refs/heads/main", "refsx"]
    );
    assert_eq!(
        keys(s, "refs").await,
        ["refs/.keep", "refs/heads/main", "refsx"]
    );
    assert_eq!(keys(s, "refs/").await, ["refs/.keep", "refs/heads/main"]);
    assert_eq!(keys(s, "refs/heads/m").await, ["refs/heads/main"]);
    assert!(keys(s, "refs/heads/main/").await.is_empty());
    assert!(keys(s, "nothing/").await.is_empty());
    let listed = s.list("refs/heads/").await.unwrap();
    assert_eq!(listed[0].size, 3);
    let age = listed[0].last_modified.elapsed();
    assert!(
        age.as_ref().is_ok_and(|age| age.as_secs() < 3600),
        "{age:?}"
    );

    s.delete("a/x").await.unwrap();
    s.delete("a/x").await.unwrap();
    s.delete("never/existed").await.unwrap();
    assert_eq!(s.get("a/x").await.unwrap(), None);
    assert_eq!(
        keys(s, "").await,
        ["refs/.keep", "refs/heads/main", "refsx"]
    );
}

/// Keys that are empty, absolute, escape the root or use the temporary-file prefix.
const HOSTILE_KEYS: &[&str] = &[
    "",
    "/abs",
    "/etc/passwd",
    "../x",
    "../outside",
    "a/../../b",
    "a/../../outside",
    "a//b",
    "./x",
    "x/.",
    "a/.",
    "x/",
    "a\\b",
    "a\\..\\b",
    "a\0b",
    ".mirror-tmp-1",
    "x/.mirror-tmp-1",
];

/// Every operation rejects a hostile key or list prefix with [`StoreError::InvalidKey`].
async fn reject_hostile_keys(s: &dyn Store) {
    let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::InvalidKey { .. }));
    for &key in HOSTILE_KEYS {
        assert!(invalid(s.get(key).await.map(drop)), "get {key:?}");
        assert!(
            invalid(s.get_range(key, 0, 1).await.map(drop)),
            "get_range {key:?}"
        );
        assert!(
            invalid(
                s.put(key, Bytes::from_static(b"x"), Precondition::None)
                    .await
                    .map(drop)
            ),
            "put {key:?}"
        );
        assert!(
            invalid(s.copy("ok", key, 1, Precondition::None).await),
            "copy to {key:?}"
        );
        assert!(
            invalid(s.copy(key, "ok", 1, Precondition::None).await),
            "copy from {key:?}"
        );
        assert!(invalid(s.delete(key).await), "delete {key:?}");
        assert!(
            invalid(s.create_upload(key, FIRST_PART_SIZE).await.map(drop)),
            "upload {key:?}"
        );
    }
    for prefix in ["../", "/", "a/../", "../../etc/"] {
        assert!(invalid(s.list(prefix).await.map(drop)), "list {prefix:?}");
    }
}

/// Hostile keys are rejected and write nothing (the harness then checks that `outside` is untouched).
async fn hostile_keys_are_rejected(s: &dyn Store) {
    reject_hostile_keys(s).await;
    assert!(keys(s, "").await.is_empty(), "nothing was written");
}

// ---- What only S3 does ----

mod s3_only {
    use super::*;
    use futures_util::{stream, StreamExt, TryStreamExt};
    use mirror_git_to_s3::store::S3Store;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use testkit::raw_http::{find, forward, http, RawServer, Reply, Seen};

    #[tokio::test]
    async fn etags_are_quoted_and_count_parts() {
        let bucket = testkit::new_bucket();
        let s = open(&bucket, "").await;
        let etag = s
            .put("put", Bytes::from_static(b"one"), Precondition::IfNoneMatch)
            .await
            .unwrap();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "ETags are returned quoted: {etag}"
        );
        let up = upload(&*s, "small", b"ref: refs/heads/main\n", 16).await;
        up.complete(Precondition::IfNoneMatch).await.unwrap();
        let etag = s.get("small").await.unwrap().unwrap().etag;
        assert!(
            !etag.contains('-'),
            "a single PutObject, not a multipart upload: {etag}"
        );
        let up = upload(&*s, "big", &data(20 * MIB + 12_345), 1_234_567).await;
        up.complete(Precondition::IfNoneMatch).await.unwrap();
        let etag = s.get("big").await.unwrap().unwrap().etag;
        assert!(
            etag.ends_with("-3\""),
            "three parts (8 + 8 + 4 MiB): {etag}"
        );
    }

    #[tokio::test]
    async fn racing_creates_have_one_winner() {
        let bucket = testkit::new_bucket();
        let s = open(&bucket, "").await;
        let results: Vec<_> = stream::iter(0..8u8)
            .map(|i| {
                let s = s.clone();
                async move {
                    s.put("lock", Bytes::from(vec![i]), Precondition::IfNoneMatch)
                        .await
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let winners = results.iter().filter(|r| r.is_ok()).count();
        for r in &results {
            assert!(
                matches!(
                    r,
                    Ok(_)
                        | Err(StoreError::PreconditionFailed { .. } | StoreError::Conflict { .. })
                ),
                "{r:?}"
            );
        }
        assert_eq!(winners, 1, "{results:?}");
    }

    #[tokio::test]
    async fn an_upload_whose_writer_stops_waiting_at_any_moment_is_still_aborted() {
        // A deadline drops a write wherever it is: while CreateMultipartUpload runs, while a part is sent, or
        // between. Aborting afterwards must still reach the upload the store created.
        let bucket = testkit::new_bucket();
        let s = open(&bucket, "r").await;
        let body = data(11 * MIB);
        for (i, wait_ms) in [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233]
            .into_iter()
            .enumerate()
        {
            let mut up = s
                .create_upload(&format!("pack-{i}"), FIRST_PART_SIZE)
                .await
                .unwrap();
            let wait = Duration::from_millis(wait_ms);
            let _ = tokio::time::timeout(wait, up.write(&body)).await;
            up.abort().await.unwrap();
            assert_eq!(open_uploads(&bucket).await, 0, "stopped after {wait_ms} ms");
        }
        assert!(s.list("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn large_copies_go_part_by_part() {
        let bucket = testkit::new_bucket();
        let s = open(&bucket, "r").await;
        // Above the single-copy limit the copy goes part by part (limits lowered so moto can hold the object).
        let body = data(12 * MIB + 7);
        s.put("big", Bytes::from(body.clone()), Precondition::None)
            .await
            .unwrap();
        let small_limits = S3Store::connect(&bucket, "r", &opts())
            .await
            .unwrap()
            .with_copy_limits(1 << 20, 5 << 20);
        small_limits
            .copy(
                "big",
                "big-copy",
                body.len() as u64,
                Precondition::IfNoneMatch,
            )
            .await
            .unwrap();
        let got = s.get("big-copy").await.unwrap().unwrap();
        assert!(got.body == body, "multipart copy content differs");
        assert!(got.etag.ends_with("-3\""), "three parts: {}", got.etag);
        assert_precondition_failed(
            small_limits
                .copy(
                    "big",
                    "big-copy",
                    body.len() as u64,
                    Precondition::IfNoneMatch,
                )
                .await,
            "create-only multipart copy",
        );
        assert_eq!(
            open_uploads(&bucket).await,
            0,
            "the failed multipart copy was aborted"
        );
    }

    /// A copy within the single-copy limit is one CopyObject: the length the caller gives saves a HeadObject of
    /// the source. Only a length above the limit reads the source, and its true size decides.
    #[tokio::test]
    async fn copies_read_the_source_only_above_the_single_copy_limit() {
        let bucket = testkit::new_bucket();
        let s = S3Store::connect(&bucket, "r", &opts())
            .await
            .unwrap()
            .with_copy_limits(1 << 20, 5 << 20);
        let small = Bytes::from(data(1000));
        s.put("small", small.clone(), Precondition::None)
            .await
            .unwrap();
        let requests = |before: u64| s.requests() - before;
        let before = s.requests();
        s.copy("small", "a", 1000, Precondition::None)
            .await
            .unwrap();
        assert_eq!(requests(before), 1, "one CopyObject");
        // Create-only: If-None-Match rides on the CopyObject, with no HeadObject of the destination.
        let before = s.requests();
        s.copy("small", "a2", 1000, Precondition::IfNoneMatch)
            .await
            .unwrap();
        assert_eq!(requests(before), 1, "one create-only CopyObject");
        // A length above the limit for a source below it: a HeadObject, then the same single CopyObject.
        let before = s.requests();
        s.copy("small", "b", 12 << 20, Precondition::None)
            .await
            .unwrap();
        assert_eq!(requests(before), 2, "a HeadObject and a CopyObject");
        for key in ["a", "a2", "b"] {
            assert!(s.get(key).await.unwrap().unwrap().body == small, "{key}");
        }
        // A length below the limit for a source above it: one CopyObject, which copies the whole source (AWS
        // would refuse a source above its real 5 GiB limit; moto copies it).
        let big = Bytes::from(data(12 * MIB + 7));
        s.put("big", big.clone(), Precondition::None).await.unwrap();
        let before = s.requests();
        s.copy("big", "c", 1, Precondition::None).await.unwrap();
        assert_eq!(requests(before), 1, "one CopyObject");
        assert!(s.get("c").await.unwrap().unwrap().body == big);
    }

    #[tokio::test]
    async fn storage_class_applies_to_every_write() {
        let bucket = testkit::new_bucket();
        let opts = S3Options {
            storage_class: Some("STANDARD_IA".to_owned()),
            ..opts()
        };
        let s = store::open(&format!("s3://{bucket}"), &opts).await.unwrap();
        s.put("put", Bytes::from_static(b"x"), Precondition::None)
            .await
            .unwrap();
        let mut up = s.create_upload("upload", FIRST_PART_SIZE).await.unwrap();
        up.write(&data(9 * MIB)).await.unwrap();
        up.complete(Precondition::None).await.unwrap();
        s.copy("put", "copy", 1, Precondition::None).await.unwrap();
        let c = testkit::s3().client();
        for key in ["put", "upload", "copy"] {
            let head = c
                .head_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            assert_eq!(
                head.storage_class().map(|c| c.as_str()),
                Some("STANDARD_IA"),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn list_paginates_and_applies_the_prefix() {
        let bucket = testkit::new_bucket();
        let s = open(&bucket, "mirrors/root").await;
        assert_eq!(s.describe(), format!("s3://{bucket}/mirrors/root"));
        let keys: Vec<String> = (0..1050)
            .map(|i| format!("objects/{:02x}/{i:05}", i % 7))
            .collect();
        stream::iter(keys.clone())
            .map(|k| {
                let s = s.clone();
                async move { s.put(&k, Bytes::from(k.clone()), Precondition::None).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        s.put("info/refs", Bytes::from_static(b"r"), Precondition::None)
            .await
            .unwrap();
        // The store's prefix is applied to the bucket key.
        assert_eq!(
            testkit::get_object(&bucket, "mirrors/root/info/refs").as_deref(),
            Some(&b"r"[..])
        );
        // Outside the store's prefix, and sharing it as a string prefix: never listed.
        let c = testkit::s3().client();
        c.put_object()
            .bucket(&bucket)
            .key("mirrors/rootless/objects/x")
            .body(Bytes::new().into())
            .send()
            .await
            .unwrap();

        let mut expected = keys.clone();
        expected.sort();
        let listed = s.list("objects/").await.unwrap();
        assert_eq!(
            listed.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(listed[0].size, expected[0].len() as u64);
        assert!(listed[0].last_modified.elapsed().unwrap_or_default() < Duration::from_secs(3600));
        assert_eq!(s.list("").await.unwrap().len(), 1051);
        assert_eq!(s.list("objects/03/").await.unwrap().len(), 150);
        assert_eq!(s.list("info/r").await.unwrap()[0].key, "info/refs");
        assert!(s.list("nothing/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn missing_bucket_is_a_clear_error() {
        let s = open("no-such-bucket-for-store-tests", "x").await;
        let expect = |r: Result<(), StoreError>, op: &str| {
            let err = r.unwrap_err();
            assert!(
                matches!(err, StoreError::NoSuchBucket { ref bucket, .. } if bucket == "no-such-bucket-for-store-tests"),
                "{op}: {err}"
            );
            assert!(
                err.to_string()
                    .contains("bucket no-such-bucket-for-store-tests does not exist"),
                "{op}: {err}"
            );
        };
        expect(s.get("k").await.map(drop), "get");
        expect(s.get_range("k", 0, 1).await.map(drop), "get_range");
        expect(
            s.put("k", Bytes::from_static(b"x"), Precondition::None)
                .await
                .map(drop),
            "put",
        );
        expect(s.list("").await.map(drop), "list");
        expect(s.delete("k").await, "delete");
        let mut up = s.create_upload("k", FIRST_PART_SIZE).await.unwrap();
        expect(up.write(&data(8 * MIB)).await, "upload");
    }

    #[tokio::test]
    async fn a_read_whose_body_breaks_off_is_read_again() {
        use testkit::fault_proxy::{Direction, Fault, FaultProxy};
        let bucket = testkit::new_bucket();
        let proxy = FaultProxy::start("s3", testkit::s3().port());
        let opts = S3Options {
            endpoint_url: Some(proxy.url()),
            ..opts()
        };
        let s = store::open(&format!("s3://{bucket}/p"), &opts)
            .await
            .unwrap();
        let body = Bytes::from(data(MIB));
        s.put("k", body.clone(), Precondition::None).await.unwrap();
        let cut = Fault::Cut {
            dir: Direction::ToClient,
            after: 100 << 10,
        };

        proxy.arm_on(b"bytes=", cut);
        let read = s.get_range("k", 1, MIB as u64 - 1).await.unwrap();
        assert_eq!(proxy.disarm().len(), 1, "the range's first answer was cut");
        assert_eq!(read, body.slice(1..));

        proxy.arm_on(b"GET /", cut);
        let read = s.get("k").await.unwrap().expect("the object");
        assert_eq!(proxy.disarm().len(), 1, "the object's first answer was cut");
        assert_eq!(read.body, body);
    }

    /// A store on a new bucket holding `k` (1 MiB), whose requests go through a server in front of moto that
    /// hands each answer to `tamper` with the request's number (from 0) and the request; the server, and `k`.
    async fn behind(
        tamper: impl Fn(usize, &Seen, Vec<u8>) -> Vec<u8> + Send + Sync + 'static,
    ) -> (Arc<dyn Store>, RawServer, Vec<u8>) {
        let bucket = testkit::new_bucket();
        let body = data(MIB);
        open(&bucket, "p")
            .await
            .put("k", Bytes::from(body.clone()), Precondition::None)
            .await
            .unwrap();
        let moto = format!("127.0.0.1:{}", testkit::s3().port());
        let count = AtomicUsize::new(0);
        let server = RawServer::start(move |request| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            Reply::Send(tamper(n, request, forward(request, &moto)))
        })
        .await;
        let opts = S3Options {
            endpoint_url: Some(format!("http://127.0.0.1:{}", server.port)),
            ..opts()
        };
        let s = store::open(&format!("s3://{bucket}/p"), &opts)
            .await
            .unwrap();
        (s, server, body)
    }

    /// `response` with its body cut after `keep` bytes (its headers still announce the whole body).
    fn cut(response: Vec<u8>, keep: usize) -> Vec<u8> {
        let body = find(&response, b"\r\n\r\n").unwrap() + 4;
        response[..body + keep.min(response.len() - body)].to_vec()
    }

    /// `response` without header `name`, then with `name: value` if there is a value.
    fn with_header(response: Vec<u8>, name: &str, value: Option<&str>) -> Vec<u8> {
        let at = find(&response, b"\r\n\r\n").unwrap();
        let head = String::from_utf8(response[..at].to_vec()).unwrap();
        let prefix = format!("{}:", name.to_lowercase());
        let mut lines: Vec<String> = head
            .split("\r\n")
            .filter(|l| !l.to_lowercase().starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        lines.extend(value.map(|value| format!("{name}: {value}")));
        let mut out = lines.join("\r\n").into_bytes();
        out.extend_from_slice(&response[at..]);
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stream_whose_body_ends_early_goes_on_from_where_it_stopped() {
        // The first answer stops after 300,000 bytes of its body; the second one is whole.
        let (s, server, body) = behind(|n, _, response| match n {
            0 => cut(response, 300_000),
            _ => response,
        })
        .await;
        let got = collect(s.get_stream("k", 1, MIB as u64 - 1).await.unwrap()).await;
        assert!(got.unwrap() == body[1..]);
        let ranges: Vec<_> = server
            .seen()
            .iter()
            .map(|r| r.header("range").unwrap_or("").to_owned())
            .collect();
        assert_eq!(ranges, ["bytes=1-1048575", "bytes=300001-1048575"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_server_error_when_resuming_is_retried() {
        // Cut, then a 503 for the next request (retried by the SDK), then whole.
        let (s, server, body) = behind(|n, _, response| match n {
            0 => cut(response, 100_000),
            1 => http("503 Service Unavailable", &[], b""),
            _ => response,
        })
        .await;
        let got = s.get_range("k", 0, MIB as u64).await.unwrap();
        assert!(got == body);
        assert_eq!(server.seen().len(), 3);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stream_that_keeps_breaking_off_without_progress_fails() {
        let (s, server, _) = behind(|_, _, response| cut(response, 1000)).await;
        let err = collect(s.get_stream("k", 0, MIB as u64).await.unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains('k'), "{err}");
        assert_eq!(server.seen().len(), 6, "the store's attempts at a read");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn answers_for_another_range_are_refused_before_any_byte() {
        let wrong = [
            ("Content-Range", "bytes 0-1048574/1048576"),
            ("Content-Range", "bytes 1-1048575/*x"),
            ("Content-Range", "bytes=1-1048575/1048576"),
            ("Content-Length", "1000"),
        ];
        for (name, value) in wrong {
            let (s, server, _) =
                behind(move |_, _, response| with_header(response, name, Some(value))).await;
            let err = s
                .get_stream("k", 1, MIB as u64 - 1)
                .await
                .map(drop)
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Range { .. }),
                "{name}: {value}: {err}"
            );
            assert!(
                err.to_string().contains(name) || name == "Content-Length",
                "{err}"
            );
            assert_eq!(server.seen().len(), 1, "not retried");
        }
        // An answer without Content-Range: the server ignored the range.
        let (s, _server, _) =
            behind(|_, _, response| with_header(response, "Content-Range", None)).await;
        let err = s.get_range("k", 5, 10).await.unwrap_err();
        assert!(
            err.to_string().contains("ignored the Range header"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn other_errors_carry_the_service_message() {
        // A server that is not there: the transport error, not "dispatch failure" alone.
        let opts = S3Options {
            endpoint_url: Some("http://127.0.0.1:9".to_owned()),
            force_path_style: true,
            ..opts()
        };
        let s = store::open("s3://bucket/p", &opts).await.unwrap();
        let err = s.get("k").await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                StoreError::S3 {
                    op: "GetObject",
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains("s3://bucket/p")
                && text.contains('k')
                && text.to_lowercase().contains("connect"),
            "{text}"
        );

        // A service error: its code and message.
        let bucket = testkit::new_bucket();
        let s = open(&bucket, "").await;
        let s3 = S3Store::connect(
            &bucket,
            "",
            &S3Options {
                storage_class: Some("NO_SUCH_CLASS".to_owned()),
                ..super::opts()
            },
        )
        .await
        .unwrap();
        let err = s3
            .put("k", Bytes::from_static(b"x"), Precondition::None)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                StoreError::S3 {
                    op: "PutObject",
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains("InvalidStorageClass") && !text.contains("service error"),
            "{text}"
        );
        assert_eq!(s.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn hostile_keys_are_rejected_before_any_request() {
        // No server at this endpoint: any request would fail differently.
        let opts = S3Options {
            endpoint_url: Some("http://127.0.0.1:9".to_owned()),
            ..S3Options::default()
        };
        let s = store::open("s3://bucket/p", &opts).await.unwrap();
        reject_hostile_keys(&*s).await;
    }
}
