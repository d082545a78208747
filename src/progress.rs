//! Progress of each mapping as it runs: the stages it goes through and the observer that the CLI draws bars
//! (or log lines) with.

/// Stages a repository goes through, reported to a [`Progress`] observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading the source's refs and the mirror's state.
    Negotiating,
    /// Receiving the pack.
    Receiving {
        /// Pack bytes received so far.
        bytes: u64,
    },
    /// Computing object ids.
    Resolving {
        /// Pack entries done.
        done: u64,
        /// Pack entries in all.
        total: u64,
    },
    /// Writing index, pack list and refs.
    Publishing,
}

/// Observer of per-repository progress (the CLI draws progress bars with it).
pub trait Progress: Send + Sync {
    /// Called whenever `source` moves on; cheap and frequent.
    fn update(&self, source: &str, stage: Stage);
}
