//! Receipts (`api.md` revision 4) on every deny of every endpoint, checked by the
//! complaint desk's command (`gateway receipt check`, with the receipt key from
//! `gateway receipt key`) and by a computation of the test's own from the spec's
//! formula (HMAC-SHA256 with ring, Crockford base32 by hand).

use std::process::Command;

use gateway_core::{Color, Sub};

use crate::support::client::Protocol;
use crate::support::{Gateway, Options, TempDir};

/// The 12 bytes of a receipt's text, decoded here from Crockford base32.
fn decode(text: &str) -> [u8; 12] {
    const A: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let digits: Vec<u128> = text
        .chars()
        .filter(|c| *c != '-')
        .map(|c| A.find(c).expect("alphabet") as u128)
        .collect();
    assert_eq!(digits.len(), 20, "{text}");
    assert_eq!(text.len(), 23);
    let v = digits.iter().fold(0u128, |acc, d| (acc << 5) | d);
    assert_eq!(v & 0xf, 0, "the last 4 bits are zero");
    let v = v >> 4;
    let mut out = [0u8; 12];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (v >> (88 - 8 * i)) as u8;
    }
    out
}

/// Whether `text` is the receipt of `sub` under the feed key `feed`, for `venue` and
/// `reason` (its code), from the formula of api.md.
fn genuine(feed: &[u8; 32], text: &str, sub: &Sub, venue: &str, reason: u8) -> bool {
    use ring::hmac;
    let b = decode(text);
    let r = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, feed), b"jkm-receipt-1");
    let mut m = b[..6].to_vec();
    m.extend_from_slice(&sub.0);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, r.as_ref()), &m);
    let now = gateway_issuer::unix_now();
    let at = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    tag.as_ref()[..6] == b[6..]
        && usize::from(b[4])
            == gateway_core::policy::REQUIRED_VENUES
                .iter()
                .position(|v| *v == venue)
                .unwrap()
        && b[5] == reason
        && at <= now
        && at + 60 > now
}

fn feed_bytes(gw: &Gateway) -> [u8; 32] {
    let text = std::fs::read_to_string(gw.setup.feed_key()).unwrap();
    gateway_core::b64::decode_array::<32>(text.trim()).unwrap()
}

/// `gateway receipt check` as the desk runs it: (exit code, its one line).
fn desk(receipt: &str, key: &std::path::Path, subject: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["receipt", "check", receipt, "--receipt-key"])
        .arg(key)
        .args(subject)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(line.trim()).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn every_deny_of_every_endpoint_carries_a_receipt_the_desk_can_check() {
    let gw = Gateway::start(Options {
        args: vec!["--feed-key".into(), "{state}/feed.key".into()],
        ..Options::default()
    })
    .await;
    let feed = feed_bytes(&gw);
    let dir = TempDir::new("desk");
    let r_key = dir.0.join("receipt.key");
    let fk = gw.setup.feed_key().display().to_string();
    let (rc, err) = crate::support::run_cli(&[
        "receipt",
        "key",
        "--feed-key",
        &fk,
        "--out",
        &r_key.display().to_string(),
    ]);
    assert_eq!(rc, 0, "{err}");
    let red = Sub([0x71; 16]);
    let red_code = gw.mint(red, Color::Red, 0);
    let sub_arg = gateway_core::b64::encode(&red.0);
    let mut c = gw.client(Protocol::H2).await;

    // /v1/verify: a red holder at a bus.
    let body = serde_json::json!({"code": red_code, "venue": "bus"}).to_string();
    let a = c.post("/v1/verify", &gw.api_key, body).await.json();
    let receipt = a["receipt"]
        .as_str()
        .expect("a receipt on a deny")
        .to_owned();
    assert!(genuine(&feed, &receipt, &red, "bus", 14), "{receipt}");
    let (rc, said) = desk(&receipt, &r_key, &["--sub", &sub_arg]);
    assert_eq!(rc, 0, "{said}");
    assert_eq!(said["genuine"], true);
    assert_eq!(said["venue"], "bus");
    assert_eq!(said["reason"], "red_code");
    // Typed loosely, still genuine; for someone else, not; forged, not.
    let (rc, _) = desk(
        &receipt.to_lowercase().replace('-', ""),
        &r_key,
        &["--sub", &sub_arg],
    );
    assert_eq!(rc, 0);
    let other = gateway_core::b64::encode(&[0x72; 16]);
    let (rc, said) = desk(&receipt, &r_key, &["--sub", &other]);
    assert_eq!((rc, said), (1, serde_json::json!({"genuine": false})));
    let mut forged = receipt.clone().into_bytes();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
    let (rc, _) = desk(
        &String::from_utf8(forged).unwrap(),
        &r_key,
        &["--sub", &sub_arg],
    );
    assert_eq!(rc, 1);
    // An allow carries none.
    let green = gw.mint(Sub([0x73; 16]), Color::Green, 0);
    let body = serde_json::json!({"code": green, "venue": "bus"}).to_string();
    let a = c.post("/v1/verify", &gw.api_key, body).await.json();
    assert!(a.get("receipt").is_none(), "{a}");

    // A malformed code: 16 zero bytes stand for the subject.
    let body = serde_json::json!({"code": "JKM1:XYZ", "venue": "museum"}).to_string();
    let a = c.post("/v1/verify", &gw.api_key, body).await.json();
    let r = a["receipt"].as_str().unwrap();
    assert!(genuine(&feed, r, &Sub([0; 16]), "museum", 1), "{r}");

    // Batch items and stream lines.
    let items = serde_json::json!([
        {"code": red_code, "venue": "school"},
        {"code": green, "venue": "bus"},
    ]);
    let a = c
        .post("/v1/verify/batch", &gw.api_key, items.to_string())
        .await
        .json();
    assert!(genuine(
        &feed,
        a[0]["receipt"].as_str().unwrap(),
        &red,
        "school",
        14
    ));
    assert!(a[1].get("receipt").is_none());
    let lines = format!(
        "{}\n",
        serde_json::json!({"code": red_code, "venue": "metro"})
    );
    let a = c.post("/v1/verify/stream", &gw.api_key, lines).await;
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&a.body).lines().next().unwrap()).unwrap();
    assert!(genuine(
        &feed,
        line["receipt"].as_str().unwrap(),
        &red,
        "metro",
        14
    ));

    // A denied companion has its own receipt; /v1/auth gives the first in a header.
    let now = gateway_issuer::unix_now();
    let claims = gateway_core::token::NewClaims {
        iss: "CN-33".into(),
        sub: Sub([0x74; 16]),
        iat: now - 10,
        exp: now + 3600,
        cti: vec![0x74; 12],
        color: Color::Green,
        ver: 0,
        why: None,
        kind: None,
        with: Some(vec![gateway_core::token::Companion {
            sub: Sub([0x75; 16]),
            color: Color::Red,
            ver: 0,
        }]),
        status: None,
    };
    let family = gw.issuer().mint(&claims).unwrap();
    let body = serde_json::json!({"code": family, "venue": "bus"}).to_string();
    let a = c.post("/v1/verify", &gw.api_key, body).await.json();
    assert!(a.get("receipt").is_none(), "the holder is allowed");
    let cr = a["companions"][0]["receipt"].as_str().unwrap().to_owned();
    assert!(genuine(&feed, &cr, &Sub([0x75; 16]), "bus", 14));
    let auth = format!("Bearer {}", gw.api_key);
    let h = c
        .send(
            http::Method::GET,
            "/v1/auth",
            &[
                ("authorization", auth.as_str()),
                ("x-jkm-code", family.as_str()),
                ("x-jkm-venue", "bus"),
            ],
            "",
        )
        .await;
    assert_eq!(h.status, 403);
    let hr = h.headers["x-jkm-receipt"].to_str().unwrap();
    assert!(genuine(&feed, hr, &Sub([0x75; 16]), "bus", 14), "{hr}");

    // A card check of a red holder: the card's pseudonym, checked by the desk from the
    // number read off a file.
    let number = dir.0.join("number.txt");
    std::fs::write(&number, "33010619800101001X\n").unwrap();
    let state = gw.setup.dir.display().to_string();
    let at_number = format!("@{}", number.display());
    let (rc, err) = crate::support::run_cli(&[
        "feed",
        "--state-dir",
        &state,
        "status",
        "--card-kind",
        "id_card",
        "--number",
        &at_number,
        "--color",
        "red",
        "--ver",
        "1",
    ]);
    assert_eq!(rc, 0, "{err}");
    gw.wait_stat("feed_applied", 1).await;
    let body = serde_json::json!({"card_kind": "id_card", "number": "33010619800101001X", "venue": "museum"});
    let a = c
        .post("/v1/verify/card", &gw.api_key, body.to_string())
        .await
        .json();
    let card = a["receipt"]
        .as_str()
        .expect("a card deny's receipt")
        .to_owned();
    let pk = gw.setup.pseudonym_key().display().to_string();
    let (rc, said) = desk(
        &card,
        &r_key,
        &[
            "--pseudonym-key",
            &pk,
            "--card-kind",
            "id_card",
            "--number",
            &at_number,
        ],
    );
    assert_eq!(rc, 0, "{said}");
    assert_eq!(said["venue"], "museum");
}

/// Without a feed key there are no receipts.
#[tokio::test]
async fn no_feed_key_no_receipts() {
    let gw = Gateway::start(Options::default()).await;
    let red = gw.mint(Sub([0x76; 16]), Color::Red, 0);
    let body = serde_json::json!({"code": red, "venue": "bus"}).to_string();
    let a = gw
        .client(Protocol::H1)
        .await
        .post("/v1/verify", &gw.api_key, body)
        .await
        .json();
    assert_eq!(a["decision"], "deny");
    assert!(a.get("receipt").is_none(), "{a}");
}
