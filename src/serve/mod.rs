//! `serve`: the pull side of the distribution API, read-only, over the same layout.
//!
//! At start the layout is scanned once into a [`Snapshot`] (tags, revisions, `_layers` links of
//! every repository); requests are routed by [`routes::route`], which parses names and digests
//! before anything touches the disk. Manifests are served only when the repository links them
//! and their bytes hash to their digest; blobs only when the repository links them, streamed
//! from disk (opened without following symlinks) with single `Range` requests. Every write
//! method answers 405 `UNSUPPORTED`. Outside `/v2`, [`ui`] renders read-only HTML pages over the
//! same snapshot, behind the same authentication.
//!
//! [`run`] drives the router with its own accept loop ([`conn`]): a connection limit, a
//! header timeout, an idle timeout, TLS by rustls ([`tls`]). [`resolve`] merges the command
//! line with the registry's config ([`crate::config::serve_settings`]).

pub mod auth;
pub mod conn;
pub mod metrics;
pub mod routes;
pub mod tls;
pub mod ui;

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::config::{ListenAddr, ServeSettings, TlsSettings};
use crate::digest::{Digest, DigestList, DigestMap, hash_bytes};
use crate::error::{Error, Result};
use crate::graph::{self, LayerLinks};
use crate::layout::{self, RepoName, Root, TagName};
use crate::manifest::{MAX_MANIFEST_SIZE, served_media_type};
use crate::scan;
use crate::storage::Bounded;
pub use conn::Limits;
use routes::{Route, route};

/// One repository as the server sees it.
#[derive(Debug, Default)]
struct RepoView {
    tags: BTreeMap<TagName, Digest>,
    revisions: DigestList,
    /// `_layers` link digest → canonical blob digest.
    layers: LayerLinks,
}

/// The layout, read once.
#[derive(Debug)]
pub struct Snapshot {
    root: Root,
    repos: BTreeMap<RepoName, RepoView>,
    /// What `/v2/_catalog` lists: the repositories the registry lists (those with `_layers`).
    catalog: Vec<String>,
    blobs: DigestMap<()>,
    /// What the web UI shows.
    ui: Arc<ui::Model>,
}

impl Snapshot {
    /// Scans the layout.
    ///
    /// # Errors
    /// When the root cannot be listed.
    pub fn load(root: &Root) -> Result<Self> {
        let inv = scan::scan(root, scan::Depth::Fast)?;
        let g = graph::build(root, &inv, std::time::SystemTime::now());
        let repos = g
            .repos
            .iter()
            .map(|(name, rg)| {
                let tags = rg
                    .tags
                    .iter()
                    .filter_map(|(t, target)| Some((t.clone(), target.digest()?)))
                    .collect();
                let view = RepoView {
                    tags,
                    revisions: rg.revisions.clone(),
                    layers: rg.layers.clone(),
                };
                (name.clone(), view)
            })
            .collect();
        Ok(Snapshot {
            root: root.clone(),
            repos,
            catalog: crate::action::ls::catalog(&inv).repositories,
            blobs: inv.blobs.keys().map(|d| (*d, ())).collect(),
            ui: Arc::new(ui::Model::build(&inv, g)),
        })
    }
}

const API_VERSION: &str = "registry/2.0";
const JSON: &str = "application/json; charset=utf-8";

fn error(status: StatusCode, code: &str, message: &str, detail: serde_json::Value) -> Response {
    let mut e = json!({"code": code, "message": message});
    if !detail.is_null() {
        e["detail"] = detail;
    }
    let body = serde_json::to_vec(&json!({"errors": [e]})).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

fn unsupported() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "The operation is unsupported.",
        serde_json::Value::Null,
    )
}

/// What a server needs: the layout, and optionally the users allowed in.
#[derive(Debug)]
pub struct Served {
    /// The layout.
    pub snapshot: Snapshot,
    /// Basic authentication, when configured.
    pub htpasswd: Option<auth::Htpasswd>,
    /// The realm of the `Basic` challenge.
    pub realm: String,
    /// Added to every response (the config's `http.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// What `/metrics` says.
    pub metrics: metrics::Metrics,
    /// Origins allowed by CORS (`*`: any); none: no CORS headers.
    pub cors_origins: Vec<String>,
}

/// The router: everything goes through [`handle`]; a layer adds the API version header and
/// the access log.
pub fn app(snapshot: Snapshot) -> Router {
    router(Arc::new(Served {
        snapshot,
        htpasswd: None,
        realm: String::new(),
        headers: Vec::new(),
        metrics: metrics::Metrics::default(),
        cors_origins: Vec::new(),
    }))
}

/// The router over a configured server.
pub fn router(served: Arc<Served>) -> Router {
    let mut r = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&served));
    if let Some(cors) = cors(&served.cors_origins) {
        // Inside the log and the counters, outside the authentication: a browser sends a
        // preflight without credentials.
        r = r.layer(cors);
    }
    r.layer(middleware::from_fn_with_state(served, stamp_and_log))
}

/// Checks a `--cors-origin`: `*`, or `SCHEME://HOST[:PORT]` as a browser sends it in `Origin`.
///
/// # Errors
/// A message for clap when it is neither.
pub fn parse_origin(s: &str) -> std::result::Result<String, String> {
    let ok = s == "*"
        || s.split_once("://").is_some_and(|(scheme, host)| {
            !scheme.is_empty()
                && !host.is_empty()
                && !host.contains('/')
                && HeaderValue::from_str(s).is_ok()
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err("an origin is SCHEME://HOST[:PORT] (no path), or *".into())
    }
}

/// The CORS layer for `origins`, `None` when there are none: the registry's pull API and the
/// pages, read with credentials (unless `*` is among them: then for any origin, without).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::ACCEPT,
            header::CACHE_CONTROL,
            header::RANGE,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            HeaderName::from_static("docker-content-digest"),
            HeaderName::from_static("docker-distribution-api-version"),
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::LINK,
            header::ETAG,
            header::WWW_AUTHENTICATE,
        ])
        .max_age(std::time::Duration::from_secs(600));
    Some(if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer
            .allow_origin(AllowOrigin::list(
                origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
            ))
            .allow_credentials(true)
    })
}

/// Writes one line of the server's log on stderr.
#[allow(clippy::print_stderr)] // The server's log goes to stderr.
pub fn log(line: &str) {
    eprintln!("{line}");
}

async fn stamp_and_log(State(served): State<Arc<Served>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let label = route_label(&path);
    let mut resp = served.metrics.count(label, next.run(req).await);
    let h = resp.headers_mut();
    h.insert(
        "Docker-Distribution-Api-Version",
        HeaderValue::from_static(API_VERSION),
    );
    for (k, v) in &served.headers {
        h.append(k.clone(), v.clone());
    }
    log(&format!(
        "{method} {path} {} {:.1}ms",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    ));
    resp
}

/// What a path is, for metrics.
fn route_label(path: &str) -> &'static str {
    if path == METRICS_PATH {
        return "metrics";
    }
    match ui::route(path) {
        Some(page) => page.label(),
        None => route(path).label(),
    }
}

const METRICS_PATH: &str = "/metrics";

async fn handle(State(served): State<Arc<Served>>, req: Request) -> Response {
    if served.htpasswd.is_some() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let served2 = Arc::clone(&served);
        let ok = tokio::task::spawn_blocking(move || {
            served2
                .htpasswd
                .as_ref()
                .is_some_and(|h| h.check(given.as_deref()))
        })
        .await
        .unwrap_or(false);
        if !ok {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
                serde_json::Value::Null,
            );
            insert(
                r.headers_mut(),
                header::WWW_AUTHENTICATE,
                &format!("Basic realm=\"{}\"", served.realm.replace('"', "")),
            );
            return r;
        }
    }
    let s = &served.snapshot;
    let path = req.uri().path();
    let page = ui::route(path);
    if page.is_some() || path == METRICS_PATH {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "GET, HEAD")],
            )
                .into_response();
        }
        return match page {
            Some(page) => ui::render(&s.ui, &s.root, page).await,
            None => served.metrics.render(),
        };
    }
    let r = route(req.uri().path());
    if r == Route::NotFound {
        return not_found();
    }
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return unsupported();
    }
    let head = method == Method::HEAD;
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers();
    match r {
        Route::Base => (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], "{}").into_response(),
        Route::Catalog => catalog(s, &query),
        Route::Tags(name) => tags(s, &name, &query),
        Route::Manifest(name, reference) => manifest(s, &name, &reference, headers, head).await,
        Route::Blob(name, digest) => blob(s, &name, &digest, headers, head).await,
        Route::Upload(_) => unsupported(),
        Route::NameInvalid(n) => error(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
            json!({"name": n, "reason": "repository name must not be more than 255 characters"}),
        ),
        Route::NotFound => not_found(),
    }
}

/// `n` and `last` from a query string; `Err` holds an `n` that is not a number.
fn pagination(query: &str) -> std::result::Result<(Option<usize>, Option<String>), String> {
    let mut n = None;
    let mut last = None;
    for (k, v) in form_urlencoded(query) {
        match k.as_str() {
            "n" => match v.parse::<usize>() {
                Ok(x) => n = Some(x),
                Err(_) => return Err(v),
            },
            "last" => last = Some(v),
            _ => {}
        }
    }
    Ok((n, last))
}

fn bad_number(n: impl serde::Serialize) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "PAGINATION_NUMBER_INVALID",
        "invalid number of results requested",
        json!({ "n": n }),
    )
}

fn form_urlencoded(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match decoded {
            Some(x) => {
                out.push(x);
                i += 3;
            }
            None => {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// One page of `items` after `last`, and the `Link` header when more remain.
fn page(
    items: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
    path: &str,
) -> (Vec<String>, Option<String>) {
    let start = match last {
        Some(l) => items.partition_point(|x| x.as_str() <= l),
        None => 0,
    };
    let rest = &items[start..];
    match n {
        None => (rest.to_vec(), None),
        Some(n) => {
            let page: Vec<String> = rest.iter().take(n).cloned().collect();
            let link = (n > 0 && rest.len() > n).then(|| {
                format!(
                    "<{path}?last={}&n={n}>; rel=\"next\"",
                    percent_encode(page.last().map(String::as_str).unwrap_or(""))
                )
            });
            (page, link)
        }
    }
}

fn with_link(mut resp: Response, link: Option<String>) -> Response {
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

fn catalog(s: &Snapshot, query: &str) -> Response {
    let (n, last) = match pagination(query) {
        Ok(p) => p,
        Err(v) => return bad_number(v),
    };
    let n = n.unwrap_or(100);
    if n > 1000 {
        return bad_number(n);
    }
    let (page, link) = page(s.catalog.clone(), Some(n), last.as_deref(), "/v2/_catalog");
    let body = serde_json::to_vec(&json!({"repositories": page})).unwrap_or_default();
    with_link(
        (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response(),
        link,
    )
}

fn tags(s: &Snapshot, name: &RepoName, query: &str) -> Response {
    let Some(repo) = s.repos.get(name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
            json!({"name": name.as_str()}),
        );
    };
    let (n, last) = match pagination(query) {
        Ok(p) => p,
        Err(v) => return bad_number(v),
    };
    let all: Vec<String> = repo.tags.keys().map(|t| t.to_string()).collect();
    let (page, link) = page(all, n, last.as_deref(), &format!("/v2/{name}/tags/list"));
    let body =
        serde_json::to_vec(&json!({"name": name.as_str(), "tags": page})).unwrap_or_default();
    with_link(
        (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response(),
        link,
    )
}

/// Whether `If-None-Match` matches the entity tag `"<d>"` (RFC 9110 13.1.2: `*` matches any
/// current representation, and the comparison is weak, so `W/"<d>"` matches too). As the
/// registry, an unquoted digest is accepted. Only asked once the repository holds `d`.
fn matches_etag(headers: &HeaderMap, d: &Digest) -> bool {
    let want = d.to_string();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| {
            if t == "*" {
                return true;
            }
            let t = t.strip_prefix("W/").unwrap_or(t);
            let t = t
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(t);
            t == want
        })
}

/// `304 Not Modified`, with the validators a `200` would carry.
fn not_modified(d: &Digest) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    let h = resp.headers_mut();
    insert(h, header::ETAG, &format!("\"{d}\""));
    insert(h, "Docker-Content-Digest", &d.to_string());
    resp
}

fn manifest_unknown(name: &RepoName, reference: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "manifest unknown",
        json!({"Name": name.as_str(), "Revision": reference}),
    )
}

async fn manifest(
    s: &Snapshot,
    name: &RepoName,
    reference: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let Some(repo) = s.repos.get(name) else {
        return manifest_unknown(name, reference);
    };
    let d = match reference.parse::<Digest>() {
        Ok(d) => d,
        // As the registry: a reference that is not a digest is looked up as a tag.
        Err(_) => match TagName::parse(reference)
            .ok()
            .and_then(|t| repo.tags.get(&t))
        {
            Some(d) => *d,
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                    json!({"Tag": reference}),
                );
            }
        },
    };
    // Only a manifest this repository holds is "not modified": a 304 must not tell that
    // another repository has it.
    if !repo.revisions.contains(&d) || !s.blobs.contains_key(&d) {
        return manifest_unknown(name, &d.to_string());
    }
    if matches_etag(headers, &d) {
        return not_modified(&d);
    }
    let root = s.root.clone();
    let rel = layout::blob_data(&d);
    let bytes =
        match tokio::task::spawn_blocking(move || root.read_small(&rel, MAX_MANIFEST_SIZE)).await {
            Ok(Ok(Bounded::Content(b))) => b,
            _ => return manifest_unknown(name, &d.to_string()),
        };
    // Served only if the bytes are what the digest says.
    if hash_bytes(d.algorithm(), &bytes) != d {
        return error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest blob does not match its digest",
            json!({"Name": name.as_str(), "Revision": d.to_string()}),
        );
    }
    let media_type = served_media_type(&bytes).unwrap_or_else(|| "application/octet-stream".into());
    let len = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    insert(h, header::CONTENT_TYPE, &media_type);
    insert(h, header::CONTENT_LENGTH, &len.to_string());
    insert(h, "Docker-Content-Digest", &d.to_string());
    insert(h, header::ETAG, &format!("\"{d}\""));
    resp
}

/// `len` bytes of `rel` from `start`, in ranged reads of 8 MiB on a blocking thread, a few
/// ahead of the client.
fn ranged(
    root: Root,
    rel: String,
    start: u64,
    len: u64,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    const CHUNK: u64 = 8 << 20;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        let mut at = start;
        let end = start + len;
        while at < end {
            let n = CHUNK.min(end - at);
            let r = root
                .storage()
                .read_range(&rel, at, n)
                .map(bytes::Bytes::from);
            let failed = r.is_err();
            if tx.blocking_send(r).is_err() || failed {
                return;
            }
            at += n;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

fn insert(h: &mut HeaderMap, k: impl axum::http::header::IntoHeaderName, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(k, v);
    }
}

/// A single `bytes=` range within `size`: `Ok(None)` when there is none (or it is one this
/// server ignores, such as several ranges), `Err(())` when it cannot be satisfied.
fn parse_range(headers: &HeaderMap, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end: u64 = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                b.parse().map_err(|_| ())?
            };
            if start >= size || end < start {
                return Err(());
            }
            (start, end.min(size - 1))
        }
        (true, true) => return Ok(None),
    };
    Ok(Some(range))
}

async fn blob(
    s: &Snapshot,
    name: &RepoName,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let d: Digest = match digest.parse() {
        Ok(d) => d,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                json!(digest),
            );
        }
    };
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
            json!(d.to_string()),
        )
    };
    let Some(canonical) = s.repos.get(name).and_then(|r| r.layers.get(&d)) else {
        return unknown();
    };
    if !s.blobs.contains_key(&canonical) {
        return unknown();
    }
    if matches_etag(headers, &canonical) {
        return not_modified(&canonical);
    }
    let rel = layout::blob_data(&canonical);
    // A local file is streamed from disk; other storage in ranged reads.
    let file = match s.root.storage().local_root() {
        Some(_) => match s.root.storage().open(&rel) {
            Ok(f) => Some(tokio::fs::File::from_std(f)),
            Err(_) => return unknown(),
        },
        None => None,
    };
    let size = match &file {
        Some(f) => match f.metadata().await {
            Ok(m) if m.is_file() => m.len(),
            _ => return unknown(),
        },
        None => match s.root.storage().stat(&rel) {
            Ok(m) if m.kind == crate::storage::Kind::File => m.size,
            _ => return unknown(),
        },
    };
    let (status, start, len) = match parse_range(headers, size) {
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Err(()) => {
            let mut r = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalid range: failed to overlap",
            )
                .into_response();
            insert(
                r.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return r;
        }
    };
    let body = if head {
        Body::empty()
    } else if let Some(mut file) = file {
        if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
            return unknown();
        }
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file.take(len),
            1 << 20,
        ))
    } else {
        Body::from_stream(ranged(s.root.clone(), rel, start, len))
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    insert(h, header::CONTENT_TYPE, "application/octet-stream");
    insert(h, header::CONTENT_LENGTH, &len.to_string());
    insert(h, "Docker-Content-Digest", &canonical.to_string());
    insert(h, header::ETAG, &format!("\"{canonical}\""));
    insert(h, header::CACHE_CONTROL, "max-age=31536000");
    insert(h, header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    resp
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub addr: ListenAddr,
    /// htpasswd file for basic authentication.
    pub htpasswd: Option<PathBuf>,
    /// Realm of the basic-auth challenge.
    pub realm: String,
    /// HTTPS: certificate, key, client CAs, version floor, cipher suites.
    pub tls: Option<TlsSettings>,
    /// Headers added to every response (name, value).
    pub headers: Vec<(String, String)>,
    /// Origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// Timeouts and the connection limit.
    pub limits: Limits,
}

/// What the command line says (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--addr`.
    pub addr: Option<ListenAddr>,
    /// `--htpasswd`.
    pub htpasswd: Option<PathBuf>,
    /// `--realm`.
    pub realm: Option<String>,
    /// `--tls-cert` and `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--cors-origin`.
    pub cors_origins: Vec<String>,
    /// `--header-timeout`, `--idle-timeout`, `--max-connections`.
    pub limits: Limits,
}

/// The realm when neither the command line nor the config gives one.
pub const DEFAULT_REALM: &str = "regfsck";

/// Merges the command line, the registry's config (its path and what [`serve_settings`]
/// read from it) and the defaults, in that order of precedence, key by key: `--addr` over
/// `http.addr` over 127.0.0.1:5000; `--tls-cert`/`--tls-key` over `http.tls.certificate`/`key`
/// (the config's client CAs, TLS floor and cipher suites still apply); `--htpasswd` over
/// `auth.htpasswd.path`; `--realm` over `auth.htpasswd.realm` over `regfsck`. Nothing on the
/// command line turns off TLS or authentication the config asks for.
///
/// Also returns the start-up log line saying what came from the config (`None` without one).
///
/// [`serve_settings`]: crate::config::serve_settings
pub fn resolve(
    flags: Flags,
    config: Option<(&Path, &ServeSettings)>,
) -> (ServeOptions, Option<String>) {
    let empty = ServeSettings::default();
    let c = config.map_or(&empty, |(_, c)| c);
    let mut overridden = Vec::new();
    let mut over = |flag: &str, given: bool, in_config: bool| {
        if given && in_config {
            overridden.push(flag.to_string());
        }
    };
    over("--addr", flags.addr.is_some(), c.addr.is_some());
    over("--tls-cert/--tls-key", flags.tls.is_some(), c.tls.is_some());
    over("--htpasswd", flags.htpasswd.is_some(), c.htpasswd.is_some());
    let config_realm = c.htpasswd.as_ref().and_then(|h| h.realm.clone());
    over("--realm", flags.realm.is_some(), config_realm.is_some());
    let tls = match (flags.tls, &c.tls) {
        (Some((certificate, key)), Some(t)) => Some(TlsSettings {
            certificate,
            key,
            ..t.clone()
        }),
        (Some((certificate, key)), None) => Some(TlsSettings {
            certificate,
            key,
            client_cas: Vec::new(),
            minimum: crate::config::TlsVersion::default(),
            cipher_suites: Vec::new(),
        }),
        (None, t) => t.clone(),
    };
    let opts = ServeOptions {
        addr: flags.addr.or(c.addr).unwrap_or(ListenAddr::DEFAULT),
        htpasswd: flags
            .htpasswd
            .or_else(|| c.htpasswd.as_ref().map(|h| h.path.clone())),
        realm: flags
            .realm
            .or(config_realm)
            .unwrap_or_else(|| DEFAULT_REALM.to_string()),
        tls,
        headers: c.headers.clone(),
        cors_origins: flags.cors_origins,
        limits: flags.limits,
    };
    let line = config.map(|(path, c)| {
        let taken = c.taken();
        let mut line = format!(
            "regfsck: from {}: {}",
            path.display(),
            if taken.is_empty() {
                "nothing for serve (no http.addr, http.tls, http.headers or auth)".to_string()
            } else {
                taken.join(", ")
            }
        );
        if !overridden.is_empty() {
            line.push_str(&format!("; overridden by {}", overridden.join(", ")));
        }
        if !c.not_applied.is_empty() {
            line.push_str(&format!("; not applied: {}", c.not_applied.join(", ")));
        }
        for n in &c.notes {
            line.push_str(&format!("; {n}"));
        }
        line
    });
    (opts, line)
}

fn header_pairs(pairs: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>> {
    pairs
        .iter()
        .map(|(k, v)| {
            let bad = |why: String| Error::Config {
                path: PathBuf::from("http.headers"),
                reason: why,
            };
            Ok((
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| bad(format!("{k:?}: {e}")))?,
                HeaderValue::from_str(v).map_err(|e| bad(format!("{k}: {v:?}: {e}")))?,
            ))
        })
        .collect()
}

/// Binds `addr`; `:PORT` is every interface: IPv6 with IPv4 where the system has IPv6, else
/// IPv4.
async fn bind(addr: ListenAddr) -> Result<tokio::net::TcpListener> {
    let try_bind = |a: SocketAddr| async move {
        tokio::net::TcpListener::bind(a)
            .await
            .map_err(|e| Error::io(a.to_string(), e))
    };
    match addr {
        ListenAddr::Socket(a) => try_bind(a).await,
        ListenAddr::Any(port) => {
            match try_bind((std::net::Ipv6Addr::UNSPECIFIED, port).into()).await {
                Ok(l) => Ok(l),
                Err(_) => try_bind((std::net::Ipv4Addr::UNSPECIFIED, port).into()).await,
            }
        }
    }
}

/// Serves `root` on `opts.addr` until `interrupt` is set (Ctrl-C, SIGTERM), then stops
/// accepting and gives open requests up to 10 s. `ready` is called with the bound address.
///
/// # Errors
/// When the layout, the htpasswd file, the certificate, key or CAs cannot be read, or the
/// address cannot be bound.
pub fn run(
    root: &Root,
    opts: &ServeOptions,
    interrupt: &AtomicBool,
    ready: &mut dyn FnMut(SocketAddr),
) -> Result<()> {
    let htpasswd = match &opts.htpasswd {
        Some(p) => Some(auth::Htpasswd::load(p)?),
        None => None,
    };
    let acceptor = match &opts.tls {
        Some(t) => {
            let (config, missing) = tls::server_config(t)?;
            if !missing.is_empty() {
                log(&format!(
                    "regfsck: http.tls.ciphersuites: not offered by this server, left out: {}",
                    missing.join(", ")
                ));
            }
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        }
        None => None,
    };
    let served = Arc::new(Served {
        snapshot: Snapshot::load(root)?,
        htpasswd,
        realm: opts.realm.clone(),
        headers: header_pairs(&opts.headers)?,
        metrics: metrics::Metrics::default(),
        cors_origins: opts.cors_origins.clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let listener = rt.block_on(bind(opts.addr))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io(opts.addr.to_string(), e))?;
    ready(bound);
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while !interrupt.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = tx.send(true);
        });
        rt.block_on(conn::accept_loop(
            listener,
            acceptor,
            router(served),
            opts.limits,
            rx,
        ));
        // Let the watcher thread finish if the server stopped on its own.
        interrupt.store(true, Ordering::Relaxed);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HtpasswdSettings, TlsVersion};

    fn etag(v: &str, d: &Digest) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        matches_etag(&h, d)
    }

    #[test]
    fn if_none_match_is_weak_and_takes_a_star() {
        let d = hash_bytes(crate::digest::Algorithm::Sha256, b"x");
        let other = hash_bytes(crate::digest::Algorithm::Sha256, b"y");
        for yes in [
            format!("\"{d}\""),
            format!("W/\"{d}\""),
            format!("{d}"),
            "*".to_string(),
            format!("\"{other}\", W/\"{d}\""),
        ] {
            assert!(etag(&yes, &d), "{yes}");
        }
        for no in [format!("\"{other}\""), "W/\"\"".into(), "\"*\"".to_string()] {
            assert!(!etag(&no, &d), "{no}");
        }
        assert!(!matches_etag(&HeaderMap::new(), &d));
    }

    #[test]
    fn flags_over_config_over_defaults() {
        let (o, line) = resolve(Flags::default(), None);
        assert_eq!(o.addr, ListenAddr::DEFAULT);
        assert_eq!((o.htpasswd, o.realm.as_str()), (None, DEFAULT_REALM));
        assert!(o.tls.is_none() && line.is_none());
        let config = ServeSettings {
            addr: Some(ListenAddr::Any(5000)),
            tls: Some(TlsSettings {
                certificate: "c.pem".into(),
                key: "k.pem".into(),
                client_cas: vec!["ca.pem".into()],
                minimum: TlsVersion::Tls13,
                cipher_suites: Vec::new(),
            }),
            htpasswd: Some(HtpasswdSettings {
                path: "htpasswd".into(),
                realm: Some("cfg".into()),
            }),
            not_applied: vec!["http.secret".into()],
            ..ServeSettings::default()
        };
        let path = Path::new("config.yml");
        let (o, line) = resolve(Flags::default(), Some((path, &config)));
        assert_eq!(o.addr, ListenAddr::Any(5000));
        assert_eq!(o.htpasswd, Some(PathBuf::from("htpasswd")));
        assert_eq!(o.realm, "cfg");
        assert_eq!(o.tls, config.tls);
        let line = line.unwrap();
        assert!(
            line.starts_with(
                "regfsck: from config.yml: http.addr :5000, http.tls (certificate c.pem"
            ),
            "{line}"
        );
        assert!(line.ends_with("; not applied: http.secret"), "{line}");
        let flags = Flags {
            addr: Some(ListenAddr::DEFAULT),
            realm: Some("flag".into()),
            tls: Some(("f.pem".into(), "fk.pem".into())),
            ..Flags::default()
        };
        let (o, line) = resolve(flags, Some((path, &config)));
        assert_eq!(o.addr, ListenAddr::DEFAULT);
        assert_eq!(o.realm, "flag");
        assert_eq!(o.htpasswd, Some(PathBuf::from("htpasswd")), "auth stays");
        let t = o.tls.unwrap();
        assert_eq!(t.certificate, PathBuf::from("f.pem"));
        assert_eq!(
            t.client_cas,
            vec![PathBuf::from("ca.pem")],
            "client CAs stay"
        );
        assert!(
            line.unwrap()
                .contains("; overridden by --addr, --tls-cert/--tls-key, --realm")
        );
    }
}
