//! The scale benchmark's simulation (`bash bench/scale.sh`): builds gc's model of a registry
//! straight from generated names, as a scan by names would, without a layout on disk (10
//! million objects would take 40 GB of 4 KiB files), then marks and sweeps it.
//!
//! The shape is `bench/gen_layout.py`'s: per repository and image, a config, `--layers` layers
//! and an OCI manifest naming them (parsed from its JSON by regfsck's own parser), the config
//! and layers linked in `_layers`, the manifest in `_manifests/revisions`, a tag `v<i>` naming
//! it (its `current/link`; the index entry a scan by names does not read is counted as an
//! object); plus `--small-blobs` orphans. Objects are what the layout would hold as files.
//!
//! Prints one line: objects, blobs, seconds to build, to build the graph, to mark and sweep,
//! and the peak resident memory (VmHWM). With `SCALE_PHASES=1` it also prints the times of
//! mark, of the sweep's facts and of the sweep on stderr; with `PERF_CTL_FIFO=PATH` it enables
//! `perf record --control fifo:PATH -D -1` once the model is built, so a profile holds the run
//! alone. `SCALE_CLUSTER=manifests` (or `all`, blobs too) gives digests that lead with their
//! repository's number, so that each repository's entries sit side by side in the sorted
//! model: not what real digests do, a measure of how much of the time is memory order.
//!
//! ```text
//! cargo run --release --example scale -- --repos 5000 --images-per-repo 28 --layers 2 --small-blobs 40000
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use regfsck::digest::{Algorithm, DigestMap, hash_bytes};
use regfsck::graph::{self, ManifestState};
use regfsck::layout::{RepoName, Root, TagName};
use regfsck::scan::{Blob, Inventory, Link, LinkMap, Repo, Tag};
use regfsck::sorted::SortedMap;
use regfsck::{Digest, gc, manifest};

struct Shape {
    repos: u64,
    images: u64,
    layers: u64,
    small: u64,
}

fn args() -> Result<Shape, String> {
    let mut s = Shape {
        repos: 500,
        images: 28,
        layers: 2,
        small: 4000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v: u64 = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--repos" => s.repos = v,
            "--images-per-repo" => s.images = v,
            "--layers" => s.layers = v,
            "--small-blobs" => s.small = v,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(s)
}

/// Whether digests of `kind` ("manifests" or "blobs") lead with their repository's number
/// instead of spreading like hashes (`SCALE_CLUSTER=manifests` or `all`). Real digests do not:
/// this measures how much of the time is the order memory is read in.
fn clustered(kind: &str) -> bool {
    match std::env::var("SCALE_CLUSTER").as_deref() {
        Ok("all") => true,
        Ok("manifests") => kind == "manifests",
        _ => false,
    }
}

/// `d` with its first 8 bytes replaced by `repo` and `n` (the rest keeps it distinct).
fn lead_with(d: Digest, repo: u64, n: u64) -> Digest {
    let hex = format!("{:08x}{:08x}{}", repo as u32, n as u32, &d.hex()[16..]);
    Digest::from_parts("sha256", &hex).unwrap_or(d)
}

/// A distinct digest per (kind, numbers): what random content would give.
fn digest(kind: u8, a: u64, b: u64, c: u64) -> Digest {
    let mut x = [0u8; 25];
    x[0] = kind;
    x[1..9].copy_from_slice(&a.to_le_bytes());
    x[9..17].copy_from_slice(&b.to_le_bytes());
    x[17..].copy_from_slice(&c.to_le_bytes());
    let d = hash_bytes(Algorithm::Sha256, &x);
    // Orphans (kind 3) belong to no repository.
    if kind != 3 && clustered("blobs") {
        lead_with(d, a, b)
    } else {
        d
    }
}

fn link(d: Digest) -> Link {
    Link {
        target: Ok(d),
        mtime: None,
    }
}

fn blob() -> Blob {
    // A scan by names does not stat blobs.
    Blob::new(0, None, true, false)
}

/// The registry's model, as a scan by names and the manifest reads would leave it; and the
/// number of objects the layout would hold.
fn model(s: &Shape) -> Result<(Inventory, DigestMap<ManifestState>, u64), String> {
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut repos = BTreeMap::new();
    let mut objects = 0;
    for r in 0..s.repos {
        let name = RepoName::parse(&format!("bench/repo{r:05}")).map_err(|e| e.to_string())?;
        let (mut layers, mut revisions, mut tags) = (Vec::new(), Vec::new(), SortedMap::new());
        for i in 0..s.images {
            let config = digest(1, r, i, 0);
            let ls: Vec<Digest> = (0..s.layers).map(|l| digest(2, r, i, l)).collect();
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":200}},"layers":[{}]}}"#,
                ls.iter()
                    .map(|d| format!(
                        r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":512}}"#
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let mut m = hash_bytes(Algorithm::Sha256, body.as_bytes());
            if clustered("manifests") {
                m = lead_with(m, r, i);
            }
            let parsed = manifest::parse(body.as_bytes()).map_err(|e| e.to_string())?;
            manifests.push((m, ManifestState::Parsed(parsed)));
            for d in std::iter::once(config).chain(ls.iter().copied()) {
                blobs.push((d, blob()));
                layers.push((d, link(d)));
            }
            blobs.push((m, blob()));
            revisions.push((m, link(m)));
            let tag = TagName::parse(&format!("v{i}")).map_err(|e| e.to_string())?;
            tags.insert(
                tag,
                Tag {
                    current: Some(link(m)),
                    index: LinkMap::new(),
                    unseen: false,
                },
            );
            // Blobs, _layers links, the revision link, current/link and the index entry.
            objects += 2 * (1 + s.layers) + 1 + 3;
        }
        let repo = Repo {
            name: name.clone(),
            has_manifests: true,
            has_layers: true,
            layers: LinkMap::from_entries(layers),
            revisions: LinkMap::from_entries(revisions),
            tags,
            uploads: BTreeMap::new(),
        };
        repos.insert(name, repo);
    }
    // Orphans as gc's sweep facts would find them: old files of their size.
    let orphan = Blob::new(
        1024,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)),
        true,
        true,
    );
    for n in 0..s.small {
        blobs.push((digest(3, n, 0, 0), orphan));
        objects += 1;
    }
    let inv = Inventory {
        blobs: DigestMap::from_entries(blobs),
        repos,
        ..Inventory::default()
    };
    Ok((inv, DigestMap::from_entries(manifests), objects))
}

/// CPU time this process has used so far (user and system, all threads; in the kernel's
/// clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command's name (in parentheses): state is field 3, utime 14, stime 15.
    let fields: Vec<u64> = (stat.rsplit_once(')').map_or("", |(_, f)| f))
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// Peak resident memory so far, in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), String> {
    let shape = args()?;
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(empty.path().join("docker/registry/v2")).map_err(|e| e.to_string())?;
    let root = Root::open(empty.path()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let (inv, manifests, objects) = model(&shape)?;
    let t_model = t0.elapsed();
    // Profiling the run alone: `perf record --control fifo:PATH -D -1` with PERF_CTL_FIFO=PATH.
    if let Some(fifo) = std::env::var_os("PERF_CTL_FIFO") {
        std::fs::write(fifo, "enable\n").map_err(|e| e.to_string())?;
    }
    let now = SystemTime::now();
    let cpu1 = cpu_time();
    let t1 = Instant::now();
    let g = graph::build_for_gc_from(&root, &inv, manifests, now);
    let t_graph = t1.elapsed();
    let opts = gc::GcOptions {
        delete_untagged: false,
        min_age: Duration::ZERO,
        force: false,
        now,
        upload_age: None,
    };
    let t2 = Instant::now();
    let marks = gc::mark(&inv, &g, &opts, &gc::MarkFacts::default());
    let t_mark = t2.elapsed();
    let facts = gc::sweep_facts(&root, &inv, &g, &opts, &marks);
    let t_facts = t2.elapsed();
    let plan = gc::sweep(&inv, &g, &opts, marks, &facts);
    let t_gc = t2.elapsed();
    let cpu = cpu_time() - cpu1;
    if std::env::var_os("SCALE_PHASES").is_some() {
        eprintln!(
            "mark {:.3} facts {:.3} sweep {:.3} cpu {:.3}",
            t_mark.as_secs_f64(),
            (t_facts - t_mark).as_secs_f64(),
            (t_gc - t_facts).as_secs_f64(),
            cpu.as_secs_f64()
        );
    }
    let want = shape.small;
    if plan.sweep.blobs.len() as u64 != want || !g.findings.is_empty() {
        return Err(format!(
            "the model is not what was generated: {} blobs to sweep (want {want}), {} findings",
            plan.sweep.blobs.len(),
            g.findings.len()
        ));
    }
    println!(
        "objects {objects} blobs {} model {:.2} s graph {:.3} s mark+sweep {:.3} s peak {} KiB",
        inv.blobs.len(),
        t_model.as_secs_f64(),
        t_graph.as_secs_f64(),
        t_gc.as_secs_f64(),
        peak_kib()
    );
    // The model's teardown is not part of the run: the process ends here.
    std::process::exit(0)
}
