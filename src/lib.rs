//! regfsck: check, list and clean the filesystem storage of a Docker/OCI Distribution registry.
//!
//! The registry (CNCF Distribution, `registry:2`, Debian's `docker-registry`) keeps its data
//! below `<root>/docker/registry/v2`:
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>/data                      content, addressed by digest
//! repositories/<name>/_layers/<alg>/<hex>/link           blob usable from this repository
//! repositories/<name>/_manifests/revisions/<alg>/<hex>/link   manifest stored here
//! repositories/<name>/_manifests/tags/<tag>/current/link      what the tag points at
//! repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link   tag history
//! repositories/<name>/_uploads/<uuid>/...                unfinished uploads
//! ```
//!
//! Data flows through the modules in this order, and the folders show it:
//! [`storage`] (all access to registry storage: the local filesystem, object stores) →
//! [`scan`] (one listing, classified by the layout's grammar, links read in batches) →
//! [`graph`] (manifests parsed, references resolved per repository) → an [`action`] (verify,
//! ls, du, gc, prune, repair, rm-repo; [`serve`]) → [`report`]. [`layout`] holds the names and
//! paths every stage shares.
//! Damage is data ([`findings::Finding`]); [`Error`] is kept for "cannot do the job".
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod action;
pub mod app;
pub mod cli;
pub mod config;
pub mod digest;
pub mod error;
pub mod exit;
pub mod findings;
pub mod generate;
pub mod graph;
pub mod layout;
pub mod progress;
pub mod report;
pub mod scan;
pub mod serve;
pub mod sorted;
pub mod storage;

pub use action::{du, gc, jobs, ls, prune, repair, rmrepo, show, verify};
pub use digest::Digest;
pub use error::{Error, Result};
pub use exit::ExitStatus;
pub use findings::{Finding, Kind, Severity};
pub use graph::manifest;
pub use storage::{fsops, fsutil};
