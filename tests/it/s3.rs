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

/// The clock `days` days from now, as `REGFSCK_NOW` takes it (the tests' fixed one is before
/// the pushes of a sample loaded now).
fn days_on(days: u64) -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `regfsck ARGS s3://BUCKET/PREFIX` with its clock at `now` and the extra `env`.
fn on_s3_at(
    s3: &S3,
    prefix: &str,
    now: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut c = regfsck();
    c.env("REGFSCK_NOW", now)
        .envs(env.iter().copied())
        .args(args)
        .arg(s3.url(prefix));
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
fn dry_runs_change_nothing_on_s3_and_bad_credentials_are_a_clear_error() {
    let (s3, loaded) = S3::sample();
    let p = loaded.prefix.as_str();
    let before = s3.list_keys(p);
    for args in [
        &["repair", "--dry-run"][..],
        &["prune", "--keep-last", "0", "--dry-run"],
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

/// A change made alike to a layout on disk and in a bucket: the root-relative file (key)
/// written with these bytes, or removed.
type Change = (String, Option<Vec<u8>>);

/// Makes the changes on disk (a removed file's directories that are left empty go too, as a
/// bucket has none) and in the bucket below `prefix`.
fn make_changes(changes: &[Change], disk: Option<&std::path::Path>, s3: Option<(&S3, &str)>) {
    for (rel, bytes) in changes {
        if let Some(root) = disk {
            let path = root.join(rel);
            match bytes {
                Some(b) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, b).unwrap();
                }
                None => {
                    std::fs::remove_file(&path).unwrap();
                    let mut dir = path.parent();
                    while let Some(d) = dir.filter(|d| d.starts_with(root.join("docker"))) {
                        if std::fs::remove_dir(d).is_err() {
                            break;
                        }
                        dir = d.parent();
                    }
                }
            }
        }
        if let Some((s3, prefix)) = s3 {
            let key = format!("{prefix}/{rel}");
            match bytes {
                Some(b) => s3.put_object(&key, b),
                None => s3.delete_object(&key),
            }
        }
    }
}

/// Damage repair knows how to treat, on the sample (`disk`, for its digests): `garbage_tag`'s
/// `current/link` holds garbage (pointed back at its history), team/app/api's tag target's
/// revision link names another manifest (rewritten), the `_layers` link of alpine-mini:3.19's
/// last layer is gone (written again), team/app:latest's last layer has a byte flipped
/// (quarantined; its tags reported as broken), busybox-oci's config lies under the wrong
/// shard (moved back: on S3 a copy, then a delete), and the manifest of multi/docker-list:latest
/// is gone (nothing else in its history: the tag is quarantined, two keys copied, then deleted).
fn repair_damage(disk: &Sample, garbage_tag: (&str, &str)) -> Vec<Change> {
    use crate::common::R;
    use regfsck::layout;
    let repo = |r: &str| layout::RepoName::parse(r).unwrap();
    let rel = |p: std::path::PathBuf| {
        p.strip_prefix(disk.root())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let mut out: Vec<Change> = Vec::new();
    let (r, t) = garbage_tag;
    out.push((rel(disk.current_link(r, t)), Some(b"garbage".to_vec())));
    let api = disk.tag("team/app/api", "latest");
    let other = disk.tag("busybox-oci", "latest");
    out.push((
        rel(disk.revision_link("team/app/api", &api)),
        Some(other.to_string().into_bytes()),
    ));
    let alpine = disk.tag("alpine-mini", "3.19");
    let layer = disk.manifest(&alpine).refs(R::Layer).last().unwrap().digest;
    out.push((layout::layer_link(&repo("alpine-mini"), &layer), None));
    let app = disk.tag("team/app", "latest");
    let corrupt = disk.manifest(&app).refs(R::Layer).last().unwrap().digest;
    let mut bytes = std::fs::read(disk.blob_path(&corrupt)).unwrap();
    bytes[10] ^= 0xff;
    out.push((layout::blob_data(&corrupt), Some(bytes)));
    let config = disk.reference(&other, R::Config);
    let right = layout::blob_data(&config);
    let shard = format!("/{}/", &config.hex()[..2]);
    let wrong_shard = if shard == "/00/" { "/01/" } else { "/00/" };
    let wrong = right.replacen(&shard, wrong_shard, 1);
    out.push((wrong, Some(std::fs::read(disk.blob_path(&config)).unwrap())));
    out.push((right, None));
    let list = disk.tag("multi/docker-list", "latest");
    out.push((layout::blob_data(&list), None));
    out
}

/// `keys` with a repair journal's entries as one key (`<run>/journal`): on disk one file
/// (`journal.jsonl`), in a bucket one object per entry (`journal/00000001.json`, ...), more of
/// them after a run continued.
fn journal_as_one(keys: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    keys.into_iter().map(|k| journal_key(&k)).collect()
}

fn journal_key(k: &str) -> String {
    let q = format!("{}/", regfsck::fsops::QUARANTINE);
    let Some(i) = k.find(&q) else {
        return k.to_string();
    };
    let rest = &k[i + q.len()..];
    let Some((run, below)) = rest.split_once('/') else {
        return k.to_string();
    };
    if below == regfsck::fsops::JOURNAL
        || below.starts_with(&format!("{}/", regfsck::fsops::JOURNAL_DIR))
    {
        format!("{}{q}{run}/journal", &k[..i])
    } else {
        k.to_string()
    }
}

/// Every file below `root` (relative) with the SHA-256 of its content.
fn disk_sums(root: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest as _;
    files_below(root)
        .into_iter()
        .map(|f| {
            let h = sha2::Sha256::digest(std::fs::read(root.join(&f)).unwrap());
            let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
            (f, hex)
        })
        .collect()
}

/// Every key below `prefix/` (without it) with the SHA-256 of its content.
fn s3_sums(s3: &S3, prefix: &str) -> std::collections::BTreeMap<String, String> {
    s3.sums(&format!("{prefix}/"))
        .into_iter()
        .map(|(k, h)| (k[prefix.len() + 1..].to_string(), h))
        .collect()
}

/// Contents to compare across backends: no uploads (on S3 the sample's unfinished one is a
/// multipart upload), no journals (one file on disk, an object per entry on S3; their keys
/// are compared), the run's name as `RUN`.
fn comparable(
    sums: std::collections::BTreeMap<String, String>,
    run: &str,
) -> std::collections::BTreeMap<String, String> {
    sums.into_iter()
        .filter(|(k, _)| !k.contains("/_uploads/") && journal_key(k) == *k)
        .map(|(k, h)| (k.replace(run, "RUN"), h))
        .collect()
}

/// The tags of `view` that pull from `docker-registry serve` on the bucket.
fn pulling(s3: &S3, prefix: &str, view: &[String]) -> BTreeSet<String> {
    let failed: BTreeSet<String> = registry_pulls(s3, prefix, view)
        .into_iter()
        .map(|f| f.split(": ").next().unwrap().to_string())
        .collect();
    view.iter()
        .filter(|l| !failed.contains(*l))
        .cloned()
        .collect()
}

/// Errors verify finds on disk, as [`s3_errors`] says them.
fn disk_errors(root: &std::path::Path) -> BTreeSet<String> {
    let out = regfsck()
        .args(["verify", "--json", "--no-content"])
        .arg(root)
        .output()
        .unwrap();
    findings(&json(&out))
        .into_iter()
        .filter(|f| f.0 == "error")
        .map(|f| format!("{} {:?} {:?}", f.1, f.2, f.3))
        .collect()
}

/// A real repair on a bucket the real registry pushed into, damaged as a copy of the sample on
/// disk is: the same plan, and the bucket ends with exactly the files (and contents) the disk
/// copy ends with, journal aside; verify on the bucket finds no error it does not find on disk;
/// every tag that pulled from `docker-registry serve` on the bucket before still pulls. Then
/// `--undo RUN --dry-run` changes nothing, and `--undo RUN` gives the bucket back byte for byte
/// as it was before the repair, without the quarantine.
#[test]
fn a_real_repair_on_s3_leaves_what_it_leaves_on_disk_and_undo_restores_the_bucket() {
    let s3 = S3::with_bucket(WRITES);
    let loaded = s3.load_sample("repair-real");
    let p = loaded.prefix.as_str();
    let disk = Sample::registry();
    // A tag with two revisions in its history: the one it points back at is chosen by the
    // times of its history links (on S3 the registry's pushes, whole seconds).
    let damage = repair_damage(&disk, ("alpine-mini", "latest"));
    make_changes(&damage, Some(disk.root()), Some((&s3, p)));
    let damaged = s3_sums(&s3, p);
    assert_eq!(
        comparable(damaged.clone(), "-"),
        comparable(disk_sums(disk.root()), "-"),
        "damaged alike"
    );
    let pulled = pulling(&s3, p, &loaded.view);
    assert!(
        !pulled.is_empty() && pulled.len() < loaded.view.len(),
        "{pulled:?}"
    );
    let out = on_s3(&s3, p, &["repair", "--yes", "--json"], true);
    let v = json(&out);
    let here = regfsck()
        .args(["repair", "--yes", "--json"])
        .arg(disk.root())
        .output()
        .unwrap();
    let h = json(&here);
    assert_eq!(out.status.code(), Some(4), "{v:#}");
    assert_eq!(here.status.code(), Some(4), "{h:#}");
    assert_eq!(v["steps"], h["steps"], "the same plan");
    let kinds: BTreeSet<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["link", "move", "quarantine"]),
        "{v:#}"
    );
    assert_eq!(v["unrepairable"], h["unrepairable"]);
    let run = v["applied"]["quarantine"].as_str().unwrap().to_string();
    assert_eq!(run, h["applied"]["quarantine"].as_str().unwrap());
    // The same files, the same bytes; the journal one file on disk, objects on S3.
    let repaired = s3_sums(&s3, p);
    assert_eq!(
        comparable(repaired.clone(), &run),
        comparable(disk_sums(disk.root()), &run)
    );
    let keys = journal_as_one(repaired.keys().cloned());
    assert!(keys.contains(&format!("{run}/journal")), "{keys:#?}");
    let entries = repaired
        .keys()
        .filter(|k| k.starts_with(&format!("{run}/journal/")))
        .count();
    assert!(entries > v["steps"].as_array().unwrap().len(), "{entries}");
    // The quarantined blob keeps its damaged bytes.
    assert!(
        repaired
            .keys()
            .any(|k| k.starts_with(&format!("{run}/docker/registry/v2/blobs/"))),
        "{repaired:#?}"
    );
    let left = s3_errors(&s3, p);
    assert!(!left.is_empty());
    assert!(
        left.is_subset(&disk_errors(disk.root())),
        "{left:#?}\n{:#?}",
        disk_errors(disk.root())
    );
    // Every tag that pulled still pulls, and so does every tag repair does not name as broken
    // (the tag pointed back, those whose links are back); the others are the corrupt layer's.
    let breaks: BTreeSet<String> = v["unrepairable"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["breaks"].as_array().unwrap().iter())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        breaks,
        BTreeSet::from(["team/app:latest".to_string(), "team/app:v1".to_string()])
    );
    let removed: BTreeSet<String> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "quarantine" && s["tag"].is_string())
        .map(|s| {
            format!(
                "{}:{}",
                s["repository"].as_str().unwrap(),
                s["tag"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        removed,
        BTreeSet::from(["multi/docker-list:latest".to_string()])
    );
    let now = pulling(&s3, p, &loaded.view);
    assert!(pulled.is_subset(&now), "{pulled:?} {now:?}");
    let unbroken: BTreeSet<String> = loaded
        .view
        .iter()
        .filter(|l| {
            !breaks
                .union(&removed)
                .any(|b| l.starts_with(&format!("{b}:")))
        })
        .cloned()
        .collect();
    assert_eq!(now, unbroken);
    // Undo: a dry run first.
    let dry = on_s3(&s3, p, &["repair", "--undo", &run, "--dry-run"], true);
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(text(&dry).contains("would undo: "), "{}", text(&dry));
    assert!(text(&dry).contains("would move "), "{}", text(&dry));
    assert_eq!(s3_sums(&s3, p), repaired, "a dry run changes nothing");
    let out = on_s3(&s3, p, &["repair", "--yes", "--undo", &run], true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s3_sums(&s3, p), damaged, "undone byte for byte");
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
    s3_errors_with(s3, prefix, false)
}

/// The same, with every blob hashed when `content`.
fn s3_errors_with(s3: &S3, prefix: &str, content: bool) -> BTreeSet<String> {
    let args: &[&str] = if content {
        &["verify", "--json"]
    } else {
        &["verify", "--json", "--no-content"]
    };
    let out = on_s3(s3, prefix, args, true);
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
    killed_on_s3(name, args, &[], 0, None, &|_, _| {});
}

/// A copy of the sample in a bucket, with `damage` made, and what `args` leaves on another
/// copy, run uninterrupted.
struct Reference {
    s3: S3,
    /// The damaged sample (`<name>/sample`).
    sample: String,
    /// The keys an uninterrupted run leaves (a repair's journal as one key: a run continued
    /// writes more entries).
    want: BTreeSet<String>,
    /// The keys before.
    all: BTreeSet<String>,
    /// The errors verify may find after an interruption: those before, and those an
    /// uninterrupted run leaves (a corrupt blob quarantined is a missing one).
    allowed: BTreeSet<String>,
    /// Whether verify hashes the blobs (to see the damage).
    content: bool,
    /// How long the uninterrupted run took.
    took: std::time::Duration,
}

impl Reference {
    fn keys(&self, p: &str) -> BTreeSet<String> {
        journal_as_one(keys_below(&self.s3, p))
    }

    /// Errors verify finds on `p` that it may not.
    fn new_errors(&self, p: &str) -> BTreeSet<String> {
        s3_errors_with(&self.s3, p, self.content)
            .difference(&self.allowed)
            .cloned()
            .collect()
    }
}

/// Loads the sample into `<name>/sample` (a prefix of this test's own below the shared bucket),
/// makes `damage`, runs `args` uninterrupted on a copy (`<name>/uninterrupted`), which must
/// exit `code`, then `then` on that copy.
fn reference_run(
    name: &str,
    args: &[&str],
    damage: &[Change],
    code: i32,
    then: &dyn Fn(&S3, &str),
) -> Reference {
    let s3 = S3::with_bucket(WRITES);
    let (sample, reference) = (format!("{name}/sample"), format!("{name}/uninterrupted"));
    s3.load_sample(&sample);
    assert_eq!(s3_errors(&s3, &sample), BTreeSet::new());
    make_changes(damage, None, Some((&s3, &sample)));
    let content = !damage.is_empty();
    let before = s3_errors_with(&s3, &sample, content);
    assert_eq!(before.is_empty(), damage.is_empty(), "{before:#?}");
    s3.copy_prefix(&sample, &reference);
    let t0 = std::time::Instant::now();
    let out = on_s3(&s3, &reference, args, true);
    let took = t0.elapsed();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = s3_errors_with(&s3, &reference, content);
    assert!(after.len() < before.len().max(1), "{after:#?}");
    let mut r = Reference {
        s3,
        sample,
        want: BTreeSet::new(),
        all: BTreeSet::new(),
        allowed: before.union(&after).cloned().collect(),
        content,
        took,
    };
    r.want = r.keys(&reference);
    r.all = r.keys(&r.sample);
    assert!(r.want != r.all);
    then(&r.s3, &reference);
    r
}

/// As [`killed_at_random_moments_on_s3`], on the sample with `damage` made first: no trial
/// leaves an error verify (hashing every blob when there is damage) finds neither on the
/// damaged sample nor after an uninterrupted run, an uninterrupted run and each rerun exit
/// `code`, and `then` runs on each trial's prefix once it has converged (and on the
/// uninterrupted run's). With `lead`, the kills come after the time that command (`args`
/// with `--dry-run`: all the reading and planning before the first change) takes.
fn killed_on_s3(
    name: &str,
    args: &[&str],
    damage: &[Change],
    code: i32,
    lead: Option<&[&str]>,
    then: &dyn Fn(&S3, &str),
) {
    let n = crate::kill::trials(4);
    let r = reference_run(name, args, damage, code, then);
    let s3 = &r.s3;
    let lead = lead.map_or(std::time::Duration::ZERO, |dry| {
        let t0 = std::time::Instant::now();
        on_s3(s3, &r.sample, dry, true);
        t0.elapsed().min(r.took)
    });
    let mut mid = 0;
    for i in 0..n {
        let p = format!("{name}/trial-{i}");
        s3.copy_prefix(&r.sample, &p);
        let jitter = (u128::from(i) * 7919 % 1000) as f64 / 1000.0;
        let delay = lead + (r.took - lead).mul_f64((i as f64 + jitter) / n as f64);
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
        let now = r.keys(&p);
        if now != r.all && now != r.want {
            mid += 1;
        }
        let new = r.new_errors(&p);
        assert!(new.is_empty(), "trial {i} ({delay:?}) left {new:?}");
        // Killed after its last step (the record deleted, the journal closed): done;
        // otherwise a rerun finishes.
        if now != r.want {
            let out = on_s3(s3, &p, args, true);
            assert_eq!(
                out.status.code(),
                Some(code),
                "trial {i} ({delay:?}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(r.keys(&p), r.want, "trial {i} ({delay:?})");
        then(s3, &p);
    }
    eprintln!(
        "{args:?} on S3: {n} kills from {lead:?} to {:?}, {mid} of them mid-run",
        r.took
    );
}

/// The damage of the repair tests below: a tag with one revision in its history (the copies of
/// the bucket these tests make are plain PUTs, all at about the same second: nothing to order
/// by).
fn kill_damage() -> Vec<Change> {
    repair_damage(&Sample::registry(), ("busybox-oci", "1.1"))
}

/// Checks, on a prefix where repair has run to its end, that it left one run, and that
/// `--undo` of it gives back the damaged sample of `name` byte for byte.
fn undo_gives_back(name: &str) -> impl Fn(&S3, &str) {
    let damaged = std::sync::OnceLock::new();
    let name = name.to_string();
    move |s3: &S3, p: &str| {
        let want = damaged.get_or_init(|| s3_sums(s3, &format!("{name}/sample")));
        let runs: BTreeSet<String> = keys_below(s3, p)
            .into_iter()
            .filter_map(|k| {
                let rest = k.strip_prefix(&format!("{}/", regfsck::fsops::QUARANTINE))?;
                Some(rest.split('/').next()?.to_string())
            })
            .collect();
        assert_eq!(runs.len(), 1, "{p}: one run: {runs:?}");
        let run = runs.into_iter().next().unwrap();
        let out = on_s3(s3, p, &["repair", "--yes", "--undo", &run], true);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{p}: {}{}",
            text(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&s3_sums(s3, p), want, "{p}: undone byte for byte");
    }
}

/// repair on a damaged bucket (every kind of step: links written and rewritten, a tag pointed
/// back, one quarantined, a blob moved back to its shard, a corrupt one quarantined) killed at
/// random moments after its planning (as long as a dry run takes):
/// no error verify did not find before, one run whose rerun converges to the keys of an
/// uninterrupted run; then `--undo` of that run (journaled again where the rerun repeated a
/// step) gives back the damaged bucket byte for byte.
#[test]
fn repair_on_s3_killed_at_random_moments() {
    let name = "repair-kill";
    // At 20 write requests a second its changes take most of its run.
    killed_on_s3(
        name,
        &["--write-rate", "20", "repair", "--yes", "-q"],
        &kill_damage(),
        4,
        Some(&["repair", "--dry-run", "-q"]),
        &undo_gives_back(name),
    );
}

/// The same, crashed (the fault-injection hook of debug builds) before each single change to
/// the bucket in turn, so that every moment between two requests is tried: after a copy and
/// before the delete of a move (a blob at both places), after a link's copy into the quarantine
/// and before its PUT, after the journal entry and before its step. Each time: no new error,
/// the rerun continues the run (finishing the half-done move first) to the keys of an
/// uninterrupted run, and undo gives back the damaged bucket.
#[test]
fn repair_on_s3_crashed_before_every_change() {
    let name = "repair-crash";
    let args = ["repair", "--yes", "-q"];
    let undo = undo_gives_back(name);
    let r = reference_run(name, &args, &kill_damage(), 4, &undo);
    let s3 = &r.s3;
    let mut crashes = 0;
    for n in 0..200 {
        let p = format!("{name}/before-{n}");
        s3.copy_prefix(&r.sample, &p);
        let mut c = regfsck();
        c.args(args)
            .arg(s3.url(&p))
            .env("REGFSCK_TEST_CRASH_AFTER", n.to_string());
        let out = s3.env(&mut c).output().unwrap();
        if out.status.code() == Some(4) {
            assert_eq!(r.keys(&p), r.want, "not crashed before change {n}");
            break;
        }
        assert_eq!(
            out.status.code(),
            None,
            "killed by SIGABRT before change {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        crashes += 1;
        let new = r.new_errors(&p);
        assert!(new.is_empty(), "a crash before change {n} left {new:?}");
        let out = on_s3(s3, &p, &args, true);
        assert_eq!(
            out.status.code(),
            Some(4),
            "rerun after a crash before change {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(r.keys(&p), r.want, "rerun after a crash before change {n}");
        undo(s3, &p);
    }
    // Two copies and two deletes for the moves, a copy and a PUT for each of the two links
    // replaced, one PUT for the link written.
    eprintln!("repair on S3: crashed before each of its {crashes} changes");
    assert!(crashes >= 9, "only {crashes} crash points");
}

/// `repair --undo` crashed before each of its changes in turn (a quarantined tag of two keys
/// half copied back; a blob copied back, not yet deleted from the quarantine), then run again:
/// the damaged bucket comes back byte for byte.
#[test]
fn undo_on_s3_crashed_before_every_change() {
    let name = "undo-crash";
    let repair = ["repair", "--yes", "-q"];
    let undo = undo_gives_back(name);
    let r = reference_run(name, &repair, &kill_damage(), 4, &undo);
    let s3 = &r.s3;
    let mut crashes = 0;
    for n in 0..200 {
        let p = format!("{name}/before-{n}");
        s3.copy_prefix(&r.sample, &p);
        let out = on_s3(s3, &p, &repair, true);
        assert_eq!(out.status.code(), Some(4));
        let run = journal_as_one(keys_below(s3, &p))
            .into_iter()
            .find_map(|k| {
                k.strip_suffix("/journal")
                    .map(|r| r.rsplit('/').next().unwrap().to_string())
            })
            .unwrap();
        let mut c = regfsck();
        c.args(["repair", "--yes", "-q", "--undo", &run])
            .arg(s3.url(&p))
            .env("REGFSCK_TEST_CRASH_AFTER", n.to_string());
        let out = s3.env(&mut c).output().unwrap();
        if out.status.code() == Some(0) {
            assert_eq!(
                s3_sums(s3, &p),
                s3_sums(s3, &r.sample),
                "not crashed before change {n}"
            );
            break;
        }
        assert_eq!(
            out.status.code(),
            None,
            "killed by SIGABRT before change {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        crashes += 1;
        undo(s3, &p);
    }
    eprintln!("repair --undo on S3: crashed before each of its {crashes} changes");
    assert!(crashes >= 9, "only {crashes} crash points");
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
    let (today, later) = (days_on(0), days_on(8));
    let run = |now: &str, args: &[&str]| on_s3_at(&s3, p, now, args, &[]);
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

/// The journal's crash and race argument on S3 rests on put-if-absent: a second writer of the
/// same entry (two repairs that chose the same run) is refused by the real server, whose
/// entry stays as the first wrote it.
#[test]
fn a_journal_entry_on_s3_is_put_only_if_absent() {
    use regfsck::storage::object::{Object, S3Spec};
    let s3 = S3::with_bucket(WRITES);
    let prefix = "journal-if-absent";
    let spec = S3Spec {
        endpoint: Some(s3.endpoint.clone()),
        access_key: Some(s3.access_key.clone()),
        secret_key: Some(s3.secret_key.clone()),
        region: Some(s3.region.clone()),
        ..S3Spec::from_url(&s3.url(prefix)).unwrap()
    };
    let root = regfsck::layout::Root::with_storage(std::sync::Arc::new(
        Object::open(spec).expect("the bucket opens"),
    ));
    let w = root
        .storage()
        .remover(None)
        .expect("an object store writes");
    let run = "regfsck-lost+found/20261125T000000Z-1";
    w.journal(run, 1, b"{\"first\":true}").unwrap();
    let e = w
        .journal(run, 1, b"{\"second\":true}")
        .expect_err("a second put of the same entry is refused");
    assert!(
        e.to_string().contains("journal/00000001.json"),
        "the error names the entry: {e}"
    );
    let key = format!("{prefix}/{}", regfsck::fsops::journal_entry(run, 1));
    assert_eq!(
        s3.get_object(&key).as_deref(),
        Some(&b"{\"first\":true}"[..]),
        "the first entry stands"
    );
    // The next entry is a new key: written.
    w.journal(run, 2, b"{}").unwrap();
    assert_eq!(
        s3.get_object(&format!(
            "{prefix}/{}",
            regfsck::fsops::journal_entry(run, 2)
        ))
        .as_deref(),
        Some(&b"{}"[..])
    );
}

/// A repair given the registry's own config and nothing else (no `AWS_*` variables: the
/// credentials and the endpoint are in the config) prints an undo command that, run as
/// printed, gives the damaged bucket back byte for byte.
#[test]
fn the_undo_command_a_repair_on_s3_prints_works_as_printed() {
    let s3 = S3::with_bucket(WRITES);
    let loaded = s3.load_sample("repair-undo-line");
    let p = loaded.prefix.as_str();
    let disk = Sample::registry();
    let damage = repair_damage(&disk, ("alpine-mini", "latest"));
    make_changes(&damage, None, Some((&s3, p)));
    let damaged = s3_sums(&s3, p);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, s3.registry_config(p)).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_regfsck"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(bin)
        .args(["repair", "--yes", "--config"])
        .arg(&cfg)
        .env_clear()
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}{}",
        text(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(s3_sums(&s3, p), damaged, "repaired");
    let undo = text(&out)
        .lines()
        .find_map(|l| Some(l.split_once("(undo: ")?.1.strip_suffix(')')?.to_string()))
        .unwrap_or_else(|| panic!("no undo command: {}", text(&out)));
    assert!(undo.contains("--config"), "{undo}");
    let back = Command::new("sh")
        .args(["-c", &undo])
        .env_clear()
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        back.status.code(),
        Some(0),
        "{undo}: {}{}",
        text(&back),
        String::from_utf8_lossy(&back.stderr)
    );
    assert_eq!(s3_sums(&s3, p), damaged, "undone byte for byte by: {undo}");
}

/// repair on S3 takes an unfinished upload older than `--upload-age` apart as gc does: its
/// multipart upload (the `data` no listing shows) is aborted first, then its keys are
/// quarantined; a crash between the two leaves keys the next run quarantines, never a hidden
/// upload. Undo brings the keys back, not the aborted parts.
#[test]
fn repair_on_s3_aborts_an_old_uploads_multipart_data_then_quarantines_it() {
    let s3 = S3::with_bucket(WRITES);
    let loaded = s3.load_sample("repair-uploads");
    let p = loaded.prefix.as_str();
    let (today, later) = (days_on(0), days_on(8));
    let run = |now: &str, args: &[&str]| on_s3_at(&s3, p, now, args, &[]);
    let up = s3.uploads(&format!("{p}/"));
    assert_eq!(up.len(), 1, "{up:?}");
    let dir = format!("/_uploads/{}", loaded.upload);
    let steps = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let a = s["action"].as_str().unwrap().to_string();
                (a, s["path"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    };
    let young = json(&run(&today, &["repair", "--dry-run", "--json"]));
    assert!(
        !steps(&young).iter().any(|(_, p)| p.contains(&dir)),
        "{young:#}"
    );
    let dry = json(&run(&later, &["repair", "--dry-run", "--json"]));
    let planned = steps(&dry);
    let abort = planned
        .iter()
        .position(|(a, p)| a == "abort" && p.ends_with(&format!("{dir}/data")));
    let quarantine = planned
        .iter()
        .position(|(a, p)| a == "quarantine" && p.ends_with(&dir));
    assert!(
        matches!((abort, quarantine), (Some(a), Some(q)) if a < q),
        "abort, then quarantine: {planned:?}"
    );
    let aborting = &dry["steps"][abort.unwrap()];
    assert_eq!(aborting["upload_id"], up[0].1.as_str(), "{aborting}");
    assert_eq!(
        s3.uploads(&format!("{p}/")).len(),
        1,
        "a dry run aborts nothing"
    );
    let before = keys_below(&s3, p);
    let out = run(&later, &["repair", "--yes", "--json"]);
    let v = json(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{v:#}");
    assert_eq!(steps(&v), planned, "the plan of the dry run");
    assert_eq!(s3.uploads(&format!("{p}/")), Vec::new(), "aborted");
    let q = v["applied"]["quarantine"].as_str().unwrap().to_string();
    let after = keys_below(&s3, p);
    for k in before.iter().filter(|k| k.contains(&dir)) {
        assert!(!after.contains(k), "{k} moved");
        assert!(
            after.contains(&format!("{q}/{k}")),
            "{k} quarantined: {after:#?}"
        );
    }
    let undo = run(&later, &["repair", "--yes", "--undo", &q]);
    assert_eq!(
        undo.status.code(),
        Some(0),
        "{}{}",
        text(&undo),
        String::from_utf8_lossy(&undo.stderr)
    );
    assert_eq!(keys_below(&s3, p), before, "the keys are back");
    assert_eq!(
        s3.uploads(&format!("{p}/")),
        Vec::new(),
        "not the aborted parts"
    );

    // Killed between the abort and the quarantine: the keys stay, and the next run takes them.
    let loaded = s3.load_sample("repair-uploads-crash");
    let p = loaded.prefix.as_str();
    let dir = format!("/_uploads/{}", loaded.upload);
    let repair =
        |env: &[(&str, &str)]| on_s3_at(&s3, p, &later, &["repair", "--yes", "--json"], env);
    let before = keys_below(&s3, p);
    let killed = repair(&[("REGFSCK_TEST_CRASH_AFTER", "1")]);
    assert_eq!(killed.status.code(), None, "killed: {}", text(&killed));
    assert_eq!(
        s3.uploads(&format!("{p}/")),
        Vec::new(),
        "aborted before the kill"
    );
    let kept: Vec<&String> = before.iter().filter(|k| k.contains(&dir)).collect();
    assert!(!kept.is_empty());
    let now = keys_below(&s3, p);
    assert!(
        kept.iter().all(|k| now.contains(*k)),
        "its keys are still there"
    );
    let again = repair(&[]);
    let v = json(&again);
    assert!(matches!(again.status.code(), Some(0 | 1)), "{v:#}");
    let q = v["applied"]["quarantine"].as_str().unwrap().to_string();
    let after = keys_below(&s3, p);
    for k in kept {
        assert!(
            !after.contains(k) && after.contains(&format!("{q}/{k}")),
            "{k}: {after:#?}"
        );
    }
}
