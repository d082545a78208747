//! What the tests of the options and of the fronts share: one [`Overrides`] with every field set, and the same
//! value as a Lambda request (or any JSON) spells it.

use super::Overrides;

/// Every field of [`Overrides`] set, each to a valid value other than its default.
pub(crate) fn every_override() -> Overrides {
    Overrides {
        memory_budget_mib: Some(512),
        concurrency: Some(7),
        endpoint_url: Some("http://127.0.0.1:5000".to_owned()),
        force_path_style: Some(true),
        storage_class: Some("STANDARD_IA".to_owned()),
        region: Some("eu-west-1".to_owned()),
        ref_prefixes: Some(vec!["refs/heads/".to_owned(), "refs/tags/".to_owned()]),
        compaction_threshold: Some(3),
        gc_grace_hours: Some(2),
        lfs: Some(false),
        lfs_url: Some("https://lfs.example.com/repo".to_owned()),
        lfs_tolerate_missing: Some(true),
        max_object_mib: Some(64),
        max_inflate_ratio: Some(50),
        max_advertisement_mib: Some(3),
        max_pack_mib: Some(5),
        verify: Some(true),
    }
}

/// [`every_override`] as JSON, the field names as [`Overrides::FIELDS`] lists them.
pub(crate) const EVERY_OVERRIDE_JSON: &str = r#"{"memory_budget_mib": 512, "concurrency": 7, "endpoint_url": "http://127.0.0.1:5000",
    "force_path_style": true, "storage_class": "STANDARD_IA", "region": "eu-west-1",
    "ref_prefixes": ["refs/heads/", "refs/tags/"], "compaction_threshold": 3, "gc_grace_hours": 2,
    "lfs": false, "lfs_url": "https://lfs.example.com/repo", "lfs_tolerate_missing": true,
    "max_object_mib": 64, "max_inflate_ratio": 50, "max_advertisement_mib": 3, "max_pack_mib": 5,
    "verify": true}"#;
