//! `ls`: tags and untagged manifests, read from the graph.

use serde::Serialize;

use crate::digest::Digest;
use crate::graph::{Graph, ManifestState, TagTarget};

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

/// Lists the tags (and, with `untagged`, the manifests no tag reaches).
pub fn list(g: &Graph, untagged: bool) -> Listing {
    let mut l = Listing::default();
    for (repo, rg) in &g.repos {
        for (tag, t) in &rg.tags {
            match t {
                TagTarget::Points(d) => l.tags.push(TagEntry {
                    repository: repo.to_string(),
                    tag: tag.to_string(),
                    digest: *d,
                    media_type: media_type(g, d),
                }),
                TagTarget::Broken => l.broken_tags.push(format!("{repo}:{tag}")),
            }
        }
    }
    if untagged {
        let mut v = Vec::new();
        for (repo, rg) in &g.repos {
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
