//! The S3 API server the tests run against: `moto_server` on loopback, shared by a whole `make test` run (env
//! `MIRROR_TEST_S3_ENDPOINT`, with its request log in `MIRROR_TEST_S3_LOG`) or started once per test binary.
//!
//! Helpers here are synchronous so any test can call them, async or not: the SDK work runs on a runtime of
//! its own that lives as long as the process (a client whose connections belong to a runtime that has been
//! dropped fails, so one runtime owns them all).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::process::{http_answers, scratch_dir, start_server, ServerProcess};

/// How long a `moto_server` may take to answer (about 20 s on a loaded machine).
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(60);

/// An S3 API server on loopback.
pub struct S3Server {
    /// Base URL, e.g. `http://127.0.0.1:PORT` (path-style addressing: `<endpoint>/<bucket>/<key>`).
    pub endpoint: String,
    /// moto's log, one line per request, when known.
    log: Option<PathBuf>,
    /// The server this process started, if it did not reuse `MIRROR_TEST_S3_ENDPOINT`.
    _process: Option<ServerProcess>,
}

/// The S3 server for this test binary (see the module docs). Also sets the dummy AWS credentials and region
/// in the environment (unless already set), so call it before any code that builds an SDK client from the
/// environment.
pub fn s3() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        set_aws_env();
        match std::env::var("MIRROR_TEST_S3_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => shared_server(endpoint),
            _ => start_moto(),
        }
    })
}

fn set_aws_env() {
    for (key, value) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value);
        }
    }
}

fn shared_server(endpoint: String) -> S3Server {
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let port = endpoint
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .unwrap_or_else(|| {
            panic!("MIRROR_TEST_S3_ENDPOINT={endpoint} is not http://127.0.0.1:PORT")
        });
    assert!(
        http_answers(port),
        "MIRROR_TEST_S3_ENDPOINT={endpoint} does not answer"
    );
    S3Server {
        endpoint,
        log: std::env::var_os("MIRROR_TEST_S3_LOG").map(PathBuf::from),
        _process: None,
    }
}

/// The `moto_server` to run: the one in the project's tools venv (`ensure_tools` in `scripts/lib.sh` installs
/// the pinned version there) when present, else whichever is on PATH.
fn moto_program() -> PathBuf {
    crate::process::tools_program("moto_server")
}

fn start_moto() -> S3Server {
    let scratch = scratch_dir("mirror-test-moto-");
    let program = moto_program();
    let process = start_server("moto_server", &scratch, MOTO_START_TIMEOUT, |port, _| {
        let mut cmd = Command::new(&program);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        cmd
    });
    S3Server {
        endpoint: format!("http://127.0.0.1:{}", process.port),
        log: Some(process.log.clone()),
        _process: Some(process),
    }
}

impl S3Server {
    /// A new SDK client for this server (path-style, dummy credentials). Use it within one tokio runtime.
    pub fn client(&self) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "mirror-tests"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }

    /// Every multipart upload still open in `bucket`, as `"key (upload id)"`.
    pub async fn open_multipart_uploads(&self, bucket: &str) -> Vec<String> {
        let output = self
            .client()
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "list multipart uploads of {bucket}: {}",
                    DisplayErrorContext(e)
                )
            });
        output
            .uploads()
            .iter()
            .map(|upload| {
                format!(
                    "{} ({})",
                    upload.key().unwrap_or_default(),
                    upload.upload_id().unwrap_or_default()
                )
            })
            .collect()
    }

    /// The requests the server logged for `bucket`, as `"METHOD /bucket/key?query"` strings in arrival order.
    /// Panics if the server's log is unknown (a shared server started without `MIRROR_TEST_S3_LOG`).
    pub fn requests(&self, bucket: &str) -> Vec<String> {
        let path = self.log.as_ref().unwrap_or_else(|| {
            panic!("the S3 request log is unknown: set MIRROR_TEST_S3_LOG with MIRROR_TEST_S3_ENDPOINT")
        });
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let lines: Vec<String> = text.lines().map(strip_ansi).collect();
        lines
            .iter()
            .filter_map(|line| parse_request_line(line))
            .filter(|(_, target)| bucket_of(target) == bucket)
            .map(|(method, target)| format!("{method} {target}"))
            .collect()
    }

    /// How many requests the server logged for `bucket` (see [`S3Server::requests`]).
    pub fn request_count(&self, bucket: &str) -> usize {
        self.requests(bucket).len()
    }

    /// The loopback port of [`S3Server::endpoint`] (for a proxy in front of it).
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("the S3 endpoint {} has no port", self.endpoint))
    }

    /// The S3 URL of `bucket`/`prefix` as git's dumb HTTP transport reads it.
    pub fn http_url(&self, bucket: &str, prefix: &str) -> String {
        format!("{}/{bucket}/{}", self.endpoint, prefix.trim_matches('/'))
    }
}

/// `(method, target)` from a werkzeug request line: `127.0.0.1 - - [date] "GET /b/k HTTP/1.1" 200 -`.
/// `line` without the terminal colour sequences (`ESC [ ... m`) moto's server puts around some log lines.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('\u{1b}') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

fn parse_request_line(line: &str) -> Option<(&str, &str)> {
    let (_, request) = line.split_once('"')?;
    let (request, _) = request.split_once('"')?;
    let mut parts = request.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    (version.starts_with("HTTP/") && target.starts_with('/')).then_some((method, target))
}

/// The bucket a path-style request target addresses (`/bucket/key?query` → `bucket`).
fn bucket_of(target: &str) -> &str {
    let path = target.trim_start_matches('/');
    let end = path.find(['/', '?']).unwrap_or(path.len());
    &path[..end]
}

/// Runs an SDK future on the harness's own runtime and waits for it from any thread, inside a runtime or not.
fn block_on<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-s3")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the S3 helper runtime: {e}"))
    });
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv()
        .unwrap_or_else(|_| panic!("the S3 helper task panicked"))
}

/// The harness's client, owned by the helper runtime.
fn helper_client() -> Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| s3().client()).clone()
}

fn sdk_error(what: &str, e: impl std::error::Error) -> String {
    format!("{what}: {}", DisplayErrorContext(e))
}

/// A fresh, uniquely named bucket whose objects anyone may `GetObject` (git's dumb clone sends no
/// credentials). Unique across test binaries sharing one server and across runs against a long-lived one.
pub fn new_bucket() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let bucket = format!(
        "mt-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let client = helper_client();
    let name = bucket.clone();
    block_on(async move {
        client
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("create bucket {name}"), e))?;
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"AnonymousRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{name}/*"}}]}}"#
        );
        client
            .put_bucket_policy()
            .bucket(&name)
            .policy(policy)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("put policy on {name}"), e))?;
        Ok::<(), String>(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    bucket
}

/// Uploads every file under `dir` to `bucket` as `prefix/<relative path>`.
pub fn upload_dir(bucket: &str, prefix: &str, dir: &Path) {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    let client = helper_client();
    let bucket = bucket.to_string();
    let prefix = prefix.trim_matches('/').to_string();
    let root = dir.to_path_buf();
    block_on(async move {
        for file in files {
            let relative = file
                .strip_prefix(&root)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let key = format!("{prefix}/{}", relative.to_string_lossy());
            let body = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            client
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| sdk_error(&format!("put {bucket}/{key}"), e))?;
        }
        Ok::<(), String>(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The keys in `bucket` under `prefix`, sorted.
pub fn list_keys(bucket: &str, prefix: &str) -> Vec<String> {
    let client = helper_client();
    let bucket = bucket.to_string();
    let prefix = prefix.to_string();
    block_on(async move {
        let mut keys = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(&format!("list {bucket}/{prefix}"), e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
        }
        keys.sort();
        Ok::<_, String>(keys)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The content of `bucket`/`key`, or `None` if there is no such object.
pub fn get_object(bucket: &str, key: &str) -> Option<Vec<u8>> {
    let client = helper_client();
    let bucket = bucket.to_string();
    let key = key.to_string();
    block_on(async move {
        match client.get_object().bucket(&bucket).key(&key).send().await {
            Ok(output) => output
                .body
                .collect()
                .await
                .map(|data| Some(data.to_vec()))
                .map_err(|e| format!("read {bucket}/{key}: {e}")),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_error(&format!("get {bucket}/{key}"), e)),
        }
    })
    .unwrap_or_else(|e| panic!("{e}"))
}
