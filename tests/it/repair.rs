//! `repair` on damaged copies of the real registry's sample: each kind of damage repaired,
//! verify afterwards reporting only what repair said it could not fix, every tag that was
//! intact still pulling with skopeo from `docker-registry serve`, and undo restoring the tree
//! byte for byte.

use std::collections::BTreeSet;
use std::path::Path;

use regfsck::manifest::Role;
use sha2::{Digest as _, Sha256};

use crate::common::{Sample, regfsck};
use crate::gc::pull_all;

/// Every path below the root with its type and content hash (byte-for-byte comparisons).
fn content_tree(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type();
            if t.is_symlink() {
                format!(
                    "{rel} -> {}",
                    std::fs::read_link(e.path()).unwrap().display()
                )
            } else if t.is_file() && e.file_name() == "journal.jsonl" {
                // Journals differ between a run and a crashed run continued (torn lines).
                format!("{rel} (journal)")
            } else if t.is_file() {
                let bytes = std::fs::read(e.path()).unwrap();
                let d = regfsck::Digest::from_bytes(
                    regfsck::digest::Algorithm::Sha256,
                    &Sha256::digest(&bytes),
                )
                .unwrap();
                format!("{rel} {d}")
            } else {
                format!("{rel}/")
            }
        })
        .collect()
}

fn repair_json(s: &Sample, args: &[&str]) -> (i32, serde_json::Value) {
    s.run_json("repair", args)
}

/// `(kind, repository, digest)` of every error verify reports now.
fn errors_now(s: &Sample) -> BTreeSet<(String, String, String)> {
    crate::common::findings(&s.verify_json(&[]).1)
        .into_iter()
        .filter(|f| f.0 == "error")
        .map(|f| (f.1, f.2.unwrap_or_default(), f.3.unwrap_or_default()))
        .collect()
}

/// The same, for what the repair said it could not fix.
fn said_unrepairable(v: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    v["unrepairable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let f = &u["finding"];
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("kind"), s("repository"), s("digest"))
        })
        .collect()
}

/// Blob data files whose content hashes to the digest their path names.
fn intact_blobs(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root.join("docker/registry/v2/blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == "data")
        .filter_map(|e| {
            let hex = e.path().parent()?.file_name()?.to_str()?.to_string();
            let d = regfsck::Digest::from_bytes(
                regfsck::digest::Algorithm::Sha256,
                &Sha256::digest(std::fs::read(e.path()).ok()?),
            )?;
            (d.hex() == hex).then_some(hex)
        })
        .collect()
}

/// Damage, repair (dry run first: same plan), then the checks every repair must pass.
fn repair_and_check(s: &Sample, extra: &[&str]) -> serde_json::Value {
    let damaged = content_tree(s.root());
    let intact = intact_blobs(s.root());
    let mut dry = vec!["--dry-run"];
    dry.extend_from_slice(extra);
    let (_, plan) = repair_json(s, &dry);
    assert_eq!(
        content_tree(s.root()),
        damaged,
        "a dry run changed the tree"
    );
    let mut real = vec!["--yes"];
    real.extend_from_slice(extra);
    let (code, v) = repair_json(s, &real);
    assert_eq!(plan["steps"], v["steps"], "the dry run is the same plan");
    let unrepairable = said_unrepairable(&v);
    assert_eq!(code, if unrepairable.is_empty() { 1 } else { 4 }, "{v:#}");
    // No blob that was intact is gone (a misplaced one may have moved to its right shard).
    let now = intact_blobs(s.root());
    assert!(intact.is_subset(&now), "lost {:?}", intact.difference(&now));
    // Verify reports only what repair said it could not fix.
    let left = errors_now(s);
    assert!(
        left.is_subset(&unrepairable),
        "left {left:?}, said {unrepairable:?}"
    );
    // Every tag that is not broken by the unrepairable damage pulls.
    let breaks: BTreeSet<String> = v["unrepairable"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["breaks"].as_array().unwrap().iter())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let failed: BTreeSet<String> = pull_all(s)
        .into_iter()
        .map(|f| f.split(": ").next().unwrap().to_string())
        .collect();
    assert!(
        failed.is_subset(&breaks),
        "failed {failed:?}, said {breaks:?}"
    );
    // Undo restores the damaged tree byte for byte.
    let run = v["applied"]["quarantine"].as_str().unwrap().to_string();
    let out = regfsck()
        .args(["repair", "--yes", "--undo", &run])
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(content_tree(s.root()), damaged, "undo");
    // And the repair again, for the caller's own checks.
    let (_, v) = repair_json(s, &real);
    v
}

fn rm(p: &Path) {
    if p.is_dir() {
        std::fs::remove_dir_all(p).unwrap();
    } else {
        std::fs::remove_file(p).unwrap();
    }
}

/// `regfsck repair --yes -q` on `s`, made to crash (SIGABRT) before its change `n` (counted
/// from 0); a run with fewer changes finishes.
fn repair_crashing_before(s: &Sample, n: u32) -> std::process::Output {
    regfsck()
        .args(["repair", "--yes", "-q"])
        .arg(s.root())
        .env("REGFSCK_TEST_CRASH_AFTER", n.to_string())
        .output()
        .unwrap()
}

#[test]
fn missing_and_garbage_links_are_restored_and_every_tag_pulls() {
    let s = Sample::registry();
    let tag = s.tag("alpine-mini", "3.19");
    let layer = s.manifest(&tag).refs(Role::Layer).last().unwrap().digest;
    rm(s.layer_link("alpine-mini", &layer).parent().unwrap());
    let index = s.tag("multi/oci-index", &s.first_tag("multi/oci-index"));
    let child = s.reference(&index, Role::Child);
    rm(s.revision_link("multi/oci-index", &child).parent().unwrap());
    let bb = s.tag("busybox-oci", "latest");
    std::fs::write(s.revision_link("busybox-oci", &bb), "sha256:nothex\n").unwrap();
    let config = s.reference(&tag, Role::Config);
    std::fs::write(s.layer_link("alpine-mini", &config), layer.to_string()).unwrap();
    let before = errors_now(&s);
    assert!(before.len() >= 4, "{before:?}");
    let v = repair_and_check(&s, &[]);
    assert!(said_unrepairable(&v).is_empty(), "{v:#}");
    assert_eq!(errors_now(&s), BTreeSet::new());
}

#[test]
fn a_corrupt_layer_is_quarantined_and_the_tags_it_breaks_are_named() {
    let s = Sample::registry();
    let tag = s.tag("alpine-mini", "3.19");
    let layer = s.manifest(&tag).refs(Role::Layer).last().unwrap().digest;
    let data = s.blob_path(&layer);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let v = repair_and_check(&s, &[]);
    let breaks: Vec<&str> = v["unrepairable"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| {
            u["breaks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
        })
        .collect();
    assert!(breaks.contains(&"alpine-mini:3.19"), "{v:#}");
    // Moved, never deleted: the damaged bytes are in the quarantine.
    let run = v["applied"]["quarantine"].as_str().unwrap();
    let q = s.abs(&format!("{run}/{}", regfsck::layout::blob_data(&layer)));
    assert_eq!(std::fs::read(q).unwrap(), bytes);
    assert!(!data.exists());
}

#[test]
fn a_blob_under_the_wrong_shard_is_moved_back() {
    let s = Sample::registry();
    let tag = s.tag("team/app", "latest");
    let config = s.reference(&tag, Role::Config);
    let dir = s.blob_path(&config).parent().unwrap().to_path_buf();
    let right = dir
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let other = if right == "00" { "01" } else { "00" };
    let wrong_shard = dir.parent().unwrap().parent().unwrap().join(other);
    std::fs::create_dir_all(&wrong_shard).unwrap();
    std::fs::rename(&dir, wrong_shard.join(dir.file_name().unwrap())).unwrap();
    std::fs::remove_dir(dir.parent().unwrap()).ok();
    let v = repair_and_check(&s, &[]);
    assert!(said_unrepairable(&v).is_empty(), "{v:#}");
    assert!(s.blob_path(&config).exists());
}

#[test]
fn broken_tags_are_pointed_back_at_their_history_or_removed() {
    let s = Sample::registry();
    // Garbage current link: pointed back at the newest intact revision of its history.
    std::fs::write(s.current_link("alpine-mini", "latest"), "garbage").unwrap();
    // A tag whose manifest is gone and whose history has nothing else: removed.
    let v1 = s.tag("team/app", "v1");
    let others: Vec<String> = ["latest"]
        .iter()
        .filter(|t| s.tag("team/app", t) == v1)
        .map(|t| t.to_string())
        .collect();
    rm(s.blob_path(&v1).parent().unwrap());
    let v = repair_and_check(&s, &[]);
    let steps = v["steps"].as_array().unwrap();
    let on = |tag: &str| -> Vec<&serde_json::Value> {
        steps.iter().filter(|st| st["tag"] == tag).collect()
    };
    assert!(
        on("latest").iter().any(|st| st["action"] == "link"
            && st["path"]
                .as_str()
                .unwrap()
                .ends_with("alpine-mini/_manifests/tags/latest/current/link")),
        "{steps:#?}"
    );
    let out = regfsck().arg("ls").arg(s.root()).output().unwrap();
    let ls = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        ls.contains(&format!(
            "alpine-mini:latest:{}",
            s.tag("alpine-mini", "3.19")
        )),
        "{ls}"
    );
    if others.is_empty() {
        assert!(!ls.contains("team/app:v1:"), "{ls}");
    }
}

#[test]
fn stale_uploads_go_by_upload_age() {
    let s = Sample::registry();
    let (code, v) = repair_json(&s, &["--dry-run"]);
    assert_eq!(code, 0, "a clean sample has nothing to repair: {v:#}");
    assert_eq!(v["steps"].as_array().unwrap().len(), 0);
    let v = repair_and_check(&s, &["--upload-age", "1d"]);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert!(
        steps[0]["path"]
            .as_str()
            .unwrap()
            .contains("team/app/_uploads/")
    );
    let (_, after) = s.verify_json(&["--verbose"]);
    assert!(
        !crate::common::findings(&after)
            .iter()
            .any(|f| f.1.starts_with("upload")),
        "{after:#}"
    );
}

#[test]
fn without_a_terminal_it_needs_yes() {
    let s = Sample::registry();
    std::fs::write(s.current_link("alpine-mini", "latest"), "garbage").unwrap();
    let before = content_tree(s.root());
    let out = regfsck().arg("repair").arg(s.root()).output().unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(content_tree(s.root()), before);
    crate::regfsck_snapshot!(
        "repair_dry_run_human",
        regfsck().args(["repair", "--dry-run"]).arg(s.root()),
        Some(s.root())
    );
}

#[test]
fn killed_at_every_step_undo_restores_the_damaged_tree() {
    let damage = |s: &Sample| {
        let tag = s.tag("alpine-mini", "3.19");
        let layer = s.manifest(&tag).refs(Role::Layer).last().unwrap().digest;
        rm(s.layer_link("alpine-mini", &layer).parent().unwrap());
        std::fs::write(s.current_link("alpine-mini", "latest"), "garbage").unwrap();
        let bb = s.tag("busybox-oci", "latest");
        std::fs::write(s.revision_link("busybox-oci", &bb), "sha256:nothex\n").unwrap();
    };
    let mut crashes = 0;
    for n in 0..100 {
        let s = Sample::registry();
        damage(&s);
        let damaged = content_tree(s.root());
        let out = repair_crashing_before(&s, n);
        if out.status.code() == Some(1) {
            break;
        }
        assert_eq!(out.status.code(), None, "killed by SIGABRT at step {n}");
        crashes += 1;
        let q = s.abs(regfsck::fsops::QUARANTINE);
        if let Ok(mut runs) = std::fs::read_dir(&q) {
            let run = runs.next().unwrap().unwrap().file_name();
            let run = format!("{}/{}", regfsck::fsops::QUARANTINE, run.to_string_lossy());
            let out = regfsck()
                .args(["repair", "--yes", "--undo", &run])
                .arg(s.root())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "undo after step {n}");
        }
        assert_eq!(
            content_tree(s.root()),
            damaged,
            "undo after a crash at step {n}"
        );
    }
    assert!(crashes > 5, "only {crashes} crash points");
    // Killed at every step, then repair again: no error verify did not report before, and the
    // rerun continues the same run and leaves the tree of an uninterrupted repair.
    let reference = Sample::registry();
    damage(&reference);
    let before = errors_now(&reference);
    let out = regfsck()
        .args(["repair", "--yes", "-q"])
        .arg(reference.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let finished = content_tree(reference.root());
    let mut crashes = 0;
    for n in 0..100 {
        let s = Sample::registry();
        damage(&s);
        let out = repair_crashing_before(&s, n);
        if out.status.code() == Some(1) {
            break;
        }
        assert_eq!(out.status.code(), None, "killed by SIGABRT at step {n}");
        crashes += 1;
        let now = errors_now(&s);
        let new: Vec<_> = now.difference(&before).collect();
        assert!(new.is_empty(), "a crash at step {n} left {new:?}");
        let out = regfsck()
            .args(["repair", "--yes", "-q"])
            .arg(s.root())
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "rerun after step {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            content_tree(s.root()),
            finished,
            "rerun after a crash at step {n}"
        );
    }
    assert!(crashes > 5, "only {crashes} crash points");
}

/// A broken tag whose history ties on its index links' times, neither revision tagged
/// elsewhere: the newer revision link decides. The older revision's link holds garbage, and
/// repair rewrites it before it points the tag back, which makes it the newest file of all: a
/// repair crashed after that rewrite, then continued, must still decide by the times the
/// registry wrote (the journal keeps the replaced link's), as an uninterrupted repair does.
#[test]
fn a_continued_repair_orders_a_tags_history_by_the_times_before_it() {
    let set_mtime = |p: &Path, secs: u64| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let probe = Sample::registry();
    let newer = probe.tag("alpine-mini", "latest");
    let older = probe.untagged("alpine-mini");
    let damage = |s: &Sample| {
        rm(s.current_link("alpine-mini", "3.19")
            .parent()
            .unwrap()
            .parent()
            .unwrap());
        std::fs::write(s.current_link("alpine-mini", "latest"), "garbage").unwrap();
        std::fs::write(s.revision_link("alpine-mini", &older), "sha256:nothex\n").unwrap();
        let index = |d: &regfsck::Digest| {
            s.current_link("alpine-mini", "latest")
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("index/sha256")
                .join(d.hex())
                .join("link")
        };
        set_mtime(&index(&newer), 1_700_000_000);
        set_mtime(&index(&older), 1_700_000_000);
        set_mtime(&s.revision_link("alpine-mini", &newer), 1_700_000_200);
        set_mtime(&s.revision_link("alpine-mini", &older), 1_700_000_100);
    };
    let reference = Sample::registry();
    damage(&reference);
    let out = regfsck()
        .args(["repair", "--yes", "-q"])
        .arg(reference.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let latest = format!("alpine-mini:latest:{newer}");
    let ls = |s: &Sample| {
        let out = regfsck().arg("ls").arg(s.root()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(ls(&reference).contains(&latest), "{}", ls(&reference));
    let finished = content_tree(reference.root());
    let mut crashes = 0;
    for n in 0..100 {
        let s = Sample::registry();
        damage(&s);
        let out = repair_crashing_before(&s, n);
        if out.status.code() == Some(1) {
            break;
        }
        assert_eq!(out.status.code(), None, "killed by SIGABRT at step {n}");
        crashes += 1;
        let out = regfsck()
            .args(["repair", "--yes", "-q"])
            .arg(s.root())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "rerun after step {n}");
        assert!(
            ls(&s).contains(&latest),
            "after a crash at step {n}: {}",
            ls(&s)
        );
        assert_eq!(
            content_tree(s.root()),
            finished,
            "after a crash at step {n}"
        );
    }
    assert!(crashes >= 4, "only {crashes} crash points");
}

/// For every damaged copy the damage tests make (on a copy of it): the other commands' dry runs
/// end with a clean exit code, and a real repair keeps its promises (verify afterwards reports
/// only what it said it could not fix, no intact blob is lost, undo restores the damage).
pub(crate) fn every_command_copes(damaged: &Path) {
    let copy = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", damaged.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(st.success());
    let root = copy.path();
    let code = |args: &[&str]| {
        let out = regfsck().args(args).arg(root).output().unwrap();
        let c = out.status.code();
        // 8 only when the scan could not see everything (a symlink it does not follow, a
        // directory it cannot list): then no destructive command runs.
        let err = String::from_utf8_lossy(&out.stderr);
        let blind = c == Some(8) && (err.contains("refusing") || err.contains("incomplete"));
        assert!(
            matches!(c, Some(0 | 1 | 4)) || blind,
            "{args:?} exited {c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    };
    code(&["gc", "--dry-run", "--min-age", "0", "-m"]);
    code(&["prune", "--dry-run", "--keep-last", "1"]);
    code(&["du"]);
    code(&["ls"]);
    let damaged_tree = content_tree(root);
    let intact = intact_blobs(root);
    let out = regfsck()
        .args(["repair", "--json", "--yes"])
        .arg(root)
        .output()
        .unwrap();
    if out.status.code() == Some(8) {
        // Refused: the scan could not see everything. Nothing may have changed.
        assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to repair"));
        assert_eq!(
            content_tree(root),
            damaged_tree,
            "a refused repair changed the tree"
        );
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unrepairable = said_unrepairable(&v);
    let c = out.status.code();
    assert!(matches!(c, Some(0 | 1 | 4)), "repair exited {c:?}: {v:#}");
    let s = Sample { dir: copy };
    let left = errors_now(&s);
    assert!(
        left.is_subset(&unrepairable),
        "left {left:?}, said {unrepairable:?}"
    );
    let now = intact_blobs(s.root());
    assert!(intact.is_subset(&now), "lost {:?}", intact.difference(&now));
    if let Some(run) = v["applied"]["quarantine"].as_str() {
        let out = regfsck()
            .args(["repair", "--yes", "--undo", run])
            .arg(s.root())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(content_tree(s.root()), damaged_tree, "undo");
    }
}

/// The undo line repair prints runs as printed (copied to a shell, from another directory,
/// with REGFSCK_ROOT naming another registry, the root's path holding a space); with
/// `--dry-run` added it says what it would restore and changes nothing.
#[test]
fn the_printed_undo_line_works_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry data");
    std::fs::create_dir(&root).unwrap();
    let mut ar =
        tar::Archive::new(std::fs::File::open(crate::common::sample_tar("sample")).unwrap());
    ar.set_preserve_mtime(true);
    ar.unpack(&root).unwrap();
    let link = root.join("docker/registry/v2/repositories/team/app/_layers/sha256/f4a61181a7976f47badbf9fe4721ea204204fd6d51167d97403456903200d733/link");
    std::fs::remove_file(&link).unwrap();
    let damaged = content_tree(&root);
    let out = regfsck()
        .args(["repair", "--yes"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(link.exists());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find_map(|l| {
            l.split_once("(undo: ")
                .map(|(_, c)| c.trim_end_matches(')'))
        })
        .unwrap_or_else(|| panic!("no undo line in {text}"))
        .to_string();
    assert!(line.starts_with("regfsck repair --yes --undo '"), "{line}");
    let repaired = content_tree(&root);
    let elsewhere = Sample::registry();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_regfsck")).parent().unwrap();
    let sh = |cmd: &str| {
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        regfsck_free_shell(cmd)
            .env("PATH", path)
            .env("REGFSCK_ROOT", elsewhere.root())
            .current_dir(elsewhere.root())
            .output()
            .unwrap()
    };
    let dry = sh(&format!("{line} --dry-run"));
    let said = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        said.contains(
            "would remove docker/registry/v2/repositories/team/app/_layers/sha256/f4a61181"
        ) && said.contains("would undo: "),
        "{said}"
    );
    assert_eq!(content_tree(&root), repaired, "a dry run changes nothing");
    let undo = sh(&line);
    assert_eq!(
        undo.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&undo.stderr)
    );
    assert_eq!(content_tree(&root), damaged, "undone as printed");
}

/// `sh -c CMD`, with the environment `regfsck()` clears cleared too.
fn regfsck_free_shell(cmd: &str) -> std::process::Command {
    let mut c = std::process::Command::new("sh");
    c.args(["-c", cmd])
        .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        .env("REGFSCK_NOW", crate::common::NOW);
    c
}
