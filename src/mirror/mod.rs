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
//! | what to publish, and the no-op / full / incremental / refs-only / compaction decision (pure) | `plan.rs` |
//! | receive → resolve and index → store one pack; the memory budget | `fetch.rs` |
//! | every object the refs reach is in the new pack or a listed one, before anything is published | `connectivity.rs` |
//! | the publication protocol: order, conditional writes, the re-check | `publish.rs` |
//! | reading a stored pack back in chunks | `read_back.rs` |
//! | deleting unlisted packs after a grace period | `gc.rs` |

mod connectivity;
mod fetch;
pub mod gc;
mod plan;
mod publish;
mod read_back;

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
        .enumerate()
        .map(|(index, m)| mirror_mapping(&client, index, m, options))
        .collect();
    futures_util::stream::iter(runs)
        .buffered(options.concurrency.max(1))
        .collect()
        .await
}

async fn mirror_mapping(
    client: &Result<UpstreamClient, upstream::UpstreamError>,
    index: usize,
    mapping: &Mapping,
    options: &MirrorOptions,
) -> RepoReport {
    match client {
        Ok(c) => mirror_repo(c, index, mapping, options).await,
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
        repaired: None,
    }
}

fn failed_report(mapping: &Mapping, started: Instant, error: String) -> RepoReport {
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
        let (repo_url, adv_body) = self.client.advertisement(&url).await?;
        let adv = upload_pack::parse_advertisement(&adv_body)?;
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
            self.fetch_pack(&adv, &repo_url, &plan, &desired, &published.packs)
                .await?
        };
        self.report.kind = plan.kind_after_fetch(new_pack.is_some());

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
        self.report.packs_deleted =
            gc::collect(self.store.as_ref(), &listed, now, self.options.gc_grace).await?;
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
