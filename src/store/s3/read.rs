//! Reads of the S3 backend (GetObject, whole or a range), tried again when the body breaks off.
//!
//! The SDK retries a request that fails before its response starts, but not a response body cut mid-way (a
//! connection reset, a proxy closing it): that surfaces while the body is read. A read is idempotent, so such an
//! attempt is made again, up to [`S3_MAX_ATTEMPTS`] attempts in all with short waits, each logged with its cause;
//! every other failure is final (the SDK already retried what could be retried).

use super::*;

/// Wait before the second attempt at a read whose body broke off; it doubles with each attempt.
const FIRST_READ_RETRY_DELAY: Duration = Duration::from_millis(100);

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

    /// One attempt at reading `len` bytes from `offset`: exactly those bytes or an error.
    pub(super) async fn get_range_once(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, ReadFailure> {
        let full = self.full_key(key)?;
        let range_err = |reason| StoreError::range(&self.describe, key, offset, len, reason);
        if len == 0 {
            // HTTP cannot express an empty range: check that the offset is within the object instead.
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
                .await
                .map_err(|e| self.error("HeadObject", key, e))?;
            let size = u64::try_from(out.content_length.unwrap_or(0)).unwrap_or(0);
            return match offset <= size {
                true => Ok(Bytes::new()),
                false => Err(range_err(format!("the object has only {size} bytes")).into()),
            };
        }
        let end = offset
            .checked_add(len - 1)
            .ok_or_else(|| range_err("the range overflows".to_owned()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .range(format!("bytes={offset}-{end}"));
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Err(range_err(
                    "the range starts beyond the end of the object (HTTP 416)".to_owned(),
                )
                .into());
            }
            Err(e) => return Err(self.error("GetObject", key, e).into()),
        };
        if out.content_range.is_none() {
            return Err(range_err("the server ignored the Range header".to_owned()).into());
        }
        if out.content_length != i64::try_from(len).ok() {
            return Err(range_err(match out.content_length {
                Some(n) if n >= 0 && n.unsigned_abs() < len => {
                    format!("the object is too short: only {n} bytes from the offset")
                }
                Some(n) => format!("the server answered with {n} bytes"),
                None => "the server did not say how many bytes it sends".to_owned(),
            })
            .into());
        }
        // Read at most `len` bytes whatever the server sends. A body that comes in one chunk is returned as it
        // came; from its second chunk on, a body is copied into one buffer of the length this read asked for (not
        // a length the server declared) as it arrives, so a read holds its length once, plus one chunk, rather
        // than all its chunks and then their concatenation.
        let mut body = out.body;
        let mut first = None;
        let mut joined = Vec::new();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| ReadFailure::BodyCut(self.other("GetObject", key, error_chain(&e))))?;
            received += chunk.len() as u64;
            if received > len {
                return Err(
                    range_err("the server sent more bytes than requested".to_owned()).into(),
                );
            }
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                held => {
                    if let Some(held) = held {
                        joined.reserve_exact(len as usize);
                        joined.extend_from_slice(&held);
                    }
                    joined.extend_from_slice(&chunk);
                }
            }
        }
        if received != len {
            return Err(ReadFailure::BodyCut(range_err(format!(
                "the response ended after {received} bytes"
            ))));
        }
        Ok(first.unwrap_or_else(|| Bytes::from(joined)))
    }
}
