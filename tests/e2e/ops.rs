//! Operations: the plaintext listener, the admin port's metrics, the feed's five event
//! types and its bad lines, the concurrency limit, the stream over HTTP/3, and the
//! threads' scheduling policy.

use bytes::Buf;
use gateway_core::policy::reference_policy_json;
use gateway_core::{Color, Sub};
use gateway_issuer::mint::RootSigner;

use crate::support::client::{get_plain, Protocol};
use crate::support::{eventually, Gateway, Options};

#[tokio::test]
async fn plaintext_listener_serves_http1_and_h2c() {
    let gw = Gateway::start(Options {
        plain: true,
        ..Options::default()
    })
    .await;
    let addr = gw.plain.expect("plain listener");
    let code = gw.mint(Sub([6; 16]), Color::Green, 1);
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    // HTTP/1.1.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("/v1/verify")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", gw.api_key))
        .body(crate::support::client::full(body.clone()))
        .unwrap();
    let resp = h1.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("alt-svc").is_none(),
        "no Alt-Svc on the plaintext listener"
    );
    // h2c by prior knowledge.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("http://localhost/v1/verify")
        .header("authorization", format!("Bearer {}", gw.api_key))
        .body(crate::support::client::full(body))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(
        (resp.status(), resp.version()),
        (http::StatusCode::OK, http::Version::HTTP_2)
    );
}

#[tokio::test]
async fn feed_applies_all_five_event_types_and_counts_bad_lines() {
    let gw = Gateway::start(Options::default()).await;
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).unwrap();
    let sub = Sub([7; 16]);
    let code = gw.mint(sub, Color::Yellow, 1);
    let mut c = gw.client(Protocol::H2).await;
    let school = serde_json::json!({"code": code, "venue": "school"}).to_string();
    assert_eq!(
        c.post("/v1/verify", &gw.api_key, school.clone())
            .await
            .json()["reason"],
        "venue_restricted"
    );
    // A newer policy admitting yellow at schools, a bad line, a forged policy, a heartbeat,
    // a key revocation for an unknown kid, a token revocation: positions 1 to 6.
    let mut doc: serde_json::Value = serde_json::from_str(&reference_policy_json(2)).unwrap();
    doc["venues"]["school"]["yellow"] = "allow".into();
    let forged = RootSigner::from_seed(&[9; 32]).policy_event(&reference_policy_json(3));
    let now = gateway_core::trust::format_time(gateway_issuer::unix_now() as i64);
    let lines = [
        root.policy_event(&doc.to_string()),
        "{not json".to_owned(),
        forged,
        serde_json::json!({"type": "heartbeat", "at": now}).to_string(),
        root.key_revoke_event("dW5rbm93bg"),
        serde_json::json!({"type": "revoke_token", "cti": gateway_core::b64::encode(&sub.0[..12]), "exp": gateway_issuer::unix_now() + 3600}).to_string(),
    ];
    gw.append_feed(&(lines.join("\n") + "\n"));
    let admin = gw.admin;
    let status = eventually("six feed positions", || async move {
        let s = get_plain(admin, "/v1/status").await?.json();
        (s["feed_seq"] == 6).then_some(s)
    })
    .await;
    assert_eq!(
        (
            status["feed_applied"].as_u64(),
            status["feed_rejected"].as_u64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(
        (
            status["policy_version"].as_u64(),
            status["revoked_keys"].as_u64()
        ),
        (Some(2), Some(1))
    );
    // The token was revoked after the policy change; the new policy is in force.
    let v = c.post("/v1/verify", &gw.api_key, school).await.json();
    assert_eq!(
        (
            v["reason"].as_str(),
            v["policy_version"].as_u64(),
            v["feed_seq"].as_u64()
        ),
        (Some("token_revoked"), Some(2), Some(6))
    );
    // A key added through the feed verifies codes at once.
    let issuer = gateway_issuer::mint::Issuer {
        kid: b"new-key".to_vec(),
        issuer: "CN-44".into(),
        key: gateway_issuer::mint::SigningKey::generate(gateway_core::cose::Alg::Es256).unwrap(),
    };
    let t = gateway_issuer::unix_now() as i64;
    gw.append_feed(&format!(
        "{}\n",
        root.key_add_event(&issuer.trust_entry(t - 60, t + 3600))
    ));
    let claims = gateway_core::token::NewClaims {
        iss: "CN-44".into(),
        sub: Sub([8; 16]),
        iat: gateway_issuer::unix_now() - 1,
        exp: gateway_issuer::unix_now() + 600,
        cti: vec![1; 8],
        color: Color::Green,
        ver: 1,
        why: None,
        kind: None,
        with: None,
        status: None,
    };
    let code = issuer.mint(&claims).unwrap();
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    let v = eventually("the new key verifies", || {
        let (gw, body) = (&gw, body.clone());
        async move {
            let v = gw
                .client(Protocol::H1)
                .await
                .post("/v1/verify", &gw.api_key, body)
                .await
                .json();
            (v["decision"] == "allow").then_some(v)
        }
    })
    .await;
    assert_eq!(v["feed_seq"], 7);
}

#[tokio::test]
async fn metrics_cover_requests_decisions_and_state_without_personal_data() {
    let gw = Gateway::start(Options::default()).await;
    let code = gw.mint(Sub([10; 16]), Color::Red, 1);
    for proto in [Protocol::H1, Protocol::H3] {
        let mut c = gw.client(proto).await;
        c.post(
            "/v1/verify",
            &gw.api_key,
            serde_json::json!({"code": code, "venue": "bus"}).to_string(),
        )
        .await;
        c.post("/v1/verify", "bad-key", "{}").await;
    }
    let text =
        String::from_utf8(get_plain(gw.admin, "/metrics").await.unwrap().body.to_vec()).unwrap();
    for needle in [
        r#"gateway_requests_total{protocol="http1",route="verify",status="200"} 1"#,
        r#"gateway_requests_total{protocol="http3",route="verify",status="200"} 1"#,
        r#"gateway_requests_total{protocol="http3",route="verify",status="401"} 1"#,
        r#"gateway_decisions_total{reason="red_code"} 2"#,
        r#"gateway_caller_requests_total{caller="dev"} 2"#,
        "gateway_request_duration_seconds_bucket",
        "gateway_status_set_size",
        "gateway_feed_position",
        "gateway_sig_cache_hits 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(&code[5..30]));
    let s = gw.status().await;
    assert_eq!(s["sig_cache_entries"], 1);
}

/// A caller over its share of the in-flight limit is answered 503 at once, and only
/// that caller: another caller is served meanwhile.
#[tokio::test]
async fn over_its_share_a_caller_alone_gets_503_at_once() {
    let gw = Gateway::start(Options {
        args: vec!["--caller-max-in-flight".into(), "1".into()],
        ..Options::default()
    })
    .await;
    let code = gw.mint(Sub([11; 16]), Color::Green, 1);
    let key = gw.api_key.clone();
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    let verify = |key: String| {
        let (gw, body) = (&gw, body.clone());
        async move {
            gw.client(Protocol::H1)
                .await
                .post("/v1/verify", &key, body)
                .await
        }
    };
    // Hold the caller's one slot with a request whose body never ends. A slot is given
    // back just after its answer is out, so the held request may itself be refused by a
    // check still finishing: then it is sent again.
    let c = gw.client(Protocol::H2).await;
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    let (a, tx, held) = loop {
        let (held, tx) = c.open_stream("/v1/verify", &gw.api_key).await;
        let held = tokio::spawn(held);
        let mut refused = None;
        while refused.is_none() && !held.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "no 503 while the slot is held"
            );
            let a = verify(key.clone()).await;
            if a.status == 503 {
                refused = Some(a);
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        if let Some(a) = refused {
            break (a, tx, held);
        }
    };
    assert_eq!(a.json()["error"], "overloaded");
    assert!(a.headers.get("retry-after").is_some());
    // Another caller has a share of its own.
    let a = gw
        .client(Protocol::H1)
        .await
        .post("/v1/verify", crate::support::LIMITED_KEY, body.clone())
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    drop(tx);
    let _ = held.await;
    let a = eventually("the slot is free again", || {
        let (gw, key, body) = (&gw, key.clone(), body.clone());
        async move {
            let a = gw
                .client(Protocol::H1)
                .await
                .post("/v1/verify", &key, body)
                .await;
            (a.status == 200).then_some(a)
        }
    })
    .await;
    assert_eq!(a.json()["decision"], "allow");
}

#[tokio::test]
async fn stream_over_http3_answers_before_the_body_ends() {
    let gw = Gateway::start(Options::default()).await;
    let code = gw.mint(Sub([12; 16]), Color::Yellow, 1);
    let c = gw.client(Protocol::H3).await;
    let mut s = c.h3();
    let req = http::Request::post("https://localhost/v1/verify/stream")
        .header("authorization", format!("Bearer {}", gw.api_key))
        .body(())
        .unwrap();
    let mut stream = s.send_request(req).await.unwrap();
    let line = format!("{}\n", serde_json::json!({"code": code, "venue": "metro"}));
    stream
        .send_data(bytes::Bytes::from(line.clone()))
        .await
        .unwrap();
    let resp = stream.recv_response().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    while !got.contains(&b'\n') {
        let mut chunk = stream
            .recv_data()
            .await
            .unwrap()
            .expect("a line before the body ends");
        let n = chunk.remaining();
        got.extend_from_slice(&chunk.copy_to_bytes(n));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&got[..got.iter().position(|&b| b == b'\n').unwrap()]).unwrap();
    assert_eq!(
        (v["decision"].as_str(), v["conditions"].clone()),
        (Some("allow"), serde_json::json!(["mask"]))
    );
    stream.send_data(bytes::Bytes::from(line)).await.unwrap();
    stream.finish().await.unwrap();
    let mut rest = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        let n = chunk.remaining();
        rest.extend_from_slice(&chunk.copy_to_bytes(n));
    }
    assert!(String::from_utf8_lossy(&rest).contains("allow"));
}

#[tokio::test]
async fn an_endless_feed_line_is_skipped_without_holding_it_in_memory() {
    let gw = Gateway::start(Options::default()).await;
    // 5 MiB without a newline, then its end, then a good event.
    let junk = "x".repeat(5 << 20);
    gw.append_feed(&junk);
    gw.append_feed("tail of the long line\n");
    let now = gateway_core::trust::format_time(gateway_issuer::unix_now() as i64);
    gw.append_feed(&format!(
        "{}\n",
        serde_json::json!({"type": "heartbeat", "at": now})
    ));
    let admin = gw.admin;
    let s = eventually("two positions", || async move {
        let s = get_plain(admin, "/v1/status").await?.json();
        (s["feed_seq"] == 2).then_some(s)
    })
    .await;
    assert_eq!(
        (s["feed_rejected"].as_u64(), s["feed_applied"].as_u64()),
        (Some(1), Some(1))
    );
}

/// Every thread runs under `SCHED_BATCH` by default (the runtime, the verification pool,
/// the clock), set before the first thread starts; `--sched-policy normal` leaves the
/// system's default.
#[tokio::test]
async fn threads_run_sched_batch_unless_told_otherwise() {
    let gw = Gateway::start(Options::default()).await;
    let threads = gw.thread_policies();
    assert!(
        threads.iter().any(|(name, _)| name.starts_with("verify")),
        "{threads:?}"
    );
    assert!(
        threads.iter().any(|(name, _)| name.starts_with("tokio")),
        "{threads:?}"
    );
    assert!(threads.iter().all(|(_, p)| *p == 3), "{threads:?}");
    let gw = Gateway::start(Options {
        args: vec!["--sched-policy".into(), "normal".into()],
        ..Options::default()
    })
    .await;
    let threads = gw.thread_policies();
    assert!(threads.iter().all(|(_, p)| *p == 0), "{threads:?}");
}
