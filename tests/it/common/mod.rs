//! Shared test helpers: unpack the real-registry sample, run the binary, look things up.

#![allow(dead_code)]

pub mod s3;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use regfsck::graph::{Graph, ManifestState, TagTarget};
use regfsck::layout::{RepoName, Root, TagName};
use regfsck::manifest::{Manifest, Role};
use regfsck::scan::Inventory;
use regfsck::{Digest, graph, layout, scan};

/// The fixed clock for reports (upload ages).
pub const NOW: &str = "2026-11-25T00:00:00Z";

/// Path of a committed sample registry tarball.
pub fn sample_tar(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/registries")
        .join(format!("{name}.tar"))
}

/// A copy of a sample registry in a temporary directory.
pub struct Sample {
    pub dir: tempfile::TempDir,
}

impl Sample {
    /// Unpacks `testdata/registries/<name>.tar`, keeping mtimes and empty directories.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::open(sample_tar(name)).unwrap();
        let mut ar = tar::Archive::new(f);
        ar.set_preserve_mtime(true);
        ar.unpack(dir.path()).unwrap();
        Sample { dir }
    }

    /// The real registry's sample.
    pub fn registry() -> Self {
        Sample::new("sample")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Absolute path of a root-relative path.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Scans and builds the graph of the current state.
    pub fn graph(&self) -> (Inventory, Graph) {
        let root = Root::open(self.root()).unwrap();
        let inv = scan::scan(&root, scan::Depth::Thorough).unwrap();
        let g = graph::build(&root, &inv, std::time::SystemTime::now());
        (inv, g)
    }

    /// The digest `repo:tag` points at.
    pub fn tag(&self, repo: &str, tag: &str) -> Digest {
        let (_, g) = self.graph();
        match &g.repos[&RepoName::parse(repo).unwrap()].tags[&TagName::parse(tag).unwrap()] {
            TagTarget::Points(d) => *d,
            TagTarget::Broken => panic!("{repo}:{tag} is broken"),
        }
    }

    /// The parsed manifest `d`.
    pub fn manifest(&self, d: &Digest) -> Manifest {
        let (_, g) = self.graph();
        match g.manifests.get(d) {
            Some(ManifestState::Parsed(m)) => m.clone(),
            other => panic!("{d}: {other:?}"),
        }
    }

    /// The first reference of `role` in manifest `d`.
    pub fn reference(&self, d: &Digest, role: Role) -> Digest {
        self.manifest(d).refs(role).next().unwrap().digest
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.abs(&layout::blob_data(d))
    }

    pub fn layer_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.abs(&layout::layer_link(&RepoName::parse(repo).unwrap(), d))
    }

    pub fn revision_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.abs(&layout::revision_link(&RepoName::parse(repo).unwrap(), d))
    }

    pub fn current_link(&self, repo: &str, tag: &str) -> PathBuf {
        self.abs(&layout::tag_current(
            &RepoName::parse(repo).unwrap(),
            &TagName::parse(tag).unwrap(),
        ))
    }

    /// Runs `regfsck verify --json` and returns (exit code, parsed JSON).
    pub fn verify_json(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let out = regfsck()
            .arg("verify")
            .arg("--json")
            .args(extra)
            .arg(self.root())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), v)
    }
}

/// The binary, with a clean environment for what it reads.
pub fn regfsck() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_regfsck"));
    c.env_remove("REGFSCK_ROOT")
        .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        .env("REGFSCK_NOW", NOW);
    c
}

/// Runs a command; returns `exit_code: N` + stdout + stderr, with the temp root replaced.
pub fn run_and_format(cmd: &mut Command, root: Option<&Path>) -> String {
    let out = cmd.output().unwrap();
    let mut s = format!(
        "exit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(r) = root {
        s = s.replace(&r.display().to_string(), "[ROOT]");
    }
    s
}

/// Filters for output that varies between machines and runs.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"started [0-9a-z ]+ ago", "started [AGE] ago"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[ROOT]"),
    ]
}

/// Snapshot of a command's exit code, stdout and stderr, with filters.
#[macro_export]
macro_rules! regfsck_snapshot {
    ($cmd:expr, $root:expr, @$snap:literal) => {{
        let s = $crate::common::run_and_format($cmd, $root);
        insta::with_settings!({filters => $crate::common::filters()}, {
            insta::assert_snapshot!(s, @$snap);
        });
    }};
    ($name:expr, $cmd:expr, $root:expr) => {{
        let s = $crate::common::run_and_format($cmd, $root);
        insta::with_settings!({filters => $crate::common::filters()}, {
            insta::assert_snapshot!($name, s);
        });
    }};
}

/// `(severity, kind, repository, digest)` of each finding, for exact assertions.
pub fn findings(v: &serde_json::Value) -> Vec<(String, String, Option<String>, Option<String>)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
                f.get("repository")
                    .and_then(|r| r.as_str())
                    .map(str::to_string),
                f.get("digest").and_then(|r| r.as_str()).map(str::to_string),
            )
        })
        .collect()
}

/// Findings of `severity` error or warning, as `kind repository digest` strings, sorted.
pub fn problems(v: &serde_json::Value) -> Vec<String> {
    findings(v)
        .into_iter()
        .filter(|f| f.0 != "info")
        .map(|(s, k, r, d)| {
            format!(
                "{s} {k} {} {}",
                r.unwrap_or_else(|| "-".into()),
                d.unwrap_or_else(|| "-".into())
            )
        })
        .collect()
}

impl Sample {
    /// The first tag of `repo`, by name.
    pub fn first_tag(&self, repo: &str) -> String {
        let (_, g) = self.graph();
        g.repos[&RepoName::parse(repo).unwrap()]
            .tags
            .keys()
            .next()
            .unwrap()
            .to_string()
    }

    /// Problems (errors and warnings) now, as `severity kind repository digest` strings.
    pub fn problems(&self) -> Vec<String> {
        problems(&self.verify_json(&[]).1)
    }
}

/// What `after` reports that `before` did not.
pub fn new_problems(before: &[String], after: &[String]) -> Vec<String> {
    after
        .iter()
        .filter(|p| !before.contains(p))
        .cloned()
        .collect()
}

/// Whether manifest role lookup found a layer (test helper re-export).
pub use regfsck::manifest::Role as R;

impl Sample {
    /// The first untagged manifest `regfsck ls --untagged` lists for `repo`.
    pub fn untagged(&self, repo: &str) -> Digest {
        let out = regfsck()
            .args(["ls", "--untagged"])
            .arg(self.root())
            .output()
            .unwrap();
        let prefix = format!("{repo}@");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// A free loopback address.
pub fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Waits (up to 10 s) until something listens on `addr`.
pub fn wait_for(addr: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Snapshot of every path, size and content hash under the root.
pub fn tree(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let content = if e.file_type().is_file() {
                std::fs::read(e.path()).map(|b| b.len()).unwrap_or(0)
            } else {
                0
            };
            let rel = e.path().strip_prefix(root).unwrap_or(e.path());
            format!("{} {content}", rel.display())
        })
        .collect();
    v.sort();
    v
}

/// Errors verify reports now, as `kind repository digest` strings.
pub fn errors(s: &Sample) -> BTreeSet<String> {
    crate::common::findings(&s.verify_json(&[]).1)
        .into_iter()
        .filter(|f| f.0 == "error")
        .map(|f| format!("{} {:?} {:?}", f.1, f.2, f.3))
        .collect()
}

/// Kills the command `cmd` makes (on a fresh sample each time) before its 1st, 2nd, ...
/// change to the tree, until it runs through. After each crash: verify finds no error that was
/// not there before, and `finish` (the same command again, or what else completes the job)
/// leaves exactly the tree of an uninterrupted run, `finished`. Returns the number of crashes.
pub fn crash_at_every_step(
    fresh: &dyn Fn() -> Sample,
    cmd: &dyn Fn(&Sample) -> Command,
    finish: &dyn Fn(&Sample),
    finished: &[String],
) -> usize {
    let before = errors(&fresh());
    let mut crashes = 0;
    for n in 0..500 {
        let s = fresh();
        let out = cmd(&s)
            .env("REGFSCK_TEST_CRASH_AFTER", n.to_string())
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert_eq!(out.status.code(), None, "killed by SIGABRT at step {n}");
        crashes += 1;
        // No reference to a missing blob that was not there before.
        let after = errors(&s);
        let new: Vec<&String> = after.difference(&before).collect();
        assert!(new.is_empty(), "crash at step {n} left {new:?}");
        finish(&s);
        let now = tree(s.root());
        let extra: Vec<&String> = now.iter().filter(|p| !finished.contains(p)).collect();
        let missing: Vec<&String> = finished.iter().filter(|p| !now.contains(p)).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "after a crash at step {n}: extra {extra:?}, missing {missing:?}"
        );
    }
    crashes
}

impl Sample {
    /// Runs `regfsck COMMAND --json ARGS ROOT`; returns the exit code (-1 when killed) and the
    /// parsed document.
    pub fn run_json(&self, command: &str, args: &[&str]) -> (i32, serde_json::Value) {
        let out = regfsck()
            .args([command, "--json"])
            .args(args)
            .arg(self.root())
            .output()
            .unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }
}

/// Removes every `REGISTRY_*` variable of this process from `cmd`'s environment, so that the
/// registry's config overrides a test does not set cannot leak in.
pub fn without_registry_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("REGISTRY_")) {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `cmd` with its output captured, killing it after `secs` seconds if it has not exited
/// (a server that should have refused to start); returns the output.
pub fn output_within(cmd: &mut Command, secs: u64) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().unwrap()
}

/// Whether something accepts connections on `addr` now.
pub fn listening(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

/// Runs `cmd` and asserts its exit code, showing what it printed when it differs.
pub fn exits(cmd: &mut Command, code: i32) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Sample {
    /// Runs `regfsck --root ROOT COMMAND --json --min-age 0 ARGS` (rm-tag, rm-manifest);
    /// returns the exit code, the document (`Null` when none) and stderr.
    pub fn remove(&self, command: &str, args: &[&str]) -> (i32, serde_json::Value, String) {
        let out = regfsck()
            .arg("--root")
            .arg(self.root())
            .args([command, "--json", "--min-age", "0"])
            .args(args)
            .output()
            .unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (
            out.status.code().unwrap(),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The tags `regfsck ls` lists, as `REPO:TAG`.
    pub fn tag_names(&self) -> Vec<String> {
        let out = regfsck().arg("ls").arg(self.root()).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_once(":sha256:").unwrap().0.to_string())
            .collect()
    }
}
