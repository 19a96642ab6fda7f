//! The local filesystem backend: a storage root directory holding `docker/registry/v2`.
//!
//! Small files below `v2` are read relative to directories opened once (`v2`, and
//! `v2/blobs` and `v2/repositories`, which may be symlinks to another disk), with `openat2`
//! and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (component by component with `O_NOFOLLOW` where
//! the kernel lacks it), so no symlink below those is ever followed and a path walk is short.
//! Large files are hashed memory-mapped.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use super::fsutil::{Bounded, Dir, read_bounded};
use super::{Entry, Kind, Meta, Pinned, Storage};
use std::fs::File;
use std::io::Read;
use std::sync::atomic::Ordering;

use crate::digest::{Algorithm, Digest, HashError, Hasher};
use crate::layout::{V2, escape_name};

/// Whether `path` (given on the command line) is a regular file.
pub fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Whether anything is at `path` (given on the command line), a dangling symlink included.
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Whether two paths given on the command line name the same directory.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Finds the root of the storage at `path`: a directory holding `docker/registry/v2`, or the
/// `v2` directory itself; returns the root and its `v2`.
///
/// # Errors
/// [`Error::NotARegistry`] when neither holds, [`Error::Io`] when the path cannot be read.
pub fn locate(path: &Path) -> crate::error::Result<(PathBuf, PathBuf)> {
    use crate::error::Error;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Err(Error::NotARegistry { path: path.into() });
    }
    let v2 = path.join(V2);
    if v2.is_dir() {
        return Ok((path.to_path_buf(), v2));
    }
    // The v2 directory itself: <root>/docker/registry/v2.
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let is_v2 =
        abs.ends_with(V2) && (abs.join("blobs").is_dir() || abs.join("repositories").is_dir());
    if is_v2 {
        let root = abs
            .ancestors()
            .nth(3)
            .ok_or_else(|| Error::NotARegistry { path: path.into() })?
            .to_path_buf();
        return Ok((root, abs));
    }
    Err(Error::NotARegistry { path: path.into() })
}

/// A directory opened once, on first use.
type LazyDir = Arc<OnceLock<std::result::Result<Dir, String>>>;

/// A storage root on the local filesystem.
#[derive(Debug, Clone)]
pub struct Local {
    root: PathBuf,
    v2: PathBuf,
    v2_dir: LazyDir,
    blobs_dir: LazyDir,
    repos_dir: LazyDir,
}

impl Local {
    /// The storage whose root is `root` and whose `v2` directory is `v2`.
    pub fn new(root: PathBuf, v2: PathBuf) -> Self {
        Local {
            root,
            v2,
            v2_dir: Arc::default(),
            blobs_dir: Arc::default(),
            repos_dir: Arc::default(),
        }
    }

    /// The absolute path of a root-relative path.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Opens the directory at root-relative `rel` (below `docker/registry/v2`), never through
    /// a symlink; small files below it can then be read with a short path walk.
    fn open_dir(&self, rel: &str) -> std::io::Result<Dir> {
        let (dir, below) = self.below_v2(rel)?;
        dir.open_dir(below)
    }

    fn below_v2<'a>(&self, rel: &'a str) -> std::io::Result<(&Dir, &'a str)> {
        let below = rel
            .strip_prefix(V2)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{rel} is not below {V2}"),
                )
            })?;
        let (lazy, path, below) = if let Some(r) = below.strip_prefix("blobs/") {
            (&self.blobs_dir, self.v2.join("blobs"), r)
        } else if let Some(r) = below.strip_prefix("repositories/") {
            (&self.repos_dir, self.v2.join("repositories"), r)
        } else {
            (&self.v2_dir, self.v2.clone(), below)
        };
        let dir = lazy
            .get_or_init(|| Dir::open(&path).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        Ok((dir, below))
    }
}

fn kind_of(ft: std::fs::FileType) -> Kind {
    if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

/// A kind as a listing's `d_type` gives it.
fn kind_of_listed(ft: rustix::fs::FileType) -> Kind {
    match ft {
        rustix::fs::FileType::Symlink => Kind::Symlink,
        rustix::fs::FileType::Directory => Kind::Dir,
        rustix::fs::FileType::RegularFile => Kind::File,
        _ => Kind::Other,
    }
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        kind: kind_of(m.file_type()),
        size: m.len(),
        mtime: m.modified().ok(),
    }
}

impl Storage for Local {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, rel: &str, meta: bool) -> std::io::Result<Vec<Entry>> {
        use std::os::unix::ffi::OsStrExt;
        let dir = if rel.is_empty() {
            self.root.clone()
        } else {
            self.abs(rel)
        };
        let mut v = Vec::new();
        // Through a handle opened with O_NOATIME: a listing writes nothing.
        for (os, ft) in Dir::open(&dir)?.entries()? {
            let (name, utf8) = match os.to_str() {
                Some(s) => (s.to_string(), true),
                None => (escape_name(os.as_bytes()), false),
            };
            let stat = || std::fs::symlink_metadata(dir.join(&os));
            let kind = match ft {
                Some(ft) => kind_of_listed(ft),
                // The filesystem does not say in its listings (d_type unknown): ask.
                None => kind_of(stat()?.file_type()),
            };
            let meta = if meta { Some(meta_of(&stat()?)) } else { None };
            v.push((
                os,
                Entry {
                    name,
                    utf8,
                    kind,
                    meta,
                },
            ));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v.into_iter().map(|(_, e)| e).collect())
    }

    fn stat(&self, rel: &str) -> std::io::Result<Meta> {
        std::fs::symlink_metadata(self.abs(rel)).map(|m| meta_of(&m))
    }

    fn stat_follow(&self, rel: &str) -> std::io::Result<Meta> {
        std::fs::metadata(self.abs(rel)).map(|m| meta_of(&m))
    }

    fn symlink_target(&self, rel: &str) -> std::io::Result<String> {
        std::fs::read_link(self.abs(rel)).map(|t| t.display().to_string())
    }

    fn cold(&self, rels: &[String]) -> bool {
        let known: Vec<bool> = rels
            .iter()
            .filter_map(|rel| {
                let (dir, below) = self.below_v2(rel).ok()?;
                dir.is_cached(below)
            })
            .collect();
        !known.is_empty() && known.iter().filter(|c| !**c).count() * 2 >= known.len()
    }

    fn read_small(&self, rel: &str, limit: u64) -> std::io::Result<Bounded> {
        if rel.starts_with(&format!("{V2}/")) {
            let (dir, below) = self.below_v2(rel)?;
            dir.read_small(below, limit)
        } else {
            // regfsck's own files beside the registry's (the quarantine's journals).
            read_bounded(&self.abs(rel), limit)
        }
    }

    fn read_small_below(
        &self,
        base: &str,
        below: &[String],
        limit: u64,
    ) -> Vec<std::io::Result<Bounded>> {
        // The directory opened once for all of them.
        match self.open_dir(base) {
            Ok(dir) => below.iter().map(|b| dir.read_small(b, limit)).collect(),
            Err(_) => below
                .iter()
                .map(|b| self.read_small(&format!("{base}/{b}"), limit))
                .collect(),
        }
    }

    fn hash(
        &self,
        rel: &str,
        alg: Algorithm,
        interrupt: &AtomicBool,
        progress: &dyn Fn(u64),
    ) -> Result<(Digest, u64), HashError> {
        hash_file(&self.abs(rel), alg, interrupt, progress)
    }

    fn pin_below(&self, parent: &str, name: &str) -> Pinned {
        use std::os::unix::ffi::OsStrExt;
        let mut out = Pinned::default();
        // Find the raw name again: `name` is the escaped form the listing gave.
        let Ok(it) = std::fs::read_dir(self.abs(parent)) else {
            out.unseen = true;
            return out;
        };
        let Some(raw) = it.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| escape_name(n.as_bytes()) == name)
        }) else {
            out.unseen = true;
            return out;
        };
        for entry in walkdir::WalkDir::new(&raw).follow_links(false) {
            let Ok(entry) = entry else {
                out.unseen = true;
                continue;
            };
            if entry.file_type().is_symlink() {
                out.unseen = true;
            } else if entry.file_type().is_file() && entry.file_name() == "link" {
                match super::fsutil::read_small(entry.path(), 1024) {
                    Ok((Bounded::Content(b), _)) => match crate::scan::parse_link(&b) {
                        Ok(d) | Err(crate::scan::LinkProblem::Doubled(d)) => {
                            out.digests.push(d);
                        }
                        Err(_) => {}
                    },
                    Ok((Bounded::TooLarge { .. }, _)) => {}
                    Err(_) => out.unseen = true,
                }
            }
        }
        out
    }

    fn open(&self, rel: &str) -> std::io::Result<std::fs::File> {
        super::fsutil::open_nofollow(&self.abs(rel))
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// Files at least this large are memory-mapped; smaller ones are read.
const MMAP_THRESHOLD: u64 = 256 * 1024;
/// Hashing proceeds in chunks of this size, reporting progress and checking for interruption
/// between chunks.
const CHUNK: usize = 4 * 1024 * 1024;

/// Hashes the file at `path` with `alg`, calling `progress(bytes)` as it goes.
///
/// The file is opened without following a final symlink. Large files are memory-mapped,
/// small ones read; if mapping fails, the file is read.
///
/// # Errors
/// I/O errors reading the file, or [`HashError::Interrupted`] when `interrupt` is set.
pub fn hash_file(
    path: &Path,
    alg: Algorithm,
    interrupt: &AtomicBool,
    progress: &dyn Fn(u64),
) -> Result<(Digest, u64), HashError> {
    let file = super::fsutil::open_nofollow(path)?;
    let len = file.metadata()?.len();
    let mut hasher = Hasher::new(alg);
    if len >= MMAP_THRESHOLD {
        if let Some(map) = map_file(&file) {
            for chunk in map.chunks(CHUNK) {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(HashError::Interrupted);
                }
                hasher.update(chunk);
                progress(chunk.len() as u64);
            }
            return Ok((hasher.finish(), map.len() as u64));
        }
    }
    read_into(file, len, &mut hasher, interrupt, progress)
}

fn read_into(
    mut file: File,
    len: u64,
    hasher: &mut Hasher,
    interrupt: &AtomicBool,
    progress: &dyn Fn(u64),
) -> Result<(Digest, u64), HashError> {
    // Sized to the file (plus one byte to see its end in one read): zeroing a large buffer
    // for every small blob would cost more than hashing it.
    let cap = usize::try_from(len.saturating_add(1)).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; cap.clamp(1, 256 * 1024)];
    let mut total = 0u64;
    loop {
        if interrupt.load(Ordering::Relaxed) {
            return Err(HashError::Interrupted);
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        progress(n as u64);
    }
    let h = std::mem::replace(hasher, Hasher::new(Algorithm::Sha256));
    Ok((h.finish(), total))
}

#[allow(unsafe_code)]
fn map_file(file: &File) -> Option<memmap2::Mmap> {
    // SAFETY: the map is only ever read, never mutated, and no reference into it outlives this
    // hashing call. If another process truncates the file while we read it, the process can get
    // SIGBUS; that is why regfsck must run on a stopped or read-only registry (README). If
    // mapping fails for any reason, the caller falls back to plain reads.
    unsafe { memmap2::Mmap::map(file) }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hash_bytes;

    #[test]
    fn a_layout_just_written_is_not_cold() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join(V2);
        for r in ["a", "b", "team/c"] {
            std::fs::create_dir_all(v2.join("repositories").join(r).join("_manifests")).unwrap();
        }
        let local = Local::new(dir.path().to_path_buf(), v2);
        let rel = |r: &str| format!("{V2}/repositories/{r}");
        let sample: Vec<String> = ["a", "b", "team/c", "team"]
            .iter()
            .map(|r| rel(r))
            .collect();
        let c = rel("team/c");
        let (d, below) = local.below_v2(&c).unwrap();
        if d.is_cached(below) == Some(false) {
            // A filesystem whose names are revalidated on every lookup (NFS, some overlays)
            // cannot answer from the cache: every run there reads as cold.
            return;
        }
        // Just made: every name is in the kernel's cache, so a run here is warm.
        assert!(!local.cold(&sample));
        // A name looked up and not found is known not to be there: no evidence either way.
        let _ = std::fs::metadata(dir.path().join(V2).join("repositories/nothing"));
        assert_eq!(d.is_cached("nothing"), None);
        assert!(!local.cold(&[rel("nothing")]));
    }

    #[test]
    fn hash_file_small_and_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let never = AtomicBool::new(false);
        for size in [0usize, 10, MMAP_THRESHOLD as usize + 7, CHUNK + 3] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let p = dir.path().join(format!("f{size}"));
            std::fs::write(&p, &data).unwrap();
            let (d, n) = hash_file(&p, Algorithm::Sha256, &never, &|_| {}).unwrap();
            assert_eq!(n, size as u64);
            assert_eq!(d, hash_bytes(Algorithm::Sha256, &data));
        }
    }
}
