use super::*;
use crate::git::refs::Ref;

fn oid(n: u8) -> ObjectId {
    ObjectId([n; 20])
}

fn adv(head: Option<u8>, symref: Option<&str>, refs: &[(&str, u8)]) -> Advertisement {
    Advertisement {
        head: head.map(oid),
        head_symref: symref.map(str::to_owned),
        refs: refs
            .iter()
            .map(|(name, n)| Ref {
                name: (*name).to_owned(),
                oid: oid(*n),
                peeled: None,
            })
            .collect(),
        ..Advertisement::default()
    }
}

/// Refs as the mirror's `info/refs` lists them (sorted by name).
fn mirror_refs(refs: &[(&str, u8)]) -> Vec<Ref> {
    let mut refs: Vec<Ref> = refs
        .iter()
        .map(|(name, n)| Ref {
            name: (*name).to_owned(),
            oid: oid(*n),
            peeled: None,
        })
        .collect();
    layout::sort_refs(&mut refs);
    refs
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
fn a_mirror_that_publishes_the_desired_files_is_a_no_op() {
    let desired = desired_state(
        &adv(Some(1), Some("refs/heads/main"), &[("refs/heads/main", 1)]),
        &MirrorOptions::default(),
    );
    let info_refs = desired.info_refs.clone();
    let head = desired.head_file.clone();
    assert!(desired.is_published(Some(&info_refs), Some(&head)));
    assert!(!desired.is_published(None, Some(&head)));
    assert!(!desired.is_published(Some(&info_refs), None));
    assert!(!desired.is_published(Some(&info_refs), Some(b"ref: refs/heads/dev\n")));
    let other = layout::render_info_refs(&mirror_refs(&[("refs/heads/main", 2)]));
    assert!(!desired.is_published(Some(&other), Some(&head)));
}

/// One row of the planning table: the mirror's published state, the source's refs and the options, and the plan
/// they must give.
struct Case {
    name: &'static str,
    /// The mirror's refs; `None`: no usable `info/refs` (first run, no pack list, or damaged).
    mirror: Option<&'static [(&'static str, u8)]>,
    /// How many packs the mirror lists.
    packs: u8,
    /// The source's advertised refs.
    source: &'static [(&'static str, u8)],
    /// Ref prefixes to mirror; empty: the default (every ref).
    prefixes: &'static [&'static str],
    compaction_threshold: usize,
    kind: RunKind,
    wants: &'static [u8],
    haves: &'static [u8],
}

const CASES: &[Case] = &[
    Case {
        name: "first run: every tip once, no haves",
        mirror: None,
        packs: 0,
        source: &[
            ("refs/heads/main", 1),
            ("refs/heads/dev", 2),
            ("refs/tags/v1", 1),
        ],
        prefixes: &[],
        compaction_threshold: 16,
        kind: RunKind::Full,
        wants: &[2, 1],
        haves: &[],
    },
    Case {
        name: "first run of an empty source: nothing to fetch",
        mirror: None,
        packs: 0,
        source: &[],
        prefixes: &[],
        compaction_threshold: 16,
        kind: RunKind::Full,
        wants: &[],
        haves: &[],
    },
    Case {
        name: "no usable refs wins over a long pack list",
        mirror: None,
        packs: 20,
        source: &[("refs/heads/main", 1)],
        prefixes: &[],
        compaction_threshold: 4,
        kind: RunKind::Full,
        wants: &[1],
        haves: &[],
    },
    Case {
        name: "a new commit on a branch",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 1,
        source: &[("refs/heads/main", 2)],
        prefixes: &[],
        compaction_threshold: 16,
        kind: RunKind::Incremental,
        wants: &[2],
        haves: &[1],
    },
    Case {
        name: "only the tips the mirror lacks are wanted; every mirrored tip is a have, once",
        mirror: Some(&[("refs/heads/a", 1), ("refs/heads/b", 2), ("refs/tags/t", 1)]),
        packs: 2,
        source: &[
            ("refs/heads/a", 3),
            ("refs/heads/b", 3),
            ("refs/heads/c", 2),
        ],
        prefixes: &[],
        compaction_threshold: 16,
        kind: RunKind::Incremental,
        wants: &[3],
        haves: &[1, 2],
    },
    Case {
        name: "a deleted branch: refs only",
        mirror: Some(&[("refs/heads/main", 1), ("refs/heads/old", 3)]),
        packs: 1,
        source: &[("refs/heads/main", 1)],
        prefixes: &[],
        compaction_threshold: 16,
        kind: RunKind::RefsOnly,
        wants: &[],
        haves: &[1, 3],
    },
    Case {
        name: "a new tag on a mirrored tip: refs only",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 1,
        source: &[("refs/heads/main", 1), ("refs/tags/v1", 1)],
        prefixes: &[],
        compaction_threshold: 16,
        kind: RunKind::RefsOnly,
        wants: &[],
        haves: &[1],
    },
    Case {
        name: "refs outside the prefixes are not wanted",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 1,
        source: &[("refs/heads/main", 1), ("refs/pull/1/head", 5)],
        prefixes: &["refs/heads/"],
        compaction_threshold: 16,
        kind: RunKind::RefsOnly,
        wants: &[],
        haves: &[1],
    },
    Case {
        name: "one pack below the threshold: incremental",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 3,
        source: &[("refs/heads/main", 2)],
        prefixes: &[],
        compaction_threshold: 4,
        kind: RunKind::Incremental,
        wants: &[2],
        haves: &[1],
    },
    Case {
        name: "a pack list at the threshold: compaction wants every tip and sends no haves",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 4,
        source: &[("refs/heads/main", 2), ("refs/tags/v1", 1)],
        prefixes: &[],
        compaction_threshold: 4,
        kind: RunKind::Compaction,
        wants: &[2, 1],
        haves: &[],
    },
    Case {
        name: "compaction also when no tip moved (e.g. HEAD changed)",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 4,
        source: &[("refs/heads/main", 1)],
        prefixes: &[],
        compaction_threshold: 4,
        kind: RunKind::Compaction,
        wants: &[1],
        haves: &[],
    },
    Case {
        name: "a threshold of 0 counts as 1",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 1,
        source: &[("refs/heads/main", 2)],
        prefixes: &[],
        compaction_threshold: 0,
        kind: RunKind::Compaction,
        wants: &[2],
        haves: &[],
    },
    Case {
        name: "an empty pack list under a threshold of 0: incremental",
        mirror: Some(&[("refs/heads/main", 1)]),
        packs: 0,
        source: &[("refs/heads/main", 2)],
        prefixes: &[],
        compaction_threshold: 0,
        kind: RunKind::Incremental,
        wants: &[2],
        haves: &[1],
    },
];

#[test]
fn plans_follow_the_table() {
    for case in CASES {
        let mut options = MirrorOptions {
            compaction_threshold: case.compaction_threshold,
            ..MirrorOptions::default()
        };
        if !case.prefixes.is_empty() {
            options.ref_prefixes = case.prefixes.iter().map(|p| (*p).to_owned()).collect();
        }
        let desired = desired_state(&adv(None, None, case.source), &options);
        let published = Published {
            packs: (100..100 + case.packs).map(oid).collect(),
            refs: case.mirror.map(mirror_refs),
        };
        let expected = Plan {
            kind: case.kind,
            wants: case.wants.iter().copied().map(oid).collect(),
            haves: case.haves.iter().copied().map(oid).collect(),
        };
        assert_eq!(
            plan(&desired, &published, &options),
            expected,
            "{}",
            case.name
        );
    }
}

#[test]
fn only_an_incremental_run_without_a_pack_becomes_refs_only() {
    let planned = |kind| Plan {
        kind,
        wants: vec![oid(1)],
        haves: Vec::new(),
    };
    for (kind, got_pack, after) in [
        (RunKind::Incremental, true, RunKind::Incremental),
        (RunKind::Incremental, false, RunKind::RefsOnly),
        (RunKind::Full, false, RunKind::Full),
        (RunKind::Compaction, false, RunKind::Compaction),
        (RunKind::RefsOnly, false, RunKind::RefsOnly),
    ] {
        assert_eq!(
            planned(kind).kind_after_fetch(got_pack),
            after,
            "{kind} {got_pack}"
        );
    }
}

#[test]
fn published_refs_count_only_beside_a_pack_list() {
    let packs = layout::render_packs(&[oid(7), oid(8)]);
    let refs = mirror_refs(&[("refs/heads/main", 1)]);
    let info_refs = layout::render_info_refs(&refs);
    let parse = |p: Option<&[u8]>, r: Option<&[u8]>| {
        Published::parse(p, r, |e| panic!("unexpected damage: {e}")).unwrap()
    };

    assert_eq!(parse(None, None), Published::default());
    assert_eq!(
        parse(None, Some(&info_refs)),
        Published::default(),
        "refs without a pack list say nothing about where their objects are"
    );
    assert_eq!(
        parse(Some(&packs), None),
        Published {
            packs: vec![oid(7), oid(8)],
            refs: None
        }
    );
    assert_eq!(
        parse(Some(&packs), Some(&info_refs)),
        Published {
            packs: vec![oid(7), oid(8)],
            refs: Some(refs)
        }
    );
}

#[test]
fn damaged_refs_cost_a_full_fetch_and_a_damaged_pack_list_fails() {
    let packs = layout::render_packs(&[oid(7)]);
    let mut damage = Vec::new();
    let published =
        Published::parse(Some(&packs), Some(b"not a ref line\n"), |e| damage.push(e)).unwrap();
    assert_eq!(published.refs, None);
    assert_eq!(published.packs, [oid(7)]);
    assert!(
        matches!(damage.as_slice(), [LayoutError::InfoRefs { line: 1, .. }]),
        "{damage:?}"
    );

    let info_refs = layout::render_info_refs(&mirror_refs(&[("refs/heads/main", 1)]));
    let broken = Published::parse(Some(b"P not-a-pack\n"), Some(&info_refs), |e| {
        panic!("refs reported as damaged: {e}")
    });
    assert!(matches!(broken, Err(LayoutError::Packs { line: 1, .. })));
}

#[test]
fn a_repair_fetches_every_tip_and_replaces_every_pack() {
    let desired = desired_state(
        &adv(
            Some(1),
            Some("refs/heads/main"),
            &[
                ("refs/heads/main", 1),
                ("refs/tags/v1", 2),
                ("refs/tags/v2", 1),
            ],
        ),
        &MirrorOptions::default(),
    );
    assert_eq!(
        repair(&desired),
        Plan {
            kind: RunKind::Compaction,
            wants: vec![oid(1), oid(2)],
            haves: Vec::new(),
        }
    );
}
