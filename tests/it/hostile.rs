//! Hostile and unusual storage: `blobs`/`repositories` moved to another disk behind a symlink,
//! parts regfsck cannot see (a dangling symlink, a symlinked namespace, a directory it may not
//! list), a blob store that is unreachable as a whole, permission denied, names that are not
//! UTF-8, what Distribution v3 leaves behind, and what repair must fix. Each test damages a copy
//! of the real registry's sample and checks exit codes, the exact new finding kinds, and that
//! nothing is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use regfsck::Digest;
use regfsck::digest::{Algorithm, hash_bytes};

use crate::common::{NOW, R, Sample, regfsck, tree};

const V2: &str = "docker/registry/v2";
const REPOS: &str = "docker/registry/v2/repositories";
const BLOBS: &str = "docker/registry/v2/blobs";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs `cmd ARGS ROOT` (the root last, as a positional).
fn run_on(mut cmd: Command, args: &[&str], root: &Path) -> Output {
    cmd.args(args).arg(root).output().unwrap()
}

/// Runs `regfsck ARGS ROOT`.
fn run(root: &Path, args: &[&str]) -> Output {
    run_on(regfsck(), args, root)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// `(severity, kind, path-or-digest)` of every finding, infos included.
fn all_findings(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            let at = if f["path"].is_string() {
                s("path")
            } else {
                s("digest")
            };
            (s("severity"), s("kind"), at)
        })
        .collect()
}

/// What `after` reports that `before` did not (infos included), sorted.
fn new_findings(
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> Vec<(String, String, String)> {
    let b = all_findings(before);
    let mut v: Vec<_> = all_findings(after)
        .into_iter()
        .filter(|f| !b.contains(f))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The distinct kinds of `new`, sorted.
fn kinds_of(new: &[(String, String, String)]) -> Vec<String> {
    let s: BTreeSet<String> = new.iter().map(|f| f.1.clone()).collect();
    s.into_iter().collect()
}

fn kinds(k: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn error_kinds(v: &serde_json::Value) -> Vec<String> {
    all_findings(v)
        .into_iter()
        .filter(|f| f.0 == "error")
        .map(|f| format!("{} {}", f.1, f.2))
        .collect()
}

/// The blobs gc's JSON report sweeps (or would sweep).
fn swept(v: &serde_json::Value) -> BTreeSet<String> {
    v["sweep"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Digests of the blobs whose data file is below `blobs` (`<blobs>/sha256/<hh>/<hex>/data`).
fn blob_set(blobs: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(blobs)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == "data")
        .map(|e| {
            let hex = e.path().parent().unwrap().file_name().unwrap();
            format!("sha256:{}", hex.to_str().unwrap())
        })
        .collect()
}

/// Every digest a `link` file below `dir` names.
fn linked_digests(dir: &Path) -> BTreeSet<Digest> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == "link")
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .parse::<Digest>()
                .unwrap()
        })
        .collect()
}

fn write_blob(s: &Sample, bytes: &[u8]) -> Digest {
    let d = hash_bytes(Algorithm::Sha256, bytes);
    let p = s.blob_path(&d);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    d
}

fn write_link(p: &Path, content: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Moves `rel` (below the root) into `to` and leaves a symlink to it in its place.
fn move_behind_symlink(s: &Sample, rel: &str, to: &Path) {
    std::fs::rename(s.abs(rel), to).unwrap();
    symlink(to, s.abs(rel)).unwrap();
}

/// The layer only busybox-oci has (its last one; the first is the base every image shares).
fn busybox_layer(s: &Sample) -> Digest {
    let m = s.manifest(&s.tag("busybox-oci", "1.1"));
    m.refs(R::Layer).last().unwrap().digest
}

fn busybox_config(s: &Sample) -> Digest {
    s.reference(&s.tag("busybox-oci", "1.1"), R::Config)
}

/// The registry's own `garbage-collect --dry-run` on `root`, with its config outside the root.
fn registry_gc_dry_run(root: &Path) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            root.display()
        ),
    )
    .unwrap();
    Command::new("docker-registry")
        .args(["garbage-collect", "--dry-run"])
        .arg(&cfg)
        .output()
        .expect("docker-registry (installed by .ci/run)")
}

/// Sets the modification time of a file or directory.
fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::open(p).unwrap().set_modified(t).unwrap();
}

fn now() -> SystemTime {
    humantime::parse_rfc3339(NOW).unwrap()
}

/// A UUIDv7 (as Distribution v3.1 names uploads) whose time is `t`.
fn uuid_v7(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let h = format!("{ms:012x}");
    format!("{}-{}-7abc-8def-0123456789ab", &h[..8], &h[8..])
}

// ---------------------------------------------------------------------------------------------
// Running as an unprivileged user (the tests run as root, who may read anything)

const NOBODY: u32 = 65534;

/// Whether regfsck can be run as the unprivileged user 65534 here (root, util-linux's
/// `setpriv`, a binary that user may execute); says why not on stderr.
fn can_drop_privileges() -> bool {
    let probe = tempfile::tempdir().unwrap();
    if std::fs::metadata(probe.path()).unwrap().uid() != 0 {
        eprintln!("skipped: not running as root, so no other user to switch to");
        return false;
    }
    match Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_regfsck"))
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: regfsck cannot run as user 65534 here: {}",
                stderr(&o)
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: setpriv (util-linux) is not available: {e}");
            false
        }
    }
}

/// `regfsck` as the unprivileged user 65534, with regfsck()'s clean environment.
fn nobody() -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_regfsck"))
        .env_remove("REGFSCK_ROOT")
        .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        .env("REGFSCK_NOW", NOW);
    c
}

/// A sample owned by user 65534 (as a registry running as that user owns its storage), in a
/// directory that user can reach. `None` (with a message) when the temporary directory's
/// parents are closed to other users.
fn nobody_sample() -> Option<Sample> {
    let s = Sample::registry();
    for a in s.root().ancestors().skip(1) {
        let m = std::fs::metadata(a).unwrap();
        if m.mode() & 0o001 == 0 {
            eprintln!("skipped: {} is not searchable by other users", a.display());
            return None;
        }
    }
    for e in walkdir::WalkDir::new(s.root()) {
        let e = e.unwrap();
        std::os::unix::fs::lchown(e.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(s.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(s)
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. Symlinked storage

#[test]
fn blobs_and_repositories_on_another_disk_are_followed() {
    let plain = Sample::registry();
    let moved = Sample::registry();
    let disk = tempfile::tempdir().unwrap();
    let (blobs, repos) = (disk.path().join("blobs"), disk.path().join("repositories"));
    move_behind_symlink(&moved, BLOBS, &blobs);
    move_behind_symlink(&moved, REPOS, &repos);

    let (c0, v0) = plain.verify_json(&[]);
    let (c1, v1) = moved.verify_json(&[]);
    assert_eq!((c0, c1), (0, 0), "{v1:#}");
    assert_eq!(
        new_findings(&v0, &v1),
        vec![
            ("info".into(), "symlinked_storage".into(), BLOBS.into()),
            ("info".into(), "symlinked_storage".into(), REPOS.into()),
        ]
    );
    // Everything below the symlinks is seen: the same counts.
    for k in [
        "blobs",
        "bytes",
        "blobs_hashed",
        "repositories",
        "tags",
        "manifests",
        "orphan_blobs",
        "orphan_bytes",
        "errors",
        "warnings",
    ] {
        assert_eq!(v1["summary"][k], v0["summary"][k], "summary.{k}");
    }
    assert_eq!(
        v1["summary"]["infos"].as_u64().unwrap(),
        v0["summary"]["infos"].as_u64().unwrap() + 2
    );
    assert_eq!(v1["summary"]["complete"], true);

    // A real gc sweeps the same blobs, on the other disk, through the symlinks.
    let (cp, gp) = plain.run_json("gc", &["--min-age", "0"]);
    let (cm, gm) = moved.run_json("gc", &["--min-age", "0"]);
    assert_eq!((cp, cm), (0, 0), "{gm:#}");
    assert!(!swept(&gp).is_empty());
    assert_eq!(swept(&gm), swept(&gp));
    assert_eq!(gm["applied"]["blobs"], gp["applied"]["blobs"]);
    assert_eq!(gm["applied"]["links"], gp["applied"]["links"]);
    assert_eq!(blob_set(&blobs), blob_set(&plain.abs(BLOBS)));
    for d in swept(&gm) {
        let d: Digest = d.parse().unwrap();
        let dir = blobs.join("sha256").join(&d.hex()[..2]).join(d.hex());
        assert!(!dir.exists(), "{d} still on the other disk");
    }
    // The symlinks stay, pointing where they pointed.
    for (rel, to) in [(BLOBS, &blobs), (REPOS, &repos)] {
        let m = std::fs::symlink_metadata(moved.abs(rel)).unwrap();
        assert!(m.file_type().is_symlink(), "{rel} is no longer a symlink");
        assert_eq!(&std::fs::read_link(moved.abs(rel)).unwrap(), to);
    }
    let (c, v) = moved.verify_json(&[]);
    assert_eq!(c, 0, "{v:#}");
    assert_eq!(v["summary"]["errors"], 0);
    assert_eq!(v["summary"]["orphan_blobs"], 0);
}

#[test]
fn a_symlinked_docker_registry_directory_is_followed() {
    let plain = Sample::registry();
    let moved = Sample::registry();
    let disk = tempfile::tempdir().unwrap();
    move_behind_symlink(&moved, "docker/registry", &disk.path().join("registry"));
    let (c0, v0) = plain.verify_json(&[]);
    let (c1, v1) = moved.verify_json(&[]);
    assert_eq!((c0, c1), (0, 0), "{v1:#}");
    assert_eq!(
        new_findings(&v0, &v1),
        vec![(
            "info".into(),
            "symlinked_storage".into(),
            "docker/registry".into()
        )]
    );
    let (_, gp) = plain.run_json("gc", &["--dry-run", "--min-age", "0"]);
    let (c, gm) = moved.run_json("gc", &["--dry-run", "--min-age", "0"]);
    assert_eq!(c, 0, "{gm:#}");
    assert_eq!(swept(&gm), swept(&gp));
}

#[test]
fn a_symlink_below_repositories_is_an_error_and_not_followed() {
    let plain = Sample::registry();
    let s = Sample::registry();
    let elsewhere = tempfile::tempdir().unwrap();
    let team = elsewhere.path().join("team");
    move_behind_symlink(&s, &format!("{REPOS}/team"), &team);
    let (_, v0) = plain.verify_json(&[]);
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 12, "an error, and a part of the tree not seen: {v:#}");
    let new = new_findings(&v0, &v);
    assert!(
        new.contains(&("error".into(), "symlink".into(), format!("{REPOS}/team"))),
        "{new:?}"
    );
    // Its three tags (team/app:latest, team/app:v1, team/app/api:latest) are not read.
    assert_eq!(v["summary"]["tags"], 6);
    let problems: Vec<_> = new.iter().filter(|f| f.0 != "info").collect();
    assert_eq!(problems.len(), 1, "only the symlink: {new:?}");
    assert!(
        all_findings(&v)
            .iter()
            .all(|f| !f.2.starts_with(&format!("{REPOS}/team/"))),
        "something below the symlink was read"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. What gc --force (and every other destructive command) could not see

/// With part of the layout unseen: gc (even forced) exits 8, verify sets bit 8, repair and
/// rm-repo refuse with 8 (repair naming `why`), and none of them changes a byte, here or
/// behind the symlink.
fn nothing_destructive_runs(
    s: &Sample,
    outside: Option<&Path>,
    cmd: &dyn Fn() -> Command,
    why: &str,
) {
    let root = s.root();
    let snapshot = || (tree(root), outside.map(tree));
    let before = snapshot();
    for args in [
        &["gc", "--force", "--min-age", "0"][..],
        &["gc", "--force", "--delete-untagged", "--min-age", "0"][..],
    ] {
        let out = run_on(cmd(), args, root);
        assert_eq!(code(&out), 8, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("refusing to sweep"),
            "{}",
            stderr(&out)
        );
        assert!(snapshot() == before, "{args:?} changed the tree");
    }
    let out = run_on(cmd(), &["verify", "--json"], root);
    assert!(
        matches!(code(&out), 8 | 12),
        "verify exited {}: {}",
        code(&out),
        stderr(&out)
    );
    assert_eq!(json(&out)["summary"]["complete"], false);
    let out = run_on(cmd(), &["repair", "--yes"], root);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to repair") && stderr(&out).contains(why),
        "{}",
        stderr(&out)
    );
    assert!(snapshot() == before, "repair changed the tree");
    let mut rm = cmd();
    rm.arg("--root").arg(root).args(["rm-repo", "alpine-mini"]);
    let out = rm.output().unwrap();
    assert_eq!(code(&out), 8, "rm-repo: {}", stderr(&out));
    assert!(snapshot() == before, "rm-repo changed the tree");
}

#[test]
fn nothing_is_swept_behind_a_dangling_repositories_symlink() {
    // An unmounted disk: v2/repositories points at nothing.
    let s = Sample::registry();
    std::fs::remove_dir_all(s.abs(REPOS)).unwrap();
    let gone = tempfile::tempdir().unwrap().path().join("repositories");
    symlink(&gone, s.abs(REPOS)).unwrap();
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 12, "{v:#}");
    assert!(
        error_kinds(&v).contains(&format!("dir_unreadable {REPOS}")),
        "{v:#}"
    );
    nothing_destructive_runs(&s, None, &regfsck, REPOS);
    // What reads the layout says it could not see it all.
    for cmd in ["ls", "du"] {
        let out = run(s.root(), &[cmd]);
        assert_eq!(code(&out), 8, "{cmd}: {}{}", stdout(&out), stderr(&out));
    }
}

#[test]
fn nothing_is_swept_behind_a_symlinked_namespace() {
    let s = Sample::registry();
    let elsewhere = tempfile::tempdir().unwrap();
    move_behind_symlink(&s, &format!("{REPOS}/team"), &elsewhere.path().join("team"));
    nothing_destructive_runs(
        &s,
        Some(elsewhere.path()),
        &regfsck,
        &format!("{REPOS}/team"),
    );
    let out = regfsck()
        .arg("--root")
        .arg(s.root())
        .args(["rm-repo", "busybox-oci"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to remove"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn prune_refuses_when_a_selected_repository_is_partly_unseen() {
    // The revisions of alpine-mini on another disk (a symlink regfsck does not follow).
    let s = Sample::registry();
    let elsewhere = tempfile::tempdir().unwrap();
    let rel = format!("{REPOS}/alpine-mini/_manifests/revisions/sha256");
    move_behind_symlink(&s, &rel, &elsewhere.path().join("sha256"));
    let before = (tree(s.root()), tree(elsewhere.path()));
    let out = run(s.root(), &["prune", "--keep-last", "1", "--force"]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to prune"),
        "{}",
        stderr(&out)
    );
    assert!((tree(s.root()), tree(elsewhere.path())) == before);
    nothing_destructive_runs(&s, Some(elsewhere.path()), &regfsck, &rel);
}

#[test]
fn nothing_is_swept_behind_a_directory_that_cannot_be_listed() {
    if !can_drop_privileges() {
        return;
    }
    let Some(s) = nobody_sample() else { return };
    chmod(&s.abs(&format!("{REPOS}/team")), 0o000);
    let out = run_on(nobody(), &["verify", "--json"], s.root());
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert!(
        error_kinds(&json(&out)).contains(&format!("dir_unreadable {REPOS}/team")),
        "{}",
        stdout(&out)
    );
    nothing_destructive_runs(&s, None, &nobody, &format!("{REPOS}/team"));
    // prune: the tags of a selected repository cannot be listed.
    chmod(&s.abs(&format!("{REPOS}/team")), 0o755);
    chmod(
        &s.abs(&format!("{REPOS}/alpine-mini/_manifests/tags")),
        0o000,
    );
    let before = tree(s.root());
    let out = run_on(
        nobody(),
        &["prune", "--keep-last", "1", "--force"],
        s.root(),
    );
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to prune"),
        "{}",
        stderr(&out)
    );
    assert!(tree(s.root()) == before, "prune changed the tree");
}

#[test]
fn a_tag_directory_that_cannot_be_listed_is_unseen() {
    if !can_drop_privileges() {
        return;
    }
    let Some(s) = nobody_sample() else { return };
    let out = run_on(nobody(), &["verify", "--json"], s.root());
    let clean = json(&out);
    let rel = format!("{REPOS}/alpine-mini/_manifests/tags/latest");
    chmod(&s.abs(&rel), 0o000);
    let out = run_on(nobody(), &["verify", "--json"], s.root());
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    // Unreadable, never "missing": not tag_no_current.
    let new: Vec<_> = new_findings(&clean, &json(&out))
        .into_iter()
        .filter(|f| f.0 != "info")
        .collect();
    assert_eq!(
        new,
        vec![(
            "error".to_string(),
            "dir_unreadable".to_string(),
            rel.clone()
        )]
    );
    let before = tree(s.root());
    // gc --force cannot see that tag (the manifest it names may have no revision link).
    let out = run_on(
        nobody(),
        &["gc", "--force", "--delete-untagged", "--min-age", "0"],
        s.root(),
    );
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(tree(s.root()) == before, "gc changed the tree");
    // prune --force must not plan the removal of a tag it cannot read (it writes its job,
    // fails on the rename, and the next gc or prune removes the tag).
    let out = run_on(
        nobody(),
        &["prune", "--keep-last", "1", "--force"],
        s.root(),
    );
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(tree(s.root()) == before, "prune changed the tree");
}

/// gc takes `_layers` links from their directory names without reading the link files (they
/// do not decide what is reachable, and reading them would double gc's file opens): a layer
/// link file that is gone while its directory stays is an error verify reports, but it does
/// not stop gc, and it does not change what gc keeps (documented in the README).
#[test]
fn a_layer_link_file_gone_does_not_change_what_gc_keeps() {
    let s = Sample::registry();
    let (_, clean) = s.run_json("gc", &["--dry-run", "--min-age", "0"]);
    std::fs::remove_file(s.layer_link("busybox-oci", &busybox_config(&s))).unwrap();
    assert_eq!(s.verify_json(&[]).0, 4);
    let (c, v) = s.run_json("gc", &["--dry-run", "--min-age", "0"]);
    assert_eq!(c, 0, "{v:#}");
    assert_eq!(v["sweep"]["blobs"], clean["sweep"]["blobs"]);
}

#[test]
fn nothing_is_swept_behind_a_symlinked_revisions_directory() {
    // alpine-mini's whole `_manifests/revisions` on another disk: its untagged revision
    // b50e31… (and that manifest's config and layer) are named only there.
    let s = Sample::registry();
    let elsewhere = tempfile::tempdir().unwrap();
    let untagged = s.untagged("alpine-mini");
    let behind: BTreeSet<String> = s
        .manifest(&untagged)
        .references
        .iter()
        .map(|r| r.digest.to_string())
        .chain([untagged.to_string()])
        .collect();
    move_behind_symlink(
        &s,
        &format!("{REPOS}/alpine-mini/_manifests/revisions"),
        &elsewhere.path().join("revisions"),
    );
    let (_, plan) = s.run_json("gc", &["--dry-run", "--force", "--min-age", "0"]);
    let would: Vec<_> = swept(&plan).intersection(&behind).cloned().collect();
    assert!(would.is_empty(), "gc --force would sweep {would:?}");
    let why = format!("{REPOS}/alpine-mini/_manifests/revisions");
    nothing_destructive_runs(&s, Some(elsewhere.path()), &regfsck, &why);
}

#[test]
fn prune_refuses_when_the_unseen_part_holds_the_selected_repositories() {
    // v2/repositories on an unmounted disk: every repository is unseen.
    let s = Sample::registry();
    std::fs::remove_dir_all(s.abs(REPOS)).unwrap();
    symlink("/nonexistent/regfsck-test/repositories", s.abs(REPOS)).unwrap();
    let out = run(s.root(), &["prune", "--keep-last", "1", "--force"]);
    assert_eq!(code(&out), 8, "{}{}", stdout(&out), stderr(&out));
    // team/app and team/app/api behind a symlinked namespace, selected by name.
    let s = Sample::registry();
    let elsewhere = tempfile::tempdir().unwrap();
    move_behind_symlink(&s, &format!("{REPOS}/team"), &elsewhere.path().join("team"));
    for repo in ["team/**", "team/app"] {
        let out = run(
            s.root(),
            &["prune", "--repo", repo, "--keep-last", "1", "--force"],
        );
        assert_eq!(
            code(&out),
            8,
            "--repo {repo}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn rm_repo_names_the_unseen_tree_not_a_missing_repository() {
    // v2/repositories on an unmounted disk.
    let s = Sample::registry();
    std::fs::remove_dir_all(s.abs(REPOS)).unwrap();
    symlink("/nonexistent/regfsck-test/repositories", s.abs(REPOS)).unwrap();
    // team/ behind a symlink regfsck does not follow.
    let t = Sample::registry();
    let elsewhere = tempfile::tempdir().unwrap();
    move_behind_symlink(&t, &format!("{REPOS}/team"), &elsewhere.path().join("team"));
    for (s, name, unseen) in [
        (&s, "alpine-mini", REPOS.to_string()),
        (&t, "team/app", format!("{REPOS}/team")),
    ] {
        let out = regfsck()
            .arg("--root")
            .arg(s.root())
            .args(["rm-repo", name])
            .output()
            .unwrap();
        assert_eq!(code(&out), 8);
        let err = stderr(&out);
        assert!(
            err.contains("refusing") && err.contains(&unseen) && !err.contains("no repository"),
            "{name}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The blob store unreachable as a whole

/// repair refuses (8), saying the blob store holds none of the manifests, and changes nothing.
fn repair_refuses_for_the_blob_store(s: &Sample) {
    let before = tree(s.root());
    let out = run(s.root(), &["repair", "--yes"]);
    assert_eq!(code(&out), 8, "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to repair") && err.contains("the blob store holds none of them"),
        "{err}"
    );
    assert!(
        tree(s.root()) == before,
        "a refused repair changed the tree"
    );
    assert!(!s.abs("regfsck-lost+found").exists());
}

#[test]
fn repair_refuses_on_an_empty_blob_store() {
    // An unmounted volume: blobs/ is an empty directory.
    let s = Sample::registry();
    std::fs::remove_dir_all(s.abs(BLOBS)).unwrap();
    std::fs::create_dir(s.abs(BLOBS)).unwrap();
    assert_eq!(s.verify_json(&[]).0, 4);
    repair_refuses_for_the_blob_store(&s);
}

#[test]
fn repair_refuses_on_a_metadata_only_restore() {
    // The blob directories are there, not one data file.
    let s = Sample::registry();
    for e in walkdir::WalkDir::new(s.abs(BLOBS)) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    repair_refuses_for_the_blob_store(&s);
}

#[test]
fn repair_and_gc_refuse_behind_a_dangling_blobs_symlink() {
    let s = Sample::registry();
    std::fs::remove_dir_all(s.abs(BLOBS)).unwrap();
    symlink("/nonexistent/regfsck-test/blobs", s.abs(BLOBS)).unwrap();
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 12, "{v:#}");
    // The manifests are in a part that could not be read: unreadable, never missing.
    let errs = error_kinds(&v);
    assert!(errs.iter().all(|e| !e.contains("missing")), "{errs:?}");
    nothing_destructive_runs(&s, None, &regfsck, "blob store");
}

#[test]
fn gc_refuses_when_no_repository_holds_a_manifest() {
    // repositories/ points at an empty directory (the wrong disk mounted): blobs but no
    // manifest at all.
    let s = Sample::registry();
    let empty = tempfile::tempdir().unwrap();
    std::fs::remove_dir_all(s.abs(REPOS)).unwrap();
    symlink(empty.path(), s.abs(REPOS)).unwrap();
    let before = tree(s.root());
    for args in [
        &["--min-age", "0"][..],
        &["--dry-run", "--min-age", "0"][..],
    ] {
        let (c, v) = s.run_json("gc", args);
        assert_eq!(c, 4, "{args:?}: {v:#}");
        assert_eq!(v["refused"], true);
        assert_eq!(v["no_manifests"], true);
        assert!(tree(s.root()) == before, "a refused gc deleted something");
    }
    // Asked explicitly, it sweeps.
    let (c, v) = s.run_json("gc", &["--force", "--min-age", "0"]);
    assert_eq!(c, 0, "{v:#}");
    assert_eq!(v["applied"]["blobs"], 35);
    assert!(blob_set(&s.abs(BLOBS)).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. Permission denied is "unreadable", never "missing"

#[test]
fn permission_denied_is_unreadable_never_missing() {
    if !can_drop_privileges() {
        return;
    }
    let Some(s) = nobody_sample() else { return };
    let verify = |s: &Sample| {
        let out = run_on(nobody(), &["verify", "--json"], s.root());
        (code(&out), json(&out))
    };
    let (c, clean) = verify(&s);
    assert_eq!(c, 0, "the sample as user 65534: {clean:#}");

    // A shard directory holding a referenced layer cannot be listed.
    let layer = busybox_layer(&s);
    let shard = s
        .blob_path(&layer)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    chmod(&shard, 0o000);
    let (c, v) = verify(&s);
    assert_eq!(c, 12, "errors + the scan could not complete: {v:#}");
    let shard_rel = format!("{BLOBS}/sha256/{}", &layer.hex()[..2]);
    assert_eq!(
        new_findings(&clean, &v),
        vec![("error".into(), "dir_unreadable".into(), shard_rel)]
    );
    assert!(
        all_findings(&v)
            .iter()
            .all(|f| !matches!(f.1.as_str(), "blob_missing" | "manifest_missing")),
        "{v:#}"
    );
    let before = tree(s.root());
    for args in [
        &["gc", "--min-age", "0"][..],
        &["gc", "--force", "--min-age", "0"][..],
    ] {
        let out = run_on(nobody(), args, s.root());
        assert_eq!(code(&out), 8, "{args:?}: {}", stderr(&out));
        assert!(tree(s.root()) == before, "{args:?} deleted something");
    }
    chmod(&shard, 0o755);

    // The layer's data file cannot be read.
    chmod(&s.blob_path(&layer), 0o000);
    let (c, v) = verify(&s);
    assert_eq!(c, 4, "{v:#}");
    let new = new_findings(&clean, &v);
    assert_eq!(kinds_of(&new), kinds(&["blob_unreadable"]), "{new:?}");
    let hit = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "blob_unreadable")
        .unwrap();
    assert_eq!(hit["digest"], layer.to_string());
}

// ---------------------------------------------------------------------------------------------
// 5. Names that are not UTF-8

#[test]
fn a_repository_whose_name_is_not_utf8_keeps_its_blobs() {
    let s = Sample::registry();
    let (_, v0) = s.verify_json(&[]);
    let (_, du0) = s.run_json("du", &[]);
    let (_, gc0) = s.run_json("gc", &["--dry-run", "--min-age", "0"]);
    let orphans0 = swept(&gc0);
    // busybox-oci moved to `bus\xffbox`: its layer, config, manifests and referrer are named
    // only there now.
    let mut name = b"bus".to_vec();
    name.push(0xff);
    name.extend_from_slice(b"box");
    let odd = s.abs(REPOS).join(OsStr::from_bytes(&name));
    let layer = busybox_layer(&s);
    std::fs::rename(s.abs(&format!("{REPOS}/busybox-oci")), &odd).unwrap();
    let named: BTreeSet<String> = linked_digests(&odd).iter().map(|d| d.to_string()).collect();
    assert!(named.contains(&layer.to_string()));
    let sizes: BTreeMap<String, u64> = gc0["sweep"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["digest"].as_str().unwrap().to_string(),
                b["size"].as_u64().unwrap(),
            )
        })
        .collect();

    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "a warning: {v:#}");
    let new: Vec<_> = new_findings(&v0, &v)
        .into_iter()
        .filter(|f| f.0 != "info")
        .collect();
    assert_eq!(
        new,
        vec![(
            "warning".into(),
            "name_not_utf8".into(),
            format!("{REPOS}/bus\\xffbox")
        )]
    );
    let text = v.to_string();
    assert!(!text.contains("No such file or directory"), "{v:#}");
    assert!(!text.contains('\u{fffd}'), "a lossy name: {v:#}");

    // gc keeps everything the links there name; du does not count it as unreferenced. (The
    // two orphans only busybox-oci's `_layers` linked are kept too: the links cannot be
    // placed in a repository, so everything they name counts.)
    let (c, plan) = s.run_json("gc", &["--dry-run", "--min-age", "0"]);
    assert_eq!(c, 0, "{plan:#}");
    let expected: BTreeSet<String> = orphans0.difference(&named).cloned().collect();
    assert_eq!(swept(&plan), expected);
    let (_, du) = s.run_json("du", &[]);
    let pinned_orphans: u64 = orphans0.intersection(&named).map(|d| sizes[d]).sum();
    assert_eq!(
        du["unreferenced_bytes"].as_u64().unwrap(),
        du0["unreferenced_bytes"].as_u64().unwrap() - pinned_orphans
    );
    assert_eq!(du["unreferenced_bytes"], plan["sweep"]["bytes"]);
    assert_eq!(du["blob_bytes"], du0["blob_bytes"]);

    let (c, done) = s.run_json("gc", &["--min-age", "0"]);
    assert_eq!(c, 0, "{done:#}");
    let left = blob_set(&s.abs(BLOBS));
    let lost: Vec<_> = named.difference(&left).collect();
    assert!(lost.is_empty(), "gc swept {lost:?}");
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "{v:#}");
    assert!(error_kinds(&v).is_empty());

    // ls lists the other repositories' tags and exits 0.
    let out = run(s.root(), &["ls"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 7, "{}", stdout(&out));
}

#[test]
fn ls_and_du_say_what_they_skipped() {
    let s = Sample::registry();
    let mut name = b"bus".to_vec();
    name.push(0xff);
    name.extend_from_slice(b"box");
    std::fs::rename(
        s.abs(&format!("{REPOS}/busybox-oci")),
        s.abs(REPOS).join(OsStr::from_bytes(&name)),
    )
    .unwrap();
    let escaped = format!("{REPOS}/bus\\xffbox");
    for cmd in ["ls", "du"] {
        let out = run(s.root(), &[cmd]);
        assert_eq!(code(&out), 0, "{cmd}: {}", stderr(&out));
        assert!(stderr(&out).contains(&escaped), "{cmd}: {}", stderr(&out));
        let out = run(s.root(), &[cmd, "--json"]);
        assert_eq!(code(&out), 0, "{cmd}: {}", stderr(&out));
        assert_eq!(json(&out)["skipped"], serde_json::json!([escaped]), "{cmd}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. What Distribution v3 leaves behind

#[test]
fn distribution_v3_states_are_infos_of_their_own() {
    type Damage = Box<dyn Fn(&Sample) -> Vec<(&'static str, &'static str, String)>>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "atomic write leftovers",
            Box::new(|s| {
                let tag = s.current_link("alpine-mini", "latest");
                let layer = s.layer_link("busybox-oci", &busybox_config(s));
                let mut out = Vec::new();
                for link in [tag, layer] {
                    let tmp = link.with_file_name("link.0b1e6e6e-5a3c-4d62-9a57-0f4f9c2f1d1e.tmp");
                    std::fs::copy(&link, &tmp).unwrap();
                    let rel = tmp.strip_prefix(s.root()).unwrap().display().to_string();
                    out.push(("info", "atomic_write_leftover", rel));
                }
                out
            }),
        ),
        (
            "a layer directory without its link",
            Box::new(|s| {
                let d = hash_bytes(Algorithm::Sha256, b"deleted by the registry v3's gc");
                let link = s.layer_link("alpine-mini", &d);
                std::fs::create_dir_all(link.parent().unwrap()).unwrap();
                let rel = link.parent().unwrap().strip_prefix(s.root()).unwrap();
                vec![("info", "layer_dir_without_link", rel.display().to_string())]
            }),
        ),
        (
            "empty directories under repositories/",
            Box::new(|s| {
                std::fs::create_dir(s.abs(&format!("{REPOS}/team/gone"))).unwrap();
                std::fs::create_dir(s.abs(&format!("{REPOS}/lone"))).unwrap();
                vec![
                    (
                        "info",
                        "empty_repository_directory",
                        format!("{REPOS}/lone"),
                    ),
                    (
                        "info",
                        "empty_repository_directory",
                        format!("{REPOS}/team/gone"),
                    ),
                ]
            }),
        ),
        (
            "a _referrers tree",
            Box::new(|s| {
                let d = s.tag("busybox-oci", "1.1");
                let p = s.abs(&format!(
                    "{REPOS}/busybox-oci/_referrers/sha256/{}/whatever",
                    d.hex()
                ));
                write_link(&p, "not checked");
                vec![(
                    "info",
                    "referrers_tree",
                    format!("{REPOS}/busybox-oci/_referrers"),
                )]
            }),
        ),
        (
            "uploads named by a UUIDv7, without startedat",
            Box::new(|s| {
                let day = Duration::from_secs(24 * 3600);
                // Ages come from the id, not from the directory's mtime (set to mislead).
                let young = uuid_v7(now() - day);
                let old = uuid_v7(now() - 20 * day);
                let mut out = Vec::new();
                for (id, mtime, sev, kind) in [
                    (young, now() - 300 * day, "info", "upload_in_progress"),
                    (
                        old,
                        now() - Duration::from_secs(60),
                        "warning",
                        "upload_stale",
                    ),
                ] {
                    let rel = format!("{REPOS}/alpine-mini/_uploads/{id}");
                    std::fs::create_dir_all(s.abs(&rel)).unwrap();
                    std::fs::write(s.abs(&format!("{rel}/data")), b"partial").unwrap();
                    set_mtime(&s.abs(&rel), mtime);
                    out.push((sev, kind, rel));
                }
                out
            }),
        ),
    ];
    for (what, damage) in cases {
        let s = Sample::registry();
        let (_, before) = s.verify_json(&[]);
        let mut expected: Vec<(String, String, String)> = damage(&s)
            .into_iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c))
            .collect();
        expected.sort();
        let (c, after) = s.verify_json(&[]);
        assert_eq!(c, 0, "{what}: {after:#}");
        assert_eq!(new_findings(&before, &after), expected, "{what}");
        // None of them stops gc.
        let (c, v) = s.run_json("gc", &["--dry-run", "--min-age", "0"]);
        assert_eq!((c, &v["refused"]), (0, &serde_json::json!(false)), "{what}");
    }
}

#[test]
fn a_doubled_link_is_an_error_repair_rewrites() {
    let s = Sample::registry();
    let (_, before) = s.verify_json(&[]);
    let twice = |d: &Digest| format!("{d}{d}");
    // An untagged revision (nothing else breaks) and a referenced config's `_layers` link.
    let untagged = s.untagged("alpine-mini");
    let config = busybox_config(&s);
    let kept: BTreeSet<String> = s
        .manifest(&untagged)
        .references
        .iter()
        .map(|r| r.digest.to_string())
        .chain([untagged.to_string(), config.to_string()])
        .collect();
    let revision = s.revision_link("alpine-mini", &untagged);
    std::fs::write(&revision, twice(&untagged)).unwrap();
    let layer = s.layer_link("busybox-oci", &config);
    std::fs::write(&layer, twice(&config)).unwrap();
    let rel = |p: &Path| p.strip_prefix(s.root()).unwrap().display().to_string();

    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 4, "{v:#}");
    let new: Vec<_> = new_findings(&before, &v)
        .into_iter()
        .filter(|f| f.0 != "info")
        .collect();
    let mut expected: Vec<(String, String, String)> = vec![
        // The registry cannot read the link, so it answers 404 for the config.
        ("error".into(), "layer_unlinked".into(), rel(&layer)),
        ("error".into(), "link_doubled".into(), rel(&layer)),
        ("error".into(), "link_doubled".into(), rel(&revision)),
    ];
    expected.sort();
    assert_eq!(new, expected);
    // gc keeps what a doubled link names (and refuses, as for any error).
    let (c, plan) = s.run_json("gc", &["--dry-run", "--force", "--min-age", "0"]);
    assert_eq!(c, 0);
    assert!(swept(&plan).is_disjoint(&kept), "{plan:#}");
    assert_eq!(s.run_json("gc", &["--dry-run", "--min-age", "0"]).0, 4);

    let (c, r) = s.run_json("repair", &["--yes"]);
    assert_eq!(c, 1, "{r:#}");
    assert_eq!(
        std::fs::read_to_string(&revision).unwrap(),
        untagged.to_string()
    );
    assert_eq!(std::fs::read_to_string(&layer).unwrap(), config.to_string());
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "{v:#}");
    assert_eq!(all_findings(&v), all_findings(&before));
}

// ---------------------------------------------------------------------------------------------
// 7. Warnings never make gc refuse; errors do, unless --force

#[test]
fn a_layout_with_warnings_only_never_makes_gc_refuse() {
    let s = Sample::registry();
    let (_, before) = s.verify_json(&[]);
    let gone = hash_bytes(Algorithm::Sha256, b"never stored");
    write_link(&s.layer_link("busybox-oci", &gone), &gone.to_string());
    let dangling = hash_bytes(Algorithm::Sha256, b"deleted long ago");
    write_link(
        &s.revision_link("busybox-oci", &dangling),
        &dangling.to_string(),
    );
    let latest = s.tag("alpine-mini", "latest");
    write_link(
        &s.abs(&format!(
            "{REPOS}/alpine-mini/_manifests/tags/.bad/current/link"
        )),
        &latest.to_string(),
    );
    let old = s.untagged("alpine-mini");
    let entry = s.abs(&format!(
        "{REPOS}/alpine-mini/_manifests/tags/latest/index/sha256/{}/link",
        old.hex()
    ));
    std::fs::write(&entry, "garbage").unwrap();
    std::fs::write(s.abs(&format!("{REPOS}/team/notes.txt")), "x").unwrap();
    let data = s.blob_path(&busybox_layer(&s));
    std::fs::write(data.with_file_name("data.1234.tmp"), "x").unwrap();
    std::fs::create_dir_all(s.abs(&format!("{REPOS}/fresh/_manifests"))).unwrap();
    std::fs::create_dir_all(s.abs(&format!("{REPOS}/fresh/_layers"))).unwrap();
    std::fs::create_dir_all(s.abs(&format!("{REPOS}/busybox-oci/_uploads/not-a-uuid"))).unwrap();
    std::fs::write(
        s.abs(&format!("{REPOS}/busybox-oci/_uploads/not-a-uuid/data")),
        "ab",
    )
    .unwrap();
    let nodata = hash_bytes(Algorithm::Sha256, b"data gone");
    std::fs::create_dir_all(s.blob_path(&nodata).parent().unwrap()).unwrap();

    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "warnings only: {v:#}");
    let new = new_findings(&before, &v);
    assert!(new.iter().all(|f| f.0 != "error"), "{new:?}");
    assert_eq!(
        kinds_of(&new),
        kinds(&[
            "blob_no_data",
            "dangling_revision",
            "empty_repository",
            "invalid_tag_name",
            "stale_layer_link",
            "tag_index_malformed",
            "temp_file",
            "unknown_entry",
            "upload_stale",
        ])
    );
    for args in [
        &["gc", "--dry-run", "--min-age", "0"][..],
        &["gc", "--dry-run", "--delete-untagged", "--min-age", "0"][..],
        &["prune", "--dry-run", "--keep-last", "1"][..],
    ] {
        let (c, v) = s.run_json(args[0], &args[1..]);
        assert_eq!(c, 0, "{args:?}: {v:#}");
        assert_eq!(v["refused"], false, "{args:?}");
    }

    // One error (a tag that points at nothing): gc refuses (4) unless forced.
    std::fs::write(s.current_link("team/app", "v1"), "garbage").unwrap();
    assert_eq!(s.verify_json(&[]).0, 4);
    let before = tree(s.root());
    for args in [
        &["--dry-run", "--min-age", "0"][..],
        &["--min-age", "0"][..],
    ] {
        let (c, v) = s.run_json("gc", args);
        assert_eq!(c, 4, "{args:?}: {v:#}");
        assert_eq!(v["refused"], true);
        assert!(tree(s.root()) == before);
    }
    let (c, v) = s.run_json("gc", &["--dry-run", "--force", "--min-age", "0"]);
    assert_eq!(c, 0, "{v:#}");
    assert_eq!(v["refused"], false);
}

// ---------------------------------------------------------------------------------------------
// 8. What repair fixes

#[test]
fn repair_quarantines_an_untagged_revision_that_is_not_a_manifest() {
    let s = Sample::registry();
    let (_, before) = s.verify_json(&[]);
    let d = write_blob(&s, b"not a manifest at all");
    let link = s.revision_link("busybox-oci", &d);
    write_link(&link, &d.to_string());
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 4, "{v:#}");
    let new: Vec<_> = new_findings(&before, &v)
        .into_iter()
        .filter(|f| f.0 != "info")
        .collect();
    assert_eq!(
        new,
        vec![(
            "error".into(),
            "manifest_invalid".into(),
            s.blob_path(&d)
                .strip_prefix(s.root())
                .unwrap()
                .display()
                .to_string()
        )]
    );
    // The registry's own gc aborts on it.
    let out = registry_gc_dry_run(s.root());
    assert!(!out.status.success(), "{}", stdout(&out));

    let (c, r) = s.run_json("repair", &["--yes"]);
    assert_eq!(c, 1, "{r:#}");
    assert!(!link.exists(), "the revision link is still there");
    assert!(s.blob_path(&d).is_file(), "the blob was not kept");
    let run = r["applied"]["quarantine"].as_str().unwrap();
    let kept = s.abs(run).join(link.strip_prefix(s.root()).unwrap());
    assert_eq!(std::fs::read_to_string(kept).unwrap(), d.to_string());

    let out = registry_gc_dry_run(s.root());
    assert!(out.status.success(), "{}", stderr(&out));
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "{v:#}");
    assert!(error_kinds(&v).is_empty());
}

#[test]
fn repair_moves_blobs_back_from_a_wrong_shard() {
    let s = Sample::registry();
    let (_, before) = s.verify_json(&[]);
    let layer = busybox_layer(&s);
    let config = busybox_config(&s);
    let dir = |d: &Digest| s.blob_path(d).parent().unwrap().to_path_buf();
    // Under a shard of an arbitrary wrong name, and with no shard level at all.
    let zz = s.abs(&format!("{BLOBS}/sha256/zz"));
    std::fs::create_dir(&zz).unwrap();
    std::fs::rename(dir(&layer), zz.join(layer.hex())).unwrap();
    std::fs::rename(
        dir(&config),
        s.abs(&format!("{BLOBS}/sha256/{}", config.hex())),
    )
    .unwrap();
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 4, "{v:#}");
    let new: Vec<_> = new_findings(&before, &v)
        .into_iter()
        .filter(|f| f.0 != "info")
        .collect();
    let rel = |p: PathBuf| p.strip_prefix(s.root()).unwrap().display().to_string();
    let mut expected: Vec<(String, String, String)> = vec![
        (
            "error".into(),
            "blob_missing".into(),
            rel(s.blob_path(&layer)),
        ),
        (
            "error".into(),
            "blob_missing".into(),
            rel(s.blob_path(&config)),
        ),
        (
            "warning".into(),
            "blob_wrong_shard".into(),
            format!("{BLOBS}/sha256/zz/{}/data", layer.hex()),
        ),
        (
            "warning".into(),
            "blob_wrong_shard".into(),
            format!("{BLOBS}/sha256/{}/data", config.hex()),
        ),
    ];
    expected.sort();
    assert_eq!(new, expected);

    let (c, r) = s.run_json("repair", &["--yes"]);
    assert_eq!(c, 1, "{r:#}");
    assert!(s.blob_path(&layer).is_file() && s.blob_path(&config).is_file());
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "{v:#}");
    assert!(error_kinds(&v).is_empty(), "{v:#}");
    // What is left: at most the emptied `zz` directory, as an unknown entry.
    let left: Vec<_> = new_findings(&before, &v)
        .into_iter()
        .filter(|f| {
            *f != (
                "warning".to_string(),
                "unknown_entry".to_string(),
                format!("{BLOBS}/sha256/zz"),
            )
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let out = run(s.root(), &["ls"]);
    let tag = s.tag("busybox-oci", "1.1");
    assert!(
        stdout(&out).contains(&format!("busybox-oci:1.1:{tag}")),
        "{}",
        stdout(&out)
    );
    // The tag pulls from the real registry.
    let reg = crate::gc::serve(s.root());
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--all", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{}/busybox-oci:1.1", reg.addr))
        .arg(format!("dir:{}", dest.path().display()))
        .output()
        .expect("skopeo (installed by .ci/run)");
    drop(reg);
    std::fs::remove_file(s.root().join("config.yml")).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dest.path().join(layer.hex()).is_file());
}

// ---------------------------------------------------------------------------------------------
// 9. What repair creates belongs to the registry's user

/// The sample owned by 1234:1234 with directories 0750, one `_layers` link deleted (its
/// directory kept) and one `_layers` directory deleted; repaired as root.
fn repaired_as_root_in_a_tree_owned_by_1234() -> (Sample, PathBuf, PathBuf) {
    let s = Sample::registry();
    for e in walkdir::WalkDir::new(s.root()) {
        let e = e.unwrap();
        std::os::unix::fs::lchown(e.path(), Some(1234), Some(1234)).unwrap();
        if e.file_type().is_dir() {
            chmod(e.path(), 0o750);
        }
    }
    let link = s.layer_link("busybox-oci", &busybox_layer(&s));
    std::fs::remove_file(&link).unwrap();
    let dir = s
        .layer_link("busybox-oci", &busybox_config(&s))
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    let (c, r) = s.run_json("repair", &["--yes"]);
    assert_eq!(c, 1, "{r:#}");
    (s, link, dir)
}

fn owner_and_mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

#[test]
fn files_repair_creates_take_the_owner_and_mode_of_their_parent() {
    let probe = tempfile::tempdir().unwrap();
    if std::fs::metadata(probe.path()).unwrap().uid() != 0 {
        eprintln!("skipped: only root can give files away");
        return;
    }
    let (s, link, dir) = repaired_as_root_in_a_tree_owned_by_1234();
    assert_eq!(
        owner_and_mode(&link),
        (1234, 1234, 0o640),
        "{}",
        link.display()
    );
    assert_eq!(
        owner_and_mode(&dir),
        (1234, 1234, 0o750),
        "{}",
        dir.display()
    );
    let new = dir.join("link");
    assert_eq!(
        owner_and_mode(&new),
        (1234, 1234, 0o640),
        "{}",
        new.display()
    );
    // Everything in the registry tree, and every directory of the quarantine (its journal:
    // the ignored test below).
    for e in walkdir::WalkDir::new(s.abs(V2)) {
        let e = e.unwrap();
        let (uid, gid, mode) = owner_and_mode(e.path());
        assert_eq!((uid, gid), (1234, 1234), "{}", e.path().display());
        if e.file_type().is_dir() {
            assert_eq!(mode, 0o750, "{}", e.path().display());
        }
    }
    let mut dirs = 0;
    for e in walkdir::WalkDir::new(s.abs("regfsck-lost+found")) {
        let e = e.unwrap();
        if e.file_type().is_dir() {
            dirs += 1;
            assert_eq!(
                owner_and_mode(e.path()),
                (1234, 1234, 0o750),
                "{}",
                e.path().display()
            );
        }
    }
    assert!(dirs >= 2, "no quarantine was made");
}

#[test]
fn the_repair_journal_takes_the_owner_and_mode_of_its_directory() {
    let probe = tempfile::tempdir().unwrap();
    if std::fs::metadata(probe.path()).unwrap().uid() != 0 {
        eprintln!("skipped: only root can give files away");
        return;
    }
    let (s, _, _) = repaired_as_root_in_a_tree_owned_by_1234();
    for e in walkdir::WalkDir::new(s.abs("regfsck-lost+found")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            assert_eq!(
                owner_and_mode(e.path()),
                (1234, 1234, 0o640),
                "{}",
                e.path().display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 10. After the registry's own gc

#[test]
fn gc_removes_the_stale_layer_links_the_registrys_gc_leaves() {
    let s = Sample::registry();
    crate::registry::registry_gc(s.root(), false);
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "{v:#}");
    let stale = |v: &serde_json::Value| {
        all_findings(v)
            .into_iter()
            .filter(|f| f.1 == "stale_layer_link")
            .count()
    };
    assert!(stale(&v) > 0, "{v:#}");
    let (c, g) = s.run_json("gc", &["--min-age", "0"]);
    assert_eq!(c, 0, "{g:#}");
    assert_eq!(g["sweep"]["blobs"].as_array().unwrap().len(), 0);
    assert_eq!(
        g["sweep"]["layer_links"].as_array().unwrap().len(),
        stale(&v)
    );
    let (c, v) = s.verify_json(&[]);
    assert_eq!(c, 0, "{v:#}");
    assert_eq!(stale(&v), 0, "{v:#}");
}

// ---------------------------------------------------------------------------------------------
// 11. Root resolution

#[test]
fn gc_takes_the_registrys_config_as_its_positional_argument() {
    let s = Sample::registry();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            s.root().display()
        ),
    )
    .unwrap();
    let before = tree(s.root());
    let as_root = json(&run(
        s.root(),
        &["gc", "--json", "--dry-run", "--min-age", "0"],
    ));
    let positional = run(&cfg, &["gc", "--json", "--dry-run", "--min-age", "0"]);
    assert_eq!(code(&positional), 0, "{}", stderr(&positional));
    let mut flag = regfsck();
    flag.arg("--config")
        .arg(&cfg)
        .args(["gc", "--json", "--dry-run", "--min-age", "0"]);
    let flag = flag.output().unwrap();
    assert_eq!(code(&flag), 0, "{}", stderr(&flag));
    assert!(!swept(&as_root).is_empty());
    assert_eq!(swept(&json(&positional)), swept(&as_root));
    assert_eq!(swept(&json(&flag)), swept(&as_root));
    assert!(tree(s.root()) == before, "a dry run changed the tree");
    // A real run through the config sweeps the sample.
    let out = run(&cfg, &["gc", "--json", "--min-age", "0"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["applied"]["blobs"], 6);
}
