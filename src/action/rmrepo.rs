//! `rm-repo`: remove repositories safely, and the blobs only they referred to.
//!
//! Only a repository's own `_manifests`, `_layers` and `_uploads` are touched, never a nested
//! repository below it. The job is recorded in the trash first ([`crate::jobs`]): which
//! repositories, and which blobs only they refer to. Then `_manifests` is moved into the bin in
//! one rename, so every tag and manifest of the repository disappears at once; `_layers` and
//! `_uploads` follow; directories left empty are removed; the recorded blobs that nothing
//! refers to after a fresh scan are deleted; the bin goes last. A crash at any point leaves a
//! layout that verify accepts, and the next destructive run (this command, gc or prune)
//! finishes exactly what the uninterrupted run would have freed.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsops::{Remover, remove_empty_shards};
use crate::gc::SweptBlob;
use crate::graph::{self, Graph};
use crate::jobs::{self, Job, RmJob};
use crate::layout::{self, RepoName, Root};
use crate::scan::{self, Inventory};

/// One repository to remove.
#[derive(Debug, Clone, Serialize)]
pub struct RemovedRepo {
    /// The repository.
    pub repository: RepoName,
    /// Its tags.
    pub tags: u64,
    /// Its manifest revisions.
    pub manifests: u64,
    /// Its `_layers` links.
    pub layer_links: u64,
    /// Its unfinished uploads.
    pub uploads: u64,
}

/// The plan.
#[derive(Debug, Clone, Serialize)]
pub struct RmPlan {
    /// Repositories, in the order given.
    pub repositories: Vec<RemovedRepo>,
    /// Blobs only these repositories refer to (empty with `--keep-blobs`).
    pub blobs: Vec<SweptBlob>,
    /// Their total size.
    pub bytes: u64,
    /// Names given that an interrupted earlier `rm-repo` is removing (finished first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<RepoName>,
}

/// Validates the names and plans the removal. `pending` holds the repositories interrupted
/// removals are still working on: naming one of them again is not an error.
///
/// # Errors
/// [`Error::InvalidName`] for a name that breaks the grammar, [`Error::UnknownRepository`] for
/// one that is not in the layout (nor being removed).
pub fn plan(
    inv: &Inventory,
    g: &Graph,
    names: &[String],
    keep_blobs: bool,
    pending: &BTreeSet<RepoName>,
) -> Result<RmPlan> {
    let mut repos = Vec::new();
    let mut seen = BTreeSet::new();
    let mut finishing = Vec::new();
    for n in names {
        let name = RepoName::parse(n).map_err(|e| Error::InvalidName {
            name: n.clone(),
            reason: e.to_string(),
        })?;
        let Some(r) = inv.repos.get(&name) else {
            if pending.contains(&name) {
                finishing.push(name);
                continue;
            }
            return Err(Error::UnknownRepository { name: n.clone() });
        };
        if seen.insert(name.clone()) {
            repos.push(RemovedRepo {
                repository: name,
                tags: r.tags.len() as u64,
                manifests: r.revisions.len() as u64,
                layer_links: r.layers.len() as u64,
                uploads: r.uploads.len() as u64,
            });
        }
    }
    let blobs = if keep_blobs {
        Vec::new()
    } else {
        exclusive(inv, g, &seen)
            .into_iter()
            .map(|d| SweptBlob {
                digest: d,
                size: inv.blobs.get(&d).map(|b| b.size()).unwrap_or(0),
            })
            .collect()
    };
    Ok(RmPlan {
        bytes: blobs.iter().map(|b| b.size).sum(),
        repositories: repos,
        blobs,
        pending: finishing,
    })
}

/// Every blob some repository other than `removed` refers to (through a manifest or a
/// `_layers` link), and what links regfsck cannot place refer to.
fn referenced_by_others(
    inv: &Inventory,
    g: &Graph,
    removed: &BTreeSet<RepoName>,
) -> BTreeSet<Digest> {
    let mut others: BTreeSet<Digest> = g.pinned.iter(&inv.blobs).collect();
    for name in inv.repos.keys().filter(|n| !removed.contains(*n)) {
        others.extend(g.repo_refs(inv, name));
    }
    others
}

/// Blobs that `removed` refer to and no other repository does (through a manifest or a
/// `_layers` link).
pub fn exclusive(inv: &Inventory, g: &Graph, removed: &BTreeSet<RepoName>) -> BTreeSet<Digest> {
    let others = referenced_by_others(inv, g, removed);
    let mut mine = BTreeSet::new();
    for name in removed {
        mine.extend(g.repo_refs(inv, name));
    }
    mine.retain(|d| !others.contains(d));
    mine
}

/// What a real run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RmApplied {
    /// Repositories removed (their tags, manifests and links gone).
    pub repositories: u64,
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Planned blobs that the re-check found referenced again, and kept.
    pub rechecked_kept: u64,
}

/// Carries out a plan: records the job, then does it.
///
/// # Errors
/// I/O errors, and [`Error::Interrupted`] between steps (what was done is consistent, and the
/// next destructive run finishes it).
pub fn apply(
    root: &Root,
    plan: &RmPlan,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: std::time::SystemTime,
) -> Result<RmApplied> {
    let mut done = RmApplied::default();
    apply_counting(root, plan, remover, interrupt, now, &mut done)?;
    Ok(done)
}

/// [`apply`], counting into `done` as it goes: after an error (an interrupt), `done` is what
/// was removed before it.
///
/// # Errors
/// As [`apply`].
pub fn apply_counting(
    root: &Root,
    plan: &RmPlan,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: std::time::SystemTime,
    done: &mut RmApplied,
) -> Result<()> {
    if plan.repositories.is_empty() {
        return Ok(());
    }
    let job = RmJob {
        repositories: plan
            .repositories
            .iter()
            .map(|r| r.repository.clone())
            .collect(),
        blobs: plan.blobs.clone(),
    };
    let bin = jobs::open(remover, &Job::RmRepo(job.clone()), now)?;
    finish_counting(root, &bin, &job, remover, interrupt, now, done)
}

/// Removes the job's repositories where there is no rename (an object store), in place and
/// references before referents: each tag (its history, then its `current/link`), then the
/// revisions, referrers first (an index before its children, a referrer before its subject),
/// then whatever else `_manifests` holds, then `_layers` and `_uploads`. Every moment's layout
/// is one the registry serves; a nested repository (`team/app/api` below `team/app`) is never
/// touched. What is left afterwards (nothing) is what [`finish`]'s moves find.
fn remove_in_place(
    root: &Root,
    job: &RmJob,
    remover: &dyn Remover,
    stop: &dyn Fn() -> Result<()>,
    now: std::time::SystemTime,
) -> Result<()> {
    let inv = scan::scan(root, scan::Depth::Names)?;
    let g = graph::build_for_gc(root, &inv, now);
    for r in &job.repositories {
        let Some(rg) = g.repos.get(r) else {
            continue;
        };
        for t in rg.tags.keys() {
            stop()?;
            jobs::remove_tag(remover, &layout::tag_dir(r, t))?;
        }
        for d in graph::referrers_first(&g, &rg.revisions.iter().copied().collect()) {
            stop()?;
            let rel = layout::revision_link(r, &d);
            remover.remove_tree(rel.trim_end_matches("/link"))?;
        }
    }
    for r in &job.repositories {
        stop()?;
        let dir = layout::repo_dir(r);
        for special in ["_manifests", "_layers", "_uploads"] {
            remover.remove_tree(&format!("{dir}/{special}"))?;
        }
    }
    Ok(())
}

/// Does (or finishes) a recorded removal: moves what is still in the tree into the bin,
/// removes the directories left empty, deletes the recorded blobs nothing refers to now, and
/// deletes the bin.
///
/// # Errors
/// I/O errors, and [`Error::Interrupted`] between steps.
pub fn finish(
    root: &Root,
    bin: &str,
    job: &RmJob,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: std::time::SystemTime,
) -> Result<RmApplied> {
    let mut done = RmApplied::default();
    finish_counting(root, bin, job, remover, interrupt, now, &mut done)?;
    Ok(done)
}

/// [`finish`], counting into `done` as it goes.
fn finish_counting(
    root: &Root,
    bin: &str,
    job: &RmJob,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: std::time::SystemTime,
    done: &mut RmApplied,
) -> Result<()> {
    let stop = || Error::check_interrupt(interrupt);
    let renames = remover.capabilities().atomic_rename;
    if !renames {
        remove_in_place(root, job, remover, &stop, now)?;
        done.repositories = job.repositories.len() as u64;
    }
    for r in job.repositories.iter().filter(|_| renames) {
        stop()?;
        let dir = layout::repo_dir(r);
        let to = format!("{bin}/{}", jobs::encode_repo(r));
        // `_manifests` first: every tag and manifest goes in one rename.
        for special in ["_manifests", "_layers", "_uploads"] {
            let from = format!("{dir}/{special}");
            if root.exists(&from) {
                remover.make_dir(&to)?;
                remover.rename(&from, &format!("{to}/{special}"))?;
            }
        }
        // Its tags and manifests are gone with the first rename.
        done.repositories += 1;
        // Parents left empty, up to (not including) repositories/; nested repositories keep
        // theirs.
        let mut cur = dir.as_str();
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if !remover.remove_empty_dir(cur)? || parent.ends_with("/repositories") {
                break;
            }
            cur = parent;
        }
    }
    if !job.blobs.is_empty() {
        // Re-check: whatever another repository refers to now is kept (an object store is
        // listed again for it).
        let fresh = root.refreshed()?;
        let root = &fresh;
        let inv = scan::scan(root, scan::Depth::Names)?;
        if let Some(why) = inv.blind_spots() {
            return Err(Error::Refused(format!(
                "not deleting the blobs of the removed repositories: {why}; run again once it can be read"
            )));
        }
        let g = graph::build(root, &inv, now);
        let referenced = referenced_by_others(&inv, &g, &BTreeSet::new());
        for b in &job.blobs {
            stop()?;
            if referenced.contains(&b.digest) {
                done.rechecked_kept += 1;
                continue;
            }
            let rel = layout::blob_data(&b.digest);
            if !root.exists(&rel) {
                // Deleted by the interrupted run (which may have been killed before the
                // directory went).
                remover.remove_empty_dir(rel.trim_end_matches("/data"))?;
                continue;
            }
            remover.remove_tree(rel.trim_end_matches("/data"))?;
            done.blobs += 1;
            done.bytes += b.size;
        }
        if remover.capabilities().directories {
            remove_empty_shards(root, remover)?;
        }
    }
    stop()?;
    jobs::close(remover, bin)?;
    Ok(())
}
