//! A ref as git names it: the record a ref advertisement yields ([`crate::git::upload_pack`]) and the dumb-HTTP
//! layout publishes ([`crate::git::layout`]).

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
