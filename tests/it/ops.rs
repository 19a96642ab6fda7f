//! Running regfsck from a scheduler: `--metrics-file` (node_exporter's textfile format),
//! `--color`, `--log`, `generate` writing only where it is told, the contrib/ units.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{NOW, Sample, regfsck};

/// One sample of a metrics file: name and labels → value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the Prometheus text format strictly enough for these files: `# HELP`/`# TYPE`
/// before each family's samples, `name{k="v",...} value` lines with escaped label values.
fn parse_metrics(text: &str) -> Samples {
    let mut out = Samples::new();
    let mut typed: Option<String> = None;
    let mut helped: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped = Some(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap().to_string();
            assert_eq!(it.next(), Some("gauge"), "{line}");
            assert_eq!(
                helped.as_deref(),
                Some(name.as_str()),
                "TYPE without HELP: {line}"
            );
            typed = Some(name);
            continue;
        }
        let (name, rest) = line.split_once('{').unwrap_or_else(|| panic!("{line}"));
        assert_eq!(
            typed.as_deref(),
            Some(name),
            "sample before its TYPE: {line}"
        );
        let mut labels = BTreeMap::new();
        let mut chars = rest.chars();
        loop {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => panic!("bad escape {other:?} in {line}"),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key.trim_start_matches(',').to_string(), value);
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                other => panic!("{other:?} in {line}"),
            }
        }
        let value: f64 = chars.as_str().trim().parse().unwrap();
        assert!(
            out.insert((name.to_string(), labels), value).is_none(),
            "twice: {line}"
        );
    }
    out
}

/// The value of `name` with the labels `extra` (besides command and root).
fn value(m: &Samples, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    m.iter()
        .find(|((n, l), _)| {
            n == name
                && l.len() == extra.len() + 2
                && extra
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
}

/// Files in `dir` (names), sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `regfsck COMMAND --json ARGS --metrics-file M ROOT`; returns the exit code, the JSON
/// and the parsed metrics, after checking the common families and that no temporary file is
/// left beside the metrics file.
fn run_with_metrics(s: &Sample, command: &str, args: &[&str]) -> (i32, serde_json::Value, Samples) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regfsck.prom");
    // An older file is replaced.
    std::fs::write(&file, "stale\n").unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--metrics-file", file.to_str().unwrap()]);
    let (code, v) = s.run_json(command, &all);
    assert_eq!(
        names_in(dir.path()),
        ["regfsck.prom"],
        "a temporary file lingers"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o044, 0o044, "the collector must be able to read it");
    let m = parse_metrics(&text);
    let root = std::fs::canonicalize(s.root()).unwrap();
    for ((_, labels), _) in m.iter() {
        assert_eq!(labels["command"], command);
        assert_eq!(Path::new(&labels["root"]), root);
    }
    let now = humantime::parse_rfc3339(NOW).unwrap();
    let epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(
        value(&m, "regfsck_last_run_timestamp_seconds", &[]),
        Some(epoch)
    );
    assert_eq!(
        value(&m, "regfsck_last_run_exit_status", &[]),
        Some(f64::from(code))
    );
    assert!(value(&m, "regfsck_last_run_duration_seconds", &[]).unwrap() >= 0.0);
    (code, v, m)
}

/// Findings of the JSON document by (severity, kind), and by severity.
fn json_findings(
    v: &serde_json::Value,
    key: &str,
) -> (BTreeMap<(String, String), f64>, BTreeMap<String, f64>) {
    let mut by_kind = BTreeMap::new();
    let mut by_sev: BTreeMap<String, f64> = ["error", "warning", "info"]
        .into_iter()
        .map(|s| (s.to_string(), 0.0))
        .collect();
    for f in v[key].as_array().unwrap() {
        let s = f["severity"].as_str().unwrap().to_string();
        *by_kind
            .entry((s.clone(), f["kind"].as_str().unwrap().to_string()))
            .or_default() += 1.0;
        *by_sev.get_mut(&s).unwrap() += 1.0;
    }
    (by_kind, by_sev)
}

fn metric_findings(m: &Samples) -> (BTreeMap<(String, String), f64>, BTreeMap<String, f64>) {
    let mut by_kind = BTreeMap::new();
    let mut by_sev = BTreeMap::new();
    for ((n, l), v) in m {
        if n == "regfsck_findings_by_kind" {
            by_kind.insert((l["severity"].clone(), l["kind"].clone()), *v);
        } else if n == "regfsck_findings" {
            by_sev.insert(l["severity"].clone(), *v);
        }
    }
    (by_kind, by_sev)
}

#[test]
fn verify_metrics_match_its_json_on_the_sample_and_a_damaged_copy() {
    let s = Sample::registry();
    let (code, v, m) = run_with_metrics(&s, "verify", &[]);
    assert_eq!(code, 0);
    let (kinds, sev) = json_findings(&v, "findings");
    assert_eq!(metric_findings(&m), (kinds.clone(), sev));
    assert_eq!(kinds[&("info".into(), "orphan_blob".into())], 6.0);
    assert_eq!(
        value(&m, "regfsck_blobs_unreferenced", &[]),
        v["summary"]["orphan_blobs"].as_f64()
    );
    assert_eq!(
        value(&m, "regfsck_bytes_unreferenced", &[]),
        v["summary"]["orphan_bytes"].as_f64()
    );
    // verify changes nothing: no dry-run gauge.
    assert_eq!(value(&m, "regfsck_last_run_dry_run", &[]), None);

    // Damaged: a layer's content changed.
    let m = s.manifest(&s.tag("busybox-oci", "1.1"));
    let layer = m.refs(crate::common::R::Layer).last().unwrap().digest;
    std::fs::write(s.blob_path(&layer), b"not the layer").unwrap();
    let (code, v, m) = run_with_metrics(&s, "verify", &[]);
    assert_eq!(code, 4);
    let (kinds, sev) = json_findings(&v, "findings");
    assert!(sev["error"] >= 1.0);
    assert!(kinds.contains_key(&("error".into(), "blob_corrupt".into())));
    assert_eq!(metric_findings(&m), (kinds, sev));
}

#[test]
fn gc_metrics_count_what_was_swept() {
    let s = Sample::registry();
    let (code, v, m) = run_with_metrics(&s, "gc", &["--dry-run", "--min-age", "0"]);
    assert_eq!(code, 0);
    assert_eq!(value(&m, "regfsck_last_run_dry_run", &[]), Some(1.0));
    let planned = v["sweep"]["blobs"].as_array().unwrap().len() as f64;
    assert_eq!(planned, 6.0);
    assert_eq!(value(&m, "regfsck_blobs_unreferenced", &[]), Some(planned));
    assert_eq!(
        value(&m, "regfsck_bytes_unreferenced", &[]),
        v["sweep"]["bytes"].as_f64()
    );
    assert_eq!(value(&m, "regfsck_blobs_swept", &[]), Some(0.0));

    let (code, v, m) = run_with_metrics(&s, "gc", &["--min-age", "0", "-m"]);
    assert_eq!(code, 0);
    assert_eq!(value(&m, "regfsck_last_run_dry_run", &[]), Some(0.0));
    let applied = &v["applied"];
    assert!(applied["blobs"].as_f64().unwrap() > 0.0);
    assert_eq!(
        value(&m, "regfsck_blobs_swept", &[]),
        applied["blobs"].as_f64()
    );
    assert_eq!(
        value(&m, "regfsck_bytes_swept", &[]),
        applied["bytes"].as_f64()
    );
    assert_eq!(
        value(&m, "regfsck_manifests_removed", &[]),
        applied["manifests"].as_f64()
    );
    let (_, sev) = metric_findings(&m);
    assert_eq!(sev.values().sum::<f64>(), 0.0);
}

#[test]
fn prune_and_rm_repo_metrics() {
    let s = Sample::registry();
    let (code, v, m) = run_with_metrics(
        &s,
        "prune",
        &[
            "--keep-last",
            "1",
            "--order",
            "name",
            "--gc",
            "--min-age",
            "0",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        value(&m, "regfsck_tags_removed", &[]),
        v["applied"]["tags"].as_f64()
    );
    assert!(v["applied"]["tags"].as_f64().unwrap() > 0.0);
    assert_eq!(
        value(&m, "regfsck_blobs_swept", &[]),
        v["sweep"]["applied"]["blobs"].as_f64()
    );
    assert_eq!(
        value(&m, "regfsck_manifests_removed", &[]),
        Some(
            v["applied"]["manifests"].as_f64().unwrap()
                + v["sweep"]["applied"]["manifests"].as_f64().unwrap()
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rm.prom");
    let out = regfsck()
        .args(["rm-repo", "--json", "--root"])
        .arg(s.root())
        .arg("--metrics-file")
        .arg(&file)
        .arg("busybox-oci")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = parse_metrics(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(value(&m, "regfsck_repositories_removed", &[]), Some(1.0));
    assert_eq!(
        value(&m, "regfsck_blobs_swept", &[]),
        v["applied"]["blobs"].as_f64()
    );
    assert_eq!(names_in(dir.path()), ["rm.prom"]);
}

#[test]
fn a_run_that_fails_still_writes_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gc.prom");
    let out = regfsck()
        .args(["gc", "--dry-run", "--metrics-file"])
        .arg(&file)
        .arg(dir.path().join("no-such-root"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let m = parse_metrics(&std::fs::read_to_string(&file).unwrap());
    let status: Vec<_> = m
        .iter()
        .filter(|((n, _), _)| n == "regfsck_last_run_exit_status")
        .collect();
    assert_eq!(status.len(), 1);
    let ((_, labels), v) = status[0];
    assert_eq!(*v, 8.0);
    assert_eq!(labels["command"], "gc");
    assert_eq!(labels["root"], "", "no root was opened");
    assert!(!m.keys().any(|(n, _)| n == "regfsck_findings"));
    assert_eq!(names_in(dir.path()), ["gc.prom"]);
}

#[test]
fn an_unwritable_metrics_directory_is_an_operational_error() {
    let s = Sample::registry();
    let out = regfsck()
        .args(["verify", "--no-content", "--metrics-file"])
        .arg(s.root().join("no/such/dir/x.prom"))
        .arg(s.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-file"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("result:       clean"));
}

/// The human report of `verify` on the sample (it has warnings) with `args` and `env`.
fn verify_human(args: &[&str], env: &[(&str, &str)]) -> String {
    let s = Sample::registry();
    let mut c = regfsck();
    c.arg("verify")
        .args(args)
        .arg(s.root())
        .env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn color_always_paints_severities_and_nothing_else_does() {
    let painted = verify_human(&["--color", "always"], &[]);
    assert!(
        painted.contains("\x1b[33mwarning\x1b[0m[empty_repository] emptied: "),
        "{painted}"
    );
    // Flags beat NO_COLOR.
    assert_eq!(
        verify_human(&["--color", "always"], &[("NO_COLOR", "1")]),
        painted
    );
    let plain = verify_human(&[], &[]);
    assert!(!plain.contains('\x1b'));
    assert!(
        plain.contains("\nwarning[empty_repository] emptied: ")
            || plain.starts_with("warning[empty_repository]")
    );
    // Removing the codes gives the plain report back.
    assert_eq!(
        painted.replace("\x1b[33m", "").replace("\x1b[0m", ""),
        plain
    );
    assert_eq!(verify_human(&["--color", "never"], &[]), plain);
    assert_eq!(
        verify_human(&["--color", "auto"], &[("NO_COLOR", "1")]),
        plain
    );
    // JSON is never painted.
    let json = verify_human(&["--color", "always", "--json"], &[]);
    assert!(!json.contains('\x1b'));
    serde_json::from_str::<serde_json::Value>(&json).unwrap();
}

#[test]
fn color_rejects_other_values() {
    let out = regfsck()
        .args(["--color", "sometimes", "ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
}

#[test]
fn generate_writes_only_into_out() {
    let cwd = tempfile::tempdir().unwrap();
    // Without --out: a usage error, and nothing written into the current directory.
    let out = regfsck()
        .arg("generate")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(names_in(cwd.path()).is_empty());
    let out = regfsck()
        .args(["generate", "--out", "gen"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(names_in(cwd.path()), ["gen"]);
    let mut written: Vec<String> = walkdir::WalkDir::new(cwd.path().join("gen"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(cwd.path().join("gen"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    written.sort();
    let mut expected: Vec<String> = regfsck::generate::files()
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    let mut listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    assert_eq!(listed, expected);
}

/// The lines of a deletion log.
fn log_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `regfsck COMMAND --json ARGS --log LOG ROOT`, interrupted after `after` changes (none:
/// not interrupted).
fn run_logged(
    s: &Sample,
    command: &str,
    args: &[&str],
    log: &Path,
    after: Option<u32>,
) -> (i32, serde_json::Value, String) {
    let mut c = regfsck();
    c.args([command, "--json"])
        .args(args)
        .arg("--log")
        .arg(log)
        .arg(s.root());
    if let Some(n) = after {
        c.env("REGFSCK_TEST_INTERRUPT_AFTER", n.to_string());
    }
    let out = c.output().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (
        out.status.code().unwrap(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_interrupted_gc_reports_and_logs_what_it_deleted() {
    let s = Sample::registry();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deleted.log");
    let args = ["--min-age", "0", "-m"];
    // Its changes: the tag history entries (one batch), the manifest, the layer links (one
    // batch): interrupted before the blobs.
    let (code, v, err) = run_logged(&s, "gc", &args, &log, Some(3));
    assert_eq!(code, 32, "{err}");
    assert_eq!(v["interrupted"], true);
    assert!(!err.contains("after the run had finished"), "{err}");
    let a = &v["applied"];
    let manifests = a["manifests"].as_u64().unwrap();
    assert_eq!(manifests, 1, "{v}");
    assert_eq!(a["blobs"], 0, "{v}");
    assert_eq!(
        a["links"].as_u64().unwrap(),
        (v["sweep"]["layer_links"].as_array().unwrap().len()
            + v["sweep"]["tag_index_entries"].as_array().unwrap().len()) as u64
    );
    let planned_blobs = v["sweep"]["blobs"].as_array().unwrap();
    assert!(!planned_blobs.is_empty());
    let lines = log_lines(&log);
    assert_eq!(
        lines.len() as u64,
        a["links"].as_u64().unwrap() + manifests + a["blobs"].as_u64().unwrap()
    );
    let root = std::fs::canonicalize(s.root()).unwrap();
    for l in &lines {
        let p = Path::new(l);
        assert!(p.starts_with(&root), "{l}");
        assert!(!p.exists(), "{l} is logged as deleted but is there");
    }
    // The next run finishes, appending to the log; together the two runs logged every path.
    let (code, v2, err) = run_logged(&s, "gc", &args, &log, None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v2["interrupted"], false);
    let all = log_lines(&log);
    assert_eq!(all[..lines.len()], lines[..]);
    let blobs: Vec<&str> = v["sweep"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().trim_start_matches("sha256:"))
        .collect();
    assert!(!blobs.is_empty());
    for hex in blobs {
        let want = root.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}",
            &hex[..2]
        ));
        assert!(
            all.iter().any(|l| Path::new(l) == want),
            "{} not logged",
            want.display()
        );
        assert!(!want.exists());
    }
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "a path logged twice");
}

#[test]
fn an_interrupted_prune_reports_the_tags_it_removed() {
    let s = Sample::registry();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deleted.log");
    let args = ["--keep-last", "0", "--order", "name"];
    let (_, plan) = s.run_json(
        "prune",
        &["--dry-run", "--keep-last", "0", "--order", "name"],
    );
    let planned = plan["tags_removed"].as_u64().unwrap();
    assert!(planned > 3);
    // The job record, then tags moved into the trash one by one (a directory, a rename each).
    let (code, v, err) = run_logged(&s, "prune", &args, &log, Some(4));
    assert_eq!(code, 32, "{err}");
    assert_eq!(v["interrupted"], true);
    let tags = v["applied"]["tags"].as_u64().unwrap();
    assert!(tags > 0 && tags < planned, "{v}");
    let lines = log_lines(&log);
    assert_eq!(lines.len() as u64, tags, "{lines:?}");
    for l in &lines {
        assert!(l.contains("/_manifests/tags/"), "{l}");
        assert!(!Path::new(l).exists(), "{l}");
    }
    // A dry run writes no log.
    let dry = dir.path().join("dry.log");
    let (code, _, _) = run_logged(&s, "gc", &["--dry-run"], &dry, None);
    assert_eq!(code, 0);
    assert!(!dry.exists());
}

/// The unit files of contrib/systemd, with ExecStart's regfsck replaced by this build.
fn units(dir: &Path) -> Vec<std::path::PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let mut out = Vec::new();
    for name in ["regfsck-prune.service", "regfsck-prune.timer"] {
        let text = std::fs::read_to_string(src.join(name))
            .unwrap()
            .replace("/usr/local/bin/regfsck", env!("CARGO_BIN_EXE_regfsck"));
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        out.push(p);
    }
    out
}

#[test]
fn contrib_units_verify_and_the_cron_line_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let files = units(dir.path());
    // Every section header and key=value line is well formed (also without systemd).
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut continued = false;
        for line in text.lines() {
            let t = line.trim();
            if continued || t.is_empty() || t.starts_with('#') {
                continued = t.ends_with('\\');
                continue;
            }
            assert!(
                (t.starts_with('[') && t.ends_with(']')) || t.contains('='),
                "{}: {line}",
                f.display()
            );
            continued = t.ends_with('\\');
        }
    }
    let service = std::fs::read_to_string(&files[0]).unwrap();
    assert!(service.contains("flock --nonblock"));
    assert!(service.contains("Type=oneshot"));
    match std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .current_dir(dir.path())
        .output()
    {
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            // Unknown keys are only warned about: any message is a defect.
            assert!(out.status.success() && err.trim().is_empty(), "{err}");
        }
        Err(e) => eprintln!("systemd-analyze not run ({e}): the files were only parsed"),
    }
    let cron =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/cron/regfsck"))
            .unwrap();
    let jobs: Vec<&str> = cron
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        // Not an assignment (SHELL=, PATH=).
        .filter(|l| !l.split_whitespace().next().is_some_and(|w| w.contains('=')))
        .collect();
    assert_eq!(jobs.len(), 1, "{cron}");
    let fields: Vec<&str> = jobs[0].split_whitespace().collect();
    assert_eq!(&fields[..6], ["30", "3", "*", "*", "*", "root"]);
    assert_eq!(fields[6], "flock");
    assert!(jobs[0].contains("regfsck prune --policy"));
}

/// `script` gives the run a terminal: stderr is one, so progress is drawn.
fn on_a_terminal(args: &[&str]) -> String {
    let line = std::iter::once(env!("CARGO_BIN_EXE_regfsck"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{line} >/dev/null"), "/dev/null"])
        .env("REGFSCK_NOW", NOW)
        .output()
        .expect("script (bsdutils) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn long_phases_show_progress_on_a_terminal_only() {
    let s = Sample::registry();
    let root = s.root().to_str().unwrap().to_string();
    let gc = on_a_terminal(&["gc", "--dry-run", &root]);
    for phase in ["scanning", "reading manifests", "marking and sweeping"] {
        assert!(gc.contains(phase), "gc shows {phase:?}: {gc:?}");
    }
    let prune = on_a_terminal(&["prune", "--dry-run", "--keep-last", "1", &root]);
    for phase in ["scanning", "planning the prune"] {
        assert!(prune.contains(phase), "prune shows {phase:?}: {prune:?}");
    }
    for cmd in ["du", "ls"] {
        let shown = on_a_terminal(&[cmd, &root]);
        assert!(
            shown.contains("scanning"),
            "{cmd} shows scanning: {shown:?}"
        );
    }
    let verify = on_a_terminal(&["verify", &root]);
    assert!(
        verify.contains("scanning") && verify.contains("hashing"),
        "{verify:?}"
    );
    // Not a terminal, or --quiet: nothing.
    let out = regfsck().args(["gc", "--dry-run", &root]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("scanning"));
    let quiet = on_a_terminal(&["-q", "gc", "--dry-run", &root]);
    assert!(!quiet.contains("scanning"), "{quiet:?}");
}

#[test]
fn an_interrupted_rm_repo_reports_what_it_removed() {
    let s = Sample::registry();
    // Its changes: the job record (its directory and file), then the repository's own
    // directory in the bin and its renames (the first, of `_manifests`, takes every tag and
    // manifest at once): interrupted after the third, so before any blob.
    let out = regfsck()
        .args(["--root"])
        .arg(s.root())
        .args(["rm-repo", "--json", "busybox-oci"])
        .env("REGFSCK_TEST_INTERRUPT_AFTER", "3")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(32), "{v}");
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["applied"]["repositories"], 1, "{v}");
    assert_eq!(v["applied"]["blobs"], 0, "{v}");
    assert!(
        !s.root()
            .join("docker/registry/v2/repositories/busybox-oci/_manifests")
            .exists()
    );
    // The same command again finishes it: the blobs go, nothing is left to do.
    let again = regfsck()
        .args(["--root"])
        .arg(s.root())
        .args(["rm-repo", "--json", "busybox-oci"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
}
