//! Self-test of the test harness (crates/testkit), independent of the mirror code: the git server speaks smart
//! HTTP, a dumb copy made the way git itself makes one (`git clone --bare` + `git update-server-info`) and
//! uploaded to a `new_bucket()` clones over dumb HTTP from moto and satisfies `assert_dumb_clone_matches`, the
//! judge rejects copies that differ, request logs count what the servers saw, and fixtures have the promised
//! shapes and are deterministic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use testkit::{
    assert_dumb_clone_matches, big_binary_repo, big_repo, branches_and_tags, delta_count,
    empty_repo, get_object, git, git_server, head_symref, list_keys, new_bucket, object_count,
    rich_repo, s3, small_repo, upload_dir, BIG_BINARY_SIZE,
};

/// A dumb-HTTP-servable copy of `source` made by git itself, in a new temp dir (returned to keep it alive).
fn git_made_dumb_copy(source: &Path) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().expect("temp dir");
    let copy = work.path().join("copy.git");
    git(
        [
            "clone".as_ref(),
            "--bare".as_ref(),
            "--quiet".as_ref(),
            source.as_os_str(),
            copy.as_os_str(),
        ],
        work.path(),
    );
    // A clone's HEAD follows the source's HEAD only when the source has commits; copy it explicitly.
    if let Some(head) = head_symref(source) {
        git(["symbolic-ref", "HEAD", &head], &copy);
    }
    git(["update-server-info"], &copy);
    (work, copy)
}

/// Uploads a git-made dumb copy of `source` to a new bucket; returns the bucket, the prefix and the file count.
fn upload_dumb_copy(source: &Path) -> (String, String, usize) {
    let (_work, copy) = git_made_dumb_copy(source);
    let bucket = new_bucket();
    let prefix = format!("mirrors/{}", source.file_name().unwrap().to_string_lossy());
    upload_dir(&bucket, &prefix, &copy);
    let files = list_keys(&bucket, &prefix).len();
    (bucket, prefix, files)
}

fn panic_message(result: std::thread::Result<()>) -> String {
    let payload = result.expect_err("the check should have failed");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn git_server_speaks_smart_http_and_logs_requests() {
    let repo = small_repo();
    let url = git_server().url_of(&repo);
    let advertised = git(["ls-remote", &url], &git_server().root);
    let main = git(["rev-parse", "refs/heads/main"], &repo);
    assert!(
        advertised.contains(&format!("{}\trefs/heads/main", main.trim())),
        "ls-remote {url} gave:\n{advertised}"
    );
    let requests = git_server().requests_for(&repo);
    assert!(
        requests.iter().any(|r| r.starts_with("GET /")
            && r.contains("/info/refs?service=git-upload-pack")
            && r.ends_with("version=2")),
        "requests: {requests:?}"
    );
    // A fetch POSTs to git-upload-pack through the CGI.
    let work = tempfile::tempdir().unwrap();
    git(["clone", "--quiet", "--bare", &url, "c.git"], work.path());
    assert!(git_server()
        .requests_for(&repo)
        .iter()
        .any(|r| r.starts_with("POST /") && r.contains("/git-upload-pack ")));
}

#[test]
fn dumb_clone_from_s3_matches_small_repo() {
    let source = small_repo();
    let (bucket, prefix, files) = upload_dumb_copy(&source);
    assert!(files > 5, "uploaded only {files} files");
    assert_dumb_clone_matches(&s3().http_url(&bucket, &prefix), &source);

    let requests = s3().requests(&bucket);
    let puts = requests.iter().filter(|r| r.starts_with("PUT /")).count();
    // create-bucket, put-policy, then one PUT per file.
    assert_eq!(puts, files + 2, "requests: {requests:#?}");
    for wanted in [
        format!("GET /{bucket}/{prefix}/info/refs?service=git-upload-pack"),
        format!("GET /{bucket}/{prefix}/HEAD"),
        format!("GET /{bucket}/{prefix}/objects/info/packs"),
    ] {
        assert!(requests.contains(&wanted), "no {wanted} in {requests:#?}");
    }
    let info_refs = get_object(&bucket, &format!("{prefix}/info/refs")).expect("info/refs");
    assert!(String::from_utf8_lossy(&info_refs).ends_with("\trefs/heads/main\n"));
    assert_eq!(get_object(&bucket, &format!("{prefix}/no/such/key")), None);
}

#[test]
fn dumb_clone_from_s3_matches_rich_repo() {
    let source = rich_repo();
    let (bucket, prefix, _) = upload_dumb_copy(&source);
    assert_dumb_clone_matches(&s3().http_url(&bucket, &prefix), &source);
}

#[test]
fn dumb_clone_from_s3_matches_empty_repo() {
    let source = empty_repo();
    let (bucket, prefix, _) = upload_dumb_copy(&source);
    assert_dumb_clone_matches(&s3().http_url(&bucket, &prefix), &source);
}

#[test]
fn local_directory_copy_matches() {
    let source = rich_repo();
    let (_work, copy) = git_made_dumb_copy(&source);
    assert_dumb_clone_matches(copy.to_str().unwrap(), &source);
}

#[test]
fn judge_rejects_copies_that_differ() {
    let source = rich_repo();

    let (_w1, moved) = git_made_dumb_copy(&source);
    git(
        ["update-ref", "refs/heads/develop", "refs/heads/trunk"],
        &moved,
    );
    git(["update-server-info"], &moved);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(moved.to_str().unwrap(), &source)
    })));
    assert!(message.contains("refs differ"), "{message}");
    assert!(message.contains("-"), "{message}");

    let (_w2, head) = git_made_dumb_copy(&source);
    git(["symbolic-ref", "HEAD", "refs/heads/develop"], &head);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(head.to_str().unwrap(), &source)
    })));
    assert!(message.contains("HEAD differs"), "{message}");

    // Refs right, but info/refs (what a dumb client reads) stale.
    let (_w3, stale) = git_made_dumb_copy(&source);
    let develop = git(["rev-parse", "refs/heads/develop"], &stale);
    git(
        ["update-ref", "refs/heads/develop", "refs/heads/trunk"],
        &stale,
    );
    git(["update-server-info"], &stale);
    git(["update-ref", "refs/heads/develop", develop.trim()], &stale);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(stale.to_str().unwrap(), &source)
    })));
    assert!(message.contains("info/refs differs"), "{message}");

    // Over S3: a copy whose pack is missing cannot be cloned.
    let (_w4, packless) = git_made_dumb_copy(&source);
    for entry in std::fs::read_dir(packless.join("objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pack") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let bucket = new_bucket();
    upload_dir(&bucket, "p", &packless);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(&s3().http_url(&bucket, "p"), &source)
    })));
    assert!(message.contains("failed"), "{message}");
}

#[test]
fn small_and_rich_fixtures_are_deterministic_and_shaped() {
    assert_eq!(
        branches_and_tags(&small_repo()),
        branches_and_tags(&small_repo())
    );
    let rich = rich_repo();
    let refs = branches_and_tags(&rich);
    assert_eq!(refs, branches_and_tags(&rich_repo()));
    let names: Vec<&str> = refs.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "refs/heads/develop",
            "refs/heads/feature/x",
            "refs/heads/gh-pages",
            "refs/heads/release-1.0",
            "refs/heads/trunk",
            "refs/tags/key-tag",
            "refs/tags/tree-tag",
            "refs/tags/v0.9",
            "refs/tags/v1.0",
            "refs/tags/v1.0-final",
            "refs/tags/v1.1",
        ]
    );
    assert_eq!(head_symref(&rich).as_deref(), Some("refs/heads/trunk"));
    let peel = |spec: &str| git(["cat-file", "-t", spec], &rich).trim().to_string();
    assert_eq!(peel("v1.0-final"), "tag");
    assert_eq!(peel("v1.0-final^{}"), "commit");
    assert_eq!(
        git(["cat-file", "-p", "v1.0-final"], &rich).lines().nth(1),
        Some("type tag")
    );
    assert_eq!(peel("tree-tag^{}"), "tree");
    assert_eq!(peel("key-tag^{}"), "blob");
    assert_eq!(peel("refs/pull/1/head"), "commit");
    let merge_parents = git(["rev-list", "--parents", "-n1", "v1.0^{}"], &rich);
    assert_eq!(
        merge_parents.split(' ').count(),
        3,
        "v1.0 is a merge commit"
    );
    let ls = git(["ls-tree", "-r", "trunk"], &rich);
    for entry in ["160000 commit", "120000 blob", "100755 blob", "empty.txt"] {
        assert!(ls.contains(entry), "no {entry} in trunk:\n{ls}");
    }
    assert!(head_symref(&empty_repo()).is_some());
    assert!(branches_and_tags(&empty_repo()).is_empty());
}

#[test]
fn big_fixtures_have_their_shape() {
    let big = big_repo(50_000);
    assert!(object_count(&big) >= 50_000);
    let refs = git(["for-each-ref", "--format=%(refname)"], &big);
    assert!(
        refs.lines().count() >= 3_000,
        "{} refs",
        refs.lines().count()
    );
    assert_eq!(refs.lines().filter(|r| r.ends_with("/head")).count(), 2_500);
    let loose = git(
        ["for-each-ref", "--format=%(refname)", "refs/pull/1/"],
        &big,
    );
    assert!(!big.join("refs/pull/1/head").exists() && loose.trim() == "refs/pull/1/head");

    let binary = big_binary_repo(BIG_BINARY_SIZE, 3);
    assert_eq!(delta_count(&binary, BIG_BINARY_SIZE as u64), 2);
    let size = git(["cat-file", "-s", "main:data.bin"], &binary);
    assert_eq!(
        size.trim().parse::<usize>().unwrap(),
        BIG_BINARY_SIZE + 2048
    );
    // The server's pack-objects sends the deltas as they are stored.
    let work = tempfile::tempdir().unwrap();
    git(
        [
            "clone",
            "--quiet",
            "--bare",
            &git_server().url_of(&binary),
            "c.git",
        ],
        work.path(),
    );
    let clone = work.path().join("c.git");
    assert_eq!(delta_count(&clone, BIG_BINARY_SIZE as u64), 2);
}
