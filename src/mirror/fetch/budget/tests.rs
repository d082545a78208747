use super::*;

const MIB: u64 = 1 << 20;

/// The bench's `huge` repository: its entries, and the bytes its link set holds once the links to the pack's own
/// objects are forgotten (217k links).
const HUGE_ENTRIES: usize = 800_003;
const HUGE_LINK_BYTES: u64 = 5_008_568;

/// The bench's `medium` repository: its entries and its pack's bytes.
const MEDIUM_ENTRIES: usize = 150_004;
const MEDIUM_PACK: u64 = 37_368_796;

/// Everything pass 2 holds at once with `b`'s shares: the process and the allocator's slack, the content in
/// flight, the entries, the links (held and to come), the pack in memory, the cache, kept entries, the streams'
/// windows and an object held whole.
fn pass_two_held(b: &Budget, entries: usize, link_bytes: u64, in_memory: Option<u64>) -> u64 {
    let links = link_bytes + b.links.saturating_sub(link_bytes) / 16;
    let windows = match in_memory {
        Some(_) => 0,
        None => b.read_window * b.read_streams as u64,
    };
    b.reserve
        + b.hand_over
        + entries as u64 * BOOKKEEPING_PER_ENTRY
        + links
        + in_memory.unwrap_or(0)
        + b.object_cache
        + b.kept
        + windows
        + b.big_object
}

/// Pass 2's shares of pack processing in all: the cache, kept entries, the streams' windows and an object held
/// whole.
fn shares(b: &Budget, in_memory: Option<u64>) -> u64 {
    let windows = match in_memory {
        Some(_) => 0,
        None => b.read_window * b.read_streams as u64,
    };
    b.object_cache + b.kept + windows + b.big_object
}

/// Everything pass 1 holds at once with `entries` entries read.
fn pass_one_held(b: &Budget, entries: usize) -> u64 {
    b.reserve
        + b.uploads
        + b.links
        + b.hand_over
        + PASS_ONE_QUEUE_BYTES
        + entries as u64 * BOOKKEEPING_PER_ENTRY
        + b.early_cache(entries)
        + 2 * b.early_object()
}

#[test]
fn the_process_is_measured_from_its_status() {
    let status = "Name:\tmirror\nVmPeak:\t  40000 kB\nVmRSS:\t   19456 kB\nThreads:\t5\n";
    assert_eq!(resident_bytes(status), Some(19 * MIB));
    for broken in ["", "VmRSS:\t19456\n", "VmRSS:\tmany kB\n", "VmRSS: -1 kB\n"] {
        assert_eq!(resident_bytes(broken), None, "{broken:?}");
    }
    assert_eq!(resident_bytes("VmRSS: 99999999999999999999 kB"), None);
    assert!(process_bytes() > 0);
}

#[test]
fn the_process_and_the_allocators_slack_come_off_the_top() {
    let b = Budget::new(128 * MIB, 19 * MIB);
    assert_eq!(b.reserve, 19 * MIB + LEAST_ALLOCATOR_SLACK);
    // From 256 MiB on, the slack is a 16th of the budget.
    let large = Budget::new(512 * MIB, 19 * MIB);
    assert_eq!(large.reserve, 19 * MIB + 512 * MIB / ALLOCATOR_SLACK);
    assert_eq!(256 * MIB / ALLOCATOR_SLACK, LEAST_ALLOCATOR_SLACK);
    // A larger process leaves pass 2 less, or takes it over the budget: 10 MiB either way.
    let small = b.resolving(HUGE_ENTRIES, HUGE_LINK_BYTES, None);
    let large = Budget::new(128 * MIB, 29 * MIB).resolving(HUGE_ENTRIES, HUGE_LINK_BYTES, None);
    let (less, more) = (
        shares(&small, None) - shares(&large, None),
        large.over() - small.over(),
    );
    assert!((less + more).abs_diff(10 * MIB) <= 8, "{small:?} {large:?}");
}

#[test]
fn pass_two_stays_within_the_budget() {
    for mib in [24u64, 32, 64, 96, 128, 192, 256, 512, 1024, 3008, 10240] {
        let total = mib * MIB;
        let pass_one = Budget::new(total, PROCESS_BYTES);
        for entries in [0, 1_000, 100_000, HUGE_ENTRIES, 2_000_000, 10_000_000] {
            for in_memory in [None, Some(pass_one.in_memory_pack)] {
                let b = pass_one.resolving(entries, HUGE_LINK_BYTES, in_memory);
                let held = pass_two_held(&b, entries, HUGE_LINK_BYTES, in_memory);
                assert_eq!(
                    held.saturating_sub(total),
                    b.over(),
                    "{mib} MiB, {entries} entries, {in_memory:?}"
                );
                // Over the budget only with the least part of the shares pass 2 needs.
                if b.over() > 0 {
                    let plain = Budget::proportional(total, 0, entries);
                    let (given, wanted) = (shares(&b, in_memory), shares(&plain, in_memory));
                    let (n, d) = Budget::LEAST_PASS_TWO_SHARE;
                    let least = (wanted / d * n).max(Budget::MIN_REST);
                    assert!(given <= least + 2 * MIB, "{mib} MiB, {entries}: {b:?}");
                }
                assert!(b.big_object >= MIB);
                assert!((256 << 10..=HAND_OVER_BYTES).contains(&b.hand_over));
            }
        }
    }
}

#[test]
fn pass_one_counts_the_entries_as_they_grow() {
    for mib in [64u64, 128, 256, 1024] {
        let total = mib * MIB;
        let b = Budget::new(total, PROCESS_BYTES);
        // Before any entry, the early cache is a quarter of the cache's share, from 128 MiB on.
        assert!(b.early_cache(0) <= b.object_cache / 4);
        if mib >= 128 {
            assert_eq!(b.early_cache(0), b.object_cache / 4, "{mib} MiB");
        }
        let mut last = u64::MAX;
        for entries in (0..=3_000_000).step_by(50_000) {
            let early = b.early_cache(entries);
            assert!(early <= last, "{mib} MiB, {entries} entries");
            last = early;
            assert!(b.in_memory_limit(entries) <= b.in_memory_pack);
            let held = pass_one_held(&b, entries);
            assert_eq!(
                held.saturating_sub(total),
                b.pass_one_over(entries),
                "{mib} MiB, {entries} entries"
            );
        }
    }
    // At 128 MiB the bench repository's entries shrink the early cache by its end.
    let b = Budget::new(128 * MIB, PROCESS_BYTES);
    assert!(b.early_cache(HUGE_ENTRIES) < b.early_cache(0));
}

#[test]
fn the_default_budget_keeps_its_shares_for_the_bench_repositories() {
    // Where the budget has room, counting the process and the allocator changes no share that sets the speed:
    // the shares are those of a budget that counts neither.
    let total = 256 * MIB;
    let b = Budget::new(total, PROCESS_BYTES);
    let plain = Budget::proportional(total, 0, 0);
    assert_eq!(b.early_cache(0), plain.object_cache / 4);
    assert_eq!(b.early_object(), plain.early_object());
    // Medium stays in memory to its end, and its pass 2 keeps the cache whole.
    assert!(b.in_memory_limit(MEDIUM_ENTRIES) >= MEDIUM_PACK);
    assert_eq!(b.early_cache(MEDIUM_ENTRIES), plain.object_cache / 4);
    let medium = b.resolving(MEDIUM_ENTRIES, MIB, Some(MEDIUM_PACK));
    let plain_medium = Budget::proportional(total, 0, MEDIUM_ENTRIES);
    assert_eq!(medium.object_cache, plain_medium.object_cache);
    assert_eq!(medium.big_object, plain_medium.big_object);
    // Huge is read back: the cache, kept entries and windows of pass 2 are whole, and so is pass 1's early
    // cache to its end.
    assert_eq!(b.early_cache(HUGE_ENTRIES), plain.object_cache / 4);
    let huge = b.resolving(HUGE_ENTRIES, HUGE_LINK_BYTES, None);
    let plain_huge = Budget::proportional(total, 0, HUGE_ENTRIES);
    assert_eq!(huge.resolve_shares(), plain_huge.resolve_shares());
    assert_eq!(huge.read_window, plain_huge.read_window);
    assert_eq!(huge.big_object, plain_huge.big_object);
    assert_eq!(huge.over(), 0);
}

#[test]
fn the_bench_repository_at_128_mib() {
    let b = Budget::new(128 * MIB, PROCESS_BYTES);
    // Its links fit their share.
    let links = crate::git::scan::LinkSet::new(b.links);
    let per_link = crate::git::scan::BYTES_PER_LINK;
    assert!(799_402 * per_link + links.bytes() <= b.links, "{}", b.links);
    // Pass 2 gets less than a budget that counts neither the process nor the allocator, but not less than its
    // least part: with 57 bytes of bookkeeping per entry, that is over the budget by a few MiB, which is said.
    let huge = b.resolving(HUGE_ENTRIES, HUGE_LINK_BYTES, None);
    let plain = Budget::proportional(128 * MIB, 0, HUGE_ENTRIES);
    assert!(huge.object_cache < plain.object_cache);
    let held = pass_two_held(&huge, HUGE_ENTRIES, HUGE_LINK_BYTES, None);
    assert_eq!(held.saturating_sub(128 * MIB), huge.over());
    assert!(huge.over() <= 10 * MIB, "{}", huge.over());
    // Pass 1 fits to its end only while the bookkeeping leaves room for the objects it holds whole.
    let fits = b.pass_one_over(HUGE_ENTRIES) == 0;
    assert_eq!(fits, pass_one_held(&b, HUGE_ENTRIES) <= 128 * MIB);
    const { assert!(BOOKKEEPING_PER_ENTRY <= 64) };
}

#[test]
fn more_entries_than_fit_leave_the_least_and_say_by_how_much() {
    let b = Budget::new(128 * MIB, PROCESS_BYTES);
    let many = b.resolving(2_000_000, HUGE_LINK_BYTES, None);
    assert!(many.over() > 0);
    let held = pass_two_held(&many, 2_000_000, HUGE_LINK_BYTES, None);
    assert_eq!(held - 128 * MIB, many.over());
    assert!(b.pass_one_over(2_000_000) > 0);
    assert_eq!(b.early_cache(2_000_000), Budget::MIN_REST / 8 * 3 / 4);
}

#[test]
fn a_pack_read_back_keeps_compressed_entries_besides_a_whole_cache() {
    let b = Budget::new(256 * MIB, PROCESS_BYTES);
    let in_memory = b.resolving(HUGE_ENTRIES, HUGE_LINK_BYTES, Some(b.in_memory_pack));
    assert_eq!(in_memory.resolve_shares(), (in_memory.object_cache, 0));
    // Read back, the unused in-memory share and the released upload buffers keep compressed entries; the cache
    // keeps its whole share.
    let read_back = b.resolving(HUGE_ENTRIES, HUGE_LINK_BYTES, None);
    assert_eq!(
        read_back.resolve_shares(),
        (
            read_back.object_cache,
            read_back.in_memory_pack + read_back.uploads
        )
    );
    // Pass 1 keeps recent objects in a part of the cache's share, which pass 2 uses only after it.
    assert!(b.early_cache(0) > 0 && b.early_cache(0) <= b.object_cache / 4);
}

#[test]
fn the_smallest_budget_holds_the_upload_buffers_and_the_least_rest() {
    assert_eq!(
        crate::options::MIN_MEMORY_BUDGET,
        store::UPLOAD_BUFFER_BYTES + Budget::MIN_REST
    );
}
