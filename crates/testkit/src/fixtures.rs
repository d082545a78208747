//! Deterministic bare repositories in the shapes a mirror meets in the wild, built fast with `git fast-import`
//! from streams generated here (same bytes, same object ids, every run).
//!
//! Shapes: empty; small (a few commits); rich (default branch `trunk`, merges, an orphan branch, lightweight
//! and annotated tags, a tag of a tag, tags of a tree and of a blob, executable/symlink/submodule entries,
//! `refs/pull/*`); big (tens of thousands of objects with real delta chains and thousands of refs, most of
//! them `refs/pull/N/head`); big binary (an incompressible multi-MiB file edited a few times, stored as deltas
//! against the big base); history (a short history with every object type, sized for the pack parser's unit
//! tests); an `.lfsconfig` history. Used by the tests and by the `make_fixture` program (demo and benchmark).
//!
//! A test that needs another shape writes it with [`fast_import`] into a repository made by [`init_bare`].

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::Stdio;

use crate::git::{describe, git, git_command};
use crate::rng::Rng;

/// Identity on every generated commit and tag.
const IDENT: &str = "Fixture Author <fixture@example.com>";
/// Time of the first generated commit; each commit or tag is one minute later than the previous one.
const START_TIME: u64 = 1_600_000_000;

/// A fast-import mark: names an object written earlier in the stream.
#[derive(Clone, Copy, Debug)]
pub struct Mark(u64);

/// One tree change of a commit, relative to its first parent.
pub enum Change<'a> {
    /// `path` gets the blob `blob` with `mode` (`100644`, `100755` or `120000`).
    File {
        /// Path of the file in the tree.
        path: &'a str,
        /// Its mode.
        mode: &'a str,
        /// Its content.
        blob: Mark,
    },
    /// `path` becomes a submodule entry pointing at commit `oid` (which this repository does not have).
    Gitlink {
        /// Path of the entry in the tree.
        path: &'a str,
        /// The commit it points at (40 hex digits).
        oid: &'a str,
    },
    /// `path` is removed.
    Delete(&'a str),
}

/// Shorthand for a regular-file change.
pub fn file(path: &str, blob: Mark) -> Change<'_> {
    Change::File {
        path,
        mode: "100644",
        blob,
    }
}

/// Writes a `git fast-import` stream (see [`fast_import`]). Each commit or tag is one minute later than the
/// one before.
pub struct FastImport<W: Write> {
    out: W,
    next_mark: u64,
    clock: u64,
    /// Blobs, commits and tags written so far (trees are implicit in a stream).
    objects: u64,
}

impl<W: Write> FastImport<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            next_mark: 1,
            clock: START_TIME,
            objects: 0,
        }
    }

    fn new_mark(&mut self) -> Mark {
        let mark = Mark(self.next_mark);
        self.next_mark += 1;
        mark
    }

    fn tick(&mut self) -> u64 {
        self.clock += 60;
        self.clock
    }

    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        writeln!(self.out, "data {}", bytes.len())?;
        self.out.write_all(bytes)?;
        self.out.write_all(b"\n")
    }

    /// A blob holding `bytes`.
    pub fn blob(&mut self, bytes: &[u8]) -> io::Result<Mark> {
        self.blob_streamed(bytes.len(), |out| out.write_all(bytes))
    }

    /// A blob of `len` bytes that `write` writes piece by piece, for blobs that should not be held in memory
    /// whole. `write` must write exactly `len` bytes (git fast-import rejects the stream otherwise).
    pub fn blob_streamed(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<Mark> {
        let mark = self.new_mark();
        writeln!(self.out, "blob\nmark :{}\ndata {len}", mark.0)?;
        write(&mut self.out)?;
        self.out.write_all(b"\n")?;
        self.objects += 1;
        Ok(mark)
    }

    /// A commit on `refname` (created or moved there). No parents makes a root commit, unless `refname` has
    /// had commits earlier in the stream: fast-import then continues from its tip.
    pub fn commit(
        &mut self,
        refname: &str,
        message: &str,
        parents: &[Mark],
        changes: &[Change<'_>],
    ) -> io::Result<Mark> {
        let mark = self.new_mark();
        let time = self.tick();
        writeln!(
            self.out,
            "commit {refname}\nmark :{}\nauthor {IDENT} {time} +0000\ncommitter {IDENT} {time} +0000",
            mark.0
        )?;
        self.data(message.as_bytes())?;
        if let Some((first, rest)) = parents.split_first() {
            writeln!(self.out, "from :{}", first.0)?;
            for parent in rest {
                writeln!(self.out, "merge :{}", parent.0)?;
            }
        }
        for change in changes {
            match change {
                Change::File { path, mode, blob } => {
                    writeln!(self.out, "M {mode} :{} {path}", blob.0)?
                }
                Change::Gitlink { path, oid } => writeln!(self.out, "M 160000 {oid} {path}")?,
                Change::Delete(path) => writeln!(self.out, "D {path}")?,
            }
        }
        writeln!(self.out)?;
        self.objects += 1;
        Ok(mark)
    }

    /// An annotated tag `refs/tags/<name>` of the object `target`.
    pub fn annotated_tag(&mut self, name: &str, target: Mark, message: &str) -> io::Result<Mark> {
        let mark = self.new_mark();
        let time = self.tick();
        writeln!(
            self.out,
            "tag {name}\nmark :{}\nfrom :{}\ntagger {IDENT} {time} +0000",
            mark.0, target.0
        )?;
        self.data(message.as_bytes())?;
        self.objects += 1;
        Ok(mark)
    }

    /// Points `refname` at `target` (a lightweight tag, a branch, or any other ref).
    pub fn reset(&mut self, refname: &str, target: Mark) -> io::Result<()> {
        writeln!(self.out, "reset {refname}\nfrom :{}\n", target.0)
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.write_all(b"done\n")?;
        self.out.flush()
    }
}

/// Object ids of the marks a fast-import stream defined.
pub type Marks = HashMap<u64, String>;

/// Runs `git fast-import` in `repo` on the stream `write` produces and returns the object id of every mark;
/// panics with git's message on failure. Even a few objects end up in a pack, as on a hosting server.
pub fn fast_import(
    repo: &Path,
    write: impl FnOnce(&mut FastImport<&mut dyn Write>) -> io::Result<()>,
) -> Marks {
    fast_import_with_options(repo, &[], write)
}

/// [`fast_import`] with more `git fast-import` options (e.g. `--big-file-threshold=<n>`, above which
/// fast-import stores blobs whole instead of trying a delta).
pub fn fast_import_with_options(
    repo: &Path,
    options: &[&str],
    write: impl FnOnce(&mut FastImport<&mut dyn Write>) -> io::Result<()>,
) -> Marks {
    let marks_file = repo.join("fixture-marks.tmp");
    let mut cmd = git_command(repo);
    // fast-import's many small allocations make glibc shrink and regrow the heap constantly (>200k brk calls
    // for 50k objects); a top pad cuts the import time by half or more.
    cmd.env("MALLOC_TOP_PAD_", "67108864");
    // Keep even a few objects in a pack, as a hosting server has them, instead of exploding them loose.
    let unpack_limit = "fastimport.unpackLimit=0";
    cmd.args(["-c", unpack_limit, "fast-import", "--quiet", "--done"])
        .args(options)
        .arg(format!("--export-marks={}", marks_file.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(&cmd)));
    let written = match child.stdin.take() {
        Some(stdin) => {
            let mut out = BufWriter::with_capacity(1 << 20, stdin);
            let mut stream = FastImport::new(&mut out as &mut dyn Write);
            write(&mut stream).and_then(|()| stream.finish())
        }
        None => Err(io::Error::other("no stdin pipe")),
    };
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for git fast-import: {e}"));
    if let Err(e) = written {
        panic!(
            "writing the fast-import stream into {} failed: {e}\n{}",
            repo.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(
        output.status.success(),
        "git fast-import into {} failed ({}):\n{}",
        repo.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&marks_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", marks_file.display()));
    std::fs::remove_file(&marks_file)
        .unwrap_or_else(|e| panic!("cannot remove {}: {e}", marks_file.display()));
    text.lines()
        .filter_map(|line| {
            let (mark, oid) = line.strip_prefix(':')?.split_once(' ')?;
            Some((mark.parse().ok()?, oid.to_string()))
        })
        .collect()
}

/// Writes `refs` (none of them annotated tags) as `repo`'s `packed-refs`, as `git pack-refs` would.
///
/// Thousands of loose refs cost seconds to create on a slow filesystem (a directory per `refs/pull/N`), and
/// hosting servers keep most refs packed anyway.
pub(crate) fn write_packed_refs(repo: &Path, refs: &[(String, Mark)], marks: &Marks) {
    let mut lines: Vec<String> = refs
        .iter()
        .map(|(name, mark)| {
            let oid = marks
                .get(&mark.0)
                .unwrap_or_else(|| panic!("fast-import exported no object for mark :{}", mark.0));
            format!("{oid} {name}\n")
        })
        .collect();
    lines.sort_by(|a, b| a[41..].cmp(&b[41..]));
    let text = format!(
        "# pack-refs with: peeled fully-peeled sorted \n{}",
        lines.concat()
    );
    let path = repo.join("packed-refs");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Creates an empty bare repository at `path` whose HEAD names `head_branch`.
pub fn init_bare(path: &Path, head_branch: &str) {
    let parent = path
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent directory", path.display()));
    std::fs::create_dir_all(parent)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    git(
        [
            "init".as_ref(),
            "--bare".as_ref(),
            "--quiet".as_ref(),
            "--initial-branch".as_ref(),
            head_branch.as_ref(),
            path.as_os_str(),
        ],
        parent,
    );
}

/// An empty bare repository (no refs; HEAD names the unborn `main`).
pub fn build_empty(path: &Path) {
    init_bare(path, "main");
}

/// Three commits on `main` (files added, changed and deleted); HEAD → `main`.
pub fn build_small(path: &Path) {
    init_bare(path, "main");
    fast_import(path, |fi| {
        let main = "refs/heads/main";
        let readme = fi.blob(b"# small\n\nA small repository.\n")?;
        let lib = fi.blob(b"pub fn one() -> u32 {\n    1\n}\n")?;
        let c1 = fi.commit(
            main,
            "Initial commit\n",
            &[],
            &[file("README.md", readme), file("src/lib.rs", lib)],
        )?;
        let lib =
            fi.blob(b"pub fn one() -> u32 {\n    1\n}\n\npub fn two() -> u32 {\n    2\n}\n")?;
        let notes = fi.blob(b"remember the milk\n")?;
        let c2 = fi.commit(
            main,
            "Add two() and notes\n",
            &[c1],
            &[file("src/lib.rs", lib), file("notes.txt", notes)],
        )?;
        let readme = fi.blob(b"# small\n\nA small repository with two functions.\n")?;
        fi.commit(
            main,
            "Describe two() and drop the notes\n",
            &[c2],
            &[file("README.md", readme), Change::Delete("notes.txt")],
        )?;
        Ok(())
    });
}

/// Branches `trunk` (HEAD; there is no `main`), `develop`, `feature/x` (merged into trunk, then one commit
/// ahead), `release-1.0` and the orphan `gh-pages`; a merge commit; executable, symlink, submodule (gitlink
/// plus `.gitmodules`), empty and non-ASCII-named files; lightweight tag `v0.9`; annotated tags `v1.0`,
/// `v1.1`; `v1.0-final` (a tag of the tag `v1.0`); `tree-tag` (of a tree) and `key-tag` (of a blob, like
/// git.git's `junio-gpg-pub`); `refs/pull/1/head` (a commit on no branch) and `refs/pull/1/merge`.
pub fn build_rich(path: &Path) {
    init_bare(path, "trunk");
    fast_import(path, |fi| {
        let trunk = "refs/heads/trunk";
        let feature = "refs/heads/feature/x";
        let develop = "refs/heads/develop";

        let readme1 = fi.blob(b"# rich\n\nA repository with many kinds of refs.\n")?;
        let license = fi.blob(b"Permission is hereby granted, free of charge.\n")?;
        let main1 = fi.blob(b"int main(void) { return 0; }\n")?;
        let gitmodules =
            fi.blob(b"[submodule \"vendor/lib\"]\n\tpath = vendor/lib\n\turl = https://example.com/lib.git\n")?;
        let empty = fi.blob(b"")?;
        let unicode = fi.blob("Grüße, 世界\n".as_bytes())?;
        let c1 = fi.commit(
            trunk,
            "Initial layout\n",
            &[],
            &[
                file("README.md", readme1),
                file("LICENSE", license),
                file("src/main.c", main1),
                file(".gitmodules", gitmodules),
                Change::Gitlink {
                    path: "vendor/lib",
                    oid: "1111111111111111111111111111111111111111",
                },
                file("empty.txt", empty),
                file("docs/read me ünïcode.txt", unicode),
            ],
        )?;

        let main2 = fi.blob(b"#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n")?;
        let script = fi.blob(b"#!/bin/sh\nexec ./build/main \"$@\"\n")?;
        let link = fi.blob(b"README.md")?;
        let c2 = fi.commit(
            trunk,
            "Say hi; add a run script and a link\n",
            &[c1],
            &[
                file("src/main.c", main2),
                Change::File {
                    path: "tools/run.sh",
                    mode: "100755",
                    blob: script,
                },
                Change::File {
                    path: "README.link",
                    mode: "120000",
                    blob: link,
                },
            ],
        )?;
        fi.reset("refs/tags/v0.9", c2)?;

        let fix = fi.blob(b"Release notes for 1.0.x\n")?;
        fi.commit(
            "refs/heads/release-1.0",
            "Release branch notes\n",
            &[c2],
            &[file("RELEASE.txt", fix)],
        )?;

        let feat1 = fi.blob(b"void feature(void) {}\n")?;
        let f1 = fi.commit(
            feature,
            "Start feature x\n",
            &[c2],
            &[file("src/feature.c", feat1)],
        )?;
        let feat2 = fi.blob(b"void feature(void) { /* done */ }\n")?;
        let f2 = fi.commit(
            feature,
            "Finish feature x\n",
            &[f1],
            &[file("src/feature.c", feat2)],
        )?;

        let readme2 =
            fi.blob(b"# rich\n\nA repository with many kinds of refs and a feature.\n")?;
        let c3 = fi.commit(
            trunk,
            "Describe the feature\n",
            &[c2],
            &[file("README.md", readme2)],
        )?;
        let c4 = fi.commit(
            trunk,
            "Merge branch 'feature/x' into trunk\n",
            &[c3, f2],
            &[file("src/feature.c", feat2)],
        )?;
        let feat3 = fi.blob(b"void feature(void) { /* done, then polished */ }\n")?;
        fi.commit(
            feature,
            "Polish feature x\n",
            &[f2],
            &[file("src/feature.c", feat3)],
        )?;

        let dev1 = fi.blob(b"work in progress\n")?;
        let d1 = fi.commit(
            develop,
            "Start developing\n",
            &[c4],
            &[file("DEVELOP.txt", dev1)],
        )?;
        let main3 =
            fi.blob(b"#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n")?;
        let d2 = fi.commit(develop, "Say hello\n", &[d1], &[file("src/main.c", main3)])?;

        let page = fi.blob(b"<!doctype html><title>rich</title><p>Docs</p>\n")?;
        fi.commit(
            "refs/heads/gh-pages",
            "Publish docs\n",
            &[],
            &[file("index.html", page)],
        )?;

        let pr = fi.blob(b"an idea nobody merged\n")?;
        fi.commit(
            "refs/pull/1/head",
            "Unmerged proposal\n",
            &[c3],
            &[file("IDEA.txt", pr)],
        )?;
        fi.reset("refs/pull/1/merge", c4)?;

        let v10 = fi.annotated_tag("v1.0", c4, "Release 1.0\n")?;
        fi.annotated_tag("v1.1", d2, "Release 1.1\n")?;
        fi.annotated_tag("v1.0-final", v10, "1.0 is final (a tag of a tag)\n")?;
        fi.annotated_tag("key-tag", license, "A tag of a blob\n")?;
        Ok(())
    });
    git(
        [
            "tag",
            "-a",
            "-m",
            "A tag of a tree\n",
            "tree-tag",
            "v0.9^{tree}",
        ],
        path,
    );
}

/// Directories in the big repository's tree.
const BIG_DIRS: usize = 64;
/// Files in each of those directories.
const BIG_FILES_PER_DIR: usize = 32;
/// Lines per file of the big repository (each about 60 bytes).
const BIG_LINES: usize = 40;
/// Words the big repository's text is made of.
const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
];

/// `count` words drawn from [`WORDS`], separated by spaces.
pub(crate) fn words(rng: &mut Rng, count: usize) -> String {
    (0..count)
        .map(|_| WORDS[rng.below(WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn render(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

/// A repository with at least `n_objects` objects, real delta chains and about 3,500 refs: `main` with
/// thousands of commits, each editing one line of one of 2,048 text files (runs of up to 16 commits edit the
/// same file, as people do, so its versions delta against each other); 40 branches and 300 tags (every other
/// one annotated) along the history; 2,500 `refs/pull/N/head` (every tenth a commit on no branch) and 625
/// `refs/pull/N/merge`. All refs but `main` and the annotated tags are packed. HEAD → `main`.
pub fn build_big(path: &Path, n_objects: u64) {
    init_bare(path, "main");
    let mut packed: Vec<(String, Mark)> = Vec::new();
    let marks = fast_import(path, |fi| {
        let main = "refs/heads/main";
        let mut rng = Rng(0x6269_675f_7265_706f);
        let paths: Vec<String> = (0..BIG_DIRS * BIG_FILES_PER_DIR)
            .map(|i| {
                format!(
                    "d{:02}/f{:02}.txt",
                    i / BIG_FILES_PER_DIR,
                    i % BIG_FILES_PER_DIR
                )
            })
            .collect();
        let mut files: Vec<Vec<String>> = (0..paths.len())
            .map(|f| {
                (0..BIG_LINES)
                    .map(|l| format!("{l:02} file {f}: {}", words(&mut rng, 6)))
                    .collect()
            })
            .collect();
        let mut blobs = Vec::with_capacity(files.len());
        for lines in &files {
            blobs.push(fi.blob(&render(lines))?);
        }
        let changes: Vec<Change<'_>> = paths.iter().zip(&blobs).map(|(p, b)| file(p, *b)).collect();
        let root = fi.commit(main, "Initial import\n", &[], &changes)?;
        // Blobs and the commit are counted by the writer; add the directory trees and the root tree.
        let mut objects = fi.objects + BIG_DIRS as u64 + 1;

        let mut history = vec![root];
        let (mut hot, mut run_left) = (0, 0);
        while objects < n_objects {
            if run_left == 0 {
                hot = rng.below(files.len());
                run_left = 1 + rng.below(16);
            }
            run_left -= 1;
            let n = history.len();
            let line = rng.below(BIG_LINES);
            files[hot][line] = format!("{line:02} edit {n}: {}", words(&mut rng, 6));
            let blob = fi.blob(&render(&files[hot]))?;
            let parent = history[n - 1];
            let message = format!("Edit {} (change {n})\n", paths[hot]);
            history.push(fi.commit(main, &message, &[parent], &[file(&paths[hot], blob)])?);
            // A blob, its directory's tree, the root tree and the commit.
            objects += 4;
        }

        let len = history.len();
        let at = |k: usize, of: usize| history[(k + 1) * (len - 1) / (of + 1)];
        for k in 0..40 {
            packed.push((format!("refs/heads/topic-{k:03}"), at(k, 40)));
        }
        for k in 0..300 {
            let name = format!("v{}.{}", k / 100, k % 100);
            if k % 2 == 0 {
                fi.annotated_tag(&name, at(k, 300), &format!("Release {name}\n"))?;
            } else {
                packed.push((format!("refs/tags/{name}"), at(k, 300)));
            }
        }
        for n in 1..=2500 {
            let base = at(n - 1, 2500);
            let head = if n % 10 == 0 {
                // A commit on no branch. Every commit names its parent, so making it on `main` and putting
                // `main` back afterwards leaves fast-import with no ref to write for it.
                let f = rng.below(files.len());
                let mut lines = files[f].clone();
                lines.push(format!("proposal {n}: {}", words(&mut rng, 8)));
                let blob = fi.blob(&render(&lines))?;
                let message = format!("Proposal {n}\n");
                fi.commit(main, &message, &[base], &[file(&paths[f], blob)])?
            } else {
                base
            };
            packed.push((format!("refs/pull/{n}/head"), head));
            if n % 4 == 0 {
                packed.push((format!("refs/pull/{n}/merge"), at(n, 2500)));
            }
        }
        fi.reset(main, history[len - 1])?;
        Ok(())
    });
    write_packed_refs(path, &packed, &marks);
    let count = object_count(path);
    assert!(
        count >= n_objects,
        "big repository {} has {count} objects, wanted at least {n_objects}",
        path.display()
    );
    let deltas = delta_count(path, 0);
    assert!(
        deltas * 4 >= count,
        "big repository {} has only {deltas} deltas among {count} objects",
        path.display()
    );
}

/// `versions` commits on `main` of one `size`-byte pseudo-random (incompressible) file `data.bin` plus a small
/// `VERSION`: each version overwrites eight 4 KiB regions of the previous one and inserts 1 KiB, so all but the
/// first are stored as small deltas against the big base. `core.bigFileThreshold` is raised so `git repack`
/// and the server's `pack-objects` keep deltifying it. HEAD → `main`.
pub fn build_big_binary(path: &Path, size: usize, versions: usize) {
    assert!(
        size >= 64 << 10,
        "a big binary repository needs at least 64 KiB, got {size}"
    );
    assert!(
        versions >= 1,
        "a big binary repository needs at least one version"
    );
    init_bare(path, "main");
    git(["config", "core.bigFileThreshold", "1g"], path);
    fast_import(path, |fi| {
        let mut rng = Rng(0x6269_6e61_7279_0001);
        let mut data = vec![0u8; size];
        rng.fill(&mut data);
        // Versions of data.bin back to back, so fast-import deltifies each against the previous one.
        let mut blobs = Vec::with_capacity(versions);
        for v in 0..versions {
            if v > 0 {
                for _ in 0..8 {
                    let offset = rng.below(data.len() - 4096);
                    rng.fill(&mut data[offset..offset + 4096]);
                }
                let mut inserted = [0u8; 1024];
                rng.fill(&mut inserted);
                let offset = rng.below(data.len());
                data.splice(offset..offset, inserted);
            }
            blobs.push(fi.blob(&data)?);
        }
        commit_versions(fi, blobs)
    });
    let deltas = delta_count(path, size as u64 / 2);
    assert!(
        deltas + 1 >= versions as u64,
        "big binary repository {} stores only {deltas} of {versions} versions as deltas",
        path.display()
    );
}

/// One commit on `main` per blob of `versions` (in order, each the parent of the next): `data.bin` gets that
/// version and `VERSION` its number. Written after all the versions, so that fast-import deltifies each version
/// against the one before it.
pub(crate) fn commit_versions<W: Write>(
    fi: &mut FastImport<W>,
    versions: Vec<Mark>,
) -> io::Result<()> {
    let mut parents = Vec::new();
    for (v, blob) in versions.into_iter().enumerate() {
        let version = fi.blob(format!("{}\n", v + 1).as_bytes())?;
        let message = format!("Binary data, version {}\n", v + 1);
        let commit = fi.commit(
            "refs/heads/main",
            &message,
            &parents,
            &[file("data.bin", blob), file("VERSION", version)],
        )?;
        parents = vec![commit];
    }
    Ok(())
}

/// Files of the history repository, in nested directories.
const HISTORY_FILES: [&str; 5] = [
    "README",
    "src/lib.rs",
    "src/deep/nested/mod.rs",
    "docs/guide.md",
    "docs/api/index.md",
];

/// Text of `lines` lines, with line `changed` (if any) replaced by a marker of `version`.
fn text_file(name: &str, lines: usize, changed: Option<(usize, usize)>) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..lines {
        match changed {
            Some((line, version)) if line == i => {
                text.push_str(&format!("{name}: line {i} changed in version {version}\n"))
            }
            _ => text.push_str(&format!(
                "{name}: line {i} of some text that stays the same across versions\n"
            )),
        }
    }
    text.into_bytes()
}

/// A short history with every object type, sized for unit tests of pack parsing and indexing: `commits`
/// (at least 1) commits editing one line of one of five text files in nested directories each (so packs get
/// deltas), every fifth on `side`, which forks from the first commit, the others on `main`; an empty blob; a
/// 300 kB text blob (its inflated data spans several output buffers) edited every fourth commit; annotated
/// tags `v1.0` (of the first commit), `v2.0` (of the last) and `nested` (a tag of `v1.0`). HEAD → `main`.
pub fn build_history(path: &Path, commits: usize) {
    assert!(commits >= 1, "a history needs at least one commit");
    init_bare(path, "main");
    fast_import(path, |fi| {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
        let big: Vec<u8> = (0..300_000)
            .map(|i| {
                if i % 61 == 60 {
                    b'\n'
                } else {
                    alphabet[rng.below(alphabet.len())]
                }
            })
            .collect();
        let (mut first, mut main, mut side, mut last) = (None, None, None, None);
        for c in 0..commits {
            let mut changes = Vec::new();
            if c == 0 {
                for path in HISTORY_FILES {
                    changes.push(file(path, fi.blob(&text_file(path, 80, None))?));
                }
                changes.push(file("empty", fi.blob(b"")?));
                changes.push(file("big.txt", fi.blob(&big)?));
            } else {
                let path = HISTORY_FILES[c % HISTORY_FILES.len()];
                let text = text_file(path, 80, Some((c * 7 % 80, c)));
                changes.push(file(path, fi.blob(&text)?));
                if c % 4 == 0 {
                    let mut edited = big.clone();
                    let at = c * 997 % (edited.len() - 20);
                    edited[at..at + 12].copy_from_slice(b"CHANGED HERE");
                    changes.push(file("big.txt", fi.blob(&edited)?));
                }
            }
            let (branch, tip) = if c % 5 == 4 {
                ("refs/heads/side", &mut side)
            } else {
                ("refs/heads/main", &mut main)
            };
            let parent: Option<Mark> = tip.or(first);
            let message = format!("commit number {c}\n\nWith a body.\n");
            let commit = fi.commit(branch, &message, parent.as_slice(), &changes)?;
            *tip = Some(commit);
            first = first.or(Some(commit));
            last = Some(commit);
        }
        if let (Some(first), Some(last)) = (first, last) {
            fi.annotated_tag("v1.0", first, "release v1.0\n")?;
            fi.annotated_tag("v2.0", last, "release v2.0\n")?;
        }
        Ok(())
    });
    git(["tag", "-a", "-m", "tag of a tag", "nested", "v1.0"], path);
}

/// `commits` (at least 1) commits on `main` (HEAD), each editing a text file in a directory beside a decoy
/// `docs/.lfsconfig`; every third one, from the first, writes a root `.lfsconfig` whose `lfs.url` names it
/// (`https://lfs.example/<n>`), which the last commit deletes unless `keep_at_tip`. For the tests that find the
/// LFS endpoint a repository names.
pub fn build_lfsconfig_history(path: &Path, commits: usize, keep_at_tip: bool) {
    assert!(commits >= 1, "a history needs at least one commit");
    init_bare(path, "main");
    fast_import(path, |fi| {
        let decoy = fi.blob(b"[lfs]\n\turl = https://decoy.example/\n")?;
        let mut parent: Option<Mark> = None;
        for c in 0..commits {
            let notes = fi.blob(&text_file("docs/notes.txt", 80, Some((c * 7 % 80, c))))?;
            let mut changes = vec![
                file("docs/notes.txt", notes),
                file("docs/.lfsconfig", decoy),
            ];
            if c % 3 == 0 {
                let config = format!("[lfs]\n\turl = https://lfs.example/{c}\n");
                changes.push(file(".lfsconfig", fi.blob(config.as_bytes())?));
            }
            if c + 1 == commits && !keep_at_tip {
                changes.push(Change::Delete(".lfsconfig"));
            }
            let message = format!("commit number {c}\n");
            parent = Some(fi.commit("refs/heads/main", &message, parent.as_slice(), &changes)?);
        }
        Ok(())
    });
}

/// Number of objects in `repo` (loose and packed).
pub fn object_count(repo: &Path) -> u64 {
    git(["count-objects", "-v"], repo)
        .lines()
        .filter_map(|line| line.split_once(": "))
        .filter(|(key, _)| *key == "count" || *key == "in-pack")
        .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
        .sum()
}

/// Number of packed objects in `repo` stored as deltas whose result is at least `min_size` bytes.
pub fn delta_count(repo: &Path, min_size: u64) -> u64 {
    git(
        [
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectsize) %(deltabase)",
        ],
        repo,
    )
    .lines()
    .filter_map(|line| line.split_once(' '))
    .filter(|(size, base)| {
        size.parse::<u64>().is_ok_and(|s| s >= min_size) && base.bytes().any(|b| b != b'0')
    })
    .count() as u64
}
