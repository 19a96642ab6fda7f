//! `prune`: retention policies ("keep the last N tags"), offline, then (optionally) a sweep.
//!
//! A policy picks repositories by glob and keeps, in each, every tag that one of its rules
//! keeps: the N newest (by push time, version or name), those pushed within a duration, those
//! matching a regular expression. The other tags are removed (their directories only); a
//! manifest is dropped only when a removed tag was its last way in: no kept tag reaches it
//! (directly, as an index child, or as a referrer of something kept). Manifests that were
//! already untagged are left alone (that is `gc --delete-untagged`'s business).
//!
//! [`plan`] is pure. [`apply`] moves each removed tag into the trash in one rename (the tag
//! vanishes at once; its `current/link` stays there as the record of what it pointed at), then
//! removes the tag-history entries and revision links of the dropped manifests, then empties its
//! trash. A run killed half-way leaves a consistent layout, and the next `prune` finishes the job
//! from what it finds in the trash.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::findings::Finding;
use crate::fsops::Remover;
use crate::gc::{self, GcOptions, SweptLink};
use crate::graph::{Graph, TagTarget};
use crate::jobs::{self, Job, PruneJob, PrunedTag};
use crate::layout::{self, RepoName, Root, TagName};
use crate::manifest::Role;
use crate::scan::Inventory;
use crate::storage::Facts;

/// How "newest" is decided for `keep-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// By push time: the modification time of the tag's `current/link`.
    #[default]
    Pushed,
    /// By version: digit runs compare as numbers (`1_2` before `1_10`), semver pre-releases
    /// before their release (`1.10.0-rc.1` before `1.10.0`); tags that do not start with a
    /// digit (or `v` and a digit), such as `latest`, count as the oldest.
    Version,
    /// By name, byte order (what `sort` does: `1_10` before `1_2`).
    Name,
}

impl Order {
    fn word(self) -> &'static str {
        match self {
            Order::Pushed => "pushed",
            Order::Version => "version",
            Order::Name => "name",
        }
    }
}

/// The rules of one policy, as written on the command line or in a policy file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicySpec {
    /// Repository globs (`*` stays within one path component, `**` crosses them); empty means
    /// every repository.
    #[serde(default, alias = "repos", alias = "repo")]
    pub repositories: Vec<String>,
    /// Keep the N newest tags.
    #[serde(default, alias = "keep_last", skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
    /// Keep tags pushed within this long (e.g. `7d`, `12h`).
    #[serde(
        default,
        alias = "keep_within",
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub keep_within: Option<Duration>,
    /// Keep tags matching any of these regular expressions (unanchored: write `^latest$`).
    #[serde(default, alias = "keep_tag", skip_serializing_if = "Vec::is_empty")]
    pub keep_tag: Vec<String>,
    /// The order `keep-last` counts in.
    #[serde(default)]
    pub order: Order,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::duration_words(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("keep-within {text:?}: {e}")))
    }
}

/// A duration as written on the command line: `7d`, `12h`, `90m`, `30s`.
fn duration_words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s % 86400 == 0 => format!("{}d", s / 86400),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// A policy file: `policies`, tried in order; the first whose globs match a repository applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    policies: Vec<PolicySpec>,
}

/// A checked, compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// As written.
    pub spec: PolicySpec,
    globs: Option<GlobSet>,
    keep_tag: Vec<Regex>,
    /// Manifests removed by digest (`rm-manifest`): the tags naming them go, every other tag
    /// stays, and they are dropped even where something that stays still reaches them.
    drop: BTreeSet<Digest>,
}

impl Policy {
    /// Compiles and checks a policy.
    ///
    /// # Errors
    /// [`Error::Policy`] for a bad glob or regular expression, or a policy with no rule.
    pub fn new(spec: PolicySpec) -> Result<Self> {
        if spec.keep_last.is_none() && spec.keep_within.is_none() && spec.keep_tag.is_empty() {
            return Err(Error::Policy(
                "a policy needs at least one rule (keep-last, keep-within or keep-tag); \
                 to remove every tag say --keep-last 0"
                    .into(),
            ));
        }
        let globs = compile_globs(&spec.repositories)?;
        let keep_tag = spec
            .keep_tag
            .iter()
            .map(|r| Regex::new(r).map_err(|e| Error::Policy(format!("keep-tag regex {r:?}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Policy {
            spec,
            globs,
            keep_tag,
            drop: BTreeSet::new(),
        })
    }

    /// The policy of `rm-manifest` in `repo`: the manifests `drop` go, with every tag naming
    /// one of them and what only they reach (index children, untagged referrers); every other
    /// tag stays. A manifest that stays and names a dropped one (an index listing it, a
    /// referrer of it) is in the plan's [`RepoPrune::dangling`].
    ///
    /// # Errors
    /// [`Error::Policy`] when `drop` is empty.
    pub fn remove_manifests(repo: &RepoName, drop: BTreeSet<Digest>) -> Result<Self> {
        if drop.is_empty() {
            return Err(Error::Policy("no manifest to remove".into()));
        }
        let repositories = vec![globset::escape(repo.as_str())];
        Ok(Policy {
            globs: compile_globs(&repositories)?,
            spec: PolicySpec {
                repositories,
                order: Order::Name,
                ..PolicySpec::default()
            },
            keep_tag: Vec::new(),
            drop,
        })
    }

    /// Whether this policy applies to `repo`.
    pub fn matches(&self, repo: &RepoName) -> bool {
        self.globs
            .as_ref()
            .is_none_or(|g| g.is_match(repo.as_str()))
    }

    /// The rules that keep tag `t`, `rank`-th newest in the policy's order (0: newest), pushed
    /// at `pushed`; empty when none does.
    fn keeps(
        &self,
        t: &TagName,
        rank: usize,
        pushed: Option<SystemTime>,
        now: SystemTime,
    ) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(n) = self.spec.keep_last.filter(|n| rank < *n) {
            reasons.push(format!(
                "keep-last {n} (#{} by {})",
                rank + 1,
                self.spec.order.word()
            ));
        }
        if let (Some(d), Some(at)) = (self.spec.keep_within, pushed) {
            if now.duration_since(at).unwrap_or_default() < d {
                reasons.push(format!("keep-within {}", duration_words(d)));
            }
        }
        for (re, src) in self.keep_tag.iter().zip(&self.spec.keep_tag) {
            if re.is_match(t.as_str()) {
                reasons.push(format!("keep-tag {src}"));
            }
        }
        reasons
    }

    /// The rules in words, for reports.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.drop.is_empty() {
            let named: Vec<String> = self.drop.iter().map(short).collect();
            parts.push(format!("rm-manifest {}", named.join(" ")));
        }
        if let Some(n) = self.spec.keep_last {
            parts.push(format!("keep-last {n} by {}", self.spec.order.word()));
        }
        if let Some(d) = self.spec.keep_within {
            parts.push(format!("keep-within {}", duration_words(d)));
        }
        for r in &self.spec.keep_tag {
            parts.push(format!("keep-tag {r}"));
        }
        parts.join(", ")
    }
}

/// Compiles repository globs (`None`: every repository).
fn compile_globs(repositories: &[String]) -> Result<Option<GlobSet>> {
    if repositories.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in repositories {
        let glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Policy(format!("repository glob {g:?}: {e}")))?;
        b.add(glob);
    }
    Ok(Some(b.build().map_err(|e| {
        Error::Policy(format!("repository globs: {e}"))
    })?))
}

/// A digest shortened as the reports show it: `sha256:` and 12 hex digits.
fn short(d: &Digest) -> String {
    d.to_string().chars().take(19).collect()
}

/// Reads a policy file (`.toml`, `.yml` or `.yaml`).
///
/// # Errors
/// [`Error::Policy`] naming the file for anything wrong in it; [`Error::Io`] when unreadable.
pub fn load_policies(path: &Path) -> Result<Vec<Policy>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?; // not registry data: the policy file
    let bad = |m: String| Error::Policy(format!("{}: {m}", path.display()));
    let file: PolicyFile = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).map_err(|e| bad(e.to_string()))?,
        Some("yml" | "yaml") => serde_norway::from_str(&text).map_err(|e| bad(e.to_string()))?,
        _ => {
            return Err(bad("unknown format: name it *.toml, *.yml or *.yaml".into()));
        }
    };
    if file.policies.is_empty() {
        return Err(bad("no policies".into()));
    }
    file.policies
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Policy::new(spec).map_err(|e| bad(format!("policy {}: {e}", i + 1))))
        .collect()
}

/// One tag's fate.
#[derive(Debug, Clone, Serialize)]
pub struct TagDecision {
    /// The tag.
    pub tag: TagName,
    /// What it points at (`None` for a broken tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Its push time (modification time of `current/link`), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// Whether it stays.
    pub keep: bool,
    /// The rules that keep it; for a removed tag, what happens to its manifest.
    pub reasons: Vec<String>,
}

/// The plan for one repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoPrune {
    /// The repository.
    pub repository: RepoName,
    /// The policy's rules in words (empty when only an interrupted run is finished here).
    pub policy: String,
    /// Every tag, newest first in the policy's order.
    pub tags: Vec<TagDecision>,
    /// Manifests dropped (their revision links are removed), sorted.
    pub manifests: Vec<Digest>,
    /// Manifests that stay and name a dropped one (an index listing it, a referrer of it): what
    /// the removal leaves dangling. `rm-manifest` refuses unless forced; a prune leaves a
    /// tagged referrer of a dropped manifest so.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dangling: Vec<Dangling>,
    /// Manifests removed by digest (`rm-manifest`), sorted.
    #[serde(skip)]
    pub named: Vec<Digest>,
    /// Entries in kept tags' histories that name dropped manifests.
    #[serde(skip)]
    pub index_entries: Vec<SweptLink>,
    /// `manifests` in removal order: each before what it refers to.
    #[serde(skip)]
    pub removal: Vec<Digest>,
}

/// A manifest that stays and names a dropped one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dangling {
    /// The manifest that stays.
    pub manifest: Digest,
    /// The tags naming it.
    pub tags: Vec<TagName>,
    /// How it names the dropped one: `child` (an index listing it) or `subject` (a referrer
    /// of it).
    pub names_as: &'static str,
    /// The dropped manifest.
    pub dropped: Digest,
}

impl std::fmt::Display for Dangling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tagged = if self.tags.is_empty() {
            "untagged".to_string()
        } else {
            let t: Vec<&str> = self.tags.iter().map(TagName::as_str).collect();
            format!("tagged {}", t.join(", "))
        };
        match self.names_as {
            "child" => write!(
                f,
                "the index {} ({tagged}) lists {}",
                self.manifest, self.dropped
            ),
            _ => write!(
                f,
                "the referrer {} ({tagged}) has {} as its subject",
                self.manifest, self.dropped
            ),
        }
    }
}

/// What a following `gc` would free.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcEstimate {
    /// Blobs.
    pub blobs: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The whole plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrunePlan {
    /// Repositories a policy applies to (or with unfinished work), sorted.
    pub repositories: Vec<RepoPrune>,
    /// Tags removed.
    pub tags_removed: u64,
    /// Tags kept.
    pub tags_kept: u64,
    /// Manifests dropped.
    pub manifests_dropped: u64,
    /// What a `gc` after this prune frees (blobs freed by the prune only, not older garbage).
    pub gc: GcEstimate,
    /// Findings in the selected repositories that make the plan unsafe; prune refuses unless
    /// forced.
    pub broken: Vec<Finding>,
    /// Why the scan could not see all of a selected repository: prune never runs then, not
    /// even with `--force`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blind: Option<String>,
}

/// Version order key: see [`Order::Version`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk {
    /// A digit run: compared by length (no leading zeros), then digits.
    Num(usize, String),
    /// Anything else.
    Text(String),
}

fn chunks(s: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digits = false;
    for c in s.chars() {
        let d = c.is_ascii_digit();
        if !cur.is_empty() && d != digits {
            out.push(chunk(std::mem::take(&mut cur), digits));
        }
        digits = d;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(chunk(cur, digits));
    }
    out
}

fn chunk(s: String, digits: bool) -> Chunk {
    if digits {
        let t = s.trim_start_matches('0');
        let t = if t.is_empty() { "0" } else { t };
        Chunk::Num(t.len(), t.to_string())
    } else {
        Chunk::Text(s)
    }
}

/// (is a version, release chunks, is a release (not a pre-release), pre-release chunks).
type VersionKey = (bool, Vec<Chunk>, bool, Vec<Chunk>);

fn version_key(tag: &str) -> VersionKey {
    let body = tag
        .strip_prefix('v')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(tag);
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return (false, chunks(tag), true, Vec::new());
    }
    // A semver-like pre-release: `1.10.0-rc.1` (a dotted release, then `-`).
    match body.split_once('-') {
        Some((main, pre)) if main.contains('.') => (true, chunks(main), false, chunks(pre)),
        _ => (true, chunks(body), true, Vec::new()),
    }
}

/// Compares tags `a` and `b` (each with its push time, `None` when unknown) oldest first in
/// `order`: by push time (unknown first), ties by version, then name; by version (tags that
/// are no version first), ties by name; or by name, bytewise. `prune` sorts with it reversed,
/// `ls --sort` as it is.
pub fn oldest_first(
    order: Order,
    (a, ta): (&str, Option<SystemTime>),
    (b, tb): (&str, Option<SystemTime>),
) -> std::cmp::Ordering {
    let by_version = || version_key(a).cmp(&version_key(b));
    let by_name = || a.cmp(b);
    match order {
        Order::Pushed => ta.cmp(&tb).then_with(by_version).then_with(by_name),
        Order::Version => by_version().then_with(by_name),
        Order::Name => by_name(),
    }
}

/// Sorts tags newest first in `order`.
fn sort_newest_first(tags: &mut [(TagName, Option<SystemTime>)], order: Order) {
    tags.sort_by(|(a, ta), (b, tb)| oldest_first(order, (b.as_str(), *tb), (a.as_str(), *ta)));
}

/// Options of a prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The policies, first match wins.
    pub policies: Vec<Policy>,
    /// The time ages are measured against.
    pub now: SystemTime,
    /// Grace period of the gc estimate (and of `--gc`).
    pub min_age: Duration,
}

/// Plans a prune: fetches what the scan did not (push times, manifests no revision link
/// names, tag history entries) in batches, and decides purely over it. Reads, never writes.
pub fn plan(root: &Root, inv: &Inventory, g: &Graph, opts: &PruneOptions) -> PrunePlan {
    let extra = crate::graph::unparsed_manifests(root, inv, g);
    let mut facts = Facts::default();
    let current: Vec<String> = g
        .repos
        .iter()
        .filter(|(name, _)| opts.policies.iter().any(|p| p.matches(name)))
        .flat_map(|(name, rg)| rg.tags.keys().map(|t| layout::tag_current(name, t)))
        .collect();
    facts.stat(root.storage(), current);
    let mut out = decide(inv, g, opts, &extra, &facts);
    facts.stat(root.storage(), index_entry_dirs(&out));
    add_index_entries(&mut out, &facts);
    out.gc = estimate(root, inv, g, &out, opts, extra);
    out
}

/// The tag history entries a plan's dropped manifests may have in its kept tags.
fn index_entry_dirs(plan: &PrunePlan) -> Vec<String> {
    let mut out = Vec::new();
    for r in &plan.repositories {
        for m in &r.manifests {
            for t in r.tags.iter().filter(|t| t.keep) {
                let rel = layout::tag_index_link(&r.repository, &t.tag, m);
                out.push(rel.trim_end_matches("/link").to_string());
            }
        }
    }
    out
}

/// Lists the tag history entries of the dropped manifests that are there. Pure.
fn add_index_entries(plan: &mut PrunePlan, facts: &Facts) {
    for r in &mut plan.repositories {
        for m in &r.manifests {
            for t in r.tags.iter().filter(|t| t.keep) {
                let rel = layout::tag_index_link(&r.repository, &t.tag, m);
                if facts.exists(rel.trim_end_matches("/link")) {
                    r.index_entries.push(SweptLink {
                        repository: r.repository.clone(),
                        tag: Some(t.tag.clone()),
                        digest: *m,
                    });
                }
            }
        }
    }
}

/// Decides every tag of the selected repositories and what their removal drops. Pure: the
/// scan, the graph, the manifests no revision link names, and the push times fetched.
fn decide(
    inv: &Inventory,
    g: &Graph,
    opts: &PruneOptions,
    extra: &crate::graph::Unparsed,
    facts: &Facts,
) -> PrunePlan {
    let mut out = PrunePlan::default();
    // A part of the repositories tree that could not be read, outside every repository regfsck
    // sees, may hold repositories the policies select.
    let in_a_repo = |u: &str| {
        inv.repos.keys().any(|r| {
            u.strip_prefix(&layout::repo_dir(r))
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| rest.starts_with('_'))
        })
    };
    if let Some(u) = inv.unseen_refs.iter().find(|u| !in_a_repo(u)) {
        out.blind = Some(format!(
            "could not see into {u}: the repositories there, and their tags, are unknown"
        ));
    }
    for (name, rg) in &g.repos {
        let Some(policy) = opts.policies.iter().find(|p| p.matches(name)) else {
            continue;
        };
        // Decide each tag.
        let mut tags: Vec<(TagName, Option<SystemTime>)> = rg
            .tags
            .keys()
            .map(|t| {
                let mtime = facts.mtime(&layout::tag_current(name, t));
                (t.clone(), mtime)
            })
            .collect();
        sort_newest_first(&mut tags, policy.spec.order);
        let mut decisions = Vec::new();
        for (rank, (t, pushed)) in tags.iter().enumerate() {
            let digest = rg.tags.get(t).and_then(TagTarget::digest);
            let reasons = match digest {
                _ if policy.drop.is_empty() => policy.keeps(t, rank, *pushed, opts.now),
                Some(d) if policy.drop.contains(&d) => Vec::new(),
                Some(_) => vec!["names another manifest".to_string()],
                None => vec!["broken tag; left alone".to_string()],
            };
            decisions.push(TagDecision {
                tag: t.clone(),
                digest,
                pushed: pushed.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                keep: !reasons.is_empty(),
                reasons,
            });
        }

        // What the removed tags (and the manifests removed by digest) reached.
        let removed_roots: Vec<Digest> = decisions
            .iter()
            .filter(|d| !d.keep)
            .filter_map(|d| d.digest)
            .chain(policy.drop.iter().copied())
            .collect();
        let gone = reach(extra, g, rg, removed_roots, &BTreeSet::new());
        // What stays reaches: the kept tags' targets and every revision the removal does not
        // touch (an untagged index keeps its children), with their index children and
        // referrers; never through a manifest removed by digest.
        let kept_roots: Vec<Digest> = decisions
            .iter()
            .filter(|d| d.keep)
            .filter_map(|d| d.digest)
            .chain(rg.revisions.iter().filter(|d| !gone.contains(*d)).copied())
            .collect();
        let kept = reach(extra, g, rg, kept_roots, &policy.drop);
        let dropped: BTreeSet<Digest> = gone
            .difference(&kept)
            .filter(|d| rg.revisions.contains(d))
            .copied()
            .collect();
        let dangling = dangling(g, rg, &dropped);
        let kept_tag_of: BTreeMap<Digest, TagName> = decisions
            .iter()
            .rev()
            .filter(|d| d.keep)
            .filter_map(|d| d.digest.map(|m| (m, d.tag.clone())))
            .collect();
        for d in decisions.iter_mut().filter(|d| !d.keep) {
            let why = match d.digest {
                None => "broken tag; nothing to drop".to_string(),
                Some(m) if dropped.contains(&m) => "manifest dropped".to_string(),
                Some(m) => match kept_tag_of.get(&m) {
                    Some(other) => format!("manifest kept: also tagged {other}"),
                    None => "manifest kept: a kept tag still needs it".to_string(),
                },
            };
            d.reasons.push(why);
        }
        out.tags_removed += decisions.iter().filter(|d| !d.keep).count() as u64;
        out.tags_kept += decisions.iter().filter(|d| d.keep).count() as u64;
        out.manifests_dropped += dropped.len() as u64;
        let selected = name.as_str();
        out.broken.extend(
            inv.findings
                .iter()
                .chain(&g.findings)
                .filter(|f| f.repository.as_deref() == Some(selected))
                .filter(|f| f.severity == crate::findings::Severity::Error)
                .cloned(),
        );
        // A directory of this repository (or above it) that could not be read may hold tags
        // that need what this prune would drop.
        let dir = layout::repo_dir(name);
        for u in &inv.unseen_refs {
            let inside = u == &dir || u.starts_with(&format!("{dir}/"));
            let above = dir.starts_with(&format!("{u}/"));
            if inside || above {
                out.blind = Some(format!(
                    "could not read {u}: the tags and manifests of {name} are not all known"
                ));
            }
        }
        out.repositories.push(RepoPrune {
            repository: name.clone(),
            policy: policy.describe(),
            tags: decisions,
            removal: crate::graph::referrers_first(g, &dropped),
            manifests: dropped.into_iter().collect(),
            dangling,
            named: policy.drop.iter().copied().collect(),
            index_entries: Vec::new(),
        });
    }
    out
}

/// The manifests of `rg` that stay and name one of `dropped` (as an index child or as their
/// subject), sorted.
fn dangling(g: &Graph, rg: &crate::graph::RepoGraph, dropped: &BTreeSet<Digest>) -> Vec<Dangling> {
    let mut out = Vec::new();
    for d in rg.revisions.iter().filter(|d| !dropped.contains(*d)) {
        let Some(m) = g.manifest(d) else { continue };
        for r in m.references.iter().filter(|r| dropped.contains(&r.digest)) {
            let names_as = match r.role {
                Role::Child => "child",
                Role::Subject => "subject",
                _ => continue,
            };
            out.push(Dangling {
                manifest: *d,
                tags: rg
                    .tags
                    .iter()
                    .filter(|(_, t)| t.digest() == Some(*d))
                    .map(|(t, _)| t.clone())
                    .collect(),
                names_as,
                dropped: r.digest,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Manifests reached from `roots` in one repository: index children (linked here or not) and
/// the untagged referrers whose subject is reached; never `except` (manifests removed by
/// digest) nor what only they reach. A root or child whose revision link is already gone (an
/// interrupted run removed it) is read from the blob store.
fn reach(
    extra: &crate::graph::Unparsed,
    g: &Graph,
    rg: &crate::graph::RepoGraph,
    roots: Vec<Digest>,
    except: &BTreeSet<Digest>,
) -> BTreeSet<Digest> {
    let mut seen = BTreeSet::new();
    let mut stack = roots;
    loop {
        while let Some(d) = stack.pop() {
            if except.contains(&d) || !seen.insert(d) {
                continue;
            }
            let children: Vec<Digest> = match g.manifest(&d) {
                Some(m) => m.refs(Role::Child).map(|r| r.digest).collect(),
                None => match extra.get(&d) {
                    Some(Some(m)) => m.refs(Role::Child).map(|r| r.digest).collect(),
                    _ => Vec::new(),
                },
            };
            stack.extend(children);
        }
        let more: Vec<Digest> = rg
            .revisions
            .iter()
            .filter(|d| !seen.contains(*d) && !rg.tagged.contains(d) && !except.contains(*d))
            .filter(|d| {
                g.manifest(d)
                    .is_some_and(|m| m.refs(Role::Subject).any(|s| seen.contains(&s.digest)))
            })
            .copied()
            .collect();
        if more.is_empty() {
            return seen;
        }
        stack.extend(more);
    }
}

/// Blobs and bytes a `gc` after the prune frees that a `gc` now would not.
fn estimate(
    root: &Root,
    inv: &Inventory,
    g: &Graph,
    plan: &PrunePlan,
    opts: &PruneOptions,
    extra: crate::graph::Unparsed,
) -> GcEstimate {
    let gc_opts = GcOptions {
        delete_untagged: false,
        min_age: opts.min_age,
        force: true,
        now: opts.now,
        upload_age: None,
    };
    let ahead = gc::MarkFacts::with_unparsed(extra);
    let mut after_graph = g.clone();
    for r in &plan.repositories {
        if let Some(rg) = after_graph.repos.get_mut(&r.repository) {
            for t in r.tags.iter().filter(|t| !t.keep) {
                rg.tags.remove(&t.tag);
            }
            let gone: BTreeSet<Digest> = r.manifests.iter().copied().collect();
            rg.revisions.retain(|d| !gone.contains(d));
            rg.tagged.retain(|d| !gone.contains(d));
        }
    }
    // Fewer tags mark less: what the sweep after the prune needs to know covers the sweep now.
    let before_marks = gc::mark(inv, g, &gc_opts, &ahead);
    let after_marks = gc::mark(inv, &after_graph, &gc_opts, &ahead);
    let facts = gc::sweep_facts(root, inv, &after_graph, &gc_opts, &after_marks);
    let before: BTreeSet<Digest> = gc::sweep(inv, g, &gc_opts, before_marks, &facts)
        .sweep
        .blobs
        .iter()
        .map(|b| b.digest)
        .collect();
    let after = gc::sweep(inv, &after_graph, &gc_opts, after_marks, &facts);
    let mut est = GcEstimate::default();
    for b in &after.sweep.blobs {
        if !before.contains(&b.digest) {
            est.blobs += 1;
            est.bytes += b.size;
        }
    }
    est
}

/// What a real run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneApplied {
    /// Tags removed.
    pub tags: u64,
    /// Manifests dropped.
    pub manifests: u64,
    /// Tag history entries removed.
    pub links: u64,
}

/// Carries out a plan: records the job in the trash, then does it (see [`finish`]).
///
/// # Errors
/// I/O errors, and [`Error::Interrupted`] between steps (what was done is consistent, and the
/// next destructive run finishes it).
pub fn apply(
    root: &Root,
    plan: &PrunePlan,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: SystemTime,
) -> Result<PruneApplied> {
    let mut done = PruneApplied::default();
    apply_counting(root, plan, remover, interrupt, now, &mut done)?;
    Ok(done)
}

/// [`apply`], counting into `done` as it goes: after an error (an interrupt), `done` is what
/// was removed before it (a tag moved into the trash is removed: the registry no longer
/// serves it, and the next destructive run deletes it).
///
/// # Errors
/// As [`apply`].
pub fn apply_counting(
    root: &Root,
    plan: &PrunePlan,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    now: SystemTime,
    done: &mut PruneApplied,
) -> Result<()> {
    let mut job = PruneJob {
        tags: Vec::new(),
        index_entries: Vec::new(),
        manifests: Vec::new(),
        named: Vec::new(),
    };
    for r in &plan.repositories {
        for t in r.tags.iter().filter(|t| !t.keep) {
            job.tags.push(PrunedTag {
                repository: r.repository.clone(),
                tag: t.tag.clone(),
                target: t.digest,
            });
        }
        job.index_entries.extend(r.index_entries.iter().cloned());
        job.named
            .extend(r.named.iter().map(|d| crate::gc::SweptManifest {
                repository: r.repository.clone(),
                digest: *d,
            }));
        job.manifests
            .extend(r.removal.iter().map(|d| crate::gc::SweptManifest {
                repository: r.repository.clone(),
                digest: *d,
            }));
    }
    if job.tags.is_empty() && job.manifests.is_empty() {
        return Ok(());
    }
    let bin = jobs::open(remover, &Job::Prune(job.clone()), now)?;
    finish(root, &bin, &job, remover, interrupt, None, done)
}

/// Does (or finishes) a recorded prune: each removed tag into the bin in one rename (the tag
/// vanishes at once), then the history entries and revision links of the dropped manifests
/// (each manifest before what it refers to), then the bin. When finishing an interrupted run,
/// `recheck` is the current graph: a recorded manifest that a tag in the tree reaches now is
/// kept.
///
/// # Errors
/// I/O errors, and [`Error::Interrupted`] between steps; `done` then counts what was done
/// before.
pub fn finish(
    root: &Root,
    bin: &str,
    job: &PruneJob,
    remover: &dyn Remover,
    interrupt: &AtomicBool,
    recheck: Option<(&Inventory, &Graph)>,
    done: &mut PruneApplied,
) -> Result<()> {
    let stop = || Error::check_interrupt(interrupt);
    for t in &job.tags {
        stop()?;
        let from = layout::tag_dir(&t.repository, &t.tag);
        if !root.exists(&from) {
            continue;
        }
        if remover.capabilities().atomic_rename {
            let dir = format!("{bin}/{}", jobs::encode_repo(&t.repository));
            remover.make_dir(&dir)?;
            remover.rename(&from, &format!("{dir}/{}", t.tag))?;
        } else {
            jobs::remove_tag(remover, &from)?;
        }
        done.tags += 1;
    }
    // What the tags left in the tree reach, when finishing an interrupted run.
    let still: BTreeSet<(RepoName, Digest)> = match recheck {
        None => BTreeSet::new(),
        Some((inv, g)) => {
            let extra = crate::graph::unparsed_manifests(root, inv, g);
            let repos: BTreeSet<&RepoName> = job.manifests.iter().map(|m| &m.repository).collect();
            let mut v = BTreeSet::new();
            for name in repos {
                if let Some(rg) = g.repos.get(name) {
                    let roots: Vec<Digest> = rg
                        .tags
                        .iter()
                        .filter(|(t, _)| {
                            !job.tags
                                .iter()
                                .any(|p| &p.repository == name && &p.tag == *t)
                        })
                        .filter_map(|(_, t)| t.digest())
                        .collect();
                    // A manifest removed by digest stays only when a tag pushed since names it.
                    let named: BTreeSet<Digest> = job
                        .named
                        .iter()
                        .filter(|m| &m.repository == name && !roots.contains(&m.digest))
                        .map(|m| m.digest)
                        .collect();
                    for d in reach(&extra, g, rg, roots, &named) {
                        v.insert((name.clone(), d));
                    }
                }
            }
            v
        }
    };
    for l in &job.index_entries {
        stop()?;
        if still.contains(&(l.repository.clone(), l.digest)) {
            continue;
        }
        let tag = l.tag.as_ref().expect("tag index entries carry their tag");
        let rel = layout::tag_index_link(&l.repository, tag, &l.digest);
        if root.exists(rel.trim_end_matches("/link")) {
            remover.remove_tree(rel.trim_end_matches("/link"))?;
            done.links += 1;
        }
    }
    for m in &job.manifests {
        stop()?;
        if still.contains(&(m.repository.clone(), m.digest)) {
            continue;
        }
        let rel = layout::revision_link(&m.repository, &m.digest);
        if root.exists(rel.trim_end_matches("/link")) {
            remover.remove_tree(rel.trim_end_matches("/link"))?;
            done.manifests += 1;
        }
    }
    stop()?;
    jobs::close(remover, bin)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(tags: &[&str], order: Order) -> Vec<String> {
        let mut v: Vec<(TagName, Option<SystemTime>)> = tags
            .iter()
            .map(|t| (TagName::parse(t).unwrap(), None))
            .collect();
        sort_newest_first(&mut v, order);
        v.into_iter().map(|(t, _)| t.to_string()).collect()
    }

    #[test]
    fn version_order_is_numeric_and_knows_pre_releases() {
        assert_eq!(
            sorted(
                &[
                    "20221007.1_1",
                    "20221007.1_10",
                    "20221007.1_2",
                    "latest",
                    "20221006.3_1"
                ],
                Order::Version
            ),
            [
                "20221007.1_10",
                "20221007.1_2",
                "20221007.1_1",
                "20221006.3_1",
                "latest"
            ]
        );
        assert_eq!(
            sorted(
                &[
                    "1.2.0",
                    "1.10.0",
                    "1.9.0",
                    "1.10.0-rc.1",
                    "2.0.0-beta.1",
                    "0.9.0",
                    "v1.10.1"
                ],
                Order::Version
            ),
            [
                "2.0.0-beta.1",
                "v1.10.1",
                "1.10.0",
                "1.10.0-rc.1",
                "1.9.0",
                "1.2.0",
                "0.9.0"
            ]
        );
        assert_eq!(
            sorted(&["2024-01-05", "2024-02-01", "2023-12-31"], Order::Version),
            ["2024-02-01", "2024-01-05", "2023-12-31"]
        );
        assert_eq!(
            sorted(&["1_2", "1_10", "latest"], Order::Name),
            ["latest", "1_2", "1_10"]
        );
    }

    #[test]
    fn policies_need_a_rule_and_valid_patterns() {
        assert!(matches!(
            Policy::new(PolicySpec::default()),
            Err(Error::Policy(_))
        ));
        let bad_re = PolicySpec {
            keep_tag: vec!["(".into()],
            ..PolicySpec::default()
        };
        assert!(
            Policy::new(bad_re)
                .unwrap_err()
                .to_string()
                .contains("keep-tag regex")
        );
        let p = Policy::new(PolicySpec {
            repositories: vec!["ci/*".into()],
            keep_last: Some(0),
            ..PolicySpec::default()
        })
        .unwrap();
        assert!(p.matches(&RepoName::parse("ci/app").unwrap()));
        assert!(!p.matches(&RepoName::parse("ci/app/api").unwrap()));
        assert!(!p.matches(&RepoName::parse("other/ci").unwrap()));
    }

    #[test]
    fn policy_files_in_toml_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("p.toml");
        std::fs::write(
            &toml_path,
            "[[policies]]\nrepositories = [\"ci/*\"]\nkeep-last = 3\nkeep-tag = [\"^latest$\"]\norder = \"version\"\nkeep-within = \"7d\"\n",
        )
        .unwrap();
        let yaml_path = dir.path().join("p.yaml");
        std::fs::write(
            &yaml_path,
            "policies:\n  - repositories: [\"ci/*\"]\n    keep-last: 3\n    keep-tag: [\"^latest$\"]\n    order: version\n    keep-within: 7d\n",
        )
        .unwrap();
        let a = load_policies(&toml_path).unwrap();
        let b = load_policies(&yaml_path).unwrap();
        assert_eq!(a[0].spec, b[0].spec);
        assert_eq!(a[0].spec.keep_within, Some(Duration::from_secs(7 * 86400)));
        let typo = dir.path().join("t.yml");
        std::fs::write(&typo, "policies:\n  - keep-lats: 3\n").unwrap();
        let e = load_policies(&typo).unwrap_err().to_string();
        assert!(e.contains("t.yml") && e.contains("keep-lats"), "{e}");
    }
}
