//! The environment every integration test runs in (the contract is notes/TESTENV.md): a real S3 API server
//! (`moto_server`), a real git smart-HTTP server (lighttpd + `git http-backend`), deterministic source
//! repositories served by it, and stock `git` as the judge of a mirror.
//!
//! Servers start once per test binary on first use and stop when the test process exits; scratch files go
//! with them. Use from a test file with `mod common;`.

// Every test binary compiles this module but uses only part of it (and of what it re-exports).
#![allow(dead_code, unused_imports)]

mod fixtures;
mod git_server;
mod gitcmd;
mod process;
pub mod raw_http;
mod s3;
mod verify;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use fixtures::{delta_count, object_count};
pub use git_server::{git_server, GitServer};
pub use gitcmd::{git, git_command, mirror_clone, run_ok, upload_pack};
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

/// A new empty bare repository (no refs, HEAD → unborn `main`) served by [`git_server`].
pub fn empty_repo() -> PathBuf {
    let path = new_repo_path("empty");
    fixtures::build_empty(&path);
    path
}

/// A new bare repository with three commits on `main`, served by [`git_server`].
pub fn small_repo() -> PathBuf {
    let path = new_repo_path("small");
    fixtures::build_small(&path);
    path
}

/// A new bare repository with many kinds of refs and entries (default branch `trunk`, annotated tags, a tag
/// of a tag, tags of a tree and a blob, `refs/pull/*`, merges, submodule, symlink), served by [`git_server`].
pub fn rich_repo() -> PathBuf {
    let path = new_repo_path("rich");
    fixtures::build_rich(&path);
    path
}

/// A new bare repository with at least `n_objects` objects, delta chains and ~3,500 refs (mostly
/// `refs/pull/N/head`), served by [`git_server`].
pub fn big_repo(n_objects: u64) -> PathBuf {
    let path = new_repo_path("big");
    fixtures::build_big(&path, n_objects);
    path
}

/// A new bare repository with `versions` versions of a `size`-byte incompressible file stored as deltas
/// against the big base (use [`BIG_BINARY_SIZE`] and 3 for the standard case), served by [`git_server`].
pub fn big_binary_repo(size: usize, versions: usize) -> PathBuf {
    let path = new_repo_path("big-binary");
    fixtures::build_big_binary(&path, size, versions);
    path
}
