//! Fan-out with a fake queue: one message per mapping, batches of 10, retries, duplicates, and messages that come
//! back through the function's own SQS path as requests for one mapping each. Nothing is mirrored.

use serde_json::{json, Value};

use super::super::test_support::*;
use super::super::{
    handle_with_services, parse_event, FunctionConfig, HandlerError, ParsedEvent, SqsItem,
};
use super::*;
use crate::options::Mapping;

const QUEUE: &str = "http://127.0.0.1:5000/123456789012/mirror-requests";

fn config() -> FunctionConfig {
    FunctionConfig {
        queue_url: Some(QUEUE.to_owned()),
        ..FunctionConfig::default()
    }
}

/// A fan-out request of `count` mappings `repo-N` → `s3://bucket/mirrors/repo-N`, with options.
fn schedule(count: usize) -> Value {
    let mappings: Vec<Value> = (0..count)
        .map(|n| {
            json!({
                "source": format!("http://127.0.0.1:8080/repo-{n}"),
                "target": format!("s3://bucket/mirrors/repo-{n}"),
            })
        })
        .collect();
    json!({
        "mappings": mappings,
        "fan_out": true,
        "concurrency": 2,
        "ref_prefixes": ["refs/heads/", "refs/tags/"],
        "token_secret": "git-token",
    })
}

async fn run(payload: Value, services: &FakeServices) -> Result<Value, HandlerError> {
    let mirror = FakeMirror::default();
    let result = handle_with_services(event(payload), &config(), &mirror, services).await;
    assert!(mirror.calls().is_empty(), "a fan-out mirrored something");
    result
}

#[tokio::test]
async fn twenty_five_mappings_become_twenty_five_messages_in_three_calls() {
    let services = FakeServices::default();
    let mut request = schedule(25);
    // Listed twice: sent once.
    let first = request["mappings"][0].clone();
    request["mappings"].as_array_mut().unwrap().push(first);
    let summary = run(request, &services).await.unwrap();
    assert_eq!(
        summary,
        json!({"fan_out": {"queued": 25, "duplicates": 1, "failed": []}})
    );
    let sizes: Vec<usize> = services
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [10, 10, 5]);
    let sent = services.sent();
    assert_eq!(sent.len(), 25);

    // Each message is a request of one mapping with the request's options, as the SQS path parses it.
    let bodies: Vec<(String, &str)> = sent
        .iter()
        .enumerate()
        .map(|(n, body)| (format!("m{n}"), body.as_str()))
        .collect();
    let records: Vec<(&str, &str)> = bodies
        .iter()
        .map(|(id, body)| (id.as_str(), *body))
        .collect();
    let ParsedEvent::Sqs(items) = parse_event(sqs_event(&records)).unwrap() else {
        panic!("not an SQS batch");
    };
    for (n, SqsItem { request, .. }) in items.iter().enumerate() {
        let request = request.as_ref().unwrap();
        assert_eq!(
            request.mappings,
            vec![mapping(
                &format!("http://127.0.0.1:8080/repo-{n}"),
                &format!("s3://bucket/mirrors/repo-{n}")
            )]
        );
        assert_eq!(request.token_secrets, vec![Some("git-token".to_owned())]);
        assert_eq!(request.options.concurrency, Some(2));
        assert_eq!(
            request.options.ref_prefixes,
            Some(vec!["refs/heads/".to_owned(), "refs/tags/".to_owned()])
        );
        assert!(!request.fan_out);
    }
}

#[tokio::test]
async fn messages_fed_back_as_an_sqs_event_are_mirrored_one_mapping_each() {
    let services = FakeServices::with_secret("git-token", "t0k3n");
    run(schedule(3), &services).await.unwrap();
    let sent = services.sent();
    let records: Vec<(&str, &str)> = ["a", "b", "c"]
        .into_iter()
        .zip(sent.iter().map(String::as_str))
        .collect();
    let mirror = FakeMirror::default();
    let failed = failed_sqs_messages(&records, &config(), &mirror, &services).await;
    assert!(failed.is_empty(), "{failed:?}");
    let mirrored: Vec<Mapping> = mirror.mirrored().concat();
    assert_eq!(mirrored.len(), 3);
    assert_eq!(mirror.calls()[0].1.token.as_deref(), Some("t0k3n"));
    assert_eq!(
        services.reads.lock().unwrap().len(),
        1,
        "read once per invocation"
    );
}

#[tokio::test]
async fn failed_entries_and_failed_calls_are_sent_again() {
    let services = FakeServices::default();
    services
        .failing_entries
        .lock()
        .unwrap()
        .extend([("repo-3\"".to_owned(), 1), ("repo-17\"".to_owned(), 1)]);
    *services.failing_calls.lock().unwrap() = 1;
    let summary = run(schedule(25), &services).await.unwrap();
    assert_eq!(summary["fan_out"]["queued"], 25);
    let mut sent = services.sent();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 25, "every message once");
    // Calls: 10 (failed whole), 10, 5; then the first 10 again with repo-3 and repo-17 ... until all are sent.
    let calls = services.calls.lock().unwrap().len();
    assert!((4..=7).contains(&calls), "{calls} calls");
}

#[tokio::test]
async fn entries_that_keep_failing_are_reported_and_fail_the_invocation() {
    let services = FakeServices::default();
    services
        .failing_entries
        .lock()
        .unwrap()
        .push(("repo-4\"".to_owned(), usize::MAX));
    let error = run(schedule(12), &services).await.unwrap_err();
    assert_eq!(error.error_type(), "FanOutFailed");
    let summary: Value = serde_json::from_str(&error.to_string()).unwrap();
    assert_eq!(
        summary,
        json!({"fan_out": {"queued": 11, "duplicates": 0, "failed": [{
            "source": "http://127.0.0.1:8080/repo-4",
            "target": "s3://bucket/mirrors/repo-4",
            "error": "InternalError: try again",
        }]}})
    );
    let attempts = services
        .calls
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .filter(|entry| entry.body.contains("repo-4\""))
        .count();
    assert_eq!(attempts, MAX_SEND_ATTEMPTS);
}

#[tokio::test]
async fn a_fan_out_that_cannot_go_anywhere_sends_nothing() {
    let services = FakeServices::default();
    let mirror = FakeMirror::default();
    let error = handle_with_services(
        event(schedule(2)),
        &FunctionConfig::default(),
        &mirror,
        &services,
    )
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "InvalidConfiguration");
    assert!(error.to_string().contains("MIRROR_QUEUE_URL"), "{error}");

    // Credentials in a source URL would travel in the message.
    let mut request = schedule(2);
    request["mappings"][1]["source"] = json!("https://user:hunter2@example.com/o/r.git");
    let error = run(request, &services).await.unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("requests[0].mappings[1].source: has credentials"),
        "{error}"
    );
    assert!(services.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn fan_out_is_refused_in_sqs_messages_and_must_be_all_or_none() {
    let services = FakeServices::default();
    let body = schedule(1).to_string();
    let mirror = FakeMirror::default();
    let failed = failed_sqs_messages(&[("x", &body)], &config(), &mirror, &services).await;
    assert_eq!(failed, ["x"]);

    let plain = json!({"mappings": [{"source": GIT, "target": TARGET}]}).to_string();
    let mut sns = sns_event(&body);
    let mut second = sns["Records"][0].clone();
    second["Sns"]["Message"] = json!(plain);
    sns["Records"].as_array_mut().unwrap().push(second);
    let error = run(sns, &services).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("1 of the 2 requests of this SNS event ask for fan_out"),
        "{error}"
    );
    assert!(services.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_schedule_without_input_fans_out_when_configured_to() {
    let services = FakeServices::default();
    let mirror = FakeMirror::default();
    let config = FunctionConfig {
        mappings: Some(
            json!([{"source": GIT, "target": TARGET}, {"source": GIT_2, "target": TARGET_2}])
                .to_string(),
        ),
        schedule_fan_out: true,
        ..config()
    };
    let summary = handle_with_services(
        event(sample("schedule-without-input.json")),
        &config,
        &mirror,
        &services,
    )
    .await
    .unwrap();
    assert_eq!(summary["fan_out"]["queued"], 2);
    assert!(mirror.calls().is_empty());
}
