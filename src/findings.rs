//! Findings: what a check found, as data.
//!
//! A finding is never an error of regfsck itself. Each has a severity and a stable snake_case
//! `kind`, plus whichever of repository, tag, digest, manifest and root-relative path apply.
//! Findings sort by a total order (severity, kind, repository, tag, digest, path) so output is
//! deterministic however the work was scheduled.

use std::fmt;

use serde::Serialize;

use crate::digest::Digest;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Damage: something the registry needs is missing, wrong or unreadable.
    Error,
    /// Something unusual that does not break a pull.
    Warning,
    /// Worth knowing (orphans for gc, untagged manifests, uploads in progress).
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident => $sev:ident,)*) => {
        /// The kind of a finding; its JSON name is the snake_case form.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
        }

        impl Kind {
            /// The default severity of this kind.
            pub fn severity(self) -> Severity {
                match self {
                    $(Kind::$variant => Severity::$sev,)*
                }
            }

            /// All kinds, in order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];
        }
    };
}

kinds! {
    /// A blob's content does not hash to its digest.
    BlobCorrupt => Error,
    /// A blob's data file is empty but its digest is not the empty digest.
    BlobEmpty => Error,
    /// A blob's size differs from the size a manifest declares for it.
    BlobSizeMismatch => Error,
    /// A blob's data file cannot be read.
    BlobUnreadable => Error,
    /// A blob's `data` is not a regular file.
    BlobNotAFile => Error,
    /// A manifest references a blob that is not in the blob store.
    BlobMissing => Error,
    /// A manifest's config or layer is not linked in the repository's `_layers` (pulls get 404).
    LayerUnlinked => Error,
    /// An index child manifest is not in the blob store.
    ChildMissing => Error,
    /// An index child manifest has no revision link in the repository.
    ChildUnlinked => Error,
    /// A manifest revision needed by a tag or an index has no blob data.
    ManifestMissing => Error,
    /// A manifest blob does not parse as a manifest.
    ManifestInvalid => Error,
    /// A manifest blob is larger than the bound regfsck reads.
    ManifestTooLarge => Error,
    /// A link file does not hold a well-formed digest.
    LinkMalformed => Error,
    /// A link file names a different digest than its directory.
    LinkMismatch => Error,
    /// A link file cannot be read.
    LinkUnreadable => Error,
    /// A tag directory has no `current/link`.
    TagNoCurrent => Error,
    /// A tag points at a manifest with no revision link in the repository.
    TagRevisionMissing => Error,
    /// A symlink inside the tree (regfsck never follows them below `v2/blobs` and
    /// `v2/repositories`).
    Symlink => Error,
    /// A directory that cannot be listed: what it holds is unknown.
    DirUnreadable => Error,
    /// A link file holding its digest twice (`sha256:<h>sha256:<h>`, written by Distribution
    /// v3.0.0 to v3.1.1 on Azure when an append was retried); the registry cannot parse it.
    LinkDoubled => Error,
    /// A revision link whose blob is gone; nothing needs it.
    DanglingRevision => Warning,
    /// A `_layers` link whose blob is gone; no manifest of the repository needs it.
    StaleLayerLink => Warning,
    /// A blob stored under the wrong two-character shard directory.
    BlobWrongShard => Warning,
    /// A blob directory with no `data` file.
    BlobNoData => Warning,
    /// A referrer whose `subject` is not in the repository.
    SubjectMissing => Warning,
    /// A repository with no manifests and no tags.
    EmptyRepository => Warning,
    /// A repository directory whose name breaks the registry's grammar.
    InvalidRepositoryName => Warning,
    /// A tag directory whose name breaks the registry's grammar.
    InvalidTagName => Warning,
    /// A tag index entry that is malformed.
    TagIndexMalformed => Warning,
    /// A file or directory name that is not UTF-8 (shown with its bytes escaped); the links
    /// below it still keep their blobs.
    NameNotUtf8 => Warning,
    /// A repository with `_manifests` but no `_layers`: the registry's catalog and its own gc
    /// skip it (info in a pull-through cache, where that is normal).
    UncatalogedRepository => Warning,
    /// A file or directory that is not part of the layout.
    UnknownEntry => Warning,
    /// A `*.tmp` file left by an interrupted atomic write.
    TempFile => Warning,
    /// An upload older than the registry's purge age (7 days), or one it can never purge.
    UploadStale => Warning,
    /// A half-finished upload younger than the purge age.
    UploadInProgress => Info,
    /// An object store's in-progress multipart uploads could not be listed (permissions:
    /// `s3:ListBucketMultipartUploads`), so unfinished uploads may be missing from the report.
    UploadsUnlisted => Warning,
    /// `v2`, `v2/blobs` or `v2/repositories` (or a directory above) is a symlink, followed as
    /// the registry follows it.
    SymlinkedStorage => Info,
    /// `<file>.<uuid>.tmp` left by an interrupted atomic write of Distribution v3.1.
    AtomicWriteLeftover => Info,
    /// A `_layers/<alg>/<hex>/` directory without a link (a blob delete, or v3's gc).
    LayerDirWithoutLink => Info,
    /// An empty directory under `repositories/` (left by v3.1's repository delete).
    EmptyRepositoryDirectory => Info,
    /// A `_referrers/` tree (Distribution PR #4828), not checked.
    ReferrersTree => Info,
    /// In a pull-through cache: a layer or config not fetched yet (or not linked yet).
    LayerNotCached => Info,
    /// In a pull-through cache: an index child not fetched yet.
    ManifestNotCached => Info,
    /// An interrupted regfsck job waiting in the trash; the next destructive run finishes it.
    PendingJob => Info,
    /// A blob no link and no manifest refers to (gc's business).
    OrphanBlob => Info,
    /// A manifest no tag reaches (directly or through an index).
    UntaggedManifest => Info,
}

impl Kind {
    /// The snake_case name.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What it is.
    pub kind: Kind,
    /// The repository concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The tag concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The digest concerned (the missing or damaged object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The manifest that refers to `digest`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// The path concerned, relative to the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Size in bytes, where it matters (orphans, uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// What is wrong, in words.
    pub message: String,
}

impl Finding {
    /// A finding of `kind` with its default severity.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Finding {
            severity: kind.severity(),
            kind,
            repository: None,
            tag: None,
            digest: None,
            manifest: None,
            path: None,
            size: None,
            message: message.into(),
        }
    }

    /// Sets the severity (a kind whose severity depends on the registry's mode).
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    /// Sets the repository.
    pub fn repo(mut self, r: impl fmt::Display) -> Self {
        self.repository = Some(r.to_string());
        self
    }

    /// Sets the tag.
    pub fn tag(mut self, t: impl fmt::Display) -> Self {
        self.tag = Some(t.to_string());
        self
    }

    /// Sets the digest.
    pub fn digest(mut self, d: Digest) -> Self {
        self.digest = Some(d);
        self
    }

    /// Sets the referring manifest.
    pub fn manifest(mut self, d: Digest) -> Self {
        self.manifest = Some(d);
        self
    }

    /// Sets the root-relative path.
    pub fn path(mut self, p: impl Into<String>) -> Self {
        self.path = Some(p.into());
        self
    }

    /// Sets the size.
    pub fn size(mut self, s: u64) -> Self {
        self.size = Some(s);
        self
    }

    fn sort_key(&self) -> impl Ord + '_ {
        (
            self.severity,
            self.kind,
            &self.repository,
            &self.tag,
            self.digest,
            &self.path,
            self.manifest,
            &self.message,
        )
    }
}

impl PartialOrd for Finding {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Finding {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl fmt::Display for Finding {
    /// `error[kind] repo:tag digest: message (path)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.severity, self.kind.name())?;
        match (&self.repository, &self.tag) {
            (Some(r), Some(t)) => write!(f, " {r}:{t}")?,
            (Some(r), None) => write!(f, " {r}")?,
            _ => {}
        }
        if let Some(d) = &self.digest {
            write!(f, " {d}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(p) = &self.path {
            write!(f, " ({p})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case() {
        assert_eq!(Kind::BlobCorrupt.name(), "blob_corrupt");
        assert_eq!(Kind::LayerUnlinked.name(), "layer_unlinked");
        for k in Kind::ALL {
            let n = k.name();
            assert!(
                !n.is_empty()
                    && n.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            );
        }
    }

    #[test]
    fn errors_sort_first() {
        let mut v = [
            Finding::new(Kind::OrphanBlob, "o"),
            Finding::new(Kind::StaleLayerLink, "s"),
            Finding::new(Kind::BlobCorrupt, "c"),
        ];
        v.sort();
        assert_eq!(v[0].kind, Kind::BlobCorrupt);
        assert_eq!(v[2].kind, Kind::OrphanBlob);
    }
}
