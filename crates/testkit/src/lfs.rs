//! Git LFS for the tests: a real LFS server (dulwich's `dulwich.lfs_server`) on loopback, repositories whose
//! files the real `git lfs` client turns into pointers and pushes there, and `git-lfs-http-mirror` in front of
//! a mirrored prefix so that `git clone` with `git lfs` reads LFS objects from the mirror as a user would.
//!
//! The Python tools come from the tools venv (`ensure_tools` in `scripts/lib.sh` installs `dulwich` and
//! `git-lfs-http-mirror` there; Debian's `git-lfs` provides the client).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::git::{git, git_command, run_ok};
use crate::process::{scratch_dir, start_server, tools_program, ServerProcess};

/// How long a Python server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs dulwich's LFS server on `argv[1]` (port) storing objects under `argv[2]`, logging every request.
const LFS_SERVER_PY: &str = r#"
import sys
from dulwich.lfs_server import run_lfs_server
server, url = run_lfs_server("127.0.0.1", int(sys.argv[1]), sys.argv[2], log_requests=True)
server.serve_forever()
"#;

/// A running dulwich LFS server.
pub struct LfsServer {
    /// Its base URL (`http://127.0.0.1:PORT`): the batch API is `<url>/objects/batch`.
    pub url: String,
    /// Where it keeps objects (`objects/<oid[0:2]>/<oid[2:4]>/<oid>`).
    pub store: PathBuf,
    process: ServerProcess,
}

/// The LFS server for this test binary, started on first use.
pub fn lfs_server() -> &'static LfsServer {
    static SERVER: OnceLock<LfsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let scratch = scratch_dir("mirror-test-lfs-");
        let store = scratch.join("store");
        std::fs::create_dir_all(&store)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", store.display()));
        let python = tools_program("python3");
        let process = start_server("dulwich LFS server", &scratch, START_TIMEOUT, |port, _| {
            let mut cmd = Command::new(&python);
            cmd.arg("-c")
                .arg(LFS_SERVER_PY)
                .arg(port.to_string())
                .arg(&store);
            cmd
        });
        LfsServer {
            url: format!("http://127.0.0.1:{}", process.port),
            store,
            process,
        }
    })
}

impl LfsServer {
    /// Where the server keeps the object `oid` (hex): overwrite it to make the server serve wrong bytes.
    pub fn object_path(&self, oid: &str) -> PathBuf {
        self.store
            .join("objects")
            .join(&oid[0..2])
            .join(&oid[2..4])
            .join(oid)
    }

    /// Request lines the server logged so far that contain `needle` (e.g. `"POST /objects/batch"`).
    pub fn requests_matching(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.process.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }
}

/// The hex SHA-256 of `bytes`: an LFS object id.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The pointer text `git lfs` commits for an object of this id and size.
pub fn pointer_text(oid: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n")
}

/// A working repository whose `*.bin` files go to LFS, pushing to a bare repository served by the git server
/// and to [`lfs_server()`].
pub struct LfsRepo {
    /// The working repository.
    pub work: PathBuf,
    /// The bare repository it pushes to (under the git server's root).
    pub bare: PathBuf,
}

impl LfsRepo {
    /// A new empty working repository on `main` tracking `*.bin` with LFS, and its empty bare remote `bare`.
    pub fn new(bare: PathBuf) -> Self {
        crate::fixtures::init_bare(&bare, "main");
        // Beside the bare repository, under the git server's root, so it goes when the test process ends.
        let work = bare.with_extension("work");
        std::fs::create_dir_all(&work)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", work.display()));
        git(["init", "-q", "-b", "main", "."], &work);
        run_ok(git_command(&work).args(["lfs", "install", "--local"]));
        git(["config", "lfs.url", &lfs_server().url], &work);
        // Tests commit pointers to objects that exist nowhere; pushing the others must still work.
        git(["config", "lfs.allowincompletepush", "true"], &work);
        git(["remote", "add", "origin", &bare.to_string_lossy()], &work);
        std::fs::write(
            work.join(".gitattributes"),
            "*.bin filter=lfs diff=lfs merge=lfs -text\n",
        )
        .unwrap_or_else(|e| panic!("cannot write .gitattributes: {e}"));
        LfsRepo { work, bare }
    }

    /// Writes `bytes` to `path` in the working tree (creating directories).
    pub fn write(&self, path: &str, bytes: &[u8]) {
        let file = self.work.join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(&file, bytes)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
    }

    /// Runs git with `args` in the working repository.
    pub fn git(&self, args: &[&str]) -> String {
        git(args, &self.work)
    }

    /// Stages everything and commits.
    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// Pushes every branch to the bare repository and every LFS object of every branch to the LFS server.
    pub fn push(&self) {
        self.git(&["push", "-q", "--no-verify", "origin", "--all", "--force"]);
        run_ok(git_command(&self.work).args(["lfs", "push", "--all", "origin"]));
    }
}

/// `git-lfs-http-mirror` serving the dumb-HTTP mirror under `upstream_root` (e.g. `http://s3/bucket`): clone
/// `http://127.0.0.1:PORT/<prefix>` and `git lfs` fetches objects from `<prefix>/lfs/objects/...`.
pub fn lfs_http_mirror(upstream_root: &str) -> ServerProcess {
    let scratch = scratch_dir("mirror-test-lfs-http-mirror-");
    let python = tools_program("python3");
    start_server("git-lfs-http-mirror", &scratch, START_TIMEOUT, |port, _| {
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "git_lfs_http_mirror",
            "--upstream-root",
            upstream_root,
        ])
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .args(["sleep", "3600"]);
        cmd
    })
}

/// Clones `url` with `git lfs` installed into a new directory `name` under `parent`, and returns its path.
pub fn clone_with_lfs(url: &str, parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    let mut cmd = git_command(parent);
    // The clone has no repository config yet: the LFS filters come from the command line.
    cmd.args([
        "-c",
        "filter.lfs.process=git-lfs filter-process",
        "-c",
        "filter.lfs.required=true",
        "-c",
        "filter.lfs.clean=git-lfs clean -- %f",
        "-c",
        "filter.lfs.smudge=git-lfs smudge -- %f",
        "clone",
        "-q",
        url,
        name,
    ]);
    run_ok(&mut cmd);
    dir
}
