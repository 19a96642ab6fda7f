//! The real registry as the oracle: layouts after its own garbage collection.
//!
//! These tests run Debian's `docker-registry` (registry 2.8); `.ci/run` installs it.

use std::path::Path;
use std::process::Command;

use crate::common::{Sample, findings};

pub(crate) fn registry_gc(root: &Path, delete_untagged: bool) {
    let cfg = root.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            root.display()
        ),
    )
    .unwrap();
    let mut c = Command::new("docker-registry");
    c.arg("garbage-collect");
    if delete_untagged {
        c.arg("--delete-untagged");
    }
    let out = c.arg(&cfg).output().expect(
        "docker-registry is not installed: apt-get install docker-registry (.ci/run does this)",
    );
    assert!(
        out.status.success(),
        "registry gc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(cfg).unwrap();
}

#[test]
fn clean_after_the_registrys_own_gc() {
    let s = Sample::registry();
    registry_gc(s.root(), false);
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 0, "{v:#}");
    // Its gc removed the orphans but left their _layers links behind: warnings, not errors.
    let f = findings(&v);
    assert!(f.iter().all(|f| f.1 != "orphan_blob"), "{f:?}");
    assert!(f.iter().any(|f| f.1 == "stale_layer_link"), "{f:?}");
}

#[test]
fn finds_the_damage_of_the_registrys_delete_untagged() {
    // 2.8's `garbage-collect -m` deletes the children of tagged indexes (distribution#3178).
    let s = Sample::registry();
    registry_gc(s.root(), true);
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 4);
    let broken: Vec<String> = findings(&v)
        .into_iter()
        .filter(|f| f.1 == "child_unlinked")
        .map(|f| f.2.unwrap())
        .collect();
    assert!(
        broken.contains(&"multi/oci-index".to_string()),
        "{broken:?}"
    );
    assert!(
        broken.contains(&"multi/docker-list".to_string()),
        "{broken:?}"
    );
}
