//! Starting the loopback servers a test binary needs, and making sure they die with it.
//!
//! Rust never runs destructors of statics, so a server kept in a `static` would outlive the test process.
//! Each server therefore gets a watchdog: a tiny `sh` whose standard input is a pipe only this process holds
//! open. When the test process exits, however it exits (even `SIGKILL`), the kernel closes the pipe, the
//! watchdog's `read` returns, and it kills the server by its process id and removes the server's scratch
//! directory.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Watches the server `$1`: a line on standard input (a failed start being abandoned) just kills it;
/// end-of-file (this process exited) kills it and then removes the paths that follow it. Ignores SIGINT/SIGHUP
/// so a Ctrl-C to the test run still lets it clean up.
const WATCHDOG: &str = r#"
trap '' INT HUP
pid=$1
shift
if read -r _line; then kill "$pid" 2>/dev/null; exit 0; fi
kill "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
rm -rf -- "$@"
"#;

/// `scripts/lib.sh`, which defines where the tools venv is (two levels above this crate).
const LIB_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/lib.sh");

/// The project's tools venv (`TOOLS_VENV` in `scripts/lib.sh`, its one definition), if it exists.
pub fn tools_venv() -> Option<PathBuf> {
    Command::new("bash")
        .arg("-c")
        .arg(r#". "$1" && printf %s "$TOOLS_VENV""#)
        .arg("bash")
        .arg(LIB_SH)
        .output()
        .ok()
        .filter(|out| out.status.success() && !out.stdout.is_empty())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).into_owned()))
        .filter(|venv| venv.is_dir())
}

/// The program `name` from the tools venv's `bin` when it is there (`ensure_tools` installs the pinned
/// versions there), else `name` as found on PATH.
pub fn tools_program(name: &str) -> PathBuf {
    tools_venv()
        .map(|v| v.join("bin").join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// How many times a server start is retried on a new port (another process may take a free port first).
const START_ATTEMPTS: usize = 3;

/// A running server tied to this process's lifetime (see the module docs). Dropping it stops the server.
pub struct ServerProcess {
    /// Process id of the server.
    pub pid: u32,
    /// Loopback port it listens on.
    pub port: u16,
    /// The file receiving the server's standard output and error.
    pub log: PathBuf,
    /// Write end of the watchdog's standard input: closing it stops the server.
    _watchdog: ChildStdin,
}

/// A loopback TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free loopback port: {e}"))
}

/// Starts a server and waits until it answers HTTP on its port.
///
/// `command(port, attempt_dir)` builds the server's command line for a port; its standard output and error
/// go to `attempt_dir/server.log`, where `attempt_dir` is a fresh directory under `scratch`. `scratch` is
/// removed when the test process exits. Panics with the server's log if it exits early or does not answer
/// within `timeout`.
pub fn start_server(
    name: &str,
    scratch: &Path,
    timeout: Duration,
    command: impl Fn(u16, &Path) -> Command,
) -> ServerProcess {
    let mut failures = Vec::new();
    for attempt in 0..START_ATTEMPTS {
        let dir = scratch.join(format!("attempt-{attempt}"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let port = free_port();
        match try_start(command(port, &dir), port, &dir, scratch, timeout) {
            Ok(server) => return server,
            Err(message) => failures.push(format!("attempt {attempt} on port {port}: {message}")),
        }
    }
    panic!("cannot start {name}:\n{}", failures.join("\n---------\n"));
}

fn try_start(
    mut cmd: Command,
    port: u16,
    dir: &Path,
    scratch: &Path,
    timeout: Duration,
) -> Result<ServerProcess, String> {
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| format!("clone log: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let mut watchdog = match spawn_watchdog(child.id(), scratch) {
        Ok(watchdog) => watchdog,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let deadline = Instant::now() + timeout;
    loop {
        let answers = http_answers(port);
        let exited = child.try_wait().ok().flatten();
        if answers && exited.is_none() {
            return Ok(ServerProcess {
                pid: child.id(),
                port,
                log: log_path,
                _watchdog: watchdog,
            });
        }
        if exited.is_some() || Instant::now() >= deadline {
            // Abandon this attempt: the watchdog kills the server but keeps the scratch directory, which
            // the next attempt uses.
            let _ = watchdog.write_all(b"abandon\n");
            let _ = child.kill();
            let _ = child.wait();
            let what = match exited {
                Some(status) => format!("exited with {status}"),
                None => format!("did not answer within {timeout:?}"),
            };
            return Err(format!("{what}; log:\n{}", read_log(&log_path)));
        }
        sleep(Duration::from_millis(100));
    }
}

fn spawn_watchdog(pid: u32, scratch: &Path) -> Result<ChildStdin, String> {
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("watchdog")
        .arg(pid.to_string())
        .arg(scratch)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start watchdog: {e}"))?;
    watchdog
        .stdin
        .take()
        .ok_or_else(|| "watchdog has no stdin pipe".to_string())
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// Whether something on 127.0.0.1:`port` answers an HTTP request with an HTTP status line.
pub fn http_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(5));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut status = [0u8; 5];
    stream.read_exact(&mut status).is_ok() && &status == b"HTTP/"
}

/// A new directory under the system temporary directory that outlives this call (the caller arranges its
/// removal, e.g. through a server's watchdog).
pub fn scratch_dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
        .keep()
}
