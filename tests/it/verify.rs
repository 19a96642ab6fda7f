//! `verify` on the layout the real registry wrote.

use serde::Deserialize;

use regfsck::manifest::Role;

use crate::common::{Sample, regfsck};
use crate::regfsck_snapshot;

#[test]
fn sample_is_clean_human() {
    let s = Sample::registry();
    regfsck_snapshot!(
        "sample_human",
        regfsck().arg("verify").arg(s.root()),
        Some(s.root())
    );
}

#[test]
fn sample_is_clean_verbose() {
    let s = Sample::registry();
    regfsck_snapshot!(
        "sample_verbose",
        regfsck().args(["verify", "--verbose"]).arg(s.root()),
        Some(s.root())
    );
}

#[test]
fn sample_json() {
    let s = Sample::registry();
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 0);
    insta::with_settings!({filters => crate::common::filters()}, {
        insta::assert_json_snapshot!("sample_json", v);
    });
}

/// The JSON document is a contract: unknown fields fail this test.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Doc {
    schema_version: u32,
    command: String,
    summary: Summary,
    findings: Vec<Finding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Summary {
    blobs: u64,
    bytes: u64,
    blobs_hashed: u64,
    repositories: u64,
    tags: u64,
    manifests: u64,
    orphan_blobs: u64,
    orphan_bytes: u64,
    errors: u64,
    warnings: u64,
    infos: u64,
    content_checked: bool,
    interrupted: bool,
    complete: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Finding {
    severity: String,
    kind: String,
    repository: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
    manifest: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    message: String,
    /// Error findings only, and only when a tag needs what is damaged.
    breaks: Option<Vec<String>>,
}

#[test]
fn json_schema() {
    let s = Sample::registry();
    let (_, v) = s.verify_json(&[]);
    let doc: Doc = serde_json::from_value(v).unwrap();
    assert_eq!(doc.schema_version, 1);
    assert_eq!(doc.command, "verify");
    assert_eq!(doc.summary.blobs, doc.summary.blobs_hashed);
    assert!(doc.summary.content_checked);
    assert!(doc.summary.complete);
    for f in &doc.findings {
        assert!(["error", "warning", "info"].contains(&f.severity.as_str()));
        if let Some(d) = &f.digest {
            assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
        }
        if let Some(p) = &f.path {
            assert!(p.starts_with("docker/registry/v2/"), "{p}");
        }
    }
}

#[test]
fn no_content_checks_structure_only() {
    let s = Sample::registry();
    let (code, v) = s.verify_json(&["--no-content"]);
    assert_eq!(code, 0);
    assert_eq!(v["summary"]["blobs_hashed"], 0);
    assert_eq!(v["summary"]["content_checked"], false);
    // A corrupt blob goes unnoticed without hashing, and is found with it.
    let d = s.tag("busybox-oci", "1.1");
    let layer = s.reference(&d, crate::common::R::Layer);
    let p = s.blob_path(&layer);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    assert_eq!(s.verify_json(&["--no-content"]).0, 0);
    assert_eq!(s.verify_json(&[]).0, 4);
}

#[test]
fn output_is_the_same_with_one_job() {
    let s = Sample::registry();
    let a = regfsck()
        .args(["verify", "--json", "-j", "1"])
        .arg(s.root())
        .output()
        .unwrap();
    let b = regfsck()
        .args(["verify", "--json", "-j", "8"])
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn sample_has_what_the_issue_asks_for() {
    let s = Sample::registry();
    let (_, v) = s.verify_json(&[]);
    let kinds: Vec<String> = crate::common::findings(&v)
        .into_iter()
        .map(|f| format!("{} {}", f.1, f.2.unwrap_or_default()))
        .collect();
    assert!(
        kinds.contains(&"empty_repository emptied".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| k.starts_with("upload_in_progress team/app")),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| k.starts_with("untagged_manifest alpine-mini")),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k.starts_with("orphan_blob")),
        "{kinds:?}"
    );
    let (_, g) = s.graph();
    let names: Vec<String> = g.repos.keys().map(|r| r.to_string()).collect();
    for r in [
        "team/app",
        "team/app/api",
        "multi/oci-index",
        "multi/docker-list",
    ] {
        assert!(names.contains(&r.to_string()), "{names:?}");
    }
}

#[test]
fn interrupt_exits_32_with_a_partial_report() {
    let s = Sample::registry();
    // A 1 GiB (sparse) blob keeps the hashing busy long enough to be interrupted.
    let p = s.abs("docker/registry/v2/blobs/sha256/00/00000000000000000000000000000000000000000000000000000000000000aa/data");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::File::create(&p).unwrap().set_len(1 << 30).unwrap();
    let child = regfsck()
        .args(["verify", "--json", "-j", "1"])
        .arg(s.root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(32));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["interrupted"], true);
    assert_eq!(v["summary"]["content_checked"], false);
}

/// `--read-data-subset N/M`: the M subsets split the blobs (each hashed once over M runs),
/// and a corrupt blob is found by the run of its subset (and only the structure by the others).
#[test]
fn read_data_subsets_cover_every_blob_once() {
    let s = Sample::registry();
    let (_, all) = s.verify_json(&[]);
    let blobs = all["summary"]["blobs_hashed"].as_u64().unwrap();
    let mut total = 0;
    let d = {
        let (_, g) = s.graph();
        let m = g.manifest(&s.tag("busybox-oci", "1.1")).unwrap().clone();
        m.refs(regfsck::manifest::Role::Layer)
            .last()
            .unwrap()
            .digest
    };
    let p = s.blob_path(&d);
    let mut b = std::fs::read(&p).unwrap();
    b[0] ^= 0xff;
    std::fs::write(&p, b).unwrap();
    let mut found_by = Vec::new();
    for n in 1..=5 {
        let subset = format!("{n}/5");
        let (code, v) = s.verify_json(&["--read-data-subset", &subset]);
        total += v["summary"]["blobs_hashed"].as_u64().unwrap();
        assert_eq!(v["summary"]["content_subset"], subset.as_str());
        assert_eq!(v["summary"]["content_checked"], false);
        let corrupt = crate::common::findings(&v)
            .iter()
            .any(|f| f.1 == "blob_corrupt");
        if corrupt {
            assert_eq!(code, 4);
            found_by.push(n);
        }
    }
    assert_eq!(
        total, blobs,
        "every blob hashed exactly once over the 5 runs"
    );
    assert_eq!(found_by.len(), 1, "{found_by:?}");
}

#[test]
fn damaged_blobs_name_the_tags_they_break() {
    let s = Sample::registry();
    // busybox-oci's own layer, corrupt: both its tags (and no other repository's).
    let busybox = s.tag("busybox-oci", "1.1");
    let own = s
        .manifest(&busybox)
        .refs(Role::Layer)
        .nth(1)
        .unwrap()
        .digest;
    let p = s.blob_path(&own);
    std::fs::remove_file(&p).unwrap();
    std::fs::write(&p, b"not the layer").unwrap();
    // The amd64 config, missing: shared by the children of multi/oci-index and
    // multi/docker-list, so each repository's finding breaks its own index tag.
    let child = s.manifest(&s.tag("multi/oci-index", "latest")).references[0].digest;
    let config = s.reference(&child, Role::Config);
    std::fs::remove_dir_all(s.blob_path(&config).parent().unwrap()).unwrap();

    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 4);
    let _: Doc = serde_json::from_value(v.clone()).unwrap();
    let mut got: Vec<(String, Option<String>, Vec<String>)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f.get("repository")
                    .and_then(|r| r.as_str())
                    .map(str::to_string),
                f["breaks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    got.sort();
    let busybox_tags = vec!["busybox-oci:1.1".to_string(), "busybox-oci:latest".into()];
    assert_eq!(
        got,
        [
            ("blob_corrupt".into(), None, busybox_tags.clone()),
            (
                "blob_missing".into(),
                Some("multi/docker-list".into()),
                vec!["multi/docker-list:latest".into()]
            ),
            (
                "blob_missing".into(),
                Some("multi/oci-index".into()),
                vec!["multi/oci-index:latest".into()]
            ),
            (
                "blob_size_mismatch".into(),
                Some("busybox-oci".into()),
                busybox_tags
            ),
        ]
    );
    // Warnings and infos carry no breaks; the human report says it under each error.
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] != "error")
            .all(|f| f.get("breaks").is_none())
    );
    let out = regfsck().arg("verify").arg(s.root()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("error[blob_corrupt] {own}: content hashes to")),
        "{text}"
    );
    assert!(
        text.contains("\n  breaks busybox-oci:1.1, busybox-oci:latest\n"),
        "{text}"
    );
}

/// Reading the registry writes nothing to it, not even access times: regfsck opens every
/// file and directory it reads with `O_NOATIME` (the owner's or root's right), so under
/// `relatime` a daily `gc --dry-run` or `verify` does not rewrite the inode of every link,
/// manifest, blob and directory it reads.
#[test]
fn reading_the_registry_leaves_every_access_time_as_it_was() {
    use std::fs::{File, FileTimes};
    use std::time::{Duration, UNIX_EPOCH};
    let s = Sample::registry();
    fn walk(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        out.push(p.to_path_buf());
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        }
    }
    let mut all = Vec::new();
    walk(s.root(), &mut all);
    // Older than every change: relatime updates such a time at the next read.
    let old = UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    for p in &all {
        let f = File::open(p).unwrap();
        f.set_times(FileTimes::new().set_accessed(old)).unwrap();
    }
    let touched = || -> Vec<&std::path::PathBuf> {
        all.iter()
            .filter(|p| std::fs::symlink_metadata(p).unwrap().accessed().unwrap() != old)
            .collect()
    };
    assert_eq!(touched(), Vec::<&std::path::PathBuf>::new());
    for args in [
        &["verify"][..],
        &["gc", "--dry-run"],
        &["gc", "--dry-run", "-m"],
        &["ls"],
        &["du"],
        &["show", "ROOT", "alpine-mini:latest"],
    ] {
        let mut c = regfsck();
        for a in args {
            if *a == "ROOT" {
                c.arg(s.root());
            } else {
                c.arg(a);
            }
        }
        if !args.contains(&"ROOT") {
            c.arg(s.root());
        }
        let out = c.output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 4)),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = touched();
        assert!(
            t.is_empty(),
            "{args:?} changed {} access times: {:?} ...",
            t.len(),
            &t[..t.len().min(3)]
        );
    }
    // The control: a plain read does update an access time on this filesystem.
    let link = all
        .iter()
        .find(|p| p.ends_with("link"))
        .expect("a link file");
    std::fs::read(link).unwrap();
    if std::fs::symlink_metadata(link).unwrap().accessed().unwrap() == old {
        eprintln!(
            "this filesystem does not update access times (noatime?): the test shows nothing here"
        );
    }
}

/// `O_NOATIME` is only the owner's (or root's) right: a reader that owns nothing (the
/// registry's files read by another user, here `nobody`) is refused it, and regfsck then
/// opens without it and finds what the owner finds.
#[test]
fn a_reader_who_owns_nothing_verifies_as_the_owner_does() {
    use std::os::unix::fs::PermissionsExt;
    let runuser = std::path::Path::new("/usr/sbin/runuser");
    // Root (runuser needs it): the real uid in /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    if !root || !runuser.exists() {
        eprintln!("needs root and runuser to read as nobody: not run here");
        return;
    }
    let s = Sample::registry();
    fn open_up(p: &std::path::Path) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let mode = if m.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                open_up(&e.unwrap().path());
            }
        }
    }
    open_up(s.root());
    let bin = env!("CARGO_BIN_EXE_regfsck");
    for args in [&["verify", "--json"][..], &["gc", "--dry-run", "--json"]] {
        let owner = regfsck().args(args).arg(s.root()).output().unwrap();
        let nobody = std::process::Command::new(runuser)
            .args(["-u", "nobody", "--", bin])
            .args(args)
            .arg(s.root())
            .env("REGFSCK_NOW", crate::common::NOW)
            .output()
            .unwrap();
        assert_eq!(
            nobody.status.code(),
            owner.status.code(),
            "{args:?}: {}",
            String::from_utf8_lossy(&nobody.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&nobody.stdout),
            String::from_utf8_lossy(&owner.stdout),
            "{args:?}"
        );
    }
}
