use super::*;
use crate::git::lfs::Pointer;

fn pointer(fill: u8, size: u64) -> Pointer {
    Pointer {
        oid: LfsOid([fill; 32]),
        size,
    }
}

#[test]
fn the_request_names_every_object_with_basic_transfer() {
    let body = download_request(&[pointer(0xab, 5), pointer(1, 0)]);
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["operation"], "download");
    assert_eq!(value["transfers"], serde_json::json!(["basic"]));
    assert_eq!(value["hash_algo"], "sha256");
    assert_eq!(value["objects"][0]["oid"], "ab".repeat(32));
    assert_eq!(value["objects"][0]["size"], 5);
    assert_eq!(value["objects"][1]["size"], 0);
}

#[test]
fn each_object_gets_its_outcome_in_the_order_asked() {
    let (a, b, c, d) = (
        pointer(0xaa, 3),
        pointer(0xbb, 4),
        pointer(0xcc, 5),
        pointer(0xdd, 6),
    );
    let body = serde_json::json!({
        "transfer": "basic",
        "objects": [
            {"oid": "bb".repeat(32), "size": 4, "error": {"code": 404, "message": "Object does not exist\u{1b}[31m"}},
            {"oid": "aa".repeat(32), "size": 3, "actions": {"download": {
                "href": "https://lfs.example.com/a", "header": {"Authorization": "RemoteAuth x"}, "expires_in": 60}}},
            {"oid": "cc".repeat(32), "size": 5, "actions": {"download": {"href": "file:///etc/passwd"}}},
            {"oid": "ee".repeat(32), "size": 1, "actions": {"download": {"href": "https://x/e"}}}
        ]
    });
    let outcomes =
        parse_download_response(body.to_string().as_bytes(), &[a, b, c, d], 1000).unwrap();
    assert_eq!(
        outcomes[0],
        Outcome::Download(Download {
            href: Url::parse("https://lfs.example.com/a").unwrap(),
            headers: vec![("Authorization".to_owned(), "RemoteAuth x".to_owned())],
            expires_at: Some(1060),
        })
    );
    assert!(
        matches!(&outcomes[1], Outcome::Error { code: 404, message } if message.contains("does not exist") && !message.contains('\u{1b}'))
    );
    assert!(matches!(&outcomes[2], Outcome::Unusable(m) if m.contains("only http and https")));
    assert!(matches!(&outcomes[3], Outcome::Unusable(m) if m.contains("does not mention")));
}

#[test]
fn odd_answers_are_per_object_problems_or_whole_response_errors() {
    let p = pointer(0xaa, 3);
    let answer = |object: serde_json::Value| {
        let body = serde_json::json!({"objects": [object]}).to_string();
        parse_download_response(body.as_bytes(), &[p], 0)
            .unwrap()
            .remove(0)
    };
    let oid = "aa".repeat(32);
    assert!(
        matches!(answer(serde_json::json!({"oid": oid, "size": 3})), Outcome::Unusable(m) if m.contains("no download action"))
    );
    assert!(
        matches!(answer(serde_json::json!({"oid": oid, "size": 4, "actions": {"download": {"href": "https://x/"}}})), Outcome::Unusable(m) if m.contains("size"))
    );
    assert!(matches!(
        answer(serde_json::json!({"oid": oid, "actions": {"upload": {"href": "https://x/"}}})),
        Outcome::Unusable(_)
    ));
    assert!(matches!(
        answer(serde_json::json!({"oid": oid, "actions": {"download": {"href": "not a url"}}})),
        Outcome::Unusable(_)
    ));
    assert!(matches!(
        answer(serde_json::json!({"oid": oid, "actions": {"download": {"href": "http://"}}})),
        Outcome::Unusable(_)
    ));
    let expiring = |action: serde_json::Value| match answer(
        serde_json::json!({"oid": oid, "actions": {"download": action}}),
    ) {
        Outcome::Download(d) => d.expires_at,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        expiring(serde_json::json!({"href": "https://x/", "expires_at": "1970-01-01T00:01:40Z"})),
        Some(100)
    );
    assert_eq!(
        expiring(serde_json::json!({"href": "https://x/", "expires_in": -5})),
        Some(-5)
    );
    assert_eq!(
        expiring(
            serde_json::json!({"href": "https://x/", "expires_in": 0, "expires_at": "garbage"})
        ),
        None
    );

    for bad in [&b"not json"[..], b"{}", b"{\"objects\": 5}", b"[]", b""] {
        assert!(
            matches!(
                parse_download_response(bad, &[p], 0),
                Err(BatchError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    let other_transfer = br#"{"transfer": "tus", "objects": []}"#;
    assert!(
        matches!(parse_download_response(other_transfer, &[p], 0), Err(BatchError::Transfer(t)) if t == "tus")
    );
    // Duplicates: the first answer counts; objects never asked for are ignored.
    let body = serde_json::json!({"objects": [
        {"oid": oid, "error": {"code": 410, "message": "gone"}},
        {"oid": oid, "actions": {"download": {"href": "https://x/"}}},
        {"oid": "not hex", "actions": {"download": {"href": "https://x/"}}}
    ]});
    let outcomes = parse_download_response(body.to_string().as_bytes(), &[p], 0).unwrap();
    assert!(matches!(outcomes[..], [Outcome::Error { code: 410, .. }]));
}

#[test]
fn rfc3339_times() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2016-11-10T15:29:07Z"), Some(1_478_791_747));
    assert_eq!(
        parse_rfc3339("2016-11-10T16:29:07.123+01:00"),
        Some(1_478_791_747)
    );
    assert_eq!(
        parse_rfc3339("2016-11-10T14:29:07-01:00"),
        Some(1_478_791_747)
    );
    assert_eq!(parse_rfc3339("2000-02-29T00:00:00z"), Some(951_782_400));
    for bad in [
        "",
        "2016-11-10",
        "2016-11-10T15:29:07",
        "2016-13-10T15:29:07Z",
        "2016-11-10T25:29:07Z",
        "2016-11-10T15:29:07.Z",
        "2016-11-10T15:29:07+0100",
        "2016-11-10T15:29:07+aa:00",
        "２016-11-10T15:29:07Z",
        "2016/11/10T15:29:07Z",
        "2016-11-10T15:29:07ZZ",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}
