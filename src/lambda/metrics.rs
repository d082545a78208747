//! CloudWatch metrics of each mapping, as Embedded Metric Format (EMF) records in the function's log.
//!
//! Lambda sends the function's standard output to CloudWatch Logs, which turns every line that is an EMF
//! document into metric data points: no `PutMetricData` call, no extra permission. One record per mapping, in
//! namespace [`NAMESPACE`], with the metrics `Success` (1 or 0), `DurationMs`, `PackBytes`, `Objects`,
//! `StoreRequests` and `AdvertisementBytes`, published twice: per target (dimension `Target`) and for the whole
//! deployment (no dimension), so that one alarm can watch every mapping (failures, or no success for hours).
//! The kind of run (`RunKind`) and the redacted source (`Source`) are properties of the record: searchable with
//! Logs Insights, not metrics (a dimension per kind would multiply the metrics billed). The CLI's `--json` report
//! carries the same figures under their report names.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::report::RepoReport;

/// The CloudWatch namespace of the function's metrics.
pub const NAMESPACE: &str = "MirrorGitToS3";
/// The dimension naming a mapping's target.
pub const TARGET_DIMENSION: &str = "Target";
/// Longest dimension value CloudWatch accepts, in characters.
const MAX_DIMENSION_CHARS: usize = 1024;

/// The metrics of a record: name, EMF unit.
const METRICS: [(&str, &str); 6] = [
    ("Success", "Count"),
    ("DurationMs", "Milliseconds"),
    ("PackBytes", "Bytes"),
    ("Objects", "Count"),
    ("StoreRequests", "Count"),
    ("AdvertisementBytes", "Bytes"),
];

/// The EMF record of one mapping's report, stamped `timestamp_ms` (milliseconds since the epoch).
pub fn emf_record(report: &RepoReport, timestamp_ms: u64) -> Value {
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|(name, unit)| json!({ "Name": name, "Unit": unit }))
        .collect();
    let target: String = report.target.chars().take(MAX_DIMENSION_CHARS).collect();
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[TARGET_DIMENSION], []],
                "Metrics": metrics,
            }],
        },
        TARGET_DIMENSION: target,
        "Success": u8::from(report.is_ok()),
        "DurationMs": report.duration_ms,
        "PackBytes": report.pack_bytes,
        "Objects": report.objects,
        "StoreRequests": report.store_requests,
        "AdvertisementBytes": report.advertisement_bytes,
        "RunKind": report.kind.to_string(),
        "Source": report.source,
    })
}

/// Writes one EMF record per report to standard output, one line each.
pub fn emit(reports: &[RepoReport]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let mut out = std::io::stdout().lock();
    for report in reports {
        // A metric lost to a closed stdout must not fail the mirror it measures.
        let _ = writeln!(out, "{}", emf_record(report, now));
    }
}

#[cfg(test)]
mod tests;
