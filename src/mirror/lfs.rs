//! Mirroring the Git LFS objects that a new pack's pointers name, before its refs are published.
//!
//! The pointers come from the pack passes ([`crate::git::lfs`]): every pointer blob of the fetched pack, whatever
//! ref or commit reaches it, so an incremental run looks only at the pointers that are new. For each one:
//!
//! 0. **Find the server**: the mapping's `lfs_url`, else `lfs.url` from the `.lfsconfig` at the default branch's
//!    tip (read from the pack; a copy is kept under `lfs/lfsconfig/<blob id>` for incremental runs whose pack
//!    does not hold it), else `<source>.git/info/lfs`.
//! 1. **Skip what is there**: one listing of the object's exact key (`lfs/objects/<aa>/<bb>/<oid>`); an object
//!    of the pointer's size is already mirrored (objects only become visible once verified, see 3).
//! 2. **Ask the source's LFS server** in batches of
//!    [`MAX_OBJECTS_PER_BATCH`] (`crate::upstream::lfs`); an
//!    action that expires within [`EXPIRY_MARGIN_SECS`] when its turn comes is asked for again.
//! 3. **Stream each object into the store** through an [`Upload`](crate::store::Upload) of its final key while
//!    hashing it: the upload is completed (create-only) only when the size and SHA-256 match the pointer, and
//!    aborted otherwise, so a reader never sees an unverified object. Memory per download is the upload's
//!    buffers; downloads run concurrently up to what the memory budget allows ([`concurrent_downloads`]).
//!
//! An object that cannot be mirrored (the server lacks it, its bytes do not match its id, its href is refused, its
//! download fails) fails the mapping with a message naming it, unless the options tolerate missing objects: then
//! it is listed in the report and the refs are published anyway. A failure of the batch request as a whole
//! (endpoint unreachable, refused, unusable answer) always fails the mapping.

use super::publish::ignore_existing;
use super::{MirrorError, Run};
use crate::git::lfs::batch::Download;
use crate::git::lfs::batch::{Outcome, MAX_OBJECTS_PER_BATCH};
use crate::git::lfs::config::{self, LFSCONFIG};
use crate::git::lfs::{LfsOid, Pointer, PointerSet};
use crate::git::oid::{hash_object, ObjectId, ObjectKind};
use crate::git::pack::entry::Entries;
use crate::git::resolve::{read_object, PackReader, ResolveError};
use crate::git::scan::LfsConfigTrail;
use crate::report::{LfsFailure, LfsReport};
use crate::store::{self, Precondition, Store, StoreError};
use crate::upstream::{unix_now, LfsEndpoint, LfsRequestError, UpstreamClient, UpstreamError};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::time::Instant;
use url::Url;

/// An action expiring within this many seconds when its download starts is requested again.
pub const EXPIRY_MARGIN_SECS: i64 = 30;
/// How many times one object's action is requested again because it had expired.
const MAX_REFRESHES: usize = 2;
/// Most downloads at once, whatever the budget.
const MAX_CONCURRENT_DOWNLOADS: u64 = 8;
/// Most failed objects named in an error message (the report lists them all).
const MAX_NAMED_FAILURES: usize = 5;

/// Why the LFS objects of a mapping could not be mirrored.
#[derive(Debug, thiserror::Error)]
pub enum LfsError {
    /// The batch request failed as a whole.
    #[error("LFS batch request failed: {0}")]
    Batch(#[from] LfsRequestError),
    /// The LFS endpoint cannot be used.
    #[error("invalid LFS endpoint: {0}")]
    Endpoint(crate::upstream::UpstreamError),
    /// Objects could not be mirrored (and the options do not tolerate it).
    #[error("{} LFS object(s) could not be mirrored: {}", failures.len(), name_failures(failures))]
    Objects {
        /// Every object that failed, and why.
        failures: Vec<LfsFailure>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn name_failures(failures: &[LfsFailure]) -> String {
    let mut named: Vec<String> = failures
        .iter()
        .take(MAX_NAMED_FAILURES)
        .map(LfsFailure::to_string)
        .collect();
    if failures.len() > MAX_NAMED_FAILURES {
        named.push(format!("and {} more", failures.len() - MAX_NAMED_FAILURES));
    }
    named.join("; ")
}

/// Downloads at once for a memory budget: each holds an upload's buffers.
pub fn concurrent_downloads(memory_budget: u64) -> usize {
    (memory_budget / store::UPLOAD_BUFFER_BYTES).clamp(1, MAX_CONCURRENT_DOWNLOADS) as usize
}

/// What happened to one object.
#[derive(Debug)]
enum Done {
    /// Stored (by this run, or concurrently by another: create-only found it there).
    Copied(u64),
    /// Already in the mirror.
    Skipped(u64),
    /// Not mirrored.
    Failed(LfsFailure),
}

impl Run<'_> {
    /// Mirrors the LFS objects `pointers` name from the LFS server of the repository at `source` (or the one its
    /// `.lfsconfig` names), and records what happened in the report.
    pub(super) async fn mirror_lfs(
        &mut self,
        source: &Url,
        lfsconfig: Option<&LfsConfig>,
        pointers: &PointerSet,
    ) -> Result<(), MirrorError> {
        let mut report = LfsReport {
            pointers: pointers.len() as u64,
            ..LfsReport::default()
        };
        let configured = self
            .configured_lfs_url(lfsconfig, !pointers.is_empty())
            .await?;
        if !pointers.is_empty() {
            let endpoint = self
                .client
                .lfs_endpoint(source, configured.as_deref())
                .map_err(LfsError::Endpoint)?;
            let limit = concurrent_downloads(self.options.memory_budget);
            tracing::info!(
                source = %self.report.source, endpoint = %endpoint.shown(), pointers = pointers.len(),
                "mirroring LFS objects"
            );
            for group in pointers.sorted().chunks(MAX_OBJECTS_PER_BATCH) {
                let done =
                    mirror_group(self.client, self.store.as_ref(), &endpoint, group, limit).await?;
                for d in done {
                    match d {
                        Done::Copied(bytes) => {
                            report.objects_copied += 1;
                            report.bytes_copied += bytes;
                        }
                        Done::Skipped(bytes) => {
                            report.objects_skipped += 1;
                            report.bytes_skipped += bytes;
                        }
                        Done::Failed(failure) => report.failed.push(failure),
                    }
                }
            }
        }
        let failed = std::mem::take(&mut report.failed);
        if !failed.is_empty() && !self.options.lfs.tolerate_missing {
            return Err(LfsError::Objects { failures: failed }.into());
        }
        report.failed = failed;
        self.report.lfs = Some(report);
        Ok(())
    }
}

/// One batch's worth of pointers: skip the present ones, ask for the others, download up to `limit` at once.
async fn mirror_group(
    client: &UpstreamClient,
    store: &dyn Store,
    endpoint: &LfsEndpoint,
    group: &[Pointer],
    limit: usize,
) -> Result<Vec<Done>, LfsError> {
    // The futures are collected before they become a stream: a closure inside the stream's type would make the
    // run's future fail to be `Send` (a known limit of the compiler with higher-ranked closure lifetimes).
    let checks: Vec<_> = group.iter().map(|p| stored_size(store, p)).collect();
    let stored: Vec<Result<Option<u64>, StoreError>> = futures_util::stream::iter(checks)
        .buffered(limit)
        .collect()
        .await;
    let mut done = Vec::with_capacity(group.len());
    let mut wanted = Vec::new();
    let mut replace = Vec::new();
    for (p, stored) in group.iter().zip(stored) {
        match stored? {
            Some(size) if size == p.size => done.push(Done::Skipped(p.size)),
            stored => {
                if let Some(size) = stored {
                    tracing::warn!(oid = %p.oid, stored = size, expected = p.size,
                        "an LFS object of the wrong size is stored under its name: replacing it");
                }
                wanted.push(*p);
                replace.push(stored.is_some());
            }
        }
    }
    if wanted.is_empty() {
        return Ok(done);
    }
    let outcomes = client.lfs_batch(endpoint, &wanted).await?;
    let fetches: Vec<_> = wanted
        .into_iter()
        .zip(outcomes)
        .zip(replace)
        .map(|((p, outcome), replace)| fetch_one(client, store, endpoint, p, outcome, replace))
        .collect();
    let downloads: Vec<Done> = futures_util::stream::iter(fetches)
        .buffer_unordered(limit)
        .collect::<Vec<Result<Done, LfsError>>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    done.extend(downloads);
    Ok(done)
}

/// The size of what the mirror stores under the key of `pointer`, `None` when nothing. Anything but the
/// pointer's size is not the object: a store may keep what a cut-off write sent (moto keeps a PUT cut before its
/// body as an empty object), and the object is then stored again over it.
async fn stored_size(store: &dyn Store, pointer: &Pointer) -> Result<Option<u64>, StoreError> {
    let key = pointer.oid.store_key();
    let listed = store.list(&key).await?;
    Ok(listed.iter().find(|l| l.key == key).map(|l| l.size))
}

/// Downloads one object as `outcome` says (asking again if its action expired) and stores it once verified, over
/// what is stored under its name if `replace`.
async fn fetch_one(
    client: &UpstreamClient,
    store: &dyn Store,
    endpoint: &LfsEndpoint,
    pointer: Pointer,
    mut outcome: Outcome,
    replace: bool,
) -> Result<Done, LfsError> {
    let fail = |problem: String| Ok(Done::Failed(LfsFailure::new(&pointer, problem)));
    for _ in 0..MAX_REFRESHES {
        match &outcome {
            Outcome::Download(d)
                if d.expires_at
                    .is_some_and(|at| at <= unix_now().saturating_add(EXPIRY_MARGIN_SECS)) =>
            {
                tracing::debug!(oid = %pointer.oid, "LFS download action expired: asking again");
                outcome = client
                    .lfs_batch(endpoint, &[pointer])
                    .await?
                    .pop()
                    .unwrap_or(Outcome::Unusable("the batch response was empty".to_owned()));
            }
            _ => break,
        }
    }
    let download = match outcome {
        Outcome::Download(d) => d,
        Outcome::Error { code, message } => {
            return fail(format!("the LFS server answered {code}: {message}"))
        }
        Outcome::Unusable(problem) => return fail(problem),
    };
    // A download that fails for a reason that may pass (a cut, a timeout, a 5xx) is tried again as the source's
    // requests are (`RetryPolicy`); bytes that do not match the pointer are not.
    let policy = client.retry_policy();
    let started = Instant::now();
    let mut failed = 0;
    loop {
        let (problem, cause) =
            match store_download(client, store, endpoint, &pointer, &download, replace).await? {
                Ok(()) => return Ok(Done::Copied(pointer.size)),
                Err(failure) => failure,
            };
        failed += 1;
        let delay = cause.and_then(|cause| policy.delay_after(&cause, failed, started));
        let Some(delay) = delay else {
            return fail(problem);
        };
        tracing::warn!(oid = %pointer.oid, attempt = failed,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), cause = %problem,
            "LFS download failed; trying again");
        tokio::time::sleep(delay).await;
    }
}

/// Why one download attempt failed: the problem for the report, and the source's error when there was one (it
/// says whether trying again may help).
type AttemptFailure = (String, Option<UpstreamError>);

/// One attempt at `download`: streams it into the store and completes the object only once its size and SHA-256
/// match `pointer` (create-only, or over what is stored if `replace`); a failed attempt leaves nothing stored.
async fn store_download(
    client: &UpstreamClient,
    store: &dyn Store,
    endpoint: &LfsEndpoint,
    pointer: &Pointer,
    download: &Download,
    replace: bool,
) -> Result<Result<(), AttemptFailure>, LfsError> {
    let mut body = match client.lfs_download(endpoint, download).await {
        Ok(body) => body,
        Err(e) => return Ok(Err((e.to_string(), Some(e)))),
    };
    let key = pointer.oid.store_key();
    let mut upload = store.create_upload(&key, store::FIRST_PART_SIZE).await?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let problem = loop {
        let chunk = match body.next_chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break None,
            Err(e) => break Some((e.to_string(), Some(e))),
        };
        received = received.saturating_add(chunk.len() as u64);
        if received > pointer.size {
            break Some((
                format!("the server sent more than its {} bytes", pointer.size),
                None,
            ));
        }
        hasher.update(&chunk);
        if let Err(e) = upload.write(&chunk).await {
            let _ = upload.abort().await;
            return Err(e.into());
        }
    };
    let problem = problem.or_else(|| {
        let actual = LfsOid(hasher.finalize().into());
        if received != pointer.size {
            Some((
                format!(
                    "the server sent {received} bytes, the pointer says {}",
                    pointer.size
                ),
                None,
            ))
        } else if actual != pointer.oid {
            Some((
                format!("the bytes the server sent hash to {actual}, not to the object's id"),
                None,
            ))
        } else {
            None
        }
    });
    if let Some(problem) = problem {
        if let Err(e) = upload.abort().await {
            tracing::warn!(%key, error = %e, "could not abort an LFS upload");
        }
        return Ok(Err(problem));
    }
    let pre = match replace {
        true => Precondition::None,
        false => Precondition::IfNoneMatch,
    };
    ignore_existing(upload.complete(pre).await)?;
    Ok(Ok(()))
}

/// The `.lfsconfig` of the default branch's tip: its blob id, and its content when the new pack holds it (an
/// incremental run whose `.lfsconfig` did not change finds only the id, and reads the copy an earlier run kept).
pub struct LfsConfig {
    /// The blob's id.
    pub blob: ObjectId,
    /// The blob's content, if it is in the new pack.
    pub text: Option<Vec<u8>>,
}

/// Where a run keeps a copy of the `.lfsconfig` blob `blob` for later incremental runs.
fn lfsconfig_key(blob: &ObjectId) -> String {
    format!("lfs/lfsconfig/{blob}")
}

/// The `.lfsconfig` at the end of `trail` (the default branch's tip, its root tree, its `.lfsconfig`), reading
/// from a resolved pack only what the scan of its objects did not find: usually the blob alone. `None` when the
/// commit or its tree is not in the pack or the tree has no `.lfsconfig`.
pub(super) async fn find_lfsconfig(
    entries: &Entries,
    source: &dyn PackReader,
    trail: LfsConfigTrail,
) -> Result<Option<LfsConfig>, ResolveError> {
    let read = |oid: ObjectId, kind: ObjectKind| async move {
        let object = read_object(entries, source, &oid, config::MAX_OBJECT_BYTES).await?;
        Ok::<_, ResolveError>(object.filter(|(k, _)| *k == kind).map(|(_, data)| data))
    };
    let mut trail = trail;
    let blob = loop {
        trail = match trail {
            LfsConfigTrail::Commit(head) => {
                let Some(commit) = read(head, ObjectKind::Commit).await? else {
                    return Ok(None);
                };
                let Some(tree) = config::commit_tree(&commit) else {
                    return Ok(None);
                };
                LfsConfigTrail::Tree(tree)
            }
            LfsConfigTrail::Tree(tree) => {
                let Some(tree) = read(tree, ObjectKind::Tree).await? else {
                    return Ok(None);
                };
                LfsConfigTrail::Found(config::tree_file(&tree, LFSCONFIG))
            }
            LfsConfigTrail::Found(None) => return Ok(None),
            LfsConfigTrail::Found(Some(blob)) => break blob,
        };
    };
    Ok(Some(LfsConfig {
        blob,
        text: read(blob, ObjectKind::Blob).await?,
    }))
}

impl Run<'_> {
    /// The LFS endpoint the mapping sets, else `lfs.url` from the `.lfsconfig` (kept in the store for later runs,
    /// or read back from there when this pack lacks it), else `None` (the default endpoint).
    async fn configured_lfs_url(
        &self,
        lfsconfig: Option<&LfsConfig>,
        needed: bool,
    ) -> Result<Option<String>, StoreError> {
        // The mapping's setting wins over the repository's .lfsconfig, as git config wins in git-lfs.
        if let Some(url) = &self.options.lfs.url {
            return Ok(Some(url.clone()));
        }
        let Some(found) = lfsconfig else {
            return Ok(None);
        };
        let key = lfsconfig_key(&found.blob);
        let text = match &found.text {
            Some(text) => {
                let stored = self
                    .store
                    .put(&key, text.clone().into(), Precondition::IfNoneMatch);
                ignore_existing(stored.await)?;
                Some(text.clone())
            }
            None if needed => self
                .store
                .get(&key)
                .await?
                .map(|o| o.body.to_vec())
                .filter(|body| hash_object(ObjectKind::Blob, body) == found.blob),
            None => None,
        };
        if text.is_none() && needed {
            tracing::warn!(blob = %found.blob, "the default branch's .lfsconfig is neither in the new pack nor kept by an earlier run: using the default LFS endpoint");
        }
        Ok(text.as_deref().and_then(config::lfs_url))
    }
}

#[cfg(test)]
mod tests;
