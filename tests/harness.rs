//! Self-test of the test harness (crates/testkit), independent of the mirror code: the git server speaks smart
//! HTTP, a dumb copy made the way git itself makes one (`git clone --bare` + `git update-server-info`) and
//! uploaded to a `new_bucket()` clones over dumb HTTP from moto and satisfies `assert_dumb_clone_matches`, the
//! judge rejects copies that differ, request logs count what the servers saw, and fixtures have the promised
//! shapes and are deterministic, and the fault proxy (`testkit::fault_proxy`) cuts, resets, stalls and answers
//! with errors as its seeded plan says.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use testkit::{
    assert_dumb_clone_matches, big_binary_repo, big_repo, branches_and_tags, delta_count,
    empty_repo, get_object, git, git_server, head_symref, list_keys, new_bucket, object_count,
    rich_repo, s3, small_repo, upload_dir, BIG_BINARY_SIZE,
};

/// A dumb-HTTP-servable copy of `source` made by git itself, in a new temp dir (returned to keep it alive).
fn git_made_dumb_copy(source: &Path) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().expect("temp dir");
    let copy = work.path().join("copy.git");
    git(
        [
            "clone".as_ref(),
            "--bare".as_ref(),
            "--quiet".as_ref(),
            source.as_os_str(),
            copy.as_os_str(),
        ],
        work.path(),
    );
    // A clone's HEAD follows the source's HEAD only when the source has commits; copy it explicitly.
    if let Some(head) = head_symref(source) {
        git(["symbolic-ref", "HEAD", &head], &copy);
    }
    git(["update-server-info"], &copy);
    (work, copy)
}

/// Uploads a git-made dumb copy of `source` to a new bucket; returns the bucket, the prefix and the file count.
fn upload_dumb_copy(source: &Path) -> (String, String, usize) {
    let (_work, copy) = git_made_dumb_copy(source);
    let bucket = new_bucket();
    let prefix = format!("mirrors/{}", source.file_name().unwrap().to_string_lossy());
    upload_dir(&bucket, &prefix, &copy);
    let files = list_keys(&bucket, &prefix).len();
    (bucket, prefix, files)
}

fn panic_message(result: std::thread::Result<()>) -> String {
    let payload = result.expect_err("the check should have failed");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn git_server_speaks_smart_http_and_logs_requests() {
    let repo = small_repo();
    let url = git_server().url_of(&repo);
    let advertised = git(["ls-remote", &url], &git_server().root);
    let main = git(["rev-parse", "refs/heads/main"], &repo);
    assert!(
        advertised.contains(&format!("{}\trefs/heads/main", main.trim())),
        "ls-remote {url} gave:\n{advertised}"
    );
    let requests = git_server().requests_for(&repo);
    assert!(
        requests.iter().any(|r| r.starts_with("GET /")
            && r.contains("/info/refs?service=git-upload-pack")
            && r.ends_with("version=2")),
        "requests: {requests:?}"
    );
    // A fetch POSTs to git-upload-pack through the CGI.
    let work = tempfile::tempdir().unwrap();
    git(["clone", "--quiet", "--bare", &url, "c.git"], work.path());
    assert!(git_server()
        .requests_for(&repo)
        .iter()
        .any(|r| r.starts_with("POST /") && r.contains("/git-upload-pack ")));
}

#[test]
fn dumb_clone_from_s3_matches_small_repo() {
    let source = small_repo();
    let (bucket, prefix, files) = upload_dumb_copy(&source);
    assert!(files > 5, "uploaded only {files} files");
    assert_dumb_clone_matches(&s3().http_url(&bucket, &prefix), &source);

    let requests = s3().requests(&bucket);
    let puts = requests.iter().filter(|r| r.starts_with("PUT /")).count();
    // create-bucket, put-policy, then one PUT per file.
    assert_eq!(puts, files + 2, "requests: {requests:#?}");
    for wanted in [
        format!("GET /{bucket}/{prefix}/info/refs?service=git-upload-pack"),
        format!("GET /{bucket}/{prefix}/HEAD"),
        format!("GET /{bucket}/{prefix}/objects/info/packs"),
    ] {
        assert!(requests.contains(&wanted), "no {wanted} in {requests:#?}");
    }
    let info_refs = get_object(&bucket, &format!("{prefix}/info/refs")).expect("info/refs");
    assert!(String::from_utf8_lossy(&info_refs).ends_with("\trefs/heads/main\n"));
    assert_eq!(get_object(&bucket, &format!("{prefix}/no/such/key")), None);
}

#[test]
fn dumb_clone_from_s3_matches_rich_repo() {
    let source = rich_repo();
    let (bucket, prefix, _) = upload_dumb_copy(&source);
    assert_dumb_clone_matches(&s3().http_url(&bucket, &prefix), &source);
}

#[test]
fn dumb_clone_from_s3_matches_empty_repo() {
    let source = empty_repo();
    let (bucket, prefix, _) = upload_dumb_copy(&source);
    assert_dumb_clone_matches(&s3().http_url(&bucket, &prefix), &source);
}

#[test]
fn local_directory_copy_matches() {
    let source = rich_repo();
    let (_work, copy) = git_made_dumb_copy(&source);
    assert_dumb_clone_matches(copy.to_str().unwrap(), &source);
}

#[test]
fn judge_rejects_copies_that_differ() {
    let source = rich_repo();

    let (_w1, moved) = git_made_dumb_copy(&source);
    git(
        ["update-ref", "refs/heads/develop", "refs/heads/trunk"],
        &moved,
    );
    git(["update-server-info"], &moved);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(moved.to_str().unwrap(), &source)
    })));
    assert!(message.contains("refs differ"), "{message}");
    assert!(message.contains("-"), "{message}");

    let (_w2, head) = git_made_dumb_copy(&source);
    git(["symbolic-ref", "HEAD", "refs/heads/develop"], &head);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(head.to_str().unwrap(), &source)
    })));
    assert!(message.contains("HEAD differs"), "{message}");

    // Refs right, but info/refs (what a dumb client reads) stale.
    let (_w3, stale) = git_made_dumb_copy(&source);
    let develop = git(["rev-parse", "refs/heads/develop"], &stale);
    git(
        ["update-ref", "refs/heads/develop", "refs/heads/trunk"],
        &stale,
    );
    git(["update-server-info"], &stale);
    git(["update-ref", "refs/heads/develop", develop.trim()], &stale);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(stale.to_str().unwrap(), &source)
    })));
    assert!(message.contains("info/refs differs"), "{message}");

    // Over S3: a copy whose pack is missing cannot be cloned.
    let (_w4, packless) = git_made_dumb_copy(&source);
    for entry in std::fs::read_dir(packless.join("objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pack") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let bucket = new_bucket();
    upload_dir(&bucket, "p", &packless);
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| {
        assert_dumb_clone_matches(&s3().http_url(&bucket, "p"), &source)
    })));
    assert!(message.contains("failed"), "{message}");
}

#[test]
fn small_and_rich_fixtures_are_deterministic_and_shaped() {
    assert_eq!(
        branches_and_tags(&small_repo()),
        branches_and_tags(&small_repo())
    );
    let rich = rich_repo();
    let refs = branches_and_tags(&rich);
    assert_eq!(refs, branches_and_tags(&rich_repo()));
    let names: Vec<&str> = refs.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "refs/heads/develop",
            "refs/heads/feature/x",
            "refs/heads/gh-pages",
            "refs/heads/release-1.0",
            "refs/heads/trunk",
            "refs/tags/key-tag",
            "refs/tags/tree-tag",
            "refs/tags/v0.9",
            "refs/tags/v1.0",
            "refs/tags/v1.0-final",
            "refs/tags/v1.1",
        ]
    );
    assert_eq!(head_symref(&rich).as_deref(), Some("refs/heads/trunk"));
    let peel = |spec: &str| git(["cat-file", "-t", spec], &rich).trim().to_string();
    assert_eq!(peel("v1.0-final"), "tag");
    assert_eq!(peel("v1.0-final^{}"), "commit");
    assert_eq!(
        git(["cat-file", "-p", "v1.0-final"], &rich).lines().nth(1),
        Some("type tag")
    );
    assert_eq!(peel("tree-tag^{}"), "tree");
    assert_eq!(peel("key-tag^{}"), "blob");
    assert_eq!(peel("refs/pull/1/head"), "commit");
    let merge_parents = git(["rev-list", "--parents", "-n1", "v1.0^{}"], &rich);
    assert_eq!(
        merge_parents.split(' ').count(),
        3,
        "v1.0 is a merge commit"
    );
    let ls = git(["ls-tree", "-r", "trunk"], &rich);
    for entry in ["160000 commit", "120000 blob", "100755 blob", "empty.txt"] {
        assert!(ls.contains(entry), "no {entry} in trunk:\n{ls}");
    }
    assert!(head_symref(&empty_repo()).is_some());
    assert!(branches_and_tags(&empty_repo()).is_empty());
}

#[test]
fn big_fixtures_have_their_shape() {
    let big = big_repo(50_000);
    assert!(object_count(&big) >= 50_000);
    let refs = git(["for-each-ref", "--format=%(refname)"], &big);
    assert!(
        refs.lines().count() >= 3_000,
        "{} refs",
        refs.lines().count()
    );
    assert_eq!(refs.lines().filter(|r| r.ends_with("/head")).count(), 2_500);
    let loose = git(
        ["for-each-ref", "--format=%(refname)", "refs/pull/1/"],
        &big,
    );
    assert!(!big.join("refs/pull/1/head").exists() && loose.trim() == "refs/pull/1/head");

    let binary = big_binary_repo(BIG_BINARY_SIZE, 3);
    assert_eq!(delta_count(&binary, BIG_BINARY_SIZE as u64), 2);
    let size = git(["cat-file", "-s", "main:data.bin"], &binary);
    assert_eq!(
        size.trim().parse::<usize>().unwrap(),
        BIG_BINARY_SIZE + 2048
    );
    // The server's pack-objects sends the deltas as they are stored.
    let work = tempfile::tempdir().unwrap();
    git(
        [
            "clone",
            "--quiet",
            "--bare",
            &git_server().url_of(&binary),
            "c.git",
        ],
        work.path(),
    );
    let clone = work.path().join("c.git");
    assert_eq!(delta_count(&clone, BIG_BINARY_SIZE as u64), 2);
}

/// The fault proxy's tests: an upstream answering every request with `BODY_LEN` bytes of body, a client, and
/// seeds that draw a chosen fault.
mod proxy {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use testkit::fault_proxy::{Direction, Fault, FaultKind, FaultPlan, FaultProxy};
    use testkit::raw_http::{http, RawServer, Reply};

    pub const BODY_LEN: usize = 200_000;

    /// A proxy in front of a server answering every request with a `BODY_LEN`-byte body, on a runtime kept
    /// alive by the returned value.
    pub fn proxied() -> (tokio::runtime::Runtime, RawServer, FaultProxy) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let server = runtime.block_on(RawServer::start(|_| {
            Reply::Send(http("200 OK", &[], &vec![b'x'; BODY_LEN]))
        }));
        let proxy = FaultProxy::start("test", server.port);
        (runtime, server, proxy)
    }

    /// Sends one GET through the proxy; returns what came back before the end of the stream, and the error
    /// that ended it, if any.
    pub fn get(proxy: &FaultProxy) -> (Vec<u8>, Option<ErrorKind>) {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port)).expect("connect");
        let request = b"GET /x HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n";
        if let Err(e) = stream.write_all(request) {
            return (Vec::new(), Some(e.kind()));
        }
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return (out, Some(e.kind())),
            }
        }
    }

    /// A plan drawing `kind` for every connection (at most once, within 4 KiB), and a seed whose first connection
    /// draws a fault that `wanted` accepts.
    pub fn seed_for(kind: FaultKind, wanted: impl Fn(&Fault) -> bool) -> (u64, FaultPlan) {
        let plan = FaultPlan {
            max_offset: 4096,
            ..FaultPlan::only(kind)
        };
        let seed = (0..10_000u64)
            .find(|&seed| plan.draw(seed, 0).as_ref().is_some_and(&wanted))
            .expect("a seed drawing the wanted fault");
        (seed, plan)
    }

    pub fn to_client(fault: &Fault) -> Option<u64> {
        match *fault {
            Fault::Cut { dir, after }
            | Fault::Reset { dir, after }
            | Fault::Stall { dir, after, .. }
                if dir == Direction::ToClient && after > 100 =>
            {
                Some(after)
            }
            _ => None,
        }
    }
}

#[test]
fn an_unarmed_fault_proxy_forwards_untouched() {
    let (_runtime, server, proxy) = proxy::proxied();
    let (response, error) = proxy::get(&proxy);
    assert_eq!(error, None);
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));
    assert!(response.ends_with(&vec![b'x'; proxy::BODY_LEN]));
    assert_eq!(server.seen().len(), 1);
    assert!(proxy.events().is_empty());
}

#[test]
fn a_fault_proxy_cuts_after_the_drawn_byte_count_either_way() {
    use testkit::fault_proxy::{Direction, Fault, FaultKind};
    let (_runtime, server, proxy) = proxy::proxied();
    let (seed, plan) = proxy::seed_for(FaultKind::Cut, |f| {
        matches!(f, Fault::Cut { .. }) && proxy::to_client(f).is_some()
    });
    let after = proxy::to_client(&plan.draw(seed, 0).unwrap()).unwrap();
    proxy.arm(seed, plan);
    let (response, error) = proxy::get(&proxy);
    assert_eq!((response.len() as u64, error), (after, None));
    assert_eq!(
        proxy.events(),
        [format!(
            "test: seed {seed} connection 0: cut after {after} bytes to the client"
        )]
    );
    // The budget is spent: the next connection forwards.
    assert_eq!(proxy::get(&proxy).1, None);

    // Towards the server, inside the request's head: the server never sees a whole request.
    let (seed, plan) = proxy::seed_for(
        FaultKind::Cut,
        |f| matches!(f, Fault::Cut { dir: Direction::ToServer, after } if *after < 20),
    );
    proxy.arm(seed, plan);
    let before = server.seen().len();
    let (response, _) = proxy::get(&proxy);
    assert!(response.is_empty());
    assert_eq!(server.seen().len(), before);
    assert_eq!(proxy.events().len(), 1, "{:?}", proxy.events());
}

#[test]
fn a_fault_proxy_resets_connections() {
    use testkit::fault_proxy::{Fault, FaultKind};
    let (_runtime, _server, proxy) = proxy::proxied();
    let (seed, plan) = proxy::seed_for(FaultKind::Reset, |f| {
        matches!(f, Fault::Reset { .. }) && proxy::to_client(f).is_some()
    });
    let after = proxy::to_client(&plan.draw(seed, 0).unwrap()).unwrap();
    proxy.arm(seed, plan);
    let (response, error) = proxy::get(&proxy);
    assert_eq!(error, Some(std::io::ErrorKind::ConnectionReset));
    assert!(response.len() as u64 <= after);
    assert_eq!(
        proxy.events(),
        [format!(
            "test: seed {seed} connection 0: reset after {after} bytes to the client"
        )]
    );
}

#[test]
fn a_fault_proxy_stalls_then_resumes_or_cuts() {
    use testkit::fault_proxy::{Fault, FaultKind};
    let (_runtime, _server, proxy) = proxy::proxied();
    for then_cut in [false, true] {
        let (seed, plan) = proxy::seed_for(FaultKind::Stall, |f| {
            matches!(f, Fault::Stall { then_cut: c, .. } if *c == then_cut)
                && proxy::to_client(f).is_some()
        });
        let after = proxy::to_client(&plan.draw(seed, 0).unwrap()).unwrap();
        proxy.arm(seed, plan);
        let (response, error) = proxy::get(&proxy);
        assert_eq!(error, None);
        let events = proxy.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(
            events[0].contains(&format!(" ms after {after} bytes to the client")),
            "{events:?}"
        );
        if then_cut {
            assert_eq!(response.len() as u64, after);
            assert!(events[0].ends_with("then cut"), "{events:?}");
        } else {
            assert!(response.ends_with(&vec![b'x'; proxy::BODY_LEN]));
            assert!(events[0].ends_with("then resumed"), "{events:?}");
        }
    }
}

#[test]
fn a_fault_proxy_answers_with_500_or_503_without_forwarding() {
    use testkit::fault_proxy::{Fault, FaultKind};
    let (_runtime, server, proxy) = proxy::proxied();
    for code in [500, 503] {
        let (seed, plan) = proxy::seed_for(FaultKind::Status, |f| *f == Fault::Status(code));
        proxy.arm(seed, plan);
        let (response, error) = proxy::get(&proxy);
        assert_eq!(error, None);
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with(&format!("HTTP/1.1 {code} ")), "{text}");
        assert!(text.contains("<Message>injected fault</Message>"), "{text}");
        assert_eq!(
            proxy.events(),
            [format!(
                "test: seed {seed} connection 0: answered the first request with HTTP {code}"
            )]
        );
    }
    assert!(server.seen().is_empty(), "the server saw a request");
}

#[test]
fn fault_plans_replay_from_their_seed_and_draw_every_kind() {
    use testkit::fault_proxy::{Fault, FaultPlan};
    let plan = FaultPlan {
        percent: 100,
        ..FaultPlan::default()
    };
    let draws: Vec<Option<Fault>> = (0..400).map(|n| plan.draw(42, n)).collect();
    assert_eq!(
        draws,
        (0..400).map(|n| plan.draw(42, n)).collect::<Vec<_>>()
    );
    assert_ne!(
        draws,
        (0..400).map(|n| plan.draw(43, n)).collect::<Vec<_>>()
    );
    let kinds = |f: &Option<Fault>| match f {
        Some(Fault::Cut { .. }) => 0,
        Some(Fault::Reset { .. }) => 1,
        Some(Fault::Stall { .. }) => 2,
        Some(Fault::Status(_)) => 3,
        None => 4,
    };
    for kind in 0..4 {
        assert!(
            draws.iter().any(|f| kinds(f) == kind),
            "kind {kind} never drawn"
        );
    }
    assert!(draws.iter().all(|f| kinds(f) != 4));
}

#[test]
fn a_fault_proxy_fires_a_targeted_fault_on_the_request_that_matches() {
    use testkit::fault_proxy::{Direction, Fault};
    let (_runtime, _server, proxy) = proxy::proxied();
    let cut = Fault::Cut {
        dir: Direction::ToClient,
        after: 100,
    };
    let whole = proxy::get(&proxy).0.len();
    proxy.arm_on(b"GET /other", cut);
    assert_eq!(proxy::get(&proxy).0.len(), whole, "no match, no fault");
    assert!(proxy.events().is_empty());
    proxy.arm_on(b"GET /x", cut);
    let (response, error) = proxy::get(&proxy);
    assert_eq!((response.len(), error), (100, None));
    let events = proxy.disarm();
    assert_eq!(
        events,
        ["test: request with \"GET /x\": cut after 100 bytes to the client"]
    );
    assert_eq!(proxy::get(&proxy).0.len(), whole, "fired once");
}
