//! The normal dependency tree of a workspace package, as `cargo tree` prints it (one line
//! a package, no prefix), from the real lock file and offline: the dependency tests of
//! the core and the issuing crate include this file.

use std::process::Command;

/// `cargo tree -p PACKAGE -e normal --prefix none --offline`, run from the including
/// crate's folder; panics (the test's failure report) if cargo fails.
pub fn normal_tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
