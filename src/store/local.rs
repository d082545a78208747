//! The local-directory backend: keys are files below a root directory.
//!
//! A mirror written here is a bare repository `git clone` can read directly, and the tests can check it without a
//! server. Every write goes to a temporary file in the destination's own directory and is then committed with a
//! rename (replace) or a hard link (create-only, which fails atomically if the name exists), so readers never see a
//! partial file and file contents are never modified in place. That last property makes hard links a safe copy.
//! ETags are the hex SHA-1 of the content. [`Precondition::IfMatch`] compares and then renames: the two steps are
//! serialized by a process-wide lock, so it is atomic within one process but not against other processes writing
//! the same directory. Keys are validated by [`validate_key`], so nothing outside the root is ever touched
//! (symbolic links placed inside the root by the user are followed).

use super::{
    validate_key, validate_prefix, Listed, Object, PendingUpload, Precondition, RangeStream, Store,
    StoreError, Upload, TEMP_MARKER,
};
use async_trait::async_trait;
use bytes::Bytes;
use sha1::{Digest, Sha1};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Serializes the commit step (precondition check plus rename or link) of every local write in this process.
static COMMIT_LOCK: Mutex<()> = Mutex::new(());

/// Distinguishes temporary files created by this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An upload's data is handed to the file system in chunks of about this size.
const WRITE_CHUNK: usize = 1 << 20;

/// A streamed range is read from its file in pieces of at most this size.
pub(crate) const STREAM_CHUNK: u64 = 256 << 10;

/// A [`Store`] rooted at a directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    describe: String,
    /// Store operations so far (what [`Store::requests`] reports).
    operations: AtomicU64,
}

impl LocalStore {
    /// A store rooted at `root`; the directory is created by the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let describe = root.display().to_string();
        LocalStore {
            inner: Arc::new(Inner {
                root,
                describe,
                operations: AtomicU64::new(0),
            }),
        }
    }
}

impl Inner {
    fn io_err(&self, key: &str, op: &'static str, source: io::Error) -> StoreError {
        StoreError::Io {
            store: self.describe.clone(),
            key: key.to_owned(),
            op,
            source,
        }
    }

    fn precondition_failed(&self, key: &str) -> StoreError {
        StoreError::PreconditionFailed {
            store: self.describe.clone(),
            key: key.to_owned(),
        }
    }

    fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound {
            store: self.describe.clone(),
            key: key.to_owned(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Makes a new temporary path next to `key`'s file (creating its directories) and fills it with `make`, which
    /// must fail with `AlreadyExists` rather than replace an existing file.
    fn new_temp<T>(
        &self,
        path: &Path,
        make: impl Fn(&Path) -> io::Result<T>,
    ) -> io::Result<(T, PathBuf)> {
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir)?;
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!("{TEMP_MARKER}{}-{n}", std::process::id()));
            match make(&temp) {
                Ok(made) => return Ok((made, temp)),
                // A leftover of an earlier process with the same id: take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates a new, empty temporary file next to `key`'s file.
    fn create_temp(&self, key: &str, path: &Path) -> Result<(File, PathBuf), StoreError> {
        self.new_temp(path, |temp| {
            File::options().write(true).create_new(true).open(temp)
        })
        .map_err(|e| self.io_err(key, "create temporary file for", e))
    }

    /// Publishes the finished temporary file `temp` as `key` if `pre` holds; `temp` is gone afterwards.
    fn commit(
        &self,
        key: &str,
        temp: &Path,
        path: &Path,
        pre: &Precondition,
    ) -> Result<(), StoreError> {
        let result = self.commit_inner(key, temp, path, pre);
        if result.is_err() || matches!(pre, Precondition::IfNoneMatch) {
            // Best effort: the temporary file was linked (create-only) or is being discarded.
            let _ = fs::remove_file(temp);
        }
        result
    }

    fn commit_inner(
        &self,
        key: &str,
        temp: &Path,
        path: &Path,
        pre: &Precondition,
    ) -> Result<(), StoreError> {
        let _guard = COMMIT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match pre {
            Precondition::None => {}
            Precondition::IfNoneMatch => {
                return match fs::hard_link(temp, path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        Err(self.precondition_failed(key))
                    }
                    Err(e) => Err(self.io_err(key, "create", e)),
                };
            }
            Precondition::IfMatch(expected) => match self.file_etag(key, path)? {
                Some(current) if current == expected.trim_matches('"') => {}
                _ => return Err(self.precondition_failed(key)),
            },
        }
        fs::rename(temp, path).map_err(|e| self.io_err(key, "replace", e))
    }

    /// The ETag of `key`'s file, or `None` if there is no such file.
    fn file_etag(&self, key: &str, path: &Path) -> Result<Option<String>, StoreError> {
        let mut file = match open_file(path) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.io_err(key, "open", e)),
        };
        let mut hasher = Sha1::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return Ok(Some(hex(&hasher.finalize()))),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(key, "read", e)),
            }
        }
    }

    fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let path = self.path(key)?;
        let Some(mut file) = open_file(&path).map_err(|e| self.io_err(key, "open", e))? else {
            return Ok(None);
        };
        let mut body = Vec::new();
        file.read_to_end(&mut body)
            .map_err(|e| self.io_err(key, "read", e))?;
        let etag = hex(&Sha1::digest(&body));
        Ok(Some(Object {
            body: body.into(),
            etag,
        }))
    }

    /// Opens `key` positioned at `offset`, after checking that it holds `len` bytes from there.
    fn open_range(&self, key: &str, offset: u64, len: u64) -> Result<File, StoreError> {
        let path = self.path(key)?;
        let mut file = open_file(&path)
            .map_err(|e| self.io_err(key, "open", e))?
            .ok_or_else(|| self.not_found(key))?;
        let size = file
            .metadata()
            .map_err(|e| self.io_err(key, "stat", e))?
            .len();
        match offset.checked_add(len) {
            Some(end) if end <= size => {}
            _ => {
                return Err(StoreError::range(
                    &self.describe,
                    key,
                    offset,
                    len,
                    format!("the object has only {size} bytes"),
                ))
            }
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| self.io_err(key, "seek", e))?;
        Ok(file)
    }

    /// Reads `len` bytes from `file` (opened by [`Inner::open_range`] for `len` bytes at `offset` of `key`).
    fn read_range(
        &self,
        file: &mut File,
        (key, offset, len): (&str, u64, u64),
    ) -> Result<Bytes, StoreError> {
        let range_err = |reason| StoreError::range(&self.describe, key, offset, len, reason);
        // The range lies inside the file, so the allocation is bounded by real data.
        let len_usize = usize::try_from(len)
            .map_err(|_| range_err("range too large for this platform".to_owned()))?;
        let mut body = vec![0u8; len_usize];
        file.read_exact(&mut body).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                range_err("the object shrank while being read".to_owned())
            }
            _ => self.io_err(key, "read", e),
        })?;
        Ok(body.into())
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        let mut file = self.open_range(key, offset, len)?;
        self.read_range(&mut file, (key, offset, len))
    }

    fn put(&self, key: &str, body: &[u8], pre: &Precondition) -> Result<String, StoreError> {
        let path = self.path(key)?;
        let (mut file, temp) = self.create_temp(key, &path)?;
        let written = file.write_all(body).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(self.io_err(key, "write", e));
        }
        self.commit(key, &temp, &path, pre)?;
        Ok(hex(&Sha1::digest(body)))
    }

    fn copy(&self, from: &str, to: &str, pre: &Precondition) -> Result<(), StoreError> {
        let src = self.path(from)?;
        let dst = self.path(to)?;
        if !src.is_file() {
            return Err(self.not_found(from));
        }
        // Contents are never modified in place (every write renames a new file over the old one), so sharing the
        // inode is a safe copy. Fall back to copying bytes where links are not possible.
        let temp = match self.new_temp(&dst, |temp| fs::hard_link(&src, temp)) {
            Ok(((), temp)) => temp,
            Err(_) => {
                let (mut file, temp) = self.create_temp(to, &dst)?;
                let copied = File::open(&src).and_then(|mut source| {
                    io::copy(&mut source, &mut file)?;
                    file.sync_all()
                });
                if let Err(e) = copied {
                    let _ = fs::remove_file(&temp);
                    return Err(match e.kind() {
                        io::ErrorKind::NotFound => self.not_found(from),
                        _ => self.io_err(from, "copy", e),
                    });
                }
                temp
            }
        };
        self.commit(to, &temp, &dst, pre)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let _guard = COMMIT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) if path.is_dir() => Err(self.io_err(key, "delete (it is a directory)", e)),
            Err(e) => Err(self.io_err(key, "delete", e)),
        }
    }

    /// The temporary files in `prefix`'s directory, as pending uploads named by their path below the root.
    fn temp_files(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        validate_prefix(prefix)?;
        let dir_key = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let entries = match fs::read_dir(self.root.join(dir_key)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_err(dir_key, "list", e)),
        };
        let mut pending = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io_err(dir_key, "list", e))?;
            let Some(name) = entry
                .file_name()
                .to_str()
                .filter(|name| name.starts_with(TEMP_MARKER))
                .map(str::to_owned)
            else {
                continue;
            };
            let Ok(started) = entry.metadata().and_then(|meta| meta.modified()) else {
                continue;
            };
            let id = match dir_key {
                "" => name,
                dir => format!("{dir}/{name}"),
            };
            pending.push(PendingUpload {
                key: id.clone(),
                id,
                started,
            });
        }
        Ok(pending)
    }

    /// Deletes a temporary file [`Inner::temp_files`] listed.
    fn discard_temp(&self, id: &str) -> Result<(), StoreError> {
        let (dir, name) = id.rsplit_once('/').unwrap_or(("", id));
        if !name.starts_with(TEMP_MARKER) || (!dir.is_empty() && validate_key(dir).is_err()) {
            return Err(StoreError::InvalidKey {
                key: id.to_owned(),
                reason: "not a temporary file of this store",
            });
        }
        match fs::remove_file(self.root.join(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err(id, "delete the temporary file", e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        validate_prefix(prefix)?;
        let dir_key = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let mut out = Vec::new();
        let mut pending = vec![dir_key.to_owned()];
        while let Some(dir_key) = pending.pop() {
            let dir = if dir_key.is_empty() {
                self.root.clone()
            } else {
                self.root.join(&dir_key)
            };
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(self.io_err(&dir_key, "list", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io_err(&dir_key, "list", e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    tracing::warn!(store = %self.describe, dir = %dir_key, name = ?entry.file_name(),
                        "skipping a file whose name is not UTF-8");
                    continue;
                };
                if name.starts_with(TEMP_MARKER) {
                    continue;
                }
                let key = if dir_key.is_empty() {
                    name
                } else {
                    format!("{dir_key}/{name}")
                };
                // Descend only into directories that can hold matching keys.
                let file_type = entry
                    .file_type()
                    .map_err(|e| self.io_err(&key, "stat", e))?;
                if file_type.is_dir() {
                    let as_dir = format!("{key}/");
                    if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                        pending.push(key);
                    }
                    continue;
                }
                if !key.starts_with(prefix) {
                    continue;
                }
                // Follows a symbolic link to report its target; links to directories are not descended.
                let meta = match fs::metadata(entry.path()) {
                    Ok(meta) if meta.is_file() => meta,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(self.io_err(&key, "stat", e)),
                };
                let last_modified = meta.modified().map_err(|e| self.io_err(&key, "stat", e))?;
                out.push(Listed {
                    key,
                    size: meta.len(),
                    last_modified,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// Opens a regular file for reading; `None` if it does not exist or is a directory (as on S3, where a "directory"
/// is not an object).
fn open_file(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) if file.metadata()?.is_dir() => Ok(None),
        Ok(file) => Ok(Some(file)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Inner,
    key: &str,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        store.io_err(
            key,
            "run file-system task for",
            io::Error::other(e.to_string()),
        )
    })?
}

/// A range of a file read piece by piece as the caller pulls it.
struct LocalRangeStream {
    store: Arc<Inner>,
    key: String,
    /// The file, positioned at `offset`; `None` while a piece is being read, or after an error.
    file: Option<File>,
    /// The first byte not handed out yet, and the end of the range (exclusive).
    offset: u64,
    end: u64,
}

#[async_trait]
impl RangeStream for LocalRangeStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if self.offset == self.end {
            return Ok(None);
        }
        let Some(mut file) = self.file.take() else {
            return Err(self.store.io_err(
                &self.key,
                "read",
                io::Error::other("an earlier read of this range failed"),
            ));
        };
        let (store, key, offset) = (self.store.clone(), self.key.clone(), self.offset);
        let len = (self.end - offset).min(STREAM_CHUNK);
        let (file, piece) = blocking(&self.store, &self.key, move || {
            let piece = store.read_range(&mut file, (&key, offset, len))?;
            Ok((file, piece))
        })
        .await?;
        self.file = Some(file);
        self.offset += len;
        Ok(Some(piece))
    }
}

#[async_trait]
impl Store for LocalStore {
    fn requests(&self) -> u64 {
        self.inner.operations.load(Ordering::Relaxed)
    }

    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        blocking(&self.inner, key, move || inner.get(&owned)).await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        blocking(&self.inner, key, move || {
            inner.get_range(&owned, offset, len)
        })
        .await
    }

    async fn get_stream(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn RangeStream>, StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        let file = blocking(&self.inner, key, move || {
            inner.open_range(&owned, offset, len)
        })
        .await?;
        Ok(Box::new(LocalRangeStream {
            store: self.inner.clone(),
            key: key.to_owned(),
            file: Some(file),
            offset,
            end: offset + len,
        }))
    }

    async fn put(&self, key: &str, body: Bytes, pre: Precondition) -> Result<String, StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        blocking(&self.inner, key, move || inner.put(&owned, &body, &pre)).await
    }

    async fn copy(
        &self,
        from: &str,
        to: &str,
        _len: u64,
        pre: Precondition,
    ) -> Result<(), StoreError> {
        // A file is copied whole, whatever size the caller expects.
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, from_owned, to_owned) = (self.inner.clone(), from.to_owned(), to.to_owned());
        blocking(&self.inner, to, move || {
            inner.copy(&from_owned, &to_owned, &pre)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        blocking(&self.inner, key, move || inner.delete(&owned)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), prefix.to_owned());
        blocking(&self.inner, prefix, move || inner.list(&owned)).await
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), prefix.to_owned());
        blocking(&self.inner, prefix, move || inner.temp_files(&owned)).await
    }

    async fn discard_upload(&self, upload: &PendingUpload) -> Result<(), StoreError> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, id) = (self.inner.clone(), upload.id.clone());
        blocking(&self.inner, &upload.id, move || inner.discard_temp(&id)).await
    }

    async fn create_upload(
        &self,
        key: &str,
        _part_size: u64,
    ) -> Result<Box<dyn Upload>, StoreError> {
        // Data goes to the file in chunks of WRITE_CHUNK whatever the part size.
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        let (file, temp, path) = blocking(&self.inner, key, move || {
            let path = inner.path(&owned)?;
            let (file, temp) = inner.create_temp(&owned, &path)?;
            Ok((file, temp, path))
        })
        .await?;
        Ok(Box::new(LocalUpload {
            store: self.inner.clone(),
            key: key.to_owned(),
            path,
            temp,
            finished: false,
            file: Some(file),
            buf: Vec::new(),
            hasher: Sha1::new(),
            written: 0,
        }))
    }
}

/// A streaming write into a temporary file, published by [`Upload::complete`].
struct LocalUpload {
    store: Arc<Inner>,
    key: String,
    path: PathBuf,
    temp: PathBuf,
    /// Set by `complete` and `abort`, which clean up the temporary file themselves.
    finished: bool,
    /// `None` only while a chunk is being written on a blocking thread (or after a failed one).
    file: Option<File>,
    buf: Vec<u8>,
    hasher: Sha1,
    written: u64,
}

impl LocalUpload {
    /// Writes the buffered bytes to the temporary file (and syncs it when `sync`).
    async fn flush(&mut self, sync: bool) -> Result<(), StoreError> {
        let mut file = self.file.take().ok_or_else(|| {
            self.store.io_err(
                &self.key,
                "write",
                io::Error::other("an earlier write of this upload failed"),
            )
        })?;
        let buf = std::mem::take(&mut self.buf);
        let (store, key) = (self.store.clone(), self.key.clone());
        let (file, mut buf) = blocking(&self.store, &self.key, move || {
            file.write_all(&buf)
                .map_err(|e| store.io_err(&key, "write", e))?;
            if sync {
                file.sync_all().map_err(|e| store.io_err(&key, "sync", e))?;
            }
            Ok((file, buf))
        })
        .await?;
        buf.clear();
        self.buf = buf;
        self.file = Some(file);
        Ok(())
    }
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(data);
        self.written += data.len() as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let take = rest.len().min(WRITE_CHUNK - self.buf.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() >= WRITE_CHUNK {
                self.flush(false).await?;
            }
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }

    async fn complete(mut self: Box<Self>, pre: Precondition) -> Result<(), StoreError> {
        let flushed = self.flush(true).await;
        self.file = None;
        self.finished = true;
        let (store, key, path, temp) = (
            self.store.clone(),
            self.key.clone(),
            self.path.clone(),
            self.temp.clone(),
        );
        blocking(&self.store, &self.key, move || match flushed {
            Ok(()) => store.commit(&key, &temp, &path, &pre),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(e)
            }
        })
        .await
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.file = None;
        self.finished = true;
        let (store, key, temp) = (self.store.clone(), self.key.clone(), self.temp.clone());
        blocking(&self.store, &self.key, move || {
            match fs::remove_file(&temp) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(store.io_err(&key, "remove temporary file of", e)),
            }
        })
        .await
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if !self.finished {
            tracing::warn!(store = %self.store.describe, key = %self.key,
                "upload dropped without complete or abort; removing its temporary file");
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests;
