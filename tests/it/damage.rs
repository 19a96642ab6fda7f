//! One damaged copy of the real-registry sample per kind of damage: verify names it, exits 4
//! for errors (0 for warnings alone), never panics and never reads outside the root.

use std::os::unix::fs::symlink;
use std::path::Path;

use regfsck::Digest;
use regfsck::digest::{Algorithm, hash_bytes};

use crate::common::{R, Sample, new_problems, regfsck};
use crate::regfsck_snapshot;

/// Applies `damage` to a fresh copy; returns the copy, the exit code and the problems that
/// appeared, as sorted `kind` names and the full strings.
fn damaged(damage: impl FnOnce(&Sample)) -> (Sample, i32, Vec<String>, Vec<String>) {
    let s = Sample::registry();
    let before = s.problems();
    damage(&s);
    let (code, v) = s.verify_json(&[]);
    crate::repair::every_command_copes(s.root());
    let new = new_problems(&before, &crate::common::problems(&v));
    let mut kinds: Vec<String> = new
        .iter()
        .map(|p| p.split(' ').nth(1).unwrap().to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    (s, code, kinds, new)
}

fn kinds(k: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The layer only busybox-oci:1.1 has (its first layer is the base shared by every image).
fn busybox_layer(s: &Sample) -> Digest {
    let m = s.manifest(&s.tag("busybox-oci", "1.1"));
    m.refs(R::Layer).last().unwrap().digest
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

#[test]
fn corrupt_blob() {
    let mut layer = None;
    let (_, code, k, new) = damaged(|s| {
        let d = busybox_layer(s);
        let p = s.blob_path(&d);
        let mut b = std::fs::read(&p).unwrap();
        b[0] ^= 0xff;
        std::fs::write(&p, b).unwrap();
        layer = Some(d);
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_corrupt"]));
    assert_eq!(
        new,
        vec![format!("error blob_corrupt - {}", layer.unwrap())]
    );
}

#[test]
fn truncated_blob() {
    let (_, code, k, _) = damaged(|s| {
        let p = s.blob_path(&busybox_layer(s));
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_corrupt", "blob_size_mismatch"]));
}

#[test]
fn empty_blob() {
    let (_, code, k, _) = damaged(|s| {
        std::fs::write(s.blob_path(&busybox_layer(s)), b"").unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_empty", "blob_size_mismatch"]));
}

#[test]
fn missing_blob() {
    let (_, code, k, new) = damaged(|s| {
        std::fs::remove_dir_all(s.blob_path(&busybox_layer(s)).parent().unwrap()).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_missing"]));
    assert!(new.iter().any(|p| p.contains("busybox-oci")), "{new:?}");
}

#[test]
fn garbage_in_a_tag_link() {
    let (_, code, k, _) = damaged(|s| {
        std::fs::write(s.current_link("alpine-mini", "latest"), "hello\n").unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["link_malformed"]));
}

#[test]
fn trailing_newline_in_a_revision_link() {
    let (_, code, k, _) = damaged(|s| {
        let d = s.tag("alpine-mini", "latest");
        std::fs::write(s.revision_link("alpine-mini", &d), format!("{d}\n")).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["link_malformed", "tag_revision_missing"]));
}

#[test]
fn path_traversal_digest_in_a_link() {
    let (s, code, k, _) = damaged(|s| {
        std::fs::write(
            s.current_link("team/app", "latest"),
            "sha256:../../../../../../../../etc/passwd",
        )
        .unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["link_malformed"]));
    let (_, v) = s.verify_json(&[]);
    assert!(
        !v.to_string().contains("root:x:0:0"),
        "read outside the root"
    );
}

#[test]
fn path_traversal_digest_in_a_manifest() {
    let (_, code, k, _) = damaged(|s| {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:../../../../etc/passwd","size":1},"layers":[]}"#;
        let d = write_blob(s, m);
        write_link(&s.revision_link("busybox-oci", &d), &d.to_string());
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["manifest_invalid"]));
}

#[test]
fn symlink_out_of_the_root() {
    let (s, code, k, _) = damaged(|s| {
        let p = s.blob_path(&busybox_layer(s));
        std::fs::remove_file(&p).unwrap();
        symlink("/etc/passwd", &p).unwrap();
        symlink("/etc", s.abs("docker/registry/v2/repositories/evil")).unwrap();
    });
    // Errors (4), and a part of the repositories tree it does not follow (8).
    assert_eq!(code, 12);
    // The data file is there (a symlink, not followed): neither missing nor without data.
    assert_eq!(k, kinds(&["symlink"]));
    let (_, v) = s.verify_json(&[]);
    assert!(!v.to_string().contains("root:x:0:0"));
}

#[test]
fn layer_not_linked_in_the_repository() {
    let (_, code, k, new) = damaged(|s| {
        let d = s.tag("busybox-oci", "1.1");
        let config = s.reference(&d, R::Config);
        std::fs::remove_file(s.layer_link("busybox-oci", &config)).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["layer_unlinked"]));
    assert!(new.iter().all(|p| p.contains("busybox-oci")));
}

#[test]
fn tag_without_revision() {
    let (_, code, k, _) = damaged(|s| {
        let d = s.tag("alpine-mini", "latest");
        std::fs::remove_file(s.revision_link("alpine-mini", &d)).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["tag_revision_missing"]));
}

#[test]
fn tagged_manifest_blob_missing() {
    let (_, code, k, _) = damaged(|s| {
        let d = s.tag("alpine-mini", "latest");
        std::fs::remove_dir_all(s.blob_path(&d).parent().unwrap()).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["manifest_missing"]));
}

#[test]
fn index_child_unlinked() {
    let (_, code, k, _) = damaged(|s| {
        let tag = s.first_tag("multi/oci-index");
        let idx = s.tag("multi/oci-index", &tag);
        let child = s.reference(&idx, R::Child);
        std::fs::remove_file(s.revision_link("multi/oci-index", &child)).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["child_unlinked"]));
}

#[test]
fn list_child_blob_missing() {
    let (_, code, k, _) = damaged(|s| {
        let tag = s.first_tag("multi/docker-list");
        let idx = s.tag("multi/docker-list", &tag);
        let child = s.reference(&idx, R::Child);
        std::fs::remove_dir_all(s.blob_path(&child).parent().unwrap()).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["child_missing"]));
}

#[test]
fn manifest_that_is_not_json() {
    let (_, code, k, _) = damaged(|s| {
        let d = s.tag("alpine-mini", "latest");
        std::fs::write(s.blob_path(&d), "{ this is not json").unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_corrupt", "manifest_invalid"]));
}

#[test]
fn huge_manifest_is_not_read_whole() {
    let (_, code, k, _) = damaged(|s| {
        let d = s.tag("alpine-mini", "latest");
        std::fs::write(s.blob_path(&d), vec![b' '; 5 * 1024 * 1024]).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_corrupt", "manifest_too_large"]));
}

#[test]
fn blob_under_the_wrong_shard() {
    let (_, code, k, _) = damaged(|s| {
        let d = busybox_layer(s);
        let dir = s.blob_path(&d).parent().unwrap().to_path_buf();
        let shard = if d.hex().starts_with("00") {
            "01"
        } else {
            "00"
        };
        let to = s.abs(&format!(
            "docker/registry/v2/blobs/sha256/{shard}/{}",
            d.hex()
        ));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(dir, to).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_missing", "blob_wrong_shard"]));
}

#[test]
fn stray_and_temporary_files_are_warnings() {
    let (_, code, k, _) = damaged(|s| {
        std::fs::write(s.abs("docker/registry/v2/repositories/team/notes.txt"), "x").unwrap();
        let p = s.blob_path(&busybox_layer(s));
        std::fs::write(p.with_file_name("data.1234.tmp"), "x").unwrap();
        std::fs::create_dir(s.abs("docker/registry/v2/repositories/team/app/_junk")).unwrap();
    });
    assert_eq!(code, 0, "warnings alone exit 0");
    assert_eq!(k, kinds(&["temp_file", "unknown_entry"]));
}

#[test]
fn fifo_instead_of_files_does_not_hang() {
    let (_, code, k, _) = damaged(|s| {
        let p = s.blob_path(&busybox_layer(s));
        std::fs::remove_file(&p).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap();
        assert!(ok.success());
        let link = s.current_link("alpine-mini", "latest");
        std::fs::remove_file(&link).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(&link)
            .status()
            .unwrap();
        assert!(ok.success());
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["blob_not_a_file", "link_unreadable"]));
}

#[test]
fn tag_without_current_link() {
    let (_, code, k, _) = damaged(|s| {
        std::fs::remove_file(s.current_link("alpine-mini", "latest")).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["tag_no_current"]));
}

#[test]
fn stale_layer_link_and_dangling_revision_are_warnings() {
    let (_, code, k, _) = damaged(|s| {
        let gone = hash_bytes(Algorithm::Sha256, b"never stored");
        write_link(&s.layer_link("busybox-oci", &gone), &gone.to_string());
        write_link(&s.revision_link("busybox-oci", &gone), &gone.to_string());
    });
    assert_eq!(code, 0);
    assert_eq!(k, kinds(&["dangling_revision", "stale_layer_link"]));
}

#[test]
fn link_naming_another_digest() {
    let (_, code, k, _) = damaged(|s| {
        let d = s.tag("busybox-oci", "1.1");
        let config = s.reference(&d, R::Config);
        let other = hash_bytes(Algorithm::Sha256, b"other");
        std::fs::write(s.layer_link("busybox-oci", &config), other.to_string()).unwrap();
    });
    assert_eq!(code, 4);
    assert_eq!(k, kinds(&["layer_unlinked", "link_mismatch"]));
}

#[test]
fn invalid_names() {
    let (_, code, k, _) = damaged(|s| {
        std::fs::create_dir_all(s.abs("docker/registry/v2/repositories/UPPER/_manifests")).unwrap();
        std::fs::create_dir_all(
            s.abs("docker/registry/v2/repositories/busybox-oci/_manifests/tags/.bad/current"),
        )
        .unwrap();
    });
    assert_eq!(code, 4, "a tag without current/link is an error");
    assert_eq!(
        k,
        kinds(&[
            "empty_repository",
            "invalid_repository_name",
            "invalid_tag_name",
            "tag_no_current"
        ])
    );
}

#[test]
fn damaged_human_report() {
    let s = Sample::registry();
    let d = s.tag("busybox-oci", "1.1");
    let config = s.reference(&d, R::Config);
    std::fs::remove_file(s.layer_link("busybox-oci", &config)).unwrap();
    let p = s.blob_path(&busybox_layer(&s));
    let mut b = std::fs::read(&p).unwrap();
    b[0] ^= 0xff;
    std::fs::write(&p, b).unwrap();
    std::fs::write(
        s.current_link("alpine-mini", "latest"),
        "sha256:../../etc/passwd",
    )
    .unwrap();
    regfsck_snapshot!(
        "damaged_human",
        regfsck().arg("verify").arg(s.root()),
        Some(s.root())
    );
}

#[test]
fn sha512_blobs_are_hashed_with_sha512() {
    let s = Sample::registry();
    let data = b"a blob another tool stored under sha512";
    let d = hash_bytes(Algorithm::Sha512, data);
    let p = s.blob_path(&d);
    assert!(p.to_string_lossy().contains("/blobs/sha512/"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 0);
    let orphan = crate::common::findings(&v)
        .into_iter()
        .any(|f| f.1 == "orphan_blob" && f.3.as_deref() == Some(&d.to_string()[..]));
    assert!(orphan, "the sha512 blob is seen and hashed");
    std::fs::write(&p, b"changed").unwrap();
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 4);
    assert!(crate::common::problems(&v).contains(&format!("error blob_corrupt - {d}")));
}
