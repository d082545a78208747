//! The connectivity check: before anything is published or unlisted, prove that every object the refs to publish
//! reach is in the new pack or in a pack the mirror lists, as `git fetch` does after every fetch
//! (`check_connected`). Without it a server that sends an empty, partial or shallow pack would leave refs that
//! point at nothing, and the no-op fast path would keep the mirror broken.
//!
//! What is checked, from what the run already has:
//!
//! - the **links** of every object of the new pack (commit → tree and parents, tree → entries except gitlinks,
//!   tag → target), collected by the [`Scanner`] while resolution hashed each object, so no extra pass;
//! - the **tips** of every ref to publish.
//!
//! An id the new pack holds (its `.idx`, in memory) is fine; so that the links do not hold the pack's own ids
//! through pass 2, those pass 1 computed are dropped from them between the passes ([`forget_links_in_pack`]).
//! Tips the mirror already publishes were proven when they were published. What remains must be in a pack the
//! mirror lists, found through each `.idx`'s fan-out and ranged reads of the id slices needed
//! ([`crate::git::idx::lookup`]), never a whole index, except on full and compaction runs: there the new pack
//! alone must be complete, since the packs it replaces will be unlisted. The walk stops at objects of listed
//! packs: each was checked the same way when it was listed.

use super::plan::Desired;
use super::MirrorError;
use crate::git::idx::lookup::{Fanout, LookupError, FANOUT_END};
use crate::git::layout::{self, Ref};
use crate::git::oid::ObjectId;
use crate::git::pack::entry::Entries;
use crate::git::scan::Scanner;
use crate::store::Store;
use std::collections::HashSet;

/// Bytes between two slices of an id table below which one read covers both.
const MERGE_GAP: u64 = 64 << 10;
/// Most bytes one read of an id table covers (a single first byte's slice may exceed it).
const MAX_READ: u64 = 4 << 20;

/// An object the refs to publish reach that neither the new pack nor the listed packs hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The first missing object (the lowest id, when no ref points at a missing one).
    pub object: ObjectId,
    /// The ref that points at it, when one does.
    pub ref_name: Option<String>,
    /// How many objects are missing in all.
    pub count: usize,
    /// Objects in the pack the source sent.
    pub pack_objects: u64,
    /// Whether the mirror's listed packs were searched too (incremental runs).
    pub searched_listed: bool,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ref_name {
            Some(name) => write!(f, "{name} points at {}", self.object)?,
            None => write!(f, "the objects to publish link to {}", self.object)?,
        }
        write!(
            f,
            ", which is not in the source's pack ({} objects)",
            self.pack_objects
        )?;
        if self.searched_listed {
            write!(f, " nor in a pack the mirror lists")?;
        }
        if self.count > 1 {
            write!(f, " ({} objects missing)", self.count)?;
        }
        Ok(())
    }
}

/// What the run wants to publish and what it received, for [`check`].
pub(super) struct Received<'a> {
    /// The `.idx` of the new pack, if the source sent objects.
    pub(super) index: Option<&'a [u8]>,
    /// What the scanner read from the new pack's objects.
    pub(super) scanner: &'a Scanner,
    /// Objects in the new pack.
    pub(super) objects: u64,
}

/// Proves that `desired`'s refs and the received objects' links are all in the new pack, among `proven` (tips
/// the mirror publishes already), or in one of `listed` (packs the mirror lists, empty when the new pack must be
/// complete on its own). Reads only the fan-outs and id slices of the listed `.idx` files it needs.
pub(super) async fn check(
    store: &dyn Store,
    desired: &Desired,
    proven: &[ObjectId],
    listed: &[ObjectId],
    received: &Received<'_>,
) -> Result<(), MirrorError> {
    let new_pack = match received.index {
        Some(index) => Some(NewIndex::parse(index)?),
        None => None,
    };
    let in_new = |id: &ObjectId| new_pack.as_ref().is_some_and(|p| p.contains(id));
    let proven: HashSet<&ObjectId> = proven.iter().collect();
    let mut tips: Vec<(&ObjectId, &str)> = desired
        .refs
        .iter()
        .filter(|r| !proven.contains(&r.oid) && !in_new(&r.oid))
        .map(|r| (&r.oid, r.name.as_str()))
        .collect();
    let mut wanted: Vec<ObjectId> = received
        .scanner
        .links()
        .filter(|id| !in_new(id))
        .copied()
        .collect();
    wanted.extend(tips.iter().map(|(id, _)| **id));
    if wanted.is_empty() {
        return Ok(());
    }
    wanted.sort_unstable();
    wanted.dedup();
    let absent = absent_from_packs(store, listed, wanted).await?;
    if absent.is_empty() {
        return Ok(());
    }
    let absent_set: HashSet<&ObjectId> = absent.iter().collect();
    tips.retain(|(id, _)| absent_set.contains(id));
    let (object, ref_name) = match tips.first() {
        Some((id, name)) => (**id, Some((*name).to_owned())),
        // `absent` is sorted and not empty.
        None => (absent[0], None),
    };
    Err(MirrorError::Incomplete(Missing {
        object,
        ref_name,
        count: absent.len(),
        pack_objects: received.objects,
        searched_listed: !listed.is_empty(),
    }))
}

/// Forgets the links to objects of the new pack whose ids `entries` already have (those pass 1 computed): the
/// check would find them in the new pack anyway, and the links collected meanwhile no longer hold them for the
/// rest of the run. Only whole, computed ids are compared, so no missing object is ever taken for present.
/// Allocates 4 bytes per entry while it runs (their order by id).
pub(super) fn forget_links_in_pack(scanner: &mut Scanner, entries: &Entries) {
    // The pack header counts entries in 32 bits: every position fits.
    let mut order: Vec<u32> = (0..entries.len() as u32)
        .filter(|&i| entries.get(i as usize).oid().is_some())
        .collect();
    order.sort_unstable_by_key(|&i| entries.get(i as usize).oid());
    let before = scanner.link_count();
    scanner.forget_links(order.iter().filter_map(|&i| entries.get(i as usize).oid()));
    tracing::debug!(
        known_ids = order.len(),
        links_before = before,
        links_after = scanner.link_count(),
        link_bytes = scanner.link_bytes(),
        "links to the pack's own objects forgotten"
    );
}

/// Verify mode: what is wrong with a published mirror whose pack list names `packs` and whose `info/refs`
/// lists `refs`, `None` if nothing: every listed pack and index must exist (one listing of `objects/pack/`),
/// every index must be one, and every ref's object must be in a listed pack (fan-out and ranged reads).
pub(super) async fn verify_published(
    store: &dyn Store,
    packs: &[ObjectId],
    refs: &[Ref],
) -> Result<Option<String>, MirrorError> {
    let stored: HashSet<String> = store
        .list(layout::PACK_DIR)
        .await?
        .into_iter()
        .map(|l| l.key)
        .collect();
    for pack in packs {
        for key in [layout::pack_key(pack), layout::idx_key(pack)] {
            if !stored.contains(&key) {
                return Ok(Some(format!("{key} is listed but missing")));
            }
        }
    }
    let mut tips: Vec<ObjectId> = refs.iter().map(|r| r.oid).collect();
    tips.sort_unstable();
    tips.dedup();
    let absent = match absent_from_packs(store, packs, tips).await {
        Ok(absent) => absent,
        Err(MirrorError::DamagedIndex { index, problem }) => {
            return Ok(Some(format!("the index {index} is damaged: {problem}")))
        }
        Err(e) => return Err(e),
    };
    Ok(refs.iter().find(|r| absent.contains(&r.oid)).map(|r| {
        format!(
            "{} points at {}, which no listed pack holds ({} refs' objects missing)",
            r.name,
            r.oid,
            absent.len()
        )
    }))
}

/// The new pack's index, held in memory.
struct NewIndex<'a> {
    fanout: Fanout,
    bytes: &'a [u8],
}

impl<'a> NewIndex<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, MirrorError> {
        let fanout = Fanout::parse(bytes).map_err(|e| damaged_index("the new pack", e))?;
        Ok(NewIndex { fanout, bytes })
    }

    fn contains(&self, id: &ObjectId) -> bool {
        let range = self.fanout.table_range();
        let table = usize::try_from(range.start)
            .ok()
            .zip(usize::try_from(range.end).ok())
            .and_then(|(start, end)| self.bytes.get(start..end));
        table.is_some_and(|t| self.fanout.find_in(&range, t, id) == Some(true))
    }
}

/// The ids of `wanted` (sorted, distinct) that none of `packs` holds, in order.
async fn absent_from_packs(
    store: &dyn Store,
    packs: &[ObjectId],
    mut wanted: Vec<ObjectId>,
) -> Result<Vec<ObjectId>, MirrorError> {
    for pack in packs {
        if wanted.is_empty() {
            break;
        }
        let key = layout::idx_key(pack);
        let head = store.get_range(&key, 0, FANOUT_END).await?;
        let fanout = Fanout::parse(&head).map_err(|e| damaged_index(&key, e))?;
        let mut found = HashSet::new();
        // The reads come in id order, as `wanted` is: each covers the next run of ids.
        let mut next = 0;
        for read in fanout.plan_reads(&wanted, MERGE_GAP, MAX_READ) {
            let table = store
                .get_range(&key, read.start, read.end - read.start)
                .await?;
            while let Some(id) = wanted.get(next) {
                match fanout.find_in(&read, &table, id) {
                    Some(true) => {
                        found.insert(*id);
                    }
                    Some(false) => {}
                    None => break,
                }
                next += 1;
            }
        }
        wanted.retain(|id| !found.contains(id));
    }
    Ok(wanted)
}

fn damaged_index(what: &str, problem: LookupError) -> MirrorError {
    MirrorError::DamagedIndex {
        index: what.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests;
