//! The files a dumb-HTTP reader needs, rendered and parsed.
//!
//! A mirror is a bare repository laid out under a prefix: `HEAD`, `info/refs`, `packed-refs`,
//! `objects/info/packs` and `objects/pack/pack-<hash>.{pack,idx}`. This module turns the desired state (refs, HEAD,
//! pack names) into the exact bytes `git update-server-info` and `git pack-refs` would write, and parses what an
//! earlier run published. It does no I/O, so the formats are tested without a store.

use crate::git::oid::ObjectId;
use crate::text::untrusted;
use std::collections::BTreeMap;

/// Key of the ref list dumb clients read first.
pub const INFO_REFS: &str = "info/refs";
/// Key of the symbolic HEAD.
pub const HEAD: &str = "HEAD";
/// Key of the pack list.
pub const PACKS: &str = "objects/info/packs";
/// Key of the ref file a synced copy of the mirror uses as a bare repository.
pub const PACKED_REFS: &str = "packed-refs";
/// An empty marker so that a synced copy has a `refs/` directory (S3 has no empty directories).
pub const REFS_KEEP: &str = "refs/.keep";
/// Folder of the pack files.
pub const PACK_DIR: &str = "objects/pack/";
/// Key prefix of packs still being uploaded under a temporary name (dumb clients never look for these).
pub const INCOMING_PREFIX: &str = "objects/pack/incoming-";

/// The refs this module renders and parses.
pub use crate::git::refs::Ref;

/// What HEAD says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// `ref: <name>`: a branch.
    Symbolic(String),
    /// A detached object id.
    Detached(ObjectId),
}

/// Errors in files an earlier run (or someone else) left under the prefix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// A line of `info/refs` is not `<oid>\t<refname>`.
    #[error("malformed info/refs line {line}: \"{text}\"")]
    InfoRefs {
        /// 1-based line number.
        line: usize,
        /// The line, made safe to show.
        text: String,
    },
    /// A line of `objects/info/packs` is not `P pack-<hex>.pack`.
    #[error("malformed objects/info/packs line {line}: \"{text}\"")]
    Packs {
        /// 1-based line number.
        line: usize,
        /// The line, made safe to show.
        text: String,
    },
}

/// Most characters of a malformed line quoted in a [`LayoutError`].
const MAX_LINE_CHARS: usize = 120;

/// Sorts refs by name bytes, the order git writes them in.
pub fn sort_refs(refs: &mut [Ref]) {
    refs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
}

/// `info/refs` as `git update-server-info` writes it: `<oid>\t<name>\n`, plus `<peeled>\t<name>^{}\n` after
/// annotated tags. `refs` must be sorted ([`sort_refs`]).
pub fn render_info_refs(refs: &[Ref]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * 64);
    for r in refs {
        out.extend_from_slice(format!("{}\t{}\n", r.oid, r.name).as_bytes());
        if let Some(p) = r.peeled {
            out.extend_from_slice(format!("{}\t{}^{{}}\n", p, r.name).as_bytes());
        }
    }
    out
}

/// The refs named in an `info/refs` file (peeled lines fold into their tag).
pub fn parse_info_refs(data: &[u8]) -> Result<Vec<Ref>, LayoutError> {
    let mut refs: Vec<Ref> = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || LayoutError::InfoRefs {
            line: i + 1,
            text: untrusted(line, MAX_LINE_CHARS),
        };
        let tab = line.iter().position(|&b| b == b'\t').ok_or_else(bad)?;
        let oid = ObjectId::from_hex(&line[..tab]).map_err(|_| bad())?;
        let name = std::str::from_utf8(&line[tab + 1..]).map_err(|_| bad())?;
        if let Some(tag) = name.strip_suffix("^{}") {
            match refs.last_mut() {
                Some(last) if last.name == tag && last.peeled.is_none() => last.peeled = Some(oid),
                _ => return Err(bad()),
            }
        } else if name.starts_with("refs/") {
            refs.push(Ref {
                name: name.to_owned(),
                oid,
                peeled: None,
            });
        } else {
            return Err(bad());
        }
    }
    Ok(refs)
}

/// `packed-refs` as `git pack-refs` writes it (fully peeled, sorted). `refs` must be sorted.
pub fn render_packed_refs(refs: &[Ref]) -> Vec<u8> {
    let mut out = b"# pack-refs with: peeled fully-peeled sorted \n".to_vec();
    for r in refs {
        out.extend_from_slice(format!("{} {}\n", r.oid, r.name).as_bytes());
        if let Some(p) = r.peeled {
            out.extend_from_slice(format!("^{p}\n").as_bytes());
        }
    }
    out
}

/// The `HEAD` file.
pub fn render_head(head: &Head) -> Vec<u8> {
    match head {
        Head::Symbolic(name) => format!("ref: {name}\n").into_bytes(),
        Head::Detached(oid) => format!("{oid}\n").into_bytes(),
    }
}

/// The file name of a pack, `pack-<hex>.pack`.
pub fn pack_file_name(checksum: &ObjectId) -> String {
    format!("pack-{checksum}.pack")
}

/// The key of a pack's data file.
pub fn pack_key(checksum: &ObjectId) -> String {
    format!("{PACK_DIR}pack-{checksum}.pack")
}

/// The key of a pack's index.
pub fn idx_key(checksum: &ObjectId) -> String {
    format!("{PACK_DIR}pack-{checksum}.idx")
}

/// `objects/info/packs`: one `P <name>` line per pack, then a blank line, as `git update-server-info` writes it.
pub fn render_packs(packs: &[ObjectId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packs.len() * 52 + 1);
    for p in packs {
        out.extend_from_slice(format!("P {}\n", pack_file_name(p)).as_bytes());
    }
    out.push(b'\n');
    out
}

/// The packs listed in `objects/info/packs`, in order, without duplicates.
pub fn parse_packs(data: &[u8]) -> Result<Vec<ObjectId>, LayoutError> {
    let mut packs = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let id = line
            .strip_prefix(b"P pack-")
            .and_then(|rest| rest.strip_suffix(b".pack"))
            .and_then(|hex| ObjectId::from_hex(hex).ok())
            .ok_or_else(|| LayoutError::Packs {
                line: i + 1,
                text: untrusted(line, MAX_LINE_CHARS),
            })?;
        if !packs.contains(&id) {
            packs.push(id);
        }
    }
    Ok(packs)
}

/// The pack id in a key such as `objects/pack/pack-<hex>.pack` or `.idx`, if it is one.
pub fn pack_id_of_key(key: &str) -> Option<ObjectId> {
    let name = key.strip_prefix(PACK_DIR)?.strip_prefix("pack-")?;
    let hex = name
        .strip_suffix(".pack")
        .or_else(|| name.strip_suffix(".idx"))?;
    hex.parse().ok()
}

/// Refs keyed by name, for comparing two states.
pub fn refs_by_name(refs: &[Ref]) -> BTreeMap<&str, &Ref> {
    refs.iter().map(|r| (r.name.as_str(), r)).collect()
}

#[cfg(test)]
mod tests;
