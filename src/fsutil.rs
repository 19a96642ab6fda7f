//! Small filesystem helpers that never follow symlinks.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading, refusing to follow a symlink in its last component.
///
/// # Errors
/// The I/O error from `open(2)`; a symlink gives `ELOOP`.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
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
