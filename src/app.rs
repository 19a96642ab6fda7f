//! Dispatch: command-line arguments → library options → action → report → exit status.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::{Error, Result};
use crate::exit::ExitStatus;
use crate::layout::Root;
use crate::progress::Progress;
use crate::{
    config, du, fsops, gc, generate, graph, jobs, ls, prune, repair, report, rmrepo, scan, serve,
    show, verify,
};

/// What the environment contributes (read once by `main`, passed in so tests control it).
#[derive(Debug, Clone)]
pub struct Env {
    /// `REGFSCK_ROOT`.
    pub regfsck_root: Option<OsString>,
    /// `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`.
    pub registry_rootdirectory: Option<String>,
    /// `REGISTRY_PROXY_REMOTEURL`.
    pub registry_proxy: Option<String>,
    /// The `AWS_*` variables an object store is reached with.
    pub aws: AwsEnv,
    /// Every `REGISTRY_*` variable (name, value), sorted by name: the registry's config
    /// overrides, which `serve --config` applies to `http` and `auth` as the registry does.
    pub registry_env: Vec<(String, String)>,
    /// The time ages are measured against.
    pub now: SystemTime,
    /// Asks the user a yes/no question (on the terminal); `None` when nobody can answer.
    pub confirm: Option<fn(&str) -> bool>,
    /// `REGFSCK_TEST_CRASH_AFTER`: fault injection for the crash-safety tests (abort before
    /// the n+1-th change to the tree). Read in debug builds only: a release build ignores it.
    pub crash_after: Option<u64>,
    /// `REGFSCK_TEST_INTERRUPT_AFTER`: fault injection for the tests of interrupted runs (the
    /// interrupt flag raised after the n-th change to the tree). Debug builds only.
    pub interrupt_after: Option<u64>,
    /// `NO_COLOR` is set and not empty (<https://no-color.org>).
    pub no_color: bool,
    /// Whether stdout is a terminal (`--color auto` colours only then).
    pub stdout_terminal: bool,
}

impl Env {
    /// Reads the environment. `REGFSCK_NOW` (RFC 3339) fixes the clock for reproducible reports.
    pub fn from_process() -> Self {
        let now = std::env::var("REGFSCK_NOW")
            .ok()
            .and_then(|s| humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok())
            .unwrap_or_else(SystemTime::now);
        Env {
            regfsck_root: std::env::var_os("REGFSCK_ROOT").filter(|s| !s.is_empty()),
            registry_rootdirectory: std::env::var(config::ROOT_ENV_OVERRIDE).ok(),
            registry_proxy: std::env::var("REGISTRY_PROXY_REMOTEURL").ok(),
            aws: AwsEnv::from_process(),
            registry_env: {
                let mut v: Vec<(String, String)> = std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                    .filter(|(k, _)| k.starts_with(config::ENV_PREFIX))
                    .collect();
                v.sort();
                v
            },
            now,
            confirm: None,
            // The fault-injection hook exists in debug builds (the tests) only.
            crash_after: test_hook("REGFSCK_TEST_CRASH_AFTER"),
            interrupt_after: test_hook("REGFSCK_TEST_INTERRUPT_AFTER"),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            stdout_terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        }
    }
}

/// A fault-injection count from the environment variable `name`: read in debug builds (the
/// tests) only, a release build ignores it.
fn test_hook(name: &str) -> Option<u64> {
    if cfg!(debug_assertions) {
        std::env::var(name).ok().and_then(|s| s.parse().ok())
    } else {
        None
    }
}

/// The `AWS_*` variables of the process.
#[derive(Debug, Clone, Default)]
pub struct AwsEnv {
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_key: Option<String>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
}

impl AwsEnv {
    fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        AwsEnv {
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            access_key: var("AWS_ACCESS_KEY_ID"),
            secret_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The exit status.
    pub status: ExitStatus,
    /// Diagnostics for stderr.
    pub notes: Vec<String>,
}

/// Picks the storage root. The explicit ways (positional ROOT, `--root`, `--config`) beat
/// `REGFSCK_ROOT`, which is used only when none is given; two explicit ways naming different
/// directories are a usage error naming both. A positional ROOT that is a file is read as the
/// registry's config (`regfsck gc config.yml`, the registry's own habit).
///
/// # Errors
/// [`Error::ConflictingRoots`], [`Error::NoRoot`], config errors, and [`Root::open`]'s errors.
pub fn resolve_root(positional: Option<&Path>, g: &GlobalArgs, env: &Env) -> Result<Root> {
    let (given, cache) = given_places(positional, g, env)?;
    let place = pick_place(&given, env)?;
    let mut root = open_place(place, g, env)?;
    root.set_cache(cache);
    Ok(root)
}

/// One way of naming the storage.
#[derive(Debug, Clone)]
enum Place {
    Local(PathBuf),
    S3(crate::storage::object::S3Spec),
}

impl Place {
    /// The place, for messages.
    fn describe(&self) -> String {
        match self {
            Place::Local(p) => p.display().to_string(),
            Place::S3(s) => s.url(),
        }
    }

    /// Whether both name the same storage.
    fn same(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Local(a), Place::Local(b)) => crate::storage::local::same_dir(a, b),
            (Place::S3(a), Place::S3(b)) => a.bucket == b.bucket && a.prefix == b.prefix,
            _ => false,
        }
    }

    /// The place `p` names as an `s3://` URL, if it is one.
    fn named(p: &Path) -> Option<Place> {
        let text = p.to_str()?;
        crate::storage::object::S3Spec::from_url(text).map(Place::S3)
    }

    /// The storage the registry config `cfg` names (with the environment's overrides).
    fn from_config(cfg: &Path, env: &Env) -> Result<Place> {
        let mut reg_env = env.registry_env.clone();
        if let Some(r) = &env.registry_rootdirectory {
            reg_env.push((config::ROOT_ENV_OVERRIDE.into(), r.clone()));
        }
        Ok(match config::storage_spec(cfg, &reg_env)? {
            config::StorageSpec::Filesystem(p) => Place::Local(p),
            config::StorageSpec::S3(s) => Place::S3(s),
        })
    }
}

/// The places the explicit ways (positional ROOT, `--root`, `--config`) name, each with how
/// it was given, and whether a config given names a pull-through cache.
fn given_places(
    positional: Option<&Path>,
    g: &GlobalArgs,
    env: &Env,
) -> Result<(Vec<(Place, String)>, bool)> {
    let mut given: Vec<(Place, String)> = Vec::new();
    let mut cache = false;
    if let Some(p) = positional {
        if let Some(place) = Place::named(p) {
            given.push((place, "ROOT".into()));
        } else if crate::storage::local::is_file(p) {
            cache |= config::is_proxy(p, env.registry_proxy.as_deref())?;
            given.push((
                Place::from_config(p, env)?,
                format!("ROOT {} (a registry config)", p.display()),
            ));
        } else {
            given.push((Place::Local(p.into()), "ROOT".into()));
        }
    }
    if let Some(r) = &g.root {
        given.push((
            Place::named(r).unwrap_or_else(|| Place::Local(r.clone())),
            "--root".into(),
        ));
    }
    if let Some(cfg) = &g.config {
        cache |= config::is_proxy(cfg, env.registry_proxy.as_deref())?;
        given.push((
            Place::from_config(cfg, env)?,
            format!("--config {}", cfg.display()),
        ));
    }
    Ok((given, cache))
}

/// The one place the `given` ways agree on (the most complete S3 spec among them), else
/// `REGFSCK_ROOT`.
///
/// # Errors
/// [`Error::ConflictingRoots`], [`Error::NoRoot`].
fn pick_place(given: &[(Place, String)], env: &Env) -> Result<Place> {
    Ok(match given.split_first() {
        Some(((first, how), rest)) => {
            if let Some((other, how2)) = rest.iter().find(|(p, _)| !first.same(p)) {
                return Err(Error::ConflictingRoots {
                    first: format!("{} (from {how})", first.describe()),
                    second: format!("{} (from {how2})", other.describe()),
                });
            }
            // A config's bucket settings complete a bare s3:// URL naming the same place.
            rest.iter()
                .chain(std::iter::once(&(first.clone(), how.clone())))
                .map(|(p, _)| p.clone())
                .max_by_key(|p| match p {
                    Place::S3(s) => {
                        usize::from(s.endpoint.is_some()) + usize::from(s.access_key.is_some())
                    }
                    Place::Local(_) => 0,
                })
                .unwrap_or_else(|| first.clone())
        }
        None => match &env.regfsck_root {
            Some(r) => {
                let p = PathBuf::from(r);
                Place::named(&p).unwrap_or(Place::Local(p))
            }
            None => return Err(Error::NoRoot),
        },
    })
}

/// Opens the storage at `place`: a local directory, or a bucket with its settings completed
/// from the flags and the environment and checked to hold a registry.
fn open_place(place: Place, g: &GlobalArgs, env: &Env) -> Result<Root> {
    Ok(match place {
        Place::Local(p) => Root::open(&p)?,
        Place::S3(mut spec) => {
            // Flags beat the config, which beats the environment (as the registry's own S3
            // client reads AWS_* only for what its config leaves out).
            spec.endpoint = g
                .endpoint
                .clone()
                .or(spec.endpoint)
                .or_else(|| env.aws.endpoint.clone());
            spec.region = g
                .region
                .clone()
                .or(spec.region)
                .or_else(|| env.aws.region.clone());
            spec.access_key = spec.access_key.or_else(|| env.aws.access_key.clone());
            spec.secret_key = spec.secret_key.or_else(|| env.aws.secret_key.clone());
            spec.session_token = spec.session_token.or_else(|| env.aws.session_token.clone());
            if spec.endpoint.is_some() {
                spec.virtual_hosted = false;
            }
            spec.concurrency = g.io_concurrency.get();
            spec.write_rate = g.write_rate.get();
            let url = spec.url();
            let o = crate::storage::object::Object::open(spec)
                .map_err(|e| Error::io(url.clone(), e))?;
            if crate::storage::Storage::stat(&o, crate::layout::V2).is_err() {
                return Err(Error::NotARegistry { path: url.into() });
            }
            Root::with_storage(std::sync::Arc::new(o))
        }
    })
}

/// Finishes what interrupted destructive runs left in the trash ([`crate::jobs`]), before a
/// destructive command plans its own work; returns what it did, in words. A dry run calls
/// [`pending_notes`] instead.
///
/// # Errors
/// I/O errors, a record that cannot be read, [`Error::Interrupted`].
pub fn finish_pending(
    root: &Root,
    remover: &dyn fsops::Remover,
    pool: &rayon::ThreadPool,
    env: &Env,
    interrupt: &AtomicBool,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for bin in jobs::bins(root)? {
        Error::check_interrupt(interrupt)?;
        match &bin.job {
            // Killed before it changed anything.
            None => jobs::close(remover, &bin.rel)?,
            Some(jobs::Job::RmRepo(j)) => {
                let done = pool
                    .install(|| rmrepo::finish(root, &bin.rel, j, remover, interrupt, env.now))?;
                let names: Vec<&str> = j.repositories.iter().map(|r| r.as_str()).collect();
                notes.push(format!(
                    "finished an interrupted rm-repo of {}: {} blobs deleted ({} bytes)",
                    names.join(", "),
                    done.blobs,
                    done.bytes
                ));
            }
            Some(jobs::Job::Prune(j)) => {
                let done = pool.install(|| -> Result<prune::PruneApplied> {
                    let inv = scan::scan(root, scan::Depth::Fast)?;
                    let g = graph::build(root, &inv, env.now);
                    let mut done = prune::PruneApplied::default();
                    let recheck = Some((&inv, &g));
                    prune::finish(root, &bin.rel, j, remover, interrupt, recheck, &mut done)?;
                    Ok(done)
                })?;
                notes.push(format!(
                    "finished an interrupted prune: {} tags, {} manifests, {} history entries removed",
                    done.tags, done.manifests, done.links
                ));
            }
        }
    }
    // A run killed after deleting its bin leaves the trash itself, empty.
    if root.exists(jobs::TRASH) {
        remover.remove_empty_dir(jobs::TRASH)?;
    }
    Ok(notes)
}

/// What interrupted destructive runs left in the trash, for a dry run's notes.
///
/// # Errors
/// I/O errors, a record that cannot be read.
pub fn pending_notes(root: &Root) -> Result<Vec<String>> {
    Ok(jobs::bins(root)?
        .into_iter()
        .filter_map(|b| {
            b.job.map(|j| {
                format!(
                    "an interrupted {} is pending ({}); a real run of gc, prune or rm-repo finishes it first",
                    j.command(),
                    b.rel
                )
            })
        })
        .collect())
}

/// `root` with its storage opened again when `changed` (an object store's listing is stale
/// once something was deleted: a job finished, a prune before its gc).
fn fresh_if(root: Root, changed: bool) -> Result<Root> {
    if changed { root.refreshed() } else { Ok(root) }
}

/// The write half of `root`'s storage: its own (an object store's), or a local directory's;
/// recording what it deletes in `log`, if given.
fn remover_for<'a>(
    root: &'a Root,
    env: &Env,
    log: Option<&'a fsops::DeletionLog>,
    interrupt: &'a AtomicBool,
) -> Box<dyn fsops::Remover + 'a> {
    let mut remover = root
        .storage()
        .remover(env.crash_after)
        .unwrap_or_else(|| Box::new(fsops::FsRemover::new(root).crash_after(env.crash_after)));
    if let Some(n) = env.interrupt_after {
        remover = Box::new(fsops::InterruptAfter::new(remover, n, interrupt));
    }
    match log {
        Some(log) => Box::new(fsops::Logged::new(remover, log)),
        None => remover,
    }
}

/// The `--log FILE` of a real run, opened (a dry run deletes nothing, and writes no log).
fn deletion_log(
    path: Option<&Path>,
    dry_run: bool,
    root: &Root,
) -> Result<Option<fsops::DeletionLog>> {
    match path {
        Some(path) if !dry_run => Ok(Some(fsops::DeletionLog::open(path, root, jobs::TRASH)?)),
        _ => Ok(None),
    }
}

/// How long the check for a running registry waits for it to connect, and then to answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Refuses (exit 8) a real run of the destructive `command` while the registry a config
/// describes (`--config`, or a config given as ROOT) answers `GET /v2/` at its `http.addr`
/// (200, or 401 behind authentication), unless the config makes it read-only
/// (`storage.maintenance.readonly.enabled: true`) or `force`: with the registry writing to
/// the same storage, a push in progress can lose what the run removes.
///
/// # Errors
/// [`Error::Refused`], config errors.
fn refuse_if_running(
    positional: Option<&Path>,
    g: &GlobalArgs,
    env: &Env,
    command: &str,
    force: bool,
) -> Result<()> {
    let given =
        positional.filter(|p| Place::named(p).is_none() && crate::storage::local::is_file(p));
    let Some(cfg) = g.config.as_deref().or(given) else {
        return Ok(());
    };
    let live = config::liveness(cfg, &env.registry_env)?;
    let Some(addr) = live.addr.filter(|_| !live.readonly && !force) else {
        return Ok(());
    };
    match config::registry_answers(addr, live.tls, PROBE_TIMEOUT) {
        None => Ok(()),
        Some(status) => Err(Error::Refused(format!(
            "the registry of {} is running on this storage (GET /v2/ at {addr} answered {status}): a real {command} now can break a push in progress; stop it, or make it read-only (storage.maintenance.readonly.enabled: true) and restart it, or pass --force",
            cfg.display()
        ))),
    }
}

/// A read-only command's outcome when the scan could not see everything: exit 8 besides what it
/// printed, with why.
fn incomplete(mut o: Outcome, blind: Option<String>) -> Outcome {
    if let Some(why) = blind {
        o.status |= ExitStatus::OPERATIONAL;
        o.notes
            .push(format!("incomplete: {why}; what is there is not listed"));
    }
    o
}

/// A gc run: plan, refusal or sweep.
struct GcPass {
    plan: gc::GcPlan,
    /// What a real run deleted (all of it, or what it had when interrupted).
    applied: Option<gc::Applied>,
    refused: bool,
    interrupted: bool,
    status: ExitStatus,
    notes: Vec<String>,
}

impl GcPass {
    /// The report of this pass.
    fn doc(&self, dry_run: bool) -> report::GcDoc<'_> {
        report::GcDoc {
            dry_run,
            refused: self.refused,
            plan: &self.plan,
            applied: self.applied.as_ref(),
            interrupted: self.interrupted,
        }
    }
}

/// Scans the layout (by names and links) and builds its graph, showing both phases; the reads
/// on `io` (see [`io_pool`]).
fn scan_and_build(
    root: &Root,
    now: std::time::SystemTime,
    progress: &dyn Progress,
    io: &rayon::ThreadPool,
) -> Result<(scan::Inventory, graph::Graph)> {
    progress.phase("scanning");
    let inv = io.install(|| scan::scan(root, scan::Depth::Fast))?;
    progress.phase("reading manifests");
    let graph = io.install(|| graph::build(root, &inv, now));
    progress.finish();
    Ok((inv, graph))
}

/// Threads for the scan and the manifest reads on a cold cache (see [`io_pool`]).
const COLD_IO_THREADS: usize = 128;

/// The pool for the I/O-bound phases (the scan, the manifest reads) of every command that scans
/// (gc, verify, ls, du, show, prune, rm-repo): `pool`, or, unless `-j` says how many threads,
/// on a cold cache a pool of [`COLD_IO_THREADS`] (made in `deep`).
/// Cold is told without reading the disk: most of a sample of repository directories are not
/// in the kernel's cache of names (`RESOLVE_CACHED`). On a cold cache the time is the disk's
/// and reads in flight decide it (gc --dry-run on 600k blobs, cold: 37 s with 16 threads, 14 s
/// with 128, the registry 146 s; bench/cold_limit.sh); on a warm one 128 threads cost 35% more
/// time and 20 MiB more memory than 16.
fn io_pool<'p>(
    root: &Root,
    pool: &'p rayon::ThreadPool,
    deep: &'p std::sync::OnceLock<Option<rayon::ThreadPool>>,
    jobs_given: bool,
) -> &'p rayon::ThreadPool {
    // (An object store cannot tell: no sample is listed there.)
    if jobs_given
        || pool.current_num_threads() >= COLD_IO_THREADS
        || root.storage().local_root().is_none()
        || !root.storage().cold(&cache_sample(root))
    {
        return pool;
    }
    // Threads that cannot be made: `pool` does the work.
    deep.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(COLD_IO_THREADS)
            .build()
            .ok()
    })
    .as_ref()
    .unwrap_or(pool)
}

/// Up to 16 repository directories (or namespaces' children), spread over the listing.
fn cache_sample(root: &Root) -> Vec<String> {
    let base = format!("{}/repositories", crate::layout::V2);
    let list = |rel: &str| -> Vec<String> {
        root.storage()
            .list(rel, false)
            .map(|v| v.into_iter().map(|e| format!("{rel}/{}", e.name)).collect())
            .unwrap_or_default()
    };
    let mut names = list(&base);
    if names.len() < 16 {
        names = names.iter().flat_map(|n| list(n)).collect();
    }
    let step = names.len().div_ceil(16).max(1);
    names.into_iter().step_by(step).take(16).collect()
}

#[allow(clippy::too_many_arguments)]
fn gc_pass(
    root: &Root,
    opts: &gc::GcOptions,
    dry_run: bool,
    pool: &rayon::ThreadPool,
    env: &Env,
    interrupt: &AtomicBool,
    log: Option<&fsops::DeletionLog>,
    progress: &dyn Progress,
    jobs_given: bool,
) -> Result<GcPass> {
    let deep = std::sync::OnceLock::new();
    let io = io_pool(root, pool, &deep, jobs_given);
    let plan = pool.install(|| -> Result<gc::GcPlan> {
        progress.phase("scanning");
        let inv = io.install(|| scan::scan(root, scan::Depth::Names))?;
        progress.phase("reading manifests");
        let graph = io.install(|| graph::build_for_gc(root, &inv, env.now));
        progress.phase("marking and sweeping");
        Ok(gc::plan(root, &inv, &graph, opts))
    })?;
    progress.finish();
    let refusal = plan.refusal(opts.force);
    let mut pass = GcPass {
        plan,
        applied: None,
        refused: refusal.is_some(),
        interrupted: false,
        status: ExitStatus::CLEAN,
        notes: Vec::new(),
    };
    if let Some(r) = refusal {
        let (status, why) = match r {
            gc::Refusal::Blind(why) => (ExitStatus::OPERATIONAL, why),
            gc::Refusal::Broken(why) => (ExitStatus::UNCORRECTED, why),
        };
        pass.status = status;
        pass.notes.push(why);
    } else if !dry_run {
        let remover = remover_for(root, env, log, interrupt);
        let mut done = gc::Applied::default();
        progress.phase("deleting");
        let result = pool.install(|| {
            gc::apply_counting(
                root,
                &pass.plan,
                opts,
                remover.as_ref(),
                interrupt,
                &mut done,
            )
        });
        progress.finish();
        match result {
            Ok(()) => pass.applied = Some(done),
            Err(Error::Interrupted) => {
                pass.applied = Some(done);
                pass.interrupted = true;
                pass.status = ExitStatus::INTERRUPTED;
                pass.notes.push(
                    "interrupted; what was removed is consistent, run gc again to finish".into(),
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(pass)
}

/// The storage root for the metrics' `root` label: a local root's absolute path, so that the
/// label does not depend on the directory the job ran in.
fn metrics_root(root: &Root) -> String {
    match root.storage().local_root() {
        Some(p) => std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string(),
        None => root.describe(),
    }
}

/// A sweep's numbers for the metrics: what it planned, and what it deleted.
fn sweep_counts(c: &mut report::metrics::Counts, d: &report::GcDoc<'_>) {
    let s = &d.plan.sweep;
    c.blobs_unreferenced = Some(s.blobs.len() as u64);
    c.bytes_unreferenced = Some(s.bytes);
    c.blobs_swept = Some(d.applied.map_or(0, |a| a.blobs));
    c.bytes_swept = Some(d.applied.map_or(0, |a| a.bytes));
    c.manifests_removed = Some(d.applied.map_or(0, |a| a.manifests));
}

/// Threads for the scan and the other I/O-bound phases, unless `-j` says otherwise.
const IO_THREADS: usize = 16;

/// What every command is run with.
struct Cx<'a> {
    g: &'a GlobalArgs,
    env: &'a Env,
    out: &'a mut dyn Write,
    progress: &'a dyn Progress,
    interrupt: &'a AtomicBool,
    pool: &'a rayon::ThreadPool,
    /// The deep pool of a cold cache, made when first needed (see [`io_pool`]).
    deep: std::sync::OnceLock<Option<rayon::ThreadPool>>,
    /// What the command counted, for `--metrics-file`.
    counts: Option<report::metrics::Counts>,
}

/// Runs a parsed command line.
///
/// # Errors
/// Operational errors only; findings are in the output and the status.
pub fn run(
    cli: &Cli,
    env: &Env,
    out: &mut dyn Write,
    progress: &dyn Progress,
    interrupt: &AtomicBool,
) -> Result<Outcome> {
    let g = &cli.global;
    // Most of the work is reading many small files: threads beyond the cores keep the disk
    // busy on a cold cache (gc --dry-run on 600k blobs, 2 cores, cold: 24.0 s with 8 threads,
    // 18.1 s with 16, 17.5 s with 32, 15.3 s with 128; warm: 3.15 s with 2, 2.98 s with 8,
    // 3.34 s with 32, and memory grows with threads). Hashing runs on one thread per core
    // (verify's own pool).
    let threads = g.jobs.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .max(IO_THREADS)
        },
        |n| n.get(),
    );
    let builder = rayon::ThreadPoolBuilder::new().num_threads(threads);
    let pool = builder
        .build()
        .map_err(|e| Error::ThreadPool(e.to_string()))?;
    let mut painted;
    let out: &mut dyn Write =
        if !g.json && report::paint::wanted(g.color, env.stdout_terminal, env.no_color) {
            painted = report::paint::Paint::new(out);
            &mut painted
        } else {
            out
        };
    let started = std::time::Instant::now();
    let mut cx = Cx {
        g,
        env,
        out,
        progress,
        interrupt,
        pool: &pool,
        deep: std::sync::OnceLock::new(),
        counts: None,
    };
    let result = dispatch(&mut cx, &cli.command);
    let Some(file) = metrics_file(&cli.command) else {
        return result;
    };
    let status = match &result {
        Ok(o) if interrupt.load(std::sync::atomic::Ordering::SeqCst) => {
            o.status | ExitStatus::INTERRUPTED
        }
        Ok(o) => o.status,
        Err(e) => e.exit_status(),
    };
    let text = report::metrics::render(&report::metrics::Run {
        command: cli.command.name(),
        started: env.now,
        duration: started.elapsed(),
        status,
        counts: cx.counts.as_ref(),
    });
    let written = report::metrics::write_atomically(file, &text);
    match (result, written) {
        (Ok(mut o), Err(e)) => {
            o.status |= ExitStatus::OPERATIONAL;
            o.notes.push(format!("--metrics-file: {e}"));
            Ok(o)
        }
        (result, _) => result,
    }
}

/// The `--metrics-file` of the command, if it has one.
fn metrics_file(command: &Command) -> Option<&Path> {
    match command {
        Command::Verify(a) => a.metrics.metrics_file.as_deref(),
        Command::Gc(a) => a.metrics.metrics_file.as_deref(),
        Command::Prune(a) => a.metrics.metrics_file.as_deref(),
        Command::RmTag(a) => a.metrics.metrics_file.as_deref(),
        Command::RmManifest(a) => a.metrics.metrics_file.as_deref(),
        Command::RmRepo(a) => a.metrics.metrics_file.as_deref(),
        _ => None,
    }
}

/// Runs the command.
fn dispatch(cx: &mut Cx<'_>, command: &Command) -> Result<Outcome> {
    match command {
        Command::Verify(a) => verify_cmd(cx, a),
        Command::Ls(a) => ls_cmd(cx, a),
        Command::Show(a) => show_cmd(cx, a),
        Command::Gc(a) => gc_cmd(cx, a),
        Command::Prune(a) => prune_cmd(cx, a),
        Command::RmTag(a) => rm_tag_cmd(cx, a),
        Command::RmManifest(a) => rm_manifest_cmd(cx, a),
        Command::Repair(a) => repair_cmd(cx, a),
        Command::RmRepo(a) => rm_repo_cmd(cx, a),
        Command::Du(a) => du_cmd(cx, a),
        Command::Serve(a) => serve_cmd(cx, a),
        Command::Generate(a) => generate_cmd(cx, a),
    }
}

/// `regfsck verify`.
fn verify_cmd(cx: &mut Cx<'_>, a: &crate::cli::VerifyArgs) -> Result<Outcome> {
    let g = cx.g;
    let env = cx.env;
    let progress = cx.progress;
    let interrupt = cx.interrupt;
    let pool = cx.pool;
    let out: &mut dyn Write = &mut *cx.out;
    let root = resolve_root(a.root.as_deref(), g, env)?;
    let opts = verify::VerifyOptions {
        content: !a.no_content,
        now: env.now,
        subset: a.read_data_subset,
        hash_threads: g.jobs.map(|n| n.get()),
    };
    let io = io_pool(&root, cx.pool, &cx.deep, cx.g.jobs.is_some());
    let r = pool.install(|| verify::verify(&root, &opts, Some(io), progress, interrupt))?;
    cx.counts = Some(report::metrics::Counts {
        blobs_unreferenced: Some(r.summary.orphan_blobs),
        bytes_unreferenced: Some(r.summary.orphan_bytes),
        ..report::metrics::Counts::new(metrics_root(&root), &r.findings)
    });
    if g.json {
        report::write_json(out, "verify", &r)
    } else {
        report::verify_human(out, &r, g.verbose)
    }
    .map_err(Error::Output)?;
    let mut status = if r.summary.interrupted {
        ExitStatus::INTERRUPTED
    } else if r.summary.errors > 0 {
        ExitStatus::UNCORRECTED
    } else {
        ExitStatus::CLEAN
    };
    let mut notes = Vec::new();
    if !r.summary.complete {
        // The scan could not complete: an operational error besides what it found.
        status |= ExitStatus::OPERATIONAL;
        notes.push(
            "the scan could not see the whole layout (dir_unreadable or symlink above); what is there is unknown".into(),
        );
    }
    Ok(Outcome { status, notes })
}

/// Splits `ls`'s arguments into the root and the repositories. The first argument is the root
/// unless the root is named otherwise: always when `--root` or `--config` is given; when only
/// `REGFSCK_ROOT` is, if the first argument is a valid repository name and no existing path
/// (so `regfsck ls team/app` lists that repository, `regfsck ls ./data` opens that root).
fn split_root_and_repos<'a>(
    a: &'a crate::cli::LsArgs,
    g: &GlobalArgs,
    env: &Env,
) -> (Option<&'a Path>, Vec<String>) {
    let mut repos = a.repos.clone();
    let Some(first) = a.root.as_deref() else {
        return (None, repos);
    };
    let as_repo = first
        .to_str()
        .filter(|s| crate::layout::RepoName::parse(s).is_ok())
        .filter(|_| {
            g.root.is_some()
                || g.config.is_some()
                || (env.regfsck_root.is_some() && !crate::storage::local::exists(first))
        });
    match as_repo {
        Some(name) => {
            repos.insert(0, name.to_string());
            (None, repos)
        }
        None => (Some(first), repos),
    }
}

/// `regfsck ls`.
fn ls_cmd(cx: &mut Cx<'_>, a: &crate::cli::LsArgs) -> Result<Outcome> {
    let g = cx.g;
    let env = cx.env;
    let pool = cx.pool;
    let out: &mut dyn Write = &mut *cx.out;
    let (positional, names) = split_root_and_repos(a, g, env);
    let root = resolve_root(positional, g, env)?;
    let io = io_pool(&root, cx.pool, &cx.deep, cx.g.jobs.is_some());
    let (listing, catalog, blind) = pool.install(|| -> Result<_> {
        cx.progress.phase("scanning");
        let inv = io.install(|| scan::scan(&root, scan::Depth::Names))?;
        cx.progress.finish();
        if a.repositories {
            return Ok((None, Some(ls::catalog(&inv)), inv.blind_spots()));
        }
        let graph = io.install(|| graph::build(&root, &inv, env.now));
        let opts = ls::LsOptions {
            repositories: ls::select(&graph, &names)?,
            untagged: a.untagged,
            sort: a.sort,
        };
        let mut facts = crate::storage::Facts::default();
        if a.sort == prune::Order::Pushed {
            let rels = graph
                .repos
                .iter()
                .filter(|(r, _)| opts.repositories.is_empty() || opts.repositories.contains(r))
                .flat_map(|(r, rg)| rg.tags.keys().map(|t| crate::layout::tag_current(r, t)))
                .collect();
            facts.stat(root.storage(), rels);
        }
        let pushed = |r: &crate::layout::RepoName, t: &crate::layout::TagName| {
            facts.mtime(&crate::layout::tag_current(r, t))
        };
        let mut listing = ls::list(&graph, &opts, &pushed);
        listing.skipped = inv.skipped.clone();
        Ok((Some(listing), None, inv.blind_spots()))
    })?;
    let mut notes: Vec<String> = Vec::new();
    if let Some(c) = catalog {
        if g.json {
            report::write_json(out, "ls", &c)
        } else {
            report::catalog_human(out, &c)
        }
        .map_err(Error::Output)?;
        notes.extend(c.uncataloged.iter().map(|r| {
            format!("{r} is not in the catalog: it has no _layers (the registry serves its tags all the same)")
        }));
        notes.extend(
            c.skipped
                .iter()
                .map(|r| format!("skipped {r}: its name is not UTF-8 (no registry can serve it)")),
        );
    }
    if let Some(listing) = listing {
        if g.json {
            report::write_json(out, "ls", &listing)
        } else {
            report::ls_human(out, &listing)
        }
        .map_err(Error::Output)?;
        notes.extend(
            listing
                .broken_tags
                .iter()
                .map(|t| format!("tag {t} has no readable current/link (regfsck verify explains)")),
        );
        notes.extend(listing.skipped.iter().map(|r| {
            format!(
                "skipped {r}: its name is not UTF-8 (no registry can serve it; its blobs are kept)"
            )
        }));
    }
    Ok(incomplete(
        Outcome {
            status: ExitStatus::CLEAN,
            notes,
        },
        blind,
    ))
}

/// `regfsck show [ROOT] REPO:TAG|REPO@DIGEST`.
fn show_cmd(cx: &mut Cx<'_>, a: &crate::cli::ShowArgs) -> Result<Outcome> {
    let g = cx.g;
    let env = cx.env;
    let out: &mut dyn Write = &mut *cx.out;
    let (positional, reference) = match (&a.root, &a.reference) {
        (root, Some(r)) => (root.as_deref(), r.clone()),
        (Some(r), None) => (None, r.to_string_lossy().into_owned()),
        (None, None) => {
            return Err(Error::Usage(
                "show needs what to show: REPO:TAG or REPO@DIGEST".into(),
            ));
        }
    };
    let target: show::Target = reference.parse()?;
    let root = resolve_root(positional, g, env)?;
    let io = io_pool(&root, cx.pool, &cx.deep, cx.g.jobs.is_some());
    let (shown, blind) = cx.pool.install(|| -> Result<_> {
        let (inv, graph) = scan_and_build(&root, env.now, cx.progress, io)?;
        Ok((show::show(&root, &inv, &graph, &target)?, inv.blind_spots()))
    })?;
    if g.json {
        report::write_json(out, "show", &shown)
    } else {
        report::show_human(out, &shown)
    }
    .map_err(Error::Output)?;
    let status = if shown.problems.is_empty() {
        ExitStatus::CLEAN
    } else {
        ExitStatus::UNCORRECTED
    };
    let notes = shown
        .problems
        .iter()
        .map(|p| format!("{p} (regfsck verify explains)"))
        .collect();
    Ok(incomplete(Outcome { status, notes }, blind))
}

/// `regfsck gc`.
fn gc_cmd(cx: &mut Cx<'_>, a: &crate::cli::GcArgs) -> Result<Outcome> {
    let g = cx.g;
    let env = cx.env;
    let interrupt = cx.interrupt;
    let pool = cx.pool;
    let out: &mut dyn Write = &mut *cx.out;
    let root = resolve_root(a.root.as_deref(), g, env)?;
    if !a.dry_run {
        refuse_if_running(a.root.as_deref(), g, env, "gc", a.force)?;
    }
    let opts = gc::GcOptions {
        delete_untagged: a.delete_untagged,
        min_age: a.min_age.into(),
        force: a.force,
        now: env.now,
        upload_age: Some(a.upload_age.into()),
    };
    let log = deletion_log(a.log.log.as_deref(), a.dry_run, &root)?;
    let mut notes = if a.dry_run {
        pending_notes(&root)?
    } else {
        let remover = remover_for(&root, env, log.as_ref(), interrupt);
        finish_pending(&root, remover.as_ref(), pool, env, interrupt)?
    };
    let root = fresh_if(root, !notes.is_empty())?;
    let mut pass = gc_pass(
        &root,
        &opts,
        a.dry_run,
        pool,
        env,
        interrupt,
        log.as_ref(),
        cx.progress,
        cx.g.jobs.is_some(),
    )?;
    notes.append(&mut pass.notes);
    pass.notes = notes;
    let doc = pass.doc(a.dry_run);
    let mut counts = report::metrics::Counts::new(metrics_root(&root), &pass.plan.broken);
    counts.dry_run = Some(a.dry_run);
    sweep_counts(&mut counts, &doc);
    cx.counts = Some(counts);
    if g.json {
        report::write_json(out, "gc", &doc)
    } else {
        report::gc_human(out, &doc)
    }
    .map_err(Error::Output)?;
    Ok(Outcome {
        status: pass.status,
        notes: pass.notes,
    })
}

/// `regfsck prune`.
fn prune_cmd(cx: &mut Cx<'_>, a: &crate::cli::PruneArgs) -> Result<Outcome> {
    let (g, env) = (cx.g, cx.env);
    let root = resolve_root(a.root.as_deref(), g, env)?;
    if !a.dry_run {
        refuse_if_running(a.root.as_deref(), cx.g, cx.env, "prune", a.force)?;
    }
    let policies = match &a.policy {
        Some(f) => prune::load_policies(f)?,
        None => vec![prune::Policy::new(prune::PolicySpec {
            repositories: a.repos.clone(),
            keep_last: a.keep_last,
            keep_within: a.keep_within.map(Into::into),
            keep_tag: a.keep_tag.clone(),
            order: a.order,
        })?],
    };
    let run = PruneRun::new("prune", a.dry_run, &a.sweep, a.force, a.log.log.clone());
    prune_with(cx, root, policies, &run)
}

/// How a prune (or an rm-tag, an rm-manifest) is run.
struct PruneRun<'a> {
    command: &'static str,
    dry_run: bool,
    sweep: &'a crate::cli::SweepArgs,
    force: bool,
    /// `--log`.
    log: Option<PathBuf>,
    /// Refuse (exit 16) a plan that leaves a manifest that stays naming a dropped one, unless
    /// forced.
    refuse_dangling: bool,
    /// What finishing interrupted runs did before (in words).
    finished: Vec<String>,
}

impl<'a> PruneRun<'a> {
    fn new(
        command: &'static str,
        dry_run: bool,
        sweep: &'a crate::cli::SweepArgs,
        force: bool,
        log: Option<PathBuf>,
    ) -> Self {
        PruneRun {
            command,
            dry_run,
            sweep,
            force,
            log,
            refuse_dangling: false,
            finished: Vec::new(),
        }
    }
}

/// `regfsck rm-tag REPO:TAG...`: a prune whose policy, per repository, keeps every tag but
/// the named ones (so what it drops and the crash guarantee are prune's).
fn rm_tag_cmd(cx: &mut Cx<'_>, a: &crate::cli::RmTagArgs) -> Result<Outcome> {
    let root = resolve_root(None, cx.g, cx.env)?;
    if !a.dry_run {
        refuse_if_running(None, cx.g, cx.env, "rm-tag", a.force)?;
    }
    let mut wanted: std::collections::BTreeMap<
        crate::layout::RepoName,
        std::collections::BTreeSet<String>,
    > = std::collections::BTreeMap::new();
    for t in &a.tags {
        let (repo, tag) = t
            .rsplit_once(':')
            .ok_or_else(|| Error::Usage(format!("{t}: not REPOSITORY:TAG")))?;
        let repo =
            crate::layout::RepoName::parse(repo).map_err(|e| Error::Usage(format!("{t}: {e}")))?;
        crate::layout::TagName::parse(tag).map_err(|e| Error::Usage(format!("{t}: {e}")))?;
        wanted.entry(repo).or_default().insert(tag.to_string());
    }
    let inv = cx.pool.install(|| scan::scan(&root, scan::Depth::Fast))?;
    let mut policies = Vec::new();
    for (repo, tags) in &wanted {
        let present: Vec<String> = inv
            .repos
            .get(repo)
            .map(|r| r.tags.keys().map(|t| t.to_string()).collect())
            .unwrap_or_default();
        if let Some(t) = tags.iter().find(|t| !present.contains(t)) {
            return Err(Error::Usage(format!("no tag {repo}:{t} in this registry")));
        }
        let keep: Vec<String> = present
            .iter()
            .filter(|t| !tags.contains(*t))
            .map(|t| format!("^{}$", regex::escape(t)))
            .collect();
        policies.push(prune::Policy::new(prune::PolicySpec {
            repositories: vec![globset::escape(repo.as_str())],
            keep_last: keep.is_empty().then_some(0),
            keep_within: None,
            keep_tag: keep,
            order: prune::Order::Name,
        })?);
    }
    drop(inv);
    let run = PruneRun::new("rm-tag", a.dry_run, &a.sweep, a.force, a.log.log.clone());
    prune_with(cx, root, policies, &run)
}

/// `regfsck rm-manifest REPO@DIGEST...`: a prune whose policy, per repository, removes the
/// named manifests and the tags naming them and keeps every other tag (so the plan, the JSON
/// and the crash guarantee are prune's); refused while something that stays names one.
fn rm_manifest_cmd(cx: &mut Cx<'_>, a: &crate::cli::RmManifestArgs) -> Result<Outcome> {
    let root = resolve_root(None, cx.g, cx.env)?;
    if !a.dry_run {
        refuse_if_running(None, cx.g, cx.env, "rm-manifest", a.force)?;
    }
    let mut wanted: std::collections::BTreeMap<
        crate::layout::RepoName,
        std::collections::BTreeSet<crate::Digest>,
    > = std::collections::BTreeMap::new();
    for m in &a.manifests {
        let target: show::Target = m.parse()?;
        let show::Reference::Digest(d) = target.reference else {
            return Err(Error::Usage(format!(
                "{m}: not REPOSITORY@DIGEST (rm-tag removes tags)"
            )));
        };
        let repo = crate::layout::RepoName::parse(&target.repository)
            .map_err(|e| Error::Usage(format!("{m}: {e}")))?;
        wanted.entry(repo).or_default().insert(d);
    }
    let (inv, graph) = cx.pool.install(|| -> Result<_> {
        let inv = scan::scan(&root, scan::Depth::Fast)?;
        let graph = graph::build(&root, &inv, cx.env.now);
        Ok((inv, graph))
    })?;
    // Manifests an interrupted rm-manifest was removing may be named again: the job is
    // finished first (a real run), so what is there is checked after it.
    let pending: std::collections::BTreeSet<(crate::layout::RepoName, crate::Digest)> =
        jobs::bins(&root)?
            .into_iter()
            .filter_map(|b| match b.job {
                Some(jobs::Job::Prune(j)) => Some(j.named),
                _ => None,
            })
            .flatten()
            .map(|m| (m.repository, m.digest))
            .collect();
    let finished = if a.dry_run {
        Vec::new()
    } else {
        let remover = remover_for(&root, cx.env, None, cx.interrupt);
        finish_pending(&root, remover.as_ref(), cx.pool, cx.env, cx.interrupt)?
    };
    let root = fresh_if(root, !finished.is_empty())?;
    let mut policies = Vec::new();
    for (repo, digests) in wanted {
        let rg = graph.repos.get(&repo);
        let present = |d: &crate::Digest| {
            pending.contains(&(repo.clone(), *d))
                || rg.is_some_and(|rg| {
                    rg.revisions.contains(d) || rg.tags.values().any(|t| t.digest() == Some(*d))
                })
        };
        if let Some(d) = digests.iter().find(|d| !present(d)) {
            return Err(Error::Usage(format!(
                "no manifest {repo}@{d} in this registry (neither a revision of the repository nor a tag's target)"
            )));
        }
        policies.push(prune::Policy::remove_manifests(&repo, digests)?);
    }
    drop((inv, graph));
    let run = PruneRun {
        refuse_dangling: true,
        finished,
        ..PruneRun::new(
            "rm-manifest",
            a.dry_run,
            &a.sweep,
            a.force,
            a.log.log.clone(),
        )
    };
    prune_with(cx, root, policies, &run)
}

/// Plans and carries out a prune.
fn prune_with(
    cx: &mut Cx<'_>,
    root: Root,
    policies: Vec<prune::Policy>,
    a: &PruneRun<'_>,
) -> Result<Outcome> {
    let min_age: std::time::Duration = a.sweep.min_age.into();
    let opts = &prune::PruneOptions {
        policies,
        now: cx.env.now,
        min_age,
    };
    let g = cx.g;
    let env = cx.env;
    let interrupt = cx.interrupt;
    let pool = cx.pool;
    let out: &mut dyn Write = &mut *cx.out;
    let log = deletion_log(a.log.as_deref(), a.dry_run, &root)?;
    let mut notes = if a.dry_run {
        pending_notes(&root)?
    } else {
        let remover = remover_for(&root, env, log.as_ref(), interrupt);
        finish_pending(&root, remover.as_ref(), pool, env, interrupt)?
    };
    let root = fresh_if(root, !notes.is_empty())?;
    notes.splice(0..0, a.finished.iter().cloned());
    let io = io_pool(&root, cx.pool, &cx.deep, cx.g.jobs.is_some());
    let plan = pool.install(|| -> Result<prune::PrunePlan> {
        let (inv, graph) = scan_and_build(&root, env.now, cx.progress, io)?;
        cx.progress.phase("planning the prune");
        Ok(prune::plan(&root, &inv, &graph, opts))
    })?;
    cx.progress.finish();
    let dangling: Vec<String> = plan
        .repositories
        .iter()
        .flat_map(|r| {
            r.dangling
                .iter()
                .map(move |d| format!("{}: {d}", r.repository))
        })
        .collect();
    let blocked = a.refuse_dangling && !dangling.is_empty() && !a.force;
    let refused = plan.blind.is_some() || blocked || (!plan.broken.is_empty() && !a.force);
    let mut status = ExitStatus::CLEAN;
    let mut applied = None;
    let mut interrupted = false;
    let mut swept = None;
    if let Some(why) = &plan.blind {
        status = ExitStatus::OPERATIONAL;
        notes.push(format!(
            "refusing to prune: {why} (--force does not change this: fix the permissions or the mount and run again)"
        ));
    } else if blocked {
        status = ExitStatus::USAGE;
        notes.extend(dangling.iter().map(|d| format!("{d}, and stays")));
        notes.push(format!(
            "refusing to {}: what stays still names what it would remove (above); name that too, or pass --force to leave it dangling",
            a.command
        ));
    } else if refused {
        status = ExitStatus::UNCORRECTED;
        notes.push(
            "refusing to prune: a selected repository's graph is broken (errors above); fix it or pass --force"
                .into(),
        );
    } else if a.dry_run {
        notes.extend(
            dangling
                .iter()
                .map(|d| format!("would leave dangling: {d}")),
        );
    } else {
        let remover = remover_for(&root, env, log.as_ref(), interrupt);
        notes.extend(dangling.iter().map(|d| format!("left dangling: {d}")));
        let mut done = prune::PruneApplied::default();
        cx.progress.phase("pruning");
        let result = prune::apply_counting(
            &root,
            &plan,
            remover.as_ref(),
            interrupt,
            env.now,
            &mut done,
        );
        cx.progress.finish();
        applied = Some(done);
        match result {
            Ok(()) => {}
            Err(Error::Interrupted) => {
                interrupted = true;
                status = ExitStatus::INTERRUPTED;
                notes.push(format!(
                    "interrupted; what was removed is consistent, run {} again to finish",
                    a.command
                ));
            }
            Err(e) => return Err(e),
        }
        if !interrupted && a.sweep.gc {
            let gc_opts = gc::GcOptions {
                delete_untagged: false,
                min_age,
                force: a.force,
                now: env.now,
                upload_age: None,
            };
            let root = root.refreshed()?;
            let pass = gc_pass(
                &root,
                &gc_opts,
                false,
                pool,
                env,
                interrupt,
                log.as_ref(),
                cx.progress,
                cx.g.jobs.is_some(),
            )?;
            status = pass.status;
            notes.extend(pass.notes.iter().cloned());
            swept = Some(pass);
        }
    }
    let gc_doc = swept.as_ref().map(|p| p.doc(false));
    let doc = report::PruneDoc {
        dry_run: a.dry_run,
        refused,
        plan: &plan,
        applied: applied.as_ref(),
        interrupted,
        sweep: gc_doc.as_ref(),
    };
    let mut counts = report::metrics::Counts::new(metrics_root(&root), &plan.broken);
    counts.dry_run = Some(a.dry_run);
    counts.tags_removed = Some(applied.as_ref().map_or(0, |d| d.tags));
    counts.manifests_removed = Some(applied.as_ref().map_or(0, |d| d.manifests));
    if let Some(d) = &gc_doc {
        counts.add_findings(&d.plan.broken);
        sweep_counts(&mut counts, d);
        *counts.manifests_removed.get_or_insert(0) += d.applied.map_or(0, |a| a.manifests);
    } else {
        // Without --gc: what gc would free afterwards.
        counts.blobs_unreferenced = Some(plan.gc.blobs);
        counts.bytes_unreferenced = Some(plan.gc.bytes);
    }
    cx.counts = Some(counts);
    if g.json {
        report::write_json(out, a.command, &doc)
    } else {
        report::prune_human(out, &doc)
    }
    .map_err(Error::Output)?;
    Ok(Outcome { status, notes })
}

/// `regfsck repair` (and `--undo`).
fn repair_cmd(cx: &mut Cx<'_>, a: &crate::cli::RepairArgs) -> Result<Outcome> {
    let mut root = repair_root(cx, a)?;
    if !a.dry_run {
        refuse_if_running(a.root.as_deref(), cx.g, cx.env, "repair", a.force)?;
    }
    if let Some(run) = &a.undo {
        let remover = remover_for(&root, cx.env, None, cx.interrupt);
        return repair_undo(cx, a, &root, run, remover.as_ref());
    }
    // A move an interrupted repair left half done on an object store is finished first, as
    // its journal announced it (the run continues below); then the bucket is listed again.
    if !a.dry_run
        && repair::finish_interrupted_move(
            &root,
            remover_for(&root, cx.env, None, cx.interrupt).as_ref(),
        )?
    {
        root = root.refreshed()?;
    }
    let remover = remover_for(&root, cx.env, None, cx.interrupt);
    let remover = remover.as_ref();
    let opts = repair::RepairOptions {
        upload_age: a.upload_age.into(),
        now: cx.env.now,
    };
    let mut plan = first_repair_plan(cx, &root, &opts)?;
    let mut applied = None;
    let mut after = None;
    let mut notes = Vec::new();
    let mut status = planned_status(a.dry_run, &plan);
    if !a.dry_run && plan.steps.is_empty() {
        if let Some(run) = repair::close_unfinished(&root, remover)? {
            notes.push(format!(
                "the interrupted repair {run} had finished its steps"
            ));
        }
    }
    if !a.dry_run && !plan.steps.is_empty() {
        if !a.yes {
            confirm_repair(cx.env, &root, &plan)?;
        }
        let passes = apply_repair_passes(cx, &root, &opts, remover, &mut plan)?;
        if let Some((done, settled)) = passes {
            applied = Some(done);
            let errors = match settled {
                Some(n) => n,
                None => close_and_reverify(cx, &root, remover)?,
            };
            status = if errors == 0 {
                ExitStatus::CORRECTED
            } else {
                ExitStatus::UNCORRECTED
            };
            after = Some(errors);
        } else {
            status = ExitStatus::INTERRUPTED;
            notes.push("interrupted; undo with --undo or run repair again".into());
        }
    }
    let doc = report::RepairDoc {
        dry_run: a.dry_run,
        plan: &plan,
        applied: applied.as_ref(),
        remaining: after,
        root: root.path(),
        undo_root: undo_root_words(&root, cx.g),
    };
    let out: &mut dyn Write = &mut *cx.out;
    if cx.g.json {
        report::write_json(out, "repair", &doc)
    } else {
        report::repair_human(out, &doc)
    }
    .map_err(Error::Output)?;
    Ok(Outcome { status, notes })
}

/// How the undo command a repair prints names a root that is not a local directory: its URL,
/// and the `--config`, `--endpoint` and `--region` this run was given (a config's credentials
/// and endpoint are needed again); `None` for a local directory.
fn undo_root_words(root: &Root, g: &GlobalArgs) -> Option<Vec<String>> {
    if root.storage().local_root().is_some() {
        return None;
    }
    let mut words = vec![root.describe()];
    if let Some(c) = &g.config {
        let c = std::path::absolute(c).unwrap_or_else(|_| c.clone());
        words.extend(["--config".to_string(), c.to_string_lossy().into_owned()]);
    }
    if let Some(e) = &g.endpoint {
        words.extend(["--endpoint".to_string(), e.clone()]);
    }
    if let Some(r) = &g.region {
        words.extend(["--region".to_string(), r.clone()]);
    }
    Some(words)
}

/// The root `repair` works on: the one named, else the one an absolute `--undo RUN` names.
fn repair_root(cx: &Cx<'_>, a: &crate::cli::RepairArgs) -> Result<Root> {
    let (g, env) = (cx.g, cx.env);
    // An absolute RUN (as repair prints it) names its root.
    let root_of_run = a.undo.as_deref().and_then(|r| {
        let p = Path::new(r);
        let q = p.parent()?;
        (p.is_absolute() && q.ends_with(fsops::QUARANTINE))
            .then(|| q.parent().map(Path::to_path_buf))
            .flatten()
    });
    // ... and beats REGFSCK_ROOT, so the printed undo line works in any environment; a root
    // named explicitly must hold the run.
    let explicit = a.root.is_some() || g.root.is_some() || g.config.is_some();
    match root_of_run {
        Some(r) if !explicit => resolve_root(
            Some(&r),
            g,
            &Env {
                regfsck_root: None,
                ..env.clone()
            },
        ),
        _ => resolve_root(a.root.as_deref(), g, env),
    }
}

/// `repair --undo RUN`: asks first (unless `--yes`, or a dry run), undoes, reports.
fn repair_undo(
    cx: &mut Cx<'_>,
    a: &crate::cli::RepairArgs,
    root: &Root,
    run: &str,
    remover: &dyn fsops::Remover,
) -> Result<Outcome> {
    if !a.dry_run
        && !a.yes
        && !cx
            .env
            .confirm
            .is_some_and(|ask| ask(&format!("undo repair {run}? [y/N] ")))
    {
        return Err(Error::NotConfirmed);
    }
    let done = repair::undo(root, run, remover, a.dry_run)?;
    let out: &mut dyn Write = &mut *cx.out;
    if cx.g.json {
        report::write_json(out, "repair-undo", &done)
    } else {
        report::undo_human(out, &done)
    }
    .map_err(Error::Output)?;
    let status = if done.skipped.is_empty() {
        ExitStatus::CLEAN
    } else {
        ExitStatus::UNCORRECTED
    };
    Ok(Outcome {
        status,
        notes: Vec::new(),
    })
}

/// The first pass's plan: verify with contents hashed, then the scan and the graph repair
/// plans from; refused when the scan is blind or the blob store looks unmounted.
fn first_repair_plan(
    cx: &Cx<'_>,
    root: &Root,
    opts: &repair::RepairOptions,
) -> Result<repair::RepairPlan> {
    let (g, env, progress, interrupt) = (cx.g, cx.env, cx.progress, cx.interrupt);
    let vopts = verify::VerifyOptions {
        content: true,
        now: env.now,
        subset: None,
        hash_threads: g.jobs.map(|n| n.get()),
    };
    cx.pool.install(|| -> Result<repair::RepairPlan> {
        let report = verify::verify(root, &vopts, None, progress, interrupt)?;
        if report.summary.interrupted {
            return Err(Error::Interrupted);
        }
        progress.phase("planning the repair");
        let inv = scan::scan(root, scan::Depth::Thorough)?;
        let graph = graph::build(root, &inv, env.now);
        progress.finish();
        if let Some(why) = repair::refusal(&inv, &graph) {
            return Err(Error::Refused(why));
        }
        Ok(repair::plan(root, &inv, &graph, &report.findings, opts))
    })
}

/// What a plan means before anything is carried out.
fn planned_status(dry_run: bool, plan: &repair::RepairPlan) -> ExitStatus {
    // A dry run corrects nothing: as fsck -n, errors found are errors left.
    if dry_run {
        if plan.errors_before > 0 || !plan.unrepairable.is_empty() {
            ExitStatus::UNCORRECTED
        } else {
            ExitStatus::CLEAN
        }
    } else if plan.steps.is_empty() {
        if plan.unrepairable.is_empty() {
            ExitStatus::CLEAN
        } else {
            ExitStatus::UNCORRECTED
        }
    } else if plan.unrepairable.is_empty() {
        ExitStatus::CORRECTED
    } else {
        ExitStatus::UNCORRECTED
    }
}

/// Shows the plan and asks whether to carry it out.
fn confirm_repair(env: &Env, root: &Root, plan: &repair::RepairPlan) -> Result<()> {
    let mut preview = Vec::new();
    let doc = report::RepairDoc {
        dry_run: true,
        plan,
        applied: None,
        remaining: None,
        root: root.path(),
        undo_root: None,
    };
    report::repair_human(&mut preview, &doc).map_err(Error::Output)?;
    let question = format!(
        "{}apply these {} repairs? [y/N] ",
        String::from_utf8_lossy(&preview),
        plan.steps.len()
    );
    if !env.confirm.is_some_and(|ask| ask(&question)) {
        return Err(Error::NotConfirmed);
    }
    Ok(())
}

/// Carries out the plan, then the further passes of the same run: what a repair makes
/// visible (a restored revision link shows that revision's unlinked config) is repaired
/// until nothing is left to do (as fsck, which runs its passes until clean). The passes'
/// steps join `plan`, their unrepairable replaces its own. `None` when interrupted. With what
/// was done, the errors verify found after the last pass when that pass had nothing left to
/// do: the run is closed then, on the listing that verify read (on an object store one
/// listing fewer than closing and verifying again); `None` when the passes ran out first.
fn apply_repair_passes(
    cx: &Cx<'_>,
    root: &Root,
    opts: &repair::RepairOptions,
    remover: &dyn fsops::Remover,
    plan: &mut repair::RepairPlan,
) -> Result<Option<(repair::RepairApplied, Option<u64>)>> {
    let (g, env, interrupt) = (cx.g, cx.env, cx.interrupt);
    let mut done = match repair::apply(root, plan, remover, interrupt, env.now) {
        Ok(done) => done,
        Err(Error::Interrupted) => return Ok(None),
        Err(e) => return Err(e),
    };
    for _ in 0..4 {
        // Each pass reads the layout as the passes before left it.
        let pass = on_fresh_root(root, remover, env, interrupt, |root, remover| {
            let (next, errors) = cx.pool.install(|| -> Result<(repair::RepairPlan, u64)> {
                let report = verify_structure(root, g, env, interrupt)?;
                // A verify cut short finds less: no pass is planned from it (the run stays
                // open, and the next repair continues it).
                if report.summary.interrupted {
                    return Err(Error::Interrupted);
                }
                let inv = scan::scan(root, scan::Depth::Thorough)?;
                let graph = graph::build(root, &inv, env.now);
                let next = repair::plan(root, &inv, &graph, &report.findings, opts);
                Ok((next, report.summary.errors))
            })?;
            if next.steps.is_empty() {
                // Nothing left to do: what verify found is what is left (it reads nothing of
                // the quarantine, where closing writes). Closed only when nothing interrupted.
                Error::check_interrupt(interrupt)?;
                repair::close_unfinished(root, remover)?;
                return Ok(Err(errors));
            }
            let more = repair::apply(root, &next, remover, interrupt, env.now)?;
            Ok(Ok((next, more)))
        });
        let (next, more) = match pass {
            Ok(Ok(p)) => p,
            Ok(Err(errors)) => return Ok(Some((done, Some(errors)))),
            Err(Error::Interrupted) => return Ok(None),
            Err(e) => return Err(e),
        };
        done.steps += more.steps;
        plan.steps.extend(next.steps);
        plan.unrepairable = next.unrepairable;
    }
    Ok(Some((done, None)))
}

/// Runs `f` on the root as it is now, with its write half: on an object store the storage
/// listed again (the listing made at open shows nothing written or deleted since) and a
/// writer of its own; a local disk's reads are live, so there `root` and `remover` as they are
/// (the fault-injection count of its remover goes on).
///
/// # Errors
/// The storage cannot be listed again; what `f` returns.
fn on_fresh_root<T>(
    root: &Root,
    remover: &dyn fsops::Remover,
    env: &Env,
    interrupt: &AtomicBool,
    f: impl FnOnce(&Root, &dyn fsops::Remover) -> Result<T>,
) -> Result<T> {
    if root.storage().local_root().is_some() {
        return f(root, remover);
    }
    let fresh = root.refreshed()?;
    let writer = remover_for(&fresh, env, None, interrupt);
    f(&fresh, writer.as_ref())
}

/// Ends the run (its journal gets its end), then verifies again: the errors left.
fn close_and_reverify(cx: &Cx<'_>, root: &Root, remover: &dyn fsops::Remover) -> Result<u64> {
    let (g, env, interrupt) = (cx.g, cx.env, cx.interrupt);
    // Closed only when nothing interrupted the passes.
    Error::check_interrupt(interrupt)?;
    on_fresh_root(root, remover, env, interrupt, |root, remover| {
        repair::close_unfinished(root, remover)?;
        // What is left, as verify sees it now (structure; the corrupt blobs are out).
        let v = cx
            .pool
            .install(|| verify_structure(root, g, env, interrupt))?;
        Ok(v.summary.errors)
    })
}

/// Verify of the structure only (contents not hashed), as repair's later passes run it.
fn verify_structure(
    root: &Root,
    g: &GlobalArgs,
    env: &Env,
    interrupt: &AtomicBool,
) -> Result<verify::VerifyReport> {
    verify::verify(
        root,
        &verify::VerifyOptions {
            content: false,
            now: env.now,
            subset: None,
            hash_threads: g.jobs.map(|n| n.get()),
        },
        None,
        &crate::progress::NoProgress,
        interrupt,
    )
}

/// `regfsck rm-repo`.
fn rm_repo_cmd(cx: &mut Cx<'_>, a: &crate::cli::RmRepoArgs) -> Result<Outcome> {
    let g = cx.g;
    let env = cx.env;
    let interrupt = cx.interrupt;
    let pool = cx.pool;
    let out: &mut dyn Write = &mut *cx.out;
    let root = resolve_root(None, g, env)?;
    if !a.dry_run {
        refuse_if_running(None, g, env, "rm-repo", a.force)?;
    }
    // Repositories interrupted removals are still working on may be named again.
    let pending: std::collections::BTreeSet<crate::layout::RepoName> = jobs::bins(&root)?
        .into_iter()
        .filter_map(|b| match b.job {
            Some(jobs::Job::RmRepo(j)) => Some(j.repositories),
            _ => None,
        })
        .flatten()
        .collect();
    let log = deletion_log(a.log.log.as_deref(), a.dry_run, &root)?;
    let mut notes = if a.dry_run {
        pending_notes(&root)?
    } else {
        finish_pending(
            &root,
            remover_for(&root, env, log.as_ref(), interrupt).as_ref(),
            pool,
            env,
            interrupt,
        )?
    };
    let root = fresh_if(root, !notes.is_empty())?;
    let remover = remover_for(&root, env, log.as_ref(), interrupt);
    let io = io_pool(&root, cx.pool, &cx.deep, cx.g.jobs.is_some());
    let (inv, graph) = pool.install(|| scan_and_build(&root, env.now, cx.progress, io))?;
    if let Some(why) = inv.blind_spots() {
        return Err(Error::Refused(format!(
            "refusing to remove repositories: {why}; the repositories there, and what they need, are unknown"
        )));
    }
    let plan = rmrepo::plan(&inv, &graph, &a.names, a.keep_blobs, &pending)?;
    let mut status = ExitStatus::CLEAN;
    let mut applied = None;
    if !a.dry_run {
        let mut done = rmrepo::RmApplied::default();
        cx.progress.phase("removing");
        let result = pool.install(|| {
            rmrepo::apply_counting(
                &root,
                &plan,
                remover.as_ref(),
                interrupt,
                env.now,
                &mut done,
            )
        });
        cx.progress.finish();
        // Interrupted too: what was removed before the interrupt.
        applied = Some(done);
        match result {
            Ok(()) => {}
            Err(Error::Interrupted) => {
                status = ExitStatus::INTERRUPTED;
                notes.push("interrupted; run the same command again (or gc) to finish".into());
            }
            Err(e) => return Err(e),
        }
    }
    let doc = report::RmDoc {
        dry_run: a.dry_run,
        plan: &plan,
        applied: applied.as_ref(),
        interrupted: status == ExitStatus::INTERRUPTED,
    };
    cx.counts = Some(report::metrics::Counts {
        dry_run: Some(a.dry_run),
        repositories_removed: Some(applied.as_ref().map_or(0, |d| d.repositories)),
        blobs_swept: Some(applied.as_ref().map_or(0, |d| d.blobs)),
        bytes_swept: Some(applied.as_ref().map_or(0, |d| d.bytes)),
        ..report::metrics::Counts::new(metrics_root(&root), &[])
    });
    if g.json {
        report::write_json(out, "rm-repo", &doc)
    } else {
        report::rm_human(out, &doc)
    }
    .map_err(Error::Output)?;
    Ok(Outcome { status, notes })
}

/// `regfsck du`.
fn du_cmd(cx: &mut Cx<'_>, a: &crate::cli::DuArgs) -> Result<Outcome> {
    let g = cx.g;
    let env = cx.env;
    let pool = cx.pool;
    let out: &mut dyn Write = &mut *cx.out;
    let root = resolve_root(a.root.as_deref(), g, env)?;
    let io = io_pool(&root, cx.pool, &cx.deep, cx.g.jobs.is_some());
    let (usage, blind) = pool.install(|| -> Result<_> {
        let (inv, graph) = scan_and_build(&root, env.now, cx.progress, io)?;
        let sort = match a.sort {
            crate::cli::DuSort::Size => du::SortBy::Size,
            crate::cli::DuSort::Name => du::SortBy::Name,
        };
        Ok((du::usage(&inv, &graph, a.tags, sort), inv.blind_spots()))
    })?;
    if g.json {
        report::write_json(out, "du", &usage)
    } else {
        report::du_human(out, &usage)
    }
    .map_err(Error::Output)?;
    let notes = usage
        .skipped
        .iter()
        .map(|r| {
            format!(
                "skipped {r}: its name is not UTF-8; the blobs its links name count as referenced"
            )
        })
        .collect();
    Ok(incomplete(
        Outcome {
            status: ExitStatus::CLEAN,
            notes,
        },
        blind,
    ))
}

/// `regfsck serve`.
fn serve_cmd(cx: &mut Cx<'_>, a: &crate::cli::ServeArgs) -> Result<Outcome> {
    let g = cx.g;
    let env = cx.env;
    let interrupt = cx.interrupt;
    let out: &mut dyn Write = &mut *cx.out;
    let root = resolve_root(a.root.as_deref(), g, env)?;
    let settings = match &g.config {
        Some(cfg) => Some((
            cfg.as_path(),
            config::serve_settings(cfg, &env.registry_env)?,
        )),
        None => None,
    };
    let flags = serve::Flags {
        addr: a.addr,
        htpasswd: a.htpasswd.clone(),
        realm: a.realm.clone(),
        tls: a.tls_cert.clone().zip(a.tls_key.clone()),
        cors_origins: a.cors_origin.clone(),
        limits: serve::Limits {
            header_timeout: a.header_timeout,
            idle_timeout: a.idle_timeout,
            max_connections: a.max_connections,
        },
    };
    let (opts, from_config) = serve::resolve(flags, settings.as_ref().map(|(p, s)| (*p, s)));
    if let Some(line) = from_config {
        serve::log(&line);
    }
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let mut said = Ok(());
    serve::run(&root, &opts, interrupt, &mut |bound| {
        said = writeln!(
            out,
            "serving {} on {scheme}://{bound}",
            root.path().display()
        )
        .and_then(|()| out.flush());
    })?;
    said.map_err(Error::Output)?;
    Ok(Outcome::default())
}

/// `regfsck generate` (man pages and completions, for the repository).
fn generate_cmd(cx: &mut Cx<'_>, a: &crate::cli::GenerateArgs) -> Result<Outcome> {
    let out: &mut dyn Write = &mut *cx.out;
    for rel in generate::write_into(&a.out)? {
        writeln!(out, "{}", rel.display()).map_err(Error::Output)?;
    }
    Ok(Outcome::default())
}
