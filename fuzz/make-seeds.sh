#!/usr/bin/env bash
# Writes the seed corpora (corpus/<target>/) from what real git produces for a small repository: its pack (also with
# REF deltas, and thin), its .idx, its smart-HTTP advertisement and upload-pack response, its info/refs,
# objects/info/packs and packed-refs, a real delta, and a few ref names, URLs, the sample Lambda events of events/
# and Retry-After values. Run again only to refresh them; the seeds are committed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_NOSYSTEM=1 HOME="$work" GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@example.com \
    GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@example.com GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' \
    GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'
git init -q -b main "$work/src"
cd "$work/src"
seq 1 400 > file.txt
git add file.txt && git commit -qm one
seq 1 420 | sed 's/^7$/seven/' > file.txt
git commit -qam two
git tag -a v1 -m "tag v1"
git branch feature
git clone -q --bare "$work/src" "$work/bare.git"
cd "$work/bare.git"
git repack -adq
git update-server-info

c="$here/corpus"
rm -rf "$c"
mkdir -p "$c"/{pktline,advertisement,response,pack,delta,layout,ref_name,redact}
mkdir -p "$c"/{resolve,idx,packed_refs,lambda_event,retry_after}
pack=$(ls objects/pack/*.pack)
cp "$pack" "$c/pack/repo.pack"
adv="$work/adv"
{ printf '001e# service=git-upload-pack\n0000'; git upload-pack --stateless-rpc --advertise-refs .; } > "$adv"
cp "$adv" "$c/advertisement/repo"
head=$(git rev-parse HEAD)
request=$(printf 'want %s side-band-64k ofs-delta no-progress\n' "$head")
resp="$work/resp"
{ printf '%04x%s' $((${#request} + 4)) "$request"; printf '00000009done\n'; } |
    git upload-pack --stateless-rpc . > "$resp"
cp "$resp" "$c/response/repo"
# pktline and response inputs start with a byte choosing the piece size.
{ printf '\x07'; cat "$adv"; } > "$c/pktline/advertisement"
{ printf '\x00'; cat "$resp"; } > "$c/pktline/response"
{ printf '\x0c'; cat "$resp"; } > "$c/response/in-pieces"
cp info/refs "$c/layout/info-refs"
cp objects/info/packs "$c/layout/packs"
# A hand-made delta (base length 4 as two bytes, the base, then: base size 4, result size 6, copy 4 bytes from
# offset 0, insert "!!"); the deltas git makes are inside repo.pack.
printf '\x04\x00base\x04\x06\x91\x00\x04\x02!!' > "$c/delta/copy-insert"
for name in refs/heads/main refs/tags/v1 'refs/heads/a..b' 'refs/heads/x.lock' 'refs/pull/1/head'; do
    printf '%s' "$name" > "$c/ref_name/$(printf '%s' "$name" | tr '/.' '__')"
done
printf '%s' 'https://oauth2:glpat-x@gitlab.example/g/p.git?private_token=y#frag' > "$c/redact/gitlab"
printf '%s' 'host:org/repo?access_token=z' > "$c/redact/scp-like"
# resolve: a byte choosing the limits (see src/lib.rs), then a pack without its trailer: roomy limits; objects
# streamed through a 16-byte limit with a retained-entry budget; a work limit the pack exceeds; an object size limit
# the pack exceeds (the first pass refuses it). Also a pack with REF deltas and a thin pack (a delta on a base it
# lacks).
without_trailer() { head -c $(($(stat -c %s "$1") - 20)) "$1"; }
{ printf '\x73'; without_trailer "$pack"; } > "$c/resolve/roomy"
{ printf '\x64'; without_trailer "$pack"; } > "$c/resolve/streamed"
{ printf '\x33'; without_trailer "$pack"; } > "$c/resolve/much-work"
{ printf '\x00'; without_trailer "$pack"; } > "$c/resolve/too-big"
git pack-objects --all --stdout -q < /dev/null > "$work/ref-delta.pack"
{ printf '\x73'; without_trailer "$work/ref-delta.pack"; } > "$c/resolve/ref-delta"
# (From the source repository, whose objects are loose: in the packed copy the old blob is a delta of the new.)
printf 'HEAD\n^HEAD~1\n' | git -C "$work/src" pack-objects --revs --thin --stdout -q > "$work/thin.pack"
{ printf '\x73'; without_trailer "$work/thin.pack"; } > "$c/resolve/thin"
cat objects/pack/*.idx > "$c/idx/repo.idx"
cp packed-refs "$c/packed_refs/clone"
(cd "$work/src" && git pack-refs --all && cp .git/packed-refs "$c/packed_refs/pack-refs")
for event in "$here"/../events/*.json; do
    sed -e 's#{{GIT_URL}}#https://git.example/r.git#g; s#{{GIT_URL_2}}#https://git.example/r2.git#g' \
        -e 's#{{GIT_MISSING_URL}}#http://127.0.0.1:8080/missing#g; s#{{S3_ENDPOINT}}#http://127.0.0.1:5000#g' \
        -e 's#{{S3_TARGET}}#s3://bucket/one#g; s#{{S3_TARGET_2}}#s3://bucket/two#g' \
        "$event" > "$c/lambda_event/$(basename "$event" .json)"
done
printf '%s' 'Sun, 06 Nov 1994 08:49:37 GMT' > "$c/retry_after/imf-fixdate"
printf '%s' 'Sunday, 06-Nov-94 08:49:37 GMT' > "$c/retry_after/rfc850"
printf '%s' 'Sun Nov  6 08:49:37 1994' > "$c/retry_after/asctime"
printf '%s' '120' > "$c/retry_after/seconds"
printf '%s' '184467440737095516160' > "$c/retry_after/huge"
echo "seeds written to $c"
