//! The function's own mapping configuration, for EventBridge schedules without input.
//!
//! Such a schedule carries no request, so the request comes from the function's environment: `MIRROR_MAPPINGS`
//! (the JSON request, or a bare array of mappings) or `MIRROR_MAPPINGS_S3_URI` (`s3://bucket/key` of such a
//! document, read on every invocation so that editing the object needs no redeploy). Exactly one of them must be
//! set. `MIRROR_SCHEDULE_FAN_OUT=true` fans that request out (one queued message per mapping) instead of
//! mirroring it in the schedule's invocation. This module reads and parses that text; it does not run anything. The S3 read goes through the crate's
//! [`store`](crate::store) layer, like every other S3 call.

use serde_json::{Map, Value};

use super::event::{bounded, parse_json, parse_request, parse_request_object, quote};
use super::{EventError, Request};
use crate::store::{S3Options, S3Store, Store};

/// Environment variable holding the mappings for schedules without input: the JSON request or an array of
/// mappings.
pub const MAPPINGS_ENV: &str = "MIRROR_MAPPINGS";
/// Environment variable naming an S3 object (`s3://bucket/key`) that holds what [`MAPPINGS_ENV`] would.
pub const MAPPINGS_S3_URI_ENV: &str = "MIRROR_MAPPINGS_S3_URI";

/// Environment variable that makes a schedule without input fan its configured request out (`true` or `false`).
pub const SCHEDULE_FAN_OUT_ENV: &str = "MIRROR_SCHEDULE_FAN_OUT";

/// Largest configuration document read from S3.
const MAX_CONFIG_BYTES: usize = 1 << 20;

/// The function's own configuration (the settings of the deployed function, not of a request), which
/// [`handle`](super::handle) reads from the process environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionConfig {
    /// [`MAPPINGS_ENV`], if set and not empty.
    pub mappings: Option<String>,
    /// [`MAPPINGS_S3_URI_ENV`], if set and not empty.
    pub mappings_s3_uri: Option<String>,
    /// [`QUEUE_URL_ENV`](super::QUEUE_URL_ENV), if set and not empty: where a fan-out sends its messages.
    pub queue_url: Option<String>,
    /// [`SCHEDULE_FAN_OUT_ENV`] is `true`: a schedule without input fans its request out, as if it said
    /// `"fan_out": true`.
    pub schedule_fan_out: bool,
}

impl FunctionConfig {
    /// Reads the configuration from the process environment; empty variables count as unset.
    pub fn from_process() -> FunctionConfig {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        FunctionConfig {
            mappings: read(MAPPINGS_ENV),
            mappings_s3_uri: read(MAPPINGS_S3_URI_ENV),
            queue_url: read(super::QUEUE_URL_ENV),
            schedule_fan_out: read(SCHEDULE_FAN_OUT_ENV)
                .is_some_and(|value| value.trim().eq_ignore_ascii_case("true")),
        }
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

/// The request configured for schedules without input, fanned out if the configuration says so.
pub(super) async fn configured_request(config: &FunctionConfig) -> Result<Request, EventError> {
    let mut request = read_configured_request(config).await?;
    request.fan_out |= config.schedule_fan_out;
    Ok(request)
}

async fn read_configured_request(config: &FunctionConfig) -> Result<Request, EventError> {
    match (&config.mappings, &config.mappings_s3_uri) {
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

/// Reads a small UTF-8 object through the crate's store layer, with the AWS default configuration chain (so
/// `AWS_ENDPOINT_URL_S3` works). The store reads an object whole, so a document larger than
/// [`MAX_CONFIG_BYTES`] is refused once read; the object is the operator's own, in the function's configuration.
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
    let store = S3Store::connect(bucket, "", &S3Options::default())
        .await
        .map_err(|error| fail(error.to_string()))?;
    let object = store
        .get(key)
        .await
        .map_err(|error| fail(error.to_string()))?
        .ok_or_else(|| fail("no such object (NoSuchKey)".to_owned()))?;
    if object.body.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    std::str::from_utf8(&object.body)
        .map(str::to_owned)
        .map_err(|_| fail("not UTF-8 text".to_owned()))
}

#[cfg(test)]
mod tests;
