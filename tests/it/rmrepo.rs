//! `rm-repo` and `du` on the real registry's sample, checked with the real registry and skopeo.

use std::io::{Read, Write};

use crate::common::{Sample, regfsck};
use crate::common::{crash_at_every_step, tree};
use crate::gc::{pull_all, serve};
use crate::regfsck_snapshot;

fn du_json(s: &Sample) -> serde_json::Value {
    let out = regfsck()
        .args(["du", "--json", "--tags"])
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn exclusive(du: &serde_json::Value, repo: &str) -> u64 {
    du["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository"] == repo)
        .unwrap()["exclusive"]
        .as_u64()
        .unwrap()
}

/// `/v2/_catalog` of the real registry serving the layout.
fn catalog(s: &Sample) -> Vec<String> {
    let reg = serve(s.root());
    let mut c = std::net::TcpStream::connect(&reg.addr).unwrap();
    write!(c, "GET /v2/_catalog HTTP/1.0\r\nHost: {}\r\n\r\n", reg.addr).unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    std::fs::remove_file(s.root().join("config.yml")).unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

fn rm(s: &Sample, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = regfsck()
        .arg("--root")
        .arg(s.root())
        .args(["rm-repo", "--json"])
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn removing_a_parent_keeps_the_nested_repository() {
    let s = Sample::registry();
    assert!(catalog(&s).contains(&"team/app".to_string()));
    let predicted = exclusive(&du_json(&s), "team/app");
    let (code, v, err) = rm(&s, &["team/app"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        v["applied"]["bytes"].as_u64().unwrap(),
        predicted,
        "du predicted the bytes freed"
    );
    assert!(predicted > 0);
    let names = catalog(&s);
    assert!(!names.contains(&"team/app".to_string()), "{names:?}");
    assert!(names.contains(&"team/app/api".to_string()), "{names:?}");
    assert_eq!(s.verify_json(&[]).0, 0);
    // team/app/api and every other tag still pull.
    let failed = pull_all(&s);
    assert_eq!(failed, Vec::<String>::new());
    assert!(!s.abs("docker/registry/regfsck-trash").exists());
}

#[test]
fn dry_run_changes_nothing_and_reports_the_same() {
    let s = Sample::registry();
    let before = tree(s.root());
    let (code, dry, _) = rm(&s, &["team/app", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(tree(s.root()), before);
    let (_, real, _) = rm(&s, &["team/app"]);
    assert_eq!(dry["blobs"], real["blobs"]);
    assert_eq!(dry["repositories"], real["repositories"]);
}

#[test]
fn shared_blobs_are_never_removed() {
    let s = Sample::registry();
    let (_, v, _) = rm(&s, &["multi/oci-index"]);
    // Its children's layers are the same as multi/docker-list's: nothing of those may go.
    for b in v["blobs"].as_array().unwrap() {
        let d: regfsck::Digest = b["digest"].as_str().unwrap().parse().unwrap();
        assert!(!s.blob_path(&d).exists());
    }
    assert_eq!(s.verify_json(&[]).0, 0);
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

#[test]
fn bad_names_are_refused_and_nothing_changes() {
    let s = Sample::registry();
    let before = tree(s.root());
    for (name, code) in [
        ("..", 16),
        ("team/../alpine-mini", 16),
        ("/etc", 16),
        ("Team/App", 16),
        ("nosuch", 8),
        ("team", 8),
    ] {
        let (got, _, err) = rm(&s, &[name]);
        assert_eq!(got, code, "{name}: {err}");
        assert!(
            err.contains(&format!("{name:?}")),
            "the error names {name}: {err}"
        );
    }
    assert_eq!(tree(s.root()), before);
}

#[test]
fn killed_at_every_point_then_rerun_or_gc_finishes() {
    let gc = |s: &Sample| {
        let out = regfsck()
            .args(["gc", "--min-age", "0", "-q"])
            .arg(s.root())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let cmd = |s: &Sample| {
        let mut c = regfsck();
        c.arg("--root").arg(s.root()).args(["rm-repo", "team/app"]);
        c
    };
    // The same command again finishes exactly what an uninterrupted run frees (the job is
    // recorded in the trash: the repository may be gone from the tree already).
    let reference = Sample::registry();
    let (code, _, _) = rm(&reference, &["team/app"]);
    assert_eq!(code, 0);
    let rerun = |s: &Sample| {
        // 8 ("no repository") only when the killed run had finished all but its last step;
        // the tree comparison shows whether anything was left behind.
        let (code, _, err) = rm(s, &["team/app"]);
        assert!(code == 0 || code == 8, "{err}");
    };
    let crashes = crash_at_every_step(&Sample::registry, &cmd, &rerun, &tree(reference.root()));
    assert!(crashes >= 5, "only {crashes} crash points");
    // So does gc (which sweeps the other garbage too): gc, then rm-repo again (for a crash
    // before the job was recorded; 8 when gc finished it), then gc leave the tree of rm-repo
    // and gc.
    gc(&reference);
    let finish = |s: &Sample| {
        gc(s);
        let (code, _, err) = rm(s, &["team/app"]);
        assert!(code == 0 || code == 8, "{err}");
        gc(s);
    };
    let crashes = crash_at_every_step(&Sample::registry, &cmd, &finish, &tree(reference.root()));
    assert!(crashes >= 5, "only {crashes} crash points");
}

#[test]
fn du_reports() {
    let s = Sample::registry();
    regfsck_snapshot!(
        "du_human",
        regfsck().arg("du").arg(s.root()),
        Some(s.root())
    );
    let v = du_json(&s);
    let sum: u64 =
        v["referenced_bytes"].as_u64().unwrap() + v["unreferenced_bytes"].as_u64().unwrap();
    assert_eq!(sum, v["blob_bytes"].as_u64().unwrap());
    for r in v["repositories"].as_array().unwrap() {
        assert_eq!(
            r["total"].as_u64().unwrap(),
            r["exclusive"].as_u64().unwrap() + r["shared"].as_u64().unwrap()
        );
    }
    insta::assert_json_snapshot!("du_json", v);
}

#[test]
fn keep_blobs_leaves_them_for_gc() {
    let s = Sample::registry();
    let blobs_before = du_json(&s)["blob_bytes"].as_u64().unwrap();
    let (code, v, _) = rm(&s, &["team/app", "--keep-blobs"]);
    assert_eq!(code, 0);
    assert_eq!(v["blobs"], serde_json::json!([]));
    assert_eq!(du_json(&s)["blob_bytes"].as_u64().unwrap(), blobs_before);
    assert!(
        !s.abs("docker/registry/v2/repositories/team/app/_manifests")
            .exists()
    );
    assert!(
        s.abs("docker/registry/v2/repositories/team/app/api/_manifests")
            .exists()
    );
    assert_eq!(s.verify_json(&[]).0, 0);
}

#[test]
fn several_names_at_once_share_their_exclusive_blobs() {
    let s = Sample::registry();
    // The two multi-arch repositories share their children's layers: removing both frees them.
    let one =
        exclusive(&du_json(&s), "multi/oci-index") + exclusive(&du_json(&s), "multi/docker-list");
    let (code, v, err) = rm(&s, &["multi/oci-index", "multi/docker-list"]);
    assert_eq!(code, 0, "{err}");
    assert!(v["applied"]["bytes"].as_u64().unwrap() > one);
    assert!(
        !s.abs("docker/registry/v2/repositories/multi").exists(),
        "empty parent removed"
    );
    assert_eq!(s.verify_json(&[]).0, 0);
}

#[test]
fn du_sorts_by_name() {
    let s = Sample::registry();
    let out = regfsck()
        .args(["du", "--json", "--sort", "name"])
        .arg(s.root())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 7);
}
