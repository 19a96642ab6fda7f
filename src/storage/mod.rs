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

    /// Reads the small files `rels` ahead, in one batch, for the reads that follow (an object
    /// store's many requests in flight; nothing for a local disk). Files over `limit` are not.
    fn prefetch(&self, _rels: &[String], _limit: u64) {}

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
}
