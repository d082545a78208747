//! Mirroring one mapping end to end, and many mappings concurrently.
//!
//! A run reads the source's advertisement and the mirror's published state; if they agree it stops (a no-op costs
//! three requests). Otherwise it asks the source for one self-contained pack (only the new objects when the mirror
//! already has refs, everything on the first run or when compacting), holds it in memory if it fits the budget or
//! else streams it into a multipart upload while the sans-IO parser indexes it, resolves deltas within the memory
//! budget, writes the `.idx`, and publishes in the
//! order that keeps every reader consistent: pack, index, pack list, `packed-refs`, `info/refs`, `HEAD`. Anything
//! that fails before the pack list is written leaves the previous mirror exactly as it was and aborts the upload.

pub mod gc;

use crate::git::idx;
use crate::git::layout::{self, Head, Ref};
use crate::git::oid::ObjectId;
use crate::git::pack::PackParser;
use crate::git::resolve::{self, PackReader, ResolveOptions};
use crate::git::upload_pack::{self, Advertisement, ResponseDecoder, ResponseEvent};
use crate::options::{Mapping, MirrorOptions};
use crate::progress::Stage;
use crate::report::{RepoReport, RunKind};
use crate::store::{self, Object, Precondition, Store, StoreError, Upload};
use crate::upstream::{self, UpstreamClient, UpstreamOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use url::Url;

/// The agent string sent to sources.
pub const AGENT: &str = concat!("mirror-git-to-s3/", env!("CARGO_PKG_VERSION"));

/// How often a conditional write is retried after losing a race before the run gives up.
const MAX_CONFLICT_RETRIES: usize = 8;

/// Why one mapping failed.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The source URL is not an http(s) URL.
    #[error("invalid source URL {0:?}: expected http:// or https://")]
    SourceUrl(String),
    /// Talking to the source failed.
    #[error(transparent)]
    Source(#[from] upstream::UpstreamError),
    /// The source spoke the protocol wrongly, or reported an error.
    #[error(transparent)]
    Protocol(#[from] upload_pack::ProtocolError),
    /// The pack was malformed.
    #[error("invalid pack from source: {0}")]
    Pack(#[from] crate::git::pack::PackError),
    /// Delta resolution failed.
    #[error("invalid pack from source: {0}")]
    Resolve(#[from] resolve::ResolveError),
    /// Writing the index failed.
    #[error("cannot index pack: {0}")]
    Index(#[from] idx::IdxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mirror's published files are not what this tool writes.
    #[error("the mirror's published state is damaged: {0} (delete the prefix to start over)")]
    Layout(#[from] layout::LayoutError),
    /// The pack lacks an object a ref needs.
    #[error("the source's pack does not contain {0}, which a ref points at")]
    MissingObject(ObjectId),
    /// Other runs kept winning the race to publish.
    #[error("gave up publishing {0} after {MAX_CONFLICT_RETRIES} conflicting concurrent updates")]
    Contention(&'static str),
    /// The run's deadline passed.
    #[error("stopped at the deadline; the previous mirror is unchanged")]
    Deadline,
    /// The source's response ended before the pack was complete.
    #[error("the source's response ended before the pack was complete")]
    Truncated,
}

/// Mirrors every mapping, at most `options.concurrency` at once, and reports on each in the order given.
/// A failing mapping never stops the others; its report carries the error.
pub async fn mirror_repos(mappings: &[Mapping], options: &MirrorOptions) -> Vec<RepoReport> {
    let client = UpstreamClient::new(UpstreamOptions {
        connect_timeout: options.connect_timeout,
        idle_timeout: options.idle_timeout,
        token: options.token.clone(),
        ..UpstreamOptions::default()
    });
    // The (not yet started) futures are collected first: a closure inside the stream's type would make the
    // returned future fail to be `Send` (a known limit of the compiler with higher-ranked closure lifetimes).
    let runs: Vec<_> = mappings
        .iter()
        .map(|m| mirror_mapping(&client, m, options))
        .collect();
    futures_util::stream::iter(runs)
        .buffered(options.concurrency.max(1))
        .collect()
        .await
}

async fn mirror_mapping(
    client: &Result<UpstreamClient, upstream::UpstreamError>,
    mapping: &Mapping,
    options: &MirrorOptions,
) -> RepoReport {
    match client {
        Ok(c) => mirror_repo(c, mapping, options).await,
        Err(e) => failed_report(mapping, Instant::now(), e.to_string()),
    }
}

/// A report of a mapping that has done nothing yet.
fn new_report(mapping: &Mapping) -> RepoReport {
    RepoReport {
        source: upstream::redact_str(&mapping.source),
        target: mapping.target.clone(),
        kind: RunKind::NotStarted,
        refs: 0,
        objects: 0,
        pack_bytes: 0,
        store_requests: 0,
        packs_deleted: 0,
        duration_ms: 0,
        error: None,
    }
}

fn failed_report(mapping: &Mapping, started: Instant, error: String) -> RepoReport {
    RepoReport {
        duration_ms: started.elapsed().as_millis() as u64,
        error: Some(error),
        ..new_report(mapping)
    }
}

/// Mirrors one mapping with an existing source client.
pub async fn mirror_repo(
    client: &UpstreamClient,
    mapping: &Mapping,
    options: &MirrorOptions,
) -> RepoReport {
    let started = Instant::now();
    if let Some(deadline) = options.deadline {
        if deadline.saturating_duration_since(started) < options.min_time_to_start {
            return failed_report(
                mapping,
                started,
                "not started: too little time left before the deadline".into(),
            );
        }
    }
    let store = match store::open(&mapping.target, &options.s3).await {
        Ok(s) => s,
        Err(e) => return failed_report(mapping, started, e.to_string()),
    };
    let mut run = Run {
        client,
        options,
        store,
        upload: None,
        temp_key: None,
        report: new_report(mapping),
    };
    let result = match options.deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), run.execute(&mapping.source))
            .await
            .unwrap_or(Err(MirrorError::Deadline)),
        None => run.execute(&mapping.source).await,
    };
    run.clean_up().await;
    let mut report = run.report;
    if let Err(e) = result {
        report.error = Some(e.to_string());
    }
    report.store_requests = run.store.requests();
    report.duration_ms = started.elapsed().as_millis() as u64;
    match &report.error {
        Some(e) => {
            tracing::error!(source = %report.source, target = %report.target, error = %e, "mirror failed")
        }
        // `path` is the deprecated former name of `kind`, kept for log filters as in the JSON report.
        None => tracing::info!(
            source = %report.source, target = %report.target, kind = %report.kind, path = %report.kind,
            refs = report.refs, objects = report.objects, pack_bytes = report.pack_bytes,
            store_requests = report.store_requests, duration_ms = report.duration_ms, "mirrored"
        ),
    }
    report
}

/// The refs and HEAD the mirror should publish.
struct Desired {
    refs: Vec<Ref>,
    head: Head,
    info_refs: Vec<u8>,
    head_file: Vec<u8>,
}

fn desired_state(adv: &Advertisement, options: &MirrorOptions) -> Desired {
    let mut refs: Vec<Ref> = adv
        .refs
        .iter()
        .filter(|r| options.wants_ref(&r.name))
        .map(|r| Ref {
            name: r.name.clone(),
            oid: r.oid,
            peeled: r.peeled,
        })
        .collect();
    layout::sort_refs(&mut refs);
    let head = choose_head(adv, &refs);
    Desired {
        info_refs: layout::render_info_refs(&refs),
        head_file: layout::render_head(&head),
        refs,
        head,
    }
}

/// HEAD names the source's default branch when it is mirrored; otherwise a mirrored branch at HEAD's commit, then
/// `main`, `master` or the first branch, so that a clone checks something out.
fn choose_head(adv: &Advertisement, refs: &[Ref]) -> Head {
    let branches = || refs.iter().filter(|r| r.name.starts_with("refs/heads/"));
    if let Some(sym) = &adv.head_symref {
        if branches().any(|r| &r.name == sym) || refs.is_empty() {
            return Head::Symbolic(sym.clone());
        }
    }
    if let Some(oid) = adv.head {
        if let Some(r) = branches().find(|r| r.oid == oid) {
            return Head::Symbolic(r.name.clone());
        }
    }
    ["refs/heads/main", "refs/heads/master"]
        .iter()
        .find(|n| branches().any(|r| r.name == **n))
        .map(|n| Head::Symbolic((*n).to_owned()))
        .or_else(|| branches().next().map(|r| Head::Symbolic(r.name.clone())))
        .or_else(|| adv.head.map(Head::Detached))
        .unwrap_or_else(|| Head::Symbolic("refs/heads/main".to_owned()))
}

/// Where a pack is until it gets its final name; `M` is its in-memory form (a growing `Vec` while it arrives,
/// frozen `Bytes` once complete).
enum Spool<M> {
    /// In memory (it fits the budget's share for whole packs): stored under its final name with one PUT.
    Memory(M),
    /// Streamed into a multipart upload under this temporary key: copied to its final name.
    Store(String),
}

/// A pack received, indexed and stored under its final name.
struct NewPack {
    id: ObjectId,
    objects: u64,
    bytes: u64,
}

struct Run<'a> {
    client: &'a UpstreamClient,
    options: &'a MirrorOptions,
    store: Arc<dyn Store>,
    /// The multipart upload in progress, aborted if the run stops before completing it.
    upload: Option<Box<dyn Upload>>,
    /// The completed but unpublished pack upload, deleted if the run stops before renaming it.
    temp_key: Option<String>,
    report: RepoReport,
}

impl Run<'_> {
    fn progress(&self, stage: Stage) {
        if let Some(p) = &self.options.progress {
            p.update(&self.report.source, stage);
        }
    }

    async fn execute(&mut self, source_url: &str) -> Result<(), MirrorError> {
        let url = parse_source_url(source_url)?;
        self.progress(Stage::Negotiating);
        let (repo_url, adv_body) = self.client.advertisement(&url).await?;
        let adv = upload_pack::parse_advertisement(&adv_body)?;
        let desired = desired_state(&adv, self.options);
        self.report.refs = desired.refs.len();

        let (info_refs, head) = tokio::try_join!(
            self.store.get(layout::INFO_REFS),
            self.store.get(layout::HEAD)
        )?;
        let same = |o: &Option<Object>, want: &[u8]| o.as_ref().is_some_and(|o| o.body == want);
        if same(&info_refs, &desired.info_refs) && same(&head, &desired.head_file) {
            self.report.kind = RunKind::NoOp;
            return Ok(());
        }

        let packs_obj = self.store.get(layout::PACKS).await?;
        let current_packs = match &packs_obj {
            Some(o) => layout::parse_packs(&o.body)?,
            None => Vec::new(),
        };
        let current_refs = match &info_refs {
            Some(o) if packs_obj.is_some() => match layout::parse_info_refs(&o.body) {
                Ok(refs) => Some(refs),
                Err(e) => {
                    tracing::warn!(source = %self.report.source, error = %e, "ignoring the mirror's info/refs: full fetch");
                    None
                }
            },
            _ => None,
        };
        let compaction = current_refs.is_some()
            && current_packs.len() >= self.options.compaction_threshold.max(1);
        let haves: Vec<ObjectId> = match (&current_refs, compaction) {
            (Some(refs), false) => unique(refs.iter().map(|r| r.oid)),
            _ => Vec::new(),
        };
        let have_set: HashSet<ObjectId> = haves.iter().copied().collect();
        let wants: Vec<ObjectId> = unique(
            desired
                .refs
                .iter()
                .map(|r| r.oid)
                .filter(|o| !have_set.contains(o)),
        );
        self.report.kind = match (&current_refs, compaction, wants.is_empty()) {
            (None, _, _) => RunKind::Full,
            (Some(_), true, _) => RunKind::Compaction,
            (Some(_), false, true) => RunKind::RefsOnly,
            (Some(_), false, false) => RunKind::Incremental,
        };

        let new_pack = if wants.is_empty() {
            None
        } else {
            self.fetch_pack(&adv, &repo_url, &wants, &haves).await?
        };
        if new_pack.is_none() && self.report.kind == RunKind::Incremental {
            // New refs at objects the mirror already had (e.g. a tag on an old commit).
            self.report.kind = RunKind::RefsOnly;
        }

        self.progress(Stage::Publishing);
        let listed = self
            .publish_pack_list(
                packs_obj,
                &current_packs,
                new_pack.as_ref().map(|p| p.id),
                compaction,
            )
            .await?;
        self.publish_refs(&desired, info_refs, head).await?;
        // The refs just published need the new pack and, unless this run compacted, the packs it started from
        // (they hold everything its haves reach).
        let mut needed: Vec<ObjectId> = new_pack.as_ref().map(|p| p.id).into_iter().collect();
        if !compaction {
            needed.extend(&current_packs);
        }
        self.ensure_listed(&needed).await?;
        if let Some(p) = &new_pack {
            self.report.objects = p.objects;
            self.report.pack_bytes = p.bytes;
        }
        let now = (self.options.clock)();
        self.report.packs_deleted =
            gc::collect(self.store.as_ref(), &listed, now, self.options.gc_grace).await?;
        Ok(())
    }

    /// Receives, indexes and stores one pack; `None` when the source had nothing new to send.
    async fn fetch_pack(
        &mut self,
        adv: &Advertisement,
        repo_url: &upstream::RepoEndpoint,
        wants: &[ObjectId],
        haves: &[ObjectId],
    ) -> Result<Option<NewPack>, MirrorError> {
        let caps = upload_pack::choose_capabilities(adv, AGENT)?;
        let request = upload_pack::build_upload_request(wants, haves, &caps)?;
        let mut body = self
            .client
            .upload_pack(repo_url, Bytes::from(request))
            .await?;

        let budget = Budget::new(self.options.memory_budget);
        let mut decoder = ResponseDecoder::new();
        let mut parser = PackParser::new();
        let mut spool = Spool::Memory(Vec::new());
        let mut ended = false;
        while let Some(chunk) = body.next_chunk().await? {
            decoder.push(&chunk);
            while let Some(event) = decoder.next_event()? {
                match event {
                    ResponseEvent::PackData(data) => {
                        parser.feed(&data)?;
                        self.spool(&mut spool, &data, budget.in_memory_pack).await?;
                        self.progress(Stage::Receiving {
                            bytes: parser.bytes_consumed(),
                        });
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
        let mut parsed = parser.finish()?;
        if let Some(upload) = self.upload.take() {
            upload.complete(Precondition::None).await?;
        }
        let held = match spool {
            Spool::Memory(bytes) => Spool::Memory(Bytes::from(bytes)),
            Spool::Store(key) => {
                self.temp_key = Some(key.clone());
                Spool::Store(key)
            }
        };
        if parsed.entries.is_empty() {
            return Ok(None);
        }

        let total = parsed.entries.len() as u64;
        self.progress(Stage::Resolving { done: 0, total });
        let source: Box<dyn PackReader> = match &held {
            Spool::Memory(bytes) => Box::new(bytes.clone()),
            Spool::Store(key) => Box::new(StorePackReader::new(
                self.store.clone(),
                key.clone(),
                parsed.pack_len,
                &budget,
            )),
        };
        let report_progress =
            |done: u64, total: u64| self.progress(Stage::Resolving { done, total });
        let resolve_options = ResolveOptions {
            cache_bytes: budget.object_cache,
            big_object_bytes: budget.big_object,
            progress: Some(&report_progress),
        };
        resolve::resolve_deltas(&mut parsed.entries, source.as_ref(), &resolve_options).await?;
        drop(source);
        self.progress(Stage::Resolving { done: total, total });

        if haves.is_empty() {
            let present: HashSet<ObjectId> = parsed.entries.iter().filter_map(|e| e.oid).collect();
            if let Some(missing) = wants.iter().find(|w| !present.contains(w)) {
                return Err(MirrorError::MissingObject(*missing));
            }
        }
        let index = idx::write_idx_v2(&parsed.entries, &parsed.checksum)?;
        let id = parsed.checksum;
        let pack_key = layout::pack_key(&id);
        match held {
            Spool::Memory(bytes) => ignore_existing(
                self.store
                    .put(&pack_key, bytes, Precondition::IfNoneMatch)
                    .await,
            )?,
            Spool::Store(temp_key) => {
                ignore_existing(
                    self.store
                        .copy(&temp_key, &pack_key, Precondition::IfNoneMatch)
                        .await,
                )?;
                self.store.delete(&temp_key).await?;
                self.temp_key = None;
            }
        }
        ignore_existing(
            self.store
                .put(
                    &layout::idx_key(&id),
                    Bytes::from(index),
                    Precondition::IfNoneMatch,
                )
                .await,
        )?;
        Ok(Some(NewPack {
            id,
            objects: total,
            bytes: parsed.pack_len,
        }))
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
            self.upload = Some(self.store.create_upload(&key).await?);
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

    /// Adds the new pack to `objects/info/packs` (or, when compacting, replaces the packs this run started from),
    /// retrying on top of concurrent writers. Returns the list as published.
    ///
    /// A run that does not compact also keeps the packs it started from: its refs rely on the objects its haves
    /// reach, so if a concurrent compaction unlisted some of those packs (which survive the GC grace period),
    /// they are listed again rather than leaving this run's refs pointing at unlisted objects.
    async fn publish_pack_list(
        &self,
        packs_obj: Option<Object>,
        started_with: &[ObjectId],
        new_pack: Option<ObjectId>,
        compaction: bool,
    ) -> Result<Vec<ObjectId>, MirrorError> {
        let mut published = started_with.to_vec();
        update_object(
            self.store.as_ref(),
            layout::PACKS,
            packs_obj,
            "the pack list",
            |current| {
                let current = match current {
                    Some(body) => layout::parse_packs(body)?,
                    None => Vec::new(),
                };
                let mut list: Vec<ObjectId> = new_pack.into_iter().collect();
                let keep = current
                    .iter()
                    .filter(|p| !compaction || !started_with.contains(p));
                list.extend(keep.filter(|p| Some(**p) != new_pack));
                if !compaction {
                    for p in started_with {
                        if !list.contains(p) {
                            list.push(*p);
                        }
                    }
                }
                published = list.clone();
                Ok(layout::render_packs(&list))
            },
        )
        .await?;
        Ok(published)
    }

    /// Publishes `packed-refs`, `refs/.keep`, `info/refs` and `HEAD`, in that order.
    async fn publish_refs(
        &self,
        desired: &Desired,
        info_refs: Option<Object>,
        head: Option<Object>,
    ) -> Result<(), MirrorError> {
        let store = self.store.as_ref();
        let packed = layout::render_packed_refs(&desired.refs);
        let packed_obj = store.get(layout::PACKED_REFS).await?;
        update_object(
            store,
            layout::PACKED_REFS,
            packed_obj,
            "packed-refs",
            |_| Ok(packed.clone()),
        )
        .await?;
        if matches!(self.report.kind, RunKind::Full | RunKind::Compaction) {
            ignore_existing(
                store
                    .put(layout::REFS_KEEP, Bytes::new(), Precondition::IfNoneMatch)
                    .await,
            )?;
        }
        update_object(store, layout::INFO_REFS, info_refs, "info/refs", |_| {
            Ok(desired.info_refs.clone())
        })
        .await?;
        update_object(store, layout::HEAD, head, "HEAD", |_| {
            Ok(desired.head_file.clone())
        })
        .await?;
        tracing::debug!(source = %self.report.source, head = ?desired.head, "refs published");
        Ok(())
    }

    /// Re-reads the pack list after publishing refs and lists again any of the `needed` packs that a concurrent
    /// writer dropped meanwhile: a compaction that overtook this run, or a lost update on a store that ignores
    /// conditional headers. Either would leave the refs just published pointing at unlisted objects.
    async fn ensure_listed(&self, needed: &[ObjectId]) -> Result<(), MirrorError> {
        if needed.is_empty() {
            return Ok(());
        }
        let current = self.store.get(layout::PACKS).await?;
        let listed = match &current {
            Some(o) => layout::parse_packs(&o.body)?,
            None => Vec::new(),
        };
        let missing: Vec<ObjectId> = needed
            .iter()
            .filter(|p| !listed.contains(p))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::warn!(source = %self.report.source, packs = ?missing, "a concurrent run unlisted packs this run's refs need: re-adding");
        update_object(
            self.store.as_ref(),
            layout::PACKS,
            current,
            "the pack list",
            |body| {
                let mut list = match body {
                    Some(b) => layout::parse_packs(b)?,
                    None => Vec::new(),
                };
                for p in &missing {
                    if !list.contains(p) {
                        list.push(*p);
                    }
                }
                Ok(layout::render_packs(&list))
            },
        )
        .await
    }

    /// Aborts an unfinished upload and deletes an unpublished temporary pack.
    async fn clean_up(&mut self) {
        if let Some(upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(source = %self.report.source, error = %e, "could not abort the pack upload");
            }
        }
        if let Some(key) = self.temp_key.take() {
            if let Err(e) = self.store.delete(&key).await {
                tracing::warn!(source = %self.report.source, error = %e, "could not delete the temporary pack");
            }
        }
    }
}

/// Writes `key` with the content `render` makes from its current content, conditionally on that content being
/// unchanged ([`replace_if_unchanged`]); on a lost race it re-reads and re-renders.
async fn update_object(
    store: &dyn Store,
    key: &str,
    mut current: Option<Object>,
    what: &'static str,
    mut render: impl FnMut(Option<&Bytes>) -> Result<Vec<u8>, MirrorError>,
) -> Result<(), MirrorError> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let body = render(current.as_ref().map(|o| &o.body))?;
        if current.as_ref().is_some_and(|o| o.body == body) {
            return Ok(());
        }
        if replace_if_unchanged(store, key, current.as_ref(), Bytes::from(body)).await? {
            return Ok(());
        }
        tracing::info!(key, "lost a race with a concurrent run: re-reading");
        current = store.get(key).await?;
    }
    Err(MirrorError::Contention(what))
}

/// The compare-and-swap write: puts `body` at `key` if the key still holds `current` (the object as read, or its
/// absence). `Ok(false)` when a concurrent writer changed the key first (a precondition failure, or S3's 409).
pub(crate) async fn replace_if_unchanged(
    store: &dyn Store,
    key: &str,
    current: Option<&Object>,
    body: Bytes,
) -> Result<bool, StoreError> {
    match store.put(key, body, Precondition::replacing(current)).await {
        Ok(_) => Ok(true),
        Err(StoreError::PreconditionFailed { .. } | StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Treats "already exists" as success: pack files are named by their content, so an existing one is identical.
fn ignore_existing<T>(result: Result<T, StoreError>) -> Result<(), StoreError> {
    match result {
        Ok(_) | Err(StoreError::PreconditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn unique(ids: impl Iterator<Item = ObjectId>) -> Vec<ObjectId> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

fn parse_source_url(text: &str) -> Result<Url, MirrorError> {
    Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| MirrorError::SourceUrl(upstream::redact_str(text)))
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

/// How one repository's memory budget is shared out.
struct Budget {
    /// A pack up to this size is kept in memory for delta resolution instead of being read back.
    in_memory_pack: u64,
    /// Inflated objects cached during delta resolution.
    object_cache: u64,
    /// Objects larger than this are streamed, never held whole.
    big_object: u64,
    /// Size of the chunks read back from the store, and how many are cached (about `rest / 8` in all).
    read_chunk: u64,
    read_chunks: usize,
}

impl Budget {
    /// The least left for pack processing once the upload buffers are taken, even from a smaller budget.
    const MIN_REST: u64 = 8 << 20;

    fn new(total: u64) -> Self {
        // The store's upload buffers come off the top.
        let rest = total
            .saturating_sub(store::UPLOAD_BUFFER_BYTES)
            .max(Self::MIN_REST);
        Budget {
            in_memory_pack: rest / 4,
            object_cache: rest / 4,
            big_object: (rest / 8).max(1 << 20),
            // Streamed big objects read at 2-4 interleaved positions per level: keep 8 chunks.
            read_chunk: (rest / 64).clamp(256 << 10, 8 << 20),
            read_chunks: 8,
        }
    }
}

/// Reads a stored pack back for delta resolution: aligned chunks fetched with ranged GETs, a few kept in an LRU,
/// so a scan in pack order costs one request per chunk.
struct StorePackReader {
    store: Arc<dyn Store>,
    key: String,
    len: u64,
    chunk: u64,
    capacity: usize,
    cache: Mutex<Vec<(u64, Bytes)>>,
}

impl StorePackReader {
    fn new(store: Arc<dyn Store>, key: String, len: u64, budget: &Budget) -> Self {
        StorePackReader {
            store,
            key,
            len,
            chunk: budget.read_chunk,
            capacity: budget.read_chunks,
            cache: Mutex::new(Vec::new()),
        }
    }

    async fn chunk(&self, index: u64) -> Result<Bytes, StoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(pos) = cache.iter().position(|(i, _)| *i == index) {
                let hit = cache.remove(pos);
                let data = hit.1.clone();
                cache.push(hit);
                return Ok(data);
            }
        }
        let start = index * self.chunk;
        let len = self.chunk.min(self.len.saturating_sub(start));
        let data = self.store.get_range(&self.key, start, len).await?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.capacity {
                cache.remove(0);
            }
            cache.push((index, data.clone()));
        }
        Ok(data)
    }
}

#[async_trait::async_trait]
impl PackReader for StorePackReader {
    async fn read_at(
        &self,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        if len > self.chunk {
            return Ok(self.store.get_range(&self.key, offset, len).await?);
        }
        let first = offset / self.chunk;
        let start = (offset % self.chunk) as usize;
        let head = self.chunk(first).await?;
        let end = start + len as usize;
        if end <= head.len() {
            return Ok(head.slice(start..end));
        }
        let tail = self.chunk(first + 1).await?;
        let mut out = Vec::with_capacity(len as usize);
        out.extend_from_slice(head.get(start..).unwrap_or_default());
        let need = end - head.len().max(start);
        let Some(rest) = tail.get(..need) else {
            return Err(
                format!("pack {} is shorter than offset {}", self.key, offset + len).into(),
            );
        };
        out.extend_from_slice(rest);
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests;
