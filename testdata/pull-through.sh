#!/usr/bin/env bash
# pull-through.sh OUT_DIR: builds a REAL pull-through cache layout in OUT_DIR with Debian's
# docker-registry 2.8 and skopeo (no network: everything runs on 127.0.0.1). Not committed: tests
# run it at runtime (it takes a few seconds).
#
#   - an upstream `docker-registry serve` (read-only) over a copy of registries/sample.tar,
#     unpacked into a temporary directory;
#   - the cache: a second `docker-registry serve` with `proxy: {remoteurl: <upstream>}` and the
#     empty filesystem root OUT_DIR (delete not enabled, upload purging off);
#   - through the cache: `skopeo inspect --raw` of alpine-mini:3.19 (the manifest is cached, its
#     blobs are not), `skopeo copy` of busybox-oci:1.1 to an oci: layout (config and layers are
#     fetched and cached too), `skopeo copy --all` of multi/oci-index:latest (the index, both
#     children and their blobs);
#   - the cache stores blobs asynchronously (after it has served them) and writes its
#     scheduler-state.json every 5 s: the script waits until every blob served is on disk, no
#     upload is left, and the state file names every manifest and blob cached; then it stops both
#     registries.
#
# OUT_DIR (absent or empty) then holds docker/registry/v2/... and scheduler-state.json written by
# the cache, and config.yml: the cache's configuration (rootdirectory OUT_DIR), for a later
# `docker-registry serve` or `docker-registry garbage-collect` on it (its http.addr and
# proxy.remoteurl name ports that were free during the run; REGISTRY_HTTP_ADDR overrides the
# first).
#
# Stdout: one line per tag pulled through the cache, REPO:TAG:DIGEST (the digest of the manifest
# the cache served, checked against the upstream's). Everything else goes to stderr.
#
#   apt-get install docker-registry skopeo
#   bash testdata/pull-through.sh /tmp/cache
set -euo pipefail
umask 022
export LC_ALL=C
name=pull-through.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "$name: $*" >&2; exit 1; }
log() { echo "$name: $*" >&2; }

[ "$#" -eq 1 ] || die "usage: $name OUT_DIR (absent or empty)"
mkdir -p "$1"
cache_root="$(cd "$1" && pwd)"
[ -z "$(ls -A "$cache_root")" ] || die "$cache_root is not empty"
for cmd in docker-registry skopeo curl python3 tar; do
  command -v "$cmd" >/dev/null 2>&1 || die "missing: $cmd (apt-get install docker-registry skopeo curl python3)"
done
sample="$here/registries/sample.tar"
[ -f "$sample" ] || die "missing $sample"

work="$(mktemp -d "${TMPDIR:-/tmp}/regfsck-pull-through.XXXXXX")"
up_pid=""
cache_pid=""
stop() { # stop PID: ends a registry this script started
  if [ -n "$1" ]; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  stop "$cache_pid"
  stop "$up_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- the upstream: a read-only registry over a copy of sample.tar ------------------------------
mkdir -p "$work/upstream"
tar -xf "$sample" -C "$work/upstream"
read -r up_port cache_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
up="127.0.0.1:$up_port"
cache="127.0.0.1:$cache_port"
cat > "$work/upstream.yml" <<CFG
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/upstream
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
http:
  addr: $up
CFG
# --- the cache: a pull-through cache of the upstream, on the empty root OUT_DIR -----------------
cat > "$work/config.yml" <<CFG
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $cache_root
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $cache
proxy:
  remoteurl: http://$up
CFG

# serve NAME CONFIG ADDR PIDVAR: starts a registry (its pid in the variable PIDVAR, so that cleanup
# stops it) and waits until it answers
serve() {
  local pid
  docker-registry serve "$2" >"$work/$1.log" 2>&1 &
  pid=$!
  printf -v "$4" '%s' "$pid"
  for _ in $(seq 150); do
    curl -sf "http://$3/v2/" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  curl -sf "http://$3/v2/" >/dev/null || { cat "$work/$1.log" >&2; die "the $1 registry did not start"; }
}
serve upstream "$work/upstream.yml" "$up" up_pid
serve cache "$work/config.yml" "$cache" cache_pid
log "upstream on $up (a copy of sample.tar), cache on $cache (root $cache_root)"

accept="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json"
# upstream_digest REPO TAG: Docker-Content-Digest of HEAD on the upstream (not through the cache)
upstream_digest() {
  curl -sfI -H "Accept: $accept" "http://$up/v2/$1/manifests/$2" | tr -d '\r' \
    | awk 'tolower($1) == "docker-content-digest:" {print $2}'
}
# served REPO TAG DIGEST: prints the stdout line, after checking DIGEST against the upstream
served() {
  local want
  want="$(upstream_digest "$1" "$2")"
  [ "$3" = "$want" ] || die "$1:$2: the cache served $3, the upstream has $want"
  echo "$1:$2:$3"
}

# --- pulls through the cache -----------------------------------------------------------------
# 1. the manifest only
skopeo inspect --raw --tls-verify=false "docker://$cache/alpine-mini:3.19" > "$work/inspect.json"
served alpine-mini 3.19 "sha256:$(sha256sum "$work/inspect.json" | cut -d' ' -f1)"
# 2. an image: manifest, config, layers
skopeo copy -q --src-tls-verify=false --digestfile "$work/busybox.digest" \
  "docker://$cache/busybox-oci:1.1" "oci:$work/busybox:1.1"
served busybox-oci 1.1 "$(cat "$work/busybox.digest")"
# 3. a multi-arch index with its children (skopeo --all keeps the index as is)
skopeo copy -q --all --src-tls-verify=false --digestfile "$work/multi.digest" \
  "docker://$cache/multi/oci-index:latest" "oci:$work/multi:latest"
served multi/oci-index latest "$(cat "$work/multi.digest")"

# --- wait for the cache's asynchronous writes ------------------------------------------------
# Expected: every blob skopeo received (config and layers, from the oci: layouts) stored under
# blobs/ with the right bytes, no upload left in any _uploads/, and scheduler-state.json naming
# each manifest and blob cached (the scheduler saves it every 5 s).
python3 - "$work/busybox" "$work/multi" > "$work/expected" <<'PY'
import json, os, sys
manifest_types = {"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json"}
# "manifest DIGEST" / "blob DIGEST" for everything reachable from each layout's index.json
seen = set()
def walk(layout, desc):
    d = desc["digest"]
    kind = "manifest" if desc.get("mediaType") in manifest_types else "blob"
    if (kind, d) in seen:
        return
    seen.add((kind, d))
    if kind == "manifest":
        m = json.load(open(os.path.join(layout, "blobs", *d.split(":", 1))))
        for c in m.get("manifests", []) + ([m["config"]] if "config" in m else []) + m.get("layers", []):
            walk(layout, c)
for layout in sys.argv[1:]:
    for desc in json.load(open(os.path.join(layout, "index.json")))["manifests"]:
        walk(layout, desc)
for kind, d in sorted(seen):
    print(kind, d)
PY
v2="$cache_root/docker/registry/v2"
settled() {
  python3 - "$v2" "$cache_root/scheduler-state.json" "$work/expected" <<'PY'
import glob, hashlib, json, os, sys
v2, state, expected = sys.argv[1:]
missing = []
for line in open(expected):
    kind, d = line.split()
    algo, hexd = d.split(":", 1)
    data = os.path.join(v2, "blobs", algo, hexd[:2], hexd, "data")
    if not os.path.isfile(data) or hashlib.new(algo, open(data, "rb").read()).hexdigest() != hexd:
        missing.append("blob data " + d)
if glob.glob(os.path.join(v2, "repositories", "**", "_uploads", "*"), recursive=True):
    missing.append("an unfinished upload")
keys = set()
if os.path.isfile(state):
    try:
        keys = {k.rsplit("@", 1)[-1] for k in json.load(open(state))}
    except ValueError:
        pass
for line in open(expected):
    d = line.split()[1]
    if d not in keys:
        missing.append("scheduler entry " + d)
if missing:
    print("; ".join(missing))
    sys.exit(1)
PY
}
for _ in $(seq 200); do
  settled > "$work/settled" && break
  sleep 0.1
done
settled > "$work/settled" || die "the cache did not settle: $(cat "$work/settled")"
# and nothing changes any more
snapshot() { (cd "$cache_root" && find . -printf '%y %s %T@ %p\n' | sort); }
before="$(snapshot)"
sleep 0.5
[ "$before" = "$(snapshot)" ] || die "the cache is still writing"

# The cache's catalog lists only repositories with _layers (alpine-mini, whose blobs were never
# pulled, is not among them; nor does the registry's gc see it).
log "the cache's catalog: $(curl -sf "http://$cache/v2/_catalog" | tr -d '\n')"
stop "$cache_pid"; cache_pid=""
stop "$up_pid"; up_pid=""
cp "$work/config.yml" "$cache_root/config.yml"
if [ ! -d "$v2/repositories" ] || [ ! -f "$cache_root/scheduler-state.json" ]; then
  die "no cache layout in $cache_root"
fi
log "cache layout in $cache_root: $(find "$v2/blobs" -name data | wc -l) blobs, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$cache_root/scheduler-state.json") scheduler entries"
