//! End-to-end mirrors: the real `git http-backend` (behind lighttpd) → this crate → a real S3 API server (moto) or a
//! directory, then the real `git` clones the result (dumb HTTP or a path), fscks it, and compares refs and HEAD.

mod common;

use mirror_git_to_s3::{mirror_repos, Mapping, MirrorOptions, MirrorPath, RepoReport};
use std::path::Path;

fn s3_options(budget_mib: u64) -> MirrorOptions {
    let mut o = MirrorOptions::default().with_memory_budget_mib(budget_mib);
    o.s3.endpoint_url = Some(common::s3().endpoint.clone());
    o.s3.force_path_style = true;
    o
}

fn source_url(repo: &Path) -> String {
    let name = repo
        .file_name()
        .and_then(|n| n.to_str())
        .expect("repo dir name");
    common::git_server().url(name)
}

/// Mirrors `repo` into a fresh bucket and returns (report, dumb clone URL).
async fn mirror_to_s3(repo: &Path, options: &MirrorOptions) -> (RepoReport, String) {
    let bucket = common::new_bucket();
    let target = format!("s3://{bucket}/mirrors/repo");
    let reports = mirror_repos(
        &[Mapping {
            source: source_url(repo),
            target,
        }],
        options,
    )
    .await;
    let clone_url = format!("{}/{bucket}/mirrors/repo", common::s3().endpoint);
    (reports.into_iter().next().expect("one report"), clone_url)
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_repository() {
    let repo = common::empty_repo();
    let (report, url) = mirror_to_s3(&repo, &s3_options(64)).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.refs, 0);
    common::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn small_repository() {
    let repo = common::small_repo();
    let (report, url) = mirror_to_s3(&repo, &s3_options(64)).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.path, MirrorPath::Full);
    assert!(report.objects > 0);
    common::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn branches_tags_and_non_main_default_branch() {
    let repo = common::rich_repo();
    let (report, url) = mirror_to_s3(&repo, &s3_options(64)).await;
    assert!(report.is_ok(), "{report}");
    common::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_objects() {
    let repo = common::big_repo(50_000);
    let (report, url) = mirror_to_s3(&repo, &s3_options(256)).await;
    assert!(report.is_ok(), "{report}");
    assert!(report.objects >= 50_000, "{report}");
    common::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn big_binary_with_a_budget_smaller_than_the_file() {
    let repo = common::big_binary_repo(50 << 20, 3);
    // 32 MiB in all: the 50 MiB file and its deltas must be streamed, and the pack read back from S3.
    let (report, url) = mirror_to_s3(&repo, &s3_options(32)).await;
    assert!(report.is_ok(), "{report}");
    common::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_directory_target() {
    let repo = common::rich_repo();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("mirror");
    let reports = mirror_repos(
        &[Mapping {
            source: source_url(&repo),
            target: target.to_string_lossy().into_owned(),
        }],
        &MirrorOptions::default(),
    )
    .await;
    assert!(reports[0].is_ok(), "{}", reports[0]);
    common::assert_dumb_clone_matches(&target.to_string_lossy(), &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_mapping_does_not_stop_the_others() {
    let good = common::small_repo();
    let bucket = common::new_bucket();
    let mappings = vec![
        Mapping {
            source: common::git_server().url("does-not-exist.git"),
            target: format!("s3://{bucket}/missing"),
        },
        Mapping {
            source: source_url(&good),
            target: format!("s3://{bucket}/good"),
        },
    ];
    let reports = mirror_repos(&mappings, &s3_options(64)).await;
    let err = reports[0].error.as_deref().expect("missing repo fails");
    assert!(err.contains("not found"), "{err}");
    assert!(reports[1].is_ok(), "{}", reports[1]);
    common::assert_dumb_clone_matches(&format!("{}/{bucket}/good", common::s3().endpoint), &good);
}
