//! Tokens from secrets: the value's shapes, one read per secret and invocation, and the token reaching the mirror
//! of exactly the mappings that name its secret, never a summary or an error.

use serde_json::{json, Value};

use super::super::test_support::*;
use super::super::{handle_with_services, FunctionConfig, HandlerError};
use super::*;

const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:git/token-AbCdEf";
const TOKEN: &str = "ghp_s3cr3tT0k3nValue";

#[test]
fn a_secret_holds_the_token_or_a_json_object_with_it() {
    assert_eq!(token_from_secret(TOKEN), Ok(TOKEN.to_owned()));
    assert_eq!(
        token_from_secret(&format!("  {TOKEN}\n")),
        Ok(TOKEN.to_owned())
    );
    let object = json!({"token": TOKEN, "user": "x"}).to_string();
    assert_eq!(token_from_secret(&object), Ok(TOKEN.to_owned()));
    assert_eq!(
        token_from_secret(&json!({"password": TOKEN}).to_string()),
        Err("is a JSON object without a string `token` field")
    );
    assert_eq!(token_from_secret(" \n"), Err("is empty"));
    assert_eq!(
        token_from_secret("a\rb"),
        Err("holds control characters, which no HTTP header may carry")
    );
}

#[tokio::test]
async fn each_secret_is_read_once_per_invocation_and_failures_are_remembered() {
    let services = FakeServices::with_secret(SECRET, TOKEN);
    let cache = TokenCache::new(&services);
    for _ in 0..3 {
        assert_eq!(cache.token(SECRET).await, Ok(TOKEN.to_owned()));
        let error = cache.token("missing").await.unwrap_err();
        assert!(error.to_string().starts_with("reading the token secret \"missing\": Secrets Manager GetSecretValue: ResourceNotFoundException"), "{error}");
    }
    assert_eq!(*services.reads.lock().unwrap(), [SECRET, "missing"]);
    assert_eq!(format!("{cache:?}"), "TokenCache { <redacted> }");
}

fn secret_request(secret_on_request: bool) -> Value {
    let mut request = json!({
        "mappings": [
            {"source": GIT, "target": TARGET, "token_secret": SECRET},
            {"source": GIT_2, "target": TARGET_2},
        ],
    });
    if secret_on_request {
        request["mappings"][0]
            .as_object_mut()
            .map(|mapping| mapping.remove("token_secret"));
        request["mappings"][1]["token_secret"] = json!("other");
        request["token_secret"] = json!(SECRET);
    }
    request
}

#[tokio::test]
async fn the_token_reaches_only_the_mappings_that_name_its_secret() {
    let services = FakeServices::with_secret(SECRET, &json!({"token": TOKEN}).to_string());
    let mirror = FakeMirror::default();
    let summary = handle_with_services(
        event(secret_request(false)),
        &FunctionConfig::default(),
        &mirror,
        &services,
    )
    .await
    .unwrap();
    let calls = mirror.calls();
    assert_eq!(calls.len(), 2, "one call per secret");
    assert_eq!(calls[0].0, vec![mapping(GIT, TARGET)]);
    assert_eq!(calls[0].1.token.as_deref(), Some(TOKEN));
    assert_eq!(calls[1].0, vec![mapping(GIT_2, TARGET_2)]);
    assert_eq!(calls[1].1.token, None);
    assert!(!summary.to_string().contains(TOKEN));
    assert!(!format!("{:?}", calls[0].1).contains(TOKEN));
}

#[tokio::test]
async fn a_request_secret_applies_to_mappings_without_their_own_and_a_missing_one_fails_only_them()
{
    let services = FakeServices::with_secret(SECRET, TOKEN);
    let mirror = FakeMirror::default();
    let error = handle_with_services(
        event(secret_request(true)),
        &FunctionConfig::default(),
        &mirror,
        &services,
    )
    .await
    .unwrap_err();
    // The first mapping runs with the request's secret; the second names "other", which does not exist.
    assert_eq!(mirror.mirrored(), vec![vec![mapping(GIT, TARGET)]]);
    assert_eq!(mirror.only_options().token.as_deref(), Some(TOKEN));
    let HandlerError::MirrorFailed { summary } = error else {
        panic!("expected MirrorFailed, got {error:?}");
    };
    assert!(!summary.contains(TOKEN));
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["mappings"][0]["error"], Value::Null);
    let failure = summary["mappings"][1]["error"].as_str().unwrap();
    assert!(
        failure.starts_with("reading the token secret \"other\": "),
        "{failure}"
    );
    assert_eq!(summary["mappings"][1]["kind"], "not_started");
}

#[tokio::test]
async fn sqs_messages_whose_secret_is_missing_fail_alone() {
    let services = FakeServices::with_secret(SECRET, TOKEN);
    let mirror = FakeMirror::default();
    let good = json!({"mappings": [{"source": GIT, "target": TARGET}], "token_secret": SECRET});
    let bad = json!({"mappings": [{"source": GIT_2, "target": TARGET_2}], "token_secret": "gone"});
    let messages = [("a", good.to_string()), ("b", bad.to_string())];
    let messages: Vec<(&str, &str)> = messages
        .iter()
        .map(|(id, body)| (*id, body.as_str()))
        .collect();
    let failed =
        failed_sqs_messages(&messages, &FunctionConfig::default(), &mirror, &services).await;
    assert_eq!(failed, ["b"]);
    assert_eq!(mirror.mirrored(), vec![vec![mapping(GIT, TARGET)]]);
}

#[test]
fn secret_names_are_checked_where_they_are_given() {
    for (request, path) in [
        (
            json!({"mappings": [{"source": GIT, "target": TARGET, "token_secret": ""}]}),
            "event.mappings[0].token_secret",
        ),
        (
            json!({"mappings": [{"source": GIT, "target": TARGET}], "token_secret": "has space"}),
            "event.token_secret",
        ),
        (
            json!({"mappings": [{"source": GIT, "target": TARGET}], "token_secret": 7}),
            "event.token_secret",
        ),
        (
            json!({"mappings": [{"source": GIT, "target": TARGET}], "token_secret": "x".repeat(2049)}),
            "event.token_secret",
        ),
    ] {
        let error = super::super::parse_event(request.clone())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("{path}: ")),
            "{request}: {error}"
        );
    }
}
