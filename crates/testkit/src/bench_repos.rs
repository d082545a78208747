//! The repositories `make bench` (`scripts/bench.sh`) measures the mirror on, generated from a seed: the same
//! seed and size give the same objects on every run and machine, so the script can cache them.
//!
//! - [`build_history`]: a long linear history in the shape of a big public project (git.git has 841k objects,
//!   4,282 refs and a 466 MiB pack as GitHub serves it). Thousands of files in nested directories, most rarely
//!   edited and a few edited all the time; one catalogue of ~1.5 MiB (huge) with thousands of versions (like
//!   git.git's `po/` files); a dozen files with ~1,000 versions each; annotated and lightweight tags; branches;
//!   thousands of `refs/pull/N/head` and `refs/pull/N/merge`. [`HUGE`] reaches git.git's object count,
//!   [`MEDIUM`] tokio's.
//! - [`build_large_file`]: one big incompressible file changed a few times, every version after the first
//!   stored as a delta against the one before, generated as a stream (never held in memory).
//!
//! # Delta layout
//!
//! A pack as GitHub serves it has poor locality: a delta's base is often far behind it, so a reader that keeps
//! a bounded cache of recent objects misses the base of 14-24% of deltas (design notes §3). A pack written by
//! `git repack` groups each delta family together and has almost no such misses. To get the served shape:
//!
//! 1. The `git fast-import` stream writes every file's versions newest first, back to back, so fast-import
//!    stores each older version as a delta against the next newer one (chains of depth up to 50, the newest
//!    version whole, as git itself chooses bases).
//! 2. [`relayout`] rewrites the repository's pack with `git pack-objects` reusing those deltas, fed the objects
//!    in history order (`git rev-list --objects --all`) from a helper repository that has no tags, so
//!    pack-objects keeps that order instead of grouping delta families (it groups only after the first tagged
//!    object). An older version then sits where history reaches it, far behind the newer version it is a
//!    delta of: the base of a rarely edited file's delta is tens or hundreds of MiB behind.
//! 3. A multi-pack-index bitmap lets `git upload-pack` send that pack verbatim (pack reuse), as GitHub does,
//!    so a clone receives this layout rather than a fresh one.
//!
//! [`crate::pack_stats`] measures the locality a clone actually received.

use std::io::{self, Write};
use std::path::Path;

use crate::fixtures::{self, fast_import, file, init_bare, object_count, Change, Mark};
use crate::git::{git, git_command, run_ok, run_ok_with_input};
use crate::rng::Rng;

/// Version of [`build_history`]: part of the cache key of generated repositories (`scripts/bench.sh`). Bump
/// it whenever a change alters the generated objects or layout.
pub const HISTORY_VERSION: u32 = 1;

/// Version of [`build_large_file`], as [`HISTORY_VERSION`] is of [`build_history`].
pub const LARGE_FILE_VERSION: u32 = 2;

/// The shape of a [`build_history`] repository.
#[derive(Clone, Copy, Debug)]
pub struct HistoryShape {
    /// Top-level directories, each holding `subdirs` directories of `files_per_subdir` regular files.
    pub dirs: usize,
    /// Directories in each top-level directory.
    pub subdirs: usize,
    /// Regular files in each of those directories.
    pub files_per_subdir: usize,
    /// Lines of a regular file at first (each line is 40-70 bytes); files differ in length up to twice this.
    pub file_lines: usize,
    /// Lines of the hot catalogue `po/catalog.pot` at first (~60 bytes each).
    pub hot_lines: usize,
    /// One commit in `hot_every` edits the hot catalogue.
    pub hot_every: usize,
    /// Warm files `notes/log-NN.txt`, edited together by one commit in `warm_every`, one of them each time.
    pub warm_files: usize,
    /// Lines of each warm file at first.
    pub warm_lines: usize,
    /// One commit in `warm_every` edits a warm file.
    pub warm_every: usize,
    /// Branches `topic-NNN` along the history.
    pub branches: usize,
    /// Tags `vM.m` along the history; every other one annotated.
    pub tags: usize,
    /// `refs/pull/N/head` refs (every tenth a commit on no branch); every fourth also has `refs/pull/N/merge`.
    pub pulls: usize,
}

/// git.git's scale: ≥ 800k objects with a 118k-commit history, ~4,500 files, a ~1.5 MiB catalogue with ~3,000
/// versions, 12 files with ~1,500 versions, 60 branches, 400 tags and 5,000 `refs/pull/*` (~5,460 refs).
pub const HUGE: HistoryShape = HistoryShape {
    dirs: 40,
    subdirs: 8,
    files_per_subdir: 14,
    file_lines: 150,
    hot_lines: 24_000,
    hot_every: 40,
    warm_files: 12,
    warm_lines: 1_500,
    warm_every: 6,
    branches: 60,
    tags: 400,
    pulls: 4_000,
};

/// tokio's scale: ≥ 150k objects, ~1,200 files, a ~450 KiB catalogue, 8 warm files, 5,000 `refs/pull/*`.
pub const MEDIUM: HistoryShape = HistoryShape {
    dirs: 20,
    subdirs: 6,
    files_per_subdir: 10,
    file_lines: 120,
    hot_lines: 8_000,
    hot_every: 40,
    warm_files: 8,
    warm_lines: 800,
    warm_every: 6,
    branches: 20,
    tags: 200,
    pulls: 4_000,
};

/// The vocabulary of the generated text: 4,096 pseudo-words of 2-4 syllables, so the text compresses about as
/// well as source code does (4-5×) rather than as well as a handful of repeated words would.
fn vocabulary() -> &'static [String] {
    static WORDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        const SYLLABLES: &[&str] = &[
            "ka", "to", "ri", "sen", "mu", "pa", "lo", "ve", "dra", "nix", "qu", "bel", "or",
            "tan", "fi", "gro", "st", "ruct", "int", "ptr", "len", "buf", "get", "set", "_", "x",
            "io", "sync", "map", "err", "ok", "ch",
        ];
        let mut rng = Rng(0x766f_6361_6275_6c61);
        (0..4096)
            .map(|_| {
                (0..2 + rng.below(3))
                    .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                    .collect()
            })
            .collect()
    })
}

/// Appends the text of the line with `stamp` (a number no other line of the repository has): `stamp` in hex
/// and 4-9 words drawn from a generator seeded by `stamp` and `seed`, so a line is rendered the same way
/// wherever and whenever it appears.
fn render_line(out: &mut Vec<u8>, words: &[String], seed: u64, stamp: u32) {
    let mut rng = Rng(seed ^ (u64::from(stamp) << 20));
    write!(out, "{stamp:07x}").expect("writing to a Vec cannot fail");
    for _ in 0..4 + rng.below(6) {
        out.push(b' ');
        out.extend_from_slice(words[rng.below(words.len())].as_bytes());
    }
    out.push(b'\n');
}

/// `count` words of the vocabulary, separated by spaces (commit and tag messages).
fn sentence(rng: &mut Rng, count: usize) -> String {
    let words = vocabulary();
    (0..count)
        .map(|_| words[rng.below(words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One change to a file's lines, recorded so that it can be undone.
#[derive(Clone, Copy)]
enum Op {
    /// The line at this index got a new stamp; the old one was `old`.
    Replace { line: u32, old: u32 },
    /// A new line was inserted at this index.
    Insert { line: u32 },
    /// The line at this index, with stamp `old`, was removed.
    Delete { line: u32, old: u32 },
}

/// A file of the generated history: its lines (as stamps) in the newest version, and for each version after
/// the first the operations that made it from the one before.
struct File {
    path: String,
    lines: Vec<u32>,
    versions: Vec<Vec<Op>>,
}

impl File {
    /// A new version: `hunks` times, at a random place, `replaced` consecutive lines replaced, `inserted`
    /// lines inserted after them and `deleted` lines deleted after those (a file never shrinks below one
    /// line), where `change` is `[replaced, inserted, deleted]`. Returns the version's number.
    fn edit(&mut self, rng: &mut Rng, stamp: &mut u32, hunks: usize, change: [usize; 3]) -> usize {
        let [replaced, inserted, deleted] = change;
        let mut ops = Vec::with_capacity(hunks * (replaced + inserted));
        for _ in 0..hunks {
            let start = rng.below(self.lines.len());
            let end = (start + replaced).min(self.lines.len());
            for line in start..end {
                *stamp += 1;
                let old = std::mem::replace(&mut self.lines[line], *stamp);
                ops.push(Op::Replace {
                    line: line as u32,
                    old,
                });
            }
            for line in end..end + inserted {
                *stamp += 1;
                self.lines.insert(line, *stamp);
                ops.push(Op::Insert { line: line as u32 });
            }
            let at = end + inserted;
            for _ in 0..deleted {
                if at >= self.lines.len() || self.lines.len() == 1 {
                    break;
                }
                let old = self.lines.remove(at);
                ops.push(Op::Delete {
                    line: at as u32,
                    old,
                });
            }
        }
        self.versions.push(ops);
        self.versions.len()
    }

    /// Undoes the newest recorded version's operations on `lines` (a copy being walked back in time).
    fn undo(lines: &mut Vec<u32>, ops: &[Op]) {
        for op in ops.iter().rev() {
            match *op {
                Op::Replace { line, old } => lines[line as usize] = old,
                Op::Insert { line } => {
                    lines.remove(line as usize);
                }
                Op::Delete { line, old } => lines.insert(line as usize, old),
            }
        }
    }
}

/// Writes `lines` rendered into `out` (cleared first).
fn render(out: &mut Vec<u8>, seed: u64, lines: &[u32]) {
    let words = vocabulary();
    out.clear();
    for &stamp in lines {
        render_line(out, words, seed, stamp);
    }
}

/// A linear history on `main` of at least `min_objects` objects in the given shape, generated from `seed`,
/// written to a new bare repository at `path` and laid out as GitHub serves such a repository (see the module
/// documentation). HEAD → `main`. Annotated tags stay loose refs; every other ref is packed. Panics if git
/// fails or the repository has fewer objects than asked.
pub fn build_history(path: &Path, shape: &HistoryShape, seed: u64, min_objects: u64) {
    init_bare(path, "main");
    let mut rng = Rng(seed);
    // Every line ever written gets a new stamp.
    let mut stamp = 0u32;
    let mut new_file = |path: String, lines: usize| {
        let lines = (0..lines)
            .map(|_| {
                stamp += 1;
                stamp
            })
            .collect();
        File {
            path,
            lines,
            versions: Vec::new(),
        }
    };
    // Files: the hot catalogue first, then the warm files, then the regular ones.
    let mut files = vec![new_file("po/catalog.pot".into(), shape.hot_lines)];
    for k in 0..shape.warm_files {
        files.push(new_file(format!("notes/log-{k:02}.txt"), shape.warm_lines));
    }
    let first_regular = files.len();
    for d in 0..shape.dirs {
        for s in 0..shape.subdirs {
            for f in 0..shape.files_per_subdir {
                let lines = shape.file_lines / 2 + rng.below(shape.file_lines * 3 / 2);
                files.push(new_file(format!("d{d:02}/s{s}/f{f:02}.c"), lines));
            }
        }
    }
    let mut stamp = files
        .iter()
        .flat_map(|f| f.lines.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let regular = files.len() - first_regular;
    // Popularity of regular files: a fixed random order, then a skewed draw (the square of a uniform number), so
    // a few files get thousands of edits and most files a few dozen, far apart in the history.
    let mut order: Vec<usize> = (first_regular..files.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }

    // Plan the history: which version of which file each commit writes, and how many objects that makes (the
    // commit, its blobs, and the trees on their paths: root, top-level directory, subdirectory).
    let initial_trees = 1 + 2 + shape.dirs + shape.dirs * shape.subdirs;
    let mut objects = (files.len() + initial_trees + 1) as u64;
    let extra_objects = shape.tags / 2 + (shape.pulls / 10) * 4;
    let mut commits: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut recent: Vec<usize> = Vec::new();
    while objects + (extra_objects as u64) < min_objects {
        let mut touched: Vec<usize> = Vec::new();
        if rng.below(shape.hot_every) == 0 {
            touched.push(0);
        }
        if rng.below(shape.warm_every) == 0 && shape.warm_files > 0 {
            touched.push(1 + rng.below(shape.warm_files));
        }
        let regular_count = match rng.below(10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3 + rng.below(3),
        };
        for _ in 0..regular_count {
            // Half the time the same topic as a recent commit, as people work.
            let f = if !recent.is_empty() && rng.below(2) == 0 {
                recent[rng.below(recent.len())]
            } else {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                order[((regular as f64) * u * u) as usize % regular]
            };
            if !touched.contains(&f) {
                touched.push(f);
            }
        }
        recent = touched
            .iter()
            .copied()
            .filter(|&f| f >= first_regular)
            .collect();
        let mut trees: Vec<String> = Vec::new();
        let mut changes = Vec::with_capacity(touched.len());
        for &f in &touched {
            // The catalogue: many scattered small changes (a translation update); the warm files: entries
            // added (release notes); regular files: a hunk or two of a few lines (a patch).
            // Sizes stay about the same (as many lines deleted as inserted on average), except the warm files,
            // which grow slowly.
            let (hunks, change) = if f == 0 {
                (5 + rng.below(40), [1, rng.below(2), rng.below(2)])
            } else if f < first_regular {
                (1, [rng.below(3), 1 + rng.below(4), rng.below(3)])
            } else {
                (
                    1 + rng.below(2),
                    [1 + rng.below(10), rng.below(4), rng.below(4)],
                )
            };
            let version = files[f].edit(&mut rng, &mut stamp, hunks, change);
            changes.push((f, version));
            let path = files[f].path.as_str();
            for (slash, _) in path.match_indices('/') {
                if !trees.iter().any(|t| t == &path[..slash]) {
                    trees.push(path[..slash].to_string());
                }
            }
        }
        objects += (1 + touched.len() + trees.len() + 1) as u64;
        commits.push(changes);
    }

    let mut packed: Vec<(String, Mark)> = Vec::new();
    let marks = fast_import(path, |fi| {
        let main = "refs/heads/main";
        // Every file's versions, newest first and back to back: fast-import stores each as a delta against the
        // blob written just before it, i.e. the next newer version of the same file.
        let mut blob_marks: Vec<Vec<Mark>> = Vec::with_capacity(files.len());
        let mut text = Vec::new();
        for file in &files {
            let mut lines = file.lines.clone();
            let mut marks = vec![None; file.versions.len() + 1];
            for v in (0..=file.versions.len()).rev() {
                render(&mut text, seed, &lines);
                marks[v] = Some(fi.blob(&text)?);
                if v > 0 {
                    File::undo(&mut lines, &file.versions[v - 1]);
                }
            }
            blob_marks.push(
                marks
                    .into_iter()
                    .map(|m| m.expect("every version written"))
                    .collect(),
            );
        }
        drop(text);

        let initial: Vec<Change<'_>> = files
            .iter()
            .zip(&blob_marks)
            .map(|(f, m)| file(&f.path, m[0]))
            .collect();
        let root = fi.commit(main, "Initial import\n", &[], &initial)?;
        let mut history = Vec::with_capacity(commits.len() + 1);
        history.push(root);
        let mut message = String::new();
        for (n, changes) in commits.iter().enumerate() {
            let list: Vec<Change<'_>> = changes
                .iter()
                .map(|&(f, v)| file(&files[f].path, blob_marks[f][v]))
                .collect();
            message.clear();
            message.push_str(&format!(
                "Change {} in {}\n\n",
                n + 1,
                files[changes[0].0].path
            ));
            for _ in 0..2 + (n % 7) {
                message.push_str(&sentence(&mut rng, 12));
                message.push('\n');
            }
            let parent = history[n];
            history.push(fi.commit(main, &message, &[parent], &list)?);
        }

        let len = history.len();
        let at = |k: usize, of: usize| history[(k + 1) * (len - 1) / (of + 1)];
        for k in 0..shape.branches {
            packed.push((format!("refs/heads/topic-{k:03}"), at(k, shape.branches)));
        }
        for k in 0..shape.tags {
            let name = format!("v{}.{}", k / 100, k % 100);
            if k % 2 == 0 {
                let message = format!("Release {name}\n\n{}\n", sentence(&mut rng, 10));
                fi.annotated_tag(&name, at(k, shape.tags), &message)?;
            } else {
                packed.push((format!("refs/tags/{name}"), at(k, shape.tags)));
            }
        }
        for n in 1..=shape.pulls {
            let base = at(n - 1, shape.pulls);
            let head = if n % 10 == 0 {
                // A commit on no branch, made on `main`, which is put back afterwards.
                let mut body = Vec::new();
                for _ in 0..10 {
                    body.extend_from_slice(sentence(&mut rng, 10).as_bytes());
                    body.push(b'\n');
                }
                let blob = fi.blob(&body)?;
                let path = format!("proposals/pr-{n}.txt");
                fi.commit(
                    main,
                    &format!("Proposal {n}\n"),
                    &[base],
                    &[file(&path, blob)],
                )?
            } else {
                base
            };
            packed.push((format!("refs/pull/{n}/head"), head));
            if n % 4 == 0 {
                packed.push((format!("refs/pull/{n}/merge"), at(n, shape.pulls)));
            }
        }
        fi.reset(main, history[len - 1])?;
        Ok(())
    });
    fixtures::write_packed_refs(path, &packed, &marks);
    relayout(path);
    let count = object_count(path);
    assert!(
        count >= min_objects,
        "repository {} has {count} objects, wanted at least {min_objects}",
        path.display()
    );
}

/// Rewrites `repo`'s objects as one pack in history order with the deltas the packs already have, plus a
/// multi-pack-index bitmap so `git upload-pack` serves that pack verbatim (see the module documentation).
pub fn relayout(repo: &Path) {
    let objects_dir = repo.join("objects");
    let list = run_ok(git_command(repo).args(["rev-list", "--objects", "--all"])).stdout;
    // A helper repository without refs borrows the objects: pack-objects marks objects tagged in the
    // repository it runs in and groups delta families after the first one, which would undo the layout.
    let helper = tempfile::Builder::new()
        .prefix("relayout-")
        .tempdir_in(repo)
        .unwrap_or_else(|e| panic!("cannot create a directory in {}: {e}", repo.display()));
    git(["init", "--bare", "--quiet", "."], helper.path());
    let alternates = helper.path().join("objects/info/alternates");
    std::fs::write(&alternates, format!("{}\n", objects_dir.display()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", alternates.display()));
    let out = helper.path().join("out");
    std::fs::create_dir(&out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    let old_packs: Vec<_> = std::fs::read_dir(objects_dir.join("pack"))
        .unwrap_or_else(|e| panic!("cannot list {}/pack: {e}", objects_dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    run_ok_with_input(
        git_command(helper.path())
            .args([
                "pack-objects",
                "--quiet",
                "--delta-base-offset",
                "--window=10",
                "--depth=50",
            ])
            .arg(out.join("pack")),
        &list,
    );
    for old in old_packs {
        std::fs::remove_file(&old)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", old.display()));
    }
    for entry in
        std::fs::read_dir(&out).unwrap_or_else(|e| panic!("cannot list {}: {e}", out.display()))
    {
        let from = entry.expect("a directory entry").path();
        let to = objects_dir
            .join("pack")
            .join(from.file_name().expect("a file name"));
        std::fs::rename(&from, &to)
            .unwrap_or_else(|e| panic!("cannot move {} to {}: {e}", from.display(), to.display()));
    }
    drop(helper);
    git(["multi-pack-index", "write", "--bitmap"], repo);
}

/// Fills `buf` with bytes `pos..pos + buf.len()` of the endless random stream of `seed` (the bytes of the
/// SplitMix64 words of [`Rng`] seeded with `seed`, little-endian), without generating what comes before.
fn random_bytes(seed: u64, pos: u64, buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let at = pos + done as u64;
        // Word i of Rng(seed) is the one the generator returns after i + 1 steps.
        let mut rng = Rng(seed.wrapping_add((at / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let word = rng.next_u64().to_le_bytes();
        let skip = (at % 8) as usize;
        let n = (8 - skip).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&word[skip..skip + n]);
        done += n;
    }
}

/// A run of a large file's content: bytes `start..start + len` of the random stream of `seed`.
#[derive(Clone, Copy, Debug)]
struct Piece {
    seed: u64,
    start: u64,
    len: u64,
}

/// The content of one version of a large file, as a list of pieces of random streams.
#[derive(Clone, Debug)]
struct Pieces(Vec<Piece>);

impl Pieces {
    fn len(&self) -> u64 {
        self.0.iter().map(|p| p.len).sum()
    }

    /// Splits the piece containing `offset` so that a piece starts there; returns that piece's index.
    fn split_at(&mut self, offset: u64) -> usize {
        let mut at = 0;
        for i in 0..self.0.len() {
            let piece = self.0[i];
            if offset == at {
                return i;
            }
            if offset < at + piece.len {
                let head = offset - at;
                self.0[i].len = head;
                self.0.insert(
                    i + 1,
                    Piece {
                        seed: piece.seed,
                        start: piece.start + head,
                        len: piece.len - head,
                    },
                );
                return i + 1;
            }
            at += piece.len;
        }
        self.0.len()
    }

    /// Replaces bytes `offset..offset + piece.len` with `piece`.
    fn overwrite(&mut self, offset: u64, piece: Piece) {
        let first = self.split_at(offset);
        let end = self.split_at(offset + piece.len);
        self.0.splice(first..end, [piece]);
    }

    /// Inserts `piece` at `offset`.
    fn insert(&mut self, offset: u64, piece: Piece) {
        let at = self.split_at(offset);
        self.0.insert(at, piece);
    }

    /// Writes the content to `out` in chunks of at most 1 MiB.
    fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut chunk = vec![0u8; 1 << 20];
        for piece in &self.0 {
            let mut done = 0;
            while done < piece.len {
                let n = (piece.len - done).min(chunk.len() as u64) as usize;
                random_bytes(piece.seed, piece.start + done, &mut chunk[..n]);
                out.write_all(&chunk[..n])?;
                done += n as u64;
            }
        }
        Ok(())
    }
}

/// `versions` commits on `main` of one `size`-byte incompressible file `data.bin` plus a small `VERSION`,
/// generated from `seed` into a new bare repository at `path`: each version overwrites eight 4 KiB regions of
/// the previous one and inserts 1 KiB. The versions are written back to back before anything else, so
/// fast-import (told that blobs this big may be deltified) stores every version after the first as a small
/// delta against the one before. The content is generated as a stream, never held in memory (git fast-import
/// holds two versions while it deltifies). `core.bigFileThreshold` is raised above the file's size so that the
/// server's `pack-objects` keeps the deltas. HEAD → `main`.
pub fn build_large_file(path: &Path, seed: u64, size: u64, versions: usize) {
    assert!(
        size >= 64 << 10,
        "a large file needs at least 64 KiB, got {size}"
    );
    assert!(
        versions >= 1,
        "a large-file repository needs at least one version"
    );
    init_bare(path, "main");
    let threshold = size * 2 + (1 << 20);
    git(
        ["config", "core.bigFileThreshold", &threshold.to_string()],
        path,
    );
    let mut rng = Rng(seed);
    let mut content = Pieces(vec![Piece {
        seed: rng.next_u64(),
        start: 0,
        len: size,
    }]);
    let option = format!("--big-file-threshold={threshold}");
    fixtures::fast_import_with_options(path, &[&option], |fi| {
        let mut blobs = Vec::with_capacity(versions);
        for v in 0..versions {
            if v > 0 {
                for _ in 0..8 {
                    let len = content.len();
                    let offset = rng.next_u64() % (len - 4096);
                    let piece = Piece {
                        seed: rng.next_u64(),
                        start: 0,
                        len: 4096,
                    };
                    content.overwrite(offset, piece);
                }
                let offset = rng.next_u64() % content.len();
                let piece = Piece {
                    seed: rng.next_u64(),
                    start: 0,
                    len: 1024,
                };
                content.insert(offset, piece);
            }
            let len = usize::try_from(content.len()).expect("the file fits in memory addresses");
            blobs.push(fi.blob_streamed(len, |out| content.write_to(out))?);
        }
        fixtures::commit_versions(fi, blobs)
    });
    let deltas = fixtures::delta_count(path, size / 2);
    assert!(
        deltas + 1 >= versions as u64,
        "large-file repository {} stores only {deltas} of {versions} versions as deltas",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_seekable() {
        let mut whole = vec![0u8; 100];
        random_bytes(7, 0, &mut whole);
        let mut part = vec![0u8; 37];
        random_bytes(7, 13, &mut part);
        assert_eq!(part, whole[13..50]);
        let mut rng = Rng(7);
        assert_eq!(whole[..8], rng.next_u64().to_le_bytes());
    }

    #[test]
    fn pieces_overwrite_and_insert() {
        let base = Piece {
            seed: 1,
            start: 0,
            len: 100,
        };
        let mut p = Pieces(vec![base]);
        p.overwrite(
            10,
            Piece {
                seed: 2,
                start: 0,
                len: 5,
            },
        );
        p.insert(
            50,
            Piece {
                seed: 3,
                start: 0,
                len: 7,
            },
        );
        assert_eq!(p.len(), 107);
        let mut out = Vec::new();
        p.write_to(&mut out).unwrap();
        let mut expected = vec![0u8; 100];
        random_bytes(1, 0, &mut expected);
        let mut five = [0u8; 5];
        random_bytes(2, 0, &mut five);
        expected[10..15].copy_from_slice(&five);
        let mut seven = [0u8; 7];
        random_bytes(3, 0, &mut seven);
        expected.splice(50..50, seven);
        assert_eq!(out, expected);
    }
}
