//! Packs for tests: made by real git from a fixture repository (with git's own index next to them), or
//! crafted byte by byte (entry headers, base distances, zlib streams, trailers), often to be hostile.
//!
//! Only bytes and files here; reading git's view of a pack into the mirror crate's types stays with the
//! crate's tests (`src/git/pack/test_support.rs`).

use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::fixtures::build_history;
use crate::git::{git, git_with_input};

/// A bare repository `dir/repo.git` holding [`build_history`]`(commits)`.
pub fn make_repo(dir: &Path, commits: usize) -> PathBuf {
    let repo = dir.join("repo.git");
    build_history(&repo, commits);
    repo
}

/// A pack and git's view of it.
pub struct GitPack {
    /// The pack's bytes.
    pub pack: Vec<u8>,
    /// Path of the pack file.
    pub pack_path: PathBuf,
    /// The `.idx` that `git index-pack` wrote for it.
    pub idx: Vec<u8>,
}

/// Packs every object reachable from any ref with `git pack-objects <options>` and indexes the result with
/// `git index-pack` (into `out_dir`).
pub fn pack_repo(repo: &Path, out_dir: &Path, options: &[&str]) -> GitPack {
    let mut args = vec!["pack-objects", "--all", "--stdout", "-q"];
    args.extend_from_slice(options);
    let pack = git_with_input(&args, repo, b"");
    write_and_index(out_dir, pack)
}

/// A scratch directory holding a repository and a pack of it; the files go when it is dropped.
pub struct PackedRepo {
    /// The scratch directory, kept so its files live as long as this value.
    _dir: tempfile::TempDir,
    /// The bare repository, [`make_repo`]`(commits)`.
    pub repo: PathBuf,
    /// The repository packed with [`pack_repo`]`(options)` into `out/` of the scratch directory.
    pub pack: GitPack,
}

/// [`make_repo`]`(commits)` in a new scratch directory, packed with `git pack-objects <options>`.
pub fn packed_repo(commits: usize, options: &[&str]) -> PackedRepo {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = make_repo(dir.path(), commits);
    let pack = pack_repo(&repo, &dir.path().join("out"), options);
    PackedRepo {
        _dir: dir,
        repo,
        pack,
    }
}

/// Writes `pack` into `out_dir` and runs `git index-pack` on it.
pub fn write_and_index(out_dir: &Path, pack: Vec<u8>) -> GitPack {
    std::fs::create_dir_all(out_dir).expect("mkdir");
    let pack_path = out_dir.join("test.pack");
    std::fs::write(&pack_path, &pack).expect("write pack");
    let idx_path = out_dir.join("test.idx");
    git(
        [
            "index-pack",
            "-o",
            idx_path.to_str().expect("utf-8 path"),
            pack_path.to_str().expect("utf-8 path"),
        ],
        out_dir,
    );
    let idx = std::fs::read(&idx_path).expect("read idx");
    GitPack {
        pack,
        pack_path,
        idx,
    }
}
/// The type/size header of a pack entry.
pub fn entry_header(kind: u8, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut byte = (kind << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest != 0 {
        out.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(byte);
    out
}

/// Git's encoding of an OFS_DELTA base distance.
pub fn ofs_distance(mut distance: u64) -> Vec<u8> {
    let mut out = vec![(distance & 0x7f) as u8];
    distance >>= 7;
    while distance != 0 {
        distance -= 1;
        out.push(0x80 | (distance & 0x7f) as u8);
        distance >>= 7;
    }
    out.reverse();
    out
}

/// zlib-compressed `data`.
pub fn zlib(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

/// Builds packs byte by byte, so that any header or stream can be crafted.
pub struct PackBuilder {
    /// The pack so far.
    pub bytes: Vec<u8>,
    /// Offsets of the entries added.
    pub offsets: Vec<u64>,
}

impl PackBuilder {
    /// A pack header with this version and object count.
    pub fn new(version: u32, count: u32) -> Self {
        let mut bytes = b"PACK".to_vec();
        bytes.extend_from_slice(&version.to_be_bytes());
        bytes.extend_from_slice(&count.to_be_bytes());
        PackBuilder {
            bytes,
            offsets: Vec::new(),
        }
    }

    /// Appends an entry made of raw parts (header, base reference, compressed data).
    pub fn raw(mut self, parts: &[&[u8]]) -> Self {
        self.offsets.push(self.bytes.len() as u64);
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self
    }

    /// Appends a whole object of pack type `kind` (1-4).
    pub fn object(self, kind: u8, data: &[u8]) -> Self {
        self.raw(&[&entry_header(kind, data.len() as u64), &zlib(data)])
    }

    /// Appends an OFS_DELTA `distance` bytes back with this delta data.
    pub fn ofs_delta(self, distance: u64, delta: &[u8]) -> Self {
        self.raw(&[
            &entry_header(6, delta.len() as u64),
            &ofs_distance(distance),
            &zlib(delta),
        ])
    }

    /// Appends the SHA-1 trailer of everything so far.
    pub fn finish(mut self) -> Vec<u8> {
        let digest = Sha1::digest(&self.bytes);
        self.bytes.extend_from_slice(&digest);
        self.bytes
    }
}

/// Replaces the trailer of `pack` by the SHA-1 of the rest (after editing the pack's bytes).
pub fn rehash(pack: &mut Vec<u8>) {
    pack.truncate(pack.len() - 20);
    let digest = Sha1::digest(&pack[..]);
    pack.extend_from_slice(&digest);
}

/// A delta bomb: a pack of one 64 KiB pseudo-random blob and an OFS delta on it made only of one-byte
/// instructions copying the whole blob, declaring a result of `result_size` bytes (rounded down to whole
/// copies). The delta takes `result_size / 65536` bytes and compresses to a thousandth of that; the pack is
/// the blob (64 KiB) plus that.
pub fn delta_bomb(result_size: u64) -> Vec<u8> {
    const BASE: u64 = 0x10000;
    let mut base = vec![0u8; BASE as usize];
    crate::rng::Rng(7).fill(&mut base);
    let copies = result_size / BASE;
    // 0x80: a copy with no offset or size bytes, which means offset 0 and size 0x10000.
    let mut delta = crate::delta::varint(BASE);
    delta.extend(crate::delta::varint(copies * BASE));
    delta.resize(delta.len() + copies as usize, 0x80);
    let builder = PackBuilder::new(2, 2).object(3, &base);
    let distance = builder.bytes.len() as u64 - builder.offsets[0];
    builder.ofs_delta(distance, &delta).finish()
}
