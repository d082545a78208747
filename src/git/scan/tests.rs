use super::*;

/// A tree with one regular file per id (named `f0`, `f1`...), for the tests that scan trees.
pub(crate) fn tree_of(ids: &[[u8; 20]]) -> Vec<u8> {
    let mut tree = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        tree.extend_from_slice(format!("100644 f{i}\0").as_bytes());
        tree.extend_from_slice(id);
    }
    tree
}

#[test]
fn collects_distinct_links_of_interleaved_objects() {
    let mut scanner = Scanner::collecting_links(1 << 20);
    assert!(scanner.begin(ObjectKind::Blob, 10).is_none());
    let first = tree_of(&[[1; 20], [2; 20]]);
    let second = tree_of(&[[2; 20], [3; 20]]);
    let mut a = scanner.begin(ObjectKind::Tree, first.len() as u64).unwrap();
    let mut b = scanner
        .begin(ObjectKind::Tree, second.len() as u64)
        .unwrap();
    for (x, y) in first.chunks(5).zip(second.chunks(5)) {
        a.update(x);
        b.update(y);
    }
    scanner.end(b, ObjectId([8; 20])).unwrap();
    scanner.end(a, ObjectId([9; 20])).unwrap();
    assert_eq!(scanner.link_count(), 3);
    scanner.compact_links();
    let links: Vec<ObjectId> = scanner.links().copied().collect();
    assert_eq!(
        links,
        vec![ObjectId([1; 20]), ObjectId([2; 20]), ObjectId([3; 20])]
    );
    assert_eq!(scanner.link_count(), 3);
    assert!(scanner.link_bytes() >= 3 * BYTES_PER_LINK);
}

#[test]
fn a_scanner_of_nothing_reads_nothing() {
    let mut scanner = Scanner::none();
    assert!(scanner.begin(ObjectKind::Tree, 1).is_none());
    scanner
        .visit(ObjectKind::Commit, ObjectId::ZERO, b"garbage")
        .unwrap();
    assert_eq!(scanner.link_count(), 0);
}

#[test]
fn a_malformed_object_names_itself() {
    let mut scanner = Scanner::collecting_links(1 << 20);
    let err = scanner
        .visit(ObjectKind::Commit, ObjectId([5; 20]), b"author x\n")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "commit {} is malformed: it does not start with a \"tree <id>\" line",
            ObjectId([5; 20])
        )
    );
}

#[test]
fn links_beyond_the_memory_limit_are_an_error() {
    let mut scanner = Scanner::collecting_links(64 * BYTES_PER_LINK);
    let ids: Vec<[u8; 20]> = (0..1000u32)
        .map(|i| {
            let mut id = [0; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id
        })
        .collect();
    let err = scanner
        .visit(ObjectKind::Tree, ObjectId::ZERO, &tree_of(&ids))
        .unwrap_err();
    assert!(
        matches!(err, ScanError::TooManyLinks { links, limit } if links <= 64 && limit == 64 * BYTES_PER_LINK),
        "{err}"
    );
    assert!(scanner.link_bytes() <= 64 * BYTES_PER_LINK);
}

/// The cost of collecting links while a whole pack is parsed and resolved: the bench's medium repository
/// (tokio's shape; `SCAN_MEASURE_OBJECTS` objects, default 150,000), resolved from memory with and without a
/// link-collecting scanner. Prints the times and the memory the links took; run it in release mode:
/// `cargo test --release --lib measure_scan_cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a test: minutes in debug builds"]
async fn measure_scan_cost() {
    use crate::git::pack::PackParser;
    use crate::git::resolve::{resolve_and_scan, ResolveLimits, ResolveOptions};
    use std::time::Instant;
    use testkit::bench_repos::{build_history, MEDIUM};
    let objects = std::env::var("SCAN_MEASURE_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150_000);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("medium.git");
    build_history(&repo, &MEDIUM, 1, objects);
    let pack = bytes::Bytes::from(testkit::git::git_with_input(
        ["pack-objects", "--all", "--stdout", "-q"],
        &repo,
        b"",
    ));
    let options = ResolveOptions {
        cache_bytes: 64 << 20,
        retain_bytes: 0,
        big_object_bytes: 32 << 20,
        progress: None,
        limits: ResolveLimits::NONE,
    };
    let mut best = [f64::MAX; 2];
    let mut links = (0, 0);
    let mut work = 0;
    for round in 0..6 {
        let collect = round % 2;
        let scanner = if collect == 1 {
            Scanner::collecting_links(1 << 30)
        } else {
            Scanner::none()
        };
        let start = Instant::now();
        let mut parser = PackParser::with_scanner(scanner);
        parser.feed(&pack).unwrap();
        let mut parsed = parser.finish().unwrap();
        work = resolve_and_scan(&mut parsed.entries, &pack, &options, &mut parsed.scanner)
            .await
            .unwrap()
            .work_bytes;
        best[collect] = best[collect].min(start.elapsed().as_secs_f64());
        if collect == 1 {
            links = (parsed.scanner.link_count(), parsed.scanner.link_bytes());
            assert!(parsed.entries.len() as f64 >= links.0 as f64 * 0.9);
        }
    }
    println!(
        "pack of {} bytes: parse + resolve {:.2} s without the scanner, {:.2} s with it (+{:.0}%); \
         {} distinct links held in {:.1} MiB; resolution work {:.1}x the pack",
        pack.len(),
        best[0],
        best[1],
        (best[1] / best[0] - 1.0) * 100.0,
        links.0,
        links.1 as f64 / (1 << 20) as f64,
        work as f64 / pack.len() as f64
    );
}

#[test]
fn repeated_links_across_many_objects_fit_a_small_limit() {
    // 2,000 trees naming the same 50 ids: 100,000 links, 50 distinct, in a limit of 100 ids.
    let mut scanner = Scanner::collecting_links(100 * BYTES_PER_LINK);
    let ids: Vec<[u8; 20]> = (0..50u8).map(|i| [i; 20]).collect();
    let tree = tree_of(&ids);
    for n in 0..2_000u32 {
        let mut oid = [0xee; 20];
        oid[..4].copy_from_slice(&n.to_be_bytes());
        scanner
            .visit(ObjectKind::Tree, ObjectId(oid), &tree)
            .unwrap();
    }
    assert_eq!(scanner.link_count(), 50);
    assert!(scanner.link_bytes() <= 100 * BYTES_PER_LINK);
}

#[test]
fn a_pack_linking_to_more_than_the_limit_fails_with_a_typed_error() {
    use crate::git::pack::{PackError, PackParser};
    // One tree naming 5,000 distinct (absent) ids, against a limit of 1,000 links.
    let ids: Vec<[u8; 20]> = (0..5_000u32)
        .map(|i| {
            let mut id = [0x42; 20];
            id[16..].copy_from_slice(&i.to_be_bytes());
            id
        })
        .collect();
    let pack = testkit::pack::PackBuilder::new(2, 1)
        .object(2, &tree_of(&ids))
        .finish();
    let mut parser = PackParser::with_scanner(Scanner::collecting_links(1_000 * BYTES_PER_LINK));
    let err = parser
        .feed(&pack)
        .and_then(|()| parser.finish().map(|_| ()))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PackError::Scan {
                problem: ScanError::TooManyLinks { limit, .. },
                ..
            } if *limit == 1_000 * BYTES_PER_LINK
        ),
        "{err}"
    );
    assert!(err.to_string().contains("raise the memory budget"), "{err}");
}

#[tokio::test]
async fn the_trail_to_the_lfsconfig_follows_a_real_pack_to_what_git_names() {
    use crate::git::pack::PackParser;
    use crate::git::resolve::{resolve_and_scan, tests::ROOMY};
    use testkit::git::git;
    for keep_at_tip in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo.git");
        testkit::fixtures::build_lfsconfig_history(&repo, 30, keep_at_tip);
        let rev = |name: &str| git(["rev-parse", name], &repo).trim().parse().unwrap();
        let head: ObjectId = rev("HEAD");
        let pack = testkit::pack::pack_repo(&repo, &dir.path().join("out"), &[]).pack;
        let scanner = Scanner::collecting_links(1 << 20).following_lfsconfig(head);
        assert_eq!(
            scanner.lfsconfig_trail(),
            Some(LfsConfigTrail::Commit(head))
        );
        let mut parser = PackParser::with_scanner(scanner);
        parser.feed(&pack).unwrap();
        let mut parsed = parser.finish().unwrap();
        let source = bytes::Bytes::from(pack);
        resolve_and_scan(&mut parsed.entries, &source, &ROOMY, &mut parsed.scanner)
            .await
            .unwrap();
        // git writes a branch's tip before the trees: the trail ends at the root tree's .lfsconfig (not the
        // decoy in docs/), or at its absence.
        let expected = keep_at_tip.then(|| rev("HEAD:.lfsconfig"));
        assert_eq!(
            parsed.scanner.lfsconfig_trail(),
            Some(LfsConfigTrail::Found(expected)),
            "kept at the tip: {keep_at_tip}"
        );
    }
}

#[test]
fn the_trail_to_the_lfsconfig_goes_only_as_far_as_the_objects_came_in_order() {
    let (commit, root, blob) = (ObjectId([1; 20]), ObjectId([2; 20]), ObjectId([3; 20]));
    let commit_text = format!("tree {root}\nauthor A <a@b> 1 +0000\n\nmessage\n");
    let mut tree = b"100644 .lfsconfig\0".to_vec();
    tree.extend_from_slice(&blob.0);
    let trail = |objects: &[(ObjectKind, ObjectId, &[u8])]| {
        let mut scanner = Scanner::collecting_links(1 << 20).following_lfsconfig(commit);
        for (kind, oid, content) in objects {
            let _ = scanner.visit(*kind, *oid, content);
        }
        scanner.lfsconfig_trail()
    };
    let commit_object = (ObjectKind::Commit, commit, commit_text.as_bytes());
    let tree_object = (ObjectKind::Tree, root, tree.as_slice());
    assert_eq!(
        trail(&[commit_object, tree_object]),
        Some(LfsConfigTrail::Found(Some(blob)))
    );
    // The tree before its commit: the trail waits for the tree, which is then read from the pack.
    assert_eq!(
        trail(&[tree_object, commit_object]),
        Some(LfsConfigTrail::Tree(root))
    );
    // Another commit, a tree of the same content under another id, a malformed commit with the id: no step.
    let other = (
        ObjectKind::Commit,
        ObjectId([9; 20]),
        commit_text.as_bytes(),
    );
    assert_eq!(trail(&[other]), Some(LfsConfigTrail::Commit(commit)));
    let other_tree = (ObjectKind::Tree, ObjectId([9; 20]), tree.as_slice());
    assert_eq!(
        trail(&[commit_object, other_tree]),
        Some(LfsConfigTrail::Tree(root))
    );
    let malformed = (ObjectKind::Commit, commit, b"author A\n".as_slice());
    assert_eq!(trail(&[malformed]), Some(LfsConfigTrail::Commit(commit)));
    // A scanner that does not follow it has no trail.
    assert_eq!(Scanner::collecting_links(1 << 20).lfsconfig_trail(), None);
}
