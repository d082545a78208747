//! The object-content visitor: what the passes over a pack do with each object's content besides hashing it.
//!
//! Every object's content passes through the first pass ([`crate::git::pack`], whole objects) or through delta
//! resolution ([`crate::git::resolve`], objects rebuilt from deltas, in memory or streamed) exactly when its id
//! is computed. Both hand it to one [`Scanner`], so reading content costs no extra pass and no extra read:
//!
//! 1. [`Scanner::begin`] with the object's kind and size says whether anything wants its bytes (`None` skips
//!    them: today blobs, which is most of a pack);
//! 2. the bytes follow in chunks of any size ([`ObjectScan::update`]), possibly interleaved with other objects'
//!    (a streamed delta chain hashes several at once: each has its own [`ObjectScan`]);
//! 3. [`Scanner::end`] with the object's id folds what was found into the scanner; [`Scanner::visit`] does all
//!    three for an object held whole.
//!
//! What it collects: the ids every object links to ([`crate::git::links`]), for the connectivity check before
//! publication, in an exact set of about 20 bytes per distinct id held within a memory limit ([`LinkSet`]); and, when asked, the Git LFS pointers among the blobs
//! ([`crate::git::lfs`]), for the LFS objects to mirror; and, when asked, the trail from the default branch's tip
//! to its `.lfsconfig` ([`LfsConfigTrail`]), so that the LFS endpoint it names is found without reading those
//! objects back from a stored pack. Another per-object reader adds its state to [`ObjectScan`] and its findings
//! to [`Scanner`].

use crate::git::lfs::config::LFSCONFIG;
use crate::git::lfs::{PointerScanner, PointerSet, MAX_POINTER_SIZE};
use crate::git::links::{LinkError, LinkParser};
use crate::git::oid::{ObjectId, ObjectKind};
pub use link_set::LinkSet;

pub mod link_set;

/// Bytes one distinct link costs in memory: its 20-byte id (the [`LinkSet`]'s buffer of new ids aside).
pub const BYTES_PER_LINK: u64 = link_set::ID_BYTES;

/// Why scanning an object failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The object's content is not a valid object of its kind.
    #[error("{kind} {oid} is malformed: {problem}")]
    Malformed {
        /// The object's kind.
        kind: &'static str,
        /// Its id.
        oid: ObjectId,
        /// What is wrong.
        problem: LinkError,
    },
    /// The distinct ids the objects link to need more memory than allowed.
    #[error(
        "the objects link to more than {links} distinct objects, more than the connectivity check may hold in \
         {limit} bytes; raise the memory budget"
    )]
    TooManyLinks {
        /// How many were held.
        links: usize,
        /// The memory allowed for them.
        limit: u64,
    },
}

/// How far the objects that passed lead from a commit to the `.lfsconfig` of its root tree: what is left to
/// read to find it ([`Scanner::following_lfsconfig`]). A pack usually holds a branch's tip before its trees, so
/// the trail is often complete once the objects are hashed; where an object passed before the one naming it, the
/// rest is read from the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LfsConfigTrail {
    /// The commit has not passed yet.
    Commit(ObjectId),
    /// The commit passed; its root tree, this one, has not (since).
    Tree(ObjectId),
    /// The root tree passed: the id of its `.lfsconfig` (a regular file), `None` when it has none.
    Found(Option<ObjectId>),
}

impl LfsConfigTrail {
    /// Follows the trail one step if `scan`, now ended as `oid`, is the object it waits for.
    fn pass(&mut self, oid: &ObjectId, scan: &ObjectScan) {
        match (*self, scan.kind) {
            // A commit's first link is its root tree (the `tree` line that starts it).
            (LfsConfigTrail::Commit(commit), ObjectKind::Commit) if commit == *oid => {
                if let Some(tree) = scan.found.first() {
                    *self = LfsConfigTrail::Tree(*tree);
                }
            }
            (LfsConfigTrail::Tree(tree), ObjectKind::Tree) if tree == *oid => {
                *self = LfsConfigTrail::Found(scan.links.as_ref().and_then(LinkParser::watched));
            }
            _ => {}
        }
    }
}

/// What a [`Scanner`] reads from one object while its content passes.
#[derive(Debug)]
pub struct ObjectScan {
    kind: ObjectKind,
    /// The link parser, when the scanner collects links and the kind has them.
    links: Option<LinkParser>,
    /// Links found so far (a tree's can be many; they join the scanner's set at the end), at most as many as
    /// the scanner's limit holds.
    found: Vec<ObjectId>,
    /// The scanner's memory limit for links, which `found` may not outgrow either.
    link_limit: u64,
    /// Whether `found` outgrew it (reported by [`Scanner::end`]).
    too_many: bool,
    /// The first problem, reported by [`Scanner::end`].
    error: Option<LinkError>,
    /// Holds the object's bytes while it may still be an LFS pointer (only small blobs, only when asked).
    pointer: PointerScanner,
}

impl ObjectScan {
    /// Reads the next bytes of the object's content.
    pub fn update(&mut self, bytes: &[u8]) {
        if let (Some(links), None, false) = (&mut self.links, &self.error, self.too_many) {
            let (found, most) = (&mut self.found, self.link_limit / BYTES_PER_LINK);
            let too_many = &mut self.too_many;
            let mut add = |id| match found.len() as u64 >= most {
                true => *too_many = true,
                false => found.push(id),
            };
            if let Err(e) = links.update(bytes, &mut add) {
                self.error = Some(e);
            }
        }
        self.pointer.push(bytes);
    }

    /// Bytes it holds, itself included: the links found so far, and the bytes of a blob that may still be an LFS
    /// pointer.
    pub fn held_bytes(&self) -> u64 {
        (std::mem::size_of::<Self>() + self.found.capacity() * std::mem::size_of::<ObjectId>())
            as u64
            + self.pointer.held_bytes()
    }
}

/// What a [`Scanner`] reads from objects, without what it found: it starts the [`ObjectScan`] of an object whose
/// content passes through a thread other than the scanner's ([`crate::git::hand_over`]); the scanner then ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanPlan {
    /// Whether links are collected.
    links: bool,
    /// The scanner's memory limit for links.
    link_limit: u64,
    /// Whether Git LFS pointers are collected.
    lfs_pointers: bool,
    /// Whether trees are watched for a `.lfsconfig` (see [`LfsConfigTrail`]).
    lfsconfig: bool,
}

impl ScanPlan {
    /// Starts an object of `kind` and `size` bytes; `None` when nothing wants its content.
    pub fn begin(&self, kind: ObjectKind, size: u64) -> Option<ObjectScan> {
        let links = self.links && LinkParser::has_links(kind);
        let pointer = self.lfs_pointers && kind == ObjectKind::Blob && size < MAX_POINTER_SIZE;
        (links || pointer).then(|| {
            let mut scan = ObjectScan {
                kind,
                links: links.then(|| match self.lfsconfig {
                    true => LinkParser::new(kind).watching(LFSCONFIG),
                    false => LinkParser::new(kind),
                }),
                found: Vec::new(),
                link_limit: self.link_limit,
                too_many: false,
                error: None,
                pointer: PointerScanner::default(),
            };
            if pointer {
                scan.pointer.start(kind, size);
            }
            scan
        })
    }
}

/// Collects what the objects of one pack say (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scanner {
    /// The distinct ids linked to, when links are collected.
    links: Option<LinkSet>,
    /// Most bytes `links` may use.
    link_limit: u64,
    /// The distinct LFS pointers among the blobs, when they are collected.
    lfs_pointers: Option<PointerSet>,
    /// The trail to a commit's `.lfsconfig`, when it is followed.
    lfsconfig: Option<LfsConfigTrail>,
}

impl Scanner {
    /// A scanner that reads nothing.
    pub fn none() -> Self {
        Scanner::default()
    }

    /// A scanner that collects the distinct ids the objects link to, in at most `limit` bytes of memory.
    pub fn collecting_links(limit: u64) -> Self {
        Scanner {
            links: Some(LinkSet::new(limit)),
            link_limit: limit,
            lfs_pointers: None,
            lfsconfig: None,
        }
    }

    /// This scanner, also collecting the Git LFS pointers among the blobs. They cost about as much as the
    /// pack's entries they are found in (see [`PointerSet`]).
    pub fn with_lfs_pointers(mut self) -> Self {
        self.lfs_pointers = Some(PointerSet::new());
        self
    }

    /// This scanner, also following the trail from `commit` to its root tree's `.lfsconfig` as the objects pass
    /// ([`lfsconfig_trail`](Self::lfsconfig_trail)). It follows trees only while links are collected: they are
    /// read for those.
    pub fn following_lfsconfig(mut self, commit: ObjectId) -> Self {
        self.lfsconfig = Some(LfsConfigTrail::Commit(commit));
        self
    }

    /// How far the trail to the `.lfsconfig` led, if it is followed.
    pub fn lfsconfig_trail(&self) -> Option<LfsConfigTrail> {
        self.lfsconfig
    }

    /// What this scanner reads, for a pass that reads an object's content where the scanner is not.
    pub fn plan(&self) -> ScanPlan {
        ScanPlan {
            links: self.links.is_some(),
            link_limit: self.link_limit,
            lfs_pointers: self.lfs_pointers.is_some(),
            lfsconfig: self.lfsconfig.is_some(),
        }
    }

    /// Starts an object of `kind` and `size` bytes; `None` when nothing wants its content.
    pub fn begin(&self, kind: ObjectKind, size: u64) -> Option<ObjectScan> {
        self.plan().begin(kind, size)
    }

    /// Ends the object `scan` read, whose id is `oid`, and keeps what it found.
    pub fn end(&mut self, mut scan: ObjectScan, oid: ObjectId) -> Result<(), ScanError> {
        if let (Some(pointers), Some(pointer)) = (&mut self.lfs_pointers, scan.pointer.finish()) {
            pointers.insert(pointer);
        }
        let too_many = |held| ScanError::TooManyLinks {
            links: held,
            limit: self.link_limit,
        };
        // The object was not read to its end: its links outgrew the limit.
        if scan.too_many {
            return Err(too_many(scan.found.len()));
        }
        let found = &mut scan.found;
        let ended = match (scan.error.take(), &mut scan.links) {
            (Some(e), _) => Err(e),
            (None, Some(links)) => links.finish(&mut |id| found.push(id)),
            (None, None) => Ok(()),
        };
        ended.map_err(|problem| ScanError::Malformed {
            kind: scan.kind.as_str(),
            oid,
            problem,
        })?;
        if let Some(trail) = &mut self.lfsconfig {
            trail.pass(&oid, &scan);
        }
        let Some(links) = &mut self.links else {
            return Ok(());
        };
        for id in scan.found {
            links.insert(id).map_err(|full| too_many(full.held))?;
        }
        Ok(())
    }

    /// Reads a whole object: [`begin`](Self::begin), one [`update`](ObjectScan::update), [`end`](Self::end).
    pub fn visit(
        &mut self,
        kind: ObjectKind,
        oid: ObjectId,
        content: &[u8],
    ) -> Result<(), ScanError> {
        match self.begin(kind, content.len() as u64) {
            Some(mut scan) => {
                scan.update(content);
                self.end(scan, oid)
            }
            None => Ok(()),
        }
    }

    /// Takes the distinct LFS pointers found (empty unless [`with_lfs_pointers`](Self::with_lfs_pointers));
    /// the scanner collects no more pointers after.
    pub fn take_lfs_pointers(&mut self) -> PointerSet {
        self.lfs_pointers.take().unwrap_or_default()
    }

    /// Sorts the links collected so far and frees the buffer of new ones: [`links`](Self::links) then lists each
    /// once, in order.
    pub fn compact_links(&mut self) {
        if let Some(links) = &mut self.links {
            links.compact();
        }
    }

    /// Forgets the links to the ids of `sorted` (ascending), which need no check: objects of the pack itself
    /// ([`LinkSet::remove_sorted`]). Links found later are still collected.
    pub fn forget_links(&mut self, sorted: impl IntoIterator<Item = ObjectId>) {
        if let Some(links) = &mut self.links {
            links.remove_sorted(sorted);
        }
    }

    /// The ids linked to so far, each at least once; each once and in order after
    /// [`compact_links`](Self::compact_links) (empty when links are not collected).
    pub fn links(&self) -> impl Iterator<Item = &ObjectId> {
        self.links.iter().flat_map(LinkSet::iter)
    }

    /// How many distinct ids were linked to.
    pub fn link_count(&self) -> usize {
        self.links.as_ref().map_or(0, LinkSet::len)
    }

    /// Bytes the collected links hold now, as counted against the limit.
    pub fn link_bytes(&self) -> u64 {
        self.links.as_ref().map_or(0, LinkSet::bytes)
    }
}

#[cfg(test)]
pub(crate) mod tests;
