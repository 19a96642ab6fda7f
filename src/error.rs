//! Operational errors: the job cannot be done at all.
//!
//! Damage found in the registry is never an `Error`; it is a [`crate::Finding`]. An `Error` means
//! regfsck could not do what was asked: the root is not a registry, an argument is wrong, the
//! root itself cannot be read, or the user interrupted the run.

use std::path::PathBuf;

/// What went wrong when the job itself could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory given is not a registry storage root.
    #[error(
        "{path} is not a registry storage root (expected a directory holding docker/registry/v2, or the v2 directory itself)"
    )]
    NotARegistry {
        /// The directory that was given.
        path: PathBuf,
    },
    /// No root was given in any of the accepted ways.
    #[error(
        "no registry root given: use --root DIR, --config FILE or REGFSCK_ROOT (verify, ls, show, gc, du and serve also take it as ROOT)"
    )]
    NoRoot,
    /// Two different roots were given.
    #[error("two different roots given: {first} and {second}; name one")]
    ConflictingRoots {
        /// The first root, and where it came from.
        first: String,
        /// The second root, and where it came from.
        second: String,
    },
    /// The registry configuration file could not be used.
    #[error("registry config {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// An I/O error on a path regfsck needs in order to work at all.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error writing the report.
    #[error("writing the report")]
    Output(#[source] std::io::Error),
    /// The thread pool could not be built.
    #[error("cannot start worker threads: {0}")]
    ThreadPool(String),
    /// A repository name that breaks the registry's grammar.
    #[error("invalid repository name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A repository that is not in the layout.
    #[error("no repository {name:?} in this registry")]
    UnknownRepository {
        /// The name given.
        name: String,
    },
    /// A retention policy (command line or file) that cannot be used.
    #[error("bad policy: {0}")]
    Policy(String),
    /// A command line naming what is not there, or not well formed (exit 16).
    #[error("{0}")]
    Usage(String),
    /// A change that needs confirmation was not confirmed.
    #[error(
        "not confirmed: nothing changed (answer y on a terminal, or pass --yes; --dry-run shows the plan)"
    )]
    NotConfirmed,
    /// A destructive command will not run: what it would need to see cannot be read.
    #[error("{0}")]
    Refused(String),
    /// The user interrupted the run.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// The exit status a run that ends with this error exits with.
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            Error::Interrupted => crate::ExitStatus::INTERRUPTED,
            e if e.is_usage() => crate::ExitStatus::USAGE,
            _ => crate::ExitStatus::OPERATIONAL,
        }
    }

    /// Whether this is a usage error (exit 16) rather than an operational one (exit 8).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::ConflictingRoots { .. }
                | Error::InvalidName { .. }
                | Error::Policy(_)
                | Error::Usage(_)
                | Error::NotConfirmed
        )
    }

    /// [`Error::Interrupted`] once `interrupt` is set: the check between the steps of every
    /// destructive command.
    ///
    /// # Errors
    /// [`Error::Interrupted`].
    pub fn check_interrupt(interrupt: &std::sync::atomic::AtomicBool) -> Result<()> {
        if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
