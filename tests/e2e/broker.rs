//! The broker as a guard (issue: nobody but the authority changes a decision): the
//! hub cluster of `deploy/nats/` with TLS on every port and the roles of `users.conf`.
//! A gateway's key replays and follows the stream but cannot publish an event or
//! touch the stream.

use gateway_core::{Color, Sub};
use gateway_issuer::events::PLAIN;
use gateway_issuer::publish::subject_of;

use crate::support::client::{get_plain, Protocol};
use crate::support::nats::{DeployCluster, PREFIX, STREAM};
use crate::support::{eventually, Gateway, Options};

fn sub(i: u32) -> Sub {
    let mut s = [0xB7u8; 16];
    s[..4].copy_from_slice(&i.to_le_bytes());
    Sub(s)
}

fn status(i: u32, color: Color, ver: u64) -> String {
    PLAIN.status(&sub(i), color, ver, None, gateway_issuer::unix_now() as i64)
}

async fn decide(gw: &Gateway, code: &str) -> String {
    let mut c = gw.client(Protocol::H2).await;
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    let a = c.post("/v1/verify", &gw.api_key, body).await;
    assert_eq!(a.status, 200);
    a.json()["decision"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn deploy_broker_lets_a_gateway_read_the_stream_and_nothing_more() {
    let Some((cluster, files)) = DeployCluster::start().await else {
        return;
    };
    let mut lines: Vec<String> = (0..20).map(|i| status(i, Color::Green, 1)).collect();
    lines.push(status(7, Color::Red, 2));
    let last = cluster
        .publish(&files, lines)
        .await
        .expect("authority publishes");

    // A gateway with its own key, over TLS, on another node of the cluster.
    let gw = Gateway::start(Options {
        feed_source: Some(format!("{}/{STREAM}", cluster.url(1))),
        args: vec![
            "--nats-nkey".into(),
            files.gateway_seed().display().to_string(),
            "--nats-ca".into(),
            files.ca().display().to_string(),
        ],
        ..Options::default()
    })
    .await;
    gw.wait_stat("feed_seq", last).await;
    assert_eq!(
        gw.stat("feed_head").await,
        last,
        "the head probe reads the stream"
    );
    assert_eq!(decide(&gw, &gw.mint(sub(7), Color::Green, 1)).await, "deny");
    let code8 = gw.mint(sub(8), Color::Green, 1);
    assert_eq!(decide(&gw, &code8).await, "allow");
    let ready = get_plain(gw.admin, "/readyz").await.expect("admin answers");
    assert_eq!(ready.status, 200, "{:?}", ready.json());

    // It follows: subject 8 turns red.
    let last = cluster
        .publish(&files, vec![status(8, Color::Red, 2)])
        .await
        .expect("authority publishes");
    gw.wait_stat("feed_seq", last).await;
    assert_eq!(decide(&gw, &code8).await, "deny");

    // A gateway at the edge site reads the leaf node's mirror (over the TLS leaf link).
    cluster.mirror_at_edge(&files).await;
    let site = Gateway::start(Options {
        feed_source: Some(format!("{}/{STREAM}", cluster.edge_url())),
        args: vec![
            "--nats-nkey".into(),
            files.gateway_seed().display().to_string(),
            "--nats-ca".into(),
            files.ca().display().to_string(),
        ],
        ..Options::default()
    })
    .await;
    site.wait_stat("feed_seq", last).await;
    assert_eq!(decide(&site, &code8).await, "deny");

    // The gateway's key tries to turn subject 8 green again, at a hub and at the edge
    // (where an event would travel to the hub over the leaf link), and to wipe the stream.
    let seed = std::fs::read_to_string(files.gateway_seed()).expect("seed");
    for (url, ver) in [(cluster.url(0), 3), (cluster.edge_url(), 4)] {
        let refusal = refused_publish(&url, &seed, &files.ca(), status(8, Color::Green, ver)).await;
        assert!(
            refusal.to_lowercase().contains("permissions violation"),
            "{url}: {refusal}"
        );
    }
    let thief = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .add_root_certificates(files.ca())
        .require_tls(true)
        .connect(cluster.url(0))
        .await
        .expect("the gateway's key connects");
    let js = async_nats::jetstream::new(thief);
    assert!(
        js.delete_stream(STREAM).await.is_err(),
        "stream delete refused"
    );
    let mut stream = js.get_stream(STREAM).await.expect("stream info is allowed");
    assert!(stream.purge().await.is_err(), "stream purge refused");

    // The edge site's link may not carry an event to the hub either: even the
    // authority's key, writing at the edge, reaches no stream. (An event allowed through
    // lands within milliseconds; the hub's head is watched for two seconds.)
    let at_edge = gateway::feed::nats::connect(&cluster.edge_url(), &files.authority())
        .await
        .expect("the authority connects at the edge");
    let forged = status(8, Color::Green, 5);
    at_edge
        .publish(subject_of(PREFIX, &forged), forged.into())
        .await
        .expect("sent");
    at_edge.flush().await.expect("the edge took it");
    let watch_until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < watch_until {
        let head = gateway::feed::nats::head(&cluster.url(0), STREAM, &files.authority()).await;
        assert_eq!(
            head.map(|h| h.0),
            Some(last),
            "an event written at the edge reached the hub"
        );
    }

    // Nothing landed: the authority sees the same head, both gateways the same decision.
    let head = gateway::feed::nats::head(&cluster.url(2), STREAM, &files.authority()).await;
    assert_eq!(head.map(|h| h.0), Some(last));
    assert_eq!(stream.info().await.expect("info").state.last_sequence, last);
    for g in [&gw, &site] {
        assert_eq!(decide(g, &code8).await, "deny");
        assert_eq!(g.stat("feed_seq").await, last);
    }

    // The edge site's user is named by its certificate on the leaf port only: on the
    // client port, its name without a certificate is no login.
    for url in [cluster.url(0), cluster.edge_url()] {
        let r = async_nats::ConnectOptions::with_user_and_password(
            "CN=edge-depot-1".into(),
            String::new(),
        )
        .add_root_certificates(files.ca())
        .require_tls(true)
        .connect(url.as_str())
        .await;
        assert!(r.is_err(), "{url}: the leaf user logged in as a client");
    }
}

/// Publishes `line` with the NKey `seed` at `url` and returns the server's error about it
/// (waited for with the deadline).
async fn refused_publish(url: &str, seed: &str, ca: &std::path::Path, line: String) -> String {
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .add_root_certificates(ca.to_owned())
        .require_tls(true)
        .event_callback(move |ev| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = ev {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .expect("the key connects");
    client
        .publish(subject_of(PREFIX, &line), line.into())
        .await
        .expect("sent");
    client.flush().await.expect("flushed");
    eventually("the broker refuses the publish", || {
        let got = errors.try_recv().ok();
        async move { got }
    })
    .await
}
