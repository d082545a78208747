//! Mirror git repositories served over smart HTTP(S) into S3 (or a directory), so that stock `git clone` reads the
//! mirror over git's dumb HTTP protocol.
//!
//! The sans-IO core ([`pktline`], [`protocol`], [`pack`], [`delta`], [`idx`], [`layout`]) is fed bytes and does no
//! I/O; [`source`] (hyper) and [`store`] (S3 or a directory) are the edges; [`mirror`] runs one mapping end to end
//! and [`mirror_repos`] many at once. The CLI (`src/main.rs`) and the Lambda function ([`lambda`], `src/bin/lambda.rs`) are thin
//! fronts.

pub mod config;
pub mod delta;
pub mod entry;
pub mod gc;
pub mod idx;
pub mod lambda;
pub mod layout;
pub mod mirror;
pub mod oid;
pub mod pack;
pub mod pktline;
pub mod protocol;
pub mod report;
pub mod resolve;
pub mod source;
pub mod store;

pub use config::{Mapping, MirrorOptions, Progress, Stage};
pub use mirror::{mirror_repo, mirror_repos, MirrorError};
pub use report::{MirrorPath, RepoReport};
