//! The pure core: git's wire formats and file formats as state machines and functions fed bytes. Nothing in this
//! folder does I/O, spawns tasks, logs or reads the environment (`make lint` checks it), so every piece is tested
//! and fuzzed without a network; the [`crate::upstream`] client and the [`crate::store`] backends feed it.

pub mod delta;
pub mod hand_over;
pub mod idx;
pub mod layout;
pub mod lfs;
pub mod links;
pub mod oid;
pub mod pack;
pub mod pktline;
pub mod refs;
pub mod resolve;
pub mod scan;
pub mod upload_pack;
mod varint;
