//! The resolver's per-entry state in three bytes: two counts of children and one byte for the object's kind,
//! whether the entry is resolved and whether it waits for the next pass.
//!
//! The state is held for every entry of the pack for the whole of pass 2, so it is kept narrow: a count is one
//! byte, and the rare entry with [`SPILLED`] or more children (a blob with hundreds of versions delta'd against
//! it) keeps its exact count in a side table instead. Counts are exact whatever their size.

use super::EntryIndex;
use crate::git::oid::ObjectKind;
use std::collections::HashMap;

/// A one-byte count at this value means the count is held in [`Counts::spilled`].
const SPILLED: u8 = u8::MAX;

/// One exact count per entry, one byte each (see the module doc).
pub(super) struct Counts {
    small: Vec<u8>,
    /// Counts of [`SPILLED`] or more, by entry.
    spilled: HashMap<EntryIndex, u32>,
}

impl Counts {
    /// `n` counts of zero.
    pub(super) fn new(n: usize) -> Self {
        Counts {
            small: vec![0; n],
            spilled: HashMap::new(),
        }
    }

    /// The count of entry `i`.
    pub(super) fn get(&self, i: EntryIndex) -> u32 {
        match self.small[i.get()] {
            SPILLED => self.spilled.get(&i).copied().unwrap_or(u32::from(SPILLED)),
            count => u32::from(count),
        }
    }

    /// Whether the count of entry `i` is zero.
    pub(super) fn is_zero(&self, i: EntryIndex) -> bool {
        self.small[i.get()] == 0
    }

    /// Adds one to the count of entry `i` (it stops at `u32::MAX`).
    pub(super) fn increment(&mut self, i: EntryIndex) {
        let count = self.get(i).saturating_add(1);
        self.set(i, count);
    }

    /// Takes one from the count of entry `i`, unless it is zero.
    pub(super) fn decrement(&mut self, i: EntryIndex) {
        let count = self.get(i).saturating_sub(1);
        self.set(i, count);
    }

    fn set(&mut self, i: EntryIndex, count: u32) {
        match u8::try_from(count) {
            Ok(small) if small < SPILLED => {
                self.small[i.get()] = small;
                self.spilled.remove(&i);
            }
            _ => {
                self.small[i.get()] = SPILLED;
                self.spilled.insert(i, count);
            }
        }
    }
}

/// Bit of an [`EntryStates`] byte set once the entry is resolved; the bits below it are the object's kind.
const RESOLVED: u8 = 1 << 2;
const KIND_MASK: u8 = RESOLVED - 1;
/// Bit of an [`EntryStates`] byte set while the entry waits for the next pass.
const DEFERRED: u8 = 1 << 3;

/// The kind of each entry's object, whether the entry is resolved, and whether it waits for the next pass, one
/// byte per entry.
pub(super) struct EntryStates {
    states: Vec<u8>,
    /// Entries resolved.
    resolved: usize,
}

impl EntryStates {
    /// The states of entries of these kinds (for a delta not resolved yet, a placeholder), none resolved.
    pub(super) fn new(kinds: impl ExactSizeIterator<Item = ObjectKind>) -> Self {
        EntryStates {
            states: kinds.map(kind_bits).collect(),
            resolved: 0,
        }
    }

    /// The kind of entry `i`'s object.
    pub(super) fn kind(&self, i: EntryIndex) -> ObjectKind {
        match self.states[i.get()] & KIND_MASK {
            0 => ObjectKind::Commit,
            1 => ObjectKind::Tree,
            2 => ObjectKind::Blob,
            _ => ObjectKind::Tag,
        }
    }

    /// Records the kind of entry `i`'s object.
    pub(super) fn set_kind(&mut self, i: EntryIndex, kind: ObjectKind) {
        let state = &mut self.states[i.get()];
        *state = (*state & !KIND_MASK) | kind_bits(kind);
    }

    /// Whether entry `i` is resolved.
    pub(super) fn is_resolved(&self, i: EntryIndex) -> bool {
        self.states[i.get()] & RESOLVED != 0
    }

    /// Records that entry `i` is resolved.
    pub(super) fn set_resolved(&mut self, i: EntryIndex) {
        let state = &mut self.states[i.get()];
        if *state & RESOLVED == 0 {
            *state |= RESOLVED;
            self.resolved += 1;
        }
    }

    /// Whether entry `i` waits for the next pass.
    pub(super) fn is_deferred(&self, i: EntryIndex) -> bool {
        self.states[i.get()] & DEFERRED != 0
    }

    /// Records that entry `i` waits for the next pass.
    pub(super) fn set_deferred(&mut self, i: EntryIndex) {
        self.states[i.get()] |= DEFERRED;
    }

    /// Starts a pass: no entry waits for the next one.
    pub(super) fn clear_deferred(&mut self) {
        for state in &mut self.states {
            *state &= !DEFERRED;
        }
    }

    /// How many entries are resolved.
    pub(super) fn resolved(&self) -> usize {
        self.resolved
    }

    /// The kinds of all entries, in entry order.
    pub(super) fn kinds(&self) -> Vec<ObjectKind> {
        (0..self.states.len())
            .map(|i| self.kind(EntryIndex::new(i)))
            .collect()
    }
}

fn kind_bits(kind: ObjectKind) -> u8 {
    match kind {
        ObjectKind::Commit => 0,
        ObjectKind::Tree => 1,
        ObjectKind::Blob => 2,
        ObjectKind::Tag => 3,
    }
}

#[cfg(test)]
mod tests;
