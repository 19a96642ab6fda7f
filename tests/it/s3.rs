//! The read-only commands on object storage: the real registry's sample, pushed by the real
//! registry through its own S3 driver into a real S3 server (SeaweedFS), read by regfsck from
//! `s3://bucket/prefix`, with the same behaviour as on disk and the registry's own gc on the
//! bucket as the oracle.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::s3::S3;
use crate::common::{Sample, findings, regfsck};

/// `regfsck ARGS` against the sample's bucket prefix (as ROOT, unless `root` is false).
fn on_s3(s3: &S3, prefix: &str, args: &[&str], root: bool) -> std::process::Output {
    let mut c = regfsck();
    c.args(args);
    if root {
        c.arg(s3.url(prefix));
    }
    s3.env(&mut c).output().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The same command on the committed sample on disk.
fn on_disk(args: &[&str]) -> std::process::Output {
    let s = Sample::registry();
    regfsck().args(args).arg(s.root()).output().unwrap()
}

fn swept(v: &serde_json::Value) -> BTreeSet<String> {
    v["sweep"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ls_du_and_verify_say_on_s3_what_they_say_on_disk() {
    let (s3, loaded) = S3::sample();
    let p = loaded.prefix.as_str();
    // ls: what the registry itself served from the bucket.
    let out = on_s3(&s3, p, &["ls"], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: BTreeSet<String> = text(&out).lines().map(str::to_string).collect();
    assert_eq!(lines, loaded.view.iter().cloned().collect());
    // du: the same bytes.
    assert_eq!(text(&on_s3(&s3, p, &["du"], true)), text(&on_disk(&["du"])));
    assert_eq!(
        text(&on_s3(&s3, p, &["ls", "--untagged"], true)),
        text(&on_disk(&["ls", "--untagged"]))
    );
    // verify: clean, with every blob hashed (streamed), the same findings as on disk, but for
    // the unfinished upload, which on S3 is a multipart upload and no object.
    let out = on_s3(&s3, p, &["verify", "--json", "--verbose"], true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = json(&out);
    let disk = json(&on_disk(&["verify", "--json", "--verbose"]));
    assert_eq!(v["summary"]["blobs"], disk["summary"]["blobs"]);
    assert_eq!(v["summary"]["blobs_hashed"], v["summary"]["blobs"]);
    assert_eq!(v["summary"]["bytes"], disk["summary"]["bytes"]);
    assert_eq!(
        v["summary"]["repositories"],
        disk["summary"]["repositories"]
    );
    assert_eq!(
        v["summary"]["orphan_blobs"],
        disk["summary"]["orphan_blobs"]
    );
    let kinds =
        |v: &serde_json::Value| -> BTreeSet<(String, String, Option<String>, Option<String>)> {
            findings(v)
                .into_iter()
                .filter(|f| !f.1.starts_with("upload_"))
                .collect()
        };
    assert_eq!(kinds(&v), kinds(&disk));
}

#[test]
fn gc_dry_run_on_s3_is_the_registrys_own_on_the_same_bucket() {
    let (s3, loaded) = S3::sample();
    let p = loaded.prefix.as_str();
    let out = on_s3(
        &s3,
        p,
        &["gc", "--dry-run", "--json", "--min-age", "0"],
        true,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    // The registry's garbage-collect --dry-run on the bucket (recorded when it was loaded).
    assert_eq!(swept(&v), loaded.gc.0);
    assert!(loaded.gc.0.len() >= 6, "{:?}", loaded.gc);
    // With -m, what regfsck lists on disk for the same layout (the registry's set minus what
    // tagged indexes need: tests/it/gc.rs).
    let m = json(&on_s3(
        &s3,
        p,
        &["gc", "--dry-run", "--json", "--min-age", "0", "-m"],
        true,
    ));
    let disk = json(&on_disk(&[
        "gc",
        "--dry-run",
        "--json",
        "--min-age",
        "0",
        "-m",
    ]));
    assert_eq!(swept(&m), swept(&disk));
    assert!(swept(&m).is_subset(&loaded.gc_delete_untagged.0));
}

#[test]
fn the_registrys_own_config_names_the_bucket() {
    let (s3, loaded) = S3::sample();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, s3.registry_config(&loaded.prefix)).unwrap();
    // Credentials and endpoint from the config alone: no AWS_* at all.
    let mut c = regfsck();
    c.arg("--config").arg(&cfg).arg("ls");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: BTreeSet<String> = text(&out).lines().map(str::to_string).collect();
    assert_eq!(lines, loaded.view.iter().cloned().collect());
    // The config and an s3:// ROOT naming another place: two roots.
    let out = s3
        .env(
            regfsck()
                .arg("--config")
                .arg(&cfg)
                .args(["ls", "s3://other/x"]),
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(16),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn skopeo_pulls_every_tag_from_serve_on_s3() {
    let (s3, loaded) = S3::sample();
    let addr = crate::common::free_addr();
    let mut c = regfsck();
    c.args(["serve", "--addr", &addr])
        .arg(s3.url(&loaded.prefix));
    let mut child = s3
        .env(&mut c)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::common::wait_for(&addr);
    let dest = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for line in &loaded.view {
        let mut it = line.splitn(3, ':');
        let (repo, tag, digest) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let out = Command::new("skopeo")
            .args(["copy", "--all", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{addr}/{repo}:{tag}"))
            .arg(format!(
                "dir:{}/{}-{tag}",
                dest.path().display(),
                repo.replace('/', "_")
            ))
            .output()
            .unwrap();
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{addr}/{repo}:{tag}"))
            .output()
            .unwrap();
        let got = regfsck::digest::hash_bytes(regfsck::digest::Algorithm::Sha256, &raw.stdout);
        if !out.status.success() || got.to_string() != digest {
            failed.push(format!(
                "{line}: {} (served {got})",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(failed, Vec::<String>::new());
}

#[test]
fn real_prune_rm_repo_and_repair_change_nothing_on_s3_and_bad_credentials_are_a_clear_error() {
    let (s3, loaded) = S3::sample();
    let p = loaded.prefix.as_str();
    let before = s3.list_keys(p);
    for args in [&["prune", "--keep-last", "1"][..], &["repair", "--yes"]] {
        let out = on_s3(&s3, p, args, true);
        assert_eq!(out.status.code(), Some(8), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("changes only local storage for now"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut c = regfsck();
    c.arg("--root")
        .arg(s3.url(p))
        .args(["rm-repo", "alpine-mini"]);
    assert_eq!(s3.env(&mut c).output().unwrap().status.code(), Some(8));
    assert_eq!(s3.list_keys(p), before, "nothing changed in the bucket");
    // A wrong secret: exit 8 naming the bucket, no panic.
    let mut bad = s3.clone();
    bad.secret_key.push('x');
    let out = on_s3(&bad, p, &["verify"], true);
    assert_eq!(out.status.code(), Some(8));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&s3.url(p)) && !err.contains("panicked"),
        "{err}"
    );
    // A prefix holding no registry.
    let out = on_s3(&s3, "nothing-here", &["verify"], true);
    assert_eq!(out.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a registry storage root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Links are taken as read when their ETag is the MD5 of what they must hold; a link that
/// holds something else must still be read and reported, as on disk. The sample with damaged
/// links (a tag naming a manifest this repository has no revision of, a tag naming another
/// revision of its own repository, a revision link naming another manifest, garbage in a
/// `_layers` link, a link with a trailing newline) is uploaded with plain PUTs (MD5 ETags) and
/// verified on both backends.
#[test]
fn damaged_links_on_s3_are_found_as_on_disk() {
    let s3 = S3::start();
    let disk = Sample::registry();
    let other_repo = disk.tag("busybox-oci", "latest");
    let latest = disk.tag("alpine-mini", "latest");
    let older = disk.untagged("alpine-mini");
    let layer = disk.reference(&latest, crate::common::R::Layer);
    let writes: Vec<(std::path::PathBuf, String)> = vec![
        (disk.current_link("team/app", "v1"), other_repo.to_string()),
        (
            disk.current_link("alpine-mini", "latest"),
            older.to_string(),
        ),
        (
            disk.revision_link("busybox-oci", &other_repo),
            latest.to_string(),
        ),
        (disk.layer_link("alpine-mini", &layer), "garbage".into()),
        (
            disk.current_link("team/app", "latest"),
            format!("{}\n", disk.tag("team/app", "latest")),
        ),
    ];
    for (path, content) in &writes {
        std::fs::write(path, content).unwrap();
    }
    let prefix = "damaged-links";
    let mut load = Command::new("python3");
    load.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/s3_load.py"))
        .arg(disk.root())
        .arg(&s3.bucket)
        .arg(prefix)
        .args(["--jobs", "8"]);
    let out = s3.env(&mut load).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_bucket = on_s3(&s3, prefix, &["verify", "--json", "--no-content"], true);
    let here = regfsck()
        .args(["verify", "--json", "--no-content"])
        .arg(disk.root())
        .output()
        .unwrap();
    assert_eq!(on_bucket.status.code(), Some(4), "{}", text(&on_bucket));
    assert_eq!(on_bucket.status.code(), here.status.code());
    let (a, b) = (findings(&json(&on_bucket)), findings(&json(&here)));
    assert_eq!(a, b);
    // Each damaged link is named (the one that names another revision of its own repository
    // is a change of tag, not damage: nothing to find there, on either backend).
    let text_of = |v: &[(String, String, Option<String>, Option<String>)]| format!("{v:?}");
    for what in ["team/app", "busybox-oci", "alpine-mini"] {
        assert!(text_of(&a).contains(what), "{what}: {a:#?}");
    }
    // The tags as the links say (alpine-mini:latest now names the other revision).
    let ls = on_s3(&s3, prefix, &["ls"], true);
    let ls_disk = regfsck().arg("ls").arg(disk.root()).output().unwrap();
    assert_eq!(text(&ls), text(&ls_disk));
    assert!(
        text(&ls).contains(&format!("alpine-mini:latest:{older}")),
        "{}",
        text(&ls)
    );
    // And gc refuses on both, for the same errors.
    let gc = on_s3(&s3, prefix, &["gc", "--dry-run", "--min-age", "0"], true);
    assert_eq!(
        gc.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
}

/// The registry's view of `prefix`: every tag of `view` pulls with skopeo (`copy --all`) from
/// `docker-registry serve` on the bucket; returns the failures.
fn registry_pulls(s3: &S3, prefix: &str, view: &[String]) -> Vec<String> {
    s3.settle(prefix);
    let reg = s3.serve_registry(prefix);
    let dest = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for line in view {
        let mut it = line.splitn(3, ':');
        let (repo, tag) = (it.next().unwrap(), it.next().unwrap());
        let out = Command::new("skopeo")
            .args(["copy", "--all", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}/{repo}:{tag}", reg.addr))
            .arg(format!(
                "dir:{}/{}-{tag}",
                dest.path().display(),
                repo.replace('/', "_")
            ))
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(format!("{line}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    failed
}

/// A real gc on a bucket the real registry pushed into: it deletes exactly what the
/// registry's own `garbage-collect --dry-run` listed (in DeleteObjects batches), every tag
/// still pulls from `docker-registry serve` on the bucket afterwards, the registry's own gc
/// finds nothing left, and verify finds nothing new. Then a real `gc -m`, the same way.
#[test]
fn a_real_gc_on_s3_deletes_what_the_registrys_gc_would_and_every_tag_still_pulls() {
    let s3 = S3::with_bucket("gc-real");
    let loaded = s3.load_sample("sample");
    let p = loaded.prefix.as_str();
    let before = s3.list_keys(p);
    let out = on_s3(&s3, p, &["gc", "--json", "--min-age", "0"], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(swept(&v), loaded.gc.0);
    assert_eq!(v["applied"]["blobs"], loaded.gc.0.len());
    // Exactly the swept blobs' data keys (and the _layers links to them) are gone.
    let after: BTreeSet<String> = s3.list_keys(p).into_iter().map(|(k, _)| k).collect();
    let gone: BTreeSet<String> = before
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !after.contains(k))
        .collect();
    for d in &loaded.gc.0 {
        let hex = d.trim_start_matches("sha256:");
        let key = format!(
            "{p}/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        );
        assert!(gone.contains(&key), "{key} still there");
    }
    assert!(
        gone.iter()
            .all(|k| k.ends_with("/data") || k.contains("/_layers/")),
        "{gone:#?}"
    );
    assert_eq!(registry_pulls(&s3, p, &loaded.view), Vec::<String>::new());
    assert_eq!(s3.registry_gc_dry_run(p, false).0, BTreeSet::new());
    let out = on_s3(&s3, p, &["verify", "--json", "--no-content"], true);
    let errors: Vec<_> = findings(&json(&out))
        .into_iter()
        .filter(|f| f.0 == "error")
        .collect();
    assert_eq!(errors, Vec::new(), "{}", text(&out));
    // gc -m: the untagged manifests go too; every tag still pulls.
    let out = on_s3(&s3, p, &["gc", "--json", "--min-age", "0", "-m"], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = json(&out);
    assert!(
        !m["sweep"]["manifests"].as_array().unwrap().is_empty(),
        "{m}"
    );
    assert_eq!(registry_pulls(&s3, p, &loaded.view), Vec::<String>::new());
    let (blobs, manifests) = s3.registry_gc_dry_run(p, true);
    // What the registry's -m would still take is what regfsck keeps on purpose: the children
    // of tagged indexes (tests/it/gc.rs), never a tagged image.
    assert!(
        manifests
            .iter()
            .all(|d| !loaded.view.iter().any(|l| l.ends_with(d.as_str())))
    );
    let _ = blobs;
}

/// Keys below `prefix/`, without it.
fn keys_below(s3: &S3, prefix: &str) -> BTreeSet<String> {
    s3.list_keys(&format!("{prefix}/"))
        .into_iter()
        .map(|(k, _)| k[prefix.len() + 1..].to_string())
        .collect()
}

/// Errors verify finds on `prefix`, as `kind repository digest`.
fn s3_errors(s3: &S3, prefix: &str) -> BTreeSet<String> {
    let out = on_s3(s3, prefix, &["verify", "--json", "--no-content"], true);
    findings(&json(&out))
        .into_iter()
        .filter(|f| f.0 == "error")
        .map(|f| format!("{} {:?} {:?}", f.1, f.2, f.3))
        .collect()
}

/// `gc -m` on a bucket killed (SIGKILL) at random moments, trial `i` of `n` after a delay
/// uniform in `[i T / n, (i + 1) T / n)`, `T` an uninterrupted run's time: verify finds no
/// error, and a second run converges to the keys an uninterrupted run leaves.
/// `REGFSCK_KILL_TRIALS=N` for a soak run (default 4).
#[test]
fn gc_on_s3_killed_at_random_moments() {
    let n: u64 = std::env::var("REGFSCK_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let s3 = S3::with_bucket("gc-kill");
    s3.load_sample("sample");
    assert_eq!(s3_errors(&s3, "sample"), BTreeSet::new());
    let gc = ["gc", "-m", "--min-age", "0", "-q"];
    s3.copy_prefix("sample", "uninterrupted");
    let t0 = std::time::Instant::now();
    let out = on_s3(&s3, "uninterrupted", &gc, true);
    let took = t0.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = keys_below(&s3, "uninterrupted");
    let all = keys_below(&s3, "sample");
    assert!(want.len() < all.len());
    let mut mid = 0;
    for i in 0..n {
        let p = format!("trial-{i}");
        s3.copy_prefix("sample", &p);
        let jitter = (u128::from(i) * 7919 % 1000) as f64 / 1000.0;
        let delay = took.mul_f64((i as f64 + jitter) / n as f64);
        let mut c = regfsck();
        c.args(gc).arg(s3.url(&p));
        let mut child = s3
            .env(&mut c)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let now = keys_below(&s3, &p);
        if now != all && now != want {
            mid += 1;
        }
        assert_eq!(s3_errors(&s3, &p), BTreeSet::new(), "trial {i} ({delay:?})");
        let out = on_s3(&s3, &p, &gc, true);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(keys_below(&s3, &p), want, "trial {i} ({delay:?})");
    }
    eprintln!("gc -m on S3: {n} kills within {took:?}, {mid} of them mid-deletion");
}
