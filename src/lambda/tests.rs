//! The handler end to end, for events that fail before anything is mirrored.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use super::test_support::*;
use super::*;

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, lambda_runtime::Context::default())
}

#[tokio::test]
async fn malformed_events_fail_the_invocation_as_invalid_events() {
    let error = handle_with(event(sample("malformed.json")), &FunctionConfig::default())
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
    let error = handle_with(event(schedule.clone()), &FunctionConfig::default())
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
    };
    let error = handle_with(event(schedule.clone()), &both)
        .await
        .unwrap_err();
    assert_eq!(
            error.to_string(),
            "mapping configuration: both MIRROR_MAPPINGS and MIRROR_MAPPINGS_S3_URI are set; set only one"
        );
    let broken = FunctionConfig {
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
    let bad_uri = FunctionConfig {
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
    let error = handle_with(
        LambdaEvent::new(payload, context),
        &FunctionConfig::default(),
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
    let response = handle_with(
        LambdaEvent::new(payload, context),
        &FunctionConfig::default(),
    )
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
