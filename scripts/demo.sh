#!/usr/bin/env bash
# Offline demo of mirror-git-to-s3, using nothing but this machine:
#   1. generates a repository with branches, annotated tags and a non-`main` default branch (the tests' "rich"
#      fixture) and serves it over git smart HTTP (lighttpd + git http-backend);
#   2. starts moto_server as the S3 API and creates bucket `demo` readable anonymously;
#   3. mirrors the repository into s3://demo/mirrors/demo with the release build of the CLI;
#   4. clones the mirror with stock git over dumb HTTP straight from the bucket and shows what arrived;
#   5. mirrors again (nothing changed), then adds a commit upstream and mirrors once more, showing the requests
#      each run cost and that a `git fetch` from the mirror picks the commit up.
# Builds with cargo profile CARGO_PROFILE (default release); MIRROR_BIN=path runs that CLI build instead.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_cleanup_trap
ensure_tools

work=$(new_scratch_dir demo)
SCRATCH_PATHS+=("$work")
build_binaries
mirror=$MIRROR_BIN

mkdir -p "$work/repos"
"$MAKE_FIXTURE_BIN" rich "$work/repos/demo.git"
start_git_server "$work/repos" "$work/git-server"
start_moto "$work/moto.log"
make_public_bucket "$MOTO_ENDPOINT" demo

source_url="$GIT_SERVER_URL/demo.git"
target=s3://demo/mirrors/demo
clone_url="$MOTO_ENDPOINT/demo/mirrors/demo"

# run_mirror TITLE: mirrors once and prints what it cost at both servers.
run_mirror() {
    local s3_before git_before
    s3_before=$(s3_requests "$work/moto.log" demo)
    git_before=$(git_requests "$work/git-server" demo.git)
    log "$1: $mirror --source $source_url --target $target --endpoint-url $MOTO_ENDPOINT"
    "$mirror" --source "$source_url" --target "$target" --endpoint-url "$MOTO_ENDPOINT"
    printf '    requests: git server %d, S3 %d (PUT %d so far)\n' \
        "$(($(git_requests "$work/git-server" demo.git) - git_before))" \
        "$(($(s3_requests "$work/moto.log" demo) - s3_before))" \
        "$(s3_requests "$work/moto.log" demo PUT)"
}

run_mirror "first mirror"

log "what the bucket holds"
python3 - "$MOTO_ENDPOINT" <<'PY'
import sys

import boto3

s3 = boto3.client("s3", endpoint_url=sys.argv[1])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="demo"):
    for obj in page.get("Contents", []):
        print(f"    {obj['Size']:>10}  {obj['Key']}")
PY

log "git clone $clone_url (dumb HTTP, no credentials)"
git clone --quiet "$clone_url" "$work/clone"
git -C "$work/clone" log --graph --oneline --decorate --all | sed 's/^/    /'
log "branches and tags as the mirror advertises them (git ls-remote)"
git ls-remote "$clone_url" | sed 's/^/    /'
log "checked out: $(git -C "$work/clone" symbolic-ref HEAD) ($(git -C "$work/clone" ls-files | wc -l) files)"
git -C "$work/clone" fsck --full --strict --no-dangling && log "git fsck --full --strict: clean"

source_refs=$(git -C "$work/repos/demo.git" for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags)
mirror_refs=$(git ls-remote --refs "$clone_url" 'refs/heads/*' 'refs/tags/*' | tr '\t' ' ')
if [ "$source_refs" = "$mirror_refs" ]; then
    log "the mirror's branches and tags equal the source's"
else
    diff <(printf '%s\n' "$source_refs") <(printf '%s\n' "$mirror_refs") || true
    die "the mirror's refs differ from the source's"
fi

run_mirror "second mirror, nothing changed upstream"

log "adding a commit upstream"
git clone --quiet "$work/repos/demo.git" "$work/upstream"
echo "a change made after the first mirror" >"$work/upstream/CHANGES.txt"
git -C "$work/upstream" add CHANGES.txt
git -C "$work/upstream" -c user.name=Demo -c user.email=demo@example.com commit --quiet -m "Record a change"
git -C "$work/upstream" push --quiet origin HEAD
run_mirror "third mirror, one new commit"

log "git fetch in the earlier clone"
git -C "$work/clone" fetch
git -C "$work/clone" log --oneline -1 origin/trunk | sed 's/^/    /'
log "demo finished; everything it started is stopped and its files removed"
