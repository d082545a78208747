//! Mirroring one mapping end to end, and many mappings concurrently.
//!
//! A run reads the source's advertisement and the mirror's published state; if they agree it stops (a no-op costs
//! three requests). Otherwise it asks the source for one self-contained pack (only the new objects when the mirror
//! already has refs, everything on the first run or when compacting), holds it in memory if it fits the budget or
//! else streams it into a multipart upload while the sans-IO parser indexes it, resolves deltas within the memory
//! budget, writes the `.idx`, and publishes in the order that keeps every reader consistent: pack, index, pack
//! list, `packed-refs`, `info/refs`, `HEAD`. Anything that fails before the pack list is written leaves the
//! previous mirror exactly as it was and aborts the upload.
//!
//! This file holds the public API, the reports and the run's outline (`Run::execute`); each step has a file:
//!
//! | step | file |
//! |---|---|
//! | the source's refs: advertisement, or protocol v2 `ls-refs` with ref prefixes | `discover.rs` |
//! | what to publish, and the no-op / full / incremental / refs-only / compaction decision (pure) | `plan.rs` |
//! | receive → resolve and index → store one pack; the memory budget | `fetch.rs` |
//! | every object the refs reach is in the new pack or a listed one, before anything is published | `connectivity.rs` |
//! | the publication protocol: order, conditional writes, the re-check | `publish.rs` |
//! | reading a stored pack back as a few streamed GETs | `read_back.rs` |
//! | deleting unlisted packs after a grace period | `gc.rs` |
//! | the LFS objects the new pack's pointers name, stored before the refs | `lfs.rs` |

mod connectivity;
mod discover;
mod fetch;
pub mod gc;
pub mod lfs;
mod plan;
mod publish;
mod read_back;

use crate::git::oid::ObjectId;
use crate::git::upload_pack;
use crate::git::{idx, layout, resolve};
use crate::options::{Mapping, MirrorOptions};
use crate::progress::{MappingId, Stage};
use crate::report::{RepoReport, RunKind};
use crate::store::{self, Object, Store, StoreError, Upload};
use crate::upstream::{self, UpstreamClient, UpstreamOptions};
use futures_util::StreamExt;
use plan::Published;
use publish::{StartedFrom, MAX_CONFLICT_RETRIES};
use std::sync::Arc;
use std::time::Instant;
use url::Url;

/// The agent string sent to sources.
pub const AGENT: &str = concat!("mirror-git-to-s3/", env!("CARGO_PKG_VERSION"));

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
    /// Reading the received pack back from the store, to resolve its deltas, failed.
    #[error("reading the received pack back from the store: {0}")]
    ReadBack(resolve::ResolveError),
    /// Writing the index failed.
    #[error("cannot index pack: {0}")]
    Index(#[from] idx::IdxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mirror's published files are not what this tool writes.
    #[error("the mirror's published state is damaged: {0} (delete the prefix to start over)")]
    Layout(#[from] layout::LayoutError),
    /// An object the refs to publish reach is in neither the source's pack nor a pack the mirror lists.
    #[error("refusing an incomplete answer from the source: {0}; nothing was published")]
    Incomplete(connectivity::Missing),
    /// An index the connectivity check searches cannot be read as one.
    #[error("cannot search the index of {index}: {problem}")]
    DamagedIndex {
        /// The index's key, or which pack it indexes.
        index: String,
        /// What is wrong with it.
        problem: crate::git::idx::lookup::LookupError,
    },
    /// Other runs kept winning the race to publish.
    #[error("gave up publishing {0} after {MAX_CONFLICT_RETRIES} conflicting concurrent updates")]
    Contention(&'static str),
    /// The run's deadline passed.
    #[error("stopped at the deadline; the previous mirror is unchanged")]
    Deadline,
    /// The source's response ended before the pack was complete.
    #[error("the source's response ended before the pack was complete")]
    Truncated,
    /// The LFS objects of the new pack could not be mirrored; the refs were not published.
    #[error(transparent)]
    Lfs(#[from] lfs::LfsError),
    /// The source sent a pack larger than [`MirrorOptions::max_pack_bytes`].
    #[error("the source's pack is larger than the limit of {0} bytes (max_pack_mib); nothing was published")]
    PackTooLarge(u64),
    /// The mapping took longer than [`MirrorOptions::mapping_time_limit`].
    #[error("stopped after the time limit of {0:?} per mapping; the previous mirror is unchanged")]
    TimeLimit(std::time::Duration),
    /// The thread parsing the pack (pass 1) or resolving its deltas (pass 2) stopped without an answer (the
    /// runtime is shutting down).
    #[error("processing the pack stopped: {0}")]
    ResolveTask(String),
}

/// Mirrors every mapping, at most `options.concurrency` at once, and reports on each in the order given.
/// A failing mapping never stops the others; its report carries the error. Each mapping runs in a task of its
/// own (and resolves deltas on a blocking thread), so that mappings use every core and a slow one never stalls
/// another.
pub async fn mirror_repos(mappings: &[Mapping], options: &MirrorOptions) -> Vec<RepoReport> {
    let client = Arc::new(UpstreamClient::new(UpstreamOptions {
        connect_timeout: options.connect_timeout,
        idle_timeout: options.idle_timeout,
        token: options.token.clone(),
        retry: options.source_retry.clone(),
        protocol_v2: discover::wants_protocol_v2(options),
        max_advertisement_bytes: options.max_advertisement_bytes,
        addresses: options.source_addresses,
        ..UpstreamOptions::default()
    }));
    // The (not yet started) futures are collected first: a closure inside the stream's type would make the
    // returned future fail to be `Send` (a known limit of the compiler with higher-ranked closure lifetimes).
    let runs: Vec<_> = mappings
        .iter()
        .enumerate()
        .map(|(index, m)| mirror_mapping(Arc::clone(&client), index, m.clone(), options.clone()))
        .collect();
    futures_util::stream::iter(runs)
        .buffered(options.concurrency.max(1))
        .collect()
        .await
}

/// Mirrors one mapping in a task of its own; a panic in it fails that mapping only.
async fn mirror_mapping(
    client: Arc<Result<UpstreamClient, upstream::UpstreamError>>,
    index: usize,
    mapping: Mapping,
    options: MirrorOptions,
) -> RepoReport {
    let started = Instant::now();
    let report = new_report(&mapping);
    let task = tokio::spawn(async move {
        match client.as_ref() {
            Ok(c) => mirror_repo(c, index, &mapping, &options).await,
            Err(e) => failed_report(&mapping, started, e.to_string()),
        }
    });
    task.await.unwrap_or_else(|e| RepoReport {
        duration_ms: started.elapsed().as_millis() as u64,
        error: Some(format!("the mirror task failed: {e}")),
        ..report
    })
}

/// A report of a mapping that has done nothing yet.
fn new_report(mapping: &Mapping) -> RepoReport {
    RepoReport {
        source: upstream::redact_str(&mapping.source),
        target: mapping.target.clone(),
        kind: RunKind::NotStarted,
        refs: 0,
        advertisement_bytes: 0,
        objects: 0,
        pack_bytes: 0,
        store_requests: 0,
        packs_deleted: 0,
        duration_ms: 0,
        error: None,
        lfs: None,
        repaired: None,
    }
}

/// The report of a mapping that failed with `error` before it could run, `started` being when it was tried.
pub(crate) fn failed_report(mapping: &Mapping, started: Instant, error: String) -> RepoReport {
    RepoReport {
        duration_ms: started.elapsed().as_millis() as u64,
        error: Some(error),
        ..new_report(mapping)
    }
}

/// Mirrors one mapping with an existing source client. `index` is the mapping's position among those the caller
/// runs: progress updates name it ([`MappingId::index`]), so give each mapping of a run its own.
pub async fn mirror_repo(
    client: &UpstreamClient,
    index: usize,
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
        index,
        store,
        upload: None,
        temp_key: None,
        upload_keys: Vec::new(),
        report: new_report(mapping),
    };
    // The run stops at the deadline or at its own time limit, whichever comes first.
    let limit = options
        .mapping_time_limit
        .map(|limit| (started + limit, MirrorError::TimeLimit(limit)));
    let deadline = options.deadline.map(|d| (d, MirrorError::Deadline));
    let stop = match (deadline, limit) {
        (Some(deadline), Some(limit)) => Some(if limit.0 < deadline.0 {
            limit
        } else {
            deadline
        }),
        (deadline, limit) => deadline.or(limit),
    };
    let result = match stop {
        Some((end, error)) => tokio::time::timeout_at(end.into(), run.execute(&mapping.source))
            .await
            .unwrap_or(Err(error)),
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

/// One mapping's run: what it talks to, what it must clean up if it stops early, and its report so far.
struct Run<'a> {
    client: &'a UpstreamClient,
    options: &'a MirrorOptions,
    /// The mapping's position in the run, which progress updates name.
    index: usize,
    store: Arc<dyn Store>,
    /// The multipart upload in progress, aborted if the run stops before completing it.
    upload: Option<Box<dyn Upload>>,
    /// The completed but unpublished pack upload, deleted if the run stops before renaming it.
    temp_key: Option<String>,
    /// Keys of the multipart uploads this run started, each unique to the run. A CreateMultipartUpload whose
    /// answer was lost and that the SDK retried leaves an upload the run never heard of under the same key: the
    /// garbage collection aborts it at once when the run gets that far (it lists every unfinished upload anyway),
    /// clean-up otherwise, rather than leaving it to the grace period.
    upload_keys: Vec<String>,
    report: RepoReport,
}

impl Run<'_> {
    fn progress(&self, stage: Stage) {
        if let Some(p) = &self.options.progress {
            let mapping = MappingId {
                index: self.index,
                source: &self.report.source,
                target: &self.report.target,
            };
            p.update(mapping, stage);
        }
    }

    /// The run's outline: plan (`plan.rs`), fetch (`fetch.rs`), publish (`publish.rs`), collect garbage.
    async fn execute(&mut self, source_url: &str) -> Result<(), MirrorError> {
        let url = parse_source_url(source_url)?;
        self.progress(Stage::Negotiating);
        let (repo_url, adv) = self.discover(&url).await?;
        for name in &adv.skipped {
            let source = &self.report.source;
            tracing::warn!(%source, name = %name, "skipping a ref whose name git could not store");
        }
        let desired = plan::desired_state(&adv, self.options);
        self.report.refs = desired.refs.len();

        let (info_refs, head) = tokio::try_join!(
            self.store.get(layout::INFO_REFS),
            self.store.get(layout::HEAD)
        )?;
        let damage = if self.options.verify {
            self.verify_published(body(&info_refs)).await?
        } else {
            None
        };
        if damage.is_none() && desired.is_published(body(&info_refs), body(&head)) {
            self.report.kind = RunKind::NoOp;
            return Ok(());
        }

        let pack_list = self.store.get(layout::PACKS).await?;
        let source = &self.report.source;
        let published = Published::parse(
            body(&pack_list),
            body(&info_refs),
            |e| tracing::warn!(%source, error = %e, "ignoring the mirror's info/refs: full fetch"),
        )?;
        let plan = match &damage {
            Some(problem) => {
                tracing::warn!(%source, problem, "verification found the mirror broken: repairing");
                plan::repair(&desired)
            }
            None => plan::plan(&desired, &published, self.options),
        };
        self.report.repaired = damage;
        self.report.kind = plan.kind;

        let new_pack = if plan.wants.is_empty() {
            None
        } else {
            let lfs_head = lfs_head(&desired, self.options);
            self.fetch_pack(&adv, &repo_url, &plan, &desired, &published.packs, lfs_head)
                .await?
        };
        self.report.kind = plan.kind_after_fetch(new_pack.is_some());
        // LFS objects before refs: a reader never sees a pointer whose object the mirror lacks.
        let options = self.options;
        if let Some(p) = new_pack.as_ref().filter(|_| options.lfs.enabled) {
            self.mirror_lfs(&url, p.lfs_config.as_ref(), &p.lfs_pointers)
                .await?;
        }

        self.progress(Stage::Publishing);
        let started = StartedFrom {
            pack_list,
            packs: published.packs,
            info_refs,
            head,
        };
        let listed = publish::publish(
            self.store.as_ref(),
            &self.report.source,
            started,
            &desired,
            self.report.kind,
            new_pack.as_ref().map(|p| p.id),
        )
        .await?;
        if let Some(p) = &new_pack {
            self.report.objects = p.objects;
            self.report.pack_bytes = p.bytes;
        }
        let now = (self.options.clock)();
        let store = self.store.as_ref();
        let own_uploads = &self.upload_keys;
        let collected =
            gc::collect(store, &listed, own_uploads, now, self.options.gc_grace).await?;
        self.report.packs_deleted = collected.packs_deleted;
        if collected.uploads_listed {
            // The garbage collection listed the uploads under this run's keys too and discarded them.
            self.upload_keys.clear();
        }
        Ok(())
    }

    /// Verify mode: what is broken in the published mirror (`info_refs` as read), `None` if nothing is. Reads
    /// the pack list itself (a concurrent run may change it; the repair is a full fetch either way).
    async fn verify_published(
        &self,
        info_refs: Option<&[u8]>,
    ) -> Result<Option<String>, MirrorError> {
        let pack_list = self.store.get(layout::PACKS).await?;
        let Some(refs) = info_refs.and_then(|body| layout::parse_info_refs(body).ok()) else {
            return Ok(None);
        };
        let packs = match pack_list.as_ref().map(|o| layout::parse_packs(&o.body)) {
            Some(Ok(packs)) => packs,
            Some(Err(e)) => return Ok(Some(format!("its pack list is damaged: {e}"))),
            None if refs.is_empty() => return Ok(None),
            None => return Ok(Some("it publishes refs but no pack list".to_owned())),
        };
        connectivity::verify_published(self.store.as_ref(), &packs, &refs).await
    }

    /// Aborts an unfinished upload, deletes an unpublished temporary pack, and aborts the uploads left under this
    /// run's upload keys by retried requests, unless the garbage collection did (it then emptied the keys).
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
        for key in std::mem::take(&mut self.upload_keys) {
            let source = &self.report.source;
            let pending = match self.store.pending_uploads(&key).await {
                Ok(pending) => pending,
                Err(e) => {
                    tracing::warn!(%source, error = %e, "could not list the run's open uploads");
                    continue;
                }
            };
            for upload in pending.iter().filter(|u| u.key == key) {
                match self.store.discard_upload(upload).await {
                    Ok(()) => {
                        tracing::info!(%source, key, "aborted an upload a retried request left open")
                    }
                    Err(e) => {
                        tracing::warn!(%source, key, error = %e, "could not abort a left-over upload")
                    }
                }
            }
        }
    }
}

/// The commit whose `.lfsconfig` sets the LFS endpoint (the default branch's tip), when LFS is on and the
/// mapping does not set the endpoint itself.
fn lfs_head(desired: &plan::Desired, options: &MirrorOptions) -> Option<ObjectId> {
    if !options.lfs.enabled || options.lfs.url.is_some() {
        return None;
    }
    match &desired.head {
        layout::Head::Detached(oid) => Some(*oid),
        layout::Head::Symbolic(name) => {
            desired.refs.iter().find(|r| &r.name == name).map(|r| r.oid)
        }
    }
}

/// The content of an object as read, `None` if the key was absent.
fn body(object: &Option<Object>) -> Option<&[u8]> {
    object.as_ref().map(|o| o.body.as_ref())
}

fn parse_source_url(text: &str) -> Result<Url, MirrorError> {
    Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| MirrorError::SourceUrl(upstream::redact_str(text)))
}

#[cfg(test)]
mod tests;
