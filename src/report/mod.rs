//! Rendering reports: human text or one JSON document, to any writer.

pub mod metrics;
pub mod paint;

use std::io::Write;

use indicatif::HumanBytes;
use serde::Serialize;

use crate::du::Usage;
use crate::findings::Severity;
use crate::gc::{Applied, GcPlan};
use crate::ls::Listing;
use crate::rmrepo::{RmApplied, RmPlan};
use crate::verify::VerifyReport;

/// The version of the JSON documents regfsck prints.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    schema_version: u32,
    command: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// Writes `body` as one JSON document with `schema_version` and `command`.
///
/// # Errors
/// Write errors.
pub fn write_json<T: Serialize>(
    out: &mut dyn Write,
    command: &str,
    body: &T,
) -> std::io::Result<()> {
    let env = Envelope {
        schema_version: SCHEMA_VERSION,
        command,
        body,
    };
    serde_json::to_writer_pretty(&mut *out, &env)?;
    writeln!(out)
}

/// Renders a verify report for humans: problems first, then the summary.
///
/// # Errors
/// Write errors.
pub fn verify_human(out: &mut dyn Write, r: &VerifyReport, verbose: bool) -> std::io::Result<()> {
    let mut shown = 0;
    for f in &r.findings {
        if f.severity == Severity::Info && !verbose {
            continue;
        }
        writeln!(out, "{f}")?;
        let breaks = r.breaks(f);
        if !breaks.is_empty() {
            writeln!(out, "  breaks {}", breaks.join(", "))?;
        }
        shown += 1;
    }
    let s = &r.summary;
    if shown > 0 {
        writeln!(out)?;
    }
    let content = if s.interrupted {
        "content check interrupted".to_string()
    } else if s.content_checked {
        format!("{} hashed", s.blobs_hashed)
    } else if let Some(sub) = s.content_subset {
        format!("{} hashed: subset {sub}", s.blobs_hashed)
    } else {
        "content not checked".to_string()
    };
    writeln!(
        out,
        "blobs:        {} ({}, {content})",
        s.blobs,
        HumanBytes(s.bytes)
    )?;
    writeln!(out, "repositories: {}", s.repositories)?;
    writeln!(out, "tags:         {}", s.tags)?;
    writeln!(out, "manifests:    {}", s.manifests)?;
    writeln!(
        out,
        "orphan blobs: {} ({}, gc would remove them)",
        s.orphan_blobs,
        HumanBytes(s.orphan_bytes)
    )?;
    let hidden = if verbose || s.infos == 0 {
        String::new()
    } else {
        " (--verbose lists them)".to_string()
    };
    writeln!(
        out,
        "findings:     {} errors, {} warnings, {} info{hidden}",
        s.errors, s.warnings, s.infos
    )?;
    let verdict = if s.interrupted {
        "INTERRUPTED"
    } else if !s.complete {
        "INCOMPLETE (part of the layout could not be read)"
    } else if s.errors > 0 {
        "ERRORS FOUND"
    } else {
        "clean"
    };
    writeln!(out, "result:       {verdict}")
}

/// Renders a listing: `REPO:TAG:DIGEST` lines, then `REPO@DIGEST` lines for untagged manifests.
///
/// # Errors
/// Write errors.
pub fn ls_human(out: &mut dyn Write, l: &Listing) -> std::io::Result<()> {
    if let Some(untagged) = &l.untagged {
        for u in untagged {
            writeln!(out, "{}@{}", u.repository, u.digest)?;
        }
        return Ok(());
    }
    for t in &l.tags {
        writeln!(out, "{}:{}:{}", t.repository, t.tag, t.digest)?;
    }
    Ok(())
}

/// Renders the catalog for humans: one repository a line.
///
/// # Errors
/// Write errors.
pub fn catalog_human(out: &mut dyn Write, c: &crate::ls::Catalog) -> std::io::Result<()> {
    for r in &c.repositories {
        writeln!(out, "{r}")?;
    }
    Ok(())
}

/// Renders one manifest for humans (see [`crate::show`]).
///
/// # Errors
/// Write errors.
pub fn show_human(out: &mut dyn Write, s: &crate::show::Shown) -> std::io::Result<()> {
    let size = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| HumanBytes(n).to_string());
    let missing = |m: bool| if m { "  MISSING" } else { "" };
    match &s.tag {
        Some(t) => writeln!(out, "{}:{}", s.repository, t)?,
        None => writeln!(out, "{}@{}", s.repository, s.digest)?,
    }
    writeln!(out, "digest:     {}", s.digest)?;
    writeln!(
        out,
        "media type: {}",
        s.media_type.as_deref().unwrap_or("(unreadable)")
    )?;
    if let Some(a) = &s.artifact_type {
        writeln!(out, "artifact:   {a}")?;
    }
    writeln!(out, "size:       {}", size(s.manifest_size))?;
    writeln!(out, "pushed:     {}", s.pushed.as_deref().unwrap_or("?"))?;
    writeln!(
        out,
        "tags:       {}",
        if s.tags.is_empty() {
            "(none)".to_string()
        } else {
            s.tags.join(", ")
        }
    )?;
    if let Some(c) = &s.config {
        write!(out, "config:     {} {}", c.blob.digest, size(c.blob.size))?;
        if c.platform != crate::show::Platform::default() {
            write!(out, ", {}", c.platform)?;
        }
        if let Some(t) = &c.created {
            write!(out, ", created {t}")?;
        }
        writeln!(out, "{}", missing(c.blob.missing))?;
    }
    if !s.children.is_empty() {
        writeln!(out, "children:")?;
        for c in &s.children {
            let p = c
                .platform
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string);
            writeln!(
                out,
                "  {p:<16} {} {}{}",
                c.blob.digest,
                size(c.blob.size),
                missing(c.blob.missing)
            )?;
        }
    }
    if !s.layers.is_empty() {
        writeln!(out, "layers:")?;
        for l in &s.layers {
            writeln!(
                out,
                "  {} {:>10}  {}{}",
                l.digest,
                size(l.size),
                l.media_type.as_deref().unwrap_or("-"),
                missing(l.missing)
            )?;
        }
    }
    if let Some(d) = &s.subject {
        writeln!(out, "subject:    {d}")?;
    }
    if !s.referrers.is_empty() {
        writeln!(out, "referrers:")?;
        for r in &s.referrers {
            writeln!(
                out,
                "  {} {}",
                r.digest,
                r.artifact_type
                    .as_deref()
                    .or(r.media_type.as_deref())
                    .unwrap_or("-")
            )?;
        }
    }
    writeln!(out, "total:      {}", HumanBytes(s.total_size))?;
    writeln!(
        out,
        "exclusive:  {} (no other manifest refers to it)",
        HumanBytes(s.exclusive_size)
    )
}

/// The gc report.
#[derive(Serialize)]
pub struct GcDoc<'a> {
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// Whether gc refused because the graph is broken.
    pub refused: bool,
    /// The plan.
    #[serde(flatten)]
    pub plan: &'a GcPlan,
    /// What a real run did (when interrupted: what it did before).
    pub applied: Option<&'a Applied>,
    /// Whether the run was interrupted (exit 32); what is in `applied` is done and consistent.
    pub interrupted: bool,
}

/// Renders a gc report for humans.
///
/// # Errors
/// Write errors.
pub fn gc_human(out: &mut dyn Write, d: &GcDoc<'_>) -> std::io::Result<()> {
    let p = d.plan;
    let s = &p.sweep;
    for f in &p.broken {
        writeln!(out, "{f}")?;
    }
    if !p.broken.is_empty() {
        writeln!(out)?;
    }
    if d.dry_run || d.refused {
        for m in &s.manifests {
            writeln!(out, "manifest {}@{}", m.repository, m.digest)?;
        }
        for b in &s.blobs {
            writeln!(out, "blob {} {}", b.digest, HumanBytes(b.size))?;
        }
        if !s.manifests.is_empty() || !s.blobs.is_empty() {
            writeln!(out)?;
        }
    }
    let verb = match (d.refused, d.dry_run, d.interrupted) {
        (true, _, _) => "would sweep (refused)",
        (false, true, _) => "would sweep",
        (false, false, false) => "swept",
        (false, false, true) => "sweep interrupted, of",
    };
    writeln!(out, "marked:       {} blobs", p.marked)?;
    writeln!(
        out,
        "{verb}: {} blobs ({}), {} manifests, {} layer links, {} tag index entries",
        s.blobs.len(),
        HumanBytes(s.bytes),
        s.manifests.len(),
        s.layer_links.len(),
        s.tag_index_entries.len()
    )?;
    writeln!(
        out,
        "kept (young): {} blobs, {} manifests (--min-age)",
        p.kept_young_blobs, p.kept_young_manifests
    )?;
    if !s.uploads.is_empty() {
        let verb = if d.dry_run || d.refused {
            "would abort"
        } else {
            "aborted"
        };
        writeln!(
            out,
            "{verb}: {} unfinished multipart uploads ({}) older than --upload-age",
            s.uploads.len(),
            HumanBytes(s.uploads.iter().map(|u| u.bytes).sum())
        )?;
    }
    if let (true, Some(a)) = (d.interrupted, d.applied) {
        writeln!(
            out,
            "done before the interrupt: {} blobs ({}), {} manifests, {} links",
            a.blobs,
            HumanBytes(a.bytes),
            a.manifests,
            a.links
        )?;
    }
    if let Some(a) = d.applied {
        if a.rechecked_kept > 0 {
            writeln!(
                out,
                "re-check kept {} blobs that became live",
                a.rechecked_kept
            )?;
        }
    }
    Ok(())
}

/// The prune report.
#[derive(Serialize)]
pub struct PruneDoc<'a> {
    /// Whether nothing was changed on purpose.
    pub dry_run: bool,
    /// Whether prune refused: a selected repository's graph is broken, or (rm-manifest) what
    /// stays names what it would remove.
    pub refused: bool,
    /// The plan.
    #[serde(flatten)]
    pub plan: &'a crate::prune::PrunePlan,
    /// What a real run did (when interrupted: what it did before).
    pub applied: Option<&'a crate::prune::PruneApplied>,
    /// Whether the removal was interrupted (exit 32); what is in `applied` is done.
    pub interrupted: bool,
    /// The sweep of `--gc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<&'a GcDoc<'a>>,
}

/// Renders a prune report for humans: per repository every tag, kept or removed and why.
///
/// # Errors
/// Write errors.
pub fn prune_human(out: &mut dyn Write, d: &PruneDoc<'_>) -> std::io::Result<()> {
    let p = d.plan;
    for f in &p.broken {
        writeln!(out, "{f}")?;
    }
    if !p.broken.is_empty() {
        writeln!(out)?;
    }
    for r in &p.repositories {
        writeln!(out, "{} ({})", r.repository, r.policy)?;
        let width = r
            .tags
            .iter()
            .map(|t| t.tag.as_str().len())
            .max()
            .unwrap_or(0);
        for t in &r.tags {
            let digest = t
                .digest
                .map(|d| d.to_string().chars().take(19).collect::<String>())
                .unwrap_or_else(|| "(broken)".into());
            writeln!(
                out,
                "  {:<6} {:<width$}  {:<19}  {:<20}  {}",
                if t.keep { "keep" } else { "remove" },
                t.tag.as_str(),
                digest,
                t.pushed.as_deref().unwrap_or("-"),
                t.reasons.join("; "),
            )?;
        }
        for m in &r.manifests {
            writeln!(out, "  drop manifest {m}")?;
        }
        for d in &r.dangling {
            writeln!(out, "  dangling: {d}")?;
        }
        writeln!(out)?;
    }
    let verb = match (d.refused, d.dry_run, d.interrupted) {
        (true, _, _) => "would remove (refused)",
        (false, true, _) => "would remove",
        (false, false, false) => "removed",
        (false, false, true) => "remove interrupted, of",
    };
    writeln!(
        out,
        "{verb}: {} tags and {} manifests in {} repositories; kept {} tags",
        p.tags_removed,
        p.manifests_dropped,
        p.repositories.len(),
        p.tags_kept
    )?;
    if let (true, Some(a)) = (d.interrupted, d.applied) {
        writeln!(
            out,
            "done before the interrupt: {} tags, {} manifests, {} history entries",
            a.tags, a.manifests, a.links
        )?;
    }
    writeln!(
        out,
        "gc afterwards frees: {} blobs ({})",
        p.gc.blobs,
        HumanBytes(p.gc.bytes)
    )?;
    if let Some(g) = d.sweep {
        writeln!(out)?;
        gc_human(out, g)?;
    }
    Ok(())
}

/// The repair report.
#[derive(Serialize)]
pub struct RepairDoc<'a> {
    /// Whether nothing was changed on purpose.
    pub dry_run: bool,
    /// The plan.
    #[serde(flatten)]
    pub plan: &'a crate::repair::RepairPlan,
    /// What a real run did.
    pub applied: Option<&'a crate::repair::RepairApplied>,
    /// Errors verify finds after a real run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// The storage root (for the undo command printed).
    #[serde(skip)]
    pub root: &'a std::path::Path,
    /// How the undo command printed names the root when it is not a local directory: its URL
    /// (`s3://BUCKET/PREFIX`) and the options that reach it (`--config FILE`, ...).
    #[serde(skip)]
    pub undo_root: Option<Vec<String>>,
}

/// Renders a repair report for humans.
///
/// # Errors
/// Write errors.
pub fn repair_human(out: &mut dyn Write, d: &RepairDoc<'_>) -> std::io::Result<()> {
    use crate::repair::Action;
    let p = d.plan;
    for s in &p.steps {
        let what = match &s.action {
            Action::Quarantine { path } => format!("quarantine {path}"),
            Action::Move { from, to } => format!("move       {from} -> {to}"),
            Action::Link { path, digest } => format!("link       {path} = {digest}"),
            Action::Discard { path } => format!("discard    {path}"),
            Action::Abort { path, upload_id } => format!("abort      {path} (upload {upload_id})"),
        };
        writeln!(
            out,
            "{what}
           {}",
            s.reason
        )?;
    }
    if !p.steps.is_empty() {
        writeln!(out)?;
    }
    for u in &p.unrepairable {
        writeln!(out, "not repairable: {}", u.finding)?;
        if !u.breaks.is_empty() {
            writeln!(out, "  breaks {}", u.breaks.join(", "))?;
        }
    }
    if !p.unrepairable.is_empty() {
        writeln!(out)?;
    }
    let verb = match (d.dry_run, d.applied) {
        (true, _) => "would repair",
        (false, Some(_)) => "repaired",
        (false, None) if p.steps.is_empty() => "nothing to repair",
        (false, None) => "repair interrupted",
    };
    writeln!(
        out,
        "{verb}: {} steps; {} errors before, {} not repairable",
        p.steps.len(),
        p.errors_before,
        p.unrepairable.len()
    )?;
    if let Some(a) = d.applied {
        let undo = match &d.undo_root {
            // The run below the root, and the root.
            Some(words) => std::iter::once(&a.quarantine)
                .chain(words)
                .map(|w| shell_word(w))
                .collect::<Vec<_>>()
                .join(" "),
            None => shell_word(
                &std::path::absolute(d.root.join(&a.quarantine))
                    .unwrap_or_else(|_| d.root.join(&a.quarantine))
                    .to_string_lossy(),
            ),
        };
        writeln!(
            out,
            "journal and quarantine: {}{} (undo: regfsck repair --yes --undo {undo})",
            a.quarantine,
            if a.resumed {
                ", continuing an interrupted repair"
            } else {
                ""
            },
        )?;
    }
    if let Some(n) = d.remaining {
        writeln!(out, "verify now finds {n} errors")?;
    }
    Ok(())
}

/// `s` as one word for a POSIX shell: as it is when it holds only characters no shell treats
/// specially, else in single quotes (a quote inside written `'\''`).
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._+:@%=,-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Renders an undo report for humans.
///
/// # Errors
/// Write errors.
pub fn undo_human(out: &mut dyn Write, d: &crate::repair::UndoReport) -> std::io::Result<()> {
    for w in &d.would {
        writeln!(out, "would {w}")?;
    }
    for s in &d.skipped {
        writeln!(out, "not undone: {s}")?;
    }
    if d.would.is_empty() {
        writeln!(out, "undone: {} journal entries of {}", d.undone, d.run)
    } else {
        writeln!(out, "would undo: {} journal entries of {}", d.undone, d.run)
    }
}

/// The rm-repo report.
#[derive(Serialize)]
pub struct RmDoc<'a> {
    /// Whether nothing was changed on purpose.
    pub dry_run: bool,
    /// The plan.
    #[serde(flatten)]
    pub plan: &'a RmPlan,
    /// What a real run did.
    pub applied: Option<&'a RmApplied>,
    /// Whether the run was interrupted (exit 32): the next gc, prune or rm-repo finishes it.
    pub interrupted: bool,
}

/// Renders an rm-repo report for humans.
///
/// # Errors
/// Write errors.
pub fn rm_human(out: &mut dyn Write, d: &RmDoc<'_>) -> std::io::Result<()> {
    let verb = if d.dry_run { "would remove" } else { "removed" };
    for r in &d.plan.repositories {
        writeln!(
            out,
            "{verb} {}: {} tags, {} manifests, {} layer links, {} uploads",
            r.repository, r.tags, r.manifests, r.layer_links, r.uploads
        )?;
    }
    if d.dry_run {
        for b in &d.plan.blobs {
            writeln!(out, "blob {} {}", b.digest, HumanBytes(b.size))?;
        }
    }
    writeln!(
        out,
        "{verb} {} blobs only these repositories referred to ({})",
        d.plan.blobs.len(),
        HumanBytes(d.plan.bytes)
    )?;
    if let Some(a) = d.applied {
        if a.rechecked_kept > 0 {
            writeln!(
                out,
                "re-check kept {} blobs another repository now refers to",
                a.rechecked_kept
            )?;
        }
    }
    Ok(())
}

/// Renders a du report for humans.
///
/// # Errors
/// Write errors.
pub fn du_human(out: &mut dyn Write, u: &Usage) -> std::io::Result<()> {
    let width = u
        .repositories
        .iter()
        .map(|r| r.repository.len())
        .max()
        .unwrap_or(0)
        .max("REPOSITORY".len());
    writeln!(
        out,
        "{:<width$}  {:>11}  {:>11}  {:>11}",
        "REPOSITORY", "TOTAL", "EXCLUSIVE", "SHARED"
    )?;
    for r in &u.repositories {
        writeln!(
            out,
            "{:<width$}  {:>11}  {:>11}  {:>11}",
            r.repository,
            HumanBytes(r.total).to_string(),
            HumanBytes(r.exclusive).to_string(),
            HumanBytes(r.shared).to_string()
        )?;
        for t in r.tags.iter().flatten() {
            writeln!(out, "  :{} {} {}", t.tag, t.digest, HumanBytes(t.bytes))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "blobs:        {}", HumanBytes(u.blob_bytes))?;
    writeln!(out, "referenced:   {}", HumanBytes(u.referenced_bytes))?;
    writeln!(
        out,
        "unreferenced: {} (gc would free)",
        HumanBytes(u.unreferenced_bytes)
    )?;
    let up = &u.uploads;
    if up.count > 0 {
        write!(
            out,
            "uploads:      {} unfinished, {}",
            up.count,
            HumanBytes(up.bytes)
        )?;
        if let Some(t) = &up.oldest {
            write!(out, ", oldest started {t}")?;
        }
        if up.multipart > 0 {
            write!(
                out,
                " ({} in-progress multipart uploads, invisible to listings)",
                up.multipart
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
