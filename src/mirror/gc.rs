//! Deleting packs nobody lists any more, after a grace period.
//!
//! Dumb clients read `objects/info/packs` and then fetch the packs it names, possibly minutes later, so a pack that
//! compaction unlisted (or that a crashed run stored but never listed) is deleted only after it has been seen
//! unlisted for `grace`. The first sighting is recorded in a small state object, [`STATE`]; S3's own timestamps
//! cannot tell when a pack *stopped* being listed. A pack that is listed again is forgotten, and nothing listed at
//! the moment of deletion is ever deleted. Uploads of a temporary pack that a run killed hard never completed
//! nor aborted (an S3 multipart upload, a directory's temporary file) are discarded after the same grace, counted
//! from both their start and the first run that saw them; those under the calling run's own upload keys, which
//! only a retried request can have left open, are discarded at once.

use crate::git::layout;
use crate::git::oid::ObjectId;
use crate::store::{Store, StoreError};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Key of the state object: when each unlisted pack was first seen unlisted (seconds since the epoch).
pub const STATE: &str = "objects/info/mirror-gc.json";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
struct State {
    /// Pack id (hex) to the time it was first seen unlisted.
    unlisted: BTreeMap<String, u64>,
    /// Unfinished upload of a temporary pack ([`PendingUpload::id`]) to the time a run first saw it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    uploads: BTreeMap<String, u64>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What [`collect`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// How many packs were deleted.
    pub packs_deleted: usize,
    /// Whether the unfinished uploads were listed, and so those under the run's own upload keys discarded (or,
    /// where discarding failed, recorded for a later run).
    pub uploads_listed: bool,
}

/// Records newly unlisted packs, deletes those unlisted for longer than `grace` (re-checking the live pack list
/// first), deletes temporary packs older than `grace` and discards unfinished uploads of them as old, and at once
/// those under `own_uploads`: the keys of the uploads the calling run started and has since completed or
/// aborted, under which anything still open was left by a retried request (keys unique to the run, so no other
/// run can be writing there).
pub async fn collect(
    store: &dyn Store,
    listed: &[ObjectId],
    own_uploads: &[String],
    now: SystemTime,
    grace: Duration,
) -> Result<Collected, StoreError> {
    let files = store.list(layout::PACK_DIR).await?;
    let mut present: BTreeSet<ObjectId> = BTreeSet::new();
    for f in &files {
        if let Some(id) = layout::pack_id_of_key(&f.key) {
            present.insert(id);
        } else if f.key.starts_with(layout::INCOMING_PREFIX)
            && now
                .duration_since(f.last_modified)
                .is_ok_and(|age| age >= grace)
        {
            store.delete(&f.key).await?;
        }
    }
    let state_obj = store.get(STATE).await?;
    let old: State = state_obj
        .as_ref()
        .and_then(|o| serde_json::from_slice(&o.body).ok())
        .unwrap_or_default();
    let mut state = State::default();
    let mut expired = Vec::new();
    for id in present.iter().filter(|id| !listed.contains(id)) {
        let hex = id.to_hex();
        let since = old.unlisted.get(&hex).copied().unwrap_or_else(|| secs(now));
        if secs(now).saturating_sub(since) >= grace.as_secs() {
            expired.push(*id);
        } else {
            state.unlisted.insert(hex, since);
        }
    }
    let uploads_listed =
        discard_abandoned_uploads(store, own_uploads, &old, &mut state, now, grace).await;
    let mut deleted = 0;
    if !expired.is_empty() {
        let live = match store.get(layout::PACKS).await? {
            Some(o) => {
                layout::parse_packs(&o.body).unwrap_or_else(|_| present.iter().copied().collect())
            }
            None => Vec::new(),
        };
        for id in expired {
            if live.contains(&id) {
                continue;
            }
            store.delete(&layout::pack_key(&id)).await?;
            store.delete(&layout::idx_key(&id)).await?;
            deleted += 1;
        }
    }
    if state != old {
        let body = serde_json::to_vec(&state).unwrap_or_default();
        // Losing the race is safe: sightings not recorded now are recorded by a later run, which only delays deletion.
        super::publish::replace_if_unchanged(store, STATE, state_obj.as_ref(), Bytes::from(body))
            .await?;
    }
    Ok(Collected {
        packs_deleted: deleted,
        uploads_listed,
    })
}

/// Discards the unfinished uploads of temporary packs that a run killed hard left behind: those both started
/// (as the store says) and first seen by a run (as `old` recorded) at least `grace` ago, so that no run still
/// streaming its pack loses its upload even on a store whose start times are wrong (moto reports one fixed
/// date), and those under `own_uploads` at once. The others are recorded in `state`. Returns whether the uploads
/// could be listed. Best effort: a role without the permission to list uploads must not fail a run that has
/// published; a lifecycle rule for incomplete multipart uploads is the fallback.
async fn discard_abandoned_uploads(
    store: &dyn Store,
    own_uploads: &[String],
    old: &State,
    state: &mut State,
    now: SystemTime,
    grace: Duration,
) -> bool {
    let pending = match store.pending_uploads(layout::INCOMING_PREFIX).await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::warn!(store = %store.describe(), error = %e, "cannot list unfinished uploads");
            return false;
        }
    };
    let old_enough = |since: u64| secs(now).saturating_sub(since) >= grace.as_secs();
    for upload in pending {
        let first_seen = old.uploads.get(&upload.id).copied().unwrap_or(secs(now));
        let own = own_uploads.contains(&upload.key);
        let abandoned = old_enough(first_seen) && old_enough(secs(upload.started));
        if !(own || abandoned) {
            state.uploads.insert(upload.id, first_seen);
            continue;
        }
        match store.discard_upload(&upload).await {
            Ok(()) if own => tracing::info!(store = %store.describe(), key = %upload.key,
                "aborted an upload a retried request left open"),
            Ok(()) => tracing::info!(store = %store.describe(), key = %upload.key,
                "discarded an upload an earlier run left unfinished"),
            Err(e) => {
                tracing::warn!(store = %store.describe(), error = %e, "cannot discard an unfinished upload");
                state.uploads.insert(upload.id, first_seen);
            }
        }
    }
    true
}
