//! The fuzz targets' bodies (`fuzz/src/lib.rs`) run over their seed corpora (`fuzz/corpus/<target>/`, made from
//! real git output by `fuzz/make-seeds.sh`) on stable, so that every `cargo test` exercises them, along with
//! every crash input a fuzzing run found (kept in the corpus as regression tests). Fuzzing itself is
//! `make fuzz` (nightly).

#[path = "../fuzz/src/lib.rs"]
mod bodies;

use std::path::Path;

#[test]
fn every_seed_of_every_target_runs() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in bodies::TARGETS {
        let dir = corpus.join(target);
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("seed");
            assert!(bodies::run(target, &data), "no target {target}");
            // Every prefix too: truncation is the commonest damage.
            for cut in (0..data.len()).step_by((data.len() / 64).max(1)) {
                bodies::run(target, &data[..cut]);
            }
            seeds += 1;
        }
        assert!(seeds > 0, "no seeds for {target}");
    }
}

#[test]
fn the_seeds_are_what_the_parsers_accept() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let read = |path: &str| std::fs::read(corpus.join(path)).expect("seed");
    let adv = mirror_git_to_s3::git::upload_pack::parse_advertisement(&read("advertisement/repo"))
        .expect("a real advertisement parses");
    assert!(adv.refs.len() >= 3, "{adv:?}");
    let mut parser = mirror_git_to_s3::git::pack::PackParser::new();
    parser
        .feed(&read("pack/repo.pack"))
        .expect("a real pack parses");
    let pack = parser.finish().expect("complete");
    assert!(
        pack.entries.iter().any(|e| e.oid().is_none()),
        "the pack has deltas"
    );
    let delta = read("delta/copy-insert");
    assert_eq!(
        mirror_git_to_s3::git::delta::apply(&delta[2..6], &delta[6..]).expect("applies"),
        b"base!!"
    );
}

#[test]
fn real_packs_resolve_within_the_fuzz_limits_and_too_tight_limits_are_typed_errors() {
    use mirror_git_to_s3::git::resolve::{EntryProblem, ResolveError};
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/resolve");
    let read = |name: &str| std::fs::read(corpus.join(name)).expect("seed");
    let outcome = |name: &str| {
        bodies::resolve_outcome(&read(name)).expect("a real pack passes the first pass")
    };
    for name in ["roomy", "streamed", "ref-delta"] {
        let stats = outcome(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(stats.deltas > 0, "{name}: {stats:?}");
    }
    assert!(outcome("streamed").expect("resolves").streamed > 0);
    match outcome("thin") {
        Err(ResolveError::MissingBase { .. }) => {}
        other => panic!("a thin pack: {other:?}"),
    }
    match outcome("much-work") {
        Err(ResolveError::Entry {
            problem: EntryProblem::TooMuchWork(2000),
            ..
        }) => {}
        other => panic!("more work than allowed: {other:?}"),
    }
    assert!(bodies::resolve_outcome(&read("too-big")).is_none());
}

#[test]
fn what_git_writes_is_what_the_new_targets_take_in() {
    use mirror_git_to_s3::git::idx::lookup::Fanout;
    use mirror_git_to_s3::git::layout;
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let read = |path: &str| std::fs::read(corpus.join(path)).expect("seed");
    // git's .idx: every object of the pack is found in it.
    let index = read("idx/repo.idx");
    let fanout = Fanout::parse(&index).expect("git's index parses");
    let mut parser = mirror_git_to_s3::git::pack::PackParser::new();
    parser.feed(&read("pack/repo.pack")).expect("a real pack");
    let pack = parser.finish().expect("complete");
    assert_eq!(fanout.objects() as usize, pack.entries.len());
    let table = fanout.table_range();
    let ids = &index[table.start as usize..table.end as usize];
    for entry in pack.entries.iter().filter_map(|e| e.oid()) {
        assert_eq!(fanout.find_in(&table, ids, &entry), Some(true), "{entry}");
    }
    // git's packed-refs is what the mirror writes for the refs of git's info/refs.
    let refs = layout::parse_info_refs(&read("layout/info-refs")).expect("git's info/refs");
    for name in ["clone", "pack-refs"] {
        assert_eq!(
            layout::render_packed_refs(&refs),
            read(&format!("packed_refs/{name}")),
            "{name}"
        );
    }
    // The sample events parse (but the malformed one), and the Retry-After forms give one date.
    for entry in std::fs::read_dir(corpus.join("lambda_event")).expect("events") {
        let path = entry.expect("event").path();
        let event = serde_json::from_slice(&std::fs::read(&path).expect("event")).expect("JSON");
        let parsed = mirror_git_to_s3::lambda::parse_event(event);
        let malformed = path.ends_with("malformed") || path.ends_with("mappings-config");
        assert_eq!(parsed.is_err(), malformed, "{}: {parsed:?}", path.display());
    }
    let now = std::time::SystemTime::now();
    let date = |name: &str| mirror_git_to_s3::upstream::parse_http_date(&read(name), now);
    let rfc_example = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
    for name in ["imf-fixdate", "rfc850", "asctime"] {
        assert_eq!(
            date(&format!("retry_after/{name}")),
            Some(rfc_example),
            "{name}"
        );
    }
}
