//! End-to-end mirrors: the real `git http-backend` (behind lighttpd) → this crate → a real S3 API server (moto) or a
//! directory, then the real `git` clones the result (dumb HTTP or a path), fscks it, and compares refs and HEAD.

use mirror_git_to_s3::git::pack::entry::EntryKind;
use mirror_git_to_s3::git::pack::PackParser;
use mirror_git_to_s3::git::upload_pack::{ResponseDecoder, ResponseEvent};
use mirror_git_to_s3::upstream::{ADVERTISEMENT_CONTENT_TYPE, RESULT_CONTENT_TYPE};
use mirror_git_to_s3::{
    mirror_repos, Mapping, MappingId, MirrorOptions, Progress, RepoReport, RunKind, Stage,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use testkit::raw_http::{http, RawServer, Reply};

fn s3_options(budget_mib: u64) -> MirrorOptions {
    let mut o = MirrorOptions::default().with_memory_budget_mib(budget_mib);
    o.s3.endpoint_url = Some(testkit::s3().endpoint.clone());
    o.s3.force_path_style = true;
    o
}

fn source_url(repo: &Path) -> String {
    let name = repo
        .file_name()
        .and_then(|n| n.to_str())
        .expect("repo dir name");
    testkit::git_server().url(name)
}

/// Mirrors `repo` into a fresh bucket and returns (report, dumb clone URL).
async fn mirror_to_s3(repo: &Path, options: &MirrorOptions) -> (RepoReport, String) {
    let bucket = testkit::new_bucket();
    let target = format!("s3://{bucket}/mirrors/repo");
    let reports = mirror_repos(
        &[Mapping {
            source: source_url(repo),
            target,
        }],
        options,
    )
    .await;
    let clone_url = format!("{}/{bucket}/mirrors/repo", testkit::s3().endpoint);
    (reports.into_iter().next().expect("one report"), clone_url)
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_repository() {
    let repo = testkit::empty_repo();
    let (report, url) = mirror_to_s3(&repo, &s3_options(64)).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.refs, 0);
    testkit::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn small_repository() {
    let repo = testkit::small_repo();
    let (report, url) = mirror_to_s3(&repo, &s3_options(64)).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.kind, RunKind::Full);
    assert!(report.objects > 0);
    testkit::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn branches_tags_and_non_main_default_branch() {
    let repo = testkit::rich_repo();
    let (report, url) = mirror_to_s3(&repo, &s3_options(64)).await;
    assert!(report.is_ok(), "{report}");
    testkit::assert_dumb_clone_matches(&url, &repo);
}

/// Records every progress update.
#[derive(Default)]
struct Recorder(Mutex<Vec<Stage>>);

impl Progress for Recorder {
    fn update(&self, _mapping: MappingId<'_>, stage: Stage) {
        self.0.lock().expect("lock").push(stage);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_objects() {
    let repo = testkit::big_repo(50_000);
    let recorder = Arc::new(Recorder::default());
    let mut options = s3_options(256);
    options.progress = Some(recorder.clone());
    let (report, url) = mirror_to_s3(&repo, &options).await;
    assert!(report.is_ok(), "{report}");
    assert!(report.objects >= 50_000, "{report}");
    testkit::assert_dumb_clone_matches(&url, &repo);

    // Delta resolution reports its way through the pack, not only its start and end.
    let resolving: Vec<(u64, u64)> = recorder
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|s| match s {
            Stage::Resolving { done, total } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    let middle: Vec<u64> = resolving
        .iter()
        .filter(|(done, total)| 0 < *done && done < total)
        .map(|(done, _)| *done)
        .collect();
    assert!(
        middle.len() >= 10,
        "too few resolution updates: {resolving:?}"
    );
    assert!(middle.windows(2).all(|w| w[0] < w[1]), "{resolving:?}");
    assert_eq!(resolving.last(), Some(&(report.objects, report.objects)));
}

#[tokio::test(flavor = "multi_thread")]
async fn big_binary_with_a_budget_smaller_than_the_file() {
    let repo = testkit::big_binary_repo(50 << 20, 3);
    // 32 MiB in all: the 50 MiB file and its deltas must be streamed, and the pack read back from S3.
    let (report, url) = mirror_to_s3(&repo, &s3_options(32)).await;
    assert!(report.is_ok(), "{report}");
    testkit::assert_dumb_clone_matches(&url, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_directory_target() {
    let repo = testkit::rich_repo();
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
    testkit::assert_dumb_clone_matches(&target.to_string_lossy(), &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_mapping_does_not_stop_the_others() {
    let good = testkit::small_repo();
    let bucket = testkit::new_bucket();
    let mappings = vec![
        Mapping {
            source: testkit::git_server().url("does-not-exist.git"),
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
    testkit::assert_dumb_clone_matches(&format!("{}/{bucket}/good", testkit::s3().endpoint), &good);
}

/// The advertisement with ` ofs-delta` removed from the capabilities of its first line.
fn without_ofs_delta(advertisement: &[u8]) -> Vec<u8> {
    let len = usize::from_str_radix(std::str::from_utf8(&advertisement[..4]).expect("hex"), 16)
        .expect("pkt-line length");
    let line = String::from_utf8_lossy(&advertisement[4..len]).replace(" ofs-delta", "");
    assert!(!line.contains("ofs-delta"));
    let mut out = b"001e# service=git-upload-pack\n0000".to_vec();
    out.extend_from_slice(format!("{:04x}{line}", line.len() + 4).as_bytes());
    out.extend_from_slice(&advertisement[len..]);
    out
}

/// The kinds of delta entries in an upload-pack response: (OFS_DELTA count, REF_DELTA count).
fn delta_kinds(response: &[u8]) -> (usize, usize) {
    let mut decoder = ResponseDecoder::new();
    let mut parser = PackParser::new();
    decoder.push(response);
    while let Some(event) = decoder.next_event().expect("valid response") {
        if let ResponseEvent::PackData(data) = event {
            parser.feed(&data).expect("valid pack");
        }
    }
    let pack = parser.finish().expect("complete pack");
    let count = |f: fn(&EntryKind) -> bool| pack.entries.iter().filter(|e| f(&e.kind())).count();
    (
        count(|k| matches!(k, EntryKind::OfsDelta)),
        count(|k| matches!(k, EntryKind::RefDelta)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn source_without_ofs_delta_sends_ref_deltas() {
    let repo: PathBuf = testkit::big_repo(5_000);
    let advertisement = without_ofs_delta(&testkit::upload_pack(&repo, true, b""));
    let responses = Arc::new(Mutex::new(Vec::new()));
    let (served_repo, served) = (repo.clone(), responses.clone());
    let server = RawServer::start(move |seen| {
        if seen.method == "GET" {
            return Reply::Send(http(
                "200 OK",
                &[("Content-Type", ADVERTISEMENT_CONTENT_TYPE)],
                &advertisement,
            ));
        }
        let response = testkit::upload_pack(&served_repo, false, &seen.body);
        served.lock().expect("lock").push(response.clone());
        Reply::Send(http(
            "200 OK",
            &[("Content-Type", RESULT_CONTENT_TYPE)],
            &response,
        ))
    })
    .await;
    let bucket = testkit::new_bucket();
    let reports = mirror_repos(
        &[Mapping {
            source: server.url("/repo.git").to_string(),
            target: format!("s3://{bucket}/refdelta"),
        }],
        &s3_options(64),
    )
    .await;
    assert!(reports[0].is_ok(), "{}", reports[0]);
    let responses = responses.lock().expect("lock");
    assert_eq!(responses.len(), 1);
    let (ofs, refs) = delta_kinds(&responses[0]);
    assert_eq!(
        ofs, 0,
        "the request must not ask for ofs-delta when it is not advertised"
    );
    assert!(refs > 100, "expected a pack of REF deltas, got {refs}");
    testkit::assert_dumb_clone_matches(
        &format!("{}/{bucket}/refdelta", testkit::s3().endpoint),
        &repo,
    );
}
