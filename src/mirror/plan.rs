//! Planning a run: what the mirror should publish, and what to fetch to get there from what it publishes now.
//!
//! Pure: values in, a plan out, no store and no network, so every decision is unit-tested on its own. The run
//! (`mod.rs`) reads the source's advertisement and the mirror's files, asks this module, and carries the plan out.
//! The decisions, in the order a run meets them:
//!
//! 1. [`desired_state`]: the refs to publish (the advertised ones the options select) and a `HEAD` that a clone
//!    can check out ([`choose_head`]).
//! 2. **No-op** when the mirror already publishes exactly that `info/refs` and `HEAD` ([`Desired::is_published`]):
//!    the run stops having read two objects from the store.
//! 3. Otherwise [`plan`], from what the mirror publishes ([`Published`]):
//!    * **full** when it has no usable refs (first run, no pack list, or an `info/refs` it cannot read): ask for
//!      every tip and send no haves, so the pack holds everything;
//!    * **compaction** when its pack list has reached the compaction threshold: a full fetch whose pack replaces
//!      the packs listed;
//!    * **incremental** when the source has tips the mirror's refs do not point at: ask for those, and send the
//!      mirror's tips as haves so that the pack holds only new objects;
//!    * **refs-only** when it has none (deleted or moved refs, a new tag on an old commit): nothing to fetch.
//! 4. [`Plan::kind_after_fetch`]: an incremental run whose pack comes back empty (the source found every wanted
//!    object reachable from the haves) published only refs.

use crate::git::layout::{self, Head, LayoutError, Ref};
use crate::git::oid::ObjectId;
use crate::git::upload_pack::Advertisement;
use crate::options::MirrorOptions;
use crate::report::RunKind;
use std::collections::HashSet;

/// The refs and HEAD the mirror should publish, and the bytes of the files that publish them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Desired {
    /// The refs, sorted as `info/refs` lists them.
    pub(super) refs: Vec<Ref>,
    /// What `HEAD` names.
    pub(super) head: Head,
    /// The `info/refs` file for `refs`.
    pub(super) info_refs: Vec<u8>,
    /// The `HEAD` file for `head`.
    pub(super) head_file: Vec<u8>,
}

impl Desired {
    /// Whether the mirror already publishes exactly these refs and this HEAD, given the bodies of its `info/refs`
    /// and `HEAD` (`None`: absent).
    pub(super) fn is_published(&self, info_refs: Option<&[u8]>, head: Option<&[u8]>) -> bool {
        info_refs == Some(self.info_refs.as_slice()) && head == Some(self.head_file.as_slice())
    }
}

/// The refs the options select from the source's advertisement, and the HEAD to publish beside them.
pub(super) fn desired_state(adv: &Advertisement, options: &MirrorOptions) -> Desired {
    let mut refs: Vec<Ref> = adv
        .refs
        .iter()
        .filter(|r| options.wants_ref(&r.name))
        .cloned()
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

/// What the mirror publishes when a run that is not a no-op starts, as far as the plan needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Published {
    /// The packs `objects/info/packs` lists.
    pub(super) packs: Vec<ObjectId>,
    /// The refs `info/refs` lists, when there is a pack list beside it; `None` makes the run fetch everything.
    pub(super) refs: Option<Vec<Ref>>,
}

impl Published {
    /// Reads the state from the bodies of `objects/info/packs` and `info/refs` (`None`: the key is absent).
    ///
    /// A damaged pack list is an error: the run could not tell which packs its refs rely on. A damaged `info/refs`
    /// only costs a full fetch: it is handed to `damaged_refs` (for the log) and treated as absent. Refs without a
    /// pack list count as absent too, since nothing says where their objects are.
    pub(super) fn parse(
        packs: Option<&[u8]>,
        info_refs: Option<&[u8]>,
        damaged_refs: impl FnOnce(LayoutError),
    ) -> Result<Self, LayoutError> {
        let listed = packs.map(layout::parse_packs).transpose()?;
        let refs = match (&listed, info_refs) {
            (Some(_), Some(body)) => match layout::parse_info_refs(body) {
                Ok(refs) => Some(refs),
                Err(e) => {
                    damaged_refs(e);
                    None
                }
            },
            _ => None,
        };
        Ok(Published {
            packs: listed.unwrap_or_default(),
            refs,
        })
    }
}

/// What a run that is not a no-op fetches, and the kind of run that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// [`RunKind::Full`], [`RunKind::Compaction`], [`RunKind::Incremental`] or [`RunKind::RefsOnly`].
    pub(super) kind: RunKind,
    /// Tips to ask the source for, each once; nothing is fetched when empty.
    pub(super) wants: Vec<ObjectId>,
    /// Tips the mirror has, each once, sent so that the pack holds only new objects; empty on full and compaction
    /// runs, whose pack must hold everything its refs reach.
    pub(super) haves: Vec<ObjectId>,
}

impl Plan {
    /// The kind of run once the fetch is done: an incremental run that got no pack (new refs at objects the
    /// mirror already had, e.g. a tag on an old commit) published only refs.
    pub(super) fn kind_after_fetch(&self, got_pack: bool) -> RunKind {
        match self.kind {
            RunKind::Incremental if !got_pack => RunKind::RefsOnly,
            kind => kind,
        }
    }
}

/// Decides what to fetch to publish `desired` on top of what the mirror publishes (see the module doc).
pub(super) fn plan(desired: &Desired, published: &Published, options: &MirrorOptions) -> Plan {
    let every_tip = || unique(desired.refs.iter().map(|r| r.oid));
    let Some(refs) = &published.refs else {
        return Plan {
            kind: RunKind::Full,
            wants: every_tip(),
            haves: Vec::new(),
        };
    };
    if published.packs.len() >= options.compaction_threshold.max(1) {
        return Plan {
            kind: RunKind::Compaction,
            wants: every_tip(),
            haves: Vec::new(),
        };
    }
    let haves = unique(refs.iter().map(|r| r.oid));
    let have_set: HashSet<ObjectId> = haves.iter().copied().collect();
    let wants = unique(
        desired
            .refs
            .iter()
            .map(|r| r.oid)
            .filter(|o| !have_set.contains(o)),
    );
    let kind = if wants.is_empty() {
        RunKind::RefsOnly
    } else {
        RunKind::Incremental
    };
    Plan { kind, wants, haves }
}

/// The plan that repairs a mirror verification found broken: fetch everything and, as a compaction does,
/// replace every listed pack with the new one.
pub(super) fn repair(desired: &Desired) -> Plan {
    Plan {
        kind: RunKind::Compaction,
        wants: unique(desired.refs.iter().map(|r| r.oid)),
        haves: Vec::new(),
    }
}

/// The ids in their first-seen order, each once.
fn unique(ids: impl Iterator<Item = ObjectId>) -> Vec<ObjectId> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

#[cfg(test)]
mod tests;
