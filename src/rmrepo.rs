//! `rm-repo`: remove repositories safely, and the blobs only they referred to.
//!
//! Only a repository's own `_manifests`, `_layers` and `_uploads` are touched, never a nested
//! repository below it. `_manifests` is moved out of the tree first, in one rename, so every tag
//! and manifest of the repository disappears at once; then `_layers` and `_uploads` follow, the
//! moved directories are deleted, the blobs no other repository refers to are swept (after a
//! re-check), and directories left empty are removed. A crash at any point leaves a layout that
//! verify accepts; running the command again (or gc) finishes the job.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsops::Remover;
use crate::gc::{SweptBlob, remove_empty_shards};
use crate::graph::{self, Graph};
use crate::layout::{self, RepoName, Root};
use crate::scan::{self, Inventory};

/// Where removed directories wait for deletion: outside `docker/registry/v2`, on the same
/// filesystem, so the move is one atomic rename and the registry never looks there.
pub const TRASH: &str = "docker/registry/regfsck-trash";

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
}

/// Validates the names and plans the removal.
///
/// # Errors
/// [`Error::InvalidName`] for a name that breaks the grammar, [`Error::UnknownRepository`] for
/// one that is not in the layout.
pub fn plan(inv: &Inventory, g: &Graph, names: &[String], keep_blobs: bool) -> Result<RmPlan> {
    let mut repos = Vec::new();
    let mut seen = BTreeSet::new();
    for n in names {
        let name = RepoName::parse(n).map_err(|e| Error::InvalidName {
            name: n.clone(),
            reason: e.to_string(),
        })?;
        let Some(r) = inv.repos.get(&name) else {
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
                size: inv.blobs.get(&d).map(|b| b.size).unwrap_or(0),
            })
            .collect()
    };
    Ok(RmPlan {
        bytes: blobs.iter().map(|b| b.size).sum(),
        repositories: repos,
        blobs,
    })
}

/// Blobs that `removed` refer to and no other repository does (through a manifest or a
/// `_layers` link).
pub fn exclusive(inv: &Inventory, g: &Graph, removed: &BTreeSet<RepoName>) -> BTreeSet<Digest> {
    let mut mine = BTreeSet::new();
    let mut others = BTreeSet::new();
    for name in inv.repos.keys() {
        let refs = g.repo_refs(inv, name);
        if removed.contains(name) {
            mine.extend(refs);
        } else {
            others.extend(refs);
        }
    }
    mine.retain(|d| !others.contains(d));
    mine
}

/// What a real run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RmApplied {
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Planned blobs that the re-check found referenced again, and kept.
    pub rechecked_kept: u64,
}

/// Removes leftovers of an interrupted earlier run from the trash, then the trash itself.
///
/// # Errors
/// I/O errors from the remover.
pub fn empty_trash(root: &Root, remover: &dyn Remover) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root.abs(TRASH)) else {
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        remover.remove_tree(&format!("{TRASH}/{n}"))?;
    }
    remover.remove_empty_dir(TRASH)?;
    Ok(())
}

/// Carries out a plan.
///
/// # Errors
/// I/O errors, and [`Error::Interrupted`] between steps (what was done is consistent).
pub fn apply(
    root: &Root,
    plan: &RmPlan,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: std::time::SystemTime,
) -> Result<RmApplied> {
    let stop = || Error::check_interrupt(interrupt);
    empty_trash(root, remover)?;
    let stamp = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for (i, r) in plan.repositories.iter().enumerate() {
        stop()?;
        let dir = layout::repo_dir(&r.repository);
        let bin = format!("{TRASH}/{stamp}-{}-{i}", std::process::id());
        remover.make_dir(&bin)?;
        // `_manifests` first: every tag and manifest goes in one rename.
        for special in ["_manifests", "_layers", "_uploads"] {
            let from = format!("{dir}/{special}");
            if std::fs::symlink_metadata(root.abs(&from)).is_ok() {
                remover.rename(&from, &format!("{bin}/{special}"))?;
            }
        }
        remover.remove_tree(&bin)?;
        remover.remove_empty_dir(TRASH)?;
        // Parents left empty, up to (not including) repositories/; nested repositories keep theirs.
        let mut cur = dir.as_str();
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if !remover.remove_empty_dir(cur)? || parent.ends_with("/repositories") {
                break;
            }
            cur = parent;
        }
    }
    let mut done = RmApplied::default();
    if plan.blobs.is_empty() {
        return Ok(done);
    }
    // Re-check: whatever another repository refers to now is kept.
    let inv = scan::scan(root, scan::Depth::Names)?;
    let g = graph::build(root, &inv, now);
    let mut referenced = BTreeSet::new();
    for name in inv.repos.keys() {
        referenced.extend(g.repo_refs(&inv, name));
    }
    for b in &plan.blobs {
        stop()?;
        if referenced.contains(&b.digest) {
            done.rechecked_kept += 1;
            continue;
        }
        let rel = layout::blob_data(&b.digest);
        remover.remove_tree(rel.trim_end_matches("/data"))?;
        done.blobs += 1;
        done.bytes += b.size;
    }
    remove_empty_shards(root, remover)?;
    Ok(done)
}
