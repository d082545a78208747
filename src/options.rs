//! What to mirror and how: mappings and run options shared by the library, the CLI and the Lambda function.
//!
//! [`MirrorOptions`] is everything a run needs; [`Overrides`] is the part of it a user sets, from the command
//! line or in a Lambda request, with its ranges checked in one place. Both fronts map their input to options
//! through [`Overrides::apply`], so a setting means the same on both.

use crate::progress::Progress;
use crate::store::S3Options;
use crate::upstream::{AddressPolicy, RetryPolicy};
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
    /// How failed source requests are retried: the advertisement, and the pack from its start while nothing of
    /// the run is published and the deadline leaves time.
    pub source_retry: RetryPolicy,
    /// Which addresses source requests may go to (default: any but link-local and metadata ones; loopback
    /// allowed).
    pub source_addresses: AddressPolicy,
    /// Largest ref advertisement accepted from a source, in bytes.
    pub max_advertisement_bytes: u64,
    /// Largest pack accepted from a source, in bytes.
    pub max_pack_bytes: u64,
    /// Longest time one mapping may take; it is then stopped like at the `deadline` (nothing new published). A
    /// source that trickles a byte at a time never trips the idle timeout, so only this ends it. Keep it below
    /// `gc_grace` ([`MIN_GC_GRACE_HOURS`] says why).
    pub mapping_time_limit: Option<Duration>,
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
    /// Whether and how LFS objects are mirrored.
    pub lfs: LfsOptions,
    /// Largest object a pack may declare; a bigger one fails the run before any work on it.
    pub max_object_bytes: u64,
    /// Resolving a pack's deltas may inflate and produce at most this many times the pack's size (or
    /// [`MIN_WORK_BYTES`] for small packs) before the run fails: what stops a delta bomb.
    pub max_inflate_ratio: u64,
    /// Verify the published mirror first (every listed pack and index exists, every published ref's object is
    /// in a listed pack) and repair it by a full fetch when it is broken, even if the refs are up to date
    /// ([`crate::RepoReport::repaired`] says what was found).
    pub verify: bool,
}

/// How the LFS objects of a mapping are mirrored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LfsOptions {
    /// Mirror the LFS objects that new pointers name (default: yes).
    pub enabled: bool,
    /// The LFS endpoint, instead of the one derived from the source URL (`<url>.git/info/lfs`).
    pub url: Option<String>,
    /// Publish refs even when some LFS objects cannot be mirrored, listing them in the report.
    pub tolerate_missing: bool,
}

impl Default for LfsOptions {
    fn default() -> Self {
        LfsOptions {
            enabled: true,
            url: None,
            tolerate_missing: false,
        }
    }
}

/// Default [`MirrorOptions::max_object_bytes`]: 4 GiB (GitHub refuses files over 100 MiB).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 4 << 30;
/// Default [`MirrorOptions::max_inflate_ratio`].
pub const DEFAULT_MAX_INFLATE_RATIO: u64 = 1000;
/// Work every pack may take whatever its size: 1 GiB, about a second.
pub const MIN_WORK_BYTES: u64 = 1 << 30;

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
            .field("lfs", &self.lfs)
            .field("max_object_bytes", &self.max_object_bytes)
            .field("max_inflate_ratio", &self.max_inflate_ratio)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// The smallest memory budget accepted: the store's upload buffers ([`crate::store::UPLOAD_BUFFER_BYTES`]) plus
/// the least working memory a mirror run needs.
pub const MIN_MEMORY_BUDGET: u64 = crate::store::UPLOAD_BUFFER_BYTES + (8 << 20);

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
            source_retry: RetryPolicy::default(),
            source_addresses: AddressPolicy::default(),
            max_advertisement_bytes: DEFAULT_MAX_ADVERTISEMENT_MIB << 20,
            max_pack_bytes: DEFAULT_MAX_PACK_MIB << 20,
            mapping_time_limit: None,
            ref_prefixes: vec!["refs/".to_owned()],
            compaction_threshold: 16,
            gc_grace: Duration::from_secs(24 * 3600),
            clock: Arc::new(SystemTime::now),
            progress: None,
            lfs: LfsOptions::default(),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            max_inflate_ratio: DEFAULT_MAX_INFLATE_RATIO,
            verify: false,
        }
    }
}

impl MirrorOptions {
    /// Sets the memory budget in MiB (never below [`MIN_MEMORY_BUDGET`]).
    pub fn with_memory_budget_mib(mut self, mib: u64) -> Self {
        self.memory_budget = mib.saturating_mul(1 << 20).max(MIN_MEMORY_BUDGET);
        self
    }

    /// The most bytes resolving the deltas of a pack of `pack_len` bytes may inflate and produce.
    pub fn max_work_bytes(&self, pack_len: u64) -> u64 {
        pack_len
            .saturating_mul(self.max_inflate_ratio)
            .max(MIN_WORK_BYTES)
    }

    /// Whether a ref of this name is mirrored.
    pub fn wants_ref(&self, name: &str) -> bool {
        self.ref_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
    }
}

/// Default [`Overrides::max_advertisement_mib`]: 256 MiB, a hundred times what real servers send for tens of
/// thousands of refs.
pub const DEFAULT_MAX_ADVERTISEMENT_MIB: u64 = 256;

/// Default [`Overrides::max_pack_mib`]: 100 GiB, above the largest repositories the big hosts serve.
pub const DEFAULT_MAX_PACK_MIB: u64 = 100 << 10;

/// Largest accepted size limit in MiB: S3's largest object, 5 TiB (and far from overflowing bytes in a `u64`).
pub const MAX_SIZE_MIB: u64 = 5 << 20;

/// Smallest accepted [`Overrides::gc_grace_hours`]. Garbage collection deletes a pack that is not listed, and a
/// temporary upload, once it has been seen so for the grace period; a concurrent run stores its pack (first under
/// a temporary name) before it lists it, so the grace must outlast any run's time from its first write to its
/// listing. At 0 another run's collection can delete a pack in the moment before it is listed, leaving a listed
/// pack without its files. An hour covers a Lambda invocation (15 minutes at most) with room to spare; the CLI
/// bounds each mapping's time to stay below the grace.
pub const MIN_GC_GRACE_HOURS: u64 = 1;

/// Largest accepted [`Overrides::gc_grace_hours`]: 100 years. Anything longer is a mistake, and hours beyond
/// `u64::MAX / 3600` would not fit in a [`Duration`].
pub const MAX_GC_GRACE_HOURS: u64 = 100 * 365 * 24;

/// The run options a user may set, each left out keeping the default of the [`MirrorOptions`] it is applied to.
///
/// The CLI builds one from its flags; a Lambda request carries these fields beside `mappings` (deserialized with
/// unknown fields denied). A token is not one of them: secrets do not belong in events, so the CLI sets
/// [`MirrorOptions::token`] itself. Policies that differ between the fronts stay with them: the CLI's flag
/// defaults and path style implied by an endpoint, the Lambda function's memory share and deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Memory budget per repository in MiB, at least 1 (raised to [`MIN_MEMORY_BUDGET`] if below it).
    pub memory_budget_mib: Option<u64>,
    /// How many mappings are mirrored at once, at least 1.
    pub concurrency: Option<usize>,
    /// S3 endpoint (an S3-compatible store): an `http://` or `https://` URL.
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (`endpoint/bucket/key`).
    pub force_path_style: Option<bool>,
    /// S3 storage class of the objects written (`STANDARD_IA`...), not empty.
    pub storage_class: Option<String>,
    /// AWS region of the target buckets, not empty.
    pub region: Option<String>,
    /// Ref name prefixes to mirror, each starting with `refs/`; at least one.
    pub ref_prefixes: Option<Vec<String>>,
    /// Pack count at which the next change compacts the mirror into one pack (0 counts as 1).
    pub compaction_threshold: Option<usize>,
    /// Hours an unlisted pack is kept before deletion, from [`MIN_GC_GRACE_HOURS`] to [`MAX_GC_GRACE_HOURS`].
    pub gc_grace_hours: Option<u64>,
    /// Mirror LFS objects ([`LfsOptions::enabled`]).
    pub lfs: Option<bool>,
    /// The LFS endpoint ([`LfsOptions::url`]): an `http://` or `https://` URL. It belongs to one repository, so
    /// a request (or command line) that sets it names one mapping.
    pub lfs_url: Option<String>,
    /// Publish refs even when LFS objects are missing ([`LfsOptions::tolerate_missing`]).
    pub lfs_tolerate_missing: Option<bool>,
    /// Largest object a pack may declare, in MiB, at least 1.
    pub max_object_mib: Option<u64>,
    /// Most bytes delta resolution may inflate and produce per byte of pack, at least 1.
    pub max_inflate_ratio: Option<u64>,
    /// Largest ref advertisement accepted from a source, in MiB, at least 1 (default
    /// [`DEFAULT_MAX_ADVERTISEMENT_MIB`]).
    pub max_advertisement_mib: Option<u64>,
    /// Largest pack accepted from a source, in MiB, at least 1 (default [`DEFAULT_MAX_PACK_MIB`]).
    pub max_pack_mib: Option<u64>,
    /// Verify the published mirror and repair it when broken ([`MirrorOptions::verify`]).
    pub verify: Option<bool>,
}

/// An [`Overrides`] value out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidOverride {
    /// The field at fault, as named in [`Overrides::FIELDS`].
    pub field: &'static str,
    /// What is wrong with its value. Values are quoted in full: a front showing the message to others bounds it.
    pub problem: String,
}

impl Overrides {
    /// The field names, as a Lambda request spells them, in the order their errors are reported.
    pub const FIELDS: [&'static str; 17] = [
        "memory_budget_mib",
        "concurrency",
        "endpoint_url",
        "force_path_style",
        "storage_class",
        "region",
        "ref_prefixes",
        "compaction_threshold",
        "gc_grace_hours",
        "lfs",
        "lfs_url",
        "lfs_tolerate_missing",
        "max_object_mib",
        "max_inflate_ratio",
        "max_advertisement_mib",
        "max_pack_mib",
        "verify",
    ];

    /// Checks every value's range; the error names the first field at fault, in [`Overrides::FIELDS`] order.
    pub fn validate(&self) -> Result<(), InvalidOverride> {
        let fail = |field, problem: String| Err(InvalidOverride { field, problem });
        if self.memory_budget_mib == Some(0) {
            return fail("memory_budget_mib", "must be at least 1".to_owned());
        }
        if self.concurrency == Some(0) {
            return fail("concurrency", "must be at least 1".to_owned());
        }
        if let Some(problem) = self.endpoint_url.as_deref().and_then(http_url_problem) {
            return fail("endpoint_url", problem);
        }
        if self.storage_class.as_deref().is_some_and(str::is_empty) {
            return fail("storage_class", "is empty".to_owned());
        }
        if self.region.as_deref().is_some_and(str::is_empty) {
            return fail("region", "is empty".to_owned());
        }
        if let Some(prefixes) = &self.ref_prefixes {
            if prefixes.is_empty() {
                return fail(
                    "ref_prefixes",
                    "is empty: leave it out to mirror every ref".to_owned(),
                );
            }
            if let Some(prefix) = prefixes.iter().find(|p| !p.starts_with("refs/")) {
                return fail(
                    "ref_prefixes",
                    format!("{prefix:?} does not start with \"refs/\", as every ref name does"),
                );
            }
        }
        if let Some(hours) = self.gc_grace_hours.filter(|&h| h < MIN_GC_GRACE_HOURS) {
            return fail(
                "gc_grace_hours",
                format!(
                    "{hours} is less than {MIN_GC_GRACE_HOURS}: a shorter grace lets one run delete the pack \
                     another run is about to list"
                ),
            );
        }
        if let Some(hours) = self.gc_grace_hours.filter(|&h| h > MAX_GC_GRACE_HOURS) {
            return fail(
                "gc_grace_hours",
                format!("{hours} is more than {MAX_GC_GRACE_HOURS} (100 years)"),
            );
        }
        if let Some(problem) = self.lfs_url.as_deref().and_then(http_url_problem) {
            return fail("lfs_url", problem);
        }
        if self.max_object_mib == Some(0) {
            return fail("max_object_mib", "must be at least 1".to_owned());
        }
        if self.max_inflate_ratio == Some(0) {
            return fail("max_inflate_ratio", "must be at least 1".to_owned());
        }
        for (field, value) in [
            ("max_advertisement_mib", self.max_advertisement_mib),
            ("max_pack_mib", self.max_pack_mib),
        ] {
            match value {
                Some(0) => return fail(field, "must be at least 1".to_owned()),
                Some(mib) if mib > MAX_SIZE_MIB => {
                    return fail(field, format!("{mib} is more than {MAX_SIZE_MIB} (5 TiB)"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `options` with every value given here in place of its own, once [`Overrides::validate`] has passed.
    pub fn apply(self, mut options: MirrorOptions) -> Result<MirrorOptions, InvalidOverride> {
        self.validate()?;
        if let Some(mib) = self.memory_budget_mib {
            options = options.with_memory_budget_mib(mib);
        }
        if let Some(concurrency) = self.concurrency {
            options.concurrency = concurrency;
        }
        if let Some(endpoint) = self.endpoint_url {
            options.s3.endpoint_url = Some(endpoint);
        }
        if let Some(path_style) = self.force_path_style {
            options.s3.force_path_style = path_style;
        }
        if let Some(class) = self.storage_class {
            options.s3.storage_class = Some(class);
        }
        if let Some(region) = self.region {
            options.s3.region = Some(region);
        }
        if let Some(prefixes) = self.ref_prefixes {
            options.ref_prefixes = prefixes;
        }
        if let Some(threshold) = self.compaction_threshold {
            options.compaction_threshold = threshold;
        }
        if let Some(hours) = self.gc_grace_hours {
            options.gc_grace = Duration::from_secs(hours * 3600);
        }
        if let Some(enabled) = self.lfs {
            options.lfs.enabled = enabled;
        }
        if let Some(url) = self.lfs_url {
            options.lfs.url = Some(url);
        }
        if let Some(tolerate) = self.lfs_tolerate_missing {
            options.lfs.tolerate_missing = tolerate;
        }
        if let Some(mib) = self.max_object_mib {
            options.max_object_bytes = mib.saturating_mul(1 << 20);
        }
        if let Some(ratio) = self.max_inflate_ratio {
            options.max_inflate_ratio = ratio;
        }
        if let Some(mib) = self.max_advertisement_mib {
            options.max_advertisement_bytes = mib << 20;
        }
        if let Some(mib) = self.max_pack_mib {
            options.max_pack_bytes = mib << 20;
        }
        if let Some(verify) = self.verify {
            options.verify = verify;
        }
        Ok(options)
    }
}

/// Why `text` is not an `http://` or `https://` URL with a host, or `None` if it is one. The text is quoted
/// redacted ([`crate::upstream::redact_str`]): a URL given wrongly may still carry a token.
pub(crate) fn http_url_problem(text: &str) -> Option<String> {
    let shown = crate::upstream::redact_str(text);
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => None,
        Ok(url) => Some(format!(
            "{shown:?}: expected an http:// or https:// URL, got scheme {:?}",
            url.scheme()
        )),
        Err(error) => Some(format!("{shown:?} is not a URL: {error}")),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_support;
