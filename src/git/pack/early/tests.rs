use super::*;
use crate::git::oid::{hash_object, ObjectId};
use crate::git::pack::entry::EntryKind;
use crate::git::pack::test_support::verify_pack;
use crate::git::pack::{PackError, PackParser, ParsedPack};
use crate::git::resolve::{resolve_and_scan, ResolveError, ResolveLimits, ResolveOptions};
use crate::git::scan::Scanner;
use bytes::Bytes;
use testkit::pack::{delta_bomb, packed_repo, GitPack, PackBuilder};

/// Limits that hold everything.
fn roomy() -> EarlyResolution {
    EarlyResolution {
        cache_bytes: 1 << 30,
        object_bytes: 1 << 30,
        work_bytes: Box::new(|_| u64::MAX),
    }
}

/// Parses `pack` in pieces of `piece` bytes, resolving early within `limits`, collecting links.
fn parse_early(
    pack: &[u8],
    piece: usize,
    limits: EarlyResolution,
) -> Result<ParsedPack, PackError> {
    let mut parser =
        PackParser::with_scanner(Scanner::collecting_links(u64::MAX)).resolve_early(limits);
    for chunk in pack.chunks(piece) {
        parser.feed(chunk)?;
    }
    parser.finish()
}

/// Pass 2 over what pass 1 left, the pack in memory, within `limits`.
async fn pass_2_within(
    pack: &[u8],
    parsed: &mut ParsedPack,
    limits: ResolveLimits,
) -> Result<(), ResolveError> {
    let options = ResolveOptions {
        cache_bytes: 1 << 20,
        retain_bytes: 0,
        big_object_bytes: 1 << 20,
        progress: None,
        limits,
    };
    let source = Bytes::copy_from_slice(pack);
    resolve_and_scan(&mut parsed.entries, &source, &options, &mut parsed.scanner).await?;
    Ok(())
}

/// Pass 2 over what pass 1 left, the pack in memory, without limits.
async fn pass_2(pack: &[u8], parsed: &mut ParsedPack) -> Result<(), ResolveError> {
    pass_2_within(pack, parsed, ResolveLimits::NONE).await
}

/// Checks that every id pass 1 found is git's; returns how many OFS deltas the pack has.
fn check_ids(pack: &GitPack, parsed: &ParsedPack) -> u64 {
    let verified = verify_pack(pack);
    for e in &parsed.entries {
        if let Some(oid) = e.oid() {
            assert_eq!(oid, verified[&e.offset()].oid, "entry at {}", e.offset());
        }
    }
    parsed
        .entries
        .iter()
        .filter(|e| e.kind() == EntryKind::OfsDelta)
        .count() as u64
}

#[tokio::test]
async fn resolves_ofs_deltas_as_they_arrive_with_gits_ids_and_links() {
    let packed = packed_repo(30, &["--delta-base-offset", "--no-reuse-delta"]);
    let pack = &packed.pack.pack;
    // Without early resolution: the reference for the links.
    let mut plain = PackParser::with_scanner(Scanner::collecting_links(u64::MAX));
    plain.feed(pack).unwrap();
    let mut plain = plain.finish().unwrap();
    assert_eq!(plain.resolved_early, 0);
    pass_2(pack, &mut plain).await.unwrap();
    let links = |p: &ParsedPack| {
        let mut all: Vec<ObjectId> = p.scanner.links().copied().collect();
        all.sort();
        all
    };
    for piece in [1, 7, 4096, pack.len()] {
        let mut parsed = parse_early(pack, piece, roomy()).unwrap();
        let ofs = check_ids(&packed.pack, &parsed);
        // Every base comes first and fits the cache: every delta is resolved in pass 1.
        assert!(ofs >= 20, "{ofs} OFS deltas");
        assert_eq!(parsed.resolved_early, ofs, "pieces of {piece}");
        pass_2(pack, &mut parsed).await.unwrap();
        assert_eq!(parsed.entries, plain.entries, "pieces of {piece}");
        assert_eq!(links(&parsed), links(&plain), "pieces of {piece}");
    }
}

#[tokio::test]
async fn a_small_cache_resolves_some_and_pass_2_the_rest() {
    let packed = packed_repo(30, &["--delta-base-offset", "--no-reuse-delta"]);
    let pack = &packed.pack.pack;
    let limits = EarlyResolution {
        cache_bytes: 2048,
        ..roomy()
    };
    let mut parsed = parse_early(pack, 1000, limits).unwrap();
    let ofs = check_ids(&packed.pack, &parsed);
    assert!(
        parsed.resolved_early > 0 && parsed.resolved_early < ofs,
        "{} of {ofs}",
        parsed.resolved_early
    );
    pass_2(pack, &mut parsed).await.unwrap();
    let verified = verify_pack(&packed.pack);
    for e in &parsed.entries {
        assert_eq!(
            e.oid(),
            Some(verified[&e.offset()].oid),
            "entry at {}",
            e.offset()
        );
    }
}

#[test]
fn ref_deltas_and_spent_limits_leave_deltas_to_pass_2() {
    let refs = packed_repo(20, &["--no-reuse-delta"]);
    let parsed = parse_early(&refs.pack.pack, 4096, roomy()).unwrap();
    assert!(parsed
        .entries
        .iter()
        .any(|e| e.kind() == EntryKind::RefDelta));
    assert_eq!(parsed.resolved_early, 0);
    let ofs = packed_repo(20, &["--delta-base-offset", "--no-reuse-delta"]);
    for limits in [
        EarlyResolution {
            cache_bytes: 0,
            ..roomy()
        },
        EarlyResolution {
            object_bytes: 0,
            ..roomy()
        },
        EarlyResolution {
            work_bytes: Box::new(|_| 0),
            ..roomy()
        },
    ] {
        let parsed = parse_early(&ofs.pack.pack, 4096, limits).unwrap();
        assert_eq!(parsed.resolved_early, 0);
        assert!(parsed
            .entries
            .iter()
            .all(|e| e.is_delta() != e.oid().is_some()));
    }
}

#[tokio::test]
async fn a_delta_bomb_is_left_to_pass_2_which_refuses_it() {
    let bomb = delta_bomb(64 << 20);
    // Within the object limit, but more work than the pack's size allows.
    let limits = EarlyResolution {
        work_bytes: Box::new(|received| received * 100),
        ..roomy()
    };
    let mut parsed = parse_early(&bomb, 4096, limits).unwrap();
    assert_eq!(parsed.resolved_early, 0);
    let limits = ResolveLimits {
        max_object_bytes: u64::MAX,
        max_work_bytes: bomb.len() as u64 * 100,
    };
    let err = pass_2_within(&bomb, &mut parsed, limits).await.unwrap_err();
    assert!(err.to_string().contains("a delta bomb"), "{err}");
}

#[tokio::test]
async fn a_delta_that_does_not_apply_is_left_to_pass_2_which_reports_it() {
    let base = b"hello, world\n".repeat(10);
    // Copies 10 bytes from offset 200, past the end of the 130-byte base.
    let mut delta = testkit::delta::varint(base.len() as u64);
    delta.extend(testkit::delta::varint(10));
    delta.extend([0x81, 200, 10]);
    let builder = PackBuilder::new(2, 2).object(3, &base);
    let distance = builder.bytes.len() as u64 - builder.offsets[0];
    let pack = builder.ofs_delta(distance, &delta).finish();
    let mut parsed = parse_early(&pack, 4096, roomy()).unwrap();
    assert_eq!(parsed.resolved_early, 0);
    let err = pass_2(&pack, &mut parsed).await.unwrap_err();
    assert!(err.to_string().contains("offset"), "{err}");
    // A delta declaring a result size it does not produce is left alone too.
    let mut short = testkit::delta::varint(base.len() as u64);
    short.extend(testkit::delta::varint(20));
    short.extend([0x91, 0, 10]);
    let builder = PackBuilder::new(2, 2).object(3, &base);
    let pack = builder.ofs_delta(distance, &short).finish();
    let parsed = parse_early(&pack, 4096, roomy()).unwrap();
    assert_eq!(parsed.resolved_early, 0);
}

#[test]
fn a_delta_yielding_a_malformed_tree_is_refused_in_pass_1() {
    let tree = {
        let mut t = b"100644 a\0".to_vec();
        t.extend([1u8; 20]);
        t
    };
    // The delta keeps the mode and name but cuts the id short.
    let delta = testkit::delta::make(&tree, &tree[..tree.len() - 5]);
    let builder = PackBuilder::new(2, 2).object(2, &tree);
    let distance = builder.bytes.len() as u64 - builder.offsets[0];
    let pack = builder.ofs_delta(distance, &delta).finish();
    let offset = PackBuilder::new(2, 2).object(2, &tree).bytes.len() as u64;
    let err = parse_early(&pack, 4096, roomy()).unwrap_err();
    assert!(
        matches!(err, PackError::Scan { offset: o, .. } if o == offset),
        "{err}"
    );
    // The whole tree itself was fine.
    let mut parser = PackParser::with_scanner(Scanner::collecting_links(u64::MAX));
    parser.feed(&pack).unwrap();
    let parsed = parser.finish().unwrap();
    assert_eq!(
        parsed.entries.get(0).oid(),
        Some(hash_object(crate::git::oid::ObjectKind::Tree, &tree))
    );
}
