//! Starts the real `gateway` binary on free ports with a configuration made for the
//! test, and waits on conditions (never fixed sleeps): the "listening" line on stdout,
//! then `/readyz`, each with a deadline.

pub mod client;
pub mod nats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use gateway::callers::sha256_hex;
use gateway_core::token::NewClaims;
use gateway_core::{Color, Sub};
use gateway_issuer::mint::Issuer;
use gateway_issuer::DevSetup;
use rustls::pki_types::CertificateDer;

use client::{Client, Protocol};

pub const DEADLINE: Duration = Duration::from_secs(30);

/// The harness every suite that runs the gateway shares (`tests/support/process.rs`).
#[path = "../../support/process.rs"]
mod process;
pub use process::{outside_program, TempDir};

/// Waits for `f` to give `Some`, polling, until the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A second caller, restricted, for scope and rate tests (no card checks).
pub const LIMITED_KEY: &str = "limited-caller-key";

/// A third caller, allowed 2 card checks per second.
#[allow(dead_code)] // used by the card-permission test only
pub const CARDS_KEY: &str = "cards-caller-key";

/// The API key of the caller allowed to fetch status lists and the bundle (`offline`).
#[allow(dead_code)] // used by some suites only
pub const GATES_KEY: &str = "offline-gates-caller-key";

/// An offline caller allowed 3 requests a second (its 429).
#[allow(dead_code)] // used by some suites only
pub const SLOW_GATES_KEY: &str = "slow-offline-gates-caller-key";

/// A change to the development setup's files before the gateway starts.
pub type Prepare = Box<dyn FnOnce(&DevSetup) + Send>;

/// How a test gateway is set up.
#[derive(Default)]
pub struct Options {
    /// Extra arguments to `gateway serve` ("{state}" is replaced by the state directory).
    pub args: Vec<String>,
    /// Start with this feed content.
    pub feed: String,
    /// Replace trust.json and the policy (plain JSON, with --dev).
    pub trust: Option<serde_json::Value>,
    pub dev_policy: Option<serde_json::Value>,
    pub plain: bool,
    /// Runs on the development setup before the gateway starts (to replace its files).
    pub prepare: Option<Prepare>,
    /// `--feed` instead of the setup's feed file (e.g. `nats://…`).
    pub feed_source: Option<String>,
    /// Start on this state directory's setup (as made by an earlier gateway) instead of
    /// a new one: a restart on the same host.
    pub reuse: Option<std::sync::Arc<TempDir>>,
    /// Write the gateway's log (stderr) to a file, to measure it.
    pub capture_log: bool,
    /// Start under this RLIMIT_NOFILE (soft and hard).
    pub nofile: Option<u64>,
}

impl Options {
    /// With the development setup's feed key (`--feed-key`): events need their `mac`,
    /// and denies carry receipts. `extra` arguments follow.
    #[allow(dead_code)] // used by some suites only
    pub fn keyed(extra: &[&str]) -> Options {
        let mut args: Vec<String> = vec!["--feed-key".into(), "{state}/feed.key".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Options {
            args,
            ..Options::default()
        }
    }
}

/// A running gateway.
pub struct Gateway {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    #[allow(dead_code)] // read by tests that enable --plain-listen
    pub plain: Option<SocketAddr>,
    pub setup: DevSetup,
    pub api_key: String,
    pub ca: CertificateDer<'static>,
    /// Holds the configuration files; removed when the last gateway using it is dropped.
    pub dir: std::sync::Arc<TempDir>,
    /// The log file, when captured.
    pub log: Option<PathBuf>,
}

impl Gateway {
    /// Makes a development setup (as the quick start does) plus a restricted caller, and
    /// starts the binary on it with every file named explicitly.
    pub async fn start(mut opts: Options) -> Gateway {
        let reused = opts.reuse.is_some();
        let dir = opts
            .reuse
            .take()
            .unwrap_or_else(|| std::sync::Arc::new(TempDir::new("gw")));
        let setup = DevSetup::new(&dir.0.join("state"));
        setup.ensure().expect("dev setup");
        let api_key = setup.read_api_key().expect("api key");
        if !reused {
            let callers = serde_json::json!({"callers": [
                {"name": "dev", "api_key_sha256": sha256_hex(api_key.as_bytes()), "venues": ["*"], "rate_per_s": 1_000_000, "card_rate_per_s": 1_000_000, "offline": true},
                {"name": "limited", "api_key_sha256": sha256_hex(LIMITED_KEY.as_bytes()), "venues": ["bus", "metro"], "rate_per_s": 3},
                {"name": "cards", "api_key_sha256": sha256_hex(CARDS_KEY.as_bytes()), "venues": ["*"], "rate_per_s": 1000, "card_rate_per_s": 2},
                {"name": "gates", "api_key_sha256": sha256_hex(GATES_KEY.as_bytes()), "venues": ["*"], "rate_per_s": 1000, "offline": true},
                {"name": "slow-gates", "api_key_sha256": sha256_hex(SLOW_GATES_KEY.as_bytes()), "venues": ["*"], "rate_per_s": 3, "offline": true},
            ]});
            gateway_issuer::owner_only::write(&setup.callers(), callers.to_string().as_bytes())
                .expect("callers");
            gateway_issuer::owner_only::write(&setup.feed(), opts.feed.as_bytes()).expect("feed");
        }
        if let Some(prepare) = opts.prepare.take() {
            prepare(&setup);
        }
        let mut args: Vec<String> = vec!["serve".into()];
        let mut flag = |k: &str, v: &Path| {
            args.push(format!("--{k}"));
            args.push(v.display().to_string());
        };
        let trust_path = match &opts.trust {
            Some(t) => {
                let p = dir.0.join("trust.json");
                std::fs::write(&p, t.to_string()).expect("trust");
                p
            }
            None => setup.trust(),
        };
        let policy_path = match &opts.dev_policy {
            Some(p) => {
                let path = dir.0.join("policy.json");
                std::fs::write(&path, p.to_string()).expect("policy");
                path
            }
            None => setup.policy(),
        };
        flag("trust", &trust_path);
        flag("policy", &policy_path);
        flag("root-key", &setup.root_pub());
        flag("callers", &setup.callers());
        flag("pseudonym-key", &setup.pseudonym_key());
        flag("tls-cert", &setup.cert());
        flag("tls-key", &setup.key());
        flag("state-dir", &setup.dir);
        args.push("--feed".into());
        args.push(
            opts.feed_source
                .clone()
                .unwrap_or_else(|| format!("file:{}", setup.feed().display())),
        );
        args.extend(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"].map(String::from));
        if opts.plain {
            args.extend(["--plain-listen", "127.0.0.1:0"].map(String::from));
        }
        if opts.dev_policy.is_some() {
            args.push("--dev".into());
        }
        // "{state}" in an extra argument stands for the state directory.
        let state = setup.dir.display().to_string();
        args.extend(opts.args.iter().map(|a| a.replace("{state}", &state)));
        let bin = env!("CARGO_BIN_EXE_gateway");
        let mut cmd = match opts.nofile {
            // `ulimit` in a shell that then becomes the gateway.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let log = opts.capture_log.then(|| dir.0.join("gateway.log"));
        let stderr = match &log {
            Some(p) => Stdio::from(std::fs::File::create(p).expect("log file")),
            None => Stdio::inherit(),
        };
        let mut child = cmd
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("gateway starts");
        let stdout = child.stdout.take().expect("stdout");
        let at = tokio::task::spawn_blocking(move || process::listening(stdout));
        let at = tokio::time::timeout(DEADLINE, at)
            .await
            .expect("listening line within the deadline")
            .expect("reader")
            .expect("a listening line on stdout");
        let pem = std::fs::read(setup.cert()).expect("cert");
        let ca = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .expect("a cert")
            .expect("pem");
        let gw = Gateway {
            child,
            listen: at.listen,
            admin: at.admin,
            plain: at.plain,
            setup,
            api_key,
            ca,
            dir,
            log,
        };
        gw.wait_ready().await;
        gw
    }

    pub async fn wait_ready(&self) {
        let admin = self.admin;
        eventually("/readyz 200", || async move {
            client::get_plain(admin, "/readyz")
                .await
                .filter(|a| a.status == 200)
                .map(|_| ())
        })
        .await;
    }

    pub async fn client(&self, proto: Protocol) -> Client {
        Client::connect(proto, self.listen, &self.ca).await
    }

    /// The development setup's feed key.
    #[allow(dead_code)] // used by some suites only
    pub fn feed_key(&self) -> gateway_core::feed_auth::FeedKey {
        self.setup.read_feed_key().expect("feed key").expect("made")
    }

    /// The decision (`allow` or `deny`) for `code` at a bus gate, over HTTP/2.
    #[allow(dead_code)] // used by some suites only
    pub async fn decision(&self, code: &str) -> String {
        let mut c = self.client(Protocol::H2).await;
        let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
        c.post("/v1/verify", &self.api_key, body).await.json()["decision"]
            .as_str()
            .expect("decision")
            .to_owned()
    }

    pub fn issuer(&self) -> Issuer {
        self.setup.issuer().expect("issuer")
    }

    /// A valid code for `sub` minted by the development issuer.
    pub fn mint(&self, sub: Sub, color: Color, ver: u64) -> String {
        let now = gateway_issuer::unix_now();
        let claims = NewClaims {
            iss: "CN-33".into(),
            sub,
            iat: now - 10,
            exp: now + 3600,
            cti: sub.0[..12].to_vec(),
            color,
            ver,
            why: None,
            kind: None,
            with: None,
            status: None,
        };
        self.issuer().mint(&claims).expect("mint")
    }

    /// The snapshot files of its state directory, oldest position first.
    pub fn snapshot_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(self.setup.dir.join("snapshots"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|x| x == "jkms"));
        v.sort();
        v
    }

    /// Appends lines to the feed file.
    pub fn append_feed(&self, lines: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.setup.feed())
            .expect("feed");
        f.write_all(lines.as_bytes()).expect("append");
    }

    /// The admin's `/v1/status`.
    pub async fn status(&self) -> serde_json::Value {
        client::get_plain(self.admin, "/v1/status")
            .await
            .expect("admin answers")
            .json()
    }

    /// A number from `/v1/status`.
    pub async fn stat(&self, key: &str) -> u64 {
        self.status().await[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in /v1/status"))
    }

    /// Waits until `/v1/status` shows `key` at `want`.
    pub async fn wait_stat(&self, key: &str, want: u64) {
        let admin = self.admin;
        let what = format!("{key} = {want}");
        eventually(&what, || async move {
            let v = client::get_plain(admin, "/v1/status").await?.json();
            (v[key].as_u64() == Some(want)).then_some(())
        })
        .await;
    }

    /// A bare QUIC connection (ALPN h3) to the gateway, for raw HTTP/3 frames.
    pub async fn quic(&self) -> (quinn::Endpoint, quinn::Connection) {
        let target = gateway_client::Target::tls(self.listen, Protocol::H3, self.ca.clone());
        gateway_client::connect_quic(&target)
            .await
            .expect("QUIC handshake")
    }

    /// The scheduling policy of each of the process's threads (Linux: 0 normal, 3 batch).
    pub fn thread_policies(&self) -> Vec<(String, u32)> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut out = Vec::new();
        for t in std::fs::read_dir(tasks).expect("/proc task").flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let sched = std::fs::read_to_string(t.path().join("sched")).unwrap_or_default();
            let policy = sched
                .lines()
                .find(|l| l.starts_with("policy"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse().ok());
            if let Some(p) = policy {
                out.push((comm.trim().to_owned(), p));
            }
        }
        out
    }

    /// The process's resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// CPU time used so far (user + system), in clock ticks (1/100 s on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let s =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc stat");
        // Fields after the command name in parentheses; utime and stime are 14 and 15.
        let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    }

    /// Bytes written to the log so far (0 when it is not captured).
    pub fn log_bytes(&self) -> u64 {
        self.log
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits for the process to exit, up to the deadline.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(start.elapsed() < DEADLINE, "gateway did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the gateway binary with arguments and returns (exit code, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
