//! Git LFS pointers: recognising them among a pack's blobs, and the set of objects they name.
//!
//! A repository that keeps large files in Git LFS commits a small *pointer* blob in place of each file; the file
//! itself lives on the LFS server under the SHA-256 of its content. A pointer (the spec is
//! `git-lfs/docs/spec.md`) is a blob under 1024 bytes of `key value\n` lines, the first being
//! `version https://git-lfs.github.com/spec/v1`, with `oid sha256:<64 lower-case hex>` and `size <bytes>` among
//! the others. Anything else (a longer blob, another first line, a missing or malformed `oid` or `size`, a key
//! given twice, a line without its newline) is simply *not a pointer*: [`parse_pointer`] never fails, it answers
//! `None`, because a user's ordinary file may look like anything.
//!
//! The pack is never buffered to find pointers: [`PointerScanner`] is fed a blob's bytes as they are inflated and
//! keeps them only while they could still be a pointer (under [`MAX_POINTER_SIZE`] and starting with the spec
//! line), and [`PointerSet`] keeps each distinct pointer once. The HTTP side (batch API, downloads) is
//! `crate::upstream::lfs`; storing the objects is `crate::mirror::lfs`. The batch API's JSON is in [`batch`].

pub mod batch;
pub mod config;

use crate::git::oid::{hex_value, ObjectKind};
use std::collections::HashSet;
use std::fmt;

/// The first line of every pointer, newline included.
pub const SPEC_LINE: &[u8] = b"version https://git-lfs.github.com/spec/v1\n";
/// A pointer blob is smaller than this many bytes.
pub const MAX_POINTER_SIZE: u64 = 1024;

/// The SHA-256 of an LFS object's content, which names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LfsOid(pub [u8; 32]);

impl LfsOid {
    /// Parses exactly 64 lower-case hexadecimal digits (the form pointers and the batch API use).
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        if hex.len() != 64 || hex.iter().any(u8::is_ascii_uppercase) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            out[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(LfsOid(out))
    }

    /// Where the mirror keeps the object: `lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>`, the layout
    /// `git-lfs-http-mirror` serves and the original tool writes.
    pub fn store_key(&self) -> String {
        let hex = self.to_string();
        format!("lfs/objects/{}/{}/{hex}", &hex[0..2], &hex[2..4])
    }
}

impl fmt::Display for LfsOid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for LfsOid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LfsOid({self})")
    }
}

/// What a pointer names: an LFS object and its size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pointer {
    /// The object's SHA-256.
    pub oid: LfsOid,
    /// The object's size in bytes, as the pointer declares it (never used to size a buffer).
    pub size: u64,
}

/// The pointer a blob is, or `None` if it is not one (see the module doc for the rules).
pub fn parse_pointer(blob: &[u8]) -> Option<Pointer> {
    if blob.len() as u64 >= MAX_POINTER_SIZE {
        return None;
    }
    let rest = blob.strip_prefix(SPEC_LINE)?.strip_suffix(b"\n")?;
    let (mut oid, mut size) = (None, None);
    for line in rest.split(|&b| b == b'\n') {
        let (key, value) = split_once(line, b' ')?;
        if key.is_empty()
            || !key
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(b))
        {
            return None;
        }
        match key {
            b"version" => return None,
            b"oid" if oid.is_none() => {
                oid = Some(LfsOid::from_hex(value.strip_prefix(b"sha256:")?)?);
            }
            b"size" if size.is_none() => size = Some(parse_size(value)?),
            b"oid" | b"size" => return None,
            _ => {}
        }
    }
    Some(Pointer {
        oid: oid?,
        size: size?,
    })
}

fn split_once(line: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = line.iter().position(|&b| b == separator)?;
    Some((&line[..at], &line[at + 1..]))
}

/// A decimal size without sign, leading zeros (other than `0` itself) or overflow.
fn parse_size(text: &[u8]) -> Option<u64> {
    if text.is_empty() || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        let digit = u64::from(b.checked_sub(b'0').filter(|d| *d < 10)?);
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// Recognises pointers among objects whose bytes arrive in pieces, holding at most [`MAX_POINTER_SIZE`] bytes.
///
/// Call [`PointerScanner::start`] at each object, [`PointerScanner::push`] with its bytes in order, and
/// [`PointerScanner::finish`] at its end. Bytes are kept only while the object can still be a pointer: a blob
/// declared under the limit whose bytes so far agree with [`SPEC_LINE`].
#[derive(Debug, Default)]
pub struct PointerScanner {
    held: Vec<u8>,
    live: bool,
}

impl PointerScanner {
    /// Begins an object of `kind` whose content is declared to be `size` bytes long.
    pub fn start(&mut self, kind: ObjectKind, size: u64) {
        self.held.clear();
        self.live = kind == ObjectKind::Blob && size < MAX_POINTER_SIZE;
    }

    /// The next bytes of the object.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.live {
            return;
        }
        let start = self.held.len();
        let checked = (start + bytes.len()).min(SPEC_LINE.len());
        let agrees = start >= checked || bytes[..checked - start] == SPEC_LINE[start..checked];
        if !agrees || start as u64 + bytes.len() as u64 >= MAX_POINTER_SIZE {
            // Nothing is held for an object that cannot be a pointer (a scan handed to another thread keeps it).
            self.live = false;
            self.held = Vec::new();
            return;
        }
        self.held.extend_from_slice(bytes);
    }

    /// Bytes it holds now: those of an object that may still be a pointer.
    pub fn held_bytes(&self) -> u64 {
        self.held.capacity() as u64
    }

    /// Ends the object: the pointer it is, if it is one.
    pub fn finish(&mut self) -> Option<Pointer> {
        let pointer = std::mem::take(&mut self.live)
            .then(|| parse_pointer(&self.held))
            .flatten();
        self.held.clear();
        pointer
    }
}

/// The distinct pointers of a pack. Each is one distinct blob of the pack, so the set never outgrows the pack's
/// entry list (about 50 bytes per pointer against about 60 per entry); [`PointerSet::approx_bytes`] says how much
/// it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PointerSet {
    pointers: HashSet<Pointer>,
}

impl PointerSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pointer; returns whether it was new.
    pub fn insert(&mut self, pointer: Pointer) -> bool {
        self.pointers.insert(pointer)
    }

    /// Adds every pointer of `other`.
    pub fn extend(&mut self, other: PointerSet) {
        self.pointers.extend(other.pointers);
    }

    /// Adds `content` if it is a pointer blob; objects of other kinds are ignored.
    pub fn observe(&mut self, kind: ObjectKind, content: &[u8]) {
        if kind == ObjectKind::Blob {
            if let Some(pointer) = parse_pointer(content) {
                self.insert(pointer);
            }
        }
    }

    /// Number of distinct pointers.
    pub fn len(&self) -> usize {
        self.pointers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pointers.is_empty()
    }

    /// Rough memory held, in bytes.
    pub fn approx_bytes(&self) -> u64 {
        (self.pointers.capacity() * (std::mem::size_of::<Pointer>() + 8)) as u64
    }

    /// The pointers, sorted by object id (then size), so that runs and reports are deterministic.
    pub fn sorted(&self) -> Vec<Pointer> {
        let mut all: Vec<Pointer> = self.pointers.iter().copied().collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests;
