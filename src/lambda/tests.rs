use super::*;
use crate::report::RunKind;

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
    let mut event = sample(include_str!("../../events/sns.json"));
    event["Records"][0]["Sns"]["Message"] = Value::String(message.to_owned());
    event
}

#[test]
fn manual_event_parses_with_options() {
    let parsed = parse_event(sample(include_str!("../../events/manual.json"))).unwrap();
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
    let ParsedEvent::Requests { kind, requests } = parse_event(sample(include_str!(
        "../../events/schedule-with-input.json"
    )))
    .unwrap() else {
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
        "../../events/schedule-without-input.json"
    )))
    .unwrap();
    assert_eq!(parsed, ParsedEvent::Scheduled);
}

#[test]
fn sns_event_parses_the_message() {
    let parsed = parse_event(sample(include_str!("../../events/sns.json"))).unwrap();
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
    let parsed = parse_event(sample(include_str!("../../events/sqs.json"))).unwrap();
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
    let parsed = parse_event(sample(include_str!("../../events/sns-in-sqs.json"))).unwrap();
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
    let ParsedEvent::Sqs(items) = parse_event(sample(include_str!(
        "../../events/sqs-partial-failure.json"
    )))
    .unwrap() else {
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
    let error = error_text(sample(include_str!("../../events/malformed.json")));
    assert_eq!(
        error,
        "event.mappings[1]: unknown field `destination`; expected only source, target"
    );
}

#[test]
fn configuration_sample_and_both_forms_parse() {
    let text = include_str!("../../events/mappings-config.json")
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
    let mut event = sample(include_str!("../../events/schedule-without-input.json"));
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
    let mut event = sample(include_str!("../../events/schedule-without-input.json"));
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
    let mut mixed = sample(include_str!("../../events/sqs.json"));
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
        sample(include_str!("../../events/sns-in-sqs.json"))["Records"][0]["body"]
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
        kind: RunKind::Full,
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
        event(sample(include_str!("../../events/malformed.json"))),
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
    let schedule = sample(include_str!("../../events/schedule-without-input.json"));
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
