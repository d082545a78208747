//! HTTP(S) client for smart-HTTP git servers (protocol v0/v1, stateless RPC).
//!
//! A mirror run talks to the source server with exactly two requests per repository:
//! `GET <repo>/info/refs?service=git-upload-pack` (the ref advertisement) and
//! `POST <repo>/git-upload-pack` (the pack). This module does the HTTP side of both and nothing
//! else: parsing the advertisement and the response is the protocol layer's job.
//!
//! What it takes care of, because every smart-HTTP client has to:
//! - URL handling: `http`/`https`, with or without `.git` or a trailing slash. Credentials written
//!   into the URL become an `Authorization` header and never appear in logs or errors
//!   (see [`redact`]). An `Authorization` header is only ever sent to the origin (scheme, host,
//!   port) of the URL the caller gave, so a redirect to another host cannot leak a token.
//! - Where requests go: only `http` and `https`, never link-local or metadata addresses, loopback only where
//!   allowed, checked on the addresses really connected to ([`AddressPolicy`], `address.rs`); a plain `http`
//!   request carrying credentials is warned about.
//! - Redirects: bounded, relative `Location` resolved, `https` → `http` refused. After redirects of
//!   the advertisement request the repository base moves as git moves it, so the POST goes to the
//!   server that answered.
//! - Smart-server detection by content type, typed errors for the usual failures (401/403, 404,
//!   connect and TLS problems, stalls), and no compressed responses.
//! - Retries of transient failures (no connection, a connection that broke, 429, 5xx) with backoff and jitter,
//!   bounded in attempts and time, each one logged with its cause ([`RetryPolicy`], `retry.rs`).
//! - Bounded memory: the advertisement is collected under a size cap without trusting
//!   `Content-Length`; the pack response is handed out chunk by chunk as it arrives, with an idle
//!   timeout between chunks.
//!
//! TLS uses rustls with the platform's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR` override it, as
//! with OpenSSL), falling back to the bundled Mozilla roots when the platform has none. HTTP/2 is
//! negotiated by ALPN on `https`; plain `http` uses HTTP/1.1.
//!
//! `lfs.rs` holds the Git LFS requests (the batch API and object downloads), over the same client.
//!
//! `client.rs` holds the hyper client (requests, redirects, response checks, the body stream); `url.rs` the URL
//! and credential handling (redaction, the repository base, credentials and their origin, redirect targets).

mod address;
mod body;
mod client;
mod lfs;
mod retry;
mod url;

pub use address::{AddressPolicy, ALLOW_LOOPBACK_ENV, RUNTIME_API_ENV};
pub use body::BodyStream;
pub use client::{default_user_agent, RepoEndpoint, UpstreamClient, UpstreamOptions};
pub(crate) use lfs::unix_now;
pub use lfs::{default_lfs_url, LfsEndpoint, LfsRequestError};
pub use retry::{parse_http_date, parse_retry_after, RetryPolicy};
pub use url::{redact, redact_str};

use std::time::Duration;

/// Content type of a smart-HTTP ref advertisement for `git-upload-pack`.
pub const ADVERTISEMENT_CONTENT_TYPE: &str = "application/x-git-upload-pack-advertisement";
/// Content type of a `git-upload-pack` request body.
pub const REQUEST_CONTENT_TYPE: &str = "application/x-git-upload-pack-request";
/// Content type of a `git-upload-pack` response.
pub const RESULT_CONTENT_TYPE: &str = "application/x-git-upload-pack-result";

/// Query string of the advertisement request.
const ADVERTISEMENT_QUERY: &str = "service=git-upload-pack";

/// Errors of the source HTTP client. URLs in them are redacted: they never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A client option is unusable.
    #[error("invalid source client option: {0}")]
    InvalidOption(String),
    /// The repository URL cannot be used.
    #[error("invalid repository URL {url}: {reason}")]
    InvalidUrl {
        /// The redacted URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing listens at the server's address.
    #[error("{url}: cannot connect: connection refused")]
    ConnectionRefused {
        /// The redacted URL.
        url: String,
    },
    /// The TCP connection could not be established in time.
    #[error("{url}: cannot connect: no connection within {timeout:?}")]
    ConnectTimeout {
        /// The redacted URL.
        url: String,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name, not a TLS server, ...).
    #[error("{url}: TLS handshake failed: {detail}")]
    Tls {
        /// The redacted URL.
        url: String,
        /// The underlying error chain.
        detail: String,
    },
    /// The address of the server is one sources may not use ([`AddressPolicy`]): link-local, cloud metadata, the
    /// Lambda Runtime API, or loopback where it is not allowed.
    #[error("{url}: {detail}")]
    ForbiddenAddress {
        /// The redacted URL.
        url: String,
        /// Which address, and why it is refused.
        detail: String,
    },
    /// Any other failure to connect (name resolution, network unreachable, ...).
    #[error("{url}: cannot connect: {detail}")]
    Connect {
        /// The redacted URL.
        url: String,
        /// The underlying error chain.
        detail: String,
    },
    /// The request failed after connecting, before a response arrived.
    #[error("{url}: request failed: {detail}")]
    Request {
        /// The redacted URL.
        url: String,
        /// The underlying error chain.
        detail: String,
    },
    /// The server sent no response headers within the idle timeout.
    #[error("{url}: no response from server within {timeout:?}")]
    ResponseTimeout {
        /// The redacted URL.
        url: String,
        /// The configured idle timeout.
        timeout: Duration,
    },
    /// 401 or 403 to a request that carried no credentials.
    #[error("{url}: authentication required (HTTP {status}): set a token (credentials are only sent to the host of the repository URL)")]
    AuthenticationRequired {
        /// The redacted URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// 401 or 403 although credentials were sent.
    #[error(
        "{url}: access denied (HTTP {status}): check the token and its access to this repository"
    )]
    AccessDenied {
        /// The redacted URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// 404.
    #[error("{url}: repository not found (HTTP 404)")]
    NotFound {
        /// The redacted URL.
        url: String,
    },
    /// Any other unexpected status.
    #[error("{url}: unexpected HTTP status {status}: {body}")]
    Status {
        /// The redacted URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body, sanitized, for diagnosis.
        body: String,
        /// The wait a 429 or 503 asked for in `Retry-After` (in seconds or as an HTTP date).
        retry_after: Option<Duration>,
    },
    /// The response does not have the smart-HTTP content type.
    #[error("{url}: not a smart git HTTP server: expected Content-Type {expected}, got {found}")]
    NotSmartServer {
        /// The redacted URL.
        url: String,
        /// The content type a smart server sends.
        expected: &'static str,
        /// What the server sent (`none` if nothing).
        found: String,
    },
    /// The server compressed the response although no encoding was accepted.
    #[error("{url}: server sent a response with Content-Encoding {encoding} although only identity was accepted")]
    UnsupportedEncoding {
        /// The redacted URL.
        url: String,
        /// The content encoding the server used.
        encoding: String,
    },
    /// A redirect chain longer than the configured bound.
    #[error("{url}: too many redirects (more than {max})")]
    TooManyRedirects {
        /// The redacted URL of the first request.
        url: String,
        /// The configured bound.
        max: usize,
    },
    /// A redirect from `https` to plain `http`.
    #[error("{url}: refusing redirect from https to plain http ({location})")]
    InsecureRedirect {
        /// The redacted URL that redirected.
        url: String,
        /// The redacted redirect target.
        location: String,
    },
    /// A redirect that cannot be followed.
    #[error("{url}: bad redirect: {reason}")]
    BadRedirect {
        /// The redacted URL that redirected.
        url: String,
        /// Why it cannot be followed.
        reason: String,
    },
    /// No body bytes for longer than the idle timeout.
    #[error("{url}: no data from server for {timeout:?}")]
    IdleTimeout {
        /// The redacted URL.
        url: String,
        /// The configured idle timeout.
        timeout: Duration,
    },
    /// The response body broke off (connection closed early, protocol error, ...).
    #[error("{url}: error reading response body: {detail}")]
    Body {
        /// The redacted URL.
        url: String,
        /// The underlying error chain.
        detail: String,
    },
    /// The advertisement exceeds [`UpstreamOptions::max_advertisement_bytes`].
    #[error("{url}: ref advertisement larger than the limit of {limit} bytes")]
    AdvertisementTooLarge {
        /// The redacted URL.
        url: String,
        /// The configured limit.
        limit: u64,
    },
}
