//! The handler end to end, with a fake mirror that fails chosen sources: what runs, how often, with which
//! options, and how failures come back (all or nothing, or per SQS message). No git, no S3.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::Value;

use super::test_support::*;
use super::*;
use crate::options::test_support::{every_override, EVERY_OVERRIDE_JSON};

/// A third source, for batches that need more than two.
const GIT_3: &str = "http://127.0.0.1:8080/repo-3";
const TARGET_3: &str = "s3://bucket/mirrors/repo-3";

/// Invokes the handler on `payload` with no function configuration and an unknown deadline and memory size.
async fn invoke(payload: Value, mirror: &impl Mirror) -> Result<Value, HandlerError> {
    handle_with(event(payload), &FunctionConfig::default(), mirror).await
}

/// An invocation context: `memory_mib` of function memory (0: unknown) and a deadline in epoch milliseconds.
fn context(memory_mib: i32, deadline_ms: u64) -> Context {
    let mut context = Context::default();
    context.deadline = deadline_ms;
    context.env_config = std::sync::Arc::new(lambda_runtime::Config {
        memory: memory_mib,
        ..lambda_runtime::Config::default()
    });
    context
}

/// The current time in epoch milliseconds.
fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// A request body `{"mappings": [...]}` for `(source, target)` pairs, with `options` merged in.
fn body(mappings: &[(&str, &str)], options: Value) -> String {
    let mappings: Vec<Value> = mappings
        .iter()
        .map(|(source, target)| serde_json::json!({"source": source, "target": target}))
        .collect();
    let mut request = serde_json::json!({ "mappings": mappings });
    if let (Some(request), Value::Object(options)) = (request.as_object_mut(), options) {
        request.extend(options);
    }
    request.to_string()
}

/// The message ids of an SQS batch response's `batchItemFailures`.
fn failed_ids(response: &Value) -> Vec<&str> {
    response["batchItemFailures"]
        .as_array()
        .expect("an SqsBatchResponse")
        .iter()
        .map(|failure| {
            failure["itemIdentifier"]
                .as_str()
                .expect("an item identifier")
        })
        .collect()
}

/// `(source, error)` of every report in a summary `{"mappings": [...]}`.
fn summary_errors(summary: &Value) -> Vec<(String, Option<String>)> {
    summary["mappings"]
        .as_array()
        .expect("a summary")
        .iter()
        .map(|report| {
            (
                report["source"].as_str().unwrap_or_default().to_owned(),
                report["error"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// The summary a [`HandlerError::MirrorFailed`] carries.
fn failed_summary(error: HandlerError) -> Value {
    assert_eq!(error.error_type(), "MirrorFailed", "{error:?}");
    let HandlerError::MirrorFailed { summary } = error else {
        unreachable!("checked by error_type");
    };
    serde_json::from_str(&summary).expect("the summary is JSON")
}

#[tokio::test]
async fn malformed_events_fail_the_invocation_as_invalid_events() {
    let error = handle_with(
        event(sample("malformed.json")),
        &FunctionConfig::default(),
        &FakeMirror::default(),
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
    let schedule = sample("schedule-without-input.json");
    let error = handle_with(
        event(schedule.clone()),
        &FunctionConfig::default(),
        &FakeMirror::default(),
    )
    .await
    .unwrap_err();
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "InvalidConfiguration");
    assert!(
        diagnostic.error_message.contains("MIRROR_MAPPINGS"),
        "{}",
        diagnostic.error_message
    );
    let both = FunctionConfig {
        mappings: Some("[]".to_owned()),
        mappings_s3_uri: Some("s3://bucket/key".to_owned()),
        ..FunctionConfig::default()
    };
    let error = handle_with(event(schedule.clone()), &both, &FakeMirror::default())
        .await
        .unwrap_err();
    assert_eq!(
            error.to_string(),
            "mapping configuration: both MIRROR_MAPPINGS and MIRROR_MAPPINGS_S3_URI are set; set only one"
        );
    let broken = FunctionConfig {
        mappings: Some(r#"{"mappings": [{"source": "x"}]}"#.to_owned()),
        mappings_s3_uri: None,
        ..FunctionConfig::default()
    };
    let error = handle_with(event(schedule.clone()), &broken, &FakeMirror::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "MIRROR_MAPPINGS.mappings[0]: missing field `target`"
    );
    let bad_uri = FunctionConfig {
        mappings: None,
        mappings_s3_uri: Some("s3://bucket-only".to_owned()),
        ..FunctionConfig::default()
    };
    let error = handle_with(event(schedule), &bad_uri, &FakeMirror::default())
        .await
        .unwrap_err();
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
    let error = handle_with(
        LambdaEvent::new(payload, context),
        &FunctionConfig::default(),
        &FakeMirror::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "memory_budget_mib: 512 MiB does not fit in the function's 128 MiB of memory"
    );
}

#[tokio::test]
async fn sqs_messages_that_cannot_run_are_reported_without_mirroring() {
    // Neither message reaches the mirror: one is not JSON, the other asks for more memory than the function has.
    let too_big = format!(
        r#"{{"mappings":[{{"source":"{GIT}","target":"{TARGET}"}}],"memory_budget_mib":512}}"#
    );
    let payload = sqs_event(&[("broken", "{"), ("too-big", &too_big)]);
    let mut context = lambda_runtime::Context::default();
    context.env_config = std::sync::Arc::new(lambda_runtime::Config {
        memory: 256,
        ..lambda_runtime::Config::default()
    });
    let mirror = FakeMirror::default();
    let response = handle_with(
        LambdaEvent::new(payload, context),
        &FunctionConfig::default(),
        &mirror,
    )
    .await
    .unwrap();
    assert!(mirror.calls().is_empty());
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "broken"},
            {"itemIdentifier": "too-big"}
        ]})
    );
}

#[tokio::test]
async fn sqs_batch_lists_exactly_the_messages_that_failed() {
    let mirror = FakeMirror::failing(&[GIT_2]);
    let payload = sqs_event(&[
        ("m1", &body(&[(GIT, TARGET)], Value::Null)),
        ("m2", &body(&[(GIT_2, TARGET_2)], Value::Null)),
        ("m3", "{\"mappings\": ["),
        (
            "m4",
            &body(&[(GIT_3, TARGET_3), (GIT_2, TARGET_2)], Value::Null),
        ),
        ("m5", &body(&[(GIT_3, TARGET_3)], Value::Null)),
    ]);
    let response = invoke(payload, &mirror).await.unwrap();
    assert_eq!(
        failed_ids(&response),
        ["m2", "m3", "m4"],
        "a failed mapping fails its message (m2, and m4 through its second mapping); a malformed body fails \
         only its own (m3)"
    );
    assert_eq!(
        mirror.mirrored(),
        [vec![
            mapping(GIT, TARGET),
            mapping(GIT_2, TARGET_2),
            mapping(GIT_3, TARGET_3)
        ]],
        "one call for the batch's valid messages, each mapping once"
    );
}

#[tokio::test]
async fn sqs_batch_without_failures_answers_an_empty_list() {
    let mirror = FakeMirror::failing(&[GIT_3]);
    let payload = sqs_event(&[
        ("m1", &body(&[(GIT, TARGET)], Value::Null)),
        ("m2", &body(&[(GIT_2, TARGET_2)], Value::Null)),
    ]);
    let response = invoke(payload, &mirror).await.unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn sqs_record_without_message_id_fails_the_batch_before_anything_runs() {
    let mirror = FakeMirror::default();
    let mut payload = sqs_event(&[
        ("m1", &body(&[(GIT, TARGET)], Value::Null)),
        ("m2", &body(&[(GIT_2, TARGET_2)], Value::Null)),
    ]);
    payload["Records"][1]
        .as_object_mut()
        .unwrap()
        .remove("messageId");
    let error = invoke(payload, &mirror).await.unwrap_err();
    assert_eq!(error.error_type(), "InvalidEvent");
    assert!(
        error
            .to_string()
            .starts_with("Records[1]: has no messageId"),
        "{error}"
    );
    assert!(mirror.calls().is_empty(), "nothing may run");
}

#[tokio::test]
async fn sqs_messages_with_different_options_run_apart_and_fail_apart() {
    let mirror = FakeMirror::failing(&[GIT_2]);
    let payload = sqs_event(&[
        (
            "slow",
            &body(&[(GIT, TARGET)], serde_json::json!({"concurrency": 1})),
        ),
        (
            "fast",
            &body(&[(GIT_2, TARGET_2)], serde_json::json!({"concurrency": 8})),
        ),
    ]);
    let response = invoke(payload, &mirror).await.unwrap();
    assert_eq!(failed_ids(&response), ["fast"]);
    let calls: Vec<(Vec<Mapping>, usize)> = mirror
        .calls()
        .into_iter()
        .map(|(mappings, options)| (mappings, options.concurrency))
        .collect();
    assert_eq!(
        calls,
        [
            (vec![mapping(GIT, TARGET)], 1),
            (vec![mapping(GIT_2, TARGET_2)], 8)
        ]
    );
}

#[tokio::test]
async fn direct_invoke_with_a_failed_mapping_fails_with_the_summary_of_all() {
    let mirror = FakeMirror::failing(&[GIT_2]);
    let payload: Value = serde_json::from_str(&body(
        &[(GIT, TARGET), (GIT_2, TARGET_2), (GIT_3, TARGET_3)],
        Value::Null,
    ))
    .unwrap();
    let error = invoke(payload, &mirror).await.unwrap_err();
    assert_eq!(
        summary_errors(&failed_summary(error)),
        [
            (GIT.to_owned(), None),
            (GIT_2.to_owned(), Some("fake failure".to_owned())),
            (GIT_3.to_owned(), None)
        ]
    );
    assert_eq!(mirror.calls().len(), 1, "every mapping ran, in one call");
}

#[tokio::test]
async fn direct_invoke_without_failures_answers_the_summary() {
    let mirror = FakeMirror::failing(&[GIT_3]);
    let response = invoke(sample("schedule-with-input.json"), &mirror)
        .await
        .unwrap();
    assert_eq!(
        summary_errors(&response),
        [(GIT.to_owned(), None), (GIT_2.to_owned(), None)]
    );
}

#[tokio::test]
async fn schedule_without_input_runs_the_configured_request_all_or_nothing() {
    let mirror = FakeMirror::failing(&[GIT]);
    let config = FunctionConfig {
        mappings: Some(body(&[(GIT, TARGET), (GIT_2, TARGET_2)], Value::Null)),
        mappings_s3_uri: None,
        ..FunctionConfig::default()
    };
    let error = handle_with(
        event(sample("schedule-without-input.json")),
        &config,
        &mirror,
    )
    .await
    .unwrap_err();
    assert_eq!(
        summary_errors(&failed_summary(error)),
        [
            (GIT.to_owned(), Some("fake failure".to_owned())),
            (GIT_2.to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn sns_records_run_all_or_nothing() {
    let mut payload = sns_event(&body(&[(GIT, TARGET)], Value::Null));
    let second = payload["Records"][0].clone();
    payload["Records"].as_array_mut().unwrap().push(second);
    payload["Records"][1]["Sns"]["Message"] =
        Value::String(body(&[(GIT_2, TARGET_2)], Value::Null));

    let mirror = FakeMirror::failing(&[GIT_2]);
    let error = invoke(payload.clone(), &mirror).await.unwrap_err();
    assert_eq!(
        summary_errors(&failed_summary(error)),
        [
            (GIT.to_owned(), None),
            (GIT_2.to_owned(), Some("fake failure".to_owned()))
        ],
        "one failed record fails the event, and the summary has every record's mappings"
    );

    payload["Records"][1]["Sns"]["Message"] = Value::String("{\"mappings\": []}".to_owned());
    let mirror = FakeMirror::default();
    let error = invoke(payload, &mirror).await.unwrap_err();
    assert_eq!(error.error_type(), "InvalidEvent");
    assert!(
        mirror.calls().is_empty(),
        "one malformed record: nothing runs"
    );
}

#[tokio::test]
async fn duplicate_mappings_are_mirrored_once_and_reported_where_asked() {
    let mut payload = sns_event(&body(&[(GIT, TARGET), (GIT_2, TARGET_2)], Value::Null));
    let second = payload["Records"][0].clone();
    payload["Records"].as_array_mut().unwrap().push(second);
    payload["Records"][1]["Sns"]["Message"] = Value::String(body(
        &[(GIT_2, TARGET_2), (GIT, TARGET), (GIT, TARGET)],
        Value::Null,
    ));
    let mirror = FakeMirror::default();
    let response = invoke(payload, &mirror).await.unwrap();
    assert_eq!(
        mirror.mirrored(),
        [vec![mapping(GIT, TARGET), mapping(GIT_2, TARGET_2)]]
    );
    let sources: Vec<String> = summary_errors(&response)
        .into_iter()
        .map(|(source, _)| source)
        .collect();
    assert_eq!(sources, [GIT, GIT_2, GIT_2, GIT, GIT]);
}

#[tokio::test]
async fn a_mirror_that_breaks_its_contract_is_an_internal_error() {
    struct Silent;
    impl Mirror for Silent {
        fn mirror(
            &self,
            _: &[Mapping],
            _: &MirrorOptions,
        ) -> impl Future<Output = Vec<RepoReport>> + Send {
            std::future::ready(Vec::new())
        }
    }
    let error = invoke(sample("manual.json"), &Silent).await.unwrap_err();
    assert_eq!(error.error_type(), "InternalError");
    assert_eq!(
        error.to_string(),
        "internal error: the mirror returned 0 reports for 1 mappings"
    );
}

/// The time the mirror is given (its deadline, from `Instant::now()` just before the call) by an invocation whose
/// deadline is `deadline_ms` in epoch milliseconds; `None` if it is given no deadline.
async fn mirror_time_left(deadline_ms: u64) -> Option<Duration> {
    let mirror = FakeMirror::default();
    let started = Instant::now();
    let payload = sample("manual.json");
    handle_with(
        LambdaEvent::new(payload, context(1024, deadline_ms)),
        &FunctionConfig::default(),
        &mirror,
    )
    .await
    .unwrap();
    mirror
        .only_options()
        .deadline
        .map(|deadline| deadline.saturating_duration_since(started))
}

/// `actual` is `expected` give or take a quarter second: the margins differ by whole seconds.
fn assert_about(actual: Option<Duration>, expected: Duration) {
    let actual = actual.expect("a deadline");
    let slack = Duration::from_millis(250);
    assert!(
        actual + slack >= expected && actual <= expected + slack,
        "{actual:?} is not about {expected:?}"
    );
}

#[tokio::test]
async fn the_mirror_stops_a_fifth_of_the_remaining_time_before_the_deadline() {
    // (time left in the invocation, time left to the mirror): a fifth, at least 1 s, at most 10 s.
    for (remaining_ms, expected_s) in [(30_000, 24), (3_000, 2), (300_000, 290), (900_000, 890)] {
        let left = mirror_time_left(now_ms() + remaining_ms).await;
        assert_about(left, Duration::from_secs(expected_s));
    }
}

#[tokio::test]
async fn a_past_or_absurd_deadline_leaves_the_mirror_without_one() {
    assert_eq!(
        mirror_time_left(600_000).await,
        None,
        "the emulator's relative deadline"
    );
    assert_eq!(mirror_time_left(now_ms() - 1_000).await, None);
    assert_eq!(mirror_time_left(now_ms() + 3_600_000).await, None);
    assert_eq!(mirror_time_left(u64::MAX).await, None);
}

#[tokio::test]
async fn the_memory_budget_defaults_to_sixty_percent_of_the_function_memory() {
    let budget = |memory_mib: i32, request: Value| async move {
        let mirror = FakeMirror::default();
        handle_with(
            LambdaEvent::new(request, context(memory_mib, 0)),
            &FunctionConfig::default(),
            &mirror,
        )
        .await
        .unwrap();
        mirror.only_options().memory_budget
    };
    let plain: Value = serde_json::from_str(&body(&[(GIT, TARGET)], Value::Null)).unwrap();
    assert_eq!(budget(1024, plain.clone()).await, 614 << 20);
    assert_eq!(budget(10_240, plain.clone()).await, 6144 << 20);
    assert_eq!(
        budget(0, plain).await,
        MirrorOptions::default().memory_budget,
        "unknown function memory: the library's default"
    );
    let asked: Value = serde_json::from_str(&body(
        &[(GIT, TARGET)],
        serde_json::json!({"memory_budget_mib": 900}),
    ))
    .unwrap();
    assert_eq!(budget(1024, asked).await, 900 << 20);
}

#[tokio::test]
async fn every_request_option_reaches_the_mirror() {
    let options: Value = serde_json::from_str(EVERY_OVERRIDE_JSON).unwrap();
    let payload: Value = serde_json::from_str(&body(&[(GIT, TARGET)], options)).unwrap();
    let mirror = FakeMirror::default();
    handle_with(
        LambdaEvent::new(payload, context(1024, 0)),
        &FunctionConfig::default(),
        &mirror,
    )
    .await
    .unwrap();
    let expected = every_override().apply(MirrorOptions::default()).unwrap();
    let options = mirror.only_options();
    assert_eq!(
        format!("{options:?}"),
        format!("{expected:?}"),
        "the request's fields are the overrides the CLI's flags make"
    );
    assert_eq!(options.token, None, "a request cannot carry a token");
}
