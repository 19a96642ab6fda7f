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
pub(crate) fn start(s: &Sample, extra: &[&str]) -> (std::process::Child, String) {
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
pub(crate) fn htpasswd(s: &Sample, user: &str, pass: &str) -> std::path::PathBuf {
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

pub(crate) fn interrupt(child: &std::process::Child) {
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

#[tokio::test]
async fn conditional_requests_weak_and_star_only_where_the_repository_holds_it() {
    let s = Sample::registry();
    let idx = s.tag("multi/oci-index", "latest");
    for inm in [
        format!("\"{idx}\""),
        format!("W/\"{idx}\""),
        "*".to_string(),
        format!("\"sha256:{}\", W/\"{idx}\"", "0".repeat(64)),
    ] {
        for method in ["GET", "HEAD"] {
            let r = call(
                &s,
                method,
                "/v2/multi/oci-index/manifests/latest",
                &[("if-none-match", &inm)],
            )
            .await;
            assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{method} {inm}");
            assert_eq!(r.header("etag"), format!("\"{idx}\""));
            assert!(r.body.is_empty());
        }
    }
    let r = call(
        &s,
        "GET",
        "/v2/multi/oci-index/manifests/latest",
        &[("if-none-match", &format!("\"sha256:{}\"", "0".repeat(64)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "another tag: the manifest itself");
    // A manifest another repository holds: not a 304, whatever the condition says.
    for inm in [
        format!("\"{idx}\""),
        format!("W/\"{idx}\""),
        "*".to_string(),
    ] {
        let r = call(
            &s,
            "GET",
            &format!("/v2/team/app/manifests/{idx}"),
            &[("if-none-match", &inm)],
        )
        .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into()),
            "{inm}"
        );
    }
    // Blobs carry ETag "<digest>" and answer the same way.
    let m = s.tag("busybox-oci", "1.1");
    let layer = s.manifest(&m).refs(Role::Layer).last().unwrap().digest;
    let r = call(&s, "HEAD", &format!("/v2/busybox-oci/blobs/{layer}"), &[]).await;
    assert_eq!(r.header("etag"), format!("\"{layer}\""));
    for inm in [
        format!("\"{layer}\""),
        format!("W/\"{layer}\""),
        "*".to_string(),
    ] {
        let r = call(
            &s,
            "GET",
            &format!("/v2/busybox-oci/blobs/{layer}"),
            &[("if-none-match", &inm)],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{inm}");
        assert!(r.body.is_empty());
        let r = call(
            &s,
            "GET",
            &format!("/v2/team/app/blobs/{layer}"),
            &[("if-none-match", &inm)],
        )
        .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into()),
            "a blob this repository does not link: {inm}"
        );
    }
}

/// A CA, and a client certificate it signed (for `http.tls.clientcas`), in `dir`:
/// (ca.pem, client.cert, client.key); skopeo takes `*.cert`/`*.key` pairs as client
/// certificates.
fn client_ca(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key, csr, ext) = (
        dir.join("client.cert"),
        dir.join("client.key"),
        dir.join("client.csr"),
        dir.join("client.ext"),
    );
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    run(&[
        &os("req"),
        &os("-x509"),
        &os("-newkey"),
        &os("rsa:2048"),
        &os("-nodes"),
        &os("-days"),
        &os("2"),
        &os("-subj"),
        &os("/CN=regfsck test client CA"),
        &os("-keyout"),
        ca_key.as_os_str(),
        &os("-out"),
        ca.as_os_str(),
    ]);
    run(&[
        &os("req"),
        &os("-newkey"),
        &os("rsa:2048"),
        &os("-nodes"),
        &os("-subj"),
        &os("/CN=client"),
        &os("-keyout"),
        key.as_os_str(),
        &os("-out"),
        csr.as_os_str(),
    ]);
    run(&[
        &os("x509"),
        &os("-req"),
        &os("-in"),
        csr.as_os_str(),
        &os("-CA"),
        ca.as_os_str(),
        &os("-CAkey"),
        ca_key.as_os_str(),
        &os("-CAcreateserial"),
        &os("-days"),
        &os("2"),
        &os("-extfile"),
        ext.as_os_str(),
        &os("-out"),
        cert.as_os_str(),
    ]);
    (ca, cert, key)
}

/// Writes a registry config for the sample in `dir`.
fn write_config(dir: &std::path::Path, s: &Sample, rest: &str) -> std::path::PathBuf {
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n{rest}",
            s.root().display()
        ),
    )
    .unwrap();
    cfg
}

/// `regfsck --config CFG serve ARGS`, with the registry's environment cleared; stderr piped.
fn serve_config(cfg: &std::path::Path, args: &[&str]) -> Command {
    let mut c = regfsck();
    crate::common::without_registry_env(&mut c);
    c.arg("--config").arg(cfg).arg("serve").args(args);
    c
}

/// Spawns a server; returns it once `addr` accepts connections.
fn spawn_listening(cmd: &mut Command, addr: &str) -> std::process::Child {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::common::wait_for(addr);
    child
}

/// Stops a server with SIGINT; returns its exit code and stderr.
fn stop(child: std::process::Child) -> (Option<i32>, String) {
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One request on a fresh plain connection; the whole response as text ("" when the server
/// closed without answering).
pub(crate) fn raw_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // The server may close before the request is written (plain HTTP on a TLS port): that is
    // an answer too, the empty one.
    if write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return String::new();
    }
    let mut resp = Vec::new();
    let _ = c.read_to_end(&mut resp);
    String::from_utf8_lossy(&resp).into_owned()
}

#[test]
fn serve_config_applies_the_registrys_tls_and_htpasswd() {
    let s = Sample::registry();
    let (certs, cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    // A relative path in the config is relative to the current directory, as in the registry.
    let file = htpasswd(&s, "carol", "pw123");
    std::fs::copy(&file, dir.path().join("users.htpasswd")).unwrap();
    let addr = crate::common::free_addr();
    let cfg = write_config(
        dir.path(),
        &s,
        &format!(
            "http:\n  addr: {addr}\n  secret: unused\n  headers:\n    X-Content-Type-Options: [nosniff]\n  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: cfg-realm\n    path: users.htpasswd\n",
            cert.display(),
            key.display()
        ),
    );
    let child = spawn_listening(serve_config(&cfg, &[]).current_dir(dir.path()), &addr);
    let certdir = certs.path().to_str().unwrap();
    let inspect = |creds: Option<&str>| {
        let mut c = Command::new("skopeo");
        c.args(["inspect", "--raw", "--cert-dir", certdir]);
        if let Some(cr) = creds {
            c.args(["--creds", cr]);
        }
        c.arg(format!("docker://{addr}/team/app:latest"))
            .output()
            .unwrap()
    };
    let anonymous = inspect(None);
    let wrong = inspect(Some("carol:nope"));
    let ok = inspect(Some("carol:pw123"));
    let dest = tempfile::tempdir().unwrap();
    let pulled = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-cert-dir",
            certdir,
            "--src-creds",
            "carol:pw123",
        ])
        .arg(format!("docker://{addr}/team/app:latest"))
        .arg(format!("dir:{}", dest.path().join("app").display()))
        .output()
        .unwrap();
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = raw_get(&addr, "/v2/");
    let (code, log) = stop(child);
    assert!(!anonymous.status.success(), "no credentials, no manifest");
    assert!(!wrong.status.success());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        hash_bytes(Algorithm::Sha256, &ok.stdout),
        s.tag("team/app", "latest")
    );
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(!plain.starts_with("HTTP/"), "{plain}");
    assert_eq!(code, Some(0));
    // The start-up line says what came from the config; the access log shows the 401s.
    let first = log.lines().next().unwrap_or("");
    assert!(
        first.contains(&format!("from {}", cfg.display()))
            && first.contains(&format!("http.addr {addr}"))
            && first.contains(&format!("http.tls (certificate {}", cert.display()))
            && first.contains("auth.htpasswd (path users.htpasswd, realm \"cfg-realm\")")
            && first.contains("http.headers (1)")
            && first.contains("not applied: http.secret"),
        "{first}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("GET /v2/") && l.contains(" 401 ")),
        "{log}"
    );
}

#[test]
fn command_line_flags_and_environment_override_the_config() {
    let s = Sample::registry();
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(&s, "dave", "pw");
    let (cfg_addr, env_addr, flag_addr) = (
        crate::common::free_addr(),
        crate::common::free_addr(),
        crate::common::free_addr(),
    );
    let cfg = write_config(
        dir.path(),
        &s,
        &format!(
            "http:\n  addr: {cfg_addr}\nauth:\n  htpasswd:\n    realm: from-config\n    path: /nonexistent/htpasswd\n"
        ),
    );
    // The environment overrides the file, as for the registry.
    let mut cmd = serve_config(&cfg, &[]);
    cmd.env("REGISTRY_HTTP_ADDR", &env_addr)
        .env("REGISTRY_AUTH_HTPASSWD_PATH", &file)
        .env("REGISTRY_AUTH_HTPASSWD_REALM", "from-env");
    let child = spawn_listening(&mut cmd, &env_addr);
    let resp = raw_get(&env_addr, "/v2/");
    let config_addr_used = crate::common::listening(&cfg_addr);
    let (code, log) = stop(child);
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert!(
        resp.to_lowercase()
            .contains("www-authenticate: basic realm=\"from-env\""),
        "{resp}"
    );
    assert!(!config_addr_used);
    assert_eq!(code, Some(0), "{log}");
    // Flags override both; authentication stays.
    let mut cmd = serve_config(&cfg, &["--addr", &flag_addr, "--realm", "from-flag"]);
    cmd.env("REGISTRY_HTTP_ADDR", &env_addr)
        .env("REGISTRY_AUTH_HTPASSWD_PATH", &file);
    let child = spawn_listening(&mut cmd, &flag_addr);
    let resp = raw_get(&flag_addr, "/v2/");
    let env_addr_used = crate::common::listening(&env_addr);
    let (code, log) = stop(child);
    assert!(
        resp.to_lowercase()
            .contains("www-authenticate: basic realm=\"from-flag\""),
        "{resp}"
    );
    assert!(!env_addr_used);
    assert_eq!(code, Some(0));
    assert!(
        log.lines()
            .next()
            .unwrap_or("")
            .contains("; overridden by --addr, --realm"),
        "{log}"
    );
}

#[test]
fn serve_config_requires_client_certificates_from_clientcas() {
    let s = Sample::registry();
    let (certs, cert, key) = self_signed();
    let client = tempfile::tempdir().unwrap();
    let (ca, client_cert, client_key) = client_ca(client.path());
    // skopeo's cert dir: the server's CA (*.crt) and the client's pair (*.cert, *.key).
    let with_cert = tempfile::tempdir().unwrap();
    std::fs::copy(&cert, with_cert.path().join("ca.crt")).unwrap();
    std::fs::copy(&client_cert, with_cert.path().join("client.cert")).unwrap();
    std::fs::copy(&client_key, with_cert.path().join("client.key")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr = crate::common::free_addr();
    let cfg = write_config(
        dir.path(),
        &s,
        &format!(
            "http:\n  addr: {addr}\n  tls:\n    certificate: {}\n    key: {}\n    minimumtls: tls1.2\n",
            cert.display(),
            key.display()
        ),
    );
    let mut cmd = serve_config(&cfg, &[]);
    cmd.env("REGISTRY_HTTP_TLS_CLIENTCAS_0", &ca);
    let child = spawn_listening(&mut cmd, &addr);
    let inspect = |dir: &std::path::Path| {
        Command::new("skopeo")
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(dir)
            .arg(format!("docker://{addr}/team/app/api:latest"))
            .output()
            .unwrap()
    };
    let ok = inspect(with_cert.path());
    let without = inspect(certs.path());
    let (code, log) = stop(child);
    assert!(
        ok.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        hash_bytes(Algorithm::Sha256, &ok.stdout),
        s.tag("team/app/api", "latest")
    );
    assert!(!without.status.success(), "no client certificate, no TLS");
    assert!(log.contains("clientcas 1"), "{log}");
    assert_eq!(code, Some(0));
}

#[test]
fn serve_config_refuses_what_it_cannot_honour() {
    let s = Sample::registry();
    let dir = tempfile::tempdir().unwrap();
    for (rest, env, want) in [
        (
            "auth:\n  token:\n    realm: https://auth.example/token\n    service: registry\n    issuer: x\n    rootcertbundle: /x.pem\n",
            None,
            "auth.token is not supported",
        ),
        (
            "auth:\n  silly: {realm: x, service: y}\n",
            None,
            "auth.silly is not supported",
        ),
        (
            "http:\n  tls:\n    letsencrypt:\n      cachefile: /var/cache/le\n      email: a@example.com\n",
            None,
            "http.tls.letsencrypt is not supported; terminate TLS in front",
        ),
        (
            "http:\n  net: unix\n  addr: /run/registry.sock\n",
            None,
            "http.net unix is not supported",
        ),
        (
            "auth:\n  htpasswd:\n    realm: r\n    path: /nonexistent/htpasswd\n",
            None,
            "/nonexistent/htpasswd",
        ),
        (
            "http:\n  addr: 127.0.0.1:0\n",
            Some(("REGISTRY_AUTH_TOKEN_REALM", "https://auth.example/token")),
            "auth.token is not supported",
        ),
    ] {
        let cfg = write_config(dir.path(), &s, rest);
        let mut cmd = serve_config(&cfg, &["--addr", "127.0.0.1:0"]);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = crate::common::output_within(&mut cmd, 30);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{rest}: {err}");
        assert!(err.contains(want), "{rest}: {err}");
        assert!(out.stdout.is_empty(), "never served: {rest}");
    }
}

#[test]
fn slow_clients_are_cut_at_the_header_timeout_and_free_their_slots() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let s = Sample::registry();
    let (child, addr) = start(
        &s,
        &[
            "--max-connections",
            "8",
            "--header-timeout",
            "1s",
            "--idle-timeout",
            "30s",
        ],
    );
    /// Sends a request head one byte a second; returns how long until the server closed.
    fn slow_client(addr: &str) -> (Duration, bool) {
        let started = Instant::now();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let head = format!(
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
            "a".repeat(60)
        );
        for b in head.bytes() {
            if c.write_all(&[b]).is_err() {
                return (started.elapsed(), false);
            }
            let mut buf = [0u8; 256];
            match c.read(&mut buf) {
                Ok(n) => return (started.elapsed(), n > 0),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (started.elapsed(), false),
            }
        }
        panic!("a one-byte-a-second head ran {:?}", started.elapsed());
    }
    let started = Instant::now();
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || slow_client(&addr))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // While 8 slow ones hold every slot and 12 more wait: served once slots free up.
    let during = raw_get(&addr, "/v2/");
    let during_took = started.elapsed();
    let closed: Vec<(Duration, bool)> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let after = raw_get(&addr, "/v2/");
    let (code, _) = stop(child);
    assert!(during.starts_with("HTTP/1.1 200"), "{during}");
    assert!(during_took < Duration::from_secs(20), "{during_took:?}");
    for (took, answered) in &closed {
        // 20 connections, 8 at a time, 1 s each: about 3 s; the old server held them 30 s.
        assert!(*took < Duration::from_secs(20), "{closed:?}");
        assert!(!answered, "an incomplete head is not answered");
    }
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
    assert_eq!(code, Some(0));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let s = Sample::registry();
    let (child, addr) = start(&s, &["--idle-timeout", "1s", "--header-timeout", "20s"]);
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut closed_after = None;
    for _ in 0..2 {
        write!(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        got.clear();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\n{}") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed mid-response");
            got.extend_from_slice(&buf[..n]);
        }
    }
    // Kept alive for the second request; then nothing: closed after about a second.
    let idle = Instant::now();
    let mut buf = [0u8; 16];
    if let Ok(0) | Err(_) = c.read(&mut buf) {
        closed_after = Some(idle.elapsed());
    }
    let (code, err) = stop(child);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let took = closed_after.expect("closed, not answered");
    // (No lower bound: the server's idle clock starts when it has written the response,
    // before this test reads it, which on a loaded machine can be most of the second.)
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn serve_limits_are_checked_as_usage() {
    let s = Sample::registry();
    for args in [
        ["--max-connections", "0"],
        ["--header-timeout", "0s"],
        ["--idle-timeout", "soon"],
    ] {
        let out = crate::common::output_within(regfsck().arg("serve").args(args).arg(s.root()), 30);
        assert_eq!(out.status.code(), Some(16), "{args:?}");
    }
}
