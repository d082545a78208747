//! AWS Lambda front end: turns the events a deployed function receives into mirror runs.
//!
//! A request is the JSON object `{"mappings": [{"source": URL, "target": "s3://bucket/prefix"}], ...options}`
//! with the optional options `memory_budget_mib`, `concurrency`, `endpoint_url`, `force_path_style` and
//! `storage_class`; any other field is an error that names it. Events that carry requests:
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
//! allocator slack. The mirror's deadline is the invocation deadline minus a safety margin of a tenth of the
//! remaining time, at least 1 s and at most 10 s, so an interrupted mapping has time to abort its multipart
//! upload and the function has time to answer. Targets must be `s3://` URLs: this module never touches the
//! filesystem, because a Lambda function has no disk worth the name.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::{SnsMessage, SnsRecord};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::options::{Mapping, MirrorOptions};
use crate::report::RepoReport;

/// Environment variable holding the mappings for schedules without input: the JSON request or an array of
/// mappings.
pub const MAPPINGS_ENV: &str = "MIRROR_MAPPINGS";
/// Environment variable naming an S3 object (`s3://bucket/key`) that holds what [`MAPPINGS_ENV`] would.
pub const MAPPINGS_S3_URI_ENV: &str = "MIRROR_MAPPINGS_S3_URI";

/// Percentage of the function's memory given to the mirror when a request names no budget.
const MEMORY_BUDGET_PERCENT: u64 = 60;
/// Lambda's longest possible invocation; a deadline further away than this is not a real deadline.
const MAX_INVOCATION: Duration = Duration::from_secs(15 * 60);
/// Bounds of the safety margin kept between the mirror's deadline and the invocation's.
const MIN_MARGIN: Duration = Duration::from_secs(1);
const MAX_MARGIN: Duration = Duration::from_secs(10);
/// Largest configuration document read from S3.
const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Longest piece of input-derived text quoted in an error message.
const MAX_QUOTED_CHARS: usize = 300;
/// Most unknown field names listed in one error message.
const MAX_LISTED_FIELDS: usize = 10;

const REQUEST_FIELDS: [&str; 6] = [
    "mappings",
    "memory_budget_mib",
    "concurrency",
    "endpoint_url",
    "force_path_style",
    "storage_class",
];
const MAPPING_FIELDS: [&str; 2] = ["source", "target"];

/// What was wrong with an event or with the function's mapping configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The payload matches none of the accepted shapes.
    #[error("unrecognised event: {0}")]
    Unrecognised(String),
    /// A string that should hold JSON does not.
    #[error("{path}: not valid JSON: {problem}")]
    NotJson {
        /// Where the string is in the event (or which configuration source held it).
        path: String,
        /// The JSON parser's complaint.
        problem: String,
    },
    /// A field is missing, unknown, of the wrong type or out of range.
    #[error("{path}: {problem}")]
    Invalid {
        /// Where the problem is, e.g. `Records[1].body.mappings[0].target`.
        path: String,
        /// What is wrong there.
        problem: String,
    },
    /// The function's configuration cannot supply mappings for a schedule without input.
    #[error("mapping configuration: {0}")]
    Configuration(String),
}

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

/// Options a request may carry; each one left out keeps the function's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// Memory budget of the mirror in MiB; must stay below the function's memory size.
    pub memory_budget_mib: Option<u64>,
    /// How many mappings are mirrored at once.
    pub concurrency: Option<usize>,
    /// S3 endpoint (an S3-compatible store), `http://` or `https://`.
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (`endpoint/bucket/key`).
    pub force_path_style: Option<bool>,
    /// S3 storage class of the objects written.
    pub storage_class: Option<String>,
}

/// One request: the mappings to mirror and the options that apply to them.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The mappings, in the order given.
    pub mappings: Vec<Mapping>,
    /// The options given with them.
    pub options: RequestOptions,
}

/// The kind of event whose requests must all be valid before any of them runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A manual invoke or a schedule with a constant input.
    Direct,
    /// An SNS notification.
    Sns,
}

/// One SQS message of a batch and what it asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct SqsItem {
    /// The message id, reported in `batchItemFailures` when the message fails.
    pub message_id: String,
    /// The message's request, or why its body is not one.
    pub request: Result<Request, EventError>,
}

/// A parsed event.
#[derive(Clone, Debug, PartialEq)]
pub enum ParsedEvent {
    /// Requests that are all valid (any invalid one is an error for the whole event).
    Requests {
        /// Where they came from.
        kind: EventKind,
        /// The requests, in event order.
        requests: Vec<Request>,
    },
    /// An EventBridge `Scheduled Event` without input: the request comes from the function's configuration.
    Scheduled,
    /// An SQS batch: one item per message, each valid or not on its own.
    Sqs(Vec<SqsItem>),
}

/// The function's configuration that [`handle`] reads from the process environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    /// [`MAPPINGS_ENV`], if set and not empty.
    pub mappings: Option<String>,
    /// [`MAPPINGS_S3_URI_ENV`], if set and not empty.
    pub mappings_s3_uri: Option<String>,
}

impl Environment {
    /// Reads the configuration from the process environment; empty variables count as unset.
    pub fn from_process() -> Environment {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        Environment {
            mappings: read(MAPPINGS_ENV),
            mappings_s3_uri: read(MAPPINGS_S3_URI_ENV),
        }
    }
}

/// The Lambda handler: parses the event, mirrors what it asks for and answers with a summary.
///
/// Non-SQS events answer `{"mappings": [report, ...]}` and fail with [`HandlerError::MirrorFailed`] (carrying
/// that summary) if any mapping failed, so retries, on-failure destinations and error alarms work. SQS batches
/// answer an `SqsBatchResponse` listing exactly the messages that failed.
pub async fn handle(event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    handle_with(event, &Environment::from_process()).await
}

/// [`handle`] with the function's configuration given instead of read from the process environment.
pub async fn handle_with(
    event: LambdaEvent<Value>,
    environment: &Environment,
) -> Result<Value, HandlerError> {
    let (payload, context) = event.into_parts();
    let limits = Limits {
        function_memory_mib: u64::try_from(context.env_config.memory)
            .ok()
            .filter(|&mib| mib > 0),
        deadline: mirror_deadline(context.deadline, SystemTime::now(), Instant::now()),
    };
    match parse_event(payload)? {
        ParsedEvent::Requests { kind, requests } => {
            run_all_or_nothing(kind_name(kind), &requests, &limits).await
        }
        ParsedEvent::Scheduled => {
            let request = configured_request(environment).await?;
            run_all_or_nothing("scheduled event", std::slice::from_ref(&request), &limits).await
        }
        ParsedEvent::Sqs(items) => run_sqs(&items, &limits).await,
    }
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Direct => "direct invoke",
        EventKind::Sns => "SNS event",
    }
}

/// Parses an event payload completely, without mirroring anything.
pub fn parse_event(payload: Value) -> Result<ParsedEvent, EventError> {
    let object = match payload {
        Value::Object(object) => object,
        other => {
            return Err(EventError::Unrecognised(format!(
                "expected a JSON object, got {}",
                describe(&other)
            )))
        }
    };
    if object.contains_key("Records") {
        parse_records(object)
    } else if object.contains_key("detail-type") {
        parse_eventbridge(object)
    } else if object.contains_key("mappings") {
        Ok(ParsedEvent::Requests {
            kind: EventKind::Direct,
            requests: vec![parse_request_object(object, "event")?],
        })
    } else {
        Err(EventError::Unrecognised(format!(
            "expected a request {{\"mappings\": [...]}}, an EventBridge Scheduled Event, or SNS/SQS \"Records\"; \
             got an object with {}",
            list_keys(object.keys())
        )))
    }
}

/// Parses the mapping configuration of a schedule without input: a JSON request, or a bare array of mappings.
/// `origin` names where the text came from, for error messages.
pub fn parse_configuration(text: &str, origin: &str) -> Result<Request, EventError> {
    match parse_json(text, origin)? {
        Value::Array(mappings) => {
            let mut object = Map::new();
            object.insert("mappings".to_owned(), Value::Array(mappings));
            parse_request_object(object, origin)
        }
        other => parse_request(other, origin),
    }
}

fn parse_eventbridge(object: Map<String, Value>) -> Result<ParsedEvent, EventError> {
    let event: EventBridgeEvent<Value> = from_value(Value::Object(object), "EventBridge event")?;
    if event.detail_type == "Scheduled Event" && event.source == "aws.events" {
        Ok(ParsedEvent::Scheduled)
    } else {
        Err(EventError::Unrecognised(format!(
            "EventBridge event with detail-type {} from source {}: only \"Scheduled Event\" from \"aws.events\" \
             is handled (give the rule a constant input {{\"mappings\": [...]}} to mirror on other events)",
            quote(&event.detail_type),
            quote(&event.source)
        )))
    }
}

fn parse_records(mut object: Map<String, Value>) -> Result<ParsedEvent, EventError> {
    let records = match object.remove("Records") {
        Some(Value::Array(records)) if !records.is_empty() => records,
        Some(Value::Array(_)) => return Err(invalid("Records", "is empty")),
        Some(other) => {
            return Err(invalid(
                "Records",
                format!("expected an array of records, got {}", describe(&other)),
            ))
        }
        None => return Err(invalid("Records", "missing")),
    };
    let first_source = records
        .first()
        .and_then(record_source)
        .ok_or_else(|| {
            invalid(
                "Records[0]",
                "has no eventSource/EventSource: cannot tell an SQS batch from an SNS event",
            )
        })?
        .to_owned();
    for (index, record) in records.iter().enumerate().skip(1) {
        let source = record_source(record);
        if source != Some(first_source.as_str()) {
            return Err(invalid(
                &format!("Records[{index}]"),
                format!(
                    "event source {} differs from the first record's {}",
                    source.map_or_else(|| "(none)".to_owned(), quote),
                    quote(&first_source)
                ),
            ));
        }
    }
    match first_source.as_str() {
        "aws:sqs" => records
            .into_iter()
            .enumerate()
            .map(|(index, record)| parse_sqs_record(index, record))
            .collect::<Result<Vec<_>, _>>()
            .map(ParsedEvent::Sqs),
        "aws:sns" => records
            .into_iter()
            .enumerate()
            .map(|(index, record)| parse_sns_record(index, record))
            .collect::<Result<Vec<_>, _>>()
            .map(|requests| ParsedEvent::Requests {
                kind: EventKind::Sns,
                requests,
            }),
        other => Err(EventError::Unrecognised(format!(
            "records from {}: only aws:sqs and aws:sns records are handled",
            quote(other)
        ))),
    }
}

/// The event source of a record: SQS spells the key `eventSource`, SNS `EventSource`.
fn record_source(record: &Value) -> Option<&str> {
    record
        .get("eventSource")
        .or_else(|| record.get("EventSource"))
        .and_then(Value::as_str)
}

fn parse_sns_record(index: usize, record: Value) -> Result<Request, EventError> {
    let path = format!("Records[{index}]");
    let record: SnsRecord = from_value(record, &path)?;
    require_notification(&record.sns.sns_message_type, &format!("{path}.Sns.Type"))?;
    parse_request_text(&record.sns.message, &format!("{path}.Sns.Message"))
}

/// Parses one SQS record. An error here fails the whole batch: it is returned only for a record whose failure
/// cannot be reported on its own because it has no message id.
fn parse_sqs_record(index: usize, record: Value) -> Result<SqsItem, EventError> {
    let path = format!("Records[{index}]");
    let id_hint = record
        .get("messageId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let no_id = || {
        invalid(
            &path,
            "has no messageId, so its failure cannot be reported on its own: failing the whole batch \
             (nothing was mirrored)",
        )
    };
    match from_value::<SqsMessage>(record, &path) {
        Ok(message) => {
            let message_id = message.message_id.ok_or_else(no_id)?;
            let path = format!("{path} (messageId {})", quote(&message_id));
            Ok(SqsItem {
                request: parse_sqs_body(message.body, &path),
                message_id,
            })
        }
        Err(error) => {
            let message_id = id_hint.ok_or_else(no_id)?;
            Ok(SqsItem {
                message_id,
                request: Err(error),
            })
        }
    }
}

/// The body of an SQS message: the request, or an SNS envelope holding it in `Message`.
fn parse_sqs_body(body: Option<String>, path: &str) -> Result<Request, EventError> {
    let path = format!("{path}.body");
    let body = body.ok_or_else(|| invalid(&path, "missing"))?;
    let value = parse_json(&body, &path)?;
    if value.get("Type").is_some() {
        let envelope_path = format!("{path} (SNS envelope)");
        let envelope: SnsMessage = from_value(value, &envelope_path)?;
        require_notification(&envelope.sns_message_type, &format!("{envelope_path}.Type"))?;
        parse_request_text(&envelope.message, &format!("{path}.Message"))
    } else {
        parse_request(value, &path)
    }
}

fn require_notification(message_type: &str, path: &str) -> Result<(), EventError> {
    if message_type == "Notification" {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "SNS {} messages carry no request; only Notification messages do",
                quote(message_type)
            ),
        ))
    }
}

fn parse_request_text(text: &str, path: &str) -> Result<Request, EventError> {
    parse_request(parse_json(text, path)?, path)
}

fn parse_request(value: Value, path: &str) -> Result<Request, EventError> {
    match value {
        Value::Object(object) => parse_request_object(object, path),
        other => Err(invalid(
            path,
            format!(
                "expected a request object {{\"mappings\": [...]}}, got {}",
                describe(&other)
            ),
        )),
    }
}

fn parse_request_object(mut object: Map<String, Value>, path: &str) -> Result<Request, EventError> {
    reject_unknown_fields(&object, &REQUEST_FIELDS, path)?;
    let mappings_path = format!("{path}.mappings");
    let mappings = match object.remove("mappings") {
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(invalid(&mappings_path, "is empty: nothing to mirror"))
        }
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| parse_mapping(item, &format!("{mappings_path}[{index}]")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(invalid(
                &mappings_path,
                format!(
                    "expected an array of {{\"source\", \"target\"}} objects, got {}",
                    describe(&other)
                ),
            ))
        }
        None => return Err(invalid(path, "missing field `mappings`")),
    };
    let options = RequestOptions {
        memory_budget_mib: optional_field(&mut object, "memory_budget_mib", path)?,
        concurrency: optional_field(&mut object, "concurrency", path)?,
        endpoint_url: optional_field(&mut object, "endpoint_url", path)?,
        force_path_style: optional_field(&mut object, "force_path_style", path)?,
        storage_class: optional_field(&mut object, "storage_class", path)?,
    };
    if options.memory_budget_mib == Some(0) {
        return Err(invalid(
            &format!("{path}.memory_budget_mib"),
            "must be at least 1",
        ));
    }
    if options.concurrency == Some(0) {
        return Err(invalid(
            &format!("{path}.concurrency"),
            "must be at least 1",
        ));
    }
    if let Some(endpoint) = &options.endpoint_url {
        require_http_url(endpoint, &format!("{path}.endpoint_url"))?;
    }
    if options.storage_class.as_deref().is_some_and(str::is_empty) {
        return Err(invalid(&format!("{path}.storage_class"), "is empty"));
    }
    Ok(Request { mappings, options })
}

fn parse_mapping(value: Value, path: &str) -> Result<Mapping, EventError> {
    let mut object = match value {
        Value::Object(object) => object,
        other => {
            return Err(invalid(
                path,
                format!(
                    "expected a {{\"source\", \"target\"}} object, got {}",
                    describe(&other)
                ),
            ))
        }
    };
    reject_unknown_fields(&object, &MAPPING_FIELDS, path)?;
    let source: String = required_field(&mut object, "source", path)?;
    let target: String = required_field(&mut object, "target", path)?;
    require_http_url(&source, &format!("{path}.source"))?;
    let bucket = target
        .strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or_default());
    if bucket.is_none_or(str::is_empty) {
        return Err(invalid(
            &format!("{path}.target"),
            format!(
                "{} is not an s3://bucket/prefix URL (the Lambda function has no disk for a local target)",
                quote(&target)
            ),
        ));
    }
    Ok(Mapping { source, target })
}

fn require_http_url(text: &str, path: &str) -> Result<(), EventError> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(url) => Err(invalid(
            path,
            format!(
                "{}: expected an http:// or https:// URL, got scheme {}",
                quote(text),
                quote(url.scheme())
            ),
        )),
        Err(error) => Err(invalid(
            path,
            format!("{} is not a URL: {error}", quote(text)),
        )),
    }
}

fn reject_unknown_fields(
    object: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), EventError> {
    let unknown: Vec<&String> = object
        .keys()
        .filter(|key| !allowed.contains(&key.as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(invalid(
        path,
        format!(
            "unknown field{} {}; expected only {}",
            if unknown.len() == 1 { "" } else { "s" },
            list_names(unknown.iter().map(|key| key.as_str())),
            allowed.join(", ")
        ),
    ))
}

fn optional_field<T: DeserializeOwned>(
    object: &mut Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<T>, EventError> {
    match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => from_value(value, &format!("{path}.{name}")).map(Some),
    }
}

fn required_field<T: DeserializeOwned>(
    object: &mut Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<T, EventError> {
    optional_field(object, name, path)?
        .ok_or_else(|| invalid(path, format!("missing field `{name}`")))
}

fn from_value<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, EventError> {
    serde_json::from_value(value).map_err(|error| invalid(path, error.to_string()))
}

fn parse_json(text: &str, path: &str) -> Result<Value, EventError> {
    serde_json::from_str(text).map_err(|error| EventError::NotJson {
        path: path.to_owned(),
        problem: bounded(error.to_string()),
    })
}

fn invalid(path: &str, problem: impl Into<String>) -> EventError {
    EventError::Invalid {
        path: path.to_owned(),
        problem: bounded(problem.into()),
    }
}

/// Cuts input-derived text to [`MAX_QUOTED_CHARS`] so a hostile event cannot make error messages huge.
fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn quote(text: &str) -> String {
    bounded(format!("{text:?}"))
}

fn list_names<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut listed: Vec<String> = names
        .take(MAX_LISTED_FIELDS)
        .map(|name| format!("`{}`", bounded(name.to_owned())))
        .collect();
    if total > MAX_LISTED_FIELDS {
        listed.push(format!("and {} more", total - MAX_LISTED_FIELDS));
    }
    listed.join(", ")
}

fn list_keys<'a>(keys: impl ExactSizeIterator<Item = &'a String>) -> String {
    if keys.len() == 0 {
        "no fields".to_owned()
    } else {
        format!("fields {}", list_names(keys.map(String::as_str)))
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The request configured for schedules without input.
async fn configured_request(environment: &Environment) -> Result<Request, EventError> {
    match (&environment.mappings, &environment.mappings_s3_uri) {
        (Some(_), Some(_)) => Err(EventError::Configuration(format!(
            "both {MAPPINGS_ENV} and {MAPPINGS_S3_URI_ENV} are set; set only one"
        ))),
        (Some(text), None) => parse_configuration(text, MAPPINGS_ENV),
        (None, Some(uri)) => {
            let text = read_s3_text(uri).await?;
            parse_configuration(&text, uri)
        }
        (None, None) => Err(EventError::Configuration(format!(
            "a Scheduled Event without input needs {MAPPINGS_ENV} (a JSON request) or {MAPPINGS_S3_URI_ENV} \
             (s3://bucket/key of one) in the function's environment, or a constant input on the schedule"
        ))),
    }
}

/// Splits `s3://bucket/key` into bucket and key.
fn parse_s3_uri(uri: &str) -> Option<(&str, &str)> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// Reads a small UTF-8 object through the default AWS configuration chain (so `AWS_ENDPOINT_URL_S3` works),
/// never holding more than [`MAX_CONFIG_BYTES`].
async fn read_s3_text(uri: &str) -> Result<String, EventError> {
    let fail = |problem: String| {
        EventError::Configuration(format!(
            "{MAPPINGS_S3_URI_ENV} {}: {}",
            quote(uri),
            bounded(problem)
        ))
    };
    let (bucket, key) =
        parse_s3_uri(uri).ok_or_else(|| fail("expected s3://bucket/key".to_owned()))?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_s3::Client::new(&config);
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|error| fail(aws_sdk_s3::error::DisplayErrorContext(error).to_string()))?;
    let too_big = || fail(format!("larger than {MAX_CONFIG_BYTES} bytes"));
    if object
        .content_length()
        .is_some_and(|length| length > MAX_CONFIG_BYTES as i64)
    {
        return Err(too_big());
    }
    let mut body = object.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|error| fail(error.to_string()))?
    {
        if bytes.len() + chunk.len() > MAX_CONFIG_BYTES {
            return Err(too_big());
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".to_owned()))
}

/// Time left until an invocation deadline given in epoch milliseconds, or `None` when the deadline is unknown:
/// already past (the local emulator sends a relative 600000) or further away than any invocation can last.
pub fn remaining_time(deadline_ms: u64, now_ms: u64) -> Option<Duration> {
    let remaining = Duration::from_millis(deadline_ms.checked_sub(now_ms)?);
    (remaining <= MAX_INVOCATION).then_some(remaining)
}

/// The margin kept between the mirror's deadline and the invocation's: a tenth of the remaining time, at least
/// 1 s and at most 10 s.
pub fn safety_margin(remaining: Duration) -> Duration {
    (remaining / 10).clamp(MIN_MARGIN, MAX_MARGIN)
}

/// The instant by which the mirror must have stopped, from the context's deadline (epoch milliseconds).
fn mirror_deadline(deadline_ms: u64, now: SystemTime, now_instant: Instant) -> Option<Instant> {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| u64::try_from(since.as_millis()).ok())?;
    match remaining_time(deadline_ms, now_ms) {
        Some(remaining) => {
            let margin = safety_margin(remaining);
            info!(
                remaining_ms = remaining.as_millis() as u64,
                margin_ms = margin.as_millis() as u64,
                "invocation deadline known: the mirror stops a margin before it"
            );
            Some(now_instant + remaining.saturating_sub(margin))
        }
        None => {
            warn!(
                deadline_ms,
                now_ms, "invocation deadline is past or absurd: running without a deadline"
            );
            None
        }
    }
}

/// What bounds every mirror run of one invocation.
struct Limits {
    /// The function's memory size, when known.
    function_memory_mib: Option<u64>,
    /// When the mirror must have stopped.
    deadline: Option<Instant>,
}

/// The library's options for a request's options under the function's limits.
fn resolve_options(options: &RequestOptions, limits: &Limits) -> Result<MirrorOptions, EventError> {
    let budget_mib = match (options.memory_budget_mib, limits.function_memory_mib) {
        (Some(budget), Some(memory)) if budget >= memory => {
            return Err(invalid(
                "memory_budget_mib",
                format!("{budget} MiB does not fit in the function's {memory} MiB of memory"),
            ))
        }
        (Some(budget), _) => Some(budget),
        (None, Some(memory)) => Some((memory * MEMORY_BUDGET_PERCENT / 100).max(1)),
        (None, None) => None,
    };
    let mut resolved = MirrorOptions::default();
    if let Some(mib) = budget_mib {
        resolved = resolved.with_memory_budget_mib(mib);
    }
    if let Some(concurrency) = options.concurrency {
        resolved.concurrency = concurrency;
    }
    if let Some(endpoint) = &options.endpoint_url {
        resolved.s3.endpoint_url = Some(endpoint.clone());
    }
    if let Some(path_style) = options.force_path_style {
        resolved.s3.force_path_style = path_style;
    }
    if let Some(class) = &options.storage_class {
        resolved.s3.storage_class = Some(class.clone());
    }
    resolved.deadline = limits.deadline;
    Ok(resolved)
}

/// Requests grouped by equal options, duplicate mappings merged: each group is one `mirror_repos` call, and an
/// invocation never mirrors the same mapping twice at once.
struct Plan {
    groups: Vec<Group>,
    /// Per request: its group and, per mapping, the mapping's index in that group.
    slots: Vec<(usize, Vec<usize>)>,
}

struct Group {
    options: RequestOptions,
    mappings: Vec<Mapping>,
}

impl Plan {
    fn new<'a>(requests: impl IntoIterator<Item = &'a Request>) -> Plan {
        let mut groups: Vec<Group> = Vec::new();
        let mut slots = Vec::new();
        for request in requests {
            let group_index = match groups
                .iter()
                .position(|group| group.options == request.options)
            {
                Some(index) => index,
                None => {
                    groups.push(Group {
                        options: request.options.clone(),
                        mappings: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            let group = &mut groups[group_index];
            let indices = request
                .mappings
                .iter()
                .map(
                    |mapping| match group.mappings.iter().position(|known| known == mapping) {
                        Some(index) => index,
                        None => {
                            group.mappings.push(mapping.clone());
                            group.mappings.len() - 1
                        }
                    },
                )
                .collect();
            slots.push((group_index, indices));
        }
        Plan { groups, slots }
    }

    /// Resolves every group's options; nothing runs yet.
    fn resolve(&self, limits: &Limits) -> Vec<Result<MirrorOptions, EventError>> {
        self.groups
            .iter()
            .map(|group| resolve_options(&group.options, limits))
            .collect()
    }

    /// Mirrors every group whose options resolved (the library logs one line per mapping); `None` for the
    /// others. Fails if the library breaks its contract of one report per mapping, in order.
    async fn run(
        &self,
        resolved: &[Result<MirrorOptions, EventError>],
    ) -> Result<Vec<Option<Vec<RepoReport>>>, HandlerError> {
        let mut outcomes = Vec::with_capacity(self.groups.len());
        for (group, options) in self.groups.iter().zip(resolved) {
            let Ok(options) = options else {
                outcomes.push(None);
                continue;
            };
            let reports = crate::mirror_repos(&group.mappings, options).await;
            let one_per_mapping = reports.len() == group.mappings.len()
                && reports
                    .iter()
                    .zip(&group.mappings)
                    .all(|(report, mapping)| report.target == mapping.target);
            if !one_per_mapping {
                return Err(HandlerError::Internal(format!(
                    "the mirror returned {} reports for {} mappings",
                    reports.len(),
                    group.mappings.len()
                )));
            }
            outcomes.push(Some(reports));
        }
        Ok(outcomes)
    }

    /// The reports of request `index`, in its mapping order (none if its group did not run).
    fn reports_of(&self, index: usize, outcomes: &[Option<Vec<RepoReport>>]) -> Vec<RepoReport> {
        let Some((group_index, slots)) = self.slots.get(index) else {
            return Vec::new();
        };
        let Some(Some(reports)) = outcomes.get(*group_index) else {
            return Vec::new();
        };
        slots
            .iter()
            .filter_map(|&slot| reports.get(slot).cloned())
            .collect()
    }
}

/// The invocation's summary: `{"mappings": [report, ...]}`.
fn summary(reports: &[RepoReport]) -> Result<Value, HandlerError> {
    let reports = serde_json::to_value(reports)
        .map_err(|error| HandlerError::Internal(format!("serializing the reports: {error}")))?;
    Ok(serde_json::json!({ "mappings": reports }))
}

/// Runs requests that must all be valid before any runs; fails if any mapping failed.
async fn run_all_or_nothing(
    kind: &str,
    requests: &[Request],
    limits: &Limits,
) -> Result<Value, HandlerError> {
    let plan = Plan::new(requests);
    let resolved = plan.resolve(limits);
    if let Some(Err(error)) = resolved.iter().find(|options| options.is_err()) {
        return Err(error.clone().into());
    }
    let outcomes = plan.run(&resolved).await?;
    let reports: Vec<RepoReport> = (0..requests.len())
        .flat_map(|index| plan.reports_of(index, &outcomes))
        .collect();
    let failed = reports.iter().filter(|report| !report.is_ok()).count();
    info!(
        event = kind,
        mappings = reports.len(),
        failed,
        "invocation finished"
    );
    let summary = summary(&reports)?;
    if failed == 0 {
        Ok(summary)
    } else {
        Err(HandlerError::MirrorFailed {
            summary: summary.to_string(),
        })
    }
}

/// Runs the valid messages of an SQS batch and lists the failed ones in `batchItemFailures`.
async fn run_sqs(items: &[SqsItem], limits: &Limits) -> Result<Value, HandlerError> {
    let plan = Plan::new(items.iter().filter_map(|item| item.request.as_ref().ok()));
    let resolved = plan.resolve(limits);
    let outcomes = plan.run(&resolved).await?;
    let mut response = SqsBatchResponse::default();
    let mut valid_index = 0;
    for item in items {
        let failure = match &item.request {
            Err(error) => Some(error.to_string()),
            Ok(_) => {
                let index = valid_index;
                valid_index += 1;
                let group_error = plan
                    .slots
                    .get(index)
                    .and_then(|(group, _)| resolved.get(*group))
                    .and_then(|options| options.as_ref().err());
                match group_error {
                    Some(error) => Some(error.to_string()),
                    None => {
                        let failed: Vec<String> = plan
                            .reports_of(index, &outcomes)
                            .into_iter()
                            .filter(|report| !report.is_ok())
                            .map(|report| report.source)
                            .collect();
                        (!failed.is_empty())
                            .then(|| format!("failed mappings from {}", failed.join(", ")))
                    }
                }
            }
        };
        match failure {
            Some(reason) => {
                warn!(message_id = %item.message_id, reason = %reason, "SQS message failed: it will be retried");
                response.add_failure(item.message_id.clone());
            }
            None => info!(message_id = %item.message_id, "SQS message done"),
        }
    }
    info!(
        messages = items.len(),
        failed = response.batch_item_failures.len(),
        "SQS batch finished"
    );
    serde_json::to_value(&response)
        .map_err(|error| HandlerError::Internal(format!("serializing the response: {error}")))
}

#[cfg(test)]
mod tests;
