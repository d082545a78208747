use super::*;
use crate::git::upload_pack::AdvertisedRef;

fn adv(head: Option<u8>, symref: Option<&str>, refs: &[(&str, u8)]) -> Advertisement {
    Advertisement {
        head: head.map(|n| ObjectId([n; 20])),
        head_symref: symref.map(str::to_owned),
        refs: refs
            .iter()
            .map(|(name, n)| AdvertisedRef {
                name: (*name).to_owned(),
                oid: ObjectId([*n; 20]),
                peeled: None,
            })
            .collect(),
        capabilities: Vec::new(),
    }
}

fn head_of(a: &Advertisement) -> Head {
    desired_state(a, &MirrorOptions::default()).head
}

#[test]
fn head_follows_symref_then_commit_then_conventional_names() {
    let sym = |s: &str| Head::Symbolic(s.to_owned());
    let refs = [
        ("refs/heads/trunk", 1),
        ("refs/heads/main", 2),
        ("refs/tags/v1", 3),
    ];
    assert_eq!(
        head_of(&adv(Some(1), Some("refs/heads/trunk"), &refs)),
        sym("refs/heads/trunk")
    );
    assert_eq!(head_of(&adv(Some(1), None, &refs)), sym("refs/heads/trunk"));
    assert_eq!(
        head_of(&adv(Some(9), Some("refs/heads/gone"), &refs)),
        sym("refs/heads/main")
    );
    assert_eq!(
        head_of(&adv(Some(3), None, &[("refs/tags/v1", 3)])),
        Head::Detached(ObjectId([3; 20]))
    );
    assert_eq!(
        head_of(&adv(None, Some("refs/heads/dev"), &[])),
        sym("refs/heads/dev")
    );
    assert_eq!(head_of(&adv(None, None, &[])), sym("refs/heads/main"));
}

#[test]
fn ref_filter_applies_to_published_refs() {
    let options = MirrorOptions {
        ref_prefixes: vec!["refs/heads/".into(), "refs/tags/".into()],
        ..MirrorOptions::default()
    };
    let a = adv(
        Some(1),
        None,
        &[("refs/pull/1/head", 5), ("refs/heads/main", 1)],
    );
    let d = desired_state(&a, &options);
    assert_eq!(d.refs.len(), 1);
    assert_eq!(d.refs[0].name, "refs/heads/main");
}

#[test]
fn mirror_repos_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let options = MirrorOptions::default();
    let mappings = [Mapping {
        source: "https://example.com/r.git".into(),
        target: "s3://b/p".into(),
    }];
    assert_send(&mirror_repos(&mappings, &options));
}

#[test]
fn source_urls_must_be_http() {
    assert!(parse_source_url("https://example.com/a/b.git").is_ok());
    for bad in ["ftp://x/y", "not a url", "file:///etc", "https://"] {
        assert!(parse_source_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn budget_parts_stay_within_total() {
    for mib in [24u64, 32, 256, 3008, 10240] {
        let b = Budget::new(mib << 20);
        let used = store::UPLOAD_BUFFER_BYTES
            + b.in_memory_pack
            + b.object_cache
            + b.read_chunk * b.read_chunks as u64;
        assert!(
            used <= (mib << 20).max(crate::options::MIN_MEMORY_BUDGET) + (8 << 20),
            "{mib} MiB budget overspent: {used}"
        );
        assert!(b.big_object >= 1 << 20);
    }
}

#[test]
fn the_smallest_budget_holds_the_upload_buffers_and_the_least_rest() {
    assert_eq!(
        crate::options::MIN_MEMORY_BUDGET,
        store::UPLOAD_BUFFER_BYTES + Budget::MIN_REST
    );
}
