//! Fan-out: a request with `"fan_out": true` is split into one SQS message per mapping, and nothing is mirrored.
//!
//! Each message is a request of its own: the one mapping (with its `token_secret`, the mapping's or the
//! request's: a name, never a value), and the request's options as given. The queue named by `MIRROR_QUEUE_URL`
//! feeds the function back, so every repository runs in its own invocation with the whole time limit, and is
//! retried and dead-lettered alone. Messages are sent with `SendMessageBatch`, 10 per call; entries that fail
//! (or whose call fails) are sent again, up to [`MAX_SEND_ATTEMPTS`] times in all, and those still failing are
//! listed in the summary, which then fails the invocation. Identical messages (the same mapping with the same
//! options and secret, e.g. listed twice) are sent once. A source URL with credentials in it is refused here:
//! they would travel in the message (and any dead letter); `token_secret` is the way to reach a private source.

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::aws::{QueueEntry, Services};
use super::event::{invalid, EventError, Request, TOKEN_SECRET};
use super::limits::{resolve_options, Limits};
use super::HandlerError;
use crate::upstream::redact_str;

/// Environment variable with the URL of the queue that fanned-out messages go to.
pub const QUEUE_URL_ENV: &str = "MIRROR_QUEUE_URL";
/// Most entries of one `SendMessageBatch` call (an SQS limit).
pub const MAX_BATCH_ENTRIES: usize = 10;
/// How often an entry is sent before it is reported as failed.
pub const MAX_SEND_ATTEMPTS: usize = 3;

/// One message of a fan-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The request it carries, as JSON text.
    pub body: String,
    /// Its mapping's source, redacted, for the summary.
    pub source: String,
    /// Its mapping's target.
    pub target: String,
}

/// The messages of `requests`: one request per mapping, identical ones once; and how many were dropped as
/// duplicates. Fails on a source URL with credentials in it, naming the mapping by its path in the event.
pub fn fan_out_messages(requests: &[Request]) -> Result<(Vec<Message>, usize), EventError> {
    let mut messages: Vec<Message> = Vec::new();
    let mut duplicates = 0;
    for (request_index, request) in requests.iter().enumerate() {
        for (mapping_index, (mapping, secret)) in request
            .mappings
            .iter()
            .zip(&request.token_secrets)
            .enumerate()
        {
            let has_credentials = url::Url::parse(&mapping.source)
                .is_ok_and(|url| !url.username().is_empty() || url.password().is_some());
            if has_credentials {
                return Err(invalid(
                    &format!("requests[{request_index}].mappings[{mapping_index}].source"),
                    "has credentials in it, which a fan-out would write into a queued message: name a \
                     Secrets Manager secret with \"token_secret\" instead",
                ));
            }
            let mut mapping_fields = Map::new();
            mapping_fields.insert("source".to_owned(), json!(mapping.source));
            mapping_fields.insert("target".to_owned(), json!(mapping.target));
            if let Some(secret) = secret {
                mapping_fields.insert(TOKEN_SECRET.to_owned(), json!(secret));
            }
            let mut message = request.raw_options.clone();
            message.insert(
                "mappings".to_owned(),
                Value::Array(vec![Value::Object(mapping_fields)]),
            );
            let body = Value::Object(message).to_string();
            if messages.iter().any(|known| known.body == body) {
                duplicates += 1;
            } else {
                messages.push(Message {
                    body,
                    source: redact_str(&mapping.source),
                    target: mapping.target.clone(),
                });
            }
        }
    }
    Ok((messages, duplicates))
}

/// Queues one message per mapping of `requests` (all with `fan_out`) on `queue_url` and answers with a summary
/// `{"fan_out": {"queued", "duplicates", "failed": [{"source", "target", "error"}]}}`; fails, with that summary, if any
/// message could not be sent. Every request's options must fit the function (as if it ran them) before anything
/// is sent.
pub(super) async fn fan_out<S: Services>(
    services: &S,
    queue_url: Option<&str>,
    requests: &[Request],
    limits: &Limits,
) -> Result<Value, HandlerError> {
    let queue_url = queue_url.ok_or_else(|| {
        EventError::Configuration(format!(
            "a request with \"fan_out\": true needs {QUEUE_URL_ENV} (the queue that feeds this function) in the \
             function's environment"
        ))
    })?;
    for request in requests {
        // Each message it queues runs one mapping.
        resolve_options(&request.options, limits, 1)?;
    }
    let (messages, duplicates) = fan_out_messages(requests)?;
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    let mut last_error: Vec<Option<String>> = vec![None; messages.len()];
    for attempt in 1..=MAX_SEND_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if attempt > 1 {
            warn!(
                attempt,
                messages = pending.len(),
                "sending the messages that failed again"
            );
        }
        let mut still_pending = Vec::new();
        for chunk in pending.chunks(MAX_BATCH_ENTRIES) {
            let entries: Vec<QueueEntry> = chunk
                .iter()
                .map(|&index| QueueEntry {
                    id: index.to_string(),
                    body: messages[index].body.clone(),
                })
                .collect();
            match services.send_message_batch(queue_url, &entries).await {
                Ok(failed) => {
                    for entry in failed {
                        // An id the call did not send is ignored: only ours can fail.
                        if let Some(&index) = chunk.iter().find(|&&i| i.to_string() == entry.id) {
                            last_error[index] = Some(entry.reason);
                            still_pending.push(index);
                        }
                    }
                }
                Err(error) => {
                    for &index in chunk {
                        last_error[index] = Some(error.to_string());
                        still_pending.push(index);
                    }
                }
            }
        }
        still_pending.sort_unstable();
        still_pending.dedup();
        pending = still_pending;
    }
    let failed: Vec<Value> = pending
        .iter()
        .map(|&index| {
            json!({
                "source": messages[index].source,
                "target": messages[index].target,
                "error": last_error[index].clone().unwrap_or_default(),
            })
        })
        .collect();
    let queued = messages.len() - failed.len();
    info!(
        queued,
        duplicates,
        failed = failed.len(),
        "fan-out finished"
    );
    let summary = json!({
        "fan_out": { "queued": queued, "duplicates": duplicates, "failed": failed }
    });
    if failed.is_empty() {
        Ok(summary)
    } else {
        Err(HandlerError::FanOutFailed {
            summary: summary.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
