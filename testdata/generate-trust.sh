#!/usr/bin/env bash
# Regenerates testdata/registries/trust.* with the REAL registry (Debian's docker-registry 2.8),
# skopeo and umoci: legal but unusual content that the registry accepts and serves, which a checker
# must not trust blindly. Like generate.sh there is no network: images are built here with umoci
# (fixed timestamps), their blobs and hand-written manifests are pushed through the HTTP API with
# curl, each case in its own repository:
#
#   alias/sha512     a layer uploaded with ?digest=sha512:<hex> and named by that digest in an OCI
#                    image manifest (tag latest) and a Docker schema 2 manifest (tag v2s2)
#   alias/mounted    a cross-repository mount of that sha512 digest from alias/sha512 (answered 201)
#                    plus mounts of the config and base layer; the manifest PUT after them is
#                    refused, so this repository has _layers and no _manifests
#   quirks/dupkeys   an OCI image manifest with duplicated keys (Go keeps the last one)
#   quirks/casefold  an OCI image manifest whose keys differ in case (Go matches them ignoring case)
#   quirks/deep      an OCI image manifest with an unknown field of 9,000 nested arrays (a manifest
#                    nested 10,001 levels deep is refused, and not kept)
#   buildx/cache     what `docker buildx build --cache-to type=registry` pushes: an OCI image index
#                    whose manifests[] are blobs (two gzip layers and a buildkit cache config)
#   plain/app        an ordinary image (the control), pushed with skopeo
#
# Each manifest is checked after its push: the registry serves it byte for byte, and every blob it
# names by that blob's digest (sha512 included). skopeo's verdict on each tag is logged.
#
# DETERMINISM: every mtime in the tree is set to 2024-01-01T00:00:00Z after the pushes (the only
# thing in trust.tar not written by the registry), and no upload is left unfinished, so trust.tar
# is byte-identical on every run. Only the order of the `blob eligible for deletion:` lines of the
# gc outputs changes (Go map order).
#
#   apt-get install docker-registry skopeo umoci
#   bash testdata/generate-trust.sh
#
# Outputs (testdata/registries/): trust.tar trust.tree trust.ls trust.catalog trust.gc-dry-run.txt
# trust.gc-dry-run-m.txt (and trust.gc-dry-run*.stderr.txt only if a gc dry run exits non-zero).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/registries"
name=generate-trust.sh
# shellcheck source=testdata/lib.sh
. "$here/lib.sh"

img plain "plain/app: an ordinary image, the control"
img alias "alias/sha512: this layer is uploaded and named as sha512:<hex>"
img dupkeys "quirks/dupkeys: a manifest with duplicated keys"
img casefold "quirks/casefold: a manifest whose keys differ in case"
img deep "quirks/deep: a manifest with 9,000 nested arrays"

oci_mt=application/vnd.oci.image.manifest.v1+json
index_mt=application/vnd.oci.image.index.v1+json
v2s2_mt=application/vnd.docker.distribution.manifest.v2+json

# layout_manifest TAG: the file of TAG's manifest in the OCI layout (umoci's: config + layers)
layout_manifest() {
  python3 - "$oci" "$1" <<'PY'
import json, os, sys
oci, tag = sys.argv[1:]
for m in json.load(open(os.path.join(oci, "index.json")))["manifests"]:
    if m["annotations"]["org.opencontainers.image.ref.name"] == tag:
        print(os.path.join(oci, "blobs", "sha256", m["digest"].split(":", 1)[1]))
PY
}
# blobs_of MANIFEST: the digests of its config and layers, one a line
blobs_of() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("\n".join(d["digest"] for d in [m["config"]] + m["layers"]))' "$1"; }
# layout_blob DIGEST: the file of a sha256 blob in the OCI layout
layout_blob() { echo "$oci/blobs/sha256/${1#sha256:}"; }
# upload_blobs REPO MANIFEST: monolithic uploads of MANIFEST's config and layers
upload_blobs() {
  local b
  for b in $(blobs_of "$2"); do upload "$1" "$(layout_blob "$b")" >/dev/null; done
}

# serves REPO REF FILE DIGEST...: GET /v2/REPO/manifests/REF answers FILE's bytes with FILE's
# sha256 as Docker-Content-Digest, and GET /v2/REPO/blobs/DIGEST answers 200 with bytes that hash
# to DIGEST (in its own algorithm) for each DIGEST.
serves() {
  python3 - "http://$reg" "$accept" "$@" <<'PY' || die "$2:$3 is not served as pushed"
import hashlib, sys, urllib.request
base, accept, repo, ref, path, *digests = sys.argv[1:]
req = urllib.request.Request("%s/v2/%s/manifests/%s" % (base, repo, ref), headers={"Accept": accept})
with urllib.request.urlopen(req) as r:
    body, dcd = r.read(), r.headers["Docker-Content-Digest"]
want = open(path, "rb").read()
assert body == want, "manifest bytes differ"
assert dcd == "sha256:" + hashlib.sha256(want).hexdigest(), "Docker-Content-Digest %s" % dcd
for d in digests:
    algo, hexd = d.split(":", 1)
    with urllib.request.urlopen("%s/v2/%s/blobs/%s" % (base, repo, d)) as r:
        assert r.status == 200, (d, r.status)
        assert hashlib.new(algo, r.read()).hexdigest() == hexd, "blob %s: bytes do not match" % d
PY
}
# refused REPO REF FILE MEDIATYPE CODE: the PUT of FILE as manifest REF is refused with HTTP 400
# and error CODE, and leaves no revision
refused() {
  local resp code
  resp="$(curl -s -w '\n%{http_code}' -X PUT -H "Content-Type: $4" --data-binary "@$3" "http://$reg/v2/$1/manifests/$2")"
  code="$(printf '%s\n' "$resp" | tail -n 1)"
  resp="$(printf '%s\n' "$resp" | sed '$d')"
  if [ "$code" != 400 ] || [[ "$resp" != *"\"code\":\"$5\""* ]]; then
    die "PUT $1:$2 answered $code $resp, not 400 $5"
  fi
  [ ! -e "$root/docker/registry/v2/repositories/$1/_manifests/revisions/$(sha "$3" | tr : /)" ] \
    || die "the refused PUT $1:$2 left a revision"
  log "PUT $1:$2 refused as expected: $resp"
}
# skopeo_verdict REPO:TAG: tries `skopeo copy` of it to an oci: layout; logs and records the outcome
# (the registry's acceptance is what matters: skopeo's verdict is only recorded)
verdicts=()
skopeo_verdict() {
  local dst v
  dst="$work/copy-$(echo "$1" | tr /: __)"
  if skopeo copy -q --src-tls-verify=false "docker://$reg/$1" "oci:$dst:x" 2> "$work/skopeo.err"; then
    v="copies"
  else
    v="fails: $(tail -n 1 "$work/skopeo.err" | sed 's/^time="[^"]*" level=[a-z]* msg=//')"
  fi
  log "skopeo copy $1: $v"
  verdicts+=("$1: $v")
}

# --- plain/app: the control, pushed with skopeo ----------------------------------------------
push "oci:$oci:plain" "docker://$reg/plain/app:latest"
plain="$(digest_of plain/app latest)"
skopeo_verdict plain/app:latest

# --- alias/sha512: a layer uploaded as sha512 ------------------------------------------------
# The config and the base layer are uploaded as usual (sha256); the image's own layer with
# ?digest=sha512:<hex>. The registry stores it under its sha256 (blobs/sha256/<canonical>/data) and
# links both digests in _layers, both links holding sha256:<canonical>.
m="$(layout_manifest alias)"
mapfile -t alias_blobs < <(blobs_of "$m")        # config, base layer, own layer
upload alias/sha512 "$(layout_blob "${alias_blobs[0]}")" >/dev/null
upload alias/sha512 "$(layout_blob "${alias_blobs[1]}")" >/dev/null
own="$(layout_blob "${alias_blobs[2]}")"
own256="${alias_blobs[2]}"
own512="sha512:$(sha512sum "$own" | cut -d' ' -f1)"
[ "$(upload alias/sha512 "$own" "$own512")" = "$own512" ] || die "sha512 upload"
layers="$root/docker/registry/v2/repositories/alias/sha512/_layers"
for l in "sha256/${own256#sha256:}" "sha512/${own512#sha512:}"; do
  [ "$(cat "$layers/$l/link")" = "$own256" ] || die "_layers/$l/link does not hold $own256"
done
[ -f "$root/docker/registry/v2/blobs/sha256/${own256:7:2}/${own256#sha256:}/data" ] || die "$own256 not stored"
[ ! -e "$root/docker/registry/v2/blobs/sha512" ] || die "the registry wrote blobs/sha512"
# GET by the sha512 digest: 200, the bytes; its Docker-Content-Digest is the canonical sha256.
curl -sf -D "$work/h512" -o "$work/got512" "http://$reg/v2/alias/sha512/blobs/$own512" || die "GET $own512"
cmp -s "$work/got512" "$own" || die "GET $own512: bytes differ"
[ "$(header docker-content-digest < "$work/h512")" = "$own256" ] || die "GET $own512: Docker-Content-Digest is not $own256"
# The manifests: OCI (latest) and Docker schema 2 (v2s2), the own layer named by its sha512 digest.
python3 - "$m" "$own512" "$work/alias-oci.json" "$work/alias-v2s2.json" <<'PY'
import json, sys
m, own512, oci_out, v2s2_out = sys.argv[1:]
m = json.load(open(m))
layers = [dict(l) for l in m["layers"]]
layers[-1]["digest"] = own512
oci = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": m["config"], "layers": layers}
v2s2 = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": dict(m["config"], mediaType="application/vnd.docker.container.image.v1+json"),
        "layers": [dict(l, mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip") for l in layers]}
with open(oci_out, "w") as f:
    f.write(json.dumps(oci, separators=(",", ":")))
with open(v2s2_out, "w") as f:
    f.write(json.dumps(v2s2, indent=3))
PY
put_manifest alias/sha512 latest "$work/alias-oci.json" "$oci_mt"
put_manifest alias/sha512 v2s2 "$work/alias-v2s2.json" "$v2s2_mt"
alias_oci="$(sha "$work/alias-oci.json")"
alias_v2s2="$(sha "$work/alias-v2s2.json")"
serves alias/sha512 latest "$work/alias-oci.json" "${alias_blobs[0]}" "${alias_blobs[1]}" "$own512"
serves alias/sha512 v2s2 "$work/alias-v2s2.json" "${alias_blobs[0]}" "${alias_blobs[1]}" "$own512"
skopeo_verdict alias/sha512:latest
skopeo_verdict alias/sha512:v2s2

# --- alias/mounted: the sha512 digest mounted from alias/sha512 ------------------------------
# The config and base layer mount as usual. The mount of the sha512 digest answers 201, but writes
# _layers/sha512/<hex>/link holding sha512:<hex> itself (not the canonical sha256): a link to a
# blob that does not exist, so GET by that digest answers 404 and the manifest is refused.
mount_or_upload alias/mounted alias/sha512 "$(layout_blob "${alias_blobs[0]}")" >/dev/null
mount_or_upload alias/mounted alias/sha512 "$(layout_blob "${alias_blobs[1]}")" >/dev/null
code="$(curl -s -o /dev/null -D "$work/hmount" -w '%{http_code}' -X POST \
  "http://$reg/v2/alias/mounted/blobs/uploads/?mount=$own512&from=alias/sha512")"
[ "$code" = 201 ] || die "the mount of $own512 answered $code"
mounted="$root/docker/registry/v2/repositories/alias/mounted"
[ "$(cat "$mounted/_layers/sha512/${own512#sha512:}/link")" = "$own512" ] || die "the sha512 mount's link"
[ ! -e "$mounted/_layers/sha256/${own256#sha256:}" ] || die "the sha512 mount linked $own256"
[ ! -e "$mounted/_uploads" ] || die "a mount left _uploads in alias/mounted"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://$reg/v2/alias/mounted/blobs/$own512")"
[ "$code" = 404 ] || die "GET alias/mounted/blobs/$own512 answered $code"
refused alias/mounted latest "$work/alias-oci.json" "$oci_mt" MANIFEST_BLOB_UNKNOWN
[ ! -e "$mounted/_manifests" ] || die "alias/mounted has _manifests"

# --- quirks: hand-written manifests over real blobs --------------------------------------------
# dupkeys: "mediaType" first says image index; a first "config" names a blob that does not exist;
# a first "layers" names two; the real values come last, with the same keys (so they overwrite
# the first ones entirely: Go decodes a repeated key into the value already decoded). The last
# layer descriptor also repeats "digest" (a bogus one first).
# casefold: "SchemaVersion", "MediaType", "Config", "LAYERS" and descriptor keys in other cases.
# deep: an unknown field "regfsck.deep" of 9,000 nested arrays (nesting depth 9,001 with the
# manifest object; Go's encoding/json refuses depth > 10,000); deep-refused has 10,000 (depth
# 10,001) and is expected to be refused.
for q in dupkeys casefold deep; do upload_blobs "quirks/$q" "$(layout_manifest "$q")"; done
python3 - "$work" "$(layout_manifest dupkeys)" "$(layout_manifest casefold)" "$(layout_manifest deep)" <<'PY'
import hashlib, json, sys
work, dupkeys, casefold, deep = sys.argv[1:]
def desc(d, keys=("mediaType", "digest", "size")):
    return "{" + ",".join('"%s":%s' % (k, json.dumps(d[n])) for k, n in zip(keys, ("mediaType", "digest", "size"))) + "}"
def bogus(what):
    return "sha256:" + hashlib.sha256(b"regfsck: no such blob: " + what).hexdigest()

m = json.load(open(dupkeys))
c, l = m["config"], m["layers"]
last = desc(l[-1])
last = last.replace('"digest":', '"digest":"%s","digest":' % bogus(b"repeated digest"), 1)
body = ('{"schemaVersion":2,'
        '"mediaType":"application/vnd.oci.image.index.v1+json",'
        '"config":' + desc(dict(c, digest=bogus(b"config"), size=7)) + ','
        '"layers":[' + ",".join(desc(dict(x, digest=bogus(b"layer %d" % i), size=1 + i))
                                for i, x in enumerate(l)) + '],'
        '"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":' + desc(c) + ','
        '"layers":[' + ",".join([desc(x) for x in l[:-1]] + [last]) + ']}')
open(work + "/dupkeys.json", "w").write(body)

m = json.load(open(casefold))
c, l = m["config"], m["layers"]
body = ('{"SchemaVersion":2,"MediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"Config":' + desc(c, ("MediaType", "Digest", "Size")) + ','
        '"LAYERS":[' + ",".join([desc(l[0], ("mediatype", "DIGEST", "SIZE"))] +
                                [desc(x, ("MEDIATYPE", "Digest", "sIzE")) for x in l[1:]]) + ']}')
open(work + "/casefold.json", "w").write(body)

m = json.load(open(deep))
c, l = m["config"], m["layers"]
for n, out in ((9000, "deep"), (10000, "deep-refused")):
    body = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            '"config":' + desc(c) + ',"layers":[' + ",".join(desc(x) for x in l) + '],'
            '"regfsck.deep":' + "[" * n + "]" * n + '}')
    open(work + "/" + out + ".json", "w").write(body)
PY
for q in dupkeys casefold deep; do
  put_manifest "quirks/$q" latest "$work/$q.json" "$oci_mt"
  mapfile -t qb < <(blobs_of "$(layout_manifest "$q")")
  serves "quirks/$q" latest "$work/$q.json" "${qb[@]}"
  skopeo_verdict "quirks/$q:latest"
done
dupkeys="$(sha "$work/dupkeys.json")"
casefold="$(sha "$work/casefold.json")"
deep="$(sha "$work/deep.json")"
[ "$(wc -c < "$work/deep.json")" -lt $((4 << 20)) ] || die "deep.json is not under 4 MiB"
refused quirks/deep too-deep "$work/deep-refused.json" "$oci_mt" MANIFEST_INVALID

# --- buildx/cache: an OCI index whose manifests[] are blobs ----------------------------------
# Two deterministic gzip tarballs (tar and gzip mtimes fixed) and a small buildkit cache config,
# uploaded as blobs; then the index over them, PUT by tag "cache". The registry's index check
# (manifestListHandler.verifyManifest: manifestService.Exists) also finds blobs linked in _layers,
# so it accepts it.
python3 - "$work/buildx" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(out)
created = "2024-01-01T00:00:00Z"
def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()
def layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), 1704067200, 0o644, 0, 0, "", ""
            t.addfile(ti, io.BytesIO(data))
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=gz, mode="wb", mtime=0) as g:
        g.write(raw.getvalue())
    return raw.getvalue(), gz.getvalue()
entries, cache_layers = [], []
for i, files in enumerate([[("etc/buildx-base.txt", b"buildx cache layer 1: RUN echo base\n" * 20)],
                           [("app/buildx-app.txt", b"buildx cache layer 2: COPY app\n" * 20)]]):
    tar, tgz = layer(files)
    d = sha(tgz)
    open(os.path.join(out, d[7:]), "wb").write(tgz)
    entries.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d,
                    "size": len(tgz), "annotations": {"buildkit/createdat": created,
                                                      "containerd.io/uncompressed": sha(tar)}})
    cache_layers.append({"blob": d, "parent": i - 1,
                         "annotations": {"containerd.io/uncompressed": sha(tar), "buildkit/createdat": created}})
records = [{"digest": sha(b"regfsck buildx cache record 0")}]
for i in range(len(cache_layers)):
    records.append({"layers": [{"layer": i, "createdAt": created}],
                    "digest": sha(b"regfsck buildx cache record %d" % (i + 1)),
                    "inputs": [[{"selector": "", "link": i}]]})
cfg = json.dumps({"layers": cache_layers, "records": records}, separators=(",", ":")).encode()
open(os.path.join(out, sha(cfg)[7:]), "wb").write(cfg)
entries.append({"mediaType": "application/vnd.buildkit.cacheconfig.v0", "digest": sha(cfg), "size": len(cfg)})
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
open(os.path.join(out, "index.json"), "w").write(json.dumps(index, indent=2))
with open(os.path.join(out, "entries"), "w") as f:
    f.write("".join(e["digest"] + "\n" for e in entries))
PY
mapfile -t buildx_entries < "$work/buildx/entries"
for b in "${buildx_entries[@]}"; do upload buildx/cache "$work/buildx/${b#sha256:}" >/dev/null; done
put_manifest buildx/cache cache "$work/buildx/index.json" "$index_mt"
buildx="$(sha "$work/buildx/index.json")"
serves buildx/cache cache "$work/buildx/index.json" "${buildx_entries[@]}"
[ ! -e "$root/docker/registry/v2/repositories/buildx/cache/_manifests/revisions/sha256/${buildx_entries[0]#sha256:}" ] \
  || die "an entry of the buildx index became a manifest revision"
# Asked for as a manifest (GET or HEAD /v2/buildx/cache/manifests/<entry>), an entry answers 500:
# the manifest store finds the blob through _layers too, then cannot parse it as a manifest.
for b in "${buildx_entries[@]}"; do
  for method in --get --head; do
    code="$(curl -s -o /dev/null -w '%{http_code}' "$method" -H "Accept: $accept" "http://$reg/v2/buildx/cache/manifests/$b")"
    [ "$code" = 500 ] || die "curl $method buildx/cache/manifests/$b answered $code"
  done
done
skopeo_verdict buildx/cache:cache

# --- the registry's own view, fixed mtimes, its gc dry runs, the layout -----------------------
record_view trust
[ -z "$(find "$root" -path '*/_uploads/*' -print -quit)" ] || die "an upload was left unfinished"
find "$root/docker" -exec touch -h -d "@1704067200" {} +
gc_dry_runs trust
pack trust

cat >&2 <<EOF
generate-trust.sh: wrote $out/trust.{tar,tree,ls,catalog,gc-dry-run.txt,gc-dry-run-m.txt}
  plain/app:latest $plain
  alias/sha512:latest (OCI) $alias_oci   :v2s2 (schema 2) $alias_v2s2
    own layer $own256 = $own512
  quirks/dupkeys $dupkeys   quirks/casefold $casefold   quirks/deep $deep
  buildx/cache:cache $buildx, entries: ${buildx_entries[*]}
  skopeo copy: $(printf '\n    %s' "${verdicts[@]}")
  gc:    $(grep 'eligible for deletion$' "$out/trust.gc-dry-run.txt" || true)
  gc -m: $(grep 'eligible for deletion$' "$out/trust.gc-dry-run-m.txt" || true)
  trust.tar: $(wc -c < "$out/trust.tar") bytes, sha256 $(sha256sum "$out/trust.tar" | cut -d' ' -f1)
EOF
