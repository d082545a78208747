//! The mirror's [`ObjectSink`]: hashes and scans the objects a pass over a pack hands over on a thread of its
//! own, so that the pass's thread only inflates and applies deltas and the two use two cores.
//!
//! The objects go to the worker in the order they were handed over, and it processes them in that order
//! ([`Finished::process`]), so the scanner collects and fails exactly as on the pass's thread. What is in flight
//! (handed over, not answered yet: the objects' content or scans, and their bookkeeping) is counted in bytes and
//! held to a limit: an object that does not fit is hashed on the pass's thread instead, and only its scan goes
//! over, so that the threads seldom wait for each other (the load balances itself: on the bench's huge pack the
//! worker alone took longer than pass 1's own work); only a worker behind even on the scans makes the pass's
//! thread wait. The content is shared with the pass's caches (an `Arc`), never copied. Dropping the sink stops the worker after the object it
//! is on; a worker that panics becomes [`HandOverError::Stopped`], which the run reports as a typed error.

use crate::git::hand_over::{Finished, HandOverError, Hashed, ObjectSink};
use crate::git::scan::{ScanPlan, Scanner};
use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

/// Most bytes of content in flight to the worker (a smaller budget gives it less): about as much as pass 1's
/// queue of pack chunks.
pub(super) const HAND_OVER_BYTES: u64 = 4 << 20;

/// Objects, and bytes of them, handed over before they are sent to the worker together (one wake-up of the
/// worker per object cost more CPU than hashing small objects saves); they are sent sooner when the pass looks
/// for ids ([`ObjectSink::take_done`]).
const SEND_OBJECTS: usize = 32;
const SEND_BYTES: u64 = 512 << 10;

/// What the worker does with one object (the tests give it another).
type Work = fn(Finished, &mut Scanner) -> Result<Hashed, HandOverError>;

/// An [`ObjectSink`] whose work is done on a thread of its own.
pub(super) struct HashWorker {
    plan: ScanPlan,
    /// `None` once the worker is told to end.
    jobs: Option<Sender<Vec<Finished>>>,
    /// Objects handed over and not sent yet, and their bytes.
    unsent: Vec<Finished>,
    unsent_bytes: u64,
    results: Receiver<Result<Vec<Hashed>, HandOverError>>,
    /// The bytes of each object handed over and not answered yet, in order (the worker answers in order).
    sent: VecDeque<u64>,
    in_flight: u64,
    limit: u64,
    /// Most bytes ever in flight.
    peak: u64,
    /// Objects, and bytes of them, hashed on the pass's thread because they did not fit in flight.
    hashed_here: u64,
    hashed_here_bytes: u64,
    done: Vec<Hashed>,
    error: Option<HandOverError>,
    thread: Option<JoinHandle<Scanner>>,
}

impl HashWorker {
    /// Starts a worker scanning with `scanner`, with at most `limit` bytes in flight.
    pub(super) fn start(scanner: Scanner, limit: u64) -> Result<Self, HandOverError> {
        Self::start_with(scanner, limit, Finished::process)
    }

    /// [`start`](Self::start), doing `work` with each object.
    fn start_with(scanner: Scanner, limit: u64, work: Work) -> Result<Self, HandOverError> {
        let plan = scanner.plan();
        let (jobs, queue) = mpsc::channel();
        let (answers, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hash-objects".into())
            .spawn(move || run(scanner, &queue, &answers, work))
            .map_err(|e| HandOverError::Stopped(format!("cannot start a thread: {e}")))?;
        Ok(HashWorker {
            plan,
            jobs: Some(jobs),
            unsent: Vec::new(),
            unsent_bytes: 0,
            results,
            sent: VecDeque::new(),
            in_flight: 0,
            limit,
            peak: 0,
            hashed_here: 0,
            hashed_here_bytes: 0,
            done: Vec::new(),
            error: None,
            thread: Some(thread),
        })
    }

    fn check(&self) -> Result<(), HandOverError> {
        self.error.clone().map_or(Ok(()), Err)
    }

    /// Takes the next answer of the worker, waiting for it if `wait`; whether there was one.
    fn receive(&mut self, wait: bool) -> Result<bool, HandOverError> {
        let answer = match wait {
            true => self.results.recv().ok(),
            false => match self.results.try_recv() {
                Ok(answer) => Some(answer),
                Err(TryRecvError::Empty) => return Ok(false),
                Err(TryRecvError::Disconnected) => None,
            },
        };
        match answer {
            Some(Ok(batch)) => {
                for _ in 0..batch.len() {
                    self.in_flight -= self.sent.pop_front().unwrap_or(0);
                }
                self.done.extend(batch);
                Ok(true)
            }
            Some(Err(error)) => Err(self.failed(error)),
            // Its answers end only when it panicked (it answers an error before it stops for one).
            None => Err(self.join().err().unwrap_or_else(|| {
                self.failed(HandOverError::Stopped(
                    "the hashing thread ended early".into(),
                ))
            })),
        }
    }

    /// Sends the objects handed over to the worker.
    fn send(&mut self) -> Result<(), HandOverError> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        self.unsent_bytes = 0;
        let objects = std::mem::take(&mut self.unsent);
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(objects));
        if !matches!(sent, Some(Ok(()))) {
            // The worker stopped: its answers say why.
            while self.receive(true)? {}
        }
        Ok(())
    }

    fn failed(&mut self, error: HandOverError) -> HandOverError {
        self.error = Some(error.clone());
        error
    }

    /// Tells the worker to end and waits for it: its scanner, or why it stopped without one.
    fn join(&mut self) -> Result<Scanner, HandOverError> {
        self.jobs = None;
        let why = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(scanner)) => return Ok(scanner),
            Some(Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("the hashing thread panicked: {message}")
            }
            None => "the hashing thread ended early".to_owned(),
        };
        Err(self.failed(HandOverError::Stopped(why)))
    }
}

/// The worker: processes the objects in order and answers each vector of them as soon as it is done (at most
/// [`SEND_OBJECTS`] objects or about [`SEND_BYTES`]), so that the bytes in flight fall as the work is done, not
/// in larger steps that would leave the sink over its limit and the pass's thread hashing; stops at the first
/// error or when the sink is gone.
fn run(
    mut scanner: Scanner,
    queue: &Receiver<Vec<Finished>>,
    answers: &Sender<Result<Vec<Hashed>, HandOverError>>,
    work: Work,
) -> Scanner {
    while let Ok(objects) = queue.recv() {
        let mut batch = Vec::with_capacity(objects.len());
        for object in objects {
            match work(object, &mut scanner) {
                Ok(hashed) => batch.push(hashed),
                Err(error) => {
                    // The sink may be gone, and then nobody needs the error.
                    let _ = answers.send(Err(error));
                    return scanner;
                }
            }
        }
        if answers.send(Ok(batch)).is_err() {
            return scanner;
        }
    }
    scanner
}

/// What an object handed over holds until it is answered: itself (its content, or its scan), its place among
/// the objects in flight and its answer.
fn held_bytes(object: &Finished) -> u64 {
    object.held_bytes() + (std::mem::size_of::<Hashed>() + std::mem::size_of::<u64>()) as u64
}

impl ObjectSink for HashWorker {
    fn plan(&self) -> ScanPlan {
        self.plan
    }

    fn submit(&mut self, object: Finished) -> Result<(), HandOverError> {
        self.check()?;
        while self.receive(false)? {}
        // A worker that is behind gets only the scan: the pass's thread hashes rather than waits.
        let object = match self.in_flight + held_bytes(&object) > self.limit {
            true => {
                self.hashed_here += 1;
                self.hashed_here_bytes += object.bytes();
                object.hash_here(&self.plan)
            }
            false => object,
        };
        let bytes = held_bytes(&object);
        // A worker behind even on the scans (the links of trees, the objects themselves): the pass's thread waits
        // for it rather than queue them without bound: at the end of pass 1 on the bench's huge pack at a 128 MiB
        // budget, the worker up to 0.7 s behind, such a queue took resident memory 7-70 MiB past the budget.
        while self.in_flight > 0 && self.in_flight + bytes > self.limit {
            self.send()?;
            self.receive(true)?;
        }
        self.unsent.push(object);
        self.unsent_bytes += bytes;
        self.sent.push_back(bytes);
        self.in_flight += bytes;
        self.peak = self.peak.max(self.in_flight);
        if self.unsent.len() >= SEND_OBJECTS || self.unsent_bytes >= SEND_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn take_done(&mut self, done: &mut Vec<Hashed>) -> Result<(), HandOverError> {
        self.check()?;
        self.send()?;
        while self.receive(false)? {}
        done.append(&mut self.done);
        Ok(())
    }

    fn flush(&mut self, done: &mut Vec<Hashed>) -> Result<(), HandOverError> {
        self.check()?;
        self.send()?;
        while !self.sent.is_empty() {
            self.receive(true)?;
        }
        done.append(&mut self.done);
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Scanner, HandOverError> {
        self.check()?;
        tracing::debug!(
            peak_bytes_in_flight = self.peak,
            hashed_here = self.hashed_here,
            hashed_here_bytes = self.hashed_here_bytes,
            "objects hashed"
        );
        self.join()
    }
}

#[cfg(test)]
mod tests;
