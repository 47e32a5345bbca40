//! Every verify case of `spec/vectors/` over HTTP/1.1 and HTTP/2, and a sample
//! over HTTP/3, against one gateway running on the vectors' trust list and policy, with
//! the vectors' clock (`--debug-fixed-now`) and their status events and revocations in
//! its feed file (key revocations signed by the gateway's root key).

use std::path::Path;

use serde_json::{json, Value};

use crate::support::client::Protocol;
use crate::support::{Gateway, Options};

fn verify_cases() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
    {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        for c in v.as_array().into_iter().flatten() {
            if c.get("code").is_some() && c.get("expect").is_some() {
                let name = format!(
                    "{}:{}",
                    f.file_name().unwrap().to_string_lossy(),
                    c["name"].as_str().unwrap_or("?")
                );
                out.push((name, c.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_vector_over_http1_and_http2_and_a_sample_over_http3() {
    if !cfg!(debug_assertions) {
        // The vectors' clock needs `--debug-fixed-now`, which release builds lack on
        // purpose. The core's vector test (gateway-core's tests/vectors.rs) still runs
        // every vector in this build.
        eprintln!(
            "\n*** SKIPPED: the vectors over HTTP need --debug-fixed-now, which a release \
             build does not have; run `cargo test` without --release for them ***\n"
        );
        return;
    }
    let cases = verify_cases();
    assert!(cases.len() >= 180, "{} cases", cases.len());
    let first = &cases[0].1;
    let now = first["now"].as_u64().unwrap();
    assert!(
        cases.iter().all(|(_, c)| c["now"] == first["now"]
            && c["trust"] == first["trust"]
            && c["policy"] == first["policy"]),
        "this runner assumes one clock, trust list and policy for all cases"
    );
    // The feed: every case's events, in case order.
    let mut feed = String::new();
    for (_, c) in &cases {
        for ev in c["status"].as_array().into_iter().flatten() {
            feed.push_str(&format!("{ev}\n"));
        }
        for cti in c["revoked"].as_array().into_iter().flatten() {
            feed.push_str(&format!(
                "{}\n",
                json!({"type": "revoke_token", "cti": cti, "exp": now + 86_400})
            ));
        }
    }
    let mut gw = Gateway::start(Options {
        args: vec!["--debug-fixed-now".into(), now.to_string()],
        feed,
        trust: Some(first["trust"].clone()),
        dev_policy: Some(first["policy"].clone()),
        ..Options::default()
    })
    .await;
    // The frozen clock is said openly.
    let ready = crate::support::client::get_plain(gw.admin, "/readyz")
        .await
        .unwrap()
        .json();
    assert_eq!(ready["fixed_clock"], true);
    // Key revocations go through signed key events, appended now that the root is known.
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).unwrap();
    let mut lines = String::new();
    for (_, c) in &cases {
        for kid in c
            .get("revoked_keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            lines.push_str(&format!(
                "{}\n",
                root.key_revoke_event(kid.as_str().unwrap())
            ));
        }
    }
    let before = gw.status().await["feed_seq"].as_u64().unwrap();
    let added = lines.lines().count() as u64;
    gw.append_feed(&lines);
    let admin = gw.admin;
    crate::support::eventually("key revocations applied", || async move {
        let s = crate::support::client::get_plain(admin, "/v1/status")
            .await?
            .json();
        (s["feed_seq"].as_u64()? == before + added).then_some(())
    })
    .await;
    assert_eq!(gw.status().await["feed_rejected"], 0);

    let mut failures = Vec::new();
    for proto in [Protocol::H1, Protocol::H2, Protocol::H3] {
        let mut c = gw.client(proto).await;
        for (i, (name, case)) in cases.iter().enumerate() {
            if proto == Protocol::H3 && i % 7 != 0 {
                continue;
            }
            let body = json!({"code": case["code"], "venue": case["venue"]}).to_string();
            let a = c.post("/v1/verify", &gw.api_key, body).await;
            if a.status != 200 {
                failures.push(format!("{proto:?} {name}: status {}", a.status));
                continue;
            }
            let mut got = a.json();
            for k in ["policy_version", "feed_seq", "stale"] {
                got.as_object_mut().unwrap().remove(k);
            }
            if got != case["expect"] {
                failures.push(format!(
                    "{proto:?} {name}: expected {}, got {got}",
                    case["expect"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    gw.terminate();
    assert!(gw.wait_exit().await.success());
}
