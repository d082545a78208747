//! How one repository's memory budget is shared out between the steps of a fetch, everything counted: the process
//! itself, the allocator's slack, the store's upload buffers, the links, the content in flight to the hashing
//! thread, the bookkeeping of the entries (as it grows in pass 1, and whole in pass 2), and what is left for pack
//! processing.
//!
//! The shares are first those of a budget that counts neither the process nor the allocator (a fixed part of what
//! the upload buffers leave each), and each step then gets the least of that and what honestly fits: on a large
//! budget that fit leaves the shares as they are (a fifth of the budget goes to links that mostly leave after
//! pass 1), on a small one it shrinks them, and when even the least the steps need does not fit, the run goes on
//! with that least and says by how much it is over the budget.

use super::hash_worker::HAND_OVER_BYTES;
use crate::git::pack::entry::ENTRY_BYTES;
use crate::git::resolve;
use crate::store;
use std::sync::OnceLock;

/// Memory held per pack entry from pass 1 to the end of the run: the entry itself and the resolver's graph.
pub(super) const BOOKKEEPING_PER_ENTRY: u64 = ENTRY_BYTES as u64 + resolve::BYTES_PER_ENTRY;

/// What the process holds besides any pack, where it cannot be measured ([`process_bytes`]): the binary's
/// pages, the threads' stacks, the async runtime, the HTTP and TLS clients. Measured: the CLI's resident memory
/// is 18-19 MiB once the refs are discovered, before the pack arrives.
const PROCESS_BYTES: u64 = 20 << 20;

/// The allocator's slack, as a fraction (1/N) of the budget: freed pages not given back yet (jemalloc gives them
/// back after 1 s, `.cargo/config.toml`) and the free room of partly used pages. Measured on the 800k-object bench
/// repository: at a 128 MiB budget resident memory stays 8-16 MiB above what the steps count (hence at least
/// [`LEAST_ALLOCATOR_SLACK`] whatever the budget); at 256 MiB, the steps' shares are seldom all full at once.
const ALLOCATOR_SLACK: u64 = 16;

/// The allocator's slack at least, whatever the budget: freed pages that the allocator keeps for reuse but that
/// later allocations of other sizes do not fit, which grows with how fast memory is allocated and freed, not with
/// the budget. Measured on the 800k-object bench repository at a 128 MiB budget: pass 2 peaks at 134-140 MiB of
/// resident memory with freed pages given back after 1 s, 127 MiB with them given back at once (which costs
/// 8 s of system time more).
const LEAST_ALLOCATOR_SLACK: u64 = 16 << 20;

/// Bytes of pack data queued for pass 1 at most (`PASS_ONE_QUEUE` chunks of at most a pkt-line's data each).
pub(super) const PASS_ONE_QUEUE_BYTES: u64 = super::PASS_ONE_QUEUE as u64 * 65_516;

/// What the process holds besides any pack: its resident memory the first time this is asked (when the first
/// pack of the process is fetched, before it arrives), from `/proc/self/status`; [`PROCESS_BYTES`] where that
/// cannot be read. Mappings that run at once each count it in their own budget.
pub(super) fn process_bytes() -> u64 {
    static MEASURED: OnceLock<u64> = OnceLock::new();
    *MEASURED.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| resident_bytes(&status))
            .unwrap_or(PROCESS_BYTES)
    })
}

/// The resident memory a `/proc/<pid>/status` text gives (its `VmRSS` line, in kB).
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    kib.checked_mul(1 << 10)
}

/// How one repository's memory budget is shared out (see the module doc).
#[derive(Debug, Clone)]
pub(super) struct Budget {
    /// The whole budget.
    total: u64,
    /// The process itself and the allocator's slack, which no step holds.
    reserve: u64,
    /// The store's upload buffers for the pack ([`store::part_size_for`] the budget).
    pub(super) uploads: u64,
    /// Content handed over to the hashing thread and not hashed yet (objects the passes may have dropped).
    pub(super) hand_over: u64,
    /// A pack up to this size is kept in memory for delta resolution instead of being read back.
    pub(super) in_memory_pack: u64,
    /// Inflated objects cached during delta resolution (pass 2; pass 1 caches a part of it, [`Self::early_cache`]).
    pub(super) object_cache: u64,
    /// Compressed entries kept while deltas are resolved from a pack read back (pass 2).
    pub(super) kept: u64,
    /// Objects larger than this are streamed, never held whole.
    pub(super) big_object: u64,
    /// The distinct ids the pack's objects link to, held for the connectivity check (the link set's limit, the
    /// same in both passes).
    pub(super) links: u64,
    /// The bytes each stream reading the pack back from the store holds ahead of the resolver's reads, and how
    /// many streams are open at most.
    pub(super) read_window: u64,
    pub(super) read_streams: usize,
    /// Bytes the shares need beyond the budget (the least the steps need did not fit).
    over: u64,
}

impl Budget {
    /// The least left for pack processing once the upload buffers are taken, even from a smaller budget.
    pub(super) const MIN_REST: u64 = 8 << 20;

    /// The least part (numerator, denominator) of its shares pass 2 gets whatever the budget leaves. Far below
    /// it, a pack read back falls off a cliff: too few of the compressed entries that bases are rebuilt from are
    /// kept, and each is read on its own, one GET at a time (before later passes postponed such rebuilds: with
    /// 68%, over 3,000 GETs and unfinished after 12 minutes). Measured on the 800k-object bench repository at a
    /// 128 MiB budget, three runs each: with 80% of the shares, 7 passes, 54 requests in all and a peak RSS of
    /// 124.0-124.8 MiB; with 70%, 8 passes, 55 requests and 121.3-121.7 MiB, in the same CPU time; with 65%,
    /// 8 passes and 55 requests still.
    const LEAST_PASS_TWO_SHARE: (u64, u64) = (7, 10);

    /// Pass 1's shares of `total` bytes, for a process that holds `process` bytes of its own. The entries'
    /// bookkeeping is not known yet: pass 1 counts it as it grows ([`Self::early_cache`],
    /// [`Self::in_memory_limit`]).
    pub(super) fn new(total: u64, process: u64) -> Self {
        let slack = (total / ALLOCATOR_SLACK).max(LEAST_ALLOCATOR_SLACK);
        Self::proportional(total, process + slack, 0)
    }

    /// The shares of a budget that counts neither the process nor the allocator, with `entries` entries known;
    /// `reserve` is only recorded.
    fn proportional(total: u64, reserve: u64, entries: usize) -> Self {
        // The store's upload buffers come off the top; a fifth of what is left goes to the links (about 20 bytes
        // per distinct id, as many as the objects of a complete pack, against 43 bytes of bookkeeping per
        // entry: a fifth of the budget holds the links of a pack whose bookkeeping takes about two fifths of it);
        // then the content in flight to the hashing thread (a 32nd of what is left, 256 KiB to 4 MiB) and the
        // bookkeeping of the entries.
        let uploads = store::upload_buffer_bytes(store::part_size_for(total));
        let base = total.saturating_sub(uploads);
        let hand_over = (base / 32).clamp(256 << 10, HAND_OVER_BYTES);
        let links = base / 5;
        let rest = (base - links)
            .saturating_sub(hand_over)
            .saturating_sub(entries as u64 * BOOKKEEPING_PER_ENTRY)
            .max(Self::MIN_REST);
        let in_memory_pack = rest / 4;
        Budget {
            total,
            reserve,
            uploads,
            hand_over,
            in_memory_pack,
            object_cache: rest / 8 * 3,
            // Read back, an evicted base is dearer to read again than to rebuild from compressed entries, so the
            // entries that still have descendants to come are kept too, in the in-memory pack's (unused) share
            // and the store's upload buffers (released once the pack was uploaded, before resolution starts).
            kept: in_memory_pack + uploads,
            big_object: (rest / 8).max(1 << 20),
            links,
            // The scan's stream, and streamed big objects' reads at 2-4 interleaved positions per level.
            read_window: (rest / 16).clamp(256 << 10, 16 << 20),
            read_streams: 4,
            over: 0,
        }
    }

    /// What pass 1 leaves for the in-memory pack, the early cache and the objects it holds whole once `entries`
    /// entries are read: the budget less the process and the allocator's slack, the upload buffers, the links'
    /// share, the content in flight to the hashing thread, the queue of pack data and the entries' bookkeeping.
    fn pass_one_room(&self, entries: usize) -> u64 {
        self.total
            .saturating_sub(self.reserve)
            .saturating_sub(self.uploads)
            .saturating_sub(self.links)
            .saturating_sub(self.hand_over)
            .saturating_sub(PASS_ONE_QUEUE_BYTES)
            .saturating_sub(entries as u64 * BOOKKEEPING_PER_ENTRY)
    }

    /// The most entries whose bookkeeping pass 1 has room for (before the in-memory pack, the early cache and
    /// the objects it holds whole).
    pub(super) fn most_entries(&self) -> usize {
        usize::try_from(self.pass_one_room(0) / BOOKKEEPING_PER_ENTRY).unwrap_or(usize::MAX)
    }

    /// The largest object (or delta data) pass 1 holds whole: two such (a delta's data and its result) besides
    /// the early cache.
    pub(super) fn early_object(&self) -> u64 {
        self.big_object.min(self.object_cache / 4)
    }

    /// The bytes of recent objects pass 1 keeps to resolve the deltas that follow them (`PackParser::resolve_early`)
    /// once `entries` entries are read: a quarter of the cache's share (which resolves nearly as many deltas early
    /// as all of it: 434k against 454k of the 662k deltas of the 800k-object bench repository), less what the
    /// growing entries leave no room for, and at least what [`Self::MIN_REST`] would give it.
    pub(super) fn early_cache(&self, entries: usize) -> u64 {
        let room = self
            .pass_one_room(entries)
            .saturating_sub(2 * self.early_object());
        (self.object_cache / 4).min(room.max(Self::MIN_REST / 8 * 3 / 4))
    }

    /// The largest pack kept in memory while `entries` entries are read: the in-memory pack's share, less what
    /// the growing entries leave no room for beside the early cache and the objects held whole.
    pub(super) fn in_memory_limit(&self, entries: usize) -> u64 {
        let room = self
            .pass_one_room(entries)
            .saturating_sub(self.early_cache(entries) + 2 * self.early_object());
        self.in_memory_pack.min(room)
    }

    /// By how much pass 1 exceeds the budget once `entries` entries are read (and the pack went to the store):
    /// 0 unless they leave less than the least early cache and room for the objects pass 1 holds whole.
    pub(super) fn pass_one_over(&self, entries: usize) -> u64 {
        (self.reserve
            + self.uploads
            + self.links
            + self.hand_over
            + PASS_ONE_QUEUE_BYTES
            + entries as u64 * BOOKKEEPING_PER_ENTRY
            + self.early_cache(entries)
            + 2 * self.early_object())
        .saturating_sub(self.total)
    }

    /// Pass 2's shares, once the pack's `entries` are known and the link set holds `link_bytes`, for a pack held
    /// in memory (`in_memory`: its bytes) or read back from the store. The shares of a budget that counts neither
    /// the process nor the allocator, scaled down to what is left of the budget once the process and the
    /// allocator's slack, the content in flight to the hashing thread, the entries' bookkeeping, the pack in
    /// memory and the links are taken; the links count what the set holds and a 16th of the rest of its
    /// limit, for the links of the objects pass 2 yields (most of them are to objects of the pack, known
    /// already). They are never scaled below [`Self::LEAST_PASS_TWO_SHARE`] of themselves (nor below
    /// [`Self::MIN_REST`] in all): where less is left, the run goes over the budget by the difference
    /// ([`Self::over`]).
    pub(super) fn resolving(
        &self,
        entries: usize,
        link_bytes: u64,
        in_memory: Option<u64>,
    ) -> Self {
        let mut b = Self::proportional(self.total, self.reserve, entries);
        let links = link_bytes + b.links.saturating_sub(link_bytes) / 16;
        let fixed = self.reserve
            + b.hand_over
            + entries as u64 * BOOKKEEPING_PER_ENTRY
            + links
            + in_memory.unwrap_or(0);
        let (kept, window) = match in_memory {
            Some(_) => (0, 0),
            None => (b.kept, b.read_window),
        };
        let wanted = b.object_cache + kept + window * b.read_streams as u64 + b.big_object;
        let room = self.total.saturating_sub(fixed);
        let least = (wanted / Self::LEAST_PASS_TWO_SHARE.1 * Self::LEAST_PASS_TWO_SHARE.0)
            .max(Self::MIN_REST)
            .min(wanted);
        let given = room.clamp(least, wanted);
        // At most `wanted`: the product fits.
        let scale =
            |share: u64| (u128::from(share) * u128::from(given) / u128::from(wanted)) as u64;
        b.object_cache = scale(b.object_cache);
        b.kept = scale(kept);
        let big_object = scale(b.big_object);
        b.big_object = big_object.max(1 << 20);
        let (windows, scaled_windows) = match in_memory {
            Some(_) => (0, 0),
            None => {
                let scaled = scale(window);
                b.read_window = scaled.max(256 << 10);
                let streams = b.read_streams as u64;
                (b.read_window * streams, scaled * streams)
            }
        };
        // The floors of the objects held whole and of the windows can take the shares past what was given: the
        // kept entries, then the cache, give that back where it would go over the budget.
        let floors = (b.big_object - big_object) + (windows - scaled_windows);
        let over =
            (fixed + b.object_cache + b.kept + windows + b.big_object).saturating_sub(self.total);
        let mut give_back = over.min(floors);
        b.over = over - give_back;
        for share in [&mut b.kept, &mut b.object_cache] {
            let cut = give_back.min(*share);
            *share -= cut;
            give_back -= cut;
        }
        b.over += give_back;
        b
    }

    /// The bytes of inflated objects cached and of compressed entries kept while deltas are resolved (pass 2).
    /// Measured on the 800k-object bench repository read back: with the cache whole, pass 2 rebuilds 275k
    /// objects and the run takes 15 s of CPU; with a quarter of it (the rest going to kept entries), 1.1M
    /// objects and 22 s.
    pub(super) fn resolve_shares(&self) -> (u64, u64) {
        (self.object_cache, self.kept)
    }

    /// By how much pass 2's shares exceed the budget: 0 unless the least pack processing needs did not fit.
    pub(super) fn over(&self) -> u64 {
        self.over
    }

    /// The whole budget.
    pub(super) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests;
