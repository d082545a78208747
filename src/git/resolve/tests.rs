use super::*;
use crate::git::pack::test_support::{verify_pack, Verified};
use crate::git::pack::PackParser;
use testkit::delta::{encode, make, Op};
use testkit::fixtures::{fast_import, file, init_bare};
use testkit::git::{git, git_with_input};
use testkit::pack::{entry_header, make_repo, ofs_distance, pack_repo, zlib, GitPack};
use testkit::rng::Rng;

use super::stream::Ring;
use crate::git::oid::hash_object;
use crate::git::pack::entry::EntryKind;

/// How a hand-built entry stores its object: whole, as an OFS delta on an entry index, or a REF delta on an id.
#[derive(Clone, Copy)]
enum Stored {
    Base(ObjectKind),
    Ofs(usize),
    Ref(ObjectId),
}
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

const LOTS: u64 = 1 << 30;
/// Everything in memory and cached.
pub(crate) const ROOMY: ResolveOptions<'static> = ResolveOptions {
    cache_bytes: LOTS,
    retain_bytes: 0,
    big_object_bytes: LOTS,
    progress: None,
    limits: ResolveLimits::NONE,
};
/// No cache at all: every base is rebuilt from its chain.
const NO_CACHE: ResolveOptions<'static> = ResolveOptions {
    cache_bytes: 0,
    retain_bytes: 0,
    big_object_bytes: LOTS,
    progress: None,
    limits: ResolveLimits::NONE,
};
/// A cache too small for most objects: constant eviction.
const TINY_CACHE: ResolveOptions<'static> = ResolveOptions {
    cache_bytes: 3000,
    retain_bytes: 0,
    big_object_bytes: LOTS,
    progress: None,
    limits: ResolveLimits::NONE,
};
/// Every object streamed.
const STREAMED: ResolveOptions<'static> = ResolveOptions {
    cache_bytes: LOTS,
    retain_bytes: 0,
    big_object_bytes: 0,
    progress: None,
    limits: ResolveLimits::NONE,
};
const MODES: [ResolveOptions<'static>; 4] = [ROOMY, NO_CACHE, TINY_CACHE, STREAMED];

/// Hand-built packs (only the entries matter to the resolver; no pack header or trailer), with the ids the
/// resolver should find, computed from the intended contents rather than by applying the deltas.
#[derive(Clone)]
struct TestPack {
    bytes: Vec<u8>,
    entries: Entries,
    contents: Vec<Vec<u8>>,
    expected: Vec<(ObjectId, ObjectKind)>,
}

impl TestPack {
    fn new() -> Self {
        TestPack {
            bytes: b"PACK\0\0\0\x02\0\0\0\0".to_vec(),
            entries: Entries::new(),
            contents: Vec::new(),
            expected: Vec::new(),
        }
    }

    /// Appends an entry with raw zlib data and the sizes to record; returns its index.
    fn raw(
        &mut self,
        kind: Stored,
        size: u64,
        result_size: u64,
        zdata: &[u8],
        expected: (ObjectKind, &[u8]),
    ) -> usize {
        let offset = self.bytes.len() as u64;
        let type_num = match kind {
            Stored::Base(k) => k.pack_type(),
            Stored::Ofs(_) => 6,
            Stored::Ref(_) => 7,
        };
        let mut raw = entry_header(type_num, size);
        match kind {
            Stored::Ofs(base) => raw.extend(ofs_distance(offset - self.entries.get(base).offset())),
            Stored::Ref(base) => raw.extend_from_slice(&base.0),
            Stored::Base(_) => {}
        }
        let header_len = raw.len() as u8;
        raw.extend_from_slice(zdata);
        let oid = hash_object(expected.0, expected.1);
        let (len, crc) = (raw.len() as u64, crc32fast::hash(&raw));
        self.entries.push(match kind {
            Stored::Base(k) => Entry::whole(offset, header_len, len, k, size, crc, Some(oid)),
            Stored::Ofs(base) => {
                Entry::ofs_delta(offset, header_len, len, base as u32, size, result_size, crc)
            }
            Stored::Ref(base) => {
                Entry::ref_delta(offset, header_len, len, base, size, result_size, crc)
            }
        });
        self.bytes.extend_from_slice(&raw);
        self.contents.push(expected.1.to_vec());
        self.expected.push((oid, expected.0));
        self.entries.len() - 1
    }

    fn base(&mut self, kind: ObjectKind, data: &[u8]) -> usize {
        let len = data.len() as u64;
        self.raw(Stored::Base(kind), len, len, &zlib(data), (kind, data))
    }

    /// An OFS delta on entry `base` yielding `target`.
    fn ofs(&mut self, base: usize, target: &[u8]) -> usize {
        let delta = make(&self.contents[base], target);
        self.ofs_raw(base, &delta, target)
    }

    /// An OFS delta on entry `base` with this delta data, expected to yield `target`.
    fn ofs_raw(&mut self, base: usize, delta: &[u8], target: &[u8]) -> usize {
        let expected = (self.expected[base].1, target);
        self.raw(
            Stored::Ofs(base),
            delta.len() as u64,
            target.len() as u64,
            &zlib(delta),
            expected,
        )
    }

    /// A REF delta on the object `(kind, base)` (wherever it is) yielding `target`.
    fn ref_to(&mut self, kind: ObjectKind, base: &[u8], target: &[u8]) -> usize {
        let delta = make(base, target);
        self.raw(
            Stored::Ref(hash_object(kind, base)),
            delta.len() as u64,
            target.len() as u64,
            &zlib(&delta),
            (kind, target),
        )
    }

    fn source(&self) -> Bytes {
        Bytes::from(self.bytes.clone())
    }

    async fn resolve(
        &self,
        options: ResolveOptions<'_>,
    ) -> Result<(Entries, ResolveStats), ResolveError> {
        let mut entries = self.entries.clone();
        // Ids on deltas are the first pass's (early resolution): forgotten here, so that pass 2 computes them all.
        for i in 0..entries.len() {
            if entries.get(i).is_delta() {
                entries.clear_oid(i);
            }
        }
        let stats = resolve_deltas(&mut entries, &self.source(), &options).await?;
        Ok((entries, stats))
    }

    /// Resolves in every mode and checks every id and kind.
    async fn check(&self) -> Vec<ResolveStats> {
        let mut all = Vec::new();
        for options in MODES {
            let (entries, stats) = self
                .resolve(options)
                .await
                .unwrap_or_else(|e| panic!("{options:?}: {e}"));
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(
                    e.oid(),
                    Some(self.expected[i].0),
                    "entry {i} with {options:?}"
                );
                assert_eq!(
                    stats.kinds[i], self.expected[i].1,
                    "kind of entry {i} with {options:?}"
                );
            }
            let deltas = self.entries.iter().filter(|e| e.is_delta()).count() as u64;
            assert_eq!(stats.deltas, deltas);
            all.push(stats);
        }
        all
    }
}

/// Text that changes a little from version to version.
fn version(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for line in 0..200 {
        if line % 37 == n % 37 {
            s.push_str(&format!("line {line} edited in version {n}\n"));
        } else {
            s.push_str(&format!("line {line} stays the same in every version\n"));
        }
    }
    s.into_bytes()
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn problem(err: ResolveError) -> (u64, EntryProblem) {
    match err {
        ResolveError::Entry { offset, problem } => (offset, problem),
        other => panic!("expected an entry error, got {other}"),
    }
}

#[tokio::test]
async fn resolves_chains_and_branches_in_every_mode() {
    let mut p = TestPack::new();
    let commit = p.base(
        ObjectKind::Commit,
        b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nfirst\n",
    );
    p.ofs(
        commit,
        b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nsecond\n",
    );
    let tree = p.base(
        ObjectKind::Tree,
        &[b"100644 a\0".as_slice(), &[7; 20]].concat(),
    );
    p.ofs(tree, &[b"100644 b\0".as_slice(), &[7; 20]].concat());
    let mut prev = p.base(ObjectKind::Blob, &version(0));
    let first = prev;
    for n in 1..40 {
        prev = p.ofs(prev, &version(n));
        // Unrelated entries in between, and a second child of some objects.
        if n % 5 == 0 {
            p.base(ObjectKind::Blob, format!("filler {n}").as_bytes());
            p.ofs(prev, &version(1000 + n));
        }
    }
    p.ofs(first, b"");
    let tag = p.base(
        ObjectKind::Tag,
        b"object 0000000000000000000000000000000000000000\ntype commit\n",
    );
    p.ofs(
        tag,
        b"object 1111111111111111111111111111111111111111\ntype commit\n",
    );
    let stats = p.check().await;
    let [roomy, no_cache, tiny, streamed] = &stats[..] else {
        unreachable!()
    };
    assert_eq!(
        (roomy.cache_misses, roomy.rebuilt, roomy.streamed),
        (0, 0, 0)
    );
    assert!(roomy.cache_hits > 40);
    // The first version (whose last child is at the end), the current one and a branch point at most.
    assert!(
        roomy.peak_cache_bytes as usize <= 3 * version(0).len() + 100,
        "{roomy:?}"
    );
    assert_eq!((no_cache.cache_hits, no_cache.peak_cache_bytes), (0, 0));
    assert!(
        no_cache.longest_chain >= 39 && no_cache.rebuilt > 700,
        "{no_cache:?}"
    );
    assert!(
        tiny.peak_cache_bytes <= 3000 && tiny.cache_misses > 0,
        "{tiny:?}"
    );
    assert_eq!(streamed.streamed, roomy.deltas);
    // In memory, each entry is read once, in pack order.
    assert_eq!(
        roomy.reads as usize,
        p.entries.iter().filter(|e| e.is_delta()).count() + 4
    );
}

/// More children than one byte counts (the resolver's counts spill to a side table past 254): the counts stay
/// exact, so the base stays cached until its last child, and kept compressed until its last descendant.
#[tokio::test]
async fn entries_with_hundreds_of_children_keep_exact_counts() {
    let mut p = TestPack::new();
    let base = p.base(ObjectKind::Blob, &version(0));
    let first = p.ofs(base, &version(1));
    for n in 2..300 {
        p.ofs(base, &version(n));
    }
    for n in 300..600 {
        p.ofs(first, &version(n));
    }
    let [roomy, ..] = &p.check().await[..] else {
        unreachable!()
    };
    assert_eq!((roomy.cache_misses, roomy.rebuilt), (0, 0), "{roomy:?}");
    assert_eq!(roomy.cache_hits, 599);
    // Nothing cached: the deltas wait for a pass that keeps the compressed bases as it passes them, and that one
    // pass resolves them all.
    let kept = ResolveOptions {
        retain_bytes: LOTS,
        ..NO_CACHE
    };
    let (entries, stats) = p.resolve(kept).await.unwrap();
    assert!(entries
        .iter()
        .zip(&p.expected)
        .all(|(e, x)| e.oid() == Some(x.0)));
    assert_eq!(stats.passes, 2, "{stats:?}");
}

#[tokio::test]
async fn base_entries_without_ids_are_hashed() {
    let mut p = TestPack::new();
    let blob = p.base(ObjectKind::Blob, &version(1));
    p.ofs(blob, &version(2));
    let big = p.base(ObjectKind::Blob, &pseudo_random(200_000, 3));
    let mut target = p.contents[big].clone();
    target[100..110].copy_from_slice(b"0123456789");
    p.ofs(big, &target);
    p.entries.clear_oid(blob);
    p.entries.clear_oid(big);
    for stats in p.check().await {
        assert_eq!(stats.bases_hashed, 2);
    }
}

#[tokio::test]
async fn deltas_too_big_for_their_record_resolve_from_the_list_side_table() {
    // A delta of inserts only, 3 MiB inflated: more than a record holds (2 MiB), so the entry spills.
    let mut p = TestPack::new();
    let base = p.base(ObjectKind::Blob, &pseudo_random(1000, 5));
    p.ofs(base, &pseudo_random(3 << 20, 6));
    let mut entries = p.entries.clone();
    entries.shrink_to_fit();
    assert_eq!(entries.side_slots(), 1);
    assert!(entries.get(1).size() > 3 << 20);
    p.check().await;
}

#[tokio::test]
async fn ref_deltas_wait_for_bases_that_come_later() {
    let mut p = TestPack::new();
    let v: Vec<Vec<u8>> = (0..5).map(version).collect();
    // v4 -> v3 -> v2 -> v1 -> v0 with every delta before its base, and the base object last.
    let d4 = p.ref_to(ObjectKind::Blob, &v[3], &v[4]);
    p.ofs(d4, &version(44));
    p.ref_to(ObjectKind::Blob, &v[2], &v[3]);
    p.ref_to(ObjectKind::Blob, &v[1], &v[2]);
    p.base(ObjectKind::Blob, b"unrelated");
    p.ref_to(ObjectKind::Blob, &v[0], &v[1]);
    p.base(ObjectKind::Blob, &v[0]);
    // A REF delta to an earlier delta, and one to an earlier base.
    p.ref_to(ObjectKind::Blob, &v[2], &version(22));
    p.ref_to(ObjectKind::Blob, &v[0], &version(11));
    for stats in p.check().await {
        assert_eq!(stats.deferred, 4, "{stats:?}");
    }
    // Resolved, every REF delta records its base entry instead of its base's id, and resolving again (its own id
    // forgotten, or wrong) finds the same ids through those entries.
    let (mut entries, _) = p.resolve(ROOMY).await.unwrap();
    for i in 0..entries.len() {
        let e = entries.get(i);
        if e.kind() == EntryKind::RefDelta {
            assert_eq!((e.ref_base(), e.base().is_some()), (None, true));
            entries.set_oid(i, ObjectId::ZERO);
        }
    }
    for options in MODES {
        let mut again = entries.clone();
        resolve_deltas(&mut again, &p.source(), &options)
            .await
            .unwrap();
        for (i, e) in again.iter().enumerate() {
            assert_eq!(e.oid(), Some(p.expected[i].0), "entry {i} with {options:?}");
        }
    }
}

#[tokio::test]
async fn missing_ref_base_is_reported_as_thin_pack() {
    let mut p = TestPack::new();
    p.base(ObjectKind::Blob, b"present");
    let d = p.ref_to(ObjectKind::Blob, b"absent", b"absent, changed");
    // A delta on the unresolvable one is stuck too, but the cause is reported.
    p.ofs(d, b"absent, changed twice");
    for options in MODES {
        let err = p.resolve(options).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ResolveError::MissingBase { offset, base }
                if offset == p.entries.get(d).offset() && base == hash_object(ObjectKind::Blob, b"absent")));
        assert!(msg.contains("not found in pack (thin pack?)"), "{msg}");
    }
}

#[tokio::test]
async fn ref_cycles_error_instead_of_looping() {
    let (a, b) = (version(1), version(2));
    let mut p = TestPack::new();
    p.ref_to(ObjectKind::Blob, &b, &a);
    p.ref_to(ObjectKind::Blob, &a, &b);
    let err = p.resolve(ROOMY).await.unwrap_err();
    assert!(
        matches!(err, ResolveError::MissingBase { offset, .. } if offset == p.entries.get(0).offset()),
        "{err}"
    );
    // A delta on itself.
    let mut p = TestPack::new();
    let delta = make(&a, &a);
    let oid = hash_object(ObjectKind::Blob, &a);
    p.raw(
        Stored::Ref(oid),
        delta.len() as u64,
        a.len() as u64,
        &zlib(&delta),
        (ObjectKind::Blob, &a),
    );
    assert!(
        matches!(p.resolve(STREAMED).await, Err(ResolveError::MissingBase { base, .. }) if base == oid)
    );
}

/// Entry data, the size to declare for it, and a test of the problem resolving it must report.
type BrokenCase = (Vec<u8>, u64, fn(&EntryProblem) -> bool);

/// A pack with a base and one delta entry made of `delta` (declared result size `result_size`).
fn with_delta(base: &[u8], delta: &[u8], result_size: u64) -> TestPack {
    let mut p = TestPack::new();
    let b = p.base(ObjectKind::Blob, base);
    p.raw(
        Stored::Ofs(b),
        delta.len() as u64,
        result_size,
        &zlib(delta),
        (ObjectKind::Blob, b""),
    );
    p
}

/// Resolves `p` in memory and streamed; both must fail on entry `at` with a problem `check` accepts.
async fn assert_fails(p: &TestPack, at: usize, check: impl Fn(&EntryProblem) -> bool) {
    for options in MODES {
        let (offset, problem) = problem(p.resolve(options).await.unwrap_err());
        assert_eq!(offset, p.entries.get(at).offset(), "{options:?}: {problem}");
        assert!(check(&problem), "{options:?}: unexpected {problem:?}");
    }
}

#[tokio::test]
async fn rejects_bad_deltas_in_memory_and_streamed() {
    let base = b"0123456789".as_slice();
    let cases: Vec<BrokenCase> = vec![
        (encode(10, 4, &[Op::Copy(8, 4)]), 4, |p| {
            matches!(
                p,
                EntryProblem::Delta(DeltaError::CopyOutOfRange {
                    offset: 8,
                    len: 4,
                    base_size: 10
                })
            )
        }),
        (encode(11, 4, &[Op::Copy(0, 4)]), 4, |p| {
            matches!(
                p,
                EntryProblem::Delta(DeltaError::BaseSizeMismatch {
                    declared: 11,
                    actual: 10
                })
            )
        }),
        (encode(10, 4, &[Op::Copy(0, 4)]), 5, |p| {
            matches!(
                p,
                EntryProblem::ResultSizeMismatch {
                    header: 4,
                    recorded: 5
                }
            )
        }),
        (encode(10, 4, &[Op::Copy(0, 5)]), 4, |p| {
            matches!(
                p,
                EntryProblem::Delta(DeltaError::ResultTooLong { declared: 4 })
            )
        }),
        (encode(10, 6, &[Op::Copy(0, 5)]), 6, |p| {
            matches!(
                p,
                EntryProblem::Delta(DeltaError::ResultTooShort {
                    produced: 5,
                    declared: 6
                })
            )
        }),
        ([&encode(10, 4, &[])[..], &[0]].concat(), 4, |p| {
            matches!(p, EntryProblem::Delta(DeltaError::ReservedInstruction))
        }),
        (
            encode(10, 4, &[Op::Insert(b"abcd".to_vec())])[..5].to_vec(),
            4,
            |p| matches!(p, EntryProblem::Delta(DeltaError::Truncated)),
        ),
        (
            encode(10, 4, &[Op::Copy(0x0102, 4)])[..3].to_vec(),
            4,
            |p| matches!(p, EntryProblem::Delta(DeltaError::Truncated)),
        ),
        (vec![0x8a], 4, |p| {
            matches!(p, EntryProblem::Delta(DeltaError::Truncated))
        }),
        (vec![0x80; 12], 4, |p| {
            matches!(p, EntryProblem::Delta(DeltaError::SizeOverflow))
        }),
    ];
    for (delta, result_size, check) in cases {
        let p = with_delta(base, &delta, result_size);
        assert_fails(&p, 1, check).await;
    }
}

/// The ways a zlib stream of `data` can be broken: (stream, declared size, expected problem).
fn broken_streams(data: &[u8]) -> Vec<BrokenCase> {
    let good = zlib(data);
    let len = data.len() as u64;
    let mut garbage = good.clone();
    for b in &mut garbage[2..] {
        *b ^= 0x55;
    }
    let mut bad_checksum = good.clone();
    *bad_checksum.last_mut().unwrap() ^= 1;
    vec![
        (garbage, len, |p| {
            matches!(p, EntryProblem::Inflate(InflateError::Zlib(_)))
        }),
        (b"not zlib at all".to_vec(), len, |p| {
            matches!(p, EntryProblem::Inflate(InflateError::Zlib(_)))
        }),
        (bad_checksum, len, |p| {
            matches!(p, EntryProblem::Inflate(InflateError::Zlib(_)))
        }),
        (good[..good.len() - 6].to_vec(), len, |p| {
            matches!(p, EntryProblem::Inflate(InflateError::Zlib("truncated")))
        }),
        (good.clone(), len - 1, |p| {
            matches!(p, EntryProblem::Inflate(InflateError::TooLong { .. }))
        }),
        (good.clone(), len + 1, |p| {
            matches!(p, EntryProblem::Inflate(InflateError::TooShort { .. }))
        }),
        ([&good[..], b"xx"].concat(), len, |p| {
            matches!(p, EntryProblem::Inflate(InflateError::TrailingBytes))
        }),
    ]
}

#[tokio::test]
async fn rejects_bad_zlib_streams() {
    let data = version(3);
    let blob = Stored::Base(ObjectKind::Blob);
    let expected = (ObjectKind::Blob, data.as_slice());
    // The broken entry as the base of a delta (read to rebuild it).
    for (zdata, size, check) in broken_streams(&data) {
        let mut p = TestPack::new();
        p.raw(blob, size, size, &zdata, expected);
        p.ofs(0, &version(4));
        for options in MODES {
            let (offset, problem) = problem(p.resolve(options).await.unwrap_err());
            // Streamed, a wrong declared size shows first as the delta not fitting it.
            let misfit = matches!(
                problem,
                EntryProblem::Delta(DeltaError::BaseSizeMismatch { .. })
            ) && offset == p.entries.get(1).offset()
                && size != data.len() as u64;
            assert!(
                misfit || (offset == p.entries.get(0).offset() && check(&problem)),
                "{options:?}: {problem:?}"
            );
        }
    }
    // The broken entry as a delta.
    let delta = make(&version(5), &data);
    for (zdata, size, check) in broken_streams(&delta) {
        let mut p = TestPack::new();
        let b = p.base(ObjectKind::Blob, &version(5));
        p.raw(Stored::Ofs(b), size, data.len() as u64, &zdata, expected);
        assert_fails(&p, 1, check).await;
    }
    // A big declared size with a tiny stream: an error, not a huge allocation.
    let mut p = TestPack::new();
    p.raw(blob, 1 << 40, 1 << 40, &zlib(b"tiny"), expected);
    p.ofs(0, b"x");
    p.entries.clear_oid(0);
    let options = ResolveOptions {
        cache_bytes: LOTS,
        retain_bytes: 0,
        big_object_bytes: u64::MAX,
        progress: None,
        limits: ResolveLimits::NONE,
    };
    let (_, err) = problem(p.resolve(options).await.unwrap_err());
    assert!(
        matches!(err, EntryProblem::Inflate(InflateError::TooShort { declared, actual: 4 }) if declared == 1 << 40)
    );
}

#[tokio::test]
async fn rejects_inconsistent_entries() {
    let mut p = TestPack::new();
    p.base(ObjectKind::Blob, &version(1));
    p.ofs(0, &version(2));
    p.ofs(1, &version(3));
    let check = |mut entries: Entries, at: usize, expect: EntryProblem| {
        let source = p.source();
        async move {
            let err = resolve_deltas(&mut entries, &source, &ROOMY)
                .await
                .unwrap_err();
            let (offset, problem) = problem(err);
            assert_eq!((offset, problem), (entries.get(at).offset(), expect));
        }
    };
    // The list with entry `at` replaced by `with`.
    let replaced = |at: usize, with: Entry| -> Entries {
        let list = p.entries.iter().enumerate();
        list.map(|(i, e)| if i == at { with } else { e }).collect()
    };
    let swapped = [0, 2, 1].map(|i| p.entries.get(i)).into_iter().collect();
    check(swapped, 2, EntryProblem::OutOfOrder).await;
    // An OFS delta's base must be an earlier entry; a REF delta's (once known) another entry.
    let rebase = |e: &Entry, base: u32| {
        let (offset, len) = (e.offset(), e.packed_len());
        Entry::ofs_delta(
            offset,
            e.header_len(),
            len,
            base,
            e.size(),
            e.result_size(),
            e.crc32(),
        )
    };
    for (at, base) in [(2, 2), (1, 2), (1, 1), (2, 3), (2, u32::MAX - 1)] {
        let e = replaced(at, rebase(&p.entries.get(at), base));
        check(e, at, EntryProblem::BadBase(u64::from(base))).await;
    }
    for (at, base) in [(1, 1), (2, 3)] {
        let b = p.entries.get(at);
        let mut e = replaced(
            at,
            Entry::ref_delta(
                b.offset(),
                b.header_len(),
                b.packed_len(),
                ObjectId::ZERO,
                b.size(),
                b.result_size(),
                b.crc32(),
            ),
        );
        e.set_base(at, base);
        check(e, at, EntryProblem::BadBase(u64::from(base))).await;
    }
    // Entry 1 (an OFS delta on entry 0) with other bounds.
    let bounded = |e: &Entry, header_len: u8, packed_len: u64| {
        let (size, result_size) = (e.size(), e.result_size());
        Entry::ofs_delta(
            e.offset(),
            header_len,
            packed_len,
            0,
            size,
            result_size,
            e.crc32(),
        )
    };
    // An entry runs up to the next one: the last one (entry 2) with no room for a zlib stream after its header,
    // and entry 1 with no header.
    let two = p.entries.get(2);
    let e = replaced(
        2,
        bounded(&two, two.header_len(), u64::from(two.header_len())),
    );
    let bounds = EntryProblem::BadBounds {
        data_offset: two.data_offset(),
        packed_len: u64::from(two.header_len()),
    };
    check(e, 2, bounds).await;
    let one = p.entries.get(1);
    let e = replaced(1, bounded(&one, 0, 1));
    let bounds = EntryProblem::BadBounds {
        data_offset: one.offset(),
        packed_len: one.packed_len(),
    };
    check(e, 1, bounds).await;
    // Entry 1 starting where entry 0 does leaves entry 0 no room.
    let zero = p.entries.get(0);
    let at_zero = Entry::ofs_delta(
        zero.offset(),
        one.header_len(),
        one.packed_len(),
        0,
        one.size(),
        one.result_size(),
        one.crc32(),
    );
    let bounds = EntryProblem::BadBounds {
        data_offset: zero.data_offset(),
        packed_len: 0,
    };
    check(replaced(1, at_zero), 0, bounds).await;
    // Entries pointing past the end of the pack.
    let mut e = p.entries.clone();
    let short = Bytes::from(p.bytes[..p.bytes.len() - 5].to_vec());
    let err = resolve_deltas(&mut e, &short, &ROOMY).await.unwrap_err();
    assert!(
        matches!(err, ResolveError::Read { offset, .. } if offset == p.entries.get(2).data_offset()),
        "{err}"
    );
    assert!(err.to_string().contains("cannot read"), "{err}");
}

/// A source that returns one byte less than asked for.
struct ShortReader(Bytes);

#[async_trait::async_trait]
impl PackReader for ShortReader {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        let bytes = self.0.read_at(offset, len).await?;
        Ok(bytes.slice(..bytes.len() - 1))
    }
}

#[tokio::test]
async fn short_reads_are_errors() {
    let mut p = TestPack::new();
    p.base(ObjectKind::Blob, &version(1));
    p.ofs(0, &version(2));
    for options in [ROOMY, STREAMED] {
        let mut entries = p.entries.clone();
        let err = resolve_deltas(&mut entries, &ShortReader(p.source()), &options)
            .await
            .unwrap_err();
        let offsets = [
            p.entries.get(0).data_offset(),
            p.entries.get(1).data_offset(),
        ];
        assert!(
            matches!(err, ResolveError::ShortRead { offset, .. } if offsets.contains(&offset)),
            "{err}"
        );
    }
}

#[tokio::test]
async fn refuses_chains_deeper_than_the_limit() {
    let mut p = TestPack::new();
    let mut prev = p.base(ObjectKind::Blob, &version(0));
    for n in 1..=30 {
        prev = p.ofs(prev, &version(n));
    }
    let mut entries = p.entries.clone();
    // With a cache, no chain is ever walked far.
    resolve_with_depth(
        &mut entries,
        &p.source(),
        &ROOMY,
        5,
        &mut InlineSink::default(),
    )
    .await
    .unwrap();
    let mut entries = p.entries.clone();
    let err = resolve_with_depth(
        &mut entries,
        &p.source(),
        &NO_CACHE,
        29,
        &mut InlineSink::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        problem(err),
        (p.entries.get(30).offset(), EntryProblem::ChainTooDeep(29))
    );
    assert_eq!(entries.get(29).oid(), Some(p.expected[29].0));
    // Streamed levels have their own limit.
    let mut p = TestPack::new();
    let mut prev = p.base(ObjectKind::Blob, b"0");
    for n in 1..=MAX_STREAM_LEVELS + 5 {
        prev = p.ofs(prev, n.to_string().as_bytes());
    }
    let err = p.resolve(STREAMED).await.unwrap_err();
    let (offset, problem) = problem(err);
    assert_eq!(problem, EntryProblem::StreamTooDeep);
    assert_eq!(offset, p.entries.get(MAX_STREAM_LEVELS).offset());
    p.check_mode(ROOMY).await;
}

impl TestPack {
    async fn check_mode(&self, options: ResolveOptions<'_>) -> ResolveStats {
        let (entries, stats) = self.resolve(options).await.unwrap();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.oid(),
                Some(self.expected[i].0),
                "entry {i} with {options:?}"
            );
        }
        stats
    }
}

/// Big objects (1 MiB limit): edits, backward copies that overflow the window, objects shrinking below the
/// limit and growing above it, and branches.
#[tokio::test]
async fn streams_big_objects() {
    const MIB: usize = 1 << 20;
    let options = ResolveOptions {
        cache_bytes: 4 * MIB as u64,
        retain_bytes: 0,
        big_object_bytes: MIB as u64,
        progress: None,
        limits: ResolveLimits::NONE,
    };
    let mut p = TestPack::new();
    let v0 = pseudo_random(3 * MIB + 12345, 1);
    let base = p.base(ObjectKind::Blob, &v0);
    // Small edits: copies in order.
    let mut v1 = v0.clone();
    v1[1000..1010].copy_from_slice(b"edit one..");
    v1.splice(2 * MIB..2 * MIB, b"inserted".iter().copied());
    let d1 = p.ofs(base, &v1);
    // 48 KiB blocks of v1 in reverse order: every copy goes backwards.
    let block = 48 * 1024;
    let blocks: Vec<(usize, usize)> = (0..v1.len())
        .step_by(block)
        .map(|s| (s, block.min(v1.len() - s)))
        .collect();
    let mut v2 = Vec::new();
    let mut ops = Vec::new();
    for &(s, n) in blocks.iter().rev() {
        v2.extend_from_slice(&v1[s..s + n]);
        ops.push(Op::Copy(s as u64, n as u64));
    }
    let d2 = p.ofs_raw(d1, &encode(v1.len() as u64, v2.len() as u64, &ops), &v2);
    // And reversed again on top: both streamed levels restart.
    let mut v3 = Vec::new();
    let mut ops = Vec::new();
    for s in (0..v2.len())
        .step_by(block)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let n = block.min(v2.len() - s);
        v3.extend_from_slice(&v2[s..s + n]);
        ops.push(Op::Copy(s as u64, n as u64));
    }
    p.ofs_raw(d2, &encode(v2.len() as u64, v3.len() as u64, &ops), &v3);
    // A second child of d1 (a branch), shrinking below the limit, with a child of its own.
    let mut v4 = v1.clone();
    v4[5..9].copy_from_slice(b"four");
    p.ofs(d1, &v4);
    let small = p.ofs(d1, &v1[MIB..MIB + 5000]);
    let grown = p.ofs(small, &[&v1[MIB..MIB + 4000], b"!".as_slice()].concat());
    // Growing from a small cached base to a big object (copying the same bytes many times).
    let mut ops = Vec::new();
    let mut big_again = Vec::new();
    for _ in 0..400 {
        ops.push(Op::Copy(0, 4001));
        big_again.extend_from_slice(&p.contents[grown]);
    }
    let g = p.ofs_raw(
        grown,
        &encode(4001, big_again.len() as u64, &ops),
        &big_again,
    );
    p.ofs(g, &big_again[..big_again.len() - 1]);
    // A big base entry without an id, and a big REF delta on it placed before it.
    let other = pseudo_random(MIB + 7, 2);
    let mut other2 = other.clone();
    other2[0] = !other2[0];
    p.ref_to(ObjectKind::Blob, &other, &other2);
    let ob = p.base(ObjectKind::Blob, &other);
    p.entries.clear_oid(ob);

    let stats = p.check_mode(options).await;
    assert!(
        stats.streamed >= 6 && stats.stream_restarts >= 3,
        "{stats:?}"
    );
    assert_eq!(stats.bases_hashed, 1);
    // Far less than the objects themselves stay cached.
    assert!(stats.peak_cache_bytes < MIB as u64, "{stats:?}");
    let all = p.check().await;
    assert!(all[3].stream_restarts > 0);
}

/// `git verify-pack -v` must agree with every id and kind, in every mode.
async fn check_against_git(pack_bytes: Vec<u8>, verified: &HashMap<u64, Verified>) {
    let mut parser = PackParser::new();
    parser.feed(&pack_bytes).unwrap();
    let parsed = parser.finish().unwrap();
    let source = Bytes::from(pack_bytes);
    assert!(parsed.entries.iter().filter(|e| e.is_delta()).count() > 50);
    for options in MODES {
        let mut entries = parsed.entries.clone();
        let stats = resolve_deltas(&mut entries, &source, &options)
            .await
            .unwrap();
        assert_eq!(entries.len(), verified.len());
        for (e, kind) in entries.iter().zip(&stats.kinds) {
            let v = &verified[&e.offset()];
            assert_eq!(
                e.oid(),
                Some(v.oid),
                "entry at {} with {options:?}",
                e.offset()
            );
            assert_eq!(
                kind.as_str(),
                v.kind,
                "entry at {} with {options:?}",
                e.offset()
            );
        }
    }
}

#[tokio::test]
async fn matches_git_on_real_packs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), 80);
    for options in [
        &["--delta-base-offset", "--no-reuse-delta"][..],
        &["--no-reuse-delta", "--depth=100"],
    ] {
        let pack = pack_repo(&repo, &dir.path().join("out"), options);
        let verified = verify_pack(&pack);
        check_against_git(pack.pack, &verified).await;
    }
}

#[tokio::test]
async fn real_thin_pack_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), 40);
    let pack = git_with_input(
        ["pack-objects", "--stdout", "--thin", "--revs", "-q"],
        &repo,
        b"main\n^main~10\n",
    );
    let mut parser = PackParser::new();
    parser.feed(&pack).unwrap();
    let mut entries = parser.finish().unwrap().entries;
    assert!(entries.iter().any(|e| e.kind() == EntryKind::RefDelta));
    let err = resolve_deltas(&mut entries, &Bytes::from(pack), &ROOMY)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not found in pack (thin pack?)"),
        "{err}"
    );
}

/// Reads a pack file on demand, so that the measured process never holds the pack.
struct FileReader(std::fs::File);

#[async_trait::async_trait]
impl PackReader for FileReader {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; usize::try_from(len)?];
        self.0.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }
}

/// A line of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const BLOB_CHUNK: usize = 64 * 1024;
const BLOB_CHUNKS: usize = 800;

/// Chunk `i` of version `v` (1-3) of a 50 MiB pseudo-random blob, generated on the fly. Version 2 edits two
/// chunks of version 1 and inserts a short one; version 3 edits another chunk of version 2 and drops one.
fn blob_chunk(v: u32, i: usize) -> Vec<u8> {
    let mut chunk = pseudo_random(BLOB_CHUNK, 0x5eed_0000 + i as u64);
    let edit = |chunk: &mut Vec<u8>, tag: &str| {
        chunk[1000..1000 + tag.len()].copy_from_slice(tag.as_bytes())
    };
    match (v, i) {
        (2.., 16) => edit(&mut chunk, "edited in version 2 at chunk 16"),
        (2.., 320) => edit(&mut chunk, "edited in version 2 at chunk 320"),
        (2.., 500) => chunk.extend_from_slice(b"a few bytes inserted in version 2"),
        (3, 100) => edit(&mut chunk, "edited in version 3 at chunk 100"),
        (3, 700) => chunk.clear(),
        _ => {}
    }
    chunk
}

/// The measured part of [`big_blob_is_streamed_in_bounded_memory`], run in a process of its own so that its
/// peak memory is its own.
#[tokio::test]
#[ignore = "run by big_blob_is_streamed_in_bounded_memory in a child process"]
async fn big_blob_child() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo.git");
    init_bare(&repo, "main");
    fast_import(&repo, |fi| {
        let mut parents = Vec::new();
        for v in 1..=3u32 {
            let len: usize = (0..BLOB_CHUNKS).map(|i| blob_chunk(v, i).len()).sum();
            let blob = fi.blob_streamed(len, |out| {
                (0..BLOB_CHUNKS).try_for_each(|i| out.write_all(&blob_chunk(v, i)))
            })?;
            let message = format!("v{v}\n");
            let commit = fi.commit(
                "refs/heads/main",
                &message,
                &parents,
                &[file("big.bin", blob)],
            )?;
            parents = vec![commit];
        }
        Ok(())
    });
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let prefix = out.join("p");
    let args = [
        "pack-objects",
        "--all",
        "-q",
        "--no-reuse-delta",
        "--delta-base-offset",
        "--window=10",
    ];
    let name = git([&args[..], &[prefix.to_str().unwrap()]].concat(), &repo);
    let pack_path = out.join(format!("p-{}.pack", name.trim()));
    let fake = GitPack {
        pack: Vec::new(),
        pack_path: pack_path.clone(),
        idx: Vec::new(),
    };
    let verified = verify_pack(&fake);

    let mut parser = PackParser::new();
    let mut file = std::fs::File::open(&pack_path).unwrap();
    let mut buf = vec![0; BLOB_CHUNK];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        parser.feed(&buf[..n]).unwrap();
    }
    drop(buf);
    let mut entries = parser.finish().unwrap().entries;
    let big = 8 << 20;
    let big_deltas = entries
        .iter()
        .filter(|e| e.is_delta() && e.result_size() > big)
        .count();
    assert_eq!(
        big_deltas, 2,
        "git should store two versions as deltas: {verified:?}"
    );
    let source = FileReader(std::fs::File::open(&pack_path).unwrap());
    let options = ResolveOptions {
        cache_bytes: 16 << 20,
        retain_bytes: 0,
        big_object_bytes: big,
        progress: None,
        limits: ResolveLimits::NONE,
    };
    let before_kib = status_kib("VmHWM");
    // Reset the peak to the current size: what follows is the resolver alone.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let rss_kib = status_kib("VmRSS");
    let started = std::time::Instant::now();
    let stats = resolve_deltas(&mut entries, &source, &options)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let peak_kib = status_kib("VmHWM");
    for e in &entries {
        assert_eq!(
            e.oid(),
            Some(verified[&e.offset()].oid),
            "entry at {}",
            e.offset()
        );
    }
    assert_eq!(stats.streamed, 2, "{stats:?}");
    println!("stats: {stats:?}");
    println!("resolve took {elapsed:?}; peak before resolving {before_kib} KiB");
    println!("RESOLVE_MEMORY rss_before_kib={rss_kib} peak_kib={peak_kib}");
}

#[test]
fn big_blob_is_streamed_in_bounded_memory() {
    // The child test's name as the harness knows it: this module's path without the crate name.
    let module = module_path!().split_once("::").unwrap().1;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            &format!("{module}::big_blob_child"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESOLVE_MEMORY"))
        .expect("memory report");
    let value = |key: &str| -> u64 {
        let field = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix(key))
            .unwrap();
        field.parse().unwrap()
    };
    let (rss, peak) = (value("rss_before_kib="), value("peak_kib="));
    // 16 MiB of cache (unused here: nothing small has children) plus stream windows, against 50 MiB objects.
    assert!(
        peak < 24 * 1024 && peak - rss < 16 * 1024,
        "peak {peak} KiB (from {rss} KiB)"
    );
}

#[test]
fn ring_keeps_the_latest_bytes() {
    let mut ring = Ring::new(10);
    ring.push(b"abcdef");
    assert_eq!((ring.start(), ring.end), (0, 6));
    assert_eq!(ring.slice(2, 100), b"cdef");
    ring.push(b"ghijklm");
    assert_eq!((ring.start(), ring.end), (3, 13));
    assert_eq!(ring.slice(3, 100), b"defghij");
    assert_eq!(ring.slice(10, 2), b"kl");
    ring.push(b"0123456789ABC");
    assert_eq!((ring.start(), ring.end), (16, 26));
    let mut all = Vec::new();
    let mut pos = ring.start();
    while pos < ring.end {
        let s = ring.slice(pos, 100);
        all.extend_from_slice(s);
        pos += s.len() as u64;
    }
    assert_eq!(all, b"3456789ABC");
    ring.clear();
    assert_eq!((ring.start(), ring.end), (0, 0));
    let mut none = Ring::new(0);
    none.push(b"xyz");
    assert_eq!((none.start(), none.end), (3, 3));
}

#[test]
fn resolution_can_run_on_any_runtime_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let mut entries = Entries::new();
    let source = Bytes::new();
    assert_send(&resolve_deltas(&mut entries, &source, &ROOMY));
}

#[tokio::test]
async fn bytes_source_reads_exact_ranges() {
    let source = Bytes::from_static(b"0123456789");
    assert_eq!(&source.read_at(2, 3).await.unwrap()[..], b"234");
    assert_eq!(&source.read_at(10, 0).await.unwrap()[..], b"");
    assert!(source.read_at(8, 3).await.is_err());
    assert!(source.read_at(u64::MAX, 2).await.is_err());
}

/// A source that counts its reads and how many were in flight at once (each waits for one turn of the runtime).
#[derive(Default)]
struct Counting {
    bytes: Bytes,
    reads: AtomicU64,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
}

#[async_trait::async_trait]
impl PackReader for Counting {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.most_in_flight.fetch_max(now, Ordering::Relaxed);
        tokio::task::yield_now().await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.bytes.read_at(offset, len).await
    }
}

#[tokio::test]
async fn kept_compressed_entries_spare_reads_and_chains_are_read_at_once() {
    let mut p = TestPack::new();
    let mut chain = vec![p.base(ObjectKind::Blob, &version(0))];
    for n in 1..30 {
        chain.push(p.ofs(chain[n - 1], &version(n)));
    }
    // Second children of old versions, long after the cache moved on: their bases must be rebuilt.
    for n in (0..30).step_by(5) {
        p.ofs(chain[n], &version(500 + n));
    }
    // Room for every compressed entry, and for a few versions inflated.
    let room = (p.bytes.len() + 64 * p.entries.len()) as u64;
    let options = ResolveOptions {
        cache_bytes: room,
        retain_bytes: room,
        ..ROOMY
    };
    let resolve = |options: ResolveOptions<'static>| {
        let p = p.clone();
        async move {
            let source = Counting {
                bytes: p.source(),
                ..Counting::default()
            };
            let mut entries = p.entries.clone();
            let stats = resolve_deltas(&mut entries, &source, &options)
                .await
                .unwrap();
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(e.oid(), Some(p.expected[i].0), "entry {i} with {options:?}");
            }
            assert_eq!(stats.reads, source.reads.load(Ordering::Relaxed));
            (stats, source.most_in_flight.load(Ordering::Relaxed))
        }
    };

    let (kept, _) = resolve(options).await;
    assert!(kept.cache_misses > 0 && kept.rebuilt > 0, "{kept:?}");
    assert_eq!(kept.reads as usize, p.entries.len(), "{kept:?}");
    assert!(kept.retained_reads >= kept.rebuilt, "{kept:?}");
    assert!(kept.peak_retained_bytes > 0 && kept.peak_retained_bytes <= room);

    // Without room for compressed entries, rebuilds read the pack again, each chain's entries (neighbours in
    // the pack) with one read.
    let (read_again, _) = resolve(ResolveOptions {
        retain_bytes: 0,
        ..options
    })
    .await;
    assert!(
        read_again.bytes_read > kept.bytes_read && read_again.retained_reads == 0,
        "{read_again:?}"
    );
    assert!(
        read_again.reads <= kept.reads + read_again.cache_misses,
        "{read_again:?}"
    );
}

/// A source that records where each read starts.
#[derive(Default)]
struct Recording {
    bytes: Bytes,
    offsets: std::sync::Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl PackReader for Recording {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        self.offsets.lock().unwrap().push(offset);
        self.bytes.read_at(offset, len).await
    }
}

#[tokio::test]
async fn deltas_that_would_read_behind_the_scan_wait_for_a_later_pass() {
    // Versions of a file as a chain, each with a second child far later in the pack: rebuilding those needs the
    // chain again, long after the cache moved on. A REF delta before its base, and one after.
    let mut p = TestPack::new();
    p.ref_to(ObjectKind::Blob, &version(3), &version(300));
    let mut chain = vec![p.base(ObjectKind::Blob, &version(0))];
    for n in 1..40 {
        chain.push(p.ofs(chain[n - 1], &version(n)));
        p.base(ObjectKind::Blob, &pseudo_random(2000, n as u64));
    }
    for n in (0..40).step_by(3) {
        let d = p.ofs(chain[n], &version(500 + n));
        p.ofs(d, &version(700 + n));
    }
    p.ref_to(ObjectKind::Blob, &version(30), &version(301));
    let entries_bytes: u64 = p.entries.iter().map(|e| e.packed_len()).sum();
    let mut reads = Vec::new();
    for (retain, cache) in [
        (entries_bytes / 8, 0),
        (entries_bytes / 3, 3000),
        (1, 0),
        (entries_bytes * 2, LOTS),
    ] {
        let options = ResolveOptions {
            cache_bytes: cache,
            retain_bytes: retain,
            ..ROOMY
        };
        let source = Recording {
            bytes: p.source(),
            ..Recording::default()
        };
        let mut entries = p.entries.clone();
        let stats = resolve_deltas(&mut entries, &source, &options)
            .await
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.oid(), Some(p.expected[i].0), "entry {i} with {options:?}");
        }
        assert!(stats.passes <= MAX_PASSES, "{stats:?}");
        // The descendants of a postponed delta are left to the next pass's scan, not queued until it.
        assert_eq!(stats.peak_waiting, 0, "{stats:?}");
        // Every pass but the last that reads behind the scan reads in pack order.
        let offsets = source.offsets.lock().unwrap().clone();
        let backwards = offsets.windows(2).filter(|w| w[1] < w[0]).count() as u64;
        reads.push(stats.reads);
        let postponing = retain > 1 && stats.passes < MAX_PASSES;
        if postponing {
            assert!(
                backwards < stats.passes,
                "{backwards} reads back with {stats:?}"
            );
        }
        match retain {
            // With room for everything, only the REF delta before its base waits: read again in order.
            r if r >= entries_bytes => {
                assert_eq!((stats.passes, stats.postponed), (2, 1), "{stats:?}")
            }
            1 => assert!(stats.passes > 1 && stats.postponed > 0, "{stats:?}"),
            _ => assert!(
                stats.postponed > 0 && stats.peak_retained_bytes <= retain,
                "{stats:?}"
            ),
        }
    }
    // However little is kept, the pack is read no more often than with room for everything: a pass reads what it
    // passes only to keep it or to resolve with it, never an entry it cannot keep and then again to resolve.
    let roomy = reads[reads.len() - 1];
    assert!(reads.iter().all(|&r| r <= roomy), "{reads:?}");
}

#[tokio::test]
async fn a_rebuilt_chain_reads_its_far_apart_entries_at_once_and_its_neighbours_together() {
    // A chain whose versions are separated by incompressible blobs bigger than the gap that is read through,
    // in pairs of neighbours.
    let mut p = TestPack::new();
    let mut chain = vec![p.base(ObjectKind::Blob, &version(0))];
    for n in 1..12 {
        if n % 2 == 0 {
            p.base(
                ObjectKind::Blob,
                &pseudo_random(MERGE_GAP as usize + 1000, n as u64),
            );
        }
        chain.push(p.ofs(chain[n - 1], &version(n)));
    }
    let rebuilt = p.ofs(chain[11], &version(600));
    let options = ResolveOptions {
        cache_bytes: 0,
        retain_bytes: 0,
        ..ROOMY
    };
    let source = Counting {
        bytes: p.source(),
        ..Counting::default()
    };
    let mut entries = p.entries.clone();
    let stats = resolve_deltas(&mut entries, &source, &options)
        .await
        .unwrap();
    assert_eq!(entries.get(rebuilt).oid(), Some(p.expected[rebuilt].0));
    assert!(
        source.most_in_flight.load(Ordering::Relaxed) > 1,
        "{stats:?}"
    );
    // Without merging, rebuilding entry k of the chain reads k + 1 entries; with it, about half as many.
    let unmerged: u64 = (1..=12).sum::<u64>() + (p.entries.len() - 12) as u64;
    assert!(
        stats.reads < unmerged * 2 / 3,
        "{} reads: {stats:?}",
        stats.reads
    );
}

/// LFS pointers are found in both passes: whole blobs by the parser, deltas by the resolver, in every mode.
#[tokio::test]
async fn lfs_pointers_stored_whole_or_as_deltas_are_found() {
    use crate::git::lfs::{parse_pointer, PointerSet};
    use testkit::pack::PackBuilder;
    let pointer = |fill: char, size: u64| {
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {size}\n",
            fill.to_string().repeat(64)
        )
        .into_bytes()
    };
    let (whole, as_delta) = (pointer('a', 1 << 30), pointer('b', 42));
    let looks_like = [
        b"version https://git-lfs.github.com/spec/v1\n".as_slice(),
        b"oid nope\n",
    ]
    .concat();
    let builder = PackBuilder::new(2, 4)
        .object(3, &whole)
        .object(3, &looks_like)
        .object(1, &whole[..]);
    let distance = builder.bytes.len() as u64 - builder.offsets[0];
    let pack = builder
        .ofs_delta(distance, &make(&whole, &as_delta))
        .finish();
    let mut parser = PackParser::with_scanner(Scanner::none().with_lfs_pointers());
    for byte in pack.chunks(1) {
        parser.feed(byte).unwrap();
    }
    let mut parsed = parser.finish().unwrap();
    let mut expected = PointerSet::new();
    expected.insert(parse_pointer(&whole).unwrap());
    assert_eq!(
        parsed.scanner.take_lfs_pointers(),
        expected,
        "pass 1 finds the whole blob only, not the commit"
    );
    for options in MODES {
        let mut entries = parsed.entries.clone();
        let mut scanner = Scanner::none().with_lfs_pointers();
        resolve_and_scan(
            &mut entries,
            &Bytes::from(pack.clone()),
            &options,
            &mut scanner,
        )
        .await
        .unwrap();
        let mut found = PointerSet::new();
        found.insert(parse_pointer(&as_delta).unwrap());
        assert_eq!(
            scanner.take_lfs_pointers(),
            found,
            "{options:?}: pass 2 finds the delta, in memory or streamed"
        );
    }
}

/// Parses a whole pack (pass 1) and returns its entries and bytes.
fn parse_whole(pack: Vec<u8>) -> (Entries, Bytes) {
    let mut parser = PackParser::new();
    parser.feed(&pack).unwrap();
    (parser.finish().unwrap().entries, Bytes::from(pack))
}

/// Streams everything bigger than 1 MiB, with `limits`.
fn bomb_options(limits: ResolveLimits) -> ResolveOptions<'static> {
    ResolveOptions {
        cache_bytes: 16 << 20,
        retain_bytes: 0,
        big_object_bytes: 1 << 20,
        progress: None,
        limits,
    }
}

#[tokio::test]
async fn a_declared_size_beyond_the_limit_fails_before_any_work() {
    // 64 GiB declared by 1 MiB of copy instructions.
    let (mut entries, pack) = parse_whole(testkit::pack::delta_bomb(64 << 30));
    assert!(pack.len() < 80 << 10, "the bomb is {} bytes", pack.len());
    let limits = ResolveLimits {
        max_object_bytes: 1 << 30,
        max_work_bytes: u64::MAX,
    };
    let err = resolve_deltas(&mut entries, &pack, &bomb_options(limits))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pack entry at offset {}: it declares an object of {} bytes, more than the limit of {}",
            entries.get(1).offset(),
            64u64 << 30,
            1u64 << 30
        )
    );
}

#[tokio::test]
async fn a_delta_bomb_stops_at_the_work_limit() {
    let (mut entries, pack) = parse_whole(testkit::pack::delta_bomb(64 << 30));
    let limits = ResolveLimits {
        max_object_bytes: u64::MAX,
        max_work_bytes: 64 << 20,
    };
    let err = resolve_deltas(&mut entries, &pack, &bomb_options(limits))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ResolveError::Entry { offset, problem: EntryProblem::TooMuchWork(limit) }
                if *offset == entries.get(1).offset() && *limit == 64 << 20
        ),
        "{err}"
    );
    // A real pack resolves well within the default ratio.
    let packed = testkit::pack::packed_repo(30, &[]);
    let (mut entries, pack) = parse_whole(packed.pack.pack.clone());
    let stats = resolve_deltas(&mut entries, &pack, &ROOMY).await.unwrap();
    assert!(stats.work_bytes > 0 && stats.work_bytes < 1000 * pack.len() as u64);
}

#[tokio::test]
async fn a_timeout_stops_resolution_from_memory() {
    // Without limits, resolving this takes minutes of CPU with the pack in memory: only the resolver's yields
    // let the timeout fire.
    let (mut entries, pack) = parse_whole(testkit::pack::delta_bomb(1 << 40));
    let options = bomb_options(ResolveLimits::NONE);
    let run = resolve_deltas(&mut entries, &pack, &options);
    let stopped = tokio::time::timeout(std::time::Duration::from_millis(300), run).await;
    assert!(stopped.is_err(), "resolution ended by itself: {stopped:?}");
}

/// One object read back by id after resolution: through its delta chain, size-limited, absent ids.
#[tokio::test]
async fn an_object_is_read_back_by_id_through_its_chain() {
    use testkit::pack::PackBuilder;
    let (v1, v2, v3) = (version(1), version(2), version(3));
    let builder = PackBuilder::new(2, 3).object(3, &v1);
    let d2 = builder.bytes.len() as u64 - builder.offsets[0];
    let builder = builder.ofs_delta(d2, &make(&v1, &v2));
    let d3 = builder.bytes.len() as u64 - builder.offsets[1];
    let pack = builder.ofs_delta(d3, &make(&v2, &v3)).finish();
    let mut parser = PackParser::new();
    parser.feed(&pack).unwrap();
    let mut entries = parser.finish().unwrap().entries;
    let source = Bytes::from(pack);
    resolve_deltas(&mut entries, &source, &ROOMY).await.unwrap();
    let id3 = hash_object(ObjectKind::Blob, &v3);
    let read = read_object(&entries, &source, &id3, LOTS).await.unwrap();
    assert_eq!(read, Some((ObjectKind::Blob, v3.clone())));
    assert_eq!(
        read_object(&entries, &source, &id3, 100).await.unwrap(),
        None,
        "too big"
    );
    assert_eq!(
        read_object(&entries, &source, &ObjectId::ZERO, LOTS)
            .await
            .unwrap(),
        None
    );
    // Entries whose recorded ids lie are caught by the hash check.
    let mut lying = entries.clone();
    lying.set_oid(2, ObjectId([7; 20]));
    assert!(read_object(&lying, &source, &ObjectId([7; 20]), LOTS)
        .await
        .is_err());
}

#[test]
fn retained_entries_count_their_allocations_and_the_maps_table_also_while_it_grows() {
    use super::cache::{allocation_bytes, table_bytes, Retained, Slot};
    // The table's size follows the map's growth: a power of two of slots, at most 7/8 full.
    let mut map = std::collections::HashMap::new();
    for i in 0..20_000u32 {
        map.insert(EntryIndex(i), Box::<[u8]>::from([]));
        let buckets = (table_bytes(map.capacity()) - 16) / (std::mem::size_of::<Slot>() as u64 + 1);
        assert!(buckets.is_power_of_two() && buckets * 7 / 8 >= map.capacity() as u64);
        assert!(buckets <= 2 * (map.capacity() as u64).max(4), "{i}");
    }
    // Allocations round up to the allocator's size classes.
    for (len, bytes) in [
        (1, 16),
        (40, 48),
        (128, 128),
        (129, 160),
        (1000, 1024),
        (5000, 5120),
    ] {
        assert_eq!(allocation_bytes(len), bytes, "{len}");
    }
    // Entries of one byte, the dearest in overhead: as many as fit the limit with the table counted, and the
    // limit holds also while the table grows (the old one and the new one held together).
    let limit = 1 << 20;
    let mut retained = Retained::new(limit);
    for i in 0..100_000 {
        retained.insert(EntryIndex(i), &[1]);
    }
    let held = retained.len();
    let table = table_bytes(held);
    assert!(
        held as u64 * 16 + table <= limit && retained.peak() <= limit,
        "{held}"
    );
    assert!(retained.used() <= retained.peak());
    // The next growth would have held both tables: it did not fit, and `fits` says so beforehand.
    assert!(
        held as u64 * 16 + table + table_bytes(held + 1) > limit / 2,
        "{held}"
    );
    assert!(!retained.fits(1));
    // Reading entries, as often as it may, adds nothing to what is held: each read is a copy the reader frees.
    let used = retained.used();
    for _ in 0..3 {
        for i in 0..held as u32 {
            assert_eq!(retained.get(EntryIndex(i)).as_deref(), Some(&[1u8][..]));
        }
    }
    assert_eq!(retained.used(), used);
    assert_eq!(retained.get(EntryIndex(held as u32)), None);
    // Removing entries frees their allocations, not the table: one fits again, the whole limit does not.
    for i in 0..held as u32 {
        retained.remove(EntryIndex(i));
    }
    assert!(retained.used() >= table);
    assert!(retained.fits(1) && !retained.fits(limit as usize));
}

#[test]
fn a_lowered_cache_limit_evicts_the_least_recently_used_first() {
    use super::cache::Cache;
    use std::sync::Arc;
    let object = |n: u8| Arc::new(vec![n; 1000]);
    let mut cache = Cache::new(10_000);
    for i in 0..8u32 {
        cache.insert(i, object(i as u8));
    }
    // Entry 0 is used again: 1 is now the least recently used.
    assert!(cache.get(0).is_some());
    cache.set_limit(3_000);
    assert_eq!(cache.limit(), 3_000);
    let held: Vec<u32> = (0..8).filter(|&i| cache.contains(i)).collect();
    assert_eq!(held, [0, 7]);
    // Nothing larger than the new limit is cached; raised again, the cache fills again.
    cache.insert(8, Arc::new(vec![0; 4_000]));
    assert!(!cache.contains(8));
    cache.set_limit(10_000);
    cache.insert(8, Arc::new(vec![0; 4_000]));
    assert!(cache.contains(8) && cache.contains(0) && cache.contains(7));
    // A limit of nothing empties it.
    cache.set_limit(0);
    assert!((0..9).all(|i| !cache.contains(i)));
}
