//! Scanning: walk the v2 tree once, classify every entry by the layout's path grammar, and read
//! the link files and upload metadata.
//!
//! The scan never follows symlinks, never hashes and never parses manifests. What it cannot place
//! in the layout becomes a [`Finding`]; normal leftovers of the registry (empty shard, revision
//! and layer directories, empty `_uploads`) are counted, not reported.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use rayon::prelude::*;
use walkdir::WalkDir;

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::findings::{Finding, Kind};
use crate::fsutil::{Bounded, Dir, read_small};
use crate::layout::{self, RepoName, Root, TagName, V2};

/// A link file is a digest; anything larger than this is garbage and is not read whole.
const LINK_LIMIT: u64 = 1024;

/// A blob in the blob store.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Size of `data` in bytes.
    pub size: u64,
    /// Modification time of `data` (the push time).
    pub mtime: Option<SystemTime>,
    /// Whether `data` is a regular file.
    pub is_file: bool,
    /// Whether `size`, `mtime` and `is_file` come from a `stat` ([`Depth::Names`] skips it).
    pub stat: bool,
}

/// Why a link file gave no digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// The content is not a well-formed digest.
    Malformed(String),
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
    pub index: BTreeMap<Digest, Link>,
}

/// An unfinished upload under `_uploads/<id>/`.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// The upload id (directory name).
    pub id: String,
    /// Size of `data`, if present.
    pub size: u64,
    /// `startedat`: `None` when absent, `Some(Err)` when unparseable.
    pub started: Option<Result<SystemTime, String>>,
}

/// A repository directory (one with `_manifests`, `_layers` or `_uploads`).
#[derive(Debug, Clone)]
pub struct Repo {
    /// The name (the path below `repositories/`).
    pub name: RepoName,
    /// Whether `_manifests` exists (what makes the registry list it in the catalog).
    pub has_manifests: bool,
    /// `_layers` links keyed by the digest in their path.
    pub layers: BTreeMap<Digest, Link>,
    /// Manifest revision links keyed by the digest in their path.
    pub revisions: BTreeMap<Digest, Link>,
    /// Tags keyed by name.
    pub tags: BTreeMap<TagName, Tag>,
    /// Unfinished uploads keyed by id.
    pub uploads: BTreeMap<String, Upload>,
}

impl Repo {
    fn new(name: RepoName) -> Self {
        Repo {
            name,
            has_manifests: false,
            layers: BTreeMap::new(),
            revisions: BTreeMap::new(),
            tags: BTreeMap::new(),
            uploads: BTreeMap::new(),
        }
    }
}

/// Everything the scan found.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Blobs stored at their proper place, keyed by digest.
    pub blobs: BTreeMap<Digest, Blob>,
    /// Repositories keyed by name.
    pub repos: BTreeMap<RepoName, Repo>,
    /// What could not be placed in the layout.
    pub findings: Vec<Finding>,
    /// `blobs` as a hash map, built on first use (the graph and gc's marking look up every
    /// reference and link); an inventory is not changed once a scan has made it.
    lookup: std::sync::OnceLock<rustc_hash::FxHashMap<Digest, Blob>>,
}

impl Inventory {
    /// The blob `d`, by hash lookup.
    pub fn blob(&self, d: &Digest) -> Option<&Blob> {
        self.lookup
            .get_or_init(|| self.blobs.iter().map(|(d, b)| (*d, b.clone())).collect())
            .get(d)
    }

    /// Total size of all blobs.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.values().map(|b| b.size).sum()
    }
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

/// Scans the tree below `root`.
///
/// # Errors
/// [`Error::Io`] when `docker/registry/v2` itself cannot be listed. Everything below it that
/// cannot be read becomes a finding.
pub fn scan(root: &Root, depth: Depth) -> Result<Inventory> {
    let mut inv = Inventory::default();
    let v2 = root.v2();
    let top = read_dir_sorted(v2).map_err(|e| Error::io(v2, e))?;
    let (mut blobs, mut repos) = (false, false);
    for (name, ft) in top {
        let rel = format!("{V2}/{name}");
        if ft.is_symlink() {
            inv.findings.push(symlink_finding(root, &rel));
        } else if name == "blobs" && ft.is_dir() {
            blobs = true;
        } else if name == "repositories" && ft.is_dir() {
            repos = true;
        } else {
            inv.findings.push(unknown(&rel, ft.is_dir()));
        }
    }
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
    inv.blobs = b.blobs;
    inv.findings.extend(b.findings);
    inv.repos = r.repos;
    inv.findings.extend(r.findings);
    Ok(inv)
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
    let target = std::fs::read_link(root.abs(rel))
        .map(|t| t.display().to_string())
        .unwrap_or_else(|_| "?".into());
    Finding::new(
        Kind::Symlink,
        format!("symlink to {target:?}; regfsck does not follow symlinks"),
    )
    .path(rel)
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<(String, std::fs::FileType)>> {
    Ok(read_dir_entries(dir)?
        .into_iter()
        .map(|(n, t, _)| (n, t))
        .collect())
}

/// A directory's entries, sorted by name; each `DirEntry` stats relative to its directory.
fn read_dir_entries(
    dir: &Path,
) -> std::io::Result<Vec<(String, std::fs::FileType, std::fs::DirEntry)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        v.push((
            e.file_name().to_string_lossy().into_owned(),
            e.file_type()?,
            e,
        ));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

fn io_finding(kind: Kind, rel: &str, e: &std::io::Error) -> Finding {
    Finding::new(kind, format!("cannot read: {e}")).path(rel)
}

/// `blobs/<alg>/<hh>/<hex>/data`: fixed depth, so shards are listed in parallel.
fn scan_blobs(root: &Root, inv: &mut Inventory, depth: Depth) {
    let blobs_rel = format!("{V2}/blobs");
    let algs = match read_dir_sorted(&root.abs(&blobs_rel)) {
        Ok(v) => v,
        Err(e) => {
            inv.findings
                .push(io_finding(Kind::UnknownEntry, &blobs_rel, &e));
            return;
        }
    };
    let mut shards = Vec::new();
    for (alg_name, ft) in algs {
        let rel = format!("{blobs_rel}/{alg_name}");
        if ft.is_symlink() {
            inv.findings.push(symlink_finding(root, &rel));
            continue;
        }
        let Some(alg) = Algorithm::from_name(&alg_name).filter(|_| ft.is_dir()) else {
            inv.findings.push(unknown(&rel, ft.is_dir()));
            continue;
        };
        match read_dir_sorted(&root.abs(&rel)) {
            Ok(v) => {
                for (shard, ft) in v {
                    shards.push((alg, format!("{rel}/{shard}"), shard, ft));
                }
            }
            Err(e) => inv.findings.push(io_finding(Kind::UnknownEntry, &rel, &e)),
        }
    }
    let results: Vec<ShardScan> = shards
        .par_iter()
        .map(|(alg, rel, shard, ft)| scan_shard(root, *alg, rel, shard, ft, depth))
        .collect();
    let mut all = Vec::with_capacity(results.iter().map(|r| r.0.len()).sum());
    for (blobs, findings) in results {
        all.extend(blobs);
        inv.findings.extend(findings);
    }
    // Built in one go from sorted input (shards in order, names sorted within each).
    if inv.blobs.is_empty() {
        inv.blobs = all.into_iter().collect();
    } else {
        inv.blobs.extend(all);
    }
}

/// What one shard directory holds: its blobs and what could not be placed.
type ShardScan = (Vec<(Digest, Blob)>, Vec<Finding>);

fn scan_shard(
    root: &Root,
    alg: Algorithm,
    rel: &str,
    shard: &str,
    ft: &std::fs::FileType,
    depth: Depth,
) -> ShardScan {
    let mut blobs = Vec::new();
    let mut findings = Vec::new();
    if ft.is_symlink() {
        findings.push(symlink_finding(root, rel));
        return (blobs, findings);
    }
    let shard_ok = ft.is_dir()
        && shard.len() == 2
        && shard
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if !shard_ok {
        findings.push(unknown(rel, ft.is_dir()));
        return (blobs, findings);
    }
    let entries = match read_dir_sorted(&root.abs(rel)) {
        Ok(v) => v,
        Err(e) => {
            findings.push(io_finding(Kind::UnknownEntry, rel, &e));
            return (blobs, findings);
        }
    };
    for (hex, ft) in entries {
        if ft.is_symlink() {
            findings.push(symlink_finding(root, &format!("{rel}/{hex}")));
            continue;
        }
        let digest = match Digest::from_parts(alg.name(), &hex) {
            Ok(d) if ft.is_dir() => d,
            _ => {
                findings.push(unknown(&format!("{rel}/{hex}"), ft.is_dir()));
                continue;
            }
        };
        let misplaced = &hex[..2] != shard;
        if depth == Depth::Names && !misplaced {
            blobs.push((
                digest,
                Blob {
                    size: 0,
                    mtime: None,
                    is_file: true,
                    stat: false,
                },
            ));
            continue;
        }
        let dir_rel = format!("{rel}/{hex}");
        if depth == Depth::Fast && !misplaced {
            // Stat <hex>/data directly instead of listing the directory.
            let p = format!("{dir_rel}/data");
            match std::fs::symlink_metadata(root.abs(&p)) {
                Ok(m) if m.file_type().is_symlink() => {
                    findings.push(symlink_finding(root, &p).digest(digest));
                    findings.push(no_data(digest, &dir_rel));
                }
                Ok(m) => blobs.push((
                    digest,
                    Blob {
                        size: m.len(),
                        mtime: m.modified().ok(),
                        is_file: m.is_file(),
                        stat: true,
                    },
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    findings.push(no_data(digest, &dir_rel));
                }
                Err(e) => findings.push(io_finding(Kind::BlobUnreadable, &p, &e).digest(digest)),
            }
            continue;
        }
        let children = match read_dir_entries(&root.abs(&dir_rel)) {
            Ok(v) => v,
            Err(e) => {
                findings.push(io_finding(Kind::BlobUnreadable, &dir_rel, &e).digest(digest));
                continue;
            }
        };
        let mut has_data = false;
        for (name, ft, dirent) in children {
            let p = format!("{dir_rel}/{name}");
            if ft.is_symlink() {
                findings.push(symlink_finding(root, &p).digest(digest));
            } else if name == "data" {
                has_data = true;
                if misplaced {
                    findings.push(
                        Finding::new(
                            Kind::BlobWrongShard,
                            format!(
                                "blob stored under shard {shard:?}, belongs under {:?}; the registry cannot find it",
                                &hex[..2]
                            ),
                        )
                        .digest(digest)
                        .path(p),
                    );
                    continue;
                }
                match dirent.metadata() {
                    Ok(m) => {
                        blobs.push((
                            digest,
                            Blob {
                                size: m.len(),
                                mtime: m.modified().ok(),
                                is_file: m.is_file(),
                                stat: true,
                            },
                        ));
                    }
                    Err(e) => {
                        findings.push(io_finding(Kind::BlobUnreadable, &p, &e).digest(digest))
                    }
                }
            } else if name.ends_with(".tmp") {
                findings.push(temp_file(&p));
            } else {
                findings.push(unknown(&p, ft.is_dir()));
            }
        }
        if !has_data {
            findings.push(no_data(digest, &dir_rel));
        }
    }
    (blobs, findings)
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

fn read_link(abs: &Path) -> Link {
    link_from(read_small(abs, LINK_LIMIT).map(|(b, meta)| (b, meta.modified().ok())))
}

/// The first component of `rel` (below `v2`) that is a symlink, or
/// `rel` itself when none is found (the error came from elsewhere).
fn first_symlink(root: &Root, rel: &str) -> String {
    let mut prefix = String::new();
    for part in rel.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if prefix.len() > V2.len()
            && std::fs::symlink_metadata(root.abs(&prefix)).is_ok_and(|m| m.is_symlink())
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

/// Parses a link file's content, strictly as the registry does.
pub fn parse_link(bytes: &[u8]) -> Result<Digest, LinkProblem> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| LinkProblem::Malformed(format!("not text: {:?}", preview(bytes))))?;
    text.parse::<Digest>()
        .map_err(|e| LinkProblem::Malformed(format!("{e}: {:?}", preview(bytes))))
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
    let base = root.abs(&format!("{V2}/repositories"));
    let (specials, findings) = walk_namespaces(root, &base, &[]);
    inv.findings.extend(findings);
    let parts: Vec<(Repo, Vec<Finding>)> = specials
        .par_iter()
        .map(|sp| scan_special(root, &base, sp, depth))
        .collect();
    for (part, findings) in parts {
        inv.findings.extend(findings);
        let repo = inv
            .repos
            .entry(part.name.clone())
            .or_insert_with(|| Repo::new(part.name.clone()));
        repo.has_manifests |= part.has_manifests;
        // Each part fills one of these; moving a map is free, extending one inserts each entry.
        merge(&mut repo.layers, part.layers);
        merge(&mut repo.revisions, part.revisions);
        merge(&mut repo.tags, part.tags);
        merge(&mut repo.uploads, part.uploads);
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

/// Walks `repositories/<comps...>` in parallel, stopping at every `_`-prefixed entry: the
/// `_manifests`, `_layers` and `_uploads` directories found, and what is not part of the
/// layout.
fn walk_namespaces(root: &Root, base: &Path, comps: &[String]) -> (Vec<Special>, Vec<Finding>) {
    let rel_of = |comps: &[String]| {
        if comps.is_empty() {
            format!("{V2}/repositories")
        } else {
            format!("{V2}/repositories/{}", comps.join("/"))
        }
    };
    let mut dir = base.to_path_buf();
    dir.extend(comps);
    let entries = match read_dir_sorted(&dir) {
        Ok(v) => v,
        Err(e) => {
            return (
                Vec::new(),
                vec![
                    Finding::new(Kind::LinkUnreadable, format!("cannot read: {e}"))
                        .path(rel_of(comps)),
                ],
            );
        }
    };
    let mut specials = Vec::new();
    let mut findings = Vec::new();
    let mut subdirs = Vec::new();
    for (name, ft) in entries {
        let mut child = comps.to_vec();
        child.push(name.clone());
        let rel = rel_of(&child);
        if ft.is_symlink() {
            findings.push(symlink_finding(root, &rel));
        } else if !name.starts_with('_') {
            // A namespace or repository directory; files here are strays.
            if ft.is_dir() {
                subdirs.push(child);
            } else {
                findings.push(unknown(&rel, false));
            }
        } else if comps.is_empty()
            || !ft.is_dir()
            || !matches!(name.as_str(), "_manifests" | "_layers" | "_uploads")
        {
            findings.push(unknown(&rel, ft.is_dir()));
        } else {
            specials.push(Special {
                repo: comps.join("/"),
                comps: child,
            });
        }
    }
    let below: Vec<(Vec<Special>, Vec<Finding>)> = subdirs
        .par_iter()
        .map(|c| walk_namespaces(root, base, c))
        .collect();
    for (s, f) in below {
        specials.extend(s);
        findings.extend(f);
    }
    (specials, findings)
}

fn components(base: &Path, p: &Path) -> Vec<String> {
    p.strip_prefix(base)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

fn walk_error(root: &Root, e: &walkdir::Error) -> Finding {
    let rel = e
        .path()
        .and_then(|p| p.strip_prefix(root.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{V2}/repositories"));
    let msg = e
        .io_error()
        .map(|e| e.to_string())
        .unwrap_or_else(|| e.to_string());
    Finding::new(Kind::LinkUnreadable, format!("cannot read: {msg}")).path(rel)
}

fn scan_special(root: &Root, base: &Path, sp: &Special, depth: Depth) -> (Repo, Vec<Finding>) {
    let special = sp.comps[sp.comps.len() - 1].as_str();
    if special == "_uploads" {
        return scan_uploads(root, base, sp);
    }
    let mut repo = Repo::new(RepoName::from_disk(&sp.repo));
    let mut findings = Vec::new();
    let rel = format!("{V2}/repositories/{}", sp.comps.join("/"));
    let mut w = LinkWalk {
        root,
        depth,
        findings: &mut findings,
        repo: &repo.name.clone(),
    };
    if special == "_layers" {
        repo.layers = w.name_tree(&rel);
    } else {
        repo.has_manifests = true;
        for (name, ft) in w.list(&rel) {
            let p = format!("{rel}/{name}");
            match name.as_str() {
                "revisions" if ft.is_dir() => repo.revisions = w.link_tree(&p, true),
                "tags" if ft.is_dir() => repo.tags = w.tags(&p),
                _ => w.other(&p, &name, ft),
            }
        }
    }
    (repo, findings)
}

/// Reads the link trees of one repository: `<alg>/<hex>/link` below `_layers`, `revisions`
/// and each tag's `index`, and the tags' `current/link`.
struct LinkWalk<'a> {
    root: &'a Root,
    depth: Depth,
    findings: &'a mut Vec<Finding>,
    repo: &'a RepoName,
}

impl LinkWalk<'_> {
    /// Lists a directory; unreadable ones become findings.
    fn list(&mut self, rel: &str) -> Vec<(String, std::fs::FileType)> {
        match read_dir_sorted(&self.root.abs(rel)) {
            Ok(v) => v,
            Err(e) => {
                self.findings
                    .push(io_finding(Kind::LinkUnreadable, rel, &e).repo(self.repo));
                Vec::new()
            }
        }
    }

    /// Reports an entry that is not part of the layout (or a symlink, or a temp file).
    fn other(&mut self, rel: &str, name: &str, ft: std::fs::FileType) {
        let f = if ft.is_symlink() {
            symlink_finding(self.root, rel)
        } else if name.ends_with(".tmp") && !ft.is_dir() {
            temp_file(rel)
        } else {
            unknown(rel, ft.is_dir())
        };
        self.findings.push(f.repo(self.repo));
    }

    /// Reads `<dir>/link`: `None` when there is none (a normal leftover after a delete).
    fn link_in(&mut self, dir: &str, revisions: bool) -> Option<Link> {
        if self.depth.fast() {
            return self.fast_link(None, dir, "link");
        }
        let mut link = None;
        for (name, ft) in self.list(dir) {
            let p = format!("{dir}/{name}");
            match name.as_str() {
                "link" if !ft.is_symlink() => link = Some(read_link(&self.root.abs(&p))),
                // Schema1-era signature links: ignored by the registry, left alone.
                "signatures" if revisions && ft.is_dir() => {}
                _ => self.other(&p, &name, ft),
            }
        }
        link
    }

    /// Reads `<base_rel>/<below>` without a stat, relative to `base` (the directory
    /// `base_rel`, opened once for all its links: a short path walk for each) when given.
    /// `None` when there is no such file (a normal leftover after a delete).
    fn fast_link(&mut self, base: Option<&Dir>, base_rel: &str, below: &str) -> Option<Link> {
        let read = match base {
            Some(d) => d.read_small(below, LINK_LIMIT),
            None => self
                .root
                .read_small(&format!("{base_rel}/{below}"), LINK_LIMIT),
        };
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            // A symlink on the way (`current` itself, say) or the link itself.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                let at = first_symlink(self.root, &format!("{base_rel}/{below}"));
                self.findings
                    .push(symlink_finding(self.root, &at).repo(self.repo));
                None
            }
            r => Some(link_from(r.map(|b| (b, None)))),
        }
    }

    /// `<rel>/<alg>/<hex>/link`, keyed by the digest in the path.
    fn link_tree(&mut self, rel: &str, revisions: bool) -> BTreeMap<Digest, Link> {
        self.link_tree_with(rel, revisions, false)
    }

    /// A link tree whose link contents are not needed in [`Depth::Fast`]: `_layers` and tag
    /// index entries.
    fn name_tree(&mut self, rel: &str) -> BTreeMap<Digest, Link> {
        self.link_tree_with(rel, false, self.depth.fast())
    }

    fn link_tree_with(
        &mut self,
        rel: &str,
        revisions: bool,
        names_only: bool,
    ) -> BTreeMap<Digest, Link> {
        let mut out = BTreeMap::new();
        for (alg, ft) in self.list(rel) {
            let alg_rel = format!("{rel}/{alg}");
            if !ft.is_dir() || Algorithm::from_name(&alg).is_none() {
                self.other(&alg_rel, &alg, ft);
                continue;
            }
            let base = if self.depth.fast() && !names_only {
                self.root.open_dir(&alg_rel).ok()
            } else {
                None
            };
            for (hex, ft) in self.list(&alg_rel) {
                let p = || format!("{alg_rel}/{hex}");
                match Digest::from_parts(&alg, &hex) {
                    Ok(d) if ft.is_dir() && names_only => {
                        out.insert(
                            d,
                            Link {
                                target: Ok(d),
                                mtime: None,
                            },
                        );
                    }
                    Ok(d) if ft.is_dir() && base.is_some() => {
                        if let Some(l) =
                            self.fast_link(base.as_ref(), &alg_rel, &format!("{hex}/link"))
                        {
                            out.insert(d, l);
                        }
                    }
                    Ok(d) if ft.is_dir() => {
                        if let Some(l) = self.link_in(&p(), revisions) {
                            out.insert(d, l);
                        }
                    }
                    _ => self.other(&p(), &hex, ft),
                }
            }
        }
        out
    }

    /// `tags/<tag>/{current/link, index/<alg>/<hex>/link}`.
    fn tags(&mut self, rel: &str) -> BTreeMap<TagName, Tag> {
        let mut out = BTreeMap::new();
        let base = if self.depth.fast() {
            self.root.open_dir(rel).ok()
        } else {
            None
        };
        for (name, ft) in self.list(rel) {
            let p = format!("{rel}/{name}");
            if !ft.is_dir() {
                self.other(&p, &name, ft);
                continue;
            }
            let tag = match TagName::parse(&name) {
                Ok(t) => t,
                Err(e) => {
                    self.findings.push(
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
                t.current = self.fast_link(base.as_ref(), rel, &format!("{name}/current/link"));
            } else {
                for (child, ft) in self.list(&p) {
                    let cp = format!("{p}/{child}");
                    match child.as_str() {
                        "current" if ft.is_dir() => t.current = self.link_in(&cp, false),
                        "index" if ft.is_dir() => t.index = self.link_tree(&cp, false),
                        _ => self.other(&cp, &child, ft),
                    }
                }
            }
            out.insert(tag, t);
        }
        out
    }
}

fn scan_uploads(root: &Root, base: &Path, sp: &Special) -> (Repo, Vec<Finding>) {
    let mut repo = Repo::new(RepoName::from_disk(&sp.repo));
    let mut findings = Vec::new();
    let special = "_uploads";
    let dir = base.join(sp.comps.join("/"));
    let mut it = WalkDir::new(&dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = it.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                findings.push(walk_error(root, &e));
                continue;
            }
        };
        let rest = components(&dir, entry.path());
        let rel = format!(
            "{V2}/repositories/{}/{}",
            sp.comps.join("/"),
            rest.join("/")
        );
        let rel = rel.trim_end_matches('/').to_string();
        let ft = entry.file_type();
        if ft.is_symlink() {
            findings.push(symlink_finding(root, &rel));
            continue;
        }
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        let skip = classify(
            &mut repo,
            special,
            &rest,
            ft.is_dir(),
            entry.path(),
            &rel,
            &mut findings,
        );
        if skip && ft.is_dir() {
            it.skip_current_dir();
        }
    }
    (repo, findings)
}

/// Places one entry of a repository's `_uploads`; returns true when a directory should not be
/// descended into.
#[allow(clippy::too_many_arguments)]
fn classify(
    repo: &mut Repo,
    special: &str,
    rest: &[&str],
    is_dir: bool,
    abs: &Path,
    rel: &str,
    findings: &mut Vec<Finding>,
) -> bool {
    match (special, rest, is_dir) {
        ("_uploads", [], true) => {}
        ("_uploads", [id], true) => {
            repo.uploads
                .entry(id.to_string())
                .or_insert_with(|| Upload {
                    id: id.to_string(),
                    ..Upload::default()
                });
        }
        ("_uploads", [id, "data"], false) => {
            if let Some(u) = repo.uploads.get_mut(*id) {
                u.size = std::fs::symlink_metadata(abs).map(|m| m.len()).unwrap_or(0);
            }
        }
        ("_uploads", [id, "startedat"], false) => {
            if let Some(u) = repo.uploads.get_mut(*id) {
                u.started = Some(match read_small(abs, LINK_LIMIT) {
                    Ok((Bounded::Content(b), _)) => parse_time(&b),
                    Ok((Bounded::TooLarge { len }, _)) => Err(format!("{len} bytes, not a time")),
                    Err(e) => Err(e.to_string()),
                });
            }
        }
        ("_uploads", [_, "hashstates", ..], _) => {}
        (_, [.., last], false) if last.ends_with(".tmp") => findings.push(temp_file(rel)),
        _ => {
            findings.push(unknown(rel, is_dir).repo(&repo.name));
            return true;
        }
    }
    false
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
