//! The actions: what each command does with the scan and the graph. Plans are pure over what
//! the scan found; only the write half of [`crate::storage`] changes anything.

pub mod du;
pub mod gc;
pub mod jobs;
pub mod ls;
pub mod prune;
pub mod repair;
pub mod rmrepo;
pub mod show;
pub mod verify;
