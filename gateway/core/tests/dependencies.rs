//! The core stays I/O-free: no async runtime, HTTP, QUIC or NATS crate may enter its
//! normal dependency tree. Checked with `cargo tree` on the real lock file.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

#[path = "../../../tests/support/cargo_tree.rs"]
mod cargo_tree;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "hyper",
    "h2",
    "h3",
    "quinn",
    "reqwest",
    "async-nats",
    "socket2",
    "rustls",
    "futures-io",
];

#[test]
fn core_has_no_runtime_or_network_dependency() {
    let tree = cargo_tree::normal_tree("gateway-core");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"ed25519-dalek"),
        "cargo tree output looks wrong:\n{tree}"
    );
    let bad: Vec<&&str> = names.iter().filter(|n| FORBIDDEN.contains(n)).collect();
    assert!(bad.is_empty(), "gateway-core depends on {bad:?}");
}
