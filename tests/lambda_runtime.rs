//! The Lambda function end to end: the real `mirror-git-to-s3-lambda` binary, started the way Lambda starts a
//! custom runtime, fetches its invocations from a Lambda Runtime API and answers there; every `events/` sample
//! goes through it against the loopback git server and S3, and stock git then clones each mirror over dumb HTTP.
//!
//! The Runtime API is served by this test (the documented HTTP API: `GET /2018-06-01/runtime/invocation/next`,
//! `POST /2018-06-01/runtime/invocation/{id}/response` and `.../error`), because a test must choose the
//! invocation deadline and cargo-lambda's emulator always sends a relative 600000. The binary is the one
//! `cargo test` builds for this crate; `cargo_lambda_emulator_invokes_the_binary` also runs it under
//! `cargo lambda watch` when `MIRROR_TEST_CARGO_LAMBDA` names the `cargo-lambda` executable.
//!
//! Event files carry placeholders that [`load_event`] fills in: `{{GIT_URL}}`, `{{GIT_URL_2}}`,
//! `{{GIT_MISSING_URL}}` (sources), `{{S3_TARGET}}`, `{{S3_TARGET_2}}` (`s3://bucket/prefix` targets) and
//! `{{S3_ENDPOINT}}`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex};

/// The function binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_mirror-git-to-s3-lambda");
/// The sample events.
const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
/// Memory size the function is told it has (its budget defaults to 60% of it).
const FUNCTION_MEMORY_MB: &str = "512";
/// Longest a test waits for one invocation's answer.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest HTTP header section or body line the test's Runtime API accepts.
const MAX_LINE: usize = 64 << 10;
/// Largest request body the test's Runtime API accepts.
const MAX_BODY: usize = 16 << 20;

/// What the function answered to one invocation.
#[derive(Debug)]
enum Outcome {
    /// `POST .../response` with this JSON body.
    Response(Value),
    /// `POST .../error` with this error type and message.
    Error {
        error_type: String,
        error_message: String,
    },
}

impl Outcome {
    fn response(self) -> Value {
        match self {
            Outcome::Response(value) => value,
            Outcome::Error {
                error_type,
                error_message,
            } => panic!("the function failed: {error_type}: {error_message}"),
        }
    }

    fn error(self) -> (String, String) {
        match self {
            Outcome::Error {
                error_type,
                error_message,
            } => (error_type, error_message),
            Outcome::Response(value) => {
                panic!("the function succeeded, expected an error: {value}")
            }
        }
    }
}

/// One invocation waiting for the function to fetch it.
struct Invocation {
    event: Vec<u8>,
    deadline_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

/// State shared by the connections of the test's Runtime API.
struct Shared {
    queue: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: std::sync::Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    next_id: AtomicU64,
}

/// A Lambda Runtime API on loopback, serving invocations to one function process.
struct RuntimeApi {
    /// `127.0.0.1:PORT`, the form Lambda puts in `AWS_LAMBDA_RUNTIME_API`.
    address: String,
    invocations: mpsc::UnboundedSender<Invocation>,
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot listen on loopback: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"))
            .to_string();
        let (invocations, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            in_flight: std::sync::Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
            }
        });
        RuntimeApi {
            address,
            invocations,
        }
    }

    /// Queues an invocation with a deadline header of `deadline_ms` and waits for the function's answer.
    async fn invoke(&self, event: &Value, deadline_ms: u64) -> Option<Outcome> {
        let (reply, answer) = oneshot::channel();
        let invocation = Invocation {
            event: serde_json::to_vec(event)
                .unwrap_or_else(|e| panic!("event is not serializable: {e}")),
            deadline_ms,
            reply,
        };
        self.invocations
            .send(invocation)
            .unwrap_or_else(|_| panic!("the Runtime API has stopped"));
        tokio::time::timeout(INVOKE_TIMEOUT, answer)
            .await
            .ok()?
            .ok()
    }
}

/// One HTTP/1.1 request as the Runtime API client sends it.
struct HttpRequest {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(request) = read_request(&mut reader).await {
        let response = route(&shared, request).await;
        if write.write_all(&response).await.is_err() {
            return;
        }
    }
}

async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> Option<String> {
    let mut line = String::new();
    let read = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_line(&mut line)
        .await
        .ok()?;
    (read > 0 && line.ends_with('\n')).then(|| line.trim_end().to_owned())
}

/// Reads one request (Content-Length or chunked body); `None` at end of stream or on a malformed request.
async fn read_request(reader: &mut (impl AsyncBufRead + Unpin)) -> Option<HttpRequest> {
    let request_line = read_line(reader).await?;
    let mut parts = request_line.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut content_length = 0;
    let mut chunked = false;
    loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().ok().filter(|&n| n <= MAX_BODY)?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size_line = read_line(reader).await?;
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                while !read_line(reader).await?.is_empty() {}
                break;
            }
            if body.len() + size > MAX_BODY {
                return None;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await.ok()?;
            read_line(reader).await?;
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body).await.ok()?;
    }
    Some(HttpRequest { method, path, body })
}

fn http_response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut response = head.into_bytes();
    response.extend_from_slice(body);
    response
}

async fn route(shared: &Shared, request: HttpRequest) -> Vec<u8> {
    const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
    let accepted = || http_response("202 Accepted", &[], br#"{"status":"OK"}"#);
    if request.method == "GET" && request.path == "/2018-06-01/runtime/invocation/next" {
        let Some(invocation) = shared.queue.lock().await.recv().await else {
            return http_response("500 Internal Server Error", &[], b"the test has ended");
        };
        let id = format!("request-{}", shared.next_id.fetch_add(1, Ordering::Relaxed));
        lock(&shared.in_flight).insert(id.clone(), invocation.reply);
        let headers = [
            ("Content-Type", "application/json".to_owned()),
            ("Lambda-Runtime-Aws-Request-Id", id.clone()),
            (
                "Lambda-Runtime-Deadline-Ms",
                invocation.deadline_ms.to_string(),
            ),
            (
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:mirror-git-to-s3-test".to_owned(),
            ),
            ("Lambda-Runtime-Trace-Id", format!("Root=1-00000000-{id}")),
        ];
        return http_response("200 OK", &headers, &invocation.event);
    }
    let answer = request
        .path
        .strip_prefix(INVOCATION)
        .and_then(|rest| rest.split_once('/'))
        .filter(|_| request.method == "POST");
    let Some((id, kind)) = answer else {
        if request.method == "POST" && request.path == "/2018-06-01/runtime/init/error" {
            eprintln!(
                "function init error: {}",
                String::from_utf8_lossy(&request.body)
            );
            return accepted();
        }
        return http_response("404 Not Found", &[], b"");
    };
    let Some(reply) = lock(&shared.in_flight).remove(id) else {
        return http_response("400 Bad Request", &[], b"unknown request id");
    };
    let body: Value = serde_json::from_slice(&request.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into_owned()));
    let outcome = match kind {
        "response" => Outcome::Response(body),
        "error" => Outcome::Error {
            error_type: body["errorType"].as_str().unwrap_or_default().to_owned(),
            error_message: body["errorMessage"].as_str().unwrap_or_default().to_owned(),
        },
        _ => return http_response("404 Not Found", &[], b""),
    };
    let _ = reply.send(outcome);
    accepted()
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The invocation deadline sent to the function.
#[derive(Clone, Copy)]
enum Deadline {
    /// This long after the invocation is queued (epoch milliseconds, as Lambda sends it).
    In(Duration),
    /// cargo-lambda's relative `600000`, which the function must treat as unknown.
    EmulatorQuirk,
}

impl Deadline {
    fn header_value(self) -> u64 {
        match self {
            Deadline::In(duration) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_else(|e| panic!("clock before 1970: {e}"));
                u64::try_from((now + duration).as_millis())
                    .unwrap_or_else(|e| panic!("deadline overflows: {e}"))
            }
            Deadline::EmulatorQuirk => 600_000,
        }
    }
}

/// A deadline far enough away for any test mirror.
const AMPLE: Deadline = Deadline::In(Duration::from_secs(300));

/// A new `function.log` in `dir`, and two handles on it: for a child's standard output and standard error.
fn log_file(dir: &Path) -> (PathBuf, File, File) {
    let log = dir.join("function.log");
    let output =
        File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let errors = output
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot share {}: {e}", log.display()));
    (log, output, errors)
}

/// The function binary running against a [`RuntimeApi`] of its own; killed when dropped.
struct Function {
    api: RuntimeApi,
    child: Child,
    log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Function {
    /// Starts the binary with Lambda's environment plus `env`; S3 calls go to the test's S3 server.
    async fn start(env: &[(&str, &str)]) -> Function {
        let s3 = testkit::s3();
        let api = RuntimeApi::start().await;
        let scratch =
            tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let (log, output, errors) = log_file(scratch.path());
        let child = Command::new(BINARY)
            .env_remove("MIRROR_MAPPINGS")
            .env_remove("MIRROR_MAPPINGS_S3_URI")
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("MIRROR_ALLOW_LOOPBACK", "1")
            .env("AWS_LAMBDA_FUNCTION_NAME", "mirror-git-to-s3-test")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", FUNCTION_MEMORY_MB)
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_ENDPOINT_URL_S3", &s3.endpoint)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        Function {
            api,
            child,
            log,
            _scratch: scratch,
        }
    }

    /// Invokes the function with `event` and returns its answer and how long it took.
    async fn invoke(&self, event: &Value, deadline: Deadline) -> (Outcome, Duration) {
        let started = Instant::now();
        match self.api.invoke(event, deadline.header_value()).await {
            Some(outcome) => (outcome, started.elapsed()),
            None => panic!(
                "the function gave no answer within {INVOKE_TIMEOUT:?}; its log:\n{}",
                self.logs()
            ),
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `events/<name>` with its placeholders replaced; panics if one is left unfilled.
fn load_event(name: &str, fill: &[(&str, &str)]) -> Value {
    let path = Path::new(EVENTS_DIR).join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for (placeholder, value) in fill {
        text = text.replace(placeholder, value);
    }
    assert!(
        !text.contains("{{"),
        "{name} has an unfilled placeholder:\n{text}"
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} is not JSON after filling in: {e}"))
}

/// A mapping target in `bucket`, and the URL a dumb clone reads it from.
fn target(bucket: &str, name: &str) -> (String, String) {
    let prefix = format!("mirrors/{name}");
    (
        format!("s3://{bucket}/{prefix}"),
        testkit::s3().http_url(bucket, &prefix),
    )
}

/// The summary's reports, checked to be one successful report per expected source.
fn assert_all_mirrored(summary: &Value, sources: &[&str]) {
    let reports = summary["mappings"]
        .as_array()
        .unwrap_or_else(|| panic!("no mappings in the summary: {summary}"));
    let mirrored: Vec<&str> = reports
        .iter()
        .filter_map(|report| report["source"].as_str())
        .collect();
    assert_eq!(mirrored, sources, "summary: {summary}");
    for report in reports {
        assert!(report["error"].is_null(), "a mapping failed: {report}");
        assert!(
            report["path"].is_string() && report["duration_ms"].is_u64(),
            "report shape: {report}"
        );
    }
}

/// A served small repository and an empty bucket, with the placeholders of a one-mapping event.
struct OneMapping {
    repo: PathBuf,
    git_url: String,
    bucket: String,
    target: String,
    clone_url: String,
}

impl OneMapping {
    fn new() -> OneMapping {
        let repo = testkit::small_repo();
        let git_url = testkit::git_server().url_of(&repo);
        let bucket = testkit::new_bucket();
        let (target, clone_url) = target(&bucket, "small");
        OneMapping {
            repo,
            git_url,
            bucket,
            target,
            clone_url,
        }
    }

    fn fill(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("{{GIT_URL}}", self.git_url.as_str()),
            ("{{S3_TARGET}}", self.target.as_str()),
            ("{{S3_ENDPOINT}}", testkit::s3().endpoint.as_str()),
        ]
    }

    /// This mapping plus the served `repo` mirrored to `mirrors/<name>` of the same bucket.
    fn with_second(self, repo: PathBuf, name: &str) -> TwoMappings {
        let git_url = testkit::git_server().url_of(&repo);
        let (target, clone_url) = target(&self.bucket, name);
        TwoMappings {
            first: self,
            repo,
            git_url,
            target,
            clone_url,
        }
    }
}

/// A [`OneMapping`] and a second repository mirrored into its bucket, with the placeholders of a two-mapping
/// event.
struct TwoMappings {
    first: OneMapping,
    repo: PathBuf,
    git_url: String,
    target: String,
    clone_url: String,
}

impl TwoMappings {
    fn fill(&self) -> Vec<(&'static str, &str)> {
        let mut fill = self.first.fill();
        fill.extend([
            ("{{GIT_URL_2}}", self.git_url.as_str()),
            ("{{S3_TARGET_2}}", self.target.as_str()),
        ]);
        fill
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_event_mirrors_even_with_the_emulators_relative_deadline() {
    let case = OneMapping::new();
    let function = Function::start(&[]).await;
    let (outcome, _) = function
        .invoke(
            &load_event("manual.json", &case.fill()),
            Deadline::EmulatorQuirk,
        )
        .await;
    assert_all_mirrored(&outcome.response(), &[&case.git_url]);
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
    assert!(
        function.logs().contains("running without a deadline"),
        "log:\n{}",
        function.logs()
    );
}

/// Every line the function wrote, each checked to be one JSON object without colour codes.
fn json_log_lines(logs: &str) -> Vec<serde_json::Map<String, Value>> {
    assert!(!logs.contains('\u{1b}'), "colour codes in the log:\n{logs}");
    logs.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(object)) => object,
            _ => panic!("a log line is not a JSON object: {line}\nlog:\n{logs}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_lines_even_when_the_log_format_says_text() {
    let case = OneMapping::new();
    let function = Function::start(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]).await;
    let (outcome, _) = function
        .invoke(&load_event("manual.json", &case.fill()), AMPLE)
        .await;
    assert_all_mirrored(&outcome.response(), &[&case.git_url]);
    let lines = json_log_lines(&function.logs());
    assert!(
        lines
            .iter()
            .any(|line| line.get("message") == Some(&Value::from("mirrored"))
                && line.get("level") == Some(&Value::from("INFO"))
                && line.get("kind") == Some(&Value::from("full"))),
        "no JSON line for the mirrored mapping:\n{}",
        function.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_with_input_mirrors_every_mapping() {
    let case = OneMapping::new().with_second(testkit::rich_repo(), "rich");
    let function = Function::start(&[]).await;
    let (outcome, _) = function
        .invoke(&load_event("schedule-with-input.json", &case.fill()), AMPLE)
        .await;
    assert_all_mirrored(&outcome.response(), &[&case.first.git_url, &case.git_url]);
    testkit::assert_dumb_clone_matches(&case.first.clone_url, &case.first.repo);
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_without_input_mirrors_the_mappings_of_the_environment() {
    let case = OneMapping::new();
    let config = load_event("mappings-config.json", &case.fill()).to_string();
    let function = Function::start(&[("MIRROR_MAPPINGS", &config)]).await;
    let (outcome, _) = function
        .invoke(&load_event("schedule-without-input.json", &[]), AMPLE)
        .await;
    assert_all_mirrored(&outcome.response(), &[&case.git_url]);
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_without_input_mirrors_the_mappings_of_an_s3_object() {
    let case = OneMapping::new();
    let config = load_event("mappings-config.json", &case.fill()).to_string();
    testkit::s3()
        .client()
        .put_object()
        .bucket(&case.bucket)
        .key("config/mappings.json")
        .body(config.into_bytes().into())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "upload the configuration: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    let uri = format!("s3://{}/config/mappings.json", case.bucket);
    let function = Function::start(&[("MIRROR_MAPPINGS_S3_URI", &uri)]).await;
    let (outcome, _) = function
        .invoke(&load_event("schedule-without-input.json", &[]), AMPLE)
        .await;
    assert_all_mirrored(&outcome.response(), &[&case.git_url]);
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);

    let missing = format!("s3://{}/config/missing.json", case.bucket);
    let function = Function::start(&[("MIRROR_MAPPINGS_S3_URI", &missing)]).await;
    let (error_type, message) = function
        .invoke(&load_event("schedule-without-input.json", &[]), AMPLE)
        .await
        .0
        .error();
    assert_eq!(error_type, "InvalidConfiguration");
    assert!(
        message.contains("config/missing.json") && message.contains("NoSuchKey"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_event_mirrors_its_message() {
    let case = OneMapping::new();
    let function = Function::start(&[]).await;
    let (outcome, _) = function
        .invoke(&load_event("sns.json", &case.fill()), AMPLE)
        .await;
    assert_all_mirrored(&outcome.response(), &[&case.git_url]);
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_batch_mirrors_every_message() {
    let case = OneMapping::new().with_second(testkit::rich_repo(), "rich");
    let function = Function::start(&[]).await;
    let (outcome, _) = function
        .invoke(&load_event("sqs.json", &case.fill()), AMPLE)
        .await;
    assert_eq!(
        outcome.response(),
        serde_json::json!({"batchItemFailures": []})
    );
    testkit::assert_dumb_clone_matches(&case.first.clone_url, &case.first.repo);
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_envelope_in_an_sqs_message_mirrors() {
    let case = OneMapping::new();
    let function = Function::start(&[]).await;
    let (outcome, _) = function
        .invoke(&load_event("sns-in-sqs.json", &case.fill()), AMPLE)
        .await;
    assert_eq!(
        outcome.response(),
        serde_json::json!({"batchItemFailures": []})
    );
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
}

/// `sqs-partial-failure.json` filled in: message 1 mirrors `case`, message 2 names a repository the git server
/// does not have, message 3 is not JSON.
fn partial_failure_event(case: &OneMapping, failing_target: &str) -> Value {
    let missing_url = testkit::git_server().url("no-such-repository.git");
    let mut fill = case.fill();
    fill.extend([
        ("{{GIT_MISSING_URL}}", missing_url.as_str()),
        ("{{S3_TARGET_2}}", failing_target),
    ]);
    load_event("sqs-partial-failure.json", &fill)
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_batch_with_a_failing_mapping_reports_exactly_that_message() {
    let case = OneMapping::new();
    let (failing_target, _) = target(&case.bucket, "missing");
    let mut event = partial_failure_event(&case, &failing_target);
    let records = event["Records"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no Records"));
    records.truncate(2);
    let failing_id = records[1]["messageId"].clone();
    let function = Function::start(&[]).await;
    let (outcome, _) = function.invoke(&event, AMPLE).await;
    assert_eq!(
        outcome.response(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": failing_id}]})
    );
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
    assert_eq!(
        testkit::list_keys(&case.bucket, "mirrors/missing"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_batch_with_a_failing_mapping_and_a_malformed_body_reports_both() {
    let case = OneMapping::new();
    let (failing_target, _) = target(&case.bucket, "missing");
    let event = partial_failure_event(&case, &failing_target);
    let expected: Vec<Value> = event["Records"]
        .as_array()
        .unwrap_or_else(|| panic!("no Records"))
        .iter()
        .skip(1)
        .map(|record| serde_json::json!({"itemIdentifier": record["messageId"]}))
        .collect();
    let function = Function::start(&[]).await;
    let (outcome, _) = function.invoke(&event, AMPLE).await;
    assert_eq!(
        outcome.response(),
        serde_json::json!({"batchItemFailures": expected})
    );
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
    let logs = function.logs();
    assert!(
        logs.contains("not valid JSON"),
        "the malformed body's error is logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_events_fail_and_write_nothing() {
    let both = OneMapping::new().with_second(testkit::small_repo(), "second");
    let (case, second) = (&both.first, &both.repo);
    let fill = both.fill();

    let mut sns_not_json = load_event("sns.json", &fill);
    sns_not_json["Records"][0]["Sns"]["Message"] =
        Value::String(format!("please mirror {}", case.git_url));
    let mut sqs_without_id = load_event("sqs.json", &fill);
    sqs_without_id["Records"][1]
        .as_object_mut()
        .unwrap_or_else(|| panic!("record is not an object"))
        .remove("messageId");
    let mut wrong_type = load_event("manual.json", &fill);
    wrong_type["memory_budget_mib"] = Value::String("128".to_owned());
    let cases = [
        (
            load_event("malformed.json", &fill),
            "InvalidEvent",
            "event.mappings[1]: unknown field `destination`",
        ),
        (
            sns_not_json,
            "InvalidEvent",
            "Records[0].Sns.Message: not valid JSON",
        ),
        (
            sqs_without_id,
            "InvalidEvent",
            "Records[1]: has no messageId",
        ),
        (
            wrong_type,
            "InvalidEvent",
            "event.memory_budget_mib: invalid type: string \"128\"",
        ),
        (
            serde_json::json!({"repositories": [case.git_url]}),
            "InvalidEvent",
            "unrecognised event",
        ),
        (
            load_event("schedule-without-input.json", &[]),
            "InvalidConfiguration",
            "needs MIRROR_MAPPINGS",
        ),
    ];
    let function = Function::start(&[]).await;
    for (event, expected_type, expected_message) in cases {
        let (error_type, message) = function.invoke(&event, AMPLE).await.0.error();
        assert_eq!(error_type, expected_type, "{message}");
        assert!(
            message.contains(expected_message),
            "{message:?} lacks {expected_message:?}"
        );
    }
    assert_eq!(testkit::list_keys(&case.bucket, ""), Vec::<String>::new());
    assert_eq!(
        testkit::git_server().requests_for(&case.repo),
        Vec::<String>::new()
    );
    assert_eq!(
        testkit::git_server().requests_for(second),
        Vec::<String>::new()
    );
}

/// Size of the incompressible file that makes the second mirror of the deadline test slow: about 20 s into
/// moto on an idle machine, well past the mirror's deadline.
const SLOW_BLOB_SIZE: usize = 400 << 20;
/// The deadline test's invocation deadline. The function keeps a fifth as its margin (3.2 s for its clean-up),
/// which leaves the mirror 12.8 s: more than the 10 s the library needs left to start a mapping (2.8 s of slack
/// for a loaded machine to get there), so the mapping starts and must be stopped in flight.
const SHORT_DEADLINE: Duration = Duration::from_secs(16);

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_shorter_than_the_mirror_stops_in_time_and_keeps_the_previous_mirror() {
    let case = OneMapping::new();
    let function = Function::start(&[]).await;
    let event = load_event("manual.json", &case.fill());
    let (outcome, _) = function.invoke(&event, AMPLE).await;
    assert_all_mirrored(&outcome.response(), &[&case.git_url]);

    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let before = testkit::mirror_clone(&case.repo, scratch.path(), "before.git");
    let keys_before = testkit::list_keys(&case.bucket, "");
    let published_before: std::collections::HashMap<&String, Option<Vec<u8>>> = keys_before
        .iter()
        .map(|key| (key, testkit::get_object(&case.bucket, key)))
        .collect();
    let big = testkit::big_binary_repo(SLOW_BLOB_SIZE, 1);
    testkit::git(
        [
            "fetch",
            "--quiet",
            &big.to_string_lossy(),
            "refs/heads/main:refs/heads/big",
        ],
        &case.repo,
    );

    let (outcome, elapsed) = function.invoke(&event, Deadline::In(SHORT_DEADLINE)).await;
    let (error_type, summary) = outcome.error();
    assert_eq!(error_type, "MirrorFailed", "{summary}");
    assert!(
        elapsed < SHORT_DEADLINE,
        "answered after {elapsed:?}, deadline {SHORT_DEADLINE:?}"
    );
    let summary: Value = serde_json::from_str(&summary)
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {summary}"));
    let report = &summary["mappings"][0];
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|error| error.contains("deadline")),
        "{summary}"
    );
    assert_ne!(
        report["path"], "not_started",
        "the mapping must have been stopped in flight: {summary}"
    );
    // An upload the deadline caught while it was being completed is aborted in the background (waiting for the
    // store's answer would overrun the deadline): it must be gone within moments.
    let mut open = testkit::s3().open_multipart_uploads(&case.bucket).await;
    for _ in 0..50 {
        if open.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = testkit::s3().open_multipart_uploads(&case.bucket).await;
    }
    assert_eq!(open, Vec::<String>::new());
    // Nothing published changed. A run stopped after storing its pack under its final name (publication steps 1
    // and 2) leaves it there unlisted: another run may have found it stored and be about to list it, so only the
    // GC, after the grace, deletes it.
    let keys_after = testkit::list_keys(&case.bucket, "");
    assert!(
        keys_before.iter().all(|key| keys_after.contains(key)),
        "{keys_before:?} → {keys_after:?}"
    );
    let added: Vec<&String> = keys_after
        .iter()
        .filter(|key| !keys_before.contains(key))
        .collect();
    assert!(
        added.iter().all(|key| key.contains("/objects/pack/pack-")),
        "{added:?}"
    );
    for key in &keys_before {
        assert_eq!(
            testkit::get_object(&case.bucket, key),
            published_before[key],
            "{key} changed"
        );
    }
    testkit::assert_dumb_clone_matches(&case.clone_url, &before);
}

/// Waits until something accepts connections on `port`.
fn wait_for_port(port: u16, child: &mut Child) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("cargo lambda watch exited ({status}) before listening");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cargo lambda watch did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cargo_lambda_emulator_invokes_the_binary() {
    let Some(cargo_lambda) = std::env::var_os("MIRROR_TEST_CARGO_LAMBDA") else {
        eprintln!(
            "skipped: set MIRROR_TEST_CARGO_LAMBDA to a cargo-lambda executable (`make lambda-tools` installs one)"
        );
        return;
    };
    let case = OneMapping::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let mut watch = Killed(
        Command::new(&cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", Path::new(&cargo_lambda).display())),
    );
    wait_for_port(port, &mut watch.0);
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let (log, output, errors) = log_file(scratch.path());
    let _function = Killed(
        Command::new(BINARY)
            .env_remove("MIRROR_MAPPINGS")
            .env_remove("MIRROR_MAPPINGS_S3_URI")
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("MIRROR_ALLOW_LOOPBACK", "1")
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", FUNCTION_MEMORY_MB)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}")),
    );
    let event_file = scratch.path().join("event.json");
    std::fs::write(
        &event_file,
        load_event("manual.json", &case.fill()).to_string(),
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", event_file.display()));
    let output = Command::new(&cargo_lambda)
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--data-file",
        ])
        .arg(&event_file)
        .arg("_")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo lambda invoke: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let function_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        output.status.success(),
        "cargo lambda invoke failed ({}):\n{stdout}\n{}\nfunction log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        function_log()
    );
    let summary: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_all_mirrored(&summary, &[&case.git_url]);
    testkit::assert_dumb_clone_matches(&case.clone_url, &case.repo);
}

/// An SDK configuration for the test's moto server, which serves SQS and Secrets Manager as it serves S3.
async fn moto_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&testkit::s3().endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "mirror-tests",
        ))
        .load()
        .await
}

/// A new, empty SQS queue on moto; its URL.
async fn new_queue(name: &str) -> String {
    let client = aws_sdk_sqs::Client::new(&moto_config().await);
    let unique = format!(
        "{name}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or_default()
    );
    client
        .create_queue()
        .queue_name(&unique)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create queue: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })
        .queue_url
        .unwrap_or_else(|| panic!("moto gave no queue URL"))
}

/// Receives every message on `queue` (until a receive comes back empty), deleting them: `(message id, body)`.
async fn drain_queue(queue: &str) -> Vec<(String, String)> {
    let client = aws_sdk_sqs::Client::new(&moto_config().await);
    let mut messages = Vec::new();
    for _ in 0..100 {
        let output = client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        let received = output.messages.unwrap_or_default();
        if received.is_empty() {
            break;
        }
        for message in received {
            if let Some(handle) = &message.receipt_handle {
                client
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("delete: {}", aws_sdk_sqs::error::DisplayErrorContext(e))
                    });
            }
            messages.push((
                message.message_id.unwrap_or_default(),
                message.body.unwrap_or_default(),
            ));
        }
    }
    messages
}

/// The EMF records among the function's log lines, each checked against the specification.
fn emf_records(logs: &str) -> Vec<serde_json::Map<String, Value>> {
    json_log_lines(logs)
        .into_iter()
        .filter(|line| line.contains_key("_aws"))
        .inspect(|record| {
            if let Err(problems) = testkit::emf::validate(&Value::Object(record.clone())) {
                panic!("invalid EMF record {record:?}: {problems:?}");
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_of_25_mappings_queues_25_messages_that_mirror_when_fed_back() {
    let repo = testkit::small_repo();
    let git_url = testkit::git_server().url_of(&repo);
    let bucket = testkit::new_bucket();
    let queue = new_queue("fan-out").await;
    let targets: Vec<(String, String)> = (0..25)
        .map(|n| target(&bucket, &format!("fan-{n}")))
        .collect();
    let mut mappings: Vec<Value> = targets
        .iter()
        .map(|(target, _)| serde_json::json!({"source": git_url, "target": target}))
        .collect();
    mappings.push(mappings[7].clone());
    let request = serde_json::json!({
        "mappings": mappings,
        "fan_out": true,
        "endpoint_url": testkit::s3().endpoint,
        "force_path_style": true,
        "concurrency": 2,
    });
    let function = Function::start(&[
        ("MIRROR_QUEUE_URL", &queue),
        ("AWS_ENDPOINT_URL_SQS", &testkit::s3().endpoint),
    ])
    .await;
    let (outcome, fan_out_time) = function.invoke(&request, AMPLE).await;
    assert_eq!(
        outcome.response(),
        serde_json::json!({"fan_out": {"queued": 25, "duplicates": 1, "failed": []}})
    );
    assert!(
        testkit::list_keys(&bucket, "").is_empty(),
        "a fan-out mirrors nothing"
    );

    let messages = drain_queue(&queue).await;
    assert_eq!(messages.len(), 25);
    let mut queued_targets: Vec<String> = messages
        .iter()
        .map(|(_, body)| {
            let request: Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("a message is not JSON: {e}: {body}"));
            assert_eq!(
                request["mappings"].as_array().map(Vec::len),
                Some(1),
                "{body}"
            );
            assert_eq!(request["concurrency"], 2, "{body}");
            assert!(request.get("fan_out").is_none(), "{body}");
            request["mappings"][0]["target"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    queued_targets.sort();
    let mut expected: Vec<String> = targets.iter().map(|(target, _)| target.clone()).collect();
    expected.sort();
    assert_eq!(queued_targets, expected);

    // The queue's event source hands them back in batches of up to 10.
    let started = Instant::now();
    let mut invocations = 0;
    for batch in messages.chunks(10) {
        let records: Vec<Value> = batch
            .iter()
            .map(|(id, body)| serde_json::json!({"messageId": id, "body": body, "eventSource": "aws:sqs"}))
            .collect();
        let (outcome, _) = function
            .invoke(&serde_json::json!({ "Records": records }), AMPLE)
            .await;
        assert_eq!(
            outcome.response(),
            serde_json::json!({"batchItemFailures": []})
        );
        invocations += 1;
    }
    let mirror_time = started.elapsed();
    for (_, clone_url) in [&targets[0], &targets[24]] {
        testkit::assert_dumb_clone_matches(clone_url, &repo);
    }
    for (target, _) in &targets {
        let prefix = target
            .split_once(&format!("{bucket}/"))
            .map(|(_, prefix)| prefix)
            .unwrap_or_default();
        assert!(
            testkit::list_keys(&bucket, prefix)
                .iter()
                .any(|key| key.ends_with("/info/refs")),
            "{target} was not mirrored"
        );
    }
    let records = emf_records(&function.logs());
    assert_eq!(records.len(), 25, "one EMF record per mapping");
    assert!(records
        .iter()
        .all(|record| record["Success"] == 1 && record["RunKind"] == "full"));
    println!(
        "fan-out of 25 mappings: queued in {fan_out_time:?}; {} messages mirrored by {invocations} invocations \
         in {mirror_time:?}; sample EMF record: {}",
        messages.len(),
        Value::Object(records[0].clone())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_out_to_a_queue_that_refuses_is_retried_then_reported() {
    let case = OneMapping::new();
    let missing_queue = format!(
        "{}/123456789012/no-such-queue",
        testkit::s3().endpoint.trim_end_matches('/')
    );
    let function = Function::start(&[
        ("MIRROR_QUEUE_URL", &missing_queue),
        ("AWS_ENDPOINT_URL_SQS", &testkit::s3().endpoint),
    ])
    .await;
    let request = serde_json::json!({
        "mappings": [{"source": case.git_url, "target": case.target}],
        "fan_out": true,
    });
    let (error_type, message) = function.invoke(&request, AMPLE).await.0.error();
    assert_eq!(error_type, "FanOutFailed", "{message}");
    let summary: Value = serde_json::from_str(&message)
        .unwrap_or_else(|e| panic!("the error is not the JSON summary: {e}: {message}"));
    assert_eq!(summary["fan_out"]["queued"], 0, "{summary}");
    assert_eq!(
        summary["fan_out"]["failed"][0]["target"],
        case.target.as_str(),
        "{summary}"
    );
    assert!(
        summary["fan_out"]["failed"][0]["error"]
            .as_str()
            .is_some_and(|error| error.contains("SendMessageBatch")),
        "{summary}"
    );
    assert!(
        function
            .logs()
            .contains("sending the messages that failed again"),
        "no retry in the log:\n{}",
        function.logs()
    );
}

/// A loopback proxy in front of the git server that answers 401 unless the request carries `credentials` (as
/// `user:password`) in HTTP Basic form, and forwards it to the git server if it does.
async fn basic_auth_proxy(credentials: &str) -> testkit::raw_http::RawServer {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    let backend = testkit::git_server()
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    testkit::raw_http::RawServer::start(move |request| {
        if request.header("authorization") == Some(expected.as_str()) {
            testkit::raw_http::Reply::Send(testkit::raw_http::forward(request, &backend))
        } else {
            testkit::raw_http::Reply::Send(testkit::raw_http::http(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"git\"")],
                b"",
            ))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_source_mirrors_with_a_token_from_secrets_manager_and_not_without() {
    const TOKEN: &str = "gho_Pr1vat3T0kenFromSecretsManager";
    let case = OneMapping::new();
    let proxy = basic_auth_proxy(&format!("x-access-token:{TOKEN}")).await;
    let repo_name = case
        .git_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let private_url = proxy.url(&format!("/{repo_name}")).to_string();
    let secret_name = format!("git/private-{}", case.bucket);
    let secrets = aws_sdk_secretsmanager::Client::new(&moto_config().await);
    let secret_arn = secrets
        .create_secret()
        .name(&secret_name)
        .secret_string(serde_json::json!({ "token": TOKEN }).to_string())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create secret: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })
        .arn
        .unwrap_or_else(|| panic!("moto gave no secret ARN"));
    let function =
        Function::start(&[("AWS_ENDPOINT_URL_SECRETS_MANAGER", &testkit::s3().endpoint)]).await;

    // Without the secret: refused, with an error that says why.
    let (other_target, _) = target(&case.bucket, "refused");
    let anonymous = serde_json::json!({
        "mappings": [{"source": private_url, "target": other_target}],
        "endpoint_url": testkit::s3().endpoint,
        "force_path_style": true,
    });
    let (error_type, message) = function.invoke(&anonymous, AMPLE).await.0.error();
    assert_eq!(error_type, "MirrorFailed");
    assert!(
        message.contains("authentication required (HTTP 401)"),
        "{message}"
    );

    // With it, by name on the mapping and by ARN on the request.
    for secret_on_mapping in [true, false] {
        let (target, clone_url) = target(&case.bucket, &format!("private-{secret_on_mapping}"));
        let mut request = serde_json::json!({
            "mappings": [{"source": private_url, "target": target}],
            "endpoint_url": testkit::s3().endpoint,
            "force_path_style": true,
        });
        if secret_on_mapping {
            request["mappings"][0]["token_secret"] = Value::from(secret_name.as_str());
        } else {
            request["token_secret"] = Value::from(secret_arn.as_str());
        }
        let (outcome, _) = function.invoke(&request, AMPLE).await;
        let summary = outcome.response();
        assert_all_mirrored(&summary, &[private_url.as_str()]);
        assert!(!summary.to_string().contains(TOKEN));
        testkit::assert_dumb_clone_matches(&clone_url, &case.repo);
    }
    // A secret that does not exist fails the mapping, naming the secret.
    let missing = serde_json::json!({
        "mappings": [{"source": private_url, "target": other_target, "token_secret": "git/no-such-secret"}],
    });
    let (_, message) = function.invoke(&missing, AMPLE).await.0.error();
    assert!(
        message.contains("reading the token secret \\\"git/no-such-secret\\\""),
        "{message}"
    );
    let logs = function.logs();
    assert!(!logs.contains(TOKEN), "the token is in the log:\n{logs}");
    assert!(!message.contains(TOKEN));
    assert!(
        proxy
            .seen()
            .iter()
            .any(|request| request.header("authorization").is_some()),
        "no request carried credentials"
    );
}
