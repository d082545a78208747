#!/usr/bin/env bash
# Invokes the Lambda function locally, as a user would: the real `mirror-git-to-s3-lambda` binary runs under
# cargo-lambda's Lambda Runtime API emulator (`cargo lambda watch --only-lambda-apis`), `cargo lambda invoke`
# sends it an events/ sample, and the mirror goes from a loopback git server into a loopback S3 API server
# (moto_server). Then stock git clones the mirror over dumb HTTP.
#
# Usage: lambda-invoke.sh EVENT_FILE   (cargo-lambda on PATH; `make lambda-invoke EVENT=...` arranges that)
#
# The event's placeholders are filled in before it is sent: {{GIT_URL}}, {{GIT_URL_2}} (two small repositories
# served here), {{GIT_MISSING_URL}} (a repository the server does not have), {{S3_TARGET}}, {{S3_TARGET_2}}
# (s3://mirror-demo/mirrors/one and .../two) and {{S3_ENDPOINT}}. For a Scheduled Event without input, the
# function's MIRROR_MAPPINGS is events/mappings-config.json filled in the same way.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$#" -eq 1 ] || die "usage: $0 EVENT_FILE"
event_file=$1
[ -f "$event_file" ] || die "no such event file: $event_file"
command -v cargo-lambda >/dev/null 2>&1 || die "cargo-lambda is not on PATH (make lambda-tools installs it)"
install_cleanup_trap
ensure_tools

work=$(new_scratch_dir lambda-invoke)
SCRATCH_PATHS+=("$work")

log "building the function binary"
(cd "$PROJECT_DIR" && cargo build --quiet --bin mirror-git-to-s3-lambda)
binary="${CARGO_TARGET_DIR:-$PROJECT_DIR/target}/debug/mirror-git-to-s3-lambda"

# make_repo NAME: a bare repository under $work/repos with two commits on main and an annotated tag.
make_repo() {
    local name=$1 tree="$work/tree-$1"
    git init --quiet --initial-branch=main "$tree"
    printf 'hello from %s\n' "$name" >"$tree/README"
    git -C "$tree" add README
    git -C "$tree" -c user.name=Demo -c user.email=demo@example.com commit --quiet -m "Add README"
    printf 'second line\n' >>"$tree/README"
    git -C "$tree" -c user.name=Demo -c user.email=demo@example.com commit --quiet -am "Extend README"
    git -C "$tree" -c user.name=Demo -c user.email=demo@example.com tag -a v1.0 -m "Version 1.0"
    git clone --quiet --bare "$tree" "$work/repos/$name.git"
}
mkdir -p "$work/repos"
make_repo one
make_repo two

start_moto "$work/moto.log"
start_git_server "$work/repos" "$work/git-server"
make_public_bucket "$MOTO_ENDPOINT" mirror-demo

fill() {
    sed -e "s|{{GIT_URL}}|$GIT_SERVER_URL/one.git|g" \
        -e "s|{{GIT_URL_2}}|$GIT_SERVER_URL/two.git|g" \
        -e "s|{{GIT_MISSING_URL}}|$GIT_SERVER_URL/missing.git|g" \
        -e "s|{{S3_TARGET}}|s3://mirror-demo/mirrors/one|g" \
        -e "s|{{S3_TARGET_2}}|s3://mirror-demo/mirrors/two|g" \
        -e "s|{{S3_ENDPOINT}}|$MOTO_ENDPOINT|g" "$1"
}
fill "$event_file" >"$work/event.json"
mappings=$(fill "$PROJECT_DIR/events/mappings-config.json")

port=$(free_port)
cargo-lambda lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" >"$work/emulator.log" 2>&1 </dev/null &
emulator_pid=$!
STARTED_PIDS+=("$emulator_pid")
# The emulator answers no plain GET promptly, so wait for its port to accept connections.
for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$emulator_pid" 2>/dev/null || { cat "$work/emulator.log" >&2; die "cargo lambda watch exited"; }
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "cargo lambda watch did not listen on $port within 60 s"
log "Lambda Runtime API emulator (cargo lambda watch) on 127.0.0.1:$port"

AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" \
    AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_LAMBDA_FUNCTION_VERSION=1 \
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="${LAMBDA_MEMORY_MB:-1024}" \
    AWS_LAMBDA_LOG_FORMAT="${AWS_LAMBDA_LOG_FORMAT:-JSON}" \
    AWS_ENDPOINT_URL_S3="$MOTO_ENDPOINT" \
    MIRROR_ALLOW_LOOPBACK=1 \
    MIRROR_MAPPINGS="$mappings" \
    "$binary" >"$work/function.log" 2>&1 </dev/null &
STARTED_PIDS+=("$!")

log "invoking with $event_file"
status=0
cargo-lambda lambda invoke -A 127.0.0.1 -P "$port" --data-file "$work/event.json" _ >"$work/response.json" || status=$?
printf '\n--- function log ---\n'
cat "$work/function.log"
printf '\n--- response ---\n'
cat "$work/response.json"
printf '\n'

for name in one two; do
    url="$MOTO_ENDPOINT/mirror-demo/mirrors/$name"
    if git clone --quiet "$url" "$work/clone-$name" 2>/dev/null; then
        log "git clone $url (dumb HTTP) works:"
        git -C "$work/clone-$name" log --oneline --decorate -3 >&2
    fi
done
log "S3 requests to the bucket: $(s3_requests "$work/moto.log" mirror-demo)"
exit "$status"
