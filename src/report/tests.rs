use super::*;

#[test]
fn the_json_report_names_the_kind_of_run_under_its_new_and_its_former_name() {
    let report = RepoReport {
        source: "https://example.com/r.git".into(),
        target: "s3://b/p".into(),
        kind: RunKind::RefsOnly,
        refs: 2,
        advertisement_bytes: 0,
        objects: 0,
        pack_bytes: 0,
        store_requests: 7,
        packs_deleted: 1,
        duration_ms: 12,
        error: None,
        lfs: None,
        repaired: None,
    };
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "source": "https://example.com/r.git",
            "target": "s3://b/p",
            "kind": "refs_only",
            "path": "refs_only",
            "refs": 2,
            "advertisement_bytes": 0,
            "objects": 0,
            "pack_bytes": 0,
            "store_requests": 7,
            "packs_deleted": 1,
            "duration_ms": 12,
            "error": null,
        })
    );
    // Written in declaration order, `kind` first.
    let text = serde_json::to_string(&report).unwrap();
    assert!(
        text.contains(r#""target":"s3://b/p","kind":"refs_only","path":"refs_only","refs":2"#),
        "{text}"
    );
}
