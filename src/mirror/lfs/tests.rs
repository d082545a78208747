use super::*;
use crate::store::LocalStore;
use crate::upstream::UpstreamOptions;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use testkit::raw_http::{http, RawServer, Reply};

fn pointer_of(content: &[u8]) -> Pointer {
    Pointer {
        oid: LfsOid(Sha256::digest(content).into()),
        size: content.len() as u64,
    }
}

#[test]
fn downloads_at_once_follow_the_budget() {
    assert_eq!(concurrent_downloads(0), 1);
    assert_eq!(concurrent_downloads(store::UPLOAD_BUFFER_BYTES * 3), 3);
    assert_eq!(concurrent_downloads(u64::MAX), 8);
}

#[test]
fn an_error_names_the_objects() {
    let failures: Vec<LfsFailure> = (0..7u8)
        .map(|i| LfsFailure::new(&pointer_of(&[i]), "gone".to_owned()))
        .collect();
    let message = LfsError::Objects {
        failures: failures.clone(),
    }
    .to_string();
    assert!(
        message.starts_with("7 LFS object(s) could not be mirrored"),
        "{message}"
    );
    assert!(
        message.contains(&failures[0].oid) && message.contains("and 2 more"),
        "{message}"
    );
    assert!(!message.contains(&failures[6].oid));
}

/// Every case a server can present, one object each, against a directory store: copied (once over a stored copy
/// of the wrong size), present, corrupt, missing, a refused href, an expired action asked for again.
#[tokio::test]
async fn each_object_is_copied_skipped_or_failed_on_its_own() {
    let good = b"good content".to_vec();
    let present = b"already mirrored".to_vec();
    let corrupt = b"what the pointer names".to_vec();
    let missing = b"the server lacks this".to_vec();
    let refused = b"served from a file URL".to_vec();
    let expiring = b"its first action has expired".to_vec();
    let (p_good, p_present, p_corrupt, p_missing, p_refused, p_expiring) = (
        pointer_of(&good),
        pointer_of(&present),
        pointer_of(&corrupt),
        pointer_of(&missing),
        pointer_of(&refused),
        pointer_of(&expiring),
    );
    let batches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&batches);
    let (good_body, expiring_body) = (good.clone(), expiring.clone());
    let server = RawServer::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        match request.target.as_str() {
            "/r.git/info/lfs/objects/batch" => {
                let round = counter.fetch_add(1, Ordering::SeqCst);
                let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                let objects: Vec<serde_json::Value> = asked["objects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| {
                        let oid = o["oid"].as_str().unwrap().to_owned();
                        let href = |path: &str| format!("http://{host}/{path}");
                        let action = |path: &str, extra: serde_json::Value| {
                            let mut download = serde_json::json!({"href": href(path)});
                            download.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                            serde_json::json!({"oid": &oid, "actions": {"download": download}})
                        };
                        match oid.clone() {
                            o if o == p_good.oid.to_string() => action("good", serde_json::json!({})),
                            o if o == p_corrupt.oid.to_string() => action("corrupt", serde_json::json!({})),
                            o if o == p_refused.oid.to_string() => serde_json::json!({"oid": o,
                                "actions": {"download": {"href": "file:///etc/passwd"}}}),
                            o if o == p_expiring.oid.to_string() && round == 0 => {
                                action("expiring", serde_json::json!({"expires_in": -1}))
                            }
                            o if o == p_expiring.oid.to_string() => {
                                action("expiring", serde_json::json!({"expires_at": "2999-01-01T00:00:00Z"}))
                            }
                            o => serde_json::json!({"oid": o, "error": {"code": 404, "message": "Not found"}}),
                        }
                    })
                    .collect();
                let body = serde_json::json!({"objects": objects}).to_string();
                Reply::Send(http("200 OK", &[], body.as_bytes()))
            }
            "/good" => Reply::Send(http("200 OK", &[], &good_body)),
            "/expiring" => Reply::Send(http("200 OK", &[], &expiring_body)),
            "/corrupt" => Reply::Send(http("200 OK", &[], b"WHAT THE POINTER NAMES")),
            _ => Reply::Send(http("404 Not Found", &[], b"")),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store
        .put(
            &p_present.oid.store_key(),
            present.clone().into(),
            Precondition::IfNoneMatch,
        )
        .await
        .unwrap();
    // What a cut-off write of an earlier run may have left: not the object, so it is stored again over it.
    store
        .put(
            &p_good.oid.store_key(),
            good[..4].to_vec().into(),
            Precondition::IfNoneMatch,
        )
        .await
        .unwrap();
    let client = UpstreamClient::new(UpstreamOptions::default()).unwrap();
    let endpoint = client.lfs_endpoint(&server.url("/r"), None).unwrap();
    let group = [
        p_good, p_present, p_corrupt, p_missing, p_refused, p_expiring,
    ];
    let done = mirror_group(&client, &store, &endpoint, &group, 2)
        .await
        .unwrap();

    let mut copied = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for d in done {
        match d {
            Done::Copied(bytes) => copied.push(bytes),
            Done::Skipped(bytes) => skipped.push(bytes),
            Done::Failed(f) => failed.push(f),
        }
    }
    copied.sort_unstable();
    assert_eq!(copied, {
        let mut sizes = vec![good.len() as u64, expiring.len() as u64];
        sizes.sort_unstable();
        sizes
    });
    assert_eq!(skipped, vec![present.len() as u64]);
    let reason = |p: &Pointer| {
        failed
            .iter()
            .find(|f| f.oid == p.oid.to_string())
            .map(|f| f.problem.clone())
            .unwrap_or_else(|| panic!("{} did not fail", p.oid))
    };
    assert!(
        reason(&p_corrupt).contains("hash to"),
        "{}",
        reason(&p_corrupt)
    );
    assert!(reason(&p_missing).contains("404"), "{}", reason(&p_missing));
    assert!(
        reason(&p_refused).contains("only http and https"),
        "{}",
        reason(&p_refused)
    );
    assert_eq!(failed.len(), 3);
    assert_eq!(
        batches.load(Ordering::SeqCst),
        2,
        "one batch, and one more for the expired action"
    );
    for (p, content) in [
        (&p_good, &good),
        (&p_present, &present),
        (&p_expiring, &expiring),
    ] {
        let stored = store.get(&p.oid.store_key()).await.unwrap().unwrap();
        assert_eq!(&stored.body[..], &content[..]);
    }
    for p in [&p_corrupt, &p_missing, &p_refused] {
        assert_eq!(
            store.get(&p.oid.store_key()).await.unwrap(),
            None,
            "nothing under the final key"
        );
    }
    let names: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(names.len(), 3, "no temporary leftovers: {names:?}");
    let requests: Vec<String> = server.seen().into_iter().map(|s| s.target).collect();
    assert!(
        !requests.iter().any(|t| t.contains("already")),
        "{requests:?}"
    );
    let asked: Vec<serde_json::Value> = server
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect();
    assert!(
        !asked[0].to_string().contains(&p_present.oid.to_string()),
        "an object the mirror has is not asked for"
    );
}

#[tokio::test]
async fn a_body_longer_than_the_pointer_says_is_cut_off() {
    let content = b"short".to_vec();
    let p = pointer_of(&content);
    let server = RawServer::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        match request.target.as_str() {
            "/r.git/info/lfs/objects/batch" => {
                let body = serde_json::json!({"objects": [{"oid": p.oid.to_string(),
                    "actions": {"download": {"href": format!("http://{host}/long")}}}]});
                Reply::Send(http("200 OK", &[], body.to_string().as_bytes()))
            }
            _ => Reply::Send(http("200 OK", &[], &vec![b'x'; 100_000])),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let client = UpstreamClient::new(UpstreamOptions::default()).unwrap();
    let endpoint = client.lfs_endpoint(&server.url("/r"), None).unwrap();
    let done = mirror_group(&client, &store, &endpoint, &[p], 1)
        .await
        .unwrap();
    assert!(matches!(&done[..], [Done::Failed(f)] if f.problem.contains("more than its 5 bytes")));
    assert!(store.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn downloads_that_may_succeed_later_are_tried_again_and_others_are_not() {
    let content = b"the object's bytes".to_vec();
    let (good, gone) = (pointer_of(&content), pointer_of(b"gone"));
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&attempts);
    let body = content.clone();
    let server = RawServer::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        match request.target.as_str() {
            "/r.git/info/lfs/objects/batch" => {
                let action = |path: &str| {
                    serde_json::json!({"download": {"href": format!("http://{host}{path}")}})
                };
                let body = serde_json::json!({"objects": [
                    {"oid": good.oid.to_string(), "size": good.size, "actions": action("/good")},
                    {"oid": gone.oid.to_string(), "size": gone.size, "actions": action("/gone")},
                ]});
                Reply::Send(http("200 OK", &[], body.to_string().as_bytes()))
            }
            "/good" => match counted.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::Send(http("503 Service Unavailable", &[], b"busy")),
                // Cut mid-body: the length promises more than is sent.
                1 => Reply::Send(
                    [
                        b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n".as_slice(),
                        &body[..5],
                    ]
                    .concat(),
                ),
                _ => Reply::Send(http("200 OK", &[], &body)),
            },
            _ => Reply::Send(http("404 Not Found", &[], b"no such object")),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let client = UpstreamClient::new(UpstreamOptions::default()).unwrap();
    let endpoint = client.lfs_endpoint(&server.url("/r"), None).unwrap();
    let mut done = mirror_group(&client, &store, &endpoint, &[good, gone], 2)
        .await
        .unwrap();
    done.sort_by_key(|d| matches!(d, Done::Failed(_)));
    assert!(
        matches!(&done[..], [Done::Copied(18), Done::Failed(f)] if f.oid == gone.oid.to_string()),
        "{done:?}"
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "a 503, a cut, then the bytes"
    );
    let gets = |path: &str| server.seen().iter().filter(|s| s.target == path).count();
    assert_eq!(gets("/gone"), 1, "a 404 is not tried again");
    let stored = store.get(&good.oid.store_key()).await.unwrap().unwrap();
    assert_eq!(stored.body.as_ref(), content.as_slice());
}

/// A pack in memory that counts the reads made of it.
struct CountingReader {
    pack: bytes::Bytes,
    reads: AtomicUsize,
}

#[async_trait::async_trait]
impl PackReader for CountingReader {
    async fn read_at(
        &self,
        offset: u64,
        len: u64,
    ) -> Result<bytes::Bytes, crate::git::resolve::ReadError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.pack.read_at(offset, len).await
    }
}

#[tokio::test]
async fn the_lfsconfig_is_read_from_where_the_trail_stopped() {
    use crate::git::pack::PackParser;
    use crate::git::resolve::{resolve_deltas, tests::ROOMY};
    use testkit::git::git;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo.git");
    testkit::fixtures::build_lfsconfig_history(&repo, 30, true);
    let rev = |name: &str| -> ObjectId { git(["rev-parse", name], &repo).trim().parse().unwrap() };
    let (head, root, blob) = (rev("HEAD"), rev("HEAD^{tree}"), rev("HEAD:.lfsconfig"));
    // Deep chains, so that reading the commit and its tree costs more reads than the blob alone.
    let pack = testkit::pack::pack_repo(&repo, &dir.path().join("out"), &["--depth=50"]).pack;
    let mut parser = PackParser::new();
    parser.feed(&pack).unwrap();
    let mut entries = parser.finish().unwrap().entries;
    let source = CountingReader {
        pack: bytes::Bytes::from(pack),
        reads: AtomicUsize::new(0),
    };
    resolve_deltas(&mut entries, &source, &ROOMY).await.unwrap();
    let text = git(["cat-file", "blob", &blob.to_string()], &repo).into_bytes();
    let mut reads = Vec::new();
    for trail in [
        LfsConfigTrail::Commit(head),
        LfsConfigTrail::Tree(root),
        LfsConfigTrail::Found(Some(blob)),
    ] {
        source.reads.store(0, Ordering::Relaxed);
        let found = find_lfsconfig(&entries, &source, trail)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.blob, found.text.as_deref()), (blob, Some(&text[..])));
        reads.push(source.reads.load(Ordering::Relaxed));
    }
    assert!(
        reads[0] > reads[1] && reads[1] > reads[2] && reads[2] >= 1,
        "{reads:?}"
    );
    // A tree without one, or a commit the pack lacks: nothing to read, or nothing found.
    source.reads.store(0, Ordering::Relaxed);
    let none = find_lfsconfig(&entries, &source, LfsConfigTrail::Found(None)).await;
    assert!(none.unwrap().is_none());
    assert_eq!(source.reads.load(Ordering::Relaxed), 0);
    let absent = LfsConfigTrail::Commit(ObjectId([7; 20]));
    assert!(find_lfsconfig(&entries, &source, absent)
        .await
        .unwrap()
        .is_none());
}
