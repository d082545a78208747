#!/usr/bin/env bash
# Writes the seed corpora (corpus/<target>/) from what real git produces for a small repository: its pack, its
# smart-HTTP advertisement and upload-pack response, its info/refs and objects/info/packs, a real delta, and a few
# ref names and URLs. Run again only to refresh them; the seeds are committed.
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
echo "seeds written to $c"
