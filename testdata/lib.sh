# shellcheck shell=bash disable=SC2154  # name and out are set by the sourcing script
# Shared by generate.sh, generate-ci.sh and generate-trust.sh (sourced, after `set -euo
# pipefail`): a private real registry, deterministic images built with umoci, HTTP helpers, the
# registry's own view, its gc dry runs and the packing. The caller sets `name` (for messages)
# before sourcing.
#
# S3 mode (generate.sh --into-s3 OUT_DIR sets `into_s3=1`): the registry stores into an S3 bucket
# (storage.s3) instead of a directory; see "S3 mode" below and in testdata/README.md.
umask 022
export LC_ALL=C

die() { echo "$name: $*" >&2; exit 1; }
log() { echo "$name: $*" >&2; }

missing=()
for cmd in docker-registry skopeo umoci curl python3; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  die "missing: ${missing[*]} (apt-get install docker-registry skopeo umoci curl python3)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/regfsck-testdata.XXXXXX")"
reg_pid=""
cleanup() {
  if [ -n "$reg_pid" ]; then
    kill "$reg_pid" 2>/dev/null || true
    wait "$reg_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- the registry ----------------------------------------------------------------------------
root="$work/root"   # the rootdirectory: it will contain docker/registry/v2
mkdir -p "$root"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
reg="127.0.0.1:$port"
config="$work/config.yml"
if [ -z "${into_s3:-}" ]; then
cat > "$config" <<CFG
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $root
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $reg
CFG
docker-registry serve "$config" >"$work/registry.log" 2>&1 &
reg_pid=$!
else
# --- S3 mode ---------------------------------------------------------------------------------
# The same registry configuration with storage.s3 instead of storage.filesystem; every
# docker-registry process (serve, garbage-collect) runs with an explicit environment (env -i:
# PATH and HOME only): with AWS_CA_BUNDLE set the registry panics at start, and other AWS_* or
# REGISTRY_* variables of the caller could change what it does. Settings, from the environment:
#   REGFSCK_TESTDATA_S3_ENDPOINT  (else AWS_ENDPOINT_URL), e.g. http://127.0.0.1:8333
#   REGFSCK_TESTDATA_S3_BUCKET    (else BUCKET)
#   REGFSCK_TESTDATA_S3_PREFIX    required; may be empty (the bucket's root); keys are
#                                 PREFIX/docker/registry/v2/...; it must hold nothing yet
#   REGFSCK_TESTDATA_S3_ACCESS_KEY, REGFSCK_TESTDATA_S3_SECRET_KEY (else AWS_ACCESS_KEY_ID,
#                                 AWS_SECRET_ACCESS_KEY), REGFSCK_TESTDATA_S3_REGION (else us-east-1)
# (`eval "$(bash scripts/seaweedfs.sh start)"` sets the fallbacks.)
s3_endpoint="${REGFSCK_TESTDATA_S3_ENDPOINT:-${AWS_ENDPOINT_URL:-}}"
s3_bucket="${REGFSCK_TESTDATA_S3_BUCKET:-${BUCKET:-}}"
s3_access_key="${REGFSCK_TESTDATA_S3_ACCESS_KEY:-${AWS_ACCESS_KEY_ID:-}}"
s3_secret_key="${REGFSCK_TESTDATA_S3_SECRET_KEY:-${AWS_SECRET_ACCESS_KEY:-}}"
s3_region="${REGFSCK_TESTDATA_S3_REGION:-us-east-1}"
[ -n "$s3_endpoint" ] || die "S3 mode: set REGFSCK_TESTDATA_S3_ENDPOINT (or AWS_ENDPOINT_URL)"
[ -n "$s3_bucket" ] || die "S3 mode: set REGFSCK_TESTDATA_S3_BUCKET (or BUCKET)"
if [ -z "$s3_access_key" ] || [ -z "$s3_secret_key" ]; then
  die "S3 mode: set REGFSCK_TESTDATA_S3_ACCESS_KEY and _SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
fi
[ -n "${REGFSCK_TESTDATA_S3_PREFIX+set}" ] || die "S3 mode: set REGFSCK_TESTDATA_S3_PREFIX (empty: the bucket's root)"
s3_prefix="$REGFSCK_TESTDATA_S3_PREFIX"
while [ "${s3_prefix#/}" != "$s3_prefix" ]; do s3_prefix="${s3_prefix#/}"; done
while [ "${s3_prefix%/}" != "$s3_prefix" ]; do s3_prefix="${s3_prefix%/}"; done
s3_keys="${s3_prefix:+$s3_prefix/}"   # the prefix of every key the registry writes, "" or "P/"
# s3 ARGS...: scripts/s3.py on the bucket's server (Python's standard library: SigV4 by hand)
s3() {
  env -i PATH="$PATH" AWS_ENDPOINT_URL="$s3_endpoint" AWS_ACCESS_KEY_ID="$s3_access_key" \
    AWS_SECRET_ACCESS_KEY="$s3_secret_key" AWS_REGION="$s3_region" \
    python3 "$here/../scripts/s3.py" "$@"
}
# registry ARGS...: docker-registry with an explicit environment
registry() { env -i PATH="$PATH" HOME="$work" docker-registry "$@"; }
# yq VALUE: a single-quoted YAML scalar
yq() { printf "'%s'" "${1//\'/\'\'}"; }
s3 ls "$s3_bucket" "$s3_keys" > "$work/keys" || die "cannot list s3://$s3_bucket/$s3_keys at $s3_endpoint"
s3 uploads "$s3_bucket" "$s3_keys" >> "$work/keys" || die "cannot list the multipart uploads of s3://$s3_bucket/$s3_keys"
[ ! -s "$work/keys" ] || die "s3://$s3_bucket/$s3_keys is not empty: $(head -3 "$work/keys" | cut -f1 | tr '\n' ' ')..."
cat > "$config" <<CFG
version: 0.1
log:
  level: info
storage:
  s3:
    region: $(yq "$s3_region")
    regionendpoint: $(yq "$s3_endpoint")
    bucket: $(yq "$s3_bucket")
    accesskey: $(yq "$s3_access_key")
    secretkey: $(yq "$s3_secret_key")
    secure: $(case "$s3_endpoint" in https:*) echo true ;; *) echo false ;; esac)
    v4auth: true
    rootdirectory: $(yq "/$s3_prefix")
  redirect:
    disable: true
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $reg
CFG
# exec: the background job is the registry itself (a function run in the background is a
# subshell whose child the registry would be, left running when the subshell is killed).
env -i PATH="$PATH" HOME="$work" docker-registry serve "$config" >"$work/registry.log" 2>&1 &
reg_pid=$!
fi
for _ in $(seq 150); do
  curl -sf "http://$reg/v2/" >/dev/null 2>&1 && break
  kill -0 "$reg_pid" 2>/dev/null || break
  sleep 0.1
done
curl -sf "http://$reg/v2/" >/dev/null || { cat "$work/registry.log" >&2; die "the registry did not start"; }
if [ -z "${into_s3:-}" ]; then
  log "registry on $reg, root $root"
else
  log "registry on $reg, storage s3://$s3_bucket/$s3_keys at $s3_endpoint"
fi

# --- images, built locally with umoci (deterministic: fixed mtimes and created times) ---------
T=2024-01-01T00:00:00Z
oci="$work/oci"
files="$work/files"
mkdir -p "$files"
umoci init --layout "$oci"
umoci new --image "$oci:scratch"
umoci config --image "$oci:scratch" --tag empty --created "$T" --history.created "$T" \
  --author regfsck-testdata --os linux --architecture amd64

# file NAME CONTENT...: a small file with a fixed mtime and mode
file() {
  local f="$files/$1"; shift
  printf '%s\n' "$@" > "$f"
  chmod 644 "$f"
  touch -d "@1704067200" "$f"
}
# The shared base layer: ~4 KB of deterministic, poorly compressible text.
python3 - "$files/base.txt" <<'PY'
import hashlib, sys
h = b"regfsck shared base layer"
with open(sys.argv[1], "w") as f:
    for i in range(64):
        h = hashlib.sha256(h).digest()
        f.write("%02d %s\n" % (i, h.hex()))
PY
chmod 644 "$files/base.txt"; touch -d "@1704067200" "$files/base.txt"
umoci insert --image "$oci:empty" --tag base --history.created "$T" "$files/base.txt" /etc/base.txt

# img TAG CONTENT [ARCH]: the base image plus /app/TAG.txt, tagged TAG in the OCI layout
img() {
  file "$1.txt" "$2"
  umoci insert --image "$oci:base" --tag "$1" --history.created "$T" "$files/$1.txt" "/app/$1.txt"
  if [ -n "${3:-}" ]; then
    umoci config --image "$oci:$1" --created "$T" --history.created "$T" --os linux --architecture "$3"
  fi
}

# oci_index NAME AMD64TAG ARM64TAG: a multi-arch OCI image index over two images, written into the
# OCI layout by hand (umoci cannot build indexes) and tagged NAME there; prints its digest.
oci_index() {
  python3 - "$oci" "$@" <<'PY'
import hashlib, json, os, sys
oci, name, amd64, arm64 = sys.argv[1:]
idx_path = os.path.join(oci, "index.json")
idx = json.load(open(idx_path))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
children = []
for arch, tag in (("amd64", amd64), ("arm64", arm64)):
    m = by_tag[tag]
    children.append({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
                     "platform": {"architecture": arch, "os": "linux"}})
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": children}, separators=(",", ":")).encode()
h = hashlib.sha256(body).hexdigest()
with open(os.path.join(oci, "blobs", "sha256", h), "wb") as f:
    f.write(body)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                         "digest": "sha256:" + h, "size": len(body),
                         "annotations": {"org.opencontainers.image.ref.name": name}})
with open(idx_path, "w") as f:
    json.dump(idx, f, separators=(",", ":"))
print("sha256:" + h)
PY
}

# --- HTTP helpers ----------------------------------------------------------------------------
accept="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json"
header() { tr -d '\r' | awk -v h="$1" 'BEGIN{h=tolower(h)} {i=index($0,":")} i && tolower(substr($0,1,i-1))==h {v=substr($0,i+1); sub(/^[ \t]+/,"",v); print v}'; }
# digest_of REPO REF: Docker-Content-Digest of HEAD /v2/REPO/manifests/REF, accepting every type
digest_of() { curl -sfI -H "Accept: $accept" "http://$reg/v2/$1/manifests/$2" | header docker-content-digest; }
push() { skopeo copy -q --dest-tls-verify=false "$@"; }

# Blob uploads, cross-repository mounts, manifests PUT by hand:
absolute() { case "$1" in http*) echo "$1" ;; *) echo "http://$reg$1" ;; esac; }
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
# upload REPO FILE [DIGEST]: monolithic upload (POST, then PUT ?digest= with the body); prints the
# digest (DIGEST if given, e.g. sha512:<hex>; else the file's sha256)
upload() {
  local d loc
  d="${3:-$(sha "$2")}"
  loc="$(curl -sfi -X POST "http://$reg/v2/$1/blobs/uploads/" | header location)"
  [ -n "$loc" ] || die "POST /v2/$1/blobs/uploads/ gave no Location"
  loc="$(absolute "$loc")"
  case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc" >/dev/null \
    || die "upload of $2 to $1 failed"
  echo "$d"
}
# mount_or_upload REPO FROM FILE: cross-repository mount (writes only a _layers link); if the
# registry cannot mount, it answers 202 with an upload session, which is finished with the bytes.
mount_or_upload() {
  local d resp code loc
  d="$(sha "$3")"
  resp="$(curl -si -X POST "http://$reg/v2/$1/blobs/uploads/?mount=$d&from=$2")"
  # (awk reads all of it: `head -1` could close the pipe under printf, SIGPIPE, with pipefail.)
  code="$(printf '%s\n' "$resp" | awk 'NR == 1 {print $2}')"
  case "$code" in
    201) ;;
    202)
      loc="$(absolute "$(printf '%s\n' "$resp" | header location)")"
      case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
      curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$3" "$loc" >/dev/null \
        || die "upload of $3 to $1 failed" ;;
    *) die "mount of $d into $1 answered $code" ;;
  esac
  echo "$d"
}
# put_manifest REPO REF FILE MEDIATYPE
put_manifest() {
  curl -sf -X PUT -H "Content-Type: $4" --data-binary "@$3" "http://$reg/v2/$1/manifests/$2" >/dev/null \
    || die "PUT manifest $2 into $1 failed: $(curl -s -X PUT -H "Content-Type: $4" --data-binary "@$3" "http://$reg/v2/$1/manifests/$2")"
}

# record_view PREFIX: the registry's own view, $out/PREFIX.catalog and $out/PREFIX.ls (REPO:TAG:
# DIGEST, sorted), then stops the registry.
record_view() {
  local p="$1" repo tag d code
  if [ -n "${into_s3:-}" ]; then
    # After deletes, SeaweedFS keeps emptied "directories" in delimiter listings until its
    # cleaner has run (0-30 s later), and the registry, which lists tags and repositories by
    # delimiter, sees them (a deleted tag is still in tags/list, and its HEAD answers 404). On
    # AWS a prefix exists only while a key has it: remove them now, as that cleaner would.
    s3 settle "$s3_bucket" "$s3_keys" 120 || die "s3://$s3_bucket/$s3_keys did not settle"
  fi
  mkdir -p "$out"
  rm -f "$out/$p".*
  curl -sf "http://$reg/v2/_catalog?n=1000" \
    | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["repositories"]))' > "$out/$p.catalog"
  : > "$work/ls"
  while read -r repo; do
    # A repository in the catalog with _layers but no _manifests (blobs pushed, never a manifest)
    # answers 404 NAME_UNKNOWN here: it has no tags.
    code="$(curl -s -o "$work/tags.json" -w '%{http_code}' "http://$reg/v2/$repo/tags/list")"
    case "$code" in
      200) ;;
      404) echo '{}' > "$work/tags.json" ;;
      *) die "GET /v2/$repo/tags/list answered $code" ;;
    esac
    python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin).get("tags") or []))' < "$work/tags.json" > "$work/tags"
    while read -r tag; do
      [ -n "$tag" ] || continue
      d="$(digest_of "$repo" "$tag")"
      [ -n "$d" ] || die "HEAD $repo:$tag gave no digest"
      echo "$repo:$tag:$d" >> "$work/ls"
    done < "$work/tags"
  done < "$out/$p.catalog"
  sort "$work/ls" > "$out/$p.ls"
  kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true; reg_pid=""
}

# gc_dry_runs PREFIX: the registry's gc dry runs (the oracle for regfsck gc), registry stopped,
# into $out/PREFIX.gc-dry-run{,-m}.txt; fails if they changed the tree.
gc_dry_runs() {
  local p="$1" before
  if [ -z "${into_s3:-}" ]; then
    snapshot() { (cd "$root" && find . -printf '%y %s %m %T@ %p\n' | sort); }
  else
    # every key (size, ETag, LastModified) and every multipart upload under the prefix
    snapshot() { s3 ls "$s3_bucket" "$s3_keys" | sort; s3 uploads "$s3_bucket" "$s3_keys" | sort; }
  fi
  before="$(snapshot)"
  gc() { # gc OUTNAME ARGS...
    local n="$1" rc=0; shift
    if [ -z "${into_s3:-}" ]; then
      docker-registry garbage-collect "$@" "$config" > "$out/$n.txt" 2> "$work/$n.stderr" || rc=$?
    else
      registry garbage-collect "$@" "$config" > "$out/$n.txt" 2> "$work/$n.stderr" || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
      cp "$work/$n.stderr" "$out/$n.stderr.txt"
      log "WARNING: garbage-collect $* exited $rc; stderr saved in $out/$n.stderr.txt"
    fi
  }
  gc "$p.gc-dry-run" --dry-run
  gc "$p.gc-dry-run-m" --dry-run --delete-untagged
  [ "$before" = "$(snapshot)" ] || die "garbage-collect --dry-run changed the tree"
}

# pack PREFIX: $out/PREFIX.tar (mtimes and empty directories kept) and its listing PREFIX.tree.
# In S3 mode, no tar: PREFIX.keys, every key under the bucket's prefix as "KEY SIZE" (KEY
# without the prefix, so it starts with docker/; sorted), PREFIX.uploads, the multipart uploads
# in progress as "KEY UPLOADID", and PREFIX.config.yml, the registry's configuration (its http.addr
# is of the stopped registry; secrets included).
pack() {
  if [ -n "${into_s3:-}" ]; then
    s3 ls "$s3_bucket" "$s3_keys" | awk -F '\t' -v n="${#s3_keys}" '{print substr($1, n + 1), $2}' | sort > "$out/$1.keys"
    s3 uploads "$s3_bucket" "$s3_keys" | awk -F '\t' -v n="${#s3_keys}" '{print substr($1, n + 1), $2}' | sort > "$out/$1.uploads"
    cp "$config" "$out/$1.config.yml"
    return
  fi
  tar --sort=name --numeric-owner --owner=0 --group=0 -C "$root" -cf "$out/$1.tar" docker
  (cd "$root" && find docker -printf '%y %s %p\n' | sort -k3) > "$out/$1.tree"
}
