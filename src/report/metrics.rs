//! A run's summary in the Prometheus text exposition format, for node_exporter's textfile
//! collector (`--metrics-file`).
//!
//! Every sample carries the labels `command` and `root` (the storage root; empty, so absent
//! to Prometheus, when the run failed before it was opened). The file is written to a
//! temporary name beside its place (a dot file not ending in `.prom`, which the collector
//! skips), then renamed over it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::exit::ExitStatus;
use crate::findings::{Finding, Kind, Severity};

/// What a command counted, for the metrics; `None` where it does not apply.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// The storage root, as the reports name it.
    pub root: String,
    /// Whether nothing was changed on purpose (a command that can change something).
    pub dry_run: Option<bool>,
    /// Findings, by severity and kind.
    pub findings: BTreeMap<(Severity, Kind), u64>,
    /// Blobs deleted.
    pub blobs_swept: Option<u64>,
    /// Bytes freed.
    pub bytes_swept: Option<u64>,
    /// Blobs nothing needs (gc's plan; verify's orphans), deleted or not.
    pub blobs_unreferenced: Option<u64>,
    /// Their bytes.
    pub bytes_unreferenced: Option<u64>,
    /// Manifest revisions removed.
    pub manifests_removed: Option<u64>,
    /// Tags removed.
    pub tags_removed: Option<u64>,
    /// Repositories removed.
    pub repositories_removed: Option<u64>,
}

impl Counts {
    /// Counts for `root`, with `findings` counted by severity and kind.
    pub fn new<'a>(root: String, findings: impl IntoIterator<Item = &'a Finding>) -> Self {
        let mut c = Counts {
            root,
            ..Counts::default()
        };
        c.add_findings(findings);
        c
    }

    /// Adds findings to the counts.
    pub fn add_findings<'a>(&mut self, findings: impl IntoIterator<Item = &'a Finding>) {
        for f in findings {
            *self.findings.entry((f.severity, f.kind)).or_default() += 1;
        }
    }
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The command (`gc`, `prune`, ...).
    pub command: &'a str,
    /// When it started.
    pub started: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Its exit status.
    pub status: ExitStatus,
    /// What it counted; `None` when it failed before counting anything.
    pub counts: Option<&'a Counts>,
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A metric family: name, help, and samples (extra labels, value).
type Family = (
    &'static str,
    &'static str,
    Vec<(Vec<(&'static str, String)>, String)>,
);

/// The text of a run's metrics.
pub fn render(run: &Run<'_>) -> String {
    let root = run.counts.map_or("", |c| c.root.as_str());
    let base = format!(
        "command=\"{}\",root=\"{}\"",
        escape(run.command),
        escape(root)
    );
    let one = |v: String| vec![(Vec::new(), v)];
    let started = run
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut families: Vec<Family> = vec![
        (
            "regfsck_last_run_timestamp_seconds",
            "When the last run started, in seconds since the epoch.",
            one(started.to_string()),
        ),
        (
            "regfsck_last_run_duration_seconds",
            "How long the last run took.",
            one(format!("{:.3}", run.duration.as_secs_f64())),
        ),
        (
            "regfsck_last_run_exit_status",
            "Exit status of the last run (fsck(8) bits: 0 clean, 1 corrected, 4 errors left, 8 operational error, 16 usage, 32 interrupted).",
            one(run.status.0.to_string()),
        ),
    ];
    if let Some(c) = run.counts {
        if let Some(d) = c.dry_run {
            families.push((
                "regfsck_last_run_dry_run",
                "1 when the last run changed nothing on purpose (--dry-run).",
                one(u8::from(d).to_string()),
            ));
        }
        let mut by_severity: BTreeMap<Severity, u64> =
            [Severity::Error, Severity::Warning, Severity::Info]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        for ((s, _), n) in &c.findings {
            *by_severity.entry(*s).or_default() += n;
        }
        families.push((
            "regfsck_findings",
            "Findings of the last run, by severity.",
            by_severity
                .iter()
                .map(|(s, n)| (vec![("severity", s.to_string())], n.to_string()))
                .collect(),
        ));
        families.push((
            "regfsck_findings_by_kind",
            "Findings of the last run, by severity and kind (the kinds found only).",
            c.findings
                .iter()
                .map(|((s, k), n)| {
                    (
                        vec![("severity", s.to_string()), ("kind", k.name().to_string())],
                        n.to_string(),
                    )
                })
                .collect(),
        ));
        for (name, help, v) in [
            (
                "regfsck_blobs_swept",
                "Blobs the last run deleted.",
                c.blobs_swept,
            ),
            (
                "regfsck_bytes_swept",
                "Bytes the last run freed.",
                c.bytes_swept,
            ),
            (
                "regfsck_blobs_unreferenced",
                "Blobs no manifest needs, as the last run planned or found them.",
                c.blobs_unreferenced,
            ),
            (
                "regfsck_bytes_unreferenced",
                "Bytes of the blobs no manifest needs.",
                c.bytes_unreferenced,
            ),
            (
                "regfsck_manifests_removed",
                "Manifest revisions the last run removed.",
                c.manifests_removed,
            ),
            (
                "regfsck_tags_removed",
                "Tags the last run removed.",
                c.tags_removed,
            ),
            (
                "regfsck_repositories_removed",
                "Repositories the last run removed.",
                c.repositories_removed,
            ),
        ] {
            if let Some(v) = v {
                families.push((name, help, one(v.to_string())));
            }
        }
    }
    let mut out = String::new();
    for (name, help, samples) in families.into_iter().filter(|f| !f.2.is_empty()) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let mut all = base.clone();
            for (k, v) in labels {
                let _ = write!(all, ",{k}=\"{}\"", escape(&v));
            }
            let _ = writeln!(out, "{name}{{{all}}} {value}");
        }
    }
    out
}

/// Writes `text` to `path` atomically: into a temporary file in the same directory (a dot
/// file ending in `.tmp`, which the textfile collector ignores), made readable by all (the
/// collector may run as another user), then renamed over `path`.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be written.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Not registry data: the metrics file lives wherever the user says.
    let mut tmp = tempfile::Builder::new()
        .prefix(".regfsck-metrics-")
        .suffix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("x\ny"), r"x\ny");
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let mut c = Counts::new("/srv/\"reg\"".into(), &[]);
        c.findings.insert((Severity::Error, Kind::BlobCorrupt), 2);
        c.blobs_swept = Some(3);
        let text = render(&Run {
            command: "gc",
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(1500),
            status: ExitStatus::UNCORRECTED,
            counts: Some(&c),
        });
        let mut seen = std::collections::BTreeSet::new();
        let mut typed = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(seen.insert(name.to_string()), "{name} twice");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed = rest.split(' ').next().map(str::to_string);
            } else {
                let name = line.split('{').next().unwrap();
                assert_eq!(Some(name), typed.as_deref(), "{line}");
            }
        }
        assert!(text.contains(
            "regfsck_findings_by_kind{command=\"gc\",root=\"/srv/\\\"reg\\\"\",severity=\"error\",kind=\"blob_corrupt\"} 2\n"
        ));
        assert!(text.contains("regfsck_last_run_timestamp_seconds{command=\"gc\",root=\"/srv/\\\"reg\\\"\"} 1700000000\n"));
        assert!(text.contains(
            "regfsck_last_run_exit_status{command=\"gc\",root=\"/srv/\\\"reg\\\"\"} 4\n"
        ));
        assert!(text.contains("severity=\"warning\"} 0\n"));
        assert!(!text.contains("regfsck_tags_removed"));
    }
}
