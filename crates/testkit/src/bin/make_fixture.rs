//! Writes one of the integration tests' fixture repositories ([`testkit::fixtures`]) as a bare repository at a
//! path, so `scripts/demo.sh` and `scripts/bench.sh` serve the same repository shapes the tests use.
//!
//! Usage: `make_fixture small|rich|empty PATH`, `make_fixture big N_OBJECTS PATH`,
//! `make_fixture big-binary MIB VERSIONS PATH`.

use std::path::Path;
use std::process::ExitCode;

use testkit::fixtures;

const USAGE: &str = "usage: make_fixture small|rich|empty PATH\n       make_fixture big N_OBJECTS PATH\n       make_fixture big-binary MIB VERSIONS PATH";

fn number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a number: {e}\n{USAGE}"))
}

fn run(args: &[String]) -> Result<(), String> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    match refs.as_slice() {
        ["empty", path] => fixtures::build_empty(Path::new(path)),
        ["small", path] => fixtures::build_small(Path::new(path)),
        ["rich", path] => fixtures::build_rich(Path::new(path)),
        ["big", objects, path] => fixtures::build_big(Path::new(path), number(objects)?),
        ["big-binary", mib, versions, path] => {
            let size = usize::try_from(number(mib)? << 20).map_err(|e| e.to_string())?;
            let versions = usize::try_from(number(versions)?).map_err(|e| e.to_string())?;
            fixtures::build_big_binary(Path::new(path), size, versions)
        }
        _ => return Err(USAGE.to_string()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
