//! The read-only commands on object storage: the real registry's sample, pushed by the real
//! registry through its own S3 driver into a real S3 server (SeaweedFS), read by regfsck from
//! `s3://bucket/prefix`, with the same behaviour as on disk and the registry's own gc on the
//! bucket as the oracle.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::s3::S3;
use crate::common::{Sample, findings, regfsck};

/// The bucket of the tests that change what they load (each below a prefix of its own: a
/// SeaweedFS `weed mini` answers 500 once too many buckets hold volumes).
const WRITES: &str = "writes";

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
    // du: the same bytes; the unfinished upload (started when it was pushed, on disk long
    // ago) is an in-progress multipart upload there.
    let no_uploads = |t: String| -> String {
        t.lines()
            .filter(|l| !l.starts_with("uploads:"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let du = text(&on_s3(&s3, p, &["du"], true));
    let du_disk = text(&on_disk(&["du"]));
    assert_eq!(no_uploads(du.clone()), no_uploads(du_disk.clone()));
    assert!(
        du_disk.contains("uploads:      1 unfinished, 19 B"),
        "{du_disk}"
    );
    assert!(
        du.contains("uploads:      1 unfinished, 19 B")
            && du.contains("(1 in-progress multipart uploads, invisible to listings)"),
        "{du}"
    );
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
fn a_real_repair_changes_nothing_on_s3_and_bad_credentials_are_a_clear_error() {
    let (s3, loaded) = S3::sample();
    let p = loaded.prefix.as_str();
    let before = s3.list_keys(p);
    let out = on_s3(&s3, p, &["repair", "--yes"], true);
    assert_eq!(out.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("changes only local storage for now"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Dry runs of the others change nothing either.
    for args in [
        &["prune", "--keep-last", "0", "--dry-run"][..],
        &["gc", "-m", "--min-age", "0", "--dry-run"],
        &["rm-repo", "--dry-run", "alpine-mini", "--root"],
    ] {
        let out = on_s3(&s3, p, args, true);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
    let s3 = S3::with_bucket(WRITES);
    let loaded = s3.load_sample("gc-real");
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
    assert_eq!(s3_errors(&s3, p), BTreeSet::new());
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

/// `args` on a bucket killed (SIGKILL) at random moments, trial `i` of `n` after a delay
/// uniform in `[i T / n, (i + 1) T / n)`, `T` an uninterrupted run's time: verify finds no
/// error, and a second run converges to the keys an uninterrupted run leaves.
/// `REGFSCK_KILL_TRIALS=N` for a soak run (default 4).
fn killed_at_random_moments_on_s3(name: &str, args: &[&str]) {
    let n = crate::kill::trials(4);
    // Prefixes of this test's own below the shared bucket: `<name>/sample` pushed by the
    // registry, `<name>/uninterrupted` and `<name>/trial-<i>` copies of it.
    let s3 = S3::with_bucket(WRITES);
    let (sample, reference) = (format!("{name}/sample"), format!("{name}/uninterrupted"));
    s3.load_sample(&sample);
    assert_eq!(s3_errors(&s3, &sample), BTreeSet::new());
    s3.copy_prefix(&sample, &reference);
    let t0 = std::time::Instant::now();
    let out = on_s3(&s3, &reference, args, true);
    let took = t0.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = keys_below(&s3, &reference);
    let all = keys_below(&s3, &sample);
    assert!(want.len() < all.len());
    let mut mid = 0;
    for i in 0..n {
        let p = format!("{name}/trial-{i}");
        s3.copy_prefix(&sample, &p);
        let jitter = (u128::from(i) * 7919 % 1000) as f64 / 1000.0;
        let delay = took.mul_f64((i as f64 + jitter) / n as f64);
        let mut c = regfsck();
        c.args(args).arg(s3.url(&p));
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
        // Killed after its last step (the record deleted): done; otherwise a rerun finishes.
        if now != want {
            let out = on_s3(&s3, &p, args, true);
            assert_eq!(
                out.status.code(),
                Some(0),
                "trial {i} ({delay:?}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(keys_below(&s3, &p), want, "trial {i} ({delay:?})");
    }
    eprintln!("{args:?} on S3: {n} kills within {took:?}, {mid} of them mid-deletion");
}

#[test]
fn gc_on_s3_killed_at_random_moments() {
    killed_at_random_moments_on_s3("gc-kill", &["gc", "-m", "--min-age", "0", "-q"]);
}

#[test]
fn prune_on_s3_killed_at_random_moments() {
    killed_at_random_moments_on_s3(
        "prune-kill",
        &[
            "prune",
            "--repo",
            "alpine-mini",
            "--keep-last",
            "0",
            "--gc",
            "--min-age",
            "0",
            "-q",
        ],
    );
}

/// rm-manifest is a prune: an image with its two tags and its referrer (no `--gc`: a run
/// again after the job is done says the manifest is gone).
#[test]
fn rm_manifest_on_s3_killed_at_random_moments() {
    killed_at_random_moments_on_s3(
        "rm-manifest-kill",
        &[
            "rm-manifest",
            "-q",
            "busybox-oci@sha256:950cda1ece8c0571f729c9bece4e2bcb7b73a10377f62b257cd19b8c9782836b",
            "--root",
        ],
    );
}

#[test]
fn rm_repo_on_s3_killed_at_random_moments() {
    killed_at_random_moments_on_s3("rm-kill", &["rm-repo", "-q", "team/app", "--root"]);
}

/// Files below `root` (relative), as keys would be: blobs and repositories, no uploads.
fn files_below(root: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in walkdir::WalkDir::new(root) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            out.insert(
                e.path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out
}

/// A real `prune --gc` and `rm-repo` on a bucket the real registry pushed into: the kept tags
/// (and nested repositories) still pull from `docker-registry serve` on the bucket, the
/// removed ones do not, the registry's own gc finds nothing left, and the bucket holds exactly
/// the files the same commands leave on the same layout on disk.
#[test]
fn a_real_prune_and_rm_repo_on_s3_leave_what_they_leave_on_disk() {
    let s3 = S3::with_bucket(WRITES);
    let loaded = s3.load_sample("prune-real");
    let p = loaded.prefix.as_str();
    let disk = Sample::registry();
    let prune = [
        "prune",
        "--repo",
        "alpine-mini",
        "--keep-last",
        "0",
        "--gc",
        "--min-age",
        "0",
        "--json",
    ];
    let out = on_s3(&s3, p, &prune, true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let here = regfsck().args(prune).arg(disk.root()).output().unwrap();
    assert_eq!(here.status.code(), Some(0));
    assert_eq!(v["gc"]["applied"], json(&here)["gc"]["applied"], "{v}");
    let kept: Vec<String> = loaded
        .view
        .iter()
        .filter(|l| !l.starts_with("alpine-mini:"))
        .cloned()
        .collect();
    assert_eq!(registry_pulls(&s3, p, &kept), Vec::<String>::new());
    let gone = registry_pulls(&s3, p, &["alpine-mini:latest:x".to_string()]);
    assert_eq!(gone.len(), 1, "alpine-mini:latest still pulls");
    assert_eq!(s3.registry_gc_dry_run(p, false).0, BTreeSet::new());
    // rm-repo of a repository with a nested one below it.
    let out = on_s3(&s3, p, &["rm-repo", "--json", "team/app", "--root"], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let here = regfsck()
        .args(["rm-repo", "--json", "team/app", "--root"])
        .arg(disk.root())
        .output()
        .unwrap();
    assert_eq!(
        here.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&here.stderr)
    );
    let kept: Vec<String> = kept
        .into_iter()
        .filter(|l| !l.starts_with("team/app:"))
        .collect();
    assert!(kept.iter().any(|l| l.starts_with("team/app/api:")));
    assert_eq!(registry_pulls(&s3, p, &kept), Vec::<String>::new());
    assert_eq!(
        registry_pulls(&s3, p, &["team/app:latest:x".to_string()]).len(),
        1
    );
    assert_eq!(s3.registry_gc_dry_run(p, false).0, BTreeSet::new());
    // The same files as on disk (uploads aside: on S3 the sample's unfinished one is a
    // multipart upload, and the registry's pulls above wrote nothing).
    let no_uploads = |s: BTreeSet<String>| -> BTreeSet<String> {
        s.into_iter()
            .filter(|k| !k.contains("/_uploads/"))
            .collect()
    };
    assert_eq!(
        no_uploads(keys_below(&s3, p)),
        no_uploads(files_below(disk.root()))
    );
    assert_eq!(s3_errors(&s3, p), BTreeSet::new());
}

/// The upload S3 hides: the sample's half-finished upload (19 bytes sent through the real
/// registry, then the client stopped) is, on S3, an in-progress multipart upload of
/// `_uploads/<id>/data`, invisible to listings. verify reports it with its bytes; gc aborts it
/// only once it is older than `--upload-age` (default the registry's 7 days), lists it in a
/// dry run, and touches nothing else for it.
#[test]
fn unfinished_multipart_uploads_are_reported_and_aborted_after_their_age() {
    let s3 = S3::with_bucket(WRITES);
    let loaded = s3.load_sample("uploads");
    let p = loaded.prefix.as_str();
    // The clock as it is, and 8 days on (the tests' fixed REGFSCK_NOW is before the push).
    let at = |days: u64| {
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    let (today, later) = (at(0), at(8));
    let run = |now: &str, args: &[&str]| {
        let mut c = regfsck();
        c.env("REGFSCK_NOW", now).args(args).arg(s3.url(p));
        s3.env(&mut c).output().unwrap()
    };
    let up = s3.uploads(&format!("{p}/"));
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(
        up[0]
            .0
            .ends_with(&format!("/_uploads/{}/data", loaded.upload)),
        "{up:?}"
    );
    let v = json(&run(&today, &["verify", "--json", "--no-content"]));
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "upload_in_progress")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(f["size"], 19, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("in-progress multipart upload (19 bytes in 1 parts)"),
        "{f}"
    );
    let v = json(&run(&later, &["verify", "--json", "--no-content"]));
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "upload_stale" && f["size"] == 19),
        "{v}"
    );
    // Young: a dry run aborts nothing; 8 days on it would.
    let gc = ["gc", "--dry-run", "--json", "--min-age", "0"];
    let dry = json(&run(&today, &gc));
    assert!(dry["sweep"].get("uploads").is_none(), "{dry}");
    let dry = json(&run(&later, &gc));
    assert_eq!(
        dry["sweep"]["uploads"][0]["id"],
        loaded.upload.as_str(),
        "{dry}"
    );
    assert_eq!(dry["sweep"]["uploads"][0]["bytes"], 19);
    assert_eq!(
        s3.uploads(&format!("{p}/")).len(),
        1,
        "a dry run changed nothing"
    );
    // A real run aborts it and removes its startedat and hash states, nothing else of it.
    let before = keys_below(&s3, p);
    let out = run(&later, &["gc", "--json", "--min-age", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["applied"]["uploads"], 1, "{v}");
    assert_eq!(s3.uploads(&format!("{p}/")), Vec::new());
    let after = keys_below(&s3, p);
    let gone: Vec<&String> = before.difference(&after).collect();
    let upload_dir = format!("/_uploads/{}/", loaded.upload);
    assert!(gone.iter().any(|k| k.contains(&upload_dir)), "{gone:?}");
    assert!(
        gone.iter()
            .all(|k| k.contains(&upload_dir) || k.ends_with("/data") || k.contains("/_layers/")),
        "{gone:?}"
    );
    assert_eq!(registry_pulls(&s3, p, &loaded.view), Vec::<String>::new());
}
