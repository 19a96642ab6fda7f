//! `man/` and `completions/` are generated from the clap definitions and committed; this test
//! fails when they are stale. `REGFSCK_UPDATE_GENERATED=1 cargo test generated` rewrites them.

use std::path::Path;

#[test]
fn generated_files_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("REGFSCK_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (rel, bytes) in regfsck::generate::files() {
        let path = root.join(&rel);
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                stale.push(rel.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `REGFSCK_UPDATE_GENERATED=1 cargo test generated` and commit"
    );
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    regfsck::cli::Cli::command().debug_assert();
}
