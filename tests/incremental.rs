//! Runs after the first, against the real `git http-backend` (behind lighttpd) and a real S3 API server (moto):
//! a scripted history covering every kind of ref change, checked after each step by a fresh dumb clone and by
//! a clone made at the start that fetches; the no-op fast path's cost counted at both servers; four overlapping
//! runs of one mapping, and a compaction overtaking a slower run at a chosen moment; compaction and garbage
//! collection with an injected clock; damaged published state; and the costs on a 50k-object repository.
//!
//! Run with `--nocapture` to see what each run cost (path, requests, objects, bytes).

use mirror_git_to_s3::mirror::gc::{self, Collected, STATE as GC_STATE};
use mirror_git_to_s3::{
    mirror_repos, store, Mapping, MappingId, MirrorOptions, Progress, RepoReport, RunKind, Stage,
};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where every mirror of these tests lives in its bucket.
const PREFIX: &str = "mirrors/repo";

fn s3_options() -> MirrorOptions {
    let mut o = MirrorOptions::default().with_memory_budget_mib(64);
    o.s3.endpoint_url = Some(testkit::s3().endpoint.clone());
    o.s3.force_path_style = true;
    o
}

/// Number of objects reachable from `repo`'s refs: what a full pack of it holds.
fn reachable_objects(repo: &Path) -> u64 {
    testkit::git(["rev-list", "--objects", "--all"], repo)
        .lines()
        .count() as u64
}

/// A bare source repository served by the git server, changed through a working clone that pushes to it (or
/// directly, for what only a server-side admin does: moving HEAD, deleting every ref).
struct Source {
    bare: PathBuf,
    work: PathBuf,
    _dir: tempfile::TempDir,
}

impl Source {
    /// [`testkit::small_repo`], plus one commit of `generated` files so that a full pack dwarfs an incremental one.
    fn new(generated: usize) -> Self {
        let source = Source::from_bare(testkit::small_repo());
        if generated > 0 {
            let dir = source.work.join("generated");
            std::fs::create_dir_all(&dir).expect("create generated/");
            for i in 0..generated {
                let text = format!("generated file {i}\n").repeat(1 + i % 7);
                std::fs::write(dir.join(format!("file-{i:04}.txt")), text).expect("write file");
            }
            source.git(["add", "generated"]);
            source.git(["commit", "--quiet", "-m", "Add generated files"]);
            source.git(["push", "--quiet", "origin", "main"]);
        }
        source
    }

    /// A working clone of `bare` (which must be served by the git server).
    fn from_bare(bare: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        testkit::git(
            [
                OsStr::new("clone"),
                OsStr::new("--quiet"),
                bare.as_os_str(),
                work.as_os_str(),
            ],
            dir.path(),
        );
        Source {
            bare,
            work,
            _dir: dir,
        }
    }

    fn git<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> String {
        testkit::git(args, &self.work)
    }

    fn bare_git<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> String {
        testkit::git(args, &self.bare)
    }

    /// Commits one more line of `log.txt` on the checked-out branch (new blob, root tree and commit).
    fn commit(&self, message: &str) {
        let log = self.work.join("log.txt");
        let mut text = std::fs::read_to_string(&log).unwrap_or_default();
        text.push_str(message);
        text.push('\n');
        std::fs::write(&log, text).expect("write log.txt");
        self.git(["add", "log.txt"]);
        self.git(["commit", "--quiet", "-m", message]);
    }

    fn push(&self, refspecs: &[&str]) {
        let mut args = vec!["push", "--quiet", "origin"];
        args.extend_from_slice(refspecs);
        self.git(args);
    }

    /// Deletes every ref of the bare repository (HEAD stays, naming an unborn branch).
    fn empty(&self) {
        for name in self
            .bare_git(["for-each-ref", "--format=%(refname)"])
            .lines()
        {
            self.bare_git(["update-ref", "-d", name]);
        }
    }
}

/// One mirror run and what it cost, counted by the mirror and at both servers.
struct Measured {
    report: RepoReport,
    /// Requests the git server logged for the source during the run.
    source_requests: Vec<String>,
    /// Requests moto logged for the bucket during the run.
    s3_requests: usize,
}

/// The S3 mirror of one source in a fresh bucket.
struct Mirror {
    bucket: String,
    bare: PathBuf,
    options: MirrorOptions,
}

impl Mirror {
    fn new(bare: &Path, options: MirrorOptions) -> Self {
        Mirror {
            bucket: testkit::new_bucket(),
            bare: bare.to_path_buf(),
            options,
        }
    }

    fn mappings(&self) -> Vec<Mapping> {
        vec![Mapping {
            source: testkit::git_server().url_of(&self.bare),
            target: format!("s3://{}/{PREFIX}", self.bucket),
        }]
    }

    /// The URL git's dumb HTTP transport clones the mirror from.
    fn url(&self) -> String {
        testkit::s3().http_url(&self.bucket, PREFIX)
    }

    async fn run(&self) -> Measured {
        let source_before = testkit::git_server().requests_for(&self.bare).len();
        let s3_before = testkit::s3().request_count(&self.bucket);
        let report = mirror_repos(&self.mappings(), &self.options)
            .await
            .into_iter()
            .next()
            .expect("one report");
        Measured {
            report,
            source_requests: testkit::git_server().requests_for(&self.bare)[source_before..]
                .to_vec(),
            s3_requests: testkit::s3().request_count(&self.bucket) - s3_before,
        }
    }

    /// Runs, asserts success and the path taken, and checks that the mirror's own request count is what moto saw.
    async fn run_expecting(&self, path: RunKind) -> Measured {
        let m = self.run().await;
        assert!(m.report.is_ok(), "{}", m.report);
        assert_eq!(m.report.kind, path, "{}", m.report);
        assert_eq!(
            m.report.store_requests, m.s3_requests as u64,
            "the mirror's request count differs from what moto logged: {}",
            m.report
        );
        m
    }

    /// A run after `run_expecting` must find nothing to do, in at most three requests.
    async fn assert_no_op(&self) -> Measured {
        let m = self.run_expecting(RunKind::NoOp).await;
        assert_eq!(m.source_requests.len(), 1, "{:?}", m.source_requests);
        assert!(
            m.source_requests[0].starts_with("GET ")
                && m.source_requests[0].contains("/info/refs?service=git-upload-pack"),
            "{:?}",
            m.source_requests
        );
        assert!(
            m.s3_requests <= 2,
            "a no-op made {} S3 requests",
            m.s3_requests
        );
        assert!(m.report.store_requests + m.source_requests.len() as u64 <= 3);
        assert_eq!((m.report.objects, m.report.pack_bytes), (0, 0));
        m
    }

    fn key(&self, name: &str) -> String {
        format!("{PREFIX}/{name}")
    }

    fn get(&self, name: &str) -> Option<Vec<u8>> {
        testkit::get_object(&self.bucket, &self.key(name))
    }

    /// Starts a multipart upload of `name` and leaves it open, as a run killed hard does.
    async fn leave_upload_open(&self, name: &str) {
        testkit::s3()
            .client()
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
            .expect("create multipart upload");
    }

    /// The keys of the multipart uploads open in the bucket.
    async fn open_uploads(&self) -> Vec<String> {
        let out = testkit::s3()
            .client()
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("list multipart uploads");
        out.uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_owned))
            .collect()
    }

    fn put(&self, name: &str, body: &[u8]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, body).expect("write");
        testkit::upload_dir(&self.bucket, PREFIX, dir.path());
    }

    /// The pack names (`pack-<hex>`) listed in `objects/info/packs`, in order.
    fn listed_packs(&self) -> Vec<String> {
        let body = self.get("objects/info/packs").expect("objects/info/packs");
        String::from_utf8(body)
            .expect("utf-8 pack list")
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.strip_prefix("P ")
                    .and_then(|l| l.strip_suffix(".pack"))
                    .unwrap_or_else(|| panic!("bad pack list line {l:?}"))
                    .to_string()
            })
            .collect()
    }

    /// File names under `objects/pack/`.
    fn pack_files(&self) -> Vec<String> {
        let dir = self.key("objects/pack/");
        testkit::list_keys(&self.bucket, &dir)
            .into_iter()
            .map(|k| k[dir.len()..].to_string())
            .collect()
    }

    /// Every listed pack has its `.pack` and `.idx`, and no temporary upload is left behind.
    fn assert_packs_complete(&self) {
        let files = self.pack_files();
        for pack in self.listed_packs() {
            for ext in [".pack", ".idx"] {
                assert!(
                    files.contains(&format!("{pack}{ext}")),
                    "{pack}{ext} is listed but missing; files: {files:?}"
                );
            }
        }
        assert!(
            files.iter().all(|f| f.starts_with("pack-")),
            "left-over files: {files:?}"
        );
    }

    /// Every key under the mirror's prefix with its content.
    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        testkit::list_keys(&self.bucket, PREFIX)
            .into_iter()
            .map(|k| {
                let body = testkit::get_object(&self.bucket, &k).expect("listed key exists");
                (k, body)
            })
            .collect()
    }
}

/// A clone made from the mirror once and updated with `git fetch` after every change.
struct ExistingClone {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ExistingClone {
    fn new(url: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("existing");
        testkit::git(
            [
                OsStr::new("clone"),
                OsStr::new("--quiet"),
                OsStr::new(url),
                path.as_os_str(),
            ],
            dir.path(),
        );
        ExistingClone { path, _dir: dir }
    }

    /// Fetches every branch and tag (pruning deleted ones, accepting forced updates) and compares them, and the
    /// remote HEAD, with `source`; then `git fsck`s the clone.
    fn assert_fetch_matches(&self, source: &Path) {
        testkit::git(
            [
                "fetch",
                "--quiet",
                "--prune",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
            &self.path,
        );
        let mut fetched: Vec<String> = testkit::git(
            [
                "for-each-ref",
                "--format=%(objectname) %(objecttype) %(refname)",
                "refs/remotes/origin",
                "refs/tags",
            ],
            &self.path,
        )
        .lines()
        .filter(|l| !l.ends_with(" refs/remotes/origin/HEAD"))
        .map(|l| l.replacen(" refs/remotes/origin/", " refs/heads/", 1))
        .collect();
        fetched.sort_by(|a, b| a.rsplit(' ').next().cmp(&b.rsplit(' ').next()));
        let expected = testkit::branches_and_tags(source);
        assert_eq!(
            fetched, expected,
            "the existing clone's refs after fetching differ from the source's"
        );
        if expected.is_empty() {
            // Nothing left for the remote HEAD to name (it would dangle and fail fsck).
            testkit::git(
                ["update-ref", "--no-deref", "-d", "refs/remotes/origin/HEAD"],
                &self.path,
            );
        } else {
            testkit::git(["remote", "set-head", "origin", "--auto"], &self.path);
            let remote_head =
                testkit::git(["symbolic-ref", "refs/remotes/origin/HEAD"], &self.path);
            let source_head = testkit::head_symref(source).expect("source HEAD is a branch");
            assert_eq!(
                remote_head
                    .trim()
                    .replacen("refs/remotes/origin/", "refs/heads/", 1),
                source_head,
                "the remote HEAD the existing clone sees differs from the source's"
            );
        }
        testkit::git(
            [
                "fsck",
                "--full",
                "--strict",
                "--no-dangling",
                "--no-progress",
            ],
            &self.path,
        );
    }
}

fn print_costs(title: &str, rows: &[(String, &Measured)]) {
    println!("{title}:");
    println!(
        "  {:<24} {:<12} {:>6} {:>8} {:>10} {:>6} {:>7}",
        "step", "path", "store", "objects", "pack bytes", "source", "ms"
    );
    for (step, m) in rows {
        let r = &m.report;
        println!(
            "  {step:<24} {:<12} {:>6} {:>8} {:>10} {:>6} {:>7}",
            r.kind.to_string(),
            r.store_requests,
            r.objects,
            r.pack_bytes,
            m.source_requests.len(),
            r.duration_ms
        );
    }
}

/// A change made to the source between two runs, the path the next run must take, and (for an incremental
/// run) exactly how many objects its pack must hold.
struct Step {
    name: &'static str,
    change: fn(&Source),
    path: RunKind,
    objects: Option<u64>,
    /// Requests the source sees: the advertisement, plus the pack request when objects were wanted.
    source_requests: usize,
}

#[tokio::test(flavor = "multi_thread")]
async fn scripted_history_is_mirrored_exactly_after_every_step() {
    let steps = [
        Step {
            name: "initial mirror",
            change: |_| {},
            path: RunKind::Full,
            objects: None,
            source_requests: 2,
        },
        Step {
            name: "new commits",
            change: |s| {
                s.commit("first new commit");
                s.commit("second new commit");
                s.push(&["main"]);
            },
            path: RunKind::Incremental,
            objects: Some(6),
            source_requests: 2,
        },
        Step {
            name: "new branches",
            change: |s| {
                s.git(["checkout", "--quiet", "-b", "develop"]);
                s.commit("develop starts");
                s.push(&["develop", "main~1:refs/heads/feature/x"]);
            },
            path: RunKind::Incremental,
            objects: Some(3),
            source_requests: 2,
        },
        Step {
            name: "deleted branch",
            change: |s| s.push(&[":refs/heads/feature/x"]),
            path: RunKind::RefsOnly,
            objects: Some(0),
            source_requests: 1,
        },
        Step {
            name: "force-push",
            change: |s| {
                s.git(["reset", "--quiet", "--hard", "main~2"]);
                s.commit("develop rewritten");
                s.push(&["+develop"]);
            },
            path: RunKind::Incremental,
            objects: Some(3),
            source_requests: 2,
        },
        Step {
            name: "new tags",
            change: |s| {
                s.git(["tag", "v1.0", "main~1"]);
                s.git(["tag", "-a", "v2.0", "-m", "Release 2.0", "develop"]);
                s.push(&["refs/tags/v1.0", "refs/tags/v2.0"]);
            },
            path: RunKind::Incremental,
            objects: Some(1),
            source_requests: 2,
        },
        Step {
            name: "tag on an old commit",
            change: |s| {
                s.git(["tag", "v0.1", "main~3"]);
                s.push(&["refs/tags/v0.1"]);
            },
            // The mirror cannot know it has the commit without asking: the source sends an empty pack, and
            // only refs change.
            path: RunKind::RefsOnly,
            objects: Some(0),
            source_requests: 2,
        },
        Step {
            name: "deleted tag",
            change: |s| s.push(&[":refs/tags/v1.0"]),
            path: RunKind::RefsOnly,
            objects: Some(0),
            source_requests: 1,
        },
        Step {
            name: "HEAD moved",
            change: |s| {
                s.bare_git(["symbolic-ref", "HEAD", "refs/heads/develop"]);
            },
            path: RunKind::RefsOnly,
            objects: Some(0),
            source_requests: 1,
        },
        Step {
            name: "emptied",
            change: Source::empty,
            path: RunKind::RefsOnly,
            objects: Some(0),
            source_requests: 1,
        },
        Step {
            name: "refilled",
            change: |s| s.push(&["main", "develop", "refs/tags/v2.0"]),
            // The mirror has no refs to offer as haves: everything is fetched again, into one more pack.
            path: RunKind::Incremental,
            objects: None,
            source_requests: 2,
        },
    ];

    let source = Source::new(200);
    let mirror = Mirror::new(&source.bare, s3_options());
    let mut existing: Option<ExistingClone> = None;
    let mut measured = Vec::new();
    let mut full_objects = 0;
    for step in &steps {
        println!("step: {}", step.name);
        (step.change)(&source);
        let m = mirror.run_expecting(step.path).await;
        let r = &m.report;
        assert_eq!(
            r.refs,
            testkit::branches_and_tags(&source.bare).len(),
            "{}: {r}",
            step.name
        );
        let fetched = r.objects > 0;
        assert_eq!(
            m.source_requests.len(),
            step.source_requests,
            "{}: {:?}",
            step.name,
            m.source_requests
        );
        match step.objects {
            Some(n) => assert_eq!(r.objects, n, "{}: {r}", step.name),
            None => assert_eq!(
                r.objects,
                reachable_objects(&source.bare),
                "{}: {r}",
                step.name
            ),
        }
        if step.path == RunKind::Full {
            full_objects = r.objects;
        } else if step.objects.is_some() {
            assert!(
                r.objects * 20 < full_objects,
                "{}: an incremental pack of {} objects for a repository of {full_objects}",
                step.name,
                r.objects
            );
        }
        assert_eq!(r.pack_bytes > 0, fetched, "{}: {r}", step.name);

        testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);
        existing
            .get_or_insert_with(|| ExistingClone::new(&mirror.url()))
            .assert_fetch_matches(&source.bare);
        mirror.assert_packs_complete();
        let again = mirror.assert_no_op().await;
        measured.push((step.name.to_string(), m));
        measured.push(("  then no-op".to_string(), again));
    }
    let rows: Vec<(String, &Measured)> = measured.iter().map(|(n, m)| (n.clone(), m)).collect();
    print_costs("scripted history", &rows);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_without_changes_makes_at_most_three_requests() {
    for (kind, bare) in [
        ("small", testkit::small_repo()),
        ("rich", testkit::rich_repo()),
        ("empty", testkit::empty_repo()),
    ] {
        let mirror = Mirror::new(&bare, s3_options());
        let first = mirror.run_expecting(RunKind::Full).await;
        let before = mirror.snapshot();
        let second = mirror.assert_no_op().await;
        assert_eq!(
            mirror.snapshot(),
            before,
            "{kind}: a no-op run changed the mirror"
        );
        testkit::assert_dumb_clone_matches(&mirror.url(), &bare);
        print_costs(
            &format!("no-op, {kind} repository"),
            &[("first run".into(), &first), ("no-op".into(), &second)],
        );
    }
}

/// Changes made to the source between rounds of overlapping runs, in turn.
fn change_for_round(source: &Source, round: usize) {
    match round % 7 {
        0 => {
            source.commit(&format!("round {round}"));
            source.push(&["main"]);
        }
        1 => {
            let topic = format!("topic-{round}");
            source.git(["checkout", "--quiet", "-b", topic.as_str()]);
            source.commit(&format!("topic of round {round}"));
            source.push(&[topic.as_str()]);
            source.git(["checkout", "--quiet", "main"]);
        }
        2 => source.push(&[format!(":refs/heads/topic-{}", round - 1).as_str()]),
        3 => {
            let (light, annotated) = (format!("light-{round}"), format!("annotated-{round}"));
            source.git(["tag", light.as_str(), "main~1"]);
            source.git(["tag", "-a", annotated.as_str(), "-m", "tag", "main"]);
            source.push(&["--tags"]);
        }
        4 => source.push(&[format!(":refs/tags/light-{}", round - 1).as_str()]),
        5 => {
            source.git(["reset", "--quiet", "--hard", "main~1"]);
            source.commit(&format!("main rewritten in round {round}"));
            source.push(&["+main"]);
        }
        _ => {
            let branch = if round.is_multiple_of(2) {
                "main"
            } else {
                "side"
            };
            source.git(["branch", "--force", "side", "main~1"]);
            source.push(&["+side"]);
            let head = format!("refs/heads/{branch}");
            source.bare_git(["symbolic-ref", "HEAD", head.as_str()]);
        }
    }
}

/// Starts `runs` runs of `mirror`'s mapping at the same moment, each on a thread and runtime of its own, and
/// returns their reports.
fn overlapping_runs(mirror: &Mirror, runs: usize) -> Vec<RepoReport> {
    let barrier = std::sync::Barrier::new(runs);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..runs)
            .map(|_| {
                scope.spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    let mappings = mirror.mappings();
                    barrier.wait();
                    runtime.block_on(mirror_repos(&mappings, &mirror.options))
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("run thread"))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn four_overlapping_runs_leave_a_consistent_complete_mirror() {
    const ROUNDS: usize = 21;
    const RUNS: usize = 4;
    let source = Source::new(0);
    let mut options = s3_options();
    options.compaction_threshold = 6;
    let mirror = Mirror::new(&source.bare, options);
    let mut paths: Vec<(RunKind, usize)> = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            change_for_round(&source, round);
        }
        for report in overlapping_runs(&mirror, RUNS) {
            assert!(report.is_ok(), "round {round}: {report}");
            match paths.iter_mut().find(|(p, _)| *p == report.kind) {
                Some((_, n)) => *n += 1,
                None => paths.push((report.kind, 1)),
            }
        }
        testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);
        mirror.assert_packs_complete();
        mirror.assert_no_op().await;
    }
    println!(
        "{ROUNDS} rounds of {RUNS} overlapping runs: {paths:?}; {} packs listed at the end",
        mirror.listed_packs().len()
    );
    assert!(
        paths.iter().any(|(p, _)| *p == RunKind::Compaction),
        "no round compacted: {paths:?}"
    );
}

/// Runs an action, once, when the observed run reaches publication (its pack is stored, nothing is published
/// yet): a deterministic way to make another run overtake it.
struct AtPublishing(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Progress for AtPublishing {
    fn update(&self, _mapping: MappingId<'_>, stage: Stage) {
        if stage == Stage::Publishing {
            let action = self.0.lock().expect("lock").take();
            if let Some(action) = action {
                action();
            }
        }
    }
}

/// Runs `mappings` on a thread and runtime of its own (so it can run while another run is blocked).
fn run_on_own_thread(mappings: Vec<Mapping>, options: MirrorOptions) -> RepoReport {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(mirror_repos(&mappings, &options))
            .remove(0)
    })
    .join()
    .expect("run thread")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_overtaking_a_slower_run_leaves_a_complete_mirror() {
    let source = Source::new(0);
    source.git(["checkout", "--quiet", "-b", "doomed"]);
    source.commit("only on the doomed branch");
    source.push(&["doomed"]);
    source.git(["checkout", "--quiet", "main"]);
    let mut options = s3_options();
    options.compaction_threshold = 4;
    let mirror = Mirror::new(&source.bare, options.clone());
    mirror.run_expecting(RunKind::Full).await;
    for n in 1..=3 {
        source.commit(&format!("incremental {n}"));
        source.push(&["main"]);
        mirror.run_expecting(RunKind::Incremental).await;
    }
    assert_eq!(mirror.listed_packs().len(), 4);

    // The slow run sees `doomed` and a new commit on main. Between its fetch and its publication, `doomed` is
    // deleted and a compacting run publishes a pack without `doomed`'s commit, unlisting the packs that hold it.
    source.commit("the slow run's change");
    source.push(&["main"]);
    let seen_by_slow_run = tempfile::tempdir().expect("tempdir");
    let snapshot = testkit::mirror_clone(&source.bare, seen_by_slow_run.path(), "snapshot.git");
    let overtaker = Arc::new(Mutex::new(None));
    let action = {
        let (bare, mappings, options) = (source.bare.clone(), mirror.mappings(), options.clone());
        let overtaker = overtaker.clone();
        move || {
            testkit::git(["update-ref", "-d", "refs/heads/doomed"], &bare);
            let report = run_on_own_thread(mappings, options);
            *overtaker.lock().expect("lock") = Some(report);
        }
    };
    let mut slow = options.clone();
    slow.compaction_threshold = 100;
    slow.progress = Some(Arc::new(AtPublishing(Mutex::new(Some(Box::new(action))))));
    let report = mirror_repos(&mirror.mappings(), &slow).await.remove(0);
    let overtaker = overtaker
        .lock()
        .expect("lock")
        .take()
        .expect("overtaking run");
    assert!(overtaker.is_ok(), "{overtaker}");
    assert_eq!(overtaker.kind, RunKind::Compaction, "{overtaker}");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.kind, RunKind::Incremental, "{report}");

    // Whichever run's refs were published last, a clone must find every object they need.
    let info_refs = String::from_utf8(mirror.get("info/refs").expect("info/refs")).expect("utf-8");
    let shown = if info_refs.contains("refs/heads/doomed") {
        snapshot.as_path()
    } else {
        source.bare.as_path()
    };
    testkit::assert_dumb_clone_matches(&mirror.url(), shown);
    mirror.assert_packs_complete();
    let m = mirror.run().await;
    assert!(m.report.is_ok(), "{}", m.report);
    testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);
}

/// The clock the mirror sees: real time plus an offset the test moves forward.
fn offset_clock(options: &mut MirrorOptions) -> Arc<AtomicU64> {
    let offset = Arc::new(AtomicU64::new(0));
    let seen = offset.clone();
    options.clock =
        Arc::new(move || SystemTime::now() + Duration::from_secs(seen.load(Ordering::Relaxed)));
    offset
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_replaces_the_pack_list_and_gc_waits_for_the_grace_period() {
    const GRACE: Duration = Duration::from_secs(24 * 3600);
    const HOUR: u64 = 3600;
    let source = Source::new(50);
    let mut options = s3_options();
    options.compaction_threshold = 4;
    options.gc_grace = GRACE;
    let offset = offset_clock(&mut options);
    let mirror = Mirror::new(&source.bare, options);
    let mut measured = Vec::new();

    measured.push((
        "full".to_string(),
        mirror.run_expecting(RunKind::Full).await,
    ));
    let existing = ExistingClone::new(&mirror.url());
    for n in 1..=3 {
        source.commit(&format!("incremental {n}"));
        source.push(&["main"]);
        let m = mirror.run_expecting(RunKind::Incremental).await;
        assert_eq!(mirror.listed_packs().len(), 1 + n);
        measured.push((format!("incremental {n}"), m));
    }
    let before_compaction = mirror.listed_packs();
    assert!(before_compaction.len() >= 4, "{before_compaction:?}");
    existing.assert_fetch_matches(&source.bare);

    // An orphan, as a crashed run leaves it: a pack and index stored but never listed.
    let orphan = format!("pack-{}", "0badc0ffee".repeat(4));
    let real = &before_compaction[0];
    for ext in [".pack", ".idx"] {
        let body = mirror
            .get(&format!("objects/pack/{real}{ext}"))
            .expect("listed pack");
        mirror.put(&format!("objects/pack/{orphan}{ext}"), &body);
    }
    let mut unlisted = before_compaction.clone();
    unlisted.push(orphan.clone());
    // And the temporary upload of a crashed run.
    let crashed_upload = "incoming-crashed-run.pack".to_string();
    mirror.put(&format!("objects/pack/{crashed_upload}"), b"PACK partial");
    // And the multipart upload of a run killed while streaming its pack, next to one that is not the mirror's.
    let killed_upload = mirror.key("objects/pack/incoming-killed-run.pack");
    mirror
        .leave_upload_open("objects/pack/incoming-killed-run.pack")
        .await;
    mirror.leave_upload_open("objects/pack/other-upload").await;

    source.commit("triggers compaction");
    source.push(&["main"]);
    let m = mirror.run_expecting(RunKind::Compaction).await;
    assert_eq!(
        m.report.objects,
        reachable_objects(&source.bare),
        "{}",
        m.report
    );
    assert_eq!(m.report.packs_deleted, 0);
    measured.push(("compaction".to_string(), m));
    let compacted = mirror.listed_packs();
    assert_eq!(compacted.len(), 1, "{compacted:?}");
    assert!(!unlisted.contains(&compacted[0]));
    let assert_kept = |when: &str| {
        let files = mirror.pack_files();
        assert!(
            files.contains(&crashed_upload),
            "{when}: {crashed_upload} was deleted within the grace period"
        );
        for pack in &unlisted {
            for ext in [".pack", ".idx"] {
                assert!(
                    files.contains(&format!("{pack}{ext}")),
                    "{when}: {pack}{ext} was deleted within the grace period"
                );
            }
        }
    };
    assert_kept("right after compaction");
    let state = String::from_utf8(mirror.get(GC_STATE).expect("gc state")).expect("utf-8");
    for pack in &unlisted {
        let hex = pack.trim_start_matches("pack-");
        assert!(state.contains(hex), "{hex} not recorded in {state}");
    }
    testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);
    existing.assert_fetch_matches(&source.bare);

    // Not yet: a change an hour before the grace period ends.
    offset.store(GRACE.as_secs() - HOUR, Ordering::Relaxed);
    source.commit("within the grace period");
    source.push(&["main"]);
    let m = mirror.run_expecting(RunKind::Incremental).await;
    assert_eq!(m.report.packs_deleted, 0, "{}", m.report);
    measured.push(("grace - 1h".to_string(), m));
    assert_kept("an hour before the grace period ends");
    assert!(
        mirror.open_uploads().await.contains(&killed_upload),
        "the killed run's upload was aborted within the grace period"
    );

    // A no-op run never collects, however late.
    offset.store(GRACE.as_secs() + HOUR, Ordering::Relaxed);
    measured.push(("no-op, grace + 1h".to_string(), mirror.assert_no_op().await));
    assert_kept("after a no-op run");

    // A change after the grace period: every unlisted pack goes, the listed ones stay.
    source.commit("after the grace period");
    source.push(&["main"]);
    let m = mirror.run_expecting(RunKind::Incremental).await;
    assert_eq!(m.report.packs_deleted, unlisted.len(), "{}", m.report);
    measured.push(("grace + 1h".to_string(), m));
    let listed = mirror.listed_packs();
    let mut expected_files: Vec<String> = listed
        .iter()
        .flat_map(|p| [format!("{p}.idx"), format!("{p}.pack")])
        .collect();
    expected_files.sort();
    assert_eq!(mirror.pack_files(), expected_files);
    assert_eq!(
        mirror.open_uploads().await,
        [mirror.key("objects/pack/other-upload")],
        "only the killed run's upload is aborted"
    );
    let state = String::from_utf8(mirror.get(GC_STATE).expect("gc state")).expect("utf-8");
    assert!(
        unlisted
            .iter()
            .all(|p| !state.contains(p.trim_start_matches("pack-"))),
        "deleted packs still recorded: {state}"
    );
    testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);
    existing.assert_fetch_matches(&source.bare);
    mirror.assert_no_op().await;

    let rows: Vec<(String, &Measured)> = measured.iter().map(|(n, m)| (n.clone(), m)).collect();
    print_costs("compaction and GC", &rows);
}

/// The garbage collection discards the uploads still open under the run's own upload keys at once (a retried
/// CreateMultipartUpload leaves them), and only those: another run's upload, even under a key that extends the
/// run's own, waits for the grace period.
#[tokio::test(flavor = "multi_thread")]
async fn gc_discards_the_runs_own_leftover_uploads_at_once() {
    let mirror = Mirror::new(Path::new("unused"), s3_options());
    let own = "objects/pack/incoming-own.pack";
    let others = [
        "objects/pack/incoming-other.pack",
        "objects/pack/incoming-own.pack.2",
    ];
    for key in [own, own, others[0], others[1]] {
        mirror.leave_upload_open(key).await;
    }
    let store = store::open(
        &format!("s3://{}/{PREFIX}", mirror.bucket),
        &s3_options().s3,
    )
    .await
    .unwrap();
    let collected = gc::collect(
        store.as_ref(),
        &[],
        &[own.to_owned()],
        SystemTime::now(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let expected = Collected {
        packs_deleted: 0,
        uploads_listed: true,
    };
    assert_eq!(collected, expected);
    let mut open = mirror.open_uploads().await;
    open.sort();
    assert_eq!(open, others.map(|key| mirror.key(key)));
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_published_state() {
    let source = Source::new(0);
    let mirror = Mirror::new(&source.bare, s3_options());
    // A run cut off after `packed-refs` and before `info/refs` left a stale `packed-refs`: the first full run,
    // which writes it without reading it, still replaces it.
    let stale = format!("{} refs/heads/stale-from-a-cut-off-run\n", "1".repeat(40));
    mirror.put("packed-refs", stale.as_bytes());
    mirror.run_expecting(RunKind::Full).await;
    let packed = String::from_utf8(mirror.get("packed-refs").expect("packed-refs")).unwrap();
    let info_refs = String::from_utf8(mirror.get("info/refs").expect("info/refs")).unwrap();
    // info/refs lists a peeled tag as `<oid>\t<name>^{}`, packed-refs as `^<oid>`.
    let refs: Vec<String> = info_refs
        .lines()
        .map(|l| match l.split_once('\t') {
            Some((oid, name)) if name.ends_with("^{}") => format!("^{oid}"),
            _ => l.replace('\t', " "),
        })
        .collect();
    let packed_refs: Vec<&str> = packed.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!refs.is_empty());
    assert_eq!(
        packed_refs, refs,
        "packed-refs lists exactly what info/refs does"
    );

    // Garbage refs: the mirror cannot offer haves, so it fetches everything and republishes.
    mirror.put("info/refs", b"garbage\x00\xff not a ref line\n");
    source.commit("after info/refs was damaged");
    source.push(&["main"]);
    let m = mirror.run_expecting(RunKind::Full).await;
    assert_eq!(m.report.objects, reachable_objects(&source.bare));
    testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);
    mirror.assert_packs_complete();
    mirror.assert_no_op().await;

    // Garbage GC state is ignored (an unlisted pack's clock starts again) and rewritten.
    mirror.put(GC_STATE, b"{not json");
    let orphan = format!("pack-{}", "5ca1ab1e".repeat(5));
    mirror.put(&format!("objects/pack/{orphan}.pack"), b"PACK");
    source.commit("after the gc state was damaged");
    source.push(&["main"]);
    mirror.run_expecting(RunKind::Incremental).await;
    let state = mirror.get(GC_STATE).expect("gc state");
    let state: serde_json::Value = serde_json::from_slice(&state)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&state)));
    assert!(state.to_string().contains(&orphan[5..]), "{state}");
    assert!(mirror.pack_files().contains(&format!("{orphan}.pack")));
    testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);

    // A garbage pack list cannot be extended safely: the run stops, naming the file, and changes nothing.
    mirror.put("objects/info/packs", b"P ../../../etc/passwd\n\n");
    source.commit("after the pack list was damaged");
    source.push(&["main"]);
    let before = mirror.snapshot();
    let m = mirror.run().await;
    let error = m
        .report
        .error
        .as_deref()
        .expect("a damaged pack list fails");
    assert!(
        error.contains("objects/info/packs") && error.contains("line 1"),
        "{error}"
    );
    assert_eq!(mirror.snapshot(), before, "a failed run changed the mirror");
    assert_eq!(m.source_requests.len(), 1, "{:?}", m.source_requests);
}

#[tokio::test(flavor = "multi_thread")]
async fn costs_on_fifty_thousand_objects() {
    let source = Source::from_bare(testkit::big_repo(50_000));
    let mut options = s3_options();
    options.memory_budget = 256 << 20;
    options.compaction_threshold = 2;
    let mirror = Mirror::new(&source.bare, options);

    let full = mirror.run_expecting(RunKind::Full).await;
    assert!(full.report.objects >= 50_000, "{}", full.report);
    let no_op = mirror.assert_no_op().await;
    source.commit("one commit");
    source.push(&["main"]);
    let one_commit = mirror.run_expecting(RunKind::Incremental).await;
    assert_eq!(one_commit.report.objects, 3, "{}", one_commit.report);
    source.commit("one more commit");
    source.push(&["main"]);
    let compaction = mirror.run_expecting(RunKind::Compaction).await;
    assert_eq!(
        compaction.report.objects,
        reachable_objects(&source.bare),
        "{}",
        compaction.report
    );
    assert_eq!(mirror.listed_packs().len(), 1);
    testkit::assert_dumb_clone_matches(&mirror.url(), &source.bare);
    print_costs(
        "50k-object repository",
        &[
            ("full".into(), &full),
            ("no-op".into(), &no_op),
            ("one commit".into(), &one_commit),
            ("compaction".into(), &compaction),
        ],
    );
}
