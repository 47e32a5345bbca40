//! The API over every protocol: decisions, errors in api.md's order, the stream endpoint
//! answering before the request ends, and hostile input.

use std::time::Duration;

use gateway_core::{Color, Sub};
use http::Method;
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};

use crate::support::client::{Protocol, ALL};
use crate::support::{eventually, Gateway, Options, CARDS_KEY, LIMITED_KEY};

#[tokio::test]
async fn verify_over_every_protocol_and_status_changes_from_the_feed() {
    let gw = Gateway::start(Options::default()).await;
    let sub = Sub([0x42; 16]);
    let code = gw.mint(sub, Color::Green, 1);
    for proto in ALL {
        let mut c = gw.client(proto).await;
        let body = serde_json::json!({"code": code, "venue": "bus", "gate": "g1"}).to_string();
        let a = c.post("/v1/verify", &gw.api_key, body).await;
        assert_eq!(a.status, 200, "{proto:?}");
        let v = a.json();
        assert_eq!(
            (v["decision"].as_str(), v["reason"].as_str()),
            (Some("allow"), Some("ok")),
            "{proto:?}"
        );
        assert_eq!(v["stale"], false);
        assert!(
            !String::from_utf8_lossy(&a.body).contains(&code[5..40]),
            "the code is never echoed"
        );
        if proto != Protocol::H3 {
            assert!(
                a.headers
                    .get("alt-svc")
                    .is_some_and(|h| h.to_str().unwrap().contains("h3=")),
                "{proto:?}"
            );
        }
        // text/plain with ?venue=, surrounding whitespace stripped.
        let auth = format!("Bearer {}", gw.api_key);
        let a = c
            .send(
                Method::POST,
                "/v1/verify?venue=metro",
                &[("authorization", &auth), ("content-type", "text/plain")],
                format!("\n {code} \r\n"),
            )
            .await;
        assert_eq!(a.json()["decision"], "allow", "{proto:?}");
    }
    // The subject turns red in the feed: denied afterwards (waiting on the condition).
    gw.append_feed(&format!(
        "{}\n",
        gateway_issuer::events::PLAIN.status(
            &sub,
            Color::Red,
            2,
            Some(4),
            gateway_issuer::unix_now() as i64
        )
    ));
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    let v = eventually("a deny after the red status", || {
        let (gw, body) = (&gw, body.clone());
        async move {
            let v = gw
                .client(Protocol::H2)
                .await
                .post("/v1/verify", &gw.api_key, body)
                .await
                .json();
            (v["decision"] == "deny").then_some(v)
        }
    })
    .await;
    assert_eq!(
        (v["reason"].as_str(), v["color"].as_str()),
        (Some("status_changed"), Some("red"))
    );
    assert_eq!(v["feed_seq"], 1);
}

#[tokio::test]
async fn errors_in_the_order_of_api_md() {
    let gw = Gateway::start(Options::default()).await;
    let code = gw.mint(Sub([1; 16]), Color::Green, 1);
    for proto in [Protocol::H1, Protocol::H2, Protocol::H3] {
        let mut c = gw.client(proto).await;
        let ok = serde_json::json!({"code": code, "venue": "bus"}).to_string();
        // 401: no credentials, unknown key, and not a bearer.
        let a = c.send(Method::POST, "/v1/verify", &[], ok.clone()).await;
        assert_eq!(
            (a.status.as_u16(), a.json()["error"].as_str()),
            (401, Some("unauthorized")),
            "{proto:?}"
        );
        assert_eq!(c.post("/v1/verify", "nope", ok.clone()).await.status, 401);
        // 413 before anything is parsed.
        let big = format!("{{\"code\": \"{}\", \"venue\": \"bus\"}}", "A".repeat(9000));
        let a = c.post("/v1/verify", &gw.api_key, big).await;
        assert_eq!(
            (a.status.as_u16(), a.json()["error"].as_str()),
            (413, Some("body_too_large")),
            "{proto:?}"
        );
        // 400s.
        let a = c.post("/v1/verify", &gw.api_key, "{\"code\": 1}").await;
        assert_eq!(
            (a.status.as_u16(), a.json()["error"].as_str()),
            (400, Some("bad_request"))
        );
        let a = c
            .post(
                "/v1/verify",
                &gw.api_key,
                serde_json::json!({"code": code, "venue": "moon"}).to_string(),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.json()["error"].as_str()),
            (400, Some("unknown_venue"))
        );
        assert!(
            !String::from_utf8_lossy(&a.body).contains("moon"),
            "errors never echo input"
        );
        let card = serde_json::json!({"card_kind": "library_card", "number": "1", "venue": "bus"})
            .to_string();
        let a = c.post("/v1/verify/card", &gw.api_key, card).await;
        assert_eq!(
            (a.status.as_u16(), a.json()["error"].as_str()),
            (400, Some("unknown_card_kind"))
        );
        // 403: outside the limited caller's venues (and unknown venue still wins).
        let school = serde_json::json!({"code": code, "venue": "school"}).to_string();
        let a = c.post("/v1/verify", LIMITED_KEY, school).await;
        assert_eq!(
            (a.status.as_u16(), a.json()["error"].as_str()),
            (403, Some("forbidden_venue"))
        );
    }
    // 429 with Retry-After: the limited caller has 3 per second.
    let mut c = gw.client(Protocol::H2).await;
    let bus = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    let mut limited = None;
    for _ in 0..10 {
        let a = c.post("/v1/verify", LIMITED_KEY, bus.clone()).await;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
    }
    let a = limited.expect("a 429 within 10 requests at 3/s");
    assert_eq!(a.json()["error"], "rate_limited");
    assert!(a.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn batch_keeps_order_and_answers_bad_items_in_place() {
    let gw = Gateway::start(Options::default()).await;
    let mut c = gw.client(Protocol::H2).await;
    let good = gw.mint(Sub([2; 16]), Color::Yellow, 1);
    let items = serde_json::json!([
        {"code": good, "venue": "bus"},
        {"code": "JKM1:garbage", "venue": "bus"},
        {"venue": "bus"},
        {"code": good, "venue": "moon"},
        {"code": good, "venue": "school"},
    ]);
    let v = c
        .post("/v1/verify/batch", &gw.api_key, items.to_string())
        .await
        .json();
    let got: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x["reason"]
                .as_str()
                .or(x["error"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        got,
        [
            "ok",
            "malformed",
            "bad_request",
            "unknown_venue",
            "venue_restricted"
        ]
    );
    assert_eq!(v[0]["conditions"], serde_json::json!(["mask"]));
    let too_many = serde_json::Value::Array(vec![
        serde_json::json!({"code": good, "venue": "bus"});
        1001
    ]);
    let a = c
        .post("/v1/verify/batch", &gw.api_key, too_many.to_string())
        .await;
    assert_eq!(
        (a.status.as_u16(), a.json()["error"].as_str()),
        (400, Some("batch_too_large"))
    );
}

#[tokio::test]
async fn card_checks_use_the_status_set() {
    let gw = Gateway::start(Options::default()).await;
    let mut c = gw.client(Protocol::H1).await;
    let card = serde_json::json!({"card_kind": "citizen_card", "number": "3301 0000 1234 5678", "venue": "museum"});
    let v = c
        .post("/v1/verify/card", &gw.api_key, card.to_string())
        .await
        .json();
    assert_eq!(
        (v["decision"].as_str(), v["conditions"].clone()),
        (Some("allow"), serde_json::json!(["mask", "short_stay"]))
    );
    assert!(v.get("companions").is_none());
}

#[tokio::test]
async fn card_checks_need_their_own_permission_and_have_their_own_rate() {
    let gw = Gateway::start(Options::default()).await;
    let mut c = gw.client(Protocol::H2).await;
    let card = |kind: &str, venue: &str| {
        serde_json::json!({"card_kind": kind, "number": "3301 0000 1234 5678", "venue": venue})
            .to_string()
    };
    let error = |a: &crate::support::client::Answer| {
        (
            a.status.as_u16(),
            a.json()["error"].as_str().map(str::to_owned),
        )
    };
    // No card_rate_per_s: 403 forbidden_card, after the venue and card-kind checks.
    let a = c
        .post("/v1/verify/card", LIMITED_KEY, card("citizen_card", "bus"))
        .await;
    assert_eq!(error(&a), (403, Some("forbidden_card".into())));
    let a = c
        .post("/v1/verify/card", LIMITED_KEY, card("library_card", "bus"))
        .await;
    assert_eq!(error(&a), (400, Some("unknown_card_kind".into())));
    let a = c
        .post(
            "/v1/verify/card",
            LIMITED_KEY,
            card("citizen_card", "school"),
        )
        .await;
    assert_eq!(error(&a), (403, Some("forbidden_venue".into())));
    // 2 card checks a second: a 429 within 10, while the same caller's codes still pass.
    let mut limited = None;
    for _ in 0..10 {
        let a = c
            .post("/v1/verify/card", CARDS_KEY, card("citizen_card", "bus"))
            .await;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
        assert_eq!(a.status, 200);
    }
    let a = limited.expect("a 429 within 10 card checks at 2/s");
    assert_eq!(a.json()["error"], "rate_limited");
    assert!(a.headers.get("retry-after").is_some());
    let code = gw.mint(Sub([4; 16]), Color::Green, 1);
    let a = c
        .post(
            "/v1/verify",
            CARDS_KEY,
            serde_json::json!({"code": code, "venue": "bus"}).to_string(),
        )
        .await;
    assert_eq!(
        a.json()["decision"],
        "allow",
        "codes go on past the card rate"
    );
    // Counted per caller: allowed card checks, and each refusal by its reason.
    let m = crate::support::client::get_plain(gw.admin, "/metrics")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    let value = |prefix: &str, labels: &[&str]| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} {labels:?}"))
    };
    assert!(value("gateway_caller_card_checks_total", &["caller=\"cards\""]) >= 2.0);
    assert_eq!(
        value(
            "gateway_caller_refusals_total",
            &["caller=\"limited\"", "reason=\"forbidden_card\""]
        ),
        1.0
    );
    assert!(
        value(
            "gateway_caller_refusals_total",
            &["caller=\"cards\"", "reason=\"card_rate\""]
        ) >= 1.0
    );
}

#[tokio::test]
async fn stream_answers_each_line_before_the_body_ends() {
    let gw = Gateway::start(Options::default()).await;
    let code = gw.mint(Sub([3; 16]), Color::Green, 1);
    for proto in [Protocol::H1, Protocol::H2] {
        let c = gw.client(proto).await;
        let (resp, tx) = c.open_stream("/v1/verify/stream", &gw.api_key).await;
        assert!(
            tx.send(serde_json::json!({"code": code, "venue": "bus"}))
                .await
        );
        let resp = tokio::time::timeout(Duration::from_secs(30), resp)
            .await
            .unwrap()
            .unwrap();
        let mut body = resp.into_body();
        // The first answer arrives while the request body is still open.
        let first = next_line(&mut body).await;
        assert_eq!(first["decision"], "allow", "{proto:?}");
        assert!(tx.send("x".repeat(9000)).await);
        assert_eq!(next_line(&mut body).await["error"], "body_too_large");
        assert!(
            tx.send(serde_json::json!({"code": "JKM1:AB", "venue": "bus"}))
                .await
        );
        assert_eq!(next_line(&mut body).await["reason"], "malformed");
        drop(tx);
    }
}

async fn next_line(body: &mut hyper::body::Incoming) -> serde_json::Value {
    let mut buf = Vec::new();
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            return serde_json::from_slice(&buf[..i]).unwrap();
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(d) = frame.into_data() {
            buf.extend_from_slice(&d);
        }
    }
}

#[tokio::test]
async fn thousands_of_random_and_mutated_codes_are_denied_and_the_server_stays_healthy() {
    let gw = Gateway::start(Options::default()).await;
    let mut c = gw.client(Protocol::H2).await;
    let good = gw.mint(Sub([4; 16]), Color::Green, 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let alphabet = gateway_core::base45::ALPHABET;
    let mut denied = 0;
    for _round in 0..4 {
        let items: Vec<serde_json::Value> = (0..1000)
            .map(|i| {
                let code = if i % 2 == 0 {
                    let mut b = good.clone().into_bytes();
                    for _ in 0..rng.gen_range(1..4) {
                        let at = rng.gen_range(5..b.len());
                        b[at] = alphabet[rng.gen_range(0..alphabet.len())];
                    }
                    String::from_utf8(b).unwrap()
                } else {
                    let n = rng.gen_range(0..300);
                    (0..n)
                        .map(|_| char::from(rng.gen_range(32u8..127)))
                        .collect()
                };
                serde_json::json!({"code": code, "venue": "bus"})
            })
            .collect();
        let v = c
            .post(
                "/v1/verify/batch",
                &gw.api_key,
                serde_json::Value::Array(items).to_string(),
            )
            .await
            .json();
        for x in v.as_array().unwrap() {
            if x["decision"] == "deny" {
                denied += 1;
                let r = x["reason"].as_str().unwrap();
                assert!(
                    [
                        "malformed",
                        "unknown_key",
                        "alg_mismatch",
                        "bad_signature",
                        "issuer_mismatch",
                        "key_not_valid_at_issue",
                        "not_yet_valid",
                        "expired",
                        "validity_too_long"
                    ]
                    .contains(&r),
                    "{r}"
                );
                assert!(x["color"].is_null());
            }
        }
    }
    assert!(denied > 3900, "{denied}");
    let a = gw
        .client(Protocol::H1)
        .await
        .post(
            "/v1/verify",
            &gw.api_key,
            serde_json::json!({"code": good, "venue": "bus"}).to_string(),
        )
        .await;
    assert_eq!(a.json()["decision"], "allow");
    assert_eq!(
        crate::support::client::get_plain(gw.admin, "/healthz")
            .await
            .unwrap()
            .status,
        200
    );
}

/// The lean HTTP/2 and HTTP/3 clients that load generation uses (frames by hand) read
/// the same answers as the full ones: statuses from the static tables and as literals,
/// and bodies; HTTP/2's `submit` (no task per request) hands over the same answer.
#[tokio::test]
async fn the_lean_clients_read_what_the_full_ones_read() {
    let gw = Gateway::start(Options::default()).await;
    let code = gw.mint(Sub([0x77; 16]), Color::Green, 1);
    let body = serde_json::json!({"code": code, "venue": "bus"}).to_string();
    for protocol in [Protocol::H2, Protocol::H3] {
        let mut full = gw.client(protocol).await;
        let mut target = gateway_client::Target::tls(gw.listen, protocol, gw.ca.clone());
        target.lean = true;
        let lean = gateway_client::Conn::connect(&target).await.unwrap();
        assert!(matches!(
            (protocol, &lean),
            (Protocol::H2, gateway_client::Conn::LeanH2(_))
                | (Protocol::H3, gateway_client::Conn::LeanH3(_))
        ));
        let json = [("content-type", "application/json")];
        for key in [gw.api_key.as_str(), "not-a-key"] {
            let auth = format!("Bearer {key}");
            let headers = [json[0], ("authorization", auth.as_str())];
            let want = full
                .send(Method::POST, "/v1/verify", &headers, body.clone())
                .await;
            let got = lean
                .request(
                    &target,
                    Method::POST,
                    "/v1/verify",
                    &headers,
                    body.clone().into(),
                )
                .await
                .unwrap();
            assert_eq!(got.status, want.status, "{protocol:?} {key}");
            assert_eq!(got.json().unwrap(), want.json(), "{protocol:?} {key}");
        }
        // A status outside the static tables, written as a literal: too many lines of
        // a card check past the caller's rate would be slow to provoke; 405 is at hand.
        let got = lean
            .request(&target, Method::GET, "/v1/verify", &[], bytes::Bytes::new())
            .await
            .unwrap();
        assert_eq!(got.status, 405, "{protocol:?}");
    }
    // HTTP/2's submit: many requests started at once on one connection, each answer
    // handed to its function by the connection's reader.
    let mut target = gateway_client::Target::tls(gw.listen, Protocol::H2, gw.ca.clone());
    target.lean = true;
    target.api_key = gw.api_key.clone();
    let lean = gateway_client::Conn::connect(&target).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..300 {
        let tx = tx.clone();
        let on_answer: gateway_client::OnAnswer = Box::new(move |a| {
            let _ = tx.send(a);
        });
        assert!(lean
            .submit_post(
                &target,
                "/v1/verify",
                bytes::Bytes::from(body.clone()),
                "application/json",
                on_answer
            )
            .is_ok());
    }
    drop(tx);
    let mut allowed = 0;
    while let Some(a) = rx.recv().await {
        let a = a.unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.json().unwrap()["decision"], "allow");
        allowed += 1;
    }
    assert_eq!(allowed, 300);
}
