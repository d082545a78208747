//! Reads of the S3 backend (GetObject, whole or a range), tried again when the body breaks off.
//!
//! The SDK retries a request that fails before its response starts, but not a response body cut mid-way (a
//! connection reset, a proxy closing it): that surfaces while the body is read. A read is idempotent, so a whole
//! object's read is made again, up to [`S3_MAX_ATTEMPTS`] attempts in all with short waits, each logged with its
//! cause; a range is read as a stream (`s3/stream.rs`), which goes on from where its body stopped under the same
//! policy. Every other failure is final (the SDK already retried what could be retried).

use super::stream::S3RangeStream;
use super::*;
use crate::store::RangeStream;

/// Wait before the second attempt at a read whose body broke off; it doubles with each attempt.
pub(super) const FIRST_READ_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How one attempt at a read failed.
pub(super) enum ReadFailure {
    /// The response began but its body broke off or ended early: reading again may succeed.
    BodyCut(StoreError),
    /// Anything else.
    Final(StoreError),
}

impl From<StoreError> for ReadFailure {
    fn from(error: StoreError) -> Self {
        ReadFailure::Final(error)
    }
}

impl S3Store {
    /// Runs `attempt` until it succeeds, fails for good, or its body broke off [`S3_MAX_ATTEMPTS`] times.
    pub(super) async fn read_again<T, F, Fut>(&self, key: &str, attempt: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ReadFailure>>,
    {
        let mut delay = FIRST_READ_RETRY_DELAY;
        let mut attempted = 1;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(ReadFailure::BodyCut(cause)) if attempted < S3_MAX_ATTEMPTS => {
                    tracing::warn!(
                        store = %self.describe,
                        key,
                        attempt = attempted,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        cause = %cause,
                        "the response broke off; reading again"
                    );
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempted += 1;
                }
                Err(ReadFailure::BodyCut(cause) | ReadFailure::Final(cause)) => return Err(cause),
            }
        }
    }

    /// One attempt at reading a whole object; `None` when there is none.
    pub(super) async fn get_once(&self, key: &str) -> Result<Option<Object>, ReadFailure> {
        let full = self.full_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match self.error("GetObject", key, e) {
                    StoreError::NotFound { .. } => Ok(None),
                    other => Err(other.into()),
                }
            }
        };
        let etag = self.required_etag("GetObject", key, out.e_tag)?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ReadFailure::BodyCut(self.other("GetObject", key, error_chain(&e))))?;
        Ok(Some(Object {
            body: body.into_bytes(),
            etag,
        }))
    }

    /// Reads `len` bytes from `offset`: exactly those bytes or an error. A range is read as a stream
    /// (`s3/stream.rs`), which resumes a body that broke off from where it stopped.
    pub(super) async fn read_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, StoreError> {
        let mut stream = self.stream_range(key, offset, len).await?;
        // A body that comes in one chunk is returned as it came; from its second chunk on, a body is copied into
        // one buffer of the length this read asked for (not a length the server declared) as it arrives, so a
        // read holds its length once, plus one chunk, rather than all its chunks and then their concatenation.
        let mut first = None;
        let mut joined = Vec::new();
        while let Some(chunk) = stream.next_chunk().await? {
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                held => {
                    if let Some(held) = held {
                        joined.reserve_exact(usize::try_from(len).unwrap_or(0));
                        joined.extend_from_slice(&held);
                    }
                    joined.extend_from_slice(&chunk);
                }
            }
        }
        Ok(first.unwrap_or_else(|| Bytes::from(joined)))
    }

    /// The size and ETag of the object at `full` (named `key` in errors), from a HeadObject.
    pub(super) async fn head(
        &self,
        key: &str,
        full: &str,
    ) -> Result<(u64, Option<String>), StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
            .map_err(|e| self.error("HeadObject", key, e))?;
        let size = u64::try_from(out.content_length.unwrap_or(0)).unwrap_or(0);
        Ok((size, out.e_tag))
    }

    /// Opens a stream of `len` bytes from `offset`. HTTP cannot express an empty range: for `len` 0 the offset is
    /// checked against the object's size with a HeadObject, and the stream is empty.
    pub(super) async fn stream_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn RangeStream>, StoreError> {
        let full = self.full_key(key)?;
        if len > 0 {
            let stream = S3RangeStream::open(self.clone(), key, full, offset, len).await?;
            return Ok(Box::new(stream));
        }
        let (size, _) = self.head(key, &full).await?;
        match offset <= size {
            true => Ok(Box::new(Empty)),
            false => Err(StoreError::range(
                &self.describe,
                key,
                offset,
                len,
                format!("the object has only {size} bytes"),
            )),
        }
    }
}

/// The stream of an empty range.
struct Empty;

#[async_trait]
impl RangeStream for Empty {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(None)
    }
}
