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
