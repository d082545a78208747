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
//! | protocol v2: capabilities, `ls-refs` with ref prefixes, `fetch` and its sections | `git/upload_pack/v2.rs` |
//! | pack pass 1: entry bounds, CRC-32, ids of whole objects | `git/pack/mod.rs` |
//! | zlib inflation held to an entry's declared size | `git/pack/inflate.rs` |
//! | pack pass 2: delta ids within the memory budget | `git/resolve/` |
//! | delta instructions | `git/delta.rs` |
//! | `.idx` v2 bytes | `git/idx.rs` |
//! | finding ids in a stored `.idx` (fan-out, ranged reads) | `git/idx/lookup.rs` |
//! | what the passes do with each object's content (the object-content visitor) | `git/scan.rs` |
//! | handing finished objects over to be hashed and scanned; the thread that does it | `git/hand_over.rs`, `mirror/fetch/hash_worker.rs` |
//! | the links of a commit, tree or tag | `git/links.rs` |
//! | Git LFS pointers, the batch API's JSON, `.lfsconfig` | `git/lfs/` |
//! | `info/refs`, `packed-refs`, `objects/info/packs`, `HEAD` | `git/layout.rs` |
//! | one mapping end to end: API, reports, the run's outline | `mirror/mod.rs` |
//! | the source's refs: v0 advertisement, or v2 `ls-refs` when ref prefixes leave refs out | `mirror/discover.rs` |
//! | no-op / full / incremental / refs-only / compaction decision, wants and haves | `mirror/plan.rs` |
//! | receive → resolve and index → store one pack; the memory budget | `mirror/fetch.rs`, `mirror/fetch/budget.rs` |
//! | the connectivity check before anything is published | `mirror/connectivity.rs` |
//! | publication order and conditional writes | `mirror/publish.rs` |
//! | reading a stored pack back as a few streamed GETs | `mirror/read_back.rs` |
//! | deleting unlisted packs after a grace period | `mirror/gc.rs` |
//! | LFS objects of the new pack: skip, batch, verified streaming upload, before refs | `mirror/lfs.rs` |
//! | HTTP client, redirects, response checks | `upstream/client.rs` |
//! | retries of source requests: which failures, how long to wait | `upstream/retry.rs` |
//! | addresses sources may not reach (metadata, link-local, loopback in Lambda) | `upstream/address.rs` |
//! | URL redaction, credentials and where they may go | `upstream/url.rs` |
//! | LFS endpoint, batch request, object downloads | `upstream/lfs.rs` |
//! | S3 and directory targets, conditional writes | `store/` |
//! | untrusted text in error messages, error chains | `text.rs` |
//! | run options and mappings | `options.rs` |
//! | progress stages and observers | `progress.rs` |
//! | the per-mapping report | `report.rs` |
//! | Lambda event → requests | `lambda/` |
//! | Lambda fan-out to SQS, token secrets, EMF metrics, JSON logs | `lambda/fan_out.rs`, `tokens.rs`, `metrics.rs`, `logging.rs` |

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
