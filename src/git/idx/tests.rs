use super::*;
use crate::git::pack::test_support::{show_index, verify_pack};
use crate::git::pack::{PackParser, ParsedPack};
use std::path::Path;
use testkit::git::{git, git_with_input};
use testkit::pack::{make_repo, pack_repo, packed_repo, write_and_index, GitPack};

/// Parses a pack and fills in the ids of its deltas from `git verify-pack -v`, as delta resolution would.
fn parse_and_resolve(pack: &GitPack) -> ParsedPack {
    let mut parser = PackParser::new();
    parser.feed(&pack.pack).unwrap();
    let mut parsed = parser.finish().unwrap();
    let verified = verify_pack(pack);
    for i in 0..parsed.entries.len() {
        let entry = parsed.entries.get(i);
        let oid = verified[&entry.offset()].oid;
        assert!(entry.oid().is_none() || entry.oid() == Some(oid));
        parsed.entries.set_oid(i, oid);
    }
    parsed
}

fn entries_of(parsed: &ParsedPack) -> Vec<IdxEntry> {
    parsed
        .entries
        .iter()
        .map(|e| IdxEntry {
            oid: e.oid().unwrap(),
            crc32: e.crc32(),
            offset: e.offset(),
        })
        .collect()
}

/// Runs `git index-pack --index-version=<version>` on the pack and returns the index it writes.
fn git_index(dir: &Path, pack: &GitPack, version: &str) -> Vec<u8> {
    let idx = dir.join("forced.idx");
    let pack_path = pack.pack_path.to_str().unwrap();
    git(
        [
            "index-pack",
            &format!("--index-version={version}"),
            "-o",
            idx.to_str().unwrap(),
            pack_path,
        ],
        dir,
    );
    std::fs::read(idx).unwrap()
}

#[test]
fn byte_identical_to_git_index_pack() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), 25);
    for (i, options) in [
        &["--window=0", "--no-reuse-delta"][..],
        &["--delta-base-offset", "--no-reuse-delta"],
        &["--no-reuse-delta"],
    ]
    .iter()
    .enumerate()
    {
        let out = dir.path().join(format!("out{i}"));
        let pack = pack_repo(&repo, &out, options);
        let parsed = parse_and_resolve(&pack);
        let idx = write_idx_v2(&parsed.entries, &parsed.checksum).unwrap();
        assert!(
            idx == pack.idx,
            "index differs from git's for pack-objects {options:?}"
        );
        // Forcing 8-byte offsets above a small limit, as `--index-version=2,<limit>` does.
        for limit in [0u64, 0x1000, 0x7fff] {
            let forced =
                write_idx_v2_with_limit(&mut entries_of(&parsed), &parsed.checksum, limit).unwrap();
            let large = parsed.entries.iter().filter(|e| e.offset() > limit).count();
            assert_eq!(forced.len(), pack.idx.len() + 8 * large);
            assert!(
                forced == git_index(&out, &pack, &format!("2,{limit:#x}")),
                "limit {limit:#x}"
            );
        }
    }
}

#[test]
fn empty_pack_index_is_identical_to_git() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), 1);
    let pack = write_and_index(
        &dir.path().join("out"),
        git_with_input(["pack-objects", "--stdout", "-q"], &repo, b""),
    );
    let parsed = parse_and_resolve(&pack);
    let idx = write_idx_v2(&parsed.entries, &parsed.checksum).unwrap();
    assert_eq!(idx, pack.idx);
    assert_eq!(idx.len(), 8 + 1024 + 40);
}

#[test]
fn large_offsets_go_to_the_eight_byte_table() {
    let offsets = [
        12u64,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        0x12_3456_789a,
        u64::MAX >> 1,
    ];
    let mut objects: Vec<IdxEntry> = offsets
        .iter()
        .enumerate()
        .map(|(i, &offset)| {
            // Ids in a different order than offsets, some sharing a first byte.
            let mut oid = [(i as u8 * 37) % 3; 20];
            oid[19] = 200 - i as u8;
            IdxEntry {
                oid: ObjectId(oid),
                crc32: 0xdead_0000 + i as u32,
                offset,
            }
        })
        .collect();
    let checksum = ObjectId([0xab; 20]);
    let idx =
        write_idx_v2_with_limit(&mut objects.clone(), &checksum, DEFAULT_OFFSET32_LIMIT).unwrap();
    let n = offsets.len();
    // 0x7fffffff is the largest 4-byte offset; the five above it take 8 bytes each.
    assert_eq!(idx.len(), 8 + 1024 + n * 28 + 5 * 8 + 40);
    assert_eq!(&idx[..8], b"\xfftOc\0\0\0\x02");
    let be32 = |at: usize| u32::from_be_bytes(idx[at..at + 4].try_into().unwrap());
    assert_eq!(
        be32(8),
        objects.iter().filter(|o| o.oid.0[0] == 0).count() as u32
    );
    assert_eq!(be32(8 + 255 * 4), n as u32);
    objects.sort_by_key(|o| o.oid);
    let small_at = 8 + 1024 + n * 24;
    let large_at = small_at + n * 4;
    let mut large_seen = 0;
    for (i, o) in objects.iter().enumerate() {
        assert_eq!(&idx[8 + 1024 + i * 20..][..20], &o.oid.0);
        assert_eq!(be32(8 + 1024 + n * 20 + i * 4), o.crc32);
        let small = be32(small_at + i * 4);
        if o.offset > 0x7fff_ffff {
            // Large offsets are numbered in id order.
            assert_eq!(small, 0x8000_0000 | large_seen);
            let at = large_at + large_seen as usize * 8;
            assert_eq!(
                u64::from_be_bytes(idx[at..at + 8].try_into().unwrap()),
                o.offset
            );
            large_seen += 1;
        } else {
            assert_eq!(u64::from(small), o.offset);
        }
    }
    assert_eq!(&idx[idx.len() - 40..idx.len() - 20], &checksum.0);
    assert_eq!(
        &idx[idx.len() - 20..],
        &sha1::Sha1::digest(&idx[..idx.len() - 20])[..]
    );

    // Git reads it back the same way.
    let dir = tempfile::tempdir().unwrap();
    let shown = show_index(dir.path(), &idx);
    assert_eq!(shown.len(), n);
    for o in &objects {
        assert_eq!(shown[&o.offset], (o.oid, o.crc32));
    }
}

#[test]
fn rejects_unresolved_and_duplicate_objects() {
    let packed = packed_repo(6, &["--delta-base-offset", "--no-reuse-delta"]);
    let pack = &packed.pack;
    let mut parser = PackParser::new();
    parser.feed(&pack.pack).unwrap();
    let unresolved = parser.finish().unwrap();
    let first_delta = unresolved
        .entries
        .iter()
        .find(|e| e.is_delta())
        .unwrap()
        .offset();
    assert_eq!(
        write_idx_v2(&unresolved.entries, &unresolved.checksum),
        Err(IdxError::MissingOid {
            offset: first_delta
        })
    );

    let mut parsed = parse_and_resolve(pack);
    let (a, b) = (
        parsed.entries.get(3).offset(),
        parsed.entries.get(7).offset(),
    );
    let twin = parsed.entries.get(3).oid().unwrap();
    parsed.entries.set_oid(7, twin);
    assert_eq!(
        write_idx_v2(&parsed.entries, &parsed.checksum),
        Err(IdxError::DuplicateObject {
            oid: parsed.entries.get(3).oid().unwrap(),
            first: a,
            second: b
        })
    );
}
