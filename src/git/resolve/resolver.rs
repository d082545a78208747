//! The state of one run of delta resolution: the scan in pack order, the graph of bases and children, the REF
//! deltas waiting for their base, and the rebuilding of objects from their delta chains (in memory, or streamed
//! through [`super::stream`] when they are too big to hold).

use super::cache::{Cache, Retained};
use super::counts::{Counts, EntryStates};
use super::stream::{Level, LevelStep};
use super::{
    checked_read, entry_end, entry_error, EntryIndex, EntryProblem, PackReader, ReadError,
    ResolveError, ResolveLimits, ResolveOptions, ResolveStats, FETCH_AT_ONCE, FETCH_BYTES,
    MAX_PASSES, MAX_STREAM_LEVELS, MAX_WINDOW, MERGE_GAP, MIN_WINDOW, PROGRESS_INTERVAL,
    WINDOW_BUDGET, YIELD_BYTES, YIELD_ENTRIES,
};
use crate::git::delta;
use crate::git::hand_over::{self, Content, Finished, Hashed, ObjectSink};
use crate::git::oid::{ObjectId, ObjectKind};
use crate::git::pack::entry::{Entries, EntryKind};
use crate::git::pack::inflate::EntryInflater;
use crate::git::scan::ScanPlan;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The state of one run of [`resolve_deltas`](super::resolve_deltas).
pub(super) struct Resolver<'a> {
    entries: &'a mut Entries,
    source: &'a dyn PackReader,
    /// Objects, deltas and compressed entries bigger than this are streamed ([`ResolveOptions::big_object_bytes`]).
    big_object_bytes: u64,
    max_chain: usize,
    /// Children of each entry not resolved yet.
    pending: Counts,
    /// Children of each entry not resolved yet or with descendants not resolved yet: while non-zero, the entry's
    /// compressed bytes may be needed to rebuild a descendant.
    live: Counts,
    /// The kind of each entry's object, which entries are resolved (their ids are known, or being computed by
    /// the sink), and which wait for the next pass: the entries postponed during the current pass, and the
    /// deltas visited during it whose base is one of them. None of those is resolved before the next pass, which
    /// visits their descendants in pack order anyway, so those are not queued in `waiting_for_entry` (on the
    /// 800k-object bench repository at a 128 MiB budget, a queue of about 230k deltas and 10 MB).
    states: EntryStates,
    /// REF deltas whose base id is not known yet, by that id.
    waiting_for_oid: HashMap<ObjectId, Vec<EntryIndex>>,
    /// Deltas visited while their (known) base entry was not resolved yet, by that entry (not those whose base
    /// waits for the next pass: see `states`).
    waiting_for_entry: HashMap<EntryIndex, Vec<EntryIndex>>,
    /// Deltas in `waiting_for_entry`.
    waiting: u64,
    /// Children bigger than the limit of each entry bigger than the limit (to stream them in one pass).
    big_children: HashMap<EntryIndex, Vec<EntryIndex>>,
    /// Deltas that became resolvable behind the scan.
    ready: Vec<EntryIndex>,
    /// The entry the scan is at.
    scan_pos: EntryIndex,
    /// Whether a delta whose rebuild would read entries behind the scan that are not kept waits for the next
    /// pass instead ([`ResolveOptions::retain_bytes`] non-zero: reads are dear).
    postpone: bool,
    /// Deltas postponed during the current pass.
    postponed: u64,
    cache: Cache<EntryIndex>,
    /// Compressed entries with descendants to come ([`ResolveOptions::retain_bytes`]).
    retained: Retained,
    /// Compressed entries of the chain being rebuilt, read at once by `fetch_chain`.
    fetched: Vec<(EntryIndex, Bytes)>,
    inflater: EntryInflater,
    /// Hashes and scans every object rebuilt here.
    sink: &'a mut dyn ObjectSink,
    /// What the sink's scanner reads, for the objects streamed here.
    plan: ScanPlan,
    /// Ids the sink computed, not yet given to their entries.
    done: Vec<Hashed>,
    limits: ResolveLimits,
    /// Work done since the last yield to the executor.
    work_since_yield: u64,
    stats: ResolveStats,
}

/// How far a rebuild has got: an object in memory, or a stack of streamed levels.
enum Built {
    Memory(Arc<Vec<u8>>),
    Stream(Vec<Level>),
}

impl<'a> Resolver<'a> {
    /// Checks the entries and builds the graph of bases and children; refuses packs whose entries contradict each
    /// other.
    pub(super) fn new(
        entries: &'a mut Entries,
        source: &'a dyn PackReader,
        options: &ResolveOptions<'_>,
        max_chain: usize,
        sink: &'a mut dyn ObjectSink,
    ) -> Result<Self, ResolveError> {
        let n = entries.len();
        if n >= EntryIndex::NONE.get() {
            return Err(ResolveError::TooManyEntries(n));
        }
        // The first pass resolves only OFS deltas on objects it resolved (`PackParser::resolve_early`): an id on
        // any other delta is not trusted, and is computed here again.
        for i in 0..n {
            let e = &entries.get(i);
            let trusted = match (e.kind(), e.base()) {
                (EntryKind::Base(_), _) => true,
                (EntryKind::OfsDelta, Some(j)) => {
                    (j as usize) < i && entries.get(j as usize).oid().is_some()
                }
                _ => false,
            };
            if !trusted {
                entries.clear_oid(i);
            }
        }
        let mut kinds = Vec::with_capacity(n);
        for (i, e) in entries.iter().enumerate() {
            // An entry runs up to the next one (`Entries`): one that starts before it is out of order, and
            // leaves it no room.
            if let Some(next) = (i + 1 < n).then(|| entries.get(i + 1)) {
                if next.offset() < e.offset() {
                    return Err(entry_error(&next, EntryProblem::OutOfOrder));
                }
            }
            if e.header_len() == 0 || e.data_offset() >= entry_end(&e) {
                return Err(entry_error(
                    &e,
                    EntryProblem::BadBounds {
                        data_offset: e.data_offset(),
                        packed_len: e.packed_len(),
                    },
                ));
            }
            let limit = options.limits.max_object_bytes;
            if let Some(size) = [e.size(), e.result_size()].into_iter().find(|&s| s > limit) {
                return Err(entry_error(&e, EntryProblem::ObjectTooBig { size, limit }));
            }
            match e.kind() {
                EntryKind::Base(kind) => kinds.push(kind),
                // A delta resolved by the first pass has its base's kind (its base is an earlier entry); the
                // others get theirs (a placeholder until then) when they are resolved.
                _ => kinds.push(match (e.oid(), e.base()) {
                    (Some(_), Some(j)) => kinds[j as usize],
                    _ => ObjectKind::Blob,
                }),
            }
        }
        let mut states = EntryStates::new(kinds.into_iter());
        for (i, e) in entries.iter().enumerate() {
            if e.oid().is_some() {
                states.set_resolved(EntryIndex::new(i));
            }
        }
        let mut resolver = Resolver {
            pending: Counts::new(n),
            live: Counts::new(n),
            states,
            waiting_for_oid: HashMap::new(),
            waiting_for_entry: HashMap::new(),
            waiting: 0,
            big_children: HashMap::new(),
            ready: Vec::new(),
            scan_pos: EntryIndex(0),
            postpone: options.retain_bytes > 0,
            postponed: 0,
            cache: Cache::new(options.cache_bytes),
            retained: Retained::new(options.retain_bytes),
            fetched: Vec::new(),
            inflater: EntryInflater::new(),
            plan: sink.plan(),
            sink,
            done: Vec::new(),
            limits: options.limits,
            work_since_yield: 0,
            stats: ResolveStats::default(),
            big_object_bytes: options.big_object_bytes,
            max_chain,
            entries,
            source,
        };
        for i in 0..n {
            let e = &resolver.entries.get(i);
            match (e.kind(), e.base(), e.ref_base()) {
                (EntryKind::Base(_), _, _) => {}
                // An OFS delta's base comes earlier; a REF delta's base found by an earlier run may be anywhere.
                (kind, Some(j), _) => {
                    let j = j as usize;
                    let valid = match kind {
                        EntryKind::OfsDelta => j < i,
                        _ => j < n && j != i,
                    };
                    if !valid {
                        return Err(entry_error(e, EntryProblem::BadBase(j as u64)));
                    }
                    resolver.attach(EntryIndex::new(i), EntryIndex::new(j));
                }
                (_, None, Some(base)) => {
                    let waiting = resolver.waiting_for_oid.entry(base).or_default();
                    waiting.push(EntryIndex::new(i));
                }
                // A REF delta that lost its base's id (its id was set before its base was known): it stays
                // unresolved.
                (_, None, None) => {}
            }
        }
        // REF deltas on non-delta objects (whose ids the first pass computed) know their base now; the others
        // learn it when the object with that id is resolved.
        for j in 0..n {
            let Some(oid) = resolver.entries.get(j).oid() else {
                continue;
            };
            if let Some(waiting) = resolver.waiting_for_oid.remove(&oid) {
                for w in waiting {
                    resolver.attach(w, EntryIndex::new(j));
                }
            }
        }
        // Deltas resolved by the first pass are no children to wait for: the counts hold only children not
        // resolved yet, and (`live`) those with such descendants. From the end, so that a delta's count is final
        // before its base's is lowered (its OFS children come after it; REF children are never resolved yet).
        for i in (0..n).rev() {
            let e = &resolver.entries.get(i);
            let Some(j) = e.base().filter(|_| e.is_delta() && e.oid().is_some()) else {
                continue;
            };
            let j = EntryIndex(j);
            resolver.pending.decrement(j);
            if resolver.live.is_zero(EntryIndex::new(i)) {
                resolver.live.decrement(j);
            }
        }
        Ok(resolver)
    }

    /// Records that delta `child` applies to entry `base`.
    fn attach(&mut self, child: EntryIndex, base: EntryIndex) {
        // `base` is below `EntryIndex::NONE`, which is `Entry::NO_BASE`.
        self.entries.set_base(child.get(), base.0);
        self.pending.increment(base);
        self.live.increment(base);
        if self.is_big(child) && self.is_big(base) {
            self.big_children.entry(base).or_default().push(child);
        }
    }

    /// Whether an entry's object, delta data or compressed bytes exceed the in-memory limit.
    fn is_big(&self, i: EntryIndex) -> bool {
        let e = &self.entries.get(i.get());
        let limit = self.big_object_bytes;
        e.size() > limit || e.result_size() > limit || entry_end(e) - e.data_offset() > limit
    }

    fn is_resolved(&self, i: EntryIndex) -> bool {
        self.states.is_resolved(i)
    }

    /// Gives the ids the sink computed to their entries; with `wait`, after every object handed over.
    fn give_ids(&mut self, wait: bool) -> Result<(), ResolveError> {
        match wait {
            true => self.sink.flush(&mut self.done)?,
            false => self.sink.take_done(&mut self.done)?,
        }
        hand_over::set_ids(self.entries, &mut self.done);
        Ok(())
    }

    /// The base entry of delta `i`, [`EntryIndex::NONE`] when not known (yet).
    fn parent(&self, i: EntryIndex) -> EntryIndex {
        self.entries
            .get(i.get())
            .base()
            .map_or(EntryIndex::NONE, EntryIndex)
    }

    /// Resolves every entry, reporting the scan's progress, and returns what it did.
    pub(super) async fn run(
        mut self,
        progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
    ) -> Result<ResolveStats, ResolveError> {
        let mut unresolved = self.entries.len();
        loop {
            self.stats.passes += 1;
            self.postponed = 0;
            self.states.clear_deferred();
            self.scan(progress).await?;
            let left = self.entries.len() - self.states.resolved();
            if self.postponed == 0 || left == 0 {
                break;
            }
            // Another pass in pack order rebuilds the postponed deltas from the entries it keeps as it passes them;
            // one that resolved nothing new (or too many passes) lets the next one read behind the scan instead.
            if left == unresolved || self.stats.passes + 1 >= MAX_PASSES {
                self.postpone = false;
            }
            unresolved = left;
        }
        self.give_ids(true)?;
        for e in self.entries.iter() {
            if let (None, Some(base)) = (e.oid(), e.ref_base()) {
                return Err(ResolveError::MissingBase {
                    offset: e.offset(),
                    base,
                });
            }
        }
        if let Some(e) = self.entries.iter().find(|e| e.oid().is_none()) {
            return Err(entry_error(&e, EntryProblem::Unresolved));
        }
        self.stats.kinds = self.states.kinds();
        self.stats.peak_cache_bytes = self.cache.peak();
        self.stats.peak_retained_bytes = self.retained.peak();
        Ok(self.stats)
    }

    /// One pass over the entries in pack order, resolving those not resolved yet that can be.
    async fn scan(
        &mut self,
        progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
    ) -> Result<(), ResolveError> {
        let total = self.entries.len() as u64;
        let later_pass = self.stats.passes > 1;
        for i in 0..self.entries.len() {
            if let Some(report) = progress.filter(|_| i % PROGRESS_INTERVAL == 0 && i > 0) {
                report(i as u64, total);
            }
            if i % YIELD_ENTRIES == 0 {
                self.give_ids(false)?;
                YieldNow(false).await;
            }
            self.scan_pos = EntryIndex::new(i);
            if self.is_resolved(self.scan_pos) && self.live.is_zero(self.scan_pos) {
                // Nothing left to do with this entry, and nothing to read.
                continue;
            }
            self.source.advise_scan(self.entries.get(i).offset());
            if later_pass {
                self.keep_compressed(self.scan_pos).await?;
            }
            self.visit(self.scan_pos).await?;
            while let Some(j) = self.ready.pop() {
                // Deltas ahead of the scan are resolved when it reaches them.
                if j <= self.scan_pos {
                    self.visit(j).await?;
                }
            }
        }
        Ok(())
    }

    /// In a pass after the first, keeps the compressed bytes of resolved entry `i` while the scan passes it, if
    /// postponed deltas descend from it and they fit the kept entries' share. Bytes that would not be kept are
    /// not read: the entry's visit that follows reads what it needs itself, and a read here would be dropped and
    /// made again behind where the pack's stream has got to (on the 800k-object bench repository at a 128 MiB
    /// budget, three reads on their own and a stream more in pass 2).
    async fn keep_compressed(&mut self, i: EntryIndex) -> Result<(), ResolveError> {
        if !self.is_resolved(i)
            || self.live.is_zero(i)
            || self.is_big(i)
            || self.retained.contains(i)
        {
            return Ok(());
        }
        let e = &self.entries.get(i.get());
        let (start, end) = (e.data_offset(), entry_end(e));
        // The entry is not big: its compressed bytes fit in memory.
        if !self.retained.fits((end - start) as usize) {
            return Ok(());
        }
        let data = self.read(start, end - start).await?;
        self.retained.insert(i, &data);
        Ok(())
    }

    /// Whether rebuilding `chain` (from `i` down to its root) would read entries behind the scan that are
    /// neither kept nor cached. Big entries are streamed from the pack whatever happens, so they do not count.
    fn reads_behind(&self, chain: &[EntryIndex]) -> bool {
        let (i, root) = (chain[0], chain[chain.len() - 1]);
        chain.iter().any(|&x| {
            let cached = x == root && x != i && self.cache.contains(x);
            let at_scan = x == i && i == self.scan_pos;
            !(cached || at_scan || self.is_big(x) || self.retained.contains(x))
        })
    }

    /// Resolves entry `i` if it can be now; otherwise leaves it for when its base is resolved.
    async fn visit(&mut self, i: EntryIndex) -> Result<(), ResolveError> {
        if self.is_resolved(i) {
            return self.preload(i).await;
        }
        let parent = self.parent(i);
        if self.entries.get(i.get()).is_delta() {
            if parent == EntryIndex::NONE {
                // A REF delta whose base id is unknown: `record_resolved` queues it once an object with that id
                // exists.
                return Ok(());
            }
            if !self.is_resolved(parent) {
                match self.states.is_deferred(parent) {
                    true => self.states.set_deferred(i),
                    false => {
                        self.waiting_for_entry.entry(parent).or_default().push(i);
                        self.waiting += 1;
                        self.stats.peak_waiting = self.stats.peak_waiting.max(self.waiting);
                    }
                }
                return Ok(());
            }
        }
        self.resolve(i).await
    }

    /// Caches a non-delta object that has children to come while the scan passes it (a sequential read now
    /// saves a random one later).
    async fn preload(&mut self, i: EntryIndex) -> Result<(), ResolveError> {
        let e = &self.entries.get(i.get());
        if e.is_delta()
            || self.pending.is_zero(i)
            || self.is_big(i)
            || e.size() > self.cache.limit()
        {
            return Ok(());
        }
        if self.cache.contains(i) {
            return Ok(());
        }
        let data = self.read_whole(i).await?;
        self.cache.insert(i, Arc::new(data));
        Ok(())
    }

    /// Computes the id of unresolved entry `i`, whose base (if any) is resolved.
    async fn resolve(&mut self, i: EntryIndex) -> Result<(), ResolveError> {
        let chain = self.chain(i)?;
        if self.postpone && self.reads_behind(&chain) {
            // The next pass keeps what this rebuild lacks as it goes by, and resolves `i` then.
            self.states.set_deferred(i);
            self.postponed += 1;
            self.stats.postponed += 1;
            return Ok(());
        }
        let root = *chain.last().unwrap_or(&i);
        if chain.len() > 1 {
            if self.cache.contains(self.parent(i)) {
                self.stats.cache_hits += 1;
            } else {
                self.stats.cache_misses += 1;
            }
        }
        let path = if self.is_big(i) {
            self.big_path(i, chain.len())
        } else {
            Vec::new()
        };
        let window = (WINDOW_BUDGET / (chain.len() + path.len())).clamp(MIN_WINDOW, MAX_WINDOW);
        self.fetch_chain(&chain).await?;

        let mut built = match self.cache.get(root) {
            Some(data) if root != i => Built::Memory(data),
            _ if self.is_big(root) => Built::Stream(vec![Level::inflate(
                &self.entries.get(root.get()),
                root,
                window,
            )]),
            _ => {
                let data = Arc::new(self.read_whole(root).await?);
                if root != i {
                    self.keep(root, &data);
                }
                Built::Memory(data)
            }
        };
        for &x in chain.iter().rev().skip(1) {
            built = self.extend(built, x, window).await?;
            if x != i {
                if let Built::Memory(data) = &built {
                    self.keep(x, data);
                }
            }
        }
        self.states.set_kind(i, self.states.kind(root));
        match built {
            Built::Memory(data) => {
                let object = Finished {
                    entry: i.0,
                    offset: self.entries.get(i.get()).offset(),
                    kind: self.states.kind(i),
                    content: Content::Whole(Arc::clone(&data)),
                };
                // REF deltas waiting for a base id need every id at once; otherwise the sink computes it later.
                let object = match self.waiting_for_oid.is_empty() {
                    true => object,
                    false => object.hash_here(&self.plan),
                };
                let oid = object.oid();
                self.sink.submit(object)?;
                self.record_resolved(i, oid, Some(data));
            }
            Built::Stream(levels) => self.stream_hash(levels, i, &path, window).await?,
        }
        self.fetched.clear();
        Ok(())
    }

    /// `i`, its base, its base's base... down to the nearest cached object or non-delta entry.
    fn chain(&mut self, i: EntryIndex) -> Result<Vec<EntryIndex>, ResolveError> {
        let mut chain = vec![i];
        let mut x = i;
        while self.entries.get(x.get()).is_delta() && (x == i || !self.cache.contains(x)) {
            // Resolved deltas, and the delta being resolved, always have a base.
            x = match self.parent(x) {
                p if p != EntryIndex::NONE => p,
                _ => {
                    return Err(entry_error(
                        &self.entries.get(x.get()),
                        EntryProblem::Unresolved,
                    ))
                }
            };
            chain.push(x);
            if chain.len() > self.max_chain + 1 {
                return Err(entry_error(
                    &self.entries.get(i.get()),
                    EntryProblem::ChainTooDeep(self.max_chain),
                ));
            }
        }
        self.stats.longest_chain = self.stats.longest_chain.max(chain.len() as u64 - 1);
        Ok(chain)
    }

    /// Unresolved big descendants of big entry `i` along one line (first child each time), so that streaming `i`
    /// hashes them too.
    fn big_path(&self, i: EntryIndex, chain_len: usize) -> Vec<EntryIndex> {
        let mut path = Vec::new();
        let mut x = i;
        while chain_len + path.len() < MAX_STREAM_LEVELS {
            let next = self
                .big_children
                .get(&x)
                .and_then(|children| children.iter().copied().find(|&c| !self.is_resolved(c)));
            match next {
                Some(c) => {
                    path.push(c);
                    x = c;
                }
                None => break,
            }
        }
        path
    }

    /// Applies delta entry `x` to what has been built so far.
    async fn extend(
        &mut self,
        built: Built,
        x: EntryIndex,
        window: usize,
    ) -> Result<Built, ResolveError> {
        let small = !self.is_big(x);
        let mut levels = match built {
            Built::Memory(base) if small => {
                let delta = self.read_whole(x).await?;
                let e = &self.entries.get(x.get());
                let result = delta::apply(&base, &delta).map_err(|err| entry_error(e, err))?;
                self.work(result.len() as u64, e.offset()).await?;
                let e = &self.entries.get(x.get());
                if result.len() as u64 != e.result_size() {
                    return Err(entry_error(
                        e,
                        EntryProblem::ResultSizeMismatch {
                            header: result.len() as u64,
                            recorded: e.result_size(),
                        },
                    ));
                }
                return Ok(Built::Memory(Arc::new(result)));
            }
            Built::Memory(base) => vec![Level::memory(base)],
            Built::Stream(levels) => levels,
        };
        if levels.len() >= MAX_STREAM_LEVELS {
            return Err(entry_error(
                &self.entries.get(x.get()),
                EntryProblem::StreamTooDeep,
            ));
        }
        let mut top = Level::delta(&self.entries.get(x.get()), x, window);
        if !small {
            levels.push(top);
            return Ok(Built::Stream(levels));
        }
        // A small object on top of a streamed one: stream it into memory.
        top.drop_window();
        top.collect();
        levels.push(top);
        self.drive_all(&mut levels).await?;
        let data = levels.last_mut().map(Level::take_collected);
        Ok(Built::Memory(Arc::new(data.unwrap_or_default())))
    }

    /// Streams big object `i` (the top of `levels`) and the big descendants in `path`, hashing each.
    async fn stream_hash(
        &mut self,
        mut levels: Vec<Level>,
        i: EntryIndex,
        path: &[EntryIndex],
        window: usize,
    ) -> Result<(), ResolveError> {
        let first = levels.len() - 1;
        for &c in path {
            levels.push(Level::delta(&self.entries.get(c.get()), c, window));
        }
        if let Some(top) = levels.last_mut() {
            top.drop_window();
        }
        let kind = self.states.kind(i);
        for level in &mut levels[first..] {
            level.hash_as(kind, &self.plan);
        }
        self.drive_all(&mut levels).await?;
        for level in &mut levels[first..] {
            if let Some((x, oid, scan)) = level.take_id() {
                self.sink.submit(Finished {
                    entry: x.0,
                    offset: self.entries.get(x.get()).offset(),
                    kind,
                    content: Content::Hashed(oid, scan.map(Box::new)),
                })?;
                self.states.set_kind(x, kind);
                self.stats.streamed += 1;
                self.record_resolved(x, Some(oid), None);
            }
        }
        Ok(())
    }

    /// Runs every level of a stream to its end, the top first: each object is hashed exactly once, and every
    /// entry's zlib stream and delta are verified to their last byte even where no copy reached.
    async fn drive_all(&mut self, levels: &mut [Level]) -> Result<(), ResolveError> {
        for at in (0..levels.len()).rev() {
            self.drive(levels, at).await?;
        }
        Ok(())
    }

    /// Runs level `top` of a stream to its end, pulling its bases forward (or restarting them) as its copies
    /// require.
    async fn drive(&mut self, levels: &mut [Level], top: usize) -> Result<(), ResolveError> {
        let mut at = top;
        loop {
            // `at <= top`, an index of `levels`.
            let (below, rest) = levels.split_at_mut(at);
            let level = &mut rest[0];
            let before = level.produced();
            let step = level.produce(below.last_mut(), &mut self.stats.stream_restarts)?;
            let made = level.produced().saturating_sub(before);
            let offset = level.offset();
            self.work(made, offset).await?;
            match step {
                LevelStep::Produced => {
                    if at < top {
                        at += 1;
                    }
                }
                LevelStep::NeedBase => match at.checked_sub(1) {
                    Some(below) => at = below,
                    None => return Err(level.error(EntryProblem::BaseEndedEarly)),
                },
                LevelStep::NeedInput { offset, len } => {
                    let data = self.read(offset, len).await?;
                    level.feed(data);
                }
                LevelStep::End => {
                    if at == top {
                        return Ok(());
                    }
                    return Err(rest[1].error(EntryProblem::BaseEndedEarly));
                }
            }
        }
    }

    /// Caches a rebuilt object if it still has children to come.
    fn keep(&mut self, x: EntryIndex, data: &Arc<Vec<u8>>) {
        self.stats.rebuilt += u64::from(self.entries.get(x.get()).is_delta());
        if !self.pending.is_zero(x) {
            self.cache.insert(x, Arc::clone(data));
        }
    }

    /// Records that entry `x` is resolved, and its id if known (else the sink gives it later, and no REF delta
    /// waits for an id), and wakes whatever waited for it.
    fn record_resolved(
        &mut self,
        x: EntryIndex,
        oid: Option<ObjectId>,
        data: Option<Arc<Vec<u8>>>,
    ) {
        let idx = x.get();
        if self.entries.get(idx).is_delta() {
            self.stats.deltas += 1;
        } else {
            self.stats.bases_hashed += 1;
        }
        if x < self.scan_pos {
            self.stats.deferred += 1;
        }
        self.states.set_resolved(x);
        let waiting = oid.and_then(|oid| {
            self.entries.set_oid(idx, oid);
            self.waiting_for_oid.remove(&oid)
        });
        for w in waiting.unwrap_or_default() {
            self.attach(w, x);
            if w <= self.scan_pos {
                self.ready.push(w);
            }
        }
        if let Some(waiting) = self.waiting_for_entry.remove(&x) {
            self.waiting -= waiting.len() as u64;
            self.ready.extend(waiting);
        }
        let parent = self.parent(x);
        if parent != EntryIndex::NONE {
            self.pending.decrement(parent);
            if self.pending.is_zero(parent) {
                self.cache.remove(parent);
                self.big_children.remove(&parent);
            }
        }
        if let Some(data) = data {
            if !self.pending.is_zero(x) {
                self.cache.insert(x, data);
            }
        }
        if self.live.is_zero(x) {
            self.release(x);
        }
    }

    /// Drops the retained bytes of resolved entry `x`, which has no unresolved descendants left, and of its
    /// ancestors that this leaves without any.
    fn release(&mut self, mut x: EntryIndex) {
        loop {
            self.retained.remove(x);
            let p = self.parent(x);
            if p == EntryIndex::NONE {
                return;
            }
            // A REF delta attached to an entry already released can make this count low, never wrong in effect:
            // an entry released early is read from the source again.
            self.live.decrement(p);
            if !self.live.is_zero(p) || !self.is_resolved(p) {
                return;
            }
            x = p;
        }
    }

    /// Reads and inflates a whole entry that is not big: from the retained entries, or from the source (and
    /// then retained if it has children to come).
    async fn read_whole(&mut self, i: EntryIndex) -> Result<Vec<u8>, ResolveError> {
        let e = &self.entries.get(i.get());
        let (start, size, end) = (e.data_offset(), e.size(), entry_end(e));
        let fetched = self.fetched.iter().position(|(x, _)| *x == i);
        let data = match (fetched, self.retained.get(i)) {
            (_, Some(data)) => {
                self.stats.retained_reads += 1;
                data
            }
            (fetched, None) => {
                let data = match fetched {
                    Some(pos) => self.fetched.swap_remove(pos).1,
                    None => self.read(start, end - start).await?,
                };
                if !self.live.is_zero(i) {
                    self.retained.insert(i, &data);
                }
                data
            }
        };
        let e = &self.entries.get(i.get());
        let whole = self
            .inflater
            .inflate_whole(&data, size)
            .map_err(|p| entry_error(e, p))?;
        let offset = e.offset();
        self.work(whole.len() as u64, offset).await?;
        Ok(whole)
    }

    /// Counts `bytes` of work done for the entry at pack offset `offset`, fails past
    /// [`ResolveLimits::max_work_bytes`], and yields to the executor every [`YIELD_BYTES`].
    async fn work(&mut self, bytes: u64, offset: u64) -> Result<(), ResolveError> {
        self.stats.work_bytes = self.stats.work_bytes.saturating_add(bytes);
        if self.stats.work_bytes > self.limits.max_work_bytes {
            return Err(ResolveError::Entry {
                offset,
                problem: EntryProblem::TooMuchWork(self.limits.max_work_bytes),
            });
        }
        self.work_since_yield += bytes;
        if self.work_since_yield >= YIELD_BYTES {
            self.work_since_yield = 0;
            YieldNow(false).await;
        }
        Ok(())
    }

    async fn read(&mut self, offset: u64, len: u64) -> Result<Bytes, ResolveError> {
        let result = self.source.read_at(offset, len).await;
        self.check_read(offset, len, result)
    }

    /// The outcome of a read of `len` bytes at `offset`, checked and counted.
    fn check_read(
        &mut self,
        offset: u64,
        len: u64,
        result: Result<Bytes, ReadError>,
    ) -> Result<Bytes, ResolveError> {
        let data = checked_read(offset, len, result)?;
        self.stats.reads += 1;
        self.stats.bytes_read += len;
        Ok(data)
    }

    /// Reads at once the compressed bytes of the entries of `chain` (from `i` down to its root) that rebuilding
    /// `i` will read whole and that are neither cached nor retained, the root's end first, so that a rebuild far
    /// behind the scan waits for one round of reads rather than one read per level, and entries at most
    /// [`MERGE_GAP`] apart are read with one read of the span they cover. At most [`FETCH_AT_ONCE`] entries and
    /// [`FETCH_BYTES`] bytes; the rest are read one by one.
    async fn fetch_chain(&mut self, chain: &[EntryIndex]) -> Result<(), ResolveError> {
        let (i, root) = (chain[0], chain[chain.len() - 1]);
        let mut wanted = Vec::new();
        let mut bytes = 0;
        for &x in chain.iter().rev() {
            let e = &self.entries.get(x.get());
            let len = entry_end(e) - e.data_offset();
            let cached = x == root && x != i && self.cache.contains(x);
            if cached || self.is_big(x) || self.retained.contains(x) {
                continue;
            }
            if wanted.len() == FETCH_AT_ONCE || (bytes + len > FETCH_BYTES && !wanted.is_empty()) {
                break;
            }
            bytes += len;
            wanted.push((x, e.data_offset(), len));
        }
        if wanted.len() < 2 {
            return Ok(());
        }
        // Entries close to each other are read together: one read of the span between them (the gaps read in
        // all stay within another FETCH_BYTES).
        wanted.sort_unstable_by_key(|&(_, offset, _)| offset);
        let mut spans: Vec<(u64, u64, Vec<Wanted>)> = Vec::new();
        let mut gaps = 0;
        for (x, offset, len) in wanted {
            match spans.last_mut() {
                Some((start, end, members))
                    if offset.saturating_sub(*end) <= MERGE_GAP
                        && gaps + offset.saturating_sub(*end) <= FETCH_BYTES
                        && (offset + len).saturating_sub(*start) <= FETCH_BYTES =>
                {
                    gaps += offset.saturating_sub(*end);
                    *end = (*end).max(offset + len);
                    members.push((x, offset, len));
                }
                _ => spans.push((offset, offset + len, vec![(x, offset, len)])),
            }
        }
        let source = self.source;
        let reads = spans.into_iter().map(|(start, end, members)| async move {
            (
                start,
                end,
                members,
                source.read_at(start, end - start).await,
            )
        });
        for (start, end, members, result) in futures_util::future::join_all(reads).await {
            let data = self.check_read(start, end - start, result)?;
            for (x, offset, len) in members {
                // Each member lies within the span read.
                let from = (offset - start) as usize;
                self.fetched
                    .push((x, data.slice(from..from + len as usize)));
            }
        }
        Ok(())
    }
}

/// An entry of a chain to fetch: its index, and the offset and length of its compressed bytes.
type Wanted = (EntryIndex, u64, u64);

/// Lets the executor run other tasks and fire timers (a caller's deadline) in the middle of CPU-bound work: the
/// first poll wakes the task and returns pending, the next one is ready. Needs no runtime.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
