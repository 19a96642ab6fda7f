//! The `regfsck` binary: parse arguments, run, print the final error, exit with fsck's codes.

// The system allocator by default: glibc returns freed memory and keeps the peak lower than
// mimalloc does (bench/memory.sh); `--features mimalloc` trades memory for a little speed.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use clap::error::ErrorKind;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use regfsck::app::{self, Env};
use regfsck::cli::Cli;
use regfsck::progress::{NoProgress, Progress};
use regfsck::{Error, ExitStatus};

/// Renders progress on stderr with indicatif: bytes hashed, throughput, and blobs per second.
struct Bar {
    bar: ProgressBar,
    items: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl Progress for Bar {
    fn phase(&self, name: &str) {
        // After a finish too: each phase shows its own time.
        self.bar.reset();
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template is valid"),
        );
        self.bar.set_message(name.to_string());
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }
    fn start(&self, phase: &str, total: u64) {
        self.bar.disable_steady_tick();
        self.bar.reset();
        self.bar.set_style(bytes_style());
        self.bar.set_message("");
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_prefix(phase.to_string());
        self.bar.reset_eta();
    }
    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
    fn item_done(&self, total_items: u64) {
        let done = self.items.fetch_add(1, Ordering::Relaxed) + 1;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{done}/{total_items} blobs, {:.0} blobs/s",
            done as f64 / secs
        ));
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The bar of a phase with a size (hashing: bytes, throughput, blobs per second).
fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} eta {eta}",
    )
    .expect("template is valid")
    .progress_chars("=> ")
}

/// Asks on the terminal: the question on stderr, the answer from stdin.
fn ask(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// glibc gives threads that allocate at once arenas of their own (up to eight a core), and what
/// is freed in one arena is not reused by another: with regfsck's pools of I/O and rayon
/// threads that was 10 to 20 MiB of peak memory holding nothing (gc at 600,000 blobs: 164 to
/// 170 MiB, with two arenas 150 to 160, for 5% more time; bench/memory.sh). Two arenas, unless
/// `MALLOC_ARENA_MAX` says otherwise.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets one parameter of the allocator, called first thing in main,
        // before any other thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    // First of all, so a Ctrl-C (or SIGTERM, SIGHUP) at any moment of the run is seen: the first
    // stops cleanly between steps (exit 32), a second leaves at once.
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupt);
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(ExitStatus::INTERRUPTED.0.into());
            }
        });
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => ExitStatus::USAGE.0,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let progress: Box<dyn Progress> = if !cli.global.quiet && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(bytes_style());
        Box::new(Bar {
            bar,
            items: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        })
    } else {
        Box::new(NoProgress)
    };
    let mut env = Env::from_process();
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        env.confirm = Some(ask);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = app::run(&cli, &env, &mut out, progress.as_ref(), &interrupt);
    let _ = out.flush();
    match result {
        Ok(outcome) => {
            for n in &outcome.notes {
                eprintln!("regfsck: {n}");
            }
            // Interrupted after the last check: the work is done, and consistent; the exit
            // status still says the run was interrupted (serve's normal stop is Ctrl-C).
            let serving = matches!(cli.command, regfsck::cli::Command::Serve(_));
            if interrupt.load(Ordering::SeqCst) && !serving {
                // A run that stopped at the interrupt said so in its notes.
                if outcome.status.0 & ExitStatus::INTERRUPTED.0 == 0 {
                    eprintln!("regfsck: interrupted (after the run had finished)");
                }
                return ExitCode::from(outcome.status.0 | ExitStatus::INTERRUPTED.0);
            }
            ExitCode::from(outcome.status.0)
        }
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(0),
        Err(Error::Interrupted) => {
            eprintln!("regfsck: interrupted");
            ExitCode::from(ExitStatus::INTERRUPTED.0)
        }
        Err(e) if e.is_usage() => {
            eprintln!("regfsck: {e}");
            ExitCode::from(ExitStatus::USAGE.0)
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("regfsck: {e:#}");
            ExitCode::from(ExitStatus::OPERATIONAL.0)
        }
    }
}
