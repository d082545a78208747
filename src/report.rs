//! The outcome of mirroring each mapping, as the CLI prints it and the Lambda function returns it.

use std::fmt;

/// The kind of run a mapping got: what the mirror had to do to catch up with its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Source and mirror already agreed; nothing was written.
    NoOp,
    /// First mirror of the repository: one pack with everything.
    Full,
    /// A pack of only the new objects was added.
    Incremental,
    /// Refs changed but no new objects were needed (e.g. deletions).
    RefsOnly,
    /// A full fetch that replaced the pack list.
    Compaction,
    /// The mapping was not started (deadline) or failed before choosing.
    NotStarted,
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            RunKind::NoOp => "no-op",
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
            RunKind::RefsOnly => "refs-only",
            RunKind::Compaction => "compaction",
            RunKind::NotStarted => "not-started",
        };
        f.write_str(s)
    }
}

/// The former name of [`RunKind`] ("path" said little in a crate full of file paths, URL paths and keys).
#[deprecated(since = "0.1.0", note = "renamed to `RunKind`")]
pub type MirrorPath = RunKind;

/// What happened to one mapping.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RepoReport {
    /// Source URL (credentials removed).
    pub source: String,
    /// Target as given.
    pub target: String,
    /// The kind of run. Serialized twice: as `kind`, and as `path`, its former name, which readers of the JSON
    /// report may still use (deprecated; to be removed in a later version).
    #[serde(flatten, serialize_with = "kind_and_deprecated_path")]
    pub kind: RunKind,
    /// Refs published (or already in place).
    pub refs: usize,
    /// Bytes the source's refs took: its advertisement and, with protocol v2, the `ls-refs` answer.
    pub advertisement_bytes: u64,
    /// Objects in the new pack.
    pub objects: u64,
    /// Bytes of the new pack.
    pub pack_bytes: u64,
    /// Requests made to the store.
    pub store_requests: u64,
    /// Packs deleted by garbage collection.
    pub packs_deleted: usize,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What happened to the LFS objects the new pack's pointers name; absent when there was no new pack or LFS
    /// is turned off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfs: Option<LfsReport>,
    /// What verification ([`crate::MirrorOptions::verify`]) found broken in the published mirror, which this
    /// run repaired with a full fetch replacing every listed pack; absent when nothing was (or nothing checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<String>,
}

/// The LFS objects of one run: those copied, those the mirror already had, and (when tolerated) those it could
/// not mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LfsReport {
    /// Distinct LFS pointers in the new pack.
    pub pointers: u64,
    /// Objects downloaded and stored.
    pub objects_copied: u64,
    /// Bytes of those objects.
    pub bytes_copied: u64,
    /// Objects the mirror already held.
    pub objects_skipped: u64,
    /// Bytes of those objects.
    pub bytes_skipped: u64,
    /// Objects that could not be mirrored (only when missing objects are tolerated; otherwise the run fails).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<LfsFailure>,
}

/// An LFS object that could not be mirrored, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LfsFailure {
    /// The object's id (SHA-256, hex).
    pub oid: String,
    /// Its size as the pointer declares it.
    pub size: u64,
    /// What went wrong.
    pub problem: String,
}

impl LfsFailure {
    /// The failure of the object `pointer` names.
    pub fn new(pointer: &crate::git::lfs::Pointer, problem: String) -> Self {
        LfsFailure {
            oid: pointer.oid.to_string(),
            size: pointer.size,
            problem,
        }
    }
}

impl fmt::Display for LfsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LFS object {} ({} bytes): {}",
            self.oid, self.size, self.problem
        )
    }
}

/// Writes a report's kind of run under its name, `kind`, and under its deprecated former name, `path`.
fn kind_and_deprecated_path<S: serde::Serializer>(
    kind: &RunKind,
    out: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = out.serialize_map(Some(2))?;
    map.serialize_entry("kind", kind)?;
    map.serialize_entry("path", kind)?;
    map.end()
}

impl RepoReport {
    /// Whether the mapping succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

impl fmt::Display for RepoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(
                f,
                "{} -> {}: FAILED after {} ms: {e}",
                self.source, self.target, self.duration_ms
            ),
            None => {
                write!(
                    f,
                    "{} -> {}: {}, {} refs, {} objects, {} pack bytes, {} store requests, {} ms",
                    self.source,
                    self.target,
                    self.kind,
                    self.refs,
                    self.objects,
                    self.pack_bytes,
                    self.store_requests,
                    self.duration_ms
                )?;
                match &self.lfs {
                    Some(lfs) => write!(
                        f,
                        ", LFS: {} copied ({} bytes), {} present, {} failed",
                        lfs.objects_copied,
                        lfs.bytes_copied,
                        lfs.objects_skipped,
                        lfs.failed.len()
                    ),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
