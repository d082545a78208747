//! The judge of a mirror: stock `git` clones it and must end up with exactly the source's branches, tags
//! (annotated tag objects included) and `HEAD`, with every object present and valid.

use std::collections::BTreeSet;
use std::path::Path;

use crate::git::{describe, git, git_command};

/// `git for-each-ref` lines `<oid> <type> <refname>` for the branches and tags of `repo`, sorted by name.
pub fn branches_and_tags(repo: &Path) -> Vec<String> {
    git(
        [
            "for-each-ref",
            "--format=%(objectname) %(objecttype) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
        repo,
    )
    .lines()
    .map(String::from)
    .collect()
}

/// The branch `HEAD` of `repo` names (`refs/heads/...`), or `None` when HEAD is detached.
pub fn head_symref(repo: &Path) -> Option<String> {
    let output = git_command(repo)
        .args(["symbolic-ref", "--quiet", "HEAD"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run git symbolic-ref in {}: {e}", repo.display()));
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Clones `clone_url` with stock git and checks the result against `source_bare`.
///
/// `clone_url` is an `http://` URL (an S3 prefix; git uses its dumb protocol there) or a local directory.
/// A directory is cloned with `--no-local`, so git reads it through `upload-pack` like a remote, and its
/// `info/refs` (what a dumb client reads after the directory is uploaded) must list the source's branches and
/// tags too. The clone is a `--mirror` clone; then `git fsck --full --strict` must pass, its branches and tags
/// (`<oid> <type> <name>`) must equal the source's, and its `HEAD` must name the same branch. An empty source
/// must give an empty clone. Panics with a description of every difference.
pub fn assert_dumb_clone_matches(clone_url: &str, source_bare: &Path) {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let clone = work.path().join("clone.git");
    let is_dir = !clone_url.contains("://");
    let mut cmd = git_command(work.path());
    cmd.args(["clone", "--mirror"]);
    if is_dir {
        cmd.arg("--no-local");
    }
    cmd.arg(clone_url).arg(&clone);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(&cmd)));
    let clone_log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{} failed ({}):\n{clone_log}",
        describe(&cmd),
        output.status
    );

    let expected = branches_and_tags(source_bare);
    let actual = branches_and_tags(&clone);
    let mut problems = Vec::new();
    if actual != expected {
        problems.push(format!(
            "refs differ (source has {} branches+tags, clone has {}):\n{}",
            expected.len(),
            actual.len(),
            diff_lines(expected.iter(), actual.iter())
        ));
    }

    if expected.is_empty() {
        if !clone_log.contains("empty repository") {
            problems.push(format!(
                "the source is empty but git did not say it cloned an empty repository:\n{clone_log}"
            ));
        }
    } else {
        let fsck = git_command(&clone)
            .args([
                "fsck",
                "--full",
                "--strict",
                "--no-dangling",
                "--no-progress",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run git fsck: {e}"));
        if !fsck.status.success() {
            problems.push(format!(
                "git fsck --full --strict failed ({}):\n{}{}",
                fsck.status,
                String::from_utf8_lossy(&fsck.stdout),
                String::from_utf8_lossy(&fsck.stderr)
            ));
        }
        let source_head = head_symref(source_bare);
        let clone_head = head_symref(&clone);
        if source_head != clone_head {
            problems.push(format!(
                "HEAD differs: source {source_head:?}, clone {clone_head:?}"
            ));
        }
    }

    if is_dir {
        check_info_refs(Path::new(clone_url), &expected, &mut problems);
    }

    assert!(
        problems.is_empty(),
        "clone of {clone_url} does not match {}:\n{}\n(git clone said:\n{clone_log})",
        source_bare.display(),
        problems.join("\n")
    );
}

/// A local mirror must also be dumb-servable: its `info/refs` lists the same branches and tags.
fn check_info_refs(dir: &Path, expected: &[String], problems: &mut Vec<String>) {
    let path = dir.join("info/refs");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!("cannot read {}: {e}", path.display()));
            return;
        }
    };
    let listed: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, name)| {
            (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
                && !name.ends_with("^{}")
        })
        .map(|(oid, name)| format!("{oid} {name}"))
        .collect();
    let wanted: BTreeSet<String> = expected
        .iter()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let oid = parts.next()?;
            let name = parts.nth(1)?;
            Some(format!("{oid} {name}"))
        })
        .collect();
    if listed != wanted {
        problems.push(format!(
            "{} differs from the source's branches and tags:\n{}",
            path.display(),
            diff_lines(wanted.iter(), listed.iter())
        ));
    }
}

/// `-line` for lines only in `expected`, `+line` for lines only in `actual` (at most 40 of each).
fn diff_lines<'a>(
    expected: impl Iterator<Item = &'a String>,
    actual: impl Iterator<Item = &'a String>,
) -> String {
    let expected: BTreeSet<&String> = expected.collect();
    let actual: BTreeSet<&String> = actual.collect();
    let mut out: Vec<String> = expected
        .difference(&actual)
        .take(40)
        .map(|l| format!("-{l}"))
        .collect();
    out.extend(
        actual
            .difference(&expected)
            .take(40)
            .map(|l| format!("+{l}")),
    );
    out.join("\n")
}
