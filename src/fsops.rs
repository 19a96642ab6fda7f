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

/// Removes paths relative to the root.
pub trait Remover: Sync {
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
}

/// Where `repair` quarantines what it takes out of the tree (below the root, outside
/// `docker/registry`).
pub const QUARANTINE: &str = "regfsck-lost+found";

/// Checks that `rel` is a plain relative path below `docker/registry/v2` with no symlink
/// component, and returns it as an absolute path.
fn checked(root: &Root, rel: &str) -> Result<std::path::PathBuf> {
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
        self.step();
        std::fs::create_dir_all(&p).map_err(|e| Error::io(p, e))
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let a = checked(&self.root, from)?;
        let b = checked(&self.root, to)?;
        self.step();
        std::fs::rename(&a, &b).map_err(|e| Error::io(a, e))
    }

    fn create_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let p = checked(&self.root, rel)?;
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(Error::io(
                p,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let tmp = checked(&self.root, &format!("{rel}.regfsck-tmp"))?;
        self.step();
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&p, e)
        })
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
