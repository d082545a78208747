//! Finding a repository's `lfs.url` in the `.lfsconfig` at the tip of its default branch: the commit's root
//! tree, the tree's `.lfsconfig` entry, and the `url` of its `[lfs]` section (git-config syntax). Anything
//! malformed means "no setting here", never an error: the default endpoint then applies.

use crate::git::links::LinkParser;
use crate::git::oid::{ObjectId, ObjectKind};

/// The file git-lfs reads repository-wide settings from, at the root of the tree.
pub const LFSCONFIG: &[u8] = b".lfsconfig";
/// Largest commit, root tree or `.lfsconfig` read to find the setting.
pub const MAX_OBJECT_BYTES: u64 = 1 << 20;

/// The root tree a commit names (its first line, `tree <40 hex>`).
pub fn commit_tree(commit: &[u8]) -> Option<ObjectId> {
    let hex = commit.strip_prefix(b"tree ")?.get(..40)?;
    (commit.get(45) == Some(&b'\n'))
        .then(|| ObjectId::from_hex(hex).ok())
        .flatten()
}

/// The blob id of the regular file `name` in a tree object's content (`None` in a malformed tree); the same
/// parse as the tree's while its links are collected ([`LinkParser::watching`]).
pub fn tree_file(tree: &[u8], name: &'static [u8]) -> Option<ObjectId> {
    let mut parser = LinkParser::new(ObjectKind::Tree).watching(name);
    parser.update(tree, &mut |_| {}).ok()?;
    parser.finish(&mut |_| {}).ok()?;
    parser.watched()
}

/// The value of `lfs.url` in a git-config text (the last one given, as git reads it), unquoted.
pub fn lfs_url(config: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(config).ok()?;
    let mut in_lfs = false;
    let mut url = None;
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(section) = line.strip_prefix('[') {
            let name = section.split(']').next().unwrap_or_default().trim();
            in_lfs = name.eq_ignore_ascii_case("lfs");
            continue;
        }
        if !in_lfs || line.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("url") {
            url = Some(config_value(value.trim()));
        }
    }
    url.filter(|u| !u.is_empty())
}

/// A git-config value: a comment after `#` or `;` outside quotes dropped, double quotes removed.
fn config_value(raw: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in raw.chars() {
        match c {
            '"' => quoted = !quoted,
            '#' | ';' if !quoted => break,
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests;
