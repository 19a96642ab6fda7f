//! `show REPO:TAG | REPO@DIGEST`: one manifest as the registry would serve it, with what it
//! refers to, what refers to it, and what it costs.
//!
//! What the manifest refers to (config, layers, children, subject) comes from the graph, which
//! reads manifests as the registry does. The descriptive parts the graph does not keep (an
//! index entry's `platform`, an `artifactType`, the config's `os`, `architecture`, `created`)
//! are read from the same bytes, and from the config blob, with a bounded read through the
//! storage layer, as plain JSON: a document only Go's case-insensitive decoding makes sense of
//! shows its references, but not those fields.
//!
//! Sizes: each descriptor's `size` is what the manifest declares (what a pull transfers);
//! [`Shown::total_size`] and [`Shown::exclusive_size`] are bytes of blobs in the blob store.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::digest::Digest;
use crate::du::bytes_of;
use crate::error::{Error, Result};
use crate::graph::{Graph, ManifestState, RepoGraph, TagTarget};
use crate::layout::{self, RepoName, Root, TagName};
use crate::manifest::{self, MAX_MANIFEST_SIZE, Role};
use crate::scan::Inventory;
use crate::storage::Bounded;

/// What to show: a tag, or a manifest by digest, of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The repository, as given.
    pub repository: String,
    /// The tag or digest.
    pub reference: Reference,
}

/// A tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `REPO:TAG`.
    Tag(TagName),
    /// `REPO@DIGEST`.
    Digest(Digest),
}

impl std::str::FromStr for Target {
    type Err = Error;

    /// Parses `REPO:TAG` or `REPO@DIGEST` (the repository may be nested: `team/app:v1`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| Error::Usage(format!("{s}: {why}"));
        let (repo, reference) = if let Some((repo, d)) = s.split_once('@') {
            let d: Digest = d.parse().map_err(|e| bad(format!("{e}")))?;
            (repo, Reference::Digest(d))
        } else if let Some((repo, t)) = s.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            (
                repo,
                Reference::Tag(TagName::parse(t).map_err(|e| bad(e.to_string()))?),
            )
        } else {
            return Err(bad("not REPOSITORY:TAG or REPOSITORY@DIGEST".into()));
        };
        RepoName::parse(repo).map_err(|e| bad(e.to_string()))?;
        Ok(Target {
            repository: repo.to_string(),
            reference,
        })
    }
}

/// An OS and architecture, as an index entry's `platform` or an image config has them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Platform {
    /// `os`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// `architecture`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `variant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    fn from_json(v: &serde_json::Value) -> Option<Platform> {
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let p = Platform {
            os: field("os"),
            architecture: field("architecture"),
            variant: field("variant"),
        };
        (p != Platform::default()).then_some(p)
    }
}

impl std::fmt::Display for Platform {
    /// `os/architecture[/variant]`, `?` for what is not given.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
        write!(f, "{}/{}", q(&self.os), q(&self.architecture))?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A blob a manifest refers to.
#[derive(Debug, Clone, Serialize)]
pub struct BlobEntry {
    /// Its digest, as the manifest names it.
    pub digest: Digest,
    /// The size the manifest declares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The descriptor's media type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Not in the blob store (regfsck verify explains).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

/// An image's config.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The blob.
    #[serde(flatten)]
    pub blob: BlobEntry,
    /// Its `os`, `architecture` and `variant`.
    #[serde(flatten)]
    pub platform: Platform,
    /// Its `created` time, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// An index entry that is a manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Child {
    /// The entry.
    #[serde(flatten)]
    pub blob: BlobEntry,
    /// Its `platform`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A manifest of the repository whose `subject` is the one shown (a signature, an SBOM, an
/// attestation).
#[derive(Debug, Clone, Serialize)]
pub struct Referrer {
    /// The referrer.
    pub digest: Digest,
    /// Its media type, as the registry serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Its `artifactType`, else its config's media type (as the OCI referrers API reports it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// What `show` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The repository.
    pub repository: String,
    /// The tag asked for, if a tag was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest.
    pub digest: Digest,
    /// Its media type, as the registry serves it (`None` when it cannot be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Its `artifactType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Bytes of the manifest itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_size: Option<u64>,
    /// When it was pushed into this repository (RFC 3339, UTC): the modification time of its
    /// revision link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// The repository's tags that name this manifest, sorted.
    pub tags: Vec<String>,
    /// An image's config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Config>,
    /// An image's layers (an artifact's blobs; an index's entries that are blobs), in order.
    pub layers: Vec<BlobEntry>,
    /// An index's child manifests, in order.
    pub children: Vec<Child>,
    /// The manifest this one refers to as its `subject`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// Manifests of the repository whose `subject` is this one, by digest.
    pub referrers: Vec<Referrer>,
    /// Bytes in the blob store of the manifest, its config and layers, and (an index) its
    /// children with theirs, each blob once. Referrers are not counted.
    pub total_size: u64,
    /// The part of `total_size` that no other manifest refers to: bytes of the blobs in this
    /// manifest's closure (itself, config, layers, children recursively) that are in the
    /// closure of no manifest outside it, any repository's revision or tag target (the same
    /// manifest in another repository counts as another), nor pinned by a link regfsck cannot
    /// place. What a gc would free if this manifest and its children were the only thing
    /// removed (referrers aside: they are manifests of their own).
    pub exclusive_size: u64,
    /// Damage found on the way (the manifest or its blobs missing or unreadable); exit 4.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The JSON of a stored blob, if it is there, small enough and JSON.
fn read_json(root: &Root, d: &Digest) -> Option<(serde_json::Value, Vec<u8>)> {
    match root.read_small(&layout::blob_data(d), MAX_MANIFEST_SIZE) {
        Ok(Bounded::Content(bytes)) => Some((serde_json::from_slice(&bytes).ok()?, bytes)),
        _ => None,
    }
}

fn text(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(str::to_string)
}

/// Finds what `target` names.
///
/// # Errors
/// [`Error::Usage`] (exit 16) naming what is not there: the repository, the tag, or a manifest
/// that is no revision of the repository.
pub fn resolve<'g>(g: &'g Graph, target: &Target) -> Result<(&'g RepoName, &'g RepoGraph, Digest)> {
    let Some((name, rg)) = g
        .repos
        .iter()
        .find(|(r, _)| r.as_str() == target.repository)
    else {
        return Err(Error::Usage(format!(
            "no repository {:?} in this registry",
            target.repository
        )));
    };
    let d = match &target.reference {
        Reference::Tag(t) => match rg.tags.get(t) {
            Some(TagTarget::Points(d)) => *d,
            Some(TagTarget::Broken) => {
                return Err(Error::Usage(format!(
                    "tag {name}:{t} has no readable current/link (regfsck verify explains)"
                )));
            }
            None => return Err(Error::Usage(format!("no tag {name}:{t} in this registry"))),
        },
        Reference::Digest(d) => {
            if !rg.revisions.contains(d) && !rg.tag_targets().any(|x| x == *d) {
                return Err(Error::Usage(format!(
                    "no manifest {name}@{d} in this registry"
                )));
            }
            *d
        }
    };
    Ok((name, rg, d))
}

/// Shows what `target` names.
///
/// # Errors
/// As [`resolve`].
pub fn show(root: &Root, inv: &Inventory, g: &Graph, target: &Target) -> Result<Shown> {
    let (name, rg, d) = resolve(g, target)?;
    let mut problems = Vec::new();
    let doc = read_json(root, &d);
    let mut shown = Shown {
        repository: name.to_string(),
        tag: match &target.reference {
            Reference::Tag(t) => Some(t.to_string()),
            Reference::Digest(_) => None,
        },
        digest: d,
        media_type: doc
            .as_ref()
            .and_then(|(_, bytes)| manifest::served_media_type(bytes)),
        artifact_type: doc.as_ref().and_then(|(v, _)| text(v, "artifactType")),
        manifest_size: inv.blob(&d).filter(|b| b.stat()).map(|b| b.size()),
        pushed: root
            .mtime(&layout::revision_link(name, &d))
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        tags: rg
            .tags
            .iter()
            .filter(|(_, t)| t.digest() == Some(d))
            .map(|(t, _)| t.to_string())
            .collect(),
        config: None,
        layers: Vec::new(),
        children: Vec::new(),
        subject: None,
        referrers: referrers(root, inv, g, rg, &d),
        total_size: 0,
        exclusive_size: 0,
        problems: Vec::new(),
    };
    match g.manifests.get(&d) {
        Some(ManifestState::Parsed(m)) => {
            let json = doc.as_ref().map(|(v, _)| v);
            for r in &m.references {
                let stored = g.resolve(inv, rg, &r.digest);
                let entry = BlobEntry {
                    digest: r.digest,
                    size: r.size(),
                    media_type: r.media_type.map(|m| m.to_string()),
                    missing: inv.blob(&stored).is_none() && !r.foreign,
                };
                if entry.missing {
                    problems.push(format!(
                        "{} {} is not in the blob store",
                        r.role.word(),
                        r.digest
                    ));
                }
                match r.role {
                    Role::Config => {
                        let cfg = read_json(root, &stored).map(|(v, _)| v);
                        shown.config = Some(Config {
                            blob: entry,
                            platform: cfg
                                .as_ref()
                                .and_then(Platform::from_json)
                                .unwrap_or_default(),
                            created: cfg.as_ref().and_then(|v| text(v, "created")),
                        });
                    }
                    Role::Layer => shown.layers.push(entry),
                    Role::Child => shown.children.push(Child {
                        platform: json.and_then(|v| platform_of(v, &r.digest)),
                        blob: entry,
                    }),
                    Role::Subject => shown.subject = Some(r.digest),
                }
            }
        }
        Some(ManifestState::Missing) | None => {
            problems.push(format!("manifest {d} is not in the blob store"));
        }
        Some(ManifestState::Invalid(why)) => problems.push(format!("manifest {d}: {why}")),
        Some(ManifestState::TooLarge(n)) => {
            problems.push(format!("manifest {d} is too large to read ({n} bytes)"));
        }
        Some(ManifestState::Unreadable(why)) => {
            problems.push(format!("manifest {d} cannot be read: {why}"));
        }
    }
    let mine = g.closure(&d);
    shown.total_size = bytes_of(inv, &mine);
    shown.exclusive_size = bytes_of(inv, &exclusive(inv, g, name, &mine));
    shown.problems = problems;
    Ok(shown)
}

/// The `platform` of the index entry naming `child` in the index document `v`.
fn platform_of(v: &serde_json::Value, child: &Digest) -> Option<Platform> {
    let want = child.to_string();
    v.get("manifests")?
        .as_array()?
        .iter()
        .find(|e| e.get("digest").and_then(|x| x.as_str()) == Some(want.as_str()))
        .and_then(|e| e.get("platform"))
        .and_then(Platform::from_json)
}

/// The manifests of `rg` whose subject is `d`, by digest.
fn referrers(root: &Root, inv: &Inventory, g: &Graph, rg: &RepoGraph, d: &Digest) -> Vec<Referrer> {
    rg.revisions
        .iter()
        .filter(|r| {
            g.manifest(r)
                .is_some_and(|m| m.refs(Role::Subject).any(|s| s.digest == *d))
        })
        .map(|r| {
            let doc = read_json(root, r);
            let v = doc.as_ref().map(|(v, _)| v);
            Referrer {
                digest: *r,
                media_type: doc
                    .as_ref()
                    .and_then(|(_, b)| manifest::served_media_type(b)),
                artifact_type: v.and_then(|v| {
                    text(v, "artifactType")
                        .or_else(|| v.get("config").and_then(|c| text(c, "mediaType")))
                }),
                size: inv.blob(r).filter(|b| b.stat()).map(|b| b.size()),
            }
        })
        .collect()
}

/// The blobs of `mine` (the closure of a manifest of `repo`) that nothing else refers to: see
/// [`Shown::exclusive_size`].
fn exclusive(
    inv: &Inventory,
    g: &Graph,
    repo: &RepoName,
    mine: &BTreeSet<Digest>,
) -> BTreeSet<Digest> {
    let mut others: BTreeSet<Digest> = g.pinned.iter(&inv.blobs).collect();
    for (name, rg) in &g.repos {
        for m in rg.revisions.iter().copied().chain(rg.tag_targets()) {
            if (name == repo && mine.contains(&m)) || others.contains(&m) {
                continue;
            }
            others.extend(g.closure(&m));
        }
    }
    mine.difference(&others).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t: Target = "team/app:v1".parse().unwrap();
        assert_eq!(t.repository, "team/app");
        assert_eq!(t.reference, Reference::Tag(TagName::parse("v1").unwrap()));
        let d = "sha256:5603f6774a12f8d3e4debfe151223188979716f4e46c5271a649a3497367c4cf";
        let t: Target = format!("localhost:5000/a@{d}").parse().unwrap();
        assert_eq!(t.repository, "localhost:5000/a");
        assert_eq!(t.reference, Reference::Digest(d.parse().unwrap()));
        for bad in [
            "alpine",
            "alpine:",
            "Alpine:latest",
            "a@sha256:12",
            "localhost:5000/a",
        ] {
            assert!(
                matches!(bad.parse::<Target>(), Err(Error::Usage(_))),
                "{bad}"
            );
        }
    }
}
