//! What the Lambda front's unit tests share: the placeholder values, the sample events of `events/` filled in
//! with them, small builders of mappings, requests, reports and SQS/SNS events, and fakes of the mirror and of the
//! AWS services.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use lambda_runtime::LambdaEvent;
use serde_json::Value;

use super::{
    handle_with_services, FailedEntry, FunctionConfig, Mirror, QueueEntry, Request, ServiceError,
    Services,
};
use crate::options::{Mapping, MirrorOptions, Overrides};
use crate::report::{RepoReport, RunKind};

pub(super) const GIT: &str = "http://127.0.0.1:8080/repo-1";
pub(super) const GIT_2: &str = "http://127.0.0.1:8080/repo-2";
pub(super) const TARGET: &str = "s3://bucket/mirrors/repo-1";
pub(super) const TARGET_2: &str = "s3://bucket/mirrors/repo-2";

/// The text of `events/<name>`, placeholders left in.
pub(super) fn sample_text(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `events/<name>` with its placeholders filled in.
pub(super) fn sample(name: &str) -> Value {
    let text = sample_text(name)
        .replace("{{GIT_URL}}", GIT)
        .replace("{{GIT_URL_2}}", GIT_2)
        .replace("{{GIT_MISSING_URL}}", "http://127.0.0.1:8080/missing")
        .replace("{{S3_TARGET}}", TARGET)
        .replace("{{S3_TARGET_2}}", TARGET_2)
        .replace("{{S3_ENDPOINT}}", "http://127.0.0.1:5000");
    serde_json::from_str(&text).expect("sample event is JSON")
}

pub(super) fn mapping(source: &str, target: &str) -> Mapping {
    Mapping {
        source: source.to_owned(),
        target: target.to_owned(),
    }
}

pub(super) fn only_mapping() -> Vec<Mapping> {
    vec![mapping(GIT, TARGET)]
}

pub(super) fn request(mappings: Vec<Mapping>) -> Request {
    request_with(mappings, Overrides::default())
}

/// A request for `mappings` with `options`, no secret and no fan-out.
pub(super) fn request_with(mappings: Vec<Mapping>, options: Overrides) -> Request {
    Request {
        token_secrets: vec![None; mappings.len()],
        mappings,
        options,
        fan_out: false,
        raw_options: serde_json::Map::new(),
    }
}

/// An SQS batch of `(messageId, body)` messages.
pub(super) fn sqs_event(bodies: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| serde_json::json!({"messageId": id, "body": body, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::json!({ "Records": records })
}

/// Hands an SQS batch of `(messageId, body)` messages to the handler and returns the ids of the messages it
/// reports as failed (SQS partial batch response), checking the response has that shape and nothing else.
pub(super) async fn failed_sqs_messages(
    bodies: &[(&str, &str)],
    config: &FunctionConfig,
    mirror: &FakeMirror,
    services: &FakeServices,
) -> Vec<String> {
    let response = handle_with_services(event(sqs_event(bodies)), config, mirror, services)
        .await
        .expect("an SQS batch is answered with its failures, not an error");
    let failures = response
        .as_object()
        .filter(|fields| fields.len() == 1)
        .and_then(|fields| fields.get("batchItemFailures"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("not a partial batch response: {response}"));
    failures
        .iter()
        .map(|failure| {
            failure["itemIdentifier"]
                .as_str()
                .unwrap_or_else(|| panic!("no item identifier in {failure}"))
                .to_owned()
        })
        .collect()
}

/// `events/sns.json` with `message` as its message.
pub(super) fn sns_event(message: &str) -> Value {
    let mut event = sample("sns.json");
    event["Records"][0]["Sns"]["Message"] = Value::String(message.to_owned());
    event
}

/// The report of a full run of `mapping`, failed with `error` if there is one.
pub(super) fn report(mapping: &Mapping, error: Option<&str>) -> RepoReport {
    RepoReport {
        source: mapping.source.clone(),
        target: mapping.target.clone(),
        kind: RunKind::Full,
        refs: 1,
        advertisement_bytes: 0,
        objects: 3,
        pack_bytes: 100,
        store_requests: 8,
        packs_deleted: 0,
        duration_ms: 5,
        error: error.map(str::to_owned),
        lfs: None,
        repaired: None,
    }
}

/// A mirror that fails the mappings whose source is in `failing` and records every call.
#[derive(Default)]
pub(super) struct FakeMirror {
    failing: Vec<&'static str>,
    calls: Mutex<Vec<(Vec<Mapping>, MirrorOptions)>>,
}

impl FakeMirror {
    pub(super) fn failing(sources: &[&'static str]) -> FakeMirror {
        FakeMirror {
            failing: sources.to_vec(),
            ..FakeMirror::default()
        }
    }

    /// The mappings and options of every call so far, in call order.
    pub(super) fn calls(&self) -> Vec<(Vec<Mapping>, MirrorOptions)> {
        self.calls.lock().unwrap().clone()
    }

    /// The mappings of every call so far.
    pub(super) fn mirrored(&self) -> Vec<Vec<Mapping>> {
        self.calls()
            .into_iter()
            .map(|(mappings, _)| mappings)
            .collect()
    }

    /// The options of the only call so far.
    pub(super) fn only_options(&self) -> MirrorOptions {
        let calls = self.calls();
        assert_eq!(calls.len(), 1, "expected one mirror call");
        calls[0].1.clone()
    }
}

impl Mirror for FakeMirror {
    fn mirror(
        &self,
        mappings: &[Mapping],
        options: &MirrorOptions,
    ) -> impl Future<Output = Vec<RepoReport>> + Send {
        self.calls
            .lock()
            .unwrap()
            .push((mappings.to_vec(), options.clone()));
        let reports = mappings
            .iter()
            .map(|mapping| {
                let failed = self.failing.contains(&mapping.source.as_str());
                report(mapping, failed.then_some("fake failure"))
            })
            .collect();
        std::future::ready(reports)
    }
}

pub(super) fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, lambda_runtime::Context::default())
}

/// Secrets Manager and SQS as the handler sees them: secrets from a map, and a queue that records every
/// `SendMessageBatch` call and fails chosen entries or calls.
#[derive(Default)]
pub(super) struct FakeServices {
    /// Secret id → its `SecretString`; others are not found.
    pub(super) secrets: HashMap<String, String>,
    /// Every secret read, in order.
    pub(super) reads: Mutex<Vec<String>>,
    /// Entries whose body contains the text fail that many more times (`usize::MAX`: always).
    pub(super) failing_entries: Mutex<Vec<(String, usize)>>,
    /// This many more calls fail as a whole.
    pub(super) failing_calls: Mutex<usize>,
    /// The entries of every call, failed or not, in call order.
    pub(super) calls: Mutex<Vec<Vec<QueueEntry>>>,
    /// The bodies that were sent successfully, in order.
    pub(super) sent: Mutex<Vec<String>>,
}

impl FakeServices {
    /// Services whose secret `id` holds `value`.
    pub(super) fn with_secret(id: &str, value: &str) -> FakeServices {
        FakeServices {
            secrets: HashMap::from([(id.to_owned(), value.to_owned())]),
            ..FakeServices::default()
        }
    }

    /// The bodies sent successfully.
    pub(super) fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

impl Services for FakeServices {
    fn secret_string(&self, id: &str) -> impl Future<Output = Result<String, ServiceError>> + Send {
        self.reads.lock().unwrap().push(id.to_owned());
        let value = self.secrets.get(id).cloned().ok_or_else(|| ServiceError {
            operation: "Secrets Manager GetSecretValue",
            detail: "ResourceNotFoundException: Secrets Manager can't find the specified secret."
                .to_owned(),
        });
        std::future::ready(value)
    }

    fn send_message_batch(
        &self,
        _queue_url: &str,
        entries: &[QueueEntry],
    ) -> impl Future<Output = Result<Vec<FailedEntry>, ServiceError>> + Send {
        assert!(entries.len() <= 10, "{} entries in one call", entries.len());
        self.calls.lock().unwrap().push(entries.to_vec());
        let result = {
            let mut failing_calls = self.failing_calls.lock().unwrap();
            if *failing_calls > 0 {
                *failing_calls -= 1;
                Err(ServiceError {
                    operation: "SQS SendMessageBatch",
                    detail: "dispatch failure: connection reset".to_owned(),
                })
            } else {
                let mut failing = self.failing_entries.lock().unwrap();
                let mut failed = Vec::new();
                for entry in entries {
                    let rule = failing
                        .iter_mut()
                        .find(|(text, times)| *times > 0 && entry.body.contains(text.as_str()));
                    match rule {
                        Some((_, times)) => {
                            *times = times.saturating_sub(usize::from(*times != usize::MAX));
                            failed.push(FailedEntry {
                                id: entry.id.clone(),
                                reason: "InternalError: try again".to_owned(),
                            });
                        }
                        None => self.sent.lock().unwrap().push(entry.body.clone()),
                    }
                }
                Ok(failed)
            }
        };
        std::future::ready(result)
    }
}
