#!/usr/bin/env bash
# Regenerates testdata/registries/sample.* with the REAL registry (Debian's docker-registry 2.8),
# skopeo and umoci: images are built locally with umoci (no network), pushed with skopeo and curl,
# then the registry's own view (catalog, tags, digests) and its garbage-collect dry runs are
# recorded next to the packed layout.
#
#   apt-get install docker-registry skopeo umoci curl python3
#   bash testdata/generate.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/registries"
for cmd in docker-registry skopeo umoci curl python3; do
  command -v "$cmd" >/dev/null || { echo "missing: $cmd (apt-get install docker-registry skopeo umoci curl python3)" >&2; exit 1; }
done

work="$(mktemp -d)"
reg_pid=""
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

root="$work/root"
mkdir -p "$root"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$work/config.yml" <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $root
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
CFG
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
reg="127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "http://$reg/v2/" >/dev/null || { cat "$work/registry.log" >&2; exit 1; }

# --- images, built locally ---------------------------------------------------------------
oci="$work/oci"
umoci init --layout "$oci"
umoci new --image "$oci:empty"
printf 'shared base layer\n%.0s' $(seq 200) > "$work/base.txt"
umoci insert --image "$oci:empty" --tag base "$work/base.txt" /etc/base.txt
mk() { # mk TAG FROM CONTENT [ARCH]
  printf '%s\n' "$3" > "$work/$1.txt"
  umoci insert --image "$oci:$2" --tag "$1" "$work/$1.txt" "/app/$1.txt"
  if [ -n "${4:-}" ]; then umoci config --image "$oci:$1" --architecture "$4" --os linux; fi
}
mk alpine-v1 base "alpine mini one"
mk alpine-v2 base "alpine mini two"
mk busybox-10 base "busybox 1.0"
mk busybox-11 base "busybox 1.1"
mk app base "team app"
mk api base "team app api"
mk doomed base "this image is deleted through the API"
mk amd64 base "multi-arch amd64" amd64
mk arm64 base "multi-arch arm64" arm64

# A multi-arch OCI index over the amd64 and arm64 images, tagged "multi" in the OCI layout.
python3 - "$oci" <<'PY'
import hashlib, json, os, sys
oci = sys.argv[1]
idx_path = os.path.join(oci, "index.json")
idx = json.load(open(idx_path))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
children = []
for tag, arch in (("amd64", "amd64"), ("arm64", "arm64")):
    d = dict(by_tag[tag]); d.pop("annotations", None)
    d["platform"] = {"architecture": arch, "os": "linux"}
    children.append(d)
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": children}, separators=(",", ":")).encode()
h = hashlib.sha256(body).hexdigest()
open(os.path.join(oci, "blobs", "sha256", h), "wb").write(body)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                         "digest": "sha256:" + h, "size": len(body),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(idx_path, "w"))
PY

push() { skopeo copy -q --dest-tls-verify=false "$@"; }
push --format v2s2 "oci:$oci:alpine-v1" "docker://$reg/alpine-mini:latest"
push --format v2s2 "oci:$oci:alpine-v1" "docker://$reg/alpine-mini:3.18"
# Retag: latest moves to v2; the old revision stays, untagged except for 3.18... and then 3.18 too.
push --format v2s2 "oci:$oci:alpine-v2" "docker://$reg/alpine-mini:latest"
push --format v2s2 "oci:$oci:alpine-v2" "docker://$reg/alpine-mini:3.18"
push "oci:$oci:busybox-10" "docker://$reg/busybox-oci:1.0"
push "oci:$oci:busybox-11" "docker://$reg/busybox-oci:1.1"
push "oci:$oci:busybox-11" "docker://$reg/busybox-oci:latest"
push "oci:$oci:app" "docker://$reg/team/app:latest"
push "oci:$oci:app" "docker://$reg/team/app:v1"
push "oci:$oci:api" "docker://$reg/team/app/api:latest"
push --all "oci:$oci:multi" "docker://$reg/multi/oci-index:latest"
push --all --format v2s2 "oci:$oci:multi" "docker://$reg/multi/docker-list:latest"
push "oci:$oci:doomed" "docker://$reg/emptied:latest"

accept="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json"
digest_of() { # digest_of REPO REF
  curl -sfI -H "Accept: $accept" "http://$reg/v2/$1/manifests/$2" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

# Manifests deleted through the API: busybox-oci:1.0 (the repository keeps other tags) and the
# only manifest of "emptied".
curl -sf -X DELETE "http://$reg/v2/busybox-oci/manifests/$(digest_of busybox-oci 1.0)"
curl -sf -X DELETE "http://$reg/v2/emptied/manifests/$(digest_of emptied latest)"

# An OCI artifact (a signature-like referrer) whose subject is busybox-oci:1.1, pushed by digest.
subject="$(digest_of busybox-oci 1.1)"
upload() { # upload REPO FILE -> digest
  local d loc
  d="sha256:$(sha256sum "$2" | cut -d' ' -f1)"
  loc="$(curl -sfi -X POST "http://$reg/v2/$1/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')"
  case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc&digest=$d" >/dev/null
  echo "$d"
}
printf '{}' > "$work/empty.json"
printf 'signature of %s\n' "$subject" > "$work/sig.txt"
cfg="$(upload busybox-oci "$work/empty.json")"
sig="$(upload busybox-oci "$work/sig.txt")"
subject_size="$(curl -sf -H "Accept: $accept" "http://$reg/v2/busybox-oci/manifests/1.1" | wc -c)"
python3 - "$cfg" "$sig" "$(wc -c < "$work/sig.txt")" "$subject" "$subject_size" > "$work/artifact.json" <<'PY'
import json, sys
cfg, sig, sig_size, subject, subject_size = sys.argv[1:]
print(json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.example.signature.v1",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2},
    "layers": [{"mediaType": "application/vnd.example.signature.v1+txt", "digest": sig, "size": int(sig_size)}],
    "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": int(subject_size)},
}, separators=(",", ":")), end="")
PY
artifact="sha256:$(sha256sum "$work/artifact.json" | cut -d' ' -f1)"
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$work/artifact.json" "http://$reg/v2/busybox-oci/manifests/$artifact" >/dev/null

# A half-finished upload in team/app: started, a few bytes sent, never finished.
loc="$(curl -sfi -X POST "http://$reg/v2/team/app/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')"
case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
curl -sf -X PATCH -H 'Content-Type: application/octet-stream' --data-binary 'partial layer bytes' "$loc" >/dev/null

# --- the registry's own view ---------------------------------------------------------------
curl -sf "http://$reg/v2/_catalog?n=1000" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["repositories"]))' > "$out/sample.catalog"
: > "$work/ls"
while read -r repo; do
  tags="$(curl -sf "http://$reg/v2/$repo/tags/list" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin).get("tags") or []))')"
  for tag in $tags; do
    echo "$repo:$tag:$(digest_of "$repo" "$tag")" >> "$work/ls"
  done
done < "$out/sample.catalog"
LC_ALL=C sort "$work/ls" > "$out/sample.ls"
echo "artifact $artifact subject $subject" > "$work/notes"

kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true; reg_pid=""

# --- the registry's gc, dry runs (the oracle for regfsck gc) ------------------------------
before="$(cd "$root" && find . -printf '%y %s %T@ %p\n' | LC_ALL=C sort)"
docker-registry garbage-collect --dry-run "$work/config.yml" > "$out/sample.gc-dry-run.txt"
docker-registry garbage-collect --dry-run --delete-untagged "$work/config.yml" > "$out/sample.gc-dry-run-m.txt"
after="$(cd "$root" && find . -printf '%y %s %T@ %p\n' | LC_ALL=C sort)"
[ "$before" = "$after" ] || { echo "garbage-collect --dry-run changed the tree" >&2; exit 1; }

tar --sort=name --numeric-owner --owner=0 --group=0 -C "$root" -cf "$out/sample.tar" docker
(cd "$root" && find docker -printf '%y %s %p\n' | LC_ALL=C sort -k3) > "$out/sample.tree"
echo "wrote $out/sample.{tar,tree,ls,catalog,gc-dry-run.txt,gc-dry-run-m.txt}" >&2
cat "$work/notes" >&2
tail -1 "$out/sample.gc-dry-run.txt" >&2
tail -1 "$out/sample.gc-dry-run-m.txt" >&2 || true
