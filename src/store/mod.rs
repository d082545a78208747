//! Object storage behind one small async trait: S3 (or an S3-compatible server) and a local directory.
//!
//! The mirror writes the files of a dumb-HTTP git repository (`info/refs`, packs, indexes...) below a root
//! prefix. Everything above this module talks to a [`Store`] so the same code publishes to S3 and to disk, and the
//! concurrency rules (conditional writes with [`Precondition`]) are the same for both. Keys are relative to the
//! store's root, `/`-separated, and validated identically by both backends (see [`validate_key`]) so a key that
//! works on one works on the other. Large objects are written through a streaming [`Upload`] whose memory use is
//! bounded by the part size, never by the object size.

mod local;
mod s3;

pub use local::LocalStore;
#[cfg(test)]
pub(crate) use local::STREAM_CHUNK as LOCAL_STREAM_CHUNK;
pub use s3::S3Store;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::time::SystemTime;

/// The smallest size of the first parts of a streaming [`Upload`] to S3 (S3's smallest part is 5 MiB; from
/// 8 MiB, doubling every 1,000 parts, 10,000 parts reach S3's 5 TiB object limit). LFS objects use it.
pub const FIRST_PART_SIZE: u64 = 8 << 20;

/// The largest size of the first parts [`part_size_for`] chooses.
pub const MAX_FIRST_PART_SIZE: u64 = 64 << 20;

/// Memory an [`Upload`] holds in buffers while its object is under 1,000 first parts of `part_size`: two parts
/// on S3 (one uploading while the next fills), less in a directory. Whoever shares out a memory budget takes this
/// off the top.
pub const fn upload_buffer_bytes(part_size: u64) -> u64 {
    2 * part_size
}

/// [`upload_buffer_bytes`] of an upload with parts of [`FIRST_PART_SIZE`] (16 MiB).
pub const UPLOAD_BUFFER_BYTES: u64 = upload_buffer_bytes(FIRST_PART_SIZE);

/// The size of the first parts of a pack's streaming upload under `memory_budget`: a sixteenth of it, from
/// [`FIRST_PART_SIZE`] to [`MAX_FIRST_PART_SIZE`] (16 MiB at the default 256 MiB), so that its two buffers take
/// an eighth of the budget at most and a 1 GiB pack takes 64 requests to upload instead of 128.
pub fn part_size_for(memory_budget: u64) -> u64 {
    (memory_budget / 16).clamp(FIRST_PART_SIZE, MAX_FIRST_PART_SIZE)
}

/// A condition a write must meet on the destination key, checked by the store at commit time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Write unconditionally (replace whatever is there).
    None,
    /// Create only: fail with [`StoreError::PreconditionFailed`] if the key already exists.
    IfNoneMatch,
    /// Replace only the version with this ETag (as returned by [`Store::get`] or [`Store::put`]); fail with
    /// [`StoreError::PreconditionFailed`] if the key holds something else or does not exist.
    IfMatch(String),
}

impl Precondition {
    /// The condition under which a write replaces exactly `current` (the object as last read) or, when there was
    /// none, creates the key: the compare-and-swap of a read-modify-write. A concurrent writer that got there
    /// first makes the write fail with [`StoreError::PreconditionFailed`] (or [`StoreError::Conflict`] on S3).
    pub fn replacing(current: Option<&Object>) -> Self {
        current.map_or(Precondition::IfNoneMatch, |o| {
            Precondition::IfMatch(o.etag.clone())
        })
    }
}

/// An object's content and its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The whole content.
    pub body: Bytes,
    /// Opaque version tag usable with [`Precondition::IfMatch`] (quoted on S3, hex SHA-1 locally).
    pub etag: String,
}

/// One entry of a [`Store::list`] result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time as reported by the store.
    pub last_modified: SystemTime,
}

/// Errors of the storage layer. Every message names the store and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A [`Precondition`] did not hold: the key was created or changed by someone else.
    #[error("{store}: precondition failed for {key}: it was created or changed concurrently")]
    PreconditionFailed {
        /// The store ([`Store::describe`]).
        store: String,
        /// The key written.
        key: String,
    },
    /// The store reported a conflicting concurrent write (S3 409); retrying the whole operation is safe.
    #[error("{store}: conflicting concurrent write to {key} (HTTP 409); retry")]
    Conflict {
        /// The store ([`Store::describe`]).
        store: String,
        /// The key written.
        key: String,
    },
    /// The key does not exist (where absence is an error, e.g. a copy source or a ranged read).
    #[error("{store}: {key} does not exist")]
    NotFound {
        /// The store ([`Store::describe`]).
        store: String,
        /// The missing key.
        key: String,
    },
    /// The S3 bucket does not exist.
    #[error("{store}: bucket {bucket} does not exist")]
    NoSuchBucket {
        /// The store ([`Store::describe`]).
        store: String,
        /// The bucket name.
        bucket: String,
    },
    /// A key that is empty, absolute, or has empty, `.`, `..` or reserved segments.
    #[error("invalid store key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A target string [`open`] cannot use.
    #[error("invalid store target {target:?}: {reason}")]
    InvalidTarget {
        /// The rejected target.
        target: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A ranged read that the object cannot satisfy exactly.
    #[error("{store}: reading {len} bytes at offset {offset} of {key}: {reason}")]
    Range {
        /// The store ([`Store::describe`]).
        store: String,
        /// The key read.
        key: String,
        /// First byte requested.
        offset: u64,
        /// Number of bytes requested.
        len: u64,
        /// What went wrong.
        reason: String,
    },
    /// An upload exceeded what the store can hold in one object.
    #[error("{store}: {key} is too large: more than {limit} bytes")]
    TooLarge {
        /// The store ([`Store::describe`]).
        store: String,
        /// The key written.
        key: String,
        /// The largest size the store accepts.
        limit: u64,
    },
    /// A file-system operation of the local store failed.
    #[error("{store}: {op} {key}: {source}")]
    Io {
        /// The store ([`Store::describe`]).
        store: String,
        /// The key involved.
        key: String,
        /// What was being done ("write", "rename"...).
        op: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An S3 request failed for another reason; `message` carries the service's error code and message, or the
    /// transport error.
    #[error("{store}: {op} {key}: {message}")]
    S3 {
        /// The store ([`Store::describe`]).
        store: String,
        /// The key involved (empty for bucket-level requests).
        key: String,
        /// The S3 operation ("PutObject"...).
        op: &'static str,
        /// The rendered error.
        message: String,
    },
}

impl StoreError {
    /// A [`StoreError::Range`]: reading `len` bytes at `offset` of `key` in `store` failed because of `reason`.
    pub(crate) fn range(store: &str, key: &str, offset: u64, len: u64, reason: String) -> Self {
        StoreError::Range {
            store: store.to_owned(),
            key: key.to_owned(),
            offset,
            len,
            reason,
        }
    }
}

/// Object storage rooted at a directory or an S3 prefix. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Human-readable location for messages: `s3://bucket/prefix` or the directory path.
    fn describe(&self) -> String;

    /// Requests made so far through this store: HTTP requests for S3 (retries included), operations for a
    /// directory. Runs report it so that costs can be compared.
    fn requests(&self) -> u64;

    /// Reads a whole object, or `None` if the key does not exist. Meant for small objects (refs, lists); read
    /// large ones with [`Store::get_range`].
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;

    /// Reads exactly `len` bytes starting at `offset`; an object too short for the range is an error, as is a
    /// missing key ([`StoreError::NotFound`]).
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError>;

    /// Streams exactly `len` bytes starting at `offset`, in order, as the caller pulls them: one request (one
    /// ranged GET on S3) whose body is read only as fast as [`RangeStream::next_chunk`] is called, so a caller
    /// that stops pulling holds the transfer back instead of buffering it. The checks are those of
    /// [`Store::get_range`] (a missing key or an object too short for the range fails here, before any byte);
    /// a body that breaks off is resumed from where it stopped (on S3 with a new ranged GET, under the same
    /// policy as a read that breaks off), so the bytes handed out are exactly those of the range, or an error.
    async fn get_stream(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn RangeStream>, StoreError>;

    /// Writes a whole object if `pre` holds and returns its new ETag.
    async fn put(&self, key: &str, body: Bytes, pre: Precondition) -> Result<String, StoreError>;

    /// Copies the whole of `from` to `to` inside the store (server-side on S3), `len` being the source's size as
    /// the caller knows it. What a caller may rely on:
    ///
    /// * `to` ends up holding the whole of `from` or, on an error, what it held before: never a part of it, and
    ///   never a mix of two versions of `from`. `len` only chooses the requests: on S3 a single CopyObject (with
    ///   no request to read the source's size) up to the single-copy limit (5 GiB, see
    ///   [`S3Store::with_copy_limits`]), beyond it a multipart copy that first reads the source's size and ETag.
    ///   A `len` that is wrong therefore never makes a wrong copy; at worst, on S3, a source above the limit that
    ///   `len` claims below it fails the copy (S3 refuses such a CopyObject).
    /// * A missing source fails with [`StoreError::NotFound`] naming `from`.
    /// * [`Precondition::None`] replaces `to`; [`Precondition::IfMatch`] holds as for [`Store::put`] on every
    ///   backend (S3 checks the destination with a HeadObject first, for servers that ignore the header on
    ///   CopyObject).
    /// * [`Precondition::IfNoneMatch`] fails with [`StoreError::PreconditionFailed`] if `to` exists in a directory,
    ///   on AWS (which enforces the header on CopyObject) and for a multipart copy; a single CopyObject to an
    ///   S3-compatible server that ignores the header there (moto 5.2 does) replaces `to` instead, without a
    ///   request of its own to check it. Use it only where replacing `to` with the same content is harmless: the
    ///   mirror copies only to keys named by their content.
    async fn copy(
        &self,
        from: &str,
        to: &str,
        len: u64,
        pre: Precondition,
    ) -> Result<(), StoreError>;

    /// Deletes a key; deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Every key starting with `prefix` (a plain string prefix, as in S3, not necessarily ending in `/`),
    /// sorted by key, all pages fetched.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError>;

    /// Starts a streaming write of `key` whose first parts hold `part_size` bytes on S3 (raised to
    /// [`FIRST_PART_SIZE`], lowered to S3's 5 GiB part limit), so that it holds about
    /// [`upload_buffer_bytes`]`(part_size)` in buffers; a directory store buffers less whatever the size. Nothing
    /// is visible at `key` until [`Upload::complete`]. Callers must end every upload with `complete` or `abort`;
    /// dropping one only logs a warning and makes a best-effort background cleanup.
    async fn create_upload(&self, key: &str, part_size: u64)
        -> Result<Box<dyn Upload>, StoreError>;

    /// The streaming uploads started below `prefix` and neither completed nor aborted (a run killed hard leaves
    /// one behind): on S3 the multipart uploads of keys starting with `prefix`, in a directory the temporary
    /// files in `prefix`'s directory (whatever key they were for). The default, for stores that keep no uploads
    /// of their own (wrappers in tests), lists none.
    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        let _ = prefix;
        Ok(Vec::new())
    }

    /// Discards an upload [`Store::pending_uploads`] listed; one already gone counts as discarded.
    async fn discard_upload(&self, upload: &PendingUpload) -> Result<(), StoreError> {
        let _ = upload;
        Ok(())
    }
}

/// An upload started and neither completed nor aborted, as [`Store::pending_uploads`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key being written on S3; the temporary file's path below the root in a directory.
    pub key: String,
    /// What the store knows it by: the multipart upload id on S3, the temporary file's path in a directory.
    pub id: String,
    /// When it started, as the store reports it (moto reports one fixed date in 2010 for every upload).
    pub started: SystemTime,
}

/// A streaming read started by [`Store::get_stream`].
#[async_trait]
pub trait RangeStream: Send {
    /// The next bytes of the range, or `None` once all of them were handed out. Chunks are never empty and
    /// never go past the range. An error ends the stream: what a later call returns is unspecified.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError>;
}

/// A streaming write started by [`Store::create_upload`].
#[async_trait]
pub trait Upload: Send + Sync {
    /// Appends data. On S3 full parts are uploaded in the background while the next one fills, so at most two
    /// part buffers are in memory; an error of an earlier part may surface here. After an error the upload can
    /// only be aborted.
    async fn write(&mut self, data: &[u8]) -> Result<(), StoreError>;

    /// Total bytes passed to [`Upload::write`] so far.
    fn bytes_written(&self) -> u64;

    /// Publishes the object if `pre` holds on the key. On failure nothing is published and the partial upload is
    /// cleaned up.
    async fn complete(self: Box<Self>, pre: Precondition) -> Result<(), StoreError>;

    /// Discards everything written.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// Settings for S3 targets that override the AWS default configuration chain (environment, profiles, IAM roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Custom endpoint (an S3-compatible server); otherwise `AWS_ENDPOINT_URL_S3`/profiles/AWS decide.
    pub endpoint_url: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    pub force_path_style: bool,
    /// Storage class for every object written (`STANDARD`, `INTELLIGENT_TIERING`...).
    pub storage_class: Option<String>,
    /// Region; otherwise the default chain's, else `us-east-1`.
    pub region: Option<String>,
}

/// Opens `target`: `s3://bucket/prefix` selects S3 (prefix optional), anything else is a local directory (created
/// on first write).
pub async fn open(target: &str, opts: &S3Options) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(rest) = target.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(Arc::new(S3Store::connect(bucket, prefix, opts).await?))
    } else if target.is_empty() {
        Err(StoreError::InvalidTarget {
            target: target.to_owned(),
            reason: "empty; expected s3://bucket/prefix or a directory".to_owned(),
        })
    } else {
        Ok(Arc::new(LocalStore::new(target)))
    }
}

/// File names starting with this are the local store's temporary files; key segments may not start with it.
pub(crate) const TEMP_MARKER: &str = ".mirror-tmp-";

/// Checks that `key` is a relative, `/`-separated path with no empty, `.` or `..` segments, no backslash or NUL,
/// and no segment starting with the store's temporary-file marker. Both backends apply it.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let invalid = |reason| {
        Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("empty");
    }
    if key.starts_with('/') {
        return invalid("absolute (starts with /)");
    }
    if key.contains('\0') {
        return invalid("contains a NUL byte");
    }
    if key.contains('\\') {
        return invalid("contains a backslash");
    }
    for segment in key.split('/') {
        match segment {
            "" => return invalid("has an empty path segment"),
            "." | ".." => return invalid("has a . or .. path segment"),
            s if s.starts_with(TEMP_MARKER) => {
                return invalid("uses the reserved temporary-file prefix")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a [`Store::list`] prefix: empty, or a valid key optionally followed by `/` and a partial segment. Only
/// the part before the last `/` names directories; the rest is a string filter.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains('\0') || prefix.contains('\\') {
        return Err(StoreError::InvalidKey {
            key: prefix.to_owned(),
            reason: "list prefix contains a NUL byte or a backslash",
        });
    }
    match prefix.rsplit_once('/') {
        Some((dir, _)) => validate_key(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
