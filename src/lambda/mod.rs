//! AWS Lambda front end: turns the events a deployed function receives into mirror runs.
//!
//! A request is the JSON object `{"mappings": [{"source": URL, "target": "s3://bucket/prefix"}], ...options}`
//! with the optional run options of [`Overrides`](crate::options::Overrides), the ones the CLI sets with its
//! flags: `memory_budget_mib`, `concurrency`, `endpoint_url`, `force_path_style`, `storage_class`, `region`,
//! `ref_prefixes`, `compaction_threshold`, `gc_grace_hours`, `max_advertisement_mib` and `max_pack_mib`. No
//! token: secrets do not belong in events, so a mapping (or the request, for all its mappings) names a Secrets
//! Manager secret instead, `"token_secret": ARN or name`, whose value is read once per invocation and used as the
//! CLI's `--token` is (`tokens.rs`). With `"fan_out": true` the request is not mirrored here: each mapping goes,
//! with the request's options, as one message to the queue named by `MIRROR_QUEUE_URL`, which feeds the function
//! back (`fan_out.rs`). Any other field is an error that names it. Events that carry requests:
//!
//! - a manual invoke, or an EventBridge schedule with a constant input: the payload is the request itself;
//! - an EventBridge `Scheduled Event` without input: the request comes from the function's configuration,
//!   `MIRROR_MAPPINGS` (the JSON request, or a bare array of mappings) or `MIRROR_MAPPINGS_S3_URI`
//!   (`s3://bucket/key` of such a JSON document, read on every invocation);
//! - SNS: `Records[].Sns.Message` holds the request;
//! - SQS: `Records[].body` holds the request, or an SNS envelope whose `Message` holds it (a queue subscribed to
//!   a topic without raw message delivery).
//!
//! The whole event is parsed before anything is mirrored, so a half-valid event mirrors nothing. The exception
//! is SQS, where each message stands alone: a malformed message, or one with a failed mapping, is reported in
//! `batchItemFailures` so that only it is retried, while the other messages of the batch proceed. An SQS record
//! without a `messageId` cannot be reported on its own, so it fails the whole batch before anything runs.
//!
//! Resources: the memory budget defaults to 60% of the function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`,
//! which the runtime reads into the context), leaving the rest for the runtime, the S3 and HTTP clients and
//! allocator slack. The mirror's deadline is the invocation deadline minus a safety margin of a fifth of the
//! remaining time, at least 1 s and at most 10 s, so an interrupted mapping has time to abort its multipart
//! upload and the function has time to answer. Targets must be `s3://` URLs: this module never touches the
//! filesystem, because a Lambda function has no disk worth the name.
//!
//! | part | file |
//! |---|---|
//! | the handler, its errors and their Lambda `errorType` | `mod.rs` |
//! | event → requests (pure parsing and field validation) | `event.rs` |
//! | deadline margin, memory share, request options → `MirrorOptions` | `limits.rs` |
//! | grouping, all-or-nothing runs, SQS partial batch failures | `batch.rs` |
//! | `MIRROR_MAPPINGS` / `MIRROR_MAPPINGS_S3_URI` | `settings.rs` |
//! | JSON log lines | `logging.rs` |
//! | EMF metrics records, one per mapping | `metrics.rs` |
//! | Secrets Manager and SQS clients behind a trait | `aws.rs` |
//! | source tokens from secrets, cached per invocation | `tokens.rs` |
//! | one SQS message per mapping (`fan_out`) | `fan_out.rs` |

mod aws;
mod batch;
mod event;
mod fan_out;
mod limits;
mod logging;
mod metrics;
mod settings;
mod tokens;

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::options::{Mapping, MirrorOptions};
use crate::report::RepoReport;

pub use aws::{AwsServices, FailedEntry, QueueEntry, ServiceError, Services};
pub use event::{
    parse_event, EventError, EventKind, ParsedEvent, Request, SqsItem, FAN_OUT, TOKEN_SECRET,
};
pub use fan_out::{fan_out_messages, Message, MAX_BATCH_ENTRIES, MAX_SEND_ATTEMPTS, QUEUE_URL_ENV};
pub use limits::{remaining_time, safety_margin};
pub use logging::{init_logging, log_filter, LOG_LEVEL_ENV};
pub use metrics::{emf_record, NAMESPACE, TARGET_DIMENSION};
pub use settings::{
    parse_configuration, FunctionConfig, MAPPINGS_ENV, MAPPINGS_S3_URI_ENV, SCHEDULE_FAN_OUT_ENV,
};
pub use tokens::{token_from_secret, TokenCache, TokenError};

use batch::{run_all_or_nothing, run_sqs};
use fan_out::fan_out;
use limits::Limits;
use settings::configured_request;

/// Why an invocation failed as a whole.
#[derive(thiserror::Error)]
pub enum HandlerError {
    /// The event (or the configuration it points to) is malformed: nothing was mirrored.
    #[error(transparent)]
    Event(#[from] EventError),
    /// At least one mapping failed; the message is the JSON summary `{"mappings": [report, ...]}`.
    #[error("{summary}")]
    MirrorFailed {
        /// The JSON summary of every mapping, failed or not.
        summary: String,
    },
    /// A fan-out could not queue every message; the message is the JSON summary `{"fan_out": {...}}`.
    #[error("{summary}")]
    FanOutFailed {
        /// The JSON summary of the fan-out, listing the mappings not queued.
        summary: String,
    },
    /// The response could not be built (a bug, not a problem of the event).
    #[error("internal error: {0}")]
    Internal(String),
}

impl HandlerError {
    /// The `errorType` Lambda reports for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Event(EventError::Configuration(_)) => "InvalidConfiguration",
            HandlerError::Event(_) => "InvalidEvent",
            HandlerError::MirrorFailed { .. } => "MirrorFailed",
            HandlerError::FanOutFailed { .. } => "FanOutFailed",
            HandlerError::Internal(_) => "InternalError",
        }
    }
}

/// The runtime logs a failed invocation's error with `Debug`: make that line readable, not a struct dump.
impl std::fmt::Debug for HandlerError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {self}", self.error_type())
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What the handler runs: the mirror of a group of mappings that share options.
///
/// The real one is [`Library`]. The handler is generic over it, as the aws-lambda-rust-runtime examples are over
/// their clients, so that its batching, all-or-nothing runs, SQS partial failures and deadlines are tested with a
/// fake that fails chosen sources, without git or S3.
pub trait Mirror: Sync {
    /// Mirrors `mappings` with `options` and returns one report per mapping, in order; a mapping that failed is a
    /// report with an error, never a missing one.
    fn mirror(
        &self,
        mappings: &[Mapping],
        options: &MirrorOptions,
    ) -> impl Future<Output = Vec<RepoReport>> + Send;
}

/// The library itself: [`mirror_repos`](crate::mirror_repos).
#[derive(Clone, Copy, Debug, Default)]
pub struct Library;

impl Mirror for Library {
    fn mirror(
        &self,
        mappings: &[Mapping],
        options: &MirrorOptions,
    ) -> impl Future<Output = Vec<RepoReport>> + Send {
        crate::mirror_repos(mappings, options)
    }
}

/// The Lambda handler: parses the event, mirrors what it asks for (or fans it out) and answers with a summary.
///
/// Non-SQS events answer `{"mappings": [report, ...]}` and fail with [`HandlerError::MirrorFailed`] (carrying
/// that summary) if any mapping failed, so retries, on-failure destinations and error alarms work; requests with
/// `fan_out` answer `{"fan_out": {"queued", "duplicates", "failed"}}` and fail with
/// [`HandlerError::FanOutFailed`] if a message could not be queued. SQS batches answer an `SqsBatchResponse`
/// listing exactly the messages that failed.
pub async fn handle(event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let services = AwsServices::default();
    handle_with_services(event, &FunctionConfig::from_process(), &Library, &services).await
}

/// [`handle`] with the function's configuration and the mirror given, instead of the process environment's and
/// the library's (AWS services are the real ones, made only if a request needs them).
pub async fn handle_with<M: Mirror>(
    event: LambdaEvent<Value>,
    config: &FunctionConfig,
    mirror: &M,
) -> Result<Value, HandlerError> {
    handle_with_services(event, config, mirror, &AwsServices::default()).await
}

/// [`handle_with`] with the AWS services (Secrets Manager, SQS) given too.
pub async fn handle_with_services<M: Mirror, S: Services>(
    event: LambdaEvent<Value>,
    config: &FunctionConfig,
    mirror: &M,
    services: &S,
) -> Result<Value, HandlerError> {
    let (payload, context) = event.into_parts();
    let limits = Limits::of(&context);
    let tokens = TokenCache::new(services);
    let (kind, requests) = match parse_event(payload)? {
        ParsedEvent::Requests { kind, requests } => (kind_name(kind), requests),
        ParsedEvent::Scheduled => ("scheduled event", vec![configured_request(config).await?]),
        ParsedEvent::Sqs(items) => return run_sqs(mirror, &tokens, &items, &limits).await,
    };
    let fanned_out = requests.iter().filter(|request| request.fan_out).count();
    if fanned_out == 0 {
        run_all_or_nothing(mirror, &tokens, kind, &requests, &limits).await
    } else if fanned_out == requests.len() {
        fan_out(services, config.queue_url.as_deref(), &requests, &limits).await
    } else {
        Err(EventError::Unrecognised(format!(
            "{fanned_out} of the {} requests of this {kind} ask for fan_out: all or none of them must",
            requests.len()
        ))
        .into())
    }
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Direct => "direct invoke",
        EventKind::Sns => "SNS event",
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod test_support;
