//! The S3 test infrastructure itself (`common::s3`): a real SeaweedFS, the real registry's
//! pushes into it, its gc oracle and its serving on a bucket.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::s3::{S3, http_status, parse_gc};

fn committed(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/registries")
            .join(name),
    )
    .unwrap()
}

fn committed_lines(name: &str) -> Vec<String> {
    committed(name).lines().map(str::to_string).collect()
}

#[test]
fn server_starts_signs_and_lists() {
    let s3 = S3::start();
    assert!(s3.list_keys("").is_empty(), "a new bucket is empty");
    s3.put_object("p/a/b/link", b"sha256:0000");
    s3.put_object("p/a/c", b"x");
    s3.put_object("p/a-z", b"yy");
    assert_eq!(
        s3.list_keys("p/a/"),
        vec![("p/a/b/link".to_string(), 11), ("p/a/c".to_string(), 1)]
    );
    let o = &s3.list_objects("p/a/c")[0];
    assert_eq!(
        o.etag, "\"9dd4e461268c8034f5c8564e155c67a6\"",
        "a plain PUT's ETag: MD5"
    );
    assert_eq!(o.last_modified.len(), "2026-12-01T13:10:32Z".len(), "{o:?}");
    assert_eq!(s3.get_object("p/a/b/link").unwrap(), b"sha256:0000");
    assert_eq!(s3.get_object("p/nothing"), None);
    // Delimiter listings: "directories" as common prefixes.
    assert_eq!(
        s3.list_dir("p/"),
        (vec!["p/a/".to_string()], vec!["p/a-z".to_string()])
    );

    // SigV4 is enforced: a wrong secret is refused.
    let mut bad = s3.clone();
    bad.secret_key.push('x');
    let mut c = Command::new("python3");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3.py"))
        .args(["ls", &s3.bucket]);
    let out = bad.env(&mut c).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // env() sets exactly the four variables and drops every other AWS_* (AWS_CA_BUNDLE).
    let mut c = Command::new("env");
    c.env("AWS_CA_BUNDLE", "/nonexistent")
        .env("AWS_PROFILE", "x");
    let out = s3.env(&mut c).output().unwrap();
    let aws: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("AWS_"))
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect();
    assert_eq!(
        aws,
        BTreeSet::from(
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_ENDPOINT_URL",
                "AWS_REGION",
                "AWS_SECRET_ACCESS_KEY"
            ]
            .map(String::from)
        )
    );

    // After deletes the emptied "directory" may stay in delimiter listings for a while;
    // settle() waits until it has gone.
    s3.delete_object("p/a/b/link");
    s3.delete_object("p/a/c");
    s3.settle("p/");
    assert_eq!(s3.list_dir("p/"), (vec![], vec!["p/a-z".to_string()]));
}

/// The files of the committed `sample.tree` as `(path, size)`, the upload's UUID replaced.
fn committed_files(uuid: &str) -> Vec<(String, u64)> {
    let tree = committed("sample.tree");
    let old = tree
        .lines()
        .find_map(|l| {
            let p = l.split(' ').nth(2)?;
            let rest = p.strip_prefix("docker/registry/v2/repositories/team/app/_uploads/")?;
            Some(rest.split('/').next()?.to_string())
        })
        .unwrap();
    let mut v: Vec<(String, u64)> = tree
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ' ');
            let (kind, size, path) = (f.next()?, f.next()?, f.next()?);
            (kind == "f").then(|| (path.replace(&old, uuid), size.parse().unwrap()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn load_sample_gives_the_committed_view() {
    let (s3, l) = S3::sample();
    assert_eq!(l.view, committed_lines("sample.ls"));
    assert_eq!(l.catalog, committed_lines("sample.catalog"));

    // The same objects as the committed tree's files, but the unfinished upload's data.
    let data = format!(
        "docker/registry/v2/repositories/team/app/_uploads/{}/data",
        l.upload
    );
    let expected: Vec<(String, u64)> = committed_files(&l.upload)
        .into_iter()
        .filter(|(p, _)| *p != data)
        .collect();
    assert_eq!(l.keys, expected);
    let mut now: Vec<(String, u64)> = s3
        .list_keys("sample/")
        .into_iter()
        .map(|(k, n)| (k.strip_prefix("sample/").unwrap().to_string(), n))
        .collect();
    now.sort();
    assert_eq!(now, expected, "the listing now");
    // That data is a multipart upload in progress.
    let uploads: Vec<String> = s3.uploads("sample/").into_iter().map(|u| u.0).collect();
    assert_eq!(uploads, vec![format!("sample/{data}")]);
}

#[test]
fn registry_gc_dry_run_on_the_bucket_equals_the_oracle() {
    let (s3, l) = S3::sample();
    let oracle = parse_gc(&committed("sample.gc-dry-run.txt"));
    let oracle_m = parse_gc(&committed("sample.gc-dry-run-m.txt"));
    assert_eq!((oracle.0.len(), oracle.1.len()), (6, 0));
    assert_eq!((oracle_m.0.len(), oracle_m.1.len()), (16, 6));
    assert_eq!(l.gc, oracle, "recorded by generate.sh --into-s3");
    assert_eq!(l.gc_delete_untagged, oracle_m);
    assert_eq!(s3.registry_gc_dry_run(&l.prefix, false), oracle);
    assert_eq!(s3.registry_gc_dry_run(&l.prefix, true), oracle_m);
}

#[test]
fn registry_serves_the_bucket_to_skopeo() {
    let (s3, l) = S3::sample();
    let reg = s3.serve_registry(&l.prefix);
    assert_eq!(
        reg.view(),
        (
            committed_lines("sample.catalog"),
            committed_lines("sample.ls")
        )
    );
    assert_eq!(
        http_status(&reg.addr, "/v2/busybox-oci/tags/list"),
        Some(200)
    );
    // On S3 a repository whose tags were all deleted has no tags "directory": 404 (on disk
    // the registry answers 200 with "tags": null).
    assert_eq!(http_status(&reg.addr, "/v2/emptied/tags/list"), Some(404));
    let dest = tempfile::tempdir().unwrap();
    for (tag, digest) in [
        (
            "busybox-oci:1.1",
            "sha256:950cda1ece8c0571f729c9bece4e2bcb7b73a10377f62b257cd19b8c9782836b",
        ),
        (
            "multi/oci-index:latest",
            "sha256:7efccb5b900469b66d94e6917a106c4108d8f793ef460c4f95957644d90b671e",
        ),
    ] {
        let out = Command::new("skopeo")
            .args(["copy", "--all", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}/{tag}", reg.addr))
            .arg(format!(
                "oci:{}:{}",
                dest.path().display(),
                tag.replace(['/', ':'], "-")
            ))
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {tag}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            reg.log()
        );
        let index = std::fs::read_to_string(dest.path().join("index.json")).unwrap();
        assert!(index.contains(digest), "{tag}: {index}");
    }
}
