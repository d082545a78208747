//! Ref selection by the server: with ref prefixes narrower than `refs/`, the mirror asks the real
//! `git http-backend` for protocol v2, lists refs with `ls-refs` and `ref-prefix`, and fetches with the v2 `fetch`
//! command; a server that speaks only v0 still works. Stock git then clones each mirror (a directory) and compares
//! its branches and tags with the source's.

use std::path::{Path, PathBuf};

use mirror_git_to_s3::{mirror_repos, Mapping, MirrorOptions, RepoReport, RunKind};
use testkit::GitServer;

const HEADS_AND_TAGS: [&str; 2] = ["refs/heads/", "refs/tags/"];

fn options(prefixes: &[&str]) -> MirrorOptions {
    MirrorOptions {
        ref_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        ..MirrorOptions::default()
    }
}

/// Mirrors `repo`, as `server` serves it, into the directory `target`.
async fn mirror(
    server: &GitServer,
    repo: &Path,
    target: &Path,
    options: &MirrorOptions,
) -> RepoReport {
    let mapping = Mapping {
        source: server.url_of(repo),
        target: target.to_string_lossy().into_owned(),
    };
    let report = mirror_repos(&[mapping], options)
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no report"));
    assert!(report.is_ok(), "{report}");
    report
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let target = dir.path().join("mirror");
    (dir, target)
}

/// The requests `server` received for `repo` from `before` on, without the method's URI details.
fn requests_since(server: &GitServer, repo: &Path, before: usize) -> Vec<String> {
    server.requests_for(repo)[before..]
        .iter()
        .map(|line| {
            let mut words = line.split(' ');
            let method = words.next().unwrap_or_default();
            let uri = words.next().unwrap_or_default();
            let service = uri.rsplit('/').next().unwrap_or_default();
            format!("{method} {service} {}", words.next().unwrap_or_default())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn heads_and_tags_through_v2_match_the_source_and_a_v0_server_still_works() {
    let repo = testkit::rich_repo();
    let v2_server = testkit::git_server();
    let v0_server = testkit::git_server_v0();
    let selected = options(&HEADS_AND_TAGS);

    // v2: capabilities, ls-refs, fetch; every request carries the header.
    let (_dir, target) = scratch();
    let v2 = mirror(v2_server, &repo, &target, &selected).await;
    assert_eq!(v2.kind, RunKind::Full);
    assert_eq!(
        requests_since(v2_server, &repo, 0),
        [
            "GET refs?service=git-upload-pack version=2",
            "POST git-upload-pack version=2",
            "POST git-upload-pack version=2"
        ]
    );
    testkit::assert_dumb_clone_matches(&target.to_string_lossy(), &repo);
    let before = v2_server.requests_for(&repo).len();
    let again = mirror(v2_server, &repo, &target, &selected).await;
    assert_eq!(again.kind, RunKind::NoOp, "{again}");
    assert_eq!(requests_since(v2_server, &repo, before).len(), 2);

    // The same selection from a server that ignores the header: one advertisement of every ref, one pack.
    let (_dir_v0, target_v0) = scratch();
    let v0 = mirror(v0_server, &repo, &target_v0, &selected).await;
    assert_eq!(
        requests_since(v0_server, &repo, 0),
        [
            "GET refs?service=git-upload-pack version=2",
            "POST git-upload-pack version=2"
        ]
    );
    testkit::assert_dumb_clone_matches(&target_v0.to_string_lossy(), &repo);
    assert_eq!((v0.refs, v0.objects), (v2.refs, v2.objects));
    assert!(
        v2.advertisement_bytes < v0.advertisement_bytes,
        "v2 {} bytes, v0 {} bytes",
        v2.advertisement_bytes,
        v0.advertisement_bytes
    );

    // Every ref wanted: v2 would save nothing, so the client does not ask for it.
    let (_dir_all, target_all) = scratch();
    let before = v2_server.requests_for(&repo).len();
    let all = mirror(v2_server, &repo, &target_all, &MirrorOptions::default()).await;
    assert!(all.refs > v2.refs, "rich_repo has refs/pull/*: {all}");
    assert_eq!(
        requests_since(v2_server, &repo, before),
        [
            "GET refs?service=git-upload-pack -",
            "POST git-upload-pack -"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_v2_fetch_sends_haves_and_gets_only_new_objects() {
    let repo = testkit::rich_repo();
    let (_dir, target) = scratch();
    let server = testkit::git_server();
    let tags = mirror(server, &repo, &target, &options(&["refs/tags/"])).await;
    assert_eq!(tags.kind, RunKind::Full);
    let more = mirror(server, &repo, &target, &options(&HEADS_AND_TAGS)).await;
    assert_eq!(more.kind, RunKind::Incremental, "{more}");
    assert!(more.refs > tags.refs, "{more}");
    testkit::assert_dumb_clone_matches(&target.to_string_lossy(), &repo);
}

/// The figures of one run, for the table this test prints.
fn row(label: &str, report: &RepoReport) -> String {
    format!(
        "  {label:<34} {:>6} {:>12} {:>9} {:>12}",
        report.refs, report.advertisement_bytes, report.objects, report.pack_bytes
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_pull_refs_stay_on_the_server() {
    let repo = testkit::big_repo(3_000);
    let pulls = testkit::git(["for-each-ref", "--format=x", "refs/pull/"], &repo)
        .lines()
        .count();
    assert!(pulls >= 1_000, "only {pulls} refs/pull/*");
    let selected = options(&HEADS_AND_TAGS);
    let (_a, all_target) = scratch();
    let all = mirror(
        testkit::git_server(),
        &repo,
        &all_target,
        &MirrorOptions::default(),
    )
    .await;
    let (_b, v0_target) = scratch();
    let v0 = mirror(testkit::git_server_v0(), &repo, &v0_target, &selected).await;
    let (_c, v2_target) = scratch();
    let v2 = mirror(testkit::git_server(), &repo, &v2_target, &selected).await;
    testkit::assert_dumb_clone_matches(&v2_target.to_string_lossy(), &repo);
    println!("{pulls} refs/pull/* in the source");
    println!(
        "  {:<34} {:>6} {:>12} {:>9} {:>12}",
        "run", "refs", "adv. bytes", "objects", "pack bytes"
    );
    println!("{}", row("v0, every ref", &all));
    println!("{}", row("v0 server, heads and tags", &v0));
    println!("{}", row("v2 ls-refs, heads and tags", &v2));
    assert_eq!(v0.advertisement_bytes, all.advertisement_bytes);
    assert!(
        v2.advertisement_bytes * 4 < v0.advertisement_bytes,
        "v2 {} bytes, v0 {} bytes",
        v2.advertisement_bytes,
        v0.advertisement_bytes
    );
    assert_eq!(v2.objects, v0.objects);
    assert!(v2.objects <= all.objects);
}
