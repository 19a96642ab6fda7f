#!/usr/bin/env python3
"""Writes a valid registry layout for benchmarks: repositories of OCI images whose configs and
layers are linked in _layers, manifests as revisions, a tag per image; plus optional small
orphan blobs. Content is random (seeded) so nothing deduplicates.

    gen_layout.py ROOT --repos 16 --images-per-repo 8 --layers 4 --layer-size 4194304
"""
import argparse
import hashlib
import json
import os
import random

CHUNK = 1 << 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--repos", type=int, default=4)
    ap.add_argument("--images-per-repo", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--layer-size", type=int, default=4096)
    ap.add_argument("--big-layers", type=int, default=0, help="extra layers of --big-size in repo 0")
    ap.add_argument("--big-size", type=int, default=64 << 20)
    ap.add_argument("--small-blobs", type=int, default=0)
    ap.add_argument("--small-size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    v2 = os.path.join(a.root, "docker", "registry", "v2")

    def blob(data_iter):
        h = hashlib.sha256()
        tmp = os.path.join(v2, "blobs", ".tmp-blob")
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        size = 0
        with open(tmp, "wb") as f:
            for chunk in data_iter:
                h.update(chunk)
                f.write(chunk)
                size += len(chunk)
        hx = h.hexdigest()
        d = os.path.join(v2, "blobs", "sha256", hx[:2], hx)
        os.makedirs(d, exist_ok=True)
        os.replace(tmp, os.path.join(d, "data"))
        return "sha256:" + hx, size

    def rand(size):
        left = size
        while left > 0:
            n = min(CHUNK, left)
            yield rnd.randbytes(n)
            left -= n

    def link(path, digest):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(digest)

    for r in range(a.repos):
        repo = os.path.join(v2, "repositories", f"bench/repo{r:04d}")
        for i in range(a.images_per_repo):
            layers = []
            n_big = a.big_layers if (r == 0 and i == 0) else 0
            for _ in range(a.layers):
                layers.append(blob(rand(a.layer_size)))
            for _ in range(n_big):
                layers.append(blob(rand(a.big_size)))
            cfg = json.dumps({"architecture": "amd64", "os": "linux",
                              "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},
                              "bench": [r, i, rnd.random()]}).encode()
            cfg_d, cfg_n = blob([cfg])
            m = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": cfg_n},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}
                           for d, n in layers],
            }).encode()
            m_d, _ = blob([m])
            for d in [cfg_d] + [d for d, _ in layers]:
                link(os.path.join(repo, "_layers", "sha256", d[7:], "link"), d)
            link(os.path.join(repo, "_manifests", "revisions", "sha256", m_d[7:], "link"), m_d)
            tag = os.path.join(repo, "_manifests", "tags", f"v{i}")
            link(os.path.join(tag, "current", "link"), m_d)
            link(os.path.join(tag, "index", "sha256", m_d[7:], "link"), m_d)
    for _ in range(a.small_blobs):
        blob([rnd.randbytes(rnd.randint(a.small_size // 2, a.small_size * 2))])


if __name__ == "__main__":
    main()
