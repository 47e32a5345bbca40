//! Offline gates at the gateway (`offline.md`, `api.md` revision 4): status lists and
//! updates come through the feed, are checked and kept, and are served as published to
//! callers with `"offline": true` over HTTP/1.1, HTTP/2 and HTTP/3, with the bundle.

use bytes::Bytes;
use gateway_core::offline::bits::TwoBits;
use gateway_core::offline::list::{NewList, NewUpdate};
use gateway_issuer::events::Writer;
use http::Method;

use crate::support::client::{get_plain, Client, Protocol};
use crate::support::{eventually, Gateway, Options, GATES_KEY};

const URI: &str = "https://health.example/status-lists/CN-33-1";

fn now() -> u64 {
    gateway_issuer::unix_now()
}

fn list(gw: &Gateway, iat: u64, bits: &TwoBits) -> Vec<u8> {
    gw.issuer()
        .sign_status_list(&NewList {
            iss: "CN-33",
            uri: URI,
            iat,
            exp: Some(iat + 86_400),
            ttl: Some(120),
            bits,
            revoked: &[],
        })
        .expect("signs")
}

fn update(gw: &Gateway, base: u64, n: u64, iat: u64, changes: &[(u32, u8)]) -> Vec<u8> {
    gw.issuer()
        .sign_status_list_update(&NewUpdate {
            iss: "CN-33",
            uri: URI,
            iat,
            base,
            n,
            changes,
            revoked: &[],
        })
        .expect("signs")
}

async fn get(
    c: &mut Client,
    path: &str,
    key: &str,
    extra: &[(&str, &str)],
) -> crate::support::client::Answer {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    c.send(Method::GET, path, &headers, Bytes::new()).await
}

async fn wait_status(gw: &Gateway, key: &str, want: u64) {
    let admin = gw.admin;
    eventually(&format!("{key} = {want}"), || async move {
        let s = get_plain(admin, "/v1/status").await?.json();
        (s[key] == want).then_some(())
    })
    .await;
}

#[tokio::test]
async fn lists_and_updates_are_kept_and_served_as_published() {
    let gw = Gateway::start(Options::default()).await;
    let w = Writer::new(None);
    let base = now() - 100;
    let mut bits = TwoBits::zeros(4096);
    bits.set(17, 1);
    let first = list(&gw, base, &bits);
    let u1 = update(&gw, base, 1, base + 10, &[(18, 2)]);
    let u2 = update(&gw, base, 2, base + 20, &[(19, 1)]);
    // Update 2 before 1 (held aside until 1 comes), and a forged list (refused).
    let mut forged = list(&gw, base + 5, &bits);
    let n = forged.len();
    forged[n - 1] ^= 1;
    gw.append_feed(&format!(
        "{}\n{}\n{}\n{}\n",
        w.status_list(&first),
        w.status_list_update(&u2),
        w.status_list_update(&u1),
        w.status_list(&forged)
    ));
    gw.wait_stat("feed_seq", 4).await;
    assert_eq!(gw.stat("status_lists").await, 1);
    assert_eq!(gw.stat("feed_rejected").await, 1, "the forged list");
    let etag = format!("\"{base}\"");
    for proto in crate::support::client::ALL {
        let mut c = gw.client(proto).await;
        let a = get(&mut c, "/v1/status-lists/CN-33-1", GATES_KEY, &[]).await;
        assert_eq!(a.status, 200, "{proto:?}");
        assert_eq!(&a.body[..], &first[..], "the bytes as published");
        assert_eq!(a.headers["content-type"], "application/statuslist+cwt");
        assert_eq!(a.headers["etag"], etag.as_str());
        assert_eq!(a.headers["cache-control"], "max-age=120");
        let a = get(
            &mut c,
            "/v1/status-lists/CN-33-1",
            GATES_KEY,
            &[("if-none-match", &etag)],
        )
        .await;
        assert_eq!(a.status, 304);
        assert!(a.body.is_empty());
        let path = format!("/v1/status-lists/CN-33-1/updates?base={base}&after=0");
        let a = get(&mut c, &path, GATES_KEY, &[]).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["content-type"], "application/cbor-seq");
        assert_eq!(
            &a.body[..],
            &[u1.clone(), u2.clone()].concat()[..],
            "in order"
        );
        let path = format!("/v1/status-lists/CN-33-1/updates?base={base}&after=1");
        assert_eq!(&get(&mut c, &path, GATES_KEY, &[]).await.body[..], &u2[..]);
        let path = format!("/v1/status-lists/CN-33-1/updates?base={base}&after=2");
        let a = get(&mut c, &path, GATES_KEY, &[]).await;
        assert_eq!(
            (a.status.as_u16(), a.body.len()),
            (200, 0),
            "none: an empty 200"
        );
        // Refusals, in the order of api.md.
        let codes = [
            (
                "/v1/status-lists/CN-33-1",
                "no-such-key",
                401,
                "unauthorized",
            ),
            (
                "/v1/status-lists/CN-33-1",
                gw.api_key.as_str(),
                403,
                "forbidden_offline",
            ),
            (
                "/v1/offline/bundle",
                gw.api_key.as_str(),
                403,
                "forbidden_offline",
            ),
            (
                "/v1/status-lists/CN-33-1/updates?base=x&after=0",
                GATES_KEY,
                400,
                "bad_request",
            ),
            (
                "/v1/status-lists/CN-33-1/updates?after=0",
                GATES_KEY,
                400,
                "bad_request",
            ),
            (
                "/v1/status-lists/CN-33-9",
                GATES_KEY,
                404,
                "unknown_status_list",
            ),
            (
                "/v1/status-lists/CN-33-1/updates?base=1&after=0",
                GATES_KEY,
                409,
                "status_list_replaced",
            ),
        ];
        for (path, key, status, code) in codes {
            let a = get(&mut c, path, key, &[]).await;
            assert_eq!(a.status.as_u16(), status, "{proto:?} {path}");
            assert_eq!(a.json()["error"], code, "{proto:?} {path}");
        }
        let a = c.post("/v1/status-lists/CN-33-1", GATES_KEY, "{}").await;
        assert_eq!(a.status, 405);
        assert_eq!(a.headers["allow"], "GET");
    }
    // The bundle: the policy in force, then the list and its updates, as feed events.
    let mut c = gw.client(Protocol::H2).await;
    let a = get(&mut c, "/v1/offline/bundle", GATES_KEY, &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = std::str::from_utf8(&a.body)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "policy",
            "status_list",
            "status_list_update",
            "status_list_update"
        ]
    );
    let b64 = |b: &[u8]| gateway_core::b64::encode(b);
    assert_eq!(lines[1]["signed"], b64(&first));
    assert_eq!(
        (lines[2]["signed"].as_str(), lines[3]["signed"].as_str()),
        (Some(&*b64(&u1)), Some(&*b64(&u2)))
    );
    // A newer list replaces the list and its updates: the old base is 409.
    let second = list(&gw, base + 30, &bits);
    gw.append_feed(&format!("{}\n", w.status_list(&second)));
    gw.wait_stat("feed_seq", 5).await;
    let path = format!("/v1/status-lists/CN-33-1/updates?base={base}&after=0");
    assert_eq!(get(&mut c, &path, GATES_KEY, &[]).await.status, 409);
    let a = get(&mut c, "/v1/status-lists/CN-33-1", GATES_KEY, &[]).await;
    assert_eq!(&a.body[..], &second[..]);
    let path = format!(
        "/v1/status-lists/CN-33-1/updates?base={}&after=0",
        base + 30
    );
    assert_eq!(get(&mut c, &path, GATES_KEY, &[]).await.body.len(), 0);
    // The metrics of what is held and served.
    let m = get_plain(gw.admin, "/metrics").await.expect("metrics");
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("gateway_status_lists 1"), "{text}");
    assert!(
        text.contains("gateway_feed_rejected_total{kind=\"status_list\"} 1"),
        "{text}"
    );
    wait_status(&gw, "status_lists", 1).await;
}
