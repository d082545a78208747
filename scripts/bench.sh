#!/usr/bin/env bash
# Benchmark: wall time, peak RSS and request counts of mirror-git-to-s3 against `git clone --mirror` from the
# same local git smart-HTTP server, on the tests' two large repository shapes:
#   big         >= BENCH_OBJECTS objects (default 50,000), delta chains, ~3,500 refs (mostly refs/pull/*)
#   big-binary  a BENCH_BINARY_MIB MiB (default 50) incompressible file in BENCH_BINARY_VERSIONS (default 3)
#               versions stored as deltas against the big base
# For each: `git clone --mirror` (smart HTTP), the first mirror into an empty prefix, a second mirror with
# nothing changed, one after a one-commit update, one that compacts the two packs into one, and a stock `git clone --mirror` of the result over dumb HTTP from moto (also checked against
# the source's refs). S3 requests are counted from moto's request log, git requests from the git server's.
# moto keeps objects in memory and is slow (~100 PUT/s): compare ratios and counts, not absolute S3 speed.
# BENCH_MEMORY_BUDGET (MiB) is passed as --memory-budget when set. MIRROR_BIN=path measures that build of the
# CLI instead of building one (CARGO_PROFILE, default release, also builds the fixture generator).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_cleanup_trap
ensure_tools

objects=${BENCH_OBJECTS:-50000}
binary_mib=${BENCH_BINARY_MIB:-50}
binary_versions=${BENCH_BINARY_VERSIONS:-3}
budget_args=()
if [ -n "${BENCH_MEMORY_BUDGET:-}" ]; then
    budget_args=(--memory-budget "$BENCH_MEMORY_BUDGET")
fi

work=$(new_scratch_dir bench)
SCRATCH_PATHS+=("$work")
build_binaries
mirror=$MIRROR_BIN
make_fixture=$MAKE_FIXTURE_BIN

mkdir -p "$work/repos"
log "generating big.git (>= $objects objects)"
"$make_fixture" big "$objects" "$work/repos/big.git"
log "generating big-binary.git ($binary_mib MiB x $binary_versions versions)"
"$make_fixture" big-binary "$binary_mib" "$binary_versions" "$work/repos/big-binary.git"

start_git_server "$work/repos" "$work/git-server"
start_moto "$work/moto.log"

# measure NAME COMMAND...: runs COMMAND under GNU time (output in $work/NAME.out); sets M_WALL (s), M_RSS (MiB)
# and M_STATUS.
measure() {
    local name=$1
    shift
    if /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>&1; then
        M_STATUS=ok
    else
        M_STATUS="FAILED($?)"
    fi
    M_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$name.time" |
        awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s}')
    M_RSS=$(awk '/Maximum resident set size/ {printf "%.1f", $NF / 1024}' "$work/$name.time")
}

rows=()
# row REPO RUN S3_TOTAL S3_PUT GIT_REQUESTS: records a table row from the last measure.
row() {
    rows+=("$(printf '%-11s %-22s %9s %10s %8s %8s %8s  %s' "$1" "$2" "$M_WALL" "$M_RSS" "$3" "$4" "$5" "$M_STATUS")")
}

# git_delta REPO BEFORE: git requests for REPO since the count was BEFORE.
git_delta() {
    echo $(($(git_requests "$work/git-server" "$1.git") - $2))
}

# add_commit REPO: one commit on the bare REPO's HEAD branch that adds a small file (git plumbing, no work tree).
add_commit() {
    local repo=$1 branch blob tree commit
    branch=$(git -C "$repo" symbolic-ref HEAD)
    blob=$(date +%s%N | git -C "$repo" hash-object -w --stdin)
    tree=$({
        git -C "$repo" ls-tree "$branch"
        printf '100644 blob %s\tbench-%s.txt\n' "$blob" "$blob"
    } | git -C "$repo" mktree)
    commit=$(echo "bench commit" | git -C "$repo" -c user.name=bench -c user.email=bench@example.com \
        commit-tree "$tree" -p "$branch")
    git -C "$repo" update-ref "$branch" "$commit"
}

for repo in big big-binary; do
    source_dir="$work/repos/$repo.git"
    source_url="$GIT_SERVER_URL/$repo.git"
    bucket="bench-$repo"
    make_public_bucket "$MOTO_ENDPOINT" "$bucket"
    count=$(git -C "$source_dir" count-objects -v | awk '/^in-pack:/ {print $2}')
    pack_kib=$(git -C "$source_dir" count-objects -v | awk '/^size-pack:/ {print $2}')
    refs=$(git -C "$source_dir" for-each-ref | wc -l)
    log "$repo: $count objects, $((pack_kib / 1024)) MiB pack, $refs refs"

    before=$(git_requests "$work/git-server" "$repo.git")
    measure "$repo-git-clone" git clone --mirror --quiet "$source_url" "$work/$repo-git-clone.git"
    row "$repo" "git clone --mirror" - - "$(git_delta "$repo" "$before")"

    # mirror_run RUN [ARGS...]: one mirror run into s3://$bucket/mirror, recorded as a row.
    mirror_run() {
        local run=$1
        shift
        before=$(git_requests "$work/git-server" "$repo.git")
        s3_before=$(s3_requests "$work/moto.log" "$bucket")
        put_before=$(s3_requests "$work/moto.log" "$bucket" PUT)
        measure "$repo-mirror-$run" "$mirror" --source "$source_url" --target "s3://$bucket/mirror" \
            --endpoint-url "$MOTO_ENDPOINT" "${budget_args[@]}" "$@"
        row "$repo" "mirror ($run)" \
            "$(($(s3_requests "$work/moto.log" "$bucket") - s3_before))" \
            "$(($(s3_requests "$work/moto.log" "$bucket" PUT) - put_before))" \
            "$(git_delta "$repo" "$before")"
        sed 's/^/    /' "$work/$repo-mirror-$run.out" | tail -n 5 >&2
    }
    mirror_run first
    mirror_run no-change
    add_commit "$source_dir"
    mirror_run one-commit
    # The list now has 2 packs: with a threshold of 2 the next change compacts them into one.
    add_commit "$source_dir"
    mirror_run compaction --compaction-threshold 2

    s3_before=$(s3_requests "$work/moto.log" "$bucket")
    measure "$repo-dumb-clone" git clone --mirror --quiet "$MOTO_ENDPOINT/$bucket/mirror" "$work/$repo-dumb.git"
    row "$repo" "dumb clone of mirror" "$(($(s3_requests "$work/moto.log" "$bucket") - s3_before))" - -
    if [ "$M_STATUS" = ok ]; then
        expected=$(git -C "$source_dir" for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags)
        actual=$(git -C "$work/$repo-dumb.git" for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags)
        if [ "$expected" != "$actual" ]; then
            rows[${#rows[@]} - 1]+=" (refs differ from the source!)"
        fi
    fi
done

printf '\n%-11s %-22s %9s %10s %8s %8s %8s  %s\n' repo run "wall s" "peak MiB" "S3 req" "S3 PUT" "git req" status
printf '%s\n' "${rows[@]}"
