//! The arrows between the workspace's crates point one way: the issuing side depends on
//! the core only; the client depends on no workspace crate; the load tester and the
//! benchmarks use the core, the issuing side and the client, never the server
//! (`gateway`), which they talk to over the wire (through the client) or start as a
//! process.
//! Checked with `cargo tree` on the real lock file.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

#[path = "../../../tests/support/cargo_tree.rs"]
mod cargo_tree;

/// The workspace crates in the normal dependency tree of `package` (itself excluded).
fn workspace_deps(package: &str) -> Vec<String> {
    let tree = cargo_tree::normal_tree(package);
    let mut names: Vec<String> = tree
        .lines()
        // Workspace members are listed with their path: `gateway-core v0.1.0 (/…)`.
        .filter(|l| l.contains(" (/"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != package)
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_issuing_side_depends_on_the_core_only() {
    assert_eq!(workspace_deps("gateway-issuer"), ["gateway-core"]);
}

#[test]
fn the_client_stands_alone() {
    assert!(workspace_deps("gateway-client").is_empty());
}

#[test]
fn the_load_tester_and_the_benchmarks_do_not_depend_on_the_server() {
    for package in ["loadtest", "gateway-benches"] {
        assert_eq!(
            workspace_deps(package),
            ["gateway-client", "gateway-core", "gateway-issuer"],
            "{package}"
        );
    }
}

#[test]
fn the_server_uses_the_issuing_side_for_its_commands() {
    assert_eq!(
        workspace_deps("gateway"),
        ["gateway-core", "gateway-issuer"]
    );
}
