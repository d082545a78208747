//! The command-line binary as a script or a scheduler runs it: standard error piped into a file, `--json` report
//! on standard output.

use std::process::{Command, Output};

/// The CLI binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_mirror-git-to-s3");

/// Runs the CLI with `args`, standard output and error piped (so neither is a terminal).
fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MIRROR_GIT_TOKEN")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BINARY}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn piped_logs_carry_no_colour_codes() {
    let repo = testkit::small_repo();
    let source = testkit::git_server().url_of(&repo);
    let target = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let target = target.path().join("mirror");
    let target = target.to_string_lossy();
    // One mapping that works and one whose source refuses connections: info and error lines both.
    let output = run(&[
        "--source",
        &source,
        "--target",
        &target,
        "--source",
        "http://127.0.0.1:1/refused.git",
        "--target",
        &format!("{target}-2"),
    ]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "a mapping should have failed");
    assert!(
        stderr.contains("mirrored") && stderr.contains("mirror failed"),
        "expected info and error lines:\n{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in piped logs:\n{stderr:?}"
    );
}

#[test]
fn the_json_report_carries_the_figures_of_the_lambda_metrics() {
    let repo = testkit::rich_repo();
    let source = testkit::git_server().url_of(&repo);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let target = dir.path().join("mirror");
    let output = run(&[
        "--source",
        &source,
        "--target",
        &target.to_string_lossy(),
        "--ref-prefix",
        "refs/heads/",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON: {e}: {}", text(&output.stdout)));
    let report = &reports[0];
    // The EMF record's metrics, under their report names: Success, DurationMs, PackBytes, Objects,
    // StoreRequests, AdvertisementBytes, and the RunKind.
    assert!(report["error"].is_null(), "{report}");
    for figure in [
        "duration_ms",
        "pack_bytes",
        "objects",
        "store_requests",
        "advertisement_bytes",
    ] {
        assert!(report[figure].is_u64(), "{figure} missing: {report}");
    }
    assert_eq!(report["kind"], "full");
    assert!(report["advertisement_bytes"].as_u64() > Some(0), "{report}");
}
