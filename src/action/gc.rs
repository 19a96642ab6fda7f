//! `gc`: mark and sweep, as the registry's `garbage-collect`, without its data-loss bugs.
//!
//! [`plan`] is pure: it marks from the graph and lists what to sweep. [`apply`] re-checks the
//! layout just before deleting and deletes references before referents (tag index entries,
//! revision links, `_layers` links, then blob data), so a crash at any moment leaves a layout
//! whose every reference still resolves; a second run finishes the job.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::digest::{Digest, DigestMap, DigestSet, SparseDigestSet};
use crate::error::{Error, Result};
use crate::findings::{Finding, Kind};
use crate::fsops::Remover;
use crate::graph::{self, Graph, ManifestState};
use crate::layout::{self, RepoName, Root, TagName};
use crate::manifest::Role;
use crate::scan::Inventory;
use crate::storage::{Fact, Facts};

/// What `gc` does.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Drop manifests no tag reaches (and never the children a kept index needs).
    pub delete_untagged: bool,
    /// Keep unreferenced blobs and untagged manifests younger than this.
    pub min_age: Duration,
    /// Sweep even when marking was incomplete.
    pub force: bool,
    /// The time ages are measured against.
    pub now: SystemTime,
    /// Unfinished multipart uploads (object storage) started longer ago than this are
    /// aborted; `None`: left alone.
    pub upload_age: Option<Duration>,
}

/// An unfinished upload to abort: an object store's in-progress multipart upload.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct SweptUpload {
    /// The repository.
    pub repository: RepoName,
    /// The registry's upload id (`_uploads/<id>`).
    pub id: String,
    /// The store's multipart upload id.
    pub upload_id: String,
    /// Bytes in its parts.
    pub bytes: u64,
}

/// A blob to sweep.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct SweptBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// A manifest revision to drop (with `--delete-untagged`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct SweptManifest {
    /// The repository.
    pub repository: RepoName,
    /// The manifest.
    pub digest: Digest,
}

/// A link to remove.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct SweptLink {
    /// The repository.
    pub repository: RepoName,
    /// The tag, for tag index entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagName>,
    /// The digest the link names (in its path).
    pub digest: Digest,
}

/// Everything a sweep removes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sweep {
    /// Blobs, sorted by digest.
    pub blobs: Vec<SweptBlob>,
    /// Manifest revisions dropped.
    pub manifests: Vec<SweptManifest>,
    /// Their total size (blobs).
    pub bytes: u64,
    /// `_layers` links to swept blobs.
    pub layer_links: Vec<SweptLink>,
    /// Tag index entries of dropped manifests.
    pub tag_index_entries: Vec<SweptLink>,
    /// Blob directories holding nothing (a deletion killed between a blob's data file and its
    /// directory leaves one), older than `--min-age`.
    pub empty_blob_dirs: Vec<Digest>,
    /// `manifests` in the order they are removed: each before what it refers to.
    #[serde(skip)]
    pub manifest_removal: Vec<SweptManifest>,
    /// Unfinished multipart uploads older than `--upload-age` (object storage), aborted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uploads: Vec<SweptUpload>,
}

/// The plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcPlan {
    /// What would be removed.
    pub sweep: Sweep,
    /// Blobs marked live.
    pub marked: u64,
    /// Unreferenced blobs kept because they (or a link to them) are younger than `min_age`.
    pub kept_young_blobs: u64,
    /// Untagged manifests kept because they are younger than `min_age`.
    pub kept_young_manifests: u64,
    /// The errors the scan and the graph found: gc refuses to sweep unless forced. (A finding
    /// stops gc exactly when it is an error; warnings and info never do.)
    pub broken: Vec<Finding>,
    /// Why the scan could not see the whole layout (a directory it could not list, a symlink
    /// it does not follow in the repositories tree): gc never sweeps then, not even with
    /// `--force`, since what it could not read may need any blob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blind: Option<String>,
    /// The walk found blobs but not a single manifest (a wrong root, an unmounted or
    /// unreadable repositories tree): gc refuses unless forced.
    pub no_manifests: bool,
}

/// Why gc (or a command that sweeps) will not sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The scan could not see everything: never overridden.
    Blind(String),
    /// The graph is broken, or holds no manifest: `--force` overrides.
    Broken(String),
}

impl GcPlan {
    /// Whether this plan may not be carried out, and why.
    pub fn refusal(&self, force: bool) -> Option<Refusal> {
        if let Some(why) = &self.blind {
            return Some(Refusal::Blind(format!(
                "refusing to sweep: {why}; what regfsck cannot read may need any blob (--force does not change this: fix the permissions or the mount and run again)"
            )));
        }
        if force {
            return None;
        }
        if !self.broken.is_empty() {
            return Some(Refusal::Broken(
                "refusing to sweep: the graph is broken (errors above); fix it (regfsck repair) or pass --force".into(),
            ));
        }
        if self.no_manifests {
            return Some(Refusal::Broken(
                "refusing to sweep: blobs exist but no repository holds a single manifest (a wrong root? an unmounted repositories tree?); if the registry really holds no images, --force sweeps every blob".into(),
            ));
        }
        None
    }
}

/// The findings that stop a sweep: every error (warnings and info never do).
pub fn blocking(inv: &Inventory, g: &Graph) -> Vec<Finding> {
    inv.findings
        .iter()
        .chain(&g.findings)
        .filter(|f| f.severity == crate::findings::Severity::Error)
        .cloned()
        .collect()
}

/// Newest modification time of anything that names each digest: blob data, revision, layer,
/// and tag links.
fn newest_touch(inv: &Inventory) -> BTreeMap<Digest, SystemTime> {
    let mut m: BTreeMap<Digest, SystemTime> = BTreeMap::new();
    let mut touch = |d: Digest, t: Option<SystemTime>| {
        if let Some(t) = t {
            let e = m.entry(d).or_insert(t);
            if t > *e {
                *e = t;
            }
        }
    };
    for (d, b) in &inv.blobs {
        touch(*d, b.mtime());
    }
    for r in inv.repos.values() {
        for links in [&r.layers, &r.revisions] {
            for (d, l) in links {
                touch(*d, l.mtime);
                if let Ok(t) = l.target {
                    touch(t, l.mtime);
                }
            }
        }
        for t in r.tags.values() {
            if let Some(c) = &t.current {
                if let Ok(d) = c.target {
                    touch(d, c.mtime);
                }
            }
            for (d, l) in &t.index {
                touch(*d, l.mtime);
            }
        }
    }
    m
}

/// What marking every repository reads: the graph, and what was fetched for it.
struct Marking<'a> {
    ix: &'a graph::Index<'a>,
    aliases: &'a rustc_hash::FxHashMap<Digest, Digest>,
    /// Manifests that an index names but the graph did not parse (a child whose revision
    /// link is gone), read ahead.
    extra: &'a graph::Unparsed,
    young_revision: &'a (dyn Fn(&RepoName, &Digest) -> bool + Sync),
}

/// What marking one repository gave.
struct RepoMarks {
    /// Positions in the blob store.
    marked: Vec<u32>,
    /// Marked digests the blob store does not hold.
    absent: Vec<Digest>,
    dropped: Vec<SweptManifest>,
    young_untagged: u64,
}

/// Marks from one repository's roots: every revision (`keep_all`), or what its tags reach
/// plus young untagged manifests; closes over index children (whether or not they still have
/// a revision link) and referrers whose subject is kept.
fn mark_repo(m: &Marking, name: &RepoName, rg: &graph::RepoGraph, keep_all: bool) -> RepoMarks {
    let Marking {
        ix,
        aliases,
        extra,
        young_revision,
    } = m;
    let blobs = &ix.inventory().blobs;
    // The repository's revisions as the graph looked them up.
    let ix = &ix.for_repo(rg);
    ix.touch_local();
    let mut out = RepoMarks {
        marked: Vec::new(),
        absent: Vec::new(),
        dropped: Vec::new(),
        young_untagged: 0,
    };
    let tag_targets: BTreeSet<Digest> = rg.tag_targets().collect();
    let mut stack: Vec<Digest> = tag_targets.iter().copied().collect();
    if keep_all {
        stack.extend(rg.revisions.iter().copied());
    } else {
        for d in &rg.revisions {
            if !tag_targets.contains(d) && !rg.tagged.contains(d) && young_revision(name, d) {
                stack.push(*d);
                out.young_untagged += 1;
            }
        }
    }
    let mut kept: BTreeSet<Digest> = BTreeSet::new();
    loop {
        while let Some(d) = stack.pop() {
            if !kept.insert(d) {
                continue;
            }
            let m = match ix.get(&d) {
                Some(ManifestState::Parsed(m)) => Some(m),
                Some(_) => None,
                None => extra.get(&d).and_then(Option::as_ref),
            };
            if let Some(m) = m {
                for r in &m.references {
                    match r.role {
                        Role::Config | Role::Layer => {
                            match m.resolved_blob(r, blobs.generation()) {
                                Some(Some(id)) => out.marked.push(id as u32),
                                _ => out.mark(blobs, r.digest),
                            }
                            // Through a digest alias, the bytes are under another name.
                            // (A link's target is most often its own name: marked already.)
                            if let Some(c) = rg
                                .layers
                                .get(&r.digest)
                                .or_else(|| aliases.get(&r.digest).copied())
                            {
                                if c != r.digest {
                                    out.mark(blobs, c);
                                }
                            }
                        }
                        Role::Child => stack.push(r.digest),
                        Role::Subject => {}
                    }
                }
            }
        }
        let referrers: Vec<Digest> = rg
            .revisions
            .iter()
            .filter(|d| !kept.contains(d))
            .filter(|d| {
                ix.parsed(d)
                    .is_some_and(|m| m.refs(Role::Subject).any(|s| kept.contains(&s.digest)))
            })
            .copied()
            .collect();
        if referrers.is_empty() {
            break;
        }
        stack.extend(referrers);
    }
    for d in &rg.revisions {
        if !kept.contains(d) {
            out.dropped.push(SweptManifest {
                repository: name.clone(),
                digest: *d,
            });
        }
    }
    for d in kept {
        match ix.blob_id(&d) {
            Some(id) => out.marked.push(id as u32),
            None => out.absent.push(d),
        }
    }
    out
}

impl RepoMarks {
    fn mark(&mut self, blobs: &DigestMap<crate::scan::Blob>, d: Digest) {
        match blobs.id(&d) {
            Some(id) => self.marked.push(id as u32),
            None => self.absent.push(d),
        }
    }
}

/// What marking needs from storage beyond the scan, fetched in batches before it runs.
#[derive(Debug, Default)]
pub struct MarkFacts {
    /// Manifests the graph names and did not parse, read.
    extra: graph::Unparsed,
    /// The revision links and blob data of untagged manifests (their ages, for `-m`).
    stats: Facts,
}

impl MarkFacts {
    /// What marking without `-m` needs: only the manifests the graph did not parse.
    pub fn with_unparsed(extra: graph::Unparsed) -> Self {
        MarkFacts {
            extra,
            stats: Facts::default(),
        }
    }
}

/// What the sweep needs from storage beyond the scan, fetched in batches once marking is done.
#[derive(Debug, Default)]
pub struct SweepFacts {
    /// The data file of each blob not marked (a scan by names did not stat it), by digest:
    /// hundreds of thousands of orphans are not kept as paths.
    data: DigestMap<Fact>,
    /// Where a data file is missing, its directory; the `_layers` links to the blobs not
    /// marked; the tag index entries of dropped manifests.
    stats: Facts,
}

/// The outcome of marking.
#[derive(Debug, Default)]
pub struct Marks {
    marked: DigestSet,
    dropped: Vec<SweptManifest>,
    kept_young_manifests: u64,
}

/// How old is too young, for one plan.
struct Ages<'a> {
    opts: &'a GcOptions,
    grace: bool,
    /// Newest time anything the scan stat'ed names each digest.
    touched: BTreeMap<Digest, SystemTime>,
}

impl<'a> Ages<'a> {
    fn new(inv: &Inventory, opts: &'a GcOptions) -> Self {
        let grace = opts.min_age > Duration::ZERO;
        Ages {
            opts,
            grace,
            touched: if grace {
                newest_touch(inv)
            } else {
                BTreeMap::new()
            },
        }
    }
    fn is_young(&self, t: SystemTime) -> bool {
        self.opts.now.duration_since(t).unwrap_or_default() < self.opts.min_age
    }
    /// Whether something the scan saw names `d` and is young.
    fn young(&self, d: &Digest) -> bool {
        self.grace && self.touched.get(d).is_some_and(|t| self.is_young(*t))
    }
    /// Whether the file `rel` (fetched into `facts`) is young.
    fn young_file(&self, facts: &Facts, rel: &str) -> bool {
        self.grace && facts.mtime(rel).is_some_and(|t| self.is_young(t))
    }
}

/// The repositories whose graph is broken: gc -m keeps every revision there.
fn broken_repos(inv: &Inventory, g: &Graph) -> BTreeSet<String> {
    blocking(inv, g)
        .into_iter()
        .filter_map(|f| f.repository)
        .collect()
}

/// Whether `-m` may drop the untagged manifests of repository `name`.
fn drops_untagged(opts: &GcOptions, broken: &BTreeSet<String>, name: &RepoName) -> bool {
    opts.delete_untagged && !broken.contains(name.as_str())
}

/// Fetches what marking needs: manifests named by an index but not parsed (and theirs), and,
/// with `-m` and a grace period, the ages of untagged manifests.
pub fn mark_facts(root: &Root, inv: &Inventory, g: &Graph, opts: &GcOptions) -> MarkFacts {
    let mut out = MarkFacts {
        extra: graph::unparsed_manifests(root, inv, g),
        ..MarkFacts::default()
    };
    if opts.delete_untagged && opts.min_age > Duration::ZERO {
        let broken = broken_repos(inv, g);
        let mut rels = Vec::new();
        for (name, rg) in &g.repos {
            if !drops_untagged(opts, &broken, name) {
                continue;
            }
            let targets: BTreeSet<Digest> = rg.tag_targets().collect();
            for d in &rg.revisions {
                if !targets.contains(d) && !rg.tagged.contains(d) {
                    rels.push(layout::revision_link(name, d));
                    rels.push(layout::blob_data(d));
                }
            }
        }
        out.stats.stat(root.storage(), rels);
    }
    out
}

/// Marks what every repository's roots reach, each repository on its own and in parallel.
/// Pure: the graph and what [`mark_facts`] fetched.
pub fn mark(inv: &Inventory, g: &Graph, opts: &GcOptions, facts: &MarkFacts) -> Marks {
    let ages = Ages::new(inv, opts);
    let young_revision = |name: &RepoName, d: &Digest| {
        ages.young(d)
            || ages.young_file(&facts.stats, &layout::revision_link(name, d))
            || ages.young_file(&facts.stats, &layout::blob_data(d))
    };
    let broken = broken_repos(inv, g);
    let ix = graph::Index::new(inv, &g.manifests);
    let marking = Marking {
        ix: &ix,
        aliases: &g.aliases,
        extra: &facts.extra,
        young_revision: &young_revision,
    };
    let repos: Vec<(&RepoName, &graph::RepoGraph)> = g.repos.iter().collect();
    let parts: Vec<RepoMarks> = repos
        .par_iter()
        .map(|(name, rg)| mark_repo(&marking, name, rg, !drops_untagged(opts, &broken, name)))
        .collect();
    let mut out = Marks {
        marked: DigestSet::over(&inv.blobs),
        ..Marks::default()
    };
    for p in parts {
        for id in p.marked {
            out.marked.insert_id(id as usize);
        }
        for d in p.absent {
            out.marked.insert(&inv.blobs, d);
        }
        out.dropped.extend(p.dropped);
        out.kept_young_manifests += p.young_untagged;
    }
    // What links regfsck cannot place in a repository refer to.
    out.marked.union(&g.pinned);
    out
}

/// Fetches what the sweep needs, for the few blobs and manifests about to go: a scan by names
/// did not stat blobs or `_layers` links (a cross-repository mount writes nothing but such a
/// link), and does not read tag histories.
pub fn sweep_facts(
    root: &Root,
    inv: &Inventory,
    g: &Graph,
    opts: &GcOptions,
    marks: &Marks,
) -> SweepFacts {
    let ages = Ages::new(inv, opts);
    let mut stats = Facts::default();
    let unmarked: Vec<Digest> = inv
        .blobs
        .iter()
        .enumerate()
        .filter(|(id, (_, b))| !b.stat() && !marks.marked.contains_id(*id))
        .map(|(_, (d, _))| *d)
        .collect();
    // In digest order, many at once; each path made when its stat is.
    let found: Vec<Fact> = unmarked
        .par_iter()
        .map(|d| Fact::of(root.storage(), &layout::blob_data(d)))
        .collect();
    let dirs: Vec<String> = unmarked
        .iter()
        .zip(&found)
        .filter(|(_, f)| **f == Fact::Missing)
        .map(|(d, _)| layout::blob_data(d).trim_end_matches("/data").to_string())
        .collect();
    let data = DigestMap::from_sorted(unmarked, found);
    stats.stat_dirs(root.storage(), dirs);
    if ages.grace {
        let links: Vec<String> = inv
            .repos
            .values()
            .flat_map(|r| {
                r.layers.iter().filter_map(|(d, l)| {
                    let target = l.target.as_ref().ok().copied().unwrap_or(*d);
                    (l.mtime.is_none() && !marks.marked.contains(&inv.blobs, &target))
                        .then(|| layout::layer_link(&r.name, d))
                })
            })
            .collect();
        stats.stat(root.storage(), links);
        // Stale `_layers` links, whatever their target.
        let stale: Vec<String> = g
            .findings
            .iter()
            .filter(|f| f.kind == Kind::StaleLayerLink)
            .filter_map(|f| {
                let r = RepoName::parse(f.repository.as_deref()?).ok()?;
                Some(layout::layer_link(&r, &f.digest?))
            })
            .collect();
        stats.stat(root.storage(), stale);
    }
    let mut entries = Vec::new();
    for m in &marks.dropped {
        if let Some(r) = inv.repos.get(&m.repository) {
            for t in r.tags.keys() {
                let rel = layout::tag_index_link(&r.name, t, &m.digest);
                entries.push(rel.trim_end_matches("/link").to_string());
            }
        }
    }
    stats.stat(root.storage(), entries);
    SweepFacts { data, stats }
}

/// Lists what to sweep: what is not marked and not young. Pure: the scan, the graph, the
/// marks, and what [`sweep_facts`] fetched.
pub fn sweep(
    inv: &Inventory,
    g: &Graph,
    opts: &GcOptions,
    marks: Marks,
    facts: &SweepFacts,
) -> GcPlan {
    let ages = Ages::new(inv, opts);
    let Marks {
        marked,
        dropped,
        kept_young_manifests,
    } = marks;
    let data = &facts.data;
    let facts = &facts.stats;
    // Blobs a young `_layers` link (one the scan did not stat) names.
    let young_links: FxHashSet<Digest> = if ages.grace {
        inv.repos
            .values()
            .flat_map(|r| {
                r.layers.iter().filter_map(|(d, l)| {
                    let target = l.target.as_ref().ok().copied().unwrap_or(*d);
                    (l.mtime.is_none()
                        && !marked.contains(&inv.blobs, &target)
                        && ages.young_file(facts, &layout::layer_link(&r.name, d)))
                    .then_some(target)
                })
            })
            .collect()
    } else {
        FxHashSet::default()
    };
    let mut sweep = Sweep::default();
    let mut kept_young_blobs = 0;
    for (d, b) in (inv.blobs.iter().enumerate())
        .filter(|(id, _)| !marked.contains_id(*id))
        .map(|(_, e)| e)
    {
        let (size, mtime) = if b.stat() {
            (b.size(), b.mtime())
        } else {
            match data.get(d).copied().unwrap_or(Fact::Unknown) {
                Fact::Present(m) if m.kind == crate::storage::Kind::File => (m.size, m.mtime),
                Fact::Missing => {
                    // No data file, nothing else: what a deletion killed between the file and
                    // its directory leaves (or a push in its first instant: hence the age).
                    let path = layout::blob_data(d);
                    let dir = path.trim_end_matches("/data");
                    if facts.is_empty_dir(dir)
                        && !(ages.grace && facts.mtime(dir).is_none_or(|t| ages.is_young(t)))
                    {
                        sweep.empty_blob_dirs.push(*d);
                    }
                    continue;
                }
                _ => continue,
            }
        };
        let young_data = ages.grace && mtime.is_some_and(|t| ages.is_young(t));
        if ages.young(d) || young_data || young_links.contains(d) {
            kept_young_blobs += 1;
            continue;
        }
        sweep.blobs.push(SweptBlob { digest: *d, size });
        sweep.bytes += size;
    }
    let swept = SparseDigestSet::new(sweep.blobs.iter().map(|b| b.digest).collect());
    // Stale `_layers` links (to blobs already gone that no manifest here needs, as the
    // registry's own gc leaves them) go too, unless young.
    let stale: FxHashSet<(&str, Digest)> = g
        .findings
        .iter()
        .filter(|f| f.kind == Kind::StaleLayerLink)
        .filter_map(|f| Some((f.repository.as_deref()?, f.digest?)))
        .collect();
    for r in inv.repos.values() {
        for (d, l) in &r.layers {
            let target = l.target.as_ref().ok().copied().unwrap_or(*d);
            let is_stale = stale.contains(&(r.name.as_str(), *d))
                && !ages.young(d)
                && !ages.young_file(facts, &layout::layer_link(&r.name, d));
            if swept.contains(&target) || is_stale {
                sweep.layer_links.push(SweptLink {
                    repository: r.name.clone(),
                    tag: None,
                    digest: *d,
                });
            }
        }
    }
    // Tag index entries of the dropped manifests.
    for m in &dropped {
        let Some(r) = inv.repos.get(&m.repository) else {
            continue;
        };
        for t in r.tags.keys() {
            let rel = layout::tag_index_link(&r.name, t, &m.digest);
            if facts.exists(rel.trim_end_matches("/link")) {
                sweep.tag_index_entries.push(SweptLink {
                    repository: r.name.clone(),
                    tag: Some(t.clone()),
                    digest: m.digest,
                });
            }
        }
    }
    let mut by_repo: BTreeMap<&RepoName, BTreeSet<Digest>> = BTreeMap::new();
    for m in &dropped {
        by_repo.entry(&m.repository).or_default().insert(m.digest);
    }
    for (repo, ds) in by_repo {
        for digest in graph::referrers_first(g, &ds) {
            sweep.manifest_removal.push(SweptManifest {
                repository: repo.clone(),
                digest,
            });
        }
    }
    sweep.manifests = dropped;
    sweep.uploads = stale_uploads(inv, opts);
    let no_manifests = !inv.blobs.is_empty() && g.repos.values().all(|r| r.revisions.is_empty());
    let blind = inv.blind_spots();
    if blind.is_some() {
        // What the scan could not see may need any blob: nothing is known to be garbage.
        sweep = Sweep::default();
    }
    GcPlan {
        sweep,
        marked: marked.len() as u64,
        kept_young_blobs,
        kept_young_manifests,
        broken: blocking(inv, g),
        blind,
        no_manifests,
    }
}

/// The in-progress multipart uploads started longer ago than `--upload-age`.
fn stale_uploads(inv: &Inventory, opts: &GcOptions) -> Vec<SweptUpload> {
    let Some(age) = opts.upload_age else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in inv.repos.values() {
        for u in r.uploads.values() {
            let (Some(m), Some(Ok(started))) = (&u.multipart, &u.started) else {
                continue;
            };
            if opts.now.duration_since(*started).unwrap_or_default() > age {
                out.push(SweptUpload {
                    repository: r.name.clone(),
                    id: u.id.clone(),
                    upload_id: m.upload_id.clone(),
                    bytes: u.size,
                });
            }
        }
    }
    out
}

/// Marks and lists what to sweep: fetches what the scan did not (in batches), then plans
/// purely over it. Reads, never writes.
pub fn plan(root: &Root, inv: &Inventory, g: &Graph, opts: &GcOptions) -> GcPlan {
    let ahead = mark_facts(root, inv, g, opts);
    let marks = mark(inv, g, opts, &ahead);
    drop(ahead);
    let facts = sweep_facts(root, inv, g, opts, &marks);
    sweep(inv, g, opts, marks, &facts)
}

/// What a real run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Manifest revisions removed.
    pub manifests: u64,
    /// Links removed (tag index entries and `_layers`).
    pub links: u64,
    /// Planned blobs that the re-check found live again, and kept.
    pub rechecked_kept: u64,
    /// Unfinished multipart uploads aborted (object storage).
    #[serde(skip_serializing_if = "is_zero")]
    pub uploads: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Carries out a plan: re-checks, then deletes references before referents.
///
/// # Errors
/// I/O errors while deleting, and [`Error::Interrupted`] (everything deleted so far is consistent).
pub fn apply(
    root: &Root,
    plan: &GcPlan,
    opts: &GcOptions,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
) -> Result<Applied> {
    let mut done = Applied::default();
    apply_counting(root, plan, opts, remover, interrupt, &mut done)?;
    Ok(done)
}

/// [`apply`], counting into `done` as it deletes: after an error (an interrupt), `done` is
/// what was deleted before it.
///
/// # Errors
/// As [`apply`].
pub fn apply_counting(
    root: &Root,
    plan: &GcPlan,
    opts: &GcOptions,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    done: &mut Applied,
) -> Result<()> {
    let stop = || Error::check_interrupt(interrupt);
    let s = &plan.sweep;
    // 1. Tag index entries (in batches: none refers to another), 2. revision links of dropped
    // manifests, one by one, referrers first.
    let entries: Vec<String> = s
        .tag_index_entries
        .iter()
        .map(|l| {
            let tag = l.tag.as_ref().expect("tag index entries carry their tag");
            parent(&layout::tag_index_link(&l.repository, tag, &l.digest)).to_string()
        })
        .collect();
    remove_in_batches(remover, &entries, &stop, &mut done.links)?;
    for m in &s.manifest_removal {
        stop()?;
        let rel = layout::revision_link(&m.repository, &m.digest);
        remover.remove_tree(parent(&rel))?;
        done.manifests += 1;
    }
    // Re-check: scan again (an object store listed again) and mark again; only blobs still
    // unmarked and old are swept.
    let fresh = root.refreshed()?;
    let inv = crate::scan::scan(&fresh, crate::scan::Depth::Names)?;
    let g = graph::build_for_gc(&fresh, &inv, opts.now);
    let recheck = self::plan(&fresh, &inv, &g, opts);
    // What changed since the plan may make the sweep unsafe: then nothing more is deleted.
    if let Some(Refusal::Blind(why) | Refusal::Broken(why)) = recheck.refusal(opts.force) {
        return Err(Error::Refused(format!(
            "on the re-check before deleting blobs: {why}"
        )));
    }
    let still: BTreeSet<Digest> = recheck.sweep.blobs.iter().map(|b| b.digest).collect();
    let still_links: BTreeSet<&SweptLink> = recheck.sweep.layer_links.iter().collect();
    // 3. `_layers` links of blobs about to go, 4. the blobs: each in batches, every link
    // before any blob.
    let links: Vec<String> = s
        .layer_links
        .iter()
        .filter(|l| still_links.contains(l))
        .map(|l| parent(&layout::layer_link(&l.repository, &l.digest)).to_string())
        .collect();
    remove_in_batches(remover, &links, &stop, &mut done.links)?;
    done.rechecked_kept = s
        .blobs
        .iter()
        .filter(|b| !still.contains(&b.digest))
        .count() as u64;
    let blobs: Vec<&SweptBlob> = s
        .blobs
        .iter()
        .filter(|b| still.contains(&b.digest))
        .collect();
    for chunk in blobs.chunks(BATCH) {
        stop()?;
        let dirs: Vec<String> = chunk
            .iter()
            .map(|b| parent(&layout::blob_data(&b.digest)).to_string())
            .collect();
        remover.remove_trees(&dirs)?;
        done.blobs += chunk.len() as u64;
        done.bytes += chunk.iter().map(|b| b.size).sum::<u64>();
    }
    // 5. Blob directories left empty by an interrupted deletion.
    let still_empty: BTreeSet<&Digest> = recheck.sweep.empty_blob_dirs.iter().collect();
    for d in &s.empty_blob_dirs {
        stop()?;
        if still_empty.contains(d) {
            let rel = layout::blob_data(d);
            remover.remove_empty_dir(rel.trim_end_matches("/data"))?;
        }
    }
    // 6. Stale multipart uploads: their `_uploads/<id>` keys first (`startedat`, hash states),
    // then the upload itself (a crash between leaves the upload, found again by its own start
    // time).
    for u in &s.uploads {
        stop()?;
        let dir = format!("{}/_uploads/{}", layout::repo_dir(&u.repository), u.id);
        remover.remove_tree(&dir)?;
        remover.abort_upload(&format!("{dir}/data"), &u.upload_id)?;
        done.uploads += 1;
    }
    // 7. Shard directories left empty (by this run, or by one that was interrupted).
    if remover.capabilities().directories {
        crate::fsops::remove_empty_shards(root, remover)?;
    }
    Ok(())
}

/// Deletions per batch (an object store's DeleteObjects maximum), and between checks for an
/// interrupt.
const BATCH: usize = 1000;

/// Removes `rels` in batches of [`BATCH`], checking for an interrupt before each; counts
/// each batch removed into `count`.
fn remove_in_batches(
    remover: &dyn Remover,
    rels: &[String],
    stop: &dyn Fn() -> Result<()>,
    count: &mut u64,
) -> Result<()> {
    for chunk in rels.chunks(BATCH) {
        stop()?;
        remover.remove_trees(chunk)?;
        *count += chunk.len() as u64;
    }
    Ok(())
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(p, _)| p).unwrap_or(rel)
}
