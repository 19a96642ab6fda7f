//! `serve`'s web UI: the pages rendered by a real browser (headless Chromium) from the binary
//! on the real registry's sample, their numbers checked against `regfsck du --json`; escaping,
//! authentication and routes in-process through the router.

use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use regfsck::layout::Root;
use regfsck::manifest::Role;
use regfsck::serve::{Served, Snapshot, app, auth, router};
use tower::ServiceExt;

use crate::common::Sample;
use crate::serve::{htpasswd, interrupt, raw_get, start};

/// The DOM headless Chromium renders for `url` (scripts would have run; there are none).
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = crate::common::exits(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(url),
        0,
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `data-bytes` numbers of `html`, in document order.
fn sizes(html: &str) -> Vec<u64> {
    let re = regex::Regex::new(r#"data-bytes="(\d+)""#).unwrap();
    re.captures_iter(html)
        .map(|c| c[1].parse().unwrap())
        .collect()
}

/// The rows (`<tr class="CLASS">…</tr>`) of `html`.
fn rows<'a>(html: &'a str, class: &str) -> Vec<&'a str> {
    let start = format!("<tr class=\"{class}\">");
    html.split(start.as_str())
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap())
        .collect()
}

fn stop(mut child: std::process::Child) {
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn chromium_renders_repositories_tags_and_images_with_du_numbers() {
    let s = Sample::registry();
    let (_, du) = s.run_json("du", &["--tags", "--sort", "name"]);
    let (child, addr) = start(&s, &[]);
    let home = dump_dom(&format!("http://{addr}/"));
    let repo_page = dump_dom(&format!("http://{addr}/repo/busybox-oci"));
    let busybox = s.tag("busybox-oci", "1.1");
    let image_page = dump_dom(&format!("http://{addr}/repo/busybox-oci@{busybox}"));
    let index = s.tag("multi/oci-index", "latest");
    let index_page = dump_dom(&format!("http://{addr}/repo/multi/oci-index@{index}"));
    let index_repo = dump_dom(&format!("http://{addr}/repo/multi/oci-index"));
    stop(child);

    // `/`: every repository du lists, in its order, with du's three numbers; the totals.
    let repos = du["repositories"].as_array().unwrap();
    let got = rows(&home, "repository");
    assert_eq!(got.len(), repos.len(), "{home}");
    for (row, r) in got.iter().zip(repos) {
        let name = r["repository"].as_str().unwrap();
        assert!(row.contains(&format!(">{name}</a>")), "{name}: {row}");
        assert!(row.contains(&format!("href=\"/repo/{name}\"")), "{row}");
        let want: Vec<u64> = ["total", "exclusive", "shared"]
            .iter()
            .map(|k| r[k].as_u64().unwrap())
            .collect();
        assert_eq!(sizes(row), want, "{name}");
        let tags = r["tags"].as_array().unwrap().len();
        assert!(
            row.contains(&format!("<td class=\"num\">{tags}</td>")),
            "{row}"
        );
    }
    let registry = home.split("id=\"registry\"").nth(1).unwrap();
    assert_eq!(
        sizes(registry),
        ["blob_bytes", "referenced_bytes", "unreferenced_bytes"]
            .iter()
            .map(|k| du[k].as_u64().unwrap())
            .collect::<Vec<_>>()
    );

    // A repository page: its tags, each with du's size; the exclusive size is what only that
    // image holds: its manifest, config and own layer, not the base layer every image shares.
    let bb = repos
        .iter()
        .find(|r| r["repository"] == "busybox-oci")
        .unwrap();
    let tag_rows = rows(&repo_page, "tag");
    let du_tags = bb["tags"].as_array().unwrap();
    assert_eq!(tag_rows.len(), du_tags.len());
    let m = s.manifest(&busybox);
    let base = m.refs(Role::Layer).next().unwrap().digest;
    let file_size = |d| std::fs::metadata(s.blob_path(d)).unwrap().len();
    for (row, t) in tag_rows.iter().zip(du_tags) {
        let (tag, digest) = (t["tag"].as_str().unwrap(), t["digest"].as_str().unwrap());
        assert!(
            row.contains(&format!("<td class=\"name\">{tag}</td>")),
            "{row}"
        );
        assert!(
            row.contains(&format!("href=\"/repo/busybox-oci@{digest}\"")),
            "{row}"
        );
        let bytes = t["bytes"].as_u64().unwrap();
        assert_eq!(sizes(row), vec![bytes, bytes - file_size(&base)], "{tag}");
        // The push time: the tag's current link's mtime, to the second.
        let mtime = std::fs::metadata(s.current_link("busybox-oci", tag))
            .unwrap()
            .modified()
            .unwrap();
        let pushed = humantime::format_rfc3339_seconds(mtime).to_string();
        assert!(row.contains(&pushed), "{pushed}: {row}");
    }
    // An index's row names its children's platforms, and its exclusive size is the
    // repository's (nothing else in it).
    let oi = repos
        .iter()
        .find(|r| r["repository"] == "multi/oci-index")
        .unwrap();
    let row = rows(&index_repo, "tag")[0];
    assert!(row.contains("linux/amd64, linux/arm64"), "{row}");
    assert_eq!(
        sizes(row),
        vec![
            oi["tags"][0]["bytes"].as_u64().unwrap(),
            oi["exclusive"].as_u64().unwrap()
        ]
    );

    // The image page: the config's platform and creation time, every layer with its size,
    // and the referrer whose subject it is.
    let config = m.refs(Role::Config).next().unwrap().digest;
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.blob_path(&config)).unwrap()).unwrap();
    assert!(image_page.contains(&config.to_string()));
    let platform = format!(
        "{}/{}",
        doc["os"].as_str().unwrap(),
        doc["architecture"].as_str().unwrap()
    );
    assert!(
        image_page.contains(&format!("<dd class=\"platform\">{platform}</dd>")),
        "{image_page}"
    );
    let created = doc["created"].as_str().unwrap();
    assert!(image_page.contains(&format!("<dd class=\"created\">{created}</dd>")));
    let layers = rows(&image_page, "layer");
    assert_eq!(layers.len(), m.refs(Role::Layer).count());
    for (row, l) in layers.iter().zip(m.refs(Role::Layer)) {
        assert!(row.contains(&l.digest.to_string()), "{row}");
        assert_eq!(sizes(row), vec![file_size(&l.digest)]);
    }
    let referrers = image_page.split("id=\"referrers\"").nth(1).unwrap();
    let referrer = s.untagged("busybox-oci");
    assert_eq!(
        s.reference(&referrer, Role::Subject),
        busybox,
        "the sample's referrer"
    );
    assert!(
        referrers.contains(&format!("href=\"/repo/busybox-oci@{referrer}\"")),
        "{referrers}"
    );
    // The index page: both children with their platforms, linked.
    let children = rows(&index_page, "child");
    assert_eq!(children.len(), 2);
    for (row, c) in children.iter().zip(s.manifest(&index).refs(Role::Child)) {
        assert!(
            row.contains(&format!("href=\"/repo/multi/oci-index@{}\"", c.digest)),
            "{row}"
        );
        assert!(row.contains("<td class=\"platform\">linux/"), "{row}");
    }
}

async fn get(app: axum::Router, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn snapshot(s: &Sample) -> Snapshot {
    Snapshot::load(&Root::open(s.root()).unwrap()).unwrap()
}

#[tokio::test]
async fn what_the_layout_says_is_escaped() {
    // Names cannot hold `<`, `&` or quotes (the layout's grammar), but a config blob says
    // anything: its platform and creation time are shown.
    let s = Sample::registry();
    let m = s.tag("busybox-oci", "1.1");
    let config = s.reference(&m, Role::Config);
    let hostile = r#"{"os":"<script>alert(1)</script>","architecture":"a\"&b","created":"<img src=x onerror=alert(2)>"}"#;
    std::fs::write(s.blob_path(&config), hostile).unwrap();
    let (status, body) = get(app(snapshot(&s)), &format!("/repo/busybox-oci@{m}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !body.contains("<script>") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62;/a&#34;&#38;b"),
        "{body}"
    );
    assert!(
        body.contains("&#60;img src=x onerror=alert(2)&#62;"),
        "{body}"
    );
}

#[tokio::test]
async fn pages_routes_and_methods() {
    let s = Sample::registry();
    let a = app(snapshot(&s));
    let (status, body) = get(a.clone(), "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("<!DOCTYPE html>"));
    assert!(
        !body.contains("<script") && !body.contains("src=\"http"),
        "no script, no asset"
    );
    for missing in [
        "/repo/nosuch".to_string(),
        format!("/repo/team/app@{}", s.tag("busybox-oci", "1.1")),
    ] {
        let (status, body) = get(a.clone(), &missing, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert!(body.contains("<h1>Not found</h1>"), "{body}");
    }
    // What is not a page still goes to the API's router.
    let (status, body) = get(a.clone(), "/repo/UPPER", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found\n")
    );
    let (status, body) = get(a.clone(), "/v2/", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "{}"));
    let resp = a
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_pages_require_the_apis_credentials() {
    let s = Sample::registry();
    let served = served_with(&s, Some(&htpasswd(&s, "alice", "s3cret")), &[]);
    let d = s.tag("team/app", "latest");
    for path in [
        "/".to_string(),
        "/repo/team/app".into(),
        format!("/repo/team/app@{d}"),
    ] {
        let (status, body) = get(router(Arc::clone(&served)), &path, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!body.contains("team/app"), "{body}");
        // alice:s3cret
        let basic = [("authorization", "Basic YWxpY2U6czNjcmV0")];
        let (status, body) = get(router(Arc::clone(&served)), &path, &basic).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains("team/app"));
    }
}

/// `/metrics` as `name{labels}` → value.
fn scrape(addr: &str) -> std::collections::BTreeMap<String, u64> {
    let resp = raw_get(addr, "/metrics");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    for t in ["regfsck_http_requests", "regfsck_http_response_body_bytes"] {
        assert!(body.contains(&format!("# TYPE {t} counter\n")), "{body}");
    }
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_count_a_skopeo_pull_by_route_status_and_bytes() {
    let s = Sample::registry();
    let (child, addr) = start(&s, &[]);
    let dest = tempfile::tempdir().unwrap();
    crate::common::exits(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{addr}/busybox-oci:1.1"))
            .arg(format!("dir:{}", dest.path().display())),
        0,
    );
    assert!(raw_get(&addr, "/repo/busybox-oci").starts_with("HTTP/1.1 200"));
    assert!(raw_get(&addr, "/v2/nosuch/tags/list").starts_with("HTTP/1.1 404"));
    let first = scrape(&addr);
    let second = scrape(&addr);
    stop(child);

    let m = s.tag("busybox-oci", "1.1");
    let manifest = s.manifest(&m);
    let blobs: Vec<_> = manifest
        .refs(Role::Config)
        .chain(manifest.refs(Role::Layer))
        .map(|r| r.digest)
        .collect();
    let file_size = |d| std::fs::metadata(s.blob_path(d)).unwrap().len();
    let req = |route: &str, status: u16| {
        format!("regfsck_http_requests_total{{route=\"{route}\",status=\"{status}\"}}")
    };
    let bytes =
        |route: &str| format!("regfsck_http_response_body_bytes_total{{route=\"{route}\"}}");
    // One GET of the manifest and of each blob (skopeo checks the registry with GET /v2/ first).
    assert_eq!(first[&req("manifest", 200)], 1, "{first:?}");
    assert_eq!(first[&bytes("manifest")], file_size(&m));
    assert_eq!(first[&req("blob", 200)], blobs.len() as u64);
    assert_eq!(
        first[&bytes("blob")],
        blobs.iter().map(file_size).sum::<u64>()
    );
    assert!(first[&req("base", 200)] >= 1);
    assert_eq!(first[&req("ui_repo", 200)], 1);
    assert_eq!(first[&req("tags", 404)], 1);
    assert!(
        !first.contains_key(&req("metrics", 200)),
        "counted when answered"
    );
    // The second scrape counts the first, and nothing else changed.
    let mut expected = first.clone();
    expected.insert(req("metrics", 200), 1);
    let sent = second[&bytes("metrics")];
    assert!(sent > 0);
    expected.insert(bytes("metrics"), sent);
    assert_eq!(second, expected);
}

fn served_with(s: &Sample, htpasswd: Option<&std::path::Path>, cors: &[&str]) -> Arc<Served> {
    Arc::new(Served {
        snapshot: snapshot(s),
        htpasswd: htpasswd.map(|f| auth::Htpasswd::load(f).unwrap()),
        realm: "r".into(),
        headers: Vec::new(),
        metrics: Default::default(),
        cors_origins: cors.iter().map(|o| o.to_string()).collect(),
    })
}

async fn call(
    served: &Arc<Served>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> axum::response::Response {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    router(Arc::clone(served))
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header<'a>(r: &'a axum::response::Response, k: &str) -> &'a str {
    r.headers().get(k).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_for_the_given_origin_with_preflight_outside_authentication() {
    let s = Sample::registry();
    let ui = "https://ui.example:8443";
    let served = served_with(&s, Some(&htpasswd(&s, "alice", "s3cret")), &[ui]);
    // The preflight of a credentialed GET: answered without credentials.
    let r = call(
        &served,
        "OPTIONS",
        "/v2/team/app/tags/list",
        &[
            ("origin", ui),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), ui);
    assert_eq!(header(&r, "access-control-allow-credentials"), "true");
    assert!(header(&r, "access-control-allow-methods").contains("GET"));
    assert!(header(&r, "access-control-allow-headers").contains("authorization"));
    // The request itself still needs them, and says so readably to the page.
    let r = call(&served, "GET", "/v2/team/app/tags/list", &[("origin", ui)]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "access-control-allow-origin"), ui);
    let basic = ("authorization", "Basic YWxpY2U6czNjcmV0");
    let d = s.tag("team/app", "latest");
    let r = call(
        &served,
        "GET",
        "/v2/team/app/manifests/latest",
        &[("origin", ui), basic],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), ui);
    assert_eq!(header(&r, "docker-content-digest"), d.to_string());
    assert!(
        header(&r, "access-control-expose-headers").contains("docker-content-digest"),
        "a UI reads the digest"
    );
    // Another origin gets no permission.
    let r = call(
        &served,
        "GET",
        "/v2/team/app/manifests/latest",
        &[("origin", "https://evil.example"), basic],
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), "");
    // `*`: any origin, without credentials.
    let any = served_with(&s, None, &["*"]);
    let r = call(&any, "GET", "/v2/", &[("origin", "https://x.example")]).await;
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert_eq!(header(&r, "access-control-allow-credentials"), "");
    // Without --cors-origin nothing changes: no header, OPTIONS is a write method.
    let none = served_with(&s, None, &[]);
    let r = call(&none, "GET", "/v2/", &[("origin", ui)]).await;
    assert_eq!(header(&r, "access-control-allow-origin"), "");
    let r = call(
        &none,
        "OPTIONS",
        "/v2/team/app/tags/list",
        &[("origin", ui), ("access-control-request-method", "GET")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn cors_origin_from_the_command_line() {
    let s = Sample::registry();
    let (child, addr) = start(&s, &["--cors-origin", "http://ui.example:8080"]);
    let out = crate::common::exits(
        Command::new("curl")
            .args([
                "-si",
                "-X",
                "OPTIONS",
                "-H",
                "Origin: http://ui.example:8080",
            ])
            .args(["-H", "Access-Control-Request-Method: GET"])
            .arg(format!("http://{addr}/v2/_catalog")),
        0,
    );
    stop(child);
    let resp = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(resp.starts_with("http/1.1 200"), "{resp}");
    assert!(
        resp.contains("access-control-allow-origin: http://ui.example:8080\r\n"),
        "{resp}"
    );
    for bad in ["ui.example", "http://ui.example/path", "http://"] {
        let out = crate::common::regfsck()
            .args(["serve", "--cors-origin", bad])
            .arg(s.root())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(16), "{bad}");
    }
}
