//! What the Lambda front's unit tests share: the placeholder values, the sample events of `events/` filled in
//! with them, and small builders of mappings, requests, reports and SQS/SNS events.

use serde_json::Value;

use super::Request;
use crate::options::{Mapping, Overrides};
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
    Request {
        mappings,
        options: Overrides::default(),
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
        objects: 3,
        pack_bytes: 100,
        store_requests: 8,
        packs_deleted: 0,
        duration_ms: 5,
        error: error.map(str::to_owned),
        repaired: None,
    }
}
