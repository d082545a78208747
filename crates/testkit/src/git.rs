//! Running the real `git` from tests in a hermetic, deterministic environment.
//!
//! Every command gets the same identity, clock and configuration whatever the developer's `~/.gitconfig`
//! says (no system or global config; settings come from `GIT_CONFIG_*` variables; `HOME` is the command's
//! directory, so no per-user file such as `~/.config/git/attributes` or `~/.netrc` is read either), no
//! inherited `GIT_DIR`, `GIT_PROTOCOL` and friends, no background auto-gc, and no prompts. Every test that
//! runs git goes through here (unit tests in the mirror crate, integration tests, the fixtures and
//! `make_fixture`), so they all see the same git.

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

/// Inherited variables that would point git at another repository than the one a test names, or change
/// what it does there.
const INHERITED_VARS: &[&str] = &[
    "GIT_CONFIG_PARAMETERS",
    "GIT_PROTOCOL",
    "XDG_CONFIG_HOME",
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
    for var in INHERITED_VARS {
        cmd.env_remove(var);
    }
    cmd.env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
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

/// Runs `git <args>` in `dir` with `input` on its standard input and returns its standard output; panics with
/// git's standard error if it fails.
pub fn git_with_input<I, S>(args: I, dir: &Path, input: &[u8]) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = git_command(dir);
    cmd.args(args);
    run_ok_with_input(&mut cmd, input).stdout
}

/// The `git upload-pack --stateless-rpc` that `git http-backend` runs in `repo` for one smart-HTTP request:
/// with `advertise`, the one answering `info/refs` (its output lacks the `# service` header).
pub fn upload_pack_command(repo: &Path, advertise: bool) -> Command {
    let mut cmd = git_command(repo);
    cmd.args(["upload-pack", "--stateless-rpc"]);
    if advertise {
        cmd.arg("--advertise-refs");
    }
    cmd.arg(".");
    cmd
}

/// Runs [`upload_pack_command`] with `input` on its standard input and returns what it wrote: the advertisement
/// when `advertise`, else the response to the request in `input`. Panics if it fails.
pub fn upload_pack(repo: &Path, advertise: bool, input: &[u8]) -> Vec<u8> {
    run_ok_with_input(&mut upload_pack_command(repo, advertise), input).stdout
}

/// Runs `cmd` to completion and returns its output; panics with the command line and its standard error if it
/// cannot start or exits unsuccessfully.
pub fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    check(cmd, output)
}

/// Like [`run_ok`], with `input` on the command's standard input.
pub fn run_ok_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let output = output_with_input(cmd, input);
    check(cmd, output)
}

/// Runs `cmd` with `input` on its standard input and returns its output whatever its exit status; panics if it
/// cannot start. The input is written from another thread, so a command that writes a lot before it has read
/// everything cannot deadlock; a command that exits without reading it all is not an error here (its status
/// and standard error say why it stopped).
pub fn output_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    let mut stdin = child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("{} has no stdin pipe", describe(cmd)));
    let (written, output) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || stdin.write_all(input));
        let output = child.wait_with_output();
        (writer.join(), output)
    });
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Ok(Err(e)) => panic!("cannot write the input of {}: {e}", describe(cmd)),
        Err(_) => panic!("the thread writing the input of {} panicked", describe(cmd)),
    }
    output.unwrap_or_else(|e| panic!("cannot wait for {}: {e}", describe(cmd)))
}

/// `output` if `cmd` succeeded; else panics with its command line, status and output.
fn check(cmd: &Command, output: Output) -> Output {
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
