//! Fair verification (`api.md` revision 4): callers are served in turn, each bounded by
//! its share of the verification queue, gates in turn within a caller, and failed
//! signatures are paid by whoever causes them, code by code.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::token::NewClaims;
use gateway_core::{Color, Sub};
use gateway_issuer::mint::{Issuer, SigningKey};

use crate::support::client::Protocol;
use crate::support::{Gateway, Options, CARDS_KEY};

/// Codes under the development issuer's kid signed by another key: each fails its
/// signature (`bad_signature`), every time (failures are never cached).
fn forged(gw: &Gateway, n: usize, tag: u8) -> Vec<String> {
    let real = gw.issuer();
    let forger = Issuer {
        kid: real.kid.clone(),
        issuer: real.issuer.clone(),
        key: SigningKey::ed25519(&[0x66; 32]),
    };
    let now = gateway_issuer::unix_now();
    (0..n)
        .map(|i| {
            let mut sub = [tag; 16];
            sub[..4].copy_from_slice(&(i as u32).to_le_bytes());
            forger
                .mint(&NewClaims {
                    iss: "CN-33".into(),
                    sub: Sub(sub),
                    iat: now - 10,
                    exp: now + 3600,
                    cti: sub[..12].to_vec(),
                    color: Color::Green,
                    ver: 0,
                    why: None,
                    kind: None,
                    with: None,
                    status: None,
                })
                .unwrap()
        })
        .collect()
}

/// Fresh green codes (each verified cold).
fn fresh(gw: &Gateway, n: usize, tag: u8) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut sub = [tag; 16];
            sub[..4].copy_from_slice(&(i as u32).to_le_bytes());
            gw.mint(Sub(sub), Color::Green, 0)
        })
        .collect()
}

/// Sends each code once over one HTTP/2 connection as `key`, one at a time; returns
/// each latency and panics on any answer but 200 allow.
async fn honest(gw: &Gateway, key: &str, codes: &[String], gate: Option<&str>) -> Vec<Duration> {
    let mut c = gw.client(Protocol::H2).await;
    let mut took = Vec::with_capacity(codes.len());
    for code in codes {
        let mut body = serde_json::json!({"code": code, "venue": "bus"});
        if let Some(g) = gate {
            body["gate"] = g.into();
        }
        let t = Instant::now();
        let a = c.post("/v1/verify", key, body.to_string()).await;
        took.push(t.elapsed());
        assert_eq!(a.status, 200, "an honest code refused: {:?}", a.body);
        assert_eq!(a.json()["decision"], "allow");
    }
    took
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Batches of forged codes from `connections` connections until `stop`; counts the
/// items answered 503 and the decisions made.
fn flood(
    gw: &Gateway,
    key: &'static str,
    codes: Arc<Vec<String>>,
    gate: Option<&'static str>,
    connections: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<(AtomicU64, AtomicU64)>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let body: bytes::Bytes = serde_json::to_string(
        &codes
            .iter()
            .map(|c| {
                let mut v = serde_json::json!({"code": c, "venue": "bus"});
                if let Some(g) = gate {
                    v["gate"] = g.into();
                }
                v
            })
            .collect::<Vec<_>>(),
    )
    .unwrap()
    .into();
    (0..connections)
        .map(|_| {
            let (stop, counts, body) = (stop.clone(), counts.clone(), body.clone());
            let (listen, ca) = (gw.listen, gw.ca.clone());
            tokio::spawn(async move {
                let mut c =
                    crate::support::client::Client::connect(Protocol::H2, listen, &ca).await;
                while !stop.load(Ordering::Relaxed) {
                    let a = c.post("/v1/verify/batch", key, body.clone()).await;
                    if a.status != 200 {
                        continue;
                    }
                    for item in a.json().as_array().into_iter().flatten() {
                        if item["error"] == "overloaded" {
                            counts.0.fetch_add(1, Ordering::Relaxed);
                        } else if item["reason"] == "bad_signature" {
                            counts.1.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect()
}

/// (a) Caller A floods batches of 1,000 forged codes from nine connections (more than the
/// whole queue); caller B's
/// fresh codes are all answered (no 429, no 503), and B's p99 is printed beside its
/// unloaded p99 and stays within a generous factor of it (a FIFO queue would keep B
/// behind thousands of A's failing checks).
#[tokio::test]
async fn a_forger_slows_only_its_own_answers() {
    let gw = Gateway::start(Options::default()).await;
    let bad = Arc::new(forged(&gw, 1000, 0xA1));
    // Unloaded: B alone.
    let unloaded = p99(honest(&gw, CARDS_KEY, &fresh(&gw, 100, 0xB1), None).await);
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let key: &'static str = Box::leak(gw.api_key.clone().into_boxed_str());
    let tasks = flood(&gw, key, bad, None, 9, stop.clone(), counts.clone());
    // The flood under way: thousands of A's failing checks made.
    crate::support::eventually("the forger's flood under way", || async {
        (counts.0.load(Ordering::Relaxed) + counts.1.load(Ordering::Relaxed) > 3000).then_some(())
    })
    .await;
    let loaded = p99(honest(&gw, CARDS_KEY, &fresh(&gw, 300, 0xB2), None).await);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    eprintln!(
        "fairness: honest caller p99 {:.2} ms alone, {:.2} ms beside a forger \
         ({} of the forger's items 503, {} decided bad_signature)",
        unloaded.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3,
        counts.0.load(Ordering::Relaxed),
        counts.1.load(Ordering::Relaxed),
    );
    assert!(
        loaded <= unloaded * 20 + Duration::from_millis(100),
        "the honest caller waited behind the forger: p99 {loaded:?} against {unloaded:?} alone"
    );
}

/// (b) One caller, gate g1 forging, gate g2 honest: every one of g2's codes is answered
/// 200 allow, over `/v1/verify` and over `/v1/auth` with `x-jkm-gate`.
#[tokio::test]
async fn a_forging_gate_does_not_hold_up_its_operators_other_gates() {
    let gw = Gateway::start(Options::default()).await;
    let bad = Arc::new(forged(&gw, 1000, 0xC1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let key: &'static str = Box::leak(gw.api_key.clone().into_boxed_str());
    let tasks = flood(&gw, key, bad, Some("g1"), 3, stop.clone(), counts.clone());
    crate::support::eventually("the forging gate's share full", || async {
        (counts.0.load(Ordering::Relaxed) + counts.1.load(Ordering::Relaxed) > 2000).then_some(())
    })
    .await;
    honest(&gw, &gw.api_key, &fresh(&gw, 200, 0xD1), Some("g2")).await;
    let mut c = gw.client(Protocol::H1).await;
    let auth = format!("Bearer {}", gw.api_key);
    for code in fresh(&gw, 50, 0xD2) {
        let a = c
            .send(
                http::Method::GET,
                "/v1/auth",
                &[
                    ("authorization", auth.as_str()),
                    ("x-jkm-code", code.as_str()),
                    ("x-jkm-venue", "bus"),
                    ("x-jkm-gate", "g2"),
                ],
                "",
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.headers);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    // A gate id longer than 64 bytes is refused.
    let long = "g".repeat(65);
    let body = serde_json::json!({"code": fresh(&gw, 1, 0xD3)[0], "venue": "bus", "gate": long});
    let a = c.post("/v1/verify", &gw.api_key, body.to_string()).await;
    assert_eq!(a.status, 400);
}
