//! `gc` against the real registry's own garbage collector (the oracle), and real pulls after it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use regfsck::graph::TagTarget;
use regfsck::manifest::Role;

use crate::common::{Sample, crash_at_every_step, regfsck, tree};

fn write_config(root: &Path, addr: &str) -> std::path::PathBuf {
    write_config_with(root, addr, false)
}

/// The registry's config for `root` at `addr`, read-only in maintenance mode when `readonly`.
pub(crate) fn write_config_with(root: &Path, addr: &str, readonly: bool) -> std::path::PathBuf {
    let cfg = root.join("config.yml");
    let readonly = if readonly {
        "    readonly:\n      enabled: true\n"
    } else {
        ""
    };
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n{readonly}http:\n  addr: {addr}\n",
            root.display()
        ),
    )
    .unwrap();
    cfg
}

/// `(blobs, manifests)` the registry's `garbage-collect --dry-run` lists as eligible.
pub(crate) fn registry_dry_run(
    root: &Path,
    delete_untagged: bool,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let cfg = write_config(root, "127.0.0.1:0");
    let mut c = Command::new("docker-registry");
    c.args(["garbage-collect", "--dry-run"]);
    if delete_untagged {
        c.arg("--delete-untagged");
    }
    let out = c
        .arg(&cfg)
        .output()
        .expect("docker-registry (installed by .ci/run)");
    std::fs::remove_file(cfg).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let pick = |prefix: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|d| d.trim().to_string())
            .collect()
    };
    (
        pick("blob eligible for deletion: "),
        pick("manifest eligible for deletion: "),
    )
}

fn gc_json(s: &Sample, args: &[&str]) -> (i32, serde_json::Value) {
    s.run_json("gc", args)
}

fn swept(v: &serde_json::Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let blobs = v["sweep"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    let manifests = v["sweep"]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    (blobs, manifests)
}

#[test]
fn dry_run_equals_the_registry() {
    let s = Sample::registry();
    let (oracle_blobs, oracle_manifests) = registry_dry_run(s.root(), false);
    assert_eq!(oracle_blobs.len(), 6, "the sample's recorded oracle");
    let before = tree(s.root());
    let (code, v) = gc_json(&s, &["--dry-run", "--min-age", "0"]);
    assert_eq!(code, 0, "{v:#}");
    let (blobs, manifests) = swept(&v);
    assert_eq!(blobs, oracle_blobs);
    assert_eq!(manifests, oracle_manifests);
    assert_eq!(tree(s.root()), before, "a dry run changes nothing");
}

/// What tagged indexes still need: their children, and the children's configs and layers.
fn needed_by_tagged_indexes(s: &Sample) -> BTreeSet<String> {
    let (_, g) = s.graph();
    let mut need = BTreeSet::new();
    for rg in g.repos.values() {
        for t in rg.tags.values() {
            let TagTarget::Points(d) = t else { continue };
            let Some(m) = g.manifest(d) else { continue };
            for c in m.refs(Role::Child) {
                need.insert(c.digest.to_string());
                if let Some(cm) = g.manifest(&c.digest) {
                    need.extend(cm.references.iter().map(|r| r.digest.to_string()));
                }
            }
        }
    }
    need
}

/// Untagged referrers of kept manifests, with their blobs: regfsck keeps them, the registry not.
fn kept_referrers(s: &Sample) -> BTreeSet<String> {
    let (_, g) = s.graph();
    let mut keep = BTreeSet::new();
    for rg in g.repos.values() {
        for d in &rg.revisions {
            if let Some(m) = g.manifest(d) {
                if m.refs(Role::Subject)
                    .any(|sub| rg.tagged.contains(&sub.digest))
                {
                    keep.insert(d.to_string());
                    keep.extend(
                        m.references
                            .iter()
                            .filter(|r| r.role != Role::Subject)
                            .map(|r| r.digest.to_string()),
                    );
                }
            }
        }
    }
    keep
}

#[test]
fn delete_untagged_is_the_registry_minus_its_data_loss() {
    let s = Sample::registry();
    let (oracle_blobs, oracle_manifests) = registry_dry_run(s.root(), true);
    let need = needed_by_tagged_indexes(&s);
    let referrers = kept_referrers(&s);
    assert!(
        oracle_blobs.iter().any(|b| need.contains(b)),
        "the registry's -m sweeps what tagged indexes need (the 2.8 bug)"
    );
    let (code, v) = gc_json(&s, &["--dry-run", "--delete-untagged", "--min-age", "0"]);
    assert_eq!(code, 0, "{v:#}");
    let (blobs, manifests) = swept(&v);
    let expected_blobs: BTreeSet<String> = oracle_blobs
        .iter()
        .filter(|b| !need.contains(*b) && !referrers.contains(*b))
        .cloned()
        .collect();
    let expected_manifests: BTreeSet<String> = oracle_manifests
        .iter()
        .filter(|m| !need.contains(*m) && !referrers.contains(*m))
        .cloned()
        .collect();
    assert_eq!(blobs, expected_blobs);
    assert_eq!(manifests, expected_manifests);
    assert!(!expected_manifests.is_empty());
}

pub(crate) struct Registry {
    child: Child,
    pub(crate) addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(root: &Path) -> Registry {
    serve_with(root, false)
}

/// `docker-registry serve` on `root` (read-only in maintenance mode when `readonly`), its
/// config at `root/config.yml`.
pub(crate) fn serve_with(root: &Path, readonly: bool) -> Registry {
    let addr = crate::common::free_addr();
    let cfg = write_config_with(root, &addr, readonly);
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry");
    crate::common::wait_for(&addr);
    Registry { child, addr }
}

/// Pulls every tag with `skopeo copy --all`; returns the tags that failed.
pub(crate) fn pull_all(s: &Sample) -> Vec<String> {
    pull_all_except(s, &[])
}

/// As [`pull_all`], leaving out the repositories in `skip`.
pub(crate) fn pull_all_except(s: &Sample, skip: &[&str]) -> Vec<String> {
    let reg = serve(s.root());
    let (_, g) = s.graph();
    let dest = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for (repo, rg) in g.repos.iter().filter(|(r, _)| !skip.contains(&r.as_str())) {
        for tag in rg.tags.keys() {
            let out = Command::new("skopeo")
                .args(["copy", "--all", "-q", "--src-tls-verify=false"])
                .arg(format!("docker://{}/{repo}:{tag}", reg.addr))
                .arg(format!(
                    "dir:{}/{}-{tag}",
                    dest.path().display(),
                    repo.as_str().replace('/', "_")
                ))
                .output()
                .expect("skopeo (installed by .ci/run)");
            if !out.status.success() {
                failed.push(format!(
                    "{repo}:{tag}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    std::fs::remove_file(s.root().join("config.yml")).unwrap();
    failed
}

#[test]
fn real_run_then_every_tag_still_pulls() {
    let s = Sample::registry();
    let (code, v) = gc_json(&s, &["--min-age", "0"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["applied"]["blobs"], 6);
    assert_eq!(registry_dry_run(s.root(), false), Default::default());
    assert_eq!(s.verify_json(&[]).0, 0);
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

#[test]
fn real_delete_untagged_keeps_index_children() {
    let s = Sample::registry();
    let (code, v) = gc_json(&s, &["--delete-untagged", "--min-age", "0"]);
    assert_eq!(code, 0, "{v:#}");
    let (code, report) = s.verify_json(&[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(pull_all(&s), Vec::<String>::new());
    // Nothing untagged is left but the kept referrer.
    let out = regfsck()
        .args(["ls", "--untagged"])
        .arg(s.root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("busybox-oci@"), "{text}");
}

#[test]
fn refuses_on_a_broken_graph_and_deletes_nothing() {
    let s = Sample::registry();
    std::fs::write(s.current_link("alpine-mini", "latest"), "garbage").unwrap();
    let d = s.tag("team/app", "latest");
    std::fs::write(s.blob_path(&d), "{not json").unwrap();
    let before = tree(s.root());
    let out = regfsck()
        .args(["gc", "--min-age", "0", "--delete-untagged"])
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("link_malformed"), "{stdout}");
    assert!(stdout.contains("manifest_invalid"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to sweep"));
    assert_eq!(tree(s.root()), before);
}

#[test]
fn grace_period_keeps_young_blobs() {
    let s = Sample::registry();
    let (_, v) = gc_json(&s, &["--dry-run", "--min-age", "0"]);
    let (all, _) = swept(&v);
    let young = all.iter().next().unwrap().clone();
    let d: regfsck::Digest = young.parse().unwrap();
    // A push in progress: the blob was written 10 minutes before "now" (REGFSCK_NOW).
    let t =
        humantime::parse_rfc3339(crate::common::NOW).unwrap() - std::time::Duration::from_secs(600);
    let f = std::fs::File::options()
        .write(true)
        .open(s.blob_path(&d))
        .unwrap();
    f.set_modified(t).unwrap();
    let (_, v) = gc_json(&s, &["--dry-run"]);
    let (kept_sweep, _) = swept(&v);
    assert!(!kept_sweep.contains(&young));
    assert_eq!(kept_sweep.len(), all.len() - 1);
    assert_eq!(v["kept_young_blobs"], 1);
    let (_, v) = gc_json(&s, &["--dry-run", "--min-age", "5m"]);
    assert!(swept(&v).0.contains(&young));
}

#[test]
fn the_registrys_own_delete_untagged_breaks_pulls() {
    // The control for the two tests above: pull_all does fail when tags are broken.
    let s = Sample::registry();
    crate::registry::registry_gc(s.root(), true);
    let failed = pull_all(&s);
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("multi/oci-index:latest")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("multi/docker-list:latest")),
        "{failed:?}"
    );
}

#[test]
fn killed_at_every_point_stays_consistent_and_a_rerun_finishes() {
    let args = ["gc", "--delete-untagged", "--min-age", "0", "-q"];
    let rerun = |s: &Sample| {
        let out = regfsck().args(args).arg(s.root()).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "rerun");
    };
    let reference = Sample::registry();
    let out = regfsck().args(args).arg(reference.root()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let crashes = crash_at_every_step(
        &Sample::registry,
        &|s: &Sample| {
            let mut c = regfsck();
            c.args(args).arg(s.root());
            c
        },
        &rerun,
        &tree(reference.root()),
    );
    assert!(crashes > 20, "only {crashes} crash points");
}

#[test]
fn force_sweeps_but_keeps_what_a_broken_repository_could_need() {
    let s = Sample::registry();
    let untagged = s.untagged("alpine-mini");
    // alpine-mini's tag link is garbage: which of its manifests the tag needs is unknown.
    let broken_tag = s.first_tag("alpine-mini");
    assert_ne!(broken_tag, "latest");
    std::fs::write(s.current_link("alpine-mini", &broken_tag), "garbage").unwrap();
    let (code, v) = gc_json(&s, &["--dry-run", "--delete-untagged", "--min-age", "0"]);
    assert_eq!(code, 4);
    assert_eq!(v["refused"], true);
    let (code, v) = gc_json(&s, &["--delete-untagged", "--min-age", "0", "--force"]);
    assert_eq!(code, 0, "{v:#}");
    // Orphans are swept, but alpine-mini's untagged revision (the only untagged manifest that
    // is no referrer) is kept: the broken tag may point at it.
    assert!(v["applied"]["blobs"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(v["sweep"]["manifests"], serde_json::json!([]));
    assert!(s.revision_link("alpine-mini", &untagged).exists());
    assert!(s.blob_path(&untagged).exists());
    // Every intact tag still pulls.
    std::fs::remove_dir_all(s.abs(&format!(
        "docker/registry/v2/repositories/alpine-mini/_manifests/tags/{broken_tag}"
    )))
    .unwrap();
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

#[test]
fn human_and_json_reports() {
    let s = Sample::registry();
    crate::regfsck_snapshot!(
        "gc_dry_run_human",
        regfsck()
            .args(["gc", "--dry-run", "-m", "--min-age", "0"])
            .arg(s.root()),
        Some(s.root())
    );
    let (_, v) = gc_json(&s, &["--dry-run", "-m"]);
    insta::assert_json_snapshot!("gc_dry_run_json_default_min_age", v);
}

#[test]
fn refuses_when_a_revision_link_is_a_symlink() {
    // An untagged revision whose link cannot be read safely: its blobs must not be swept.
    let s = Sample::registry();
    let d = s.untagged("alpine-mini");
    let link = s.revision_link("alpine-mini", &d);
    let elsewhere = s.root().join("elsewhere");
    std::fs::rename(&link, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let before = tree(s.root());
    let (code, v) = gc_json(&s, &["--min-age", "0"]);
    assert_eq!(code, 4, "{v:#}");
    assert_eq!(v["broken"][0]["kind"], "symlink");
    assert_eq!(tree(s.root()), before);
}

#[test]
fn grace_period_counts_a_young_layer_link() {
    // A cross-repository mount writes only a `_layers` link: the blob itself is old.
    let s = Sample::registry();
    let (_, v) = gc_json(&s, &["--dry-run", "--min-age", "0"]);
    let (all, _) = swept(&v);
    let d: regfsck::Digest = all.iter().next().unwrap().parse().unwrap();
    let link = s.layer_link("team/app/api", &d);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::fs::write(&link, d.to_string()).unwrap();
    let t =
        humantime::parse_rfc3339(crate::common::NOW).unwrap() - std::time::Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(&link)
        .unwrap()
        .set_modified(t)
        .unwrap();
    let (_, v) = gc_json(&s, &["--dry-run"]);
    let (kept_sweep, _) = swept(&v);
    assert!(!kept_sweep.contains(&d.to_string()));
    assert_eq!(v["kept_young_blobs"], 1);
    let (_, v) = gc_json(&s, &["--dry-run", "--min-age", "5m"]);
    assert!(swept(&v).0.contains(&d.to_string()));
}

#[test]
fn refuses_when_a_manifest_data_file_is_gone_but_its_directory_is_not() {
    // gc does not stat every blob; a blob directory without data must still count as missing.
    for (repo, child) in [("alpine-mini", false), ("multi/oci-index", true)] {
        let s = Sample::registry();
        let tag = s.first_tag(repo);
        let mut d = s.tag(repo, &tag);
        if child {
            d = s.reference(&d, Role::Child);
        }
        std::fs::remove_file(s.blob_path(&d)).unwrap();
        let before = tree(s.root());
        let (code, v) = gc_json(&s, &["--min-age", "0"]);
        assert_eq!(code, 4, "{repo}: {v:#}");
        let kinds: Vec<&str> = v["broken"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        let want = if child {
            "child_missing"
        } else {
            "manifest_missing"
        };
        assert!(kinds.contains(&want), "{repo}: {kinds:?}");
        assert_eq!(tree(s.root()), before);
    }
}

#[test]
fn dry_run_equals_the_registry_on_a_generated_layout() {
    // A larger layout from the benchmark generator: 40 repositories, 240 manifests, orphans.
    let dir = tempfile::tempdir().unwrap();
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/gen_layout.py");
    let out = Command::new("python3")
        .arg(generator)
        .arg(dir.path())
        .args(["--repos", "40", "--images-per-repo", "6", "--layers", "2"])
        .args([
            "--layer-size",
            "300",
            "--small-blobs",
            "150",
            "--small-size",
            "200",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (oracle_blobs, oracle_manifests) = registry_dry_run(dir.path(), false);
    assert_eq!(oracle_blobs.len(), 150);
    let out = regfsck()
        .args(["gc", "--json", "--dry-run", "--min-age", "0"])
        .arg(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (blobs, manifests) = swept(&v);
    assert_eq!(blobs, oracle_blobs);
    assert_eq!(manifests, oracle_manifests);
}

#[test]
fn grace_period_keeps_a_young_untagged_manifest() {
    // A push in progress: the manifest is uploaded (revision link written) before its tag.
    // gc's fast scan reads links without a stat; the age of the ones it would drop is looked
    // up before dropping them.
    let s = Sample::registry();
    let d = s.untagged("alpine-mini");
    let (_, v) = gc_json(&s, &["--dry-run", "--delete-untagged", "--min-age", "0"]);
    let (_, dropped) = swept(&v);
    assert!(
        dropped.iter().any(|m| m.ends_with(&d.to_string())),
        "{dropped:?}"
    );
    let t =
        humantime::parse_rfc3339(crate::common::NOW).unwrap() - std::time::Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(s.revision_link("alpine-mini", &d))
        .unwrap()
        .set_modified(t)
        .unwrap();
    let (_, v) = gc_json(&s, &["--dry-run", "--delete-untagged"]);
    let (blobs, kept_dropped) = swept(&v);
    assert!(!kept_dropped.iter().any(|m| m.ends_with(&d.to_string())));
    assert_eq!(v["kept_young_manifests"], 1);
    // Its config and layers stay too.
    let config = s.reference(&d, regfsck::manifest::Role::Config);
    assert!(!blobs.contains(&config.to_string()));
    let (_, v) = gc_json(&s, &["--dry-run", "--delete-untagged", "--min-age", "5m"]);
    assert!(swept(&v).1.iter().any(|m| m.ends_with(&d.to_string())));
}

#[test]
fn refuses_when_a_tag_directory_on_the_way_is_a_symlink_out_of_the_root() {
    // `current` itself (not the link file) is a symlink to a directory outside the root whose
    // `link` names a manifest: gc must neither follow it nor sweep as if the tag were fine.
    let s = Sample::registry();
    let tag = s.first_tag("alpine-mini");
    let current = s.current_link("alpine-mini", &tag);
    let current = current.parent().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let fake = outside.path().join("current");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("link"), s.untagged("alpine-mini").to_string()).unwrap();
    std::fs::remove_dir_all(current).unwrap();
    std::os::unix::fs::symlink(&fake, current).unwrap();
    let before = tree(s.root());
    let (code, v) = gc_json(&s, &["--delete-untagged", "--min-age", "0"]);
    assert_eq!(code, 4, "{v:#}");
    let broken: Vec<(String, String)> = v["broken"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        broken
            .iter()
            .any(|(k, p)| k == "symlink" && p.ends_with(&format!("tags/{tag}/current"))),
        "{broken:?}"
    );
    assert_eq!(tree(s.root()), before);
}
