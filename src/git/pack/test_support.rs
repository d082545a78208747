//! git's own view of a pack (`git verify-pack -v`, `git show-index`) read into this crate's types, for the pack,
//! index and resolver tests to compare against. The packs themselves, and the repositories they come from, are
//! made by `testkit::pack`; this stays here because it speaks [`ObjectId`].

use crate::git::oid::ObjectId;
use std::collections::HashMap;
use std::path::Path;
use testkit::git::{git, git_with_input};
use testkit::pack::GitPack;

/// One object as `git verify-pack -v` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The object's id.
    pub oid: ObjectId,
    /// Its type name (the resolved type for deltas).
    pub kind: String,
    /// The size git reports.
    pub size: u64,
    /// Bytes the entry occupies in the pack.
    pub packed_len: u64,
    /// Id of the delta base, for deltas.
    pub base: Option<ObjectId>,
}

/// `git verify-pack -v` of the pack (whose `.idx` sits next to it), keyed by entry offset.
pub fn verify_pack(pack: &GitPack) -> HashMap<u64, Verified> {
    let out = git(
        [
            "verify-pack",
            "-v",
            pack.pack_path.to_str().expect("utf-8 path"),
        ],
        pack.pack_path.parent().expect("parent dir"),
    );
    let mut map = HashMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(Ok(oid)) = f.first().map(|h| h.parse::<ObjectId>()) else {
            continue;
        };
        let num = |i: usize| f[i].parse::<u64>().expect("number");
        let base = f.get(6).map(|b| b.parse().expect("base id"));
        map.insert(
            num(4),
            Verified {
                oid,
                kind: f[1].to_string(),
                size: num(2),
                packed_len: num(3),
                base,
            },
        );
    }
    map
}

/// `git show-index` of an `.idx`: entry offset to (id, CRC-32).
pub fn show_index(dir: &Path, idx: &[u8]) -> HashMap<u64, (ObjectId, u32)> {
    let out = git_with_input(["show-index", "--object-format=sha1"], dir, idx);
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let crc =
                u32::from_str_radix(f[2].trim_matches(|c| c == '(' || c == ')'), 16).expect("crc");
            (
                f[0].parse().expect("offset"),
                (f[1].parse().expect("id"), crc),
            )
        })
        .collect()
}
