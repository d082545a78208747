//! The multipart-upload requests of the S3 backend: create, complete (with the destination's precondition
//! checked first, for servers that ignore it there) and abort. Streaming uploads (`upload.rs`) and multipart
//! copies use them.

use super::*;

impl S3Store {
    pub(super) async fn create_multipart(
        &self,
        key: &str,
        full: &str,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .set_storage_class(self.storage_class.clone())
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", key, e))?;
        out.upload_id.ok_or_else(|| {
            self.other(
                "CreateMultipartUpload",
                key,
                "the response carried no upload id".to_owned(),
            )
        })
    }

    pub(super) async fn complete_multipart(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        pre: &Precondition,
    ) -> Result<(), StoreError> {
        self.check_precondition(key, full, pre).await?;
        let (if_match, if_none_match) = conditions(pre);
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(parts)
            .set_if_match(if_match)
            .set_if_none_match(if_none_match)
            .send()
            .await;
        result
            .map(|_| ())
            .map_err(|e| self.write_error("CompleteMultipartUpload", key, pre, e))
    }

    /// Checks `pre` against the current object before a CompleteMultipartUpload (and before a multipart copy
    /// starts), or a CopyObject under `If-Match`. The request still carries the condition, which AWS enforces
    /// atomically; this check makes it hold (barring races) on servers that ignore the header on these operations,
    /// such as moto 5.2 (CopyObject, and If-Match on CompleteMultipartUpload).
    pub(super) async fn check_precondition(
        &self,
        key: &str,
        full: &str,
        pre: &Precondition,
    ) -> Result<(), StoreError> {
        if *pre == Precondition::None {
            return Ok(());
        }
        let current = match self.head(key, full).await {
            Ok((_, etag)) => Some(self.required_etag("HeadObject", key, etag)?),
            Err(StoreError::NotFound { .. }) => None,
            Err(other) => return Err(other),
        };
        let holds = match pre {
            Precondition::None => true,
            Precondition::IfNoneMatch => current.is_none(),
            Precondition::IfMatch(expected) => current
                .is_some_and(|current| current.trim_matches('"') == expected.trim_matches('"')),
        };
        match holds {
            true => Ok(()),
            false => Err(StoreError::PreconditionFailed {
                store: self.describe.clone(),
                key: key.to_owned(),
            }),
        }
    }

    /// Aborts a multipart upload; an upload that is already gone counts as aborted.
    pub(super) async fn abort_multipart(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(self.error("AbortMultipartUpload", key, e)),
        }
    }

    /// Aborts after a failure, keeping the original error; a failed abort is only logged.
    pub(super) async fn abort_after_error(&self, key: &str, full: &str, upload_id: &str) {
        if let Err(e) = self.abort_multipart(key, full, upload_id).await {
            tracing::warn!(error = %e, "could not abort a failed multipart upload; a bucket lifecycle rule for \
                incomplete multipart uploads will remove it");
        }
    }
}
