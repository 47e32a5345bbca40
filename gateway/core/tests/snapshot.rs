//! Snapshots: a round trip restores the same state and decisions; every damaged byte,
//! truncation or appended byte is detected; no input makes the reader panic (100,000
//! generated inputs, random and mutated).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use gateway_core::cose::Alg;
use gateway_core::feed_event;
use gateway_core::policy::reference_policy_json;
use gateway_core::snapshot::{self, Record, SnapshotError};
use gateway_core::status::{Cti, Status};
use gateway_core::trust::{RootKey, TrustList};
use gateway_core::{Color, Policy, Settings, Sub, Verifier};
use gateway_issuer::mint::{Issuer, RootSigner, SigningKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NOW: u64 = 1_780_000_000;
const ROOT_SEED: [u8; 32] = [0x52; 32];

fn root_key() -> RootKey {
    RootKey::from_b64(&RootSigner::from_seed(&ROOT_SEED).public_b64()).unwrap()
}

fn issuer(alg: Alg, kid: &[u8]) -> Issuer {
    Issuer {
        kid: kid.to_vec(),
        issuer: "CN-ZJ".into(),
        key: SigningKey::generate(alg).unwrap(),
    }
}

fn verifier(issuers: &[&Issuer], policy_version: u64) -> Verifier {
    let keys: Vec<_> = issuers
        .iter()
        .map(|i| serde_json::to_value(i.trust_entry(0, 4_000_000_000)).unwrap())
        .collect();
    let (trust, _) =
        TrustList::from_json(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap();
    let policy = Policy::from_json(reference_policy_json(policy_version).as_bytes()).unwrap();
    Verifier::new(Settings::default(), trust, Some(policy), None)
}

/// A verifier with every kind of state: statuses, revoked tokens, a key added and one
/// revoked through the feed, a newer policy.
fn populated() -> (Verifier, Issuer, Issuer) {
    let ed = issuer(Alg::EdDsa, b"ed-1");
    let es = issuer(Alg::Es256, b"es-1");
    let v = verifier(&[&ed], 7);
    let root = RootSigner::from_seed(&ROOT_SEED);
    let rk = root_key();
    let apply = |line: String| {
        v.apply(feed_event::parse(line.as_bytes(), Some(&rk)).unwrap(), NOW)
            .unwrap();
    };
    apply(root.key_add_event(&es.trust_entry(0, 4_000_000_000)));
    apply(root.key_revoke_event("b2xkLWtleQ"));
    apply(root.policy_event(&reference_policy_json(9)));
    for i in 0..5000u32 {
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&i.to_le_bytes());
        s[8] = (i * 7) as u8;
        let color = [Color::Green, Color::Yellow, Color::Red][(i % 3) as usize];
        v.status().apply(
            Sub(s),
            Status {
                color,
                ver: u64::from(i) + 1,
                at: NOW - u64::from(i),
            },
        );
    }
    for i in 0..300u32 {
        let mut id = [0xC7u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        v.revoked_tokens().revoke(
            Cti::new(&id[..(i % 9 + 8) as usize]).unwrap(),
            NOW + u64::from(i),
        );
    }
    (v, ed, es)
}

fn take(v: &Verifier, position: u64) -> Vec<u8> {
    let h = snapshot::header_of(
        v,
        "file:/tmp/feed.jsonl",
        Some("file:dev=1,ino=2"),
        position,
        NOW,
    );
    snapshot::write(v, &h, None, Vec::new()).unwrap()
}

fn statuses(v: &Verifier) -> Vec<(Sub, Status)> {
    let mut all = Vec::new();
    v.status().for_each(|s, st| all.push((s, st)));
    all.sort_by_key(|(s, _)| *s);
    all
}

fn revoked(v: &Verifier) -> Vec<(Vec<u8>, u64)> {
    let mut all = Vec::new();
    v.revoked_tokens()
        .for_each(|c, e| all.push((c.as_bytes().to_vec(), e)));
    all.sort();
    all
}

#[test]
fn round_trip_restores_everything() {
    let (v, ed, es) = populated();
    let bytes = take(&v, 4242);
    // A fresh gateway configured with only the first key and policy 7.
    let fresh = verifier(&[&ed], 7);
    let h = snapshot::read(&bytes[..], &[], |_| {}).unwrap();
    assert_eq!(h.position, 4242);
    assert_eq!(h.subjects, 5000);
    snapshot::restore_header(&fresh, &h, &root_key(), NOW).unwrap();
    snapshot::read(&bytes[..], &[], |r| snapshot::restore_record(&fresh, r)).unwrap();
    assert_eq!(statuses(&fresh), statuses(&v));
    assert_eq!(revoked(&fresh), revoked(&v));
    assert_eq!(fresh.policy().unwrap().version(), 9);
    assert!(
        fresh.trust().get(b"es-1").is_some(),
        "key added by the feed"
    );
    assert!(fresh.trust().revoked().any(|k| k.as_bytes() == b"old-key"));
    // The ES256 key restored from the snapshot verifies its codes.
    let claims = gateway_core::token::NewClaims {
        iss: "CN-ZJ".into(),
        sub: Sub([0xEE; 16]),
        iat: NOW,
        exp: NOW + 3600,
        cti: vec![9; 8],
        color: Color::Green,
        ver: 1,
        why: None,
        kind: None,
        with: None,
        status: None,
    };
    let code = es.mint(&claims).unwrap();
    let d = fresh.decide(&code, "bus", NOW).unwrap();
    assert!(gateway_core::decide::allowed(&d), "{d:?}");
    // Same header again from the restored state.
    let again = snapshot::header_of(
        &fresh,
        "file:/tmp/feed.jsonl",
        Some("file:dev=1,ino=2"),
        4242,
        NOW,
    );
    assert_eq!(again.policy, h.policy);
    assert_eq!(again.key_docs, h.key_docs);
}

#[test]
fn a_keyed_snapshot_reads_back_only_under_its_key() {
    let (v, _, _) = populated();
    let h = snapshot::header_of(&v, "file:/tmp/feed.jsonl", None, 1, NOW);
    let k = |b: u8| snapshot::SnapshotKey::derive(&gateway_core::feed_auth::FeedKey::new(&[b; 32]));
    let bytes = snapshot::write(&v, &h, Some(&k(1)), Vec::new()).unwrap();
    assert!(
        snapshot::read(&bytes[..], &[k(2), k(1)], |_| {}).is_ok(),
        "either key"
    );
    for keys in [vec![k(2)], vec![]] {
        assert!(matches!(
            snapshot::read(&bytes[..], &keys, |_| {}),
            Err(SnapshotError::Checksum)
        ));
    }
    // An unkeyed one is refused by a gateway with keys.
    let plain = snapshot::write(&v, &h, None, Vec::new()).unwrap();
    assert!(matches!(
        snapshot::read(&plain[..], &[k(1)], |_| {}),
        Err(SnapshotError::Checksum)
    ));
}

#[test]
fn documents_not_signed_by_the_root_are_refused_before_anything_applies() {
    let (v, ed, _) = populated();
    let h = snapshot::header_of(&v, "file:/tmp/feed.jsonl", None, 1, NOW);
    let other = RootSigner::from_seed(&[0x99; 32]);
    let mut forged_key = h.clone();
    let ev: serde_json::Value = serde_json::from_str(
        &other.key_add_event(&issuer(Alg::EdDsa, b"rogue").trust_entry(0, 4_000_000_000)),
    )
    .unwrap();
    forged_key
        .key_docs
        .push(ev["signed"].as_str().unwrap().to_owned());
    let mut forged_policy = h.clone();
    let ev: serde_json::Value =
        serde_json::from_str(&other.policy_event(&reference_policy_json(1 << 40))).unwrap();
    forged_policy.policy = Some(ev["signed"].as_str().unwrap().to_owned());
    let mut unsigned_policy = h.clone();
    unsigned_policy.policy = Some(reference_policy_json(1 << 40));
    for forged in [forged_key, forged_policy, unsigned_policy] {
        let fresh = verifier(&[&ed], 7);
        assert!(snapshot::verify_documents(&forged, &root_key()).is_err());
        assert!(snapshot::restore_header(&fresh, &forged, &root_key(), NOW).is_err());
        assert_eq!(fresh.policy().unwrap().version(), 7, "nothing applied");
        assert!(fresh.trust().get(b"es-1").is_none(), "nothing applied");
    }
}

#[test]
fn every_damage_is_detected() {
    let (v, _, _) = populated();
    let bytes = take(&v, 1);
    assert!(snapshot::read(&bytes[..], &[], |_| {}).is_ok());
    // Every truncation point.
    for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let r = snapshot::read(&bytes[..cut], &[], |_| {});
        assert!(r.is_err(), "truncated at {cut} accepted");
    }
    // A flipped bit anywhere.
    for i in (0..bytes.len()).step_by(53) {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(
            snapshot::read(&b[..], &[], |_| {}).is_err(),
            "flip at {i} accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        snapshot::read(&longer[..], &[], |_| {}),
        Err(SnapshotError::Trailing)
    ));
    assert!(matches!(
        snapshot::read(&b"JKMSNAP9"[..], &[], |_| {}),
        Err(SnapshotError::Magic)
    ));
}

#[test]
fn reader_never_panics() {
    let (v, _, _) = populated();
    let seed = take(&v, 7);
    let small = {
        let e = issuer(Alg::EdDsa, b"k");
        let w = verifier(&[&e], 7);
        w.status().apply(
            Sub([3; 16]),
            Status {
                color: Color::Red,
                ver: 2,
                at: NOW,
            },
        );
        take(&w, 1)
    };
    let mut rng = StdRng::seed_from_u64(11);
    let (mut ok, mut bad) = (0, 0);
    for n in 0..100_000 {
        let base = if n % 10 == 0 { &seed } else { &small };
        let mut b = base.clone();
        match rng.gen_range(0..4) {
            0 => {
                let len = rng.gen_range(0..64);
                b = (0..len).map(|_| rng.gen()).collect();
                if rng.gen_bool(0.5) {
                    b.splice(0..0, snapshot::MAGIC.iter().copied());
                }
            }
            1 => {
                let cut = rng.gen_range(0..b.len());
                b.truncate(cut);
            }
            2 => {
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
            }
            _ => {}
        }
        match snapshot::read(&b[..], &[], |r| {
            if let Record::Revoked(c, _) = r {
                assert!(!c.as_bytes().is_empty() && c.as_bytes().len() <= 16);
            }
        }) {
            Ok(h) => {
                ok += 1;
                assert!(h.position == 7 || h.position == 1);
            }
            Err(_) => bad += 1,
        }
    }
    assert!(ok > 1000 && bad > 1000, "{ok} accepted, {bad} refused");
}

#[test]
fn restoring_never_lowers_a_version_or_the_policy() {
    let (v, ed, _) = populated();
    let bytes = take(&v, 1);
    let newer = verifier(&[&ed], 12);
    let s = Sub([0u8; 16]); // subject 0 of `populated`
    newer.status().apply(
        s,
        Status {
            color: Color::Red,
            ver: 99,
            at: NOW,
        },
    );
    let h = snapshot::read(&bytes[..], &[], |_| {}).unwrap();
    snapshot::restore_header(&newer, &h, &root_key(), NOW).unwrap();
    snapshot::read(&bytes[..], &[], |r| snapshot::restore_record(&newer, r)).unwrap();
    assert_eq!(newer.policy().unwrap().version(), 12);
    assert_eq!(newer.status().get(&s).unwrap().ver, 99);
}

/// feed.md revision 4: every record within the bounds the same event would have to
/// meet: a status at `2^53` or above, or a revoked token id outside 8 to 16 bytes, makes
/// the whole snapshot refused.
#[test]
fn records_out_of_an_events_bounds_are_refused() {
    for (ver, cti_len) in [
        (u64::MAX, 8usize),
        (1 << 53, 8),
        ((1 << 53) - 1, 7),
        ((1 << 53) - 1, 1),
    ] {
        let v = verifier(&[], 7);
        v.status().apply(
            Sub([1; 16]),
            Status {
                color: Color::Red,
                ver,
                at: NOW,
            },
        );
        v.revoked_tokens()
            .revoke(Cti::new(&vec![3u8; cti_len]).unwrap(), NOW + 10);
        let h = snapshot::header_of(&v, "file:/tmp/feed.jsonl", None, 1, NOW);
        let bytes = snapshot::write(&v, &h, None, Vec::new()).unwrap();
        assert!(
            matches!(
                snapshot::read(&bytes[..], &[], |_| {}),
                Err(SnapshotError::Record(_))
            ),
            "ver {ver}, cti of {cti_len} bytes"
        );
    }
    let v = verifier(&[], 7);
    v.status().apply(
        Sub([1; 16]),
        Status {
            color: Color::Red,
            ver: (1 << 53) - 1,
            at: NOW,
        },
    );
    v.revoked_tokens()
        .revoke(Cti::new(&[3u8; 16]).unwrap(), NOW + 10);
    let h = snapshot::header_of(&v, "file:/tmp/feed.jsonl", None, 1, NOW);
    let bytes = snapshot::write(&v, &h, None, Vec::new()).unwrap();
    assert!(snapshot::read(&bytes[..], &[], |_| {}).is_ok());
}
