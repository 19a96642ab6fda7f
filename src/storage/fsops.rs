//! The only module that deletes anything.
//!
//! Every path comes from [`crate::layout`] (built from validated names and digests, relative to
//! the root) and is checked before deletion: it must lie inside `docker/registry/v2`, and no
//! component below the root may be a symlink, so a deletion can never leave the tree.

use std::path::{Component, Path};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::layout::{Root, V2};

/// What a storage's write half can do, for the commands that pick a strategy by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// One rename moves a whole directory atomically (a local filesystem; never an object
    /// store, where a "move" is a copy of every key, then their deletion).
    pub atomic_rename: bool,
    /// Directories exist on their own (an empty one, too).
    pub directories: bool,
}

/// Removes paths relative to the root.
pub trait Remover: Sync {
    /// What it can do (a local filesystem: everything).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_rename: true,
            directories: true,
        }
    }
    /// Removes each of `rels` as [`Remover::remove_tree`] does, in one batch (an object store
    /// deletes up to 1000 keys a request, many requests at once); in no particular order.
    ///
    /// # Errors
    /// As [`Remover::remove_tree`].
    fn remove_trees(&self, rels: &[String]) -> Result<()> {
        for r in rels {
            self.remove_tree(r)?;
        }
        Ok(())
    }
    /// Aborts the in-progress multipart upload `upload_id` of the key `rel` (an object store's
    /// unfinished upload); a local disk has none.
    ///
    /// # Errors
    /// I/O errors; [`Error::Refused`] where there are no multipart uploads.
    fn abort_upload(&self, rel: &str, _upload_id: &str) -> Result<()> {
        Err(Error::Refused(format!(
            "{rel}: no multipart uploads on a local disk"
        )))
    }
    /// Removes a directory and everything in it (a blob, a link directory, an upload).
    ///
    /// # Errors
    /// I/O errors other than "not found", and paths outside the tree.
    fn remove_tree(&self, rel: &str) -> Result<()>;
    /// Removes a directory if it is empty; returns whether it did.
    ///
    /// # Errors
    /// I/O errors other than "not found" and "not empty", and paths outside the tree.
    fn remove_empty_dir(&self, rel: &str) -> Result<bool>;
    /// Creates a directory and its parents.
    ///
    /// # Errors
    /// I/O errors and paths outside the tree.
    fn make_dir(&self, rel: &str) -> Result<()>;
    /// Renames `from` to `to` (both relative to the root), atomically.
    ///
    /// # Errors
    /// I/O errors and paths outside the tree.
    fn rename(&self, from: &str, to: &str) -> Result<()>;
    /// Creates the file `rel` with `bytes` (written to a temporary name beside it, then renamed
    /// into place, so it never exists half-written); fails if `rel` exists.
    ///
    /// # Errors
    /// I/O errors and paths outside the tree.
    fn create_file(&self, rel: &str, bytes: &[u8]) -> Result<()>;
    /// Removes the file `rel` (not a directory).
    ///
    /// # Errors
    /// I/O errors other than "not found", and paths outside the tree.
    fn remove_file(&self, rel: &str) -> Result<()>;
    /// Replaces the file `rel` with `bytes` atomically: written beside it ([`TEMP_SUFFIX`]),
    /// synced, renamed over it. At no moment is there no file at `rel`.
    ///
    /// # Errors
    /// I/O errors and paths outside the tree.
    fn replace_file(&self, rel: &str, bytes: &[u8]) -> Result<()>;
    /// Copies the file `from` to `to` (created or replaced), synced.
    ///
    /// # Errors
    /// I/O errors and paths outside the tree.
    fn copy_file(&self, from: &str, to: &str) -> Result<()>;
    /// Moves `from` to `to`: one rename, or, when they are on different filesystems (a
    /// symlinked `v2/blobs`), a copy beside `to`, renamed into place, then the removal of
    /// `from` (so `from` is whole until `to` is).
    ///
    /// # Errors
    /// I/O errors and paths outside the tree.
    fn move_tree(&self, from: &str, to: &str) -> Result<()>;
    /// Records entry `n` (counted from 1) of the journal of regfsck's run `run` (a directory
    /// of the quarantine), durably, before the step it announces; `record` is one line. A
    /// local disk appends it to `<run>/`[`JOURNAL`] and syncs it; an object store, which has
    /// no append, writes it as an object of its own, `<run>/`[`JOURNAL_DIR`]`/<n>.json`
    /// ([`journal_entry`]), only if there is none of that name (so two runs writing one
    /// journal fail rather than overwrite each other). Not a step of the fault-injection
    /// hooks.
    ///
    /// # Errors
    /// I/O errors and paths outside the tree; an object store's entry `n` already there.
    fn journal(&self, run: &str, n: u64, record: &[u8]) -> Result<()>;
}

/// The journal of a repair run on a local disk: `<run>/journal.jsonl`, one line per entry.
pub const JOURNAL: &str = "journal.jsonl";

/// The journal of a repair run on an object store: `<run>/journal/`, one object per entry
/// ([`journal_entry`]).
pub const JOURNAL_DIR: &str = "journal";

/// The root-relative key of entry `n` of the object-store journal of `run`: zero-padded (8
/// digits), so that the entries list in order.
pub fn journal_entry(run: &str, n: u64) -> String {
    format!("{run}/{JOURNAL_DIR}/{n:08}.json")
}

/// The number of an object-store journal entry named `name` (`00000001.json`).
pub fn journal_entry_number(name: &str) -> Option<u64> {
    let n = name.strip_suffix(".json")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// The log of what a run deleted (`--log FILE`): one line per path, appended to the file in
/// one write as soon as the path is gone (the file is unbuffered, so a killed run's lines are
/// all there).
#[derive(Debug)]
pub struct DeletionLog {
    file: Mutex<std::fs::File>,
    path: std::path::PathBuf,
    /// What comes before a root-relative path: the root's absolute path or URL, and `/`.
    prefix: String,
    /// Paths below this one are not recorded (regfsck's own trash: what goes into it is
    /// recorded when it goes).
    unrecorded: &'static str,
}

impl DeletionLog {
    /// Opens `path` for appending (created if it is not there); lines name paths below
    /// `root`, except those below `unrecorded`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path, root: &Root, unrecorded: &'static str) -> Result<Self> {
        // Not registry data: the log lives wherever the user says.
        let file = std::fs::File::options()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let prefix = match root.storage().local_root() {
            Some(p) => std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string(),
            None => root.describe(),
        };
        Ok(DeletionLog {
            file: Mutex::new(file),
            path: path.to_path_buf(),
            prefix: format!("{}/", prefix.trim_end_matches('/')),
            unrecorded,
        })
    }

    /// Records that `rel` is gone.
    fn record(&self, rel: &str) -> Result<()> {
        use std::io::Write;
        if self.unrecorded(rel) {
            return Ok(());
        }
        let line = format!("{}{rel}\n", self.prefix);
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))
    }
}

impl DeletionLog {
    /// Whether `rel` lies below the unrecorded directory.
    fn unrecorded(&self, rel: &str) -> bool {
        rel.strip_prefix(self.unrecorded)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// A [`Remover`] that records in a [`DeletionLog`] each path it deleted (or moved into the
/// unrecorded directory, the trash, which the run deletes).
pub struct Logged<'a> {
    inner: Box<dyn Remover + 'a>,
    log: &'a DeletionLog,
}

impl<'a> Logged<'a> {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Remover + 'a>, log: &'a DeletionLog) -> Self {
        Logged { inner, log }
    }
}

impl Remover for Logged<'_> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn remove_trees(&self, rels: &[String]) -> Result<()> {
        self.inner.remove_trees(rels)?;
        rels.iter().try_for_each(|r| self.log.record(r))
    }
    fn abort_upload(&self, rel: &str, upload_id: &str) -> Result<()> {
        self.inner.abort_upload(rel, upload_id)?;
        self.log.record(rel)
    }
    fn remove_tree(&self, rel: &str) -> Result<()> {
        self.inner.remove_tree(rel)?;
        self.log.record(rel)
    }
    fn remove_empty_dir(&self, rel: &str) -> Result<bool> {
        let removed = self.inner.remove_empty_dir(rel)?;
        if removed {
            self.log.record(rel)?;
        }
        Ok(removed)
    }
    fn make_dir(&self, rel: &str) -> Result<()> {
        self.inner.make_dir(rel)
    }
    fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.inner.rename(from, to)?;
        if self.log.unrecorded(to) {
            self.log.record(from)?;
        }
        Ok(())
    }
    fn create_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.inner.create_file(rel, bytes)
    }
    fn remove_file(&self, rel: &str) -> Result<()> {
        self.inner.remove_file(rel)?;
        self.log.record(rel)
    }
    fn replace_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.inner.replace_file(rel, bytes)
    }
    fn copy_file(&self, from: &str, to: &str) -> Result<()> {
        self.inner.copy_file(from, to)
    }
    fn move_tree(&self, from: &str, to: &str) -> Result<()> {
        self.inner.move_tree(from, to)?;
        if self.log.unrecorded(to) {
            self.log.record(from)?;
        }
        Ok(())
    }
    fn journal(&self, run: &str, n: u64, record: &[u8]) -> Result<()> {
        self.inner.journal(run, n, record)
    }
}

/// Fault injection for the tests of interrupted runs: a [`Remover`] that raises the interrupt
/// flag (as Ctrl-C does) once it has made `after` changes, so the run stops at its next check.
pub struct InterruptAfter<'a> {
    inner: Box<dyn Remover + 'a>,
    after: u64,
    done: AtomicU64,
    flag: &'a std::sync::atomic::AtomicBool,
}

impl<'a> InterruptAfter<'a> {
    /// Wraps `inner`.
    pub fn new(
        inner: Box<dyn Remover + 'a>,
        after: u64,
        flag: &'a std::sync::atomic::AtomicBool,
    ) -> Self {
        InterruptAfter {
            inner,
            after,
            done: AtomicU64::new(0),
            flag,
        }
    }

    fn step<T>(&self, r: Result<T>) -> Result<T> {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.flag.store(true, Ordering::SeqCst);
        }
        r
    }
}

impl Remover for InterruptAfter<'_> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn remove_trees(&self, rels: &[String]) -> Result<()> {
        self.step(self.inner.remove_trees(rels))
    }
    fn abort_upload(&self, rel: &str, upload_id: &str) -> Result<()> {
        self.step(self.inner.abort_upload(rel, upload_id))
    }
    fn remove_tree(&self, rel: &str) -> Result<()> {
        self.step(self.inner.remove_tree(rel))
    }
    fn remove_empty_dir(&self, rel: &str) -> Result<bool> {
        self.step(self.inner.remove_empty_dir(rel))
    }
    fn make_dir(&self, rel: &str) -> Result<()> {
        self.step(self.inner.make_dir(rel))
    }
    fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.step(self.inner.rename(from, to))
    }
    fn create_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.step(self.inner.create_file(rel, bytes))
    }
    fn remove_file(&self, rel: &str) -> Result<()> {
        self.step(self.inner.remove_file(rel))
    }
    fn replace_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.step(self.inner.replace_file(rel, bytes))
    }
    fn copy_file(&self, from: &str, to: &str) -> Result<()> {
        self.step(self.inner.copy_file(from, to))
    }
    fn move_tree(&self, from: &str, to: &str) -> Result<()> {
        self.step(self.inner.move_tree(from, to))
    }
    fn journal(&self, run: &str, n: u64, record: &[u8]) -> Result<()> {
        // A record, not a change of the tree: not counted.
        self.inner.journal(run, n, record)
    }
}

/// Appends `bytes` to the file `rel` (created if it is not there, taking its parent's owner and
/// mode) and syncs it: regfsck's own journals. Not a step of the fault-injection hook.
///
/// # Errors
/// I/O errors and paths outside the tree.
fn append(root: &Root, rel: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let p = checked(root, rel)?;
    let new = std::fs::symlink_metadata(&p).is_err();
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::options()
            .append(true)
            .create(true)
            .open(&p)?;
        f.write_all(bytes)?;
        f.sync_data()
    };
    write().map_err(|e| Error::io(&p, e))?;
    if new {
        adopt_parent(&p);
    }
    Ok(())
}

/// The suffix of the temporary files regfsck writes before renaming them into place. A
/// leftover one (after a crash) is regfsck's own; repair removes it.
pub const TEMP_SUFFIX: &str = ".regfsck.tmp";

/// Gives a file or directory regfsck created the owner and group of its parent directory, and
/// the parent's mode (without the execute bits, for a file), so the registry (running as
/// another user) can write and replace it as its own.
pub fn adopt_parent(p: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (Some(parent), Ok(me)) = (p.parent(), std::fs::symlink_metadata(p)) else {
        return;
    };
    let Ok(pm) = std::fs::metadata(parent) else {
        return;
    };
    if (me.uid(), me.gid()) != (pm.uid(), pm.gid()) {
        // Only root may give a file away; otherwise it stays ours.
        let _ = std::os::unix::fs::lchown(p, Some(pm.uid()), Some(pm.gid()));
    }
    let mode = if me.is_dir() {
        pm.mode() & 0o7777
    } else {
        pm.mode() & 0o666
    };
    if me.mode() & 0o7777 != mode {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    }
}

/// Copies a file or a directory tree (not following symlinks; a symlink is copied as one).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(from)?;
    if m.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if m.is_dir() {
        std::fs::create_dir(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to)?;
        std::fs::File::open(to)?.sync_all()
    }
}

/// Where `repair` quarantines what it takes out of the tree (below the root, outside
/// `docker/registry`).
pub const QUARANTINE: &str = "regfsck-lost+found";

/// Checks that `rel` is a plain relative path below `docker/registry/v2` with no symlink
/// component, and returns it as an absolute path.
fn checked(root: &Root, rel: &str) -> Result<std::path::PathBuf> {
    if root.storage().local_root().is_none() {
        // An object store has its own write half (`Storage::remover`): never write local
        // paths for it.
        return Err(Error::Refused(format!(
            "{}: not a local directory (its changes go through the object store's own writer)",
            root.describe()
        )));
    }
    let p = Path::new(rel);
    let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
    let inside = rel.starts_with(&format!("{V2}/"))
        || rel == QUARANTINE
        || rel.starts_with(&format!("{QUARANTINE}/"));
    if !plain || !inside || crate::layout::FOLLOWED.contains(&rel) {
        return Err(Error::io(
            root.abs(rel),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "refusing a path outside docker/registry/v2",
            ),
        ));
    }
    let mut cur = root.path().to_path_buf();
    let mut sofar = String::new();
    for c in p.components() {
        cur.push(c);
        if !sofar.is_empty() {
            sofar.push('/');
        }
        sofar.push_str(&c.as_os_str().to_string_lossy());
        if crate::layout::FOLLOWED.contains(&sofar.as_str()) {
            // Followed as the registry follows it; never removed itself (see below).
            continue;
        }
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::io(
                    &cur,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "refusing to delete through a symlink",
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io(&cur, e)),
        }
    }
    Ok(root.abs(rel))
}

/// Deletes for real.
#[derive(Debug)]
pub struct FsRemover {
    root: Root,
    crash_after: Option<u64>,
    done: AtomicU64,
}

impl FsRemover {
    /// A remover for `root`.
    pub fn new(root: &Root) -> Self {
        FsRemover {
            root: root.clone(),
            crash_after: None,
            done: AtomicU64::new(0),
        }
    }

    /// Fault injection for the crash-safety tests: the process aborts (as if killed) before
    /// its `n+1`-th change to the tree.
    pub fn crash_after(mut self, n: Option<u64>) -> Self {
        self.crash_after = n;
        self
    }

    fn step(&self) {
        let n = self.done.fetch_add(1, Ordering::SeqCst);
        if self.crash_after == Some(n) {
            std::process::abort();
        }
    }
}

impl Remover for FsRemover {
    fn remove_tree(&self, rel: &str) -> Result<()> {
        let p = checked(&self.root, rel)?;
        if !p.exists() && std::fs::symlink_metadata(&p).is_err() {
            return Ok(());
        }
        self.step();
        match std::fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    fn remove_empty_dir(&self, rel: &str) -> Result<bool> {
        let p = checked(&self.root, rel)?;
        let empty = std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
        if !empty {
            return Ok(false);
        }
        self.step();
        match std::fs::remove_dir(&p) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::io(p, e)),
        }
    }

    fn make_dir(&self, rel: &str) -> Result<()> {
        let p = checked(&self.root, rel)?;
        if p.is_dir() {
            return Ok(());
        }
        self.step();
        // One level at a time, so each directory made takes its parent's owner and mode.
        let mut missing = Vec::new();
        let mut cur = p.as_path();
        while std::fs::symlink_metadata(cur).is_err() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(parent) => cur = parent,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(&d) {
                Ok(()) => adopt_parent(&d),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(d, e)),
            }
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let a = checked(&self.root, from)?;
        let b = checked(&self.root, to)?;
        self.step();
        std::fs::rename(&a, &b).map_err(|e| Error::io(a, e))
    }

    fn create_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let p = checked(&self.root, rel)?;
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(Error::io(
                p,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        self.step();
        self.write_over(rel, &p, bytes)
    }

    fn replace_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let p = checked(&self.root, rel)?;
        self.step();
        self.write_over(rel, &p, bytes)
    }

    fn copy_file(&self, from: &str, to: &str) -> Result<()> {
        let a = checked(&self.root, from)?;
        let b = checked(&self.root, to)?;
        self.step();
        let copy = || -> std::io::Result<()> {
            let bytes = match crate::fsutil::read_bounded(&a, 1 << 20)? {
                crate::fsutil::Bounded::Content(c) => c,
                crate::fsutil::Bounded::TooLarge { .. } => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "larger than a link",
                    ));
                }
            };
            let mut f = std::fs::File::create(&b)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()
        };
        copy().map_err(|e| Error::io(&a, e))
    }

    fn move_tree(&self, from: &str, to: &str) -> Result<()> {
        let a = checked(&self.root, from)?;
        let b = checked(&self.root, to)?;
        self.step();
        match std::fs::rename(&a, &b) {
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let tmp = b.with_file_name(format!(
                    "{}{TEMP_SUFFIX}",
                    b.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
                let _ = std::fs::remove_dir_all(&tmp).or_else(|_| std::fs::remove_file(&tmp));
                copy_tree(&a, &tmp)
                    .and_then(|()| std::fs::rename(&tmp, &b))
                    .map_err(|e| Error::io(&a, e))?;
                let gone = if std::fs::symlink_metadata(&a).is_ok_and(|m| m.is_dir()) {
                    std::fs::remove_dir_all(&a)
                } else {
                    std::fs::remove_file(&a)
                };
                gone.map_err(|e| Error::io(&a, e))
            }
            r => r.map_err(|e| Error::io(a, e)),
        }
    }

    fn remove_file(&self, rel: &str) -> Result<()> {
        let p = checked(&self.root, rel)?;
        if std::fs::symlink_metadata(&p).is_err() {
            return Ok(());
        }
        self.step();
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    fn journal(&self, run: &str, _n: u64, record: &[u8]) -> Result<()> {
        append(&self.root, &format!("{run}/{JOURNAL}"), record)
    }
}

impl FsRemover {
    /// Writes `bytes` to `<rel>.regfsck.tmp` (truncating a leftover of a crash), syncs it,
    /// gives it its parent's owner and mode, and renames it over `p`.
    fn write_over(&self, rel: &str, p: &Path, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let tmp = checked(&self.root, &format!("{rel}{TEMP_SUFFIX}"))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            adopt_parent(&tmp);
            std::fs::rename(&tmp, p)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(p, e)
        })
    }
}

/// Removes every empty `blobs/<alg>/<hh>` directory.
///
/// # Errors
/// I/O errors from the remover.
pub fn remove_empty_shards(root: &Root, remover: &dyn Remover) -> Result<()> {
    let blobs = format!("{V2}/blobs");
    let Ok(algs) = std::fs::read_dir(root.abs(&blobs)) else {
        return Ok(());
    };
    let mut shards = Vec::new();
    for alg in algs.flatten() {
        let name = alg.file_name().to_string_lossy().into_owned();
        if crate::digest::Algorithm::from_name(&name).is_none() {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(alg.path()) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    shards.push(format!(
                        "{blobs}/{name}/{}",
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    shards.sort();
    for s in shards {
        remover.remove_empty_dir(&s)?;
    }
    Ok(())
}

/// Records what would be deleted, deletes nothing.
#[derive(Debug, Default)]
pub struct DryRun {
    /// The operations, in order.
    pub log: Mutex<Vec<String>>,
}

impl Remover for DryRun {
    fn abort_upload(&self, rel: &str, upload_id: &str) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("abort {rel} {upload_id}"));
        }
        Ok(())
    }

    fn remove_tree(&self, rel: &str) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("remove {rel}"));
        }
        Ok(())
    }

    fn remove_empty_dir(&self, _rel: &str) -> Result<bool> {
        Ok(false)
    }

    fn make_dir(&self, _rel: &str) -> Result<()> {
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("rename {from} {to}"));
        }
        Ok(())
    }

    fn create_file(&self, rel: &str, _bytes: &[u8]) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("create {rel}"));
        }
        Ok(())
    }

    fn remove_file(&self, rel: &str) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("remove {rel}"));
        }
        Ok(())
    }

    fn replace_file(&self, rel: &str, _bytes: &[u8]) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("replace {rel}"));
        }
        Ok(())
    }

    fn copy_file(&self, from: &str, to: &str) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("copy {from} {to}"));
        }
        Ok(())
    }

    fn move_tree(&self, from: &str, to: &str) -> Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(format!("move {from} {to}"));
        }
        Ok(())
    }

    fn journal(&self, _run: &str, _n: u64, _record: &[u8]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_outside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(V2).join("blobs")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let r = FsRemover::new(&root);
        assert!(r.remove_tree("docker/registry/v2/../../etc").is_err());
        assert!(r.remove_tree("/etc").is_err());
        assert!(r.remove_tree("docker/registry").is_err());
        // v2/repositories may be a symlink (followed, never removed itself); nothing below.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("team")).unwrap();
        std::os::unix::fs::symlink(other.path(), dir.path().join(V2).join("repositories")).unwrap();
        assert!(r.remove_tree("docker/registry/v2/repositories").is_err());
        assert!(
            r.remove_tree("docker/registry/v2/repositories/team")
                .is_ok()
        );
        assert!(!other.path().join("team").exists());
        std::os::unix::fs::symlink("/tmp", other.path().join("app")).unwrap();
        assert!(
            r.remove_tree("docker/registry/v2/repositories/app/x")
                .is_err()
        );
        assert!(r.remove_tree("docker/registry/v2/blobs/none").is_ok());
    }
}
