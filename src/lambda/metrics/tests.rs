use super::*;
use crate::report::RunKind;

fn report(error: Option<&str>) -> RepoReport {
    RepoReport {
        source: "https://example.com/o/r.git".into(),
        target: "s3://bucket/mirrors/r".into(),
        kind: RunKind::Incremental,
        refs: 12,
        advertisement_bytes: 1_234,
        objects: 56,
        pack_bytes: 78_901,
        store_requests: 9,
        packs_deleted: 0,
        duration_ms: 2_345,
        lfs: None,
        repaired: None,
        error: error.map(str::to_owned),
    }
}

#[test]
fn a_record_carries_every_figure_and_follows_the_specification() {
    let record = emf_record(&report(None), 1_764_547_200_000);
    assert_eq!(testkit::emf::validate(&record), Ok(()));
    assert_eq!(
        record,
        json!({
            "_aws": {
                "Timestamp": 1_764_547_200_000_u64,
                "CloudWatchMetrics": [{
                    "Namespace": "MirrorGitToS3",
                    "Dimensions": [["Target"], []],
                    "Metrics": [
                        {"Name": "Success", "Unit": "Count"},
                        {"Name": "DurationMs", "Unit": "Milliseconds"},
                        {"Name": "PackBytes", "Unit": "Bytes"},
                        {"Name": "Objects", "Unit": "Count"},
                        {"Name": "StoreRequests", "Unit": "Count"},
                        {"Name": "AdvertisementBytes", "Unit": "Bytes"},
                    ],
                }],
            },
            "Target": "s3://bucket/mirrors/r",
            "Success": 1,
            "DurationMs": 2_345,
            "PackBytes": 78_901,
            "Objects": 56,
            "StoreRequests": 9,
            "AdvertisementBytes": 1_234,
            "RunKind": "incremental",
            "Source": "https://example.com/o/r.git",
        })
    );
}

#[test]
fn a_failure_counts_zero_and_a_huge_target_is_cut_to_what_cloudwatch_takes() {
    let mut failed = report(Some("boom"));
    failed.target = format!("s3://bucket/{}", "p".repeat(5_000));
    let record = emf_record(&failed, 1);
    assert_eq!(testkit::emf::validate(&record), Ok(()));
    assert_eq!(record["Success"], 0);
    assert_eq!(
        record["Target"].as_str().map(|t| t.chars().count()),
        Some(1024)
    );
}
