//! A smart-HTTP source that lies: it advertises a real repository's refs exactly as `git upload-pack` does, then
//! answers the fetch with a pack real git built from a chosen set of objects (none, a subset, another
//! repository's), or honestly. Tests use it to prove a mirror refuses empty, partial and unrelated packs.

use crate::git::{git, git_with_input, upload_pack};
use crate::raw_http::{http, RawServer, Reply};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Content type of a smart-HTTP ref advertisement.
const ADVERTISEMENT: &str = "application/x-git-upload-pack-advertisement";
/// Content type of an upload-pack response.
const RESULT: &str = "application/x-git-upload-pack-result";
/// Most pack bytes in one side-band-64k packet (65520 minus the length and the band byte).
const BAND_DATA: usize = 65515;

/// How a [`LyingServer`] answers a fetch.
#[derive(Clone, Debug)]
pub enum Answer {
    /// What `git upload-pack` answers to the request.
    Honest,
    /// `NAK`, then this pack on side band 1, whatever was asked.
    Pack(Vec<u8>),
    /// These response bytes, whatever was asked.
    Raw(Vec<u8>),
}

/// A loopback smart-HTTP server for one repository that answers fetches as told ([`LyingServer::answer`]).
pub struct LyingServer {
    server: RawServer,
    answer: Arc<Mutex<Answer>>,
}

impl LyingServer {
    /// Serves `repo` (its advertisement as it is at each request), answering fetches honestly until told
    /// otherwise.
    pub async fn start(repo: PathBuf) -> LyingServer {
        let answer = Arc::new(Mutex::new(Answer::Honest));
        let current = Arc::clone(&answer);
        let server = RawServer::start(move |seen| {
            if seen.method == "GET" {
                let mut body = b"001e# service=git-upload-pack\n0000".to_vec();
                body.extend_from_slice(&upload_pack(&repo, true, b""));
                return Reply::Send(http("200 OK", &[("Content-Type", ADVERTISEMENT)], &body));
            }
            let answer = current.lock().expect("lock").clone();
            let body = match answer {
                Answer::Honest => upload_pack(&repo, false, &seen.body),
                Answer::Pack(pack) => pack_response(&pack),
                Answer::Raw(bytes) => bytes,
            };
            Reply::Send(http("200 OK", &[("Content-Type", RESULT)], &body))
        })
        .await;
        LyingServer { server, answer }
    }

    /// Answers every later fetch with `answer`.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("lock") = answer;
    }

    /// The repository's URL.
    pub fn url(&self) -> String {
        self.server.url("/repo.git").to_string()
    }
}

/// An upload-pack response carrying `pack`: `NAK`, the pack in side-band-64k packets, a flush.
pub fn pack_response(pack: &[u8]) -> Vec<u8> {
    let mut out = b"0008NAK\n".to_vec();
    for chunk in pack.chunks(BAND_DATA) {
        out.extend_from_slice(format!("{:04x}", chunk.len() + 5).as_bytes());
        out.push(1);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(b"0000");
    out
}

/// The pack `git pack-objects` writes for exactly `objects` (ids) of `repo`: no more, whatever they link to.
pub fn pack_of(repo: &Path, objects: &[String]) -> Vec<u8> {
    let list: String = objects.iter().map(|o| format!("{o}\n")).collect();
    git_with_input(["pack-objects", "--stdout", "-q"], repo, list.as_bytes())
}

/// Every object reachable from the refs of `repo`, as `git rev-list --objects --all` lists them (ids only).
pub fn reachable(repo: &Path) -> Vec<String> {
    objects_of(repo, &["--all"])
}

/// `git rev-list --objects <args>` of `repo`, ids only.
pub fn objects_of(repo: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = vec!["rev-list", "--objects"];
    cmd.extend_from_slice(args);
    git(cmd, repo)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The type of object `id` of `repo` (`commit`, `tree`, `blob`, `tag`).
pub fn kind_of(repo: &Path, id: &str) -> String {
    git(["cat-file", "-t", id], repo).trim().to_owned()
}
