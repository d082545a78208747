//! The outcome of mirroring each mapping, as the CLI prints it and the Lambda function returns it.

use std::fmt;

/// Which path a mirror run took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorPath {
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

impl fmt::Display for MirrorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            MirrorPath::NoOp => "no-op",
            MirrorPath::Full => "full",
            MirrorPath::Incremental => "incremental",
            MirrorPath::RefsOnly => "refs-only",
            MirrorPath::Compaction => "compaction",
            MirrorPath::NotStarted => "not-started",
        };
        f.write_str(s)
    }
}

/// What happened to one mapping.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RepoReport {
    /// Source URL (credentials removed).
    pub source: String,
    /// Target as given.
    pub target: String,
    /// The path taken.
    pub path: MirrorPath,
    /// Refs published (or already in place).
    pub refs: usize,
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
            None => write!(
                f,
                "{} -> {}: {}, {} refs, {} objects, {} pack bytes, {} store requests, {} ms",
                self.source,
                self.target,
                self.path,
                self.refs,
                self.objects,
                self.pack_bytes,
                self.store_requests,
                self.duration_ms
            ),
        }
    }
}
