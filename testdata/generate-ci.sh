#!/usr/bin/env bash
# Regenerates testdata/registries/ci.* with the REAL registry (Debian's docker-registry 2.8),
# skopeo and umoci: the fixture for `regfsck prune` (retention policies). Like generate.sh there is
# no network: every image is built here with umoci from small, deterministic files (fixed
# timestamps, so image digests are the same on every run), pushed with skopeo, then the registry's
# own view (catalog, tags, digests) and its garbage-collect dry runs are recorded next to the
# packed layout.
#
#   apt-get install docker-registry skopeo umoci     # or: bash scripts/install-deps.sh
#   bash testdata/generate-ci.sh
#
# Content: ci/app (CI tags 20221007.1_1 .. 20221007.1_12, latest = _12, stable = _9), ci/lib
# (semver tags pushed out of order, latest = 1.10.1, Docker schema 2), ci/multi (OCI image indexes
# build-1 .. build-5, latest = build-5) and other/keep (a, b).
#
# PUSH TIMES, the only thing in ci.tar not written by the registry itself: prune orders tags by
# the mtime of their link files, and a generator runs in seconds, so pushes "days apart" are
# simulated. Before and after each push the tree is listed (path, type, mtime); then
#   - every entry that appeared during the push (tag current/link and index/sha256/<hex>/link,
#     new revision links, new blob data files, new _layers links, new directories) gets the push's
#     fixed time, with `touch -h -d @EPOCH`;
#   - every directory whose mtime changed (an entry was added or removed in it) gets that time too;
#   - every existing file the registry rewrote with the same content (it rewrites the revision link
#     of a manifest PUT again, e.g. when `latest` is pushed onto an existing build) gets its
#     previous time back, so a revision link keeps the time of the push that created it.
# Times: ci/app build k at 2026-10-01T00:00:00Z + k days, ci/lib at 2026-09-01 + k days (k-th push),
# ci/multi build-k at 2026-10-20 + k days, other/keep a/b at 2026-08-01 / 2026-08-02, and latest /
# stable 1 hour after the push they alias. Pushes are made in that chronological order (stable right
# after build 9), so directory mtimes stay consistent too. Every mtime in the tree is then one of
# these times (checked), so ci.tar is byte-identical on every run.
#
# Outputs (testdata/registries/): ci.tar ci.tree ci.ls ci.catalog ci.pushed ci.gc-dry-run.txt
# ci.gc-dry-run-m.txt (and ci.gc-dry-run*.stderr.txt only if a gc dry run exits non-zero).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/registries"
name=generate-ci.sh
# shellcheck source=testdata/lib.sh
. "$here/lib.sh"

app_builds=(1 2 3 4 5 6 7 8 9 10 11 12)
lib_versions=(1.2.0 1.10.0 1.9.0 1.10.0-rc.1 2.0.0-beta.1 0.9.0 1.10.1)   # push order
multi_builds=(1 2 3 4 5)
img keep-a "other/keep:a"
img keep-b "other/keep:b"
for v in "${lib_versions[@]}"; do img "lib-$v" "ci/lib $v"; done
for k in "${app_builds[@]}"; do img "app-$k" "ci/app CI build 20221007.1_$k"; done
for k in "${multi_builds[@]}"; do
  img "multi-$k-amd64" "ci/multi build-$k linux/amd64" amd64
  img "multi-$k-arm64" "ci/multi build-$k linux/arm64" arm64
done

multi_index=()
for k in "${multi_builds[@]}"; do
  multi_index[k]="$(oci_index "multi-$k" "multi-$k-amd64" "multi-$k-arm64")"
done

# --- simulated push times --------------------------------------------------------------------
# snap: every entry under the root as "PATH TYPE MTIME", sorted by path (registry paths have no
# blanks)
snap() { (cd "$root" && find . -printf '%p %y %T@\n' | sort); }
epoch() { date -u -d "$1" +%s; }
rfc3339() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
: > "$work/pushes"     # the per-push record: "EPOCH REPO:TAG new|dir|restored PATH"
: > "$work/expected"   # "REPO TAG EPOCH", one line per tag push
# timed_push EPOCH REPO TAG SKOPEO-ARGS...: push (the last skopeo argument is the source), then
# give every entry the push created or changed its simulated time, as described in the header.
timed_push() {
  local t="$1" repo="$2" tag="$3" cur
  shift 3
  snap > "$work/before"
  push "$@" "docker://$reg/$repo:$tag"
  snap > "$work/after"
  awk -v t="$t" -v ref="$repo:$tag" '
    NR == FNR { type[$1] = $2; mtime[$1] = $3; next }
    !($1 in type)                       { print t, ref, "new", $1; next }
    $3 != mtime[$1] && $2 == "d"        { print t, ref, "dir", $1; next }
    $3 != mtime[$1]                     { print mtime[$1], ref, "restored", $1 }
  ' "$work/before" "$work/after" > "$work/push"
  # group by time, so touch runs once per distinct time
  awk '{print $1}' "$work/push" | sort -u | while read -r when; do
    awk -v w="$when" '$1 == w {print $4}' "$work/push" | (cd "$root" && xargs -r touch -h -d "@$when")
  done
  cat "$work/push" >> "$work/pushes"
  cur="./docker/registry/v2/repositories/$repo/_manifests/tags/$tag/current/link"
  grep -qxF "$t $repo:$tag new $cur" "$work/push" || die "$repo:$tag: its current/link was not created by the push"
  echo "$repo $tag $t" >> "$work/expected"
  log "pushed $repo:$tag at $(rfc3339 "$t"): $(grep -c ' new ' "$work/push") new, $(grep -c ' dir ' "$work/push") directories changed, $(grep -c ' restored ' "$work/push") rewritten files restored"
}
hour=3600
day=86400

# --- pushes, in chronological order of their simulated times ---------------------------------
# other/keep: two simple OCI images (a policy glob can exclude this repository).
timed_push "$(epoch 2026-08-01T00:00:00Z)" other/keep a "oci:$oci:keep-a"
timed_push "$(epoch 2026-08-02T00:00:00Z)" other/keep b "oci:$oci:keep-b"

# ci/lib: semver tags pushed out of order (Docker schema 2), then latest = the last one (1.10.1).
t0="$(epoch 2026-09-01T00:00:00Z)"
k=0
for v in "${lib_versions[@]}"; do
  k=$((k + 1))
  t=$((t0 + k * day))
  timed_push "$t" ci/lib "$v" --format v2s2 "oci:$oci:lib-$v"
done
timed_push $((t + hour)) ci/lib latest --format v2s2 "oci:$oci:lib-1.10.1"
[ "$(digest_of ci/lib latest)" = "$(digest_of ci/lib 1.10.1)" ] || die "ci/lib:latest is not ci/lib:1.10.1"

# ci/app: the CI series 20221007.1_1 .. _12 (OCI), stable = _9 (pushed an hour after it), and
# latest = _12 (an hour after it).
t0="$(epoch 2026-10-01T00:00:00Z)"
for k in "${app_builds[@]}"; do
  t=$((t0 + k * day))
  timed_push "$t" ci/app "20221007.1_$k" "oci:$oci:app-$k"
  if [ "$k" = 9 ]; then
    timed_push $((t + hour)) ci/app stable "oci:$oci:app-9"
  fi
done
timed_push $((t + hour)) ci/app latest "oci:$oci:app-12"
app_latest="$(digest_of ci/app latest)"
app_12="$(digest_of ci/app 20221007.1_12)"
[ -n "$app_latest" ] || die "HEAD ci/app:latest gave no digest"
[ "$app_latest" = "$app_12" ] || die "ci/app:latest ($app_latest) is not ci/app:20221007.1_12 ($app_12)"
[ "$(digest_of ci/app stable)" = "$(digest_of ci/app 20221007.1_9)" ] || die "ci/app:stable is not ci/app:20221007.1_9"

# ci/multi: OCI image indexes with amd64 and arm64 children (skopeo --all keeps the index as is),
# latest = build-5.
t0="$(epoch 2026-10-20T00:00:00Z)"
for k in "${multi_builds[@]}"; do
  t=$((t0 + k * day))
  timed_push "$t" ci/multi "build-$k" --all "oci:$oci:multi-$k"
  [ "$(digest_of ci/multi "build-$k")" = "${multi_index[k]}" ] || die "ci/multi:build-$k is not the index pushed (${multi_index[k]})"
done
timed_push $((t + hour)) ci/multi latest --all "oci:$oci:multi-5"
[ "$(digest_of ci/multi latest)" = "${multi_index[5]}" ] || die "ci/multi:latest is not build-5 (${multi_index[5]})"

# --- the registry's own view ----------------------------------------------------------------
record_view ci

# --- push times: ci.pushed, checked against what was pushed ----------------------------------
(cd "$root" && find docker/registry/v2/repositories -path '*/_manifests/tags/*/current/link' -printf '%p %T@\n') \
  | sed -e 's|^docker/registry/v2/repositories/||' -e 's|/_manifests/tags/| |' -e 's|/current/link | |' \
  | while read -r repo tag t; do echo "$repo $tag $(rfc3339 "${t%.*}")"; done | sort > "$out/ci.pushed"
while read -r repo tag t; do echo "$repo $tag $(rfc3339 "$t")"; done < "$work/expected" | sort > "$work/expected.pushed"
diff -u "$work/expected.pushed" "$out/ci.pushed" >&2 || die "ci.pushed does not match the simulated push times"
diff -u <(cut -d: -f1,2 "$out/ci.ls" | tr : ' ' | sort) <(cut -d' ' -f1,2 "$out/ci.pushed" | sort) >&2 \
  || die "the registry's tags (ci.ls) are not the tags pushed (ci.pushed)"
# Every mtime in the tree must be a simulated one (so ci.tar is the same on every run).
awk '$3 != "restored" {print $1}' "$work/pushes" | sort -u > "$work/times"
(cd "$root" && find docker -printf '%T@ %p\n') \
  | awk 'NR == FNR {ok[$1] = 1; next} {t = $1; sub(/\.0+$/, "", t)} !(t in ok)' "$work/times" - > "$work/stray"
[ ! -s "$work/stray" ] || { cat "$work/stray" >&2; die "entries with an mtime that is not a simulated push time"; }

# --- the registry's gc dry runs, the layout --------------------------------------------------
gc_dry_runs ci
pack ci
# tar keeps the simulated times: compare the current links' times as tar lists them.
tar tvf "$out/ci.tar" --full-time --utc | awk '$6 ~ /\/_manifests\/tags\/.*\/current\/link$/ {print $6, $4 "T" $5 "Z"}' \
  | sed -e 's|^docker/registry/v2/repositories/||' -e 's|/_manifests/tags/| |' -e 's|/current/link | |' | sort > "$work/tar.pushed"
diff -u "$out/ci.pushed" "$work/tar.pushed" >&2 || die "ci.tar does not keep the push times"

cat >&2 <<EOF
generate-ci.sh: wrote $out/ci.{tar,tree,ls,catalog,pushed,gc-dry-run.txt,gc-dry-run-m.txt}
  ci/app:latest = ci/app:20221007.1_12 = $app_latest
  ci/multi:latest = build-5 = ${multi_index[5]}
  tags: $(wc -l < "$out/ci.ls"), rewritten files restored: $(grep -c ' restored ' "$work/pushes" || true)
  gc:    $(grep 'eligible for deletion$' "$out/ci.gc-dry-run.txt" || true)
  gc -m: $(grep 'eligible for deletion$' "$out/ci.gc-dry-run-m.txt" || true)
  ci.tar: $(wc -c < "$out/ci.tar") bytes
EOF
