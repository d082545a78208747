//! The publication protocol: how a run makes its new pack and refs visible without ever showing a reader (a dumb
//! `git clone` or fetch, a copy of the prefix synced to disk, or another run) a mirror it cannot use.
//!
//! # Order
//!
//! A dumb client reads `info/refs` and `HEAD`, then `objects/info/packs`, then every listed `.idx`, then the packs
//! it needs. A run therefore writes, in this order:
//!
//! 1. `objects/pack/pack-<id>.pack`, then
//! 2. its `.idx`: both by the fetch's store step (`fetch.rs`), under names made from the pack's content. Nothing
//!    lists them yet, so no dumb reader sees them. The `.idx` comes second because git finds the packs of a local
//!    repository (a synced copy) by their `.idx` files: an index must never stand without its complete pack.
//! 3. `objects/info/packs` ([`publish_pack_list`]): from here on the new objects are reachable.
//! 4. `packed-refs` (and `refs/.keep` on full and compaction runs, so that a synced copy has a `refs/` directory),
//! 5. `info/refs`, then
//! 6. `HEAD` ([`publish_refs`]). Refs come only after the pack list that holds their objects: refs published
//!    first would send a fresh clone after objects no listed pack has ("Unable to find"). `info/refs` and `HEAD`
//!    come last because they are what the next run compares to detect a no-op: a run that stops before them
//!    leaves a mirror the next run sees as stale and finishes. `HEAD` is last of all because it names a branch
//!    that `info/refs` must already list, or a clone checks nothing out.
//!
//! Anything that fails before step 3 leaves the previous mirror exactly as it was; files of steps 1-2 that never
//! get listed are deleted by the garbage collection (`gc.rs`) after its grace period.
//!
//! # Conditional writes
//!
//! * Files named by their content (packs, indexes, `refs/.keep`) are only ever created: `If-None-Match`, and
//!   "already exists" counts as success because an existing file of that name has the same content
//!   ([`ignore_existing`]), once a pack's or index's size shows that it is not what a cut-off attempt left
//!   ([`create_named`]).
//! * Files that change (the pack list, `packed-refs`, `info/refs`, `HEAD`) are read, re-rendered and written back
//!   only if unchanged since the read, a compare-and-swap ([`replace_if_unchanged`] with
//!   [`Precondition::replacing`]). A write that would not change the content is skipped. On a lost race
//!   [`update_object`] re-reads and renders again on top of the winner's content, at most
//!   [`MAX_CONFLICT_RETRIES`] times before the run fails with [`MirrorError::Contention`]. The pack list merges
//!   (the other run's packs stay listed); the ref files take this run's content, as both runs copy one source.
//!   `packed-refs` is read just before its write, except when no `info/refs` was published: then it is taken as
//!   absent, and one that a run cut off after step 4 left costs a lost race instead of a read on every first run.
//!
//! # The re-check
//!
//! After the refs are out, [`ensure_listed`] reads the pack list again and lists anew any pack those refs need
//! that a concurrent writer unlisted meanwhile: a compaction that overtook this run, or a lost update on a store
//! that ignores conditional headers (not every S3-compatible store honours them). Either would otherwise leave
//! published refs pointing at objects of no listed pack; at worst a concurrent update is lost and the next run
//! repairs it, but the mirror is never left unreadable.

use super::plan::Desired;
use super::MirrorError;
use crate::git::layout;
use crate::git::oid::ObjectId;
use crate::report::RunKind;
use crate::store::{Object, Precondition, Store, StoreError};
use bytes::Bytes;

/// How often a conditional write is retried after losing a race before the run gives up.
pub(super) const MAX_CONFLICT_RETRIES: usize = 8;

/// What the run read from the store before fetching: the versions its conditional writes must replace.
pub(super) struct StartedFrom {
    /// `objects/info/packs` as read (`None`: absent).
    pub(super) pack_list: Option<Object>,
    /// The packs it listed.
    pub(super) packs: Vec<ObjectId>,
    /// `info/refs` as read.
    pub(super) info_refs: Option<Object>,
    /// `HEAD` as read.
    pub(super) head: Option<Object>,
}

/// Publishes a run's outcome, steps 3-6 and the re-check (see the module doc): the pack list with `new_pack` (which
/// the fetch has stored), then `desired`'s refs and HEAD. Returns the pack list as this run published it.
pub(super) async fn publish(
    store: &dyn Store,
    source: &str,
    started: StartedFrom,
    desired: &Desired,
    kind: RunKind,
    new_pack: Option<ObjectId>,
) -> Result<Vec<ObjectId>, MirrorError> {
    let compaction = kind == RunKind::Compaction;
    let listed = publish_pack_list(
        store,
        started.pack_list,
        &started.packs,
        new_pack,
        compaction,
    )
    .await?;
    let creates_refs_dir = matches!(kind, RunKind::Full | RunKind::Compaction);
    publish_refs(
        store,
        source,
        desired,
        started.info_refs,
        started.head,
        creates_refs_dir,
    )
    .await?;
    // The refs just published need the new pack and, unless this run compacted, the packs it started from (they
    // hold everything its haves reach).
    let mut needed: Vec<ObjectId> = new_pack.into_iter().collect();
    if !compaction {
        needed.extend(&started.packs);
    }
    ensure_listed(store, source, &needed).await?;
    Ok(listed)
}

/// Adds the new pack to `objects/info/packs` (or, when compacting, replaces the packs this run started from),
/// retrying on top of concurrent writers. Returns the list as published.
///
/// A run that does not compact also keeps the packs it started from: its refs rely on the objects its haves
/// reach, so if a concurrent compaction unlisted some of those packs (which survive the GC grace period),
/// they are listed again rather than leaving this run's refs pointing at unlisted objects.
async fn publish_pack_list(
    store: &dyn Store,
    pack_list: Option<Object>,
    started_with: &[ObjectId],
    new_pack: Option<ObjectId>,
    compaction: bool,
) -> Result<Vec<ObjectId>, MirrorError> {
    let mut published = started_with.to_vec();
    update_object(
        store,
        layout::PACKS,
        pack_list,
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

/// Publishes `packed-refs`, `refs/.keep` (if `creates_refs_dir`), `info/refs` and `HEAD`, in that order, as
/// compare-and-swaps over `info_refs` and `head` as the run read them and over `packed-refs` as read now (or
/// taken as absent when `info_refs` is).
async fn publish_refs(
    store: &dyn Store,
    source: &str,
    desired: &Desired,
    info_refs: Option<Object>,
    head: Option<Object>,
    creates_refs_dir: bool,
) -> Result<(), MirrorError> {
    let packed = layout::render_packed_refs(&desired.refs);
    // A mirror that publishes no `info/refs` has no `packed-refs` either, unless a run was cut off between the
    // two: write it create-only without reading it, and the lost race that such a leftover makes re-reads it.
    let packed_obj = match &info_refs {
        Some(_) => store.get(layout::PACKED_REFS).await?,
        None => None,
    };
    update_object(
        store,
        layout::PACKED_REFS,
        packed_obj,
        "packed-refs",
        |_| Ok(packed.clone()),
    )
    .await?;
    if creates_refs_dir {
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
    tracing::debug!(source, head = ?desired.head, "refs published");
    Ok(())
}

/// Re-reads the pack list after publishing refs and lists again any of the `needed` packs that a concurrent
/// writer dropped meanwhile: a compaction that overtook this run, or a lost update on a store that ignores
/// conditional headers. Either would leave the refs just published pointing at unlisted objects.
async fn ensure_listed(
    store: &dyn Store,
    source: &str,
    needed: &[ObjectId],
) -> Result<(), MirrorError> {
    if needed.is_empty() {
        return Ok(());
    }
    let current = store.get(layout::PACKS).await?;
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
    tracing::warn!(source, packs = ?missing, "a concurrent run unlisted packs this run's refs need: re-adding");
    update_object(store, layout::PACKS, current, "the pack list", |body| {
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
    })
    .await
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
pub(super) async fn replace_if_unchanged(
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
pub(super) fn ignore_existing<T>(result: Result<T, StoreError>) -> Result<(), StoreError> {
    match result {
        Ok(_) | Err(StoreError::PreconditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the content-named file `key` (a pack or its index) of `len` bytes with `write` (a put or a copy under
/// the precondition it is given): `If-None-Match` first, and an existing file of that name counts as written only
/// if it has `len` bytes. Otherwise it is replaced (no precondition): a store may keep what an earlier, cut-off
/// attempt of the same request sent (moto keeps a PUT whose head was cut before its `Content-Length` as an empty
/// object, and the SDK's retry of that PUT then finds it), and a pack list must never name a file that is not
/// what its name promises.
pub(super) async fn create_named<T, F>(
    store: &dyn Store,
    key: &str,
    len: u64,
    write: impl Fn(Precondition) -> F,
) -> Result<(), StoreError>
where
    F: std::future::Future<Output = Result<T, StoreError>>,
{
    match write(Precondition::IfNoneMatch).await {
        Ok(_) => Ok(()),
        Err(StoreError::PreconditionFailed { .. }) => {
            let listed = store.list(key).await?;
            let existing = listed.iter().find(|l| l.key == key).map(|l| l.size);
            if existing == Some(len) {
                return Ok(());
            }
            tracing::warn!(store = %store.describe(), key, ?existing, expected = len,
                "replacing a content-named file of the wrong size");
            write(Precondition::None).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
