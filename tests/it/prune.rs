//! `prune` on the CI sample written by the real registry (a tag per build, semver tags,
//! multi-arch indexes): the kept sets of several policies, `latest` never lost, real pulls after
//! `prune --gc`, crash safety, and clear errors for bad policies.

use std::collections::BTreeMap;

use crate::common::{NOW, Sample, crash_at_every_step, regfsck, tree};
use crate::gc::{pull_all, registry_dry_run};

fn ci() -> Sample {
    Sample::new("ci")
}

fn prune_json(s: &Sample, args: &[&str]) -> (i32, serde_json::Value) {
    s.run_json("prune", args)
}

/// `repository -> ["keep tag (reasons)" | "remove tag (reasons)"]`, newest first.
fn decisions(v: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let tags = r["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let reasons: Vec<&str> = t["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap())
                        .collect();
                    format!(
                        "{} {} ({})",
                        if t["keep"].as_bool().unwrap() {
                            "keep"
                        } else {
                            "remove"
                        },
                        t["tag"].as_str().unwrap(),
                        reasons.join("; ")
                    )
                })
                .collect();
            (r["repository"].as_str().unwrap().to_string(), tags)
        })
        .collect()
}

/// The registry's view: `repo:tag -> digest` from `regfsck ls` (checked equal to the
/// registry's own listing in the ls tests).
fn tags(s: &Sample) -> BTreeMap<String, String> {
    let out = regfsck().arg("ls").arg(s.root()).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (rt, d) = l.rsplit_once(":sha256:").unwrap();
            (rt.to_string(), format!("sha256:{d}"))
        })
        .collect()
}

#[test]
fn kept_sets_of_several_policies() {
    let s = ci();
    let policies: &[(&str, &[&str])] = &[
        (
            "keep_last_3_by_version_and_latest",
            &[
                "--repo",
                "ci/*",
                "--keep-last",
                "3",
                "--order",
                "version",
                "--keep-tag",
                "^latest$",
            ],
        ),
        ("keep_last_2_by_push_time_everywhere", &["--keep-last", "2"]),
        (
            "keep_last_4_by_name_shows_why_not_to",
            &["--repo", "ci/app", "--keep-last", "4", "--order", "name"],
        ),
        (
            "keep_within_40_days_or_a_release",
            &[
                "--repo",
                "ci/**",
                "--keep-within",
                "40d",
                "--keep-tag",
                r"^\d+\.\d+\.\d+$",
            ],
        ),
    ];
    for (name, args) in policies {
        let before = tree(s.root());
        let mut all = vec!["--dry-run", "--min-age", "0"];
        all.extend_from_slice(args);
        let (code, v) = prune_json(&s, &all);
        assert_eq!(code, 0, "{name}: {v:#}");
        assert_eq!(tree(s.root()), before, "{name}: a dry run changed the tree");
        insta::assert_json_snapshot!(
            *name,
            serde_json::json!({
                "tags": decisions(&v),
                "manifests_dropped": v["manifests_dropped"],
                "gc": v["gc"],
            })
        );
    }
}

#[test]
fn policy_file_in_yaml_and_toml_gives_the_same_plan_as_the_options() {
    let s = ci();
    let (_, by_options) = prune_json(
        &s,
        &[
            "--dry-run",
            "--repo",
            "ci/app",
            "--keep-last",
            "3",
            "--order",
            "version",
            "--keep-tag",
            "^(latest|stable)$",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("retention.yaml");
    std::fs::write(
        &yaml,
        "policies:\n  - repositories: [ci/app]\n    keep-last: 3\n    order: version\n    keep-tag: ['^(latest|stable)$']\n  - repositories: ['**']\n    keep-last: 1000\n",
    )
    .unwrap();
    let toml = dir.path().join("retention.toml");
    std::fs::write(
        &toml,
        "[[policies]]\nrepositories = [\"ci/app\"]\nkeep-last = 3\norder = \"version\"\nkeep-tag = [\"^(latest|stable)$\"]\n\n[[policies]]\nrepositories = [\"**\"]\nkeep-last = 1000\n",
    )
    .unwrap();
    for f in [&yaml, &toml] {
        let (code, v) = prune_json(&s, &["--dry-run", "--policy", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{v:#}");
        let d = decisions(&v);
        assert_eq!(
            d["ci/app"],
            decisions(&by_options)["ci/app"],
            "{}",
            f.display()
        );
        // The second policy keeps everything elsewhere.
        assert!(d["ci/lib"].iter().all(|t| t.starts_with("keep ")), "{d:?}");
        assert_eq!(v["manifests_dropped"], by_options["manifests_dropped"]);
    }
}

#[test]
fn latest_is_never_lost_when_it_shares_a_manifest_with_a_pruned_tag() {
    let s = ci();
    let before = tags(&s);
    let newest = before["ci/app:20221007.1_12"].clone();
    assert_eq!(before["ci/app:latest"], newest);
    // Keep nothing by count: only `latest`. Build 12 goes, its manifest stays (latest needs it).
    let (code, v) = prune_json(
        &s,
        &[
            "--repo",
            "ci/app",
            "--keep-last",
            "0",
            "--keep-tag",
            "^latest$",
            "--gc",
            "--min-age",
            "0",
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    let d = decisions(&v);
    assert!(
        d["ci/app"]
            .contains(&"remove 20221007.1_12 (manifest kept: also tagged latest)".to_string()),
        "{d:?}"
    );
    let after = tags(&s);
    assert_eq!(after["ci/app:latest"], newest);
    assert!(!after.contains_key("ci/app:20221007.1_12"));
    assert_eq!(after.keys().filter(|k| k.starts_with("ci/app:")).count(), 1);
    // Other repositories untouched.
    for (k, d) in &before {
        if !k.starts_with("ci/app:") {
            assert_eq!(after.get(k), Some(d), "{k}");
        }
    }
    assert_eq!(s.verify_json(&[]).0, 0);
    assert_eq!(pull_all(&s), Vec::<String>::new());
}

#[test]
fn prune_gc_then_every_kept_tag_pulls_and_the_registry_finds_nothing_left() {
    let s = ci();
    let args = [
        "--repo",
        "ci/*",
        "--keep-last",
        "3",
        "--order",
        "version",
        "--keep-tag",
        "^latest$",
        "--min-age",
        "0",
    ];
    let mut dry = vec!["--dry-run"];
    dry.extend_from_slice(&args);
    let (_, plan) = prune_json(&s, &dry);
    let mut real = vec!["--gc"];
    real.extend_from_slice(&args);
    let (code, v) = prune_json(&s, &real);
    assert_eq!(code, 0, "{v:#}");
    // The dry run is the same plan, and its estimate is what the sweep freed.
    assert_eq!(decisions(&plan), decisions(&v));
    assert_eq!(plan["gc"]["bytes"], v["sweep"]["applied"]["bytes"]);
    assert_eq!(plan["gc"]["blobs"], v["sweep"]["applied"]["blobs"]);
    assert_eq!(v["applied"]["tags"], v["tags_removed"]);
    assert!(v["applied"]["manifests"].as_u64().unwrap() > 0);
    // What is left is exactly the kept tags, with the registry's digests.
    let kept: Vec<String> = decisions(&v)
        .iter()
        .flat_map(|(r, ts)| {
            ts.iter()
                .filter(|t| t.starts_with("keep "))
                .map(move |t| format!("{r}:{}", t.split(' ').nth(1).unwrap()))
        })
        .collect();
    let now = tags(&s);
    for k in &kept {
        assert!(now.contains_key(k), "{k} lost");
    }
    assert_eq!(now.len(), kept.len() + 2, "{now:?}"); // + other/keep:a, other/keep:b
    assert_eq!(s.verify_json(&[]).0, 0);
    assert_eq!(registry_dry_run(s.root(), false), Default::default());
    assert_eq!(pull_all(&s), Vec::<String>::new());
    // Nothing left in the trash.
    assert!(!s.abs("docker/registry/regfsck-trash").exists());
}

#[test]
fn killed_at_every_point_stays_consistent_and_a_rerun_finishes() {
    let args = [
        "prune",
        "-q",
        "--repo",
        "ci/*",
        "--keep-last",
        "2",
        "--order",
        "version",
        "--keep-tag",
        "^latest$",
    ];
    let reference = ci();
    let out = regfsck().args(args).arg(reference.root()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rerun = |s: &Sample| {
        let out = regfsck().args(args).arg(s.root()).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "rerun");
    };
    let crashes = crash_at_every_step(
        &ci,
        &|s: &Sample| {
            let mut c = regfsck();
            c.args(args).arg(s.root());
            c
        },
        &rerun,
        &tree(reference.root()),
    );
    assert!(crashes > 20, "only {crashes} crash points");
    // A gc run in between finishes the interrupted prune, never discards it: gc, then the
    // prune again (for a crash before the prune recorded its job), then gc leave exactly the
    // tree of prune and gc. Had the first gc thrown the pending job away, the manifests only
    // the moved tags reached would stay behind as untagged revisions.
    let gc = |s: &Sample| {
        let out = regfsck()
            .args(["gc", "-q", "--min-age", "0"])
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
    gc(&reference);
    let gc = |s: &Sample| {
        gc(s);
        rerun(s);
        gc(s);
    };
    let crashes = crash_at_every_step(
        &ci,
        &|s: &Sample| {
            let mut c = regfsck();
            c.args(args).arg(s.root());
            c
        },
        &gc,
        &tree(reference.root()),
    );
    assert!(crashes > 20, "only {crashes} crash points");
}

#[test]
fn bad_policies_are_usage_errors_and_touch_nothing() {
    let s = ci();
    let before = tree(s.root());
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("p.yml");
    std::fs::write(
        &typo,
        "policies:\n  - repositories: [ci/app]\n    keep-lats: 3\n",
    )
    .unwrap();
    let ini = dir.path().join("p.ini");
    std::fs::write(&ini, "keep=3\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "at least one rule"),
        (
            vec!["--keep-tag".into(), "(".into()],
            "keep-tag regex \"(\"",
        ),
        (
            vec![
                "--keep-last".into(),
                "1".into(),
                "--repo".into(),
                "ci/[".into(),
            ],
            "repository glob",
        ),
        (
            vec!["--policy".into(), typo.display().to_string()],
            "keep-lats",
        ),
        (
            vec!["--policy".into(), ini.display().to_string()],
            "*.toml, *.yml or *.yaml",
        ),
        (vec!["--keep-last".into(), "x".into()], "invalid value"),
        (
            vec![
                "--policy".into(),
                typo.display().to_string(),
                "--keep-last".into(),
                "1".into(),
            ],
            "cannot be used with",
        ),
    ];
    for (args, want) in cases {
        let out = regfsck()
            .arg("prune")
            .args(&args)
            .arg(s.root())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(16), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(tree(s.root()), before);
}

#[test]
fn refuses_when_a_selected_repository_is_broken() {
    let s = ci();
    // A tag of ci/lib points at a manifest whose blob is gone.
    let (_, g) = s.graph();
    let lib = regfsck::layout::RepoName::parse("ci/lib").unwrap();
    let target = match &g.repos[&lib].tags[&regfsck::layout::TagName::parse("1.2.0").unwrap()] {
        regfsck::graph::TagTarget::Points(d) => *d,
        regfsck::graph::TagTarget::Broken => unreachable!(),
    };
    std::fs::remove_dir_all(s.blob_path(&target).parent().unwrap()).unwrap();
    let before = tree(s.root());
    let (code, v) = prune_json(&s, &["--repo", "ci/lib", "--keep-last", "1"]);
    assert_eq!(code, 4, "{v:#}");
    assert_eq!(v["refused"], true);
    assert_eq!(v["broken"][0]["repository"], "ci/lib");
    assert_eq!(tree(s.root()), before);
    // Another repository is not held back by it.
    let (code, v) = prune_json(&s, &["--repo", "ci/app", "--keep-last", "1"]);
    assert_eq!(code, 0, "{v:#}");
    assert!(v["applied"]["tags"].as_u64().unwrap() > 0);
}

#[test]
fn human_report() {
    let s = ci();
    crate::regfsck_snapshot!(
        "prune_human_dry_run",
        regfsck()
            .args([
                "prune",
                "--dry-run",
                "--repo",
                "ci/lib",
                "--repo",
                "ci/multi",
                "--keep-last",
                "2"
            ])
            .args([
                "--order",
                "version",
                "--keep-tag",
                "^latest$",
                "--keep-within",
                "32d"
            ])
            .arg(s.root()),
        Some(s.root())
    );
    let _ = NOW;
}

#[test]
fn the_ci_sample_is_clean_and_lists_as_the_registry_does() {
    let s = ci();
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 0, "{v:#}");
    let want =
        std::fs::read_to_string(crate::common::sample_tar("ci").with_extension("ls")).unwrap();
    let out = regfsck().arg("ls").arg(s.root()).output().unwrap();
    let mut got: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    let mut want: Vec<&str> = want.lines().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
}
