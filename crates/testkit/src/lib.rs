//! The environment the tests of `mirror-git-to-s3` run in, and the one place their helpers live: a hermetic
//! `git` runner ([`git`](mod@git)), deterministic fixture repositories ([`fixtures`]), packs and deltas made
//! by git or byte by byte ([`pack`], [`delta`]), a real git smart-HTTP server (lighttpd + `git http-backend`,
//! [`git_server`](mod@git_server)), a real S3 API server (`moto_server`, [`s3`](mod@s3)), a hand-written
//! HTTP server for hostile peers ([`raw_http`]), a proxy that injects network faults in front of either server
//! ([`fault_proxy`]), a smart source that answers with packs real git built from
//! chosen objects ([`lying`]), a real Git LFS server and client ([`lfs`]), and stock `git` as the judge of a
//! mirror ([`verify`]).
//!
//! This crate is a dev-dependency of the mirror crate (its unit tests, its integration tests under `tests/`)
//! and holds the `make_fixture` program that `scripts/demo.sh` and `scripts/bench.sh` run. It does not depend
//! on the mirror crate: it judges the mirror, so it shares none of its code (`tests/harness.rs` tests it on
//! its own).
//!
//! # The test-environment contract
//!
//! What a test may assume, and what it owes the tests running beside it.
//!
//! **Programs on the machine.** `git` (with `git http-backend` under `git --exec-path`), `bash`, `sh`,
//! `lighttpd` with `mod_cgi`, `mod_alias`, `mod_setenv` (and `mod_openssl`, `mod_proxy` for the TLS tests),
//! `openssl`, `git-lfs`, and `moto_server` 5.2.5 (older versions answer CompleteMultipartUpload in a form the
//! AWS SDK rejects), `dulwich` and `git-lfs-http-mirror` (the LFS tests). `make tools` (`ensure_tools` in `scripts/lib.sh`) installs what is missing: `lighttpd` from apt,
//! moto and the other Python tools into the tools venv, which `scripts/lib.sh` defines (`MIRROR_TOOLS_VENV`,
//! default `~/.cache/mirror-git-to-s3/tools`). Nothing is fetched from the network while tests run; every
//! server listens on 127.0.0.1.
//!
//! **Servers.** Each starts on first use and lives as long as the test process: [`git_server()`] (one per test
//! binary, serving every bare repository under [`GitServer::root`]) and [`s3()`] (the shared `moto_server` that
//! `scripts/test.sh` starts once per run and names in `MIRROR_TEST_S3_ENDPOINT`, or one per test binary when
//! that is unset). A watchdog ties every server started here to the test process, so it stops and its scratch
//! directory goes however the process ends ([`process`]). Both servers log every request, so tests can count
//! what a run cost. Scratch files (served repositories, server state) live under the system temporary
//! directory and go with the process.
//!
//! **Isolation.** Tests in a binary run in parallel against the same servers. A test creates what it writes:
//! its own repositories ([`small_repo`] and the others return a new path on every call) and its own buckets
//! ([`new_bucket`] names are unique across test binaries and runs); it never changes a repository or bucket
//! it did not create, and it counts requests by repository or bucket name, never in total.
//!
//! **git.** Every `git` a test runs goes through [`git_command`]: no system or global configuration, `HOME` set
//! to the command's directory, no `GIT_DIR` and friends inherited, one identity and fixed author and
//! committer dates ([`git::FIXED_TIME`]), no automatic gc, no prompts, `LC_ALL=C`. A developer's
//! `~/.gitconfig` cannot change a result.
//!
//! **Fixtures.** Repositories are generated with `git fast-import` from streams written by [`fixtures`], with
//! fixed times and a seeded generator ([`rng::Rng`]): the same bytes and object ids on every run and
//! machine.
//!
//! **Environment variables.**
//!
//! | variable | meaning |
//! |---|---|
//! | `MIRROR_TEST_S3_ENDPOINT` | an S3 server to share (`http://127.0.0.1:PORT`); unset: start one per binary |
//! | `MIRROR_TEST_S3_LOG` | that server's request log, for [`S3Server::requests`] |
//! | `MIRROR_TOOLS_VENV` | the tools venv (`scripts/lib.sh`), where `moto_server` is looked for first |
//! | `MIRROR_TEST_CARGO_LAMBDA` | a `cargo-lambda` executable; the emulator test in `tests/lambda_runtime.rs` is skipped without it |
//! | `FAULT_SEED` | `tests/faults_injected.rs` runs only this trial (each broken trial prints its seed) |
//! | `FAULT_TRIALS` | trials per scenario in `tests/faults_injected.rs` (default 85) |
//!
//! **Running.** `make test` (lint, then everything), or `bash scripts/test.sh [cargo test arguments]`; plain
//! `cargo test` works too, paying moto's start (up to ~20 s) once per test binary.

pub mod bench_repos;
pub mod delta;
pub mod emf;
pub mod fault_proxy;
pub mod fixtures;
pub mod git;
pub mod git_server;
pub mod lfs;
pub mod lying;
pub mod pack;
pub mod pack_stats;
pub mod process;
pub mod raw_http;
pub mod rng;
pub mod s3;
pub mod verify;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use fixtures::{delta_count, object_count};
pub use git::{git, git_command, mirror_clone, run_ok, upload_pack};
pub use git_server::{git_server, git_server_v0, GitServer};
pub use s3::{get_object, list_keys, new_bucket, s3, upload_dir, S3Server};
pub use verify::{assert_dumb_clone_matches, branches_and_tags, head_symref};

/// Size of the big binary file in [`big_binary_repo`] as the tests use it (50 MiB).
pub const BIG_BINARY_SIZE: usize = 50 << 20;

/// A new, unused path `<git server root>/<kind>-<n>.git` (unique within this test binary).
fn new_repo_path(kind: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    git_server().root.join(format!("{kind}-{n}.git"))
}

/// A new empty bare repository (no refs, HEAD → unborn `main`) served by [`git_server()`].
pub fn empty_repo() -> PathBuf {
    let path = new_repo_path("empty");
    fixtures::build_empty(&path);
    path
}

/// A new bare repository with three commits on `main`, served by [`git_server()`].
pub fn small_repo() -> PathBuf {
    let path = new_repo_path("small");
    fixtures::build_small(&path);
    path
}

/// A new bare repository with many kinds of refs and entries (default branch `trunk`, annotated tags, a tag
/// of a tag, tags of a tree and a blob, `refs/pull/*`, merges, submodule, symlink), served by [`git_server()`].
pub fn rich_repo() -> PathBuf {
    let path = new_repo_path("rich");
    fixtures::build_rich(&path);
    path
}

/// A new bare repository with at least `n_objects` objects, delta chains and ~3,500 refs (mostly
/// `refs/pull/N/head`), served by [`git_server()`].
pub fn big_repo(n_objects: u64) -> PathBuf {
    let path = new_repo_path("big");
    fixtures::build_big(&path, n_objects);
    path
}

/// A new bare repository with `versions` versions of a `size`-byte incompressible file stored as deltas
/// against the big base (use [`BIG_BINARY_SIZE`] and 3 for the standard case), served by [`git_server()`].
pub fn big_binary_repo(size: usize, versions: usize) -> PathBuf {
    let path = new_repo_path("big-binary");
    fixtures::build_big_binary(&path, size, versions);
    path
}
