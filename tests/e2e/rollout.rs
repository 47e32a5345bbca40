//! Rolling a policy out (`policy.md` revision 4) against the real binary: a scheduled
//! policy switches on two gateways of one feed at its `not_before` (within a second of
//! the time and of each other), survives a restart before its time (the snapshot keeps
//! it), and a shadow policy counts from real traffic what it would change while the
//! answers stay the policy in force's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gateway_core::policy::reference_policy_json;
use gateway_core::trust::format_time;
use gateway_core::{Color, Sub};

use crate::support::client::{get_plain, Protocol};
use crate::support::{eventually, Gateway, Options};

/// Version 1 (the development setup's) with `supermarket` admitting yellow with a mask,
/// at `version`, with `extra` fields.
fn yellow_shopping(version: u64, extra: &[(&str, serde_json::Value)]) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&reference_policy_json(version)).expect("reference");
    v["venues"]["supermarket"]["yellow"] = "allow_mask".into();
    for (k, x) in extra {
        v[*k] = x.clone();
    }
    v.to_string()
}

fn signed_event(gw: &Gateway, json: &str) -> String {
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).expect("root");
    format!("{}\n", root.policy_event(json))
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

async fn readyz(gw: &Gateway) -> serde_json::Value {
    get_plain(gw.admin, "/readyz").await.expect("admin").json()
}

/// The answer for `code` at a supermarket over `proto`.
async fn at_market(gw: &Gateway, proto: Protocol, code: &str) -> serde_json::Value {
    let mut c = gw.client(proto).await;
    let body = serde_json::json!({"code": code, "venue": "supermarket"}).to_string();
    let a = c.post("/v1/verify", &gw.api_key, body).await;
    assert_eq!(a.status, 200);
    a.json()
}

/// Polls `/readyz` until the policy in force is `version`; the wall clock (ms) when it
/// first was.
async fn switched_at(gw: &Gateway, version: u64) -> u128 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if readyz(gw).await["policy_version"] == version {
            return unix_ms();
        }
        assert!(Instant::now() < deadline, "no switch to {version}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn two_gateways_switch_at_not_before() {
    let a = Gateway::start(Options::default()).await;
    let b = Gateway::start(Options {
        reuse: Some(a.dir.clone()),
        feed_source: Some(format!("file:{}", a.setup.feed().display())),
        ..Options::default()
    })
    .await;
    let yellow = a.mint(Sub([0x51; 16]), Color::Yellow, 0);
    let before = at_market(&a, Protocol::H1, &yellow).await;
    assert_eq!(
        (
            before["decision"].as_str(),
            before["policy_version"].as_u64()
        ),
        (Some("deny"), Some(1))
    );
    // A whole second at least 3 s ahead.
    let t = (unix_ms() / 1000 + 4) as i64;
    a.append_feed(&signed_event(
        &a,
        &yellow_shopping(2, &[("not_before", format_time(t).into())]),
    ));
    for gw in [&a, &b] {
        eventually("the pending policy shown", || async {
            let r = readyz(gw).await;
            (r["pending_policy"]["version"] == 2
                && r["pending_policy"]["not_before"] == format_time(t)
                && r["policy_version"] == 1)
                .then_some(())
        })
        .await;
        let s = gw.status().await;
        assert_eq!(s["pending_policy"]["version"], 2);
        assert!(s["shadow_policy_version"].is_null());
    }
    // Still the policy in force before the time.
    assert_eq!(
        at_market(&b, Protocol::H2, &yellow).await["decision"],
        "deny"
    );
    let (ta, tb) = tokio::join!(switched_at(&a, 2), switched_at(&b, 2));
    let t_ms = t as u128 * 1000;
    println!(
        "not_before {t_ms} ms; gateway a switched at +{} ms, b at +{} ms",
        ta as i128 - t_ms as i128,
        tb as i128 - t_ms as i128
    );
    for (name, at) in [("a", ta), ("b", tb)] {
        assert!(at + 50 >= t_ms, "{name} switched {} ms early", t_ms - at);
        assert!(at < t_ms + 1000, "{name} switched {} ms late", at - t_ms);
    }
    assert!(ta.abs_diff(tb) < 1000);
    for (gw, proto) in [(&a, Protocol::H1), (&b, Protocol::H3)] {
        let after = at_market(gw, proto, &yellow).await;
        assert_eq!(after["decision"], "allow");
        assert_eq!(after["conditions"], serde_json::json!(["mask"]));
        assert_eq!(after["policy_version"], 2);
        let r = readyz(gw).await;
        assert!(r["pending_policy"].is_null(), "{r}");
    }
    // The switch shows in the metrics of the versions held.
    let m = get_plain(a.admin, "/metrics").await.expect("metrics");
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("gateway_policy_version 2"), "{text}");
    assert!(text.contains("gateway_policy_pending_version 0"));
}

#[tokio::test]
async fn a_restart_before_the_time_still_switches_at_it() {
    let mut a = Gateway::start(Options::default()).await;
    let t = (unix_ms() / 1000 + 8) as i64;
    a.append_feed(&signed_event(
        &a,
        &yellow_shopping(2, &[("not_before", format_time(t).into())]),
    ));
    eventually("pending", || async {
        (readyz(&a).await["pending_policy"]["version"] == 2).then_some(())
    })
    .await;
    let metrics = get_plain(a.admin, "/metrics").await.expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("gateway_policy_pending_version 2"), "{text}");
    assert!(text.contains(&format!("gateway_policy_pending_not_before_seconds {t}")));
    let dir = a.dir.clone();
    a.terminate();
    a.wait_exit().await;
    drop(a);
    assert!(
        unix_ms() < t as u128 * 1000,
        "the restart must come before the time"
    );
    let b = Gateway::start(Options {
        reuse: Some(dir),
        ..Options::default()
    })
    .await;
    assert!(
        b.stat("feed_resumed_from").await > 0,
        "resumed from the snapshot"
    );
    assert_eq!(
        b.stat("feed_applied").await,
        0,
        "nothing replayed: the pending policy came from the snapshot"
    );
    let r = readyz(&b).await;
    assert_eq!(r["pending_policy"]["version"], 2, "{r}");
    assert_eq!(r["policy_version"], 1);
    let at = switched_at(&b, 2).await;
    let t_ms = t as u128 * 1000;
    assert!(
        at + 50 >= t_ms && at < t_ms + 1000,
        "switched at {at}, due {t_ms}"
    );
}

#[tokio::test]
async fn a_shadow_counts_what_it_would_change_and_answers_stay() {
    let gw = Gateway::start(Options::default()).await;
    gw.append_feed(&signed_event(
        &gw,
        &yellow_shopping(2, &[("shadow", true.into())]),
    ));
    eventually("shadow shown", || async {
        let r = readyz(&gw).await;
        (r["shadow_policy_version"] == 2 && r["policy_version"] == 1).then_some(())
    })
    .await;
    assert_eq!(gw.status().await["shadow_policy_version"], 2);
    let yellow = gw.mint(Sub([0x52; 16]), Color::Yellow, 0);
    let green = gw.mint(Sub([0x53; 16]), Color::Green, 0);
    // Over every protocol: the answers are the policy in force's, and say nothing of
    // the shadow.
    for proto in crate::support::client::ALL {
        for _ in 0..3 {
            let y = at_market(&gw, proto, &yellow).await;
            assert_eq!(
                (y["decision"].as_str(), y["policy_version"].as_u64()),
                (Some("deny"), Some(1)),
                "{y}"
            );
            assert!(!y.to_string().contains("shadow"));
            assert_eq!(at_market(&gw, proto, &green).await["decision"], "allow");
        }
    }
    // A batch of two yellows and a green, and a yellow at the bus (same outcome in both
    // tables: not counted).
    let mut c = gw.client(Protocol::H2).await;
    let batch = serde_json::json!([
        {"code": yellow, "venue": "supermarket"},
        {"code": yellow, "venue": "supermarket"},
        {"code": green, "venue": "supermarket"},
        {"code": yellow, "venue": "bus"},
    ]);
    let a = c
        .post("/v1/verify/batch", &gw.api_key, batch.to_string())
        .await;
    assert_eq!(a.status, 200);
    // A green holder with a yellow companion: the companion is compared like a holder.
    let now = gateway_issuer::unix_now();
    let group = gw
        .issuer()
        .mint(&gateway_core::token::NewClaims {
            iss: "CN-33".into(),
            sub: Sub([0x54; 16]),
            iat: now - 10,
            exp: now + 3600,
            cti: vec![0x54; 12],
            color: Color::Green,
            ver: 0,
            why: None,
            kind: None,
            with: Some(vec![gateway_core::token::Companion {
                sub: Sub([0x55; 16]),
                color: Color::Yellow,
                ver: 0,
            }]),
            status: None,
        })
        .expect("mint");
    let g = at_market(&gw, Protocol::H1, &group).await;
    assert_eq!(g["companions"][0]["decision"], "deny", "{g}");
    let counted = |text: &str| -> u64 {
        text.lines()
            .find(|l| {
                l.starts_with("gateway_policy_shadow_total{")
                    && l.contains("venue=\"supermarket\"")
                    && l.contains("from=\"deny\"")
                    && l.contains("to=\"allow_mask\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let m = get_plain(gw.admin, "/metrics").await.expect("metrics");
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert_eq!(counted(&text), 9 + 2 + 1, "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("gateway_policy_shadow_total{"))
            .count(),
        1,
        "only the difference is a series: {text}"
    );
    assert!(text.contains("gateway_policy_shadow_version 2"));
    // A policy that takes force ends the shadow: nothing more is counted.
    gw.append_feed(&signed_event(&gw, &reference_policy_json(3)));
    eventually("shadow ended", || async {
        let r = readyz(&gw).await;
        (r["policy_version"] == 3 && r["shadow_policy_version"].is_null()).then_some(())
    })
    .await;
    assert_eq!(
        at_market(&gw, Protocol::H1, &yellow).await["decision"],
        "deny"
    );
    let m = get_plain(gw.admin, "/metrics").await.expect("metrics");
    assert_eq!(counted(&String::from_utf8_lossy(&m.body)), 12);
}

/// The policy a gateway starts on must decide: a shadow document there is a fatal
/// configuration error naming the file.
#[test]
fn a_shadow_policy_file_is_refused_at_start() {
    let dir = crate::support::TempDir::new("shadow-boot");
    let setup = gateway_issuer::DevSetup::new(&dir.0.join("state"));
    setup.ensure().expect("dev setup");
    let root = gateway_issuer::keys::read_root_signer(&setup.root_seed()).expect("root");
    let shadow = yellow_shopping(2, &[("shadow", true.into())]);
    let file = dir.0.join("shadow-policy.cose");
    std::fs::write(&file, root.sign_doc(shadow.as_bytes())).expect("write");
    let path = |p: std::path::PathBuf| p.display().to_string();
    let (code, err) = crate::support::run_cli(&[
        "serve",
        "--trust",
        &path(setup.trust()),
        "--root-key",
        &path(setup.root_pub()),
        "--policy",
        &path(file.clone()),
        "--callers",
        &path(setup.callers()),
        "--tls-cert",
        &path(setup.cert()),
        "--tls-key",
        &path(setup.key()),
        "--state-dir",
        &path(setup.dir.clone()),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("shadow-policy.cose") && err.contains("shadow"),
        "{err}"
    );
}
