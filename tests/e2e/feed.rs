//! The change stream at work: NATS JetStream (a real `nats-server` started here, killed
//! and restarted for fault tests) and the file feed, with snapshots and restarts.

use gateway_core::{Color, Sub};
use gateway_issuer::events::PLAIN;
use gateway_issuer::mint::RootSigner;

use crate::support::client::{get_plain, Protocol};
use crate::support::nats::NatsServer;
use crate::support::{eventually, Gateway, Options};

fn sub(i: u32) -> Sub {
    let mut s = [0x5Au8; 16];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s[8..12].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
    Sub(s)
}

fn status(i: u32, color: Color, ver: u64) -> String {
    PLAIN.status(&sub(i), color, ver, None, gateway_issuer::unix_now() as i64)
}

fn statuses(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| status(i, Color::Green, 1)).collect()
}

fn nats_options(nats: &NatsServer, extra: &[&str]) -> Options {
    Options {
        feed_source: Some(nats.feed()),
        args: extra.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    }
}

/// (decision, stale) for a code at a bus gate, over HTTP/2.
async fn verify(gw: &Gateway, code: &str) -> (String, bool) {
    let mut c = gw.client(Protocol::H2).await;
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    let a = c.post("/v1/verify", &gw.api_key, body).await;
    assert_eq!(a.status, 200);
    let v = a.json();
    (
        v["decision"].as_str().unwrap().to_owned(),
        v["stale"].as_bool().unwrap(),
    )
}

async fn readyz(gw: &Gateway) -> (u16, serde_json::Value) {
    let a = get_plain(gw.admin, "/readyz").await.expect("admin answers");
    (a.status.as_u16(), a.json())
}

#[tokio::test]
async fn nats_replay_then_a_subject_turned_red_is_denied() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let mut lines = statuses(0..100);
    lines.push(status(7, Color::Red, 2));
    let last = nats.publish(lines).await;
    let gw = Gateway::start(nats_options(&nats, &[])).await;
    gw.wait_stat("feed_seq", last).await;
    assert_eq!(gw.stat("status_set_size").await, 100);
    assert_eq!(gw.stat("feed_head").await, last);
    // Subject 7 turned red (version 2) after its green code (version 1) was issued.
    assert_eq!(
        verify(&gw, &gw.mint(sub(7), Color::Green, 1)).await.0,
        "deny"
    );
    let code8 = gw.mint(sub(8), Color::Green, 1);
    assert_eq!(verify(&gw, &code8).await, ("allow".into(), false));
    // Live: subject 8 turns red now.
    let last = nats.publish(vec![status(8, Color::Red, 2)]).await;
    gw.wait_stat("feed_seq", last).await;
    assert_eq!(verify(&gw, &code8).await.0, "deny");
    let m = get_plain(gw.admin, "/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&m.body);
    for name in [
        "gateway_feed_head",
        "gateway_feed_lag_messages",
        "gateway_feed_lag_seconds",
        "gateway_feed_apply_rate",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn broker_killed_mid_stream_then_restarted_loses_and_doubles_nothing() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    nats.publish(statuses(0..10)).await;
    let gw = Gateway::start(nats_options(&nats, &["--stale-after", "2"])).await;
    gw.wait_stat("feed_applied", 10).await;
    let code = gw.mint(sub(3), Color::Green, 1);

    nats.kill();
    // Still answering from the set it has, and saying it is stale once 2 s pass.
    let (code_503, body) = eventually("/readyz 503 feed_stale", || async {
        let r = readyz(&gw).await;
        (r.0 == 503 && r.1["reasons"].to_string().contains("feed_stale")).then_some(r)
    })
    .await;
    assert_eq!(code_503, 503, "{body}");
    assert_eq!(verify(&gw, &code).await, ("allow".into(), true));

    nats.restart();
    let last = nats.publish(statuses(10..20)).await;
    gw.wait_stat("feed_seq", last).await;
    assert_eq!(gw.stat("feed_applied").await, 20, "nothing lost or doubled");
    assert_eq!(gw.stat("feed_rejected").await, 0);
    assert_eq!(gw.stat("status_set_size").await, 20);
    // Events alone are no sign of life (feed.md revision 4): still stale.
    let (s, body) = readyz(&gw).await;
    assert_eq!(s, 503, "{body}");
    let last = nats.publish(vec![status(3, Color::Red, 2)]).await;
    gw.wait_stat("feed_seq", last).await;
    assert_eq!(verify(&gw, &code).await, ("deny".into(), true));
    // The authority's next heartbeat restores readiness.
    let last = nats.heartbeat().await;
    gw.wait_stat("feed_seq", last).await;
    eventually("ready again", || async {
        let r = readyz(&gw).await;
        (r.0 == 200).then_some(())
    })
    .await;
    assert_eq!(verify(&gw, &code).await, ("deny".into(), false));
}

/// Flips one byte in the middle of a file.
fn damage(path: &std::path::Path) {
    let mut b = std::fs::read(path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

#[tokio::test]
async fn restarts_resume_from_the_snapshot_and_a_damaged_one_falls_back() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let first = nats.publish(statuses(0..50)).await;
    let mut a = Gateway::start(nats_options(&nats, &[])).await;
    a.wait_stat("feed_seq", first).await;
    a.terminate();
    assert!(a.wait_exit().await.success());
    assert_eq!(
        a.snapshot_files().len(),
        1,
        "a snapshot is written at shutdown"
    );
    let dir = a.dir.clone();
    drop(a);

    let last = nats.publish(statuses(50..55)).await;
    let reuse = |d: &std::sync::Arc<crate::support::TempDir>| Options {
        reuse: Some(d.clone()),
        ..nats_options(&nats, &[])
    };
    let mut b = Gateway::start(reuse(&dir)).await;
    b.wait_stat("feed_seq", last).await;
    assert_eq!(b.stat("feed_resumed_from").await, first);
    assert_eq!(
        b.stat("feed_applied").await,
        5,
        "only what came after the snapshot"
    );
    assert_eq!(b.stat("status_set_size").await, 55);
    b.terminate();
    assert!(b.wait_exit().await.success());
    let files = b.snapshot_files();
    assert_eq!(files.len(), 2, "the newest two are kept: {files:?}");
    drop(b);

    // The newest is damaged: the one before it is used.
    damage(&files[1]);
    let mut c = Gateway::start(reuse(&dir)).await;
    c.wait_stat("feed_seq", last).await;
    assert_eq!(c.stat("feed_resumed_from").await, first);
    assert_eq!(c.stat("feed_applied").await, 5);
    c.terminate();
    assert!(c.wait_exit().await.success());
    let files = c.snapshot_files();
    drop(c);

    // Every snapshot damaged: a full replay, and the same state.
    for f in &files {
        damage(f);
    }
    let d = Gateway::start(reuse(&dir)).await;
    d.wait_stat("feed_seq", last).await;
    assert_eq!(d.stat("feed_resumed_from").await, 0);
    assert_eq!(d.stat("feed_applied").await, 55);
    assert_eq!(d.stat("status_set_size").await, 55);
    let m = get_plain(d.admin, "/metrics").await.unwrap();
    assert!(String::from_utf8_lossy(&m.body).contains("gateway_snapshot_refused_total"));
}

#[tokio::test]
async fn two_gateways_on_one_stream_converge() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    nats.publish(statuses(0..30)).await;
    let a = Gateway::start(nats_options(&nats, &[])).await;
    // A second instance (its own state directory) trusting the same issuer.
    let trust = a.setup.trust();
    let b = Gateway::start(Options {
        prepare: Some(Box::new(move |setup| {
            std::fs::copy(&trust, setup.trust()).unwrap();
        })),
        ..nats_options(&nats, &[])
    })
    .await;
    let mut more: Vec<String> = (0..30)
        .filter(|i| i % 3 == 0)
        .map(|i| status(i, Color::Red, 2))
        .collect();
    more.push(status(1, Color::Yellow, 2));
    let last = nats.publish(more).await;
    a.wait_stat("feed_seq", last).await;
    b.wait_stat("feed_seq", last).await;
    for i in 0..30 {
        // The same code (minted once) at both gateways.
        let code = a.mint(sub(i), Color::Green, 1);
        let (da, db) = (verify(&a, &code).await, verify(&b, &code).await);
        assert_eq!(da, db, "subject {i}");
        let want = if i % 3 == 0 { "deny" } else { "allow" };
        assert_eq!(da.0, want, "subject {i}");
    }
}

#[tokio::test]
async fn poison_messages_are_skipped_and_counted() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    nats.publish(statuses(0..3)).await;
    let gw = Gateway::start(nats_options(&nats, &[])).await;
    nats.publish_raw("jkm.junk.1", b"{not json").await;
    nats.publish_raw("jkm.junk.2", b"{\"type\":\"status\",\"sub\":\"short\"}")
        .await;
    // A policy signed by some other root key.
    let stranger = RootSigner::from_seed(&[9; 32]);
    let forged = stranger.policy_event(&gateway_core::policy::reference_policy_json(99));
    nats.publish(vec![forged]).await;
    let last = nats.publish(vec![status(1, Color::Red, 2)]).await;
    gw.wait_stat("feed_seq", last).await;
    assert_eq!(gw.stat("feed_rejected").await, 3);
    assert_eq!(gw.stat("feed_applied").await, 4);
    assert_eq!(gw.stat("policy_version").await, 1, "forged policy refused");
    assert_eq!(
        verify(&gw, &gw.mint(sub(1), Color::Green, 1)).await.0,
        "deny"
    );
    let m = get_plain(gw.admin, "/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("gateway_feed_rejected_total{kind="), "{text}");
}

#[tokio::test]
async fn file_feed_resumes_from_its_snapshot() {
    let feed: String = statuses(0..20).iter().map(|l| format!("{l}\n")).collect();
    let mut a = Gateway::start(Options {
        feed,
        ..Options::default()
    })
    .await;
    a.wait_stat("feed_seq", 20).await;
    a.terminate();
    assert!(a.wait_exit().await.success());
    a.append_feed(&format!(
        "{}\n{}\n",
        status(20, Color::Green, 1),
        status(4, Color::Red, 2)
    ));
    let dir = a.dir.clone();
    drop(a);
    let b = Gateway::start(Options {
        reuse: Some(dir),
        ..Options::default()
    })
    .await;
    b.wait_stat("feed_seq", 22).await;
    assert_eq!(b.stat("feed_resumed_from").await, 20);
    assert_eq!(b.stat("feed_applied").await, 2);
    assert_eq!(b.stat("status_set_size").await, 21);
    assert_eq!(verify(&b, &b.mint(sub(4), Color::Green, 1)).await.0, "deny");
}

#[tokio::test]
async fn publish_command_runs_the_color_rules_and_refuses_bad_input_whole() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let first = nats.publish(statuses(0..1)).await;
    let gw = Gateway::start(nats_options(&nats, &[])).await;
    gw.wait_stat("feed_seq", first).await;
    let state = gw.setup.dir.display().to_string();
    let facts = gw.dir.0.join("facts.jsonl");
    let s9 = gateway_core::b64::encode(&sub(9).0);
    let s10 = gateway_core::b64::encode(&sub(10).0);
    let s11 = gateway_core::b64::encode(&sub(11).0);
    std::fs::write(
        &facts,
        format!(
            "{{\"sub\":\"{s9}\",\"fact\":\"close_contact\"}}\n\
             {{\"sub\":\"{s10}\",\"fact\":\"fever\"}}\n\
             {{\"sub\":\"{s10}\",\"fact\":\"fever_gone\"}}\n\
             {{\"card_kind\":\"id_card\",\"number\":\"33010619800101001X\",\"fact\":\"returned_from_abroad\"}}\n\
             {{\"sub\":\"{s11}\",\"fact\":\"diagnosed\",\"case\":\"confirmed\"}}\n"
        ),
    )
    .unwrap();
    let to = nats.feed();
    let (code, err) = crate::support::run_cli(&[
        "publish",
        "--state-dir",
        &state,
        "--to",
        &to,
        "--facts",
        &facts.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    // Five changes: 9 red (v1), 10 yellow (v1) then green (v2), the card holder red (v1),
    // 11 red (v1).
    gw.wait_stat("feed_seq", first + 5).await;
    // The registry keeps which facts hold and the version: not the color, not the kind of
    // a case (that needs --with-why), never the number.
    let registry = std::fs::read_to_string(gw.setup.dir.join("registry.json")).unwrap();
    for word in ["confirmed", "color", "33010619800101001X"] {
        assert!(!registry.contains(word), "{word} in {registry}");
    }
    assert!(
        registry.contains(&s11) && registry.contains("\"case\""),
        "{registry}"
    );
    let code9 = gw.mint(sub(9), Color::Green, 0);
    assert_eq!(verify(&gw, &code9).await.0, "deny");
    let code10 = gw.mint(sub(10), Color::Green, 2);
    assert_eq!(verify(&gw, &code10).await.0, "allow");
    // The rules' state persists: a completed quarantine turns 9 green at version 2.
    std::fs::write(
        &facts,
        format!("{{\"sub\":\"{s9}\",\"fact\":\"quarantine_completed\"}}\n"),
    )
    .unwrap();
    let (code, err) = crate::support::run_cli(&[
        "publish",
        "--state-dir",
        &state,
        "--to",
        &to,
        "--facts",
        &facts.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    gw.wait_stat("feed_seq", first + 6).await;
    assert_eq!(
        verify(&gw, &gw.mint(sub(9), Color::Green, 2)).await.0,
        "allow"
    );

    // A file with one bad line publishes nothing.
    let events = gw.dir.0.join("events.jsonl");
    std::fs::write(
        &events,
        format!("{}\n{{\"type\":\"status\"}}\n", status(11, Color::Red, 1)),
    )
    .unwrap();
    let (code, err) = crate::support::run_cli(&[
        "publish",
        "--state-dir",
        &state,
        "--to",
        &to,
        "--events",
        &events.display().to_string(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(
        nats.publish(vec![status(12, Color::Red, 1)]).await,
        first + 7
    );
}

/// The edge topology of `deploy/`: a hub with JetStream domain `hub`, a leaf node with
/// its own domain whose stream `JKM` is a mirror of the hub's, created from
/// `deploy/nats/edge-mirror-stream.json` itself. A gateway on the hub and one on the edge
/// reach the same positions (a mirror keeps the origin's sequence numbers) and the same
/// decisions; with the hub down the edge gateway keeps answering; when the hub returns,
/// new events reach the edge.
#[tokio::test]
async fn an_edge_leaf_mirror_follows_the_hub() {
    use crate::support::nats::{free_port, Role};
    let leaf_port = free_port();
    let Some(mut hub) = NatsServer::start_in(Role::Hub { leaf_port }) else {
        return;
    };
    let Some(edge) = NatsServer::start_in(Role::Edge {
        hub_leaf_port: leaf_port,
    }) else {
        return;
    };
    let last = hub.publish(statuses(0..50)).await;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/nats/edge-mirror-stream.json");
    let config: async_nats::jetstream::stream::Config =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let client = async_nats::connect(edge.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .create_stream(config)
        .await
        .expect("the mirror stream of deploy/ is created on the edge");

    let central = Gateway::start(nats_options(&hub, &[])).await;
    let site = Gateway::start(nats_options(&edge, &["--stale-after", "2"])).await;
    central.wait_stat("feed_seq", last).await;
    site.wait_stat("feed_seq", last).await;
    assert_eq!(site.stat("status_set_size").await, 50);

    let code = site.mint(sub(9), Color::Green, 1);
    let other = site.mint(sub(10), Color::Green, 1);
    let last = hub.publish(vec![status(9, Color::Red, 2)]).await;
    central.wait_stat("feed_seq", last).await;
    site.wait_stat("feed_seq", last).await;
    assert_eq!(verify(&central, &code).await.0, "deny");
    assert_eq!(verify(&site, &code).await.0, "deny");

    // The hub goes down: the site keeps answering from its own broker's mirror.
    hub.kill();
    assert_eq!(verify(&site, &other).await.0, "allow");
    hub.restart();
    let last = hub.publish(vec![status(10, Color::Red, 2)]).await;
    site.wait_stat("feed_seq", last).await;
    assert_eq!(
        site.stat("feed_applied").await,
        52,
        "nothing lost or doubled"
    );
    assert_eq!(verify(&site, &other).await.0, "deny");
}
