//! `serve`: every route, header and error in-process through the router, then real pulls with
//! skopeo from the binary, compared with the digests the real registry gave.

use std::process::{Command, Stdio};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use regfsck::digest::{Algorithm, hash_bytes};
use regfsck::layout::Root;
use regfsck::manifest::Role;
use regfsck::serve::{Snapshot, app};
use tower::ServiceExt;

use crate::common::{Sample, regfsck, sample_tar};

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

async fn call(s: &Sample, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let root = Root::open(s.root()).unwrap();
    let snap = Snapshot::load(&root).unwrap();
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app(snap)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let r = Resp {
        status,
        headers,
        body,
    };
    assert_eq!(
        r.header("docker-distribution-api-version"),
        "registry/2.0",
        "{path}"
    );
    r
}

#[tokio::test]
async fn base_catalog_and_tags() {
    let s = Sample::registry();
    let r = call(&s, "GET", "/v2/", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::OK, &b"{}"[..]));
    let r = call(&s, "GET", "/v2/_catalog", &[]).await;
    let want: Vec<String> = std::fs::read_to_string(sample_tar("sample").with_extension("catalog"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut got: Vec<String> = serde_json::from_value(r.json()["repositories"].clone()).unwrap();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "the real registry's catalog");
    let r = call(&s, "GET", "/v2/_catalog?n=2", &[]).await;
    assert_eq!(r.json()["repositories"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.header("link"),
        "</v2/_catalog?last=busybox-oci&n=2>; rel=\"next\""
    );
    let r = call(&s, "GET", "/v2/_catalog?n=2&last=busybox-oci", &[]).await;
    assert_eq!(r.json()["repositories"][0], "emptied");
    assert_eq!(
        call(&s, "GET", "/v2/_catalog?n=1001", &[])
            .await
            .error_code(),
        "PAGINATION_NUMBER_INVALID"
    );
    let r = call(&s, "GET", "/v2/team/app/tags/list", &[]).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"name": "team/app", "tags": ["latest", "v1"]})
    );
    let r = call(&s, "GET", "/v2/team/app/tags/list?n=1", &[]).await;
    assert_eq!(r.json()["tags"], serde_json::json!(["latest"]));
    assert_eq!(
        r.header("link"),
        "</v2/team/app/tags/list?last=latest&n=1>; rel=\"next\""
    );
    let r = call(&s, "GET", "/v2/team/app/tags/list?n=1&last=latest", &[]).await;
    assert_eq!(
        (r.json()["tags"].clone(), r.header("link")),
        (serde_json::json!(["v1"]), "")
    );
    let r = call(&s, "GET", "/v2/team/app/tags/list?n=0", &[]).await;
    assert_eq!(
        (r.json()["tags"].clone(), r.header("link")),
        (serde_json::json!([]), "")
    );
    assert_eq!(
        call(&s, "GET", "/v2/team/app/tags/list?n=x", &[])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = call(&s, "GET", "/v2/nosuch/tags/list", &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into())
    );
    let r = call(&s, "GET", "/v2/emptied/tags/list", &[]).await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
}

#[tokio::test]
async fn manifests() {
    let s = Sample::registry();
    let idx = s.tag("multi/oci-index", "latest");
    for method in ["GET", "HEAD"] {
        let r = call(&s, method, "/v2/multi/oci-index/manifests/latest", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.header("content-type"),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(r.header("docker-content-digest"), idx.to_string());
        assert_eq!(r.header("etag"), format!("\"{idx}\""));
        let stored = std::fs::read(s.blob_path(&idx)).unwrap();
        assert_eq!(r.header("content-length"), stored.len().to_string());
        if method == "GET" {
            assert_eq!(r.body, stored, "the stored bytes, byte for byte");
        } else {
            assert!(r.body.is_empty());
        }
    }
    let list = s.tag("multi/docker-list", "latest");
    let r = call(
        &s,
        "GET",
        &format!("/v2/multi/docker-list/manifests/{list}"),
        &[],
    )
    .await;
    assert_eq!(
        r.header("content-type"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let child = s.reference(&list, Role::Child);
    let r = call(
        &s,
        "GET",
        &format!("/v2/multi/docker-list/manifests/{child}"),
        &[],
    )
    .await;
    assert_eq!(
        r.header("content-type"),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // Conditional GET.
    let etag = format!("\"{idx}\"");
    let r = call(
        &s,
        "GET",
        "/v2/multi/oci-index/manifests/latest",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // Unknown tag, a digest another repository has but this one does not link, bad digests.
    for (path, status) in [
        ("/v2/team/app/manifests/nosuch", StatusCode::NOT_FOUND),
        (
            &format!("/v2/team/app/manifests/{idx}")[..],
            StatusCode::NOT_FOUND,
        ),
        (
            "/v2/team/app/manifests/sha256:baddigeststring",
            StatusCode::NOT_FOUND,
        ),
        ("/v2/team/app/manifests/sha256:..", StatusCode::NOT_FOUND),
        ("/v2/nosuch/manifests/latest", StatusCode::NOT_FOUND),
    ] {
        let r = call(&s, "GET", path, &[]).await;
        assert_eq!(
            (r.status, r.error_code()),
            (status, "MANIFEST_UNKNOWN".into()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_manifest_that_does_not_hash_to_its_digest_is_not_served() {
    let s = Sample::registry();
    let d = s.tag("team/app", "latest");
    let mut bytes = std::fs::read(s.blob_path(&d)).unwrap();
    bytes.push(b' ');
    std::fs::write(s.blob_path(&d), bytes).unwrap();
    let r = call(&s, "GET", "/v2/team/app/manifests/latest", &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into())
    );
}

#[tokio::test]
async fn blobs_and_ranges() {
    let s = Sample::registry();
    let m = s.tag("busybox-oci", "1.1");
    let layer = s.manifest(&m).refs(Role::Layer).last().unwrap().digest;
    let data = std::fs::read(s.blob_path(&layer)).unwrap();
    let size = data.len();
    let path = format!("/v2/busybox-oci/blobs/{layer}");
    let r = call(&s, "GET", &path, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, data);
    assert_eq!(hash_bytes(Algorithm::Sha256, &r.body), layer);
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_eq!(r.header("docker-content-digest"), layer.to_string());
    assert_eq!(r.header("accept-ranges"), "bytes");
    assert_eq!(r.header("content-length"), size.to_string());
    let r = call(&s, "HEAD", &path, &[]).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    assert_eq!(r.header("content-length"), size.to_string());
    for (range, from, to) in [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, size - 1),
        ("bytes=-5", size - 5, size - 1),
        ("bytes=3-100000", 3, size - 1),
    ] {
        let r = call(&s, "GET", &path, &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body, &data[from..=to], "{range}");
        assert_eq!(
            r.header("content-range"),
            format!("bytes {from}-{to}/{size}")
        );
        assert_eq!(r.header("content-length"), (to - from + 1).to_string());
    }
    for range in [
        format!("bytes={size}-"),
        "bytes=5-2".to_string(),
        "bytes=-0".to_string(),
    ] {
        let r = call(&s, "GET", &path, &[("range", &range)]).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header("content-range"), format!("bytes */{size}"));
    }
    // Several ranges are allowed to be ignored: the whole blob.
    let r = call(&s, "GET", &path, &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, size));
    // A blob that exists but is not linked in this repository, and bad digests.
    let r = call(&s, "GET", &format!("/v2/team/app/blobs/{layer}"), &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into())
    );
    let r = call(
        &s,
        "GET",
        "/v2/team/app/blobs/sha256:../../../etc/passwd",
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::NOT_FOUND, &b"404 page not found\n"[..])
    );
    for bad in [
        "sha256:zz",
        "sha256:..",
        "sha256:..%2F..%2Fetc%2Fpasswd",
        "md5:abc",
        "0123",
    ] {
        let r = call(&s, "GET", &format!("/v2/team/app/blobs/{bad}"), &[]).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn writes_are_unsupported_and_strange_paths_are_404() {
    let s = Sample::registry();
    for (method, path) in [
        ("DELETE", "/v2/team/app/manifests/latest"),
        ("PUT", "/v2/team/app/manifests/latest"),
        ("POST", "/v2/team/app/blobs/uploads/"),
        ("GET", "/v2/team/app/blobs/uploads/some-uuid"),
        ("PATCH", "/v2/team/app/blobs/uploads/some-uuid"),
        ("DELETE", "/v2/team/app/blobs/sha256:aa"),
    ] {
        let r = call(&s, method, path, &[]).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED".into()),
            "{method} {path}"
        );
    }
    let long = "a".repeat(256);
    let r = call(&s, "GET", &format!("/v2/{long}/manifests/latest"), &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, "NAME_INVALID".into())
    );
    for path in [
        "/v2/../../etc/passwd/manifests/x",
        "/v2/team%2Fapp/manifests/latest",
        "/v2/team/app/..%2F..%2Fetc/manifests/x",
        "/v2/UPPER/manifests/x",
        "/v2/team/app/referrers/sha256:aa",
        "/etc/passwd",
    ] {
        let r = call(&s, "GET", path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body, b"404 page not found\n", "{path}");
    }
}

/// Starts `regfsck serve` on a free port; returns the child and its address.
fn start(s: &Sample, extra: &[&str]) -> (std::process::Child, String) {
    let addr = crate::common::free_addr();
    let child = regfsck()
        .args(["serve", "--addr", &addr])
        .args(extra)
        .arg(s.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::common::wait_for(&addr);
    (child, addr)
}

/// A self-signed certificate for 127.0.0.1 made by openssl: (its directory, cert, key).
fn self_signed() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("ca.crt"), certs.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (certs, cert, key)
}

/// An htpasswd file with one bcrypt entry, made by the real `htpasswd -B`.
fn htpasswd(s: &Sample, user: &str, pass: &str) -> std::path::PathBuf {
    let file = s.root().join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbc"])
        .arg(&file)
        .args([user, pass])
        .output()
        .expect("htpasswd (apache2-utils, installed by .ci/run)");
    assert!(out.status.success());
    file
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
}

#[test]
fn htpasswd_basic_auth_with_skopeo() {
    use std::io::{Read, Write};
    let s = Sample::registry();
    let file = htpasswd(&s, "alice", "s3cret");
    let (mut child, addr) = start(
        &s,
        &["--htpasswd", file.to_str().unwrap(), "--realm", "test"],
    );
    let inspect = |creds: Option<&str>| {
        let mut c = Command::new("skopeo");
        c.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(cr) = creds {
            c.args(["--creds", cr]);
        }
        c.arg(format!("docker://{addr}/team/app:latest"))
            .output()
            .unwrap()
    };
    let ok = inspect(Some("alice:s3cret"));
    let wrong = inspect(Some("alice:nope"));
    let none = inspect(None);
    // The challenge, by hand.
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    write!(c, "GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    interrupt(&child);
    child.wait().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        hash_bytes(Algorithm::Sha256, &ok.stdout),
        s.tag("team/app", "latest")
    );
    assert!(!wrong.status.success());
    assert!(!none.status.success());
    assert!(resp.contains(" 401 "), "{resp}");
    assert!(
        resp.to_lowercase()
            .contains("www-authenticate: basic realm=\"test\""),
        "{resp}"
    );
    assert!(resp.contains("UNAUTHORIZED"), "{resp}");
}

#[test]
fn a_bad_htpasswd_file_is_a_clear_error() {
    let s = Sample::registry();
    let file = s.root().join("htpasswd");
    std::fs::write(&file, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let out = regfsck()
        .args(["serve", "--addr", "127.0.0.1:0", "--htpasswd"])
        .arg(&file)
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1: only bcrypt entries are supported"),
        "{err}"
    );
}

#[test]
fn skopeo_pulls_every_tag_with_the_registrys_digests() {
    let s = Sample::registry();
    pull_every_tag(
        &s,
        &[],
        &["--src-tls-verify=false"],
        &["--tls-verify=false"],
        libc::SIGINT,
    );
}

#[test]
fn skopeo_pulls_every_tag_over_tls_with_htpasswd() {
    let s = Sample::registry();
    let (certs, cert, key) = self_signed();
    let file = htpasswd(&s, "bob", "pa55");
    let dir = certs.path().to_str().unwrap();
    pull_every_tag(
        &s,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--htpasswd",
            file.to_str().unwrap(),
        ],
        &["--src-cert-dir", dir, "--src-creds", "bob:pa55"],
        &["--cert-dir", dir, "--creds", "bob:pa55"],
        // SIGTERM shuts down as gracefully as Ctrl-C.
        libc::SIGTERM,
    );
}

/// Pulls every tag the real registry listed with `skopeo copy --all`, and checks that
/// `skopeo inspect --raw` gives the digest the real registry gave.
fn pull_every_tag(s: &Sample, serve: &[&str], copy: &[&str], inspect: &[&str], stop: i32) {
    let (mut child, addr) = start(s, serve);
    let dest = tempfile::tempdir().unwrap();
    let expected = std::fs::read_to_string(sample_tar("sample").with_extension("ls")).unwrap();
    let mut failures = Vec::new();
    for line in expected.lines() {
        let mut parts = line.rsplitn(3, ':');
        let (hex, alg, repo_tag) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let want = format!("{alg}:{hex}");
        let src = format!("docker://{addr}/{repo_tag}");
        let out = Command::new("skopeo")
            .args(["copy", "--all", "-q"])
            .args(copy)
            .arg(&src)
            .arg(format!(
                "dir:{}/{}",
                dest.path().display(),
                repo_tag.replace(['/', ':'], "_")
            ))
            .output()
            .expect("skopeo (installed by .ci/run)");
        if !out.status.success() {
            failures.push(format!(
                "copy {repo_tag}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let out = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .args(inspect)
            .arg(&src)
            .output()
            .unwrap();
        let got = hash_bytes(Algorithm::Sha256, &out.stdout).to_string();
        if got != want {
            failures.push(format!("{repo_tag}: {got} != {want}"));
        }
    }
    // Graceful shutdown, exit 0.
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, stop);
    }
    let status = child.wait().unwrap();
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(status.code(), Some(0));
}

#[test]
fn tls_with_skopeo_verifying_the_certificate() {
    let s = Sample::registry();
    let (certs, cert, key) = self_signed();
    let (mut child, addr) = start(
        &s,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    // skopeo trusts the *.crt files of --cert-dir as CAs: the certificate is really checked.
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(certs.path())
        .arg(format!("docker://{addr}/team/app/api:latest"))
        .output()
        .unwrap();
    let untrusted = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("docker://{addr}/team/app/api:latest"))
        .output()
        .unwrap();
    interrupt(&child);
    let status = child.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hash_bytes(Algorithm::Sha256, &out.stdout),
        s.tag("team/app/api", "latest")
    );
    assert!(!untrusted.status.success(), "an unknown CA is refused");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_certificate_is_a_clear_error() {
    let s = Sample::registry();
    let junk = s.root().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = regfsck()
        .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(&junk)
        .arg("--tls-key")
        .arg(&junk)
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot load the TLS certificate and key"),
        "{err}"
    );
    let out = regfsck()
        .args(["serve", "--tls-cert"])
        .arg(&junk)
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16), "--tls-cert needs --tls-key");
}
