//! Event parsing: the sample events of `events/`, and every malformed shape named by its path.

use serde_json::{Map, Value};

use super::super::test_support::*;
use super::*;

fn error_text(event: Value) -> String {
    parse_event(event)
        .expect_err("event should be rejected")
        .to_string()
}

#[test]
fn manual_event_parses_with_options() {
    let parsed = parse_event(sample("manual.json")).unwrap();
    let mut raw_options = sample("manual.json").as_object().unwrap().clone();
    raw_options.remove("mappings");
    let expected = Request {
        raw_options,
        ..request_with(
            only_mapping(),
            Overrides {
                memory_budget_mib: Some(128),
                concurrency: Some(2),
                endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
                force_path_style: Some(true),
                storage_class: None,
                ..Overrides::default()
            },
        )
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
    let ParsedEvent::Requests { kind, requests } =
        parse_event(sample("schedule-with-input.json")).unwrap()
    else {
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
    let parsed = parse_event(sample("schedule-without-input.json")).unwrap();
    assert_eq!(parsed, ParsedEvent::Scheduled);
}

#[test]
fn sns_event_parses_the_message() {
    let parsed = parse_event(sample("sns.json")).unwrap();
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
    let parsed = parse_event(sample("sqs.json")).unwrap();
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
    let parsed = parse_event(sample("sns-in-sqs.json")).unwrap();
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
    let ParsedEvent::Sqs(items) = parse_event(sample("sqs-partial-failure.json")).unwrap() else {
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
    let error = error_text(sample("malformed.json"));
    assert_eq!(
        error,
        "event.mappings[1]: unknown field `destination`; expected only source, target, token_secret"
    );
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
            "event: unknown fields `dry_run`, `memory`; expected only mappings, token_secret, fan_out, memory_budget_mib, concurrency, \
             endpoint_url, force_path_style, storage_class, region, ref_prefixes, compaction_threshold, \
             gc_grace_hours, lfs, lfs_url, lfs_tolerate_missing, max_object_mib, max_inflate_ratio, \
             max_advertisement_mib, max_pack_mib, verify"
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
                "event.mappings[0].source: \"***@github.com:o/r.git\" is not a URL: relative URL without a base",
            ),
            (
                serde_json::json!({"mappings": [{"source": "ftp://u:pw@h/r?private_token=glpat-1#f", "target": TARGET}]}),
                "event.mappings[0].source: \"ftp://***@h/r?private_token=***\": expected an http:// or https:// URL, \
                 got scheme \"ftp\"",
            ),
            (
                serde_json::json!({"mappings": [{"source": "https://h/r?access_token=abc", "target": "/tmp/m?x=secret"}]}),
                "event.mappings[0].target: \"/tmp/m?x=***\" is not an s3://bucket/prefix URL (the Lambda function \
                 has no disk for a local target)",
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
    let mut event = sample("schedule-without-input.json");
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
    let mut event = sample("schedule-without-input.json");
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
    let mut mixed = sample("sqs.json");
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
            "Records[1] (messageId \"b\").body: unknown field `priority`; expected only mappings, token_secret, fan_out, memory_budget_mib, \
             concurrency, endpoint_url, force_path_style, storage_class, region, ref_prefixes, compaction_threshold, \
             gc_grace_hours, lfs, lfs_url, lfs_tolerate_missing, max_object_mib, max_inflate_ratio, \
             max_advertisement_mib, max_pack_mib, verify"
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
        sample("sns-in-sqs.json")["Records"][0]["body"]
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
    // Bounded, but for the list of the fields a request may have, which is the function's own.
    let (found, allowed) = error.split_once("; expected only ").unwrap();
    assert!(found.len() < 2 * MAX_QUOTED_CHARS, "{} bytes", found.len());
    assert!(allowed.starts_with("mappings, "), "{allowed}");
    assert!(!allowed.contains("kkk"), "{allowed}");
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
fn the_options_shared_with_the_cli_parse() {
    let ParsedEvent::Requests { requests, .. } =
        parse_event(sample("schedule-with-input.json")).unwrap()
    else {
        panic!("expected requests");
    };
    assert_eq!(
        requests[0].options,
        Overrides {
            endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
            force_path_style: Some(true),
            storage_class: Some("STANDARD".to_owned()),
            ref_prefixes: Some(vec!["refs/heads/".to_owned(), "refs/tags/".to_owned()]),
            compaction_threshold: Some(16),
            gc_grace_hours: Some(24),
            ..Overrides::default()
        }
    );
    let event =
        serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}], "region": "eu-west-1"});
    let ParsedEvent::Requests { requests, .. } = parse_event(event).unwrap() else {
        panic!("expected requests");
    };
    assert_eq!(requests[0].options.region.as_deref(), Some("eu-west-1"));
}

#[test]
fn the_options_shared_with_the_cli_are_checked() {
    let with = |options: Value| {
        let mut event = serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}]});
        if let (Some(event), Value::Object(options)) = (event.as_object_mut(), options) {
            event.extend(options);
        }
        error_text(event)
    };
    let cases = [
        (
            serde_json::json!({"ref_prefixes": ["refs/heads/", "heads/"]}),
            "event.ref_prefixes: \"heads/\" does not start with \"refs/\", as every ref name does",
        ),
        (
            serde_json::json!({"ref_prefixes": []}),
            "event.ref_prefixes: is empty: leave it out to mirror every ref",
        ),
        (
            serde_json::json!({"ref_prefixes": "refs/heads/"}),
            "event.ref_prefixes: invalid type: string \"refs/heads/\", expected a sequence",
        ),
        (serde_json::json!({"region": ""}), "event.region: is empty"),
        (
            serde_json::json!({"compaction_threshold": -1}),
            "event.compaction_threshold: invalid value: integer `-1`, expected usize",
        ),
        (
            serde_json::json!({"gc_grace_hours": 1_000_000}),
            "event.gc_grace_hours: 1000000 is more than 876000 (100 years)",
        ),
        (
            serde_json::json!({"concurrency": 2, "gc_grace_hours": "a day", "region": 3}),
            "event.region: invalid type: integer `3`, expected a string",
        ),
        (
            serde_json::json!({"lfs_url": "git@host:repo"}),
            "event.lfs_url: \"***@host:repo\" is not a URL: relative URL without a base",
        ),
        (
            serde_json::json!({"lfs": "yes"}),
            "event.lfs: invalid type: string \"yes\", expected a boolean",
        ),
    ];
    for (options, expected) in cases {
        assert_eq!(with(options), expected);
    }
    let two = serde_json::json!({"mappings": [{"source": GIT, "target": TARGET}, {"source": GIT, "target": "s3://b/other"}],
        "lfs_url": "https://lfs.example.com/r"});
    assert_eq!(
        error_text(two),
        "event.lfs_url: names the LFS server of one repository: give it in a request with one mapping"
    );
    assert!(
        with(serde_json::json!({"token": "secret"}))
            .starts_with("event: unknown field `token`; expected only mappings,"),
        "secrets do not belong in events"
    );
}
