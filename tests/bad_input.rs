//! Hostile and broken input: each case must end in a clear error that names the problem, publish nothing under the
//! target prefix, and leave no multipart upload open. The broken sources are loopback servers that replay what the
//! real `git upload-pack` said for a real repository, damaged in one precise way.

use mirror_git_to_s3::git::oid::ObjectId;
use mirror_git_to_s3::git::upload_pack::{self, build_upload_request, choose_capabilities};
use mirror_git_to_s3::upstream::{ADVERTISEMENT_CONTENT_TYPE, RESULT_CONTENT_TYPE};
use mirror_git_to_s3::{mirror_repos, Mapping, MirrorOptions, RepoReport};
use std::path::Path;
use std::sync::Arc;
use testkit::raw_http::{http, RawServer, Reply};

/// What real git says for `repo`: the smart-HTTP advertisement and the upload-pack response to a request wanting
/// every ref, exactly as the mirror asks.
struct Recorded {
    advertisement: Vec<u8>,
    response: Vec<u8>,
}

fn record(repo: &Path) -> Recorded {
    let mut advertisement = b"001e# service=git-upload-pack\n0000".to_vec();
    advertisement.extend_from_slice(&testkit::upload_pack(repo, true, b""));
    let adv = upload_pack::parse_advertisement(&advertisement).expect("real advertisement parses");
    let wants: Vec<ObjectId> = adv.refs.iter().map(|r| r.oid).collect();
    let caps = choose_capabilities(&adv, "test").expect("capabilities");
    let request = build_upload_request(&wants, &[], &caps).expect("request");
    Recorded {
        response: testkit::upload_pack(repo, false, &request),
        advertisement,
    }
}

/// A smart server that answers the advertisement with `advertisement` and every upload-pack POST with `response`.
async fn replaying(advertisement: Vec<u8>, adv_type: &'static str, response: Vec<u8>) -> RawServer {
    let advertisement = Arc::new(advertisement);
    let response = Arc::new(response);
    RawServer::start(move |seen| {
        if seen.method == "GET" {
            Reply::Send(http(
                "200 OK",
                &[("Content-Type", adv_type)],
                &advertisement,
            ))
        } else {
            Reply::Send(http(
                "200 OK",
                &[("Content-Type", RESULT_CONTENT_TYPE)],
                &response,
            ))
        }
    })
    .await
}

/// Mirrors `source` into a fresh bucket; returns the report and the bucket after checking nothing was published
/// and no upload is left open.
async fn mirror_expecting_nothing_published(source: String) -> (RepoReport, String) {
    let bucket = testkit::new_bucket();
    let mut options = MirrorOptions::default().with_memory_budget_mib(64);
    options.s3.endpoint_url = Some(testkit::s3().endpoint.clone());
    options.s3.force_path_style = true;
    let mapping = Mapping {
        source,
        target: format!("s3://{bucket}/m"),
    };
    let report = mirror_repos(&[mapping], &options).await.remove(0);
    assert!(!report.is_ok(), "expected a failure, got {report}");
    assert_eq!(
        testkit::list_keys(&bucket, "m/"),
        Vec::<String>::new(),
        "published after {report}"
    );
    assert_eq!(
        testkit::s3().open_multipart_uploads(&bucket).await,
        Vec::<String>::new(),
        "multipart upload left open after {report}"
    );
    (report, bucket)
}

fn error_of(report: &RepoReport) -> &str {
    report.error.as_deref().unwrap_or_default()
}

/// Offset of the first side-band pack byte after `skip` bytes of pack data in a response.
fn pack_byte_offset(response: &[u8], skip: usize) -> usize {
    let mut pos = 0;
    let mut seen = 0;
    while pos + 4 <= response.len() {
        let len = usize::from_str_radix(
            std::str::from_utf8(&response[pos..pos + 4]).expect("hex"),
            16,
        )
        .expect("len");
        if len >= 5 && response[pos + 4] == 1 {
            let data = len - 5;
            if seen + data > skip {
                return pos + 5 + (skip - seen);
            }
            seen += data;
        }
        pos += len.max(4);
    }
    panic!("response has fewer than {skip} pack bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn source_not_found() {
    let (report, _) =
        mirror_expecting_nothing_published(testkit::git_server().url("no-such-repo.git")).await;
    assert!(error_of(&report).contains("not found"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dumb_server_is_not_smart() {
    let repo = testkit::small_repo();
    let dumb = testkit::git(
        ["for-each-ref", "--format=%(objectname)\t%(refname)"],
        &repo,
    );
    let server = replaying(dumb.into_bytes(), "text/plain", Vec::new()).await;
    let (report, _) = mirror_expecting_nothing_published(server.url("/repo.git").to_string()).await;
    assert!(error_of(&report).contains("smart"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn err_line_from_the_server() {
    let repo = testkit::small_repo();
    let rec = record(&repo);
    let err = b"0026ERR upload-pack: not our ref 1234\n".to_vec();
    let server = replaying(rec.advertisement, ADVERTISEMENT_CONTENT_TYPE, err).await;
    let (report, _) = mirror_expecting_nothing_published(server.url("/repo.git").to_string()).await;
    assert!(error_of(&report).contains("not our ref"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_pack_aborts_the_multipart_upload() {
    // 20 MiB of incompressible content: the upload has sent parts when the response breaks off.
    let repo = testkit::big_binary_repo(20 << 20, 1);
    let rec = record(&repo);
    let cut = rec.response[..rec.response.len() * 9 / 10].to_vec();
    let server = replaying(rec.advertisement, ADVERTISEMENT_CONTENT_TYPE, cut).await;
    let (report, bucket) =
        mirror_expecting_nothing_published(server.url("/repo.git").to_string()).await;
    let error = error_of(&report);
    assert!(
        error.contains("ended") || error.contains("truncated"),
        "{report}"
    );
    let requests = testkit::s3().requests(&bucket);
    let started = requests
        .iter()
        .any(|r| r.starts_with("POST") && r.contains("?uploads"));
    let aborted = requests
        .iter()
        .any(|r| r.starts_with("DELETE") && r.contains("uploadId="));
    assert!(
        started && aborted,
        "expected a multipart upload and its abort: {requests:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_flipped_byte_in_the_pack() {
    let repo = testkit::rich_repo();
    let rec = record(&repo);
    for skip in [12, 200, 600] {
        let mut damaged = rec.response.clone();
        let at = pack_byte_offset(&damaged, skip);
        damaged[at] ^= 0x40;
        let server = replaying(
            rec.advertisement.clone(),
            ADVERTISEMENT_CONTENT_TYPE,
            damaged,
        )
        .await;
        let (report, _) =
            mirror_expecting_nothing_published(server.url("/repo.git").to_string()).await;
        assert!(
            error_of(&report).contains("invalid pack"),
            "pack byte {skip}: {report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_pkt_line_length() {
    let repo = testkit::small_repo();
    let rec = record(&repo);
    let mut damaged = rec.response.clone();
    let at = pack_byte_offset(&damaged, 0) - 5;
    damaged[at..at + 4].copy_from_slice(b"zz1!");
    let server = replaying(rec.advertisement, ADVERTISEMENT_CONTENT_TYPE, damaged).await;
    let (report, _) = mirror_expecting_nothing_published(server.url("/repo.git").to_string()).await;
    assert!(error_of(&report).contains("pkt-line"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn target_bucket_does_not_exist() {
    let repo = testkit::small_repo();
    let name = repo
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    let mut options = MirrorOptions::default();
    options.s3.endpoint_url = Some(testkit::s3().endpoint.clone());
    options.s3.force_path_style = true;
    let mapping = Mapping {
        source: testkit::git_server().url(&name),
        target: "s3://no-such-bucket-for-mirror-tests/m".to_owned(),
    };
    let report = mirror_repos(&[mapping], &options).await.remove(0);
    assert!(error_of(&report).contains("does not exist"), "{report}");
}
