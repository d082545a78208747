//! Reading one object of a resolved pack by id: the few objects a run needs whole after delta resolution (the
//! default branch's commit, its root tree, its `.lfsconfig`), rebuilt from its delta chain without the resolver's
//! caches.

use super::{
    entry_end, entry_error, read_exact, EntryProblem, PackReader, ResolveError, MAX_CHAIN_DEPTH,
};
use crate::git::delta;
use crate::git::oid::{hash_object, ObjectId, ObjectKind};
use crate::git::pack::entry::{Entries, Entry, EntryKind};
use crate::git::pack::inflate::EntryInflater;

/// The kind and content of the object `oid` in a resolved pack (`entries` in pack order, every id set), read
/// from `source`. `None` if no entry has that id, or if an object or delta on its chain is bigger than
/// `max_bytes` (so a caller asking for small objects never holds a big one).
pub async fn read_object(
    entries: &Entries,
    source: &dyn PackReader,
    oid: &ObjectId,
    max_bytes: u64,
) -> Result<Option<(ObjectKind, Vec<u8>)>, ResolveError> {
    let Some(first) = entries.iter().position(|e| e.oid() == Some(*oid)) else {
        return Ok(None);
    };
    let mut chain = vec![first];
    let mut at = first;
    let kind = loop {
        let e = entries.get(at);
        if e.size() > max_bytes || e.result_size() > max_bytes {
            return Ok(None);
        }
        if let EntryKind::Base(kind) = e.kind() {
            break kind;
        }
        // Resolution recorded the base entry of every delta, OFS or REF.
        at = e
            .base()
            .map(|b| b as usize)
            .filter(|&b| b < entries.len())
            .ok_or_else(|| entry_error(&e, EntryProblem::Unresolved))?;
        chain.push(at);
        if chain.len() > MAX_CHAIN_DEPTH + 1 {
            return Err(entry_error(
                &entries.get(first),
                EntryProblem::ChainTooDeep(MAX_CHAIN_DEPTH),
            ));
        }
    };
    let mut inflater = EntryInflater::new();
    let mut data = read_whole(&entries.get(at), source, &mut inflater).await?;
    for &i in chain.iter().rev().skip(1) {
        let e = entries.get(i);
        let delta = read_whole(&e, source, &mut inflater).await?;
        data = delta::apply(&data, &delta).map_err(|err| entry_error(&e, err))?;
    }
    if hash_object(kind, &data) != *oid {
        return Err(entry_error(&entries.get(first), EntryProblem::Unresolved));
    }
    Ok(Some((kind, data)))
}

/// Reads and inflates one entry's data.
async fn read_whole(
    e: &Entry,
    source: &dyn PackReader,
    inflater: &mut EntryInflater,
) -> Result<Vec<u8>, ResolveError> {
    let len = entry_end(e).saturating_sub(e.data_offset());
    let data = read_exact(source, e.data_offset(), len).await?;
    inflater
        .inflate_whole(&data, e.size())
        .map_err(|p| entry_error(e, p))
}
