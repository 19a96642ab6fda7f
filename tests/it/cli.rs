//! Finding the root, usage errors, exit codes.

use crate::common::{Sample, regfsck, run_and_format};
use crate::regfsck_snapshot;

#[test]
fn help_exits_0() {
    let out = regfsck().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verify"), "{text}");
    assert!(text.contains("Exit status"), "{text}");
    assert_eq!(
        regfsck().arg("--version").output().unwrap().status.code(),
        Some(0)
    );
}

#[test]
fn usage_error_exits_16_not_2() {
    regfsck_snapshot!(regfsck().args(["verify", "--bogus"]), None, @r"
    exit_code: 16
    ----- stdout -----
    ----- stderr -----
    error: unexpected argument '--bogus' found

      tip: to pass '--bogus' as a value, use '-- --bogus'

    Usage: regfsck verify [OPTIONS] [ROOT]

    For more information, try '--help'.
    ");
    let out = regfsck().output().unwrap();
    assert_eq!(out.status.code(), Some(16));
    let out = regfsck()
        .args(["verify", "--jobs", "0", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
}

#[test]
fn no_root_is_operational_error() {
    regfsck_snapshot!(regfsck().arg("verify"), None, @r"
    exit_code: 8
    ----- stdout -----
    ----- stderr -----
    regfsck: no registry root given: use --root DIR, --config FILE or REGFSCK_ROOT (verify, ls, show, gc, du and serve also take it as ROOT)
    ");
}

#[test]
fn not_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    regfsck_snapshot!(regfsck().arg("verify").arg(dir.path()), Some(dir.path()), @r"
    exit_code: 8
    ----- stdout -----
    ----- stderr -----
    regfsck: [ROOT] is not a registry storage root (expected a directory holding docker/registry/v2, or the v2 directory itself)
    ");
    let missing = dir.path().join("nope");
    regfsck_snapshot!(regfsck().arg("verify").arg(&missing), Some(dir.path()), @r"
    exit_code: 8
    ----- stdout -----
    ----- stderr -----
    regfsck: [ROOT]/nope: No such file or directory (os error 2)
    ");
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = regfsck().arg("verify").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(8));
}

#[test]
fn conflicting_roots_are_a_usage_error() {
    let s = Sample::registry();
    let other = tempfile::tempdir().unwrap();
    let out = regfsck()
        .arg("verify")
        .arg(s.root())
        .arg("--root")
        .arg(other.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(String::from_utf8_lossy(&out.stderr).contains("two different roots"));
}

fn summary_blobs(out: &std::process::Output) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["summary"]["blobs"].as_u64().unwrap()
}

#[test]
fn every_way_of_naming_the_root() {
    let s = Sample::registry();
    let expected = summary_blobs(
        &regfsck()
            .args(["verify", "--json", "--no-content"])
            .arg(s.root())
            .output()
            .unwrap(),
    );
    assert!(expected > 0);

    // --root anywhere on the line.
    let out = regfsck()
        .arg("--root")
        .arg(s.root())
        .args(["verify", "--json", "--no-content"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary_blobs(&out), expected);

    // REGFSCK_ROOT.
    let out = regfsck()
        .env("REGFSCK_ROOT", s.root())
        .args(["verify", "--json", "--no-content"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary_blobs(&out), expected);

    // The v2 directory itself.
    let out = regfsck()
        .args(["verify", "--json", "--no-content"])
        .arg(s.abs("docker/registry/v2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary_blobs(&out), expected);

    // The registry's config.yml, and its environment override.
    let cfg = s.root().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:5000\n",
            s.root().display()
        ),
    )
    .unwrap();
    let out = regfsck()
        .arg("--config")
        .arg(&cfg)
        .args(["verify", "--json", "--no-content"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary_blobs(&out), expected);
    let empty = tempfile::tempdir().unwrap();
    let out = regfsck()
        .arg("--config")
        .arg(&cfg)
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", empty.path())
        .args(["verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "the override must win");
}

#[test]
fn config_for_another_driver_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, "version: 0.1\nstorage:\n  azure:\n    container: b\n").unwrap();
    let s = run_and_format(
        regfsck().arg("--config").arg(&cfg).arg("verify"),
        Some(dir.path()),
    );
    assert_eq!(
        s,
        "exit_code: 8\n----- stdout -----\n----- stderr -----\nregfsck: registry config [ROOT]/config.yml: storage driver is neither filesystem nor s3 (found: azure)\n"
    );
}

/// Explicit ways of naming the root beat `REGFSCK_ROOT`; two explicit ways naming different
/// roots are a usage error naming both; `regfsck verify config.yml` reads the config.
#[test]
fn root_rules() {
    let s = Sample::registry();
    let other = Sample::registry();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg_for = |root: &std::path::Path, name: &str| {
        let cfg = cfg_dir.path().join(name);
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
                root.display()
            ),
        )
        .unwrap();
        cfg
    };
    let a = cfg_for(s.root(), "a.yml");
    let verify = |args: &[&std::ffi::OsStr], env: Option<&std::path::Path>| {
        let mut c = regfsck();
        c.args(["verify", "--no-content", "--json"]).args(args);
        if let Some(e) = env {
            c.env("REGFSCK_ROOT", e);
        }
        c.output().unwrap()
    };
    // --config A.yml B: two roots.
    let out = verify(
        &["--config".as_ref(), a.as_os_str(), other.root().as_os_str()],
        None,
    );
    assert_eq!(out.status.code(), Some(16));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("two different roots")
            && err.contains(&s.root().display().to_string())
            && err.contains(&other.root().display().to_string())
            && err.contains("--config"),
        "{err}"
    );
    // --root B --config A.yml: two roots.
    let out = verify(
        &[
            "--root".as_ref(),
            other.root().as_os_str(),
            "--config".as_ref(),
            a.as_os_str(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(16));
    // The same root twice (one through a config) is fine.
    let out = verify(
        &["--config".as_ref(), a.as_os_str(), s.root().as_os_str()],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An explicit flag beats the environment: REGFSCK_ROOT names an empty directory.
    let empty = tempfile::tempdir().unwrap();
    let out = verify(&["--config".as_ref(), a.as_os_str()], Some(empty.path()));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify(&[s.root().as_os_str()], Some(empty.path()));
    assert_eq!(out.status.code(), Some(0));
    let out = verify(&[], Some(empty.path()));
    assert_eq!(out.status.code(), Some(8), "the environment alone is used");
    // The registry's habit: the config file as the positional argument.
    let out = verify(&[a.as_os_str()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["summary"]["blobs"].as_u64().unwrap() > 0);
}
