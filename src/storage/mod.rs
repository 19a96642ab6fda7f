//! All access to registry storage. Nothing outside this module touches the filesystem (or an
//! object store) for registry data; a test (`tests/it/layering.rs`) keeps it so.
//!
//! [`Storage`] is the read half, shaped for batches so each backend schedules its own I/O:
//! list a directory (or prefix), stat, read small objects (one, or many below one directory at
//! once), hash a large one. Paths are root-relative (`docker/registry/v2/...`,
//! `regfsck-lost+found/...`), `/`-separated, plain (no `.` or `..`). The write half (only it
//! deletes anything) is [`fsops::Remover`].

pub mod fsops;
pub mod fsutil;
pub mod local;
pub mod object;

use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use crate::digest::{Algorithm, Digest, HashError};

pub use fsutil::Bounded;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (an object, on an object store).
    File,
    /// A directory (a common prefix, on an object store).
    Dir,
    /// A symbolic link (never on an object store).
    Symlink,
    /// Anything else: a FIFO, a socket, a device.
    Other,
}

/// What a stat gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// What it is.
    pub kind: Kind,
    /// Its size in bytes (files).
    pub size: u64,
    /// Its modification time (an object's LastModified).
    pub mtime: Option<SystemTime>,
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its name; a name that is not UTF-8 is escaped (`\xNN`, see
    /// [`crate::layout::escape_name`]) and `utf8` is false.
    pub name: String,
    /// Whether `name` is the name itself.
    pub utf8: bool,
    /// What it is.
    pub kind: Kind,
    /// Its metadata, when asked for (or free with the listing).
    pub meta: Option<Meta>,
}

/// An upload an object store keeps out of its listings: an in-progress multipart upload (the
/// registry writes an unfinished upload's `data` so, and never aborts it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenUpload {
    /// Root-relative key it is for (`.../_uploads/<id>/data`).
    pub rel: String,
    /// The store's id of it.
    pub upload_id: String,
    /// When it was started.
    pub initiated: Option<SystemTime>,
    /// Bytes in its parts.
    pub bytes: u64,
    /// Its parts.
    pub parts: u64,
}

/// Links found below a directory regfsck cannot name (not UTF-8), kept as references.
#[derive(Debug, Clone, Default)]
pub struct Pinned {
    /// The digests the link files there hold.
    pub digests: Vec<Digest>,
    /// Whether something there could not be read (or is a symlink, not followed).
    pub unseen: bool,
}

/// The read half of registry storage.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Where the storage is, for messages: a path, or `s3://bucket/prefix`.
    fn describe(&self) -> String;

    /// The entries of directory `rel`, sorted by name; with `meta`, each entry's metadata
    /// (not following symlinks).
    ///
    /// # Errors
    /// I/O errors; `NotFound` when there is no such directory.
    fn list(&self, rel: &str, meta: bool) -> std::io::Result<Vec<Entry>>;

    /// The metadata of `rel`, not following a symlink there.
    ///
    /// # Errors
    /// I/O errors; `NotFound`.
    fn stat(&self, rel: &str) -> std::io::Result<Meta>;

    /// The metadata of `rel` as it is now, not as it was when the storage was opened: what a
    /// decision after this process's own writes depends on. A local disk's stat is always
    /// live; an object store answers [`Storage::stat`] from the listing made at open, which
    /// shows neither what was written nor what was deleted since, and asks again here (a HEAD
    /// of the key; when there is none, a listing of `rel/` for a "directory").
    ///
    /// # Errors
    /// I/O errors; `NotFound`.
    fn stat_now(&self, rel: &str) -> std::io::Result<Meta> {
        self.stat(rel)
    }

    /// The metadata of `rel`, following a symlink there (only for the places regfsck follows,
    /// [`crate::layout::FOLLOWED`]).
    ///
    /// # Errors
    /// I/O errors; `NotFound`.
    fn stat_follow(&self, rel: &str) -> std::io::Result<Meta>;

    /// Where the symlink `rel` points, for messages.
    ///
    /// # Errors
    /// I/O errors.
    fn symlink_target(&self, rel: &str) -> std::io::Result<String>;

    /// Reads the small file `rel` (at most `limit` bytes; [`Bounded::TooLarge`] beyond),
    /// never through a symlink below the places regfsck follows.
    ///
    /// # Errors
    /// I/O errors; `ELOOP` for a symlink on the way.
    fn read_small(&self, rel: &str, limit: u64) -> std::io::Result<Bounded>;

    /// Reads the small files `base/<below>` for each of `below`, as [`Storage::read_small`]
    /// does, in one batch (a local disk opens `base` once; an object store has many requests
    /// in flight).
    fn read_small_below(
        &self,
        base: &str,
        below: &[String],
        limit: u64,
    ) -> Vec<std::io::Result<Bounded>> {
        below
            .iter()
            .map(|b| self.read_small(&format!("{base}/{b}"), limit))
            .collect()
    }

    /// The MD5 of the file `rel`'s content, when the storage knows it without reading it (an
    /// object's ETag, listed with it, for a single-part upload without SSE-KMS); `None` for a
    /// local disk, and for a file it does not know.
    fn known_md5(&self, _rel: &str) -> Option<[u8; 16]> {
        None
    }

    /// Reads the small files `rels` ahead, in one batch, for the reads that follow (an object
    /// store's many requests in flight; nothing for a local disk). Files over `limit` are not.
    fn prefetch(&self, _rels: &[String], _limit: u64) {}
    /// Whether most of `rels` would be read from the disk rather than from the kernel's cache
    /// (a cold cache: many reads in flight pay off, where on a warm one they cost time). Only a
    /// local disk can tell; elsewhere `false`.
    fn cold(&self, _rels: &[String]) -> bool {
        false
    }

    /// Hashes the file `rel` with `alg`, reporting bytes read to `progress`; returns the digest
    /// and the number of bytes.
    ///
    /// # Errors
    /// [`HashError::Io`], [`HashError::Interrupted`] once `interrupt` is set.
    fn hash(
        &self,
        rel: &str,
        alg: Algorithm,
        interrupt: &AtomicBool,
        progress: &dyn Fn(u64),
    ) -> Result<(Digest, u64), HashError>;

    /// The digests every link file holds below the entry `name` of directory `parent`, an entry
    /// whose name is not UTF-8 (`name` as listed, escaped): what regfsck cannot name is still
    /// kept.
    fn pin_below(&self, parent: &str, name: &str) -> Pinned;

    /// Reads `len` bytes of the file `rel` from `start` (`serve`'s ranges on storage that is
    /// not a local file).
    ///
    /// # Errors
    /// I/O errors.
    fn read_range(&self, rel: &str, start: u64, len: u64) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let mut f = self.open(rel)?;
        f.seek(std::io::SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.take(len).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Opens the file `rel` for streaming (`serve`), never through a symlink.
    ///
    /// # Errors
    /// I/O errors.
    fn open(&self, rel: &str) -> std::io::Result<std::fs::File>;

    /// The local directory of this storage, when it is one (the write half and the commands
    /// that need a filesystem use it).
    fn local_root(&self) -> Option<&std::path::Path>;

    /// Uploads below `rel` that the storage keeps out of its listings (an object store's
    /// in-progress multipart uploads, with their parts' bytes); none on a local disk.
    ///
    /// # Errors
    /// I/O errors.
    fn hidden_uploads(&self, _rel: &str) -> std::io::Result<Vec<HiddenUpload>> {
        Ok(Vec::new())
    }

    /// Its own write half, when it is not a local directory's ([`fsops::FsRemover`]). With
    /// `crash_after` (fault injection for the crash tests), the process aborts before the
    /// `n+1`-th change the write halves of this storage (and of the same place opened again)
    /// make.
    fn remover(&self, _crash_after: Option<u64>) -> Option<Box<dyn fsops::Remover + '_>> {
        None
    }

    /// The same place opened again, when what this one read at open may be stale (an object
    /// store's listing); `None` when every read is live (a local disk).
    ///
    /// # Errors
    /// As opening it.
    fn reopen(&self) -> std::io::Result<Option<std::sync::Arc<dyn Storage>>> {
        Ok(None)
    }
}

/// What one stat of a batch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// Something is there.
    Present(Meta),
    /// Nothing is there.
    Missing,
    /// It could not be told (an I/O error other than not-found).
    Unknown,
}

impl Fact {
    /// What a stat of `rel` (not following symlinks) finds.
    pub fn of(storage: &dyn Storage, rel: &str) -> Fact {
        match storage.stat(rel) {
            Ok(m) => Fact::Present(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Fact::Missing,
            Err(_) => Fact::Unknown,
        }
    }
}

/// What a batch of stats found: what plans need to know about storage, fetched before they
/// run, so that plans themselves read nothing.
#[derive(Debug, Default)]
pub struct Facts {
    stats: rustc_hash::FxHashMap<String, Fact>,
    empty_dirs: rustc_hash::FxHashSet<String>,
}

impl Facts {
    /// Stats each of `rels` (not following symlinks), many at once.
    pub fn stat(&mut self, storage: &dyn Storage, rels: Vec<String>) {
        use rayon::prelude::*;
        let rels: Vec<String> = rels
            .into_iter()
            .filter(|r| !self.stats.contains_key(r))
            .collect();
        let found: Vec<(String, Fact)> = rels
            .into_par_iter()
            .map(|rel| {
                let f = Fact::of(storage, &rel);
                (rel, f)
            })
            .collect();
        self.stats.extend(found);
    }

    /// Stats each of the directories `rels` and lists it, to tell which hold nothing.
    pub fn stat_dirs(&mut self, storage: &dyn Storage, rels: Vec<String>) {
        use rayon::prelude::*;
        let empty: Vec<String> = rels
            .par_iter()
            .filter(|r| storage.list(r, false).is_ok_and(|v| v.is_empty()))
            .cloned()
            .collect();
        self.empty_dirs.extend(empty);
        self.stat(storage, rels);
    }

    /// What the stat of `rel` found ([`Fact::Unknown`] when it was not asked).
    pub fn get(&self, rel: &str) -> Fact {
        self.stats.get(rel).copied().unwrap_or(Fact::Unknown)
    }

    /// The metadata of `rel`, if it is there.
    pub fn meta(&self, rel: &str) -> Option<Meta> {
        match self.get(rel) {
            Fact::Present(m) => Some(m),
            _ => None,
        }
    }

    /// The modification time of `rel`, if it is there and has one.
    pub fn mtime(&self, rel: &str) -> Option<SystemTime> {
        self.meta(rel).and_then(|m| m.mtime)
    }

    /// Whether something is at `rel`.
    pub fn exists(&self, rel: &str) -> bool {
        matches!(self.get(rel), Fact::Present(_))
    }

    /// Whether the directory `rel` was listed (by [`Facts::stat_dirs`]) and holds nothing.
    pub fn is_empty_dir(&self, rel: &str) -> bool {
        self.empty_dirs.contains(rel)
    }
}

/// The MD5 of `bytes` (to compare with [`Storage::known_md5`]).
pub fn md5(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(bytes).into()
}
