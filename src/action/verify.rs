//! `verify`: hash every blob in parallel and check the whole graph.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use rayon::prelude::*;
use serde::Serialize;

use crate::digest::{Digest, HashError};
use crate::error::Result;
use crate::findings::{Finding, Kind, Severity};
use crate::graph::{self, Graph};
use crate::layout::{self, Root};
use crate::progress::Progress;
use crate::scan::{self, Inventory};

/// Which part of the blobs a verify hashes: subset `n` of `m` (1-based), by digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subset {
    /// Which one, 1..=m.
    pub n: u64,
    /// Of how many.
    pub m: u64,
}

impl Subset {
    /// Whether blob `d` is in this subset: its first eight bytes, as a number, modulo `m`
    /// (digests are uniform, so the subsets are even, and stable from run to run).
    pub fn holds(&self, d: &Digest) -> bool {
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.bytes()[..8]);
        u64::from_be_bytes(b) % self.m == self.n - 1
    }
}

impl std::str::FromStr for Subset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: want N/M with 1 <= N <= M (e.g. 3/30)");
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let (n, m): (u64, u64) = (n.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if n == 0 || m == 0 || n > m {
            return Err(bad());
        }
        Ok(Subset { n, m })
    }
}

impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.n, self.m)
    }
}

impl serde::Serialize for Subset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What `verify` checks.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Hash every blob (false: structure only).
    pub content: bool,
    /// The time uploads' ages are measured against.
    pub now: SystemTime,
    /// Hash only this subset of the blobs.
    pub subset: Option<Subset>,
    /// Threads hashing (default: one per core).
    pub hash_threads: Option<usize>,
}

/// The numbers a verify report ends with.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Blobs in the blob store (the number checked).
    pub blobs: u64,
    /// Their total size.
    pub bytes: u64,
    /// Blobs whose content was hashed.
    pub blobs_hashed: u64,
    /// Repositories, as the registry's catalog counts them (directories with `_layers`).
    pub repositories: u64,
    /// Tags.
    pub tags: u64,
    /// Distinct manifests linked as revisions.
    pub manifests: u64,
    /// Blobs no manifest refers to (what gc would remove).
    pub orphan_blobs: u64,
    /// Their total size.
    pub orphan_bytes: u64,
    /// Error findings.
    pub errors: u64,
    /// Warning findings.
    pub warnings: u64,
    /// Info findings.
    pub infos: u64,
    /// Whether blob content was checked (every blob's).
    pub content_checked: bool,
    /// The subset of blobs whose content was checked (`--read-data-subset N/M`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_subset: Option<Subset>,
    /// Whether the run was interrupted before it finished.
    pub interrupted: bool,
    /// Whether the scan could see the whole layout (false: a directory could not be listed,
    /// or a symlink regfsck does not follow hides part of the repositories tree; exit 8).
    pub complete: bool,
}

/// The result of `verify`.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Counts.
    pub summary: Summary,
    /// Findings, sorted.
    pub findings: Vec<Finding>,
    /// For error findings, the tags (`repository:tag`, sorted) whose pulls they break: the
    /// tag itself for a broken tag; else every tag (of the finding's repository, or of every
    /// repository for a blob-level finding such as `blob_corrupt`) whose manifest is, or
    /// refers to (configs, layers, index children, recursively), the finding's manifest or
    /// blob. In JSON, each finding's `breaks` (absent when empty).
    pub breaks: BTreeMap<Finding, Vec<String>>,
}

impl VerifyReport {
    /// The tags `f` breaks (see [`VerifyReport::breaks`]).
    pub fn breaks(&self, f: &Finding) -> &[String] {
        self.breaks.get(f).map_or(&[], Vec::as_slice)
    }
}

impl Serialize for VerifyReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Reported<'a> {
            #[serde(flatten)]
            finding: &'a Finding,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            breaks: &'a [String],
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            summary: &'a Summary,
            findings: Vec<Reported<'a>>,
        }
        Doc {
            summary: &self.summary,
            findings: self
                .findings
                .iter()
                .map(|f| Reported {
                    finding: f,
                    breaks: self.breaks(f),
                })
                .collect(),
        }
        .serialize(s)
    }
}

/// The tags each error finding breaks (see [`VerifyReport::breaks`]): one pass over the tags
/// ([`Graph::tags_needing`], as repair names what stays broken).
fn breaks(graph: &Graph, findings: &[Finding]) -> BTreeMap<Finding, Vec<String>> {
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let wanted: BTreeSet<Digest> = errors
        .iter()
        .filter_map(|f| f.manifest.or(f.digest))
        .collect();
    let needing = graph.tags_needing(&wanted, None);
    let mut out = BTreeMap::new();
    for f in errors {
        let mut tags: BTreeSet<String> = BTreeSet::new();
        if let (Some(r), Some(t)) = (&f.repository, &f.tag) {
            tags.insert(format!("{r}:{t}"));
        }
        if let Some(hit) = f.manifest.or(f.digest).and_then(|d| needing.get(&d)) {
            tags.extend(
                hit.iter()
                    .filter(|(r, _)| f.repository.as_deref().is_none_or(|fr| fr == r.as_str()))
                    .map(|(r, t)| format!("{r}:{t}")),
            );
        }
        if !tags.is_empty() {
            out.insert(f.clone(), tags.into_iter().collect());
        }
    }
    out
}

/// Checks the registry below `root`; the scan and the manifest reads on `io` when given (the
/// deep pool of a cold cache), the hashing on a pool of its own.
///
/// # Errors
/// Only operational errors (the v2 directory cannot be listed). Damage is in the findings.
pub fn verify(
    root: &Root,
    opts: &VerifyOptions,
    io: Option<&rayon::ThreadPool>,
    progress: &dyn Progress,
    interrupt: &AtomicBool,
) -> Result<VerifyReport> {
    progress.phase("scanning");
    let inv = on(io, || scan::scan(root, scan::Depth::Thorough))?;
    progress.phase("checking links, tags and manifests");
    let graph = on(io, || graph::build(root, &inv, opts.now));
    let mut findings = inv.findings.clone();
    findings.extend(graph.findings.iter().cloned());
    findings.extend(pending_jobs(root));
    findings.extend(structural_blob_checks(&inv));
    let mut hashed = 0;
    let mut interrupted = false;
    if opts.content {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(n) = opts.hash_threads {
            b = b.num_threads(n);
        }
        let pool = b
            .build()
            .map_err(|e| crate::error::Error::ThreadPool(e.to_string()))?;
        let (f, n, i) = pool.install(|| hash_blobs(root, &inv, opts.subset, progress, interrupt));
        findings.extend(f);
        hashed = n;
        interrupted = i;
    }
    Ok(report(
        &inv,
        &graph,
        findings,
        hashed,
        (opts.content, opts.subset),
        interrupted,
    ))
}

/// `f` on `pool` when given, else on the current one.
fn on<T: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Interrupted regfsck jobs waiting in the trash.
fn pending_jobs(root: &Root) -> Vec<Finding> {
    match crate::jobs::bins(root) {
        Ok(bins) => bins
            .into_iter()
            .filter_map(|b| {
                let job = b.job?;
                Some(
                    Finding::new(
                        Kind::PendingJob,
                        format!(
                            "an interrupted {} waits here; the next real run of gc, prune or rm-repo finishes it",
                            job.command()
                        ),
                    )
                    .path(b.rel),
                )
            })
            .collect(),
        Err(e) => vec![
            Finding::new(
                Kind::PendingJob,
                format!("an interrupted regfsck job whose record cannot be read: {e}"),
            )
            .severity(Severity::Warning)
            .path(crate::jobs::TRASH),
        ],
    }
}

fn structural_blob_checks(inv: &Inventory) -> Vec<Finding> {
    let mut out = Vec::new();
    for (d, b) in &inv.blobs {
        if !b.is_file() {
            out.push(
                Finding::new(Kind::BlobNotAFile, "blob data is not a regular file")
                    .digest(*d)
                    .path(layout::blob_data(d)),
            );
        } else if b.size() == 0 && *d != Digest::empty(d.algorithm()) {
            out.push(
                Finding::new(Kind::BlobEmpty, "blob data file is empty")
                    .digest(*d)
                    .path(layout::blob_data(d)),
            );
        }
    }
    out
}

/// Hashes every regular, non-empty blob; returns findings, blobs hashed, and whether it was
/// interrupted.
fn hash_blobs(
    root: &Root,
    inv: &Inventory,
    subset: Option<Subset>,
    progress: &dyn Progress,
    interrupt: &AtomicBool,
) -> (Vec<Finding>, u64, bool) {
    let mut work: Vec<(&Digest, u64)> = inv
        .blobs
        .iter()
        .filter(|(_, b)| b.is_file() && b.size() > 0)
        .filter(|(d, _)| subset.is_none_or(|s| s.holds(d)))
        .map(|(d, b)| (d, b.size()))
        .collect();
    // Largest first, so the last blobs to finish are small ones (better load balance).
    work.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total: u64 = work.iter().map(|w| w.1).sum();
    progress.start("hashing", total);
    let items = work.len() as u64;
    let results: Vec<Option<Finding>> = work
        .par_iter()
        .map(|(d, _)| {
            if interrupt.load(Ordering::Relaxed) {
                return None;
            }
            let rel = layout::blob_data(d);
            let result = root
                .storage()
                .hash(&rel, d.algorithm(), interrupt, &|n| progress.inc(n));
            progress.item_done(items);
            match result {
                Ok((actual, _)) if actual == **d => None,
                Ok((actual, _)) => Some(
                    Finding::new(Kind::BlobCorrupt, format!("content hashes to {actual}"))
                        .digest(**d)
                        .path(rel),
                ),
                Err(HashError::Interrupted) => None,
                Err(HashError::Io(e)) => Some(
                    Finding::new(Kind::BlobUnreadable, format!("cannot read: {e}"))
                        .digest(**d)
                        .path(rel),
                ),
            }
        })
        .collect();
    progress.finish();
    let interrupted = interrupt.load(Ordering::Relaxed);
    let hashed = if interrupted { 0 } else { work.len() as u64 };
    (results.into_iter().flatten().collect(), hashed, interrupted)
}

fn report(
    inv: &Inventory,
    graph: &Graph,
    mut findings: Vec<Finding>,
    hashed: u64,
    (content, subset): (bool, Option<Subset>),
    interrupted: bool,
) -> VerifyReport {
    findings.sort();
    findings.dedup();
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count() as u64;
    let orphans: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == Kind::OrphanBlob)
        .collect();
    let summary = Summary {
        blobs: inv.blobs.len() as u64,
        bytes: inv.blob_bytes(),
        blobs_hashed: hashed,
        repositories: inv.repos.values().filter(|r| r.has_layers).count() as u64,
        tags: graph.repos.values().map(|r| r.tags.len() as u64).sum(),
        manifests: graph.manifests.len() as u64,
        orphan_blobs: orphans.len() as u64,
        orphan_bytes: orphans.iter().filter_map(|f| f.size).sum(),
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
        content_checked: content && !interrupted && subset.is_none(),
        content_subset: subset.filter(|_| content && !interrupted),
        interrupted,
        complete: inv.blind_spots().is_none(),
    };
    VerifyReport {
        summary,
        breaks: breaks(graph, &findings),
        findings,
    }
}
