//! `show` on the real registry's sample: indexes, images, referrers, sizes.

use std::collections::BTreeSet;

use regfsck::Digest;

use crate::common::{Sample, regfsck};

const INDEX: &str = "sha256:7efccb5b900469b66d94e6917a106c4108d8f793ef460c4f95957644d90b671e";
const AMD64: &str = "sha256:b97b7cdd6abc1a3a9939d027501e4e7278e99aaf85b2ec80e1d5f0533e54d0ef";
const ARM64: &str = "sha256:6512fa189aa738b76e5996632b70a24a0ab03a521520d01e53ff4140c61f01b8";
const BUSYBOX: &str = "sha256:950cda1ece8c0571f729c9bece4e2bcb7b73a10377f62b257cd19b8c9782836b";
const SIGNATURE: &str = "sha256:6348f7d6dd95c42331162775c3590a09fce95615712bd8f2b73f4dc8000d5fa4";
const BASE_LAYER: &str = "sha256:f4a61181a7976f47badbf9fe4721ea204204fd6d51167d97403456903200d733";

/// `regfsck show --json ROOT what`: (exit code, JSON, stderr).
fn show_json(s: &Sample, what: &str) -> (i32, serde_json::Value, String) {
    let out = regfsck()
        .args(["show", "--json"])
        .arg(s.root())
        .arg(what)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The size of blob `d`'s data file.
fn blob_size(s: &Sample, d: &str) -> u64 {
    std::fs::metadata(s.blob_path(&d.parse().unwrap()))
        .unwrap()
        .len()
}

/// The stored JSON of blob `d`.
fn blob_json(s: &Sample, d: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(s.blob_path(&d.parse().unwrap())).unwrap()).unwrap()
}

/// An image manifest's own digest, config and layers, read from its stored JSON.
fn image_blobs(s: &Sample, d: &str) -> BTreeSet<String> {
    let m = blob_json(s, d);
    let mut out = BTreeSet::from([
        d.to_string(),
        m["config"]["digest"].as_str().unwrap().into(),
    ]);
    for l in m["layers"].as_array().unwrap() {
        out.insert(l["digest"].as_str().unwrap().into());
    }
    out
}

fn bytes(s: &Sample, set: &BTreeSet<String>) -> u64 {
    set.iter().map(|d| blob_size(s, d)).sum()
}

#[test]
fn index_children_with_platforms_and_sizes() {
    let s = Sample::registry();
    let (code, v, _) = show_json(&s, "multi/oci-index:latest");
    assert_eq!(code, 0);
    assert_eq!(v["command"], "show");
    assert_eq!(v["digest"], INDEX);
    assert_eq!(v["media_type"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(v["tags"], serde_json::json!(["latest"]));
    let children: Vec<(String, String, String)> = v["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["digest"].as_str().unwrap().into(),
                c["platform"]["os"].as_str().unwrap().into(),
                c["platform"]["architecture"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        children,
        [
            (AMD64.into(), "linux".into(), "amd64".into()),
            (ARM64.into(), "linux".into(), "arm64".into())
        ]
    );
    assert_eq!(v["children"][0]["size"], blob_size(&s, AMD64));
    assert_eq!(v["manifest_size"], blob_size(&s, INDEX));
    // Total: the index, both children and their configs and layers, each blob once (the base
    // layer is in both children).
    let mut all = BTreeSet::from([INDEX.to_string()]);
    all.extend(image_blobs(&s, AMD64));
    all.extend(image_blobs(&s, ARM64));
    assert!(all.contains(BASE_LAYER));
    assert_eq!(v["total_size"], bytes(&s, &all));
    // Exclusive: multi/docker-list shares every config and layer (cross-repository mounts),
    // so only the three manifests are this index's alone.
    let manifests = BTreeSet::from([INDEX.to_string(), AMD64.into(), ARM64.into()]);
    assert_eq!(v["exclusive_size"], bytes(&s, &manifests));
}

#[test]
fn image_with_config_layers_tags_and_referrer() {
    let s = Sample::registry();
    let (code, v, err) = show_json(&s, "busybox-oci:1.1");
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["digest"], BUSYBOX);
    // umoci writes no mediaType: served (and shown) as the OCI manifest type.
    assert_eq!(
        v["media_type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(v["tags"], serde_json::json!(["1.1", "latest"]));
    let m = blob_json(&s, BUSYBOX);
    let config = m["config"]["digest"].as_str().unwrap();
    let cfg = blob_json(&s, config);
    assert_eq!(v["config"]["digest"], config);
    assert_eq!(v["config"]["os"], cfg["os"]);
    assert_eq!(v["config"]["architecture"], cfg["architecture"]);
    assert_eq!(v["config"]["created"], cfg["created"]);
    assert_eq!(v["config"]["os"], "linux");
    let layers: Vec<(String, u64)> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().into(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().unwrap();
            (d.to_string(), blob_size(&s, d))
        })
        .collect();
    assert_eq!(layers, want);
    assert_eq!(layers[0].0, BASE_LAYER);
    // The signature pushed by digest with this manifest as its subject.
    assert_eq!(
        v["referrers"],
        serde_json::json!([{
            "digest": SIGNATURE,
            "media_type": "application/vnd.oci.image.manifest.v1+json",
            "artifact_type": "application/vnd.example.signature.v1",
            "size": blob_size(&s, SIGNATURE),
        }])
    );
    // Pushed: the revision link's mtime.
    let t = std::fs::metadata(s.revision_link("busybox-oci", &BUSYBOX.parse().unwrap()))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        v["pushed"],
        humantime::format_rfc3339_seconds(t).to_string()
    );
    // Exclusive: all but the base layer, which every repository shares; the referrer's own
    // blobs are not this image's.
    let mut own = image_blobs(&s, BUSYBOX);
    assert_eq!(v["total_size"], bytes(&s, &own));
    own.remove(BASE_LAYER);
    assert_eq!(v["exclusive_size"], bytes(&s, &own));

    // The referrer itself, by digest: its subject, artifact type, no tags.
    let (code, r, _) = show_json(&s, &format!("busybox-oci@{SIGNATURE}"));
    assert_eq!(code, 0);
    assert_eq!(r["subject"], BUSYBOX);
    assert_eq!(r["artifact_type"], "application/vnd.example.signature.v1");
    assert_eq!(r["tags"], serde_json::json!([]));
    assert_eq!(r["exclusive_size"], r["total_size"]);
}

#[test]
fn exclusive_counts_the_same_manifest_in_another_repository() {
    // The same image pushed to team/app as well (a revision link there, its blobs linked):
    // removing it from busybox-oci alone frees nothing.
    let s = Sample::registry();
    let d: Digest = BUSYBOX.parse().unwrap();
    let link = s.revision_link("team/app", &d);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::fs::write(&link, BUSYBOX).unwrap();
    for b in image_blobs(&s, BUSYBOX) {
        let l = s.layer_link("team/app", &b.parse().unwrap());
        std::fs::create_dir_all(l.parent().unwrap()).unwrap();
        std::fs::write(&l, &b).unwrap();
    }
    let (code, v, _) = show_json(&s, "busybox-oci:latest");
    assert_eq!(code, 0);
    assert_eq!(v["exclusive_size"], 0);
    assert!(v["total_size"].as_u64().unwrap() > 0);
}

#[test]
fn human_report() {
    let s = Sample::registry();
    let mut cmd = regfsck();
    cmd.arg("show").arg(s.root()).arg("busybox-oci:1.1");
    let text = crate::common::run_and_format(&mut cmd, Some(s.root()));
    assert!(text.starts_with("exit_code: 0\n"), "{text}");
    insta::with_settings!({filters => vec![(r"pushed: +\S+", "pushed:     [TIME]")]}, {
        insta::assert_snapshot!("show_human", text);
    });
    // The index, by --root: one argument is what to show.
    let out = regfsck()
        .arg("--root")
        .arg(s.root())
        .args(["show", "multi/docker-list:latest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("children:\n  linux/amd64"), "{text}");
    assert!(text.contains("  linux/arm64"), "{text}");
}

#[test]
fn what_is_not_there_is_a_usage_error() {
    let s = Sample::registry();
    let absent = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    for (what, says) in [
        ("nope:latest", "no repository \"nope\" in this registry"),
        ("alpine-mini:9.9", "no tag alpine-mini:9.9 in this registry"),
        // A manifest of another repository is not this one's.
        (
            &format!("alpine-mini@{BUSYBOX}") as &str,
            "no manifest alpine-mini@sha256:950cda1e",
        ),
        (&format!("alpine-mini@{absent}"), "no manifest alpine-mini@"),
        // The emptied repository's deleted manifest: its revision directory is empty.
        (
            "emptied@sha256:5d1a8c58afdb88e3a000bf0451be12234474eabdcaf5072b81554b07a45a4f9e",
            "no manifest emptied@",
        ),
        ("alpine-mini", "not REPOSITORY:TAG or REPOSITORY@DIGEST"),
        ("alpine-mini@sha256:12", "alpine-mini@sha256:12"),
    ] {
        let (code, v, err) = show_json(&s, what);
        assert_eq!(code, 16, "{what}: {err}");
        assert!(v.is_null(), "{what}");
        assert!(err.contains(says), "{what}: {err}");
    }
    let out = regfsck().arg("show").arg(s.root()).output().unwrap();
    assert_eq!(out.status.code(), Some(16));
}

#[test]
fn missing_layer_is_shown_and_exits_4() {
    let s = Sample::registry();
    let m = blob_json(&s, BUSYBOX);
    let own = m["layers"][1]["digest"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(s.blob_path(&own.parse().unwrap()).parent().unwrap()).unwrap();
    let (code, v, err) = show_json(&s, "busybox-oci:1.1");
    assert_eq!(code, 4, "{err}");
    assert_eq!(v["layers"][1]["digest"], own.as_str());
    assert_eq!(v["layers"][1]["missing"], true);
    assert!(v["layers"][0].get("missing").is_none());
    assert!(
        err.contains(&format!("layer {own} is not in the blob store")),
        "{err}"
    );
}
