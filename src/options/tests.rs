//! [`Overrides`]: what each field changes, the ranges it enforces, and its field list.

use super::test_support::{every_override, EVERY_OVERRIDE_JSON};
use super::*;

#[test]
fn overrides_left_out_keep_the_options_given() {
    let given = MirrorOptions::default().with_memory_budget_mib(100);
    let applied = Overrides::default().apply(given.clone()).unwrap();
    assert_eq!(format!("{applied:?}"), format!("{given:?}"));
}

#[test]
fn every_override_reaches_the_options() {
    let options = every_override().apply(MirrorOptions::default()).unwrap();
    assert_eq!(options.memory_budget, 512 << 20);
    assert_eq!(options.concurrency, 7);
    assert_eq!(
        options.s3.endpoint_url.as_deref(),
        Some("http://127.0.0.1:5000")
    );
    assert!(options.s3.force_path_style);
    assert_eq!(options.s3.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(options.s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(options.ref_prefixes, ["refs/heads/", "refs/tags/"]);
    assert!(options.wants_ref("refs/tags/v1") && !options.wants_ref("refs/pull/1/head"));
    assert_eq!(options.compaction_threshold, 3);
    assert_eq!(
        options.lfs,
        LfsOptions {
            enabled: false,
            url: Some("https://lfs.example.com/repo".to_owned()),
            tolerate_missing: true,
        }
    );
    assert_eq!(options.gc_grace, Duration::from_secs(2 * 3600));
    assert_eq!(options.max_object_bytes, 64 << 20);
    assert_eq!(options.max_inflate_ratio, 50);
    assert_eq!(options.max_work_bytes(100 << 20), 5000 << 20);
    assert_eq!(options.max_work_bytes(1), MIN_WORK_BYTES);
    assert_eq!(options.max_advertisement_bytes, 3 << 20);
    assert_eq!(options.max_pack_bytes, 5 << 20);
    assert!(options.verify);
    let small = Overrides {
        memory_budget_mib: Some(1),
        ..Overrides::default()
    };
    assert_eq!(
        small.apply(MirrorOptions::default()).unwrap().memory_budget,
        MIN_MEMORY_BUDGET
    );
}

#[test]
fn out_of_range_overrides_are_refused_naming_the_field() {
    let cases = [
        (
            Overrides {
                memory_budget_mib: Some(0),
                ..every_override()
            },
            "memory_budget_mib: must be at least 1",
        ),
        (
            Overrides {
                concurrency: Some(0),
                ..every_override()
            },
            "concurrency: must be at least 1",
        ),
        (
            Overrides {
                endpoint_url: Some("localhost:5000".to_owned()),
                ..every_override()
            },
            "endpoint_url: \"localhost:5000\": expected an http:// or https:// URL, got scheme \"localhost\"",
        ),
        (
            Overrides {
                endpoint_url: Some("127.0.0.1:5000".to_owned()),
                ..every_override()
            },
            "endpoint_url: \"127.0.0.1:5000\" is not a URL: relative URL without a base",
        ),
        (
            Overrides {
                storage_class: Some(String::new()),
                ..every_override()
            },
            "storage_class: is empty",
        ),
        (
            Overrides {
                region: Some(String::new()),
                ..every_override()
            },
            "region: is empty",
        ),
        (
            Overrides {
                ref_prefixes: Some(Vec::new()),
                ..every_override()
            },
            "ref_prefixes: is empty: leave it out to mirror every ref",
        ),
        (
            Overrides {
                ref_prefixes: Some(vec!["refs/heads/".to_owned(), "heads/".to_owned()]),
                ..every_override()
            },
            "ref_prefixes: \"heads/\" does not start with \"refs/\", as every ref name does",
        ),
        (
            Overrides {
                gc_grace_hours: Some(u64::MAX),
                ..every_override()
            },
            "gc_grace_hours: 18446744073709551615 is more than 876000 (100 years)",
        ),
        (
            Overrides {
                gc_grace_hours: Some(0),
                ..every_override()
            },
            "gc_grace_hours: 0 is less than 1: a shorter grace lets one run delete the pack another run is \
             about to list",
        ),
        (
            Overrides {
                lfs_url: Some("ssh://git@host/repo".to_owned()),
                ..every_override()
            },
            "lfs_url: \"ssh://***@host/repo\": expected an http:// or https:// URL, got scheme \"ssh\"",
        ),
        (
            Overrides {
                max_object_mib: Some(0),
                ..every_override()
            },
            "max_object_mib: must be at least 1",
        ),
        (
            Overrides {
                max_inflate_ratio: Some(0),
                ..every_override()
            },
            "max_inflate_ratio: must be at least 1",
        ),
        (
            Overrides {
                max_advertisement_mib: Some(0),
                ..every_override()
            },
            "max_advertisement_mib: must be at least 1",
        ),
        (
            Overrides {
                max_pack_mib: Some(MAX_SIZE_MIB + 1),
                ..every_override()
            },
            "max_pack_mib: 5242881 is more than 5242880 (5 TiB)",
        ),
    ];
    for (overrides, expected) in cases {
        assert_eq!(overrides.validate().unwrap_err().to_string(), expected);
        assert_eq!(
            overrides
                .apply(MirrorOptions::default())
                .unwrap_err()
                .to_string(),
            expected,
            "apply refuses what validate refuses"
        );
    }
    let edges = Overrides {
        compaction_threshold: Some(0),
        gc_grace_hours: Some(MAX_GC_GRACE_HOURS),
        ..every_override()
    };
    assert_eq!(edges.validate(), Ok(()));
    let shortest = Overrides {
        gc_grace_hours: Some(MIN_GC_GRACE_HOURS),
        ..every_override()
    };
    assert_eq!(shortest.validate(), Ok(()));
}

#[test]
fn fields_are_exactly_the_ones_deserialization_accepts() {
    let error = serde_json::from_str::<Overrides>(r#"{"token": "secret"}"#)
        .unwrap_err()
        .to_string();
    let listed: Vec<String> = Overrides::FIELDS
        .iter()
        .map(|field| format!("`{field}`"))
        .collect();
    assert_eq!(
        error,
        format!(
            "unknown field `token`, expected one of {} at line 1 column 8",
            listed.join(", ")
        )
    );
    assert_eq!(
        serde_json::from_str::<Overrides>(EVERY_OVERRIDE_JSON).unwrap(),
        every_override()
    );
}
