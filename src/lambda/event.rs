//! Lambda events → requests: pure parsing of the payloads the function receives, without mirroring anything.
//!
//! A request is the JSON object `{"mappings": [{"source": URL, "target": "s3://bucket/prefix"}], ...options}`.
//! Events that carry requests: a manual invoke or an EventBridge schedule with a constant input (the payload is
//! the request), an EventBridge `Scheduled Event` without input (the request comes from the function's
//! configuration, see `settings.rs`), SNS (`Records[].Sns.Message`), and SQS (`Records[].body`, or an SNS
//! envelope whose `Message` holds it, for a queue subscribed to a topic without raw message delivery).
//!
//! Every field is checked here: unknown fields, wrong types and out-of-range values are errors whose path names
//! the field at fault (`Records[1] (messageId "b").body.mappings[0].target`), and every piece of input-derived
//! text in them is bounded, so a hostile event cannot make an error message huge. This module stops at
//! [`ParsedEvent`]: what runs, and how failures are reported, is `batch.rs`'s job.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::{SnsMessage, SnsRecord};
use aws_lambda_events::sqs::SqsMessage;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::options::{http_url_problem, Mapping, Overrides};

/// Longest piece of input-derived text quoted in an error message.
const MAX_QUOTED_CHARS: usize = 300;
/// Most unknown field names listed in one error message.
const MAX_LISTED_FIELDS: usize = 10;

const MAPPING_FIELDS: [&str; 3] = ["source", "target", TOKEN_SECRET];

/// The field naming the Secrets Manager secret that holds a source token, in a mapping or a request.
pub const TOKEN_SECRET: &str = "token_secret";
/// The request field that asks to queue one message per mapping instead of mirroring.
pub const FAN_OUT: &str = "fan_out";
/// Longest secret id accepted: the length of the longest Secrets Manager ARN.
const MAX_SECRET_ID_CHARS: usize = 2048;

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

/// One request: the mappings to mirror and the options that apply to them.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The mappings, in the order given.
    pub mappings: Vec<Mapping>,
    /// The options given with them: the request's fields other than `mappings`, `token_secret` and `fan_out`.
    pub options: Overrides,
    /// Per mapping, in the same order: the Secrets Manager secret (ARN or name) whose value is its source's token,
    /// the mapping's own `token_secret`, else the request's; `None` for a source that needs none. Only the name
    /// travels: the value is read when the mapping runs.
    pub token_secrets: Vec<Option<String>>,
    /// `fan_out`: queue one message per mapping instead of mirroring.
    pub fan_out: bool,
    /// The option fields as given (the [`Overrides`] fields present), for the messages of a fan-out, which carry
    /// the request's options unchanged.
    pub raw_options: Map<String, Value>,
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
    let (request, path) = if value.get("Type").is_some() {
        let envelope_path = format!("{path} (SNS envelope)");
        let envelope: SnsMessage = from_value(value, &envelope_path)?;
        require_notification(&envelope.sns_message_type, &format!("{envelope_path}.Type"))?;
        let path = format!("{path}.Message");
        (parse_request_text(&envelope.message, &path)?, path)
    } else {
        (parse_request(value, &path)?, path)
    };
    if request.fan_out {
        // The queue is where fanned-out messages go: a message that fans out again would never end.
        return Err(invalid(
            &format!("{path}.{FAN_OUT}"),
            "is not accepted in an SQS message: each message is mirrored where it lands",
        ));
    }
    Ok(request)
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

pub(super) fn parse_request(value: Value, path: &str) -> Result<Request, EventError> {
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

pub(super) fn parse_request_object(
    mut object: Map<String, Value>,
    path: &str,
) -> Result<Request, EventError> {
    let fields: Vec<&str> = ["mappings", TOKEN_SECRET, FAN_OUT]
        .into_iter()
        .chain(Overrides::FIELDS)
        .collect();
    reject_unknown_fields(&object, &fields, path)?;
    let request_secret = token_secret(&mut object, path)?;
    let fan_out = optional_field(&mut object, FAN_OUT, path)?.unwrap_or(false);
    let mappings_path = format!("{path}.mappings");
    let mappings: Vec<(Mapping, Option<String>)> = match object.remove("mappings") {
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
    let raw_options = object.clone();
    let options = parse_overrides(object, path)?;
    if options.lfs_url.is_some() && mappings.len() > 1 {
        return Err(invalid(
            &format!("{path}.lfs_url"),
            "names the LFS server of one repository: give it in a request with one mapping",
        ));
    }
    let (mappings, token_secrets) = mappings
        .into_iter()
        .map(|(mapping, secret)| (mapping, secret.or_else(|| request_secret.clone())))
        .unzip();
    Ok(Request {
        mappings,
        options,
        token_secrets,
        fan_out,
        raw_options,
    })
}

/// Takes the optional `token_secret` field out of `object`: a Secrets Manager ARN or name, checked for the
/// characters those may hold.
fn token_secret(object: &mut Map<String, Value>, path: &str) -> Result<Option<String>, EventError> {
    let Some(id) = optional_field::<String>(object, TOKEN_SECRET, path)? else {
        return Ok(None);
    };
    let path = format!("{path}.{TOKEN_SECRET}");
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@:-".contains(c);
    if id.is_empty() || id.chars().count() > MAX_SECRET_ID_CHARS {
        return Err(invalid(
            &path,
            format!(
                "must be a Secrets Manager ARN or name of 1 to {MAX_SECRET_ID_CHARS} characters"
            ),
        ));
    }
    if !id.chars().all(allowed) {
        return Err(invalid(
            &path,
            format!(
                "{} is not a Secrets Manager ARN or name (letters, digits and /_+=.@:- only)",
                quote(&id)
            ),
        ));
    }
    Ok(Some(id))
}

/// A request's options: its fields other than `mappings` (none unknown by now), with errors that name the field.
fn parse_overrides(object: Map<String, Value>, path: &str) -> Result<Overrides, EventError> {
    let object = Value::Object(object);
    let overrides = Overrides::deserialize(&object).map_err(|error| {
        // serde's message does not say which field it is about: find the first one that fails on its own.
        Overrides::FIELDS
            .iter()
            .find_map(|&name| {
                let alone = Map::from_iter([(name.to_owned(), object.get(name)?.clone())]);
                let error = Overrides::deserialize(&Value::Object(alone)).err()?;
                Some(invalid(&format!("{path}.{name}"), error.to_string()))
            })
            .unwrap_or_else(|| invalid(path, error.to_string()))
    })?;
    overrides
        .validate()
        .map_err(|error| invalid(&format!("{path}.{}", error.field), error.problem))?;
    Ok(overrides)
}

/// One mapping and its own `token_secret`, if it names one.
fn parse_mapping(value: Value, path: &str) -> Result<(Mapping, Option<String>), EventError> {
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
    let secret = token_secret(&mut object, path)?;
    let source: String = required_field(&mut object, "source", path)?;
    let target: String = required_field(&mut object, "target", path)?;
    if let Some(problem) = http_url_problem(&source) {
        return Err(invalid(&format!("{path}.source"), problem));
    }
    let bucket = target
        .strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or_default());
    if bucket.is_none_or(str::is_empty) {
        return Err(invalid(
            &format!("{path}.target"),
            format!(
                "{} is not an s3://bucket/prefix URL (the Lambda function has no disk for a local target)",
                quote(&crate::upstream::redact_str(&target))
            ),
        ));
    }
    Ok((Mapping { source, target }, secret))
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
    // What came from the event is bounded; the list of allowed fields is ours, and a reader needs it whole.
    let found = bounded(format!(
        "unknown field{} {}",
        if unknown.len() == 1 { "" } else { "s" },
        list_names(unknown.iter().map(|key| key.as_str())),
    ));
    Err(EventError::Invalid {
        path: path.to_owned(),
        problem: format!("{found}; expected only {}", allowed.join(", ")),
    })
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

pub(super) fn parse_json(text: &str, path: &str) -> Result<Value, EventError> {
    serde_json::from_str(text).map_err(|error| EventError::NotJson {
        path: path.to_owned(),
        problem: bounded(error.to_string()),
    })
}

pub(super) fn invalid(path: &str, problem: impl Into<String>) -> EventError {
    EventError::Invalid {
        path: path.to_owned(),
        problem: bounded(problem.into()),
    }
}

/// Input-derived text made safe for an error line and cut to [`MAX_QUOTED_CHARS`], so a hostile event cannot make
/// error messages huge or break log lines.
pub(super) fn bounded(text: impl AsRef<str>) -> String {
    crate::text::untrusted(text.as_ref().as_bytes(), MAX_QUOTED_CHARS)
}

/// [`bounded`] text in quotes.
pub(super) fn quote(text: &str) -> String {
    format!("\"{}\"", bounded(text))
}

fn list_names<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut listed: Vec<String> = names
        .take(MAX_LISTED_FIELDS)
        .map(|name| format!("`{}`", bounded(name)))
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

#[cfg(test)]
mod tests;
