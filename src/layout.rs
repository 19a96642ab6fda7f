//! The registry's storage layout: finding the root, repository names, tags, and the paths of
//! the `docker/registry/v2` tree.
//!
//! ```text
//! <root>/docker/registry/v2/
//!   blobs/<alg>/<hex[..2]>/<hex>/data
//!   repositories/<name>/
//!     _layers/<alg>/<hex>/link
//!     _manifests/revisions/<alg>/<hex>/link
//!     _manifests/tags/<tag>/current/link
//!     _manifests/tags/<tag>/index/<alg>/<hex>/link
//!     _uploads/<uuid>/{data,startedat,hashstates/<alg>/<offset>}
//! ```
//!
//! Every path regfsck reports is relative to the root (it starts with `docker/registry/v2/`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use std::sync::Arc;

use crate::digest::Digest;
use crate::error::Result;
use crate::storage::local::Local;
use crate::storage::{Bounded, Storage};

/// The path of the v2 tree below a storage root.
pub const V2: &str = "docker/registry/v2";

/// The only places where regfsck follows a symlink, as the registry does: the directories
/// leading to `v2`, and `v2/blobs` and `v2/repositories` themselves (operators move these to
/// another disk and leave a symlink). Nothing below them is ever followed, and nothing is
/// deleted through a symlink anywhere else.
pub const FOLLOWED: [&str; 5] = [
    "docker",
    "docker/registry",
    "docker/registry/v2",
    "docker/registry/v2/blobs",
    "docker/registry/v2/repositories",
];

/// The pull-through cache's record of what expires when, at the storage root.
pub const SCHEDULER_STATE: &str = "scheduler-state.json";

/// An opened registry storage root: its [`Storage`], and what the registry's config says of
/// it.
#[derive(Debug, Clone)]
pub struct Root {
    storage: Arc<dyn Storage>,
    /// The local root directory (empty for an object store).
    root: PathBuf,
    /// Whether the registry's config says it is a pull-through cache (`proxy.remoteurl`).
    cache: bool,
}

impl Root {
    /// Opens a local root: a directory holding `docker/registry/v2`, or the `v2` directory
    /// itself.
    ///
    /// # Errors
    /// [`Error::NotARegistry`] when neither holds, [`Error::Io`] when the path cannot be read.
    pub fn open(path: &Path) -> Result<Self> {
        let (root, v2) = crate::storage::local::locate(path)?;
        Ok(Root::local(root, v2))
    }

    fn local(root: PathBuf, v2: PathBuf) -> Self {
        Root {
            storage: Arc::new(Local::new(root.clone(), v2)),
            root,
            cache: false,
        }
    }

    /// A root over any storage (an object store).
    pub fn with_storage(storage: Arc<dyn Storage>) -> Self {
        Root {
            root: storage
                .local_root()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            storage,
            cache: false,
        }
    }

    /// This root with its storage opened again, when what it read at open may be stale (an
    /// object store's listing, before a re-check); itself otherwise.
    ///
    /// # Errors
    /// [`Error::Io`] when the storage cannot be opened again.
    pub fn refreshed(&self) -> Result<Root> {
        match self
            .storage
            .reopen()
            .map_err(|e| crate::error::Error::io(self.describe(), e))?
        {
            Some(storage) => Ok(Root {
                storage,
                root: self.root.clone(),
                cache: self.cache,
            }),
            None => Ok(self.clone()),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Reads the small file at root-relative `rel`, never through a symlink below the places
    /// regfsck follows (see [`Storage::read_small`]).
    ///
    /// # Errors
    /// I/O errors; `ELOOP` for a symlink on the way, `EISDIR` for a directory.
    pub fn read_small(&self, rel: &str, limit: u64) -> std::io::Result<Bounded> {
        self.storage.read_small(rel, limit)
    }

    /// Marks the layout as a pull-through cache (the registry's config has `proxy.remoteurl`).
    pub fn set_cache(&mut self, cache: bool) {
        self.cache = cache;
    }

    /// Whether this is the storage of a pull-through cache: its config says so, or the
    /// cache's `scheduler-state.json` is at the root. A cache fetches layers only when a client
    /// asks for them, so manifests whose layers are absent are normal there.
    pub fn is_cache(&self) -> bool {
        self.cache
            || self
                .storage
                .stat(SCHEDULER_STATE)
                .is_ok_and(|m| m.kind == crate::storage::Kind::File)
    }

    /// Whether something is at root-relative `rel` (not following a symlink there).
    pub fn exists(&self, rel: &str) -> bool {
        self.storage.stat(rel).is_ok()
    }

    /// Whether something is at root-relative `rel` now ([`Storage::stat_now`]: asked again on
    /// an object store, whose listing at open shows neither what was written nor what was
    /// deleted since).
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn exists_now(&self, rel: &str) -> std::io::Result<bool> {
        match self.storage.stat_now(rel) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The modification time of root-relative `rel`, if it can be had.
    pub fn mtime(&self, rel: &str) -> Option<std::time::SystemTime> {
        self.storage.stat(rel).ok().and_then(|m| m.mtime)
    }

    /// Whether root-relative `rel` is a directory holding nothing.
    pub fn is_empty_dir(&self, rel: &str) -> bool {
        self.storage.list(rel, false).is_ok_and(|v| v.is_empty())
    }

    /// Where the storage is, for messages: the root directory, or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        self.storage.describe()
    }

    /// The local storage root (the registry's `rootdirectory`); empty for an object store.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a root-relative path (local storage).
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// A file name as text: UTF-8 as it is, any other byte as `\xNN` (so a name that is not
/// UTF-8 is shown exactly, never as a lossy look-alike that names another file).
pub fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Relative path of a blob's data file.
pub fn blob_data(d: &Digest) -> String {
    let hex = d.hex();
    format!(
        "{V2}/blobs/{}/{}/{hex}/data",
        d.algorithm().name(),
        &hex[..2]
    )
}

/// Relative path of a repository directory.
pub fn repo_dir(repo: &RepoName) -> String {
    format!("{V2}/repositories/{repo}")
}

/// Relative path of a `_layers` link.
pub fn layer_link(repo: &RepoName, d: &Digest) -> String {
    format!(
        "{}/_layers/{}/{}/link",
        repo_dir(repo),
        d.algorithm().name(),
        d.hex()
    )
}

/// Relative path of a manifest revision link.
pub fn revision_link(repo: &RepoName, d: &Digest) -> String {
    format!(
        "{}/_manifests/revisions/{}/{}/link",
        repo_dir(repo),
        d.algorithm().name(),
        d.hex()
    )
}

/// Relative path of a tag's directory.
pub fn tag_dir(repo: &RepoName, tag: &TagName) -> String {
    format!("{}/_manifests/tags/{tag}", repo_dir(repo))
}

/// Relative path of a tag's `current/link`.
pub fn tag_current(repo: &RepoName, tag: &TagName) -> String {
    format!("{}/current/link", tag_dir(repo, tag))
}

/// Relative path of a tag's index entry.
pub fn tag_index_link(repo: &RepoName, tag: &TagName, d: &Digest) -> String {
    format!(
        "{}/index/{}/{}/link",
        tag_dir(repo, tag),
        d.algorithm().name(),
        d.hex()
    )
}

/// Why a repository name or tag is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("empty name")]
    Empty,
    /// The name is too long.
    #[error("name is {0} characters long; at most 255 are allowed")]
    TooLong(usize),
    /// A path component breaks the grammar.
    #[error("invalid path component {0:?} (want [a-z0-9]+ separated by '.', '_', '__' or '-')")]
    Component(String),
    /// The tag breaks `[\w][\w.-]{{0,127}}`.
    #[error("invalid tag {0:?} (want [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")]
    Tag(String),
}

/// A repository name, validated with the distribution reference grammar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RepoName(#[serde(deserialize_with = "de_repo")] String);

/// A name read back from regfsck's own records is checked as a name from the command line.
fn de_repo<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    RepoName::parse(&s)
        .map(|n| n.0)
        .map_err(serde::de::Error::custom)
}

impl RepoName {
    /// Parses and validates a repository name.
    ///
    /// # Errors
    /// [`NameError`] naming what is wrong.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > 255 {
            return Err(NameError::TooLong(s.len()));
        }
        Self::check_grammar(s)?;
        Ok(RepoName(s.to_string()))
    }

    /// Checks the components of a name, whatever its length.
    ///
    /// # Errors
    /// [`NameError::Component`] naming the first bad component.
    pub fn check_grammar(s: &str) -> Result<(), NameError> {
        for (i, comp) in s.split('/').enumerate() {
            let ok = path_component_ok(comp) || (i == 0 && s.contains('/') && domain_ok(comp));
            if !ok {
                return Err(NameError::Component(comp.to_string()));
            }
        }
        Ok(())
    }

    /// A name as found on disk, which may break the grammar (reported separately). A directory
    /// name can never be `..` or hold `/` beyond the nesting, so it is still a safe path.
    pub(crate) fn from_disk(s: &str) -> Self {
        RepoName(s.to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry host as the first component: `[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]+)?`.
fn domain_ok(c: &str) -> bool {
    let (host, port) = match c.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (c, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|x| x.is_ascii_alphanumeric() || x == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A tag name: `[\w][\w.-]{0,127}`. Shared text: the graph's copy of a tag is the scan's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagName(std::sync::Arc<str>);

impl Serialize for TagName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TagName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        TagName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::borrow::Borrow<str> for TagName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TagName {
    /// Parses and validates a tag.
    ///
    /// # Errors
    /// [`NameError::Tag`] when it breaks the grammar.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let ok = !b.is_empty()
            && b.len() <= 128
            && word(b[0])
            && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-');
        if ok {
            Ok(TagName(s.into()))
        } else {
            Err(NameError::Tag(s.to_string()))
        }
    }

    /// A tag as found on disk (a directory name), which may break the grammar.
    pub(crate) fn from_disk(s: &str) -> Self {
        TagName(s.into())
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        for ok in [
            "a",
            "my-alpine",
            "team/app",
            "team/app/api",
            "a__b",
            "a--b",
            "a.b_c",
            "localhost:5000/x",
            "Foo.example/bar",
        ] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/../b",
            "/abs",
            "a//b",
            "A",
            "a_",
            "_layers",
            "a/_manifests",
            "a___b",
            "a.-b",
            "a/",
            "Foo",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RepoName::parse(&"a".repeat(256)),
            Err(NameError::TooLong(256))
        );
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.0", "_under", "1_10", "A-b.c"] {
            assert!(TagName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "..", &"x".repeat(129)] {
            assert!(TagName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        let r = RepoName::parse("team/app").unwrap();
        let t = TagName::parse("latest").unwrap();
        assert_eq!(
            blob_data(&d),
            "docker/registry/v2/blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/data"
        );
        assert_eq!(
            tag_current(&r, &t),
            "docker/registry/v2/repositories/team/app/_manifests/tags/latest/current/link"
        );
        assert!(
            layer_link(&r, &d)
                .starts_with("docker/registry/v2/repositories/team/app/_layers/sha256/e3b0")
        );
        assert!(revision_link(&r, &d).contains("/_manifests/revisions/sha256/"));
        assert!(tag_index_link(&r, &t, &d).contains("/tags/latest/index/sha256/"));
    }
}
