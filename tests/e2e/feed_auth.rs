//! The authenticated feed (feed.md revision 3): with a feed key only the authority's
//! events change a decision or count as signs of life; without one the gateway says so.

use gateway_core::feed_auth::FeedKey;
use gateway_core::feed_event::VER_LIMIT;
use gateway_core::{Color, Sub};
use gateway_issuer::events::{Writer, PLAIN};

use crate::support::client::get_plain;
use crate::support::{eventually, run_cli, Gateway, Options};

async fn readyz(gw: &Gateway) -> serde_json::Value {
    get_plain(gw.admin, "/readyz").await.expect("admin").json()
}

fn rejected(metrics: &str, kind: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("gateway_feed_rejected_total") && l.contains(&format!("kind=\"{kind}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn with_a_feed_key_one_unsigned_event_changes_nothing() {
    let gw = Gateway::start(Options::keyed(&[])).await;
    assert_eq!(readyz(&gw).await["feed_auth"], true);
    assert_eq!(gw.status().await["feed_auth"], true);
    let key = gw.feed_key();
    let sub = Sub([0x21; 16]);
    let now = gateway_issuer::unix_now() as i64;
    // The authority says red at version 5; a code issued red is denied.
    gw.append_feed(&format!(
        "{}\n",
        Writer::new(Some(&key)).status(&sub, Color::Red, 5, None, now)
    ));
    gw.wait_stat("feed_applied", 1).await;
    let code = gw.mint(sub, Color::Red, 5);
    assert_eq!(gw.decision(&code).await, "deny");
    // The attack of the issue: green at the top version, unsigned; then with a mac of
    // another key; then the authority's own key at 2^53 (malformed whatever its mac).
    let other = FeedKey::new(&[0x42; 32]);
    gw.append_feed(&format!(
        "{}\n{}\n{}\n",
        PLAIN.status(&sub, Color::Green, u64::MAX >> 11, None, now),
        Writer::new(Some(&other)).status(&sub, Color::Green, 6, None, now),
        Writer::new(Some(&key)).status(&sub, Color::Green, VER_LIMIT, None, now),
    ));
    gw.wait_stat("feed_rejected", 3).await;
    assert_eq!(gw.stat("feed_applied").await, 1);
    assert_eq!(gw.decision(&code).await, "deny", "nothing changed");
    let m = get_plain(gw.admin, "/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert_eq!(rejected(&text, "bad_mac"), 2.0);
    assert_eq!(rejected(&text, "field"), 1.0);
    // The authority's next version still applies: nothing was fixed for good.
    gw.append_feed(&format!(
        "{}\n",
        Writer::new(Some(&key)).status(&sub, Color::Green, 6, None, now)
    ));
    gw.wait_stat("feed_applied", 2).await;
    assert_eq!(gw.decision(&gw.mint(sub, Color::Green, 6)).await, "allow");
    // The issuing side's own command writes the mac with the state directory's key.
    let state = gw.setup.dir.display().to_string();
    let sub_b64 = gateway_core::b64::encode(&sub.0);
    let (rc, err) = run_cli(&[
        "feed",
        "--state-dir",
        &state,
        "status",
        "--sub",
        &sub_b64,
        "--color",
        "red",
        "--ver",
        "7",
    ]);
    assert_eq!(rc, 0, "{err}");
    gw.wait_stat("feed_applied", 3).await;
    assert_eq!(gw.decision(&gw.mint(sub, Color::Green, 6)).await, "deny");
}

#[tokio::test]
async fn forged_heartbeats_do_not_keep_a_cut_off_gateway_fresh() {
    let gw = Gateway::start(Options::keyed(&["--stale-after", "1"])).await;
    let key = gw.feed_key();
    let beat = |k: Option<&FeedKey>| {
        format!(
            "{}\n",
            Writer::new(k).heartbeat(gateway_issuer::unix_now() as i64, None)
        )
    };
    // The authority's heartbeats keep it fresh.
    gw.append_feed(&beat(Some(&key)));
    eventually("fresh", || async {
        (readyz(&gw).await["stale"] == false).then_some(())
    })
    .await;
    // Only forged ones from now on: it goes stale while they keep arriving.
    eventually("stale under forged heartbeats", || async {
        gw.append_feed(&beat(None));
        gw.append_feed(&beat(Some(&FeedKey::new(&[1; 32]))));
        (readyz(&gw).await["stale"] == true).then_some(())
    })
    .await;
    assert!(gw.stat("feed_rejected").await >= 2);
    // And fresh again with the next real one.
    gw.append_feed(&beat(Some(&key)));
    eventually("fresh again", || async {
        (readyz(&gw).await["stale"] == false).then_some(())
    })
    .await;
}

#[tokio::test]
async fn without_a_feed_key_events_need_no_mac_and_readyz_says_so() {
    let gw = Gateway::start(Options::default()).await;
    assert_eq!(readyz(&gw).await["feed_auth"], false);
    let sub = Sub([0x22; 16]);
    gw.append_feed(&format!(
        "{}\n",
        PLAIN.status(&sub, Color::Red, 2, None, gateway_issuer::unix_now() as i64)
    ));
    gw.wait_stat("feed_applied", 1).await;
    assert_eq!(gw.decision(&gw.mint(sub, Color::Green, 1)).await, "deny");
}

#[test]
fn feed_key_files_are_checked_before_the_gateway_starts() {
    let dir = crate::support::TempDir::new("feedkey");
    let setup = gateway_issuer::DevSetup::new(&dir.0.join("state"));
    setup.ensure().expect("setup");
    let state = setup.dir.display().to_string();
    let key = setup.feed_key().display().to_string();
    let serve = |extra: &[&str]| {
        let mut a = vec![
            "serve",
            "--state-dir",
            &state,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ];
        a.extend_from_slice(extra);
        run_cli(&a)
    };
    // Three keys: at most the one in use and the next.
    let (rc, err) = serve(&["--feed-key", &key, "--feed-key", &key, "--feed-key", &key]);
    assert_ne!(rc, 0);
    assert!(
        err.contains("--feed-key") && err.contains("at most 2"),
        "{err}"
    );
    // Not a key.
    let bad = dir.0.join("bad.key");
    std::fs::write(&bad, "short\n").unwrap();
    gateway_issuer::owner_only::narrow(&bad).unwrap();
    let (rc, err) = serve(&["--feed-key", &bad.display().to_string()]);
    assert_ne!(rc, 0);
    assert!(err.contains("bad.key") && err.contains("32 bytes"), "{err}");
    // Readable by others: refused, one line naming the file.
    let loose = dir.0.join("loose.key");
    std::fs::copy(&key, &loose).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (rc, err) = serve(&["--feed-key", &loose.display().to_string()]);
    assert_ne!(rc, 0);
    assert!(
        err.contains("loose.key") && err.contains("owner only"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("gateway:")).count(),
        1,
        "{err}"
    );
}

#[tokio::test]
async fn snapshots_are_not_a_trust_root() {
    use gateway_core::snapshot::{self, SnapshotKey};
    // The authority's feed: a subject red, an issuer key revoked.
    let mut a = Gateway::start(Options::keyed(&[])).await;
    let key = a.feed_key();
    let now = gateway_issuer::unix_now() as i64;
    let red = Sub([0x31; 16]);
    let root = gateway_issuer::keys::read_root_signer(&a.setup.root_seed()).expect("root seed");
    let revoked_kid = gateway_core::b64::encode(b"retired-1");
    a.append_feed(&format!(
        "{}\n{}\n",
        Writer::new(Some(&key)).status(&red, Color::Red, 3, None, now),
        root.key_revoke_event(&revoked_kid),
    ));
    a.wait_stat("feed_seq", 2).await;
    a.terminate();
    assert!(a.wait_exit().await.success());
    let files = a.snapshot_files();
    assert_eq!(files.len(), 1);
    let legit = std::fs::read(&files[0]).unwrap();
    let dir = a.dir.clone();
    drop(a);
    let real_key = SnapshotKey::derive(&key);
    let header = snapshot::read(&legit[..], std::slice::from_ref(&real_key), |_| {})
        .expect("the gateway's own snapshot reads back with its key");
    assert_eq!(
        header.key_docs.len(),
        1,
        "the revoke is carried as the root signed it"
    );
    // The attacker can write the state directory and has a root of their own.
    let attacker = gateway_issuer::mint::RootSigner::from_seed(&[0x66; 32]);
    let rogue_issuer = gateway_issuer::mint::Issuer {
        kid: b"rogue-1".to_vec(),
        issuer: "CN-33".into(),
        key: gateway_issuer::mint::SigningKey::ed25519(&[0x67; 32]),
    };
    let added_key = {
        let mut h = header.clone();
        let ev: serde_json::Value = serde_json::from_str(
            &attacker.key_add_event(&rogue_issuer.trust_entry(0, 4_000_000_000)),
        )
        .unwrap();
        h.key_docs.push(ev["signed"].as_str().unwrap().to_owned());
        (h, Some(&real_key))
    };
    let permissive = {
        let mut h = header.clone();
        let doc = gateway_core::policy::reference_policy_json(u64::MAX >> 12)
            .replace("\"deny\"", "\"allow\"");
        let ev: serde_json::Value = serde_json::from_str(&attacker.policy_event(&doc)).unwrap();
        h.policy = Some(ev["signed"].as_str().unwrap().to_owned());
        (h, Some(&real_key))
    };
    // Without the revoke, and without the feed key (the attacker does not have it).
    let unrevoked = {
        let mut h = header.clone();
        h.key_docs.clear();
        (h, None)
    };
    let far_ahead = {
        let mut h = header.clone();
        h.position = 1_000_000_000;
        (h, Some(&real_key))
    };
    for (what, (forged, with)) in [
        ("an added key", added_key),
        ("a permissive policy at a huge version", permissive),
        ("an un-revoked kid", unrevoked),
        ("a far-ahead position", far_ahead),
    ] {
        // Written by the gateway's own writer, from the real records.
        let v = gateway_core::Verifier::new(
            gateway_core::Settings::default(),
            gateway_core::trust::TrustList::from_json(b"{\"keys\": []}")
                .unwrap()
                .0,
            None,
            None,
        );
        snapshot::read(&legit[..], std::slice::from_ref(&real_key), |r| {
            snapshot::restore_record(&v, r)
        })
        .unwrap();
        let bytes = snapshot::write(&v, &forged, with, Vec::new()).unwrap();
        std::fs::write(&files[0], &bytes).unwrap();
        let gw = Gateway::start(Options {
            reuse: Some(dir.clone()),
            ..Options::keyed(&[])
        })
        .await;
        gw.wait_stat("feed_seq", 2).await;
        assert_eq!(
            gw.stat("feed_resumed_from").await,
            0,
            "{what}: replayed instead"
        );
        let m = get_plain(gw.admin, "/metrics").await.unwrap();
        let text = String::from_utf8_lossy(&m.body).into_owned();
        assert!(
            text.lines()
                .any(|l| l.starts_with("gateway_snapshot_refused_total") && !l.ends_with(" 0")),
            "{what}: refused"
        );
        // The authority's state, not the snapshot's.
        assert_eq!(
            gw.decision(&gw.mint(red, Color::Green, 1)).await,
            "deny",
            "{what}"
        );
        assert_eq!(gw.status().await["revoked_keys"], 1, "{what}");
        assert_eq!(gw.status().await["trust_keys"], 1, "{what}");
        assert_eq!(readyz(&gw).await["policy_version"], 1, "{what}");
        let mut gw = gw;
        gw.terminate();
        gw.wait_exit().await;
        // Each run leaves a good snapshot of its own; keep the forged file the only one.
        for f in gw.snapshot_files() {
            if f != files[0] {
                std::fs::remove_file(f).unwrap();
            }
        }
    }
}
