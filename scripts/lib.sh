# shellcheck shell=bash
# Shared helpers for scripts/test.sh, scripts/demo.sh and scripts/bench.sh: start the loopback servers the
# project is tested against (moto_server for the S3 API, lighttpd + git http-backend for git smart HTTP), create
# a bucket that anonymous dumb-HTTP clones can read, count the requests each server saw, stop exactly the
# processes started here, and install what a fresh machine lacks (.ci/run uses that part too). Source it; it
# defines functions and variables and sets no shell options or traps until a function is called.

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(cd "$SCRIPTS_DIR/.." && pwd)
STARTED_PIDS=()
SCRATCH_PATHS=()

# Dummy credentials for moto; the mirror and the aws tooling read them from the environment.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
export AWS_EC2_METADATA_DISABLED="${AWS_EC2_METADATA_DISABLED:-true}"

# The project's Python tools (moto's server pinned to a version whose S3 responses the AWS SDK parses, boto3,
# cfn-lint, cargo-lambda, ziglang) live in one venv outside the work tree, first on PATH for everything sourced
# from here. This is the one definition of its path: the Makefile and the test harness (crates/testkit) ask
# this file for it.
TOOLS_VENV="${MIRROR_TOOLS_VENV:-$HOME/.cache/mirror-git-to-s3/tools}"
MOTO_VERSION=5.2.5
# Debian installs lighttpd in /usr/sbin, which a non-root user's PATH lacks.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/sbin" ;;
esac
export PATH="$TOOLS_VENV/bin:$PATH"

log() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PID SECONDS LOG: waits until URL answers any HTTP status; fails if PID exits first or time runs out.
wait_http() {
    local url=$1 pid=$2 seconds=$3 logfile=$4 deadline
    deadline=$((SECONDS + seconds))
    until curl -s -o /dev/null --max-time 2 "$url"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$logfile" >&2 || true
            die "server for $url exited before answering"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            cat "$logfile" >&2 || true
            die "server for $url did not answer within ${seconds}s"
        fi
        sleep 0.2
    done
}

# start_moto LOG: starts moto_server on a free loopback port, its request log (one line per request) in LOG.
# Sets MOTO_ENDPOINT and MOTO_PID.
start_moto() {
    local logfile=$1 port
    command -v moto_server >/dev/null 2>&1 || die "moto_server not found (pip install 'moto[server]')"
    port=$(free_port)
    moto_server -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 </dev/null &
    MOTO_PID=$!
    STARTED_PIDS+=("$MOTO_PID")
    MOTO_ENDPOINT="http://127.0.0.1:$port"
    wait_http "$MOTO_ENDPOINT/" "$MOTO_PID" 60 "$logfile"
    log "moto_server at $MOTO_ENDPOINT (pid $MOTO_PID, log $logfile)"
}

# start_git_server ROOT STATE_DIR: serves the repositories under ROOT over smart HTTP (scripts/git-http-server.sh).
# Sets GIT_SERVER_URL (append /<repo>) and GIT_SERVER_PID; requests are logged in STATE_DIR/requests.log.
start_git_server() {
    local root=$1 state=$2 port
    port=$(free_port)
    mkdir -p "$state"
    bash "$SCRIPTS_DIR/git-http-server.sh" "$root" "$port" "$state" >"$state/server.out" 2>&1 </dev/null &
    GIT_SERVER_PID=$!
    STARTED_PIDS+=("$GIT_SERVER_PID")
    GIT_SERVER_URL="http://127.0.0.1:$port"
    wait_http "$GIT_SERVER_URL/" "$GIT_SERVER_PID" 30 "$state/server.out"
    log "git smart HTTP server at $GIT_SERVER_URL (pid $GIT_SERVER_PID, root $root)"
}

# Prints the pip requirements the tools venv lacks (run by the venv's python3 with MOTO_VERSION as argument).
MISSING_PIP_PACKAGES_PY='
import importlib.metadata as metadata
import sys

def installed(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None

missing = []
if installed("moto") != sys.argv[1] or installed("flask") is None:
    missing.append(f"moto[server]=={sys.argv[1]}")
missing += [d for d in ("boto3", "cfn-lint", "cargo-lambda", "ziglang", "dulwich", "git-lfs-http-mirror")
            if installed(d) is None]
print(" ".join(missing))
'

# ensure_tools: makes sure the programs the tests, demo and benchmark need are there, installing only what is
# missing: Debian packages (lighttpd and its TLS module, GNU time, curl, openssl, git-lfs) and, in the tools venv,
# moto's server, boto3, cfn-lint, cargo-lambda, ziglang, dulwich and git-lfs-http-mirror (the LFS tests). When
# nothing is missing it only looks (no apt-get, no pip).
# apt-get needs root: another user gets passwordless sudo if there is one, else a message naming the packages
# and the command to run. The venv needs no root, only write access to TOOLS_VENV.
ensure_tools() {
    local apt_packages=() pip_packages=() missing sudo=()
    command -v lighttpd >/dev/null 2>&1 || apt_packages+=(lighttpd)
    [ -e /usr/lib/lighttpd/mod_openssl.so ] || apt_packages+=(lighttpd-mod-openssl)
    [ -x /usr/bin/time ] || apt_packages+=(time)
    command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
    command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
    command -v git-lfs >/dev/null 2>&1 || apt_packages+=(git-lfs)
    if [ -x "$TOOLS_VENV/bin/python3" ]; then
        missing=$("$TOOLS_VENV/bin/python3" -c "$MISSING_PIP_PACKAGES_PY" "$MOTO_VERSION")
    else
        missing="moto[server]==$MOTO_VERSION boto3 cfn-lint cargo-lambda ziglang dulwich git-lfs-http-mirror"
        python3 -c 'import ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
    fi
    read -r -a pip_packages <<<"$missing"

    if [ "${#apt_packages[@]}" -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null ||
                die "missing Debian packages: ${apt_packages[*]}. Install them as root (apt-get install ${apt_packages[*]}), then run this again."
            sudo=(sudo)
        fi
        log "installing ${apt_packages[*]} (apt)"
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
    fi

    if [ "${#pip_packages[@]}" -gt 0 ]; then
        mkdir -p "$TOOLS_VENV" 2>/dev/null && [ -w "$TOOLS_VENV" ] ||
            die "the tools venv $TOOLS_VENV lacks ${pip_packages[*]} and $(id -un) cannot write to it. Install them as its owner ($TOOLS_VENV/bin/python3 -m pip install ${pip_packages[*]@Q}), or use a venv of your own (MIRROR_TOOLS_VENV=DIR make tools)."
        if [ ! -x "$TOOLS_VENV/bin/python3" ]; then
            log "creating the tools venv $TOOLS_VENV"
            python3 -m venv "$TOOLS_VENV"
        fi
        log "installing ${pip_packages[*]} (pip, in $TOOLS_VENV)"
        "$TOOLS_VENV/bin/python3" -m pip install --quiet "${pip_packages[@]}"
        hash -r
    fi
}

# install_cleanup_trap: on exit, Ctrl-C or TERM, stop the servers started here and remove SCRATCH_PATHS.
install_cleanup_trap() {
    trap cleanup_started EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

cleanup_started() {
    stop_started
    if [ "${#SCRATCH_PATHS[@]}" -gt 0 ]; then
        rm -rf -- "${SCRATCH_PATHS[@]}"
    fi
}

# new_scratch_dir NAME: prints a new temporary directory, for SCRATCH_PATHS (removed by cleanup_started).
# Call it as `dir=$(new_scratch_dir x)` and then `SCRATCH_PATHS+=("$dir")` (a subshell cannot register it).
new_scratch_dir() {
    mktemp -d "${TMPDIR:-/tmp}/mirror-$1.XXXXXX"
}

# Stops every server this shell started (by process id) and waits for them.
stop_started() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    STARTED_PIDS=()
}

# make_public_bucket ENDPOINT BUCKET: creates BUCKET with a policy letting anyone s3:GetObject, which git's
# unsigned dumb-HTTP clone needs (moto answers 403 to anonymous reads otherwise).
make_public_bucket() {
    python3 - "$1" "$2" <<'PY'
import json
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint)
s3.create_bucket(Bucket=bucket)
policy = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AnonymousRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
    ],
}
s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
PY
}

# s3_requests LOG BUCKET [METHOD]: counts requests moto logged for BUCKET (optionally only METHOD).
s3_requests() {
    local logfile=$1 bucket=$2 method=${3:-[A-Z]+}
    # moto colours some lines (ESC [ ... m right after the opening quote): strip the codes before matching.
    sed 's/\x1b\[[0-9;]*m//g' "$logfile" | grep -cE "\"$method /$bucket([/?][^ ]*)? HTTP/" || true
}

# git_requests STATE_DIR REPO [METHOD]: counts requests the git server under STATE_DIR saw for REPO.
git_requests() {
    local state=$1 repo=$2 method=${3:-[A-Z]+}
    grep -cE "^$method /$repo([/?][^ ]*)? " "$state/requests.log" || true
}

# build_binaries: builds the CLI and the fixture generator the tests use (make_fixture, crates/testkit) with
# cargo profile CARGO_PROFILE (default release) and sets MIRROR_BIN and MAKE_FIXTURE_BIN. A MIRROR_BIN already
# set (another build of the CLI to measure) is kept and the CLI is not built.
build_binaries() {
    local profile=${CARGO_PROFILE:-release} dir targets=(--bin make_fixture)
    dir=${CARGO_TARGET_DIR:-$PROJECT_DIR/target}/$([ "$profile" = dev ] && echo debug || echo "$profile")
    if [ -z "${MIRROR_BIN:-}" ]; then
        targets+=(--bin mirror-git-to-s3)
        MIRROR_BIN=$dir/mirror-git-to-s3
    fi
    log "building ${targets[*]} (profile $profile)"
    # --workspace: make_fixture belongs to crates/testkit, the CLI to the root package.
    (cd "$PROJECT_DIR" && cargo build --quiet --workspace --profile "$profile" "${targets[@]}")
    # shellcheck disable=SC2034 # read by the scripts that source this file
    MAKE_FIXTURE_BIN=$dir/make_fixture
}
