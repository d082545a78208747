//! The hyper client: one connection pool, the two requests of a fetch, redirects, response checks and the
//! response body as a stream.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use super::address::GuardedConnector;
use super::body::BodyStream;
use super::url::{
    base_after_redirect, credentials_for, redact, redirect_target, repo_base, Credentials,
};
use super::{
    AddressPolicy, RetryPolicy, UpstreamError, ADVERTISEMENT_CONTENT_TYPE, ADVERTISEMENT_QUERY,
    REQUEST_CONTENT_TYPE, RESULT_CONTENT_TYPE,
};
use crate::git::upload_pack::v2;
use crate::text::{error_chain, untrusted, untrusted_words};

/// The request header that asks for a protocol version.
const GIT_PROTOCOL: &str = "git-protocol";

/// How many bytes of an unexpected error response body are quoted in the error message.
const ERROR_BODY_EXCERPT: usize = 200;
/// Most characters of a response header value quoted in an error message.
const MAX_HEADER_CHARS: usize = 200;
/// Connections idle in the pool longer than this are closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Settings of a [`UpstreamClient`].
#[derive(Clone)]
pub struct UpstreamOptions {
    /// Limit for establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Limit for waiting on the server: for the response headers of a request, and between two
    /// chunks of a response body. Servers of big repositories can think for minutes before the
    /// first pack byte, so this is generous by default (300 s).
    pub idle_timeout: Duration,
    /// How many redirects one request may follow.
    pub max_redirects: usize,
    /// `User-Agent` header. Some servers only speak smart HTTP to agents starting with `git/`.
    pub user_agent: String,
    /// Access token sent as HTTP Basic credentials: the password of the URL's user if the URL
    /// names one, else with the user `x-access-token` (GitHub, Gitea and GitLab accept that).
    /// A password written in the URL takes precedence.
    pub token: Option<String>,
    /// Largest accepted ref advertisement, in bytes (a guard against hostile servers; real ones
    /// with tens of thousands of refs stay in the low MiB). A protocol v2 `ls-refs` answer has the
    /// same limit.
    pub max_advertisement_bytes: u64,
    /// How the advertisement and the pack request are retried after a transient failure.
    pub retry: RetryPolicy,
    /// Ask for protocol v2 (`Git-Protocol: version=2` on every request); off by default. A server
    /// that does not speak it ignores the header and answers in v0.
    pub protocol_v2: bool,
    /// Which addresses the client may connect to (redirect targets included).
    pub addresses: AddressPolicy,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_redirects: 5,
            user_agent: default_user_agent(),
            token: None,
            max_advertisement_bytes: 256 << 20,
            retry: RetryPolicy::default(),
            protocol_v2: false,
            addresses: AddressPolicy::default(),
        }
    }
}

impl fmt::Debug for UpstreamOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_redirects", &self.max_redirects)
            .field("user_agent", &self.user_agent)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_advertisement_bytes", &self.max_advertisement_bytes)
            .field("retry", &self.retry)
            .field("protocol_v2", &self.protocol_v2)
            .field("addresses", &self.addresses)
            .finish()
    }
}

/// The default `User-Agent`: `git/2.0 (mirror-git-to-s3/<version>)`.
pub fn default_user_agent() -> String {
    format!("git/2.0 (mirror-git-to-s3/{})", env!("CARGO_PKG_VERSION"))
}

/// A smart-HTTP repository as located by [`UpstreamClient::advertisement`]: its base URL after
/// redirects, and the credentials of the original URL, which go only to the original origin (so
/// a repository that moved to another host gets none).
#[derive(Clone)]
pub struct RepoEndpoint {
    base: Url,
    pub(super) credentials: Option<Credentials>,
}

impl RepoEndpoint {
    /// The repository base URL (no credentials, no trailing slash): `<base>/git-upload-pack` is
    /// where the pack is requested.
    pub fn url(&self) -> &Url {
        &self.base
    }
}

impl fmt::Debug for RepoEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoEndpoint")
            .field("base", &self.base.as_str())
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub(super) type HttpClient = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// HTTP(S) client for smart-HTTP git servers. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    pub(super) http: HttpClient,
    pub(super) options: Arc<UpstreamOptions>,
    pub(super) user_agent: HeaderValue,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The two requests of a fetch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Advertisement,
    UploadPack,
}

impl Service {
    fn expected_content_type(self) -> &'static str {
        match self {
            Service::Advertisement => ADVERTISEMENT_CONTENT_TYPE,
            Service::UploadPack => RESULT_CONTENT_TYPE,
        }
    }
}

impl UpstreamClient {
    /// A client with its own connection pool. Fails on an unusable user agent or zero timeouts.
    pub fn new(options: UpstreamOptions) -> Result<Self, UpstreamError> {
        let user_agent = HeaderValue::from_str(&options.user_agent).map_err(|_| {
            UpstreamError::InvalidOption(format!(
                "user agent {:?} is not a valid header value",
                options.user_agent
            ))
        })?;
        if options.idle_timeout.is_zero() || options.connect_timeout.is_zero() {
            return Err(UpstreamError::InvalidOption(
                "timeouts must be greater than zero".to_owned(),
            ));
        }
        let tcp = GuardedConnector::new(options.addresses, |tcp| {
            tcp.enforce_http(false);
            tcp.set_nodelay(true);
            tcp.set_connect_timeout(Some(options.connect_timeout));
        });
        let tls = match HttpsConnectorBuilder::new().with_native_roots() {
            Ok(builder) => builder,
            Err(error) => {
                tracing::warn!(
                    "no usable platform CA certificates ({error}); using the bundled Mozilla roots"
                );
                HttpsConnectorBuilder::new().with_webpki_roots()
            }
        };
        let connector = tls
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http2_adaptive_window(true)
            .build(connector);
        Ok(UpstreamClient {
            http,
            options: Arc::new(options),
            user_agent,
        })
    }

    /// Fetches `<repo>/info/refs?service=git-upload-pack`, following redirects, and checks that
    /// the server speaks smart HTTP. Returns where the repository turned out to be (pass it to
    /// [`UpstreamClient::upload_pack`]) and the raw body (pkt-lines starting with
    /// `# service=git-upload-pack`), collected up to [`UpstreamOptions::max_advertisement_bytes`].
    /// Transient failures are retried as [`UpstreamOptions::retry`] says.
    pub async fn advertisement(&self, repo: &Url) -> Result<(RepoEndpoint, Bytes), UpstreamError> {
        self.retrying("ref advertisement", || self.advertisement_once(repo))
            .await
    }

    /// The policy the client retries requests with.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.options.retry
    }

    async fn advertisement_once(&self, repo: &Url) -> Result<(RepoEndpoint, Bytes), UpstreamError> {
        let base = repo_base(repo)?;
        let credentials = credentials_for(repo, self.options.token.as_deref());
        let mut target = base.clone();
        target.set_path(&format!("{}/info/refs", base.path()));
        target.set_query(Some(ADVERTISEMENT_QUERY));
        let (final_url, shown, response) = self
            .exchange(
                Service::Advertisement,
                target,
                credentials.as_ref(),
                Bytes::new(),
            )
            .await?;
        let limit = self.options.max_advertisement_bytes;
        if content_length(response.headers()).is_some_and(|declared| declared > limit) {
            return Err(UpstreamError::AdvertisementTooLarge { url: shown, limit });
        }
        let endpoint = RepoEndpoint {
            base: base_after_redirect(&final_url, &shown)?,
            credentials,
        };
        let stream = BodyStream::new(response, shown, self.options.idle_timeout);
        Ok((endpoint, self.collect_refs(stream).await?))
    }

    /// POSTs a protocol v2 `ls-refs` command (built by the protocol layer) to
    /// `<repo>/git-upload-pack` and returns its answer, collected up to
    /// [`UpstreamOptions::max_advertisement_bytes`] like an advertisement.
    pub async fn ls_refs(
        &self,
        repo: &RepoEndpoint,
        request: Bytes,
    ) -> Result<Bytes, UpstreamError> {
        let stream = self.upload_pack(repo, request).await?;
        self.collect_refs(stream).await
    }

    /// Collects a body that lists refs, never more than the advertisement limit.
    async fn collect_refs(&self, mut stream: BodyStream) -> Result<Bytes, UpstreamError> {
        let limit = self.options.max_advertisement_bytes;
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next_chunk().await? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(UpstreamError::AdvertisementTooLarge {
                    url: stream.url,
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// POSTs `request` (a complete upload-pack request: wants, haves, `done`) to
    /// `<repo>/git-upload-pack` and returns the response body as a stream once status and
    /// content type are checked. Only 307/308 redirects are followed (they keep the body). Not retried here: a
    /// pack can also break off mid-body, so the caller retries the whole exchange from the start, with
    /// [`UpstreamClient::retry_policy`], when it knows that is safe.
    pub async fn upload_pack(
        &self,
        repo: &RepoEndpoint,
        request: Bytes,
    ) -> Result<BodyStream, UpstreamError> {
        let mut target = repo.base.clone();
        target.set_path(&format!("{}/git-upload-pack", repo.base.path()));
        let (_, shown, response) = self
            .exchange(
                Service::UploadPack,
                target,
                repo.credentials.as_ref(),
                request,
            )
            .await?;
        Ok(BodyStream::new(response, shown, self.options.idle_timeout))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry policy is spent; logs each retry.
    async fn retrying<T, F, Fut>(&self, request: &str, attempt: F) -> Result<T, UpstreamError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let started = Instant::now();
        let mut failed = 0;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            failed += 1;
            let Some(delay) = self.options.retry.delay_after(&error, failed, started) else {
                return Err(error);
            };
            tracing::warn!(
                request,
                attempt = failed,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                cause = %error,
                "retrying a source request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends the request of `service` (following redirects) and checks the response. Returns the URL that
    /// answered, that URL redacted for messages, and the response.
    async fn exchange(
        &self,
        service: Service,
        target: Url,
        credentials: Option<&Credentials>,
        body: Bytes,
    ) -> Result<(Url, String, Response<Incoming>), UpstreamError> {
        let (final_url, response) = self
            .send_following(service, target, credentials, body)
            .await?;
        let shown = redact(&final_url);
        let response = self
            .check_response(response, service, &final_url, credentials)
            .await?;
        Ok((final_url, shown, response))
    }

    /// Sends the request and follows redirects: any redirect status for the GET, only 307/308
    /// (which keep method and body) for the POST.
    async fn send_following(
        &self,
        service: Service,
        mut url: Url,
        credentials: Option<&Credentials>,
        body: Bytes,
    ) -> Result<(Url, Response<Incoming>), UpstreamError> {
        let first = redact(&url);
        let max = self.options.max_redirects;
        let mut redirects = 0;
        loop {
            let response = self
                .send_once(service, &url, credentials, body.clone())
                .await?;
            let status = response.status();
            let follow = match service {
                Service::Advertisement => is_redirect(status),
                Service::UploadPack => matches!(
                    status,
                    StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
                ),
            };
            if !follow {
                return Ok((url, response));
            }
            if redirects == max {
                return Err(UpstreamError::TooManyRedirects { url: first, max });
            }
            redirects += 1;
            let next = redirect_target(&url, response.headers())?;
            tracing::debug!(
                from = %redact(&url),
                to = %redact(&next),
                status = status.as_u16(),
                "following redirect"
            );
            url = next;
        }
    }

    async fn send_once(
        &self,
        service: Service,
        url: &Url,
        credentials: Option<&Credentials>,
        body: Bytes,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let shown = redact(url);
        let uri = Uri::try_from(url.as_str()).map_err(|error| UpstreamError::InvalidUrl {
            url: shown.clone(),
            reason: error.to_string(),
        })?;
        let mut builder = Request::builder()
            .uri(uri)
            .header(header::USER_AGENT, self.user_agent.clone())
            .header(header::ACCEPT_ENCODING, "identity");
        builder = match service {
            Service::Advertisement => builder
                .method(Method::GET)
                .header(header::ACCEPT, "*/*")
                .header(header::CACHE_CONTROL, "no-cache")
                .header(header::PRAGMA, "no-cache"),
            Service::UploadPack => builder
                .method(Method::POST)
                .header(header::CONTENT_TYPE, REQUEST_CONTENT_TYPE)
                .header(header::ACCEPT, RESULT_CONTENT_TYPE),
        };
        if self.options.protocol_v2 {
            builder = builder.header(GIT_PROTOCOL, v2::GIT_PROTOCOL_HEADER_VALUE);
        }
        self.dispatch(builder, url, credentials, body).await
    }

    /// Adds the credentials (if they may go to `url`) to a request being built for `url`, sends it and waits for
    /// the response headers within the idle timeout. Git and LFS requests share it.
    pub(super) async fn dispatch(
        &self,
        mut builder: hyper::http::request::Builder,
        url: &Url,
        credentials: Option<&Credentials>,
        body: Bytes,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let shown = redact(url);
        if let Some(credentials) = credentials.filter(|c| c.may_go_to(url)) {
            if url.scheme() == "http" {
                tracing::warn!(url = %shown, "sending credentials over plain http: anyone on the way can read them");
            }
            builder = builder.header(header::AUTHORIZATION, credentials.header.clone());
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|error| UpstreamError::InvalidUrl {
                url: shown.clone(),
                reason: error.to_string(),
            })?;
        let timeout = self.options.idle_timeout;
        let response = match tokio::time::timeout(timeout, self.http.request(request)).await {
            Err(_) => {
                return Err(UpstreamError::ResponseTimeout {
                    url: shown,
                    timeout,
                })
            }
            Ok(Err(error)) => return Err(self.request_error(shown, url, &error)),
            Ok(Ok(response)) => response,
        };
        tracing::debug!(
            url = %shown,
            status = response.status().as_u16(),
            version = ?response.version(),
            "response"
        );
        Ok(response)
    }

    pub(super) fn request_error(
        &self,
        url: String,
        target: &Url,
        error: &hyper_util::client::legacy::Error,
    ) -> UpstreamError {
        // The client error's own text ("client error (Connect)") adds nothing to its cause.
        let detail = error
            .source()
            .map_or_else(|| error.to_string(), error_chain);
        if !error.is_connect() {
            return UpstreamError::Request { url, detail };
        }
        if has_io_error(error, &|kind| kind == std::io::ErrorKind::PermissionDenied) {
            UpstreamError::ForbiddenAddress { url, detail }
        } else if has_io_error(error, &|kind| kind == std::io::ErrorKind::ConnectionRefused) {
            UpstreamError::ConnectionRefused { url }
        } else if has_io_error(error, &|kind| kind == std::io::ErrorKind::TimedOut) {
            UpstreamError::ConnectTimeout {
                url,
                timeout: self.options.connect_timeout,
            }
        } else if target.scheme() == "https"
            && has_io_error(error, &|kind| {
                matches!(
                    kind,
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                )
            })
        {
            UpstreamError::Tls { url, detail }
        } else {
            UpstreamError::Connect { url, detail }
        }
    }

    /// Turns error statuses, compressed bodies and wrong content types into errors.
    async fn check_response(
        &self,
        response: Response<Incoming>,
        service: Service,
        final_url: &Url,
        credentials: Option<&Credentials>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let status = response.status();
        let url = redact(final_url);
        let sent_credentials = credentials.is_some_and(|c| c.may_go_to(final_url));
        match status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(UpstreamError::NotFound { url }),
            s if s.is_redirection() && service == Service::UploadPack => {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| final_url.join(value).ok())
                    .map_or_else(
                        || "an unusable Location".to_owned(),
                        |target| redact(&target),
                    );
                return Err(UpstreamError::BadRedirect {
                    url,
                    reason: format!(
                        "HTTP {} to {location} for the upload-pack POST; only 307 and 308 keep the request body",
                        status.as_u16()
                    ),
                });
            }
            _ => return Err(self.status_error(response, url, sent_credentials).await),
        }
        if let Some(error) = encoding_error(&response, &url) {
            return Err(error);
        }
        let expected = service.expected_content_type();
        let found = response.headers().get(header::CONTENT_TYPE);
        let media_type = found
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(str::trim);
        if !media_type.is_some_and(|media| media.eq_ignore_ascii_case(expected)) {
            return Err(UpstreamError::NotSmartServer {
                url,
                expected,
                found: found.map_or_else(
                    || "none".to_owned(),
                    |value| untrusted(value.as_bytes(), MAX_HEADER_CHARS),
                ),
            });
        }
        Ok(response)
    }

    /// The error for an unsuccessful status: 401 and 403 say whether credentials were sent (`sent_credentials`),
    /// any other status comes with the start of the body. Git and LFS requests share it.
    pub(super) async fn status_error(
        &self,
        response: Response<Incoming>,
        url: String,
        sent_credentials: bool,
    ) -> UpstreamError {
        let status = response.status().as_u16();
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if sent_credentials => {
                UpstreamError::AccessDenied { url, status }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                UpstreamError::AuthenticationRequired { url, status }
            }
            code => {
                let retry_after = match code {
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                        super::retry::retry_after_header(response.headers())
                    }
                    _ => None,
                };
                let body = self.body_excerpt(response).await;
                UpstreamError::Status {
                    url,
                    status,
                    body,
                    retry_after,
                }
            }
        }
    }

    /// The first bytes of an error response, for the message; best effort within the idle timeout.
    async fn body_excerpt(&self, response: Response<Incoming>) -> String {
        let mut body = response.into_body();
        let mut excerpt = Vec::new();
        let collect = async {
            while excerpt.len() < ERROR_BODY_EXCERPT {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            let wanted = (ERROR_BODY_EXCERPT - excerpt.len()).min(data.len());
                            excerpt.extend_from_slice(&data[..wanted]);
                        }
                    }
                    Some(Err(_)) | None => break,
                }
            }
        };
        // A stall only shortens the excerpt; the status is the error.
        let _ = tokio::time::timeout(self.options.idle_timeout, collect).await;
        if excerpt.is_empty() {
            "(empty body)".to_owned()
        } else {
            untrusted_words(&excerpt, ERROR_BODY_EXCERPT)
        }
    }
}

/// An error if the response is compressed: only identity was accepted.
pub(super) fn encoding_error(response: &Response<Incoming>, url: &str) -> Option<UpstreamError> {
    let encoding = response.headers().get(header::CONTENT_ENCODING)?;
    let encoding = String::from_utf8_lossy(encoding.as_bytes())
        .trim()
        .to_owned();
    (!encoding.eq_ignore_ascii_case("identity")).then(|| UpstreamError::UnsupportedEncoding {
        url: url.to_owned(),
        encoding,
    })
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `error`, one of its sources or an error wrapped in an I/O error on the way is an I/O
/// error of a kind matching `wanted` (`io::Error::source` skips the error it wraps, and
/// hyper-rustls wraps TLS errors twice).
fn has_io_error(
    error: &(dyn StdError + 'static),
    wanted: &dyn Fn(std::io::ErrorKind) -> bool,
) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if wanted(io.kind()) {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                if has_io_error(inner, wanted) {
                    return true;
                }
            }
        }
        current = cause.source();
    }
    false
}

#[cfg(test)]
mod tests;
