//! Running the real `git` from tests in a hermetic, deterministic environment.
//!
//! Every command gets the same identity, clock and configuration whatever the developer's `~/.gitconfig`
//! says (no system or global config; settings come from `GIT_CONFIG_*` variables), no inherited `GIT_DIR`
//! and friends, no background auto-gc, and no prompts. Every test that runs git goes through here, and so do
//! the fixtures and `make_fixture`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Fixed author/committer time of commits made through [`git_command`] (2023-11-14, UTC).
pub const FIXED_TIME: &str = "1700000000 +0000";

/// Configuration every git command runs with, as `(key, value)` pairs.
const CONFIG: &[(&str, &str)] = &[
    ("user.name", "Mirror Test"),
    ("user.email", "mirror-test@example.com"),
    ("init.defaultBranch", "main"),
    ("safe.directory", "*"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("core.autocrlf", "false"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("advice.detachedHead", "false"),
    ("advice.nestedTag", "false"),
];

/// Variables that would point git at another repository than the one a test names.
const INHERITED_REPO_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
];

/// A `git` command running in `dir` with the hermetic environment described in the module docs.
pub fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir);
    for var in INHERITED_REPO_VARS {
        cmd.env_remove(var);
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("GIT_AUTHOR_NAME", "Mirror Test")
        .env("GIT_AUTHOR_EMAIL", "mirror-test@example.com")
        .env("GIT_AUTHOR_DATE", FIXED_TIME)
        .env("GIT_COMMITTER_NAME", "Mirror Test")
        .env("GIT_COMMITTER_EMAIL", "mirror-test@example.com")
        .env("GIT_COMMITTER_DATE", FIXED_TIME)
        .env("GIT_CONFIG_COUNT", CONFIG.len().to_string());
    for (i, (key, value)) in CONFIG.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    cmd
}

/// Runs `git <args>` in `dir` and returns its standard output (lossy UTF-8); panics with git's standard error
/// if it fails.
pub fn git<I, S>(args: I, dir: &Path) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = git_command(dir);
    cmd.args(args);
    String::from_utf8_lossy(&run_ok(&mut cmd).stdout).into_owned()
}

/// Copies `repo` with `git clone --quiet --mirror` (run in `dir`) to `dir/<name>` and returns that path: a
/// snapshot of its refs and objects as they are now.
pub fn mirror_clone(repo: &Path, dir: &Path, name: &str) -> PathBuf {
    let clone = dir.join(name);
    git(
        [
            OsStr::new("clone"),
            OsStr::new("--quiet"),
            OsStr::new("--mirror"),
            repo.as_os_str(),
            clone.as_os_str(),
        ],
        dir,
    );
    clone
}

/// Runs the real `git upload-pack --stateless-rpc` in `repo` with `input` on its standard input, as
/// `git http-backend` does for one smart-HTTP request, and returns what it wrote: the advertisement (without the
/// `# service` header) when `advertise`, else the response to the request in `input`.
pub fn upload_pack(repo: &Path, advertise: bool, input: &[u8]) -> Vec<u8> {
    let mut cmd = git_command(repo);
    cmd.args(["upload-pack", "--stateless-rpc"]);
    if advertise {
        cmd.arg("--advertise-refs");
    }
    cmd.arg(".")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(&cmd)));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .expect("request written to git upload-pack");
    }
    let out = child.wait_with_output().expect("git upload-pack output");
    assert!(
        out.status.success(),
        "{} failed: {}",
        describe(&cmd),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` to completion and returns its output; panics with the command line and its standard error if it
/// cannot start or exits unsuccessfully.
pub fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    if !output.status.success() {
        panic!(
            "{} failed ({}):\n{}{}",
            describe(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    output
}

/// The command line of `cmd` (program and arguments, without its environment) for messages.
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
