//! `du`: what each repository refers to, what only it refers to (what `rm-repo` frees), and
//! what no repository refers to (what `gc` frees).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::digest::Digest;
use crate::graph::Graph;
use crate::layout::RepoName;
use crate::scan::Inventory;

/// One tag's size: its manifest and everything it refers to.
#[derive(Debug, Clone, Serialize)]
pub struct TagUsage {
    /// The tag.
    pub tag: String,
    /// The manifest it points at.
    pub digest: Digest,
    /// Bytes of the manifest, its configs, layers and children.
    pub bytes: u64,
}

/// One repository's usage.
#[derive(Debug, Clone, Serialize)]
pub struct RepoUsage {
    /// The repository.
    pub repository: String,
    /// Bytes of every blob it refers to.
    pub total: u64,
    /// Bytes only it refers to: what `rm-repo` would free.
    pub exclusive: u64,
    /// Bytes other repositories refer to as well.
    pub shared: u64,
    /// Per tag, with `--tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagUsage>>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Per repository, in the requested order.
    pub repositories: Vec<RepoUsage>,
    /// Bytes of all blobs.
    pub blob_bytes: u64,
    /// Bytes of blobs a manifest refers to (what gc keeps).
    pub referenced_bytes: u64,
    /// Bytes of blobs no manifest refers to: what `gc` (without `-m`) would free.
    pub unreferenced_bytes: u64,
    /// Repository directories not listed because their names are not UTF-8 (escaped); the
    /// blobs their links name count as referenced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Unfinished uploads (below every repository's `_uploads`).
    #[serde(skip_serializing_if = "UploadUsage::is_empty")]
    pub uploads: UploadUsage,
}

/// What unfinished uploads hold.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UploadUsage {
    /// How many.
    pub count: u64,
    /// Their bytes (an object store's in-progress multipart uploads: their parts).
    pub bytes: u64,
    /// How many are an object store's in-progress multipart uploads (invisible to listings,
    /// billed until aborted: `gc --upload-age`).
    pub multipart: u64,
    /// When the oldest was started (RFC 3339), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest: Option<String>,
}

impl UploadUsage {
    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn of(inv: &Inventory) -> Self {
        let mut u = UploadUsage::default();
        let mut oldest: Option<std::time::SystemTime> = None;
        for up in inv.repos.values().flat_map(|r| r.uploads.values()) {
            u.count += 1;
            u.bytes += up.size;
            u.multipart += u64::from(up.multipart.is_some());
            if let Some(Ok(t)) = up.started {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
        }
        u.oldest = oldest.map(|t| humantime::format_rfc3339_seconds(t).to_string());
        u
    }
}

/// How to order repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Largest total first.
    Size,
    /// By name.
    Name,
}

/// Sizes of `set`.
pub fn bytes_of(inv: &Inventory, set: &BTreeSet<Digest>) -> u64 {
    set.iter()
        .filter_map(|d| inv.blobs.get(d))
        .map(|b| b.size())
        .sum()
}

/// Computes the usage report.
pub fn usage(inv: &Inventory, g: &Graph, tags: bool, sort: SortBy) -> Usage {
    let refs: BTreeMap<&RepoName, BTreeSet<Digest>> =
        g.repos.keys().map(|r| (r, g.repo_refs(inv, r))).collect();
    let mut holders: BTreeMap<Digest, u32> = BTreeMap::new();
    for set in refs.values() {
        for d in set {
            *holders.entry(*d).or_default() += 1;
        }
    }
    let mut repositories: Vec<RepoUsage> = refs
        .iter()
        .map(|(name, set)| {
            let total = bytes_of(inv, set);
            let exclusive: u64 = set
                .iter()
                .filter(|d| holders.get(d) == Some(&1))
                .filter_map(|d| inv.blobs.get(d))
                .map(|b| b.size())
                .sum();
            RepoUsage {
                repository: name.to_string(),
                total,
                exclusive,
                shared: total - exclusive,
                tags: tags.then(|| tag_usage(inv, g, name)),
            }
        })
        .collect();
    if sort == SortBy::Size {
        repositories.sort_by(|a, b| b.total.cmp(&a.total).then(a.repository.cmp(&b.repository)));
    }
    let unreferenced: u64 = inv
        .blobs
        .iter()
        .enumerate()
        .filter(|(id, _)| !g.marked.contains_id(*id))
        .map(|(_, (_, b))| b.size())
        .sum();
    Usage {
        repositories,
        blob_bytes: inv.blob_bytes(),
        referenced_bytes: inv.blob_bytes() - unreferenced,
        unreferenced_bytes: unreferenced,
        skipped: inv.skipped.clone(),
        uploads: UploadUsage::of(inv),
    }
}

fn tag_usage(inv: &Inventory, g: &Graph, repo: &RepoName) -> Vec<TagUsage> {
    let Some(rg) = g.repos.get(repo) else {
        return Vec::new();
    };
    rg.tags
        .iter()
        .filter_map(|(t, target)| Some((t, target.digest()?)))
        .map(|(t, d)| TagUsage {
            tag: t.to_string(),
            digest: d,
            bytes: bytes_of(inv, &g.closure(&d)),
        })
        .collect()
}
