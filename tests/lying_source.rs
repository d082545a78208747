//! A source that lies about what it sends: the refs advertised are real, the pack is real git output, but it
//! lacks what the refs reach (an empty pack, the tips alone, one blob or subtree or tag target short, another
//! repository's pack). On a fresh target, on an existing mirror (incremental and refs-only runs) and on a
//! compaction run the mirror must refuse with an error naming what is missing, leave every published file byte
//! for byte as it was (no temporary pack left either), and then complete a clean run that stock git verifies.
//! Stock `git clone` through the same server fails too: the server lies, the mirror is not merely strict.

use mirror_git_to_s3::{mirror_repos, Mapping, MirrorOptions, RepoReport, RunKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use testkit::lying::{kind_of, objects_of, pack_of, reachable, Answer, LyingServer};
use testkit::{git, git_command};

/// Every file under `dir`, by relative path.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

struct Case {
    source: PathBuf,
    server: LyingServer,
    target: tempfile::TempDir,
    options: MirrorOptions,
    _dir: tempfile::TempDir,
}

impl Case {
    /// The rich fixture (annotated tags, a tag of a blob, a submodule entry...) behind a lying server.
    async fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.git");
        testkit::fixtures::build_rich(&source);
        Case {
            server: LyingServer::start(source.clone()).await,
            source,
            target: tempfile::tempdir().unwrap(),
            options: MirrorOptions::default(),
            _dir: dir,
        }
    }

    async fn run(&self) -> RepoReport {
        let mapping = Mapping {
            source: self.server.url(),
            target: self.target.path().display().to_string(),
        };
        mirror_repos(&[mapping], &self.options).await.remove(0)
    }

    /// Runs with the server answering `lie`: the run must fail with an error containing every one of
    /// `expected`, and the target must be exactly as before. Returns the error.
    async fn refused(&self, lie: Vec<u8>, expected: &[&str]) -> String {
        let before = snapshot(self.target.path());
        self.server.answer(Answer::Pack(lie));
        let report = self.run().await;
        self.server.answer(Answer::Honest);
        let error = report.error.clone().unwrap_or_default();
        for part in expected {
            assert!(error.contains(part), "expected {part:?} in: {report}");
        }
        assert_eq!(
            snapshot(self.target.path()),
            before,
            "the target changed after {report}"
        );
        error
    }

    async fn honest_run(&self, kind: RunKind) {
        let report = self.run().await;
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.kind, kind, "{report}");
        testkit::assert_dumb_clone_matches(&self.target.path().display().to_string(), &self.source);
    }

    /// Stock git refuses to clone from the server while it answers `lie`.
    async fn git_refuses(&self, lie: Vec<u8>) {
        self.server.answer(Answer::Pack(lie));
        let url = self.server.url();
        let output = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            git_command(dir.path())
                .args(["clone", "--mirror", &url, "clone.git"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        self.server.answer(Answer::Honest);
        assert!(
            !output.status.success(),
            "git cloned from the lying server: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn rev(&self, what: &str) -> String {
        git(["rev-parse", what], &self.source).trim().to_owned()
    }

    /// A new commit on `branch` adding a file `name`; returns (commit, its tree, the new blob).
    fn commit(&self, branch: &str, name: &str) -> (String, String, String) {
        let blob = String::from_utf8(testkit::git::git_with_input(
            ["hash-object", "-w", "--stdin"],
            &self.source,
            format!("content of {name}\n").as_bytes(),
        ))
        .unwrap()
        .trim()
        .to_owned();
        let mut listing = git(["ls-tree", &format!("{branch}^{{tree}}")], &self.source);
        listing.push_str(&format!("100644 blob {blob}\t{name}\n"));
        let tree = String::from_utf8(testkit::git::git_with_input(
            ["mktree"],
            &self.source,
            listing.as_bytes(),
        ))
        .unwrap()
        .trim()
        .to_owned();
        let commit = git(
            ["commit-tree", &tree, "-p", branch, "-m", name],
            &self.source,
        )
        .trim()
        .to_owned();
        git(["update-ref", branch, &commit], &self.source);
        (commit, tree, blob)
    }

    fn pack_without(&self, objects: &[String], left_out: &str) -> Vec<u8> {
        let kept: Vec<String> = objects.iter().filter(|o| *o != left_out).cloned().collect();
        assert!(
            kept.len() < objects.len(),
            "{left_out} is among the objects"
        );
        pack_of(&self.source, &kept)
    }
}

/// A tree below a root tree, as `rev-list --objects --all` lists it.
fn a_subtree(repo: &Path) -> String {
    git(["rev-list", "--objects", "--all"], repo)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, _path)| id.to_owned())
        .find(|id| kind_of(repo, id) == "tree")
        .expect("a subtree")
}

#[tokio::test(flavor = "multi_thread")]
async fn lies_on_a_first_run_publish_nothing() {
    let case = Case::new().await;
    let all = reachable(&case.source);
    let blob = all
        .iter()
        .find(|o| kind_of(&case.source, o) == "blob")
        .unwrap()
        .clone();
    let subtree = a_subtree(&case.source);
    let tag_target = case.rev("key-tag^{}");
    assert_eq!(kind_of(&case.source, &tag_target), "blob");
    let tips: Vec<String> = git(["for-each-ref", "--format=%(objectname)"], &case.source)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut tips_and_roots = tips.clone();
    for tip in &tips {
        if kind_of(&case.source, tip) == "commit" {
            tips_and_roots.push(case.rev(&format!("{tip}^{{tree}}")));
        }
    }
    tips_and_roots.sort();
    tips_and_roots.dedup();
    let other = tempfile::tempdir().unwrap();
    let other_repo = other.path().join("other.git");
    testkit::fixtures::build_small(&other_repo);
    let others_pack = pack_of(&other_repo, &reachable(&other_repo));

    let lies: Vec<(&str, Vec<u8>, Vec<String>)> = vec![
        (
            "empty",
            pack_of(&case.source, &[]),
            vec!["points at".into(), "(0 objects)".into()],
        ),
        (
            "tips and root trees",
            pack_of(&case.source, &tips_and_roots),
            vec!["the objects to publish link to".into()],
        ),
        (
            "one blob short",
            case.pack_without(&all, &blob),
            vec![format!("link to {blob}, which is not in the source's pack")],
        ),
        (
            "a tag's target short",
            case.pack_without(&all, &tag_target),
            vec![format!("link to {tag_target}")],
        ),
        (
            "a subtree short",
            case.pack_without(&all, &subtree),
            vec![format!("link to {subtree}")],
        ),
        (
            "another repository's pack",
            others_pack,
            vec!["points at".into()],
        ),
    ];
    for (name, lie, expected) in lies {
        let expected: Vec<&str> = expected
            .iter()
            .map(String::as_str)
            .chain(["refusing an incomplete answer", "nothing was published"])
            .collect();
        println!("lie: {name}");
        case.refused(lie.clone(), &expected).await;
        assert!(
            snapshot(case.target.path()).is_empty(),
            "{name}: something was written"
        );
        case.git_refuses(lie).await;
    }
    // The same server, honest, mirrors the repository (its submodule entry included) completely.
    case.honest_run(RunKind::Full).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lies_on_an_incremental_run_leave_the_mirror_as_it_was() {
    let case = Case::new().await;
    case.honest_run(RunKind::Full).await;
    let old_tip = case.rev("refs/heads/trunk");
    let (commit, tree, blob) = case.commit("refs/heads/trunk", "new-file.txt");
    let new = objects_of(&case.source, &[&commit, "--not", &old_tip]);
    assert_eq!(new.len(), 3, "commit, tree, blob: {new:?}");
    case.refused(
        pack_of(&case.source, &[]),
        &[&format!(
            "refs/heads/trunk points at {commit}, which is not in the source's pack (0 objects) nor in a pack \
             the mirror lists"
        )],
    )
    .await;
    case.refused(
        case.pack_without(&new, &blob),
        &[&format!("link to {blob}, which is not in the source's pack (2 objects) nor in a pack the mirror lists")],
    )
    .await;
    case.refused(
        pack_of(&case.source, std::slice::from_ref(&commit)),
        &[&format!("link to {tree}")],
    )
    .await;
    case.honest_run(RunKind::Incremental).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refs_only_runs_prove_the_mirror_holds_the_new_tips() {
    let case = Case::new().await;
    case.honest_run(RunKind::Full).await;
    // A new branch at a commit the mirror never got, and a server claiming the mirror has it.
    let base = case.rev("refs/heads/trunk");
    git(["update-ref", "refs/heads/lost", &base], &case.source);
    let (commit, _, _) = case.commit("refs/heads/lost", "lost.txt");
    case.refused(
        pack_of(&case.source, &[]),
        &[&format!("refs/heads/lost points at {commit}, which is not in the source's pack (0 objects) nor in a pack the mirror lists")],
    )
    .await;
    git(["update-ref", "-d", "refs/heads/lost"], &case.source);
    // A new tag at an old commit: the honest server sends no objects and the mirror's index proves it has it.
    let old = case.rev("refs/heads/trunk~1");
    git(["update-ref", "refs/tags/late", &old], &case.source);
    case.honest_run(RunKind::RefsOnly).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lies_on_a_compaction_run_unlist_nothing() {
    let mut case = Case::new().await;
    case.honest_run(RunKind::Full).await;
    case.options.compaction_threshold = 1;
    let old_blob = reachable(&case.source)
        .into_iter()
        .find(|o| kind_of(&case.source, o) == "blob")
        .unwrap();
    let (commit, _, _) = case.commit("refs/heads/trunk", "compacted.txt");
    let error = case
        .refused(
            pack_of(&case.source, &[]),
            &["points at", "which is not in the source's pack (0 objects)"],
        )
        .await;
    assert!(!error.contains("mirror lists"), "{error}");
    // The listed pack holds the blob, but a compaction's pack must be complete on its own.
    case.refused(
        case.pack_without(&reachable(&case.source), &old_blob),
        &[&format!(
            "link to {old_blob}, which is not in the source's pack"
        )],
    )
    .await;
    assert!(!commit.is_empty());
    case.honest_run(RunKind::Compaction).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_pack_streamed_to_s3_leaves_no_upload_and_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.git");
    testkit::fixtures::build_big_binary(&source, 4 << 20, 2);
    let server = LyingServer::start(source.clone()).await;
    let all = reachable(&source);
    let small_blob = all
        .iter()
        .find(|o| {
            kind_of(&source, o) == "blob"
                && git(["cat-file", "-s", o], &source)
                    .trim()
                    .parse::<u64>()
                    .unwrap()
                    < 1024
        })
        .unwrap();
    let lie = pack_of(
        &source,
        &all.iter()
            .filter(|o| *o != small_blob)
            .cloned()
            .collect::<Vec<_>>(),
    );
    // Bigger than the in-memory share of a 16 MiB budget: streamed into a multipart upload.
    assert!(lie.len() > 4 << 20, "pack of {} bytes", lie.len());
    // The whole pack with its trailer's last byte changed: refused when pass 1 ends, while the upload of all
    // its bytes completes.
    let mut bad_trailer = pack_of(&source, &all);
    if let Some(last) = bad_trailer.last_mut() {
        *last ^= 1;
    }
    let lies = [
        (
            lie,
            format!("link to {small_blob}, which is not in the source's pack"),
        ),
        (bad_trailer, "pack checksum mismatch".to_owned()),
    ];
    for (pack, expected) in lies {
        server.answer(Answer::Pack(pack));
        let bucket = testkit::new_bucket();
        let mut options = MirrorOptions::default().with_memory_budget_mib(16);
        options.s3.endpoint_url = Some(testkit::s3().endpoint.clone());
        options.s3.force_path_style = true;
        let mapping = Mapping {
            source: server.url(),
            target: format!("s3://{bucket}/m"),
        };
        let report = mirror_repos(&[mapping], &options).await.remove(0);
        let error = report.error.clone().unwrap_or_default();
        assert!(error.contains(&expected), "{report}");
        assert_eq!(testkit::list_keys(&bucket, "m/"), Vec::<String>::new());
        assert_eq!(
            testkit::s3().open_multipart_uploads(&bucket).await,
            Vec::<String>::new(),
            "an upload was left open"
        );
    }
}

fn shallow_answer(repo: &Path) -> Vec<u8> {
    let tips: Vec<String> = git(["for-each-ref", "--format=%(objectname)"], repo)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut request = Vec::new();
    let mut pkt = |line: String| {
        request.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
        request.extend_from_slice(line.as_bytes());
    };
    pkt(format!(
        "want {} side-band-64k ofs-delta shallow\n",
        tips[0]
    ));
    for tip in &tips[1..] {
        pkt(format!("want {tip}\n"));
    }
    pkt("deepen 1\n".into());
    request.extend_from_slice(b"0000");
    request.extend_from_slice(b"0009done\n");
    testkit::upload_pack(repo, false, &request)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shallow_answer_is_refused() {
    let case = Case::new().await;
    let answer = shallow_answer(&case.source);
    assert!(
        answer.windows(8).any(|w| w == b"shallow "),
        "real git sent shallow lines"
    );
    for setup in ["fresh", "incremental"] {
        if setup == "incremental" {
            case.honest_run(RunKind::Full).await;
            case.commit("refs/heads/trunk", "after-shallow.txt");
        }
        let before = snapshot(case.target.path());
        case.server.answer(Answer::Raw(answer.clone()));
        let report = case.run().await;
        case.server.answer(Answer::Honest);
        let error = report.error.clone().unwrap_or_default();
        assert!(
            error.contains("the source answered with a shallow pack (\"shallow "),
            "{setup}: {report}"
        );
        assert_eq!(snapshot(case.target.path()), before, "{setup}: {report}");
    }
    case.honest_run(RunKind::Incremental).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_bomb_ends_with_a_clear_error_or_at_the_deadline() {
    let mut case = Case::new().await;
    // 1 TiB declared by 16 MiB of copy instructions (a 16 KiB zlib stream).
    let bomb = testkit::pack::delta_bomb(1 << 40);
    case.refused(
        bomb.clone(),
        &[&format!(
            "declares an object of {} bytes, more than the limit of {}",
            1u64 << 40,
            4u64 << 30
        )],
    )
    .await;
    case.options.max_object_bytes = u64::MAX;
    case.refused(
        bomb.clone(),
        &["more than 1073741824 bytes, the limit for this pack (a delta bomb?)"],
    )
    .await;
    // Without limits, only the deadline stops it: resolution from memory yields, so the deadline fires.
    case.options.max_inflate_ratio = u64::MAX;
    case.options.min_time_to_start = std::time::Duration::ZERO;
    case.options.deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
    case.refused(bomb, &["stopped at the deadline"]).await;
    assert!(snapshot(case.target.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_repairs_a_mirror_broken_by_other_means() {
    let mut case = Case::new().await;
    case.honest_run(RunKind::Full).await;
    case.options.verify = true;
    // A healthy mirror: verified, and still a no-op.
    let report = case.run().await;
    assert!(report.is_ok() && report.repaired.is_none(), "{report}");
    assert_eq!(report.kind, RunKind::NoOp, "{report}");
    // A pack deleted by hand: the fast path alone would keep the mirror broken.
    let pack_dir = case.target.path().join("objects/pack");
    let pack = std::fs::read_dir(&pack_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    std::fs::remove_file(&pack).unwrap();
    let report = case.run().await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.kind, RunKind::Compaction, "{report}");
    let found = report.repaired.clone().unwrap_or_default();
    assert!(found.ends_with(".pack is listed but missing"), "{found}");
    testkit::assert_dumb_clone_matches(&case.target.path().display().to_string(), &case.source);
    // A ref whose object no listed pack holds (a lie an older version accepted): repaired too.
    let info_refs = case.target.path().join("info/refs");
    let text = std::fs::read_to_string(&info_refs).unwrap();
    let (first, rest) = text.split_once('\t').unwrap();
    let bogus = "1".repeat(40);
    std::fs::write(&info_refs, format!("{bogus}\t{rest}")).unwrap();
    assert_eq!(first.len(), 40);
    let report = case.run().await;
    assert!(report.is_ok(), "{report}");
    let found = report.repaired.clone().unwrap_or_default();
    assert!(
        found.contains(&format!("points at {bogus}, which no listed pack holds")),
        "{found}"
    );
    testkit::assert_dumb_clone_matches(&case.target.path().display().to_string(), &case.source);
}
