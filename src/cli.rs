//! Command-line definitions (clap derive). No behaviour lives here; `app` turns these into
//! library options.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_STATUS_HELP;

/// Check, list and clean the filesystem storage of a Docker/OCI Distribution registry.
///
/// regfsck works offline on the registry's storage root (the directory holding
/// docker/registry/v2), with the registry stopped or read-only.
#[derive(Debug, Parser)]
#[command(name = "regfsck", version, after_long_help = EXIT_STATUS_HELP, disable_help_subcommand = true)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Storage root: the directory holding docker/registry/v2 (or the v2 directory itself), or
    /// s3://BUCKET/PREFIX (the registry's rootdirectory in that bucket). Also read from
    /// REGFSCK_ROOT.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Read the root from the registry's config.yml (storage.filesystem.rootdirectory, or the
    /// storage.s3 block, with the registry's REGISTRY_STORAGE_* environment overrides).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout instead of the human report.
    #[arg(long, global = true)]
    pub json: bool,
    /// Worker threads (default: one per CPU, at least 16; and 128 for the scan and the manifest
    /// reads when the local disk's cache is cold).
    #[arg(short = 'j', long, global = true, value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// No progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// List info findings too (orphan blobs, untagged manifests, uploads in progress).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The S3 endpoint for an s3:// root (a server other than AWS: MinIO, Ceph RGW,
    /// SeaweedFS); also read from AWS_ENDPOINT_URL. Path-style requests are used with it.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The S3 region (also AWS_REGION; default us-east-1). Credentials come from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the registry config.
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Requests in flight at once against an object store.
    #[arg(long, global = true, value_name = "N", default_value = "64")]
    pub io_concurrency: NonZeroUsize,
    /// Write requests a second, at most, against an object store (a DeleteObjects request
    /// removes up to 1000 keys); failed requests are retried with backoff.
    #[arg(long, global = true, value_name = "N", default_value = "100")]
    pub write_rate: std::num::NonZeroU32,
    /// Colour the severities of the human report: auto (only when stdout is a terminal and
    /// NO_COLOR is unset or empty), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

/// When to colour the human report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// When stdout is a terminal and NO_COLOR is unset or empty.
    Auto,
    /// Always (even into a pipe or a file).
    Always,
    /// Never.
    Never,
}

/// `--metrics-file`: the run's summary for Prometheus' node_exporter.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write the run's summary (findings by severity and kind, blobs and bytes swept, duration,
    /// exit status, time of the run) to FILE in the Prometheus text format, for node_exporter's
    /// textfile collector (name it *.prom in its --collector.textfile.directory). Written to a
    /// temporary file beside it, then renamed over it: a scrape never sees half a file.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// `--log`: what a real run deleted.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Append one line per path deleted (the storage path; for an object store, its URL) to
    /// FILE, each line written out as soon as the path is gone, so what an interrupted or
    /// killed run deleted is there too.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every blob, link, tag and manifest reference; report problems, fsck-style.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Verify(VerifyArgs),
    /// List tags as REPO:TAG:DIGEST (every repository's, or the named ones'), untagged manifests
    /// as REPO@DIGEST, or the repositories as the catalog counts them.
    Ls(LsArgs),
    /// Show one image or index: media type, config, layers or children with their platforms,
    /// push time, tags, referrers, total and exclusive size.
    Show(ShowArgs),
    /// Mark and sweep: remove the blobs no manifest needs, as the registry's garbage-collect
    /// would, without its data-loss bugs. Run it with the registry stopped or read-only.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Gc(GcArgs),
    /// Remove repositories safely (never a nested one) and the blobs only they referred to.
    /// The root comes from --root, REGFSCK_ROOT or --config.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    RmRepo(RmRepoArgs),
    /// Retention: keep the newest N tags, recent ones and ones matching a pattern per
    /// repository; remove the other tags, and the manifests only they reached; --gc sweeps.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Prune(PruneArgs),
    /// Remove tags, and only them: a manifest another tag (or a kept index) still needs stays;
    /// one only the removed tags reached is dropped, for gc to free (as prune does).
    RmTag(RmTagArgs),
    /// Remove manifests by digest, with every tag naming them and what only they reach (index
    /// children, untagged referrers), for gc to free; refused (exit 16) while an index or a
    /// referrer that stays still names one, unless --force.
    #[command(after_long_help = RM_MANIFEST_HELP)]
    RmManifest(RmManifestArgs),
    /// Fix what verify finds without losing intact data: quarantine corrupt blobs, relink,
    /// reshard, rewrite links, repoint broken tags, purge stale uploads; journaled, undoable.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Repair(RepairArgs),
    /// Disk usage per repository: bytes referred to, bytes only it refers to (what rm-repo
    /// frees), shared bytes; and the bytes gc would free.
    Du(DuArgs),
    /// Serve the layout read-only over the registry's pull API (for skopeo, docker, containerd),
    /// with a web UI at / and Prometheus metrics at /metrics.
    Serve(ServeArgs),
    /// Write the man pages and shell completions (for packagers and the repository).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

impl Command {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Verify(_) => "verify",
            Command::Ls(_) => "ls",
            Command::Show(_) => "show",
            Command::Gc(_) => "gc",
            Command::RmRepo(_) => "rm-repo",
            Command::Prune(_) => "prune",
            Command::RmTag(_) => "rm-tag",
            Command::RmManifest(_) => "rm-manifest",
            Command::Repair(_) => "repair",
            Command::Du(_) => "du",
            Command::Serve(_) => "serve",
            Command::Generate(_) => "generate",
        }
    }
}

/// `regfsck verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Storage root (instead of --root).
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Check structure only: do not hash blob contents.
    #[arg(long)]
    pub no_content: bool,
    /// Hash only subset N of M (e.g. 3/30): the blobs whose digest falls in it, the same ones
    /// every time, so N = 1..M on successive runs (a nightly job, say) hashes every blob once
    /// over M runs; the structure is checked whole every time.
    #[arg(long, value_name = "N/M", conflicts_with = "no_content")]
    pub read_data_subset: Option<crate::action::verify::Subset>,
    /// The run's summary for Prometheus.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// `regfsck ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Storage root (instead of --root). When --root or --config names the root, every
    /// argument is a repository; so is the first when REGFSCK_ROOT does and it is a
    /// repository name that is no existing path.
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Only these repositories' tags (each exactly: team/app leaves out team/app/api).
    #[arg(value_name = "REPO")]
    pub repos: Vec<String>,
    /// List manifests no tag reaches (neither tagged nor a child of a tagged index).
    #[arg(long)]
    pub untagged: bool,
    /// List the repositories, as the registry's /v2/_catalog does (directories with _layers,
    /// emptied ones included), one a line.
    #[arg(long, conflicts_with_all = ["repos", "untagged", "sort"])]
    pub repositories: bool,
    /// Order of the tags within each repository (repositories stay in name order): name
    /// bytewise; version ascending (latest and other non-versions first); pushed oldest first,
    /// so the newest push is the last line.
    #[arg(long, value_enum, default_value_t = crate::prune::Order::Name)]
    pub sort: crate::prune::Order,
}

/// `regfsck show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Storage root (instead of --root); with one argument, that is what to show.
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// What to show: REPO:TAG or REPO@DIGEST (team/app:v1, busybox@sha256:...).
    #[arg(value_name = "REPO:TAG|REPO@DIGEST")]
    pub reference: Option<String>,
}

/// `regfsck generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory to write man/ and completions/ into (required: nothing is written anywhere
    /// else, the current directory included).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `regfsck gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Storage root (instead of --root).
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Print the plan; delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Also drop manifests no tag reaches (their revision links and tag history). The children
    /// of a kept index and referrers of a kept manifest are always kept.
    #[arg(short = 'm', long)]
    pub delete_untagged: bool,
    /// Keep unreferenced blobs and untagged manifests touched more recently than this, so a
    /// push in progress does not lose them (e.g. 0, 30m, 1h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub min_age: humantime::Duration,
    /// Sweep even when the graph is broken (a manifest missing or unparseable, a link that
    /// cannot be read, a tag pointing at nothing). Keeps what the broken parts could refer to
    /// where that can be known; the rest may be lost. Also sweeps while the registry of
    /// --config answers at its http.addr.
    #[arg(long)]
    pub force: bool,
    /// On object storage, abort the unfinished uploads (in-progress multipart uploads the
    /// registry never aborts) started longer ago than this (the registry's purge age).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub upload_age: humantime::Duration,
    /// The run's summary for Prometheus.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// The log of what was deleted.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `regfsck rm-repo`.
#[derive(Debug, Args)]
pub struct RmRepoArgs {
    /// Repositories to remove (e.g. my-alpine, team/app).
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Print what would be removed; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Remove the repositories only; leave their blobs for gc.
    #[arg(long)]
    pub keep_blobs: bool,
    /// Remove even while the registry of --config answers at its http.addr.
    #[arg(long)]
    pub force: bool,
    /// The run's summary for Prometheus.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// The log of what was deleted.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `regfsck prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Storage root (instead of --root).
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Repositories to prune (glob: `*` within one path component, `**` across them);
    /// repeatable; default: every repository.
    #[arg(long = "repo", value_name = "GLOB")]
    pub repos: Vec<String>,
    /// Keep the N newest tags of each repository (in --order; every tag counts, latest too).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep tags pushed within this long (e.g. 7d, 12h): their current/link is younger.
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<humantime::Duration>,
    /// Keep tags matching this regular expression (unanchored: write ^latest$); repeatable.
    #[arg(long, value_name = "REGEX")]
    pub keep_tag: Vec<String>,
    /// What "newest" means for --keep-last.
    #[arg(long, value_enum, default_value_t = crate::prune::Order::Pushed)]
    pub order: crate::prune::Order,
    /// Read the policies from a file (TOML or YAML, by extension) instead of the options
    /// above: a list `policies`, each with repositories, keep-last, keep-within, keep-tag and
    /// order; the first whose globs match a repository applies.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["repos", "keep_last", "keep_within", "keep_tag", "order"])]
    pub policy: Option<PathBuf>,
    /// Print the plan (what is kept and why, what is removed); change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// --gc and its grace period.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Prune (and sweep) even when a selected repository's graph is broken, or while the
    /// registry of --config answers at its http.addr.
    #[arg(long)]
    pub force: bool,
    /// The run's summary for Prometheus.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// The log of what was deleted.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The sweep after a prune, an rm-tag or an rm-manifest.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Then sweep the blobs nobody needs any more (gc, in the same run).
    #[arg(long)]
    pub gc: bool,
    /// Grace period of the sweep (as gc's --min-age).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub min_age: humantime::Duration,
}

/// `regfsck rm-tag`.
#[derive(Debug, Args)]
pub struct RmTagArgs {
    /// The tags to remove, as REPOSITORY:TAG (the repository may be nested: team/app:v1).
    #[arg(value_name = "REPO:TAG", required = true)]
    pub tags: Vec<String>,
    /// Print the plan (what is removed, what is kept and why); change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// --gc and its grace period.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Remove (and sweep) even when the repository's graph is broken, or while the registry
    /// of --config answers at its http.addr.
    #[arg(long)]
    pub force: bool,
    /// The run's summary for Prometheus.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// The log of what was deleted.
    #[command(flatten)]
    pub log: LogArgs,
}

/// What `rm-manifest --help` adds.
const RM_MANIFEST_HELP: &str = "\
rm-manifest refuses (exit 16, nothing changed) when a manifest that stays names one it would
remove: an index of the repository lists it (a platform of a multi-arch image), or a referrer
(a signature, an SBOM) that stays, because it is tagged, has it as its subject. Name those
too, or pass --force: the manifest goes, they stay, and the report says what is left
dangling (verify then reports it). Untagged referrers of a removed manifest go with it.

Exit status (as fsck(8); bits may be combined):
  0   removed (or, with --dry-run, would remove)
  4   refused: the repository's graph is broken (errors above); --force removes anyway
  8   operational error (a registry answering at the --config http.addr, an I/O error)
  16  usage error: no such manifest, a malformed REPO@DIGEST, or refused as above
  32  interrupted";

/// `regfsck rm-manifest`.
#[derive(Debug, Args)]
pub struct RmManifestArgs {
    /// The manifests to remove, as REPOSITORY@DIGEST (team/app@sha256:...).
    #[arg(value_name = "REPO@DIGEST", required = true)]
    pub manifests: Vec<String>,
    /// Print the plan (the tags and manifests removed, what stays and why); change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// --gc and its grace period.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Remove even when an index or a referrer that stays names the manifest (it is left
    /// dangling), when the repository's graph is broken, or while the registry of --config
    /// answers at its http.addr.
    #[arg(long)]
    pub force: bool,
    /// The run's summary for Prometheus.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// The log of what was deleted.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `regfsck repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Storage root (instead of --root).
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Print the plan; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Quarantine unfinished uploads started longer ago than this (the registry's purge age).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub upload_age: humantime::Duration,
    /// Undo an earlier repair from its quarantine directory (as the repair printed it: an
    /// absolute path names the root too; on object storage the run, with the s3:// ROOT):
    /// restores every file it moved or wrote. With --dry-run, shows what it would restore.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["upload_age"])]
    pub undo: Option<String>,
    /// Repair (or undo) even while the registry of --config answers at its http.addr.
    #[arg(long)]
    pub force: bool,
}

/// Sort order for `du`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DuSort {
    /// Largest first.
    Size,
    /// By repository name.
    Name,
}

/// `regfsck du`.
#[derive(Debug, Args)]
pub struct DuArgs {
    /// Storage root (instead of --root).
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Order of the repositories.
    #[arg(long, value_enum, default_value_t = DuSort::Size)]
    pub sort: DuSort,
    /// Also the size of each tag (its manifest and everything it refers to).
    #[arg(long)]
    pub tags: bool,
}

/// What `serve --help` adds: the pages, `/metrics`, and the registry's config.
const SERVE_CONFIG_HELP: &str = "\
Outside /v2/, read-only HTML pages for a browser: / (repositories and their sizes),
/repo/NAME (tags), /repo/NAME@DIGEST (one manifest); and /metrics (requests by route and
status, response bytes, in the Prometheus text format). Both need the same credentials as the
API when authentication is on.

With --config, serve applies the registry's own settings, as the registry would:
  http.addr                    address (:5000 is every interface)
  http.tls.certificate, key    HTTPS
  http.tls.clientcas           client certificates required, checked against these CAs
  http.tls.minimumtls          tls1.2 (default) or tls1.3
  http.tls.ciphersuites        TLS 1.2 suites offered (TLS 1.3 ones always are)
  auth.htpasswd.path, realm    basic authentication
  http.headers                 added to every response
and the registry's environment overrides of them (REGISTRY_HTTP_ADDR,
REGISTRY_HTTP_TLS_CERTIFICATE, REGISTRY_HTTP_TLS_KEY, REGISTRY_HTTP_TLS_CLIENTCAS_0...,
REGISTRY_HTTP_TLS_MINIMUMTLS, REGISTRY_AUTH_HTPASSWD_PATH, REGISTRY_AUTH_HTPASSWD_REALM, ...).
Options given here override the config key by key; nothing here turns off its TLS or
authentication. serve refuses to start (exit 8) rather than serve more openly than the
registry: http.net other than tcp, http.tls.letsencrypt, auth other than htpasswd (token,
silly, ...), an htpasswd file it cannot read. One line on stderr says what was taken.

Connections: at most --max-connections at once; further ones wait in the listen backlog
until one closes. A connection is closed when a request head (on HTTPS, with the handshake)
takes longer than --header-timeout, when it is idle between requests for --idle-timeout, or
when its client reads nothing of a response for --idle-timeout.";

/// A duration that is not zero.
fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than 0".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// `regfsck serve`.
#[derive(Debug, Args)]
#[command(after_long_help = SERVE_CONFIG_HELP)]
pub struct ServeArgs {
    /// Storage root (instead of --root).
    #[arg(id = "root_path", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Address to listen on: HOST:PORT, [IPV6]:PORT, or :PORT for every interface
    /// [default: the config's http.addr, else 127.0.0.1:5000].
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::config::ListenAddr::parse)]
    pub addr: Option<crate::config::ListenAddr>,
    /// Require basic authentication against an htpasswd file (bcrypt entries, as made by
    /// `htpasswd -B`), as the registry's htpasswd auth [default: the config's
    /// auth.htpasswd.path].
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Realm of the basic-auth challenge [default: the config's auth.htpasswd.realm, else
    /// regfsck].
    #[arg(long, value_name = "REALM")]
    pub realm: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key) [default: the config's
    /// http.tls.certificate].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Close a connection whose request head (request line and headers; on a new HTTPS
    /// connection, the TLS handshake too) has not fully arrived this long after it started.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    pub header_timeout: std::time::Duration,
    /// Close a connection idle this long between requests, or whose client has read nothing
    /// of a response for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    pub idle_timeout: std::time::Duration,
    /// Allow a web page from ORIGIN (as `https://ui.example.com`, or `*` for any, then
    /// without credentials) to call the API and read the answers: CORS headers on every
    /// response, and OPTIONS preflight requests answered without authentication (for a UI
    /// such as Joxit docker-registry-ui in front of this server). May be repeated.
    #[arg(long, value_name = "ORIGIN", value_parser = crate::serve::parse_origin)]
    pub cors_origin: Vec<String>,
    /// Serve at most N connections at once; more wait in the listen backlog until one closes.
    #[arg(long, value_name = "N", default_value = "256", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}
