//! Fetching one pack: receive it, resolve and index it, store it under its final name.
//!
//! The steps, each a method of the run:
//!
//! 1. **Receive** ([`Run::receive`]): send the plan's wants and haves, demultiplex the response, feed the pack to
//!    the sans-IO parser (pass 1: entry bounds, CRC-32, ids of whole objects, and of the deltas whose base is still
//!    in a small cache of recent objects) and keep its bytes in a [`Spool`]:
//!    in memory while the pack fits the budget's share, else streamed into a multipart upload under a temporary
//!    key (`objects/pack/incoming-…`), so memory never grows with the pack.
//! 2. **Resolve and index** ([`Run::resolve_and_index`]): compute the ids of the deltas (pass 2) within the
//!    memory budget, reading the pack from memory or back from the store (`read_back.rs`); write the `.idx`.
//!    Both passes hand the objects they hold whole to a thread of their own (`fetch/hash_worker.rs`) that hashes
//!    them and hands every commit, tree and tag to a [`Scanner`] that collects their links.
//! 3. **Check connectivity** (`connectivity.rs`): every ref to publish, and every link, is in the new pack or a
//!    pack the mirror lists (the new pack alone on full and compaction runs). An empty or incomplete answer is
//!    refused here, before anything is stored, unlisted or published.
//! 4. **Store** ([`Run::store_pack`]): the pack under its final name (one PUT from memory, or a server-side copy
//!    of the temporary upload), then its `.idx`: the first two steps of the publication protocol (`publish.rs`).
//!
//! [`Budget`] shares one repository's memory budget out between these steps.

use super::connectivity::{self, Received};
use super::lfs::{find_lfsconfig, LfsConfig};
use super::plan::{Desired, Plan};
use super::publish::create_named;
use super::read_back::StorePackReader;
use super::{MirrorError, Run, AGENT};
use crate::git::hand_over::ObjectSink;
use crate::git::idx;
use crate::git::layout;
use crate::git::lfs::PointerSet;
use crate::git::oid::ObjectId;
use crate::git::pack::{EarlyResolution, PackError, PackParser, ParsedPack};
use crate::git::resolve::{self, PackReader, ResolveLimits, ResolveOptions};
use crate::git::scan::Scanner;
use crate::git::upload_pack::{self, Advertisement, ProtocolError, ResponseDecoder, ResponseEvent};
use crate::progress::{MappingId, Stage};
use crate::store::{self, Precondition};
use crate::upstream::RepoEndpoint;
use budget::Budget;
use bytes::Bytes;
use hash_worker::HashWorker;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where a pack is until it gets its final name; `M` is its in-memory form (a growing `Vec` while it arrives,
/// frozen `Bytes` once complete).
pub(super) enum Spool<M> {
    /// In memory (it fits the budget's share for whole packs): stored under its final name with one PUT.
    Memory(M),
    /// Streamed into a multipart upload under this temporary key: copied to its final name.
    Store(String),
}

/// A pack received, indexed and stored under its final name.
pub(super) struct NewPack {
    /// The pack's checksum, which names it.
    pub(super) id: ObjectId,
    /// Entries in the pack.
    pub(super) objects: u64,
    /// Bytes of the pack.
    pub(super) bytes: u64,
    /// The distinct Git LFS pointers among the pack's blobs (both passes).
    pub(super) lfs_pointers: PointerSet,
    /// The `.lfsconfig` at the default branch's tip, when the pack holds that commit and its tree has one.
    pub(super) lfs_config: Option<LfsConfig>,
}

impl Run<'_> {
    /// Receives, indexes and stores the pack of `plan`'s wants; `None` when the source had nothing new to send.
    /// Before anything is stored, the connectivity check (`connectivity.rs`) proves that `desired`'s refs reach
    /// only objects of the new pack or, unless the pack must be complete on its own, of the `listed` packs.
    /// With `lfs_head` (the default branch's commit), the `.lfsconfig` of its tree is found as the objects pass,
    /// or read from the pack where they came out of order.
    pub(super) async fn fetch_pack(
        &mut self,
        adv: &Advertisement,
        repo_url: &RepoEndpoint,
        plan: &Plan,
        desired: &Desired,
        listed: &[ObjectId],
        lfs_head: Option<ObjectId>,
    ) -> Result<Option<NewPack>, MirrorError> {
        let budget = Budget::new(self.options.memory_budget, budget::process_bytes());
        let (held, mut parsed) = self
            .receive_retrying(adv, repo_url, plan, &budget, lfs_head)
            .await?;
        // Without haves (full and compaction runs) the pack must hold everything its refs reach.
        let listed = if plan.haves.is_empty() { &[] } else { listed };
        let (index, lfs_config) = if parsed.entries.is_empty() {
            (None, None)
        } else {
            // The entries' bookkeeping is known now, and comes off the budget: all the list holds (pass 1 released
            // the spare capacity of its growth). A slot of the list's side tables (rare: spilled sizes, offsets
            // past 4 GiB) holds less than an entry.
            let in_memory = match &held {
                Spool::Memory(bytes) => Some(bytes.len() as u64),
                Spool::Store(_) => None,
            };
            let entries = parsed.entries.capacity() + parsed.entries.side_slots();
            let pass_one_over = budget.pass_one_over(entries);
            let budget = budget.resolving(entries, parsed.scanner.link_bytes(), in_memory);
            let over = budget.over().max(pass_one_over);
            if over > 0 {
                // Going on with the least memory pack processing needs mirrors what a refusal would not, where
                // the budget is a share of a larger memory.
                tracing::warn!(
                    source = %self.report.source,
                    objects = entries,
                    bookkeeping_mib = (entries as u64 * budget::BOOKKEEPING_PER_ENTRY) >> 20,
                    budget_mib = budget.total() >> 20,
                    over_mib = over.div_ceil(1 << 20),
                    "the pack's bookkeeping leaves less than the least that processing it needs: going on with \
                     that, over the memory budget"
                );
            }
            let (index, lfs_config) = self.resolve_and_index(&held, &mut parsed, &budget).await?;
            (Some(index), lfs_config)
        };
        parsed.scanner.compact_links();
        tracing::debug!(
            links = parsed.scanner.link_count(),
            link_bytes = parsed.scanner.link_bytes(),
            "links collected"
        );
        let received = Received {
            index: index.as_deref(),
            scanner: &parsed.scanner,
            objects: parsed.entries.len() as u64,
        };
        connectivity::check(self.store.as_ref(), desired, &plan.haves, listed, &received).await?;
        let Some(index) = index else {
            return Ok(None);
        };
        self.store_pack(held, &parsed.checksum, parsed.pack_len, index)
            .await?;
        Ok(Some(NewPack {
            id: parsed.checksum,
            objects: parsed.entries.len() as u64,
            bytes: parsed.pack_len,
            lfs_pointers: parsed.scanner.take_lfs_pointers(),
            lfs_config,
        }))
    }

    /// Step 1 with retries: a pack that broke off (a transient source failure, or a response that ended early) is
    /// asked for again from the start, its partial upload discarded, as long as the source retry policy allows
    /// and the deadline leaves the time a mapping needs to start. Nothing of the run is published yet.
    async fn receive_retrying(
        &mut self,
        adv: &Advertisement,
        repo_url: &RepoEndpoint,
        plan: &Plan,
        budget: &Budget,
        lfs_head: Option<ObjectId>,
    ) -> Result<(Spool<Bytes>, ParsedPack), MirrorError> {
        let started = Instant::now();
        let mut failed = 0;
        loop {
            let error = match self.receive(adv, repo_url, plan, budget, lfs_head).await {
                Ok(received) => return Ok(received),
                Err(error) => error,
            };
            failed += 1;
            let policy = self.client.retry_policy();
            let delay = match &error {
                MirrorError::Source(cause) => policy.delay_after(cause, failed, started),
                MirrorError::Truncated | MirrorError::Protocol(ProtocolError::Truncated(_)) => {
                    policy.next_delay(failed, started, None)
                }
                _ => None,
            };
            let time_left = |delay| {
                self.options.deadline.is_none_or(|deadline| {
                    deadline.saturating_duration_since(Instant::now())
                        >= delay + self.options.min_time_to_start
                })
            };
            let Some(delay) = delay.filter(|&delay| time_left(delay)) else {
                return Err(error);
            };
            tracing::warn!(
                source = %self.report.source,
                attempt = failed,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                cause = %error,
                "the pack broke off; asking for it again from the start"
            );
            self.clean_up().await;
            tokio::time::sleep(delay).await;
        }
    }

    /// Step 1: asks the source for the pack and parses it (pass 1) while spooling its bytes. The returned spool
    /// holds the whole pack; a stored one is recorded in `temp_key`, so that it is deleted if the run stops.
    /// With `lfs_head`, the objects' scan follows the trail from that commit to its `.lfsconfig`.
    async fn receive(
        &mut self,
        adv: &Advertisement,
        repo_url: &RepoEndpoint,
        plan: &Plan,
        budget: &Budget,
        lfs_head: Option<ObjectId>,
    ) -> Result<(Spool<Bytes>, ParsedPack), MirrorError> {
        let request = upload_pack::build_fetch(adv, AGENT, &plan.wants, &plan.haves)?;
        let mut body = self
            .client
            .upload_pack(repo_url, Bytes::from(request))
            .await?;

        let mut decoder = ResponseDecoder::for_protocol(adv.protocol);
        let scanner = Scanner::collecting_links(budget.links);
        let scanner = match self.options.lfs.enabled {
            true => scanner.with_lfs_pointers(),
            false => scanner,
        };
        let scanner = match lfs_head {
            Some(head) => scanner.following_lfsconfig(head),
            None => scanner,
        };
        let options = self.options.clone();
        // Hashing and scanning the objects pass 1 holds whole happens on a thread of its own.
        let sink = HashWorker::start(scanner, budget.hand_over)
            .map_err(|e| MirrorError::ResolveTask(e.to_string()))?;
        let parser = PackParser::with_sink(Box::new(sink))
            .max_object_bytes(self.options.max_object_bytes)
            .resolve_early(EarlyResolution {
                cache_bytes: budget.early_cache(0),
                object_bytes: budget.early_object(),
                work_bytes: Box::new(move |received| options.max_work_bytes(received)),
            });
        // Pass 1 is CPU-bound (inflating every entry, resolving deltas early): it runs on a thread of its own,
        // so that the pack keeps arriving and being stored meanwhile. It stops at its next chunk if this future
        // is dropped (the channel closes).
        let (chunks, mut parse) = PassOne::start(parser, budget.clone());
        let mut spool = Spool::Memory(Vec::new());
        let mut ended = false;
        let mut received = 0;
        while let Some(chunk) = body.next_chunk().await? {
            decoder.push(&chunk);
            while let Some(event) = decoder.next_event()? {
                match event {
                    ResponseEvent::PackData(data) => {
                        let limit = self.options.max_pack_bytes;
                        received += data.len() as u64;
                        if received > limit {
                            return Err(MirrorError::PackTooLarge(limit));
                        }
                        let limit = budget.in_memory_limit(parse.entries());
                        self.spool(&mut spool, &data, limit).await?;
                        if chunks.send(data).await.is_err() {
                            // The parser stopped at an error, which ending it reports.
                            return Err(parse
                                .end(chunks)
                                .await
                                .err()
                                .unwrap_or(MirrorError::Truncated));
                        }
                        self.progress(Stage::Receiving { bytes: received });
                    }
                    ResponseEvent::End => ended = true,
                    ResponseEvent::Acknowledgement(_) | ResponseEvent::Progress(_) => {}
                }
            }
        }
        decoder.finish()?;
        if !ended {
            return Err(MirrorError::Truncated);
        }
        let held = match spool {
            Spool::Memory(bytes) => Spool::Memory(Bytes::from(bytes)),
            Spool::Store(key) => {
                // Recorded before completing: a deadline during the completion still deletes what it made.
                self.temp_key = Some(key.clone());
                Spool::Store(key)
            }
        };
        // The upload completes while pass 1 ends on its thread (a pack it then finds bad is deleted as any
        // temporary upload is).
        let upload = self.upload.take();
        let completed = async {
            match upload {
                Some(upload) => upload.complete(Precondition::None).await,
                None => Ok(()),
            }
        };
        let (parsed, completed) = tokio::join!(parse.end(chunks), completed);
        let parsed = parsed?;
        completed?;
        Ok((held, parsed))
    }

    /// Step 2: computes the ids of the pack's deltas (pass 2), scanning the objects they yield, and returns the
    /// `.idx` (and the `.lfsconfig` the scan's trail leads to, read from the pack where the trail stopped short).
    async fn resolve_and_index(
        &self,
        held: &Spool<Bytes>,
        parsed: &mut ParsedPack,
        budget: &Budget,
    ) -> Result<(Vec<u8>, Option<LfsConfig>), MirrorError> {
        let total = parsed.entries.len() as u64;
        self.progress(Stage::Resolving { done: 0, total });
        let source: Box<dyn PackReader> = match held {
            Spool::Memory(bytes) => Box::new(bytes.clone()),
            Spool::Store(key) => Box::new(StorePackReader::new(
                self.store.clone(),
                key.clone(),
                parsed.pack_len,
                budget.read_window,
                budget.read_streams,
            )),
        };
        // Resolution is CPU-bound: it runs on a blocking thread (its reads still go through this runtime), and
        // stops at its next read if this future is dropped (at the deadline).
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let source = Stoppable {
            inner: source,
            stopped: Arc::clone(&stop.0),
        };
        let mut entries = std::mem::take(&mut parsed.entries);
        // Hashing and scanning the objects rebuilt happens on a thread of its own.
        let mut sink = HashWorker::start(std::mem::take(&mut parsed.scanner), budget.hand_over)
            .map_err(|e| MirrorError::ResolveTask(e.to_string()))?;
        let limits = ResolveLimits {
            max_object_bytes: self.options.max_object_bytes,
            max_work_bytes: self.options.max_work_bytes(parsed.pack_len),
        };
        let progress = self.options.progress.clone();
        let (index, from, to) = (
            self.index,
            self.report.source.clone(),
            self.report.target.clone(),
        );
        let from_store = matches!(held, Spool::Store(_));
        let (cache_bytes, retain_bytes) = budget.resolve_shares();
        let big_object_bytes = budget.big_object;
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let report_progress = |done: u64, total: u64| {
                if let Some(p) = &progress {
                    let mapping = MappingId {
                        index,
                        source: &from,
                        target: &to,
                    };
                    p.update(mapping, Stage::Resolving { done, total });
                }
            };
            let resolve_options = ResolveOptions {
                cache_bytes,
                retain_bytes,
                big_object_bytes,
                progress: Some(&report_progress),
                limits,
            };
            // The resolver yields every MiB of work; at each yield the flag is looked at, so that a run dropped
            // at the deadline stops its resolution there even when no read comes (a pack in memory, a bomb).
            let stopped = Arc::clone(&source.stopped);
            let result = runtime.block_on(async {
                let resolve =
                    resolve::resolve_with_sink(&mut entries, &source, &resolve_options, &mut sink);
                let stop = std::future::poll_fn(|_| match stopped.load(Ordering::Relaxed) {
                    true => std::task::Poll::Ready(()),
                    false => std::task::Poll::Pending,
                });
                tokio::select! {
                    biased;
                    () = stop => Err(resolve::ResolveError::Read {
                        offset: 0,
                        len: 0,
                        source: "the run stopped".into(),
                    }),
                    result = resolve => result,
                }
            });
            let result = result.and_then(|stats| Ok((stats, Box::new(sink).finish()?)));
            (entries, source, result)
        });
        let (entries, source, result) = joined(task.await)?;
        parsed.entries = entries;
        // A failed read of a spooled pack is the store's failure, not a fault of the source's pack.
        let (stats, scanner) = result.map_err(|error| match error {
            error @ resolve::ResolveError::Read { .. } if from_store => {
                MirrorError::ReadBack(error)
            }
            resolve::ResolveError::Hashing(why) => MirrorError::ResolveTask(why),
            error => MirrorError::Resolve(error),
        })?;
        parsed.scanner = scanner;
        tracing::debug!(
            resolved_early = parsed.resolved_early,
            deltas = stats.deltas,
            cache_hits = stats.cache_hits,
            cache_misses = stats.cache_misses,
            rebuilt = stats.rebuilt,
            retained_reads = stats.retained_reads,
            passes = stats.passes,
            postponed = stats.postponed,
            peak_waiting = stats.peak_waiting,
            peak_retained_bytes = stats.peak_retained_bytes,
            reads = stats.reads,
            bytes_read = stats.bytes_read,
            streamed = stats.streamed,
            "deltas resolved"
        );
        let lfs_config = match parsed.scanner.lfsconfig_trail() {
            Some(trail) => find_lfsconfig(&parsed.entries, &source, trail).await?,
            None => None,
        };
        drop(source);
        self.progress(Stage::Resolving { done: total, total });
        let idx = idx::write_idx_v2(&parsed.entries, &parsed.checksum)?;
        Ok((idx, lfs_config))
    }

    /// Step 4: stores the pack under its final name, then its `.idx` (publication steps 1 and 2), and deletes
    /// the temporary upload.
    async fn store_pack(
        &mut self,
        held: Spool<Bytes>,
        id: &ObjectId,
        pack_len: u64,
        index: Vec<u8>,
    ) -> Result<(), MirrorError> {
        let pack_key = layout::pack_key(id);
        let store = self.store.as_ref();
        match held {
            Spool::Memory(bytes) => {
                let len = bytes.len() as u64;
                create_named(store, &pack_key, len, |pre| {
                    store.put(&pack_key, bytes.clone(), pre)
                })
                .await?
            }
            Spool::Store(temp_key) => {
                create_named(store, &pack_key, pack_len, |pre| {
                    store.copy(&temp_key, &pack_key, pack_len, pre)
                })
                .await?;
                self.store.delete(&temp_key).await?;
                self.temp_key = None;
            }
        }
        let idx_key = layout::idx_key(id);
        let index = Bytes::from(index);
        create_named(store, &idx_key, index.len() as u64, |pre| {
            store.put(&idx_key, index.clone(), pre)
        })
        .await?;
        Ok(())
    }

    /// Keeps pack bytes in memory while the pack fits `limit`; past it, starts a multipart upload under a
    /// temporary name with what was held and streams into it from then on.
    async fn spool(
        &mut self,
        spool: &mut Spool<Vec<u8>>,
        data: &[u8],
        limit: u64,
    ) -> Result<(), MirrorError> {
        if let Spool::Memory(held) = spool {
            if held.len() as u64 + data.len() as u64 <= limit {
                held.extend_from_slice(data);
                return Ok(());
            }
            let key = format!("{}{}.pack", layout::INCOMING_PREFIX, run_id());
            self.upload_keys.push(key.clone());
            let part_size = store::part_size_for(self.options.memory_budget);
            self.upload = Some(self.store.create_upload(&key, part_size).await?);
            if let Spool::Memory(held) = std::mem::replace(spool, Spool::Store(key)) {
                self.write_upload(&held).await?;
            }
        }
        self.write_upload(data).await
    }

    async fn write_upload(&mut self, data: &[u8]) -> Result<(), MirrorError> {
        if let Some(upload) = self.upload.as_mut() {
            upload.write(data).await?;
        }
        Ok(())
    }
}

/// Chunks of pack data queued for pass 1 at most: pkt-lines carry at most 65,516 bytes of data each, so about
/// 4 MiB are in flight.
const PASS_ONE_QUEUE: usize = 64;

/// Pass 1 running on a blocking thread, fed through a bounded channel.
struct PassOne {
    task: tokio::task::JoinHandle<Result<ParsedPack, PackError>>,
    /// Entries read so far.
    entries: Arc<AtomicUsize>,
}

impl PassOne {
    /// Starts `parser` on a blocking thread; returns where to send it the pack's bytes. The entries the header
    /// declares get their room at once (as many as `budget` holds), and as they are read, the parser's early cache
    /// shrinks to what `budget` leaves for it. Once the pack is parsed, the thread also trims what the run holds
    /// from then on (see [`connectivity::forget_links_in_pack`]).
    fn start(mut parser: PackParser, budget: Budget) -> (tokio::sync::mpsc::Sender<Bytes>, Self) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(PASS_ONE_QUEUE);
        let entries = Arc::new(AtomicUsize::new(0));
        let read = Arc::clone(&entries);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(data) = rx.blocking_recv() {
                parser.feed(&data)?;
                parser.reserve_entries(budget.most_entries());
                let count = parser.entries().len();
                read.store(count, Ordering::Relaxed);
                parser.limit_early_cache(budget.early_cache(count));
            }
            let mut parsed = parser.finish()?;
            // Still on this thread, while the pack's upload completes: the entry list's room not filled (a header
            // that declared more, or the spare capacity of growth past the budget's reserve) is released, and the
            // links to the pack's own objects are forgotten.
            parsed.entries.shrink_to_fit();
            connectivity::forget_links_in_pack(&mut parsed.scanner, &parsed.entries);
            Ok(parsed)
        });
        (tx, PassOne { task, entries })
    }

    /// Entries read so far.
    fn entries(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Ends the input (closing `chunks`) and returns what pass 1 found.
    async fn end(
        &mut self,
        chunks: tokio::sync::mpsc::Sender<Bytes>,
    ) -> Result<ParsedPack, MirrorError> {
        drop(chunks);
        joined((&mut self.task).await)?.map_err(|error| match error {
            PackError::Hashing(why) => MirrorError::ResolveTask(why),
            error => MirrorError::Pack(error),
        })
    }
}

/// What a blocking thread of the run returned; its panic goes on in the caller.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, MirrorError> {
    result.map_err(|e| match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(e) => MirrorError::ResolveTask(e.to_string()),
    })
}

/// Sets its flag when dropped: the resolution it guards is no longer awaited.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A pack source whose reads fail once `stopped` is set, so that a resolution nobody awaits any more (its run was
/// dropped at the deadline) stops at its next read instead of running on.
struct Stoppable {
    inner: Box<dyn PackReader>,
    stopped: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PackReader for Stoppable {
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, resolve::ReadError> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err("the run stopped".into());
        }
        self.inner.read_at(offset, len).await
    }

    fn advise_scan(&self, offset: u64) {
        self.inner.advise_scan(offset);
    }
}

/// A name for this run's temporary upload, unique across concurrent runs and processes.
fn run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{nanos:x}-{:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

mod budget;
mod hash_worker;

#[cfg(test)]
mod tests;
