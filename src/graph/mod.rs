//! The reference graph: tags → revisions → manifests → configs, layers, children, subjects,
//! resolved per repository, with every inconsistency as a finding.
//!
//! A manifest is parsed once per digest (manifests are content-addressed), in parallel; each
//! repository then checks its own links against the blob store and the parsed manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

pub mod manifest;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::digest::{Algorithm, Digest, DigestList, DigestMap, DigestSet};
use crate::findings::{Finding, Kind, Severity};
use crate::layout::{self, RepoName, Root, TagName};
use crate::scan::{BlobState, Inventory, Link, LinkProblem, Repo};
use crate::sorted::SortedMap;
use crate::storage::Bounded;
use manifest::{MAX_MANIFEST_SIZE, Manifest, Reference, Role};

mod layers;

pub use layers::LayerLinks;

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
    pub tags: SortedMap<TagName, TagTarget>,
    /// Manifests with a well-formed revision link.
    pub revisions: DigestList,
    /// Path digest → canonical digest of every well-formed `_layers` link.
    pub layers: LayerLinks,
    /// Manifests reachable from a tag (the tagged ones and their index children).
    pub tagged: DigestList,
    /// Where each of `revisions` is among the graph's manifests and in the blob store, looked
    /// up once for the checks and marks that visit them again (see [`Index::for_repo`]).
    pub(crate) revisions_at: RevisionsAt,
}

/// Positions of a repository's revisions (in `revisions` order): in the graph's manifests and
/// in the blob store; [`NOWHERE`] when not there.
#[derive(Debug, Clone, Default)]
pub(crate) struct RevisionsAt {
    /// The generations of the manifests and the blob store looked up in (positions are valid
    /// there only).
    generations: (u32, u32),
    revisions: DigestList,
    manifest: std::sync::Arc<[u32]>,
    blob: std::sync::Arc<[u32]>,
}

/// A position in [`RevisionsAt`] for "not there".
const NOWHERE: u32 = u32::MAX;

fn position(id: Option<usize>) -> u32 {
    id.and_then(|i| u32::try_from(i).ok()).unwrap_or(NOWHERE)
}

fn found(p: u32) -> Option<usize> {
    (p != NOWHERE).then_some(p as usize)
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
    pub manifests: DigestMap<ManifestState>,
    /// Per repository.
    pub repos: BTreeMap<RepoName, RepoGraph>,
    /// Blobs that gc (without `-m`) keeps: every revision of every repository and what it
    /// refers to (configs, layers, index children, through digest aliases), and what links
    /// regfsck cannot place refer to ([`Inventory::pinned`]).
    pub marked: DigestSet,
    /// Digest aliases: a `_layers/sha512/<hex>/link` holding `sha256:<canonical>` (a blob
    /// pushed under another algorithm is stored under its sha256). Alias → canonical, from
    /// every repository.
    pub aliases: FxHashMap<Digest, Digest>,
    /// [`Inventory::pinned`] and everything those manifests refer to.
    pub pinned: DigestSet,
    /// Whether the layout is a pull-through cache (layers are fetched on demand).
    pub cache: bool,
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
        out.extend(rg.layers.values());
        out.retain(|d| inv.blobs.contains_key(d));
        out
    }

    /// The canonical blob a reference `d` of repository `rg` reads: `d` itself when it is in
    /// the blob store, else the target of the repository's alias link, else of any alias.
    pub fn resolve(&self, inv: &Inventory, rg: &RepoGraph, d: &Digest) -> Digest {
        if inv.blob(d).is_some() {
            return *d;
        }
        rg.layers
            .get(d)
            .or_else(|| self.aliases.get(d).copied())
            .unwrap_or(*d)
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
                            if let Some(c) = self.aliases.get(&r.digest) {
                                out.insert(*c);
                            }
                        }
                        Role::Child => stack.push(r.digest),
                        Role::Subject => {}
                    }
                }
            }
        }
        out
    }

    /// For each of `wanted` (manifests or blobs), the tags whose pulls need it: every tag (of
    /// `repo` only, or of every repository) whose target is it or whose target's
    /// [`Graph::closure`] holds it, sorted by repository and tag. Each distinct tag target's
    /// closure is computed once.
    pub fn tags_needing(
        &self,
        wanted: &BTreeSet<Digest>,
        repo: Option<&RepoName>,
    ) -> BTreeMap<Digest, Vec<(RepoName, TagName)>> {
        let mut out: BTreeMap<Digest, Vec<(RepoName, TagName)>> = BTreeMap::new();
        if wanted.is_empty() {
            return out;
        }
        let mut needs: FxHashMap<Digest, Vec<Digest>> = FxHashMap::default();
        for (name, rg) in &self.repos {
            if repo.is_some_and(|r| r != name) {
                continue;
            }
            for (tag, t) in &rg.tags {
                let Some(m) = t.digest() else { continue };
                let hit = needs.entry(m).or_insert_with(|| {
                    self.closure(&m)
                        .into_iter()
                        .filter(|d| wanted.contains(d))
                        .collect()
                });
                for d in hit.iter() {
                    out.entry(*d).or_default().push((name.clone(), tag.clone()));
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

/// Manifests the graph names (tag targets, index children, and theirs) but did not parse,
/// because no revision link names them (an interrupted run removed it, or the layout is
/// damaged): read from the blob store in parallel batches, for the plans that follow them.
/// `None` where a manifest cannot be read or parsed.
pub fn unparsed_manifests(root: &Root, inv: &Inventory, g: &Graph) -> Unparsed {
    let children =
        |m: &Manifest| -> Vec<Digest> { m.refs(Role::Child).map(|r| r.digest).collect() };
    let mut out = Unparsed::new();
    let mut next: BTreeSet<Digest> = g
        .manifests
        .values()
        .filter_map(|m| match m {
            ManifestState::Parsed(m) => Some(children(m)),
            _ => None,
        })
        .flatten()
        .chain(g.repos.values().flat_map(RepoGraph::tag_targets))
        .filter(|d| !g.manifests.contains_key(d))
        .collect();
    while !next.is_empty() {
        let read: Vec<(Digest, Option<Manifest>)> = next
            .par_iter()
            .map(|d| match read_manifest(root, inv, d) {
                ManifestState::Parsed(m) => (*d, Some(m)),
                _ => (*d, None),
            })
            .collect();
        next = BTreeSet::new();
        for (d, m) in read {
            if let Some(m) = &m {
                next.extend(children(m));
            }
            out.insert(d, m);
        }
        next.retain(|d| !g.manifests.contains_key(d) && !out.contains_key(d));
    }
    out
}

/// What [`unparsed_manifests`] read.
pub type Unparsed = BTreeMap<Digest, Option<Manifest>>;

fn link_finding(kind_on_ok: Kind, problem: &LinkProblem, rel: String) -> Finding {
    match problem {
        LinkProblem::Malformed(m) => {
            Finding::new(kind_on_ok, format!("malformed link: {m}")).path(rel)
        }
        LinkProblem::Unreadable(m) => {
            Finding::new(Kind::LinkUnreadable, format!("cannot read link: {m}")).path(rel)
        }
        LinkProblem::Doubled(d) => Finding::new(
            Kind::LinkDoubled,
            format!("link holds {d} twice (the registry v3.0-3.1.1 on Azure writes this); the registry cannot read it"),
        )
        .path(rel),
    }
}

/// Sizes that descriptors declare and the stored blob disagrees with: blob → (declared size,
/// declaring manifest, its repository).
type Declared = BTreeMap<Digest, (u64, Digest, RepoName)>;

/// Hash lookups over the inventory and the parsed manifests: each repository's check looks
/// up every reference, tag and link, hundreds of thousands of lookups on a large registry.
pub(crate) struct Index<'a> {
    inv: &'a Inventory,
    manifests: &'a DigestMap<ManifestState>,
    /// Whether reading any manifest found its blob missing (rare: only then does
    /// [`Index::state`] look a digest up among the manifests too).
    any_missing: bool,
    /// Whether the scan stat'd any blob (a scan by names stats none: then no declared size
    /// can disagree with a stored one, and the checks read no blob's entry).
    any_stat: bool,
    /// One repository's revisions, looked up already.
    local: Option<RevisionsAt>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(inv: &'a Inventory, manifests: &'a DigestMap<ManifestState>) -> Self {
        let any_missing = manifests
            .values()
            .any(|m| matches!(m, ManifestState::Missing));
        let any_stat = inv.blobs.values().any(|b| b.stat());
        Index {
            inv,
            manifests,
            any_missing,
            any_stat,
            local: None,
        }
    }

    /// Looks each of `revisions` up once, among the manifests and in the blob store.
    pub(crate) fn revisions_at(&self, revisions: &DigestList) -> RevisionsAt {
        RevisionsAt {
            generations: (self.manifests.generation(), self.inv.blobs.generation()),
            revisions: revisions.clone(),
            manifest: (self.manifests.ids(revisions.as_slice()).into_iter())
                .map(position)
                .collect(),
            blob: (self.inv.blobs.ids(revisions.as_slice()).into_iter())
                .map(position)
                .collect(),
        }
    }

    /// This index, answering for `rg`'s revisions from what [`Index::revisions_at`] found: a
    /// repository's checks and marks look each of its manifests up several times, and on a
    /// store of millions each global lookup is a cache miss, where the repository's own list
    /// stays in cache.
    pub(crate) fn for_repo(&self, rg: &RepoGraph) -> Index<'a> {
        Index {
            inv: self.inv,
            manifests: self.manifests,
            any_missing: self.any_missing,
            any_stat: self.any_stat,
            local: (rg.revisions_at.generations
                == (self.manifests.generation(), self.inv.blobs.generation())
                && rg.revisions_at.generations.0 != 0)
                .then(|| rg.revisions_at.clone()),
        }
    }

    /// Reads the repository's manifests, their states and then their references, in two
    /// sweeps before its checks or marks read them one at a time. Reads that do not wait on
    /// each other overlap, where each check waits for its state and then its references in
    /// turn; on a store of millions each of those is a cache miss (bench/scale.sh).
    pub(crate) fn touch_local(&self) {
        let Some(l) = &self.local else { return };
        let parsed: Vec<&Manifest> = (l.manifest.iter().filter_map(|&p| found(p)))
            .filter_map(|p| match self.manifests.at(p).1 {
                ManifestState::Parsed(m) => Some(m),
                _ => None,
            })
            .collect();
        let mut sum = 0usize;
        for r in parsed.iter().flat_map(|m| m.references.iter()) {
            sum = sum.wrapping_add(r.digest.bytes()[0] as usize);
        }
        std::hint::black_box(sum);
    }

    /// Where `d` is in `revisions_at`, if it is one of the repository's revisions.
    fn local(&self, d: &Digest) -> Option<(&RevisionsAt, usize)> {
        let l = self.local.as_ref()?;
        let i = l.revisions.position(d)?;
        (i < l.manifest.len()).then_some((l, i))
    }

    /// The position of blob `d` in the blob store.
    pub(crate) fn blob_id(&self, d: &Digest) -> Option<usize> {
        match self.local(d) {
            Some((l, i)) => found(l.blob[i]),
            None => self.inv.blobs.id(d),
        }
    }

    /// Whether blob `d` is there, missing, or in a part of the store that could not be read:
    /// in the inventory and, if it was read as a manifest, not found missing then (a scan by
    /// names does not stat blobs).
    pub(crate) fn state(&self, d: &Digest) -> BlobState {
        self.state_and_blob(d).0
    }

    /// [`Index::state`] and the blob as scanned, in one lookup.
    pub(crate) fn state_and_blob(&self, d: &Digest) -> (BlobState, Option<&'a crate::scan::Blob>) {
        self.state_and_blob_at(d, None)
    }

    /// [`Index::state_and_blob`], with where `d` is in the blob store when that is known
    /// already (`Some(None)`: not there; see [`Manifest::resolved_blob`]).
    pub(crate) fn state_and_blob_at(
        &self,
        d: &Digest,
        at: Option<Option<usize>>,
    ) -> (BlobState, Option<&'a crate::scan::Blob>) {
        let b = at
            .unwrap_or_else(|| self.blob_id(d))
            .map(|i| self.inv.blobs.at(i).1);
        let state = match b {
            Some(_) => BlobState::Present,
            None => self.inv.blob_state(d),
        };
        let state = match state {
            BlobState::Present
                if self.any_missing && matches!(self.get(d), Some(ManifestState::Missing)) =>
            {
                BlobState::Absent
            }
            s => s,
        };
        (state, b)
    }

    /// The inventory it looks up in.
    pub(crate) fn inventory(&self) -> &'a Inventory {
        self.inv
    }

    /// What reading manifest `d` gave, if it was read.
    pub(crate) fn get(&self, d: &Digest) -> Option<&'a ManifestState> {
        match self.local(d) {
            Some((l, i)) => found(l.manifest[i]).map(|p| self.manifests.at(p).1),
            None => self.manifests.get(d),
        }
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

/// Builds the graph: parses the linked manifests, collects the digest aliases, checks every
/// repository, then the declared sizes, the pinned closure and (with `registry_marks`) what
/// gc without `-m` keeps.
fn build_with(root: &Root, inv: &Inventory, now: SystemTime, registry_marks: bool) -> Graph {
    build_from(root, inv, parse_linked(root, inv), now, registry_marks)
}

/// [`build_for_gc`] from manifests already parsed (the scale benchmark builds its model from
/// generated names, without a layout on disk): `manifests` stands for what reading every
/// revision link's manifest gave.
pub fn build_for_gc_from(
    root: &Root,
    inv: &Inventory,
    manifests: DigestMap<ManifestState>,
    now: SystemTime,
) -> Graph {
    build_from(root, inv, manifests, now, false)
}

fn build_from(
    root: &Root,
    inv: &Inventory,
    mut manifests: DigestMap<ManifestState>,
    now: SystemTime,
    registry_marks: bool,
) -> Graph {
    resolve_blobs(&mut manifests, &inv.blobs);
    let mut g = Graph {
        manifests,
        aliases: digest_aliases(inv),
        cache: root.is_cache(),
        ..Graph::default()
    };
    let ix = Index::new(inv, &g.manifests);
    let ctx = Ctx {
        ix: &ix,
        aliases: &g.aliases,
        cache: g.cache,
        now,
    };
    let declared = check_repos(inv, &ctx, &mut g.findings, &mut g.repos);
    size_mismatches(inv, &declared, &mut g.findings);

    // What links regfsck cannot place name, and what those manifests refer to.
    let pinned_roots: Vec<Digest> = inv.pinned.iter().copied().collect();
    g.pinned = keep_closure(root, inv, &g, pinned_roots);
    if registry_marks {
        mark_registry(root, inv, &mut g);
    }
    g
}

/// Reads and parses every manifest a well-formed revision link names, once per digest, in
/// parallel after one prefetch batch.
fn parse_linked(root: &Root, inv: &Inventory) -> DigestMap<ManifestState> {
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
    // In batches (many requests in flight on an object store, each batch's fetched bytes
    // and paths freed before the next).
    let mut states = Vec::with_capacity(wanted.len());
    for batch in wanted.chunks(PARSE_BATCH) {
        let paths: Vec<String> = batch.iter().map(layout::blob_data).collect();
        root.storage().prefetch(&paths, MAX_MANIFEST_SIZE);
        drop(paths);
        states.par_extend(batch.par_iter().map(|d| read_manifest(root, inv, d)));
    }
    DigestMap::from_sorted(wanted, states)
}

/// Looks every parsed manifest's references up in the blob store once, so that the checks and
/// the marks that follow use positions ([`Manifest::resolved_blob`]) instead of lookups. A
/// batch of manifests at a time, in parallel, each batch's digests looked up together
/// ([`DigestMap::ids`]). (Sorting a batch's digests first, so that lookups walk the store
/// forward, cost more than it saved: 10M simulated objects, graph 2.6 s against 2.2.)
fn resolve_blobs(manifests: &mut DigestMap<ManifestState>, blobs: &DigestMap<crate::scan::Blob>) {
    let generation = blobs.generation();
    manifests
        .values_mut()
        .par_chunks_mut(RESOLVE_BATCH)
        .for_each(|batch| {
            // Every digest of the batch, looked up together (see DigestMap::ids).
            let digests: Vec<Digest> = batch
                .iter()
                .filter_map(|m| match m {
                    ManifestState::Parsed(m) => Some(m.references.iter().map(|r| r.digest)),
                    _ => None,
                })
                .flatten()
                .collect();
            let mut ids = blobs.ids(&digests).into_iter();
            for m in batch.iter_mut() {
                if let ManifestState::Parsed(m) = m {
                    for j in 0..m.references.len() {
                        m.set_blob(j, ids.next().flatten());
                    }
                    m.set_resolved(generation);
                }
            }
        });
}

/// How many manifests [`resolve_blobs`] looks the references of up at once.
const RESOLVE_BATCH: usize = 4096;

/// How many manifests [`parse_linked`] fetches and parses at once.
const PARSE_BATCH: usize = 8192;

/// Digest aliases, from every repository's `_layers` (the first repository by name wins).
fn digest_aliases(inv: &Inventory) -> FxHashMap<Digest, Digest> {
    let mut aliases = FxHashMap::default();
    for r in inv.repos.values() {
        for (d, l) in &r.layers {
            if let Ok(t) = l.target {
                if is_alias(d, &t) {
                    aliases.entry(*d).or_insert(t);
                }
            }
        }
    }
    aliases
}

/// Checks each repository on its own, in parallel, and merges the results in name order into
/// `findings` and `repos`; returns the disagreeing size declarations (first one wins).
fn check_repos(
    inv: &Inventory,
    cx: &Ctx,
    findings: &mut Vec<Finding>,
    repos: &mut BTreeMap<RepoName, RepoGraph>,
) -> Declared {
    let list: Vec<&Repo> = inv.repos.values().collect();
    let checked: Vec<(RepoGraph, Vec<Finding>, Declared)> = list
        .par_iter()
        .map(|repo| {
            let mut findings = Vec::new();
            let mut declared = BTreeMap::new();
            let rg = check_repo(repo, cx, &mut findings, &mut declared);
            (rg, findings, declared)
        })
        .collect();
    let mut declared: Declared = BTreeMap::new();
    for (repo, (rg, f, decl)) in list.iter().zip(checked) {
        findings.extend(f);
        for (d, v) in decl {
            declared.entry(d).or_insert(v);
        }
        repos.insert(repo.name.clone(), rg);
    }
    declared
}

/// Sizes declared by descriptors against the stored blobs: a finding for each that disagrees.
fn size_mismatches(inv: &Inventory, declared: &Declared, out: &mut Vec<Finding>) {
    for (d, (size, m, repo)) in declared {
        if let Some(b) = inv.blobs.get(d) {
            if b.stat() && b.size() != *size && b.is_file() {
                out.push(
                    Finding::new(
                        Kind::BlobSizeMismatch,
                        format!(
                            "blob is {} bytes, manifest {m} declares {size} (truncated or replaced)",
                            b.size()
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
}

/// Fills [`Graph::marked`], what gc without -m keeps: every revision and tag target of every
/// repository (with or without `_layers`), closed over configs, layers, children and aliases,
/// and the pinned; every other blob is an orphan finding.
fn mark_registry(root: &Root, inv: &Inventory, g: &mut Graph) {
    let roots: Vec<Digest> = g
        .repos
        .values()
        .flat_map(|rg| rg.revisions.iter().copied().chain(rg.tag_targets()))
        .collect();
    let mut marked = keep_closure(root, inv, g, roots);
    marked.union(&g.pinned);
    g.marked = marked;
    for (id, (d, b)) in inv.blobs.iter().enumerate() {
        if !g.marked.contains_id(id) {
            g.findings.push(
                Finding::new(
                    Kind::OrphanBlob,
                    "no manifest refers to this blob; gc would remove it",
                )
                .digest(*d)
                .size(b.size())
                .path(layout::blob_data(d)),
            );
        }
    }
}

/// Whether a `_layers` link at `d` holding `t` is a digest alias: a blob pushed under sha384
/// or sha512 is stored under its sha256.
pub fn is_alias(d: &Digest, t: &Digest) -> bool {
    d.algorithm() != Algorithm::Sha256 && t.algorithm() == Algorithm::Sha256
}

/// `roots` and everything they refer to: configs, layers (and their alias targets), index
/// children recursively (read from the blob store when the graph did not parse them).
pub fn keep_closure(root: &Root, inv: &Inventory, g: &Graph, roots: Vec<Digest>) -> DigestSet {
    let blobs = &inv.blobs;
    let mut out = DigestSet::over(blobs);
    let mut manifests = DigestSet::over(blobs);
    let mut stack = roots;
    while let Some(d) = stack.pop() {
        out.insert(blobs, d);
        if !manifests.insert(blobs, d) {
            continue;
        }
        let extra;
        let m = match g.manifests.get(&d) {
            Some(ManifestState::Parsed(m)) => Some(m),
            Some(_) => None,
            None if inv.blob(&d).is_some() => {
                extra = read_manifest(root, inv, &d);
                match &extra {
                    ManifestState::Parsed(m) => Some(m),
                    _ => None,
                }
            }
            None => None,
        };
        for r in m.map(|m| &m.references[..]).unwrap_or_default() {
            match r.role {
                Role::Config | Role::Layer => {
                    out.insert(blobs, r.digest);
                    if let Some(c) = g.aliases.get(&r.digest) {
                        out.insert(blobs, *c);
                    }
                }
                Role::Child => stack.push(r.digest),
                Role::Subject => {}
            }
        }
    }
    out
}

/// Reads and parses the manifest blob `d` (bounded).
pub(crate) fn read_manifest(root: &Root, inv: &Inventory, d: &Digest) -> ManifestState {
    let Some(blob) = inv.blobs.get(d) else {
        return match inv.blob_state(d) {
            BlobState::Unknown => ManifestState::Unreadable(
                "in a part of the blob store that could not be listed".into(),
            ),
            _ => ManifestState::Missing,
        };
    };
    if blob.stat() && blob.size() > MAX_MANIFEST_SIZE {
        return ManifestState::TooLarge(blob.size());
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

/// What every repository's check reads.
struct Ctx<'a> {
    ix: &'a Index<'a>,
    aliases: &'a FxHashMap<Digest, Digest>,
    cache: bool,
    now: SystemTime,
}

/// Checks one repository: its links, tags, manifests and their references, untagged
/// manifests, stale layer links, its shape and its uploads; returns its resolved view.
fn check_repo(repo: &Repo, cx: &Ctx, out: &mut Vec<Finding>, declared: &mut Declared) -> RepoGraph {
    let name = &repo.name;
    let mut rg = check_links(repo, out);
    rg.revisions_at = cx.ix.revisions_at(&rg.revisions);
    let rix = cx.ix.for_repo(&rg);
    let ix = &rix;
    ix.touch_local();
    let cx = &Ctx {
        ix,
        aliases: cx.aliases,
        cache: cx.cache,
        now: cx.now,
    };

    // Tags.
    rg.tags = repo
        .tags
        .iter()
        .map(|(tag, t)| (tag.clone(), check_tag(repo, tag, t, &rg, ix, out)))
        .collect();
    mark_tagged(&mut rg, ix);
    let tag_roots: BTreeSet<Digest> = rg.tag_targets().collect();

    let (needed_blobs, children) = check_manifests(name, &rg, cx, out, declared);
    check_untagged(name, &rg, &tag_roots, &children, ix, out);
    check_stale_layers(name, &rg, &needed_blobs, ix, out);
    check_shape(repo, cx.cache, out);

    for u in repo.uploads.values() {
        out.push(upload_finding(name, u, cx.now));
    }
    rg
}

/// The repository's revision and `_layers` links: the well-formed ones go into the returned
/// view, the others are findings.
fn check_links(repo: &Repo, out: &mut Vec<Finding>) -> RepoGraph {
    let name = &repo.name;
    let mut rg = RepoGraph::default();
    let mut revisions = Vec::new();
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
            Ok(_) => revisions.push(*d),
        }
    }
    // All well formed (the normal case): the scan's list, shared.
    rg.revisions = if revisions.len() == repo.revisions.len() {
        DigestList::shared(repo.revisions.shared_keys())
    } else {
        DigestList::shared(revisions.into())
    };
    let mut layers = Vec::new();
    let mut aliases = Vec::new();
    for (d, link) in &repo.layers {
        let rel = || layout::layer_link(name, d);
        match link.target {
            Err(ref p) => out.push(
                link_finding(Kind::LinkMalformed, p, rel())
                    .repo(name)
                    .digest(*d),
            ),
            Ok(t) if t == *d || is_alias(d, &t) => {
                if t != *d {
                    aliases.push((layers.len() as u32, t));
                }
                layers.push(*d);
            }
            Ok(t) => out.push(
                Finding::new(Kind::LinkMismatch, format!("layer link holds {t}"))
                    .repo(name)
                    .digest(*d)
                    .path(rel()),
            ),
        }
    }
    let keys = if layers.len() == repo.layers.len() {
        repo.layers.shared_keys()
    } else {
        layers.into()
    };
    rg.layers = LayerLinks::shared(keys, aliases);
    rg
}

/// Fills [`RepoGraph::tagged`]: reachability from tags, through index children linked in this
/// repository.
fn mark_tagged(rg: &mut RepoGraph, ix: &Index) {
    let mut stack: Vec<Digest> = rg
        .tag_targets()
        .filter(|d| rg.revisions.contains(d))
        .collect();
    let mut seen: rustc_hash::FxHashSet<Digest> = rustc_hash::FxHashSet::default();
    while let Some(d) = stack.pop() {
        if !seen.insert(d) {
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
    // Sorted once, not inserted in the order of the walk.
    rg.tagged = seen.into_iter().collect();
}

/// Checks every revision's manifest and its references; returns the blobs the manifests need
/// (configs and layers) and the index children they name.
fn check_manifests(
    name: &RepoName,
    rg: &RepoGraph,
    cx: &Ctx,
    out: &mut Vec<Finding>,
    declared: &mut Declared,
) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
    let mut needed_blobs: BTreeSet<Digest> = BTreeSet::new();
    let mut children: BTreeSet<Digest> = BTreeSet::new();
    for d in &rg.revisions {
        let rel = || layout::revision_link(name, d);
        match cx.ix.get(d) {
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
                let mc = ManifestCx {
                    name,
                    md: d,
                    rg,
                    cx,
                };
                check_references(&mc, m, out, declared);
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
    (needed_blobs, children)
}

/// Revisions that no tag reaches (and that parsed): an untagged-manifest finding each, worded
/// by what refers to them.
fn check_untagged(
    name: &RepoName,
    rg: &RepoGraph,
    tag_roots: &BTreeSet<Digest>,
    children: &BTreeSet<Digest>,
    ix: &Index,
    out: &mut Vec<Finding>,
) {
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
}

/// `_layers` links to blobs that are gone and that nothing needs: 2.8's gc leaves these.
fn check_stale_layers(
    name: &RepoName,
    rg: &RepoGraph,
    needed_blobs: &BTreeSet<Digest>,
    ix: &Index,
    out: &mut Vec<Finding>,
) {
    for (d, t) in rg.layers.iter() {
        // The repository's own set first: a lookup in the blob store only for what no manifest
        // here needs (few).
        if !needed_blobs.contains(d)
            && !needed_blobs.contains(&t)
            && ix.state(&t) == BlobState::Absent
        {
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
}

/// A repository with neither manifests nor tags, or with manifests but no `_layers` (which the
/// catalog does not list): a finding on the repository itself.
fn check_shape(repo: &Repo, cache: bool, out: &mut Vec<Finding>) {
    let name = &repo.name;
    if repo.revisions.is_empty() && repo.tags.is_empty() {
        // (Worded alike whether `_manifests` is left empty or is gone: an object store has no
        // empty directories.)
        let msg = if repo.has_layers {
            "repository has no manifests and no tags (the registry still lists it in the catalog)"
        } else {
            "directory has no manifests and no _layers: the registry does not see a repository here"
        };
        out.push(
            Finding::new(Kind::EmptyRepository, msg)
                .repo(name)
                .path(layout::repo_dir(name)),
        );
    } else if repo.has_manifests && !repo.has_layers {
        let f = if cache {
            Finding::new(
                Kind::UncatalogedRepository,
                "cached by manifest only (no layer fetched yet): no _layers, so the catalog does not list it",
            )
            .severity(Severity::Info)
        } else {
            Finding::new(
                Kind::UncatalogedRepository,
                "repository has no _layers: the registry's catalog does not list it and its own gc skips it (and would sweep its blobs)",
            )
        };
        out.push(f.repo(name).path(layout::repo_dir(name)));
    }
}

fn check_tag(
    repo: &Repo,
    tag: &TagName,
    t: &crate::scan::Tag,
    rg: &RepoGraph,
    ix: &Index,
    out: &mut Vec<Finding>,
) -> TagTarget {
    let name = &repo.name;
    for (d, l) in &t.index {
        let bad = match &l.target {
            Err(LinkProblem::Malformed(m)) => Some(format!("malformed tag index entry: {m}")),
            Err(LinkProblem::Doubled(x)) => Some(format!(
                "tag index entry holds {x} twice; the registry cannot read it"
            )),
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
        // Its directory could not be listed (reported as such): nothing is known of it.
        None if t.unseen => return TagTarget::Broken,
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
    } else if ix.state(&d) == BlobState::Absent {
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

/// A parsed manifest of one repository under check: what the checks of its references read.
struct ManifestCx<'a> {
    name: &'a RepoName,
    md: &'a Digest,
    rg: &'a RepoGraph,
    cx: &'a Ctx<'a>,
}

impl ManifestCx<'_> {
    /// A finding about reference `r` of this manifest.
    fn finding(&self, r: &Reference, kind: Kind, msg: String) -> Finding {
        Finding::new(kind, msg)
            .repo(self.name)
            .digest(r.digest)
            .manifest(*self.md)
    }
}

/// Checks every reference of manifest `m` against the blob store and the repository's links,
/// and keeps the size declarations that disagree with a stat'd blob.
fn check_references(
    mc: &ManifestCx,
    m: &Manifest,
    out: &mut Vec<Finding>,
    declared: &mut Declared,
) {
    let ix = mc.cx.ix;
    for r in &m.references {
        // The blob a config or layer reads: itself, or through a digest alias (this
        // repository's own alias link first).
        let linked = mc.rg.layers.get(&r.digest);
        let blob = match r.role {
            Role::Config | Role::Layer => match linked {
                Some(t) => t,
                None if ix.state(&r.digest) == BlobState::Absent => {
                    mc.cx.aliases.get(&r.digest).copied().unwrap_or(r.digest)
                }
                None => r.digest,
            },
            Role::Child | Role::Subject => r.digest,
        };
        let at = (blob == r.digest)
            .then(|| m.resolved_blob(r, ix.inventory().blobs.generation()))
            .flatten();
        let (state, stored) = ix.state_and_blob_at(&blob, at);
        // Only declarations that disagree with a stat'd blob are kept (one per blob).
        if let (Some(size), BlobState::Present, true) = (r.size(), state, ix.any_stat) {
            if stored.is_some_and(|b| b.stat() && b.is_file() && b.size() != size) {
                declared
                    .entry(blob)
                    .or_insert_with(|| (size, *mc.md, mc.name.clone()));
            }
        }
        match r.role {
            Role::Config | Role::Layer => check_blob_ref(mc, r, linked, &blob, state, out),
            Role::Child => check_child_ref(mc, r, state, out),
            Role::Subject => {
                if !mc.rg.revisions.contains(&r.digest) || state == BlobState::Absent {
                    out.push(
                        mc.finding(
                            r,
                            Kind::SubjectMissing,
                            format!("subject of referrer {} is not in this repository", mc.md),
                        )
                        .path(layout::revision_link(mc.name, mc.md)),
                    );
                }
            }
        }
    }
}

/// A config or layer reference (reading `blob`, in `state`; `linked` is this repository's
/// `_layers` link for it): not cached yet, missing, or not linked.
fn check_blob_ref(
    mc: &ManifestCx,
    r: &Reference,
    linked: Option<Digest>,
    blob: &Digest,
    state: BlobState,
    out: &mut Vec<Finding>,
) {
    let (name, md) = (mc.name, mc.md);
    if r.foreign || state == BlobState::Unknown {
        return;
    }
    if mc.cx.cache && (state == BlobState::Absent || linked.is_none()) {
        out.push(
            mc.finding(
                r,
                Kind::LayerNotCached,
                format!(
                    "{} of manifest {md} not fetched into this cache yet (a pull fetches it from upstream)",
                    r.role.word()
                ),
            )
            .path(layout::layer_link(name, &r.digest)),
        );
    } else if state == BlobState::Absent {
        out.push(
            mc.finding(
                r,
                Kind::BlobMissing,
                format!(
                    "{} of manifest {md} is not in the blob store",
                    r.role.word()
                ),
            )
            .path(layout::blob_data(blob)),
        );
    } else if linked.is_none() {
        out.push(
            mc.finding(
                r,
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

/// An index child reference (its blob in `state`): not cached yet, missing, or without a
/// revision link here.
fn check_child_ref(mc: &ManifestCx, r: &Reference, state: BlobState, out: &mut Vec<Finding>) {
    let (name, md) = (mc.name, mc.md);
    let unlinked = !mc.rg.revisions.contains(&r.digest);
    if state == BlobState::Unknown {
        return;
    }
    if mc.cx.cache && (state == BlobState::Absent || unlinked) {
        out.push(
            mc.finding(
                r,
                Kind::ManifestNotCached,
                format!("child of index {md} not fetched into this cache yet"),
            )
            .path(layout::revision_link(name, &r.digest)),
        );
    } else if state == BlobState::Absent {
        out.push(
            mc.finding(
                r,
                Kind::ChildMissing,
                format!("child of index {md} is not in the blob store"),
            )
            .path(layout::blob_data(&r.digest)),
        );
    } else if unlinked {
        out.push(
            mc.finding(
                r,
                Kind::ChildUnlinked,
                format!(
                    "child of index {md} has no revision link in this repository; pulls of it fail"
                ),
            )
            .path(layout::revision_link(name, &r.digest)),
        );
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
    let f = match &u.multipart {
        Some(m) => {
            let message = format!(
                "{}; its data is an in-progress multipart upload ({} bytes in {} parts), invisible to listings and billed until aborted",
                f.message, u.size, m.parts
            );
            Finding { message, ..f }
        }
        None => f,
    };
    f.repo(repo).size(u.size).path(rel)
}
