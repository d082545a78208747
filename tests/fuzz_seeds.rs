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
