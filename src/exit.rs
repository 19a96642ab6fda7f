//! Exit status, as fsck(8): the bits OR together.

/// An fsck-style exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ExitStatus(pub u8);

impl ExitStatus {
    /// No errors.
    pub const CLEAN: ExitStatus = ExitStatus(0);
    /// Errors were found and corrected.
    pub const CORRECTED: ExitStatus = ExitStatus(1);
    /// Errors were found and left uncorrected.
    pub const UNCORRECTED: ExitStatus = ExitStatus(4);
    /// Operational error.
    pub const OPERATIONAL: ExitStatus = ExitStatus(8);
    /// Usage or syntax error.
    pub const USAGE: ExitStatus = ExitStatus(16);
    /// Cancelled by the user.
    pub const INTERRUPTED: ExitStatus = ExitStatus(32);
}

impl std::ops::BitOr for ExitStatus {
    type Output = ExitStatus;
    fn bitor(self, rhs: ExitStatus) -> ExitStatus {
        ExitStatus(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for ExitStatus {
    fn bitor_assign(&mut self, rhs: ExitStatus) {
        self.0 |= rhs.0;
    }
}

/// The exit-status table, shared by `--help` and the man page.
pub const EXIT_STATUS_HELP: &str = "\
Exit status (as fsck(8); bits may be combined):
  0   no errors (warnings alone exit 0)
  1   errors were found and corrected
  4   errors were found and left uncorrected
  8   operational error (not a registry root, unreadable root, I/O error; a registry
      answering at the --config http.addr while a destructive command would write)
  16  usage error
  32  interrupted";
