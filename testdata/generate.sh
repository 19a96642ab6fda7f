#!/usr/bin/env bash
# Regenerates testdata/registries/sample.* with the REAL registry (Debian's docker-registry 2.8),
# skopeo and umoci. There is no network: every image is built here with umoci from small,
# deterministic files (fixed timestamps, so image digests are the same on every run), pushed with
# skopeo and curl, then the registry's own view (catalog, tags, digests) and its garbage-collect
# dry runs are recorded next to the packed layout.
#
#   apt-get install docker-registry skopeo umoci
#   bash testdata/generate.sh
#
# Outputs (testdata/registries/): sample.tar sample.tree sample.ls sample.catalog
# sample.gc-dry-run.txt sample.gc-dry-run-m.txt (and sample.gc-dry-run*.stderr.txt only if a gc
# dry run exits non-zero).
#
# S3 mode: the same pushes into an S3 bucket (the registry's storage.s3 driver), nothing written
# into testdata/registries:
#
#   eval "$(bash scripts/seaweedfs.sh start)"      # or set REGFSCK_TESTDATA_S3_* (see lib.sh)
#   REGFSCK_TESTDATA_S3_PREFIX=sample bash testdata/generate.sh --into-s3 OUT_DIR
#
# writes OUT_DIR/sample.{ls,catalog,gc-dry-run.txt,gc-dry-run-m.txt} as above (the registry's view
# and its gc dry runs, run on the S3 configuration), and, instead of the tar and its tree,
# sample.keys, sample.uploads, sample.config.yml (see pack in lib.sh) and sample.upload (the
# unfinished upload's UUID). Everything is pushed exactly as for the committed sample; the
# half-finished upload's 19 bytes are, on S3, an unfinished multipart upload of
# _uploads/<uuid>/data (no data object), see testdata/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/registries"
into_s3=""
case "${1:-}" in
  "") ;;
  --into-s3)
    if [ $# -ne 2 ] || [ -z "$2" ]; then echo "usage: generate.sh [--into-s3 OUT_DIR]" >&2; exit 2; fi
    into_s3=1; mkdir -p "$2"; out="$(cd "$2" && pwd)" ;;
  *) echo "usage: generate.sh [--into-s3 OUT_DIR]" >&2; exit 2 ;;
esac
started="$(date +%s)"
name=generate.sh
# shellcheck source=testdata/lib.sh
. "$here/lib.sh"

img alpine-v1 "alpine-mini, first build (retagged away from latest)"
img alpine-v2 "alpine-mini, second build"
img busybox-10 "busybox-oci 1.0 (its manifest is deleted through the API)"
img busybox-11 "busybox-oci 1.1"
img app "team/app"
img api "team/app/api"
img doomed "emptied: this image's manifest is deleted through the API"
img amd64 "multi-arch child linux/amd64" amd64
img arm64 "multi-arch child linux/arm64" arm64

# A multi-arch OCI image index over the amd64 and arm64 images, tagged "multi" in the layout.
oci_index="$(oci_index multi amd64 arm64)"

# --- pushes ----------------------------------------------------------------------------------
# alpine-mini (Docker schema 2): latest is pushed, then re-pushed with a different image, so the
# first revision stays, untagged, in _manifests/tags/latest/index/. 3.19 names the second build.
push --format v2s2 "oci:$oci:alpine-v1" "docker://$reg/alpine-mini:latest"
alpine_old="$(digest_of alpine-mini latest)"
push --format v2s2 "oci:$oci:alpine-v2" "docker://$reg/alpine-mini:latest"
push --format v2s2 "oci:$oci:alpine-v2" "docker://$reg/alpine-mini:3.19"
alpine_new="$(digest_of alpine-mini latest)"
[ "$alpine_old" != "$alpine_new" ] || die "alpine-mini:latest did not move"

# busybox-oci (OCI): 1.0 and 1.0.0 name one manifest, deleted below through the API; 1.1 and
# latest name another.
push "oci:$oci:busybox-10" "docker://$reg/busybox-oci:1.0"
push "oci:$oci:busybox-10" "docker://$reg/busybox-oci:1.0.0"
push "oci:$oci:busybox-11" "docker://$reg/busybox-oci:1.1"
push "oci:$oci:busybox-11" "docker://$reg/busybox-oci:latest"

# team/app with two tags on one manifest, and team/app/api nested inside it.
push "oci:$oci:app" "docker://$reg/team/app:latest"
push "oci:$oci:app" "docker://$reg/team/app:v1"
push "oci:$oci:api" "docker://$reg/team/app/api:latest"

# multi/oci-index: the OCI index and both children (skopeo --all keeps the index as is).
push --all "oci:$oci:multi" "docker://$reg/multi/oci-index:latest"
[ "$(digest_of multi/oci-index latest)" = "$oci_index" ] || die "multi/oci-index:latest is not the index pushed ($oci_index)"

# multi/docker-list: two schema 2 children pushed by digest (blobs mounted from multi/oci-index),
# then a Docker manifest list over them PUT by tag.
list_children=()
for arch in amd64 arm64; do
  d="$work/v2s2-$arch"
  skopeo copy -q --format v2s2 "oci:$oci:$arch" "dir:$d"
  for b in "$d"/*; do
    case "$(basename "$b")" in manifest.json|version) continue ;; esac
    mount_or_upload multi/docker-list multi/oci-index "$b" >/dev/null
  done
  child="$(sha "$d/manifest.json")"
  put_manifest multi/docker-list "$child" "$d/manifest.json" application/vnd.docker.distribution.manifest.v2+json
  list_children+=("$arch" "$child" "$(wc -c < "$d/manifest.json")")
done
python3 - "${list_children[@]}" > "$work/list.json" <<'PY'
import json, sys
a = sys.argv[1:]
print(json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "digest": a[i + 1], "size": int(a[i + 2]),
                   "platform": {"architecture": a[i], "os": "linux"}} for i in range(0, len(a), 3)],
}, indent=3), end="")
PY
docker_list="$(sha "$work/list.json")"
put_manifest multi/docker-list latest "$work/list.json" application/vnd.docker.distribution.manifest.list.v2+json
[ "$(digest_of multi/docker-list latest)" = "$docker_list" ] || die "multi/docker-list:latest is not the list pushed ($docker_list)"

# emptied: one image, whose manifest is then deleted: no tags, no revisions left.
push "oci:$oci:doomed" "docker://$reg/emptied:latest"

# Manifests deleted through the API (DELETE by digest takes every tag whose current link names it).
busybox_deleted="$(digest_of busybox-oci 1.0)"
curl -sf -X DELETE "http://$reg/v2/busybox-oci/manifests/$busybox_deleted" >/dev/null || die "DELETE busybox-oci failed"
emptied_deleted="$(digest_of emptied latest)"
curl -sf -X DELETE "http://$reg/v2/emptied/manifests/$emptied_deleted" >/dev/null || die "DELETE emptied failed"

# An OCI artifact (a signature-like referrer) whose subject is busybox-oci:1.1, blobs uploaded
# monolithically with POST+PUT, the manifest PUT by digest (untagged).
subject="$(digest_of busybox-oci 1.1)"
curl -sf -H "Accept: $accept" "http://$reg/v2/busybox-oci/manifests/1.1" > "$work/subject.json"
[ "$(sha "$work/subject.json")" = "$subject" ] || die "GET busybox-oci:1.1 does not match its digest"
printf '{}' > "$work/empty.json"
printf 'regfsck test signature over %s\n' "$subject" > "$work/sig.txt"
empty_cfg="$(upload busybox-oci "$work/empty.json")"
[ "$empty_cfg" = sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a ] || die "unexpected empty config digest $empty_cfg"
sig="$(upload busybox-oci "$work/sig.txt")"
python3 - "$empty_cfg" "$sig" "$(wc -c < "$work/sig.txt")" "$subject" "$(wc -c < "$work/subject.json")" > "$work/artifact.json" <<'PY'
import json, sys
cfg, sig, sig_size, subject, subject_size = sys.argv[1:]
print(json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.example.signature.v1",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2},
    "layers": [{"mediaType": "application/vnd.example.signature.v1+txt", "digest": sig,
                "size": int(sig_size)}],
    "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject,
                "size": int(subject_size)},
}, separators=(",", ":")), end="")
PY
artifact="$(sha "$work/artifact.json")"
put_manifest busybox-oci "$artifact" "$work/artifact.json" application/vnd.oci.image.manifest.v1+json

# A half-finished upload in team/app: started, a few bytes PATCHed, never finished.
loc="$(curl -sfi -X POST "http://$reg/v2/team/app/blobs/uploads/" | header location)"
[ -n "$loc" ] || die "POST /v2/team/app/blobs/uploads/ gave no Location"
curl -sf -X PATCH -H 'Content-Type: application/octet-stream' --data-binary 'partial layer bytes' \
  "$(absolute "$loc")" >/dev/null || die "PATCH of the unfinished upload failed"
upload_uuid="$(basename "${loc%%\?*}")"
if [ -z "$into_s3" ]; then
  [ -f "$root/docker/registry/v2/repositories/team/app/_uploads/$upload_uuid/data" ] || die "upload $upload_uuid not on disk"
else
  # On S3 the 19 bytes are the one part of a multipart upload in progress on .../data; startedat
  # and the hash states are objects.
  u="${s3_keys}docker/registry/v2/repositories/team/app/_uploads/$upload_uuid"
  s3 uploads "$s3_bucket" "$u/" | cut -f1 | grep -qx "$u/data" || die "upload $upload_uuid: no multipart upload of $u/data"
  s3 ls "$s3_bucket" "$u/" | cut -f1 | grep -qx "$u/startedat" || die "upload $upload_uuid: no $u/startedat"
fi

# --- the registry's own view, its gc dry runs, the layout -----------------------------------
record_view sample
gc_dry_runs sample
pack sample

if [ -n "$into_s3" ]; then
  echo "$upload_uuid" > "$out/sample.upload"
  layout="s3://$s3_bucket/$s3_keys: $(wc -l < "$out/sample.keys") keys, $(wc -l < "$out/sample.uploads") multipart upload(s); $(( $(date +%s) - started )) s"
  files="keys,uploads,config.yml,upload,ls,catalog,gc-dry-run.txt,gc-dry-run-m.txt"
else
  layout="sample.tar: $(wc -c < "$out/sample.tar") bytes"
  files="tar,tree,ls,catalog,gc-dry-run.txt,gc-dry-run-m.txt"
fi
cat >&2 <<EOF
generate.sh: wrote $out/sample.{$files}
  alpine-mini untagged old revision: $alpine_old (latest now $alpine_new)
  busybox-oci deleted manifest (tags 1.0, 1.0.0): $busybox_deleted
  emptied deleted manifest: $emptied_deleted
  multi/oci-index: $oci_index   multi/docker-list: $docker_list
  artifact: $artifact subject: $subject (busybox-oci:1.1)
  unfinished upload: team/app/_uploads/$upload_uuid
  gc:    $(tail -n +1 "$out/sample.gc-dry-run.txt" | grep 'eligible for deletion$' || true)
  gc -m: $(tail -n +1 "$out/sample.gc-dry-run-m.txt" | grep 'eligible for deletion$' || true)
  $layout
EOF
