#!/usr/bin/env bash
# Benchmark of issue 10: mirror-git-to-s3 against `git clone --mirror` from the same loopback git smart-HTTP
# server (lighttpd + git http-backend), into a loopback S3 API server (moto), on generated repositories:
#   huge       >= BENCH_HUGE_OBJECTS objects (default 800,000), git.git's shape: a 120k-commit history, ~5,500
#              refs (5,000 refs/pull/*, 200 annotated tags), a ~1.5 MiB file with ~3,000 versions, delta chains
#              of depth 50, laid out and served as GitHub serves such a pack (bases far behind their deltas)
#   medium     >= BENCH_MEDIUM_OBJECTS objects (default 150,000), tokio's scale, same shape
#   largefile  one BENCH_LARGE_MIB MiB (default 1024) incompressible file in BENCH_LARGE_VERSIONS (default 3)
#              versions, each after the first stored as a delta against the one before
# and the extra cases
#   budget       huge mirrored once with --memory-budget BENCH_LOW_BUDGET (default 128)
#   local        huge mirrored once into a local directory (no S3)
#   incremental  medium: a no-op re-run, a one-commit update and a compaction of two packs into one
#   mappings     huge and BENCH_MAPPINGS_MEDIUMS (default 5) copies of medium mirrored by one CLI run with
#                --concurrency the machine's cores: its wall time against the mappings mirrored alone one after
#                the other, huge's time and the slowest medium's against their times alone (a mapping that
#                stalls another would take about the sum), the cores used (CPU / wall) and the whole machine's busy
#                cores over the run (the git server and moto included)
# For huge, medium and largefile, `git clone --mirror` and the mirror (default options, an empty prefix each
# time) run alternately BENCH_RUNS times each (default 3); the report gives medians and mirror/git ratios of
# wall time, CPU time (user + sys, children included), peak RSS, then the mirror's S3 requests (moto's log),
# MiB stored under the prefix (what was uploaded; a multipart pack is copied server-side, not uploaded twice),
# the time of a stock `git clone --mirror` of the mirror over dumb HTTP from moto, and whether its refs equal
# the source's. It also prints the delta locality of the pack git received (make_fixture locality).
# moto keeps objects in memory and is slow (~100 PUT/s, multipart ~7 MiB/s): compare ratios within one run, not
# absolute S3 speed. The machine's load average is printed at the start and the end: other work skews times.
#
# Knobs (environment):
#   BENCH_ONLY     cases to run, comma- or space-separated (default: huge,medium,largefile,budget,local,incremental,
#                  mappings)
#   BENCH_RUNS     timed runs of each tool per repository (default 3)
#   BENCH_SEED     generator seed (default 1)
#   BENCH_HUGE_OBJECTS, BENCH_MEDIUM_OBJECTS, BENCH_LARGE_MIB, BENCH_LARGE_VERSIONS, BENCH_LOW_BUDGET,
#   BENCH_MAPPINGS_MEDIUMS: see above
#   BENCH_CACHE    where generated repositories are kept between runs, one directory per generator version,
#                  seed and size (default ~/.cache/mirror-git-to-s3/bench); delete it to reclaim the disk
#   BENCH_TIMEOUT  seconds after which a measured run is stopped and reported as timed out (default 1800); after
#                  a mirror run times out, the repository's later mirror runs are skipped (git's still run), and
#                  so is the budget case when huge timed out at the default budget
#   BENCH_REPORT   the Markdown report written at the end (default target/bench/report.md)
#   MIRROR_BIN     measure that build of the CLI instead of building one; CARGO_PROFILE (default release) is the
#                  profile of what is built (the CLI and the make_fixture generator)
# The bench only prints: nothing in it asserts a time.
set -euo pipefail
# Command substitutions ($(cached_repo ...)) stop at a failure too.
shopt -s inherit_errexit
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_cleanup_trap
ensure_tools

only=${BENCH_ONLY:-huge,medium,largefile,budget,local,incremental,mappings}
runs=${BENCH_RUNS:-3}
seed=${BENCH_SEED:-1}
huge_objects=${BENCH_HUGE_OBJECTS:-800000}
medium_objects=${BENCH_MEDIUM_OBJECTS:-150000}
large_mib=${BENCH_LARGE_MIB:-1024}
large_versions=${BENCH_LARGE_VERSIONS:-3}
low_budget=${BENCH_LOW_BUDGET:-128}
mapping_mediums=${BENCH_MAPPINGS_MEDIUMS:-5}
cache=${BENCH_CACHE:-$HOME/.cache/mirror-git-to-s3/bench}
run_timeout=${BENCH_TIMEOUT:-1800}
report=${BENCH_REPORT:-$PROJECT_DIR/target/bench/report.md}

# wanted CASE: whether BENCH_ONLY names CASE.
wanted() {
    [[ ",${only// /,}," == *",$1,"* ]]
}

work=$(new_scratch_dir bench)
SCRATCH_PATHS+=("$work")
build_binaries
mirror=$MIRROR_BIN
make_fixture=$MAKE_FIXTURE_BIN
history_generator=$("$make_fixture" generator-version history)
large_file_generator=$("$make_fixture" generator-version large-file)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at the start: $load_start ($(nproc) cores)"

# cached_repo NAME KEY COMMAND...: prints the path of the cached bare repository NAME-KEY.git under BENCH_CACHE,
# generating it first with `make_fixture COMMAND... PATH` when it is not there (into a temporary name, renamed
# when complete, so an interrupted generation is never mistaken for a repository). Generation time goes to
# NAME-KEY.gen beside it and to the log.
cached_repo() {
    local name=$1 key=$2 path tmp start
    shift 2
    path=$cache/$name-$key.git
    if [ ! -d "$path" ]; then
        mkdir -p "$cache"
        tmp=$(mktemp -d "$cache/.$name-$key.XXXXXX")
        log "generating $name ($*), cached as $path"
        start=$SECONDS
        if ! "$make_fixture" "$@" "$tmp/repo.git" >&2; then
            rm -rf "$tmp"
            die "generating $name failed"
        fi
        printf 'generated in %d s with make_fixture %s (load average after: %s)\n' "$((SECONDS - start))" \
            "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$cache/$name-$key.gen"
        mv "$tmp/repo.git" "$path"
        rmdir "$tmp"
    fi
    log "$name: $path ($(cat "$cache/$name-$key.gen" 2>/dev/null || echo 'generation time unknown'))"
    printf '%s\n' "$path"
}

# The served root links to the cached repositories; nothing the bench does writes to them (the incremental
# case works on a copy that borrows their objects).
mkdir -p "$work/repos"
if wanted huge || wanted budget || wanted local || wanted mappings; then
    path=$(cached_repo huge "g$history_generator-s$seed-$huge_objects" history huge "$seed" "$huge_objects")
    ln -s "$path" "$work/repos/huge.git"
fi
if wanted medium || wanted incremental || wanted mappings; then
    path=$(cached_repo medium "g$history_generator-s$seed-$medium_objects" history medium "$seed" "$medium_objects")
    ln -s "$path" "$work/repos/medium.git"
fi
if wanted largefile; then
    path=$(cached_repo largefile "g$large_file_generator-s$seed-${large_mib}m$large_versions" \
        large-file "$seed" "$large_mib" "$large_versions")
    ln -s "$path" "$work/repos/largefile.git"
fi

start_git_server "$work/repos" "$work/git-server"
start_moto "$work/moto.log"

# measure NAME COMMAND...: runs COMMAND under GNU time, stopped after BENCH_TIMEOUT seconds (standard output
# in $work/NAME.out, standard error in $work/NAME.err); sets M_WALL (s), M_CPU (user + sys, s), M_RSS (MiB) and
# M_STATUS (ok, TIMEOUT or FAILED(status)).
measure() {
    local name=$1 status
    shift
    if /usr/bin/time -v -o "$work/$name.time" timeout "$run_timeout" "$@" >"$work/$name.out" 2>"$work/$name.err"
    then
        M_STATUS=ok
    else
        status=$?
        M_STATUS="FAILED($status)"
        if [ "$status" = 124 ]; then
            M_STATUS=TIMEOUT
        fi
        tail -n 5 "$work/$name.err" | sed 's/^/    /' >&2
    fi
    M_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$name.time" |
        awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.1f", s}')
    M_CPU=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$work/$name.time")
    M_RSS=$(awk '/Maximum resident set size/ {printf "%.0f", $NF / 1024}' "$work/$name.time")
}

# machine_jiffies: the machine's busy and total CPU time so far (clock ticks of all cores, from /proc/stat; idle and
# I/O wait are not busy).
machine_jiffies() {
    awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}

# s3_prefix ACTION BUCKET PREFIX: `bytes` prints the bytes stored under PREFIX in BUCKET; `delete` deletes
# them (moto keeps every object in memory, so each run's mirror is removed once measured).
s3_prefix() {
    python3 - "$MOTO_ENDPOINT" "$@" <<'PY'
import sys

import boto3

endpoint, action, bucket, prefix = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint)
keys, total = [], 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for obj in page.get("Contents", []):
        keys.append({"Key": obj["Key"]})
        total += obj["Size"]
if action == "bytes":
    print(total)
else:
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})
PY
}

# refs_of REPO: every ref of the bare REPO with its object id, sorted.
refs_of() {
    git -C "$1" for-each-ref --format='%(objectname) %(refname)' | sort
}

# median NUMBER...: the median (mean of the middle two for an even count), to one decimal without a trailing
# ".0"; "-" for none.
median() {
    if [ "$#" -eq 0 ]; then
        echo -
        return
    fi
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%g", int(m * 10 + 0.5) / 10 }'
}

# ratio A B: A / B to two decimals, or "-" when either is missing.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f×", a / b }'
}

# Results, keyed "REPO/TOOL/METRIC", each a space-separated list of the runs' values.
declare -A results=()
# record KEY VALUE: appends VALUE to results[KEY].
record() {
    results[$1]="${results[$1]:-} $2"
}
# med KEY: the median of results[KEY].
med() {
    # shellcheck disable=SC2086 # the list is split on purpose
    median ${results[$1]:-}
}

declare -A info=() locality=() dumb=() timed_out=()
table_rows=()
extra_rows=()
incremental_rows=()

# mirror_once REPO BUCKET PREFIX NAME ARGS...: one mirror run of REPO into s3://BUCKET/PREFIX (or, with
# PREFIX "-", wherever ARGS say), measured as NAME; sets M_* plus M_REQUESTS (S3 requests, moto's log) and
# M_STORED (MiB under the prefix).
mirror_once() {
    local repo=$1 bucket=$2 prefix=$3 name=$4 before
    shift 4
    before=$(s3_requests "$work/moto.log" "$bucket")
    if [ "$prefix" = - ]; then
        measure "$name" "$mirror" --source "$GIT_SERVER_URL/$repo.git" --json "$@"
    else
        measure "$name" "$mirror" --source "$GIT_SERVER_URL/$repo.git" --target "s3://$bucket/$prefix" \
            --endpoint-url "$MOTO_ENDPOINT" --json "$@"
    fi
    M_REQUESTS=$(($(s3_requests "$work/moto.log" "$bucket") - before))
    M_STORED=-
    if [ "$prefix" != - ]; then
        M_STORED=$(awk -v b="$(s3_prefix bytes "$bucket" "$prefix")" 'BEGIN {printf "%.1f", b / 1048576}')
    fi
}

# timed_case REPO: BENCH_RUNS alternating runs of `git clone --mirror` and the mirror on REPO, then a dumb
# clone of the first run's mirror; records everything under REPO/.
timed_case() {
    local repo=$1 source=$work/repos/$1.git bucket=bench-$1 run
    make_public_bucket "$MOTO_ENDPOINT" "$bucket"
    info[$repo]="$(git -C "$source" count-objects -v | awk '/^in-pack:/ {o = $2} /^size-pack:/ {p = $2}
        END {printf "%d objects, %.0f MiB pack", o, p / 1024}'), $(git -C "$source" for-each-ref | wc -l) refs"
    log "$repo: ${info[$repo]}"
    for run in $(seq "$runs"); do
        measure "$repo-git-$run" git clone --mirror --quiet "$GIT_SERVER_URL/$repo.git" "$work/$repo-git.git"
        log "$repo git clone --mirror #$run: $M_WALL s, CPU $M_CPU s, $M_RSS MiB, $M_STATUS"
        if [ "$M_STATUS" = ok ]; then
            record "$repo/git/wall" "$M_WALL"
            record "$repo/git/cpu" "$M_CPU"
            record "$repo/git/rss" "$M_RSS"
            if [ "$run" = 1 ] && [ "$repo" != largefile ]; then
                locality[$repo]=$("$make_fixture" locality "$work/$repo-git.git"/objects/pack/pack-*.pack)
                log "$repo: the pack git received: ${locality[$repo]}"
            fi
        fi
        rm -rf "$work/$repo-git.git"

        if [ -n "${timed_out[$repo]:-}" ]; then
            log "$repo mirror #$run: skipped (${timed_out[$repo]})"
            continue
        fi
        mirror_once "$repo" "$bucket" "run-$run" "$repo-mirror-$run"
        log "$repo mirror #$run: $M_WALL s, CPU $M_CPU s, $M_RSS MiB, $M_REQUESTS S3 requests, $M_STORED MiB, $M_STATUS"
        if [ "$M_STATUS" = ok ]; then
            record "$repo/mirror/wall" "$M_WALL"
            record "$repo/mirror/cpu" "$M_CPU"
            record "$repo/mirror/rss" "$M_RSS"
            record "$repo/mirror/requests" "$M_REQUESTS"
            record "$repo/mirror/stored" "$M_STORED"
        elif [ "$M_STATUS" = TIMEOUT ]; then
            timed_out[$repo]="run $run timed out after $run_timeout s, $M_REQUESTS S3 requests by then"
        fi
        if [ "$run" = 1 ] && [ "$M_STATUS" = ok ]; then
            measure "$repo-dumb" git clone --mirror --quiet "$MOTO_ENDPOINT/$bucket/run-1" "$work/$repo-dumb.git"
            dumb[$repo]="$M_WALL"
            if [ "$M_STATUS" != ok ]; then
                dumb[$repo]="$M_STATUS"
            elif [ "$(refs_of "$source")" = "$(refs_of "$work/$repo-dumb.git")" ]; then
                dumb[$repo]+=" | yes"
            else
                dumb[$repo]+=" | **no**"
            fi
            log "$repo dumb clone of the mirror: ${dumb[$repo]}"
            rm -rf "$work/$repo-dumb.git"
        fi
        # The incremental case continues from the medium repository's last mirror.
        if [ "$repo" != medium ] || [ "$run" != "$runs" ]; then
            s3_prefix delete "$bucket" "run-$run"
        fi
    done
    local w c r mirror_wall
    mirror_wall=$(med "$repo/mirror/wall")
    if [ -n "${timed_out[$repo]:-}" ]; then
        mirror_wall+=" (${timed_out[$repo]})"
    fi
    w=$(ratio "$(med "$repo/mirror/wall")" "$(med "$repo/git/wall")")
    c=$(ratio "$(med "$repo/mirror/cpu")" "$(med "$repo/git/cpu")")
    r=$(ratio "$(med "$repo/mirror/rss")" "$(med "$repo/git/rss")")
    table_rows+=("| $repo (${info[$repo]}) | $mirror_wall | $(med "$repo/git/wall") | **$w** \
| $(med "$repo/mirror/cpu") | $(med "$repo/git/cpu") | $c | $(med "$repo/mirror/rss") | $(med "$repo/git/rss") | $r \
| $(med "$repo/mirror/requests") | $(med "$repo/mirror/stored") | ${dumb[$repo]:-- | -} |")
}

for repo in huge medium largefile; do
    if wanted "$repo"; then
        timed_case "$repo"
    fi
done

if wanted budget && [ -n "${timed_out[huge]:-}" ]; then
    extra_rows+=("| huge, \`--memory-budget $low_budget\` \
| not run: at the default budget huge ${timed_out[huge]} | | | | | | |")
elif wanted budget; then
    make_public_bucket "$MOTO_ENDPOINT" bench-budget
    mirror_once huge bench-budget budget huge-budget --memory-budget "$low_budget"
    log "huge at --memory-budget $low_budget: $M_WALL s, CPU $M_CPU s, $M_RSS MiB, $M_REQUESTS S3 requests, $M_STATUS"
    objects=$(git -C "$work/repos/huge.git" count-objects -v | awk '/^in-pack:/ {print $2}')
    per_object=$(awk -v rss="$M_RSS" -v b="$low_budget" -v n="$objects" 'BEGIN {x = (rss - b) * 1048576 / n
        if (x > 0) printf "(peak RSS − budget) / objects ≈ %.0f bytes, rough", x
        else printf "peak RSS within the budget"}')
    extra_rows+=("| huge, \`--memory-budget $low_budget\` | $M_WALL | $(ratio "$M_WALL" "$(med huge/git/wall)") \
| $M_CPU | $M_RSS | $M_REQUESTS | $M_STORED | $M_STATUS; $per_object |")
    s3_prefix delete bench-budget budget
fi

if wanted local; then
    mirror_once huge bench-local - huge-local --target "$work/local-huge"
    log "huge into a local directory: $M_WALL s, CPU $M_CPU s, $M_RSS MiB, $M_STATUS"
    extra_rows+=("| huge, into a local directory | $M_WALL | $(ratio "$M_WALL" "$(med huge/git/wall)") | $M_CPU \
| $M_RSS | - | $(du -sm "$work/local-huge" | cut -f1) | $M_STATUS |")
    rm -rf "$work/local-huge"
fi

if wanted mappings; then
    make_public_bucket "$MOTO_ENDPOINT" bench-mappings
    before=$(s3_requests "$work/moto.log" bench-mappings)
    # The copies of medium are further names of the same served repository.
    pairs=(--source "$GIT_SERVER_URL/huge.git" --target s3://bench-mappings/huge)
    for i in $(seq 1 "$mapping_mediums"); do
        ln -sfn "$(readlink "$work/repos/medium.git")" "$work/repos/medium-$i.git"
        pairs+=(--source "$GIT_SERVER_URL/medium-$i.git" --target "s3://bench-mappings/medium-$i")
    done
    machine_before=$(machine_jiffies)
    measure mappings "$mirror" "${pairs[@]}" --endpoint-url "$MOTO_ENDPOINT" --json --concurrency "$(nproc)"
    # The whole machine's busy cores over the run: the mirror's, and the servers' (git, moto) beside it.
    machine=$(awk -v b="$machine_before" -v a="$(machine_jiffies)" -v n="$(nproc)" 'BEGIN {
        split(b, x, " "); split(a, y, " "); t = y[2] - x[2];
        if (t > 0) printf "%.2f", (y[1] - x[1]) / t * n; else print "-" }')
    requests=$(($(s3_requests "$work/moto.log" bench-mappings) - before))
    # Each mapping's own time, from the run's JSON report (in the order given): huge's, then the slowest medium's.
    read -r huge_s medium_s < <(python3 -c 'import json, sys
times = [r["duration_ms"] / 1000 for r in json.load(open(sys.argv[1]))]
print("%.1f %.1f" % (times[0], max(times[1:])))' "$work/mappings.out" || echo "- -")
    alone=$(awk -v a="$(med huge/mirror/wall)" -v b="$(med medium/mirror/wall)" -v n="$mapping_mediums" \
        'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.1f", a + n * b }')
    cores=$(awk -v c="$M_CPU" -v w="$M_WALL" 'BEGIN { if (w > 0) printf "%.2f", c / w; else print "-" }')
    log "huge and $mapping_mediums mediums in one run: $M_WALL s (huge $huge_s s, slowest medium $medium_s s)," \
        "CPU $M_CPU s ($cores cores; the machine: $machine of $(nproc) cores busy), $M_RSS MiB," \
        "$requests S3 requests, $M_STATUS"
    extra_rows+=("| huge and $mapping_mediums copies of medium in one run, \`--concurrency $(nproc)\` | $M_WALL \
| $(ratio "$M_WALL" "$alone") of the mappings alone ($alone s) | $M_CPU ($cores cores; the machine's busy cores, \
servers included: $machine of $(nproc)) | $M_RSS | $requests | - \
| $M_STATUS; huge took $huge_s s (alone: $(med huge/mirror/wall)), the slowest medium $medium_s s (alone: \
$(med medium/mirror/wall)) |")
    s3_prefix delete bench-mappings huge
    for i in $(seq 1 "$mapping_mediums"); do
        s3_prefix delete bench-mappings "medium-$i"
    done
fi

if [ -n "${results[huge/mirror/rss]:-}" ] && [ -n "${results[medium/mirror/rss]:-}" ]; then
    marginal=$(awk -v a="$(med huge/mirror/rss)" -v b="$(med medium/mirror/rss)" \
        -v na="$(git -C "$work/repos/huge.git" count-objects -v | awk '/^in-pack:/ {print $2}')" \
        -v nb="$(git -C "$work/repos/medium.git" count-objects -v | awk '/^in-pack:/ {print $2}')" \
        'BEGIN {printf "%.0f", (a - b) * 1048576 / (na - nb)}')
    extra_rows+=("| per-object memory, rough: (peak RSS huge − medium) / (objects huge − medium) | | | | | | | \
≈ $marginal bytes per object (includes whatever else grows with the pack) |")
fi

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

if wanted incremental; then
    # A copy of medium that borrows its objects (the cached repository stays untouched), mirrored into the
    # prefix of medium's last timed run (or a first mirror when medium was not timed).
    copy=$work/repos/medium-inc.git
    git init --quiet --bare "$copy"
    (cd "$work/repos/medium.git/objects" && pwd -P) >"$copy/objects/info/alternates"
    cp "$work/repos/medium.git/packed-refs" "$work/repos/medium.git/HEAD" "$copy/"
    cp -R "$work/repos/medium.git/refs" "$copy/"
    bucket=bench-medium
    prefix=run-$runs
    if ! wanted medium; then
        make_public_bucket "$MOTO_ENDPOINT" "$bucket"
        mirror_once medium-inc "$bucket" "$prefix" inc-first
        incremental_rows+=("| first mirror | $M_WALL | $M_REQUESTS | $M_STATUS |")
    fi
    mirror_once medium-inc "$bucket" "$prefix" inc-noop
    incremental_rows+=("| nothing changed | $M_WALL | $M_REQUESTS | $M_STATUS |")
    add_commit "$copy"
    mirror_once medium-inc "$bucket" "$prefix" inc-one-commit
    incremental_rows+=("| one new commit | $M_WALL | $M_REQUESTS | $M_STATUS |")
    # The list now has 2 packs: with a threshold of 2 the next change compacts them into one.
    add_commit "$copy"
    mirror_once medium-inc "$bucket" "$prefix" inc-compaction --compaction-threshold 2
    incremental_rows+=("| compaction of 2 packs | $M_WALL | $M_REQUESTS | $M_STATUS |")
    s3_prefix delete "$bucket" "$prefix"
fi

# table HEADER ROW...: a Markdown table after a blank line (HEADER, its separator, the ROWs); nothing without
# rows.
table() {
    local header=$1
    shift
    if [ "$#" -gt 0 ]; then
        printf '\n%s\n' "$header"
        awk -F'|' '{s = "|"; for (i = 2; i < NF; i++) s = s "---|"; print s}' <<<"$header"
        printf '%s\n' "$@"
    fi
}

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$(dirname "$report")"
{
    echo "Benchmark of $(git -C "$PROJECT_DIR" describe --always --dirty) ($(git --version), $(nproc) cores, load" \
        "average $load_start at the start, $load_end at the end; $runs runs each, medians; generators" \
        "g$history_generator and g$large_file_generator, seed $seed)."
    table "| repository | mirror s | git s | ratio | mirror CPU s | git CPU s | ratio | mirror MiB | git MiB | ratio \
| S3 requests | MiB uploaded | dumb clone s | refs equal |" "${table_rows[@]}"
    table "| one run | mirror s | ratio to git | CPU s | peak MiB | S3 requests | MiB stored | status |" \
        "${extra_rows[@]}"
    table "| medium, incremental | mirror s | S3 requests | status |" "${incremental_rows[@]}"
    if [ "${#locality[@]}" -gt 0 ]; then
        echo
        for repo in "${!locality[@]}"; do
            echo "- Delta locality of the $repo pack as served: ${locality[$repo]}."
        done
    fi
} >"$report"
echo
cat "$report"
log "report saved to $report"
