//! Git LFS end to end with real tools: the Debian `git lfs` client pushes objects to a real LFS server (dulwich's)
//! beside the real `git http-backend`; the mirror copies them into a real S3 API server (moto); each stored
//! object's SHA-256 is checked; and `git clone` with `git lfs`, through `git-lfs-http-mirror` in front of the
//! mirrored prefix, checks out the original bytes.

use mirror_git_to_s3::{mirror_repos, Mapping, MirrorOptions, RepoReport, RunKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use testkit::lfs::{
    clone_with_lfs, lfs_http_mirror, lfs_server, pointer_text, sha256_hex, LfsRepo,
};
use testkit::rng::Rng;

/// Size of the large object: above the memory budget of [`BUDGET_MIB`].
const LARGE: usize = 40 << 20;
/// The memory budget of the runs (the smallest accepted), smaller than [`LARGE`].
const BUDGET_MIB: u64 = 24;

fn options() -> MirrorOptions {
    let mut o = MirrorOptions::default().with_memory_budget_mib(BUDGET_MIB);
    o.s3.endpoint_url = Some(testkit::s3().endpoint.clone());
    o.s3.force_path_style = true;
    o.lfs.url = Some(lfs_server().url.clone());
    o
}

fn new_repo(kind: &str) -> LfsRepo {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    LfsRepo::new(
        testkit::git_server()
            .root
            .join(format!("lfs-{kind}-{n}.git")),
    )
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    Rng(seed).fill(&mut bytes);
    bytes
}

async fn mirror(repo: &LfsRepo, target: &str, options: &MirrorOptions) -> RepoReport {
    let mapping = Mapping {
        source: testkit::git_server().url_of(&repo.bare),
        target: target.to_owned(),
    };
    let mut reports = mirror_repos(&[mapping], options).await;
    reports.remove(0)
}

/// The LFS objects stored under `prefix` of `bucket`, each checked against the SHA-256 its key names.
fn stored_objects(bucket: &str, prefix: &str) -> Vec<(String, usize)> {
    testkit::list_keys(bucket, &format!("{prefix}/lfs/objects/"))
        .into_iter()
        .map(|key| {
            let oid = key.rsplit('/').next().unwrap_or_default().to_owned();
            let body = testkit::get_object(bucket, &key).expect("listed object");
            assert_eq!(
                sha256_hex(&body),
                oid,
                "{key} holds other bytes than its id"
            );
            assert_eq!(
                key,
                format!("{prefix}/lfs/objects/{}/{}/{oid}", &oid[0..2], &oid[2..4])
            );
            (oid, body.len())
        })
        .collect()
}

/// Downloads of the object `oid` the LFS server saw so far.
fn downloads(oid: &str) -> usize {
    lfs_server().requests_matching(&format!("GET /objects/{oid}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_lfs_object_of_the_history_is_mirrored_once_and_clones_through_git_lfs_http_mirror() {
    let repo = new_repo("history");
    let large = random(LARGE, 1);
    let small: Vec<Vec<u8>> = (0..3)
        .map(|i| random(1000 + i * 500, 10 + i as u64))
        .collect();
    repo.write("big.bin", &large);
    repo.write("a.bin", &small[0]);
    repo.write("b.bin", &small[1]);
    repo.write("docs/c.bin", &small[2]);
    repo.write("README", b"a repository with LFS files\n");
    repo.commit("LFS files");
    // An object referenced only from an old commit of a side branch.
    let old = random(3000, 99);
    repo.git(&["checkout", "-q", "-b", "side"]);
    repo.write("old.bin", &old);
    repo.commit("old file");
    repo.git(&["rm", "-q", "old.bin"]);
    repo.commit("old file removed");
    repo.git(&["checkout", "-q", "main"]);
    repo.push();

    let bucket = testkit::new_bucket();
    let target = format!("s3://{bucket}/mirrors/lfs");
    let report = mirror(&repo, &target, &options()).await;
    assert!(report.is_ok(), "{report}");
    let lfs = report.lfs.clone().expect("an LFS report");
    let all: Vec<&Vec<u8>> = [&large, &old].into_iter().chain(&small).collect();
    let total: u64 = all.iter().map(|b| b.len() as u64).sum();
    assert_eq!(
        (lfs.pointers, lfs.objects_copied, lfs.bytes_copied),
        (5, 5, total),
        "{report}"
    );
    assert_eq!((lfs.objects_skipped, lfs.failed.len()), (0, 0));
    let mut stored = stored_objects(&bucket, "mirrors/lfs");
    stored.sort();
    let mut expected: Vec<(String, usize)> = all.iter().map(|b| (sha256_hex(b), b.len())).collect();
    expected.sort();
    assert_eq!(stored, expected);
    println!(
        "LFS full run: {} objects, {} bytes copied, {} store requests, {} ms",
        lfs.objects_copied, lfs.bytes_copied, report.store_requests, report.duration_ms
    );

    // An incremental run looks only at the new pack's pointers; a no-op run at none.
    let new = random(2500, 7);
    repo.write("new.bin", &new);
    repo.commit("one more");
    repo.push();
    let report = mirror(&repo, &target, &options()).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.kind, RunKind::Incremental);
    let lfs = report.lfs.clone().expect("an LFS report");
    assert_eq!(
        (lfs.pointers, lfs.objects_copied, lfs.bytes_copied),
        (1, 1, new.len() as u64)
    );
    let report = mirror(&repo, &target, &options()).await;
    assert_eq!(report.kind, RunKind::NoOp);
    assert_eq!(report.lfs, None, "a no-op run makes no LFS request");
    for bytes in all.iter().copied().chain([&new]) {
        assert_eq!(
            downloads(&sha256_hex(bytes)),
            1,
            "every object is downloaded once"
        );
    }

    // As a user would: git clone with git lfs, through git-lfs-http-mirror in front of the mirror.
    let proxy = lfs_http_mirror(&format!("{}/{bucket}", testkit::s3().endpoint));
    let parent = repo.work.with_extension("clones");
    std::fs::create_dir_all(&parent).unwrap();
    let clone = clone_with_lfs(
        &format!("http://127.0.0.1:{}/mirrors/lfs", proxy.port),
        &parent,
        "c",
    );
    for (path, bytes) in [
        ("big.bin", &large),
        ("a.bin", &small[0]),
        ("b.bin", &small[1]),
        ("docs/c.bin", &small[2]),
        ("new.bin", &new),
    ] {
        let checked_out = std::fs::read(clone.join(path)).unwrap();
        assert!(
            checked_out == *bytes,
            "{path} differs from the original ({} bytes)",
            checked_out.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pointer_whose_object_the_server_lacks_fails_the_mapping_unless_tolerated() {
    let repo = new_repo("missing");
    let present = random(4000, 3);
    repo.write("present.bin", &present);
    // A pointer committed as a plain file (no LFS filter on *.ptr): the server never got its object.
    let absent = sha256_hex(b"never uploaded");
    repo.write("absent.ptr", pointer_text(&absent, 14).as_bytes());
    repo.commit("a pointer to nothing");
    repo.push();

    let bucket = testkit::new_bucket();
    let report = mirror(&repo, &format!("s3://{bucket}/m"), &options()).await;
    let error = report.error.clone().expect("the mapping fails");
    assert!(error.contains(&absent) && error.contains("404"), "{error}");
    assert!(
        testkit::get_object(&bucket, "m/info/refs").is_none(),
        "refs are not published when an LFS object is missing"
    );

    let mut tolerant = options();
    tolerant.lfs.tolerate_missing = true;
    let report = mirror(&repo, &format!("s3://{bucket}/t"), &tolerant).await;
    assert!(report.is_ok(), "{report}");
    let lfs = report.lfs.clone().expect("an LFS report");
    assert_eq!(lfs.failed.len(), 1);
    assert_eq!(lfs.failed[0].oid, absent);
    assert!(report.to_string().contains("1 failed"), "{report}");
    assert!(testkit::get_object(&bucket, "t/info/refs").is_some());
    assert_eq!(
        stored_objects(&bucket, "t"),
        vec![(sha256_hex(&present), present.len())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_whose_bytes_do_not_match_its_id_is_never_stored() {
    let repo = new_repo("corrupt");
    let original = random(5000, 5);
    repo.write("bad.bin", &original);
    repo.commit("an object the server will corrupt");
    repo.push();
    let oid = sha256_hex(&original);
    let mut corrupted = original.clone();
    corrupted[2500] ^= 1;
    std::fs::write(lfs_server().object_path(&oid), &corrupted).unwrap();

    let bucket = testkit::new_bucket();
    let report = mirror(&repo, &format!("s3://{bucket}/m"), &options()).await;
    let error = report.error.clone().expect("the mapping fails");
    assert!(error.contains(&oid) && error.contains("hash to"), "{error}");
    assert!(
        testkit::list_keys(&bucket, "m/lfs/").is_empty(),
        "nothing under lfs/"
    );
    assert!(testkit::get_object(&bucket, "m/info/refs").is_none());

    let mut off = options();
    off.lfs.enabled = false;
    let report = mirror(&repo, &format!("s3://{bucket}/off"), &off).await;
    assert!(report.is_ok() && report.lfs.is_none(), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lfsconfig_of_the_default_branch_names_the_lfs_server() {
    let repo = new_repo("lfsconfig");
    let content = random(6000, 8);
    repo.write("f.bin", &content);
    repo.write(
        ".lfsconfig",
        format!("[lfs]\n\turl = \"{}\"\n", lfs_server().url).as_bytes(),
    );
    repo.commit("an .lfsconfig pointing elsewhere");
    repo.push();
    let mut derived = options();
    derived.lfs.url = None;
    let bucket = testkit::new_bucket();
    let report = mirror(&repo, &format!("s3://{bucket}/m"), &derived).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.lfs.map(|l| l.objects_copied), Some(1));
    assert_eq!(
        stored_objects(&bucket, "m"),
        vec![(sha256_hex(&content), content.len())]
    );
    // An incremental run whose pack lacks the unchanged .lfsconfig reads the copy the first run kept.
    let more = random(700, 9);
    repo.write("g.bin", &more);
    repo.commit("one more object, .lfsconfig unchanged");
    repo.push();
    let report = mirror(&repo, &format!("s3://{bucket}/m"), &derived).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.kind, RunKind::Incremental);
    assert_eq!(report.lfs.map(|l| l.objects_copied), Some(1));
    let kept = testkit::list_keys(&bucket, "m/lfs/lfsconfig/");
    assert_eq!(kept.len(), 1, "{kept:?}");

    // Without it the endpoint derived from the source URL is tried: the git server has no LFS there.
    let plain = new_repo("derived");
    plain.write("f.bin", &content);
    plain.commit("no .lfsconfig");
    plain.push();
    let report = mirror(&plain, &format!("s3://{bucket}/d"), &derived).await;
    let error = report.error.expect("no LFS server at the derived endpoint");
    assert!(error.contains(".git/info/lfs/objects/batch"), "{error}");
}
