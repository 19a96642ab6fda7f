//! Small filesystem helpers that never follow symlinks.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

/// Opens `path` for reading, refusing to follow a symlink in its last component.
///
/// # Errors
/// The I/O error from `open(2)`; a symlink gives `ELOOP`.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    let open = |extra: i32| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | extra)
            .open(path)
    };
    if !no_noatime() {
        match open(libc::O_NOATIME) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => NO_NOATIME.store(true, Relaxed),
            r => return r,
        }
    }
    open(0)
}

/// Whether `O_NOATIME` was refused (`EPERM`: the files are not the caller's and it lacks
/// `CAP_FOWNER`); from then on files are opened without it. With it, reading the registry
/// (every link, manifest and listing) writes nothing, not even access times: under `relatime`
/// the first read of a file in a day, or since it changed, would update its inode.
static NO_NOATIME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn no_noatime() -> bool {
    NO_NOATIME.load(Relaxed)
}

/// What reading a bounded small file gave.
#[derive(Debug)]
pub enum Bounded {
    /// The whole content.
    Content(Vec<u8>),
    /// The file is larger than the limit; `len` is its size.
    TooLarge {
        /// The file's size.
        len: u64,
    },
}

/// Reads a small regular file (a link, `startedat`) with as few system calls as possible:
/// open, fstat, one read, close. Returns the content (or its size when over `limit`) and the
/// file's metadata.
///
/// # Errors
/// I/O errors, or `InvalidInput` when `path` is not a regular file.
pub fn read_small(path: &Path, limit: u64) -> io::Result<(Bounded, std::fs::Metadata)> {
    let mut file = open_nofollow(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > limit {
        return Ok((Bounded::TooLarge { len: meta.len() }, meta));
    }
    // A regular file returns short reads only at its end, so one read of len+1 bytes sees it all.
    let mut buf = vec![0u8; meta.len() as usize + 1];
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if n == meta.len() as usize {
            break;
        }
    }
    if n as u64 > limit {
        return Ok((Bounded::TooLarge { len: n as u64 }, meta));
    }
    buf.truncate(n);
    Ok((Bounded::Content(buf), meta))
}

/// Reads at most `limit` bytes of a regular file, without following symlinks.
///
/// # Errors
/// I/O errors, or `InvalidInput` when `path` is not a regular file.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Bounded> {
    read_small(path, limit).map(|(content, _)| content)
}

/// An open directory that files are read relative to: never through a symlink in any
/// component, never outside it (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or
/// component by component with `O_NOFOLLOW` where the kernel lacks `openat2`). Opening
/// relative to a held directory also spares the kernel the walk of the root's path on every
/// one of the tens of thousands of link files a scan reads.
#[derive(Debug)]
pub struct Dir {
    fd: rustix::fd::OwnedFd,
}

/// Whether `openat2(2)` is known to be missing (kernel before 5.6, or filtered out).
static NO_OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Dir {
    /// Opens the directory `path` (following symlinks in `path` itself: the caller named it).
    ///
    /// # Errors
    /// The I/O error from `open(2)`.
    pub fn open(path: &Path) -> io::Result<Dir> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if !no_noatime() {
            match rustix::fs::open(path, flags | OFlags::NOATIME, Mode::empty()) {
                Err(e) if e == rustix::io::Errno::PERM => NO_NOATIME.store(true, Relaxed),
                r => return Ok(Dir { fd: r? }),
            }
        }
        let fd = rustix::fs::open(path, flags, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// The entries of this directory (not `.` and `..`), each with its kind when the
    /// filesystem tells it in the listing (`d_type`), read through this handle (consumed):
    /// opened with `O_NOATIME`, listing it does not touch its access time.
    ///
    /// # Errors
    /// The I/O error from `getdents(2)`.
    pub fn entries(self) -> io::Result<Vec<(std::ffi::OsString, Option<rustix::fs::FileType>)>> {
        use std::os::unix::ffi::OsStringExt;
        let mut out = Vec::new();
        // The handle itself (`read_from` would open `.` again).
        for e in rustix::fs::Dir::new(self.fd)? {
            let e = e?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let ft = e.file_type();
            out.push((
                std::ffi::OsString::from_vec(name.to_vec()),
                (ft != rustix::fs::FileType::Unknown).then_some(ft),
            ));
        }
        Ok(out)
    }

    /// Opens `rel` (relative, `/`-separated, no `.` or `..` components) for reading.
    fn open_file(&self, rel: &str) -> io::Result<rustix::fd::OwnedFd> {
        use rustix::fs::OFlags;
        self.open_with(
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        )
    }

    /// Opens the directory `rel` below this one (same rules as files: no symlink anywhere).
    ///
    /// # Errors
    /// I/O errors; `ELOOP` for a symlink on the way, `ENOTDIR` for a file.
    pub fn open_dir(&self, rel: &str) -> io::Result<Dir> {
        use rustix::fs::OFlags;
        let fd = self.open_with(
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::DIRECTORY,
        )?;
        Ok(Dir { fd })
    }

    /// Whether every component of `rel` is in the kernel's cache of names (`openat2` with
    /// `RESOLVE_CACHED`, Linux 5.12: no disk read to find out); `None` when that cannot be told
    /// (no `openat2`, or a lookup found `rel` not there). A name never looked up reads as not
    /// cached whether or not it exists: ask about names a listing just gave.
    pub fn is_cached(&self, rel: &str) -> Option<bool> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use std::sync::atomic::Ordering;
        if NO_OPENAT2.load(Ordering::Relaxed) || rel.is_empty() || rel.starts_with('/') {
            return None;
        }
        match rustix::fs::openat2(
            &self.fd,
            rel,
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::CACHED,
        ) {
            Ok(_) => Some(true),
            Err(e) if e == rustix::io::Errno::AGAIN => Some(false),
            Err(_) => None,
        }
    }

    /// Opens `rel` with `flags` and `O_NOATIME` (see [`NO_NOATIME`]): without it once it was
    /// refused.
    fn open_with(&self, rel: &str, flags: rustix::fs::OFlags) -> io::Result<rustix::fd::OwnedFd> {
        use rustix::fs::OFlags;
        if !no_noatime() {
            match self.open_exactly(rel, flags | OFlags::NOATIME) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => NO_NOATIME.store(true, Relaxed),
                r => return r,
            }
        }
        self.open_exactly(rel, flags)
    }

    fn open_exactly(
        &self,
        rel: &str,
        flags: rustix::fs::OFlags,
    ) -> io::Result<rustix::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use std::sync::atomic::Ordering;
        if rel.is_empty()
            || rel.starts_with('/')
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a plain relative path: {rel:?}"),
            ));
        }
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            match rustix::fs::openat2(
                &self.fd,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                // EPERM with O_NOATIME may be the flag's: the caller retries without it (where a
                // filter refuses openat2 itself, both end up off: the walk below, no O_NOATIME).
                Err(e) if e == rustix::io::Errno::PERM && flags.contains(OFlags::NOATIME) => {
                    return Err(e.into());
                }
                Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                }
                // EAGAIN: a rename raced the lookup; the component walk below is race-free.
                Err(e) if e == rustix::io::Errno::AGAIN => {}
                r => return r.map_err(io::Error::from),
            }
        }
        // Component by component: every directory opened with O_NOFOLLOW | O_DIRECTORY.
        let mut parts = rel.split('/').peekable();
        let mut dir: Option<rustix::fd::OwnedFd> = None;
        while let Some(part) = parts.next() {
            let at = dir.as_ref().unwrap_or(&self.fd);
            if parts.peek().is_none() {
                return rustix::fs::openat(at, part, flags, Mode::empty()).map_err(io::Error::from);
            }
            let next = rustix::fs::openat(
                at,
                part,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| {
                // A symlinked directory gives ENOTDIR with O_DIRECTORY | O_NOFOLLOW: say ELOOP,
                // as openat2 does.
                if e == rustix::io::Errno::NOTDIR {
                    io::Error::from_raw_os_error(libc::ELOOP)
                } else {
                    io::Error::from(e)
                }
            })?;
            dir = Some(next);
        }
        Err(io::Error::from(io::ErrorKind::InvalidInput))
    }

    /// Reads the small file `rel` below this directory: open, read, close (no `stat`: a short
    /// read of a regular file is its end). A symlink anywhere on the way gives `ELOOP`.
    ///
    /// # Errors
    /// I/O errors; a directory gives `EISDIR`.
    pub fn read_small(&self, rel: &str, limit: u64) -> io::Result<Bounded> {
        thread_local! {
            /// Reused for every read on this thread: link files and manifests are small,
            /// and a fresh buffer per file costs more than the copy out of this one.
            static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 * 1024]);
        }
        let fd = self.open_file(rel)?;
        let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
        BUF.with_borrow_mut(|buf| {
            let mut n = 0;
            loop {
                let end = buf.len().min(cap);
                match rustix::io::read(&fd, &mut buf[n..end]) {
                    Ok(0) => break,
                    Ok(k) => {
                        n += k;
                        if n < end {
                            break;
                        }
                        if n >= cap {
                            let len = rustix::fs::fstat(&fd)
                                .map(|s| u64::try_from(s.st_size).unwrap_or(0))
                                .unwrap_or(0);
                            return Ok(Bounded::TooLarge {
                                len: len.max(n as u64),
                            });
                        }
                        // Larger than the buffer (a big manifest): grow it.
                        let grown = (buf.len() * 2).min(cap);
                        buf.resize(grown, 0);
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let content = buf[..n].to_vec();
            if buf.len() > 64 * 1024 {
                buf.truncate(64 * 1024);
                buf.shrink_to_fit();
            }
            Ok(Bounded::Content(content))
        })
    }
}
