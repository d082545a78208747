//! The HTTP side of Git LFS: where a repository's LFS server is, the batch request, and object downloads.
//!
//! The endpoint is git-lfs's default, `<repository>.git/info/lfs` (`<repository>/info/lfs` when the URL already
//! ends in `.git`), unless the mapping or the repository's `.lfsconfig` names another. The JSON of the batch API
//! is the pure core's ([`crate::git::lfs::batch`]); this module sends it and fetches the `href`s it answers.
//!
//! Where credentials go: the source's credentials (its URL's user info, or the token) are only ever sent to the
//! source's origin, for the batch request and for an `href` on that origin that does not carry its own
//! `Authorization`. An `href` on another host gets only the headers the batch response gave for it, and those
//! headers are not sent on after a redirect to yet another origin. Only `http` and `https` hrefs are fetched
//! (the core refuses the others), and a redirect from `https` to `http` is refused as for git requests.

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use url::Url;

use super::body::BodyStream;
use super::client::{encoding_error, UpstreamClient};
use super::url::{credentials_for, redact, redirect_target, repo_base, Credentials};
use super::UpstreamError;
use crate::git::lfs::batch::{self, BatchError, Download, Outcome};
use crate::git::lfs::Pointer;

/// Headers a batch response may not set on a download: they decide where and how the request is sent.
const FRAMING_HEADERS: [HeaderName; 5] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
];

/// Largest batch response accepted, in bytes (100 objects with long signed hrefs stay far below it).
const MAX_BATCH_RESPONSE_BYTES: u64 = 16 << 20;

/// A repository's LFS server: the endpoint URL and the source's credentials, which go only to the source's origin.
#[derive(Clone)]
pub struct LfsEndpoint {
    url: Url,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for LfsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LfsEndpoint")
            .field("url", &redact(&self.url))
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl LfsEndpoint {
    /// The endpoint URL, without credentials (for messages).
    pub fn shown(&self) -> String {
        redact(&self.url)
    }
}

/// Why an LFS request failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum LfsRequestError {
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] UpstreamError),
    /// The batch response is unusable.
    #[error("{url}: {source}")]
    Batch {
        /// The redacted endpoint.
        url: String,
        /// What is wrong with it.
        #[source]
        source: BatchError,
    },
}

/// The default LFS endpoint of a repository URL: `<url>.git/info/lfs`, or `<url>/info/lfs` when it ends in `.git`
/// (a trailing slash ignored), as git-lfs derives it.
pub fn default_lfs_url(repo: &Url) -> Result<Url, UpstreamError> {
    let mut url = repo_base(repo)?;
    let path = url.path().to_owned();
    let with_git = if path.ends_with(".git") {
        path
    } else {
        format!("{path}.git")
    };
    url.set_path(&format!("{with_git}/info/lfs"));
    Ok(url)
}

impl UpstreamClient {
    /// The LFS endpoint of the repository at `source`: `configured` (from the mapping or `.lfsconfig`) if given,
    /// else [`default_lfs_url`]. The source's credentials are attached, bound to the source's origin.
    pub fn lfs_endpoint(
        &self,
        source: &Url,
        configured: Option<&str>,
    ) -> Result<LfsEndpoint, UpstreamError> {
        let url = match configured {
            Some(text) => {
                let parsed = Url::parse(text).map_err(|e| UpstreamError::InvalidUrl {
                    url: super::redact_str(text),
                    reason: e.to_string(),
                })?;
                repo_base(&parsed)?
            }
            None => default_lfs_url(source)?,
        };
        Ok(LfsEndpoint {
            url,
            credentials: credentials_for(source, self.options.token.as_deref()),
        })
    }

    /// Asks the LFS server how to download `pointers` (at most
    /// [`MAX_OBJECTS_PER_BATCH`](crate::git::lfs::batch::MAX_OBJECTS_PER_BATCH)); one outcome per pointer, in order.
    pub async fn lfs_batch(
        &self,
        endpoint: &LfsEndpoint,
        pointers: &[Pointer],
    ) -> Result<Vec<Outcome>, LfsRequestError> {
        let mut url = endpoint.url.clone();
        url.set_path(&format!("{}/objects/batch", endpoint.url.path()));
        let headers = [
            (
                header::ACCEPT,
                HeaderValue::from_static(batch::CONTENT_TYPE),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(batch::CONTENT_TYPE),
            ),
        ];
        let body = Bytes::from(batch::download_request(pointers));
        let (final_url, response) = self
            .lfs_send(
                Method::POST,
                url,
                &headers,
                endpoint.credentials.as_ref(),
                body,
            )
            .await?;
        let shown = redact(&final_url);
        let response = self
            .lfs_check(response, &final_url, endpoint.credentials.as_ref())
            .await?;
        let received_at = unix_now();
        let mut stream = BodyStream::new(response, shown.clone(), self.options.idle_timeout);
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next_chunk().await? {
            if body.len() as u64 + chunk.len() as u64 > MAX_BATCH_RESPONSE_BYTES {
                return Err(LfsRequestError::Batch {
                    url: shown,
                    source: BatchError::Invalid(format!(
                        "larger than {MAX_BATCH_RESPONSE_BYTES} bytes"
                    )),
                });
            }
            body.extend_from_slice(&chunk);
        }
        batch::parse_download_response(&body, pointers, received_at)
            .map_err(|source| LfsRequestError::Batch { url: shown, source })
    }

    /// Starts downloading an object as a batch response said: the body as a stream once the status is checked.
    pub async fn lfs_download(
        &self,
        endpoint: &LfsEndpoint,
        download: &Download,
    ) -> Result<BodyStream, UpstreamError> {
        let shown = redact(&download.href);
        let invalid = |reason: String| UpstreamError::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        let mut headers = Vec::with_capacity(download.headers.len());
        for (name, value) in &download.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                invalid("the batch response gave an invalid header name".to_owned())
            })?;
            // Headers that frame or route the request are the client's, not the server's, to set.
            if FRAMING_HEADERS.contains(&name) {
                continue;
            }
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                invalid("the batch response gave an invalid header value".to_owned())
            })?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        // The action's own Authorization wins; otherwise the source's credentials, on the source's origin only.
        let credentials = endpoint
            .credentials
            .as_ref()
            .filter(|_| !headers.iter().any(|(n, _)| n == header::AUTHORIZATION));
        let (final_url, response) = self
            .lfs_send(
                Method::GET,
                download.href.clone(),
                &headers,
                credentials,
                Bytes::new(),
            )
            .await?;
        let response = self.lfs_check(response, &final_url, credentials).await?;
        Ok(BodyStream::new(
            response,
            redact(&final_url),
            self.options.idle_timeout,
        ))
    }

    /// Sends one LFS request, following redirects (any for a GET, 307/308 for a POST). `headers` go only to the
    /// origin of the first URL, `credentials` only to their own origin.
    async fn lfs_send(
        &self,
        method: Method,
        mut url: Url,
        headers: &[(HeaderName, HeaderValue)],
        credentials: Option<&Credentials>,
        body: Bytes,
    ) -> Result<(Url, Response<Incoming>), UpstreamError> {
        let first = redact(&url);
        let origin = url.origin();
        let max = self.options.max_redirects;
        for _ in 0..=max {
            let shown = redact(&url);
            let uri = Uri::try_from(url.as_str()).map_err(|e| UpstreamError::InvalidUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(uri)
                .header(header::USER_AGENT, self.user_agent.clone())
                .header(header::ACCEPT_ENCODING, "identity");
            if url.origin() == origin {
                for (name, value) in headers {
                    builder = builder.header(name, value);
                }
            }
            let response = self
                .dispatch(builder, &url, credentials, body.clone())
                .await?;
            let status = response.status();
            let follow = if method == Method::GET {
                status.is_redirection() && status != StatusCode::NOT_MODIFIED
            } else {
                matches!(
                    status,
                    StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
                )
            };
            if !follow {
                return Ok((url, response));
            }
            url = redirect_target(&url, response.headers())?;
        }
        Err(UpstreamError::TooManyRedirects { url: first, max })
    }

    /// Turns error statuses and compressed bodies into errors.
    async fn lfs_check(
        &self,
        response: Response<Incoming>,
        final_url: &Url,
        credentials: Option<&Credentials>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let url = redact(final_url);
        if response.status() != StatusCode::OK {
            let sent_credentials = credentials.is_some_and(|c| c.may_go_to(final_url));
            return Err(self.status_error(response, url, sent_credentials).await);
        }
        match encoding_error(&response, &url) {
            Some(error) => Err(error),
            None => Ok(response),
        }
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
