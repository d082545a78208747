//! The S3 backend (AWS or any S3-compatible server) on aws-sdk-s3.
//!
//! Configuration comes from the AWS default chain (environment, `AWS_ENDPOINT_URL_S3`, profiles, IAM roles) with
//! [`S3Options`] overriding endpoint, path style and region; retries are the SDK's, tuned by [`retry_config`], and a
//! read whose body breaks off is read again (`s3/read.rs`), a ranged one from where it stopped (`s3/stream.rs`).
//! Conditional writes map [`Precondition`] to `If-None-Match: *` / `If-Match: <etag>` on PutObject, CopyObject and
//! CompleteMultipartUpload, so their atomicity is exactly the server's (see docs/design.md: not every S3-compatible
//! store honours them). CompleteMultipartUpload, and CopyObject under `If-Match`, also check the destination with a
//! HeadObject first, which makes the condition hold, barring races, on servers that ignore it there (moto 5.2
//! does); a single CopyObject under `If-None-Match` does not (see [`Store::copy`]).
//!
//! Streaming uploads use multipart uploads whose part size follows [`part_size`]: the caller's (8 MiB at least)
//! at first, doubling every 1,000 parts, so 10,000 parts reach S3's 5 TiB object limit while small objects keep
//! small parts. One part
//! uploads on a tokio task while the next fills, so at most two part buffers exist. An upload that never fills a
//! part is sent as a single PutObject. Part checksums are left to the SDK's defaults (CRC32 per part on AWS); a
//! store that rejects them can be used with `AWS_REQUEST_CHECKSUM_CALCULATION=when_required`. The upload itself
//! is in `s3/upload.rs`.

use super::{
    validate_key, validate_prefix, Listed, Object, PendingUpload, Precondition, RangeStream,
    S3Options, Store, StoreError, Upload, FIRST_PART_SIZE,
};
use crate::text::error_chain;
use async_trait::async_trait;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, StorageClass};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use upload::S3Upload;

/// S3's limit on the number of parts of a multipart upload.
const MAX_PARTS: u32 = 10_000;

/// The part size doubles after this many parts.
const PARTS_PER_DOUBLING: u32 = 1_000;

/// S3's limit on the size of one object (5 TiB).
const MAX_OBJECT_SIZE: u64 = 5 << 40;

/// The largest object a single CopyObject may copy (5 GiB); larger copies use UploadPartCopy.
const MAX_SINGLE_COPY: u64 = 5 << 30;

/// Part size of multipart copies: 5 TiB / 1 GiB = 5,120 parts, within [`MAX_PARTS`].
const COPY_PART_SIZE: u64 = 1 << 30;

/// S3's limit on the size of one part (5 GiB).
const MAX_PART_SIZE: u64 = 5 << 30;

/// Size of part `part_number` (1-based) of a streaming upload whose first parts hold `first` bytes (between
/// [`FIRST_PART_SIZE`] and [`MAX_PART_SIZE`]): `first` for parts 1-1,000, doubling every 1,000 parts, at most
/// [`MAX_PART_SIZE`]. Parts 1..=[`MAX_PARTS`] add up to more than S3's 5 TiB object limit, every size is within
/// S3's 5 MiB-5 GiB part limits, and an upload of `n` bytes buffers parts of at most about
/// `max(first, n / 1,000)` bytes.
fn part_size(first: u64, part_number: u32) -> u64 {
    let doublings = (part_number.saturating_sub(1) / PARTS_PER_DOUBLING).min(9);
    (first << doublings).min(MAX_PART_SIZE)
}

/// Attempts of one S3 request, the first included (the SDK's default is 3). A run makes few but large requests
/// (parts of up to 4 GiB) over minutes, so a few more attempts ride out a longer outage; every request the mirror
/// makes is idempotent or conditional, so a repeated one cannot do harm.
const S3_MAX_ATTEMPTS: u32 = 6;

/// The SDK's retry settings for S3: standard mode (exponential backoff with full jitter, throttling and 5xx and
/// connection errors retried, a client-side retry quota), [`S3_MAX_ATTEMPTS`] attempts, waits from 1 s up to
/// 20 s. `AWS_MAX_ATTEMPTS` or `AWS_RETRY_MODE` in the environment replace these with the SDK's own reading.
fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(S3_MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_secs(1))
        .with_max_backoff(Duration::from_secs(20))
}

/// A [`Store`] on an S3 bucket below a key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or the root prefix ending in `/`.
    prefix: String,
    describe: String,
    storage_class: Option<StorageClass>,
    single_copy_max: u64,
    copy_part_size: u64,
    requests: Arc<AtomicU64>,
}

/// Counts every HTTP request the SDK transmits (retries included), for the per-run request report.
#[derive(Debug)]
struct RequestCounter(Arc<AtomicU64>);

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl S3Store {
    /// Builds a client from the AWS default configuration chain plus `opts` for `bucket` and the root `prefix`
    /// (slashes at either end are ignored). No request is made.
    pub async fn connect(bucket: &str, prefix: &str, opts: &S3Options) -> Result<Self, StoreError> {
        let target = format!("s3://{bucket}/{prefix}")
            .trim_end_matches('/')
            .to_owned();
        let invalid = |reason: String| StoreError::InvalidTarget {
            target: target.clone(),
            reason,
        };
        if bucket.is_empty() || bucket.contains('/') {
            return Err(invalid("the bucket name is missing or invalid".to_owned()));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            validate_key(prefix).map_err(|e| invalid(format!("bad prefix: {e}")))?;
        }
        let region = RegionProviderChain::first_try(opts.region.clone().map(Region::new))
            .or_default_provider()
            .or_else(Region::from_static("us-east-1"));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        let retry_set_by_user = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if !retry_set_by_user {
            loader = loader.retry_config(retry_config());
        }
        if let Some(url) = &opts.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk_config = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&sdk_config);
        if opts.force_path_style {
            config = config.force_path_style(true);
        }
        let requests = Arc::new(AtomicU64::new(0));
        config = config.interceptor(RequestCounter(requests.clone()));
        let (prefix, describe) = match prefix {
            "" => (String::new(), format!("s3://{bucket}")),
            p => (format!("{p}/"), format!("s3://{bucket}/{p}")),
        };
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_owned(),
            prefix,
            describe,
            storage_class: opts.storage_class.as_deref().map(StorageClass::from),
            single_copy_max: MAX_SINGLE_COPY,
            copy_part_size: COPY_PART_SIZE,
            requests,
        })
    }

    /// Lowers the size above which [`Store::copy`] switches from CopyObject to a multipart copy, and that copy's
    /// part size (defaults 5 GiB and 1 GiB), for servers with lower limits. The part size must be at least 5 MiB
    /// and both at most 5 GiB on AWS.
    pub fn with_copy_limits(mut self, single_copy_max: u64, copy_part_size: u64) -> Self {
        self.single_copy_max = single_copy_max;
        self.copy_part_size = copy_part_size.max(1);
        self
    }

    /// The bucket's key for a (validated) store key.
    fn full_key(&self, key: &str) -> Result<String, StoreError> {
        validate_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// Translates an SDK error of operation `op` on `key` into a [`StoreError`].
    fn error<E>(&self, op: &'static str, key: &str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let (store, key) = (self.describe.clone(), key.to_owned());
        match (status, err.code()) {
            (_, Some("NoSuchBucket")) => StoreError::NoSuchBucket {
                store,
                bucket: self.bucket.clone(),
            },
            (Some(412), _) | (_, Some("PreconditionFailed")) => {
                StoreError::PreconditionFailed { store, key }
            }
            (Some(409), _) | (_, Some("ConditionalRequestConflict")) => {
                StoreError::Conflict { store, key }
            }
            (_, Some("NoSuchKey")) | (Some(404), None | Some("NotFound")) => {
                StoreError::NotFound { store, key }
            }
            _ => StoreError::S3 {
                store,
                key,
                op,
                message: render(&err),
            },
        }
    }

    /// Like [`S3Store::error`] for a conditional write: with `If-Match`, AWS answers 404 when the key is absent,
    /// which for the caller is a failed precondition.
    fn write_error<E>(
        &self,
        op: &'static str,
        key: &str,
        pre: &Precondition,
        err: SdkError<E>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match (self.error(op, key, err), pre) {
            (StoreError::NotFound { store, key }, Precondition::IfMatch(_)) => {
                StoreError::PreconditionFailed { store, key }
            }
            (e, _) => e,
        }
    }

    fn other(&self, op: &'static str, key: &str, message: String) -> StoreError {
        StoreError::S3 {
            store: self.describe.clone(),
            key: key.to_owned(),
            op,
            message,
        }
    }

    fn required_etag(
        &self,
        op: &'static str,
        key: &str,
        etag: Option<String>,
    ) -> Result<String, StoreError> {
        etag.ok_or_else(|| self.other(op, key, "the response carried no ETag".to_owned()))
    }

    /// `CopySource` value: bucket and percent-encoded key.
    fn copy_source(&self, full: &str) -> String {
        format!("{}/{}", self.bucket, percent_encode(full))
    }

    /// Copies an object larger than a single CopyObject allows, part by part; every part requires the source to
    /// still have `source_etag`, so a source replaced meanwhile fails the copy instead of mixing versions.
    async fn copy_multipart(
        &self,
        (from, from_full, source_etag): (&str, &str, &str),
        (to, to_full): (&str, &str),
        size: u64,
        pre: &Precondition,
    ) -> Result<(), StoreError> {
        if size.div_ceil(self.copy_part_size) > u64::from(MAX_PARTS) {
            return Err(StoreError::TooLarge {
                store: self.describe.clone(),
                key: from.to_owned(),
                limit: self.copy_part_size * u64::from(MAX_PARTS),
            });
        }
        let upload_id = self.create_multipart(to, to_full).await?;
        let source = self.copy_source(from_full);
        let mut parts = Vec::new();
        let mut copied = async {
            let (mut offset, mut part_number) = (0, 0);
            while offset < size {
                part_number += 1;
                let end = size.min(offset.saturating_add(self.copy_part_size)) - 1;
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(to_full)
                    .upload_id(&upload_id)
                    .part_number(part_number)
                    .copy_source(&source)
                    .copy_source_range(format!("bytes={offset}-{end}"))
                    .copy_source_if_match(source_etag)
                    .send()
                    .await
                    .map_err(|e| self.error("UploadPartCopy", from, e))?;
                let etag = out.copy_part_result.and_then(|r| r.e_tag);
                let etag = self.required_etag("UploadPartCopy", from, etag)?;
                parts.push(
                    CompletedPart::builder()
                        .e_tag(etag)
                        .part_number(part_number)
                        .build(),
                );
                offset = end + 1;
            }
            Ok(())
        }
        .await;
        if copied.is_ok() {
            copied = self
                .complete_multipart(to, to_full, &upload_id, parts, pre)
                .await;
        }
        if copied.is_err() {
            self.abort_after_error(to, to_full, &upload_id).await;
        }
        copied
    }
}

/// The `If-Match` and `If-None-Match` header values for a precondition.
fn conditions(pre: &Precondition) -> (Option<String>, Option<String>) {
    match pre {
        Precondition::None => (None, None),
        Precondition::IfNoneMatch => (None, Some("*".to_owned())),
        Precondition::IfMatch(etag) => (Some(etag.clone()), None),
    }
}

/// An SDK error as text: the service's code and message when it sent them, else the chain of causes (transport
/// errors, timeouts, credential problems).
fn render<E>(err: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), status) {
        (Some(code), Some(status)) => format!(
            "{code}: {} (HTTP {status})",
            err.message().unwrap_or("no message")
        ),
        (None, Some(status)) => format!("HTTP {status}: {}", error_chain(err)),
        _ => error_chain(err),
    }
}

/// Percent-encodes everything but unreserved characters and `/`, as `CopySource` requires.
fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl Store for S3Store {
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.read_again(key, || self.get_once(key)).await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.read_range(key, offset, len).await
    }

    async fn get_stream(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn RangeStream>, StoreError> {
        self.stream_range(key, offset, len).await
    }

    async fn put(&self, key: &str, body: Bytes, pre: Precondition) -> Result<String, StoreError> {
        let full = self.full_key(key)?;
        let (if_match, if_none_match) = conditions(&pre);
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(ByteStream::from(body))
            .set_storage_class(self.storage_class.clone())
            .set_if_match(if_match)
            .set_if_none_match(if_none_match)
            .send()
            .await
            .map_err(|e| self.write_error("PutObject", key, &pre, e))?;
        self.required_etag("PutObject", key, out.e_tag)
    }

    async fn copy(
        &self,
        from: &str,
        to: &str,
        len: u64,
        pre: Precondition,
    ) -> Result<(), StoreError> {
        let (from_full, to_full) = (self.full_key(from)?, self.full_key(to)?);
        if len > self.single_copy_max {
            // A multipart copy names the source's size in its ranges and pins its version by ETag: read both.
            let (size, etag) = self.head(from, &from_full).await?;
            if size > self.single_copy_max {
                self.check_precondition(to, &to_full, &pre).await?;
                let etag = self.required_etag("HeadObject", from, etag)?;
                return self
                    .copy_multipart((from, &from_full, &etag), (to, &to_full), size, &pre)
                    .await;
            }
        }
        // If-None-Match is left to the server (see `Store::copy`); If-Match is checked first as well.
        if let Precondition::IfMatch(_) = pre {
            self.check_precondition(to, &to_full, &pre).await?;
        }
        let (if_match, if_none_match) = conditions(&pre);
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(&to_full)
            .copy_source(self.copy_source(&from_full))
            .set_storage_class(self.storage_class.clone())
            .set_if_match(if_match)
            .set_if_none_match(if_none_match)
            .send()
            .await
            .map_err(|e| match self.error("CopyObject", to, e) {
                // A missing source (with If-Match, the check just found the destination).
                StoreError::NotFound { store, .. } => StoreError::NotFound {
                    store,
                    key: from.to_owned(),
                },
                other => other,
            })?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let full = self.full_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.error("DeleteObject", key, e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        validate_prefix(prefix)?;
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(Listed {
                    key: key.to_owned(),
                    size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                    last_modified: object
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok())
                        .unwrap_or(UNIX_EPOCH),
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => {
                    if token.as_deref() == Some(next) {
                        return Err(self.other(
                            "ListObjectsV2",
                            prefix,
                            "the server repeated a continuation token".to_owned(),
                        ));
                    }
                    token = Some(next.to_owned());
                }
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        validate_prefix(prefix)?;
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut pending = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_key_marker(markers.0.clone())
                .set_upload_id_marker(markers.1.clone())
                .send()
                .await
                .map_err(|e| self.error("ListMultipartUploads", prefix, e))?;
            for upload in page.uploads() {
                let (Some(full), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let Some(key) = full
                    .strip_prefix(&self.prefix)
                    .filter(|k| k.starts_with(prefix))
                else {
                    continue;
                };
                pending.push(PendingUpload {
                    key: key.to_owned(),
                    id: id.to_owned(),
                    started: upload
                        .initiated()
                        .and_then(|t| SystemTime::try_from(*t).ok())
                        .unwrap_or(UNIX_EPOCH),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            let next = (
                page.next_key_marker().map(str::to_owned),
                page.next_upload_id_marker().map(str::to_owned),
            );
            if next.0.is_none() || next == markers {
                return Err(self.other(
                    "ListMultipartUploads",
                    prefix,
                    "the server answered a truncated page without new markers".to_owned(),
                ));
            }
            markers = next;
        }
        Ok(pending)
    }

    async fn discard_upload(&self, upload: &PendingUpload) -> Result<(), StoreError> {
        let full = self.full_key(&upload.key)?;
        self.abort_multipart(&upload.key, &full, &upload.id).await
    }

    async fn create_upload(
        &self,
        key: &str,
        part_size: u64,
    ) -> Result<Box<dyn Upload>, StoreError> {
        Ok(Box::new(S3Upload::new(
            self.clone(),
            (key, self.full_key(key)?),
            part_size.clamp(FIRST_PART_SIZE, MAX_PART_SIZE),
        )))
    }
}

mod multipart;
mod read;
mod stream;
mod upload;

#[cfg(test)]
mod tests;
