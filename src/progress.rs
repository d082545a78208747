//! Progress of each mapping as it runs: the stages it goes through and the observer that the CLI draws bars
//! (or log lines) with.

/// Stages a repository goes through, reported to a [`Progress`] observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading the source's refs and the mirror's state.
    Negotiating,
    /// Receiving the pack; the number is the bytes received so far.
    Receiving(u64),
    /// Computing object ids; the numbers are entries done and the total.
    Resolving(u64, u64),
    /// Writing index, pack list and refs.
    Publishing,
}

/// Observer of per-repository progress (the CLI draws progress bars with it).
pub trait Progress: Send + Sync {
    /// Called whenever `source` moves on; cheap and frequent.
    fn update(&self, source: &str, stage: Stage);
}
