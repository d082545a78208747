use super::test_support::{show_index, verify_pack};
use super::*;
use crate::git::oid::{hash_object, ObjectKind};
use crate::git::pack::entry::EntryKind;
use testkit::delta::varint;
use testkit::git::git_with_input;
use testkit::pack::{
    entry_header, make_repo, pack_repo, packed_repo, rehash, zlib, GitPack, PackBuilder,
};
use testkit::rng::Rng;

/// Parses `pack` fed in one piece.
fn parse(pack: &[u8]) -> Result<ParsedPack, PackError> {
    let mut parser = PackParser::new();
    parser.feed(pack)?;
    parser.finish()
}

/// Parses `pack` fed in chunks whose sizes `next_len` chooses.
fn parse_chunked(
    pack: &[u8],
    mut next_len: impl FnMut() -> usize,
) -> Result<ParsedPack, PackError> {
    let mut parser = PackParser::new();
    let mut rest = pack;
    while !rest.is_empty() {
        let n = next_len().clamp(1, rest.len());
        parser.feed(&rest[..n])?;
        rest = &rest[n..];
    }
    parser.finish()
}

fn kind_name(entry: &Entry) -> Option<&'static str> {
    match entry.kind() {
        EntryKind::Base(kind) => Some(kind.as_str()),
        _ => None,
    }
}

/// Checks every entry against `git verify-pack -v`, `git show-index` and the sizes `git cat-file` reports in
/// `repo`; returns the parse.
fn check_against_git(repo: &std::path::Path, pack: &GitPack) -> ParsedPack {
    let parsed = parse(&pack.pack).expect("git's pack parses");
    let verified = verify_pack(pack);
    let index = show_index(repo, &pack.idx);
    let mut query = String::new();
    for entry in &parsed.entries {
        query.push_str(&format!("{}\n", verified[&entry.offset()].oid));
    }
    let sizes = git_with_input(
        ["cat-file", "--batch-check=%(objectsize)"],
        repo,
        query.as_bytes(),
    );
    let sizes: Vec<u64> = String::from_utf8(sizes)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for (entry, size) in parsed.entries.iter().zip(&sizes) {
        assert_eq!(
            entry.result_size(),
            *size,
            "result size of entry at {}",
            entry.offset()
        );
    }
    assert_eq!(parsed.entries.len(), verified.len());
    assert_eq!(parsed.pack_len, pack.pack.len() as u64);
    assert_eq!(&parsed.checksum.0[..], &pack.pack[pack.pack.len() - 20..]);
    for entry in &parsed.entries {
        let v = &verified[&entry.offset()];
        assert_eq!(
            entry.packed_len(),
            v.packed_len,
            "length of entry at {}",
            entry.offset()
        );
        assert_eq!(
            entry.crc32(),
            index[&entry.offset()].1,
            "crc of entry at {}",
            entry.offset()
        );
        assert!(
            entry.data_offset() > entry.offset()
                && entry.data_offset() < entry.offset() + entry.packed_len()
        );
        match entry.kind() {
            EntryKind::Base(_) => {
                assert_eq!(kind_name(&entry), Some(v.kind.as_str()));
                assert_eq!(entry.oid(), Some(v.oid));
                assert_eq!(entry.size(), v.size);
                assert_eq!(entry.result_size(), v.size);
                assert_eq!(v.base, None);
            }
            EntryKind::OfsDelta => {
                assert_eq!(entry.oid(), None);
                let base = &parsed.entries.get(entry.base().unwrap() as usize);
                assert!(base.offset() < entry.offset());
                assert_eq!(Some(verified[&base.offset()].oid), v.base);
                assert_eq!(
                    entry.size(),
                    v.size,
                    "delta size of entry at {}",
                    entry.offset()
                );
            }
            EntryKind::RefDelta => {
                assert_eq!((entry.oid(), entry.base()), (None, None));
                assert_eq!(entry.ref_base(), v.base);
                assert_eq!(
                    entry.size(),
                    v.size,
                    "delta size of entry at {}",
                    entry.offset()
                );
            }
        }
    }
    parsed
}

#[test]
fn bases_only_pack_matches_git() {
    let packed = packed_repo(30, &["--window=0", "--no-reuse-delta"]);
    let parsed = check_against_git(&packed.repo, &packed.pack);
    assert!(parsed.entries.iter().all(|e| !e.is_delta()));
    assert_eq!(parsed.version, 2);
    for kind in [
        ObjectKind::Commit,
        ObjectKind::Tree,
        ObjectKind::Blob,
        ObjectKind::Tag,
    ] {
        assert!(
            parsed
                .entries
                .iter()
                .any(|e| e.kind() == EntryKind::Base(kind)),
            "{kind:?} present"
        );
    }
    // The big blob inflates through several output buffers.
    assert!(parsed
        .entries
        .iter()
        .any(|e| e.size() > 4 * INFLATE_BUF_LEN as u64));
    assert!(parsed.entries.iter().any(|e| e.size() == 0));
}
#[test]
fn ofs_delta_pack_matches_git() {
    let packed = packed_repo(30, &["--delta-base-offset", "--no-reuse-delta"]);
    let parsed = check_against_git(&packed.repo, &packed.pack);
    let deltas = parsed
        .entries
        .iter()
        .filter(|e| e.kind() == EntryKind::OfsDelta)
        .count();
    assert!(deltas >= 20, "only {deltas} OFS deltas");
    assert!(!parsed
        .entries
        .iter()
        .any(|e| e.kind() == EntryKind::RefDelta));
}

#[test]
fn ref_delta_pack_matches_git() {
    let packed = packed_repo(30, &["--no-reuse-delta"]);
    let parsed = check_against_git(&packed.repo, &packed.pack);
    let deltas = parsed
        .entries
        .iter()
        .filter(|e| e.kind() == EntryKind::RefDelta)
        .count();
    assert!(deltas >= 20, "only {deltas} REF deltas");
    assert!(!parsed
        .entries
        .iter()
        .any(|e| e.kind() == EntryKind::OfsDelta));
}

#[test]
fn stored_blocks_pack_matches_git() {
    let packed = packed_repo(
        10,
        &[
            "--delta-base-offset",
            "--no-reuse-object",
            "--compression=0",
        ],
    );
    check_against_git(&packed.repo, &packed.pack);
}

#[test]
fn empty_pack_from_git() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), 1);
    let pack = git_with_input(["pack-objects", "--stdout", "-q"], &repo, b"");
    assert_eq!(pack.len(), 32);
    let parsed = parse(&pack).unwrap();
    assert!(parsed.entries.is_empty());
    assert_eq!(parsed.pack_len, 32);
    assert_eq!(&parsed.checksum.0[..], &pack[12..]);
}

#[test]
fn any_chunking_gives_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), 12);
    for options in [
        &["--delta-base-offset", "--no-reuse-delta"][..],
        &["--no-reuse-delta"][..],
    ] {
        let pack = pack_repo(&repo, &dir.path().join("out"), options).pack;
        let whole = parse(&pack).unwrap();
        assert_eq!(parse_chunked(&pack, || 1).unwrap(), whole);
        for seed in 1..=8u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let max = [3, 20, 200, 5000, 70_000, 300_000, 1 << 20, 7][seed as usize % 8];
            assert_eq!(
                parse_chunked(&pack, || rng.below(max) + 1).unwrap(),
                whole,
                "seed {seed}"
            );
        }
        // Chunks split exactly at every entry boundary, and one byte either side of it.
        for shift in [-1i64, 0, 1] {
            let mut cuts: Vec<usize> = whole
                .entries
                .iter()
                .map(|e| (e.offset() as i64 + shift) as usize)
                .collect();
            cuts.push(pack.len() - 20);
            let mut parser = PackParser::new();
            let mut from = 0;
            for cut in cuts {
                parser.feed(&pack[from..cut]).unwrap();
                from = cut;
            }
            parser.feed(&pack[from..]).unwrap();
            assert_eq!(parser.finish().unwrap(), whole);
        }
    }
}

#[test]
fn reports_progress_while_feeding() {
    let pack = PackBuilder::new(2, 2)
        .object(3, b"one")
        .object(3, b"two")
        .finish();
    let mut parser = PackParser::new();
    assert_eq!(parser.object_count(), None);
    parser.feed(&pack[..12]).unwrap();
    assert_eq!(parser.object_count(), Some(2));
    parser.feed(&pack[12..pack.len() - 20]).unwrap();
    assert_eq!(parser.entries().len(), 2);
    assert_eq!(parser.bytes_consumed(), pack.len() as u64 - 20);
}

#[test]
fn crafted_pack_with_every_entry_form() {
    let base = b"hello hello hello\n";
    let mut delta = varint(base.len() as u64);
    delta.extend(varint(1 << 40));
    delta.extend_from_slice(b"\x05hello");
    let base_id = hash_object(ObjectKind::Blob, base);
    let builder = PackBuilder::new(3, 5)
        .object(3, base)
        .object(
            1,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nempty\n",
        )
        .object(3, b"");
    let distance = builder.bytes.len() as u64 - builder.offsets[0];
    let builder = builder.ofs_delta(distance, &delta).raw(&[
        &entry_header(7, delta.len() as u64),
        &base_id.0,
        &zlib(&delta),
    ]);
    let offsets = builder.offsets.clone();
    let pack = builder.finish();
    let parsed = parse(&pack).unwrap();
    assert_eq!(parsed.version, 3);
    assert_eq!(parse_chunked(&pack, || 1).unwrap(), parsed);
    let e = &parsed.entries;
    assert_eq!(e.iter().map(|e| e.offset()).collect::<Vec<_>>(), offsets);
    assert_eq!(e.get(0).oid(), Some(base_id));
    assert_eq!(e.get(2).oid(), Some(hash_object(ObjectKind::Blob, b"")));
    assert_eq!(
        (e.get(3).kind(), e.get(3).base()),
        (EntryKind::OfsDelta, Some(0))
    );
    assert_eq!(
        (e.get(4).kind(), e.get(4).base(), e.get(4).ref_base()),
        (EntryKind::RefDelta, None, Some(base_id))
    );
    for d in e.iter().skip(3) {
        assert_eq!(
            (d.size(), d.result_size(), d.oid()),
            (delta.len() as u64, 1 << 40, None)
        );
    }
    // CRC-32 over the raw entry, header and base reference included.
    assert_eq!(
        e.get(4).crc32(),
        crc32fast::hash(&pack[offsets[4] as usize..pack.len() - 20])
    );
    assert_eq!(e.get(4).data_offset(), offsets[4] + 1 + 20);
}

#[test]
fn rejects_bad_pack_headers() {
    let good = PackBuilder::new(2, 1).object(3, b"x").finish();
    let mut bad = good.clone();
    bad[0] = b'K';
    assert_eq!(
        parse(&bad),
        Err(PackError::BadSignature { found: *b"KACK" })
    );
    for version in [0, 1, 4, u32::MAX] {
        let pack = PackBuilder::new(version, 1).object(3, b"x").finish();
        assert_eq!(parse(&pack), Err(PackError::UnsupportedVersion { version }));
    }
    // An HTML error page instead of a pack.
    assert!(matches!(
        parse(b"<html><body>503</body></html>"),
        Err(PackError::BadSignature { .. })
    ));
}

#[test]
fn rejects_truncation_anywhere() {
    let pack = packed_repo(8, &["--delta-base-offset"]).pack.pack;
    let entries = parse(&pack).unwrap().entries;
    let mut cuts = vec![
        0,
        1,
        11,
        12,
        13,
        pack.len() - 20,
        pack.len() - 19,
        pack.len() - 1,
    ];
    for e in entries.iter().take(20) {
        cuts.extend([
            e.offset() as usize + 1,
            e.data_offset() as usize,
            e.data_offset() as usize + 3,
        ]);
        cuts.push((e.offset() + e.packed_len()) as usize - 1);
    }
    for cut in cuts {
        let err = parse(&pack[..cut]).unwrap_err();
        assert!(
            matches!(err, PackError::Truncated { offset, .. } if offset == cut as u64),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn every_flipped_byte_is_caught() {
    let pack = packed_repo(6, &["--delta-base-offset", "--no-reuse-delta"])
        .pack
        .pack;
    let big = parse(&pack)
        .unwrap()
        .entries
        .into_iter()
        .max_by_key(|e| e.packed_len())
        .unwrap();
    for i in 0..pack.len() {
        // Every byte of small entries; a sample inside the big blob's stream.
        if i > big.data_offset() as usize + 64
            && i < (big.offset() + big.packed_len()) as usize - 64
            && i % 997 != 0
        {
            continue;
        }
        let mut bad = pack.clone();
        bad[i] ^= 0x40;
        assert!(parse(&bad).is_err(), "flip at {i} not detected");
    }
}

#[test]
fn corrupt_data_names_the_entry() {
    let pack = PackBuilder::new(2, 2)
        .object(3, b"first object")
        .object(3, b"second object")
        .finish();
    let second = parse(&pack).unwrap().entries.get(1);
    // Damage the deflate data of the second entry, then fix the trailer: only zlib can notice.
    let mut bad = pack.clone();
    bad[second.data_offset() as usize + 4] ^= 0xff;
    rehash(&mut bad);
    let err = parse(&bad).unwrap_err();
    assert!(
        matches!(err, PackError::Inflate { offset, .. } if offset == second.offset()),
        "{err}"
    );
    // Damage the adler32 checksum at the end of the zlib stream.
    let mut bad = pack.clone();
    bad[pack.len() - 21] ^= 1;
    rehash(&mut bad);
    assert_eq!(
        parse(&bad),
        Err(PackError::Inflate {
            offset: second.offset(),
            problem: InflateError::Zlib("invalid deflate stream or checksum")
        })
    );
    // A damaged trailer.
    let mut bad = pack.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(
        matches!(parse(&bad), Err(PackError::ChecksumMismatch { offset, count: 2, .. }) if offset == last as u64 - 19)
    );
}

#[test]
fn rejects_wrong_object_counts_and_trailing_data() {
    let pack = PackBuilder::new(2, 3)
        .object(3, b"a")
        .object(3, b"b")
        .object(3, b"c")
        .finish();
    let entries = parse(&pack).unwrap().entries;
    // Too low: the last entry is taken for the trailer.
    let mut low = pack.clone();
    low[11] = 2;
    rehash(&mut low);
    assert!(
        matches!(parse(&low), Err(PackError::ChecksumMismatch { offset, count: 2, .. }) if offset == entries.get(2).offset())
    );
    // Too high: the trailer is taken for an entry, and the data ends early.
    for count in [4, 1000, u32::MAX] {
        let mut high = pack.clone();
        high[8..12].copy_from_slice(&count.to_be_bytes());
        rehash(&mut high);
        assert!(parse(&high).is_err(), "count {count}");
    }
    // Trailing garbage, in the same chunk or a later one.
    let mut extra = pack.clone();
    extra.push(0);
    assert_eq!(
        parse(&extra),
        Err(PackError::TrailingData {
            offset: pack.len() as u64
        })
    );
    let mut parser = PackParser::new();
    parser.feed(&pack).unwrap();
    assert_eq!(
        parser.feed(b"more"),
        Err(PackError::TrailingData {
            offset: pack.len() as u64
        })
    );
    // The error sticks.
    assert_eq!(
        parser.feed(b""),
        Err(PackError::TrailingData {
            offset: pack.len() as u64
        })
    );
    assert_eq!(
        parser.finish(),
        Err(PackError::TrailingData {
            offset: pack.len() as u64
        })
    );
}

#[test]
fn rejects_bad_ofs_delta_bases() {
    let delta = [1u8, 1, 0x01, b'x'];
    let builder = PackBuilder::new(2, 2).object(3, b"y");
    let here = builder.bytes.len() as u64;
    for (distance, expected) in [
        (
            0,
            PackError::BaseOutOfRange {
                offset: here,
                distance: 0,
            },
        ),
        (
            here + 1,
            PackError::BaseOutOfRange {
                offset: here,
                distance: here + 1,
            },
        ),
        (
            here,
            PackError::BaseNotAnEntry {
                offset: here,
                base_offset: 0,
            },
        ),
        (
            1,
            PackError::BaseNotAnEntry {
                offset: here,
                base_offset: here - 1,
            },
        ),
        (
            here - 13,
            PackError::BaseNotAnEntry {
                offset: here,
                base_offset: 13,
            },
        ),
    ] {
        let pack = PackBuilder {
            bytes: builder.bytes.clone(),
            offsets: Vec::new(),
        }
        .ofs_delta(distance, &delta)
        .finish();
        assert_eq!(parse(&pack), Err(expected.clone()), "distance {distance}");
        assert_eq!(
            parse_chunked(&pack, || 1),
            Err(expected),
            "distance {distance}, bytewise"
        );
    }
    // A valid distance parses.
    let pack = PackBuilder {
        bytes: builder.bytes.clone(),
        offsets: Vec::new(),
    }
    .ofs_delta(here - 12, &delta)
    .finish();
    let e = &parse(&pack).unwrap().entries.get(1);
    assert_eq!((e.kind(), e.base()), (EntryKind::OfsDelta, Some(0)));
    // A distance that overflows 64 bits.
    let mut raw = entry_header(6, delta.len() as u64);
    raw.extend([0xff; 11]);
    raw.push(0);
    let pack = PackBuilder {
        bytes: builder.bytes.clone(),
        offsets: Vec::new(),
    }
    .raw(&[&raw, &zlib(&delta)])
    .finish();
    assert_eq!(
        parse(&pack),
        Err(PackError::BaseDistanceOverflow { offset: here })
    );
    // The largest encodable distance still points before the pack.
    let pack = PackBuilder {
        bytes: builder.bytes.clone(),
        offsets: Vec::new(),
    }
    .ofs_delta(u64::MAX, &delta)
    .finish();
    assert_eq!(
        parse(&pack),
        Err(PackError::BaseOutOfRange {
            offset: here,
            distance: u64::MAX
        })
    );
}

#[test]
fn rejects_bad_entry_headers() {
    for kind in [0u8, 5] {
        let pack = PackBuilder::new(2, 1)
            .raw(&[&entry_header(kind, 1), &zlib(b"x")])
            .finish();
        assert_eq!(
            parse(&pack),
            Err(PackError::InvalidType { offset: 12, kind })
        );
    }
    // A size varint that never ends, and one that overflows 64 bits.
    let mut never_ending = vec![0xb0];
    never_ending.extend([0x80; 100]);
    let overflowing = [&[0xbf][..], &[0xff; 9], &[0x7f]].concat();
    for raw in [never_ending, overflowing] {
        let pack = PackBuilder::new(2, 1).raw(&[&raw]).finish();
        assert_eq!(parse(&pack), Err(PackError::SizeOverflow { offset: 12 }));
        assert_eq!(
            parse_chunked(&pack, || 1),
            Err(PackError::SizeOverflow { offset: 12 })
        );
    }
    // The largest size that fits is accepted as a header (the data is then too short).
    let pack = PackBuilder::new(2, 1)
        .raw(&[&entry_header(3, u64::MAX), &zlib(b"x")])
        .finish();
    assert_eq!(
        parse(&pack),
        Err(PackError::Inflate {
            offset: 12,
            problem: InflateError::TooShort {
                declared: u64::MAX,
                actual: 1,
            },
        })
    );
}

#[test]
fn rejects_declared_size_mismatch() {
    for (declared, data, expected) in [
        (
            10,
            &b"eleven byte"[..],
            PackError::Inflate {
                offset: 12,
                problem: InflateError::TooLong { declared: 10 },
            },
        ),
        (
            12,
            b"eleven byte",
            PackError::Inflate {
                offset: 12,
                problem: InflateError::TooShort {
                    declared: 12,
                    actual: 11,
                },
            },
        ),
        (
            0,
            b"x",
            PackError::Inflate {
                offset: 12,
                problem: InflateError::TooLong { declared: 0 },
            },
        ),
        (
            1,
            b"",
            PackError::Inflate {
                offset: 12,
                problem: InflateError::TooShort {
                    declared: 1,
                    actual: 0,
                },
            },
        ),
    ] {
        let pack = PackBuilder::new(2, 1)
            .raw(&[&entry_header(3, declared), &zlib(data)])
            .finish();
        assert_eq!(parse(&pack), Err(expected.clone()));
        assert_eq!(parse_chunked(&pack, || 1), Err(expected));
    }
    // A zlib bomb declared tiny is stopped after one output buffer, not inflated whole.
    let bomb = zlib(&vec![0u8; 50 << 20]);
    let pack = PackBuilder::new(2, 1)
        .raw(&[&entry_header(3, 100), &bomb])
        .finish();
    assert_eq!(
        parse(&pack),
        Err(PackError::Inflate {
            offset: 12,
            problem: InflateError::TooLong { declared: 100 },
        })
    );
    // Same for a delta.
    let pack = PackBuilder::new(2, 2)
        .object(3, b"base")
        .raw(&[&entry_header(7, 100), &[0; 20], &bomb])
        .finish();
    assert!(matches!(
        parse(&pack),
        Err(PackError::Inflate {
            problem: InflateError::TooLong { declared: 100 },
            ..
        })
    ));
}

#[test]
fn rejects_bad_delta_headers() {
    let bad_deltas: [(&[u8], &str); 4] = [
        (&[], "is truncated"),
        (&[0x05], "is truncated"),
        (&[0x85, 0x80], "is truncated"),
        (&[0xff; 12], "has a size that does not fit in 64 bits"),
    ];
    for (delta, problem) in bad_deltas {
        let builder = PackBuilder::new(2, 2).object(3, b"base");
        let here = builder.bytes.len() as u64;
        let pack = builder.ofs_delta(here - 12, delta).finish();
        let expected = PackError::BadDeltaHeader {
            offset: here,
            problem,
        };
        assert_eq!(parse(&pack), Err(expected.clone()), "{delta:?}");
        assert_eq!(parse_chunked(&pack, || 1), Err(expected), "{delta:?}");
    }
    // Ten-byte sizes (u64::MAX) are fine, and held exactly.
    let mut delta = varint(u64::MAX);
    delta.extend(varint(u64::MAX));
    let builder = PackBuilder::new(2, 2).object(3, b"base");
    let distance = builder.bytes.len() as u64 - 12;
    let pack = builder.ofs_delta(distance, &delta).finish();
    assert_eq!(
        parse_chunked(&pack, || 1)
            .unwrap()
            .entries
            .get(1)
            .result_size(),
        u64::MAX
    );
}

#[test]
fn delta_header_straddles_output_pieces() {
    let mut bytes = varint(300);
    bytes.extend(varint(1 << 35));
    bytes.extend_from_slice(b"rest of the delta");
    let result_size = |decoder: &DeltaDecoder| decoder.header().map(|h| h.result_size);
    for split in 0..bytes.len() {
        let mut decoder = DeltaDecoder::new();
        assert!(read_delta_header(&mut decoder, &bytes[..split]).is_ok());
        assert!(read_delta_header(&mut decoder, &bytes[split..]).is_ok());
        assert_eq!(result_size(&decoder), Some(1 << 35));
    }
    let mut decoder = DeltaDecoder::new();
    for byte in &bytes[..8] {
        assert_eq!(result_size(&decoder), None);
        assert!(read_delta_header(&mut decoder, &[*byte]).is_ok());
    }
    assert_eq!(result_size(&decoder), Some(1 << 35));
}

#[test]
fn error_messages_name_the_place() {
    let err = parse(b"<html><body>503</body></html>").unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a git pack: it starts with \"<htm\" instead of \"PACK\""
    );
    let pack = PackBuilder::new(2, 2)
        .object(3, b"a")
        .object(3, b"b")
        .finish();
    let err = parse(&pack[..pack.len() - 25]).unwrap_err();
    assert_eq!(
            err.to_string(),
            format!(
                "pack truncated at offset {}: input ended in an entry's compressed data (1 of 2 objects read)",
                pack.len() - 25
            )
        );
    let err = PackError::Inflate {
        offset: 1234,
        problem: InflateError::TooShort {
            declared: 10,
            actual: 3,
        },
    };
    assert_eq!(
        err.to_string(),
        "pack entry at offset 1234: inflates to 3 bytes but its header declares 10"
    );
}

#[test]
fn an_entry_declaring_more_than_the_limit_is_refused_at_its_header() {
    use testkit::pack::PackBuilder;
    // A blob header declaring 1 TiB, followed by nothing the parser ever needs to read.
    let pack = PackBuilder::new(2, 1)
        .raw(&[&testkit::pack::entry_header(3, 1 << 40)])
        .finish();
    let mut parser = PackParser::new().max_object_bytes(1 << 30);
    let err = parser.feed(&pack).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pack entry at offset 12: it declares {} bytes, more than the limit of {}",
            1u64 << 40,
            1u64 << 30
        )
    );
}

#[test]
fn entries_get_the_room_the_header_declares_within_the_callers_most() {
    let builder = (0..100u32).fold(PackBuilder::new(2, 100), |b, i| {
        b.object(3, format!("blob {i}\n").as_bytes())
    });
    let pack = builder.finish();
    // Before the header nothing is reserved; after it, the declared count: the list never grows again.
    let mut parser = PackParser::new();
    parser.reserve_entries(1000);
    parser.feed(&pack[..12]).unwrap();
    parser.reserve_entries(1000);
    parser.feed(&pack[12..]).unwrap();
    let parsed = parser.finish().unwrap();
    assert_eq!(parsed.entries.len(), 100);
    assert_eq!(parsed.entries.capacity(), 100);
    assert_eq!(parsed, parse(&pack).unwrap());
    // Fewer than declared are reserved when the caller holds fewer; the list grows past them as it must.
    let mut parser = PackParser::new();
    parser.feed(&pack[..12]).unwrap();
    parser.reserve_entries(10);
    parser.feed(&pack[12..]).unwrap();
    assert_eq!(parser.finish().unwrap().entries.len(), 100);
    // A header that declares billions of entries gets the caller's most, and is refused when the data ends.
    let mut lying = pack.clone();
    lying[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    rehash(&mut lying);
    let mut parser = PackParser::new();
    parser.feed(&lying[..12]).unwrap();
    parser.reserve_entries(50);
    assert!(parser
        .feed(&lying[12..])
        .and_then(|()| parser.finish().map(drop))
        .is_err());
}
