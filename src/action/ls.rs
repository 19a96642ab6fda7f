//! `ls`: tags and untagged manifests, read from the graph; the catalog, read from the scan.

use std::time::SystemTime;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph::{Graph, ManifestState, TagTarget};
use crate::layout::{RepoName, TagName};
use crate::prune::{Order, oldest_first};
use crate::scan::Inventory;

/// One tag.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct TagEntry {
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// The manifest its `current/link` names.
    pub digest: Digest,
    /// The manifest's media type, when its blob parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<&'static str>,
    /// When the tag was last pushed (RFC 3339, UTC, seconds): the modification time of its
    /// `current/link`. Only with `--sort pushed` (listing otherwise stats nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
}

/// One untagged manifest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct UntaggedEntry {
    /// Repository.
    pub repository: String,
    /// The manifest.
    pub digest: Digest,
    /// Its media type, when its blob parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<&'static str>,
}

/// What `ls` lists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    /// Tags with a readable `current/link`, sorted by repository and tag.
    pub tags: Vec<TagEntry>,
    /// Untagged manifests (only with `--untagged`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untagged: Option<Vec<UntaggedEntry>>,
    /// Tags whose `current/link` is missing or unreadable, as `REPO:TAG`.
    pub broken_tags: Vec<String>,
    /// Repository directories skipped because their names are not UTF-8 (escaped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

fn media_type(g: &Graph, d: &Digest) -> Option<&'static str> {
    match g.manifests.get(d) {
        Some(ManifestState::Parsed(m)) => Some(m.kind.media_type()),
        _ => None,
    }
}

/// What `ls` lists, and in which order.
#[derive(Debug, Clone, Default)]
pub struct LsOptions {
    /// Only these repositories (each exactly: a nested repository is its own); empty: every
    /// repository.
    pub repositories: Vec<RepoName>,
    /// Also the manifests no tag reaches.
    pub untagged: bool,
    /// The order of the tags within each repository (repositories are in name order):
    /// [`Order::Name`] bytewise; [`Order::Version`] as prune's version order, ascending (tags
    /// that are no version, such as `latest`, first; `v2` before `v10`, `1.9` before `1.10`);
    /// [`Order::Pushed`] oldest first, so the newest push is the last line (a push time that
    /// cannot be read sorts as the oldest; ties by version, then name).
    pub sort: Order,
}

/// The repositories `names` names, each exactly as the layout has it.
///
/// # Errors
/// [`Error::Usage`] (exit 16) naming the first name that is not a repository of this layout.
pub fn select(g: &Graph, names: &[String]) -> Result<Vec<RepoName>> {
    let mut out = Vec::new();
    for n in names {
        let Some(r) = g.repos.keys().find(|r| r.as_str() == n) else {
            return Err(Error::Usage(match RepoName::parse(n) {
                Ok(_) => format!("no repository {n:?} in this registry"),
                Err(e) => format!("invalid repository name {n:?}: {e}"),
            }));
        };
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out.sort();
    Ok(out)
}

/// Lists the tags (and, with `untagged`, the manifests no tag reaches) of the selected
/// repositories, tags in `opts.sort` order; `pushed` gives a tag's push time (asked only for
/// [`Order::Pushed`]).
pub fn list(
    g: &Graph,
    opts: &LsOptions,
    pushed: &dyn Fn(&RepoName, &TagName) -> Option<SystemTime>,
) -> Listing {
    let mut l = Listing::default();
    let selected = |r: &RepoName| opts.repositories.is_empty() || opts.repositories.contains(r);
    for (repo, rg) in g.repos.iter().filter(|(r, _)| selected(r)) {
        let mut tags: Vec<(&TagName, Option<SystemTime>)> = rg
            .tags
            .keys()
            .map(|t| {
                (
                    t,
                    (opts.sort == Order::Pushed)
                        .then(|| pushed(repo, t))
                        .flatten(),
                )
            })
            .collect();
        if opts.sort != Order::Name {
            tags.sort_by(|(a, ta), (b, tb)| {
                oldest_first(opts.sort, (a.as_str(), *ta), (b.as_str(), *tb))
            });
        }
        for (tag, time) in tags {
            match &rg.tags[tag] {
                TagTarget::Points(d) => l.tags.push(TagEntry {
                    repository: repo.to_string(),
                    tag: tag.to_string(),
                    digest: *d,
                    media_type: media_type(g, d),
                    pushed: time.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                }),
                TagTarget::Broken => l.broken_tags.push(format!("{repo}:{tag}")),
            }
        }
    }
    if opts.untagged {
        let mut v = Vec::new();
        for (repo, rg) in g.repos.iter().filter(|(r, _)| selected(r)) {
            let roots: std::collections::BTreeSet<Digest> = rg.tag_targets().collect();
            for d in &rg.revisions {
                if !rg.tagged.contains(d) && !roots.contains(d) {
                    v.push(UntaggedEntry {
                        repository: repo.to_string(),
                        digest: *d,
                        media_type: media_type(g, d),
                    });
                }
            }
        }
        l.untagged = Some(v);
    }
    l
}

/// The catalog, as the registry 2.8 answers `/v2/_catalog`: every repository directory with
/// a `_layers` child, sorted bytewise. A repository emptied through the API (no manifests, no
/// tags) is listed; one with `_manifests` only (a pull-through cache's manifest-only
/// repository) is not, though the registry serves its tags: those are
/// [`Catalog::uncataloged`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    /// The repositories the catalog lists.
    pub repositories: Vec<String>,
    /// Repository directories the catalog leaves out (no `_layers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uncataloged: Vec<String>,
    /// Repository directories skipped because their names are not UTF-8 (escaped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// The catalog of the scanned layout (see [`Catalog`]).
pub fn catalog(inv: &Inventory) -> Catalog {
    let (listed, left): (Vec<_>, Vec<_>) = inv.repos.values().partition(|r| r.has_layers);
    let names = |v: Vec<&crate::scan::Repo>| -> Vec<String> {
        let mut n: Vec<String> = v.into_iter().map(|r| r.name.to_string()).collect();
        n.sort();
        n
    };
    Catalog {
        repositories: names(listed),
        uncataloged: names(left),
        skipped: inv.skipped.clone(),
    }
}
