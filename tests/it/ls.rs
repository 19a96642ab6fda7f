//! `ls` against the real registry's own view of the same layout.

use crate::common::{Sample, regfsck, sample_tar};

#[test]
fn tags_match_the_registry_api() {
    let s = Sample::registry();
    let out = regfsck().arg("ls").arg(s.root()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // Recorded from the live registry (catalog, tags/list, HEAD manifests) by testdata/generate.sh.
    // (sorted the same way: regfsck sorts by repository, then tag; the recording by bytes).
    let expected = std::fs::read_to_string(sample_tar("sample").with_extension("ls")).unwrap();
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    let mut want: Vec<String> = expected.lines().map(str::to_string).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(got.len(), 9);
}

#[test]
fn untagged_lists_the_retagged_revision() {
    let s = Sample::registry();
    let out = regfsck()
        .args(["ls", "--untagged"])
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("alpine-mini@sha256:")),
        "{text}"
    );
    // Children of a tagged index are not untagged.
    assert!(!text.contains("multi/"), "{text}");
    insta::assert_snapshot!("ls_untagged", text);
}

#[test]
fn json_listing() {
    let s = Sample::registry();
    let out = regfsck()
        .args(["ls", "--json"])
        .arg(s.root())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["command"], "ls");
    insta::assert_json_snapshot!("ls_json", v);
}

#[test]
fn broken_tag_goes_to_stderr() {
    let s = Sample::registry();
    std::fs::write(s.current_link("alpine-mini", "latest"), "junk").unwrap();
    let out = regfsck().arg("ls").arg(s.root()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("alpine-mini:latest"));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("tag alpine-mini:latest has no readable current/link")
    );
}

/// `REPO:TAG` of each line of `ls` output.
fn tags_of(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| l.rsplit_once(":sha256:").unwrap().0.to_string())
        .collect()
}

#[test]
fn named_repositories_only() {
    let s = Sample::registry();
    let out = regfsck()
        .arg("ls")
        .arg(s.root())
        .args(["team/app", "multi/oci-index"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // team/app/api lives inside team/app's directory, but is its own repository.
    assert_eq!(
        tags_of(&out.stdout),
        ["multi/oci-index:latest", "team/app:latest", "team/app:v1"]
    );
    // With --root (or --config), the first argument is a repository too.
    let out = regfsck()
        .arg("--root")
        .arg(s.root())
        .args(["ls", "team/app/api"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(tags_of(&out.stdout), ["team/app/api:latest"]);
    // With REGFSCK_ROOT, a first argument that is a repository name and no path.
    let out = regfsck()
        .env("REGFSCK_ROOT", s.root())
        .args(["ls", "alpine-mini"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        tags_of(&out.stdout),
        ["alpine-mini:3.19", "alpine-mini:latest"]
    );
    // An emptied repository has no tags, and is no error.
    let out = regfsck()
        .arg("ls")
        .arg(s.root())
        .arg("emptied")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_repository_is_a_usage_error() {
    let s = Sample::registry();
    for (name, says) in [
        ("team/ap", "no repository \"team/ap\" in this registry"),
        ("Team/App", "invalid repository name \"Team/App\""),
    ] {
        let out = regfsck()
            .arg("ls")
            .arg(s.root())
            .args(["alpine-mini", name])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(16), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{name}: {err}");
    }
}

#[test]
fn repositories_are_the_registry_catalog() {
    for sample in ["sample", "trust"] {
        let s = Sample::new(sample);
        let out = regfsck()
            .args(["ls", "--repositories"])
            .arg(s.root())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        // Recorded from the live registry's /v2/_catalog (emptied and alias/mounted included).
        let want = std::fs::read_to_string(sample_tar(sample).with_extension("catalog")).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{sample}");
    }
    let s = Sample::registry();
    let out = regfsck()
        .args(["ls", "--repositories", "--json"])
        .arg(s.root())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["command"], "ls");
    assert_eq!(v["repositories"].as_array().unwrap().len(), 7);
    assert!(v.get("uncataloged").is_none());
}

#[test]
fn repositories_without_layers_are_not_cataloged() {
    // As a pull-through cache's manifest-only repository: the registry serves its tags, but
    // its catalog (keyed on _layers) does not list it.
    let s = Sample::registry();
    std::fs::remove_dir_all(s.abs("docker/registry/v2/repositories/alpine-mini/_layers")).unwrap();
    let out = regfsck()
        .args(["ls", "--repositories", "--json"])
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !v["repositories"]
            .as_array()
            .unwrap()
            .contains(&"alpine-mini".into())
    );
    assert_eq!(v["uncataloged"], serde_json::json!(["alpine-mini"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("alpine-mini is not in the catalog"));
}

/// Copies `repo`'s tag `from` to each of `to` (same manifest), with current/link mtimes one
/// minute apart in the order given.
fn add_tags(s: &Sample, repo: &str, from: &str, to: &[&str]) {
    let base = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let src = s.current_link(repo, from);
    for (i, t) in to.iter().enumerate() {
        let dst = s.current_link(repo, t);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap();
        let f = std::fs::File::options().write(true).open(&dst).unwrap();
        f.set_modified(base + std::time::Duration::from_secs(60 * i as u64))
            .unwrap();
    }
}

#[test]
fn sort_by_name_version_and_push_time() {
    let s = Sample::registry();
    // Pushed in this order, each a minute after the one before (and long before the sample's
    // own tags, 1.1 and latest).
    add_tags(&s, "busybox-oci", "1.1", &["v10", "1.10", "v2", "1.9"]);
    let ls = |sort: &str| {
        let out = regfsck()
            .args(["ls", "--sort", sort])
            .arg(s.root())
            .arg("busybox-oci")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        tags_of(&out.stdout)
            .into_iter()
            .map(|t| t.trim_start_matches("busybox-oci:").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ls("name"), ["1.1", "1.10", "1.9", "latest", "v10", "v2"]);
    assert_eq!(ls("version"), ["latest", "1.1", "1.9", "1.10", "v2", "v10"]);
    // Oldest first; 1.1 and latest were pushed in the same second: by version (latest is
    // none, so first).
    assert_eq!(ls("pushed"), ["v10", "1.10", "v2", "1.9", "latest", "1.1"]);
    let out = regfsck()
        .args(["ls", "--sort", "pushed", "--json"])
        .arg(s.root())
        .arg("busybox-oci")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tags"][0]["tag"], "v10");
    assert_eq!(v["tags"][0]["pushed"], "2023-11-14T22:13:20Z");
    assert_eq!(v["tags"][3]["pushed"], "2023-11-14T22:16:20Z");
}
