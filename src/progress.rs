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

/// Which mapping of a run a progress update is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingId<'a> {
    /// The mapping's position in the list given to [`crate::mirror_repos`]. It is unique within a run where the
    /// source and the target need not be (one source mirrored to two targets), so observers key by it.
    pub index: usize,
    /// The source URL, credentials removed: for display.
    pub source: &'a str,
    /// The target as given: for display.
    pub target: &'a str,
}

/// Observer of per-mapping progress (the CLI draws progress bars with it).
pub trait Progress: Send + Sync {
    /// Called whenever `mapping` moves on; cheap and frequent.
    fn update(&self, mapping: MappingId<'_>, stage: Stage);
}
