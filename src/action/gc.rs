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

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::findings::{Finding, Kind};
use crate::fsops::Remover;
use crate::graph::{self, Graph, ManifestState};
use crate::layout::{self, RepoName, Root, TagName};
use crate::manifest::{Manifest, Role};
use crate::scan::{self, Inventory};

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
        touch(*d, b.mtime);
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

/// Reads a manifest that the graph did not parse (a child whose revision link is gone).
fn read_extra(root: &Root, inv: &Inventory, d: &Digest) -> Option<Manifest> {
    match graph::read_manifest(root, inv, d) {
        ManifestState::Parsed(m) => Some(m),
        _ => None,
    }
}

/// What marking every repository reads.
struct Marking<'a> {
    root: &'a Root,
    inv: &'a Inventory,
    ix: &'a graph::Index<'a>,
    aliases: &'a rustc_hash::FxHashMap<Digest, Digest>,
    young_revision: &'a (dyn Fn(&RepoName, &Digest) -> bool + Sync),
}

/// What marking one repository gave.
struct RepoMarks {
    marked: Vec<Digest>,
    dropped: Vec<SweptManifest>,
    young_untagged: u64,
}

/// Marks from one repository's roots: every revision (`keep_all`), or what its tags reach
/// plus young untagged manifests; closes over index children (whether or not they still have
/// a revision link) and referrers whose subject is kept.
fn mark_repo(m: &Marking, name: &RepoName, rg: &graph::RepoGraph, keep_all: bool) -> RepoMarks {
    let Marking {
        root,
        inv,
        ix,
        aliases,
        young_revision,
    } = m;
    let mut out = RepoMarks {
        marked: Vec::new(),
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
    let mut extra: BTreeMap<Digest, Option<Manifest>> = BTreeMap::new();
    let mut kept: BTreeSet<Digest> = BTreeSet::new();
    loop {
        while let Some(d) = stack.pop() {
            if !kept.insert(d) {
                continue;
            }
            let m = match ix.get(&d) {
                Some(ManifestState::Parsed(m)) => Some(m),
                Some(_) => None,
                None => extra
                    .entry(d)
                    .or_insert_with(|| read_extra(root, inv, &d))
                    .as_ref(),
            };
            if let Some(m) = m {
                for r in &m.references {
                    match r.role {
                        Role::Config | Role::Layer => {
                            out.marked.push(r.digest);
                            // Through a digest alias, the bytes are under another name.
                            if let Some(c) = rg.layers.get(&r.digest).or(aliases.get(&r.digest)) {
                                out.marked.push(*c);
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
    out.marked.extend(kept);
    out
}

/// Marks and lists what to sweep. Pure: reads, never writes.
pub fn plan(root: &Root, inv: &Inventory, g: &Graph, opts: &GcOptions) -> GcPlan {
    let grace = opts.min_age > Duration::ZERO;
    let touched = if grace {
        newest_touch(inv)
    } else {
        BTreeMap::new()
    };
    let is_young = |t: SystemTime| opts.now.duration_since(t).unwrap_or_default() < opts.min_age;
    let young = |d: &Digest| grace && touched.get(d).is_some_and(|t| is_young(*t));
    // A fast scan reads links without a stat: their ages are looked up here, for the few
    // manifests and blobs about to go.
    let young_file = |rel: &str| grace && root.mtime(rel).is_some_and(is_young);
    let young_revision = |name: &RepoName, d: &Digest| {
        young(d) || young_file(&layout::revision_link(name, d)) || young_file(&layout::blob_data(d))
    };
    let broken = blocking(inv, g);
    let broken_repos: BTreeSet<&str> = broken
        .iter()
        .filter_map(|f| f.repository.as_deref())
        .collect();

    // Mark, each repository on its own and in parallel.
    let ix = graph::Index::new(inv, &g.manifests);
    let marking = Marking {
        root,
        inv,
        ix: &ix,
        aliases: &g.aliases,
        young_revision: &young_revision,
    };
    let repos: Vec<(&RepoName, &graph::RepoGraph)> = g.repos.iter().collect();
    let parts: Vec<RepoMarks> = repos
        .par_iter()
        .map(|(name, rg)| {
            let keep_all = !opts.delete_untagged || broken_repos.contains(name.as_str());
            mark_repo(&marking, name, rg, keep_all)
        })
        .collect();
    let mut marked: FxHashSet<Digest> = FxHashSet::with_capacity_and_hasher(
        parts.iter().map(|p| p.marked.len()).sum(),
        Default::default(),
    );
    let mut dropped: Vec<SweptManifest> = Vec::new();
    let mut kept_young_manifests = 0;
    for p in parts {
        marked.extend(p.marked);
        dropped.extend(p.dropped);
        kept_young_manifests += p.young_untagged;
    }
    // What links regfsck cannot place in a repository refer to.
    marked.extend(g.pinned.iter().copied());
    drop(ix);

    // `_layers` links scanned by name only have no mtime: stat those of the blobs about to go
    // (a cross-repository mount writes nothing but such a link).
    let candidates: FxHashSet<Digest> = inv
        .blobs
        .keys()
        .filter(|d| !marked.contains(d) && !young(d))
        .copied()
        .collect();
    let young_links: FxHashSet<Digest> = if grace {
        let links: Vec<(&RepoName, &Digest, Digest)> = inv
            .repos
            .values()
            .flat_map(|r| {
                r.layers.iter().filter_map(|(d, l)| {
                    let target = l.target.as_ref().ok().copied().unwrap_or(*d);
                    (l.mtime.is_none() && candidates.contains(&target))
                        .then_some((&r.name, d, target))
                })
            })
            .collect();
        links
            .par_iter()
            .filter(|(name, d, _)| young_file(&layout::layer_link(name, d)))
            .map(|(_, _, t)| *t)
            .collect()
    } else {
        FxHashSet::default()
    };
    // A scan by names did not stat blobs: do it now (in parallel), for the ones about to go.
    let unmarked: Vec<(&Digest, &scan::Blob)> = inv
        .blobs
        .iter()
        .filter(|(d, _)| !marked.contains(*d))
        .collect();
    /// What a blob directory holds.
    enum Stat {
        Data(u64, Option<SystemTime>),
        /// No data file, nothing else: what a deletion killed between the file and its
        /// directory leaves (or a push in its first instant: hence the directory's age).
        Empty(Option<SystemTime>),
        Other,
    }
    let stats: Vec<Stat> = unmarked
        .par_iter()
        .map(|(d, b)| {
            if b.stat {
                return Stat::Data(b.size, b.mtime);
            }
            let data = layout::blob_data(d);
            match root.storage().stat(&data) {
                Ok(m) if m.kind == crate::storage::Kind::File => Stat::Data(m.size, m.mtime),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let dir = data.trim_end_matches("/data");
                    if root.is_empty_dir(dir) {
                        Stat::Empty(root.mtime(dir))
                    } else {
                        Stat::Other
                    }
                }
                _ => Stat::Other,
            }
        })
        .collect();
    let mut sweep = Sweep::default();
    let mut kept_young_blobs = 0;
    for ((d, _), stat) in unmarked.iter().zip(stats) {
        let d = *d;
        let (size, mtime) = match stat {
            Stat::Data(size, mtime) => (size, mtime),
            Stat::Empty(mtime) => {
                if !(grace && mtime.is_none_or(is_young)) {
                    sweep.empty_blob_dirs.push(*d);
                }
                continue;
            }
            Stat::Other => continue,
        };
        let young_data = grace && mtime.is_some_and(is_young);
        if young(d) || young_data || young_links.contains(d) {
            kept_young_blobs += 1;
            continue;
        }
        sweep.blobs.push(SweptBlob { digest: *d, size });
        sweep.bytes += size;
    }
    let swept: FxHashSet<Digest> = sweep.blobs.iter().map(|b| b.digest).collect();
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
                && !young(d)
                && !young_file(&layout::layer_link(&r.name, d));
            if swept.contains(&target) || is_stale {
                sweep.layer_links.push(SweptLink {
                    repository: r.name.clone(),
                    tag: None,
                    digest: *d,
                });
            }
        }
    }
    // Tag index entries of the dropped manifests: looked up per (manifest, tag of its
    // repository), since the scan does not read tag histories.
    for m in &dropped {
        let Some(r) = inv.repos.get(&m.repository) else {
            continue;
        };
        for t in r.tags.keys() {
            let rel = layout::tag_index_link(&r.name, t, &m.digest);
            if root.exists(rel.trim_end_matches("/link")) {
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
        broken,
        blind,
        no_manifests,
    }
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
    let stop = || Error::check_interrupt(interrupt);
    let mut done = Applied::default();
    let s = &plan.sweep;
    // 1. Tag index entries, 2. revision links of dropped manifests.
    for l in &s.tag_index_entries {
        stop()?;
        let tag = l.tag.as_ref().expect("tag index entries carry their tag");
        let rel = layout::tag_index_link(&l.repository, tag, &l.digest);
        remover.remove_tree(parent(&rel))?;
        done.links += 1;
    }
    for m in &s.manifest_removal {
        stop()?;
        let rel = layout::revision_link(&m.repository, &m.digest);
        remover.remove_tree(parent(&rel))?;
        done.manifests += 1;
    }
    // Re-check: scan again and mark again; only blobs still unmarked and old are swept.
    let inv = scan::scan(root, scan::Depth::Names)?;
    let g = graph::build_for_gc(root, &inv, opts.now);
    let recheck = self::plan(root, &inv, &g, opts);
    // What changed since the plan may make the sweep unsafe: then nothing more is deleted.
    if let Some(Refusal::Blind(why) | Refusal::Broken(why)) = recheck.refusal(opts.force) {
        return Err(Error::Refused(format!(
            "on the re-check before deleting blobs: {why}"
        )));
    }
    let still: BTreeSet<Digest> = recheck.sweep.blobs.iter().map(|b| b.digest).collect();
    let still_links: BTreeSet<&SweptLink> = recheck.sweep.layer_links.iter().collect();
    // 3. `_layers` links of blobs about to go, 4. the blobs.
    for l in &s.layer_links {
        stop()?;
        if !still_links.contains(l) {
            continue;
        }
        remover.remove_tree(parent(&layout::layer_link(&l.repository, &l.digest)))?;
        done.links += 1;
    }
    for b in &s.blobs {
        stop()?;
        if !still.contains(&b.digest) {
            done.rechecked_kept += 1;
            continue;
        }
        let rel = layout::blob_data(&b.digest);
        remover.remove_tree(parent(&rel))?;
        done.blobs += 1;
        done.bytes += b.size;
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
    // 6. Shard directories left empty (by this run, or by one that was interrupted).
    crate::fsops::remove_empty_shards(root, remover)?;
    Ok(done)
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(p, _)| p).unwrap_or(rel)
}
