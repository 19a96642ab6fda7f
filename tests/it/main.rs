//! Integration tests: the built binary on layouts written by the real registry, and on damaged
//! copies of them.

#![allow(clippy::unwrap_used)]

mod common;

mod cli;
mod damage;
mod gc;
mod generated;
mod hostile;
mod kill;
mod layering;
mod ls;
mod ops;
mod prune;
mod registry;
mod repair;
mod rmmanifest;
mod rmrepo;
mod rmtag;
mod running;
mod s3;
mod s3infra;
mod serve;
mod serve_ui;
mod show;
mod trust;
mod verify;
