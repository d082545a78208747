use super::*;
use crate::git::hand_over::Content;
use crate::git::oid::{hash_object, ObjectKind};
use crate::git::pack::{EarlyResolution, PackError, PackParser, ParsedPack};
use std::sync::Arc;
use testkit::pack::{packed_repo, PackBuilder};

fn roomy() -> EarlyResolution {
    EarlyResolution {
        cache_bytes: 1 << 30,
        object_bytes: 1 << 30,
        work_bytes: Box::new(|_| u64::MAX),
    }
}

fn scanner() -> Scanner {
    Scanner::collecting_links(u64::MAX).with_lfs_pointers()
}

/// Parses `pack` in pieces of `piece` bytes, resolving early, with the worker (at most `limit` bytes in flight)
/// or (`None`) inline.
fn parse(pack: &[u8], piece: usize, limit: Option<u64>) -> Result<ParsedPack, PackError> {
    let parser = match limit {
        Some(limit) => {
            PackParser::with_sink(Box::new(HashWorker::start(scanner(), limit).unwrap()))
        }
        None => PackParser::with_scanner(scanner()),
    };
    let mut parser = parser.resolve_early(roomy());
    for chunk in pack.chunks(piece) {
        parser.feed(chunk)?;
    }
    parser.finish()
}

fn links(parsed: &mut ParsedPack) -> Vec<crate::git::oid::ObjectId> {
    parsed.scanner.compact_links();
    parsed.scanner.links().copied().collect()
}

fn tree_of(id: [u8; 20]) -> Vec<u8> {
    let mut tree = b"100644 a\0".to_vec();
    tree.extend(id);
    tree
}

#[test]
fn pass_one_with_the_worker_finds_what_it_finds_inline() {
    let packed = packed_repo(30, &["--delta-base-offset", "--no-reuse-delta"]);
    let pack = &packed.pack.pack;
    let mut inline = parse(pack, 4096, None).unwrap();
    assert!(inline.resolved_early > 0);
    assert!(inline.entries.iter().all(|e| e.oid().is_some()));
    // Room for everything; for a few objects (the others hashed on the parser's thread while the worker is
    // behind); for no object (all hashed on the parser's thread).
    for limit in [1 << 30, 2048, 0] {
        for piece in [7, 4096, pack.len()] {
            let mut threaded = parse(pack, piece, Some(limit)).unwrap();
            assert_eq!(threaded.entries, inline.entries, "{limit} {piece}");
            assert_eq!(threaded.resolved_early, inline.resolved_early);
            assert_eq!(links(&mut threaded), links(&mut inline));
        }
    }
}

#[test]
fn bytes_in_flight_stay_within_the_limit() {
    let mut worker = HashWorker::start(Scanner::none(), 10_000).unwrap();
    let mut done = Vec::new();
    for (entry, size) in [3000, 5000, 4000, 20_000, 9000, 1, 10_000]
        .into_iter()
        .enumerate()
    {
        let content = vec![entry as u8; size];
        let object = Finished {
            entry: entry as u32,
            offset: entry as u64,
            kind: ObjectKind::Blob,
            content: Content::Whole(Arc::new(content)),
        };
        worker.submit(object).unwrap();
        assert!(worker.in_flight <= 10_000);
    }
    worker.flush(&mut done).unwrap();
    assert_eq!(worker.in_flight, 0);
    assert!(worker.peak <= 10_000 && worker.peak > 0, "{}", worker.peak);
    done.sort_by_key(|h| h.entry);
    let sizes = [3000, 5000, 4000, 20_000, 9000, 1, 10_000];
    for (h, size) in done.iter().zip(sizes) {
        let content = vec![h.entry as u8; size];
        assert_eq!(h.oid, hash_object(ObjectKind::Blob, &content));
    }
    assert_eq!(done.len(), sizes.len());
    Box::new(worker).finish().unwrap();
}

#[test]
fn a_worker_behind_on_scans_makes_the_pass_wait_within_the_limit() {
    // A worker slower than the pass: every object past the first few is hashed on the pass's thread, and what
    // waits for the worker then is their scans (a tree's links, a small blob's start while it may be an LFS
    // pointer) and their bookkeeping. They count, and the pass waits rather than queue them without bound.
    fn slow(object: Finished, scanner: &mut Scanner) -> Result<Hashed, HandOverError> {
        std::thread::sleep(std::time::Duration::from_millis(1));
        object.process(scanner)
    }
    let limit = 4096;
    let mut worker = HashWorker::start_with(scanner(), limit, slow).unwrap();
    let mut inline = scanner();
    let mut done = Vec::new();
    let least = (std::mem::size_of::<Finished>() + std::mem::size_of::<Hashed>()) as u64;
    for entry in 0..300u32 {
        let (kind, content) = match entry % 3 {
            0 => (ObjectKind::Tree, tree_of([entry as u8; 20])),
            1 => (ObjectKind::Blob, b"version https://git-lfs".to_vec()),
            _ => (ObjectKind::Blob, vec![b'x'; 900]),
        };
        let object = |content: Vec<u8>| Finished {
            entry,
            offset: u64::from(entry),
            kind,
            content: Content::Whole(Arc::new(content)),
        };
        object(content.clone()).process(&mut inline).unwrap();
        worker.submit(object(content)).unwrap();
        assert!(worker.in_flight <= limit, "{}", worker.in_flight);
        assert!(
            worker.sent.len() as u64 * least <= limit,
            "{}",
            worker.sent.len()
        );
    }
    assert!(worker.hashed_here > 0);
    worker.flush(&mut done).unwrap();
    assert_eq!(done.len(), 300);
    let mut scanned = Box::new(worker).finish().unwrap();
    scanned.compact_links();
    inline.compact_links();
    assert_eq!(
        scanned.links().collect::<Vec<_>>(),
        inline.links().collect::<Vec<_>>()
    );
}

#[test]
fn what_an_object_in_flight_holds_is_counted() {
    let plan = scanner().plan();
    let tree = Finished {
        entry: 0,
        offset: 12,
        kind: ObjectKind::Tree,
        content: Content::Whole(Arc::new(tree_of([7; 20]).repeat(50))),
    };
    let whole = tree.held_bytes();
    assert!(whole >= 50 * 29, "{whole}");
    // Hashed here, the tree holds its 50 links (20 bytes each) instead of its content.
    let hashed = tree.hash_here(&plan);
    assert_eq!(hashed.bytes(), 0);
    assert!(hashed.held_bytes() >= 50 * 20, "{}", hashed.held_bytes());
    // A small blob that cannot be an LFS pointer holds no copy of itself once hashed.
    let blob = |content: &[u8]| Finished {
        entry: 1,
        offset: 40,
        kind: ObjectKind::Blob,
        content: Content::Whole(Arc::new(content.to_vec())),
    };
    let plain = blob(&[b'x'; 1000]).hash_here(&plan).held_bytes();
    let empty = blob(b"").hash_here(&plan).held_bytes();
    assert_eq!(plain, empty);
}

#[test]
fn a_malformed_object_found_by_the_worker_fails_pass_one_as_inline() {
    // A whole tree cut short (an id of 15 bytes), then a fine blob.
    let mut tree = tree_of([1; 20]);
    tree.truncate(tree.len() - 5);
    let pack = PackBuilder::new(2, 2)
        .object(2, &tree)
        .object(3, b"fine")
        .finish();
    let inline = parse(&pack, 4096, None).unwrap_err();
    assert!(
        matches!(inline, PackError::Scan { offset: 12, .. }),
        "{inline}"
    );
    for piece in [1, 4096] {
        assert_eq!(parse(&pack, piece, Some(1 << 20)).unwrap_err(), inline);
    }
    // A later problem of the pack itself (here, its end cut off) does not hide the earlier object's.
    let cut = &pack[..pack.len() - 3];
    assert_eq!(parse(cut, 4096, None).unwrap_err(), inline);
    assert_eq!(parse(cut, 4096, Some(1 << 20)).unwrap_err(), inline);
}

#[test]
fn too_many_links_fail_in_the_worker_as_inline() {
    let pack = PackBuilder::new(2, 2)
        .object(2, &tree_of([1; 20]))
        .object(2, &tree_of([2; 20]))
        .finish();
    let limit = crate::git::scan::BYTES_PER_LINK;
    let run = |parser: PackParser| {
        let mut parser = parser.resolve_early(roomy());
        parser
            .feed(&pack)
            .and_then(|()| parser.finish().map(|_| ()))
    };
    let inline = run(PackParser::with_scanner(Scanner::collecting_links(limit))).unwrap_err();
    assert!(
        inline.to_string().contains("raise the memory budget"),
        "{inline}"
    );
    let worker = HashWorker::start(Scanner::collecting_links(limit), 1 << 20).unwrap();
    assert_eq!(
        run(PackParser::with_sink(Box::new(worker))).unwrap_err(),
        inline
    );
}

#[test]
fn a_worker_that_panics_stops_pass_one_with_a_typed_error() {
    fn panics(_: Finished, _: &mut Scanner) -> Result<Hashed, HandOverError> {
        panic!("boom")
    }
    let packed = packed_repo(3, &["--delta-base-offset"]);
    let worker = HashWorker::start_with(scanner(), 1 << 20, panics).unwrap();
    let mut parser = PackParser::with_sink(Box::new(worker)).resolve_early(roomy());
    let err = parser
        .feed(&packed.pack.pack)
        .and_then(|()| parser.finish().map(|_| ()))
        .unwrap_err();
    assert_eq!(
        err,
        PackError::Hashing("the hashing thread panicked: boom".into())
    );
    assert_eq!(
        err.to_string(),
        "hashing the pack's objects stopped: the hashing thread panicked: boom"
    );
}

#[test]
fn dropping_the_sink_ends_the_worker() {
    let mut worker = HashWorker::start(scanner(), 1 << 20).unwrap();
    let object = Finished {
        entry: 0,
        offset: 12,
        kind: ObjectKind::Tree,
        content: Content::Whole(Arc::new(tree_of([7; 20]))),
    };
    worker.submit(object).unwrap();
    let thread = worker.thread.take().unwrap();
    drop(worker);
    let scanner = thread.join().unwrap();
    assert!(scanner.link_count() <= 1);
}

/// Pass 1 without early resolution, then pass 2 from memory with the worker (at most `limit` bytes in flight)
/// or (`None`) inline.
/// Pass 2's options for the small packs of these tests: a 1 MiB cache, nothing kept, no limits.
fn small_resolve() -> crate::git::resolve::ResolveOptions<'static> {
    crate::git::resolve::ResolveOptions {
        cache_bytes: 1 << 20,
        retain_bytes: 0,
        big_object_bytes: 1 << 20,
        progress: None,
        limits: crate::git::resolve::ResolveLimits::NONE,
    }
}

async fn both_passes(
    pack: &[u8],
    limit: Option<u64>,
) -> Result<ParsedPack, crate::git::resolve::ResolveError> {
    use crate::git::resolve::{resolve_and_scan, resolve_with_sink};
    let mut parser = PackParser::with_scanner(scanner());
    parser.feed(pack).unwrap();
    let mut parsed = parser.finish().unwrap();
    let options = small_resolve();
    let source = bytes::Bytes::copy_from_slice(pack);
    match limit {
        Some(limit) => {
            let mut sink = HashWorker::start(std::mem::take(&mut parsed.scanner), limit).unwrap();
            resolve_with_sink(&mut parsed.entries, &source, &options, &mut sink).await?;
            parsed.scanner = Box::new(sink).finish()?;
        }
        None => {
            resolve_and_scan(&mut parsed.entries, &source, &options, &mut parsed.scanner).await?;
        }
    }
    Ok(parsed)
}

#[tokio::test]
async fn pass_two_with_the_worker_finds_what_it_finds_inline() {
    use crate::git::pack::entry::EntryKind;
    // OFS deltas; REF deltas, some on deltas (their base ids are needed at once).
    for options in [
        &["--delta-base-offset", "--no-reuse-delta"][..],
        &["--no-reuse-delta"][..],
    ] {
        let packed = packed_repo(30, options);
        let pack = &packed.pack.pack;
        let mut inline = both_passes(pack, None).await.unwrap();
        let verified = crate::git::pack::test_support::verify_pack(&packed.pack);
        for e in &inline.entries {
            assert_eq!(e.oid(), Some(verified[&e.offset()].oid));
        }
        let refs = inline
            .entries
            .iter()
            .filter(|e| e.kind() == EntryKind::RefDelta);
        assert_eq!(refs.count() > 0, options.len() == 1);
        for limit in [1 << 30, 2048, 0] {
            let mut threaded = both_passes(pack, Some(limit)).await.unwrap();
            assert_eq!(threaded.entries, inline.entries, "{options:?} {limit}");
            assert_eq!(links(&mut threaded), links(&mut inline));
        }
    }
}

#[tokio::test]
async fn a_malformed_object_found_by_the_worker_fails_pass_two_as_inline() {
    let tree = tree_of([1; 20]);
    // The delta keeps the mode and name but cuts the id short; a blob follows.
    let delta = testkit::delta::make(&tree, &tree[..tree.len() - 5]);
    let builder = PackBuilder::new(2, 3).object(2, &tree);
    let distance = builder.bytes.len() as u64 - builder.offsets[0];
    let pack = builder
        .ofs_delta(distance, &delta)
        .object(3, b"fine")
        .finish();
    let inline = both_passes(&pack, None).await.unwrap_err().to_string();
    assert!(inline.contains("is malformed"), "{inline}");
    let threaded = both_passes(&pack, Some(1 << 20)).await.unwrap_err();
    assert_eq!(threaded.to_string(), inline);
}

#[tokio::test]
async fn a_worker_that_panics_stops_pass_two_with_a_typed_error() {
    use crate::git::resolve::{resolve_with_sink, ResolveError};
    fn panics(_: Finished, _: &mut Scanner) -> Result<Hashed, HandOverError> {
        panic!("boom")
    }
    let packed = packed_repo(5, &["--delta-base-offset", "--no-reuse-delta"]);
    let mut parser = PackParser::new();
    parser.feed(&packed.pack.pack).unwrap();
    let mut parsed = parser.finish().unwrap();
    let options = small_resolve();
    let source = bytes::Bytes::copy_from_slice(&packed.pack.pack);
    let mut sink = HashWorker::start_with(Scanner::none(), 1 << 20, panics).unwrap();
    let err = resolve_with_sink(&mut parsed.entries, &source, &options, &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ResolveError::Hashing(why) if why == "the hashing thread panicked: boom"),
        "{err}"
    );
}
