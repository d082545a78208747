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

use crate::config::{Mapping, MirrorOptions};
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
mod tests {
    use super::*;
    use crate::report::MirrorPath;

    const GIT: &str = "http://127.0.0.1:8080/repo-1";
    const GIT_2: &str = "http://127.0.0.1:8080/repo-2";
    const TARGET: &str = "s3://bucket/mirrors/repo-1";
    const TARGET_2: &str = "s3://bucket/mirrors/repo-2";

    /// An events/ file with its placeholders filled in.
    fn sample(text: &str) -> Value {
        let text = text
            .replace("{{GIT_URL}}", GIT)
            .replace("{{GIT_URL_2}}", GIT_2)
            .replace("{{GIT_MISSING_URL}}", "http://127.0.0.1:8080/missing")
            .replace("{{S3_TARGET}}", TARGET)
            .replace("{{S3_TARGET_2}}", TARGET_2)
            .replace("{{S3_ENDPOINT}}", "http://127.0.0.1:5000");
        serde_json::from_str(&text).expect("sample event is JSON")
    }

    fn mapping(source: &str, target: &str) -> Mapping {
        Mapping {
            source: source.to_owned(),
            target: target.to_owned(),
        }
    }

    fn only_mapping() -> Vec<Mapping> {
        vec![mapping(GIT, TARGET)]
    }

    fn request(mappings: Vec<Mapping>) -> Request {
        Request {
            mappings,
            options: RequestOptions::default(),
        }
    }

    fn error_text(event: Value) -> String {
        parse_event(event)
            .expect_err("event should be rejected")
            .to_string()
    }

    fn sqs_event(bodies: &[(&str, &str)]) -> Value {
        let records: Vec<Value> = bodies
            .iter()
            .map(|(id, body)| serde_json::json!({"messageId": id, "body": body, "eventSource": "aws:sqs"}))
            .collect();
        serde_json::json!({ "Records": records })
    }

    fn sns_event(message: &str) -> Value {
        let mut event = sample(include_str!("../events/sns.json"));
        event["Records"][0]["Sns"]["Message"] = Value::String(message.to_owned());
        event
    }

    #[test]
    fn manual_event_parses_with_options() {
        let parsed = parse_event(sample(include_str!("../events/manual.json"))).unwrap();
        let expected = Request {
            mappings: only_mapping(),
            options: RequestOptions {
                memory_budget_mib: Some(128),
                concurrency: Some(2),
                endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
                force_path_style: Some(true),
                storage_class: None,
            },
        };
        assert_eq!(
            parsed,
            ParsedEvent::Requests {
                kind: EventKind::Direct,
                requests: vec![expected]
            }
        );
    }

    #[test]
    fn schedule_with_input_parses_as_a_direct_request() {
        let ParsedEvent::Requests { kind, requests } =
            parse_event(sample(include_str!("../events/schedule-with-input.json"))).unwrap()
        else {
            panic!("expected requests");
        };
        assert_eq!(kind, EventKind::Direct);
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].mappings,
            vec![mapping(GIT, TARGET), mapping(GIT_2, TARGET_2)]
        );
        assert_eq!(
            requests[0].options.storage_class.as_deref(),
            Some("STANDARD")
        );
    }

    #[test]
    fn schedule_without_input_asks_for_the_configuration() {
        let parsed = parse_event(sample(include_str!(
            "../events/schedule-without-input.json"
        )))
        .unwrap();
        assert_eq!(parsed, ParsedEvent::Scheduled);
    }

    #[test]
    fn sns_event_parses_the_message() {
        let parsed = parse_event(sample(include_str!("../events/sns.json"))).unwrap();
        assert_eq!(
            parsed,
            ParsedEvent::Requests {
                kind: EventKind::Sns,
                requests: vec![request(only_mapping())]
            }
        );
    }

    #[test]
    fn sqs_event_parses_each_body() {
        let parsed = parse_event(sample(include_str!("../events/sqs.json"))).unwrap();
        assert_eq!(
            parsed,
            ParsedEvent::Sqs(vec![
                SqsItem {
                    message_id: "059f36b4-87a3-44ab-83d2-661975830a7d".to_owned(),
                    request: Ok(request(only_mapping())),
                },
                SqsItem {
                    message_id: "2e1424d4-f796-459a-8184-9c92662be6da".to_owned(),
                    request: Ok(request(vec![mapping(GIT_2, TARGET_2)])),
                },
            ])
        );
    }

    #[test]
    fn sns_envelope_in_sqs_body_is_unwrapped() {
        let parsed = parse_event(sample(include_str!("../events/sns-in-sqs.json"))).unwrap();
        assert_eq!(
            parsed,
            ParsedEvent::Sqs(vec![SqsItem {
                message_id: "c80e8021-a70a-42c7-a470-796e1186f753".to_owned(),
                request: Ok(request(only_mapping())),
            }])
        );
    }

    #[test]
    fn sqs_partial_failure_sample_fails_only_the_bad_body() {
        let ParsedEvent::Sqs(items) =
            parse_event(sample(include_str!("../events/sqs-partial-failure.json"))).unwrap()
        else {
            panic!("expected an SQS batch");
        };
        assert_eq!(items.len(), 3);
        assert!(items[0].request.is_ok());
        assert!(
            items[1].request.is_ok(),
            "a missing repository is a mirror failure, not a parse error"
        );
        let error = items[2].request.as_ref().unwrap_err().to_string();
        assert!(
            error.starts_with("Records[2] (messageId \"d3c1a7a4"),
            "{error}"
        );
        assert!(error.contains(".body: not valid JSON"), "{error}");
    }

    #[test]
    fn malformed_sample_names_the_unknown_field_and_the_mapping() {
        let error = error_text(sample(include_str!("../events/malformed.json")));
        assert_eq!(
            error,
            "event.mappings[1]: unknown field `destination`; expected only source, target"
        );
    }

    #[test]
    fn configuration_sample_and_both_forms_parse() {
        let text = include_str!("../events/mappings-config.json")
            .replace("{{GIT_URL}}", GIT)
            .replace("{{S3_TARGET}}", TARGET);
        assert_eq!(
            parse_configuration(&text, MAPPINGS_ENV).unwrap(),
            request(only_mapping())
        );
        let object = format!(
            r#"{{"mappings": [{{"source": "{GIT}", "target": "{TARGET}"}}], "concurrency": 8}}"#
        );
        let parsed = parse_configuration(&object, MAPPINGS_ENV).unwrap();
        assert_eq!(parsed.options.concurrency, Some(8));
        assert_eq!(
            parse_configuration("[{\"source\": 1}]", MAPPINGS_ENV)
                .unwrap_err()
                .to_string(),
            "MIRROR_MAPPINGS.mappings[0].source: invalid type: integer `1`, expected a string"
        );
        assert!(matches!(
            parse_configuration("{not json", MAPPINGS_ENV),
            Err(EventError::NotJson { path, .. }) if path == MAPPINGS_ENV
        ));
    }

    #[test]
    fn missing_fields_are_named() {
        let event = serde_json::json!({"mappings": [{"source": GIT}]});
        assert_eq!(
            error_text(event),
            "event.mappings[0]: missing field `target`"
        );
        let event = serde_json::json!({"mappings": [{"target": TARGET}]});
        assert_eq!(
            error_text(event),
            "event.mappings[0]: missing field `source`"
        );
        let event = serde_json::json!({"mappings": [{"source": null, "target": TARGET}]});
        assert_eq!(
            error_text(event),
            "event.mappings[0]: missing field `source`"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let cases = [
            (
                serde_json::json!({"mappings": {"source": GIT, "target": TARGET}}),
                "event.mappings: expected an array of {\"source\", \"target\"} objects, got an object",
            ),
            (
                serde_json::json!({"mappings": [[GIT, TARGET]]}),
                "event.mappings[0]: expected a {\"source\", \"target\"} object, got an array",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "memory_budget_mib": "512"}),
                "event.memory_budget_mib: invalid type: string \"512\", expected u64",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "concurrency": -1}),
                "event.concurrency: invalid value: integer `-1`, expected usize",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "force_path_style": "yes"}),
                "event.force_path_style: invalid type: string \"yes\", expected a boolean",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": 3}]}),
                "event.mappings[0].target: invalid type: integer `3`, expected a string",
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(error_text(event), expected);
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let event = serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "memory": 5, "dry_run": true});
        assert_eq!(
            error_text(event),
            "event: unknown fields `dry_run`, `memory`; expected only mappings, memory_budget_mib, concurrency, \
             endpoint_url, force_path_style, storage_class"
        );
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let cases = [
            (serde_json::json!({"mappings": []}), "event.mappings: is empty: nothing to mirror"),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "concurrency": 0}),
                "event.concurrency: must be at least 1",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "memory_budget_mib": 0}),
                "event.memory_budget_mib: must be at least 1",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "storage_class": ""}),
                "event.storage_class: is empty",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "endpoint_url": "localhost:5000"}),
                "event.endpoint_url: \"localhost:5000\": expected an http:// or https:// URL, got scheme \"localhost\"",
            ),
            (
                serde_json::json!({"mappings": [{"source": "git@github.com:o/r.git", "target": TARGET}]}),
                "event.mappings[0].source: \"git@github.com:o/r.git\" is not a URL: relative URL without a base",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": "/tmp/mirror"}]}),
                "event.mappings[0].target: \"/tmp/mirror\" is not an s3://bucket/prefix URL (the Lambda function \
                 has no disk for a local target)",
            ),
            (
                serde_json::json!({"mappings": [{"source": GIT, "target": "s3:///prefix"}]}),
                "event.mappings[0].target: \"s3:///prefix\" is not an s3://bucket/prefix URL (the Lambda function \
                 has no disk for a local target)",
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(error_text(event), expected);
        }
    }

    #[test]
    fn unrecognised_payloads_say_what_was_seen() {
        assert_eq!(
            error_text(serde_json::json!([1, 2])),
            "unrecognised event: expected a JSON object, got an array"
        );
        assert_eq!(
            error_text(serde_json::json!({"Source": "x", "repos": []})),
            "unrecognised event: expected a request {\"mappings\": [...]}, an EventBridge Scheduled Event, or \
             SNS/SQS \"Records\"; got an object with fields `Source`, `repos`"
        );
        assert_eq!(
            error_text(serde_json::json!({})),
            "unrecognised event: expected a request {\"mappings\": [...]}, an EventBridge Scheduled Event, or \
             SNS/SQS \"Records\"; got an object with no fields"
        );
    }

    #[test]
    fn eventbridge_events_other_than_schedules_are_rejected() {
        let mut event = sample(include_str!("../events/schedule-without-input.json"));
        event["detail-type"] = Value::String("EC2 Instance State-change Notification".to_owned());
        event["source"] = Value::String("aws.ec2".to_owned());
        let error = error_text(event);
        assert!(
            error.starts_with(
                "unrecognised event: EventBridge event with detail-type \"EC2 Instance State-change Notification\" \
                 from source \"aws.ec2\""
            ),
            "{error}"
        );
        let mut event = sample(include_str!("../events/schedule-without-input.json"));
        event["source"] = Value::Bool(true);
        assert_eq!(
            error_text(event),
            "EventBridge event: invalid type: boolean `true`, expected a string"
        );
    }

    #[test]
    fn records_problems_are_named() {
        assert_eq!(
            error_text(serde_json::json!({"Records": []})),
            "Records: is empty"
        );
        assert_eq!(
            error_text(serde_json::json!({"Records": {}})),
            "Records: expected an array of records, got an object"
        );
        assert_eq!(
            error_text(serde_json::json!({"Records": [{"eventSource": "aws:s3"}]})),
            "unrecognised event: records from \"aws:s3\": only aws:sqs and aws:sns records are handled"
        );
        assert_eq!(
            error_text(serde_json::json!({"Records": [{"body": "{}"}]})),
            "Records[0]: has no eventSource/EventSource: cannot tell an SQS batch from an SNS event"
        );
        let mut mixed = sample(include_str!("../events/sqs.json"));
        mixed["Records"][1]["eventSource"] = Value::String("aws:sns".to_owned());
        assert_eq!(
            error_text(mixed),
            "Records[1]: event source \"aws:sns\" differs from the first record's \"aws:sqs\""
        );
    }

    #[test]
    fn sqs_body_that_is_not_json_fails_only_its_message() {
        let good = format!(r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}]}}"#);
        let ParsedEvent::Sqs(items) =
            parse_event(sqs_event(&[("good", &good), ("bad", "{\"mappings\": [")])).unwrap()
        else {
            panic!("expected an SQS batch");
        };
        assert_eq!(items[0].request, Ok(request(only_mapping())));
        assert_eq!(items[1].message_id, "bad");
        assert_eq!(
            items[1].request.as_ref().unwrap_err().to_string(),
            "Records[1] (messageId \"bad\").body: not valid JSON: EOF while parsing a list at line 1 column 14"
        );
    }

    #[test]
    fn sqs_batch_with_one_bad_message_keeps_the_others() {
        let good = format!(r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}]}}"#);
        let unknown =
            format!(r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}],"priority":1}}"#);
        let event = sqs_event(&[("a", &good), ("b", &unknown), ("c", &good)]);
        let ParsedEvent::Sqs(items) = parse_event(event).unwrap() else {
            panic!("expected an SQS batch");
        };
        let outcome: Vec<(&str, bool)> = items
            .iter()
            .map(|item| (item.message_id.as_str(), item.request.is_ok()))
            .collect();
        assert_eq!(outcome, vec![("a", true), ("b", false), ("c", true)]);
        assert_eq!(
            items[1].request.as_ref().unwrap_err().to_string(),
            "Records[1] (messageId \"b\").body: unknown field `priority`; expected only mappings, memory_budget_mib, \
             concurrency, endpoint_url, force_path_style, storage_class"
        );
    }

    #[test]
    fn sqs_record_of_the_wrong_shape_fails_only_its_message() {
        let good = format!(r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}]}}"#);
        let mut event = sqs_event(&[("a", &good), ("b", &good)]);
        event["Records"][1]["body"] = serde_json::json!({"mappings": []});
        let ParsedEvent::Sqs(items) = parse_event(event).unwrap() else {
            panic!("expected an SQS batch");
        };
        assert!(items[0].request.is_ok());
        assert_eq!(items[1].message_id, "b");
        assert_eq!(
            items[1].request.as_ref().unwrap_err().to_string(),
            "Records[1]: invalid type: map, expected a string"
        );
    }

    #[test]
    fn sqs_record_without_message_id_fails_the_whole_batch() {
        let good = format!(r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}]}}"#);
        let mut event = sqs_event(&[("a", &good), ("b", "not json")]);
        event["Records"][1]
            .as_object_mut()
            .unwrap()
            .remove("messageId");
        assert_eq!(
            error_text(event),
            "Records[1]: has no messageId, so its failure cannot be reported on its own: failing the whole batch \
             (nothing was mirrored)"
        );
        let mut event = sqs_event(&[("a", &good)]);
        event["Records"][0]["messageId"] = Value::Null;
        event["Records"][0]["body"] = Value::Bool(false);
        assert!(error_text(event).starts_with("Records[0]: has no messageId"));
    }

    #[test]
    fn sqs_body_with_a_broken_sns_envelope_fails_its_message() {
        let event = sqs_event(&[("x", r#"{"Type": "Notification", "Message": "{}"}"#)]);
        let ParsedEvent::Sqs(items) = parse_event(event).unwrap() else {
            panic!("expected an SQS batch");
        };
        assert_eq!(
            items[0].request.as_ref().unwrap_err().to_string(),
            "Records[0] (messageId \"x\").body (SNS envelope): missing field `MessageId`"
        );
        let mut envelope: Value = serde_json::from_str(
            sample(include_str!("../events/sns-in-sqs.json"))["Records"][0]["body"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        envelope["Type"] = Value::String("SubscriptionConfirmation".to_owned());
        let event = sqs_event(&[("y", &envelope.to_string())]);
        let ParsedEvent::Sqs(items) = parse_event(event).unwrap() else {
            panic!("expected an SQS batch");
        };
        assert_eq!(
            items[0].request.as_ref().unwrap_err().to_string(),
            "Records[0] (messageId \"y\").body (SNS envelope).Type: SNS \"SubscriptionConfirmation\" messages carry \
             no request; only Notification messages do"
        );
        envelope["Type"] = Value::String("Notification".to_owned());
        envelope["Message"] = Value::String("[]".to_owned());
        let event = sqs_event(&[("z", &envelope.to_string())]);
        let ParsedEvent::Sqs(items) = parse_event(event).unwrap() else {
            panic!("expected an SQS batch");
        };
        assert_eq!(
            items[0].request.as_ref().unwrap_err().to_string(),
            "Records[0] (messageId \"z\").body.Message: expected a request object {\"mappings\": [...]}, got an array"
        );
    }

    #[test]
    fn sns_message_that_is_not_json_fails_the_event() {
        assert_eq!(
            error_text(sns_event("mirror everything")),
            "Records[0].Sns.Message: not valid JSON: expected value at line 1 column 1"
        );
    }

    #[test]
    fn sns_problems_fail_the_whole_event() {
        let good = format!(r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}]}}"#);
        let mut event = sns_event(&good);
        let second = event["Records"][0].clone();
        event["Records"].as_array_mut().unwrap().push(second);
        event["Records"][1]["Sns"]["Message"] =
            Value::String(r#"{"mappings":[{"source":"x"}]}"#.to_owned());
        assert_eq!(
            error_text(event),
            "Records[1].Sns.Message.mappings[0]: missing field `target`"
        );
        let mut event = sns_event(&good);
        event["Records"][0]["Sns"]
            .as_object_mut()
            .unwrap()
            .remove("Timestamp");
        assert_eq!(error_text(event), "Records[0]: missing field `Timestamp`");
    }

    #[test]
    fn hostile_input_gives_bounded_errors_without_panicking() {
        let long_key = "k".repeat(100_000);
        let mut object = Map::new();
        for index in 0..50 {
            object.insert(format!("{long_key}{index}"), Value::Null);
        }
        object.insert(
            "mappings".to_owned(),
            serde_json::json!([{"source": GIT, "target": TARGET}]),
        );
        let error = error_text(Value::Object(object));
        assert!(error.len() < 2 * MAX_QUOTED_CHARS, "{} bytes", error.len());
        let long_value = format!(
            r#"{{"mappings":[{{"source":"{}","target":"{TARGET}"}}]}}"#,
            "x".repeat(1 << 20)
        );
        let error = parse_request_text(&long_value, "body")
            .unwrap_err()
            .to_string();
        assert!(error.len() < 2 * MAX_QUOTED_CHARS, "{} bytes", error.len());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let error = parse_request_text(&deep, "body").unwrap_err().to_string();
        assert!(error.contains("recursion limit exceeded"), "{error}");
        let multibyte = "é".repeat(1000);
        assert!(bounded(multibyte).ends_with('…'));
    }

    #[test]
    fn remaining_time_treats_past_and_absurd_deadlines_as_unknown() {
        let now_ms = 1_763_916_786_000;
        assert_eq!(
            remaining_time(now_ms + 5_000, now_ms),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            remaining_time(now_ms + 900_000, now_ms),
            Some(MAX_INVOCATION)
        );
        assert_eq!(
            remaining_time(600_000, now_ms),
            None,
            "the emulator's relative deadline"
        );
        assert_eq!(remaining_time(now_ms - 1, now_ms), None);
        assert_eq!(remaining_time(now_ms + 900_001, now_ms), None);
        assert_eq!(remaining_time(u64::MAX, now_ms), None);
        assert_eq!(remaining_time(0, now_ms), None);
    }

    #[test]
    fn safety_margin_is_a_tenth_within_bounds() {
        assert_eq!(
            safety_margin(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            safety_margin(Duration::from_secs(60)),
            Duration::from_secs(6)
        );
        assert_eq!(
            safety_margin(Duration::from_secs(900)),
            Duration::from_secs(10)
        );
        assert_eq!(safety_margin(Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn mirror_deadline_comes_from_epoch_milliseconds() {
        let now = UNIX_EPOCH + Duration::from_millis(1_763_916_786_000);
        let instant = Instant::now();
        let deadline = mirror_deadline(1_763_916_786_000 + 60_000, now, instant).unwrap();
        assert_eq!(deadline - instant, Duration::from_secs(54));
        assert_eq!(
            mirror_deadline(1_763_916_786_000 + 500, now, instant),
            Some(instant)
        );
        assert_eq!(mirror_deadline(600_000, now, instant), None);
    }

    fn limits(memory: Option<u64>) -> Limits {
        Limits {
            function_memory_mib: memory,
            deadline: None,
        }
    }

    #[test]
    fn memory_budget_defaults_to_sixty_percent_of_the_function() {
        let resolved = resolve_options(&RequestOptions::default(), &limits(Some(1024))).unwrap();
        assert_eq!(resolved.memory_budget, 614 << 20);
        let resolved = resolve_options(&RequestOptions::default(), &limits(None)).unwrap();
        assert_eq!(
            resolved.memory_budget,
            MirrorOptions::default().memory_budget
        );
        let asked = RequestOptions {
            memory_budget_mib: Some(900),
            ..RequestOptions::default()
        };
        assert_eq!(
            resolve_options(&asked, &limits(Some(1024)))
                .unwrap()
                .memory_budget,
            900 << 20
        );
        assert_eq!(
            resolve_options(&asked, &limits(Some(900)))
                .unwrap_err()
                .to_string(),
            "memory_budget_mib: 900 MiB does not fit in the function's 900 MiB of memory"
        );
    }

    #[test]
    fn request_options_reach_the_mirror_options() {
        let options = RequestOptions {
            memory_budget_mib: None,
            concurrency: Some(7),
            endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
            force_path_style: Some(true),
            storage_class: Some("STANDARD_IA".to_owned()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let resolved = resolve_options(
            &options,
            &Limits {
                function_memory_mib: None,
                deadline: Some(deadline),
            },
        )
        .unwrap();
        assert_eq!(resolved.concurrency, 7);
        assert_eq!(
            resolved.s3.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert!(resolved.s3.force_path_style);
        assert_eq!(resolved.s3.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(resolved.deadline, Some(deadline));
    }

    fn report(mapping: &Mapping, error: Option<&str>) -> RepoReport {
        RepoReport {
            source: mapping.source.clone(),
            target: mapping.target.clone(),
            path: MirrorPath::Full,
            refs: 1,
            objects: 3,
            pack_bytes: 100,
            store_requests: 8,
            packs_deleted: 0,
            duration_ms: 5,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn plan_groups_by_options_and_merges_duplicate_mappings() {
        let fast = RequestOptions {
            concurrency: Some(8),
            ..RequestOptions::default()
        };
        let requests = [
            request(vec![mapping(GIT, TARGET), mapping(GIT_2, TARGET_2)]),
            Request {
                mappings: vec![mapping(GIT, TARGET)],
                options: fast.clone(),
            },
            request(vec![mapping(GIT_2, TARGET_2), mapping(GIT, TARGET)]),
        ];
        let plan = Plan::new(&requests);
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(
            plan.groups[0].mappings,
            vec![mapping(GIT, TARGET), mapping(GIT_2, TARGET_2)]
        );
        assert_eq!(plan.groups[1].options, fast);
        assert_eq!(
            plan.slots,
            vec![(0, vec![0, 1]), (1, vec![0]), (0, vec![1, 0])]
        );
        let outcomes = vec![
            Some(vec![
                report(&plan.groups[0].mappings[0], None),
                report(&plan.groups[0].mappings[1], Some("boom")),
            ]),
            None,
        ];
        let errors = |index| -> Vec<Option<String>> {
            plan.reports_of(index, &outcomes)
                .into_iter()
                .map(|report| report.error)
                .collect()
        };
        assert_eq!(errors(0), vec![None, Some("boom".to_owned())]);
        assert_eq!(errors(2), vec![Some("boom".to_owned()), None]);
        assert_eq!(
            errors(1),
            Vec::<Option<String>>::new(),
            "its group did not run"
        );
    }

    #[test]
    fn s3_uris_split_into_bucket_and_key() {
        assert_eq!(
            parse_s3_uri("s3://bucket/config/mappings.json"),
            Some(("bucket", "config/mappings.json"))
        );
        assert_eq!(parse_s3_uri("s3://bucket/"), None);
        assert_eq!(parse_s3_uri("s3://bucket"), None);
        assert_eq!(parse_s3_uri("https://bucket/key"), None);
    }

    fn event(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    #[tokio::test]
    async fn malformed_events_fail_the_invocation_as_invalid_events() {
        let error = handle_with(
            event(sample(include_str!("../events/malformed.json"))),
            &Environment::default(),
        )
        .await
        .unwrap_err();
        assert!(format!("{error:?}").starts_with("InvalidEvent: event.mappings[1]: unknown field"));
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "InvalidEvent");
        assert!(diagnostic
            .error_message
            .contains("unknown field `destination`"));
    }

    #[tokio::test]
    async fn schedule_without_configuration_is_a_configuration_error() {
        let schedule = sample(include_str!("../events/schedule-without-input.json"));
        let error = handle_with(event(schedule.clone()), &Environment::default())
            .await
            .unwrap_err();
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "InvalidConfiguration");
        assert!(
            diagnostic.error_message.contains("MIRROR_MAPPINGS"),
            "{}",
            diagnostic.error_message
        );
        let both = Environment {
            mappings: Some("[]".to_owned()),
            mappings_s3_uri: Some("s3://bucket/key".to_owned()),
        };
        let error = handle_with(event(schedule.clone()), &both)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "mapping configuration: both MIRROR_MAPPINGS and MIRROR_MAPPINGS_S3_URI are set; set only one"
        );
        let broken = Environment {
            mappings: Some(r#"{"mappings": [{"source": "x"}]}"#.to_owned()),
            mappings_s3_uri: None,
        };
        let error = handle_with(event(schedule.clone()), &broken)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "MIRROR_MAPPINGS.mappings[0]: missing field `target`"
        );
        let bad_uri = Environment {
            mappings: None,
            mappings_s3_uri: Some("s3://bucket-only".to_owned()),
        };
        let error = handle_with(event(schedule), &bad_uri).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "mapping configuration: MIRROR_MAPPINGS_S3_URI \"s3://bucket-only\": expected s3://bucket/key"
        );
    }

    #[tokio::test]
    async fn a_budget_that_does_not_fit_fails_before_anything_runs() {
        let mut context = lambda_runtime::Context::default();
        context.env_config = std::sync::Arc::new(lambda_runtime::Config {
            memory: 128,
            ..lambda_runtime::Config::default()
        });
        let payload = serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "memory_budget_mib": 512});
        let error = handle_with(LambdaEvent::new(payload, context), &Environment::default())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "memory_budget_mib: 512 MiB does not fit in the function's 128 MiB of memory"
        );
    }

    #[tokio::test]
    async fn sqs_messages_that_cannot_run_are_reported_without_mirroring() {
        // Neither message reaches the mirror (one is not JSON, the other asks for more memory than the function
        // has), so this runs without any server; the integration tests cover failed mirrors.
        let too_big = format!(
            r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}],"memory_budget_mib":512}}"#
        );
        let payload = sqs_event(&[("broken", "{"), ("too-big", &too_big)]);
        let mut context = lambda_runtime::Context::default();
        context.env_config = std::sync::Arc::new(lambda_runtime::Config {
            memory: 256,
            ..lambda_runtime::Config::default()
        });
        let response = handle_with(LambdaEvent::new(payload, context), &Environment::default())
            .await
            .unwrap();
        assert_eq!(
            response,
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": "broken"},
                {"itemIdentifier": "too-big"}
            ]})
        );
    }
}
