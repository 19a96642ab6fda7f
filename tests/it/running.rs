//! Destructive commands refuse (exit 8) while the registry their `--config` describes answers
//! at its `http.addr`, unless it is read-only (maintenance mode) or `--force` is given; dry
//! runs are always allowed.

use crate::common::{Sample, regfsck, tree};
use crate::gc::serve_with;
use crate::trust::get;

const ALPINE: &str =
    "alpine-mini@sha256:5603f6774a12f8d3e4debfe151223188979716f4e46c5271a649a3497367c4cf";

/// `regfsck --config CFG ARGS`: exit code and stderr.
fn with_config(s: &Sample, args: &[&str]) -> (i32, String) {
    let out = regfsck()
        .arg("--config")
        .arg(s.root().join("config.yml"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every destructive command's real run, as the tests run it.
const RUNS: &[&[&str]] = &[
    &["gc", "--min-age", "0"],
    &["prune", "--keep-last", "0", "--min-age", "0"],
    &["rm-tag", "alpine-mini:latest"],
    &["rm-manifest", ALPINE],
    &["rm-repo", "emptied"],
    &["repair", "--yes"],
];

#[test]
fn destructive_commands_refuse_while_the_registry_serves_the_storage() {
    let s = Sample::registry();
    let reg = serve_with(s.root(), false);
    assert_eq!(get(&reg.addr, "/v2/").0, 200);
    let before = tree(s.root());
    for args in RUNS {
        let (code, err) = with_config(&s, args);
        assert_eq!(code, 8, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "is running on this storage (GET /v2/ at {} answered 200)",
                reg.addr
            )) && err.contains("--force"),
            "{args:?}: {err}"
        );
    }
    // The config given as ROOT names the registry just as well.
    let out = regfsck()
        .args(["gc", "--min-age", "0"])
        .arg(s.root().join("config.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert_eq!(tree(s.root()), before, "a refusal changes nothing");
    // Dry runs are allowed.
    for args in [
        &["gc", "--dry-run"][..],
        &["rm-manifest", "--dry-run", ALPINE],
        &["repair", "--dry-run"],
    ] {
        let (code, err) = with_config(&s, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    assert_eq!(tree(s.root()), before);
    // --force goes ahead.
    let (code, err) = with_config(&s, &["rm-tag", "--force", "alpine-mini:latest"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(get(&reg.addr, "/v2/alpine-mini/manifests/latest").0, 404);
}

#[test]
fn a_read_only_registry_or_a_stopped_one_does_not_block() {
    let s = Sample::registry();
    let reg = serve_with(s.root(), true);
    assert_eq!(get(&reg.addr, "/v2/").0, 200, "it is running");
    let (code, err) = with_config(&s, &["rm-tag", "alpine-mini:latest"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = with_config(&s, &["gc", "--min-age", "0"]);
    assert_eq!(code, 0, "{err}");
    drop(reg);
    // Stopped: nothing answers at its address.
    crate::gc::write_config_with(s.root(), &crate::common::free_addr(), false);
    let (code, err) = with_config(&s, &["rm-manifest", ALPINE]);
    assert_eq!(code, 0, "{err}");
}
