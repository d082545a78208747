//! The AWS services the function calls besides S3: Secrets Manager (source tokens) and SQS (fan-out).
//!
//! [`Services`] is what the handler needs from them, so that its logic is tested with a fake; [`AwsServices`] is
//! the real thing, with SDK clients made on first use from the default configuration chain, so the SDK's standard
//! endpoint settings apply (`AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL`) and a
//! test points them at moto. An invocation that names no secret and does not fan out makes no client at all.

use std::future::Future;

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tokio::sync::OnceCell;

use super::event::bounded;

/// A failed call to an AWS service. The detail is the SDK's error chain, bounded; it never holds a secret value
/// (the SDK's errors do not carry response bodies of successful reads).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct ServiceError {
    /// The operation, e.g. `Secrets Manager GetSecretValue`.
    pub operation: &'static str,
    /// What went wrong.
    pub detail: String,
}

/// One message of a `SendMessageBatch` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    /// The entry id, unique within the call (letters, digits, `-`, `_`; at most 80 characters).
    pub id: String,
    /// The message body.
    pub body: String,
}

/// An entry that a `SendMessageBatch` call did not send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedEntry {
    /// The entry's id.
    pub id: String,
    /// SQS's code and message for it.
    pub reason: String,
}

/// What the handler needs from AWS besides S3.
pub trait Services: Sync {
    /// The `SecretString` of secret `id` (an ARN or name).
    fn secret_string(&self, id: &str) -> impl Future<Output = Result<String, ServiceError>> + Send;

    /// Sends up to 10 entries to `queue_url` in one `SendMessageBatch` call and returns those that failed; an
    /// error means the call as a whole failed (no entry is known to be sent).
    fn send_message_batch(
        &self,
        queue_url: &str,
        entries: &[QueueEntry],
    ) -> impl Future<Output = Result<Vec<FailedEntry>, ServiceError>> + Send;
}

/// The real services, with clients made on first use.
#[derive(Debug, Default)]
pub struct AwsServices {
    config: OnceCell<SdkConfig>,
    secrets: OnceCell<aws_sdk_secretsmanager::Client>,
    sqs: OnceCell<aws_sdk_sqs::Client>,
}

impl AwsServices {
    async fn config(&self) -> &SdkConfig {
        self.config
            .get_or_init(|| async {
                let region = RegionProviderChain::default_provider()
                    .or_else(Region::from_static("us-east-1"));
                aws_config::defaults(BehaviorVersion::latest())
                    .region(region)
                    .load()
                    .await
            })
            .await
    }
}

/// The SDK error's whole chain, bounded for a message.
fn detail(error: &dyn std::error::Error) -> String {
    bounded(crate::text::error_chain(error))
}

impl Services for AwsServices {
    async fn secret_string(&self, id: &str) -> Result<String, ServiceError> {
        let operation = "Secrets Manager GetSecretValue";
        let client = self
            .secrets
            .get_or_init(|| async { aws_sdk_secretsmanager::Client::new(self.config().await) })
            .await;
        let output = client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|error| ServiceError {
                operation,
                detail: detail(&error),
            })?;
        output.secret_string.ok_or_else(|| ServiceError {
            operation,
            detail: "the secret has no string value (SecretBinary is not used)".to_owned(),
        })
    }

    async fn send_message_batch(
        &self,
        queue_url: &str,
        entries: &[QueueEntry],
    ) -> Result<Vec<FailedEntry>, ServiceError> {
        let operation = "SQS SendMessageBatch";
        let fail = |detail: String| ServiceError { operation, detail };
        let client = self
            .sqs
            .get_or_init(|| async { aws_sdk_sqs::Client::new(self.config().await) })
            .await;
        let entries = entries
            .iter()
            .map(|entry| {
                SendMessageBatchRequestEntry::builder()
                    .id(&entry.id)
                    .message_body(&entry.body)
                    .build()
                    .map_err(|error| fail(detail(&error)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| fail(detail(&error)))?;
        Ok(output
            .failed
            .into_iter()
            .map(|failed| FailedEntry {
                reason: bounded(format!(
                    "{}: {}",
                    failed.code,
                    failed.message.unwrap_or_default()
                )),
                id: failed.id,
            })
            .collect())
    }
}
