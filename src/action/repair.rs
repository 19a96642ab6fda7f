//! `repair`: fix what verify finds, never deleting intact data, with a journal to undo it.
//!
//! [`plan`] turns a verify report (blob contents hashed) into actions:
//! - corrupt blobs (content not matching the digest, empty, not a file) are moved into the
//!   quarantine ([`QUARANTINE`]`/<run>/`, below the root, outside `docker/registry`), never
//!   deleted; the manifests that need them are reported as damaged, with their tags;
//! - a blob under the wrong shard moves to the right one when its content matches;
//! - missing `_layers` links of referenced layers and configs, missing revision links of index
//!   children and of tag targets are written, when the blob is intact;
//! - revision and layer links holding garbage or another digest are rewritten from their
//!   directory name, when that blob is intact;
//! - a tag whose `current/link` is garbage or names a manifest that is gone is pointed back at
//!   the newest intact revision in its history, or quarantined when there is none;
//! - unfinished uploads older than the upload age are quarantined.
//!
//! Everything else is reported as not repairable, with what it breaks. [`apply`] journals each
//! step (`journal.jsonl`, written and synced before the step) in the run's quarantine directory;
//! [`undo`] replays it backwards and restores the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::findings::{Finding, Kind, Severity};
use crate::fsops::{QUARANTINE, Remover};
use crate::graph::{self, Graph, ManifestState, TagTarget};
use crate::layout::{self, RepoName, Root, TagName, V2};
use crate::manifest::Role;
use crate::scan::Inventory;
use crate::storage::Bounded;

/// What `repair` does.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// Uploads started longer ago than this are quarantined.
    pub upload_age: Duration,
    /// The time ages are measured against.
    pub now: SystemTime,
}

/// One step of a repair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Move a file or directory into the quarantine (same relative path below it).
    Quarantine {
        /// Root-relative path.
        path: String,
    },
    /// Move a blob directory to its right shard.
    Move {
        /// From (root-relative).
        from: String,
        /// To (root-relative).
        to: String,
    },
    /// Remove a temporary file regfsck itself left behind.
    Discard {
        /// Root-relative path.
        path: String,
    },
    /// Write a link file holding `digest` (an existing file there is copied into the
    /// quarantine first, then replaced atomically).
    Link {
        /// Root-relative path of the link file.
        path: String,
        /// What it holds.
        digest: Digest,
    },
}

/// An action and why.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What.
    #[serde(flatten)]
    pub action: Action,
    /// The repository concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepoName>,
    /// The tag concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagName>,
    /// Why, in words.
    pub reason: String,
}

/// Damage repair cannot fix, and what it breaks.
#[derive(Debug, Clone, Serialize)]
pub struct Unrepairable {
    /// The finding (as verify reports it, or as it will after the repair).
    pub finding: Finding,
    /// Tags whose pulls it breaks, `repository:tag`.
    pub breaks: Vec<String>,
}

/// The plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairPlan {
    /// Steps, in the order they are carried out.
    pub steps: Vec<Step>,
    /// What stays broken.
    pub unrepairable: Vec<Unrepairable>,
    /// Errors verify found before the repair.
    pub errors_before: u64,
}

fn rel_under(rel: &str) -> bool {
    rel.starts_with(&format!("{V2}/"))
}

/// The tags (`repository:tag`) of `repo` whose pulls need manifest or blob `d`.
fn tags_needing(g: &Graph, repo: &RepoName, d: &Digest) -> Vec<String> {
    let Some(rg) = g.repos.get(repo) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (tag, t) in &rg.tags {
        if let TagTarget::Points(m) = t {
            if m == d || g.closure(m).contains(d) {
                out.push(format!("{repo}:{tag}"));
            }
        }
    }
    out
}

/// Why repair must not run at all: the scan could not see the whole layout, or the blob store
/// (or the repositories tree) is unreachable as a whole — an unmounted volume, a dangling
/// symlink, a restore of the metadata only. Then every tag would look broken, and repair would
/// quarantine what it merely cannot see.
pub fn refusal(inv: &Inventory, g: &Graph) -> Option<String> {
    if let Some(why) = inv.blind_spots() {
        return Some(format!("refusing to repair: {why}"));
    }
    let revisions: BTreeSet<Digest> = g
        .repos
        .values()
        .flat_map(|r| r.revisions.iter().copied())
        .collect();
    let present = revisions
        .iter()
        .filter(|d| inv.blob(d).is_some_and(|b| !b.stat || b.is_file))
        .count();
    if !revisions.is_empty() && present == 0 {
        return Some(format!(
            "refusing to repair: the repositories link {} manifests and the blob store holds none of them ({} blobs in all): is {}/blobs mounted, or was only the metadata restored?",
            revisions.len(),
            inv.blobs.len(),
            V2
        ));
    }
    None
}

/// The parsed manifest `d`: from the graph, or read (one whose revision link is broken).
fn manifest_of(
    root: &Root,
    inv: &Inventory,
    g: &Graph,
    d: &Digest,
) -> Option<crate::manifest::Manifest> {
    match g.manifests.get(d) {
        Some(ManifestState::Parsed(m)) => Some(m.clone()),
        Some(_) => None,
        None => match graph::read_manifest(root, inv, d) {
            ManifestState::Parsed(m) => Some(m),
            _ => None,
        },
    }
}

/// Plans the repair of what `findings` (a verify report with contents hashed) show.
pub fn plan(
    root: &Root,
    inv: &Inventory,
    g: &Graph,
    findings: &[Finding],
    opts: &RepairOptions,
) -> RepairPlan {
    let mut plan = RepairPlan {
        errors_before: findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count() as u64,
        ..RepairPlan::default()
    };
    let mut covered: BTreeSet<usize> = BTreeSet::new();
    let mut steps: BTreeMap<Action, Step> = BTreeMap::new();
    let add = |steps: &mut BTreeMap<Action, Step>,
               action: Action,
               repo: Option<&RepoName>,
               tag: Option<&TagName>,
               reason: String| {
        steps.entry(action.clone()).or_insert(Step {
            action,
            repository: repo.cloned(),
            tag: tag.cloned(),
            reason,
        });
    };

    // 1. Blobs whose content is wrong: quarantined, never deleted.
    let mut gone: BTreeSet<Digest> = BTreeSet::new();
    for (i, f) in findings.iter().enumerate() {
        if matches!(
            f.kind,
            Kind::BlobCorrupt | Kind::BlobEmpty | Kind::BlobNotAFile
        ) {
            if let Some(d) = f.digest {
                gone.insert(d);
                let dir = layout::blob_data(&d);
                add(
                    &mut steps,
                    Action::Quarantine {
                        path: dir.trim_end_matches("/data").to_string(),
                    },
                    None,
                    None,
                    format!("{}: {}", f.kind.name(), f.message),
                );
                covered.insert(i);
            }
        }
    }
    // 2. Blobs under the wrong shard: moved when their content matches, else quarantined.
    let mut resharded: BTreeSet<Digest> = BTreeSet::new();
    for (i, f) in findings.iter().enumerate() {
        if f.kind != Kind::BlobWrongShard {
            continue;
        }
        let (Some(d), Some(path)) = (f.digest, f.path.as_deref()) else {
            continue;
        };
        if !rel_under(path) {
            continue;
        }
        let dir = path.trim_end_matches("/data").to_string();
        let right = layout::blob_data(&d).trim_end_matches("/data").to_string();
        let matches = root
            .storage()
            .hash(path, d.algorithm(), &AtomicBool::new(false), &|_| {})
            .is_ok_and(|(h, _)| h == d);
        covered.insert(i);
        if matches && !inv.blobs.contains_key(&d) {
            resharded.insert(d);
            add(
                &mut steps,
                Action::Move {
                    from: dir,
                    to: right,
                },
                None,
                None,
                "blob under the wrong shard; its content matches its digest".into(),
            );
        } else {
            let why = if matches {
                "blob under the wrong shard, a copy of one already in place"
            } else {
                "blob under the wrong shard, and its content does not match its digest"
            };
            add(
                &mut steps,
                Action::Quarantine { path: dir },
                None,
                None,
                why.into(),
            );
        }
    }
    let intact = |d: &Digest| {
        (inv.blobs.get(d).is_some_and(|b| b.is_file) && !gone.contains(d)) || resharded.contains(d)
    };
    let parses = |d: &Digest| -> bool {
        intact(d)
            && match g.manifests.get(d) {
                Some(ManifestState::Parsed(_)) => true,
                Some(_) => false,
                None => matches!(graph::read_manifest(root, inv, d), ManifestState::Parsed(_)),
            }
    };

    // 3. Links: rewritten from their directory name, or written where missing.
    for (i, f) in findings.iter().enumerate() {
        let repo = f.repository.as_deref().map(RepoName::from_disk);
        match f.kind {
            Kind::LinkMalformed
            | Kind::LinkMismatch
            | Kind::LinkDoubled
            | Kind::TagIndexMalformed => {
                let (Some(path), Some(d)) = (f.path.as_deref(), f.digest) else {
                    continue;
                };
                let is_dir_named = path.contains("/_layers/")
                    || path.contains("/_manifests/revisions/")
                    || (path.contains("/_manifests/tags/") && path.contains("/index/"));
                // A `_layers` alias holds the sha256 its bytes are stored under.
                let target = if path.contains("/_layers/") && !inv.blobs.contains_key(&d) {
                    g.aliases.get(&d).copied().unwrap_or(d)
                } else {
                    d
                };
                if is_dir_named && path.ends_with("/link") && rel_under(path) && intact(&target) {
                    add(
                        &mut steps,
                        Action::Link {
                            path: path.to_string(),
                            digest: target,
                        },
                        repo.as_ref(),
                        None,
                        format!("{}; rewritten from its directory name", f.message),
                    );
                    covered.insert(i);
                }
            }
            Kind::LayerUnlinked | Kind::ChildUnlinked => {
                let (Some(repo), Some(d)) = (repo.as_ref(), f.digest) else {
                    continue;
                };
                // A digest alias (a blob pushed as sha512:) links to the sha256 it is stored
                // under, as the registry writes it.
                let stored = if inv.blobs.contains_key(&d) {
                    d
                } else {
                    g.aliases.get(&d).copied().unwrap_or(d)
                };
                let (path, ok, why) = if f.kind == Kind::LayerUnlinked {
                    (
                        layout::layer_link(repo, &d),
                        intact(&stored),
                        "layer or config referenced here, intact, but not linked",
                    )
                } else {
                    (
                        layout::revision_link(repo, &d),
                        parses(&d),
                        "index child, intact, but without a revision link",
                    )
                };
                if ok {
                    add(
                        &mut steps,
                        Action::Link {
                            path,
                            digest: stored,
                        },
                        Some(repo),
                        None,
                        why.into(),
                    );
                    covered.insert(i);
                }
            }
            Kind::BlobMissing | Kind::ChildMissing
                if f.digest.is_some_and(|d| resharded.contains(&d)) =>
            {
                covered.insert(i);
            }
            // A layer named by a sha384/sha512 digest whose alias link is gone: the bytes are
            // under their sha256, linked in the repository; the one that hashes to the digest
            // named gets its alias link back.
            Kind::BlobMissing
                if f.digest
                    .is_some_and(|d| d.algorithm() != crate::digest::Algorithm::Sha256) =>
            {
                let (Some(repo), Some(d)) = (repo.as_ref(), f.digest) else {
                    continue;
                };
                let Some(rg) = g.repos.get(repo) else {
                    continue;
                };
                let found = rg.layers.values().filter(|t| intact(t)).find(|t| {
                    root.storage()
                        .hash(
                            &layout::blob_data(t),
                            d.algorithm(),
                            &AtomicBool::new(false),
                            &|_| {},
                        )
                        .is_ok_and(|(h, _)| h == d)
                });
                if let Some(t) = found {
                    add(
                        &mut steps,
                        Action::Link {
                            path: layout::layer_link(repo, &d),
                            digest: *t,
                        },
                        Some(repo),
                        None,
                        format!(
                            "the alias link of {d} is gone; its bytes are stored as {t}, linked here"
                        ),
                    );
                    covered.insert(i);
                }
            }
            _ => {}
        }
    }

    // 4. Tags: keep what works; restore a missing revision link; else point back at the newest
    // intact revision of the tag's history; else quarantine the tag.
    for (name, rg) in &g.repos {
        let Some(repo) = inv.repos.get(name) else {
            continue;
        };
        for (tag, target) in &rg.tags {
            let current = layout::tag_current(name, tag);
            let has_revision = |steps: &BTreeMap<Action, Step>, d: &Digest| {
                rg.revisions.contains(d)
                    || steps.contains_key(&Action::Link {
                        path: layout::revision_link(name, d),
                        digest: *d,
                    })
            };
            let mut restored = false;
            let broken_why = match target {
                TagTarget::Broken => Some("tag has no usable current/link".to_string()),
                TagTarget::Points(d) if !parses(d) => {
                    Some(format!("tag points at {d}, which is gone or damaged"))
                }
                TagTarget::Points(d) if !has_revision(&steps, d) => {
                    restored = true;
                    add(
                        &mut steps,
                        Action::Link {
                            path: layout::revision_link(name, d),
                            digest: *d,
                        },
                        Some(name),
                        Some(tag),
                        "tag target, intact, but without a revision link".into(),
                    );
                    None
                }
                TagTarget::Points(d) => {
                    // Fine once a planned step restores its revision link.
                    restored = !rg.revisions.contains(d);
                    None
                }
            };
            let cover = |covered: &mut BTreeSet<usize>| {
                for (i, f) in findings.iter().enumerate() {
                    let this_tag = f.repository.as_deref() == Some(name.as_str())
                        && f.tag.as_deref() == Some(tag.as_str());
                    if this_tag
                        && matches!(
                            f.kind,
                            Kind::TagNoCurrent
                                | Kind::TagRevisionMissing
                                | Kind::ManifestMissing
                                | Kind::LinkMalformed
                                | Kind::LinkUnreadable
                        )
                    {
                        covered.insert(i);
                    }
                }
            };
            let Some(why) = broken_why else {
                if restored {
                    cover(&mut covered);
                }
                continue;
            };
            // The tag's history, newest first (Thorough scans read it, with mtimes). Pushes in
            // the same second tie: then a revision another tag points at (the tag was an alias
            // of the newest build), then the newer revision link, then the digest.
            let tagged_elsewhere: BTreeSet<Digest> = rg
                .tags
                .iter()
                .filter(|(t, _)| *t != tag)
                .filter_map(|(_, t)| t.digest())
                .collect();
            let revision_mtime = |d: &Digest| {
                repo.revisions
                    .get(d)
                    .and_then(|l| l.mtime)
                    .or_else(|| root.mtime(&layout::revision_link(name, d)))
            };
            let mut history: Vec<(Option<SystemTime>, bool, Option<SystemTime>, Digest)> = repo
                .tags
                .get(tag)
                .map(|t| {
                    t.index
                        .iter()
                        .filter(|(d, l)| l.target.as_ref().is_ok_and(|x| x == *d))
                        .map(|(d, l)| {
                            (l.mtime, tagged_elsewhere.contains(d), revision_mtime(d), *d)
                        })
                        .collect()
                })
                .unwrap_or_default();
            history.sort_by(|a, b| b.cmp(a));
            let pick = history
                .iter()
                .map(|h| h.3)
                .find(|d| Some(*d) != target.digest() && parses(d));
            match pick {
                Some(d) => {
                    if !has_revision(&steps, &d) {
                        add(
                            &mut steps,
                            Action::Link {
                                path: layout::revision_link(name, &d),
                                digest: d,
                            },
                            Some(name),
                            Some(tag),
                            "revision the tag is pointed back at, intact, without a revision link"
                                .into(),
                        );
                    }
                    add(
                        &mut steps,
                        Action::Link {
                            path: current.clone(),
                            digest: d,
                        },
                        Some(name),
                        Some(tag),
                        format!(
                            "{why}; pointed back at {d}, the newest intact revision in its history"
                        ),
                    );
                }
                None => add(
                    &mut steps,
                    Action::Quarantine {
                        path: layout::tag_dir(name, tag),
                    },
                    Some(name),
                    Some(tag),
                    format!("{why}; no intact revision in its history: tag removed"),
                ),
            }
            cover(&mut covered);
        }
        // 5. Uploads older than the upload age.
        for u in repo.uploads.values() {
            let rel = format!("{}/_uploads/{}", layout::repo_dir(name), u.id);
            let started = match &u.started {
                Some(Ok(t)) => Some(*t),
                _ => root.mtime(&rel),
            };
            let age = started.map(|t| opts.now.duration_since(t).unwrap_or_default());
            if age.is_some_and(|a| a > opts.upload_age) {
                add(
                    &mut steps,
                    Action::Quarantine { path: rel },
                    Some(name),
                    None,
                    format!(
                        "unfinished upload older than {}",
                        humantime::format_duration(opts.upload_age)
                    ),
                );
            }
        }
    }
    // 5b. What a revision link written above makes visible: the manifest's configs and layers
    // not linked in the repository, and its children without a revision link, are linked in
    // the same run, before it (so a crash between two steps never shows an error that was not
    // there before: the revision link that made them visible comes last).
    let mut stack: Vec<(RepoName, Digest)> = steps
        .keys()
        .filter_map(|a| match a {
            Action::Link { path, digest } if path.contains("/_manifests/revisions/") => {
                let repo = path
                    .strip_prefix(&format!("{V2}/repositories/"))?
                    .split("/_manifests/")
                    .next()?;
                Some((RepoName::from_disk(repo), *digest))
            }
            _ => None,
        })
        .collect();
    let mut seen: BTreeSet<(RepoName, Digest)> = BTreeSet::new();
    while let Some((name, d)) = stack.pop() {
        if !seen.insert((name.clone(), d)) {
            continue;
        }
        let (Some(rg), Some(m)) = (g.repos.get(&name), manifest_of(root, inv, g, &d)) else {
            continue;
        };
        for r in &m.references {
            match r.role {
                Role::Config | Role::Layer if !r.foreign && !rg.layers.contains_key(&r.digest) => {
                    let stored = if inv.blobs.contains_key(&r.digest) {
                        r.digest
                    } else {
                        g.aliases.get(&r.digest).copied().unwrap_or(r.digest)
                    };
                    if intact(&stored) {
                        add(
                            &mut steps,
                            Action::Link {
                                path: layout::layer_link(&name, &r.digest),
                                digest: stored,
                            },
                            Some(&name),
                            None,
                            format!(
                                "{} of manifest {d}, whose revision link is restored: intact, but not linked",
                                r.role.word()
                            ),
                        );
                    }
                }
                Role::Child if !rg.revisions.contains(&r.digest) && parses(&r.digest) => {
                    add(
                        &mut steps,
                        Action::Link {
                            path: layout::revision_link(&name, &r.digest),
                            digest: r.digest,
                        },
                        Some(&name),
                        None,
                        format!(
                            "child of index {d}, whose revision link is restored: intact, but without a revision link"
                        ),
                    );
                    stack.push((name.clone(), r.digest));
                }
                _ => {}
            }
        }
    }
    // The findings the steps above cover (they were hidden behind a broken revision link, or
    // are reported by verify and covered here).
    for (i, f) in findings.iter().enumerate() {
        if matches!(f.kind, Kind::LayerUnlinked | Kind::ChildUnlinked) {
            if let (Some(r), Some(d)) = (f.repository.as_deref(), f.digest) {
                let name = RepoName::from_disk(r);
                let path = if f.kind == Kind::LayerUnlinked {
                    layout::layer_link(&name, &d)
                } else {
                    layout::revision_link(&name, &d)
                };
                if steps
                    .keys()
                    .any(|a| matches!(a, Action::Link { path: p, .. } if *p == path))
                {
                    covered.insert(i);
                }
            }
        }
    }

    // 6. Untagged revision links whose blob is not a manifest at all (the registry's own gc
    // aborts on them): the link is quarantined, the blob kept (gc decides about it). Only
    // when nothing in the repository needs the revision: no tag, index or referrer.
    for (i, f) in findings.iter().enumerate() {
        if !matches!(f.kind, Kind::ManifestInvalid | Kind::ManifestTooLarge) {
            continue;
        }
        let (Some(repo), Some(d)) = (f.repository.as_deref(), f.digest) else {
            continue;
        };
        let name = RepoName::from_disk(repo);
        let Some(rg) = g.repos.get(&name) else {
            continue;
        };
        let needed = rg.tag_targets().any(|t| t == d)
            || rg.tagged.contains(&d)
            || rg.revisions.iter().any(|m| {
                g.manifest(m)
                    .is_some_and(|m| m.references.iter().any(|r| r.digest == d))
            });
        if needed || !rg.revisions.contains(&d) {
            continue;
        }
        let link = layout::revision_link(&name, &d);
        add(
            &mut steps,
            Action::Quarantine {
                path: link.trim_end_matches("/link").to_string(),
            },
            Some(&name),
            None,
            format!(
                "untagged revision whose blob is not a manifest ({}); the registry's gc aborts on it; the blob is kept",
                f.message
            ),
        );
        covered.insert(i);
    }
    // 7. regfsck's own temporary files, left by a crash: never referenced.
    for f in findings {
        if let (Kind::TempFile, Some(p)) = (f.kind, f.path.as_deref()) {
            if p.ends_with(crate::fsops::TEMP_SUFFIX) && rel_under(p) {
                add(
                    &mut steps,
                    Action::Discard {
                        path: p.to_string(),
                    },
                    None,
                    None,
                    "regfsck's own temporary file, left by an interrupted run".into(),
                );
            }
        }
    }

    // 8. What stays broken: errors not covered, and the manifests that need quarantined blobs.
    for (i, f) in findings.iter().enumerate() {
        if f.severity != Severity::Error || covered.contains(&i) {
            continue;
        }
        let breaks = match (&f.repository, f.manifest.or(f.digest)) {
            (Some(r), Some(d)) => tags_needing(g, &RepoName::from_disk(r), &d),
            _ => Vec::new(),
        };
        plan.unrepairable.push(Unrepairable {
            finding: f.clone(),
            breaks,
        });
    }
    for d in &gone {
        for (name, rg) in &g.repos {
            for m in rg.revisions.iter().copied().chain(rg.tag_targets()) {
                let m = &m;
                let Some(man) = g.manifest(m) else {
                    continue;
                };
                if man
                    .references
                    .iter()
                    .any(|r| r.digest == *d && r.role != Role::Subject)
                {
                    plan.unrepairable.push(Unrepairable {
                        finding: Finding::new(
                            Kind::BlobMissing,
                            format!(
                                "manifest {m} needs blob {d}, which is damaged and quarantined"
                            ),
                        )
                        .repo(name)
                        .digest(*d)
                        .manifest(*m),
                        breaks: tags_needing(g, name, m),
                    });
                }
            }
        }
    }
    plan.unrepairable.sort_by(|a, b| a.finding.cmp(&b.finding));
    plan.unrepairable.dedup_by(|a, b| a.finding == b.finding);

    // Order: quarantines and moves, then links (revision links before the tags that need them).
    let mut ordered: Vec<Step> = steps.into_values().collect();
    // Order: quarantines and moves; then links, each before what makes it visible: `_layers`
    // links, then revision links (index children before their index), then tags.
    let children: BTreeSet<Digest> = ordered
        .iter()
        .filter_map(|s| match &s.action {
            Action::Link { path, digest } if path.contains("/_manifests/revisions/") => {
                Some(*digest)
            }
            _ => None,
        })
        .filter_map(|d| manifest_of(root, inv, g, &d))
        .flat_map(|m| m.refs(Role::Child).map(|r| r.digest).collect::<Vec<_>>())
        .collect();
    ordered.sort_by_key(|s| match &s.action {
        Action::Discard { .. } => 0,
        Action::Quarantine { .. } => 0,
        Action::Move { .. } => 1,
        Action::Link { path, .. } if path.contains("/_manifests/tags/") => 5,
        Action::Link { path, digest } if path.contains("/_manifests/revisions/") => {
            if children.contains(digest) { 3 } else { 4 }
        }
        Action::Link { .. } => 2,
    });
    plan.steps = ordered;
    plan
}

/// One journal line: written and synced before the step it records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Entry {
    /// `from` was moved to `to`.
    Move { from: String, to: String },
    /// A directory was created.
    Mkdir { path: String },
    /// A file was created.
    Create { path: String },
    /// `path` was copied to `saved`, then replaced.
    Replace { path: String, saved: String },
    /// A temporary file of regfsck's own was removed (nothing to undo).
    Discard { path: String },
    /// The run finished: a later repair starts a new run.
    Done,
}

struct Journal<'a> {
    root: &'a Root,
    /// Root-relative path.
    rel: String,
}

impl Journal<'_> {
    fn record(&mut self, e: &Entry) -> Result<()> {
        let mut line =
            serde_json::to_string(e).map_err(|e| Error::io(self.root.abs(&self.rel), e.into()))?;
        line.push('\n');
        crate::fsops::append(self.root, &self.rel, line.as_bytes())
    }
}

/// What a real run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairApplied {
    /// Steps carried out.
    pub steps: u64,
    /// The run's quarantine directory (root-relative): the journal, and what was taken out.
    pub quarantine: String,
    /// Whether this run continued one that was interrupted.
    pub resumed: bool,
}

/// Name of the journal in a run's quarantine directory.
pub const JOURNAL: &str = "journal.jsonl";

/// Reads a run's journal (root-relative); a torn last line (the step it announced never
/// started) is dropped.
fn read_journal(root: &Root, rel: &str) -> Result<Vec<Entry>> {
    let path = root.abs(rel);
    let text = match root
        .read_small(rel, 1 << 30)
        .map_err(|e| Error::io(&path, e))?
    {
        Bounded::Content(b) => String::from_utf8_lossy(&b).into_owned(),
        Bounded::TooLarge { len } => {
            return Err(Error::io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{len} bytes: not a journal regfsck wrote"),
                ),
            ));
        }
    };
    let path = path.as_path();
    let lines: Vec<&str> = text.lines().collect();
    let mut entries = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Entry>(line) {
            Ok(e) => entries.push(e),
            Err(_) if n + 1 == lines.len() => {}
            Err(e) => {
                return Err(Error::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("line {}: {e}", n + 1),
                    ),
                ));
            }
        }
    }
    Ok(entries)
}

/// The newest run an interrupted repair left unfinished (a journal without its end), which
/// the next repair continues, so a crash and a rerun leave one run with one journal to undo.
fn unfinished_run(root: &Root) -> Option<String> {
    let runs: Vec<String> = root
        .storage()
        .list(QUARANTINE, false)
        .ok()?
        .into_iter()
        .map(|e| e.name)
        .collect();
    runs.into_iter().rev().find_map(|r| {
        let rel = format!("{QUARANTINE}/{r}");
        let unfinished = read_journal(root, &format!("{rel}/{JOURNAL}"))
            .is_ok_and(|e| !matches!(e.last(), Some(Entry::Done)));
        unfinished.then_some(rel)
    })
}

/// Ends the unfinished run: this repair's after its last pass, or one an interrupted repair
/// left when nothing is left to do (it was killed after its last step). Its journal gets its
/// end, so the next repair starts a new run.
///
/// # Errors
/// I/O errors writing the journal.
pub fn close_unfinished(root: &Root) -> Result<Option<String>> {
    let Some(run) = unfinished_run(root) else {
        return Ok(None);
    };
    Journal {
        root,
        rel: format!("{run}/{JOURNAL}"),
    }
    .record(&Entry::Done)?;
    Ok(Some(run))
}

/// Carries out a plan, journaling every step first. Each step is atomic: a link is written
/// to a temporary file and renamed into place; a link that exists is first copied into the
/// quarantine, then replaced in one rename (it never goes missing). An unfinished earlier run
/// is continued in its own directory and journal.
///
/// # Errors
/// I/O errors, and [`Error::Interrupted`] between steps (undo still works from the journal,
/// and a rerun continues).
pub fn apply(
    root: &Root,
    plan: &RepairPlan,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: SystemTime,
) -> Result<RepairApplied> {
    let (run, resumed) = match unfinished_run(root) {
        Some(run) => (run, true),
        None => {
            let stamp = humantime::format_rfc3339_seconds(now)
                .to_string()
                .replace(':', "");
            // The first free `<time>-<n>`: runs sort by time, and the name is the same for the
            // same clock (tests compare trees).
            let run = (1u32..)
                .map(|n| format!("{QUARANTINE}/{stamp}-{n}"))
                .find(|r| !root.exists(r))
                .unwrap_or_else(|| format!("{QUARANTINE}/{stamp}-{}", std::process::id()));
            (run, false)
        }
    };
    remover.make_dir(&run)?;
    let mut j = Journal {
        root,
        rel: format!("{run}/{JOURNAL}"),
    };
    let mut done = RepairApplied {
        steps: 0,
        quarantine: run.clone(),
        resumed,
    };
    // Makes the missing parents of `rel` (journaled, so undo removes them).
    let mkdirs = |j: &mut Journal, rel: &str| -> Result<()> {
        let mut missing = Vec::new();
        let mut cur = Path::new(rel).parent();
        while let Some(p) = cur {
            if p.as_os_str().is_empty() || root.exists(&p.to_string_lossy()) {
                break;
            }
            missing.push(p.to_string_lossy().into_owned());
            cur = p.parent();
        }
        for p in missing.into_iter().rev() {
            j.record(&Entry::Mkdir { path: p.clone() })?;
            remover.make_dir(&p)?;
        }
        Ok(())
    };
    // Moves `from` to `to` (journaled first, parents made).
    let move_to = |j: &mut Journal, from: &str, to: &str| -> Result<()> {
        mkdirs(j, to)?;
        j.record(&Entry::Move {
            from: from.to_string(),
            to: to.to_string(),
        })?;
        remover.move_tree(from, to)
    };
    for s in &plan.steps {
        Error::check_interrupt(interrupt)?;
        match &s.action {
            Action::Quarantine { path } => move_to(&mut j, path, &format!("{run}/{path}"))?,
            Action::Move { from, to } => move_to(&mut j, from, to)?,
            Action::Discard { path } => {
                j.record(&Entry::Discard { path: path.clone() })?;
                remover.remove_file(path)?;
            }
            Action::Link { path, digest } => {
                let bytes = digest.to_string();
                let existing = root.storage().stat(path).ok();
                if existing
                    .as_ref()
                    .is_some_and(|m| m.kind != crate::storage::Kind::File)
                {
                    // Not a file at all (a FIFO, a directory): nothing that works is lost by
                    // moving it aside before the link is written.
                    move_to(&mut j, path, &format!("{run}/{path}"))?;
                    j.record(&Entry::Create { path: path.clone() })?;
                    remover.create_file(path, bytes.as_bytes())?;
                } else if existing.is_some() {
                    let saved = format!("{run}/{path}");
                    mkdirs(&mut j, &saved)?;
                    j.record(&Entry::Replace {
                        path: path.clone(),
                        saved: saved.clone(),
                    })?;
                    remover.copy_file(path, &saved)?;
                    remover.replace_file(path, bytes.as_bytes())?;
                } else {
                    mkdirs(&mut j, path)?;
                    j.record(&Entry::Create { path: path.clone() })?;
                    remover.create_file(path, bytes.as_bytes())?;
                }
            }
        }
        done.steps += 1;
    }
    // The run ends (its journal gets `done`) when the caller has no more passes to make:
    // see [`close_unfinished`].
    Ok(done)
}

/// What an undo did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UndoReport {
    /// The run undone (root-relative).
    pub run: String,
    /// Journal entries undone.
    pub undone: u64,
    /// Entries that could not be undone (the state was not what the journal says), in words.
    pub skipped: Vec<String>,
    /// What undo would do, in order (a dry run: nothing was changed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would: Vec<String>,
}

/// Resolves the RUN argument of `--undo`: `regfsck-lost+found/<run>`, just `<run>`, or its
/// absolute path.
fn run_dir(root: &Root, run: &str) -> Result<String> {
    let run = match Path::new(run).strip_prefix(root.path()) {
        Ok(r) => r.to_string_lossy().into_owned(),
        Err(_) => run.trim_end_matches('/').to_string(),
    };
    let run = if run.contains('/') {
        run
    } else {
        format!("{QUARANTINE}/{run}")
    };
    if !run.starts_with(&format!("{QUARANTINE}/")) || run[QUARANTINE.len() + 1..].contains('/') {
        return Err(Error::io(
            root.abs(&run),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a repair run: expected {QUARANTINE}/<run>"),
            ),
        ));
    }
    Ok(run)
}

/// Undoes a repair from its quarantine directory (`regfsck-lost+found/<run>`, `<run>`, or its
/// absolute path): every journaled step backwards, then the directory itself. With `dry_run`,
/// only says what it would do.
///
/// # Errors
/// [`Error::Io`] for a journal that cannot be read or parsed, I/O errors.
pub fn undo(root: &Root, run: &str, remover: &dyn Remover, dry_run: bool) -> Result<UndoReport> {
    let run = run_dir(root, run)?;
    let mut report = UndoReport {
        run: run.clone(),
        ..UndoReport::default()
    };
    let entries = match read_journal(root, &format!("{run}/{JOURNAL}")) {
        Ok(e) => e,
        // Killed between creating the run's directory and its journal: nothing was changed.
        Err(Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && root.is_empty_dir(&run) =>
        {
            if !dry_run {
                remover.remove_empty_dir(&run)?;
                remover.remove_empty_dir(QUARANTINE)?;
            }
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let exists = |rel: &str| root.exists(rel);
    for e in entries.iter().rev() {
        match e {
            Entry::Done | Entry::Discard { .. } => {}
            Entry::Create { path } => {
                if dry_run {
                    report.would.push(format!("remove {path}"));
                } else {
                    remover.remove_file(path)?;
                    remover.remove_file(&format!("{path}{}", crate::fsops::TEMP_SUFFIX))?;
                }
                report.undone += 1;
            }
            Entry::Replace { path, saved } => {
                if exists(saved) {
                    if dry_run {
                        report.would.push(format!("restore {path} from {saved}"));
                    } else {
                        let bytes = match root.read_small(saved, 1 << 20) {
                            Ok(Bounded::Content(b)) => b,
                            Ok(_) | Err(_) => {
                                report.skipped.push(format!("{saved}: cannot be read back"));
                                continue;
                            }
                        };
                        remover.replace_file(path, &bytes)?;
                        remover.remove_file(saved)?;
                    }
                }
                // Without the copy, the file was never replaced.
                report.undone += 1;
            }
            Entry::Mkdir { path } => {
                if dry_run {
                    report.would.push(format!("remove directory {path}"));
                    report.undone += 1;
                } else if remover.remove_empty_dir(path)? || !exists(path) {
                    report.undone += 1;
                } else {
                    report
                        .skipped
                        .push(format!("{path}: not empty, left in place"));
                }
            }
            Entry::Move { from, to } => {
                if exists(to) && !exists(from) {
                    if dry_run {
                        report.would.push(format!("move {to} back to {from}"));
                    } else {
                        remover.move_tree(to, from)?;
                    }
                    report.undone += 1;
                } else if exists(from) && !exists(to) {
                    // The move never happened.
                    report.undone += 1;
                } else if exists(from) && exists(to) {
                    // A move across filesystems killed after its copy was in place: the source
                    // is whole (it is removed last), the copy goes.
                    if dry_run {
                        report.would.push(format!("remove the copy {to}"));
                    } else {
                        remover.remove_tree(to)?;
                    }
                    report.undone += 1;
                } else {
                    report
                        .skipped
                        .push(format!("{to} -> {from}: not restored (neither exists)"));
                }
            }
        }
    }
    if report.skipped.is_empty() && !dry_run {
        remover.remove_tree(&run)?;
        remover.remove_empty_dir(QUARANTINE)?;
    }
    Ok(report)
}
