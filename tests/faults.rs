//! Faults on the source's side: requests that fail and are retried (connections cut before or in the middle of a
//! response, 5xx, 429 with `Retry-After`), refusals that are not retried, a ref whose name git cannot store, and
//! secrets in URLs that must not reach a report or a log line.
//!
//! The source is a loopback server written byte by byte (`testkit::raw_http`) that answers with what the real
//! `git upload-pack` says for a real repository, after failing the first requests as each test asks. The target
//! is a directory: these faults are all before anything is stored, and a directory needs no S3 server.

use mirror_git_to_s3::upstream::{AddressPolicy, RetryPolicy};
use mirror_git_to_s3::upstream::{ADVERTISEMENT_CONTENT_TYPE, RESULT_CONTENT_TYPE};
use mirror_git_to_s3::{mirror_repos, Mapping, MirrorOptions, RepoReport};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::raw_http::{head, http, RawServer, Reply, Seen};

/// Retries without real waits: the tests count requests, they never measure time.
fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(600),
    }
}

/// What real git answers for `repo`.
fn advertisement(repo: &Path) -> Vec<u8> {
    let mut body = b"001e# service=git-upload-pack\n0000".to_vec();
    body.extend_from_slice(&testkit::upload_pack(repo, true, b""));
    body
}

fn ok_advertisement(body: &[u8]) -> Reply {
    Reply::Send(http(
        "200 OK",
        &[("Content-Type", ADVERTISEMENT_CONTENT_TYPE)],
        body,
    ))
}

fn ok_pack(repo: &Path, request: &Seen) -> Reply {
    let response = testkit::upload_pack(repo, false, &request.body);
    Reply::Send(http(
        "200 OK",
        &[("Content-Type", RESULT_CONTENT_TYPE)],
        &response,
    ))
}

/// Which request of its kind (from 1) a fault applies to: `gets` of the advertisement, `posts` of the pack.
type Fault = dyn Fn(&str, usize, &[u8]) -> Option<Reply> + Send + Sync;

/// A smart server for `repo` that lets `fault` answer instead, given the method, the request's number among
/// those of its method (from 1) and the reply the real server would send.
async fn faulty_source(repo: PathBuf, advertised: Vec<u8>, fault: Box<Fault>) -> RawServer {
    let gets = AtomicUsize::new(0);
    let posts = AtomicUsize::new(0);
    RawServer::start(move |request| {
        let counter = if request.method == "GET" {
            &gets
        } else {
            &posts
        };
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let real = if request.method == "GET" {
            http(
                "200 OK",
                &[("Content-Type", ADVERTISEMENT_CONTENT_TYPE)],
                &advertised,
            )
        } else {
            http(
                "200 OK",
                &[("Content-Type", RESULT_CONTENT_TYPE)],
                &testkit::upload_pack(&repo, false, &request.body),
            )
        };
        fault(&request.method, n, &real).unwrap_or(Reply::Send(real))
    })
    .await
}

/// The options of these tests: a 64 MiB budget and `retry`; each test changes what it is about.
fn options_with(retry: RetryPolicy) -> MirrorOptions {
    let mut options = MirrorOptions::default().with_memory_budget_mib(64);
    options.source_retry = retry;
    options
}

/// Mirrors `source` into a new directory (`m` in the directory returned) with `options`.
async fn mirror_with(source: String, options: &MirrorOptions) -> (RepoReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mapping = Mapping {
        source,
        target: dir.path().join("m").display().to_string(),
    };
    let report = mirror_repos(&[mapping], options).await.remove(0);
    (report, dir)
}

/// Mirrors `source` into a new directory with `retry`; returns the report and the directory.
async fn mirror_into_dir(source: String, retry: RetryPolicy) -> (RepoReport, tempfile::TempDir) {
    mirror_with(source, &options_with(retry)).await
}

fn assert_mirrors(report: &RepoReport, dir: &Path, repo: &Path) {
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        testkit::branches_and_tags(&dir.join("m")),
        testkit::branches_and_tags(repo)
    );
}

fn count(server: &RawServer, method: &str) -> usize {
    server.seen().iter().filter(|s| s.method == method).count()
}

/// The reply cut after `keep` bytes: the connection closes in the middle of the headers or the body.
fn cut(real: &[u8], keep: usize) -> Reply {
    Reply::Send(real[..keep.min(real.len())].to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_advertisement_is_retried_until_it_succeeds() {
    let repo = testkit::small_repo();
    let advertised = advertisement(&repo);
    // 1: 503 without a wait; 2: cut inside the headers; 3: cut inside the body; 4: 502; then the real one.
    let server = faulty_source(
        repo.clone(),
        advertised,
        Box::new(|method, n, real| match (method, n) {
            ("GET", 1) => Some(Reply::Send(http("503 Service Unavailable", &[], b"busy"))),
            ("GET", 2) => Some(cut(real, 20)),
            ("GET", 3) => Some(cut(real, real.len() - 10)),
            ("GET", 4) => Some(Reply::Send(http("502 Bad Gateway", &[], b""))),
            _ => None,
        }),
    )
    .await;
    let (report, dir) = mirror_into_dir(server.url("/r.git").to_string(), quick_retries(5)).await;
    assert_mirrors(&report, dir.path(), &repo);
    assert_eq!(count(&server, "GET"), 5);
    assert_eq!(count(&server, "POST"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pack_cut_mid_body_is_asked_for_again_from_the_start() {
    let repo = testkit::small_repo();
    let advertised = advertisement(&repo);
    // 1: refused with 500; 2: cut in the middle of the pack (Content-Length says more); 3: closed early without a
    // length (only the missing final flush tells); then the real one.
    let server = faulty_source(
        repo.clone(),
        advertised,
        Box::new(|method, n, real| match (method, n) {
            ("POST", 1) => Some(Reply::Send(http("500 Internal Server Error", &[], b"oops"))),
            ("POST", 2) => Some(cut(real, real.len() / 2)),
            ("POST", 3) => {
                let body_start = testkit::raw_http::find(real, b"\r\n\r\n").expect("head") + 4;
                let mut reply = head("200 OK", &[("Content-Type", RESULT_CONTENT_TYPE)]);
                reply.extend_from_slice(b"\r\n");
                reply.extend_from_slice(&real[body_start..real.len() - 4]);
                Some(Reply::Send(reply))
            }
            _ => None,
        }),
    )
    .await;
    let (report, dir) = mirror_into_dir(server.url("/r.git").to_string(), quick_retries(4)).await;
    assert_mirrors(&report, dir.path(), &repo);
    assert_eq!(count(&server, "GET"), 1);
    assert_eq!(count(&server, "POST"), 4);
    let posts: Vec<Vec<u8>> = server
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.body)
        .collect();
    assert!(
        posts.windows(2).all(|w| w[0] == w[1]),
        "every retry sends the same request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_stop_after_the_attempts_and_name_the_last_cause() {
    let repo = testkit::small_repo();
    let server = faulty_source(
        repo,
        Vec::new(),
        Box::new(|_, _, _| Some(Reply::Send(http("503 Service Unavailable", &[], b"down")))),
    )
    .await;
    let (report, _dir) = mirror_into_dir(server.url("/r.git").to_string(), quick_retries(3)).await;
    let error = report.error.as_deref().expect("failed");
    assert!(error.contains("503"), "{error}");
    assert_eq!(count(&server, "GET"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pack_that_keeps_breaking_off_fails_cleanly_after_the_attempts() {
    let repo = testkit::small_repo();
    let advertised = advertisement(&repo);
    let server = faulty_source(
        repo,
        advertised,
        Box::new(|method, _, real| (method == "POST").then(|| cut(real, real.len() - 3))),
    )
    .await;
    let (report, dir) = mirror_into_dir(server.url("/r.git").to_string(), quick_retries(3)).await;
    assert!(!report.is_ok(), "{report}");
    assert_eq!(count(&server, "POST"), 3);
    let mirror = dir.path().join("m");
    assert!(
        !mirror.join("info/refs").exists(),
        "nothing is published after a failed fetch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_not_retried() {
    for (status, expected) in [
        ("404 Not Found", "not found"),
        ("401 Unauthorized", "authentication required"),
        ("400 Bad Request", "400"),
    ] {
        let server = RawServer::start(move |_| Reply::Send(http(status, &[], b""))).await;
        let (report, _dir) =
            mirror_into_dir(server.url("/r.git").to_string(), quick_retries(5)).await;
        let error = report.error.as_deref().expect("failed");
        assert!(error.contains(expected), "{status}: {error}");
        assert_eq!(server.seen().len(), 1, "{status} was retried");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_beyond_the_time_left_ends_the_retries_at_once() {
    // In seconds, and as an HTTP date a day after the server's own clock (decades behind ours).
    let headers: [&[(&str, &str)]; 2] = [
        &[("Retry-After", "86400")],
        &[
            ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("Retry-After", "Mon, 07 Nov 1994 08:49:37 GMT"),
        ],
    ];
    for headers in headers {
        let server = RawServer::start(move |_| {
            Reply::Send(http("429 Too Many Requests", headers, b"slow down"))
        })
        .await;
        let (report, _dir) =
            mirror_into_dir(server.url("/r.git").to_string(), quick_retries(5)).await;
        assert!(report.error.as_deref().expect("failed").contains("429"));
        assert_eq!(
            server.seen().len(),
            1,
            "a day's wait is not within the retry time: {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_retry_after_is_honoured() {
    let repo = testkit::small_repo();
    let advertised = advertisement(&repo);
    let server = faulty_source(
        repo.clone(),
        advertised,
        Box::new(|method, n, _| {
            (method == "GET" && n == 1)
                .then(|| Reply::Send(http("429 Too Many Requests", &[("Retry-After", "1")], b"")))
        }),
    )
    .await;
    let (report, dir) = mirror_into_dir(server.url("/r.git").to_string(), quick_retries(2)).await;
    assert_mirrors(&report, dir.path(), &repo);
    assert_eq!(count(&server, "GET"), 2);
}

/// An advertisement with one ref git could not store (and its peeled line) still mirrors every other ref.
#[tokio::test(flavor = "multi_thread")]
async fn a_ref_with_a_malformed_name_is_skipped() {
    let repo = testkit::small_repo();
    let mut advertised = advertisement(&repo);
    let main = testkit::git(["rev-parse", "refs/heads/main"], &repo);
    let main = main.trim();
    assert!(advertised.ends_with(b"0000"));
    advertised.truncate(advertised.len() - 4);
    for line in [
        format!("{main} refs/heads/bad..name\n"),
        format!("{main} refs/heads/bad..name^{{}}\n"),
        format!("{main} refs/tags/\u{1b}[31mred\n"),
    ] {
        write!(advertised, "{:04x}{line}", line.len() + 4).expect("write");
    }
    advertised.extend_from_slice(b"0000");
    let advertised = Arc::new(advertised);
    let source = repo.clone();
    let server = RawServer::start(move |request| {
        if request.method == "GET" {
            ok_advertisement(&advertised)
        } else {
            ok_pack(&source, request)
        }
    })
    .await;
    let (report, dir) = mirror_into_dir(server.url("/r.git").to_string(), quick_retries(1)).await;
    assert_mirrors(&report, dir.path(), &repo);
    let info_refs = std::fs::read_to_string(dir.path().join("m/info/refs")).expect("info/refs");
    assert!(!info_refs.contains("bad"), "{info_refs}");
}

/// Log lines written while a test runs on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Tokens in a source URL's user info and query, and in a redirect's query, never reach a report or a log line
/// (at the most detailed level), even when the URL is refused or the redirect cannot be followed.
#[tokio::test]
async fn tokens_in_urls_never_reach_reports_or_logs() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let secret = "glpat-SECRET123";
    let redirecting = RawServer::start(move |_| {
        Reply::Send(http(
            "302 Found",
            &[(
                "Location",
                &format!(
                    "/moved/info/refs?service=git-upload-pack&private_token={secret}#frag-{secret}"
                ),
            )],
            b"",
        ))
    })
    .await;
    let sources = [
        format!("https://git.example.invalid/r.git?private_token={secret}"),
        format!("ftp://user:{secret}@example.invalid/r.git?access_token={secret}"),
        format!(
            "http://oauth2:{secret}@127.0.0.1:{}/r.git",
            redirecting.port
        ),
        format!("not a url {secret}@x?access_token={secret}"),
    ];
    let mut texts = Vec::new();
    for source in sources {
        let (report, _dir) = mirror_into_dir(source, quick_retries(1)).await;
        assert!(!report.is_ok(), "{report}");
        texts.push(report.to_string());
        texts.push(serde_json::to_string(&report).expect("json"));
    }
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logs.contains("private_token=***"), "{logs}");
    assert!(
        logs.contains("sending credentials over plain http"),
        "{logs}"
    );
    texts.push(logs);
    for text in texts {
        assert!(!text.contains(secret), "a token leaked: {text}");
    }
}

/// A source that sends one byte at a time, never silent for the idle timeout, is stopped by the time limit per
/// mapping, and a pack or advertisement over its limit is refused at once, without a retry.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_source_ends_at_the_time_limit() {
    let server = RawServer::start(|_| {
        let mut reply = head("200 OK", &[("Content-Type", ADVERTISEMENT_CONTENT_TYPE)]);
        reply.extend_from_slice(b"Content-Length: 100000000\r\n\r\n");
        Reply::Trickle(reply, Duration::from_millis(50))
    })
    .await;
    let mut options = options_with(quick_retries(3));
    options.idle_timeout = Duration::from_millis(500);
    options.mapping_time_limit = Some(Duration::from_secs(2));
    let (report, _dir) = mirror_with(server.url("/r.git").to_string(), &options).await;
    let error = report.error.as_deref().expect("failed");
    assert!(error.contains("time limit of 2s per mapping"), "{error}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_advertisement_over_the_limit_is_refused_without_retry() {
    let huge = Arc::new(vec![b'0'; 3 << 20]);
    let server = RawServer::start(move |_| ok_advertisement(&huge)).await;
    let mut options = options_with(quick_retries(3));
    options.max_advertisement_bytes = 1 << 20;
    let (report, _dir) = mirror_with(server.url("/r.git").to_string(), &options).await;
    let error = report.error.as_deref().expect("failed");
    assert!(
        error.contains("larger than the limit of 1048576 bytes"),
        "{error}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pack_over_the_limit_is_refused_without_retry_and_nothing_is_published() {
    let repo = testkit::small_repo();
    let advertised = advertisement(&repo);
    let server = faulty_source(repo, advertised, Box::new(|_, _, _| None)).await;
    let mut options = options_with(quick_retries(3));
    options.max_pack_bytes = 100;
    let (report, dir) = mirror_with(server.url("/r.git").to_string(), &options).await;
    let error = report.error.as_deref().expect("failed");
    assert!(
        error.contains("pack is larger than the limit of 100 bytes"),
        "{error}"
    );
    assert_eq!(count(&server, "POST"), 1);
    assert!(!dir.path().join("m/info/refs").exists());
}

/// The command line refuses a time limit per mapping that a garbage collection's grace would not outlast.
#[test]
fn the_cli_keeps_the_time_limit_below_the_gc_grace() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirror-git-to-s3"))
        .args([
            "--source",
            "http://127.0.0.1:9/r.git",
            "--target",
            "/nonexistent/m",
        ])
        .args(["--gc-grace-hours", "1", "--mapping-timeout-minutes", "60"])
        .output()
        .expect("run the CLI");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "--mapping-timeout-minutes: 60 must be at least 1 and shorter than --gc-grace-hours"
        ),
        "{stderr}"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirror-git-to-s3"))
        .args([
            "--source",
            "http://127.0.0.1:9/r.git",
            "--target",
            "/nonexistent/m",
        ])
        .args(["--gc-grace-hours", "0"])
        .output()
        .expect("run the CLI");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--gc-grace-hours: 0 is less than 1"),
        "{stderr}"
    );
}

/// Mirrors `source` into a new directory with the address policy `addresses` and no retries.
async fn mirror_with_addresses(source: String, addresses: AddressPolicy) -> RepoReport {
    let mut options = options_with(quick_retries(3));
    options.source_addresses = addresses;
    mirror_with(source, &options).await.0
}

/// A redirect to the cloud metadata address is refused before any connection, whatever the policy, and not
/// retried.
#[tokio::test(flavor = "multi_thread")]
async fn redirects_to_metadata_addresses_are_refused() {
    for location in [
        "http://169.254.169.254/latest/meta-data/info/refs?service=git-upload-pack",
        "http://[fd00:ec2::254]/info/refs?service=git-upload-pack",
        "http://[::ffff:169.254.169.254]/info/refs?service=git-upload-pack",
    ] {
        let server = RawServer::start(move |_| {
            Reply::Send(http("302 Found", &[("Location", location)], b""))
        })
        .await;
        let report =
            mirror_with_addresses(server.url("/r.git").to_string(), AddressPolicy::default()).await;
        let error = report.error.as_deref().expect("failed");
        assert!(
            error.contains("link-local or a cloud metadata address"),
            "{location}: {error}"
        );
        assert_eq!(server.seen().len(), 1, "{location}: retried");
    }
}

/// Where loopback is not allowed (the Lambda function's default), a loopback source is refused, by address and
/// by a name that resolves to loopback; the Lambda Runtime API is refused even where loopback is allowed.
#[tokio::test(flavor = "multi_thread")]
async fn loopback_and_the_runtime_api_are_refused_where_the_policy_says() {
    let repo = testkit::small_repo();
    let advertised = advertisement(&repo);
    let server = faulty_source(repo.clone(), advertised, Box::new(|_, _, _| None)).await;
    let lambda = AddressPolicy {
        allow_loopback: false,
        runtime_api: None,
    };
    for source in [
        server.url("/r.git").to_string(),
        format!("http://localhost:{}/r.git", server.port),
        format!("http://[::ffff:127.0.0.1]:{}/r.git", server.port),
    ] {
        let report = mirror_with_addresses(source.clone(), lambda).await;
        let error = report.error.as_deref().expect("failed");
        assert!(
            error.contains("it is a loopback address"),
            "{source}: {error}"
        );
    }
    let runtime_api = AddressPolicy {
        allow_loopback: true,
        runtime_api: Some(([127, 0, 0, 1], server.port).into()),
    };
    let report = mirror_with_addresses(server.url("/r.git").to_string(), runtime_api).await;
    let error = report.error.as_deref().expect("failed");
    assert!(error.contains("it is the Lambda Runtime API"), "{error}");
    assert!(server.seen().is_empty(), "a refused address got a request");

    let dir = tempfile::tempdir().expect("tempdir");
    let report =
        mirror_with_addresses(server.url("/r.git").to_string(), AddressPolicy::default()).await;
    assert!(
        report.is_ok(),
        "the CLI's policy reaches loopback: {report}"
    );
    drop(dir);
}
