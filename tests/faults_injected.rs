//! Seeded fault-injection trials: full, incremental and compaction runs against the real git server (lighttpd +
//! `git http-backend`) and moto, each with a fault proxy (`testkit::fault_proxy`) in front of either server or
//! both that cuts, resets or stalls connections or answers 500/503 at seeded random points.
//!
//! Every trial starts from its scenario's previous mirror, copied to a fresh prefix, and afterwards the mirror
//! must have either completed (its `info/refs` and `HEAD` are what a clean run publishes) or left every published
//! key (all but the files under `objects/pack/`, which nothing lists until published) byte for byte as it was; a
//! fresh dumb `git clone` of it must match the source it claims (`git fsck --full --strict`); no multipart upload
//! may be left open under it; and the next run without faults must complete. Anything else is a broken trial.
//!
//! `FAULT_SEED=<seed>` runs only that trial (the seed is printed with every broken trial, and each fault with
//! it); `FAULT_TRIALS=<n>` sets the trials per scenario. Run with `--nocapture` to see the outcome counts.

use mirror_git_to_s3::upstream::RetryPolicy;
use mirror_git_to_s3::{mirror_repos, Mapping, MirrorOptions, RepoReport, RunKind};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::fault_proxy::{Direction, Fault, FaultPlan, FaultProxy};
use testkit::rng::Rng;

/// Trials per scenario unless `FAULT_TRIALS` says otherwise: three scenarios make 255 (about four in five see
/// a fault fire; the others draw points beyond the bytes their connections carry).
const TRIALS: u64 = 85;

/// Trials of a scenario that run at once (each lane with its own copy of the scenario).
const LANES: usize = 2;

/// The source's idle timeout in the trials: stalls on the git side longer than this trip it.
const IDLE_TIMEOUT: Duration = Duration::from_millis(400);

/// The longest stall a trial injects.
const MAX_STALL: Duration = Duration::from_millis(600);

/// A trial that runs longer than this has hung (it would otherwise block the test for ever).
const HANG: Duration = Duration::from_secs(300);

/// Size of the incompressible file of the full scenario: its pack, larger than the share of [`MEMORY_BUDGET_MIB`]
/// a pack may take in memory, is streamed to a multipart upload in two parts (the first is 8 MiB), read back in
/// ranges to be indexed, and copied to its final name.
const BIG_FILE: usize = 9 << 20;

/// The least memory budget a run may have: a pack beyond 2 MiB is spooled to the store.
const MEMORY_BUDGET_MIB: u64 = 24;

/// Where a scenario's previous mirror was made, and what each trial starts from.
struct Scenario {
    name: &'static str,
    /// The source in its current state.
    source: PathBuf,
    /// A copy of the source as the previous mirror has it, `None` when there is no previous mirror.
    previous: Option<PathBuf>,
    /// The previous mirror's files (keys relative to its prefix), empty for none.
    snapshot: tempfile::TempDir,
    /// What a clean run publishes: `info/refs` and `HEAD`.
    reference: (Vec<u8>, Vec<u8>),
    bucket: String,
    compaction_threshold: usize,
    /// Cut, reset and stall points are drawn up to this byte count.
    max_offset: u64,
    git_proxy: FaultProxy,
    s3_proxy: FaultProxy,
    work: tempfile::TempDir,
}

/// How one trial ended.
#[derive(Debug)]
enum Outcome {
    /// The run reported success and its refs are published.
    Completed,
    /// The refs are published but the run reported an error afterwards (garbage collection).
    PublishedThenFailed(String),
    /// The run failed and every published key is as it was.
    Refused(String),
}

/// Options of every run: the S3 endpoint is the proxy's; `quick` gives short timeouts and quick retries.
fn options(scenario: &Scenario, quick: bool) -> MirrorOptions {
    let mut o = MirrorOptions::default().with_memory_budget_mib(MEMORY_BUDGET_MIB);
    o.s3.endpoint_url = Some(scenario.s3_proxy.url());
    o.s3.force_path_style = true;
    o.compaction_threshold = scenario.compaction_threshold;
    if quick {
        o.idle_timeout = IDLE_TIMEOUT;
        o.connect_timeout = Duration::from_secs(2);
        o.source_retry = RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_total: Duration::from_secs(60),
        };
    }
    o
}

/// Mirrors the scenario's source, through its proxies, into `prefix`.
async fn run(scenario: &Scenario, prefix: &str, quick: bool) -> RepoReport {
    run_with(scenario, prefix, options(scenario, quick)).await
}

/// Like [`run`], with `options`.
async fn run_with(scenario: &Scenario, prefix: &str, options: MirrorOptions) -> RepoReport {
    let name = scenario
        .source
        .strip_prefix(&testkit::git_server().root)
        .expect("source under the git server's root")
        .to_string_lossy()
        .into_owned();
    let mapping = Mapping {
        source: format!("{}/{name}", scenario.git_proxy.url()),
        target: format!("s3://{}/{prefix}", scenario.bucket),
    };
    mirror_repos(&[mapping], &options).await.remove(0)
}

/// Every key under `prefix` but the files in `objects/pack/`, relative to the prefix, with its content.
fn published(bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let root = format!("{prefix}/");
    testkit::list_keys(bucket, &root)
        .into_iter()
        .filter_map(|key| key.strip_prefix(&root).map(str::to_owned))
        .filter(|key| !key.starts_with("objects/pack/"))
        .map(|key| {
            let body = testkit::get_object(bucket, &format!("{root}{key}")).unwrap_or_default();
            (key, body)
        })
        .collect()
}

/// Files of `dir` (recursively) as `relative path → content`, skipping `objects/pack/`.
fn published_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read snapshot dir") {
            let path = entry.expect("snapshot entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let key = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                if !key.starts_with("objects/pack/") {
                    out.insert(key, std::fs::read(&path).expect("read snapshot file"));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Downloads every key under `prefix` into `dir`.
fn download(bucket: &str, prefix: &str, dir: &Path) {
    let root = format!("{prefix}/");
    for key in testkit::list_keys(bucket, &root) {
        let path = dir.join(&key[root.len()..]);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let body = testkit::get_object(bucket, &key).expect("listed key");
        std::fs::write(path, body).expect("write");
    }
}

/// Adds a commit (one more line in `log.txt`) to the bare `repo` through a working clone.
fn commit(repo: &Path, message: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("w");
    testkit::git(
        [
            OsStr::new("clone"),
            OsStr::new("--quiet"),
            repo.as_os_str(),
            work.as_os_str(),
        ],
        dir.path(),
    );
    std::fs::write(work.join(format!("{message}.txt")), message).expect("write");
    testkit::git(["add", "."], &work);
    testkit::git(["commit", "--quiet", "-m", message], &work);
    testkit::git(["push", "--quiet", "origin", "HEAD"], &work);
}

/// A bare copy of `repo` as it is now.
fn copy_of(repo: &Path, work: &Path) -> PathBuf {
    let copy = work.join("previous.git");
    testkit::git(
        [
            OsStr::new("clone"),
            OsStr::new("--quiet"),
            OsStr::new("--mirror"),
            repo.as_os_str(),
            copy.as_os_str(),
        ],
        work,
    );
    copy
}

/// Sets up scenario `name`: its source, its previous mirror made by clean runs (`previous_runs` of them, with a
/// commit before each but the first), then one more commit for the trials to mirror.
async fn scenario(name: &'static str) -> Scenario {
    let work = tempfile::tempdir().expect("tempdir");
    let (source, previous_runs, compaction_threshold, max_offset, kind) = match name {
        "full" => (
            testkit::big_binary_repo(BIG_FILE, 1),
            0,
            16,
            16 << 20,
            RunKind::Full,
        ),
        "incremental" => (testkit::small_repo(), 1, 16, 64 << 10, RunKind::Incremental),
        _ => (testkit::small_repo(), 3, 3, 64 << 10, RunKind::Compaction),
    };
    let mut scenario = Scenario {
        name,
        git_proxy: FaultProxy::start(&format!("{name}/git"), testkit::git_server().port()),
        s3_proxy: FaultProxy::start(&format!("{name}/s3"), testkit::s3().port()),
        source,
        previous: None,
        snapshot: tempfile::tempdir().expect("tempdir"),
        reference: (Vec::new(), Vec::new()),
        bucket: testkit::new_bucket(),
        compaction_threshold,
        max_offset,
        work,
    };
    for n in 0..previous_runs {
        if n > 0 {
            commit(&scenario.source, &format!("previous-{n}"));
        }
        let report = run(&scenario, "previous", false).await;
        assert!(report.is_ok(), "{report}");
    }
    if previous_runs > 0 {
        scenario.previous = Some(copy_of(&scenario.source, scenario.work.path()));
        download(&scenario.bucket, "previous", scenario.snapshot.path());
        commit(&scenario.source, "new");
    }
    // The reference: what a clean run from the previous mirror publishes.
    testkit::upload_dir(&scenario.bucket, "reference", scenario.snapshot.path());
    let report = run(&scenario, "reference", false).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.kind, kind, "{report}");
    testkit::assert_dumb_clone_matches(
        &testkit::s3().http_url(&scenario.bucket, "reference"),
        &scenario.source,
    );
    let reference = published(&scenario.bucket, "reference");
    scenario.reference = (reference["info/refs"].clone(), reference["HEAD"].clone());
    scenario
}

/// The fault plans of trial `seed`: the git server's and S3's (one of them, or both, faulty).
fn plans(scenario: &Scenario, seed: u64) -> (Option<FaultPlan>, Option<FaultPlan>) {
    let mut rng = Rng(seed);
    rng.next_u64();
    let side = rng.below(3);
    let mut plan = || FaultPlan {
        percent: [34, 67, 100][rng.below(3)],
        max_faults: 1 + rng.below(3),
        max_offset: scenario.max_offset,
        max_stall: MAX_STALL,
        ..FaultPlan::default()
    };
    match side {
        0 => (Some(plan()), None),
        1 => (None, Some(plan())),
        _ => (Some(plan()), Some(plan())),
    }
}

/// A short kind of error, to count alike errors together: the message without the URL or store it starts with,
/// up to an HTML or XML body it quotes, numbers of more than three digits and ids replaced by `#`.
fn error_kind(error: &str) -> String {
    let mut rest = error;
    while let Some((head, tail)) = rest.split_once(": ") {
        if !(head.starts_with("http") || head.starts_with("s3://")) {
            break;
        }
        rest = tail;
    }
    let rest = rest.split('<').next().unwrap_or(rest).trim_end();
    let mut out = String::new();
    let mut word = String::new();
    for c in rest.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        let digits = word.chars().filter(char::is_ascii_digit).count();
        let hex = word.chars().all(|c| c.is_ascii_hexdigit());
        if digits > 0 && (word.len() > 3 && hex || word.len() >= 6) {
            out.push('#');
        } else {
            out.push_str(&word);
        }
        word.clear();
        out.push(c);
    }
    out.trim_end().chars().take(120).collect()
}

/// Runs trial `seed` of `scenario` and judges it; `Err` describes a broken mirror.
async fn trial(scenario: &Scenario, seed: u64) -> Result<(Outcome, usize), String> {
    let prefix = format!("t{seed}");
    testkit::upload_dir(&scenario.bucket, &prefix, scenario.snapshot.path());
    let before = published_files(scenario.snapshot.path());
    let (git_plan, s3_plan) = plans(scenario, seed);
    if let Some(plan) = git_plan {
        scenario.git_proxy.arm(seed, plan);
    }
    if let Some(plan) = s3_plan {
        scenario.s3_proxy.arm(seed, plan);
    }
    let report = tokio::time::timeout(HANG, run(scenario, &prefix, true)).await;
    let mut events = scenario.git_proxy.disarm();
    events.extend(scenario.s3_proxy.disarm());
    let broken = |problem: String| {
        let root = format!("{prefix}/");
        let keys: Vec<String> = testkit::list_keys(&scenario.bucket, &root)
            .into_iter()
            .map(|key| {
                let size = testkit::get_object(&scenario.bucket, &key).map_or(0, |b| b.len());
                format!("{} ({size} bytes)", &key[root.len()..])
            })
            .collect();
        format!(
            "{} trial FAULT_SEED={seed} broke the mirror: {problem}\nfaults:\n  {}\nkeys:\n  {}",
            scenario.name,
            events.join("\n  "),
            keys.join("\n  ")
        )
    };
    let Ok(report) = report else {
        return Err(broken(format!("the run did not end within {HANG:?}")));
    };

    let after = published(&scenario.bucket, &prefix);
    let refs = (
        after.get("info/refs").cloned().unwrap_or_default(),
        after.get("HEAD").cloned().unwrap_or_default(),
    );
    let outcome = if refs == scenario.reference {
        match &report.error {
            None => Outcome::Completed,
            Some(e) => Outcome::PublishedThenFailed(error_kind(e)),
        }
    } else if after == before {
        match &report.error {
            Some(e) => Outcome::Refused(error_kind(e)),
            None => {
                return Err(broken(format!(
                    "the run reported success but published nothing: {report}"
                )))
            }
        }
    } else {
        let changed: Vec<&String> = after
            .keys()
            .chain(before.keys())
            .filter(|k| after.get(*k) != before.get(*k))
            .collect();
        return Err(broken(format!(
            "neither complete nor unchanged; changed keys {changed:?}; report: {report}"
        )));
    };

    let url = testkit::s3().http_url(&scenario.bucket, &prefix);
    let claimed = match (&outcome, &scenario.previous) {
        (Outcome::Refused(_), None) => None,
        (Outcome::Refused(_), Some(previous)) => Some(previous.as_path()),
        _ => Some(scenario.source.as_path()),
    };
    if let Some(repo) = claimed {
        catch_unwind(AssertUnwindSafe(|| {
            testkit::assert_dumb_clone_matches(&url, repo)
        }))
        .map_err(|panic| {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            broken(format!("the dumb clone failed: {message}"))
        })?;
    }
    let open = open_uploads(scenario, &prefix).await;
    if !open.is_empty() {
        return Err(broken(format!("multipart uploads left open: {open:?}")));
    }
    let clean = run(scenario, &prefix, false).await;
    let refs = published(&scenario.bucket, &prefix);
    if !clean.is_ok()
        || refs.get("info/refs") != Some(&scenario.reference.0)
        || refs.get("HEAD") != Some(&scenario.reference.1)
    {
        return Err(broken(format!(
            "the next clean run did not complete: {clean}"
        )));
    }
    Ok((outcome, events.len()))
}

/// The multipart uploads open under `prefix` in the scenario's bucket.
async fn open_uploads(scenario: &Scenario, prefix: &str) -> Vec<String> {
    testkit::s3()
        .open_multipart_uploads(&scenario.bucket)
        .await
        .into_iter()
        .filter(|upload| upload.starts_with(&format!("{prefix}/")))
        .collect()
}

/// The seeds to run for a scenario: `FAULT_SEED` if it names one of its trials, else all of them.
fn seeds(scenario_id: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        return if seed >> 32 == scenario_id {
            vec![seed]
        } else {
            Vec::new()
        };
    }
    let trials = std::env::var("FAULT_TRIALS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(TRIALS);
    (0..trials).map(|n| scenario_id << 32 | n).collect()
}

/// Runs every trial of scenario `name`, prints the outcome counts, and fails if any trial broke the mirror.
async fn trials(name: &'static str, id: u64) {
    let seeds = seeds(id);
    if seeds.is_empty() {
        return;
    }
    let started = Instant::now();
    // Each lane has its own source, bucket and proxies, and runs on a task of its own: much of a trial is
    // waiting (stalls, retry back-offs), and the helpers that judge it block their thread.
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            let seeds: Vec<u64> = seeds.iter().copied().skip(lane).step_by(LANES).collect();
            tokio::spawn(async move {
                let mut results = Vec::new();
                if !seeds.is_empty() {
                    let scenario = scenario(name).await;
                    for seed in seeds {
                        results.push(trial(&scenario, seed).await);
                    }
                }
                results
            })
        })
        .collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let (mut faulted, mut broken) = (0, Vec::new());
    for lane in lanes {
        for result in lane.await.expect("a lane of trials panicked") {
            match result {
                Ok((outcome, faults)) => {
                    faulted += usize::from(faults > 0);
                    let key = match outcome {
                        Outcome::Completed => "completed".to_owned(),
                        Outcome::PublishedThenFailed(e) => format!("published, then failed: {e}"),
                        Outcome::Refused(e) => format!("refused cleanly: {e}"),
                    };
                    *counts.entry(key).or_default() += 1;
                }
                Err(problem) => broken.push(problem),
            }
        }
    }
    println!(
        "{name}: {} trials ({faulted} with at least one fault fired) in {:.1} s; broken: {}",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        broken.len()
    );
    for (outcome, n) in &counts {
        println!("  {n:>4}  {outcome}");
    }
    assert!(broken.is_empty(), "{}", broken.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_runs_under_injected_faults() {
    trials("full", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incremental_runs_under_injected_faults() {
    trials("incremental", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_runs_under_injected_faults() {
    trials("compaction", 3).await;
}

/// A full run into `prefix` whose CreateMultipartUpload answer is lost after the server created the upload, so
/// that the SDK retries and the run goes on with a second upload, under `options`: the run's report and the
/// prefixes of its listings of unfinished uploads.
async fn run_losing_an_upload_creation(
    scenario: &Scenario,
    prefix: &str,
    options: MirrorOptions,
) -> (RepoReport, Vec<String>) {
    scenario.s3_proxy.arm_on(
        b"?uploads",
        Fault::Reset {
            dir: Direction::ToClient,
            after: 20,
        },
    );
    let report = run_with(scenario, prefix, options).await;
    let events = scenario.s3_proxy.disarm();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        open_uploads(scenario, prefix).await,
        Vec::<String>::new(),
        "{report}"
    );
    let listings = testkit::s3()
        .requests(&scenario.bucket)
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("?uploads&"))
        .filter_map(|r| {
            let listed = r.split("prefix=").nth(1)?;
            let listed = listed.split(['&', ' ']).next()?;
            listed
                .strip_prefix(&format!("{prefix}/"))
                .map(str::to_owned)
        })
        .collect();
    (report, listings)
}

/// Found by the trials: the answer to CreateMultipartUpload is lost after the server created the upload, the SDK
/// retries and the run goes on with a second upload; the first must not stay open. The garbage collection, which
/// lists every unfinished upload anyway, aborts it: one listing in all.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_whose_creation_was_retried_is_not_left_open() {
    let scenario = scenario("full").await;
    let options = options(&scenario, true);
    let (report, listings) = run_losing_an_upload_creation(&scenario, "lost-create", options).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(listings, ["objects/pack/incoming-"]);
}

/// The same lost answer in a run that fails after its upload started (the pack is over the size limit), so that
/// the garbage collection never runs: the run's clean-up lists the uploads under its own key and aborts both.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_does_not_leave_open_an_upload_whose_creation_was_retried() {
    let scenario = scenario("full").await;
    let mut options = options(&scenario, true);
    // Past the first part (8 MiB), which starts the multipart upload, and below the pack's size.
    options.max_pack_bytes = BIG_FILE as u64 - (512 << 10);
    let (report, listings) = run_losing_an_upload_creation(&scenario, "failed", options).await;
    let error = report.error.as_deref().unwrap_or_default();
    assert!(error.contains("larger than the limit"), "{report}");
    assert_eq!(listings.len(), 1, "{listings:?}");
    assert!(
        listings[0].starts_with("objects/pack/incoming-") && listings[0].ends_with(".pack"),
        "{listings:?}"
    );
}
