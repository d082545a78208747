//! A checker of CloudWatch Embedded Metric Format documents against the specification's required structure, for
//! the records the Lambda function logs.

use serde_json::{Map, Value};

/// The units the specification allows.
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks `document` (one log line's JSON) against the EMF specification: a root object with an `_aws` object
/// holding a numeric `Timestamp` and a `CloudWatchMetrics` array of directives; each directive with a
/// `Namespace` of 1-255 characters, `Dimensions` (at least one set; sets of at most 30 keys, possibly none, each
/// naming a root string of 1-1,024 characters) and 1-100 `Metrics` (a `Name` of 1-255 characters naming a root number or array of at most
/// 100 numbers, an optional known `Unit`, an optional `StorageResolution` of 1 or 60). Returns every problem.
pub fn validate(document: &Value) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let Some(root) = document.as_object() else {
        return Err(vec!["the document is not a JSON object".to_owned()]);
    };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return Err(vec!["no `_aws` object".to_owned()]);
    };
    if !aws.get("Timestamp").is_some_and(Value::is_u64) {
        problems.push("`_aws.Timestamp` is not a non-negative integer".to_owned());
    }
    match aws.get("CloudWatchMetrics").and_then(Value::as_array) {
        None => problems.push("`_aws.CloudWatchMetrics` is not an array".to_owned()),
        Some(directives) => {
            for (index, directive) in directives.iter().enumerate() {
                check_directive(
                    root,
                    directive,
                    &format!("directive {index}"),
                    &mut problems,
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn check_directive(
    root: &Map<String, Value>,
    directive: &Value,
    at: &str,
    problems: &mut Vec<String>,
) {
    let Some(directive) = directive.as_object() else {
        problems.push(format!("{at} is not an object"));
        return;
    };
    let namespace = directive.get("Namespace").and_then(Value::as_str);
    if !namespace.is_some_and(|n| (1..=255).contains(&n.chars().count())) {
        problems.push(format!(
            "{at}: Namespace is not a string of 1-255 characters"
        ));
    }
    match directive.get("Dimensions").and_then(Value::as_array) {
        None => problems.push(format!("{at}: Dimensions is not an array")),
        Some(sets) if sets.is_empty() => problems.push(format!(
            "{at}: Dimensions holds no dimension set (an empty set is allowed)"
        )),
        Some(sets) => {
            for set in sets {
                let Some(keys) = set.as_array() else {
                    problems.push(format!("{at}: a dimension set is not an array"));
                    continue;
                };
                if keys.len() > 30 {
                    problems.push(format!("{at}: a dimension set has more than 30 keys"));
                }
                for key in keys {
                    let value = key
                        .as_str()
                        .and_then(|key| root.get(key))
                        .and_then(Value::as_str);
                    if !value.is_some_and(|v| (1..=1024).contains(&v.chars().count())) {
                        problems.push(format!(
                            "{at}: dimension {key} does not name a root string of 1-1024 characters"
                        ));
                    }
                }
            }
        }
    }
    match directive.get("Metrics").and_then(Value::as_array) {
        Some(metrics) if (1..=100).contains(&metrics.len()) => {
            for metric in metrics {
                check_metric(root, metric, at, problems);
            }
        }
        _ => problems.push(format!(
            "{at}: Metrics is not an array of 1-100 definitions"
        )),
    }
}

fn check_metric(root: &Map<String, Value>, metric: &Value, at: &str, problems: &mut Vec<String>) {
    let name = metric.get("Name").and_then(Value::as_str);
    let Some(name) = name.filter(|n| (1..=255).contains(&n.chars().count())) else {
        problems.push(format!(
            "{at}: a metric has no Name of 1-255 characters: {metric}"
        ));
        return;
    };
    let value_ok = match root.get(name) {
        Some(Value::Number(_)) => true,
        Some(Value::Array(values)) => values.len() <= 100 && values.iter().all(Value::is_number),
        _ => false,
    };
    if !value_ok {
        problems.push(format!(
            "{at}: metric {name} has no numeric value at the root"
        ));
    }
    if let Some(unit) = metric.get("Unit") {
        if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
            problems.push(format!("{at}: metric {name} has an unknown unit {unit}"));
        }
    }
    if let Some(resolution) = metric.get("StorageResolution") {
        if resolution != 1 && resolution != 60 {
            problems.push(format!(
                "{at}: metric {name} has StorageResolution {resolution}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate;
    use serde_json::json;

    #[test]
    fn a_valid_document_passes_and_every_broken_part_is_named() {
        let good = json!({
            "_aws": {"Timestamp": 1, "CloudWatchMetrics": [{
                "Namespace": "N", "Dimensions": [["T"], []],
                "Metrics": [{"Name": "M", "Unit": "Count"}, {"Name": "L"}]}]},
            "T": "target", "M": 1, "L": [1, 2.5]
        });
        assert_eq!(validate(&good), Ok(()));
        for (broken, expected) in [
            (json!([]), "not a JSON object"),
            (json!({"M": 1}), "no `_aws`"),
            (
                json!({"_aws": {"Timestamp": "x", "CloudWatchMetrics": []}}),
                "Timestamp",
            ),
            (json!({"_aws": {"Timestamp": 1}}), "CloudWatchMetrics"),
            (
                json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "", "Dimensions": [[]], "Metrics": [{"Name": "M"}]}]}, "M": 1}),
                "Namespace",
            ),
            (
                json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["T"]], "Metrics": [{"Name": "M"}]}]}, "M": 1}),
                "dimension \"T\"",
            ),
            (
                json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": []}]}}),
                "Metrics",
            ),
            (
                json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [], "Metrics": [{"Name": "M"}]}]}, "M": 1}),
                "no dimension set",
            ),
            (
                json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "M"}]}]}, "M": "1"}),
                "no numeric value",
            ),
            (
                json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "M", "Unit": "Parsecs"}]}]}, "M": 1}),
                "unknown unit",
            ),
        ] {
            let problems = validate(&broken).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{broken}: {problems:?}"
            );
        }
    }
}
