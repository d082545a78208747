//! Mirror git repositories served over smart HTTP(S) into S3 (or a directory), so that stock `git clone` reads the
//! mirror over git's dumb HTTP protocol.
//!
//! The crate is in four layers: the pure core in [`git`] is fed bytes and does no I/O; [`upstream`] (the smart-HTTP
//! client, over hyper) and [`store`] (S3 or a directory) are the edges; [`mirror`] runs one mapping end to end and
//! [`mirror_repos`] many at once; the CLI (`src/main.rs`) and the Lambda function ([`lambda`],
//! `src/bin/lambda.rs`) are thin fronts.
//!
//! | you are looking for | file |
//! |---|---|
//! | pkt-line framing, side bands | `git/pktline.rs` |
//! | ref advertisement, want/have request, response demux | `git/upload_pack.rs` |
//! | pack pass 1: entry bounds, CRC-32, ids of whole objects | `git/pack/mod.rs` |
//! | zlib inflation held to an entry's declared size | `git/pack/inflate.rs` |
//! | pack pass 2: delta ids within the memory budget | `git/resolve/` |
//! | delta instructions | `git/delta.rs` |
//! | `.idx` v2 bytes | `git/idx.rs` |
//! | `info/refs`, `packed-refs`, `objects/info/packs`, `HEAD` | `git/layout.rs` |
//! | one mapping end to end: API, reports, the run's outline | `mirror/mod.rs` |
//! | no-op / full / incremental / refs-only / compaction decision, wants and haves | `mirror/plan.rs` |
//! | receive → resolve and index → store one pack; the memory budget | `mirror/fetch.rs` |
//! | publication order and conditional writes | `mirror/publish.rs` |
//! | reading a stored pack back in chunks | `mirror/read_back.rs` |
//! | deleting unlisted packs after a grace period | `mirror/gc.rs` |
//! | HTTP client, redirects, response checks | `upstream/client.rs` |
//! | retries of source requests: which failures, how long to wait | `upstream/retry.rs` |
//! | addresses sources may not reach (metadata, link-local, loopback in Lambda) | `upstream/address.rs` |
//! | URL redaction, credentials and where they may go | `upstream/url.rs` |
//! | S3 and directory targets, conditional writes | `store/` |
//! | untrusted text in error messages, error chains | `text.rs` |
//! | run options and mappings | `options.rs` |
//! | progress stages and observers | `progress.rs` |
//! | the per-mapping report | `report.rs` |
//! | Lambda event → requests | `lambda/` |

pub mod git;
pub mod lambda;
pub mod mirror;
pub mod options;
pub mod progress;
pub mod report;
pub mod store;
mod text;
pub mod upstream;

pub use mirror::{mirror_repo, mirror_repos, MirrorError};
pub use options::{Mapping, MirrorOptions};
pub use progress::{MappingId, Progress, Stage};
#[allow(deprecated)]
// Kept so that code naming the old type still builds, with a deprecation warning.
pub use report::MirrorPath;
pub use report::{RepoReport, RunKind};
