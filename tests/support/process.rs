//! What every test suite that runs the `gateway` binary shares (the end-to-end tests and
//! the load tester's tests include this file): temporary directories, and the
//! machine-readable line the gateway prints once it listens. Std only, so that both
//! suites, async or not, use it as it is.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ChildStdout;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `jkm-test-{tag}-{pid}-{n}` under the temporary directory, empty.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "jkm-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a started gateway listens, from its first line on standard output
/// (`{"event": "listening", "listen": …, "admin": …, "plain": …}`).
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The TLS port (TCP and UDP).
    pub listen: SocketAddr,
    /// The admin port.
    pub admin: SocketAddr,
    /// The plaintext port, when one was asked for.
    pub plain: Option<SocketAddr>,
}

/// Reads the gateway's first line (blocking until it is printed, or `None` if the
/// gateway exits first) and keeps draining the rest on a thread of its own, so the
/// gateway never blocks on a full pipe.
pub fn listening(stdout: ChildStdout) -> Option<Listening> {
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next()?.ok()?;
    std::thread::spawn(move || for _ in lines {});
    let v: serde_json::Value = serde_json::from_str(&first).ok()?;
    let addr = |k: &str| v[k].as_str().and_then(|s| s.parse::<SocketAddr>().ok());
    Some(Listening {
        listen: addr("listen")?,
        admin: addr("admin")?,
        plain: addr("plain"),
    })
}

/// Finds the outside program `name` on `PATH` for a test that meets it (nats-server,
/// nginx, promtool, chromium, ss, systemd-analyze, schemathesis). Without it, prints a
/// loud SKIPPED line saying which test did not run and how to install the program, and
/// returns `None`, so the test passes and the suite goes on; under `CI=true` a missing
/// program fails the test instead (`.ci/run` installs every one).
pub fn outside_program(names: &[&str], test: &str, install: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| is_executable(p));
    if found.is_none() {
        let what = names.join(" or ");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is required under CI=true ({test}): {install}"
        );
        eprintln!(
            "\n*** SKIPPED: {what} is not on PATH, so {test} did not run. Install it: {install} ***\n"
        );
    }
    found
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
