use super::*;

#[test]
fn budget_parts_stay_within_total() {
    for mib in [24u64, 32, 256, 3008, 10240] {
        let b = Budget::new(mib << 20, 0);
        let used = b.uploads
            + b.hand_over
            + b.links
            + b.in_memory_pack
            + b.object_cache
            + b.read_window * b.read_streams as u64;
        assert!(
            used <= (mib << 20).max(crate::options::MIN_MEMORY_BUDGET) + (8 << 20),
            "{mib} MiB budget overspent: {used}"
        );
        assert!(b.big_object >= 1 << 20);
        assert!((256 << 10..=HAND_OVER_BYTES).contains(&b.hand_over));
    }
}

#[test]
fn the_bookkeeping_of_entries_comes_off_the_budget() {
    let none = Budget::new(256 << 20, 0);
    let many = Budget::new(256 << 20, 800_000);
    assert!(many.in_memory_pack < none.in_memory_pack);
    let taken = (none.in_memory_pack - many.in_memory_pack) * 4;
    assert!(
        taken.abs_diff(800_000 * BOOKKEEPING_PER_ENTRY) < 4,
        "{taken}"
    );
    // The links' share does not change once the entries are known: the scanner got it before.
    assert_eq!(many.links, none.links);
    // More entries than the budget holds: the least rest is left.
    let over = Budget::new(128 << 20, 10_000_000);
    assert_eq!(over.in_memory_pack, Budget::MIN_REST / 4);
}

#[test]
fn the_bench_repository_fits_128_mib() {
    // 800,003 entries, 799,402 distinct links (the bench's `huge` repository).
    let b = Budget::new(128 << 20, 800_003);
    let links = crate::git::scan::LinkSet::new(b.links);
    let per_link = crate::git::scan::BYTES_PER_LINK;
    assert!(799_402 * per_link + links.bytes() <= b.links, "{}", b.links);
    // The pack is read back: the upload buffers are free, and part of what is kept.
    let (cache, kept) = b.resolve_shares(true);
    let total = 800_003 * BOOKKEEPING_PER_ENTRY
        + b.hand_over
        + b.links
        + cache
        + kept
        + b.read_window * b.read_streams as u64;
    assert!(total <= 128 << 20, "{total}");
    const { assert!(BOOKKEEPING_PER_ENTRY <= 64) };
}

#[test]
fn the_smallest_budget_holds_the_upload_buffers_and_the_least_rest() {
    assert_eq!(
        crate::options::MIN_MEMORY_BUDGET,
        store::UPLOAD_BUFFER_BYTES + Budget::MIN_REST
    );
}

#[test]
fn temporary_upload_names_differ_within_a_process() {
    assert_ne!(run_id(), run_id());
}

#[tokio::test]
async fn a_resolution_nobody_awaits_fails_its_next_read() {
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let source = Stoppable {
        inner: Box::new(Bytes::from_static(b"0123")),
        stopped: Arc::clone(&stop.0),
    };
    assert_eq!(&source.read_at(1, 2).await.unwrap()[..], b"12");
    drop(stop);
    let err = source.read_at(1, 2).await.unwrap_err();
    assert!(err.to_string().contains("stopped"), "{err}");
}

#[test]
fn a_pack_read_back_keeps_compressed_entries_besides_a_whole_cache() {
    let b = Budget::new(256 << 20, 800_000);
    assert_eq!(b.resolve_shares(false), (b.object_cache, 0));
    // Read back, the unused in-memory share and the released upload buffers keep compressed entries; the cache
    // keeps its whole share.
    assert_eq!(
        b.resolve_shares(true),
        (b.object_cache, b.in_memory_pack + b.uploads)
    );
    // Pass 1 keeps recent objects in a part of the cache's share, which pass 2 uses only after it.
    assert!(b.early_cache() > 0 && b.early_cache() <= b.object_cache / 4);
}
