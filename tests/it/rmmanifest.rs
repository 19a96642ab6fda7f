//! `regfsck rm-manifest REPO@DIGEST...`: a manifest with every tag naming it and what only it
//! reaches; refused while an index or a referrer that stays still names it, unless forced.

use regfsck::layout::{self, RepoName, TagName};

use crate::common::{Sample, crash_at_every_step, regfsck, tree};
use crate::gc::{pull_all, registry_dry_run, serve};
use crate::trust::get;

/// `alpine-mini:latest` and `:3.19`.
const ALPINE: &str = "sha256:5603f6774a12f8d3e4debfe151223188979716f4e46c5271a649a3497367c4cf";
/// The old `alpine-mini:latest`, untagged, still in the tag's history.
const OLD_ALPINE: &str = "sha256:b50e31aab28f01e7649ca4bbab2915ad28c7fa9e03de6bbaf5c05f6042e546aa";
/// `busybox-oci:1.1` and `:latest`, the subject of [`REFERRER`].
const BUSYBOX: &str = "sha256:950cda1ece8c0571f729c9bece4e2bcb7b73a10377f62b257cd19b8c9782836b";
/// An untagged signature of [`BUSYBOX`].
const REFERRER: &str = "sha256:6348f7d6dd95c42331162775c3590a09fce95615712bd8f2b73f4dc8000d5fa4";
/// `multi/oci-index:latest`.
const INDEX: &str = "sha256:7efccb5b900469b66d94e6917a106c4108d8f793ef460c4f95957644d90b671e";
/// Its linux/amd64 child.
const AMD64: &str = "sha256:b97b7cdd6abc1a3a9939d027501e4e7278e99aaf85b2ec80e1d5f0533e54d0ef";

fn rm(s: &Sample, args: &[&str]) -> (i32, serde_json::Value, String) {
    s.remove("rm-manifest", args)
}

fn tags(s: &Sample) -> Vec<String> {
    s.tag_names()
}

/// What the real registry answers for `GET /v2/REPO/manifests/REFERENCE`, for each.
fn served(s: &Sample, refs: &[(&str, &str)]) -> Vec<u16> {
    let reg = serve(s.root());
    let codes = refs
        .iter()
        .map(|(repo, r)| get(&reg.addr, &format!("/v2/{repo}/manifests/{r}")).0)
        .collect();
    drop(reg);
    std::fs::remove_file(s.root().join("config.yml")).unwrap();
    codes
}

/// The removed tags, as `REPO:TAG`, sorted, from the JSON report.
fn removed_tags(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in v["repositories"].as_array().unwrap() {
        for t in r["tags"].as_array().unwrap() {
            if !t["keep"].as_bool().unwrap() {
                out.push(format!(
                    "{}:{}",
                    r["repository"].as_str().unwrap(),
                    t["tag"].as_str().unwrap()
                ));
            }
        }
    }
    out.sort();
    out
}

/// The manifest and both tags naming it go (the report names them); everything else still
/// pulls from the real registry, which answers 404 for the removed tags.
#[test]
fn removing_a_manifest_removes_every_tag_naming_it() {
    let s = Sample::registry();
    let before = tree(s.root());
    let target = format!("alpine-mini@{ALPINE}");
    let (code, dry, err) = rm(&s, &["--dry-run", &target]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(tree(s.root()), before, "a dry run changes nothing");
    let (code, v, err) = rm(&s, &[&target]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["command"], "rm-manifest");
    assert_eq!(
        dry["repositories"], v["repositories"],
        "the dry run is the plan"
    );
    assert_eq!(removed_tags(&v), ["alpine-mini:3.19", "alpine-mini:latest"]);
    assert_eq!(
        v["repositories"][0]["manifests"],
        serde_json::json!([ALPINE])
    );
    assert_eq!(v["applied"]["tags"], 2, "{v:#}");
    assert_eq!(v["applied"]["manifests"], 1, "{v:#}");
    let now = tags(&s);
    assert!(
        !now.iter().any(|t| t.starts_with("alpine-mini:")),
        "{now:?}"
    );
    assert_eq!(now.len(), 7, "{now:?}");
    assert_eq!(
        served(
            &s,
            &[
                ("alpine-mini", "latest"),
                ("alpine-mini", "3.19"),
                ("alpine-mini", ALPINE),
                ("busybox-oci", "1.1"),
            ]
        ),
        [404, 404, 404, 200]
    );
    assert_eq!(s.verify_json(&[]).0, 0);
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

/// An untagged manifest and an untagged referrer go, every tag stays, and their history
/// entries in a kept tag go too; with --gc the registry's own gc finds nothing left.
#[test]
fn untagged_manifests_go_and_every_tag_stays() {
    let s = Sample::registry();
    let history = s.abs(
        layout::tag_index_link(
            &RepoName::parse("alpine-mini").unwrap(),
            &TagName::parse("latest").unwrap(),
            &OLD_ALPINE.parse().unwrap(),
        )
        .trim_end_matches("/link"),
    );
    assert!(history.exists());
    let (code, v, err) = rm(
        &s,
        &[
            "--gc",
            &format!("alpine-mini@{OLD_ALPINE}"),
            &format!("busybox-oci@{REFERRER}"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(removed_tags(&v), Vec::<String>::new());
    assert_eq!(v["applied"]["manifests"], 2, "{v:#}");
    assert!(
        v["sweep"]["applied"]["blobs"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    assert!(!history.exists(), "the kept tag's history entry goes");
    assert_eq!(tags(&s).len(), 9);
    assert_eq!(registry_dry_run(s.root(), false), Default::default());
    assert_eq!(
        served(
            &s,
            &[
                ("busybox-oci", REFERRER),
                ("alpine-mini", OLD_ALPINE),
                ("busybox-oci", BUSYBOX)
            ]
        ),
        [404, 404, 200]
    );
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

/// Removing an image takes its untagged referrer with it (the referrer first).
#[test]
fn an_untagged_referrer_goes_with_its_subject() {
    let s = Sample::registry();
    let (code, v, err) = rm(&s, &["--gc", &format!("busybox-oci@{BUSYBOX}")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        v["repositories"][0]["manifests"],
        serde_json::json!([REFERRER, BUSYBOX])
    );
    assert_eq!(removed_tags(&v), ["busybox-oci:1.1", "busybox-oci:latest"]);
    assert_eq!(registry_dry_run(s.root(), false), Default::default());
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

/// A child of a kept index is refused (exit 16, nothing changed, the index named); --force
/// removes it and says the index is left dangling, which then no longer pulls.
#[test]
fn a_child_of_a_kept_index_is_refused_unless_forced() {
    let s = Sample::registry();
    let before = tree(s.root());
    let target = format!("multi/oci-index@{AMD64}");
    for dry in [true, false] {
        let args: Vec<&str> = if dry {
            vec!["--dry-run", &target]
        } else {
            vec![&target]
        };
        let (code, v, err) = rm(&s, &args);
        assert_eq!(code, 16, "{err}");
        assert_eq!(v["refused"], true);
        assert_eq!(
            v["repositories"][0]["dangling"],
            serde_json::json!([{"manifest": INDEX, "tags": ["latest"], "names_as": "child", "dropped": AMD64}])
        );
        assert!(
            err.contains(&format!("the index {INDEX} (tagged latest) lists {AMD64}"))
                && err.contains("--force"),
            "{err}"
        );
        assert_eq!(tree(s.root()), before, "a refusal changes nothing");
    }
    let (code, _, err) = rm(&s, &["--force", &target]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "left dangling: multi/oci-index: the index {INDEX}"
        )),
        "{err}"
    );
    assert!(
        !s.revision_link("multi/oci-index", &AMD64.parse().unwrap())
            .exists()
    );
    let failed = pull_all(&s);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].starts_with("multi/oci-index:latest"),
        "{failed:?}"
    );
}

/// A referrer that stays because it is tagged blocks its subject; naming both removes both.
#[test]
fn a_tagged_referrer_blocks_its_subject() {
    let s = Sample::registry();
    // Tag the signature as a PUT by tag would: its current/link and its history entry.
    let repo = RepoName::parse("busybox-oci").unwrap();
    let sig = TagName::parse("sig").unwrap();
    let referrer = REFERRER.parse().unwrap();
    for rel in [
        layout::tag_current(&repo, &sig),
        layout::tag_index_link(&repo, &sig, &referrer),
    ] {
        let p = s.abs(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, REFERRER).unwrap();
    }
    assert_eq!(served(&s, &[("busybox-oci", "sig")]), [200]);
    let before = tree(s.root());
    let (code, _, err) = rm(&s, &[&format!("busybox-oci@{BUSYBOX}")]);
    assert_eq!(code, 16, "{err}");
    assert!(
        err.contains(&format!(
            "the referrer {REFERRER} (tagged sig) has {BUSYBOX} as its subject"
        )),
        "{err}"
    );
    assert_eq!(tree(s.root()), before);
    let (code, v, err) = rm(
        &s,
        &[
            &format!("busybox-oci@{BUSYBOX}"),
            &format!("busybox-oci@{REFERRER}"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        removed_tags(&v),
        ["busybox-oci:1.1", "busybox-oci:latest", "busybox-oci:sig"]
    );
    assert_eq!(
        served(&s, &[("busybox-oci", "sig"), ("busybox-oci", BUSYBOX)]),
        [404, 404]
    );
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

/// A manifest that is not there, a layer, a tag, or a malformed reference is a usage error;
/// nothing changes.
#[test]
fn what_is_no_manifest_here_is_a_usage_error() {
    let s = Sample::registry();
    let before = tree(s.root());
    let absent = format!("alpine-mini@sha256:{}", "0".repeat(64));
    let layer =
        "alpine-mini@sha256:f4a61181a7976f47badbf9fe4721ea204204fd6d51167d97403456903200d733";
    let elsewhere = format!("team/app@{ALPINE}");
    let nowhere = format!("no-such-repo@{ALPINE}");
    let mixed = format!("alpine-mini@{ALPINE}");
    for args in [
        &[absent.as_str()][..],
        &[layer],
        &[elsewhere.as_str()],
        &[nowhere.as_str()],
        &["alpine-mini:latest"],
        &["alpine-mini"],
        &["alpine-mini@sha256:nothex"],
        &[mixed.as_str(), "Bad/Name@sha256:00"],
    ] {
        let (code, _, err) = rm(&s, args);
        assert_eq!(code, 16, "{args:?}: {err}");
        assert!(err.contains("regfsck: "), "{err}");
    }
    let (_, _, err) = rm(&s, &["alpine-mini:latest"]);
    assert!(err.contains("rm-tag"), "{err}");
    assert_eq!(tree(s.root()), before);
}

/// `regfsck rm-manifest -q --root ROOT REPO@DIGEST`.
fn rm_cmd(s: &Sample, target: &str) -> std::process::Command {
    let mut c = regfsck();
    c.args(["rm-manifest", "-q", "--root"])
        .arg(s.root())
        .arg(target);
    c
}

/// Killed before each change: no new error, and the same command again leaves exactly the
/// tree of an uninterrupted run.
#[test]
fn killed_at_every_step_and_run_again_finishes() {
    let target = format!("busybox-oci@{BUSYBOX}");
    let reference = Sample::registry();
    assert_eq!(
        rm_cmd(&reference, &target).status().unwrap().code(),
        Some(0)
    );
    let cmd = |s: &Sample| rm_cmd(s, &target);
    let rerun = |s: &Sample| {
        let gone = !s
            .revision_link("busybox-oci", &BUSYBOX.parse().unwrap())
            .exists();
        let out = cmd(s).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Killed while it emptied its trash (the record gone, the work done): the run again
        // empties the trash and says the manifest is no longer there.
        if gone && out.status.code() == Some(16) {
            assert!(err.contains("no manifest busybox-oci@"), "{err}");
        } else {
            assert_eq!(out.status.code(), Some(0), "rerun: {err}");
        }
    };
    let crashes = crash_at_every_step(&Sample::registry, &cmd, &rerun, &tree(reference.root()));
    assert!(crashes >= 4, "only {crashes} crash points");
}

/// An interrupted removal of a referrer whose subject stays is finished by gc as planned: the
/// referrer goes, although the kept tag's subject reaches it.
#[test]
fn gc_finishes_an_interrupted_removal_of_a_referrer() {
    let target = format!("busybox-oci@{REFERRER}");
    let gc = |s: &Sample| assert_eq!(s.run_json("gc", &["--min-age", "0"]).0, 0);
    let reference = Sample::registry();
    assert_eq!(
        rm_cmd(&reference, &target).status().unwrap().code(),
        Some(0)
    );
    gc(&reference);
    let cmd = |s: &Sample| rm_cmd(s, &target);
    let finish = |s: &Sample| {
        gc(s);
        // Killed before it recorded its job: nothing was done, so do it.
        if s.revision_link("busybox-oci", &REFERRER.parse().unwrap())
            .exists()
        {
            assert_eq!(cmd(s).status().unwrap().code(), Some(0));
            gc(s);
        }
    };
    let crashes = crash_at_every_step(&Sample::registry, &cmd, &finish, &tree(reference.root()));
    assert!(crashes >= 2, "only {crashes} crash points");
}
