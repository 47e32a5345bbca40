//! Offline gates at the gateway (`offline.md`, `api.md` revision 4): status lists and
//! updates come through the feed, are checked and kept, and are served as published to
//! callers with `"offline": true` over HTTP/1.1, HTTP/2 and HTTP/3, with the bundle.

use bytes::Bytes;
use gateway_core::offline::bits::TwoBits;
use gateway_core::offline::list::{NewList, NewUpdate};
use gateway_issuer::events::Writer;
use http::Method;

use crate::support::client::{get_plain, Client, Protocol};
use crate::support::{eventually, Gateway, Options, GATES_KEY, LIMITED_KEY};

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
                LIMITED_KEY,
                403,
                "forbidden_offline",
            ),
            ("/v1/offline/bundle", LIMITED_KEY, 403, "forbidden_offline"),
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

/// The validator binary of the same build: built (or found fresh) once per test run, so
/// a binary left by an earlier build is never the one tested.
fn validator_bin() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_BIN_EXE_gateway"))
                .parent()
                .expect("target dir")
                .to_path_buf();
            let mut c = std::process::Command::new(env!("CARGO"));
            c.args(["build", "-q", "-p", "validator", "--bin", "validator"]);
            if dir.ends_with("release") {
                c.arg("--release");
            }
            assert!(
                c.status().expect("cargo").success(),
                "building the validator"
            );
            dir.join("validator")
        })
        .clone()
}

fn validator(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(validator_bin())
        .args(args)
        .output()
        .expect("validator runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `validator sync` from `gw` with the API key in `key_file` into `dir`, then `extra`.
fn sync_args(
    gw: &Gateway,
    key_file: &std::path::Path,
    dir: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    let s = |p: &std::path::Path| p.display().to_string();
    let mut args: Vec<String> = [
        "sync",
        "--from",
        &format!("https://{}", gw.listen),
        "--api-key-file",
        &s(key_file),
        "--root-key",
        &s(&gw.setup.root_pub()),
        "--dir",
        &s(dir),
        "--ca",
        &s(&gw.setup.cert()),
        "--server-name",
        "localhost",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// A code of the development issuer for `sub` with its place `idx` in the list.
fn code_at(gw: &Gateway, sub: u8, color: gateway_core::Color, iat: u64, idx: u32) -> String {
    gw.issuer()
        .mint(&gateway_core::token::NewClaims {
            iss: "CN-33".into(),
            sub: gateway_core::Sub([sub; 16]),
            iat,
            exp: iat + 3600,
            cti: vec![sub; 12],
            color,
            ver: 1,
            why: None,
            kind: None,
            with: None,
            status: Some((idx, URI.into())),
        })
        .expect("mint")
}

/// The validator syncs over each protocol, keeps what it accepted owner-only, and
/// decides from the list with the gateway stopped.
#[tokio::test]
async fn the_validator_syncs_and_decides_with_the_gateway_stopped() {
    use std::os::unix::fs::PermissionsExt;
    let mut gw = Gateway::start(Options::default()).await;
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).expect("root");
    let t = now();
    let key_doc = root.key_add_event_seq(
        &gw.issuer()
            .trust_entry(t as i64 - 86_400, t as i64 + 86_400),
        Some(1),
    );
    let list_time = t - 100;
    let mut bits = TwoBits::zeros(64);
    bits.set(3, 1); // red
    let w = Writer::new(None);
    let u1 = update(&gw, list_time, 1, list_time + 10, &[(4, 2)]); // yellow
    gw.append_feed(&format!(
        "{key_doc}\n{}\n{}\n",
        w.status_list(&list(&gw, list_time, &bits)),
        w.status_list_update(&u1)
    ));
    gw.wait_stat("feed_seq", 3).await;
    let dir = crate::support::TempDir::new("validator");
    let key_file = dir.0.join("api.key");
    std::fs::write(&key_file, GATES_KEY).expect("key");
    let state = dir.0.join("gate");
    let s = |p: &std::path::Path| p.display().to_string();
    for proto in ["h1", "h2", "h3"] {
        let args = sync_args(&gw, &key_file, &state, &["--protocol", proto]);
        let (code, _, err) = validator(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{proto}: {err}");
        assert!(
            err.contains("kept 4 lines") && err.contains("0 refused"),
            "{proto}: {err}"
        );
    }
    let mode =
        |p: std::path::PathBuf| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode(state.join("bundle.ndjson")), 0o600);
    assert_eq!(mode(state.clone()), 0o700);
    // A caller without the permission: 403, and nothing of DIR changes.
    let dev_key = dir.0.join("limited.key");
    std::fs::write(&dev_key, LIMITED_KEY).expect("key");
    let before = std::fs::read(state.join("bundle.ndjson")).expect("bundle");
    let args = sync_args(&gw, &dev_key, &state, &[]);
    let (code, _, err) = validator(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2);
    assert!(err.contains("403"), "{err}");
    assert_eq!(
        std::fs::read(state.join("bundle.ndjson")).expect("bundle"),
        before
    );
    // Following: once its first sync is done, update 2 turns index 6 red; the next
    // round fetches it from /updates.
    let mut follower = std::process::Command::new(validator_bin())
        .args(sync_args(
            &gw,
            &key_file,
            &state,
            &["--follow", "1", "--rounds", "2"],
        ))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("validator");
    let stderr = follower.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let u2 = update(&gw, list_time, 2, list_time + 20, &[(6, 1)]);
    // Appended only once the first sync is done (its "kept" line is the sign).
    let first = tokio::task::spawn_blocking(move || {
        let first = rx.recv_timeout(crate::support::DEADLINE);
        (first, rx)
    })
    .await
    .expect("join");
    let (first_line, rx) = (first.0.expect("the first sync's line"), first.1);
    assert!(first_line.contains("kept 4 lines"), "{first_line}");
    gw.append_feed(&format!("{}\n", w.status_list_update(&u2)));
    let done = tokio::task::spawn_blocking(move || follower.wait())
        .await
        .expect("join")
        .expect("exit");
    assert!(done.success());
    let _ = reader.join();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().all(|l| !l.contains("refused")), "{rest:?}");
    let held = std::fs::read_to_string(state.join("bundle.ndjson")).expect("bundle");
    assert_eq!(
        held.lines().count(),
        5,
        "the update fetched by following: {rest:?}"
    );
    // The gateway goes away; the gate decides on.
    gw.terminate();
    gw.wait_exit().await;
    let check = |code: &str, venue: &str| {
        let (exit, out, err) = validator(&["check", "--dir", &s(&state), "--venue", venue, code]);
        assert_eq!(exit, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(out.trim()).expect("one JSON line")
    };
    let green = gateway_core::Color::Green;
    let red_since = check(&code_at(&gw, 1, green, list_time - 50, 3), "school");
    assert_eq!(
        (
            red_since["decision"].as_str(),
            red_since["reason"].as_str(),
            red_since["status_checked"].as_bool()
        ),
        (Some("deny"), Some("status_changed"), Some(true)),
        "{red_since}"
    );
    assert_eq!(red_since["offline"], true);
    assert!(
        red_since["list_age_s"]
            .as_u64()
            .is_some_and(|a| (70..=now() - (list_time + 20) + 2).contains(&a)),
        "{red_since}"
    );
    assert!(red_since.get("feed_seq").is_none() && red_since.get("stale").is_none());
    let yellow_since = check(&code_at(&gw, 2, green, list_time - 50, 4), "bus");
    assert_eq!(
        (
            yellow_since["decision"].as_str(),
            yellow_since["conditions"][0].as_str()
        ),
        (Some("allow"), Some("mask")),
        "{yellow_since}"
    );
    let fine = check(&code_at(&gw, 3, green, list_time - 50, 5), "school");
    let followed = check(&code_at(&gw, 6, green, list_time - 50, 6), "school");
    assert_eq!(followed["reason"], "status_changed", "{followed}");
    assert_eq!(
        (fine["decision"].as_str(), fine["status_checked"].as_bool()),
        (Some("allow"), Some(true))
    );
    let newer = check(&code_at(&gw, 4, green, t, 3), "school");
    assert_eq!(
        (
            newer["decision"].as_str(),
            newer["status_checked"].as_bool(),
            newer["list_age_s"].is_null()
        ),
        (Some("allow"), Some(false), true)
    );
    let beyond = check(&code_at(&gw, 5, green, list_time - 50, 64), "school");
    assert_eq!(beyond["reason"], "malformed");
    // Standard input, and a DIR with no bundle.
    let mut child = std::process::Command::new(validator_bin())
        .args(["check", "--dir", &s(&state), "--venue", "school", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("validator");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "  {}  ", code_at(&gw, 1, green, list_time - 50, 3)).expect("write");
    }
    let out = child.wait_with_output().expect("exit");
    assert!(String::from_utf8_lossy(&out.stdout).contains("status_changed"));
    let (exit, _, err) = validator(&[
        "check",
        "--dir",
        &s(&dir.0.join("empty")),
        "--venue",
        "school",
        "x",
    ]);
    assert_eq!(exit, 2);
    assert!(err.contains("holds no bundle"), "{err}");
}

/// Lists are part of snapshots (`feed.md` revision 4): a gateway restarted from its
/// snapshot serves the same list and updates without reading the feed again.
#[tokio::test]
async fn lists_survive_a_restart_from_the_snapshot() {
    let mut gw = Gateway::start(Options::default()).await;
    let w = Writer::new(None);
    let base = now() - 100;
    let first = list(&gw, base, &TwoBits::zeros(256));
    let u1 = update(&gw, base, 1, base + 10, &[(9, 1)]);
    gw.append_feed(&format!(
        "{}\n{}\n",
        w.status_list(&first),
        w.status_list_update(&u1)
    ));
    gw.wait_stat("feed_seq", 2).await;
    let dir = gw.dir.clone();
    gw.terminate();
    gw.wait_exit().await;
    drop(gw);
    let gw = Gateway::start(Options {
        reuse: Some(dir),
        ..Options::default()
    })
    .await;
    assert_eq!(gw.stat("feed_resumed_from").await, 2, "from the snapshot");
    assert_eq!(gw.stat("feed_applied").await, 0);
    assert_eq!(gw.stat("status_lists").await, 1);
    let mut c = gw.client(Protocol::H1).await;
    assert_eq!(
        &get(&mut c, "/v1/status-lists/CN-33-1", GATES_KEY, &[])
            .await
            .body[..],
        &first[..]
    );
    let path = format!("/v1/status-lists/CN-33-1/updates?base={base}&after=0");
    assert_eq!(&get(&mut c, &path, GATES_KEY, &[]).await.body[..], &u1[..]);
}

/// The equivalence of `offline.md`: the test plays the authority (subjects with random
/// indices, status changes with rising versions, revocations, codes issued at random
/// times with the version current at their `iat`), feeds the same history to a real
/// gateway (status and revocation events) and to a real validator (a list, then updates,
/// through the gateway), and for every code issued before the list time the validator's
/// decision equals the gateway's, field by field; the validator decides with the gateway
/// stopped.
#[tokio::test]
async fn offline_decisions_equal_the_gateways() {
    use gateway_core::offline::list::Revoked;
    use gateway_core::{Color, Sub};
    use rand::{Rng, SeedableRng};

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0ff1);
    let mut gw = Gateway::start(Options::default()).await;
    let w = Writer::new(None);
    let root = gateway_issuer::keys::read_root_signer(&gw.setup.root_seed()).expect("root");
    let t_now = now();
    let mut feed = root.key_add_event_seq(
        &gw.issuer()
            .trust_entry(t_now as i64 - 86_400, t_now as i64 + 86_400),
        Some(1),
    );
    feed.push('\n');
    // The history: [start, list time T), a full list at T1, updates up to T.
    let start = t_now - 3_000;
    let t1 = t_now - 1_000;
    let t = t_now - 20;
    const SUBJECTS: usize = 400;
    const SIZE: usize = 4096;
    let mut free: Vec<u32> = (0..SIZE as u32).collect();
    let subjects: Vec<(Sub, u32)> = (0..SUBJECTS)
        .map(|i| {
            let mut s = [0u8; 16];
            rng.fill(&mut s[..]);
            s[0] = i as u8;
            let idx = free.swap_remove(rng.gen_range(0..free.len()));
            (Sub(s), idx)
        })
        .collect();
    // Per subject: (time, color, ver) changes, in time order.
    let colors = [Color::Green, Color::Yellow, Color::Red];
    let mut history: Vec<Vec<(u64, Color, u64)>> = Vec::new();
    let mut events: Vec<(u64, String)> = Vec::new();
    for (sub, _) in &subjects {
        let mut h = vec![(start, Color::Green, 0)];
        let mut at = start;
        for ver in 1..=rng.gen_range(0..4u64) {
            at += rng.gen_range(1..900);
            if at >= t {
                break;
            }
            let c = colors[rng.gen_range(0..3)];
            h.push((at, c, ver));
            events.push((at, w.status(sub, c, ver, None, at as i64)));
        }
        history.push(h);
    }
    let state_at = |h: &[(u64, Color, u64)], time: u64| -> (Color, u64) {
        let (_, c, v) = h
            .iter()
            .rev()
            .find(|(a, _, _)| *a <= time)
            .copied()
            .unwrap_or((start, Color::Green, 0));
        (c, v)
    };
    // Codes issued at random times before T with the state current then.
    let venues = ["school", "bus", "supermarket", "public"];
    let mut codes = Vec::new();
    let mut revoked = Vec::new();
    for n in 0..2000usize {
        let s = rng.gen_range(0..SUBJECTS);
        let (sub, idx) = subjects[s];
        let iat = rng.gen_range(start..t);
        let (color, ver) = state_at(&history[s], iat);
        let mut cti = vec![0u8; 12];
        rng.fill(&mut cti[..]);
        cti[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let exp = t_now + 3_600;
        let code = gw
            .issuer()
            .mint(&gateway_core::token::NewClaims {
                iss: "CN-33".into(),
                sub,
                iat,
                exp,
                cti: cti.clone(),
                color,
                ver,
                why: None,
                kind: None,
                with: None,
                status: Some((idx, URI.into())),
            })
            .expect("mint");
        if rng.gen_range(0..20) == 0 {
            let at = rng.gen_range(iat..t);
            events.push((at, w.revoke(&cti, exp)));
            revoked.push((at, cti.clone(), exp));
        }
        codes.push((code, venues[rng.gen_range(0..venues.len())]));
    }
    // The gateway's feed: the history in time order.
    events.sort_by_key(|(at, _)| *at);
    for (_, e) in &events {
        feed.push_str(e);
        feed.push('\n');
    }
    // The lists: the full list at T1, then updates of what changed in (T1, T] in steps.
    let bits_at = |time: u64| {
        let mut b = TwoBits::zeros(SIZE);
        for ((_, idx), h) in subjects.iter().zip(&history) {
            b.set(
                *idx as usize,
                gateway_core::offline::bits::value_of(state_at(h, time).0),
            );
        }
        b
    };
    let revoked_by = |from: u64, to: u64| -> Vec<Revoked> {
        revoked
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .map(|(_, cti, exp)| Revoked {
                cti: gateway_core::status::Cti::new(cti).expect("cti"),
                exp: *exp,
            })
            .collect()
    };
    let full = gw
        .issuer()
        .sign_status_list(&NewList {
            iss: "CN-33",
            uri: URI,
            iat: t1,
            exp: Some(t_now + 86_400),
            ttl: Some(60),
            bits: &bits_at(t1 - 1),
            revoked: &revoked_by(0, t1),
        })
        .expect("list");
    feed.push_str(&w.status_list(&full));
    feed.push('\n');
    let steps = [t1 + 300, t1 + 650, t];
    let mut prev_time = t1;
    let mut prev_bits = bits_at(t1 - 1);
    for (n, &step) in steps.iter().enumerate() {
        let now_bits = bits_at(step - 1);
        let changes: Vec<(u32, u8)> = (0..SIZE)
            .filter(|i| now_bits.get(*i) != prev_bits.get(*i))
            .map(|i| (i as u32, now_bits.get(i).unwrap_or(0)))
            .collect();
        let u = gw
            .issuer()
            .sign_status_list_update(&NewUpdate {
                iss: "CN-33",
                uri: URI,
                iat: step,
                base: t1,
                n: n as u64 + 1,
                changes: &changes,
                revoked: &revoked_by(prev_time, step),
            })
            .expect("update");
        feed.push_str(&w.status_list_update(&u));
        feed.push('\n');
        prev_time = step;
        prev_bits = now_bits;
    }
    let lines = feed.lines().count() as u64;
    gw.append_feed(&feed);
    gw.wait_stat("feed_seq", lines).await;
    assert_eq!(gw.stat("feed_rejected").await, 0);
    // The gateway's decisions, in batches.
    let mut online = Vec::new();
    let mut c = gw.client(Protocol::H2).await;
    for chunk in codes.chunks(500) {
        let batch: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(code, venue)| serde_json::json!({"code": code, "venue": venue}))
            .collect();
        let a = c
            .post(
                "/v1/verify/batch",
                &gw.api_key,
                serde_json::Value::from(batch).to_string(),
            )
            .await;
        assert_eq!(a.status, 200);
        online.extend(a.json().as_array().expect("array").clone());
    }
    // The validator syncs through the gateway, then the gateway stops.
    let dir = crate::support::TempDir::new("equivalence");
    let key_file = dir.0.join("api.key");
    std::fs::write(&key_file, GATES_KEY).expect("key");
    let state = dir.0.join("gate");
    let s = |p: &std::path::Path| p.display().to_string();
    let args = sync_args(&gw, &key_file, &state, &[]);
    let (code, _, err) = validator(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 refused"), "{err}");
    gw.terminate();
    gw.wait_exit().await;
    let decided_at = now().to_string();
    let (mut checked, mut changed) = (0, 0);
    for ((code, venue), on) in codes.iter().zip(&online) {
        let (exit, out, err) = validator(&[
            "check",
            "--dir",
            &s(&state),
            "--venue",
            venue,
            "--now",
            &decided_at,
            code,
        ]);
        assert_eq!(exit, 0, "{err}");
        let off: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        for field in [
            "decision",
            "color",
            "reason",
            "conditions",
            "policy_version",
        ] {
            assert_eq!(off[field], on[field], "{field}: offline {off} online {on}");
        }
        checked += 1;
        if on["reason"] == "status_changed" {
            changed += 1;
        }
    }
    println!("{checked} codes: offline equals online, {changed} of them status_changed");
    assert!(changed > 20, "the history moved colors ({changed})");
}

/// The issuing side (`cli.md` revision 4): `gateway mint --status-list-uri` gives each
/// subject a stable random place and writes the claim; `gateway publish status-list`
/// builds the list from the places and the registry's colors, signs it and publishes it,
/// then with `--every` an update of what changed; the gateway keeps both.
#[tokio::test]
async fn the_authority_places_subjects_and_publishes_its_list() {
    use gateway_core::offline::list::{ListUpdate, StatusList};
    let gw = Gateway::start(Options::default()).await;
    let state = gw.setup.dir.display().to_string();
    let uri = "https://health.example/status-lists/CN-33-pub";
    let sub = |b: u8| gateway_core::b64::encode(&[b; 16]);
    let mint = |s: &str, extra: &[&str]| {
        let mut args = vec!["mint", "--state-dir", &state, "--sub", s];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(&args)
            .output()
            .expect("mint");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let place_of = |code: &str| {
        let bytes = gateway_core::token::decode_text(code).expect("decodes");
        let t = gateway_core::token::Token::parse(&bytes).expect("parses");
        let st = t.claims.status.expect("a status claim");
        assert_eq!(st.uri, uri);
        st.idx
    };
    let a = place_of(&mint(
        &sub(1),
        &["--status-list-uri", uri, "--status-list-size", "64"],
    ));
    assert_eq!(place_of(&mint(&sub(1), &[])), a, "the place is kept");
    let b = place_of(&mint(&sub(2), &[]));
    assert_ne!(a, b);
    // A subject turns red through the color rules (the registry).
    let facts = gw.dir.0.join("facts.jsonl");
    let turn_red = |s: String| {
        let fact = serde_json::json!({"sub": s, "fact": "diagnosed", "case": "confirmed"});
        std::fs::write(&facts, format!("{fact}\n")).expect("facts");
        let path = facts.display().to_string();
        let (code, err) =
            crate::support::run_cli(&["publish", "--state-dir", &state, "--facts", &path]);
        assert_eq!(code, 0, "{err}");
    };
    turn_red(sub(1));
    let (code, err) = crate::support::run_cli(&["publish", "--state-dir", &state, "status-list"]);
    assert_eq!(code, 0, "{err}");
    eventually("the list held", || async {
        let s = get_plain(gw.admin, "/v1/status").await?.json();
        (s["status_lists"] == 1).then_some(())
    })
    .await;
    let mut c = gw.client(Protocol::H1).await;
    let bytes = get(&mut c, "/v1/status-lists/CN-33-pub", GATES_KEY, &[])
        .await
        .body
        .clone();
    let trust =
        gateway_core::trust::TrustList::from_json(&std::fs::read(gw.setup.trust()).expect("trust"))
            .expect("trust")
            .0;
    let list = StatusList::open(&bytes, &trust, now(), 30).expect("a good list");
    assert_eq!(list.bits.len(), 64);
    assert_eq!(
        (list.bits.get(a as usize), list.bits.get(b as usize)),
        (Some(1), Some(0)),
        "red, green"
    );
    // The publisher follows (a fresh list first); subject 2 turns red meanwhile; its
    // next interval sends an update of that change.
    let first_etag = get(&mut c, "/v1/status-lists/CN-33-pub", GATES_KEY, &[])
        .await
        .headers["etag"]
        .clone();
    // A list's iat must rise: the follower's comes a second after the first at least.
    let first_iat: u64 = first_etag
        .to_str()
        .expect("ascii")
        .trim_matches('"')
        .parse()
        .expect("iat");
    eventually("the next second", || async {
        (now() > first_iat).then_some(())
    })
    .await;
    let follower = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "publish",
            "--state-dir",
            &state,
            "status-list",
            "--every",
            "2",
            "--rounds",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("publisher");
    eventually("the follower's fresh list", || async {
        let mut c = gw.client(Protocol::H1).await;
        let a = get(&mut c, "/v1/status-lists/CN-33-pub", GATES_KEY, &[]).await;
        (a.headers["etag"] != first_etag).then_some(())
    })
    .await;
    turn_red(sub(2));
    let done = tokio::task::spawn_blocking(move || follower.wait_with_output())
        .await
        .expect("join")
        .expect("exit");
    assert!(done.status.success(), "{done:?}");
    let bytes = eventually("the update held", || async {
        let mut c = gw.client(Protocol::H1).await;
        let list = get(&mut c, "/v1/status-lists/CN-33-pub", GATES_KEY, &[]).await;
        let iat: u64 = list.headers["etag"]
            .to_str()
            .ok()?
            .trim_matches('"')
            .parse()
            .ok()?;
        let path = format!("/v1/status-lists/CN-33-pub/updates?base={iat}&after=0");
        let a = get(&mut c, &path, GATES_KEY, &[]).await;
        (!a.body.is_empty()).then(|| a.body.clone())
    })
    .await;
    let u = ListUpdate::open(&bytes, &trust, now(), 30).expect("a good update");
    assert_eq!((u.n, u.changes.as_slice()), (1, &[(b, 1u8)][..]));
}

/// `gateway publish status-list` over NATS JetStream: the list reaches a gateway that
/// follows the stream (skipped, loudly, without nats-server).
#[tokio::test]
async fn status_lists_travel_over_nats() {
    let Some(nats) = crate::support::nats::NatsServer::start() else {
        return;
    };
    let now_s = gateway_core::trust::format_time(now() as i64);
    nats.publish(vec![
        serde_json::json!({"type": "heartbeat", "at": now_s}).to_string()
    ])
    .await;
    let gw = Gateway::start(Options {
        feed_source: Some(nats.feed()),
        ..Options::default()
    })
    .await;
    let state = gw.setup.dir.display().to_string();
    let sub = gateway_core::b64::encode(&[7; 16]);
    let uri = "https://health.example/status-lists/CN-33-nats";
    let (code, err) = crate::support::run_cli(&[
        "mint",
        "--state-dir",
        &state,
        "--sub",
        &sub,
        "--status-list-uri",
        uri,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = crate::support::run_cli(&[
        "publish",
        "--state-dir",
        &state,
        "--to",
        &nats.feed(),
        "status-list",
    ]);
    assert_eq!(code, 0, "{err}");
    gw.wait_stat("status_lists", 1).await;
    let mut c = gw.client(Protocol::H3).await;
    let a = get(&mut c, "/v1/status-lists/CN-33-nats", GATES_KEY, &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/statuslist+cwt");
}
