//! The git smart-HTTP server the tests mirror from: lighttpd running the real `git http-backend` as CGI over
//! every repository under one directory (`scripts/git-http-server.sh`, shared with the shell scripts), one per
//! test binary, stopped and removed when the test process exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{scratch_dir, start_server, ServerProcess};

/// The script that configures and runs lighttpd, in the repository's `scripts/` (two levels above this crate).
const SERVER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/git-http-server.sh"
);

/// How long lighttpd may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running git smart-HTTP server.
pub struct GitServer {
    /// `GIT_PROJECT_ROOT`: every bare repository under it is served at `/<path relative to root>`.
    pub root: PathBuf,
    base_url: String,
    port: u16,
    /// Where the server script keeps its state; `requests.log` has one line per request.
    state: PathBuf,
    _process: ServerProcess,
}

/// The git server for this test binary, started on first use.
pub fn git_server() -> &'static GitServer {
    static SERVER: OnceLock<GitServer> = OnceLock::new();
    SERVER.get_or_init(|| GitServer::start(None, false))
}

/// A second git server for this test binary, over the same repositories as [`git_server()`], that speaks only
/// protocol v0 as servers before protocol v2 did: it logs the client's `Git-Protocol` header but does not pass it
/// to git. Started on first use.
pub fn git_server_v0() -> &'static GitServer {
    static SERVER: OnceLock<GitServer> = OnceLock::new();
    SERVER.get_or_init(|| GitServer::start(Some(git_server().root.clone()), true))
}

impl GitServer {
    /// Starts lighttpd serving the repositories under `root` (by default a `repos` directory in the server's own
    /// scratch directory, removed with it when the test binary exits); `v0_only` hides the `Git-Protocol` header
    /// from git.
    fn start(root: Option<PathBuf>, v0_only: bool) -> GitServer {
        let scratch = scratch_dir("mirror-test-git-");
        let root = root.unwrap_or_else(|| scratch.join("repos"));
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        let process = start_server(
            "lighttpd git server",
            &scratch,
            START_TIMEOUT,
            |port, dir| {
                let mut cmd = Command::new("bash");
                cmd.arg(SERVER_SCRIPT)
                    .arg(&root)
                    .arg(port.to_string())
                    .arg(dir);
                if v0_only {
                    cmd.arg("v0");
                }
                cmd
            },
        );
        let state = process
            .log
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| panic!("server log {} has no directory", process.log.display()));
        GitServer {
            root,
            base_url: format!("http://127.0.0.1:{}", process.port),
            port: process.port,
            state,
            _process: process,
        }
    }

    /// The loopback port the server listens on (for a proxy in front of it).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of repository `name` (a path relative to [`GitServer::root`]), `http://127.0.0.1:PORT/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{}", self.base_url, name.trim_start_matches('/'))
    }

    /// The URL of the repository at `repo`, which must lie under [`GitServer::root`].
    pub fn url_of(&self, repo: &Path) -> String {
        self.url(&self.name_of(repo))
    }

    fn name_of(&self, repo: &Path) -> String {
        repo.strip_prefix(&self.root)
            .unwrap_or_else(|_| {
                panic!(
                    "{} is not under the git server's root {}",
                    repo.display(),
                    self.root.display()
                )
            })
            .to_string_lossy()
            .into_owned()
    }

    /// The requests the server received for repository `name`, in arrival order, each as
    /// `"METHOD /name/...?query GIT_PROTOCOL"` (`-` when the client sent no `Git-Protocol` header).
    /// Complete as soon as the client got its answers (each is logged before git runs).
    pub fn requests(&self, name: &str) -> Vec<String> {
        let path = self.state.join("requests.log");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let prefix = format!("/{}", name.trim_matches('/'));
        text.lines()
            .filter(|line| {
                line.split(' ').nth(1).is_some_and(|uri| {
                    uri.strip_prefix(&prefix)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
                })
            })
            .map(String::from)
            .collect()
    }

    /// How many requests the server received for repository `name` (see [`GitServer::requests`]).
    pub fn request_count(&self, name: &str) -> usize {
        self.requests(name).len()
    }

    /// The requests the server received for the repository at `repo` (under [`GitServer::root`]).
    pub fn requests_for(&self, repo: &Path) -> Vec<String> {
        self.requests(&self.name_of(repo))
    }
}
