//! Man pages and shell completions, rendered from the clap definitions.
//!
//! The results are committed under `man/` and `completions/`; a test regenerates them in memory
//! and fails when the committed files are stale (`REGFSCK_UPDATE_GENERATED=1` rewrites them).

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::exit::EXIT_STATUS_HELP;

const ENVIRONMENT: &str = "\
.TP
\\fBREGFSCK_ROOT\\fR
Storage root, when neither ROOT nor \\fB\\-\\-root\\fR is given.
.TP
\\fBREGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY\\fR
With \\fB\\-\\-config\\fR: overrides storage.filesystem.rootdirectory, as in the registry.
";

const EXAMPLES: &str = "\
.nf
regfsck verify /var/lib/docker-registry
regfsck verify \\-\\-json \\-\\-no\\-content ./data
regfsck \\-\\-config /etc/docker/registry/config.yml verify
regfsck ls ./data
regfsck ls \\-\\-untagged ./data
regfsck gc \\-\\-dry\\-run ./data
regfsck prune \\-\\-dry\\-run \\-\\-repo 'ci/*' \\-\\-keep\\-last 10 \\-\\-order version \\-\\-keep\\-tag '^latest$' ./data
regfsck prune \\-\\-policy /etc/regfsck/retention.yaml \\-\\-gc ./data
regfsck repair \\-\\-dry\\-run ./data
regfsck repair \\-\\-undo regfsck\\-lost+found/2026\\-11\\-23T100550Z\\-12862 ./data
.fi
";

fn man_page(cmd: clap::Command, name: String) -> Vec<u8> {
    let has_version = cmd.get_version().is_some();
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let man = clap_mangen::Man::new(cmd.name(name));
    let mut buf = Vec::new();
    let w: &mut dyn Write = &mut buf;
    // Rendering into memory cannot fail.
    let _ = man.render_title(w);
    let _ = man.render_name_section(w);
    let _ = man.render_synopsis_section(w);
    let _ = man.render_description_section(w);
    let _ = man.render_options_section(w);
    if has_subcommands {
        let _ = man.render_subcommands_section(w);
    }
    let _ = writeln!(w, ".SH \"EXIT STATUS\"\n.nf");
    for line in EXIT_STATUS_HELP.lines().skip(1) {
        let _ = writeln!(w, "{}", line.trim_start());
    }
    let _ = writeln!(
        w,
        ".fi\n.SH ENVIRONMENT\n{ENVIRONMENT}.SH EXAMPLES\n{EXAMPLES}"
    );
    if has_version {
        let _ = man.render_version_section(w);
    }
    buf
}

/// Every generated file: path relative to the repository root, and content.
pub fn files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut files = vec![(
        PathBuf::from("man/regfsck.1"),
        man_page(cmd.clone(), "regfsck".into()),
    )];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("regfsck-{}", sub.get_name());
        files.push((
            PathBuf::from(format!("man/{name}.1")),
            man_page(sub.clone(), name),
        ));
    }
    for (shell, file) in [
        (Shell::Bash, "regfsck.bash"),
        (Shell::Zsh, "_regfsck"),
        (Shell::Fish, "regfsck.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "regfsck", &mut buf);
        files.push((PathBuf::from(format!("completions/{file}")), buf));
    }
    files
}

/// Writes [`files`] below `dir` (only there: `regfsck generate --out DIR`); returns what it
/// wrote, relative to `dir`.
///
/// # Errors
/// [`Error::Io`] for a file or directory that cannot be written.
pub fn write_into(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, bytes) in files() {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?; // not registry data: man pages and completions
        }
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?; // not registry data: man pages and completions
        written.push(rel);
    }
    Ok(written)
}
