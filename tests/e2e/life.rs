//! Signs of life (`feed.md` revision 4): a frozen or late feed must not look fresh. Only
//! a fresh, newer, authenticated heartbeat resets staleness; a heartbeat's `prev` shows
//! withheld messages (`feed_gap`); a heartbeat from beyond the skew shows that the
//! gateway's clock is behind (`clock_behind`). Over the file feed and a NATS mirror.

use gateway_core::feed_auth::FeedKey;
use gateway_core::policy::reference_policy_json;
use gateway_core::{Color, Sub};
use gateway_issuer::events::Writer;
use gateway_issuer::publish::append_heartbeat;

use crate::support::client::{get_plain, Protocol};
use crate::support::nats::NatsServer;
use crate::support::{eventually, Gateway, Options};

async fn readyz(gw: &Gateway) -> (u16, serde_json::Value) {
    let a = get_plain(gw.admin, "/readyz").await.expect("admin");
    (a.status.as_u16(), a.json())
}

/// Makes the lines of one kind of message, fresh each time.
type Lines<'a> = Box<dyn Fn() -> String + 'a>;

fn now() -> i64 {
    gateway_issuer::unix_now() as i64
}

/// The authority's heartbeat, appended with `prev` (the lines before it).
fn beat(gw: &Gateway, key: &FeedKey) {
    append_heartbeat(&gw.setup.feed(), &Writer::new(Some(key)), now()).expect("append");
}

async fn wait_fresh(gw: &Gateway, what: &str) {
    eventually(what, || async {
        let (s, v) = readyz(gw).await;
        (s == 200 && v["stale"] == false).then_some(())
    })
    .await;
}

/// Each kind of message that is not a sign of life, appended again and again for longer
/// than `stale_after`, leaves the gateway stale; the next fresh heartbeat restores it.
#[tokio::test]
async fn nothing_but_a_fresh_heartbeat_is_a_sign_of_life() {
    let gw = Gateway::start(Options::keyed(&["--stale-after", "1"])).await;
    let key = gw.feed_key();
    let w = Writer::new(Some(&key));
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).unwrap();
    let issuer = gw.issuer();
    let (nb, na) = (now() - 86_400, now() + 86_400);
    let key_doc = root.key_add_event_seq(&issuer.trust_entry(nb, na), Some(1));
    gw.append_feed(&format!("{key_doc}\n"));
    beat(&gw, &key);
    wait_fresh(&gw, "fresh at first").await;
    // A heartbeat that once carried a good mac, kept for a replay.
    let old_beat = w.heartbeat(now(), None);
    let sub = Sub([0x61; 16]);
    let long = format!(
        "{{\"type\":\"status\",\"pad\":\"{}\"}}",
        "x".repeat(4 << 20)
    );
    let last_long =
        std::cell::Cell::new(std::time::Instant::now() - std::time::Duration::from_secs(1));
    let last_long = &last_long;
    let kinds: Vec<(&str, Lines)> = vec![
        ("empty lines", Box::new(|| "\n   \n".to_owned())),
        (
            "an over-long line",
            // One every quarter second at most (each is 4 MiB: the feed stays small).
            Box::new(move || {
                if last_long.get().elapsed() < std::time::Duration::from_millis(250) {
                    return String::new();
                }
                last_long.set(std::time::Instant::now());
                format!("{long}\n")
            }),
        ),
        (
            "the policy in force",
            Box::new(|| format!("{}\n", root.policy_event(&reference_policy_json(1)))),
        ),
        (
            "a replayed key document",
            Box::new(move || format!("{key_doc}\n")),
        ),
        (
            "a replayed heartbeat",
            Box::new(move || format!("{old_beat}\n")),
        ),
        (
            "a heartbeat an hour old",
            Box::new(|| format!("{}\n", w.heartbeat(now() - 3600, None))),
        ),
        (
            "the authority's own status events",
            Box::new(|| format!("{}\n", w.status(&sub, Color::Green, 1, None, now()))),
        ),
        (
            "forged heartbeats",
            Box::new(|| {
                format!(
                    "{}\n",
                    Writer::new(Some(&FeedKey::new(&[1; 32]))).heartbeat(now(), None)
                )
            }),
        ),
    ];
    for (what, line) in &kinds {
        beat(&gw, &key);
        wait_fresh(&gw, &format!("fresh before {what}")).await;
        let started = std::time::Instant::now();
        let body = eventually(&format!("stale under {what}"), || async {
            gw.append_feed(&line());
            let (s, v) = readyz(&gw).await;
            (s == 503 && v["stale"] == true).then_some(v)
        })
        .await;
        assert!(
            body["reasons"].to_string().contains("feed_stale"),
            "{what}: {body}"
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(900));
        // Verification answers say so too.
        let code = gw.mint(Sub([0x62; 16]), Color::Green, 0);
        let mut c = gw.client(Protocol::H2).await;
        let v = c
            .post(
                "/v1/verify",
                &gw.api_key,
                serde_json::json!({"code": code, "venue": "bus"}).to_string(),
            )
            .await
            .json();
        assert_eq!(v["stale"], true, "{what}");
    }
    beat(&gw, &key);
    wait_fresh(&gw, "fresh again").await;
}

/// A mirror that passes heartbeats on but drops a status event is caught by the next
/// heartbeat's `prev`; an honest heartbeat clears it.
#[tokio::test]
async fn a_withheld_event_shows_as_a_feed_gap_over_the_file_feed() {
    let gw = Gateway::start(Options::keyed(&[])).await;
    let key = gw.feed_key();
    let w = Writer::new(Some(&key));
    // The authority's own file; the gateway reads a mirror of it.
    let authority = gw.dir.0.join("authority.jsonl");
    std::fs::write(&authority, b"").unwrap();
    let lines = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let sub = Sub([0x63; 16]);
    let publish = |line: String| {
        gateway_issuer::publish::append_lines(&authority, &[line]).unwrap();
    };
    append_heartbeat(&authority, &w, now()).unwrap();
    publish(w.status(&sub, Color::Yellow, 1, None, now()));
    append_heartbeat(&authority, &w, now() + 1).unwrap();
    // An honest mirror: every line.
    let copied = lines(&authority);
    gw.append_feed(&(copied.join("\n") + "\n"));
    gw.wait_stat("feed_seq", 3).await;
    let (s, v) = readyz(&gw).await;
    assert!(!v["reasons"].to_string().contains("feed_gap"), "{s} {v}");
    // The authority turns the holder red; the mirror withholds it and passes the next
    // heartbeat on.
    publish(w.status(&sub, Color::Red, 2, None, now()));
    append_heartbeat(&authority, &w, now() + 2).unwrap();
    let all = lines(&authority);
    assert!(all[3].contains("\"red\""));
    gw.append_feed(&format!("{}\n", all[4]));
    let (s, v) = eventually("feed_gap", || async {
        let (s, v) = readyz(&gw).await;
        v["reasons"]
            .to_string()
            .contains("feed_gap")
            .then_some((s, v))
    })
    .await;
    assert_eq!(s, 503, "{v}");
    // A heartbeat without a gap (written on this very file) clears it.
    eventually("no gap", || async {
        append_heartbeat(&gw.setup.feed(), &w, now() + 3).unwrap();
        let (_, v) = readyz(&gw).await;
        (!v["reasons"].to_string().contains("feed_gap")).then_some(())
    })
    .await;
}

/// A good heartbeat from beyond the skew: the gateway's clock is behind the
/// authority's; `/readyz` fails with `clock_behind` and answers say stale until a
/// heartbeat within the skew comes.
#[tokio::test]
async fn a_heartbeat_from_the_future_says_the_clock_is_behind() {
    let gw = Gateway::start(Options::keyed(&[])).await;
    let key = gw.feed_key();
    let w = Writer::new(Some(&key));
    beat(&gw, &key);
    wait_fresh(&gw, "fresh").await;
    gw.append_feed(&format!("{}\n", w.heartbeat(now() + 600, None)));
    let v = eventually("clock_behind", || async {
        let (s, v) = readyz(&gw).await;
        (s == 503 && v["reasons"].to_string().contains("clock_behind")).then_some(v)
    })
    .await;
    assert_eq!(v["stale"], true, "{v}");
    let code = gw.mint(Sub([0x64; 16]), Color::Green, 0);
    let mut c = gw.client(Protocol::H1).await;
    let a = c
        .post(
            "/v1/verify",
            &gw.api_key,
            serde_json::json!({"code": code, "venue": "bus"}).to_string(),
        )
        .await
        .json();
    assert_eq!(a["stale"], true);
    eventually("clock within skew again", || async {
        beat(&gw, &key);
        let (s, v) = readyz(&gw).await;
        (s == 200 && !v["reasons"].to_string().contains("clock_behind")).then_some(())
    })
    .await;
    let m = get_plain(gw.admin, "/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.lines().any(|l| l
            .starts_with("gateway_feed_heartbeats_ignored_total{why=\"clock_behind\"} 1")),
        "counted"
    );
}

/// The edge topology of `deploy/` with a mirror that passes only heartbeats on (a
/// mirror filtered to `jkm.heartbeat`): the gateway on the edge sees the gap as soon as
/// the authority publishes a status event between two heartbeats.
#[tokio::test]
async fn a_withheld_event_shows_as_a_feed_gap_over_a_nats_mirror() {
    use crate::support::nats::{free_port, Role};
    let leaf_port = free_port();
    let Some(hub) = NatsServer::start_in(Role::Hub { leaf_port }) else {
        return;
    };
    let Some(edge) = NatsServer::start_in(Role::Edge {
        hub_leaf_port: leaf_port,
    }) else {
        return;
    };
    hub.heartbeat().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/nats/edge-mirror-stream.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // The withholding mirror: heartbeats only.
    config["mirror"]["filter_subject"] = "jkm.heartbeat".into();
    let config: async_nats::jetstream::stream::Config = serde_json::from_value(config).unwrap();
    let client = async_nats::connect(edge.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .create_stream(config)
        .await
        .expect("the filtered mirror");
    let site = Gateway::start(Options {
        feed_source: Some(edge.feed()),
        ..Options::default()
    })
    .await;
    // Heartbeats alone: no gap. (Positions at the edge are the mirror's: wait on the
    // count of messages applied.)
    site.wait_stat("feed_applied", 1).await;
    hub.heartbeat().await;
    site.wait_stat("feed_applied", 2).await;
    let (_, v) = readyz(&site).await;
    assert!(!v["reasons"].to_string().contains("feed_gap"), "{v}");
    // A status event the mirror withholds, then a heartbeat.
    let line = gateway_issuer::events::PLAIN.status(&Sub([0x65; 16]), Color::Red, 2, None, now());
    hub.publish(vec![line]).await;
    hub.heartbeat().await;
    let (s, v) = eventually("feed_gap at the edge", || async {
        let (s, v) = readyz(&site).await;
        v["reasons"]
            .to_string()
            .contains("feed_gap")
            .then_some((s, v))
    })
    .await;
    assert_eq!(s, 503, "{v}");
}

/// Every warning a feed can cause is logged at a bounded rate: thousands of replays of
/// the policy in force (not newer), over-long lines, forged heartbeats and stale ones
/// leave the log at a few kilobytes, every one counted in the metrics.
#[tokio::test]
async fn a_poisoned_feed_cannot_flood_the_log() {
    let gw = Gateway::start(Options {
        capture_log: true,
        ..Options::keyed(&[])
    })
    .await;
    let key = gw.feed_key();
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).unwrap();
    let before = gw.log_bytes();
    let policy = root.policy_event(&reference_policy_json(1));
    let forged = Writer::new(Some(&FeedKey::new(&[1; 32]))).heartbeat(now(), None);
    let old = Writer::new(Some(&key)).heartbeat(now() - 3600, None);
    let long = "x".repeat((4 << 20) + 10);
    let mut lines = String::new();
    for _ in 0..500 {
        for l in [&policy, &forged, &old] {
            lines.push_str(l);
            lines.push('\n');
        }
    }
    for _ in 0..20 {
        lines.push_str(&long);
        lines.push('\n');
    }
    gw.append_feed(&lines);
    gw.wait_stat("feed_seq", 1520).await;
    let grew = gw.log_bytes() - before;
    assert!(grew < 32 * 1024, "the log grew by {grew} bytes");
    let m = get_plain(gw.admin, "/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains("gateway_log_suppressed_total"),
        "suppressed lines counted"
    );
    let suppressed: f64 = text
        .lines()
        .find(|l| l.starts_with("gateway_log_suppressed_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(suppressed > 1000.0, "{suppressed} lines held back");
}
