//! Scanning: walk the v2 tree once, classify every entry by the layout's path grammar, and read
//! the link files and upload metadata.
//!
//! The scan never follows symlinks, never hashes and never parses manifests. What it cannot place
//! in the layout becomes a [`Finding`]; normal leftovers of the registry (empty shard, revision
//! and layer directories, empty `_uploads`) are counted, not reported.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::digest::{Algorithm, Digest, DigestMap};

mod links;

use crate::error::{Error, Result};
use crate::findings::{Finding, Kind};
use crate::layout::{self, RepoName, Root, TagName, V2};
use crate::sorted::SortedMap;
use crate::storage::{Bounded, Entry, Kind as SKind, Meta, Storage};
pub use links::LinkMap;

/// A link file is a digest; anything larger than this is garbage and is not read whole.
const LINK_LIMIT: u64 = 1024;

/// A blob in the blob store, in 16 bytes (the store holds one per blob: millions): the size
/// with the two flags in its top bits, and the time in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    /// Size of `data` in bytes (below 2^62), [`IS_FILE`] and [`STAT`].
    size_flags: u64,
    /// Modification time of `data` (the push time), as nanoseconds from the epoch;
    /// [`NO_TIME`] for none (or one that does not fit: before 1678 or after 2262).
    mtime_ns: i64,
}

const IS_FILE: u64 = 1 << 63;
const STAT: u64 = 1 << 62;
const SIZE_MASK: u64 = STAT - 1;
const NO_TIME: i64 = i64::MIN;

impl Blob {
    /// A blob of `size` bytes (sizes from 2^62 up are kept as 2^62 - 1: 4 EiB), modified at
    /// `mtime`; whether `data` is a regular file; whether size, mtime and kind come from a
    /// `stat` ([`Depth::Names`] skips it).
    pub fn new(size: u64, mtime: Option<SystemTime>, is_file: bool, stat: bool) -> Self {
        let nanos = |t: SystemTime| -> Option<i64> {
            match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_nanos()).ok(),
                Err(e) => i64::try_from(e.duration().as_nanos()).ok().map(|n| -n),
            }
        };
        Blob {
            size_flags: size.min(SIZE_MASK)
                | if is_file { IS_FILE } else { 0 }
                | if stat { STAT } else { 0 },
            mtime_ns: mtime
                .and_then(nanos)
                .filter(|&n| n != NO_TIME)
                .unwrap_or(NO_TIME),
        }
    }

    /// Size of `data` in bytes.
    pub fn size(&self) -> u64 {
        self.size_flags & SIZE_MASK
    }

    /// Modification time of `data` (the push time).
    pub fn mtime(&self) -> Option<SystemTime> {
        let n = self.mtime_ns;
        if n == NO_TIME {
            return None;
        }
        let d = std::time::Duration::from_nanos(n.unsigned_abs());
        if n >= 0 {
            std::time::UNIX_EPOCH.checked_add(d)
        } else {
            std::time::UNIX_EPOCH.checked_sub(d)
        }
    }

    /// Whether `data` is a regular file.
    pub fn is_file(&self) -> bool {
        self.size_flags & IS_FILE != 0
    }

    /// Whether size, mtime and kind come from a `stat` ([`Depth::Names`] skips it).
    pub fn stat(&self) -> bool {
        self.size_flags & STAT != 0
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("size", &self.size())
            .field("mtime", &self.mtime())
            .field("is_file", &self.is_file())
            .field("stat", &self.stat())
            .finish()
    }
}

/// Why a link file gave no digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// The content is not a well-formed digest.
    Malformed(String),
    /// The content is this digest written twice (`sha256:<h>sha256:<h>`): Distribution v3.0.0
    /// to v3.1.1 on Azure, after a retried append. The registry cannot parse it; what it meant
    /// is known.
    Doubled(Digest),
    /// The file could not be read.
    Unreadable(String),
}

/// A link file.
#[derive(Debug, Clone)]
pub struct Link {
    /// The digest it holds.
    pub target: Result<Digest, LinkProblem>,
    /// Its modification time.
    pub mtime: Option<SystemTime>,
}

/// A tag directory.
#[derive(Debug, Clone, Default)]
pub struct Tag {
    /// `current/link`, if present.
    pub current: Option<Link>,
    /// `index/<alg>/<hex>/link` entries, keyed by the digest in the path.
    pub index: LinkMap,
    /// Whether the tag's directory could not be listed (what it holds is unknown).
    pub unseen: bool,
}

/// An unfinished upload under `_uploads/<id>/`.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// The upload id (directory name).
    pub id: String,
    /// Size of `data`, if present.
    pub size: u64,
    /// `startedat`: `None` when absent, `Some(Err)` when unparseable. When it is absent and the
    /// id is a UUIDv7 (Distribution v3.1), the time in the id.
    pub started: Option<Result<SystemTime, String>>,
    /// On an object store, the in-progress multipart upload that `data` is (invisible to
    /// listings, billed, never aborted by the registry).
    pub multipart: Option<Multipart>,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// The store's id of it.
    pub upload_id: String,
    /// Its parts.
    pub parts: u64,
}

/// A repository directory (one with `_manifests`, `_layers` or `_uploads`).
#[derive(Debug, Clone)]
pub struct Repo {
    /// The name (the path below `repositories/`).
    pub name: RepoName,
    /// Whether `_manifests` exists.
    pub has_manifests: bool,
    /// Whether `_layers` exists (what makes the registry 2.8 list it in the catalog and visit
    /// it in its gc).
    pub has_layers: bool,
    /// `_layers` links keyed by the digest in their path.
    pub layers: LinkMap,
    /// Manifest revision links keyed by the digest in their path.
    pub revisions: LinkMap,
    /// Tags keyed by name.
    pub tags: SortedMap<TagName, Tag>,
    /// Unfinished uploads keyed by id.
    pub uploads: BTreeMap<String, Upload>,
}

impl Repo {
    fn new(name: RepoName) -> Self {
        Repo {
            name,
            has_manifests: false,
            has_layers: false,
            layers: LinkMap::new(),
            revisions: LinkMap::new(),
            tags: SortedMap::new(),
            uploads: BTreeMap::new(),
        }
    }
}

/// A part of the blob store that could not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobScope {
    /// `blobs/` itself.
    All,
    /// `blobs/<alg>/`.
    Algorithm(Algorithm),
    /// `blobs/<alg>/<hh>/`.
    Shard(Algorithm, String),
    /// One blob's directory.
    Blob(Digest),
}

impl BlobScope {
    fn covers(&self, d: &Digest) -> bool {
        match self {
            BlobScope::All => true,
            BlobScope::Algorithm(a) => d.algorithm() == *a,
            BlobScope::Shard(a, hh) => d.algorithm() == *a && d.hex().starts_with(hh.as_str()),
            BlobScope::Blob(b) => b == d,
        }
    }
}

/// Whether a blob is there, as far as the scan could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// In the blob store.
    Present,
    /// Not in the blob store.
    Absent,
    /// In a part of the blob store that could not be read: neither present nor missing.
    Unknown,
}

/// Everything the scan found.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Blobs stored at their proper place, keyed by digest (their positions are the dense ids
    /// that marks are bits of).
    pub blobs: DigestMap<Blob>,
    /// Repositories keyed by name.
    pub repos: BTreeMap<RepoName, Repo>,
    /// What could not be placed in the layout.
    pub findings: Vec<Finding>,
    /// Parts of the blob store that could not be listed.
    pub unseen_blobs: Vec<BlobScope>,
    /// Directories of the repositories tree that could not be listed (or are symlinks, not
    /// followed): the references they hold are unknown, so nothing may be swept.
    pub unseen_refs: Vec<String>,
    /// Digests named by links that regfsck cannot place in a repository it can name (below a
    /// name that is not UTF-8, a doubled or symlinked link): kept as references.
    pub pinned: BTreeSet<Digest>,
    /// Repository directories regfsck cannot name (not UTF-8), escaped, root-relative.
    pub skipped: Vec<String>,
}

impl Inventory {
    /// The blob `d`, by hash lookup.
    pub fn blob(&self, d: &Digest) -> Option<&Blob> {
        self.blobs.get(d)
    }

    /// Whether blob `d` is there, missing, or in a part of the store that could not be read.
    pub fn blob_state(&self, d: &Digest) -> BlobState {
        if self.blob(d).is_some() {
            BlobState::Present
        } else if self.unseen_blobs.iter().any(|s| s.covers(d)) {
            BlobState::Unknown
        } else {
            BlobState::Absent
        }
    }

    /// Total size of all blobs.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.values().map(|b| b.size()).sum()
    }

    /// Why the scan could not see all of the layout, in words, or `None` when it could.
    pub fn blind_spots(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.unseen_refs.is_empty() {
            let mut v = self.unseen_refs.clone();
            v.sort();
            let more = if v.len() > 3 {
                format!(" and {} more", v.len() - 3)
            } else {
                String::new()
            };
            v.truncate(3);
            parts.push(format!(
                "could not see into {}{more} (unreadable, or a symlink regfsck does not follow)",
                v.join(", ")
            ));
        }
        if !self.unseen_blobs.is_empty() {
            parts.push(format!(
                "could not read {} part(s) of the blob store",
                self.unseen_blobs.len()
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Takes in what another part of the scan found.
    fn absorb(&mut self, p: Part) {
        self.findings.extend(p.findings);
        self.unseen_blobs.extend(p.unseen_blobs);
        self.unseen_refs.extend(p.unseen_refs);
        self.pinned.extend(p.pinned);
        self.skipped.extend(p.skipped);
    }
}

/// What a piece of the scan found besides blobs and repositories.
#[derive(Debug, Default)]
struct Part {
    findings: Vec<Finding>,
    unseen_blobs: Vec<BlobScope>,
    unseen_refs: Vec<String>,
    pinned: BTreeSet<Digest>,
    skipped: Vec<String>,
}

impl Part {
    fn merge(&mut self, p: Part) {
        self.findings.extend(p.findings);
        self.unseen_blobs.extend(p.unseen_blobs);
        self.unseen_refs.extend(p.unseen_refs);
        self.pinned.extend(p.pinned);
        self.skipped.extend(p.skipped);
    }

    /// A directory of the repositories tree that cannot be listed.
    fn unreadable_refs(&mut self, rel: &str, e: &std::io::Error) {
        self.findings.push(dir_unreadable(rel, e));
        self.unseen_refs.push(rel.to_string());
    }
}

fn dir_unreadable(rel: &str, e: &std::io::Error) -> Finding {
    Finding::new(
        Kind::DirUnreadable,
        format!("cannot list: {e}; what it holds is unknown"),
    )
    .path(rel)
}

/// How closely to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// List every directory, including each one-file link directory, so stray and `*.tmp`
    /// files inside them are found (verify).
    Thorough,
    /// As few system calls as possible (gc, ls): revision and tag `current` links and blob
    /// data are opened directly, without listing their one-file directories, and read
    /// without a `stat` (link `mtime`s are `None`; gc stats the few it needs); `_layers` links
    /// are taken from their directory names, unread, and tag index entries are not read at
    /// all (`Tag::index` stays empty), since neither decides what is reachable.
    Fast,
    /// As [`Depth::Fast`], and blobs are taken from their directory names without a `stat`
    /// (`Blob::stat` is false: size 0, no mtime); for gc, which needs sizes and ages only of
    /// the few blobs it is about to sweep, and stats those itself.
    Names,
}

impl Depth {
    fn fast(self) -> bool {
        self != Depth::Thorough
    }
}

/// The trash directory of regfsck's interrupted jobs, below `repositories/`: a name starting
/// with `_` is never a repository to the registry, and the trash is on the same filesystem as
/// the repositories, so moving a directory there is one rename.
pub const TRASH_NAME: &str = "_regfsck-trash";

/// Scans the tree below `root`.
///
/// # Errors
/// [`Error::Io`] when `docker/registry/v2` itself cannot be listed. Everything below it that
/// cannot be read becomes a finding (and, for directories, an entry in
/// [`Inventory::unseen_blobs`] or [`Inventory::unseen_refs`]).
pub fn scan(root: &Root, depth: Depth) -> Result<Inventory> {
    let mut inv = Inventory::default();
    let (blobs, repos) = scan_top(root, &mut inv)?;
    scan_trees(root, &mut inv, blobs, repos, depth);
    add_hidden_uploads(root, &mut inv);
    inv.skipped.sort();
    inv.unseen_refs.sort();
    Ok(inv)
}

/// Lists `docker/registry/v2` and the directories above it: what is not part of the layout
/// goes into `inv`; returns whether `blobs` and `repositories` are there to scan.
fn scan_top(root: &Root, inv: &mut Inventory) -> Result<(bool, bool)> {
    let st = root.storage();
    let top = st
        .list(V2, false)
        .map_err(|e| Error::io(format!("{}/{V2}", st.describe()), e))?;
    let (mut blobs, mut repos) = (false, false);
    // The directories above v2 may be symlinks: followed (the caller named the root).
    for rel in &crate::layout::FOLLOWED[..3] {
        if st.stat(rel).is_ok_and(|m| m.kind == SKind::Symlink) {
            inv.findings.push(followed(root, rel));
        }
    }
    for e in top {
        let rel = format!("{V2}/{}", e.name);
        let special = e.utf8 && (e.name == "blobs" || e.name == "repositories");
        if special && e.kind == SKind::Symlink {
            if follow_top_symlink(root, &e, &rel, inv) {
                blobs |= e.name == "blobs";
                repos |= e.name == "repositories";
            }
        } else if e.kind == SKind::Symlink {
            inv.findings.push(symlink_finding(root, &rel));
        } else if special && e.name == "blobs" && e.kind == SKind::Dir {
            blobs = true;
        } else if special && e.name == "repositories" && e.kind == SKind::Dir {
            repos = true;
        } else {
            inv.findings.push(unknown(&rel, e.kind == SKind::Dir));
        }
    }
    Ok((blobs, repos))
}

/// `v2/blobs` or `v2/repositories` as a symlink (operators move these to another disk):
/// followed, as the registry does, when it leads to a directory (returns true); otherwise
/// what it holds is unknown.
fn follow_top_symlink(root: &Root, e: &Entry, rel: &str, inv: &mut Inventory) -> bool {
    let st = root.storage();
    match st.stat_follow(rel) {
        Ok(m) if m.kind == SKind::Dir => {
            inv.findings.push(followed(root, rel));
            true
        }
        other => {
            let err = other.err().unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory")
            });
            let target = st.symlink_target(rel).unwrap_or_default();
            inv.findings.push(
                Finding::new(
                    Kind::DirUnreadable,
                    format!(
                        "symlink to {target:?}, which cannot be listed: {err}; what it holds is unknown"
                    ),
                )
                .path(rel),
            );
            if e.name == "blobs" {
                inv.unseen_blobs.push(BlobScope::All);
            } else {
                inv.unseen_refs.push(rel.to_string());
            }
            false
        }
    }
}

/// Scans the blob store and the repositories tree (those of them that are there) into `inv`.
fn scan_trees(root: &Root, inv: &mut Inventory, blobs: bool, repos: bool, depth: Depth) {
    // Both trees at once: each has serial parts (listing the shards, walking namespaces) that
    // the other's parallel work fills.
    let (b, r) = rayon::join(
        || {
            let mut part = Inventory::default();
            if blobs {
                scan_blobs(root, &mut part, depth);
            }
            part
        },
        || {
            let mut part = Inventory::default();
            if repos {
                scan_repositories(root, &mut part, depth);
            }
            part
        },
    );
    for mut p in [b, r] {
        if inv.blobs.is_empty() {
            inv.blobs = std::mem::take(&mut p.blobs);
        }
        if inv.repos.is_empty() {
            inv.repos = std::mem::take(&mut p.repos);
        }
        inv.findings.append(&mut p.findings);
        inv.unseen_blobs.append(&mut p.unseen_blobs);
        inv.unseen_refs.append(&mut p.unseen_refs);
        inv.pinned.append(&mut p.pinned);
        inv.skipped.append(&mut p.skipped);
    }
}

/// The unfinished uploads the storage keeps out of its listings (an object store's
/// in-progress multipart uploads of `_uploads/<id>/data`), joined to the uploads the listing
/// found (`startedat`, hash states) or added; a storage that cannot list them is a warning.
fn add_hidden_uploads(root: &Root, inv: &mut Inventory) {
    let repos = format!("{V2}/repositories");
    let hidden = match root.storage().hidden_uploads(&repos) {
        Ok(h) => h,
        Err(e) => {
            inv.findings.push(
                Finding::new(
                    Kind::UploadsUnlisted,
                    format!("could not list the in-progress multipart uploads: {e}"),
                )
                .path(&repos),
            );
            return;
        }
    };
    for h in hidden {
        let Some(rest) = h.rel.strip_prefix(&format!("{repos}/")) else {
            continue;
        };
        let Some((repo, tail)) = rest.split_once("/_uploads/") else {
            continue;
        };
        let Some(id) = tail.strip_suffix("/data").filter(|id| !id.contains('/')) else {
            continue;
        };
        let name = RepoName::from_disk(repo);
        let r = inv
            .repos
            .entry(name.clone())
            .or_insert_with(|| Repo::new(name));
        let u = r.uploads.entry(id.to_string()).or_insert_with(|| Upload {
            id: id.to_string(),
            ..Upload::default()
        });
        u.size = h.bytes;
        if u.started.is_none() {
            u.started = h.initiated.map(Ok);
        }
        u.multipart = Some(Multipart {
            upload_id: h.upload_id,
            parts: h.parts,
        });
    }
}

/// A symlink regfsck follows (see [`crate::layout::FOLLOWED`]), for the report.
fn followed(root: &Root, rel: &str) -> Finding {
    let target = root
        .storage()
        .symlink_target(rel)
        .unwrap_or_else(|_| "?".into());
    Finding::new(
        Kind::SymlinkedStorage,
        format!("symlink to {target:?}, followed as the registry follows it (nothing below it is)"),
    )
    .path(rel)
}

fn unknown(rel: &str, is_dir: bool) -> Finding {
    let what = if is_dir { "directory" } else { "file" };
    Finding::new(
        Kind::UnknownEntry,
        format!("{what} is not part of the registry layout"),
    )
    .path(rel)
}

fn symlink_finding(root: &Root, rel: &str) -> Finding {
    let target = root
        .storage()
        .symlink_target(rel)
        .unwrap_or_else(|_| "?".into());
    Finding::new(
        Kind::Symlink,
        format!("symlink to {target:?}; regfsck does not follow symlinks"),
    )
    .path(rel)
}

fn io_finding(kind: Kind, rel: &str, e: &std::io::Error) -> Finding {
    Finding::new(kind, format!("cannot read: {e}")).path(rel)
}

fn non_utf8(rel: &str) -> Finding {
    Finding::new(
        Kind::NameNotUtf8,
        "name is not UTF-8 (bytes shown escaped); the registry cannot serve it",
    )
    .path(rel)
}

/// Whether `s` is two lower-case hex digits (a shard directory name).
fn is_shard(s: &str) -> bool {
    s.len() == 2
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// `blobs/<alg>/<hh>/<hex>/data`: fixed depth, so shards are listed in parallel.
fn scan_blobs(root: &Root, inv: &mut Inventory, depth: Depth) {
    let st = root.storage();
    let blobs_rel = format!("{V2}/blobs");
    let algs = match st.list(&blobs_rel, false) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            inv.findings.push(dir_unreadable(&blobs_rel, &e));
            inv.unseen_blobs.push(BlobScope::All);
            return;
        }
    };
    let mut shards = Vec::new();
    for a in algs {
        let rel = format!("{blobs_rel}/{}", a.name);
        let alg = Algorithm::from_name(&a.name);
        if a.kind == SKind::Symlink {
            inv.findings.push(symlink_finding(root, &rel));
            if let Some(alg) = alg {
                inv.unseen_blobs.push(BlobScope::Algorithm(alg));
            }
            continue;
        }
        let Some(alg) = alg.filter(|_| a.kind == SKind::Dir) else {
            inv.findings.push(if a.utf8 {
                unknown(&rel, a.kind == SKind::Dir)
            } else {
                non_utf8(&rel)
            });
            continue;
        };
        match st.list(&rel, false) {
            Ok(v) => {
                for e in v {
                    shards.push((alg, format!("{rel}/{}", e.name), e));
                }
            }
            Err(e) => {
                inv.findings.push(dir_unreadable(&rel, &e));
                inv.unseen_blobs.push(BlobScope::Algorithm(alg));
            }
        }
    }
    let results: Vec<ShardScan> = shards
        .par_iter()
        .map(|(alg, rel, e)| scan_shard(root, *alg, rel, e, depth))
        .collect();
    // Keys and values straight from each shard's list (each freed as it is taken): no
    // second vector of pairs.
    let n = results.iter().map(|r| r.0.len()).sum();
    let (mut keys, mut values) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (blobs, findings, unseen) in results {
        for (d, b) in blobs {
            keys.push(d);
            values.push(b);
        }
        inv.findings.extend(findings);
        inv.unseen_blobs.extend(unseen);
    }
    // Built in one go from sorted input (shards in order, names sorted within each).
    if inv.blobs.is_empty() {
        inv.blobs = DigestMap::from_sorted(keys, values);
    } else {
        inv.blobs.extend(keys.into_iter().zip(values));
    }
}

/// What one shard directory holds: its blobs, what could not be placed, what could not be read.
type ShardScan = (Vec<(Digest, Blob)>, Vec<Finding>, Vec<BlobScope>);

fn wrong_shard(digest: Digest, data_rel: String, under: &str) -> Finding {
    let hex = digest.hex();
    Finding::new(
        Kind::BlobWrongShard,
        format!(
            "blob stored under {under}, belongs under shard {:?}; the registry cannot find it",
            &hex[..2]
        ),
    )
    .digest(digest)
    .path(data_rel)
}

/// Whether `rel` is a regular file.
fn is_file(root: &Root, rel: &str) -> bool {
    root.storage()
        .stat(rel)
        .is_ok_and(|m| m.kind == SKind::File)
}

/// A directory at shard level whose name is not a shard: a blob directory that lost its shard
/// level (`blobs/<alg>/<hex>/data`), or a directory of any other name holding blob directories.
fn scan_misnamed_shard(root: &Root, alg: Algorithm, rel: &str, e: &Entry) -> Vec<Finding> {
    if e.kind != SKind::Dir || !e.utf8 {
        return vec![if e.utf8 {
            unknown(rel, e.kind == SKind::Dir)
        } else {
            non_utf8(rel)
        }];
    }
    if let Ok(d) = Digest::from_parts(alg.name(), &e.name) {
        if is_file(root, &format!("{rel}/data")) {
            return vec![wrong_shard(d, format!("{rel}/data"), "no shard directory")];
        }
        return vec![unknown(rel, true)];
    }
    let entries = match root.storage().list(rel, false) {
        Ok(v) => v,
        Err(err) => return vec![dir_unreadable(rel, &err)],
    };
    let mut out = Vec::new();
    let mut any = false;
    for c in entries {
        let crel = format!("{rel}/{}", c.name);
        match Digest::from_parts(alg.name(), &c.name) {
            Ok(d) if c.kind == SKind::Dir && is_file(root, &format!("{crel}/data")) => {
                any = true;
                out.push(wrong_shard(
                    d,
                    format!("{crel}/data"),
                    &format!("directory {:?}", e.name),
                ));
            }
            _ => out.push(unknown(&crel, c.kind == SKind::Dir)),
        }
    }
    if !any && out.is_empty() {
        out.push(unknown(rel, true));
    }
    out
}

fn blob_of(m: &crate::storage::Meta) -> Blob {
    Blob::new(m.size, m.mtime, m.kind == SKind::File, true)
}

/// One shard directory under scan: what the scans of its blob directories read.
struct ShardCx<'a> {
    root: &'a Root,
    st: &'a dyn Storage,
    alg: Algorithm,
    /// The shard directory, root-relative.
    rel: &'a str,
    /// Its name.
    shard: &'a str,
    depth: Depth,
}

/// Scans one entry of `blobs/<alg>/`: a shard directory's blob directories, or what a
/// misnamed, symlinked or unreadable entry there holds.
fn scan_shard(root: &Root, alg: Algorithm, rel: &str, e: &Entry, depth: Depth) -> ShardScan {
    let st = root.storage();
    let mut out: ShardScan = (Vec::new(), Vec::new(), Vec::new());
    let shard = e.name.as_str();
    if e.kind == SKind::Symlink {
        out.1.push(symlink_finding(root, rel));
        if is_shard(shard) {
            out.2.push(BlobScope::Shard(alg, shard.to_string()));
        }
        return out;
    }
    if e.kind != SKind::Dir || !is_shard(shard) {
        out.1.extend(scan_misnamed_shard(root, alg, rel, e));
        return out;
    }
    let entries = match st.list(rel, false) {
        Ok(v) => v,
        Err(err) => {
            out.1.push(dir_unreadable(rel, &err));
            out.2.push(BlobScope::Shard(alg, shard.to_string()));
            return out;
        }
    };
    let cx = ShardCx {
        root,
        st,
        alg,
        rel,
        shard,
        depth,
    };
    for c in entries {
        scan_blob_dir(&cx, &c, &mut out);
    }
    out
}

/// Scans the entry `c` of a shard directory: a blob directory is taken by its name
/// ([`Depth::Names`]), by a `stat` of its `data` ([`Depth::Fast`]) or by listing it.
fn scan_blob_dir(cx: &ShardCx, c: &Entry, out: &mut ShardScan) {
    let (blobs, findings, unseen) = out;
    let hex = c.name.as_str();
    let dir_rel = format!("{}/{hex}", cx.rel);
    let parsed = Digest::from_parts(cx.alg.name(), hex);
    if c.kind == SKind::Symlink {
        findings.push(symlink_finding(cx.root, &dir_rel));
        if let Ok(d) = parsed {
            unseen.push(BlobScope::Blob(d));
        }
        return;
    }
    let digest = match parsed {
        Ok(d) if c.kind == SKind::Dir => d,
        _ => {
            findings.push(if c.utf8 {
                unknown(&dir_rel, c.kind == SKind::Dir)
            } else {
                non_utf8(&dir_rel)
            });
            return;
        }
    };
    let misplaced = &hex[..2] != cx.shard;
    if cx.depth == Depth::Names && !misplaced {
        blobs.push((digest, Blob::new(0, None, true, false)));
        return;
    }
    if cx.depth == Depth::Fast && !misplaced {
        stat_blob_data(cx, digest, &dir_rel, out);
        return;
    }
    list_blob_dir(cx, digest, &dir_rel, misplaced, out);
}

/// A blob directory in its proper shard, by a `stat` of `<hex>/data` instead of a listing.
fn stat_blob_data(cx: &ShardCx, digest: Digest, dir_rel: &str, out: &mut ShardScan) {
    let (blobs, findings, unseen) = out;
    let p = format!("{dir_rel}/data");
    match cx.st.stat(&p) {
        Ok(m) if m.kind == SKind::Symlink => {
            findings.push(symlink_finding(cx.root, &p).digest(digest));
            unseen.push(BlobScope::Blob(digest));
        }
        Ok(m) => blobs.push((digest, blob_of(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            findings.push(no_data(digest, dir_rel));
        }
        Err(e) => {
            findings.push(io_finding(Kind::BlobUnreadable, &p, &e).digest(digest));
            unseen.push(BlobScope::Blob(digest));
        }
    }
}

/// A blob directory by listing it: its `data` (or, when `misplaced`, a wrong-shard finding),
/// and every other file in it.
fn list_blob_dir(
    cx: &ShardCx,
    digest: Digest,
    dir_rel: &str,
    misplaced: bool,
    out: &mut ShardScan,
) {
    let (blobs, findings, unseen) = out;
    let children = match cx.st.list(dir_rel, true) {
        Ok(v) => v,
        Err(e) => {
            findings.push(io_finding(Kind::BlobUnreadable, dir_rel, &e).digest(digest));
            unseen.push(BlobScope::Blob(digest));
            return;
        }
    };
    let mut has_data = false;
    for g in children {
        let p = format!("{dir_rel}/{}", g.name);
        if g.kind == SKind::Symlink {
            findings.push(symlink_finding(cx.root, &p).digest(digest));
            if g.name == "data" {
                has_data = true;
                unseen.push(BlobScope::Blob(digest));
            }
        } else if g.utf8 && g.name == "data" {
            has_data = true;
            if misplaced {
                findings.push(wrong_shard(digest, p, &format!("shard {:?}", cx.shard)));
                continue;
            }
            match g.meta {
                Some(m) => blobs.push((digest, blob_of(&m))),
                None => {
                    findings.push(
                        Finding::new(Kind::BlobUnreadable, "cannot stat")
                            .path(p)
                            .digest(digest),
                    );
                    unseen.push(BlobScope::Blob(digest));
                }
            }
        } else {
            findings.push(other_file(&p, &g));
        }
    }
    if !has_data {
        findings.push(no_data(digest, dir_rel));
    }
}

/// Whether `name` is `<something>.<uuid>.tmp`: Distribution v3.1's atomic writes.
fn is_atomic_write_leftover(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tmp") else {
        return false;
    };
    let Some((_, id)) = stem.rsplit_once('.') else {
        return false;
    };
    is_uuid(id)
}

/// Whether `s` is a UUID in its usual text form (8-4-4-4-12 hex digits).
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The creation time in a UUIDv7 (its first 48 bits are milliseconds since the epoch).
fn uuid_v7_time(s: &str) -> Option<SystemTime> {
    if !is_uuid(s) || s.as_bytes()[14] != b'7' {
        return None;
    }
    let hex: String = s.chars().filter(|c| *c != '-').take(12).collect();
    let ms = u64::from_str_radix(&hex, 16).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms))
}

fn atomic_leftover(rel: &str) -> Finding {
    Finding::new(
        Kind::AtomicWriteLeftover,
        "left by an interrupted atomic write of the registry (v3.1); harmless",
    )
    .path(rel)
}

/// A file or directory that is not part of the layout: a temporary file of an interrupted
/// write, a name that is not UTF-8, or something unknown.
fn other_file(rel: &str, e: &Entry) -> Finding {
    let dir = e.kind == SKind::Dir;
    if !e.utf8 {
        non_utf8(rel)
    } else if !dir && is_atomic_write_leftover(&e.name) {
        atomic_leftover(rel)
    } else if !dir && e.name.ends_with(".tmp") {
        temp_file(rel)
    } else {
        unknown(rel, dir)
    }
}

fn no_data(digest: Digest, dir_rel: &str) -> Finding {
    Finding::new(Kind::BlobNoData, "blob directory has no data file")
        .digest(digest)
        .path(dir_rel)
}

fn temp_file(rel: &str) -> Finding {
    Finding::new(
        Kind::TempFile,
        "temporary file left by an interrupted write",
    )
    .path(rel)
}

/// The digest a link path names: `.../<alg>/<hex>/link`.
fn digest_of_link_path(rel: &str) -> Option<Digest> {
    let mut it = rel.rsplit('/');
    let (link, hex, alg) = (it.next()?, it.next()?, it.next()?);
    (link == "link").then(|| Digest::from_parts(alg, hex).ok())?
}

/// The first component of `rel` (below `v2`) that is a symlink regfsck does not follow, or
/// `rel` itself when none is found (the error came from elsewhere).
fn first_symlink(root: &Root, rel: &str) -> String {
    let mut prefix = String::new();
    for part in rel.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if prefix.len() > V2.len()
            && !layout::FOLLOWED.contains(&prefix.as_str())
            && root
                .storage()
                .stat(&prefix)
                .is_ok_and(|m| m.kind == SKind::Symlink)
        {
            return prefix;
        }
    }
    rel.to_string()
}

fn link_from(r: std::io::Result<(Bounded, Option<SystemTime>)>) -> Link {
    match r {
        Ok((Bounded::Content(bytes), mtime)) => Link {
            target: parse_link(&bytes),
            mtime,
        },
        Ok((Bounded::TooLarge { len }, mtime)) => Link {
            target: Err(LinkProblem::Malformed(format!(
                "{len} bytes, far too large for a digest"
            ))),
            mtime,
        },
        Err(e) => Link {
            target: Err(LinkProblem::Unreadable(e.to_string())),
            mtime: None,
        },
    }
}

/// Parses a link file's content, strictly as the registry does; a digest written twice is
/// told apart ([`LinkProblem::Doubled`]).
pub fn parse_link(bytes: &[u8]) -> Result<Digest, LinkProblem> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| LinkProblem::Malformed(format!("not text: {:?}", preview(bytes))))?;
    text.parse::<Digest>().map_err(|e| {
        let (a, b) = text.split_at(text.len() / 2);
        match a.parse::<Digest>() {
            Ok(d) if a == b => LinkProblem::Doubled(d),
            _ => LinkProblem::Malformed(format!("{e}: {:?}", preview(bytes))),
        }
    })
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
    if bytes.len() > 80 { s + "…" } else { s }
}

fn parse_time(bytes: &[u8]) -> Result<SystemTime, String> {
    let s = String::from_utf8_lossy(bytes);
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(&s))
        .map_err(|e| format!("{e}: {:?}", preview(bytes)))
}

/// One `_manifests`, `_layers` or `_uploads` directory of a repository, found by the first pass.
struct Special {
    repo: String,
    comps: Vec<String>,
}

/// Repositories in two passes: a walk that stops at every `_`-prefixed directory finds the
/// repositories; then each repository's `_manifests`, `_layers` and `_uploads` are scanned in
/// parallel, and the partial results merged.
fn scan_repositories(root: &Root, inv: &mut Inventory, depth: Depth) {
    let (specials, part) = walk_namespaces(root, &[]);
    inv.absorb(part);
    let parts: Vec<(Repo, Part)> = specials
        .par_iter()
        .map(|sp| scan_special(root, sp, depth))
        .collect();
    for (r, part) in parts {
        inv.absorb(part);
        let repo = inv
            .repos
            .entry(r.name.clone())
            .or_insert_with(|| Repo::new(r.name.clone()));
        repo.has_manifests |= r.has_manifests;
        repo.has_layers |= r.has_layers;
        // Each part fills one of these; moving a map is free, extending one inserts each entry.
        repo.layers.extend(r.layers);
        repo.revisions.extend(r.revisions);
        if repo.tags.is_empty() {
            repo.tags = r.tags;
        } else {
            repo.tags.extend(r.tags);
        }
        merge(&mut repo.uploads, r.uploads);
    }
    for name in inv.repos.keys() {
        if let Err(e) = RepoName::parse(name.as_str()) {
            inv.findings.push(
                Finding::new(
                    Kind::InvalidRepositoryName,
                    format!("the registry cannot serve this repository: {e}"),
                )
                .repo(name)
                .path(layout::repo_dir(name)),
            );
        }
    }
}

fn merge<K: Ord, V>(into: &mut BTreeMap<K, V>, from: BTreeMap<K, V>) {
    if into.is_empty() {
        *into = from;
    } else {
        into.extend(from);
    }
}

/// Below a name regfsck cannot use (not UTF-8): every link file's digest is kept as a
/// reference, so nothing it names is swept; what cannot be read there is unseen.
fn pin_subtree(root: &Root, parent: &str, name: &str, part: &mut Part) {
    let p = root.storage().pin_below(parent, name);
    part.pinned.extend(p.digests);
    if p.unseen {
        part.unseen_refs.push(format!("{parent}/{name}"));
    }
}

/// Walks `repositories/<comps...>` in parallel, stopping at every `_`-prefixed entry: the
/// `_manifests`, `_layers` and `_uploads` directories found, and what is not part of the
/// layout.
fn walk_namespaces(root: &Root, comps: &[String]) -> (Vec<Special>, Part) {
    let dir = namespace_rel(comps);
    let mut part = Part::default();
    let entries = match root.storage().list(&dir, false) {
        Ok(v) => v,
        Err(e) => {
            part.unreadable_refs(&dir, &e);
            return (Vec::new(), part);
        }
    };
    if entries.is_empty() && !comps.is_empty() {
        part.findings.push(
            Finding::new(
                Kind::EmptyRepositoryDirectory,
                "empty directory (a repository deleted by the registry v3.1 leaves one); harmless",
            )
            .path(dir.as_str()),
        );
    }
    let mut specials = Vec::new();
    let mut subdirs = Vec::new();
    for e in entries {
        match namespace_entry(root, comps, &dir, e, &mut part) {
            Some(Found::Namespace(child)) => subdirs.push(child),
            Some(Found::Special(sp)) => specials.push(sp),
            None => {}
        }
    }
    let below: Vec<(Vec<Special>, Part)> = subdirs
        .par_iter()
        .map(|c| walk_namespaces(root, c))
        .collect();
    for (s, p) in below {
        specials.extend(s);
        part.merge(p);
    }
    (specials, part)
}

/// `repositories/<comps...>`, root-relative.
fn namespace_rel(comps: &[String]) -> String {
    if comps.is_empty() {
        format!("{V2}/repositories")
    } else {
        format!("{V2}/repositories/{}", comps.join("/"))
    }
}

/// What an entry of a namespace directory leads the walk to.
enum Found {
    /// A namespace or repository directory to walk (its components).
    Namespace(Vec<String>),
    /// A repository's `_manifests`, `_layers` or `_uploads`.
    Special(Special),
}

/// Places the entry `e` of `repositories/<comps...>` (root-relative `dir`): what the walk
/// goes on with, if anything; what is not part of the layout goes into `part`.
fn namespace_entry(
    root: &Root,
    comps: &[String],
    dir: &str,
    e: Entry,
    part: &mut Part,
) -> Option<Found> {
    let rel = format!("{dir}/{}", e.name);
    let name = e.name.as_str();
    let is_dir = e.kind == SKind::Dir;
    if e.kind == SKind::Symlink {
        // Not followed: what is behind it is unknown.
        part.findings.push(symlink_finding(root, &rel));
        part.unseen_refs.push(rel);
    } else if !e.utf8 {
        part.findings.push(non_utf8(&rel));
        if is_dir {
            pin_subtree(root, dir, &e.name, part);
            part.skipped.push(rel);
        }
    } else if !name.starts_with('_') {
        // A namespace or repository directory; files here are strays.
        if is_dir {
            let mut child = comps.to_vec();
            child.push(e.name.clone());
            return Some(Found::Namespace(child));
        }
        part.findings.push(other_file(&rel, &e));
    } else if comps.is_empty() && name == TRASH_NAME && is_dir {
        // regfsck's own trash: its jobs are reported by the commands that finish them.
    } else if comps.is_empty() || !is_dir {
        part.findings.push(other_file(&rel, &e));
    } else if name == "_referrers" {
        part.findings.push(
            Finding::new(
                Kind::ReferrersTree,
                "referrers index of a registry with distribution PR #4828; not checked",
            )
            .repo(comps.join("/"))
            .path(rel),
        );
    } else if matches!(name, "_manifests" | "_layers" | "_uploads") {
        let mut child = comps.to_vec();
        child.push(e.name.clone());
        return Some(Found::Special(Special {
            repo: comps.join("/"),
            comps: child,
        }));
    } else {
        part.findings.push(unknown(&rel, true));
    }
    None
}

fn scan_special(root: &Root, sp: &Special, depth: Depth) -> (Repo, Part) {
    let special = sp.comps[sp.comps.len() - 1].as_str();
    if special == "_uploads" {
        return scan_uploads(root, sp);
    }
    let mut repo = Repo::new(RepoName::from_disk(&sp.repo));
    let mut part = Part::default();
    let rel = format!("{V2}/repositories/{}", sp.comps.join("/"));
    let name = repo.name.clone();
    let mut w = LinkWalk {
        root,
        depth,
        part: &mut part,
        repo: &name,
    };
    if special == "_layers" {
        repo.has_layers = true;
        repo.layers = w.name_tree(&rel);
    } else {
        repo.has_manifests = true;
        // `revisions` lists before `tags`: the tags' links are checked against them.
        for (name, ft) in w.list(&rel) {
            let p = format!("{rel}/{name}");
            match name.as_str() {
                "revisions" if ft == SKind::Dir => {
                    repo.revisions = w.link_tree(&p, Tree::Revisions)
                }
                "tags" if ft == SKind::Dir => repo.tags = w.tags(&p, &repo.revisions),
                "revisions" | "tags" if ft == SKind::Symlink => {
                    // Not followed: every revision or tag behind it is unknown.
                    w.part.unseen_refs.push(p.clone());
                    w.other(&p, &name, ft);
                }
                _ => w.other(&p, &name, ft),
            }
        }
    }
    (repo, part)
}

/// Which link tree is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    Layers,
    Revisions,
    TagIndex,
}

/// Reads the link trees of one repository: `<alg>/<hex>/link` below `_layers`, `revisions`
/// and each tag's `index`, and the tags' `current/link`.
struct LinkWalk<'a> {
    root: &'a Root,
    depth: Depth,
    part: &'a mut Part,
    repo: &'a RepoName,
}

impl LinkWalk<'_> {
    /// Lists a directory; unreadable ones become findings (and unseen), names that are not
    /// UTF-8 are reported and the links below them kept as references.
    fn list(&mut self, rel: &str) -> Vec<(String, SKind)> {
        self.list_meta(rel, false)
            .into_iter()
            .map(|(n, k, _)| (n, k))
            .collect()
    }

    /// As [`LinkWalk::list`], with each entry's metadata when `meta`.
    fn list_meta(&mut self, rel: &str, meta: bool) -> Vec<(String, SKind, Option<Meta>)> {
        match self.root.storage().list(rel, meta) {
            Ok(v) => v
                .into_iter()
                .filter_map(|e| {
                    if e.utf8 {
                        return Some((e.name, e.kind, e.meta));
                    }
                    let p = format!("{rel}/{}", e.name);
                    self.part.findings.push(non_utf8(&p).repo(self.repo));
                    if e.kind == SKind::Dir {
                        pin_subtree(self.root, rel, &e.name, self.part);
                    }
                    None
                })
                .collect(),
            Err(e) => {
                self.part
                    .findings
                    .push(dir_unreadable(rel, &e).repo(self.repo));
                self.part.unseen_refs.push(rel.to_string());
                Vec::new()
            }
        }
    }

    /// Reports an entry that is not part of the layout (or a symlink, or a temp file).
    fn other(&mut self, rel: &str, name: &str, ft: SKind) {
        let dir = ft == SKind::Dir;
        let f = if ft == SKind::Symlink {
            symlink_finding(self.root, rel)
        } else if !dir && is_atomic_write_leftover(name) {
            atomic_leftover(rel)
        } else if name.ends_with(".tmp") && !dir {
            temp_file(rel)
        } else {
            unknown(rel, dir)
        };
        self.part.findings.push(f.repo(self.repo));
    }

    /// Reads `<dir>/link`: `None` when there is none (a normal leftover after a delete).
    fn link_in(&mut self, dir: &str, tree: Tree) -> Option<Link> {
        if self.depth.fast() {
            return self.fast_link(dir, "link");
        }
        let mut link = None;
        for (name, ft, meta) in self.list_meta(dir, true) {
            let p = format!("{dir}/{name}");
            match name.as_str() {
                "link" if ft == SKind::File => {
                    let r = match self.known_link(&p) {
                        Some(b) => Ok(b),
                        None => self.root.read_small(&p, LINK_LIMIT),
                    };
                    if let Err(e) = &r {
                        self.unseen_if_denied(e, &p);
                    }
                    link = Some(link_from(r.map(|b| (b, meta.and_then(|m| m.mtime)))));
                }
                "link" if ft != SKind::Symlink => {
                    link = Some(Link {
                        target: Err(LinkProblem::Unreadable("not a regular file".into())),
                        mtime: None,
                    });
                }
                // Schema1-era signature links: ignored by the registry, left alone.
                "signatures" if tree == Tree::Revisions && ft == SKind::Dir => {}
                _ => self.other(&p, &name, ft),
            }
        }
        if link.is_none() && tree == Tree::Layers {
            self.part.findings.push(
                Finding::new(
                    Kind::LayerDirWithoutLink,
                    "layer directory without a link (a blob delete, or the registry v3's gc); the blob is not linked here",
                )
                .repo(self.repo)
                .path(dir),
            );
        }
        link
    }

    /// Reads `<base_rel>/<below>` without a stat, relative to `base` (the directory
    /// `base_rel`, opened once for all its links: a short path walk for each) when given.
    /// `None` when there is no such file (a normal leftover after a delete).
    fn fast_link(&mut self, base_rel: &str, below: &str) -> Option<Link> {
        let read = self
            .root
            .read_small(&format!("{base_rel}/{below}"), LINK_LIMIT);
        self.link_result(read, base_rel, below)
    }

    /// The content of the link `rel` when the storage knows its MD5 and it is the MD5 of
    /// the link its path implies (`<alg>:<hex>` for `.../<alg>/<hex>/link`): not read then.
    fn known_link(&self, rel: &str) -> Option<Bounded> {
        let md5 = self.root.storage().known_md5(rel)?;
        let want = digest_of_link_path(rel)?.to_string().into_bytes();
        (crate::storage::md5(&want) == md5).then_some(Bounded::Content(want))
    }

    /// Reads the links `<base>/<below>` in one batch, except those whose content the storage
    /// already knows: one whose MD5 (an object's ETag, listed with it) is the MD5 of the
    /// content `guess(i, md5)` offers for it is taken as read. An MD5 that matches nothing
    /// offered (a damaged link, a multipart or encrypted object) is read as usual.
    fn read_links(
        &self,
        base: &str,
        below: &[String],
        guess: &dyn Fn(usize, [u8; 16]) -> Option<Vec<u8>>,
    ) -> Vec<std::io::Result<Bounded>> {
        let st = self.root.storage();
        let known: Vec<Option<Vec<u8>>> = below
            .iter()
            .enumerate()
            .map(|(i, b)| {
                st.known_md5(&format!("{base}/{b}"))
                    .and_then(|m| guess(i, m))
            })
            .collect();
        let unknown: Vec<String> = below
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(b, _)| b.clone())
            .collect();
        let mut reads = st.read_small_below(base, &unknown, LINK_LIMIT).into_iter();
        known
            .into_iter()
            .map(|k| match k {
                Some(c) => Ok(Bounded::Content(c)),
                None => reads.next().unwrap_or_else(|| {
                    Err(std::io::Error::other(
                        "the storage answered fewer reads than asked",
                    ))
                }),
            })
            .collect()
    }

    /// What reading `<base_rel>/<below>` gave, as a link (`None`: there is none).
    fn link_result(
        &mut self,
        read: std::io::Result<Bounded>,
        base_rel: &str,
        below: &str,
    ) -> Option<Link> {
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            // A symlink on the way (`current` itself, say) or the link itself.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                let at = first_symlink(self.root, &format!("{base_rel}/{below}"));
                self.part
                    .findings
                    .push(symlink_finding(self.root, &at).repo(self.repo));
                // Not followed; a revision or layer link's digest is known from its path.
                if let Some(d) = digest_of_link_path(&format!("{base_rel}/{below}")) {
                    self.part.pinned.insert(d);
                }
                None
            }
            Err(e) => {
                self.unseen_if_denied(&e, &format!("{base_rel}/{below}"));
                Some(link_from(Err(e)))
            }
            r => Some(link_from(r.map(|b| (b, None)))),
        }
    }

    /// A link that could not be read for lack of permission (or an I/O error) may sit below a
    /// directory that cannot be listed: what it names is unknown, the scan did not see
    /// everything. (A FIFO or a directory where a link should be is damage, not unseen.)
    fn unseen_if_denied(&mut self, e: &std::io::Error, rel: &str) {
        if e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EIO) {
            self.part.unseen_refs.push(rel.to_string());
        }
    }

    /// `<rel>/<alg>/<hex>/link`, keyed by the digest in the path.
    fn link_tree(&mut self, rel: &str, tree: Tree) -> LinkMap {
        self.link_tree_with(rel, tree, false)
    }

    /// A link tree whose link contents are not needed in [`Depth::Fast`]: `_layers` and tag
    /// index entries.
    fn name_tree(&mut self, rel: &str) -> LinkMap {
        self.link_tree_with(rel, Tree::Layers, self.depth.fast())
    }

    fn link_tree_with(&mut self, rel: &str, tree: Tree, names_only: bool) -> LinkMap {
        let mut out: Vec<(Digest, Link)> = Vec::new();
        for (alg, ft) in self.list(rel) {
            let alg_rel = format!("{rel}/{alg}");
            if ft != SKind::Dir || Algorithm::from_name(&alg).is_none() {
                if ft == SKind::Symlink && tree == Tree::Revisions {
                    // Not followed: the revisions behind it are unknown.
                    self.part.unseen_refs.push(alg_rel.clone());
                }
                self.other(&alg_rel, &alg, ft);
                continue;
            }
            // Links read in one batch per directory (fast depths): opened relative to it, or
            // many requests in flight.
            let mut batch: Vec<Digest> = Vec::new();
            for (hex, ft) in self.list(&alg_rel) {
                let p = || format!("{alg_rel}/{hex}");
                match Digest::from_parts(&alg, &hex) {
                    // An alias (`_layers/sha512/<hex>/link` holding the sha256 the blob is
                    // stored under) is read even by name: it says where the bytes are.
                    Ok(d) if ft == SKind::Dir && self.depth.fast() => {
                        if names_only && d.algorithm() == Algorithm::Sha256 {
                            out.push((
                                d,
                                Link {
                                    target: Ok(d),
                                    mtime: None,
                                },
                            ));
                        } else {
                            batch.push(d);
                        }
                    }
                    Ok(d) if ft == SKind::Dir => {
                        if let Some(l) = self.link_in(&p(), tree) {
                            out.push((d, l));
                        }
                    }
                    Ok(d) => {
                        // A symlinked link directory: not followed; what it names is known
                        // from its name, and kept.
                        if ft == SKind::Symlink {
                            self.part.pinned.insert(d);
                        }
                        self.other(&p(), &hex, ft);
                    }
                    Err(_) => self.other(&p(), &hex, ft),
                }
            }
            if !batch.is_empty() {
                let below: Vec<String> =
                    batch.iter().map(|d| format!("{}/link", d.hex())).collect();
                let reads = self.read_links(&alg_rel, &below, &|i, md5| {
                    let want = batch[i].to_string().into_bytes();
                    (crate::storage::md5(&want) == md5).then_some(want)
                });
                for ((d, b), r) in batch.iter().zip(&below).zip(reads) {
                    if let Some(l) = self.link_result(r, &alg_rel, b) {
                        out.push((*d, l));
                    }
                }
            }
        }
        for (_, l) in &out {
            if let Err(LinkProblem::Doubled(d)) = l.target {
                self.part.pinned.insert(d);
            }
        }
        LinkMap::from_entries(out)
    }

    /// `tags/<tag>/{current/link, index/<alg>/<hex>/link}`.
    fn tags(&mut self, rel: &str, revisions: &LinkMap) -> SortedMap<TagName, Tag> {
        let mut out = SortedMap::new();
        let entries = self.list(rel);
        // Fast depths: every `current/link` in one batch (a tag names one of the revisions,
        // whose MD5s an object store's listing may confirm).
        let mut current: BTreeMap<String, std::io::Result<Bounded>> = BTreeMap::new();
        if self.depth.fast() {
            let below: Vec<String> = entries
                .iter()
                .filter(|(_, ft)| *ft == SKind::Dir)
                .map(|(n, _)| format!("{n}/current/link"))
                .collect();
            let by_md5: rustc_hash::FxHashMap<[u8; 16], Vec<u8>> = revisions
                .keys()
                .map(|d| {
                    let c = d.to_string().into_bytes();
                    (crate::storage::md5(&c), c)
                })
                .collect();
            let reads = self.read_links(rel, &below, &|_, md5| by_md5.get(&md5).cloned());
            current = below.into_iter().zip(reads).collect();
        }
        for (name, ft) in entries {
            let p = format!("{rel}/{name}");
            if ft != SKind::Dir {
                self.other(&p, &name, ft);
                continue;
            }
            let tag = match TagName::parse(&name) {
                Ok(t) => t,
                Err(e) => {
                    self.part.findings.push(
                        Finding::new(
                            Kind::InvalidTagName,
                            format!("the registry cannot serve this tag: {e}"),
                        )
                        .repo(self.repo)
                        .tag(&name)
                        .path(&p),
                    );
                    TagName::from_disk(&name)
                }
            };
            let mut t = Tag::default();
            if self.depth.fast() {
                // The tag's history (index/) is not read: only gc needs it, for the manifests
                // it drops, and it looks those up itself.
                let below = format!("{name}/current/link");
                if let Some(r) = current.remove(&below) {
                    t.current = self.link_result(r, rel, &below);
                }
            } else {
                let before = self.part.unseen_refs.len();
                let children = self.list(&p);
                t.unseen = self.part.unseen_refs.len() > before;
                for (child, ft) in children {
                    let cp = format!("{p}/{child}");
                    match child.as_str() {
                        "current" if ft == SKind::Dir => {
                            t.current = self.link_in(&cp, Tree::TagIndex)
                        }
                        "index" if ft == SKind::Dir => {
                            t.index = self.link_tree(&cp, Tree::TagIndex)
                        }
                        _ => self.other(&cp, &child, ft),
                    }
                }
            }
            if let Some(Link {
                target: Err(LinkProblem::Doubled(d)),
                ..
            }) = &t.current
            {
                self.part.pinned.insert(*d);
            }
            out.insert(tag, t);
        }
        out.shrink_to_fit();
        out
    }
}

fn scan_uploads(root: &Root, sp: &Special) -> (Repo, Part) {
    let st = root.storage();
    let mut repo = Repo::new(RepoName::from_disk(&sp.repo));
    let mut part = Part::default();
    let base = format!("{V2}/repositories/{}", sp.comps.join("/"));
    let ids = match st.list(&base, false) {
        Ok(v) => v,
        Err(e) => {
            part.findings
                .push(dir_unreadable(&base, &e).repo(&repo.name));
            return (repo, part);
        }
    };
    for e in ids {
        let rel = format!("{base}/{}", e.name);
        if e.kind == SKind::Symlink {
            part.findings.push(symlink_finding(root, &rel));
            continue;
        }
        if e.kind != SKind::Dir || !e.utf8 {
            part.findings.push(other_file(&rel, &e).repo(&repo.name));
            continue;
        }
        let mut u = Upload {
            id: e.name.clone(),
            ..Upload::default()
        };
        let files = match st.list(&rel, true) {
            Ok(v) => v,
            Err(err) => {
                part.findings
                    .push(dir_unreadable(&rel, &err).repo(&repo.name));
                Vec::new()
            }
        };
        for f in files {
            let p = format!("{rel}/{}", f.name);
            match (f.name.as_str(), f.kind) {
                (_, SKind::Symlink) => part.findings.push(symlink_finding(root, &p)),
                ("data", SKind::File) => u.size = f.meta.map_or(0, |m| m.size),
                ("startedat", SKind::File) => {
                    u.started = Some(match st.read_small(&p, LINK_LIMIT) {
                        Ok(Bounded::Content(b)) => parse_time(&b),
                        Ok(Bounded::TooLarge { len }) => Err(format!("{len} bytes, not a time")),
                        Err(e) => Err(e.to_string()),
                    });
                }
                ("hashstates", SKind::Dir) => {}
                _ => part.findings.push(other_file(&p, &f).repo(&repo.name)),
            }
        }
        if u.started.is_none() {
            u.started = uuid_v7_time(&u.id).map(Ok);
        }
        repo.uploads.insert(u.id.clone(), u);
    }
    (repo, part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parsing_is_strict() {
        let good = b"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(parse_link(good).is_ok());
        let mut nl = good.to_vec();
        nl.push(b'\n');
        assert!(matches!(parse_link(&nl), Err(LinkProblem::Malformed(_))));
        assert!(matches!(parse_link(b""), Err(LinkProblem::Malformed(_))));
        assert!(matches!(
            parse_link(&[0xff, 0xfe]),
            Err(LinkProblem::Malformed(_))
        ));
    }

    #[test]
    fn startedat() {
        assert!(parse_time(b"2026-11-23T00:14:56Z").is_ok());
        assert!(parse_time(b"2026-11-23T00:14:56.123456Z").is_ok());
        assert!(parse_time(b"yesterday").is_err());
    }
}
