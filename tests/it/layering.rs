//! The folder tree is the pipeline, and storage is its only door: no code outside
//! `src/storage/` touches the filesystem for registry data (all of it goes through
//! `regfsck::storage::Storage`, the read half, and `fsops::Remover`, the write half). A line
//! that reads something else (the registry's config, a policy file, an htpasswd file, the man
//! pages it writes) says so with `// not registry data: <what>`.

use std::path::Path;

/// What touches a filesystem directly.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "File::open",
    "File::create",
    "OpenOptions",
    "read_dir(",
    "walkdir",
    "WalkDir",
    "rustix::fs",
    "memmap2",
    "symlink_metadata",
    "canonicalize(",
    "fsutil::",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn only_the_storage_module_touches_registry_storage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "{files:?}");
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if rel.starts_with("storage") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            // Unit tests (at the end of a file) build their fixtures as they like.
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            if FORBIDDEN.iter().any(|t| code.contains(t)) && !line.contains("not registry data") {
                found.push(format!("src/{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "filesystem access outside src/storage/ (go through Root/Storage, or mark a line that reads something other than registry data):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_folders_follow_the_pipeline() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for dir in ["storage", "scan", "graph", "action", "report", "serve"] {
        assert!(src.join(dir).is_dir(), "src/{dir}/");
    }
    for f in [
        "du", "gc", "jobs", "ls", "prune", "repair", "rmrepo", "verify",
    ] {
        assert!(src.join("action").join(format!("{f}.rs")).is_file(), "{f}");
    }
}
