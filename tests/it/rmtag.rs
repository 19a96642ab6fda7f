//! `regfsck rm-tag REPO:TAG...`: tags only; a manifest another tag still names stays (the
//! registry's API deletes by digest and takes every sibling tag with it).

use crate::common::{Sample, tree};
use crate::gc::{pull_all, registry_dry_run};

fn rm_tag(s: &Sample, args: &[&str]) -> (i32, serde_json::Value, String) {
    s.remove("rm-tag", args)
}

fn tags(s: &Sample) -> Vec<String> {
    s.tag_names()
}

/// alpine-mini:latest and :3.19 name the same manifest: removing one keeps the other, and the
/// manifest, and every other tag still pulls from the real registry.
#[test]
fn removing_a_tag_keeps_its_siblings_and_their_manifest() {
    let s = Sample::registry();
    let before = tree(s.root());
    let (code, dry, err) = rm_tag(&s, &["--dry-run", "alpine-mini:latest"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(tree(s.root()), before, "a dry run changes nothing");
    let (code, v, err) = rm_tag(&s, &["alpine-mini:latest"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["command"], "rm-tag");
    assert_eq!(v["applied"]["tags"], 1, "{v:#}");
    assert_eq!(v["applied"]["manifests"], 0, "{v:#}");
    assert_eq!(
        dry["repositories"], v["repositories"],
        "the dry run is the plan"
    );
    let now = tags(&s);
    assert!(!now.contains(&"alpine-mini:latest".to_string()), "{now:?}");
    assert!(now.contains(&"alpine-mini:3.19".to_string()), "{now:?}");
    assert_eq!(now.len(), 8, "{now:?}");
    assert_eq!(s.verify_json(&[]).0, 0);
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

/// Removing every tag of an image drops its manifest (and what only it reached); with --gc the
/// space comes back, and the registry's own gc finds nothing left.
#[test]
fn removing_every_tag_of_an_image_with_gc_frees_it() {
    let s = Sample::registry();
    let (code, v, err) = rm_tag(&s, &["--gc", "busybox-oci:1.1", "busybox-oci:latest"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["applied"]["tags"], 2, "{v:#}");
    assert!(v["applied"]["manifests"].as_u64().unwrap() >= 1, "{v:#}");
    assert!(
        v["sweep"]["applied"]["blobs"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    assert!(!tags(&s).iter().any(|t| t.starts_with("busybox-oci:")));
    assert_eq!(registry_dry_run(s.root(), false), Default::default());
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

/// A tag that is not there, or a malformed one, is a usage error; nothing changes.
#[test]
fn a_missing_or_malformed_tag_is_a_usage_error() {
    let s = Sample::registry();
    let before = tree(s.root());
    for args in [
        &["alpine-mini:nope"][..],
        &["alpine-mini"],
        &["no-such-repo:latest"],
        &["alpine-mini:latest", "Bad/Name:x"],
    ] {
        let (code, _, err) = rm_tag(&s, args);
        assert_eq!(code, 16, "{args:?}: {err}");
        assert!(err.contains("regfsck: "), "{err}");
    }
    assert_eq!(tree(s.root()), before);
}
