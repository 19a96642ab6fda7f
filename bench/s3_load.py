#!/usr/bin/env python3
"""Copies a registry layout on disk into an S3 bucket for bench/s3.sh: parallel PUTs, signed by
scripts/s3.py (Python's standard library), in threads.

    s3_load.py ROOT BUCKET PREFIX [--jobs 48]

Every file under ROOT/docker/registry/v2/ becomes the key PREFIX/docker/registry/v2/... (what
the registry's S3 driver writes with `rootdirectory: /PREFIX`). A sync, not a blind copy: the
prefix is listed first; a key already there with the file's MD5 as ETag (plain PUTs: every file
of a generated layout is small) is skipped, the missing or different ones are PUT, keys that have
no file are deleted. So a second run on the same layout PUTs nothing (a cache), and an
interrupted one resumes. Endpoint and credentials from the environment, as for scripts/s3.py.

Prints one line on stdout: `keys=N put=N deleted=N seconds=S` (S: the whole sync, listing
included); progress on stderr.
"""
import argparse
import concurrent.futures
import hashlib
import http.client
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import s3  # noqa: E402  (scripts/s3.py)


def local_files(root):
    """{key suffix below docker/registry/v2/: path} of every regular file."""
    v2 = os.path.join(root, "docker", "registry", "v2")
    if not os.path.isdir(v2):
        sys.exit(f"s3_load.py: {v2}: not a directory")
    out = {}
    for d, _, names in os.walk(v2):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, v2).replace(os.sep, "/")] = p
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("bucket")
    ap.add_argument("prefix")
    ap.add_argument("--jobs", type=int, default=48, help="requests in flight")
    a = ap.parse_args()
    t0 = time.monotonic()
    base = a.prefix.strip("/") + "/docker/registry/v2/"
    c = s3.Client()

    files = {base + k: p for k, p in local_files(a.root).items()}
    there = {e[1]: e[3].strip('"') for e in c.list(a.bucket, base) if e[0] == "key"}

    def md5(path):
        with open(path, "rb") as f:
            return hashlib.md5(f.read()).hexdigest()

    todo = [k for k, p in files.items() if there.get(k) != md5(p)]
    extra = [k for k in there if k not in files]

    done = 0
    lock = threading.Lock()

    def one(job):
        nonlocal done
        method, key = job
        for attempt in range(5):
            try:
                if method == "PUT":
                    with open(files[key], "rb") as f:
                        body = f.read()
                    c.request("PUT", a.bucket, key, body=body)
                else:
                    c.request("DELETE", a.bucket, key, ok=(200, 204))
                break
            except (OSError, http.client.HTTPException, s3.S3Error) as e:
                if attempt == 4 or (isinstance(e, s3.S3Error) and e.status < 500):
                    raise
                time.sleep(0.2 * (attempt + 1))
        with lock:
            done += 1
            if done % 2000 == 0:
                rate = done / max(time.monotonic() - t0, 1e-3)
                print(f"s3_load.py: {done}/{len(jobs)} ({rate:.0f}/s)", file=sys.stderr)

    jobs = [("PUT", k) for k in todo] + [("DELETE", k) for k in extra]
    if jobs:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs)
        try:
            for f in concurrent.futures.as_completed([pool.submit(one, j) for j in jobs]):
                f.result()  # the first failure ends the load, loudly
        finally:
            pool.shutdown(cancel_futures=True)
    print(f"keys={len(files)} put={len(todo)} deleted={len(extra)} "
          f"seconds={time.monotonic() - t0:.1f}")


if __name__ == "__main__":
    try:
        main()
    except s3.S3Error as e:
        print(f"s3_load.py: {e}", file=sys.stderr)
        sys.exit(1)
    except (OSError, http.client.HTTPException) as e:
        print(f"s3_load.py: {e}", file=sys.stderr)
        sys.exit(1)
