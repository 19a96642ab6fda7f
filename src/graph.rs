//! The reference graph: tags → revisions → manifests → configs, layers, children, subjects,
//! resolved per repository, with every inconsistency as a finding.
//!
//! A manifest is parsed once per digest (manifests are content-addressed), in parallel; each
//! repository then checks its own links against the blob store and the parsed manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::digest::{Algorithm, Digest};
use crate::findings::{Finding, Kind};
use crate::fsutil::Bounded;
use crate::layout::{self, RepoName, Root, TagName};
use crate::manifest::{self, MAX_MANIFEST_SIZE, Manifest, Role};
use crate::scan::{Inventory, Link, LinkProblem, Repo};

/// The registry purges uploads older than this (storage.maintenance.uploadpurging.age).
pub const UPLOAD_PURGE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What reading a manifest blob gave.
#[derive(Debug, Clone)]
pub enum ManifestState {
    /// Parsed.
    Parsed(Manifest),
    /// The blob is not in the blob store.
    Missing,
    /// The blob does not parse.
    Invalid(String),
    /// The blob is larger than [`MAX_MANIFEST_SIZE`].
    TooLarge(u64),
    /// The blob cannot be read.
    Unreadable(String),
}

/// A tag as the graph sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagTarget {
    /// `current/link` names this digest.
    Points(Digest),
    /// No usable `current/link`.
    Broken,
}

impl TagTarget {
    /// The manifest the tag names, if its link is usable.
    pub fn digest(&self) -> Option<Digest> {
        match self {
            TagTarget::Points(d) => Some(*d),
            TagTarget::Broken => None,
        }
    }
}

/// One repository's resolved view.
#[derive(Debug, Clone, Default)]
pub struct RepoGraph {
    /// Tags and what they point at.
    pub tags: BTreeMap<TagName, TagTarget>,
    /// Manifests with a well-formed revision link.
    pub revisions: BTreeSet<Digest>,
    /// Path digest → canonical digest of every well-formed `_layers` link.
    pub layers: BTreeMap<Digest, Digest>,
    /// Manifests reachable from a tag (the tagged ones and their index children).
    pub tagged: BTreeSet<Digest>,
}

impl RepoGraph {
    /// What the usable tags name.
    pub fn tag_targets(&self) -> impl Iterator<Item = Digest> + '_ {
        self.tags.values().filter_map(TagTarget::digest)
    }
}

/// The whole graph.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    /// Every manifest linked as a revision anywhere, by digest.
    pub manifests: BTreeMap<Digest, ManifestState>,
    /// Per repository.
    pub repos: BTreeMap<RepoName, RepoGraph>,
    /// Blobs that the registry's own gc (without `-m`) marks: every revision and what it refers to.
    pub marked: FxHashSet<Digest>,
    /// Inconsistencies.
    pub findings: Vec<Finding>,
}

impl Graph {
    /// Every blob repository `repo` refers to: its manifests (revisions and tag targets) with
    /// their configs, layers and index children (recursively), and the targets of its
    /// `_layers` links. Only blobs present in the blob store are returned.
    pub fn repo_refs(&self, inv: &Inventory, repo: &RepoName) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        let Some(rg) = self.repos.get(repo) else {
            return out;
        };
        for d in rg.revisions.iter().copied().chain(rg.tag_targets()) {
            if !out.contains(&d) {
                out.extend(self.closure(&d));
            }
        }
        out.extend(rg.layers.values().copied());
        out.retain(|d| inv.blobs.contains_key(d));
        out
    }

    /// A manifest and everything it refers to (configs, layers, children recursively).
    pub fn closure(&self, d: &Digest) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        let mut stack = vec![*d];
        while let Some(d) = stack.pop() {
            if !out.insert(d) {
                continue;
            }
            if let Some(m) = self.manifest(&d) {
                for r in &m.references {
                    match r.role {
                        Role::Config | Role::Layer => {
                            out.insert(r.digest);
                        }
                        Role::Child => stack.push(r.digest),
                        Role::Subject => {}
                    }
                }
            }
        }
        out
    }

    /// The parsed manifest for `d`, if it parsed.
    pub fn manifest(&self, d: &Digest) -> Option<&Manifest> {
        match self.manifests.get(d) {
            Some(ManifestState::Parsed(m)) => Some(m),
            _ => None,
        }
    }
}

fn link_finding(kind_on_ok: Kind, problem: &LinkProblem, rel: String) -> Finding {
    match problem {
        LinkProblem::Malformed(m) => {
            Finding::new(kind_on_ok, format!("malformed link: {m}")).path(rel)
        }
        LinkProblem::Unreadable(m) => {
            Finding::new(Kind::LinkUnreadable, format!("cannot read link: {m}")).path(rel)
        }
    }
}

/// Sizes that descriptors declare and the stored blob disagrees with: blob → (declared size,
/// declaring manifest, its repository).
type Declared = BTreeMap<Digest, (u64, Digest, RepoName)>;

/// Hash lookups over the inventory and the parsed manifests: each repository's check looks
/// up every reference, tag and link, hundreds of thousands of lookups on a large registry.
pub(crate) struct Index<'a> {
    inv: &'a Inventory,
    manifests: FxHashMap<Digest, &'a ManifestState>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(inv: &'a Inventory, manifests: &'a BTreeMap<Digest, ManifestState>) -> Self {
        Index {
            inv,
            manifests: manifests.iter().map(|(d, m)| (*d, m)).collect(),
        }
    }

    /// Whether blob `d` is there: in the inventory and, if it was read as a manifest, not
    /// found missing then (a scan by names does not stat blobs).
    pub(crate) fn present(&self, d: &Digest) -> bool {
        self.inv.blob(d).is_some() && !matches!(self.manifests.get(d), Some(ManifestState::Missing))
    }

    /// The blob `d` as scanned.
    pub(crate) fn blob(&self, d: &Digest) -> Option<&'a crate::scan::Blob> {
        self.inv.blob(d)
    }

    /// What reading manifest `d` gave, if it was read.
    pub(crate) fn get(&self, d: &Digest) -> Option<&'a ManifestState> {
        self.manifests.get(d).copied()
    }

    /// The parsed manifest `d`.
    pub(crate) fn parsed(&self, d: &Digest) -> Option<&'a Manifest> {
        match self.get(d) {
            Some(ManifestState::Parsed(m)) => Some(m),
            _ => None,
        }
    }
}

/// `ds` ordered so that each manifest comes before every manifest of `ds` it refers to (index
/// children, subjects), ties by digest: removing them in this order never leaves a remaining
/// manifest referring to a removed one.
pub fn referrers_first(g: &Graph, ds: &BTreeSet<Digest>) -> Vec<Digest> {
    let mut indegree: BTreeMap<Digest, usize> = ds.iter().map(|d| (*d, 0)).collect();
    for d in ds {
        if let Some(m) = g.manifest(d) {
            for r in &m.references {
                if matches!(r.role, Role::Child | Role::Subject) {
                    if let Some(n) = indegree.get_mut(&r.digest) {
                        *n += 1;
                    }
                }
            }
        }
    }
    let mut ready: BTreeSet<Digest> = indegree
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(d, _)| *d)
        .collect();
    let mut out = Vec::with_capacity(ds.len());
    while let Some(d) = ready.pop_first() {
        out.push(d);
        if let Some(m) = g.manifest(&d) {
            for r in &m.references {
                if matches!(r.role, Role::Child | Role::Subject) {
                    if let Some(n) = indegree.get_mut(&r.digest) {
                        *n -= 1;
                        if *n == 0 {
                            ready.insert(r.digest);
                        }
                    }
                }
            }
        }
    }
    // Content addressing rules out cycles; keep anything left anyway.
    for d in ds {
        if !out.contains(d) {
            out.push(*d);
        }
    }
    out
}

/// Builds the graph from a scan.
pub fn build(root: &Root, inv: &Inventory, now: SystemTime) -> Graph {
    build_with(root, inv, now, true)
}

/// Builds the graph without [`Graph::marked`] and the orphan-blob findings made from it: gc
/// marks for itself.
pub fn build_for_gc(root: &Root, inv: &Inventory, now: SystemTime) -> Graph {
    build_with(root, inv, now, false)
}

fn build_with(root: &Root, inv: &Inventory, now: SystemTime, registry_marks: bool) -> Graph {
    let mut g = Graph::default();

    // Parse every linked manifest once.
    let mut wanted: Vec<Digest> = inv
        .repos
        .values()
        .flat_map(|r| r.revisions.iter())
        .filter_map(|(d, l)| match l.target {
            Ok(t) if t == *d => Some(t),
            _ => None,
        })
        .collect();
    wanted.par_sort_unstable();
    wanted.dedup();
    let parsed: Vec<(Digest, ManifestState)> = wanted
        .par_iter()
        .map(|d| (*d, read_manifest(root, inv, d)))
        .collect();
    g.manifests = parsed.into_iter().collect();

    let ix = Index::new(inv, &g.manifests);
    // Each repository on its own, in parallel; merged in name order (first declaration wins).
    let repos: Vec<&Repo> = inv.repos.values().collect();
    let checked: Vec<(RepoGraph, Vec<Finding>, Declared)> = repos
        .par_iter()
        .map(|repo| {
            let mut findings = Vec::new();
            let mut declared = BTreeMap::new();
            let rg = check_repo(repo, &ix, now, &mut findings, &mut declared);
            (rg, findings, declared)
        })
        .collect();
    let mut declared: Declared = BTreeMap::new();
    for (repo, (rg, findings, decl)) in repos.iter().zip(checked) {
        g.findings.extend(findings);
        for (d, v) in decl {
            declared.entry(d).or_insert(v);
        }
        g.repos.insert(repo.name.clone(), rg);
    }

    // Sizes declared by descriptors against the stored blobs.
    for (d, (size, m, repo)) in &declared {
        if let Some(b) = inv.blobs.get(d) {
            if b.stat && b.size != *size && b.is_file {
                g.findings.push(
                    Finding::new(
                        Kind::BlobSizeMismatch,
                        format!(
                            "blob is {} bytes, manifest {m} declares {size} (truncated or replaced)",
                            b.size
                        ),
                    )
                    .repo(repo)
                    .digest(*d)
                    .manifest(*m)
                    .path(layout::blob_data(d)),
                );
            }
        }
    }

    // What the registry's gc marks: every revision whose blob exists, and its references.
    if !registry_marks {
        return g;
    }
    let mut marked: FxHashSet<Digest> = FxHashSet::default();
    for rg in g.repos.values() {
        for d in &rg.revisions {
            if inv.blob(d).is_some() {
                marked.insert(*d);
                if let Some(m) = ix.parsed(d) {
                    marked.extend(
                        m.references
                            .iter()
                            .filter(|r| r.role != Role::Subject)
                            .map(|r| r.digest),
                    );
                }
            }
        }
    }
    drop(ix);
    g.marked = marked;
    for (d, b) in &inv.blobs {
        if !g.marked.contains(d) {
            g.findings.push(
                Finding::new(
                    Kind::OrphanBlob,
                    "no manifest refers to this blob; gc would remove it",
                )
                .digest(*d)
                .size(b.size)
                .path(layout::blob_data(d)),
            );
        }
    }
    g
}

/// Reads and parses the manifest blob `d` (bounded).
pub(crate) fn read_manifest(root: &Root, inv: &Inventory, d: &Digest) -> ManifestState {
    let Some(blob) = inv.blobs.get(d) else {
        return ManifestState::Missing;
    };
    if blob.stat && blob.size > MAX_MANIFEST_SIZE {
        return ManifestState::TooLarge(blob.size);
    }
    match root.read_small(&layout::blob_data(d), MAX_MANIFEST_SIZE) {
        Ok(Bounded::Content(bytes)) => match manifest::parse(&bytes) {
            Ok(m) => ManifestState::Parsed(m),
            Err(e) => ManifestState::Invalid(e.to_string()),
        },
        Ok(Bounded::TooLarge { len }) => ManifestState::TooLarge(len),
        // A scan by names saw the blob's directory, but its data is not there.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ManifestState::Missing,
        Err(e) => ManifestState::Unreadable(e.to_string()),
    }
}

fn check_repo(
    repo: &Repo,
    ix: &Index,
    now: SystemTime,
    out: &mut Vec<Finding>,
    declared: &mut Declared,
) -> RepoGraph {
    let name = &repo.name;
    let mut rg = RepoGraph::default();
    let has_blob = |d: &Digest| ix.present(d);

    for (d, link) in &repo.revisions {
        let rel = || layout::revision_link(name, d);
        match link.target {
            Err(ref p) => out.push(
                link_finding(Kind::LinkMalformed, p, rel())
                    .repo(name)
                    .digest(*d),
            ),
            Ok(t) if t != *d => out.push(
                Finding::new(Kind::LinkMismatch, format!("revision link holds {t}"))
                    .repo(name)
                    .digest(*d)
                    .path(rel()),
            ),
            Ok(_) => {
                rg.revisions.insert(*d);
            }
        }
    }
    for (d, link) in &repo.layers {
        let rel = || layout::layer_link(name, d);
        match link.target {
            Err(ref p) => out.push(
                link_finding(Kind::LinkMalformed, p, rel())
                    .repo(name)
                    .digest(*d),
            ),
            Ok(t) if t == *d => {
                rg.layers.insert(*d, t);
            }
            // A blob pushed under sha384/sha512 is stored as sha256, with an alias link.
            Ok(t) if d.algorithm() != Algorithm::Sha256 && t.algorithm() == Algorithm::Sha256 => {
                rg.layers.insert(*d, t);
            }
            Ok(t) => out.push(
                Finding::new(Kind::LinkMismatch, format!("layer link holds {t}"))
                    .repo(name)
                    .digest(*d)
                    .path(rel()),
            ),
        }
    }

    // Tags.
    for (tag, t) in &repo.tags {
        let target = check_tag(repo, tag, t, &rg, &has_blob, out);
        rg.tags.insert(tag.clone(), target);
    }

    // Reachability from tags, through index children linked in this repository.
    let mut stack: Vec<Digest> = rg
        .tag_targets()
        .filter(|d| rg.revisions.contains(d))
        .collect();
    while let Some(d) = stack.pop() {
        if !rg.tagged.insert(d) {
            continue;
        }
        if let Some(m) = ix.parsed(&d) {
            stack.extend(
                m.refs(Role::Child)
                    .map(|r| r.digest)
                    .filter(|c| rg.revisions.contains(c)),
            );
        }
    }
    let tag_roots: BTreeSet<Digest> = rg.tag_targets().collect();

    // Manifests.
    let mut needed_blobs: BTreeSet<Digest> = BTreeSet::new();
    let mut children: BTreeSet<Digest> = BTreeSet::new();
    for d in &rg.revisions {
        let rel = || layout::revision_link(name, d);
        match ix.get(d) {
            None | Some(ManifestState::Missing) => {
                // A tagged manifest's loss is reported on its tag, a child's on its index.
                if !rg.tagged.contains(d) {
                    out.push(
                        Finding::new(
                            Kind::DanglingRevision,
                            "revision link to a manifest whose blob is gone; nothing needs it",
                        )
                        .repo(name)
                        .digest(*d)
                        .path(rel()),
                    );
                }
            }
            Some(ManifestState::Invalid(e)) => out.push(
                Finding::new(Kind::ManifestInvalid, e.clone())
                    .repo(name)
                    .digest(*d)
                    .path(layout::blob_data(d)),
            ),
            Some(ManifestState::TooLarge(n)) => out.push(
                Finding::new(
                    Kind::ManifestTooLarge,
                    format!(
                        "manifest blob is {n} bytes; manifests are at most {MAX_MANIFEST_SIZE}"
                    ),
                )
                .repo(name)
                .digest(*d)
                .path(layout::blob_data(d)),
            ),
            Some(ManifestState::Unreadable(e)) => out.push(
                Finding::new(Kind::BlobUnreadable, format!("cannot read manifest: {e}"))
                    .repo(name)
                    .digest(*d)
                    .path(layout::blob_data(d)),
            ),
            Some(ManifestState::Parsed(m)) => {
                check_references(name, d, m, &rg, ix, out, declared);
                for r in &m.references {
                    match r.role {
                        Role::Config | Role::Layer => {
                            needed_blobs.insert(r.digest);
                        }
                        Role::Child => {
                            children.insert(r.digest);
                        }
                        Role::Subject => {}
                    }
                }
            }
        }
    }
    for d in &rg.revisions {
        if rg.tagged.contains(d) || tag_roots.contains(d) {
            continue;
        }
        let what = match ix.get(d) {
            Some(ManifestState::Parsed(m)) => match m.refs(Role::Subject).next() {
                Some(s) => format!("untagged referrer of {}", s.digest),
                None if children.contains(d) => {
                    "untagged; only an untagged index refers to it".into()
                }
                None => "no tag points at this manifest".into(),
            },
            _ => continue,
        };
        out.push(
            Finding::new(Kind::UntaggedManifest, what)
                .repo(name)
                .digest(*d)
                .path(layout::revision_link(name, d)),
        );
    }

    // `_layers` links to blobs that are gone and that nothing needs: 2.8's gc leaves these.
    for (d, t) in &rg.layers {
        if !has_blob(t) && !needed_blobs.contains(d) && !needed_blobs.contains(t) {
            out.push(
                Finding::new(
                    Kind::StaleLayerLink,
                    "layer link to a blob that is gone; no manifest here needs it",
                )
                .repo(name)
                .digest(*d)
                .path(layout::layer_link(name, d)),
            );
        }
    }

    if repo.revisions.is_empty() && repo.tags.is_empty() {
        let msg = if repo.has_manifests {
            "repository has no manifests and no tags (the registry still lists it in the catalog)"
        } else {
            "directory has no _manifests: the registry does not see a repository here"
        };
        out.push(
            Finding::new(Kind::EmptyRepository, msg)
                .repo(name)
                .path(layout::repo_dir(name)),
        );
    }

    for u in repo.uploads.values() {
        out.push(upload_finding(name, u, now));
    }
    rg
}

fn check_tag(
    repo: &Repo,
    tag: &TagName,
    t: &crate::scan::Tag,
    rg: &RepoGraph,
    has_blob: &dyn Fn(&Digest) -> bool,
    out: &mut Vec<Finding>,
) -> TagTarget {
    let name = &repo.name;
    for (d, l) in &t.index {
        let bad = match &l.target {
            Err(LinkProblem::Malformed(m)) => Some(format!("malformed tag index entry: {m}")),
            Err(LinkProblem::Unreadable(m)) => Some(format!("cannot read tag index entry: {m}")),
            Ok(x) if x != d => Some(format!("tag index entry holds {x}")),
            Ok(_) => None,
        };
        if let Some(msg) = bad {
            out.push(
                Finding::new(Kind::TagIndexMalformed, msg)
                    .repo(name)
                    .tag(tag)
                    .digest(*d)
                    .path(layout::tag_index_link(name, tag, d)),
            );
        }
    }
    let rel = || layout::tag_current(name, tag);
    let d = match &t.current {
        None => {
            out.push(
                Finding::new(
                    Kind::TagNoCurrent,
                    "tag has no current/link; pulls of it fail",
                )
                .repo(name)
                .tag(tag)
                .path(layout::tag_dir(name, tag)),
            );
            return TagTarget::Broken;
        }
        Some(Link { target: Err(p), .. }) => {
            out.push(
                link_finding(Kind::LinkMalformed, p, rel())
                    .repo(name)
                    .tag(tag),
            );
            return TagTarget::Broken;
        }
        Some(Link { target: Ok(d), .. }) => *d,
    };
    if !rg.revisions.contains(&d) {
        out.push(
            Finding::new(
                Kind::TagRevisionMissing,
                "tag points at a manifest with no revision link in this repository; pulls of it fail",
            )
            .repo(name)
            .tag(tag)
            .digest(d)
            .path(rel()),
        );
    } else if !has_blob(&d) {
        out.push(
            Finding::new(
                Kind::ManifestMissing,
                "tag points at a manifest whose blob is gone; pulls of it fail",
            )
            .repo(name)
            .tag(tag)
            .digest(d)
            .path(layout::blob_data(&d)),
        );
    }
    TagTarget::Points(d)
}

#[allow(clippy::too_many_arguments)]
fn check_references(
    name: &RepoName,
    md: &Digest,
    m: &Manifest,
    rg: &RepoGraph,
    ix: &Index,
    out: &mut Vec<Finding>,
    declared: &mut Declared,
) {
    for r in &m.references {
        let exists = ix.present(&r.digest);
        // Only declarations that disagree with a stat'd blob are kept (one per blob).
        if let (Some(size), true) = (r.size, exists) {
            if ix
                .blob(&r.digest)
                .is_some_and(|b| b.stat && b.is_file && b.size != size)
            {
                declared
                    .entry(r.digest)
                    .or_insert_with(|| (size, *md, name.clone()));
            }
        }
        let f = |kind: Kind, msg: String| {
            Finding::new(kind, msg)
                .repo(name)
                .digest(r.digest)
                .manifest(*md)
        };
        match r.role {
            Role::Config | Role::Layer => {
                if r.foreign {
                    continue;
                }
                if !exists {
                    out.push(
                        f(
                            Kind::BlobMissing,
                            format!(
                                "{} of manifest {md} is not in the blob store",
                                r.role.word()
                            ),
                        )
                        .path(layout::blob_data(&r.digest)),
                    );
                } else if !rg.layers.contains_key(&r.digest) {
                    out.push(
                        f(
                            Kind::LayerUnlinked,
                            format!(
                                "{} of manifest {md} is not linked in this repository's _layers; the registry answers 404",
                                r.role.word()
                            ),
                        )
                        .path(layout::layer_link(name, &r.digest)),
                    );
                }
            }
            Role::Child => {
                if !exists {
                    out.push(
                        f(
                            Kind::ChildMissing,
                            format!("child of index {md} is not in the blob store"),
                        )
                        .path(layout::blob_data(&r.digest)),
                    );
                } else if !rg.revisions.contains(&r.digest) {
                    out.push(
                        f(
                            Kind::ChildUnlinked,
                            format!("child of index {md} has no revision link in this repository; pulls of it fail"),
                        )
                        .path(layout::revision_link(name, &r.digest)),
                    );
                }
            }
            Role::Subject => {
                if !rg.revisions.contains(&r.digest) || !exists {
                    out.push(
                        f(
                            Kind::SubjectMissing,
                            format!("subject of referrer {md} is not in this repository"),
                        )
                        .path(layout::revision_link(name, md)),
                    );
                }
            }
        }
    }
}

fn upload_finding(repo: &RepoName, u: &crate::scan::Upload, now: SystemTime) -> Finding {
    let rel = format!("{}/_uploads/{}", layout::repo_dir(repo), u.id);
    let f = match &u.started {
        None => Finding::new(
            Kind::UploadStale,
            "unfinished upload without startedat; the registry never purges it",
        ),
        Some(Err(e)) => Finding::new(
            Kind::UploadStale,
            format!(
                "unfinished upload with an unreadable startedat ({e}); the registry never purges it"
            ),
        ),
        Some(Ok(t)) => {
            let age = now.duration_since(*t).unwrap_or_default();
            let age_text = humantime::format_duration(Duration::from_secs(age.as_secs() / 60 * 60));
            if age > UPLOAD_PURGE_AGE {
                Finding::new(
                    Kind::UploadStale,
                    format!(
                        "unfinished upload started {age_text} ago, older than the registry's 7-day purge age"
                    ),
                )
            } else {
                Finding::new(
                    Kind::UploadInProgress,
                    format!("unfinished upload started {age_text} ago"),
                )
            }
        }
    };
    f.repo(repo).size(u.size).path(rel)
}
