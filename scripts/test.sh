#!/usr/bin/env bash
# Runs the crate's tests (`cargo test`, arguments passed through) against one moto_server shared by every test
# binary (MIRROR_TEST_S3_ENDPOINT, with its request log in MIRROR_TEST_S3_LOG; see crates/testkit/src/s3.rs), so the
# ~2-20 s server start is paid once per run instead of once per test binary.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_cleanup_trap

work=$(new_scratch_dir test-run)
SCRATCH_PATHS+=("$work")
start_moto "$work/moto.log"
export MIRROR_TEST_S3_ENDPOINT="$MOTO_ENDPOINT"
export MIRROR_TEST_S3_LOG="$work/moto.log"

# The Lambda tests also run the real binary under cargo-lambda's emulator when it is installed (ensure_tools).
if [ -x "$TOOLS_VENV/bin/cargo-lambda" ]; then
    export MIRROR_TEST_CARGO_LAMBDA="$TOOLS_VENV/bin/cargo-lambda"
fi

cd "$PROJECT_DIR"
cargo test "$@"
