//! Streaming reads of the S3 backend: one ranged GetObject whose body is handed out as the caller pulls it, and a
//! new ranged GET from the first byte not yet handed out when the body breaks off.
//!
//! Every answer is checked before its body is used: status 206 with a `Content-Range` naming exactly the bytes
//! asked for and a `Content-Length` that matches (an object too short for the range, a server that ignores the
//! `Range` header or answers another range, are [`StoreError::Range`] errors), and a body never yields more than
//! it announced. A body that breaks off (a reset, a proxy closing the connection, fewer bytes than announced) is
//! resumed after a short wait that doubles each time; an attempt that delivered at least [`RESUME_PROGRESS`]
//! bytes starts the count of attempts again, so a long stream survives occasional cuts while one that keeps
//! breaking off without progress fails after [`S3_MAX_ATTEMPTS`] attempts, as a ranged read does.

use super::read::FIRST_READ_RETRY_DELAY;
use super::*;
use crate::store::RangeStream;

/// An attempt that delivered at least this many bytes before breaking off counts as progress: the attempts of
/// the stream are counted again from one.
const RESUME_PROGRESS: u64 = 1 << 20;

/// What the checks of a ranged answer found wrong.
pub(super) struct BadRange(pub(super) String);

/// Checks a ranged answer for `len` bytes at `offset` (`len` ≥ 1): its `Content-Range` and `Content-Length`.
pub(super) fn check_range_answer(
    content_range: Option<&str>,
    content_length: Option<i64>,
    offset: u64,
    len: u64,
) -> Result<(), BadRange> {
    let last = offset + (len - 1);
    let Some(value) = content_range else {
        return Err(BadRange("the server ignored the Range header".to_owned()));
    };
    let parsed = parse_content_range(value);
    match parsed {
        Some((first, end, _)) if (first, end) == (offset, last) => {}
        // AWS answers the bytes that exist when the object ends inside the range.
        Some((first, end, Some(size))) if first == offset && end < last && end + 1 == size => {
            return Err(BadRange(format!(
                "the object is too short: only {} bytes from the offset",
                size - offset
            )))
        }
        _ => {
            return Err(BadRange(format!(
                "the server answered Content-Range {value:?} to a request for bytes {offset}-{last}"
            )))
        }
    }
    match content_length {
        Some(n) if n >= 0 && n.unsigned_abs() == len => Ok(()),
        Some(n) => Err(BadRange(format!(
            "the server announced {n} bytes for a range of {len}"
        ))),
        None => Err(BadRange(
            "the server did not say how many bytes it sends".to_owned(),
        )),
    }
}

/// `bytes FIRST-LAST/SIZE` (SIZE may be `*`): the first and last byte and the size, if well formed.
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let (range, size) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (first, last) = (number(first)?, number(last)?);
    let size = match size {
        "*" => None,
        s => Some(number(s)?),
    };
    (first <= last && size.is_none_or(|size| last < size)).then_some((first, last, size))
}

/// A ranged read of an S3 object handed out as it arrives.
pub(super) struct S3RangeStream {
    store: S3Store,
    key: String,
    full: String,
    /// The first byte not handed out yet, and the end of the range (exclusive).
    offset: u64,
    end: u64,
    /// The body of the current attempt, if one is open.
    body: Option<ByteStream>,
    /// Attempts made since the last one that delivered [`RESUME_PROGRESS`] bytes, the current one included.
    attempts: u32,
    /// Bytes the current attempt delivered.
    delivered: u64,
    /// Wait before the next attempt.
    delay: Duration,
}

impl S3RangeStream {
    /// Opens the stream of `len` bytes (≥ 1) at `offset` of `key` (bucket key `full`): sends the first GET.
    pub(super) async fn open(
        store: S3Store,
        key: &str,
        full: String,
        offset: u64,
        len: u64,
    ) -> Result<Self, StoreError> {
        let end = offset.checked_add(len).ok_or_else(|| {
            StoreError::range(
                &store.describe,
                key,
                offset,
                len,
                "the range overflows".to_owned(),
            )
        })?;
        let body = store.ranged_get(key, &full, offset, end).await?;
        Ok(S3RangeStream {
            store,
            key: key.to_owned(),
            full,
            offset,
            end,
            body: Some(body),
            attempts: 1,
            delivered: 0,
            delay: FIRST_READ_RETRY_DELAY,
        })
    }

    fn range_error(&self, reason: String) -> StoreError {
        StoreError::range(
            &self.store.describe,
            &self.key,
            self.offset,
            self.end - self.offset,
            reason,
        )
    }

    /// After the current attempt broke off because of `cause`: waits, unless the attempts are used up (then
    /// `cause` is the stream's error).
    async fn before_resuming(&mut self, cause: StoreError) -> Result<(), StoreError> {
        if self.delivered >= RESUME_PROGRESS {
            self.attempts = 1;
            self.delay = FIRST_READ_RETRY_DELAY;
        }
        if self.attempts >= S3_MAX_ATTEMPTS {
            return Err(cause);
        }
        tracing::warn!(
            store = %self.store.describe,
            key = %self.key,
            offset = self.offset,
            attempt = self.attempts,
            delay_ms = u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
            cause = %cause,
            "the response broke off; reading on from where it stopped"
        );
        tokio::time::sleep(self.delay).await;
        self.delay *= 2;
        self.attempts += 1;
        Ok(())
    }
}

#[async_trait]
impl RangeStream for S3RangeStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        loop {
            if self.offset == self.end {
                self.body = None;
                return Ok(None);
            }
            let body = match &mut self.body {
                Some(body) => body,
                None => {
                    let body = self
                        .store
                        .ranged_get(&self.key, &self.full, self.offset, self.end)
                        .await?;
                    self.delivered = 0;
                    self.body.insert(body)
                }
            };
            let cause = match body.next().await {
                Some(Ok(chunk)) if chunk.len() as u64 > self.end - self.offset => {
                    self.body = None;
                    return Err(
                        self.range_error("the server sent more bytes than it announced".to_owned())
                    );
                }
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    self.offset += chunk.len() as u64;
                    self.delivered += chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                Some(Err(e)) => self.store.other("GetObject", &self.key, error_chain(&e)),
                None => self.range_error(format!(
                    "the response ended {} bytes early",
                    self.end - self.offset
                )),
            };
            self.body = None;
            self.before_resuming(cause).await?;
        }
    }
}

impl S3Store {
    /// Sends a GET of bytes `offset..end` (`end` > `offset`) of `key` and checks the answer's headers.
    async fn ranged_get(
        &self,
        key: &str,
        full: &str,
        offset: u64,
        end: u64,
    ) -> Result<ByteStream, StoreError> {
        let len = end - offset;
        let range_err = |reason| StoreError::range(&self.describe, key, offset, len, reason);
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(full)
            .range(format!("bytes={offset}-{}", end - 1));
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Err(range_err(
                    "the range starts beyond the end of the object (HTTP 416)".to_owned(),
                ));
            }
            Err(e) => return Err(self.error("GetObject", key, e)),
        };
        check_range_answer(
            out.content_range.as_deref(),
            out.content_length,
            offset,
            len,
        )
        .map_err(|BadRange(reason)| range_err(reason))?;
        Ok(out.body)
    }
}
