//! Legal states the real registry writes must verify clean, survive gc and repair, and keep
//! pulling: `testdata/registries/trust.tar` (pushed through the registry 2.8's API: a layer
//! pushed under `sha512:` and referred to by that digest, duplicated and case-folded JSON keys,
//! 9,000-level nesting, a buildx cache index whose entries are blobs) and a real pull-through
//! cache built at run time (`testdata/pull-through.sh`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use regfsck::Digest;
use regfsck::digest::hash_bytes;
use regfsck::manifest::{self, Role};

use crate::common::{Sample, exits, findings, regfsck, tree};
use crate::gc::{pull_all_except, registry_dry_run, serve};
use crate::registry::registry_gc;

/// The canonical sha256 of the layer alias/sha512 pushed under its sha512 digest.
const ALIASED: &str = "sha256:57c64187ea73cd08e9b207edcb975a09d3078f5642d0d67dca810190b576cd5e";

fn trust() -> Sample {
    Sample::new("trust")
}

/// `REPO:TAG:DIGEST` lines the registry itself listed when it wrote the fixture.
fn registry_view() -> Vec<(String, String, Digest)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/registries/trust.ls"),
    )
    .unwrap();
    text.lines()
        .map(|l| {
            let mut it = l.splitn(3, ':');
            let (r, t, d) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (r.to_string(), t.to_string(), d.parse().unwrap())
        })
        .collect()
}

/// A GET over HTTP/1.1 (`Connection: close`): status and body.
pub(crate) fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {}\r\nConnection: close\r\n\r\n",
        [
            manifest::OCI_INDEX,
            manifest::OCI_MANIFEST,
            manifest::DOCKER_LIST,
            manifest::DOCKER_V2
        ]
        .join(",")
    )
    .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, body)
}

/// Pulls `repo:tag` over the registry's API as a client does: the manifest (it must hash to
/// `want`), then every config, layer and child (each must answer 200 and hash to the digest
/// it was asked for, whatever its algorithm). For the tags skopeo 1.9 cannot copy (a layer
/// referred to by a sha512 digest; a cache index of blobs).
fn api_pull(addr: &str, repo: &str, tag: &str, want: &Digest) -> Result<usize, String> {
    let mut fetched = 0;
    let (status, bytes) = get(addr, &format!("/v2/{repo}/manifests/{tag}"));
    if status != 200 {
        return Err(format!("{repo}:{tag}: manifest answered {status}"));
    }
    if hash_bytes(want.algorithm(), &bytes) != *want {
        return Err(format!("{repo}:{tag}: manifest is not {want}"));
    }
    let mut stack = vec![manifest::parse(&bytes).map_err(|e| e.to_string())?];
    while let Some(m) = stack.pop() {
        for r in &m.references {
            match r.role {
                Role::Subject => {}
                Role::Child => {
                    let (status, b) = get(addr, &format!("/v2/{repo}/manifests/{}", r.digest));
                    if status != 200 || hash_bytes(r.digest.algorithm(), &b) != r.digest {
                        return Err(format!(
                            "{repo}:{tag}: child {} answered {status}",
                            r.digest
                        ));
                    }
                    stack.push(manifest::parse(&b).map_err(|e| e.to_string())?);
                }
                Role::Config | Role::Layer => {
                    let (status, b) = get(addr, &format!("/v2/{repo}/blobs/{}", r.digest));
                    if status != 200 || hash_bytes(r.digest.algorithm(), &b) != r.digest {
                        return Err(format!("{repo}:{tag}: blob {} answered {status}", r.digest));
                    }
                    fetched += 1;
                }
            }
        }
    }
    Ok(fetched)
}

/// Every tag of the fixture pulls from the real registry serving `root`; returns the failures.
fn pull_every_tag(root: &Path) -> Vec<String> {
    let reg = serve(root);
    let mut failed = Vec::new();
    for (repo, tag, d) in registry_view() {
        if let Err(e) = api_pull(&reg.addr, &repo, &tag, &d) {
            failed.push(e);
        }
    }
    drop(reg);
    std::fs::remove_file(root.join("config.yml")).unwrap();
    failed
}

/// Tags skopeo 1.9 cannot copy even from the registry itself: a layer named by its sha512
/// digest (skopeo stores it as sha256, then rejects the digest), and a cache index of blobs
/// (served as blobs, not manifests).
const NOT_FOR_SKOPEO: &[&str] = &["alias/sha512", "buildx/cache"];

#[test]
fn legal_states_the_registry_wrote_verify_clean() {
    let s = trust();
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 0, "{v:#}");
    let problems: BTreeSet<(String, String, Option<String>)> = findings(&v)
        .into_iter()
        .filter(|f| f.0 != "info")
        .map(|f| (f.0, f.1, f.2))
        .collect();
    // Only what the registry's own mount bug wrote: a sha512 mount into alias/mounted left a
    // `_layers` link to itself, to nothing, and no manifest.
    let expected: BTreeSet<(String, String, Option<String>)> = [
        ("warning", "empty_repository", "alias/mounted"),
        ("warning", "stale_layer_link", "alias/mounted"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), Some(c.to_string())))
    .collect();
    assert_eq!(problems, expected);
    assert_eq!(v["summary"]["orphan_blobs"], 0, "every blob is needed");
    assert_eq!(
        v["summary"]["repositories"], 7,
        "as the registry's catalog counts"
    );
    // ls agrees with what the registry served.
    let out = regfsck().arg("ls").arg(s.root()).output().unwrap();
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let view: Vec<String> = registry_view()
        .into_iter()
        .map(|(r, t, d)| format!("{r}:{t}:{d}"))
        .collect();
    assert_eq!(listed, view);
}

#[test]
fn gc_keeps_the_aliased_layer_the_registrys_gc_sweeps() {
    let s = trust();
    // The oracle, and its data-loss bug: it marks the sha512 digest the manifest names and
    // sweeps the sha256 blob the bytes are stored under.
    for m in [false, true] {
        let (blobs, manifests) = registry_dry_run(s.root(), m);
        assert_eq!(blobs, BTreeSet::from([ALIASED.to_string()]), "-m {m}");
        assert!(manifests.is_empty());
    }
    for args in [
        &["--dry-run", "--min-age", "0"][..],
        &["--dry-run", "--min-age", "0", "-m"],
    ] {
        let (code, v) = s.run_json("gc", args);
        assert_eq!(code, 0, "{v:#}");
        assert_eq!(v["refused"], false);
        // The registry's set minus its data loss: nothing.
        assert_eq!(v["sweep"]["blobs"], serde_json::json!([]), "{args:?}");
    }
    // A real run (it removes the stale link the registry's mount left), then every tag pulls
    // from the registry itself.
    let before = tree(s.root());
    let (code, v) = s.run_json("gc", &["--min-age", "0"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["applied"]["blobs"], 0);
    let removed: Vec<&String> = before
        .iter()
        .filter(|p| !tree(s.root()).contains(p))
        .collect();
    assert!(
        removed
            .iter()
            .all(|p| p.contains("alias/mounted/_layers/sha512")),
        "{removed:?}"
    );
    assert_eq!(pull_every_tag(s.root()), Vec::<String>::new());
    assert_eq!(pull_all_except(&s, NOT_FOR_SKOPEO), Vec::<String>::new());
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn the_registrys_own_gc_loses_the_aliased_layer() {
    // The control for the test above: the registry's own gc breaks alias/sha512's pulls.
    let s = trust();
    registry_gc(s.root(), false);
    let failed = pull_every_tag(s.root());
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed.iter().all(|f| f.starts_with("alias/sha512:")),
        "{failed:?}"
    );
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 4);
    assert!(
        findings(&v)
            .iter()
            .any(|f| f.1 == "blob_missing" && f.2.as_deref() == Some("alias/sha512")),
        "{v:#}"
    );
}

#[test]
fn repair_leaves_a_legal_layout_alone() {
    let s = trust();
    let before = tree(s.root());
    let out = exits(
        regfsck().args(["repair", "--yes", "--json"]).arg(s.root()),
        0,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"], serde_json::json!([]));
    assert_eq!(tree(s.root()), before);
}

/// A real pull-through cache: an upstream registry over the sample, a cache in front of it,
/// three tags pulled through it (one by manifest only).
struct Cache {
    dir: tempfile::TempDir,
    pulled: Vec<(String, String, Digest)>,
}

fn pull_through() -> Cache {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pull-through.sh"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pull-through.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ':');
            let (r, t, d) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (r.to_string(), t.to_string(), d.parse().unwrap())
        })
        .collect();
    Cache { dir, pulled }
}

#[test]
fn a_pull_through_cache_verifies_clean_and_keeps_what_it_cached() {
    let c = pull_through();
    let root = c.dir.path();
    assert!(root.join("scheduler-state.json").is_file());
    let verify = |extra: &[std::ffi::OsString]| {
        let out = regfsck()
            .args(["verify", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap(), v)
    };
    for args in [
        vec![root.into()],
        vec!["--config".into(), root.join("config.yml").into()],
    ] {
        let (code, v) = verify(&args);
        assert_eq!(code, 0, "{v:#}");
        let kinds: BTreeSet<(String, String)> = findings(&v)
            .into_iter()
            .filter(|f| f.0 != "info" || f.1.contains("cache") || f.1 == "uncataloged_repository")
            .map(|f| (f.0, f.1))
            .collect();
        // What a cache has not fetched is information, not damage; alpine-mini was cached by
        // manifest only, so it has no _layers and the catalog does not count it.
        assert!(kinds.iter().all(|(sev, _)| sev == "info"), "{kinds:?}");
        assert!(
            kinds.contains(&("info".into(), "layer_not_cached".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("info".into(), "uncataloged_repository".into())),
            "{kinds:?}"
        );
        assert_eq!(
            v["summary"]["repositories"], 2,
            "as the cache's catalog counts"
        );
    }
    // Without the marks of a cache (no scheduler-state.json, no config), the same layout is
    // damaged: layers a manifest needs are missing.
    let copy = tempfile::tempdir().unwrap();
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(root.join("docker"))
            .arg(copy.path())
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(verify(&[copy.path().into()]).0, 4);

    // gc keeps every cached manifest, including the one the registry's own gc would drop
    // (alpine-mini has no _layers, so the registry's gc never visits it).
    let cfg = root.join("config.yml");
    let oracle = Command::new("docker-registry")
        .args(["garbage-collect", "--dry-run"])
        .arg(&cfg)
        .env("REGISTRY_PROXY_REMOTEURL", "")
        .output()
        .unwrap();
    let alpine = &c.pulled.iter().find(|p| p.0 == "alpine-mini").unwrap().2;
    assert!(
        String::from_utf8_lossy(&oracle.stdout)
            .contains(&format!("blob eligible for deletion: {alpine}")),
        "the registry's gc: {}",
        String::from_utf8_lossy(&oracle.stdout)
    );
    let out = exits(
        regfsck().args(["gc", "--json", "--min-age", "0"]).arg(root),
        0,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sweep"]["blobs"], serde_json::json!([]), "{v:#}");
    // repair finds nothing to do, and the cache still serves what it cached (as a plain
    // registry over the same root: the upstream is gone).
    exits(regfsck().args(["repair", "--yes", "-q"]).arg(root), 0);
    let reg = serve(root);
    for (repo, tag, d) in &c.pulled {
        let (status, body) = get(&reg.addr, &format!("/v2/{repo}/manifests/{tag}"));
        assert_eq!(status, 200, "{repo}:{tag}");
        assert_eq!(hash_bytes(d.algorithm(), &body), *d, "{repo}:{tag}");
        if repo != "alpine-mini" {
            api_pull(&reg.addr, repo, tag, d).unwrap();
        }
    }
}

#[test]
fn repair_restores_a_lost_alias_link_and_the_tags_pull_again() {
    let s = trust();
    let alias_dir =
        std::fs::read_dir(s.abs("docker/registry/v2/repositories/alias/sha512/_layers/sha512"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
    std::fs::remove_dir_all(&alias_dir).unwrap();
    let (code, v) = s.verify_json(&[]);
    assert_eq!(code, 4, "{v:#}");
    assert!(
        findings(&v)
            .iter()
            .any(|f| f.1 == "blob_missing" && f.2.as_deref() == Some("alias/sha512")),
        "{v:#}"
    );
    // gc refuses: the graph is broken (and never sweeps the bytes a tag needs).
    assert_eq!(s.run_json("gc", &["--dry-run", "--min-age", "0"]).0, 4);
    exits(regfsck().args(["repair", "--yes", "-q"]).arg(s.root()), 1);
    // The alias link is back, holding the sha256 the bytes are stored under.
    let link = std::fs::read_to_string(alias_dir.join("link")).unwrap();
    assert_eq!(link, ALIASED);
    assert_eq!(s.verify_json(&[]).0, 0);
    assert_eq!(pull_every_tag(s.root()), Vec::<String>::new());
}
