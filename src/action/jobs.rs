//! regfsck's trash: one owner for the records of destructive jobs that must survive a crash.
//!
//! A job that cannot be done in one atomic step (`rm-repo` moves three directories and then
//! sweeps blobs; `prune` moves tags and then drops manifests) first creates a *bin* below
//! [`TRASH`] and writes its [`Job`] record there ([`RECORD`], written to a temporary name and
//! renamed into place), before it changes anything. It then moves what it removes into the
//! bin, finishes the rest, and deletes the bin last. A crash at any moment leaves either a bin
//! without a record (nothing was changed yet: the bin is simply removed) or a bin with its
//! record, which the next destructive run of any command finishes exactly as the interrupted
//! run would have (see `app::finish_pending`). Bins are typed by their record, so no command
//! ever deletes another command's unfinished work.
//!
//! The trash is `v2/repositories/_regfsck-trash`: on the same filesystem as the repositories
//! (moving into it is one rename, even when `v2/repositories` is a symlink to another disk),
//! and invisible to the registry, which skips every `_`-prefixed name there.
//!
//! An object store has no rename: there a bin holds only its record (one object, written
//! before anything changes), and the job deletes in place, references before referents (a
//! tag's history, then its `current/link`; a repository's tags, then its revisions referrers
//! first, then its `_layers` and `_uploads`), so that every moment's layout is one the
//! registry serves; the record finishes the job after a crash.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsops::Remover;
use crate::gc::{SweptBlob, SweptLink, SweptManifest};
use crate::layout::{RepoName, Root, TagName};
use crate::storage::Bounded;

/// The trash directory (root-relative; a test checks it against [`V2`] and [`TRASH_NAME`]).
pub const TRASH: &str = "docker/registry/v2/repositories/_regfsck-trash";

/// The name of a bin's record.
pub const RECORD: &str = "job.json";

/// A repository removal: what it removes and the blobs it frees (planned before it started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmJob {
    /// The repositories, in the order given.
    pub repositories: Vec<RepoName>,
    /// Blobs only these repositories referred to when the job was planned (empty with
    /// `--keep-blobs`); each is checked again before it is deleted.
    pub blobs: Vec<SweptBlob>,
}

/// A tag removed by a prune.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedTag {
    /// The repository.
    pub repository: RepoName,
    /// The tag.
    pub tag: TagName,
    /// What it pointed at.
    pub target: Option<Digest>,
}

/// A prune: the tags it removes, then the manifests only they reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneJob {
    /// Tags to remove (moved into the bin, one rename each).
    pub tags: Vec<PrunedTag>,
    /// Entries in kept tags' histories naming dropped manifests.
    pub index_entries: Vec<SweptLink>,
    /// Manifests to drop, in removal order (each before what it refers to).
    pub manifests: Vec<SweptManifest>,
    /// Manifests removed by digest (`rm-manifest`): finishing the job drops them even where a
    /// tag that stays reaches them, unless a tag names one directly (pushed since).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named: Vec<SweptManifest>,
}

/// A job's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum Job {
    /// `rm-repo`.
    RmRepo(RmJob),
    /// `prune`.
    Prune(PruneJob),
}

impl Job {
    /// The command that started it.
    pub fn command(&self) -> &'static str {
        match self {
            Job::RmRepo(_) => "rm-repo",
            Job::Prune(_) => "prune",
        }
    }
}

/// One bin of the trash.
#[derive(Debug, Clone)]
pub struct Bin {
    /// Root-relative path.
    pub rel: String,
    /// Its record: `None` when there is none (the job was killed before it changed anything).
    pub job: Option<Job>,
}

/// A repository name as one path component of a bin (repository names have no `+`).
pub fn encode_repo(r: &RepoName) -> String {
    r.as_str().replace('/', "+")
}

/// The bins waiting in the trash, oldest first.
///
/// # Errors
/// [`Error::Io`] when the trash exists but cannot be listed, or a record cannot be read or
/// parsed (a damaged record is never guessed at).
pub fn bins(root: &Root) -> Result<Vec<Bin>> {
    let entries = match root.storage().list(TRASH, false) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root.abs(TRASH), e)),
    };
    let names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
    let mut out = Vec::new();
    for n in names {
        let rel = format!("{TRASH}/{n}");
        let record_rel = format!("{rel}/{RECORD}");
        let record = root.abs(&record_rel);
        let job = match root.read_small(&record_rel, 64 << 20) {
            Ok(Bounded::Content(b)) => Some(serde_json::from_slice(&b).map_err(|e| {
                Error::io(
                    &record,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                )
            })?),
            Ok(Bounded::TooLarge { len }) => {
                return Err(Error::io(
                    &record,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{len} bytes: not a record regfsck wrote"),
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&record, e)),
        };
        out.push(Bin { rel, job });
    }
    Ok(out)
}

/// Starts a job: creates its bin and writes its record, before anything else changes.
///
/// # Errors
/// I/O errors from the remover.
pub fn open(remover: &dyn Remover, job: &Job, now: std::time::SystemTime) -> Result<String> {
    let stamp = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let rel = format!("{TRASH}/{}-{stamp}-{}", job.command(), std::process::id());
    remover.make_dir(&rel)?;
    let bytes = serde_json::to_vec_pretty(job).map_err(|e| Error::io(&rel, e.into()))?;
    remover.create_file(&format!("{rel}/{RECORD}"), &bytes)?;
    Ok(rel)
}

/// Removes the tag directory `dir` where there is no rename (an object store): its history
/// first, then `current/` (so the tag is served, as it was, until its last key goes), then
/// anything else left there. A crash in between leaves the tag served or gone, never broken,
/// and the job's record finishes it.
///
/// # Errors
/// I/O errors from the remover.
pub fn remove_tag(remover: &dyn Remover, dir: &str) -> Result<()> {
    remover.remove_tree(&format!("{dir}/index"))?;
    remover.remove_tree(&format!("{dir}/current"))?;
    remover.remove_tree(dir)
}

/// Ends a job whose work is all done: deletes its bin, then the trash if it is empty.
///
/// # Errors
/// I/O errors from the remover.
pub fn close(remover: &dyn Remover, bin: &str) -> Result<()> {
    remover.remove_tree(bin)?;
    remover.remove_empty_dir(TRASH)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::V2;
    use crate::scan::TRASH_NAME;

    #[test]
    fn trash_is_below_repositories_and_never_a_repository() {
        assert_eq!(TRASH, format!("{V2}/repositories/{TRASH_NAME}"));
        assert!(RepoName::parse(TRASH_NAME).is_err());
    }

    #[test]
    fn records_round_trip() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        let job = Job::Prune(PruneJob {
            tags: vec![PrunedTag {
                repository: RepoName::parse("team/app").unwrap(),
                tag: TagName::parse("v1").unwrap(),
                target: Some(d),
            }],
            index_entries: Vec::new(),
            manifests: vec![SweptManifest {
                repository: RepoName::parse("team/app").unwrap(),
                digest: d,
            }],
            named: vec![SweptManifest {
                repository: RepoName::parse("team/app").unwrap(),
                digest: d,
            }],
        });
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains("\"job\":\"prune\""), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
        // A name that breaks the grammar is refused when read back.
        let bad = text.replace("team/app", "../etc");
        assert!(serde_json::from_str::<Job>(&bad).is_err());
    }
}
