//! A ref as git names it: the record a ref advertisement yields ([`crate::git::upload_pack`]) and the dumb-HTTP
//! layout publishes ([`crate::git::layout`]), and the rules a ref's name must follow ([`is_valid_name`]).

use crate::git::oid::ObjectId;

/// One ref: its name, the object it points at and, for an annotated tag, the object the tag finally points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    /// Full name, always starting with `refs/` (e.g. `refs/heads/main`).
    pub name: String,
    /// The object the ref points at.
    pub oid: ObjectId,
    /// For an annotated tag: the object it finally peels to (from the `^{}` line of an advertisement or
    /// `info/refs`).
    pub peeled: Option<ObjectId>,
}

/// Whether `name` is a ref name git can store (the rules of `git check-ref-format`) and lives under `refs/`:
/// valid UTF-8 (git itself allows other bytes, which this mirror cannot publish), no component empty (so no `//`
/// and no leading or trailing `/`), starting with `.` or ending with `.lock`; no `..`, no `@{`, no trailing `.`,
/// and no ASCII control character, space, `~`, `^`, `:`, `?`, `*`, `[` or `\\`.
pub fn is_valid_name(name: &[u8]) -> bool {
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    let bad_char = |c: char| c.is_ascii_control() || " ~^:?*[\\".contains(c);
    let bad_component = |c: &str| c.is_empty() || c.starts_with('.') || c.ends_with(".lock");
    name.starts_with("refs/")
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("@{")
        && !name.contains(bad_char)
        && !name.split('/').any(bad_component)
}

#[cfg(test)]
mod tests;
