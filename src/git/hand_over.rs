//! Handing finished objects over to be hashed and scanned.
//!
//! Both passes over a pack ([`crate::git::pack`], [`crate::git::resolve`]) end up with objects whose content is
//! complete: whole objects inflated from the pack, and objects rebuilt from deltas. Each needs its SHA-1 (a
//! third of all the CPU a mirror run spends) and its scan ([`Scanner`]: links, LFS pointers), and neither pass
//! needs the id at once: pass 1 never does, and pass 2 only for the REF deltas that wait for a base id. So the
//! passes hand each finished object to an [`ObjectSink`] and get the ids back later, by entry:
//!
//! - [`InlineSink`] does the work at once, on the caller's thread (tests, fuzz targets, small packs);
//! - the mirror's runs use one that does it on a thread of its own (`src/mirror/fetch/hash_worker.rs`), so the
//!   thread of a pass only inflates and applies deltas.
//!
//! Either way each object is hashed and scanned by [`Finished::process`], in the order the pass handed them over,
//! so what the scanner collects and the first error it finds are the same. A pass that streams an object (too big
//! to hold whole), or needs its id at once, hashes it itself and hands over only what its scan found
//! ([`Content::Hashed`]), for the scanner to keep in order with the rest.

use crate::git::oid::{hash_object, ObjectId, ObjectKind};
use crate::git::pack::entry::Entries;
use crate::git::scan::{ObjectScan, ScanError, ScanPlan, Scanner};
use std::sync::Arc;

/// An object whose content is complete, handed over by a pass.
#[derive(Debug)]
pub struct Finished {
    /// Its entry's index in the pack's entry list: where its id goes.
    pub entry: u32,
    /// Its entry's pack offset, for errors.
    pub offset: u64,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its content, or what was read from it.
    pub content: Content,
}

/// What a [`Finished`] object carries.
#[derive(Debug)]
pub enum Content {
    /// The whole content, shared (with a cache of the pass, usually): hash it and scan it.
    Whole(Arc<Vec<u8>>),
    /// The object was hashed by the pass (streamed, or its id was needed at once): keep what its scan found.
    Hashed(ObjectId, Option<Box<ObjectScan>>),
}

/// The id of a [`Finished`] object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    /// The entry's index in the pack's entry list.
    pub entry: u32,
    /// The object's id.
    pub oid: ObjectId,
}

/// Why handed-over work failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandOverError {
    /// Scanning an object failed (its content is not what its kind requires, or the links outgrew their memory).
    #[error("pack entry at offset {offset}: {problem}")]
    Scan {
        /// Offset of the object's entry.
        offset: u64,
        /// What went wrong.
        problem: ScanError,
    },
    /// Whatever did the work stopped without an answer (the worker thread panicked or could not start): not a
    /// fault of the pack.
    #[error("hashing the pack's objects stopped: {0}")]
    Stopped(String),
}

impl Finished {
    /// Bytes of content it holds (0 once hashed).
    pub fn bytes(&self) -> u64 {
        match &self.content {
            Content::Whole(data) => data.len() as u64,
            Content::Hashed(..) => 0,
        }
    }

    /// Bytes it holds while it waits to be processed, itself included: its content (shared or not), or the
    /// scan of an object hashed already ([`Finished::bytes`] counts only content).
    pub fn held_bytes(&self) -> u64 {
        std::mem::size_of::<Self>() as u64
            + match &self.content {
                Content::Whole(data) => data.len() as u64,
                Content::Hashed(_, scan) => scan.as_ref().map_or(0, |scan| scan.held_bytes()),
            }
    }

    /// Its id, once hashed.
    pub fn oid(&self) -> Option<ObjectId> {
        match &self.content {
            Content::Whole(_) => None,
            Content::Hashed(oid, _) => Some(*oid),
        }
    }

    /// The same object hashed here, with its scan begun by `plan` (for a sink that does not want to hold its
    /// content: [`Finished::bytes`] is 0 after).
    pub fn hash_here(self, plan: &ScanPlan) -> Finished {
        let Content::Whole(data) = &self.content else {
            return self;
        };
        let oid = hash_object(self.kind, data);
        let scan = plan.begin(self.kind, data.len() as u64).map(|mut scan| {
            scan.update(data);
            Box::new(scan)
        });
        Finished {
            content: Content::Hashed(oid, scan),
            ..self
        }
    }

    /// Hashes the object if needed and folds its scan into `scanner`: the work, wherever it runs.
    pub fn process(self, scanner: &mut Scanner) -> Result<Hashed, HandOverError> {
        let offset = self.offset;
        let fail = |problem| HandOverError::Scan { offset, problem };
        let oid = match self.content {
            Content::Whole(data) => {
                let oid = hash_object(self.kind, &data);
                scanner.visit(self.kind, oid, &data).map_err(fail)?;
                oid
            }
            Content::Hashed(oid, scan) => {
                if let Some(scan) = scan {
                    scanner.end(*scan, oid).map_err(fail)?;
                }
                oid
            }
        };
        Ok(Hashed {
            entry: self.entry,
            oid,
        })
    }
}

/// Gives the ids in `done` to their entries, emptying it.
pub fn set_ids(entries: &mut Entries, done: &mut Vec<Hashed>) {
    for Hashed { entry, oid } in done.drain(..) {
        entries.set_oid(entry as usize, oid);
    }
}

/// Where a pass hands its finished objects (see the module doc). After an error, every call returns it again.
pub trait ObjectSink: Send {
    /// What the scanner reads, for the objects the pass hashes itself.
    fn plan(&self) -> ScanPlan;

    /// Hands `object` over; may wait while too many bytes are in flight. An error is the first problem found in
    /// an object handed over before (or this one).
    fn submit(&mut self, object: Finished) -> Result<(), HandOverError>;

    /// Moves the ids computed so far into `done` (in no particular order), without waiting.
    fn take_done(&mut self, done: &mut Vec<Hashed>) -> Result<(), HandOverError>;

    /// Waits until every object handed over is hashed and scanned, and moves their ids into `done`.
    fn flush(&mut self, done: &mut Vec<Hashed>) -> Result<(), HandOverError>;

    /// Ends the hand-over (after [`flush`](Self::flush)): the scanner, with everything it read.
    fn finish(self: Box<Self>) -> Result<Scanner, HandOverError>;
}

/// An [`ObjectSink`] that does the work at once, on the caller's thread.
#[derive(Debug, Default)]
pub struct InlineSink {
    scanner: Scanner,
    done: Vec<Hashed>,
    error: Option<HandOverError>,
}

impl InlineSink {
    /// A sink that scans with `scanner`.
    pub fn new(scanner: Scanner) -> Self {
        InlineSink {
            scanner,
            done: Vec::new(),
            error: None,
        }
    }

    /// The scanner, with everything it read.
    pub fn into_scanner(self) -> Scanner {
        self.scanner
    }

    fn check(&self) -> Result<(), HandOverError> {
        self.error.clone().map_or(Ok(()), Err)
    }
}

impl ObjectSink for InlineSink {
    fn plan(&self) -> ScanPlan {
        self.scanner.plan()
    }

    fn submit(&mut self, object: Finished) -> Result<(), HandOverError> {
        self.check()?;
        match object.process(&mut self.scanner) {
            Ok(hashed) => self.done.push(hashed),
            Err(error) => self.error = Some(error),
        }
        self.check()
    }

    fn take_done(&mut self, done: &mut Vec<Hashed>) -> Result<(), HandOverError> {
        self.check()?;
        done.append(&mut self.done);
        Ok(())
    }

    fn flush(&mut self, done: &mut Vec<Hashed>) -> Result<(), HandOverError> {
        self.take_done(done)
    }

    fn finish(self: Box<Self>) -> Result<Scanner, HandOverError> {
        self.check()?;
        Ok(self.into_scanner())
    }
}

#[cfg(test)]
mod tests;
