//! The S3 store against a real S3 API server (moto_server): conditional writes, ranged reads, multipart uploads
//! and copies, pagination, and the errors a user sees for a missing bucket or bad keys.

mod common;

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use mirror_git_to_s3::store::{self, Precondition, S3Options, S3Store, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

fn opts() -> S3Options {
    S3Options {
        endpoint_url: Some(common::s3().endpoint.clone()),
        force_path_style: true,
        ..S3Options::default()
    }
}

async fn open(bucket: &str, prefix: &str) -> Arc<dyn Store> {
    store::open(&format!("s3://{bucket}/{prefix}"), &opts())
        .await
        .unwrap()
}

async fn open_uploads(bucket: &str) -> usize {
    let out = common::s3()
        .client()
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.uploads().len()
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

#[tokio::test]
async fn put_get_and_preconditions() {
    let bucket = common::new_bucket();
    let s = open(&bucket, "mirrors/repo").await;
    assert_eq!(s.describe(), format!("s3://{bucket}/mirrors/repo"));
    assert_eq!(s.get("info/refs").await.unwrap(), None);

    let e1 = s
        .put(
            "info/refs",
            Bytes::from_static(b"one"),
            Precondition::IfNoneMatch,
        )
        .await
        .unwrap();
    assert!(
        e1.starts_with('"') && e1.ends_with('"'),
        "ETags are returned quoted: {e1}"
    );
    let got = s.get("info/refs").await.unwrap().unwrap();
    assert_eq!((got.body.as_ref(), &got.etag), (&b"one"[..], &e1));
    // The store's prefix is applied to the bucket key.
    let raw = common::s3()
        .client()
        .get_object()
        .bucket(&bucket)
        .key("mirrors/repo/info/refs")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.body.collect().await.unwrap().into_bytes(), "one");

    let err = s
        .put(
            "info/refs",
            Bytes::from_static(b"two"),
            Precondition::IfNoneMatch,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { ref key, .. } if key == "info/refs"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&s.describe()) && err.to_string().contains("info/refs"),
        "{err}"
    );

    let e2 = s
        .put(
            "info/refs",
            Bytes::from_static(b"two"),
            Precondition::IfMatch(e1.clone()),
        )
        .await
        .unwrap();
    assert_ne!(e1, e2);
    let err = s
        .put(
            "info/refs",
            Bytes::from_static(b"three"),
            Precondition::IfMatch(e1.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "stale ETag: {err}"
    );
    let err = s
        .put(
            "absent",
            Bytes::from_static(b"x"),
            Precondition::IfMatch(e1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "IfMatch on a missing key: {err}"
    );
    assert_eq!(s.get("absent").await.unwrap(), None);
    assert_eq!(s.get("info/refs").await.unwrap().unwrap().body, "two");

    s.put("empty", Bytes::new(), Precondition::None)
        .await
        .unwrap();
    assert_eq!(s.get("empty").await.unwrap().unwrap().body, "");
    s.delete("empty").await.unwrap();
    s.delete("empty").await.unwrap();
    assert_eq!(s.get("empty").await.unwrap(), None);
}

#[tokio::test]
async fn racing_creates_have_one_winner() {
    let bucket = common::new_bucket();
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
                Ok(_) | Err(StoreError::PreconditionFailed { .. } | StoreError::Conflict { .. })
            ),
            "{r:?}"
        );
    }
    assert_eq!(winners, 1, "{results:?}");
}

#[tokio::test]
async fn ranged_reads() {
    let bucket = common::new_bucket();
    let s = open(&bucket, "p").await;
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

#[tokio::test]
async fn multipart_upload_in_odd_writes() {
    let bucket = common::new_bucket();
    let s = open(&bucket, "m").await;
    let body = data(20 * 1024 * 1024 + 12_345);
    let mut up = s.create_upload("objects/pack/pack-a.pack").await.unwrap();
    for chunk in body.chunks(1_234_567) {
        up.write(chunk).await.unwrap();
    }
    assert_eq!(up.bytes_written(), body.len() as u64);
    assert_eq!(
        s.get("objects/pack/pack-a.pack").await.unwrap(),
        None,
        "nothing visible before complete"
    );
    assert_eq!(open_uploads(&bucket).await, 1);
    up.complete(Precondition::IfNoneMatch).await.unwrap();
    let got = s.get("objects/pack/pack-a.pack").await.unwrap().unwrap();
    assert!(got.body == body, "content differs");
    assert!(
        got.etag.ends_with("-3\""),
        "three parts (8 + 8 + 4 MiB): {}",
        got.etag
    );
    assert_eq!(
        s.get_range("objects/pack/pack-a.pack", 8 * 1024 * 1024 - 2, 4)
            .await
            .unwrap(),
        body[8 * 1024 * 1024 - 2..][..4]
    );

    // A second create-only upload of the same key fails at complete and leaves no upload behind.
    let mut up = s.create_upload("objects/pack/pack-a.pack").await.unwrap();
    up.write(&body[..9 * 1024 * 1024]).await.unwrap();
    let err = up.complete(Precondition::IfNoneMatch).await.unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    assert_eq!(open_uploads(&bucket).await, 0);
    assert!(
        s.get("objects/pack/pack-a.pack")
            .await
            .unwrap()
            .unwrap()
            .body
            == body
    );

    // Replacing needs the current ETag.
    let mut up = s.create_upload("objects/pack/pack-a.pack").await.unwrap();
    up.write(&body[..9 * 1024 * 1024]).await.unwrap();
    let err = up
        .complete(Precondition::IfMatch(
            "\"0123456789abcdef0123456789abcdef-2\"".to_owned(),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    assert_eq!(open_uploads(&bucket).await, 0);
    let mut up = s.create_upload("objects/pack/pack-a.pack").await.unwrap();
    up.write(&body[..9 * 1024 * 1024]).await.unwrap();
    up.complete(Precondition::IfMatch(got.etag)).await.unwrap();
    assert!(
        s.get("objects/pack/pack-a.pack")
            .await
            .unwrap()
            .unwrap()
            .body
            == body[..9 * 1024 * 1024]
    );
}

#[tokio::test]
async fn small_uploads_are_single_puts_and_honour_preconditions() {
    let bucket = common::new_bucket();
    let s = open(&bucket, "").await;
    let mut up = s.create_upload("HEAD").await.unwrap();
    up.write(b"ref: refs/heads/").await.unwrap();
    up.write(b"main\n").await.unwrap();
    up.complete(Precondition::IfNoneMatch).await.unwrap();
    let got = s.get("HEAD").await.unwrap().unwrap();
    assert_eq!(got.body, "ref: refs/heads/main\n");
    assert!(
        !got.etag.contains('-'),
        "a single PutObject, not a multipart upload: {}",
        got.etag
    );

    let mut up = s.create_upload("HEAD").await.unwrap();
    up.write(b"other").await.unwrap();
    let err = up.complete(Precondition::IfNoneMatch).await.unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    let up = s.create_upload("HEAD").await.unwrap();
    let err = up
        .complete(Precondition::IfMatch("\"0123\"".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    let up = s.create_upload("empty").await.unwrap();
    up.complete(Precondition::None).await.unwrap();
    assert_eq!(s.get("empty").await.unwrap().unwrap().body, "");
    assert_eq!(
        s.get("HEAD").await.unwrap().unwrap().body,
        "ref: refs/heads/main\n"
    );
}

#[tokio::test]
async fn aborted_and_dropped_uploads_leave_nothing() {
    let bucket = common::new_bucket();
    let s = open(&bucket, "").await;
    let body = data(9 * 1024 * 1024);
    let mut up = s.create_upload("pack").await.unwrap();
    up.write(&body).await.unwrap();
    assert_eq!(open_uploads(&bucket).await, 1, "the first part was sent");
    up.abort().await.unwrap();
    assert_eq!(open_uploads(&bucket).await, 0);
    assert_eq!(s.get("pack").await.unwrap(), None);

    let mut up = s.create_upload("pack").await.unwrap();
    up.write(&body).await.unwrap();
    drop(up);
    // The drop aborts in the background.
    for _ in 0..100 {
        if open_uploads(&bucket).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open_uploads(&bucket).await, 0);

    // Aborting an upload that never reached S3 is a no-op.
    let mut up = s.create_upload("small").await.unwrap();
    up.write(b"x").await.unwrap();
    up.abort().await.unwrap();
    assert_eq!(s.list("").await.unwrap(), vec![]);
}

#[tokio::test]
async fn copies() {
    let bucket = common::new_bucket();
    let s = open(&bucket, "r").await;
    s.put("a b+c", Bytes::from_static(b"content"), Precondition::None)
        .await
        .unwrap();
    s.copy("a b+c", "copy/é", Precondition::IfNoneMatch)
        .await
        .unwrap();
    assert_eq!(s.get("copy/é").await.unwrap().unwrap().body, "content");
    let err = s
        .copy("missing", "x", Precondition::None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { ref key, .. } if key == "missing"),
        "{err}"
    );
    let err = s
        .copy("a b+c", "copy/é", Precondition::IfNoneMatch)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    let old = s
        .put("copy/é", Bytes::from_static(b"old"), Precondition::None)
        .await
        .unwrap();
    let err = s
        .copy(
            "a b+c",
            "copy/é",
            Precondition::IfMatch("\"stale\"".to_owned()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    let err = s
        .copy("a b+c", "absent", Precondition::IfMatch(old.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    assert_eq!(s.get("copy/é").await.unwrap().unwrap().body, "old");
    s.copy("a b+c", "copy/é", Precondition::IfMatch(old))
        .await
        .unwrap();
    assert_eq!(s.get("copy/é").await.unwrap().unwrap().body, "content");

    // Above the single-copy limit the copy goes part by part (limits lowered so moto can hold the object).
    let body = data(12 * 1024 * 1024 + 7);
    s.put("big", Bytes::from(body.clone()), Precondition::None)
        .await
        .unwrap();
    let small_limits = S3Store::connect(&bucket, "r", &opts())
        .await
        .unwrap()
        .with_copy_limits(1 << 20, 5 << 20);
    small_limits
        .copy("big", "big-copy", Precondition::IfNoneMatch)
        .await
        .unwrap();
    let got = s.get("big-copy").await.unwrap().unwrap();
    assert!(got.body == body, "multipart copy content differs");
    assert!(got.etag.ends_with("-3\""), "three parts: {}", got.etag);
    let err = small_limits
        .copy("big", "big-copy", Precondition::IfNoneMatch)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    assert_eq!(
        open_uploads(&bucket).await,
        0,
        "the failed multipart copy was aborted"
    );
}

#[tokio::test]
async fn storage_class_applies_to_every_write() {
    let bucket = common::new_bucket();
    let opts = S3Options {
        storage_class: Some("STANDARD_IA".to_owned()),
        ..opts()
    };
    let s = store::open(&format!("s3://{bucket}"), &opts).await.unwrap();
    s.put("put", Bytes::from_static(b"x"), Precondition::None)
        .await
        .unwrap();
    let mut up = s.create_upload("upload").await.unwrap();
    up.write(&data(9 * 1024 * 1024)).await.unwrap();
    up.complete(Precondition::None).await.unwrap();
    s.copy("put", "copy", Precondition::None).await.unwrap();
    let c = common::s3().client();
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
async fn list_paginates_and_strips_the_prefix() {
    let bucket = common::new_bucket();
    let s = open(&bucket, "root").await;
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
    // Outside the store's prefix, and sharing it as a string prefix: never listed.
    let c = common::s3().client();
    c.put_object()
        .bucket(&bucket)
        .key("rootless/objects/x")
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
    let mut up = s.create_upload("k").await.unwrap();
    expect(up.write(&data(8 * 1024 * 1024)).await, "upload");
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
    let bucket = common::new_bucket();
    let s = open(&bucket, "").await;
    let s3 = S3Store::connect(
        &bucket,
        "",
        &S3Options {
            storage_class: Some("NO_SUCH_CLASS".to_owned()),
            ..self::opts()
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
    for key in [
        "",
        "/abs",
        "a//b",
        "../x",
        "a/../../b",
        "a/.",
        "a\\b",
        "a\0b",
        "x/.mirror-tmp-1",
    ] {
        let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::InvalidKey { .. }));
        assert!(invalid(s.get(key).await.map(drop)), "get {key:?}");
        assert!(
            invalid(s.get_range(key, 0, 1).await.map(drop)),
            "get_range {key:?}"
        );
        assert!(
            invalid(s.put(key, Bytes::new(), Precondition::None).await.map(drop)),
            "put {key:?}"
        );
        assert!(
            invalid(s.copy("ok", key, Precondition::None).await),
            "copy {key:?}"
        );
        assert!(invalid(s.delete(key).await), "delete {key:?}");
        assert!(
            invalid(s.create_upload(key).await.map(drop)),
            "upload {key:?}"
        );
    }
    assert!(matches!(
        s.list("../").await,
        Err(StoreError::InvalidKey { .. })
    ));
}
