//! A streaming upload to S3: parts of the caller's size, growing ([`part_size`]), one uploading on a tokio task
//! while the next fills, completed or aborted as a multipart upload; an upload that never fills a part is a single
//! PutObject.

use super::{part_size, S3Store, MAX_OBJECT_SIZE};
use crate::store::{Precondition, Store, StoreError, Upload};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use bytes::BytesMut;
use tokio::task::JoinHandle;

/// A streaming upload: a PutObject if it stays below one part, else a multipart upload.
pub(super) struct S3Upload {
    store: S3Store,
    key: String,
    full_key: String,
    /// The size of the first parts ([`part_size`]).
    first_part: u64,
    /// The part being filled.
    buf: BytesMut,
    /// Number of the part being filled (1-based).
    part_number: u32,
    /// Set once the first full part is sent.
    upload_id: Option<String>,
    /// The CreateMultipartUpload request while it runs. It runs on a task held here, so that a caller that stops
    /// waiting (a deadline drops the write) cannot lose the id of an upload the store has already created:
    /// `abort` and `drop` wait for it and abort that upload too.
    creating: Option<JoinHandle<Result<String, StoreError>>>,
    /// The previous part, uploading in the background.
    in_flight: Option<JoinHandle<Result<CompletedPart, StoreError>>>,
    parts: Vec<CompletedPart>,
    written: u64,
    /// Set when a part failed: the upload can then only be aborted (continuing would leave a gap in the parts).
    failed: bool,
    /// Set once `complete` or `abort` has cleaned up: an upload dropped before that is aborted by `drop`.
    finished: bool,
}

impl S3Upload {
    /// An upload of `key` (bucket key `full_key`) whose first parts hold `first_part` bytes; nothing is sent until
    /// the first part is full.
    pub(super) fn new(store: S3Store, (key, full_key): (&str, String), first_part: u64) -> Self {
        S3Upload {
            store,
            key: key.to_owned(),
            full_key,
            first_part,
            buf: BytesMut::new(),
            part_number: 1,
            upload_id: None,
            creating: None,
            in_flight: None,
            parts: Vec::new(),
            written: 0,
            failed: false,
            finished: false,
        }
    }

    /// Starts uploading the filled buffer as the next part, after the previous part finished.
    async fn send_part(&mut self) -> Result<(), StoreError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let (store, key, full) =
                    (self.store.clone(), self.key.clone(), self.full_key.clone());
                let creating = self.creating.get_or_insert_with(|| {
                    tokio::spawn(async move { store.create_multipart(&key, &full).await })
                });
                let created = creating.await;
                self.creating = None;
                let id = created.map_err(|e| self.join_error("CreateMultipartUpload", e))??;
                self.upload_id = Some(id.clone());
                id
            }
        };
        self.wait_in_flight().await?;
        let body = self.buf.split().freeze();
        // `part_number` ≤ MAX_PARTS: `write` caps the total size at what MAX_PARTS parts hold.
        let part_number = i32::try_from(self.part_number).unwrap_or(i32::MAX);
        self.part_number += 1;
        let (store, key, full) = (self.store.clone(), self.key.clone(), self.full_key.clone());
        self.in_flight = Some(tokio::spawn(async move {
            let out = store
                .client
                .upload_part()
                .bucket(&store.bucket)
                .key(&full)
                .upload_id(upload_id)
                .part_number(part_number)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| store.error("UploadPart", &key, e))?;
            let etag = store.required_etag("UploadPart", &key, out.e_tag)?;
            Ok(CompletedPart::builder()
                .e_tag(etag)
                .set_checksum_crc32(out.checksum_crc32)
                .set_checksum_crc32_c(out.checksum_crc32_c)
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme)
                .set_checksum_sha1(out.checksum_sha1)
                .set_checksum_sha256(out.checksum_sha256)
                .part_number(part_number)
                .build())
        }));
        Ok(())
    }

    fn check_not_failed(&self) -> Result<(), StoreError> {
        match self.failed {
            false => Ok(()),
            true => Err(self.store.other(
                "UploadPart",
                &self.key,
                "an earlier part of this upload failed".to_owned(),
            )),
        }
    }

    /// Waits for the part uploading in the background. The task stays held until it has finished, so that a
    /// caller that stops waiting leaves it for `abort` to stop, never running on unseen.
    async fn wait_in_flight(&mut self) -> Result<(), StoreError> {
        if let Some(task) = self.in_flight.as_mut() {
            let joined = task.await;
            self.in_flight = None;
            let part = joined.map_err(|e| self.join_error("UploadPart", e))??;
            self.parts.push(part);
        }
        Ok(())
    }

    fn join_error(&self, operation: &'static str, e: tokio::task::JoinError) -> StoreError {
        self.store.other(
            operation,
            &self.key,
            format!("background request failed: {e}"),
        )
    }

    /// The upload's id, waiting for a CreateMultipartUpload still running: an upload the store created must be
    /// aborted even when its creator stopped waiting for the answer.
    async fn created_upload_id(&mut self) -> Option<String> {
        if let Some(task) = self.creating.take() {
            if let Ok(Ok(id)) = task.await {
                self.upload_id = Some(id);
            }
        }
        self.upload_id.take()
    }

    async fn finish(&mut self, pre: &Precondition) -> Result<(), StoreError> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = self.buf.split().freeze();
            return self.store.put(&self.key, body, pre.clone()).await.map(drop);
        };
        if !self.buf.is_empty() {
            self.send_part().await?;
        }
        self.wait_in_flight().await?;
        let parts = std::mem::take(&mut self.parts);
        self.store
            .complete_multipart(&self.key, &self.full_key, &upload_id, parts, pre)
            .await
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.check_not_failed()?;
        if self.written.saturating_add(data.len() as u64) > MAX_OBJECT_SIZE {
            return Err(StoreError::TooLarge {
                store: self.store.describe.clone(),
                key: self.key.clone(),
                limit: MAX_OBJECT_SIZE,
            });
        }
        let mut rest = data;
        while !rest.is_empty() {
            let part = part_size(self.first_part, self.part_number);
            if self.buf.is_empty() {
                // One allocation per part instead of repeated doubling; the part size is ours, not the remote's.
                self.buf
                    .reserve(usize::try_from(part).unwrap_or(rest.len()));
            }
            let room = part - self.buf.len() as u64;
            let take = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.buf.extend_from_slice(&rest[..take]);
            self.written += take as u64;
            rest = &rest[take..];
            if self.buf.len() as u64 == part {
                if let Err(e) = self.send_part().await {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }

    async fn complete(mut self: Box<Self>, pre: Precondition) -> Result<(), StoreError> {
        let result = match self.check_not_failed() {
            Ok(()) => self.finish(&pre).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            if let Some(task) = self.in_flight.take() {
                task.abort();
            }
            if let Some(upload_id) = self.created_upload_id().await {
                self.store
                    .abort_after_error(&self.key, &self.full_key, &upload_id)
                    .await;
            }
        }
        // Only now: a caller that stops waiting halfway leaves the upload to `drop`, which aborts it.
        self.finished = true;
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.finished = true;
        if let Some(task) = self.in_flight.take() {
            task.abort();
            // Wait until the part is no longer being sent: a part arriving after the abort could linger.
            let _ = task.await;
        }
        match self.created_upload_id().await {
            Some(upload_id) => {
                self.store
                    .abort_multipart(&self.key, &self.full_key, &upload_id)
                    .await
            }
            None => Ok(()),
        }
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
        let (creating, upload_id) = (self.creating.take(), self.upload_id.take());
        if self.finished || (creating.is_none() && upload_id.is_none()) {
            return;
        }
        tracing::warn!(store = %self.store.describe, key = %self.key,
            "multipart upload dropped without complete or abort; aborting it in the background");
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, key, full) = (self.store.clone(), self.key.clone(), self.full_key.clone());
            runtime.spawn(async move {
                let upload_id = match creating {
                    Some(task) => task.await.ok().and_then(Result::ok),
                    None => upload_id,
                };
                if let Some(upload_id) = upload_id {
                    store.abort_after_error(&key, &full, &upload_id).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
