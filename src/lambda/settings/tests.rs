//! The mapping configuration: both forms of the document and `s3://bucket/key` URIs.

use super::super::test_support::*;
use super::*;

#[test]
fn configuration_sample_and_both_forms_parse() {
    let text = sample_text("mappings-config.json")
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
fn s3_uris_split_into_bucket_and_key() {
    assert_eq!(
        parse_s3_uri("s3://bucket/config/mappings.json"),
        Some(("bucket", "config/mappings.json"))
    );
    assert_eq!(parse_s3_uri("s3://bucket/"), None);
    assert_eq!(parse_s3_uri("s3://bucket"), None);
    assert_eq!(parse_s3_uri("https://bucket/key"), None);
}
