//! The corpus tier: real photos and hostile files from `../shared/corpus` (read in place,
//! never copied into the repository). `scripts/test` runs this tier whenever the corpus
//! exists (`cargo test -p ec2-service --test corpus -- --include-ignored`); a plain
//! `cargo test` lists it as ignored. `PIPELINE_CORPUS` overrides the location.

#[path = "../support/mod.rs"]
mod support;

mod hostile;
mod photos;

use std::path::PathBuf;

pub const IGNORED: &str = "corpus tier: scripts/test runs it when ../shared/corpus exists";

pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("PIPELINE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    assert!(
        dir.join("photos").is_dir() && dir.join("hostile").is_dir(),
        "the corpus is not at {} (set PIPELINE_CORPUS)",
        dir.display()
    );
    dir
}

pub fn photo(name: &str) -> Vec<u8> {
    let path = corpus().join("photos").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
