#!/usr/bin/env python3
"""A tiny S3 client for regfsck's test infrastructure: Python's standard library only (SigV4 by
hand, path-style addressing, plain HTTP or HTTPS), so that the scripts and the tests need neither
awscli nor curl's --aws-sigv4 (curl 7.88 signs the query string unsorted and unencoded).

Endpoint and credentials come from the environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1); AWS_SESSION_TOKEN if set.

  s3.py ping                         signed ListBuckets; exit 0 once the server answers 200
  s3.py mb BUCKET                    create a bucket (an existing one of ours is fine)
  s3.py ls BUCKET [PREFIX]           every key under PREFIX: KEY<TAB>SIZE<TAB>ETAG<TAB>LASTMODIFIED
  s3.py ls-delim BUCKET PREFIX       one level with delimiter "/": "PRE <prefix>" or "KEY <key> <size>"
  s3.py uploads BUCKET [PREFIX]      multipart uploads in progress: KEY<TAB>UPLOADID<TAB>INITIATED
  s3.py parts BUCKET KEY UPLOADID    the parts of one: PARTNUMBER<TAB>SIZE<TAB>ETAG
  s3.py put BUCKET KEY               the object's bytes from stdin; prints the ETag
  s3.py get BUCKET KEY               the object's bytes to stdout
  s3.py head BUCKET KEY              SIZE<TAB>ETAG<TAB>LAST-MODIFIED (HTTP date)
  s3.py sums BUCKET [PREFIX]         every key under PREFIX with the SHA-256 of its content:
                                     KEY<TAB>SHA256 (GETs one by one: for small layouts)
  s3.py rm BUCKET KEY...             delete objects
  s3.py rm-prefix BUCKET PREFIX      delete every key under PREFIX and abort its multipart uploads
  s3.py cp-prefix BUCKET FROM TO     copy every key under FROM/ to TO/ (GET, then a plain PUT: the
                                     copy's ETags are MD5s, its LastModified now)
  s3.py empty-dirs BUCKET PREFIX     common prefixes that delimiter listings under PREFIX show but
                                     that hold no key, deepest first: SeaweedFS keeps emptied
                                     "directories" until its cleaner has run (0-30 s after the
                                     last delete: it wakes every 30 s)
  s3.py settle BUCKET PREFIX [SECS]  removes them (DELETE "<prefix>/", deepest first: SeaweedFS
                                     deletes an empty directory so, and leaves a non-empty one
                                     alone) until empty-dirs finds none (at most SECS, default 120)

Exit status 1 with the server's answer on stderr when a request fails (3 for a missing object on
get/head).
"""

import datetime
import hashlib
import hmac
import http.client
import os
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(Exception):
    def __init__(self, status, body, what):
        super().__init__(f"{what}: HTTP {status}: {body.decode(errors='replace').strip()}")
        self.status = status


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None or v == "":
        sys.exit(f"s3.py: {name} is not set")
    return v


def quote(s, safe=""):
    return urllib.parse.quote(s, safe="-_.~" + safe)


class Client:
    def __init__(self):
        url = urllib.parse.urlsplit(env("AWS_ENDPOINT_URL"))
        self.scheme = url.scheme
        self.netloc = url.netloc
        self.base = url.path.rstrip("/")
        self.key = env("AWS_ACCESS_KEY_ID")
        self.secret = env("AWS_SECRET_ACCESS_KEY")
        self.region = env("AWS_REGION", "us-east-1")
        self.token = os.environ.get("AWS_SESSION_TOKEN") or None

    def request(self, method, bucket="", key="", query=(), body=b"", ok=(200,)):
        """One signed request; a 500, 502, 503 or 504 (a busy server: SeaweedFS answers 500
        InternalError under load, and for a while after a bucket is made, until its volumes
        are grown) is retried with backoff for about a minute, as AWS asks of its clients."""
        attempts = 20
        for attempt in range(attempts):
            try:
                return self.request_once(method, bucket, key, query, body, ok)
            except S3Error as e:
                if e.status not in (500, 502, 503, 504) or attempt == attempts - 1:
                    raise
                time.sleep(min(0.2 * 2 ** attempt, 4.0))

    def request_once(self, method, bucket, key, query, body, ok):
        path = self.base + "/" + quote(bucket) + ("/" + quote(key, "/") if key else "")
        if not bucket:
            path = self.base + "/"
        q = "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query))
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        payload = hashlib.sha256(body).hexdigest()
        headers = {"host": self.netloc, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
        if self.token:
            headers["x-amz-security-token"] = self.token
        names = sorted(headers)
        canonical = "\n".join([
            method, path, q,
            "".join(f"{h}:{headers[h].strip()}\n" for h in names),
            ";".join(names), payload,
        ])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.key}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={sig}")
        headers["content-length"] = str(len(body))
        conn_cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(self.netloc, timeout=60)
        try:
            conn.request(method, path + ("?" + q if q else ""), body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status not in ok:
            raise S3Error(resp.status, data, f"{method} {path}{'?' + q if q else ''}")
        return resp, data

    def list(self, bucket, prefix="", delimiter=None):
        """Yields ("key", key, size, etag, lastmodified) and ("prefix", p) entries, all pages."""
        token = None
        while True:
            query = [("list-type", "2"), ("prefix", prefix)]
            if delimiter:
                query.append(("delimiter", delimiter))
            if token:
                query.append(("continuation-token", token))
            _, data = self.request("GET", bucket, query=query)
            root = ET.fromstring(data)
            for c in root.findall(NS + "Contents"):
                yield ("key", c.findtext(NS + "Key"), int(c.findtext(NS + "Size")),
                       c.findtext(NS + "ETag"), c.findtext(NS + "LastModified"))
            for p in root.findall(NS + "CommonPrefixes"):
                yield ("prefix", p.findtext(NS + "Prefix"))
            if root.findtext(NS + "IsTruncated") != "true":
                return
            token = root.findtext(NS + "NextContinuationToken")
            if not token:
                raise S3Error(200, b"truncated listing without NextContinuationToken", "list")

    def uploads(self, bucket, prefix=""):
        key_marker = upload_marker = None
        while True:
            query = [("uploads", ""), ("prefix", prefix)]
            if key_marker:
                query.append(("key-marker", key_marker))
            if upload_marker:
                query.append(("upload-id-marker", upload_marker))
            _, data = self.request("GET", bucket, query=query)
            root = ET.fromstring(data)
            for u in root.findall(NS + "Upload"):
                yield u.findtext(NS + "Key"), u.findtext(NS + "UploadId"), u.findtext(NS + "Initiated")
            if root.findtext(NS + "IsTruncated") != "true":
                return
            key_marker = root.findtext(NS + "NextKeyMarker")
            upload_marker = root.findtext(NS + "NextUploadIdMarker")

    def parts(self, bucket, key, upload_id):
        _, data = self.request("GET", bucket, key, query=[("uploadId", upload_id)])
        root = ET.fromstring(data)
        for p in root.findall(NS + "Part"):
            yield p.findtext(NS + "PartNumber"), int(p.findtext(NS + "Size")), p.findtext(NS + "ETag")


def empty_dirs(c, bucket, prefix):
    """Every common prefix under PREFIX without a key under it, deepest first."""
    keys = [e[1] for e in c.list(bucket, prefix) if e[0] == "key"]
    full = set()
    for k in keys:
        i = k.find("/", len(prefix))
        while i != -1:
            full.add(k[: i + 1])
            i = k.find("/", i + 1)
    empty, todo = [], [prefix]
    while todo:
        p = todo.pop()
        for e in c.list(bucket, p, delimiter="/"):
            if e[0] == "prefix":
                todo.append(e[1])
                if e[1] not in full:
                    empty.append(e[1])
    return sorted(empty, key=lambda p: (-p.count("/"), p))


def main(argv):
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    c = Client()
    cmd, args = argv[0], argv[1:]
    out = sys.stdout
    if cmd == "ping":
        c.request("GET")
    elif cmd == "mb":
        # 409 BucketAlreadyOwnedByYou / BucketAlreadyExists: fine when it is ours (it lists).
        resp, _ = c.request("PUT", args[0], ok=(200, 409))
        if resp.status == 409:
            c.request("GET", args[0], query=[("list-type", "2"), ("max-keys", "1")])
    elif cmd == "ls":
        for e in c.list(args[0], args[1] if len(args) > 1 else ""):
            out.write(f"{e[1]}\t{e[2]}\t{e[3]}\t{e[4]}\n")
    elif cmd == "ls-delim":
        for e in c.list(args[0], args[1], delimiter="/"):
            out.write(f"PRE {e[1]}\n" if e[0] == "prefix" else f"KEY {e[1]} {e[2]}\n")
    elif cmd == "uploads":
        for k, u, t in c.uploads(args[0], args[1] if len(args) > 1 else ""):
            out.write(f"{k}\t{u}\t{t}\n")
    elif cmd == "parts":
        for n, size, etag in c.parts(args[0], args[1], args[2]):
            out.write(f"{n}\t{size}\t{etag}\n")
    elif cmd == "put":
        resp, _ = c.request("PUT", args[0], args[1], body=sys.stdin.buffer.read())
        out.write(resp.getheader("ETag", "") + "\n")
    elif cmd in ("get", "head"):
        try:
            resp, data = c.request("GET" if cmd == "get" else "HEAD", args[0], args[1])
        except S3Error as e:
            if e.status == 404:
                print(f"s3.py: {args[0]}/{args[1]}: no such key", file=sys.stderr)
                return 3
            raise
        if cmd == "get":
            sys.stdout.buffer.write(data)
        else:
            out.write(f"{resp.getheader('Content-Length')}\t{resp.getheader('ETag')}\t"
                      f"{resp.getheader('Last-Modified')}\n")
    elif cmd == "sums":
        for e in list(c.list(args[0], args[1] if len(args) > 1 else "")):
            _, data = c.request("GET", args[0], e[1])
            out.write(f"{e[1]}\t{hashlib.sha256(data).hexdigest()}\n")
    elif cmd == "rm":
        for k in args[1:]:
            c.request("DELETE", args[0], k, ok=(200, 204))
    elif cmd == "rm-prefix":
        bucket, prefix = args[0], args[1]
        for e in list(c.list(bucket, prefix)):
            c.request("DELETE", bucket, e[1], ok=(200, 204))
        for k, u, _ in list(c.uploads(bucket, prefix)):
            c.request("DELETE", bucket, k, query=[("uploadId", u)], ok=(200, 204))
    elif cmd == "cp-prefix":
        bucket, src, dst = args[0], args[1].rstrip("/") + "/", args[2].rstrip("/") + "/"
        for e in list(c.list(bucket, src)):
            _, data = c.request("GET", bucket, e[1])
            c.request("PUT", bucket, dst + e[1][len(src):], body=data)
    elif cmd == "empty-dirs":
        for p in empty_dirs(c, args[0], args[1]):
            out.write(p + "\n")
    elif cmd == "settle":
        deadline = time.monotonic() + (float(args[2]) if len(args) > 2 else 120)
        while True:
            left = empty_dirs(c, args[0], args[1])
            if not left:
                break
            if time.monotonic() > deadline:
                print(f"s3.py: still listed, without a key: {' '.join(left[:5])}", file=sys.stderr)
                return 1
            for p in left:
                c.request("DELETE", args[0], p, ok=(200, 204, 404))
            time.sleep(0.1)
    else:
        print(f"s3.py: unknown command {cmd!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except S3Error as e:
        print(f"s3.py: {e}", file=sys.stderr)
        sys.exit(1)
    except (OSError, http.client.HTTPException) as e:
        print(f"s3.py: {e}", file=sys.stderr)
        sys.exit(1)
