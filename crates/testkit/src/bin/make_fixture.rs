//! Writes one of the integration tests' fixture repositories ([`testkit::fixtures`]) or one of the benchmark's
//! generated repositories ([`testkit::bench_repos`]) as a bare repository at a path, so `scripts/demo.sh` and
//! `scripts/bench.sh` serve the same shapes the tests use; and measures the delta locality of a pack
//! ([`testkit::pack_stats`]).
//!
//! Usage:
//! - `make_fixture small|rich|empty PATH`, `make_fixture big N_OBJECTS PATH`,
//!   `make_fixture big-binary MIB VERSIONS PATH` (test fixtures);
//! - `make_fixture history huge|medium SEED MIN_OBJECTS PATH`, `make_fixture large-file SEED MIB VERSIONS PATH`
//!   (benchmark repositories), `make_fixture generator-version history|large-file` (part of
//!   their cache key);
//! - `make_fixture locality PACK` (prints the delta locality of PACK, its `.idx` beside it).

use std::path::Path;
use std::process::ExitCode;

use testkit::{bench_repos, fixtures, pack_stats};

const USAGE: &str = "usage: make_fixture small|rich|empty PATH
       make_fixture big N_OBJECTS PATH
       make_fixture big-binary MIB VERSIONS PATH
       make_fixture history huge|medium SEED MIN_OBJECTS PATH
       make_fixture large-file SEED MIB VERSIONS PATH
       make_fixture generator-version history|large-file
       make_fixture locality PACK";

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
        ["history", shape, seed, objects, path] => {
            let shape = match *shape {
                "huge" => &bench_repos::HUGE,
                "medium" => &bench_repos::MEDIUM,
                _ => return Err(format!("unknown shape {shape:?}\n{USAGE}")),
            };
            bench_repos::build_history(Path::new(path), shape, number(seed)?, number(objects)?)
        }
        ["large-file", seed, mib, versions, path] => {
            let versions = usize::try_from(number(versions)?).map_err(|e| e.to_string())?;
            bench_repos::build_large_file(
                Path::new(path),
                number(seed)?,
                number(mib)? << 20,
                versions,
            )
        }
        ["generator-version", "history"] => println!("{}", bench_repos::HISTORY_VERSION),
        ["generator-version", "large-file"] => println!("{}", bench_repos::LARGE_FILE_VERSION),
        ["locality", pack] => {
            let stats = pack_stats::analyse(Path::new(pack)).map_err(|e| e.to_string())?;
            println!("{stats}");
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
