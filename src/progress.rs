//! Progress reporting: the library counts, the binary renders.

/// Receives progress of a long operation. Implementations must be cheap and thread-safe.
pub trait Progress: Sync {
    /// A phase of unknown length starts (scanning, marking, sweeping, pruning): shown with
    /// its name and time so far until the next phase, [`Progress::start`] or
    /// [`Progress::finish`].
    fn phase(&self, _name: &str) {}
    /// A phase starts, with `total` units (bytes when hashing).
    fn start(&self, phase: &str, total: u64);
    /// `n` more units done.
    fn inc(&self, n: u64);
    /// One more item (blob) of `total_items` finished.
    fn item_done(&self, _total_items: u64) {}
    /// The phase is over.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: u64) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}
