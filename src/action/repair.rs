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
//! - unfinished uploads older than the upload age are quarantined (on an object store their
//!   multipart upload, the `data` being written, is aborted first: not undone).
//!
//! Everything else is reported as not repairable, with what it breaks. Planning reads storage
//! only ahead of deciding, in batches, as gc does: [`blob_facts`] hashes the blobs under the
//! wrong shard, [`decide_blobs`] decides about blobs; [`link_facts`] then reads what the rest
//! needs (manifests no revision link names, upload and revision link times, the blobs lost
//! alias links name), and [`decide_links`] decides about links, tags and uploads. The deciding
//! phases read nothing.
//!
//! [`apply`] journals each step in the run's quarantine directory, written (and synced) before
//! the step: on disk `journal.jsonl`, a line per entry; on an object store, which has no append,
//! `journal/00000001.json`, ..., an object per entry. [`undo`] replays it backwards and restores
//! the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::findings::{Finding, Kind, Severity};
use crate::fsops::{JOURNAL, JOURNAL_DIR, QUARANTINE, Remover, journal_entry_number};
use crate::graph::{self, Graph, ManifestState, RepoGraph, TagTarget};
use crate::layout::{self, RepoName, Root, TagName, V2};
use crate::manifest::{Manifest, Role};
use crate::scan::{Inventory, Link, Repo, Upload};
use crate::storage::{Bounded, Facts};

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
    /// Abort an object store's unfinished multipart upload (an unfinished registry upload's
    /// `data`, which no listing shows): its parts are discarded, which undo cannot bring back.
    Abort {
        /// Root-relative key the upload was writing (`.../_uploads/<id>/data`).
        path: String,
        /// The store's id of the upload.
        upload_id: String,
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
    g.tags_needing(&BTreeSet::from([*d]), Some(repo))
        .remove(d)
        .unwrap_or_default()
        .into_iter()
        .map(|(r, t)| format!("{r}:{t}"))
        .collect()
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
        .filter(|d| inv.blob(d).is_some_and(|b| !b.stat() || b.is_file()))
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

/// The plan as it is drawn up: steps by action, and the findings they cover.
#[derive(Debug, Default)]
struct Draft {
    steps: BTreeMap<Action, Step>,
    /// Indices (in the report) of the findings the steps repair.
    covered: BTreeSet<usize>,
}

impl Draft {
    /// Adds a step; an action already planned keeps its first reason (and repository, tag).
    fn add(
        &mut self,
        action: Action,
        repo: Option<&RepoName>,
        tag: Option<&TagName>,
        reason: String,
    ) {
        self.steps.entry(action.clone()).or_insert(Step {
            action,
            repository: repo.cloned(),
            tag: tag.cloned(),
            reason,
        });
    }

    /// Whether a step writes the link `path` (whatever it holds).
    fn writes(&self, path: &str) -> bool {
        self.steps
            .keys()
            .any(|a| matches!(a, Action::Link { path: p, .. } if p == path))
    }
}

/// What the decisions after the blob phases read: the scan, the graph, the blobs the plan
/// takes out of the blob store or puts back, and the manifests read beyond the graph.
struct Known<'a> {
    inv: &'a Inventory,
    g: &'a Graph,
    /// Blobs quarantined for their content.
    gone: &'a BTreeSet<Digest>,
    /// Blobs moved back from the wrong shard.
    resharded: &'a BTreeSet<Digest>,
    /// Manifests the graph did not parse, read (`None`: not read or parsed).
    read: &'a graph::Unparsed,
}

impl Known<'_> {
    /// Whether blob `d` is intact once the blob phases' steps are carried out.
    fn intact(&self, d: &Digest) -> bool {
        (self.inv.blobs.get(d).is_some_and(|b| b.is_file()) && !self.gone.contains(d))
            || self.resharded.contains(d)
    }

    /// The parsed manifest `d`: from the graph, or read ahead (one no revision link names).
    fn manifest(&self, d: &Digest) -> Option<&Manifest> {
        match self.g.manifests.get(d) {
            Some(ManifestState::Parsed(m)) => Some(m),
            Some(_) => None,
            None => self.read.get(d).and_then(Option::as_ref),
        }
    }

    /// Whether `d` is intact and parses as a manifest.
    fn parses(&self, d: &Digest) -> bool {
        self.intact(d) && self.manifest(d).is_some()
    }

    /// Whether the manifest `d` may be needed but neither the graph nor a read has it.
    fn unread(&self, d: &Digest) -> bool {
        self.intact(d) && !self.g.manifests.contains_key(d) && !self.read.contains_key(d)
    }

    /// What a link to blob `d` holds: `d` when the blob store has it, else the sha256 a
    /// digest alias (a blob pushed as sha512:) is stored under, as the registry writes it.
    fn stored(&self, d: &Digest) -> Digest {
        if self.inv.blobs.contains_key(d) {
            *d
        } else {
            self.g.aliases.get(d).copied().unwrap_or(*d)
        }
    }
}

/// One tag of a repository, with what the graph and the scan know of it.
#[derive(Clone, Copy)]
struct TagAt<'a> {
    name: &'a RepoName,
    rg: &'a RepoGraph,
    repo: &'a Repo,
    tag: &'a TagName,
    target: &'a TagTarget,
}

/// Every tag of every repository that both the graph and the scan have.
fn tags<'a>(k: &Known<'a>) -> impl Iterator<Item = TagAt<'a>> {
    let inv = k.inv;
    k.g.repos.iter().flat_map(move |(name, rg)| {
        inv.repos.get(name).into_iter().flat_map(move |repo| {
            rg.tags.iter().map(move |(tag, target)| TagAt {
                name,
                rg,
                repo,
                tag,
                target,
            })
        })
    })
}

/// Why a tag is broken, if it is: no usable `current/link`, or a target that is gone or
/// damaged.
fn broken_why(k: &Known, target: &TagTarget) -> Option<String> {
    match target {
        TagTarget::Broken => Some("tag has no usable current/link".to_string()),
        TagTarget::Points(d) if !k.parses(d) => {
            Some(format!("tag points at {d}, which is gone or damaged"))
        }
        TagTarget::Points(_) => None,
    }
}

/// The entries of the tag's history (`index/`) whose link holds the digest it is named by.
fn history_entries<'a>(t: &TagAt<'a>) -> impl Iterator<Item = (&'a Digest, Link)> {
    t.repo
        .tags
        .get(t.tag)
        .into_iter()
        .flat_map(|x| x.index.iter())
        .filter(|(d, l)| l.target.as_ref().is_ok_and(|x| x == *d))
}

/// The root-relative directory of an unfinished upload.
fn upload_dir(name: &RepoName, u: &Upload) -> String {
    format!("{}/_uploads/{}", layout::repo_dir(name), u.id)
}

/// The blob directory (root-relative) and digest of a blob the report finds under the wrong
/// shard.
fn misplaced(f: &Finding) -> Option<(&str, Digest)> {
    if f.kind != Kind::BlobWrongShard {
        return None;
    }
    let (Some(d), Some(path)) = (f.digest, f.path.as_deref()) else {
        return None;
    };
    rel_under(path).then_some((path, d))
}

/// Whether `f` reports a link holding garbage or another digest.
fn garbage_link(f: &Finding) -> bool {
    matches!(
        f.kind,
        Kind::LinkMalformed | Kind::LinkMismatch | Kind::LinkDoubled | Kind::TagIndexMalformed
    )
}

/// For a [`garbage_link`] finding: the link and what it is rewritten to, its directory name
/// (a `_layers` alias holds the sha256 its bytes are stored under), when the link is one
/// named by its directory and that blob is intact.
fn rewrite_target<'f>(k: &Known, f: &'f Finding) -> Option<(&'f str, Digest)> {
    let (Some(path), Some(d)) = (f.path.as_deref(), f.digest) else {
        return None;
    };
    let is_dir_named = path.contains("/_layers/")
        || path.contains("/_manifests/revisions/")
        || (path.contains("/_manifests/tags/") && path.contains("/index/"));
    let target = if path.contains("/_layers/") && !k.inv.blobs.contains_key(&d) {
        k.g.aliases.get(&d).copied().unwrap_or(d)
    } else {
        d
    };
    (is_dir_named && path.ends_with("/link") && rel_under(path) && k.intact(&target))
        .then_some((path, target))
}

/// Whether the content of the file `rel` hashes to `d`.
fn hashes_to(root: &Root, rel: &str, d: &Digest) -> bool {
    root.storage()
        .hash(rel, d.algorithm(), &AtomicBool::new(false), &|_| {})
        .is_ok_and(|(h, _)| h == *d)
}

/// What the blob phases need from storage beyond the report, fetched before they decide.
#[derive(Debug, Default)]
pub struct BlobFacts {
    /// Per blob under the wrong shard (its data file, its digest): whether its content
    /// matches its digest.
    shards: BTreeMap<(String, Digest), bool>,
}

/// Fetches what the blob phases need: the hash of each blob under the wrong shard, in
/// parallel.
pub fn blob_facts(root: &Root, findings: &[Finding]) -> BlobFacts {
    let wanted: BTreeSet<(String, Digest)> = findings
        .iter()
        .filter_map(misplaced)
        .map(|(path, d)| (path.to_string(), d))
        .collect();
    BlobFacts {
        shards: wanted
            .into_par_iter()
            .map(|(path, d)| {
                let matches = hashes_to(root, &path, &d);
                ((path, d), matches)
            })
            .collect(),
    }
}

/// What the blob phases decided: their steps, and the blobs they take out or put back.
#[derive(Debug)]
pub struct Blobs {
    draft: Draft,
    gone: BTreeSet<Digest>,
    resharded: BTreeSet<Digest>,
}

/// Decides about the blobs the report finds damaged or misplaced. Pure: the report, the scan
/// and what [`blob_facts`] fetched.
pub fn decide_blobs(inv: &Inventory, findings: &[Finding], facts: &BlobFacts) -> Blobs {
    let mut draft = Draft::default();
    let gone = quarantine_corrupt(&mut draft, findings);
    let resharded = reshard(&mut draft, inv, findings, facts);
    Blobs {
        draft,
        gone,
        resharded,
    }
}

/// Blobs whose content is wrong (corrupt, empty, not a file): quarantined, never deleted.
/// Returns them.
fn quarantine_corrupt(draft: &mut Draft, findings: &[Finding]) -> BTreeSet<Digest> {
    let mut gone = BTreeSet::new();
    for (i, f) in findings.iter().enumerate() {
        if matches!(
            f.kind,
            Kind::BlobCorrupt | Kind::BlobEmpty | Kind::BlobNotAFile
        ) {
            if let Some(d) = f.digest {
                gone.insert(d);
                let dir = layout::blob_data(&d);
                draft.add(
                    Action::Quarantine {
                        path: dir.trim_end_matches("/data").to_string(),
                    },
                    None,
                    None,
                    format!("{}: {}", f.kind.name(), f.message),
                );
                draft.covered.insert(i);
            }
        }
    }
    gone
}

/// Blobs under the wrong shard: moved to the right one when their content matches and it
/// holds none yet, else quarantined. Returns those moved.
fn reshard(
    draft: &mut Draft,
    inv: &Inventory,
    findings: &[Finding],
    facts: &BlobFacts,
) -> BTreeSet<Digest> {
    let mut resharded = BTreeSet::new();
    for (i, f) in findings.iter().enumerate() {
        let Some((path, d)) = misplaced(f) else {
            continue;
        };
        let dir = path.trim_end_matches("/data").to_string();
        let right = layout::blob_data(&d).trim_end_matches("/data").to_string();
        let matches = facts.shards.get(&(path.to_string(), d)) == Some(&true);
        draft.covered.insert(i);
        if matches && !inv.blobs.contains_key(&d) {
            resharded.insert(d);
            draft.add(
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
            draft.add(Action::Quarantine { path: dir }, None, None, why.into());
        }
    }
    resharded
}

/// What the phases after the blobs need from storage beyond the scan and the graph.
#[derive(Debug, Default)]
pub struct LinkFacts {
    /// Manifests no revision link names, read: those the graph names
    /// ([`graph::unparsed_manifests`]), then the histories of broken tags, the rewritten
    /// revision links and index children without one (and their children).
    manifests: graph::Unparsed,
    /// The directories of uploads without a start time; the revision links of the history
    /// entries of broken tags that the scan did not stat.
    stats: Facts,
    /// Per repository and sha384/sha512 digest whose alias link is gone: the intact blob
    /// linked in the repository that hashes to it.
    aliases: BTreeMap<(RepoName, Digest), Option<Digest>>,
    /// The links the run this repair continues wrote, with their times before it
    /// ([`run_times`]).
    before: BTreeMap<String, Option<SystemTime>>,
}

/// Fetches what the phases after the blobs need, once [`decide_blobs`] says which blobs are
/// intact: manifests the graph did not parse; then, for the tags that turn out broken, their
/// histories' manifests and revision link times; upload times; the blobs lost alias links
/// named (hashing a repository's intact blobs until one matches).
pub fn link_facts(
    root: &Root,
    inv: &Inventory,
    g: &Graph,
    findings: &[Finding],
    blobs: &Blobs,
) -> LinkFacts {
    let mut manifests = graph::unparsed_manifests(root, inv, g);
    let k = Known {
        inv,
        g,
        gone: &blobs.gone,
        resharded: &blobs.resharded,
        read: &manifests,
    };
    let aliases = alias_targets(root, &k, findings);
    let mut rels: Vec<String> = tags(&k)
        .filter(|t| broken_why(&k, t.target).is_some())
        .flat_map(|t| {
            history_entries(&t)
                .filter(|(d, _)| t.repo.revisions.get(d).and_then(|l| l.mtime).is_none())
                .map(|(d, _)| layout::revision_link(t.name, d))
                .collect::<Vec<_>>()
        })
        .collect();
    for name in g.repos.keys() {
        let Some(repo) = inv.repos.get(name) else {
            continue;
        };
        for u in repo.uploads.values() {
            if !matches!(u.started, Some(Ok(_))) {
                rels.push(upload_dir(name, u));
            }
        }
    }
    let mut stats = Facts::default();
    stats.stat(root.storage(), rels);
    let more = read_manifests(root, &k, manifests_wanted(&k, findings));
    manifests.extend(more);
    LinkFacts {
        manifests,
        stats,
        aliases,
        before: run_times(root),
    }
}

/// The manifests the decisions may ask about that the graph does not name as children or tag
/// targets: the history entries of broken tags, rewritten revision links, index children
/// without a revision link.
fn manifests_wanted(k: &Known, findings: &[Finding]) -> BTreeSet<Digest> {
    let mut wanted: BTreeSet<Digest> = tags(k)
        .filter(|t| broken_why(k, t.target).is_some())
        .flat_map(|t| history_entries(&t).map(|(d, _)| *d).collect::<Vec<_>>())
        .collect();
    for f in findings {
        if f.kind == Kind::ChildUnlinked {
            wanted.extend(f.digest);
        } else if garbage_link(f) {
            if let Some((path, d)) = rewrite_target(k, f) {
                if path.contains("/_manifests/revisions/") {
                    wanted.insert(d);
                }
            }
        }
    }
    wanted
}

/// Reads the manifests `next` that may be needed and are not read yet, and their children,
/// in parallel batches.
fn read_manifests(root: &Root, k: &Known, mut next: BTreeSet<Digest>) -> graph::Unparsed {
    let mut out = graph::Unparsed::new();
    next.retain(|d| k.unread(d));
    while !next.is_empty() {
        let read: Vec<(Digest, Option<Manifest>)> = next
            .par_iter()
            .map(|d| match graph::read_manifest(root, k.inv, d) {
                ManifestState::Parsed(m) => (*d, Some(m)),
                _ => (*d, None),
            })
            .collect();
        next = BTreeSet::new();
        for (d, m) in read {
            if let Some(m) = &m {
                next.extend(m.refs(Role::Child).map(|r| r.digest));
            }
            out.insert(d, m);
        }
        next.retain(|d| k.unread(d) && !out.contains_key(d));
    }
    out
}

/// For each layer named by a sha384/sha512 digest whose alias link is gone (and that no blob
/// back from the wrong shard answers): the intact blob linked in its repository that hashes
/// to it, the repository's blobs hashed in order until one does.
fn alias_targets(
    root: &Root,
    k: &Known,
    findings: &[Finding],
) -> BTreeMap<(RepoName, Digest), Option<Digest>> {
    let wanted: BTreeSet<(RepoName, Digest)> = findings
        .iter()
        .filter(|f| f.kind == Kind::BlobMissing)
        .filter_map(|f| Some((RepoName::from_disk(f.repository.as_deref()?), f.digest?)))
        .filter(|(r, d)| {
            d.algorithm() != crate::digest::Algorithm::Sha256
                && !k.resharded.contains(d)
                && k.g.repos.contains_key(r)
        })
        .collect();
    wanted
        .into_par_iter()
        .map(|(repo, d)| {
            let found = k.g.repos[&repo]
                .layers
                .values()
                .filter(|t| k.intact(t))
                .find(|t| hashes_to(root, &layout::blob_data(t), &d));
            ((repo, d), found)
        })
        .collect()
}

/// Decides about links, tags, uploads and regfsck's own temporary files once the blobs are
/// decided, and what stays broken; orders the steps. Pure: the report, the scan, the graph,
/// and what [`link_facts`] fetched.
pub fn decide_links(
    inv: &Inventory,
    g: &Graph,
    findings: &[Finding],
    opts: &RepairOptions,
    blobs: Blobs,
    facts: &LinkFacts,
) -> RepairPlan {
    let Blobs {
        mut draft,
        gone,
        resharded,
    } = blobs;
    let k = Known {
        inv,
        g,
        gone: &gone,
        resharded: &resharded,
        read: &facts.manifests,
    };
    plan_links(&mut draft, &k, findings, facts);
    repoint_tags(&mut draft, &k, findings, facts);
    quarantine_uploads(&mut draft, inv, g, opts, &facts.stats);
    link_what_restored_revisions_show(&mut draft, &k);
    cover_unlinked(&mut draft, findings);
    quarantine_non_manifest_revisions(&mut draft, g, findings);
    discard_temp_files(&mut draft, findings);
    RepairPlan {
        unrepairable: unrepairable(g, findings, &draft.covered, &gone),
        steps: order(&k, draft.steps),
        errors_before: findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count() as u64,
    }
}

/// Links, in the report's order: garbage rewritten from their directory name, missing ones
/// written, lost alias links found again; what a blob back from the wrong shard answers is
/// covered.
fn plan_links(draft: &mut Draft, k: &Known, findings: &[Finding], facts: &LinkFacts) {
    for (i, f) in findings.iter().enumerate() {
        match f.kind {
            _ if garbage_link(f) => rewrite_link(draft, k, i, f),
            Kind::LayerUnlinked | Kind::ChildUnlinked => link_unlinked(draft, k, i, f),
            Kind::BlobMissing | Kind::ChildMissing
                if f.digest.is_some_and(|d| k.resharded.contains(&d)) =>
            {
                draft.covered.insert(i);
            }
            Kind::BlobMissing
                if f.digest
                    .is_some_and(|d| d.algorithm() != crate::digest::Algorithm::Sha256) =>
            {
                restore_alias(draft, facts, i, f);
            }
            _ => {}
        }
    }
}

/// A revision, layer or tag index link holding garbage or another digest: rewritten from its
/// directory name, when that blob is intact.
fn rewrite_link(draft: &mut Draft, k: &Known, i: usize, f: &Finding) {
    let Some((path, target)) = rewrite_target(k, f) else {
        return;
    };
    let repo = f.repository.as_deref().map(RepoName::from_disk);
    draft.add(
        Action::Link {
            path: path.to_string(),
            digest: target,
        },
        repo.as_ref(),
        None,
        format!("{}; rewritten from its directory name", f.message),
    );
    draft.covered.insert(i);
}

/// A layer or config referenced but not linked in its repository, an index child without a
/// revision link: linked, when the blob is intact (and the child parses).
fn link_unlinked(draft: &mut Draft, k: &Known, i: usize, f: &Finding) {
    let repo = f.repository.as_deref().map(RepoName::from_disk);
    let (Some(repo), Some(d)) = (repo.as_ref(), f.digest) else {
        return;
    };
    let stored = k.stored(&d);
    let (path, ok, why) = if f.kind == Kind::LayerUnlinked {
        (
            layout::layer_link(repo, &d),
            k.intact(&stored),
            "layer or config referenced here, intact, but not linked",
        )
    } else {
        (
            layout::revision_link(repo, &d),
            k.parses(&d),
            "index child, intact, but without a revision link",
        )
    };
    if ok {
        draft.add(
            Action::Link {
                path,
                digest: stored,
            },
            Some(repo),
            None,
            why.into(),
        );
        draft.covered.insert(i);
    }
}

/// A layer named by a sha384/sha512 digest whose alias link is gone: the bytes are under
/// their sha256, linked in the repository; the one that hashes to the digest named (found by
/// [`link_facts`]) gets its alias link back.
fn restore_alias(draft: &mut Draft, facts: &LinkFacts, i: usize, f: &Finding) {
    let repo = f.repository.as_deref().map(RepoName::from_disk);
    let (Some(repo), Some(d)) = (repo, f.digest) else {
        return;
    };
    let Some(Some(t)) = facts.aliases.get(&(repo.clone(), d)) else {
        return;
    };
    draft.add(
        Action::Link {
            path: layout::layer_link(&repo, &d),
            digest: *t,
        },
        Some(&repo),
        None,
        format!("the alias link of {d} is gone; its bytes are stored as {t}, linked here"),
    );
    draft.covered.insert(i);
}

/// Tags: keep what works, restoring a missing revision link; else point back at the newest
/// intact revision of the tag's history; else quarantine the tag.
fn repoint_tags(draft: &mut Draft, k: &Known, findings: &[Finding], facts: &LinkFacts) {
    for t in tags(k) {
        let TagAt {
            name,
            rg,
            tag,
            target,
            ..
        } = t;
        let Some(why) = broken_why(k, target) else {
            // It works once it has its revision link: written here unless planned above.
            if let TagTarget::Points(d) = target {
                if !rg.revisions.contains(d) {
                    draft.add(
                        Action::Link {
                            path: layout::revision_link(name, d),
                            digest: *d,
                        },
                        Some(name),
                        Some(tag),
                        "tag target, intact, but without a revision link".into(),
                    );
                    cover_tag(draft, findings, &t);
                }
            }
            continue;
        };
        let pick = history(&t, &facts.stats, &facts.before)
            .into_iter()
            .find(|d| Some(*d) != target.digest() && k.parses(d));
        match pick {
            Some(d) => {
                if !rg.revisions.contains(&d) {
                    draft.add(
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
                draft.add(
                    Action::Link {
                        path: layout::tag_current(name, tag),
                        digest: d,
                    },
                    Some(name),
                    Some(tag),
                    format!(
                        "{why}; pointed back at {d}, the newest intact revision in its history"
                    ),
                );
            }
            None => draft.add(
                Action::Quarantine {
                    path: layout::tag_dir(name, tag),
                },
                Some(name),
                Some(tag),
                format!("{why}; no intact revision in its history: tag removed"),
            ),
        }
        cover_tag(draft, findings, &t);
    }
}

/// The findings about a repaired tag that its repair answers: covered.
fn cover_tag(draft: &mut Draft, findings: &[Finding], t: &TagAt) {
    for (i, f) in findings.iter().enumerate() {
        let this_tag = f.repository.as_deref() == Some(t.name.as_str())
            && f.tag.as_deref() == Some(t.tag.as_str());
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
            draft.covered.insert(i);
        }
    }
}

/// The tag's history, newest first (Thorough scans read it, with mtimes). Pushes in the same
/// second tie: then a revision another tag points at (the tag was an alias of the newest
/// build), then the newer revision link (its time fetched when the scan has none), then the
/// digest. The links the run this repair continues wrote count with their times before it
/// (`before`), so the order is the registry's, not this run's.
fn history(t: &TagAt, stats: &Facts, before: &BTreeMap<String, Option<SystemTime>>) -> Vec<Digest> {
    let tagged_elsewhere: BTreeSet<Digest> =
        t.rg.tags
            .iter()
            .filter(|(x, _)| *x != t.tag)
            .filter_map(|(_, x)| x.digest())
            .collect();
    let revision_mtime = |d: &Digest| {
        let rel = layout::revision_link(t.name, d);
        match before.get(&rel) {
            Some(was) => *was,
            None => t
                .repo
                .revisions
                .get(d)
                .and_then(|l| l.mtime)
                .or_else(|| stats.mtime(&rel)),
        }
    };
    let entry_mtime =
        |d: &Digest, l: &Link| match before.get(&layout::tag_index_link(t.name, t.tag, d)) {
            Some(was) => *was,
            None => l.mtime,
        };
    let mut history: Vec<(Option<SystemTime>, bool, Option<SystemTime>, Digest)> =
        history_entries(t)
            .map(|(d, l)| {
                (
                    entry_mtime(d, &l),
                    tagged_elsewhere.contains(d),
                    revision_mtime(d),
                    *d,
                )
            })
            .collect();
    history.sort_by(|a, b| b.cmp(a));
    history.into_iter().map(|h| h.3).collect()
}

/// Unfinished uploads older than the upload age (from `startedat`, else the directory's
/// mtime): quarantined, and on an object store their multipart upload (the `data` being
/// written) aborted first.
fn quarantine_uploads(
    draft: &mut Draft,
    inv: &Inventory,
    g: &Graph,
    opts: &RepairOptions,
    stats: &Facts,
) {
    for name in g.repos.keys() {
        let Some(repo) = inv.repos.get(name) else {
            continue;
        };
        for u in repo.uploads.values() {
            let rel = upload_dir(name, u);
            let started = match &u.started {
                Some(Ok(t)) => Some(*t),
                _ => stats.mtime(&rel),
            };
            let age = started.map(|t| opts.now.duration_since(t).unwrap_or_default());
            if age.is_some_and(|a| a > opts.upload_age) {
                if let Some(m) = &u.multipart {
                    draft.add(
                        Action::Abort {
                            path: format!("{rel}/data"),
                            upload_id: m.upload_id.clone(),
                        },
                        Some(name),
                        None,
                        format!(
                            "unfinished upload older than {}: its data, a multipart upload in progress",
                            humantime::format_duration(opts.upload_age)
                        ),
                    );
                }
                draft.add(
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
}

/// What a revision link written above makes visible: the manifest's configs and layers not
/// linked in the repository, and its children without a revision link, are linked in the
/// same run, before it (so a crash between two steps never shows an error that was not there
/// before: the revision link that made them visible comes last, see [`order`]).
fn link_what_restored_revisions_show(draft: &mut Draft, k: &Known) {
    let mut stack: Vec<(RepoName, Digest)> = draft
        .steps
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
        let (Some(rg), Some(m)) = (k.g.repos.get(&name), k.manifest(&d)) else {
            continue;
        };
        for r in &m.references {
            match r.role {
                Role::Config | Role::Layer if !r.foreign && !rg.layers.contains_key(&r.digest) => {
                    let stored = k.stored(&r.digest);
                    if k.intact(&stored) {
                        draft.add(
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
                Role::Child if !rg.revisions.contains(&r.digest) && k.parses(&r.digest) => {
                    draft.add(
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
}

/// The unlinked layers and index children the steps above link (they were hidden behind a
/// broken revision link, or are reported by verify and linked here): covered.
fn cover_unlinked(draft: &mut Draft, findings: &[Finding]) {
    for (i, f) in findings.iter().enumerate() {
        if matches!(f.kind, Kind::LayerUnlinked | Kind::ChildUnlinked) {
            if let (Some(r), Some(d)) = (f.repository.as_deref(), f.digest) {
                let name = RepoName::from_disk(r);
                let path = if f.kind == Kind::LayerUnlinked {
                    layout::layer_link(&name, &d)
                } else {
                    layout::revision_link(&name, &d)
                };
                if draft.writes(&path) {
                    draft.covered.insert(i);
                }
            }
        }
    }
}

/// Untagged revision links whose blob is not a manifest at all (the registry's own gc aborts
/// on them): the link is quarantined, the blob kept (gc decides about it). Only when nothing
/// in the repository needs the revision: no tag, index or referrer.
fn quarantine_non_manifest_revisions(draft: &mut Draft, g: &Graph, findings: &[Finding]) {
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
        draft.add(
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
        draft.covered.insert(i);
    }
}

/// regfsck's own temporary files, left by a crash: never referenced, removed.
fn discard_temp_files(draft: &mut Draft, findings: &[Finding]) {
    for f in findings {
        if let (Kind::TempFile, Some(p)) = (f.kind, f.path.as_deref()) {
            if p.ends_with(crate::fsops::TEMP_SUFFIX) && rel_under(p) {
                draft.add(
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
}

/// What stays broken: the errors no step covers, and the manifests that need quarantined
/// blobs, with the tags each breaks; sorted, without repeats.
fn unrepairable(
    g: &Graph,
    findings: &[Finding],
    covered: &BTreeSet<usize>,
    gone: &BTreeSet<Digest>,
) -> Vec<Unrepairable> {
    let mut out = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        if f.severity != Severity::Error || covered.contains(&i) {
            continue;
        }
        let breaks = match (&f.repository, f.manifest.or(f.digest)) {
            (Some(r), Some(d)) => tags_needing(g, &RepoName::from_disk(r), &d),
            _ => Vec::new(),
        };
        out.push(Unrepairable {
            finding: f.clone(),
            breaks,
        });
    }
    for d in gone {
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
                    out.push(Unrepairable {
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
    out.sort_by(|a, b| a.finding.cmp(&b.finding));
    out.dedup_by(|a, b| a.finding == b.finding);
    out
}

/// The steps in the order they are carried out: quarantines and moves; then links, each
/// before what makes it visible: `_layers` links, then revision links (index children before
/// their index), then tags.
fn order(k: &Known, steps: BTreeMap<Action, Step>) -> Vec<Step> {
    let mut ordered: Vec<Step> = steps.into_values().collect();
    let children: BTreeSet<Digest> = ordered
        .iter()
        .filter_map(|s| match &s.action {
            Action::Link { path, digest } if path.contains("/_manifests/revisions/") => {
                Some(*digest)
            }
            _ => None,
        })
        .filter_map(|d| k.manifest(&d))
        .flat_map(|m| m.refs(Role::Child).map(|r| r.digest))
        .collect();
    ordered.sort_by_key(|s| match &s.action {
        // An old upload's multipart data before its other keys: a crash between leaves keys
        // the next run quarantines, never a hidden upload without the keys that name it.
        Action::Abort { .. } => 0,
        Action::Discard { .. } => 1,
        Action::Quarantine { .. } => 1,
        Action::Move { .. } => 2,
        Action::Link { path, .. } if path.contains("/_manifests/tags/") => 6,
        Action::Link { path, digest } if path.contains("/_manifests/revisions/") => {
            if children.contains(digest) { 4 } else { 5 }
        }
        Action::Link { .. } => 3,
    });
    ordered
}

/// Plans the repair of what `findings` (a verify report with contents hashed) show: fetches
/// what the scan and the graph do not hold (in batches), deciding purely over it. Reads,
/// never writes.
pub fn plan(
    root: &Root,
    inv: &Inventory,
    g: &Graph,
    findings: &[Finding],
    opts: &RepairOptions,
) -> RepairPlan {
    let ahead = blob_facts(root, findings);
    let blobs = decide_blobs(inv, findings, &ahead);
    drop(ahead);
    let facts = link_facts(root, inv, g, findings, &blobs);
    decide_links(inv, g, findings, opts, blobs, &facts)
}

/// One journal entry: written (and synced) before the step it records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Entry {
    /// `from` was moved to `to`.
    ///
    /// The moved keys' times are not recorded: on disk a move is a rename and keeps them; on an
    /// object store it is a copy, and the copies are new, but what repair moves is either taken
    /// out of the layout (the quarantine: read back by undo for its content only) or a blob
    /// back to its shard, and no decision of repair reads a blob's time (gc's `--min-age` sees
    /// a resharded blob as young: it keeps it longer).
    Move { from: String, to: String },
    /// A directory was created.
    Mkdir { path: String },
    /// A file was created.
    Create { path: String },
    /// `path` was copied to `saved`, then replaced. `mtime` (RFC 3339): its modification time
    /// before (an object's LastModified). A replaced link is written anew, so its time becomes
    /// the repair's, on either backend; the history of a broken tag is ordered by the times of
    /// its links, so a later pass of the run, or a run continued after a crash, reads the
    /// times recorded here for the links this run rewrote ([`run_times`], used by
    /// [`history`]), and decides as the run's first plan did.
    Replace {
        path: String,
        saved: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtime: Option<String>,
    },
    /// A temporary file of regfsck's own was removed (nothing to undo).
    Discard { path: String },
    /// An object store's multipart upload to `path` was aborted (nothing to undo: its parts
    /// are gone; its upload's other keys were quarantined after it).
    Abort { path: String, upload_id: String },
    /// The run finished: a later repair starts a new run.
    Done,
}

/// The journal of a run being written, through the storage's write half
/// ([`Remover::journal`]: a line appended on disk, an object per entry on an object store).
struct Journal<'a> {
    remover: &'a dyn Remover,
    /// The run's directory (root-relative).
    run: String,
    /// The number of the next entry (counted from 1).
    next: u64,
}

impl Journal<'_> {
    fn record(&mut self, e: &Entry) -> Result<()> {
        let mut line = serde_json::to_string(e).map_err(|e| Error::io(&self.run, e.into()))?;
        line.push('\n');
        self.remover
            .journal(&self.run, self.next, line.as_bytes())?;
        self.next += 1;
        Ok(())
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

/// How storage names root-relative `rel` in messages: its path on disk, its URL on an object
/// store.
fn place(root: &Root, rel: &str) -> std::path::PathBuf {
    if root.storage().local_root().is_some() {
        root.abs(rel)
    } else {
        format!("{}/{rel}", root.describe()).into()
    }
}

fn invalid(root: &Root, rel: &str, why: String) -> Error {
    Error::io(
        place(root, rel),
        std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    )
}

/// A run's journal as read back: its entries, and the number the next one gets.
struct Journaled {
    entries: Vec<Entry>,
    next: u64,
}

/// Reads the journal of run `run` (root-relative), in either shape: the entries of
/// `<run>/journal/` (an object store's, one object per entry), else the lines of
/// `<run>/journal.jsonl` (a local disk's). A torn last entry (the step it announced never
/// started) is dropped; on an object store an entry is whole or absent, so a missing last one
/// means the same.
fn read_journal(root: &Root, run: &str) -> Result<Journaled> {
    match journal_objects(root, run)? {
        Some(names) => read_objects(root, run, &names),
        None => read_lines(root, &format!("{run}/{JOURNAL}")),
    }
}

/// The entries of an object-store journal, by number, in order; `None` when `run` has none.
fn journal_objects(root: &Root, run: &str) -> Result<Option<Vec<(u64, String)>>> {
    let dir = format!("{run}/{JOURNAL_DIR}");
    let listed = match root.storage().list(&dir, false) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(place(root, &dir), e)),
    };
    let mut names: Vec<(u64, String)> = listed
        .into_iter()
        .filter_map(|e| Some((journal_entry_number(&e.name)?, e.name)))
        .collect();
    names.sort();
    Ok((!names.is_empty()).then_some(names))
}

fn read_objects(root: &Root, run: &str, names: &[(u64, String)]) -> Result<Journaled> {
    let dir = format!("{run}/{JOURNAL_DIR}");
    let files: Vec<String> = names.iter().map(|(_, n)| n.clone()).collect();
    let read = root.storage().read_small_below(&dir, &files, 1 << 20);
    let mut entries = Vec::new();
    for (i, ((n, name), r)) in names.iter().zip(read).enumerate() {
        let rel = format!("{dir}/{name}");
        if *n != i as u64 + 1 {
            return Err(invalid(root, &dir, format!("entry {} is missing", i + 1)));
        }
        let bytes = match r.map_err(|e| Error::io(place(root, &rel), e))? {
            Bounded::Content(b) => b,
            Bounded::TooLarge { len } => {
                return Err(invalid(root, &rel, format!("{len} bytes: not an entry")));
            }
        };
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) => entries.push(e),
            Err(_) if i + 1 == names.len() => {}
            Err(e) => return Err(invalid(root, &rel, e.to_string())),
        }
    }
    let next = names.last().map_or(1, |(n, _)| n + 1);
    Ok(Journaled { entries, next })
}

fn read_lines(root: &Root, rel: &str) -> Result<Journaled> {
    let path = place(root, rel);
    let text = match root
        .read_small(rel, 1 << 30)
        .map_err(|e| Error::io(&path, e))?
    {
        Bounded::Content(b) => String::from_utf8_lossy(&b).into_owned(),
        Bounded::TooLarge { len } => {
            return Err(invalid(
                root,
                rel,
                format!("{len} bytes: not a journal regfsck wrote"),
            ));
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut entries = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Entry>(line) {
            Ok(e) => entries.push(e),
            Err(_) if n + 1 == lines.len() => {}
            Err(e) => return Err(invalid(root, rel, format!("line {}: {e}", n + 1))),
        }
    }
    let next = entries.len() as u64 + 1;
    Ok(Journaled { entries, next })
}

/// The number the next entry of the journal of `run` gets (on an object store from the listing
/// alone: the entries are numbered).
fn next_entry(root: &Root, run: &str) -> Result<u64> {
    match journal_objects(root, run)? {
        Some(names) => Ok(names.last().map_or(1, |(n, _)| n + 1)),
        None => Ok(read_lines(root, &format!("{run}/{JOURNAL}"))?.next),
    }
}

/// Whether the run `run` (root-relative) has a journal without its end. On an object store
/// only its last entry is read (every repair asks this of every run in the quarantine).
fn is_unfinished(root: &Root, run: &str) -> bool {
    let last = match journal_objects(root, run) {
        Ok(Some(names)) => {
            let (_, name) = &names[names.len() - 1];
            let rel = format!("{run}/{JOURNAL_DIR}/{name}");
            match root.read_small(&rel, 1 << 20) {
                Ok(Bounded::Content(b)) => match serde_json::from_slice::<Entry>(&b) {
                    Ok(e) => Some(Some(e)),
                    // Not an entry regfsck wrote: read the whole journal to tell.
                    Err(_) => read_objects(root, run, &names)
                        .ok()
                        .map(|j| j.entries.last().cloned()),
                },
                _ => None,
            }
        }
        Ok(None) => read_lines(root, &format!("{run}/{JOURNAL}"))
            .ok()
            .map(|j| j.entries.last().cloned()),
        Err(_) => None,
    };
    last.is_some_and(|e| !matches!(e, Some(Entry::Done)))
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
        is_unfinished(root, &rel).then_some(rel)
    })
}

/// The modification times, before the unfinished run (the one this repair continues) changed
/// them, of the links it created (`None`: there was none) or replaced (as its journal
/// recorded them): what [`history`] orders a broken tag's entries by, instead of the times
/// this run wrote them.
fn run_times(root: &Root) -> BTreeMap<String, Option<SystemTime>> {
    let mut out = BTreeMap::new();
    let Some(run) = unfinished_run(root) else {
        return out;
    };
    let Ok(j) = read_journal(root, &run) else {
        return out;
    };
    for e in j.entries {
        // The first entry for a path is the time before the run touched it.
        match e {
            Entry::Create { path } => {
                out.entry(path).or_insert(None);
            }
            Entry::Replace { path, mtime, .. } => {
                let t = mtime.and_then(|t| humantime::parse_rfc3339(&t).ok());
                out.entry(path).or_insert(t);
            }
            _ => {}
        }
    }
    out
}

/// Ends the unfinished run: this repair's after its last pass, or one an interrupted repair
/// left when nothing is left to do (it was killed after its last step). Its journal gets its
/// end, so the next repair starts a new run.
///
/// # Errors
/// I/O errors writing the journal.
pub fn close_unfinished(root: &Root, remover: &dyn Remover) -> Result<Option<String>> {
    let Some(run) = unfinished_run(root) else {
        return Ok(None);
    };
    let next = next_entry(root, &run)?;
    Journal {
        remover,
        run: run.clone(),
        next,
    }
    .record(&Entry::Done)?;
    Ok(Some(run))
}

/// Finishes the step an interrupted repair was killed in, when that step is a move half done
/// on an object store: there a move is a copy of every key, then their deletion, and a kill in
/// between leaves the keys at both places (the registry still serves `from`, whole or not yet
/// deleted). Planned again, a blob half moved back to its shard would be a copy "already in
/// place" and quarantined: the run would not end as an uninterrupted one. The move is done
/// again instead (every key of `from` copied, identical where `to` has it, then deleted), as
/// the journal announced it. Returns whether it moved anything. A local disk's moves are one
/// rename (a move across filesystems is planned again: its copy is renamed into place whole).
///
/// # Errors
/// I/O errors.
pub fn finish_interrupted_move(root: &Root, remover: &dyn Remover) -> Result<bool> {
    if remover.capabilities().atomic_rename {
        return Ok(false);
    }
    let Some(run) = unfinished_run(root) else {
        return Ok(false);
    };
    let j = read_journal(root, &run)?;
    let Some(Entry::Move { from, to }) = j.entries.last() else {
        return Ok(false);
    };
    let exists = |rel: &str| {
        root.exists_now(rel)
            .map_err(|e| Error::io(place(root, rel), e))
    };
    if exists(from)? && exists(to)? {
        remover.move_tree(from, to)?;
        return Ok(true);
    }
    Ok(false)
}

/// Carries out a plan, journaling every step first. Each step keeps what the registry serves:
/// a link that exists is first copied into the quarantine, then replaced (one rename on disk,
/// one PUT on an object store: it never goes missing); a new link is written whole (renamed
/// into place; one PUT); a move is one rename on disk, and on an object store a copy of every
/// key before any is deleted (see [`finish_interrupted_move`]). An unfinished earlier run is
/// continued in its own directory and journal.
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
            let mut run = None;
            for n in 1u32..1000 {
                let r = format!("{QUARANTINE}/{stamp}-{n}");
                if !root
                    .exists_now(&r)
                    .map_err(|e| Error::io(place(root, &r), e))?
                {
                    run = Some(r);
                    break;
                }
            }
            let run = run.unwrap_or_else(|| format!("{QUARANTINE}/{stamp}-{}", std::process::id()));
            (run, false)
        }
    };
    remover.make_dir(&run)?;
    let next = if resumed { next_entry(root, &run)? } else { 1 };
    let mut j = Journal {
        remover,
        run: run.clone(),
        next,
    };
    let mut done = RepairApplied {
        steps: 0,
        quarantine: run.clone(),
        resumed,
    };
    let directories = remover.capabilities().directories;
    // Makes the missing parents of `rel` (journaled, so undo removes them). An object store
    // has no directories: nothing to make.
    let mkdirs = |j: &mut Journal, rel: &str| -> Result<()> {
        if !directories {
            return Ok(());
        }
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
            Action::Abort { path, upload_id } => {
                j.record(&Entry::Abort {
                    path: path.clone(),
                    upload_id: upload_id.clone(),
                })?;
                remover.abort_upload(path, upload_id)?;
            }
            Action::Link { path, digest } => {
                let bytes = digest.to_string();
                // Asked now (an object store's listing may be a pass old).
                let existing = match root.storage().stat_now(path) {
                    Ok(m) => Some(m),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(Error::io(place(root, path), e)),
                };
                if existing
                    .as_ref()
                    .is_some_and(|m| m.kind != crate::storage::Kind::File)
                {
                    // Not a file at all (a FIFO, a directory): nothing that works is lost by
                    // moving it aside before the link is written.
                    move_to(&mut j, path, &format!("{run}/{path}"))?;
                    j.record(&Entry::Create { path: path.clone() })?;
                    remover.create_file(path, bytes.as_bytes())?;
                } else if let Some(m) = existing {
                    let saved = format!("{run}/{path}");
                    mkdirs(&mut j, &saved)?;
                    j.record(&Entry::Replace {
                        path: path.clone(),
                        saved: saved.clone(),
                        mtime: m
                            .mtime
                            .map(|t| humantime::format_rfc3339_nanos(t).to_string()),
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
    // An absolute RUN below the root, however the root was named (a relative path too).
    let base = std::path::absolute(root.path()).unwrap_or_else(|_| root.path().to_path_buf());
    let run = match Path::new(run)
        .strip_prefix(root.path())
        .or_else(|_| Path::new(run).strip_prefix(&base))
    {
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
/// only says what it would do. What is there is asked of storage as it is now, entry by entry
/// (an object store's listing at open does not show what undo itself moved, and a run
/// continued after a crash journals a step again).
///
/// What undo copies back on an object store (a move is a copy there) gets the time of the copy
/// as its LastModified, which no request can set: a restored blob looks young to gc's
/// `--min-age` (kept longer), and a restored tag's history entries look pushed at once (a tag
/// is quarantined only when no revision of its history was intact, so no repair picks among
/// them). A replaced link written back gets the time of undo on either backend. An old
/// upload's aborted multipart upload (its data's parts) is not brought back: its other keys
/// are, an upload that sent nothing yet to the registry.
///
/// # Errors
/// [`Error::Io`] for a journal that cannot be read or parsed, I/O errors.
pub fn undo(root: &Root, run: &str, remover: &dyn Remover, dry_run: bool) -> Result<UndoReport> {
    let run = run_dir(root, run)?;
    let mut report = UndoReport {
        run: run.clone(),
        ..UndoReport::default()
    };
    let entries = match read_journal(root, &run) {
        Ok(j) => j.entries,
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
    let exists = |rel: &str| {
        root.exists_now(rel)
            .map_err(|e| Error::io(place(root, rel), e))
    };
    let atomic_rename = remover.capabilities().atomic_rename;
    for e in entries.iter().rev() {
        match e {
            Entry::Done | Entry::Discard { .. } | Entry::Abort { .. } => {}
            Entry::Create { path } => {
                if dry_run {
                    report.would.push(format!("remove {path}"));
                } else {
                    remover.remove_file(path)?;
                    if atomic_rename {
                        // A crash may have left the temporary file it was written to (a PUT
                        // leaves none).
                        remover.remove_file(&format!("{path}{}", crate::fsops::TEMP_SUFFIX))?;
                    }
                }
                report.undone += 1;
            }
            Entry::Replace { path, saved, .. } => {
                if exists(saved)? {
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
                // Without the copy, the file was never replaced (or this entry's step was
                // journaled again, and undone above).
                report.undone += 1;
            }
            Entry::Mkdir { path } => {
                if dry_run {
                    report.would.push(format!("remove directory {path}"));
                    report.undone += 1;
                } else if remover.remove_empty_dir(path)? || !exists(path)? {
                    report.undone += 1;
                } else {
                    report
                        .skipped
                        .push(format!("{path}: not empty, left in place"));
                }
            }
            Entry::Move { from, to } => {
                let (at_from, at_to) = (exists(from)?, exists(to)?);
                if at_to && !at_from {
                    if dry_run {
                        report.would.push(format!("move {to} back to {from}"));
                    } else {
                        remover.move_tree(to, from)?;
                    }
                    report.undone += 1;
                } else if at_from && !at_to {
                    // The move never happened.
                    report.undone += 1;
                } else if at_from && at_to && atomic_rename {
                    // A move across filesystems killed after its copy was in place: the source
                    // is whole (it is removed last), the copy goes.
                    if dry_run {
                        report.would.push(format!("remove the copy {to}"));
                    } else {
                        remover.remove_tree(to)?;
                    }
                    report.undone += 1;
                } else if at_from && at_to {
                    // On an object store a move copies every key, then deletes them: a kill
                    // stops the repair's move, or an undo's move back, half-way, and which side
                    // is whole the keys alone do not tell. Moved on again, `to` is whole either
                    // way (what `from` holds copied over it, identical where both hold a key),
                    // then moved back.
                    if dry_run {
                        report.would.push(format!(
                            "finish the move of {from} to {to}, then move it back"
                        ));
                    } else {
                        remover.move_tree(from, to)?;
                        remover.move_tree(to, from)?;
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
