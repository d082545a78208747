//! A response body of the upstream client, handed out chunk by chunk under the idle timeout.

use super::UpstreamError;
use crate::text::error_chain;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;
use std::fmt;
use std::time::Duration;

/// A response body, handed out chunk by chunk as it arrives.
///
/// Ends with `Ok(None)`. A body that breaks off before its declared length (or, for chunked
/// transfer, before the final chunk) is an error; a body delimited only by the server closing
/// the connection cannot be told apart from a complete one, which is why the protocol layer
/// checks for the final flush packet.
pub struct BodyStream {
    body: Incoming,
    pub(super) url: String,
    idle_timeout: Duration,
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyStream")
            .field("url", &self.url)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl BodyStream {
    pub(super) fn new(response: Response<Incoming>, url: String, idle_timeout: Duration) -> Self {
        BodyStream {
            body: response.into_body(),
            url,
            idle_timeout,
        }
    }

    /// The next non-empty chunk, `None` at the end. Fails if the server sends nothing for the idle
    /// timeout or the body breaks off.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        loop {
            let frame = match tokio::time::timeout(self.idle_timeout, self.body.frame()).await {
                Err(_) => {
                    return Err(UpstreamError::IdleTimeout {
                        url: self.url.clone(),
                        timeout: self.idle_timeout,
                    })
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(error))) => {
                    return Err(UpstreamError::Body {
                        url: self.url.clone(),
                        detail: error_chain(&error),
                    })
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry nothing for git; empty data frames are skipped.
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
    }
}
