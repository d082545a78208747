//! What to mirror and how: mappings and run options shared by the library, the CLI and the Lambda function.

use crate::progress::Progress;
use crate::store::S3Options;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One repository to mirror: a smart-HTTP source and a target (`s3://bucket/prefix` or a local directory).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The source repository URL (`https://host/owner/repo[.git]`).
    pub source: String,
    /// Where the mirror lives: `s3://bucket/prefix` or a directory path.
    pub target: String,
}

/// Current wall-clock time; injectable so that garbage-collection grace periods can be tested.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Options of a mirror run.
#[derive(Clone)]
pub struct MirrorOptions {
    /// Memory the run may use for one repository's pack processing (buffers, caches), in bytes.
    pub memory_budget: u64,
    /// How many mappings are processed at once.
    pub concurrency: usize,
    /// How S3 targets are reached.
    pub s3: S3Options,
    /// A token for private sources (sent as HTTP Basic password).
    pub token: Option<String>,
    /// No mapping starts after `deadline - min_time_to_start`; one still running at the deadline is stopped
    /// cleanly (upload aborted, nothing new published) and reported as failed.
    pub deadline: Option<Instant>,
    /// Time a mapping needs at least; it is not started with less left before `deadline`.
    pub min_time_to_start: Duration,
    /// Connection timeout for sources.
    pub connect_timeout: Duration,
    /// Longest silence tolerated while reading from a source.
    pub idle_timeout: Duration,
    /// Ref name prefixes to mirror (default: everything under `refs/`).
    pub ref_prefixes: Vec<String>,
    /// When the pack list is this long or longer, the next change does a full fetch that replaces it.
    pub compaction_threshold: usize,
    /// How long an unlisted pack is kept before deletion (in-flight clones may still read it).
    pub gc_grace: Duration,
    /// Wall clock used for grace periods.
    pub clock: Clock,
    /// Progress observer.
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for MirrorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorOptions")
            .field("memory_budget", &self.memory_budget)
            .field("concurrency", &self.concurrency)
            .field("s3", &self.s3)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("deadline", &self.deadline)
            .field("ref_prefixes", &self.ref_prefixes)
            .field("compaction_threshold", &self.compaction_threshold)
            .field("gc_grace", &self.gc_grace)
            .finish_non_exhaustive()
    }
}

/// The smallest memory budget accepted: the store's upload buffers ([`crate::store::UPLOAD_BUFFER_BYTES`]) plus
/// the least working memory a mirror run needs.
pub const MIN_MEMORY_BUDGET: u64 = 24 << 20;

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            memory_budget: 256 << 20,
            concurrency: 4,
            s3: S3Options::default(),
            token: None,
            deadline: None,
            min_time_to_start: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            ref_prefixes: vec!["refs/".to_owned()],
            compaction_threshold: 16,
            gc_grace: Duration::from_secs(24 * 3600),
            clock: Arc::new(SystemTime::now),
            progress: None,
        }
    }
}

impl MirrorOptions {
    /// Sets the memory budget in MiB (never below [`MIN_MEMORY_BUDGET`]).
    pub fn with_memory_budget_mib(mut self, mib: u64) -> Self {
        self.memory_budget = mib.saturating_mul(1 << 20).max(MIN_MEMORY_BUDGET);
        self
    }

    /// Whether a ref of this name is mirrored.
    pub fn wants_ref(&self, name: &str) -> bool {
        self.ref_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
    }
}
