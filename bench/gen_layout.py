#!/usr/bin/env python3
"""Writes a valid registry layout (filesystem driver) for benchmarks.

    gen_layout.py ROOT --repos 16 --images-per-repo 8 --layers 4 --layer-size 4194304 \
        [--big-layers 4 --big-size 67108864] [--small-blobs 100000 --small-size 2048] [--seed 1]

Under ROOT/docker/registry/v2/ it writes, for each repository `bench/repoNNNN` and image i:
--layers random layers of --layer-size bytes, a small JSON config, an OCI image manifest that
references them, the config and layers linked in the repository's `_layers`, the manifest in
`_manifests/revisions`, and tag `v<i>` (current/link and index entry) naming the manifest.
--big-layers extra layers of --big-size bytes go into the first image of the first repository,
so large files are covered too. --small-blobs adds that many orphan blobs (data files only) of
--small-size/2 .. --small-size*2 bytes. Content is random from --seed, so nothing deduplicates
and the same arguments give the same layout. stdlib only; blobs are written in 1 MiB chunks and
hashed while written.
"""
import argparse
import hashlib
import json
import os
import random
import sys

CHUNK = 1 << 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("--repos", type=int, default=4)
    ap.add_argument("--images-per-repo", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2, help="layers per image")
    ap.add_argument("--layer-size", type=int, default=4096, help="bytes per layer")
    ap.add_argument("--big-layers", type=int, default=0,
                    help="extra layers of --big-size in the first image of the first repository")
    ap.add_argument("--big-size", type=int, default=64 << 20)
    ap.add_argument("--small-blobs", type=int, default=0, help="extra orphan blobs")
    ap.add_argument("--small-size", type=int, default=2048,
                    help="orphan blobs are --small-size/2 .. --small-size*2 bytes")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.big_layers and not (a.repos and a.images_per_repo):
        ap.error("--big-layers needs at least one repository and image")

    rnd = random.Random(a.seed)
    v2 = os.path.join(a.root, "docker", "registry", "v2")
    # Outside docker/registry/v2, so an interrupted run leaves nothing regfsck would look at.
    tmp = os.path.join(a.root, ".gen-layout-tmp")
    os.makedirs(os.path.join(v2, "blobs", "sha256"), exist_ok=True)
    os.makedirs(os.path.join(v2, "repositories"), exist_ok=True)
    made = set()
    stats = {"blobs": 0, "bytes": 0}

    def mkdirs(d):
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)

    def blob(chunks):
        h = hashlib.sha256()
        size = 0
        with open(tmp, "wb") as f:
            for c in chunks:
                h.update(c)
                f.write(c)
                size += len(c)
        hx = h.hexdigest()
        d = os.path.join(v2, "blobs", "sha256", hx[:2], hx)
        mkdirs(d)
        os.replace(tmp, os.path.join(d, "data"))
        stats["blobs"] += 1
        stats["bytes"] += size
        return "sha256:" + hx, size

    def rand(size):
        left = size
        while left > 0:
            n = min(CHUNK, left)
            yield rnd.randbytes(n)
            left -= n

    def link(path, digest):
        mkdirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(digest)  # no trailing newline, as the registry writes it

    for r in range(a.repos):
        repo = os.path.join(v2, "repositories", "bench", f"repo{r:04d}")
        for i in range(a.images_per_repo):
            layers = [blob(rand(a.layer_size)) for _ in range(a.layers)]
            if r == 0 and i == 0:
                layers += [blob(rand(a.big_size)) for _ in range(a.big_layers)]
            cfg = json.dumps({
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},
                "config": {"Labels": {"bench": f"{a.seed}/{r}/{i}/{rnd.getrandbits(64):016x}"}},
            }).encode()
            cfg_d, cfg_n = blob([cfg])
            manifest = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cfg_d, "size": cfg_n},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": d, "size": n} for d, n in layers],
            }, indent=3).encode()
            m_d, _ = blob([manifest])
            for d in [cfg_d] + [d for d, _ in layers]:
                link(os.path.join(repo, "_layers", "sha256", d[7:], "link"), d)
            link(os.path.join(repo, "_manifests", "revisions", "sha256", m_d[7:], "link"), m_d)
            tag = os.path.join(repo, "_manifests", "tags", f"v{i}")
            link(os.path.join(tag, "current", "link"), m_d)
            link(os.path.join(tag, "index", "sha256", m_d[7:], "link"), m_d)

    lo, hi = max(1, a.small_size // 2), max(1, a.small_size * 2)
    for _ in range(a.small_blobs):
        blob([rnd.randbytes(rnd.randint(lo, hi))])

    print(f"{a.root}: {stats['blobs']} blobs, {stats['bytes']} bytes, "
          f"{a.repos} repositories, {a.repos * a.images_per_repo} images", file=sys.stderr)


if __name__ == "__main__":
    main()
