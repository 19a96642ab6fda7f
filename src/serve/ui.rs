//! The web UI of `serve`: server-rendered, read-only HTML pages over the same snapshot as the
//! API, for a person with a browser.
//!
//! - `/`: every repository with its tag count and what [`du`] says of it (total, exclusive and
//!   shared bytes), and the registry's totals;
//! - `/repo/NAME`: its tags (digest, size, exclusive size, push time, platforms of an index) and
//!   untagged manifests;
//! - `/repo/NAME@DIGEST`: one manifest: config (platform, creation time), layers, index
//!   children, referrers (manifests of the repository whose `subject` it is).
//!
//! `@` and `:` cannot be part of a repository name, so these paths are unambiguous, and none
//! starts with `/v2`. Templates are compiled in (askama, `templates/serve/`), escape every value
//! they print, and need no script nor any asset from elsewhere (the CSS is inline).
//!
//! The sizes: a repository's are [`du::usage`]'s. An image's *size* is the bytes of its manifest
//! and everything it refers to (configs, layers, children recursively: `du --tags`), its
//! *exclusive* size the part of that no manifest outside the image refers to (in any
//! repository; the same manifest linked in two repositories is one manifest).

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustc_hash::FxHashMap;

use crate::action::du::{self, SortBy};
use crate::digest::{Digest, DigestMap};
use crate::graph::manifest::{MAX_MANIFEST_SIZE, Manifest, Role};
use crate::graph::{Graph, TagTarget};
use crate::layout::{self, RepoName, Root};
use crate::scan::Inventory;
use crate::storage::Bounded;

/// A page of the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/`
    Home,
    /// `/repo/NAME`
    Repo(RepoName),
    /// `/repo/NAME@DIGEST`
    Image(RepoName, Digest),
}

impl Page {
    /// The page's name in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Page::Home => "ui_home",
            Page::Repo(_) => "ui_repo",
            Page::Image(..) => "ui_image",
        }
    }
}

/// The page a path asks for; `None` for anything else (the API's routes, or a path under
/// `/repo/` whose name or digest does not parse).
pub fn route(path: &str) -> Option<Page> {
    if path == "/" {
        return Some(Page::Home);
    }
    let rest = path.strip_prefix("/repo/")?;
    match rest.split_once('@') {
        Some((name, digest)) => Some(Page::Image(
            RepoName::parse(name).ok()?,
            digest.parse().ok()?,
        )),
        None => RepoName::parse(rest).ok().map(Page::Repo),
    }
}

/// What the pages are made of, computed once when the layout is loaded.
#[derive(Debug)]
pub struct Model {
    usage: du::Usage,
    graph: Graph,
    /// Size of every blob in the blob store.
    sizes: DigestMap<u64>,
    /// Blob → the manifests that refer to it directly (as config, layer or child; through
    /// digest aliases too).
    holders: FxHashMap<Digest, Vec<Digest>>,
}

impl Model {
    /// Builds the model from the scan and the graph.
    pub fn build(inv: &Inventory, mut graph: Graph) -> Self {
        let usage = du::usage(inv, &graph, false, SortBy::Name);
        graph.findings = Vec::new();
        graph.marked = Default::default();
        let mut holders: FxHashMap<Digest, Vec<Digest>> = FxHashMap::default();
        for (m, d) in graph
            .manifests
            .keys()
            .filter_map(|d| Some((graph.manifest(d)?, d)))
        {
            for r in m.references.iter().filter(|r| r.role != Role::Subject) {
                holders.entry(r.digest).or_default().push(*d);
                if let Some(c) = graph.aliases.get(&r.digest) {
                    holders.entry(*c).or_default().push(*d);
                }
            }
        }
        Model {
            usage,
            graph,
            sizes: inv.blobs.iter().map(|(d, b)| (*d, b.size())).collect(),
            holders,
        }
    }

    /// An image's size and exclusive size (see the module documentation).
    fn image_sizes(&self, d: &Digest) -> (u64, u64) {
        let closure = self.graph.closure(d);
        let (mut total, mut exclusive) = (0, 0);
        for b in &closure {
            let Some(size) = self.sizes.get(b) else {
                continue;
            };
            total += size;
            let only_inside = self
                .holders
                .get(b)
                .is_none_or(|hs| hs.iter().all(|h| closure.contains(h)));
            if only_inside {
                exclusive += size;
            }
        }
        (total, exclusive)
    }
}

/// A size in bytes, shown short with the exact number in `data-bytes` and the tooltip.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Bytes.
    pub bytes: u64,
}

impl Size {
    fn human(&self) -> String {
        human_bytes(self.bytes)
    }
}

/// `1536` → `1.5 KiB`; below 1 KiB the exact number of bytes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn short(d: &Digest) -> String {
    let hex = d.hex();
    format!("{}:{}", d.algorithm().name(), &hex[..hex.len().min(12)])
}

struct HomeRow {
    name: String,
    tags: usize,
    total: Size,
    exclusive: Size,
    shared: Size,
}

#[derive(Template)]
#[template(path = "serve/home.html")]
struct HomePage {
    repos: Vec<HomeRow>,
    total: Size,
    referenced: Size,
    unreferenced: Size,
}

struct TagRow {
    tag: String,
    digest: Option<String>,
    short: String,
    kind: &'static str,
    size: Size,
    exclusive: Size,
    pushed: String,
    platforms: String,
}

struct ManifestRow {
    digest: String,
    short: String,
    kind: &'static str,
    size: Size,
}

#[derive(Template)]
#[template(path = "serve/repo.html")]
struct RepoPage {
    name: String,
    total: Size,
    exclusive: Size,
    shared: Size,
    tags: Vec<TagRow>,
    untagged: Vec<ManifestRow>,
}

struct BlobRow {
    digest: String,
    media_type: String,
    size: Option<Size>,
}

struct ConfigView {
    blob: BlobRow,
    platform: String,
    created: String,
}

struct ChildRow {
    digest: String,
    short: String,
    platform: String,
    media_type: String,
    size: Option<Size>,
    here: bool,
}

#[derive(Template)]
#[template(path = "serve/image.html")]
struct ImagePage {
    repo: String,
    digest: String,
    media_type: &'static str,
    tags: Vec<String>,
    manifest_size: Option<Size>,
    size: Size,
    exclusive: Size,
    config: Option<ConfigView>,
    layers: Vec<BlobRow>,
    children: Vec<ChildRow>,
    referrers: Vec<ManifestRow>,
    parents: Vec<ManifestRow>,
}

#[derive(Template)]
#[template(path = "serve/missing.html")]
struct MissingPage {
    what: String,
}

fn html(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot render the page: {e}\n"),
        )
            .into_response(),
    }
}

fn missing(what: String) -> Response {
    html(StatusCode::NOT_FOUND, &MissingPage { what })
}

/// Renders `page` (reads what it shows beyond the model, manifests and configs, on a blocking
/// thread).
pub async fn render(model: &std::sync::Arc<Model>, root: &Root, page: Page) -> Response {
    let (model, root) = (std::sync::Arc::clone(model), root.clone());
    tokio::task::spawn_blocking(move || match page {
        Page::Home => home(&model),
        Page::Repo(name) => repo(&model, &root, &name),
        Page::Image(name, d) => image(&model, &root, &name, &d),
    })
    .await
    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn home(m: &Model) -> Response {
    let repos = m
        .usage
        .repositories
        .iter()
        .map(|r| HomeRow {
            tags: RepoName::parse(&r.repository)
                .ok()
                .and_then(|n| m.graph.repos.get(&n))
                .map_or(0, |rg| rg.tags.len()),
            name: r.repository.clone(),
            total: Size { bytes: r.total },
            exclusive: Size { bytes: r.exclusive },
            shared: Size { bytes: r.shared },
        })
        .collect();
    html(
        StatusCode::OK,
        &HomePage {
            repos,
            total: Size {
                bytes: m.usage.blob_bytes,
            },
            referenced: Size {
                bytes: m.usage.referenced_bytes,
            },
            unreferenced: Size {
                bytes: m.usage.unreferenced_bytes,
            },
        },
    )
}

fn kind_word(m: Option<&Manifest>) -> &'static str {
    use crate::graph::manifest::ManifestKind as K;
    match m.map(|m| m.kind) {
        Some(K::DockerV2) => "Docker image",
        Some(K::DockerList) => "Docker list",
        Some(K::DockerV1) => "Docker schema 1",
        Some(K::OciManifest) => "OCI image",
        Some(K::OciIndex) => "OCI index",
        None => "unreadable",
    }
}

/// Reads a small blob and parses it as JSON, `None` when it cannot be.
fn read_json(root: &Root, d: &Digest) -> Option<serde_json::Value> {
    match root.read_small(&layout::blob_data(d), MAX_MANIFEST_SIZE) {
        Ok(Bounded::Content(b)) => serde_json::from_slice(&b).ok(),
        _ => None,
    }
}

/// `os/architecture/variant` of a platform object (an index entry's `platform`, or an image
/// config).
fn platform(v: &serde_json::Value) -> String {
    ["os", "architecture", "variant"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(|x| x.as_str()))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Digest (as text) → platform, of an index's entries.
fn child_platforms(root: &Root, index: &Digest) -> BTreeMap<String, String> {
    let Some(doc) = read_json(root, index) else {
        return BTreeMap::new();
    };
    doc.get("manifests")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let d = e.get("digest")?.as_str()?.to_string();
            Some((d, e.get("platform").map(platform).unwrap_or_default()))
        })
        .collect()
}

fn repo(m: &Model, root: &Root, name: &RepoName) -> Response {
    let Some(rg) = m.graph.repos.get(name) else {
        return missing(format!("repository {name}"));
    };
    let usage = m
        .usage
        .repositories
        .iter()
        .find(|r| r.repository == name.as_str());
    let size = |f: fn(&du::RepoUsage) -> u64| Size {
        bytes: usage.map_or(0, f),
    };
    let tags = rg
        .tags
        .iter()
        .map(|(tag, target)| {
            let pushed = root
                .mtime(&layout::tag_current(name, tag))
                .or_else(|| {
                    target
                        .digest()
                        .and_then(|d| root.mtime(&layout::revision_link(name, &d)))
                })
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_default();
            match target {
                TagTarget::Points(d) => {
                    let man = m.graph.manifest(d);
                    let (total, exclusive) = m.image_sizes(d);
                    let platforms = if man.is_some_and(|x| x.kind.is_index()) {
                        let mut p: Vec<String> = child_platforms(root, d)
                            .into_values()
                            .filter(|p| !p.is_empty())
                            .collect();
                        p.sort();
                        p.dedup();
                        p.join(", ")
                    } else {
                        String::new()
                    };
                    TagRow {
                        tag: tag.to_string(),
                        digest: Some(d.to_string()),
                        short: short(d),
                        kind: kind_word(man),
                        size: Size { bytes: total },
                        exclusive: Size { bytes: exclusive },
                        pushed,
                        platforms,
                    }
                }
                TagTarget::Broken => TagRow {
                    tag: tag.to_string(),
                    digest: None,
                    short: String::new(),
                    kind: "broken tag",
                    size: Size { bytes: 0 },
                    exclusive: Size { bytes: 0 },
                    pushed,
                    platforms: String::new(),
                },
            }
        })
        .collect();
    let untagged = rg
        .revisions
        .iter()
        .filter(|d| !rg.tagged.contains(d))
        .map(|d| manifest_row(m, d))
        .collect();
    html(
        StatusCode::OK,
        &RepoPage {
            name: name.to_string(),
            total: size(|u| u.total),
            exclusive: size(|u| u.exclusive),
            shared: size(|u| u.shared),
            tags,
            untagged,
        },
    )
}

fn manifest_row(m: &Model, d: &Digest) -> ManifestRow {
    ManifestRow {
        digest: d.to_string(),
        short: short(d),
        kind: kind_word(m.graph.manifest(d)),
        size: Size {
            bytes: m.image_sizes(d).0,
        },
    }
}

fn blob_row(m: &Model, r: &crate::graph::manifest::Reference) -> BlobRow {
    let canonical = m.graph.aliases.get(&r.digest).unwrap_or(&r.digest);
    BlobRow {
        digest: r.digest.to_string(),
        media_type: r.media_type.map(|m| m.to_string()).unwrap_or_default(),
        size: m.sizes.get(canonical).map(|&bytes| Size { bytes }),
    }
}

fn image(m: &Model, root: &Root, name: &RepoName, d: &Digest) -> Response {
    let Some(rg) = m.graph.repos.get(name) else {
        return missing(format!("repository {name}"));
    };
    if !rg.revisions.contains(d) && !rg.tagged.contains(d) {
        return missing(format!("manifest {d} in {name}"));
    }
    let man = m.graph.manifest(d);
    let (total, exclusive) = m.image_sizes(d);
    let config = man.and_then(|x| x.refs(Role::Config).next()).map(|r| {
        let doc = read_json(root, m.graph.aliases.get(&r.digest).unwrap_or(&r.digest));
        ConfigView {
            blob: blob_row(m, r),
            platform: doc.as_ref().map(platform).unwrap_or_default(),
            created: doc
                .as_ref()
                .and_then(|v| v.get("created"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        }
    });
    let layers = man
        .into_iter()
        .flat_map(|x| x.refs(Role::Layer))
        .map(|r| blob_row(m, r))
        .collect();
    let platforms = if man.is_some_and(|x| x.kind.is_index()) {
        child_platforms(root, d)
    } else {
        BTreeMap::new()
    };
    let children = man
        .into_iter()
        .flat_map(|x| x.refs(Role::Child))
        .map(|r| ChildRow {
            digest: r.digest.to_string(),
            short: short(&r.digest),
            platform: platforms
                .get(&r.digest.to_string())
                .cloned()
                .unwrap_or_default(),
            media_type: r.media_type.map(|m| m.to_string()).unwrap_or_default(),
            size: m.sizes.get(&r.digest).map(|&bytes| Size { bytes }),
            here: rg.revisions.contains(&r.digest) || rg.tagged.contains(&r.digest),
        })
        .collect();
    let in_repo: BTreeSet<Digest> = rg.revisions.iter().chain(&rg.tagged).copied().collect();
    // The manifests of the repository that refer to `d` in `role`.
    let referring = |role: Role| -> Vec<ManifestRow> {
        in_repo
            .iter()
            .filter(|x| {
                m.graph
                    .manifest(x)
                    .is_some_and(|x| x.refs(role).any(|r| r.digest == *d))
            })
            .map(|x| manifest_row(m, x))
            .collect()
    };
    let (referrers, parents) = (referring(Role::Subject), referring(Role::Child));
    html(
        StatusCode::OK,
        &ImagePage {
            repo: name.to_string(),
            digest: d.to_string(),
            media_type: man.map_or("", |x| x.kind.media_type()),
            tags: rg
                .tags
                .iter()
                .filter(|(_, t)| t.digest() == Some(*d))
                .map(|(t, _)| t.to_string())
                .collect(),
            manifest_size: m.sizes.get(d).map(|&bytes| Size { bytes }),
            size: Size { bytes: total },
            exclusive: Size { bytes: exclusive },
            config,
            layers,
            children,
            referrers,
            parents,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/"), Some(Page::Home));
        assert_eq!(
            route("/repo/team/app"),
            Some(Page::Repo(RepoName::parse("team/app").unwrap()))
        );
        let d = crate::digest::hash_bytes(crate::digest::Algorithm::Sha256, b"x");
        assert_eq!(
            route(&format!("/repo/team/app@{d}")),
            Some(Page::Image(RepoName::parse("team/app").unwrap(), d))
        );
        for p in [
            "/repo/",
            "/repo/UPPER",
            "/repo/a@sha256:zz",
            "/repo/../etc",
            "/v2/",
            "/x",
            "",
        ] {
            assert_eq!(route(p), None, "{p}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
