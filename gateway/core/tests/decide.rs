//! Each check of `token.md` at its boundary, through the public API, with codes minted by
//! the issuing side. Time is an argument: nothing here waits.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use gateway_core::cose::Alg;
use gateway_core::feed_event::{self, Event};
use gateway_core::policy::reference_policy_json;
use gateway_core::policy::rollout::Change;
use gateway_core::pseudonym::{CardKind, PseudonymKey};
use gateway_core::status::{Status, StatusApplied};
use gateway_core::token::{Companion, NewClaims};
use gateway_core::trust::{RootKey, TrustList};
use gateway_core::{
    Applied, Color, Policy, Reason, RequestError, Settings, Sub, Verdict, Verifier,
};
use gateway_issuer::mint::{Issuer, RootSigner, SigningKey};

const NOW: u64 = 1_780_000_000;
const DAY: i64 = 86_400;

fn issuer(alg: Alg, kid: &[u8]) -> Issuer {
    let key = match alg {
        Alg::EdDsa => SigningKey::ed25519(&[kid[0]; 32]),
        Alg::Es256 => SigningKey::generate(Alg::Es256).unwrap(),
    };
    Issuer {
        kid: kid.to_vec(),
        issuer: "CN-33".into(),
        key,
    }
}

fn claims(color: Color, ver: u64) -> NewClaims {
    NewClaims {
        iss: "CN-33".into(),
        sub: Sub([9; 16]),
        iat: NOW - 60,
        exp: NOW + 3600,
        cti: vec![1, 2, 3, 4, 5, 6, 7, 8],
        color,
        ver,
        why: None,
        kind: None,
        with: None,
        status: None,
    }
}

struct Fixture {
    v: Verifier,
    ed: Issuer,
    es: Issuer,
    root: RootSigner,
    root_key: RootKey,
}

fn fixture(settings: Settings) -> Fixture {
    let ed = issuer(Alg::EdDsa, b"ed-1");
    let es = issuer(Alg::Es256, b"es-1");
    let nb = NOW as i64 - 365 * DAY;
    let na = NOW as i64 + 365 * DAY;
    let trust = serde_json::json!({"keys": [
        serde_json::to_value(entry_json(&ed, nb, na)).unwrap(),
        serde_json::to_value(entry_json(&es, nb, na)).unwrap(),
    ]});
    let (trust, refused) = TrustList::from_json(trust.to_string().as_bytes()).unwrap();
    assert!(refused.is_empty());
    let policy = Policy::from_json(reference_policy_json(7).as_bytes()).unwrap();
    let pk = PseudonymKey::new(&[1; 32]);
    let root = RootSigner::from_seed(&[0x52; 32]);
    let root_key = RootKey::from_b64(&root.public_b64()).unwrap();
    Fixture {
        v: Verifier::new(settings, trust, Some(policy), Some(pk)),
        ed,
        es,
        root,
        root_key,
    }
}

fn entry_json(i: &Issuer, nb: i64, na: i64) -> serde_json::Value {
    let e = i.trust_entry(nb, na);
    serde_json::json!({"kid": e.kid, "issuer": e.issuer, "alg": e.alg, "public_key": e.public_key,
                       "not_before": e.not_before, "not_after": e.not_after})
}

impl Fixture {
    fn reason(&self, code: &str, now: u64) -> Reason {
        self.v.decide(code, "bus", now).unwrap().holder.reason
    }

    fn feed(&self, line: &str) -> Applied {
        let ev = feed_event::parse(line.as_bytes(), Some(&self.root_key)).unwrap();
        self.v.apply(ev, NOW).unwrap()
    }
}

#[test]
fn time_boundaries() {
    let f = fixture(Settings::default());
    let mut c = claims(Color::Green, 1);
    // iat = now + skew is valid; one second later is not yet valid.
    c.iat = NOW + 30;
    c.exp = NOW + 3600;
    let code = f.ed.mint(&c).unwrap();
    assert_eq!(f.reason(&code, NOW), Reason::Ok);
    assert_eq!(f.reason(&code, NOW - 1), Reason::NotYetValid);
    // now = exp + skew - 1 is valid; now = exp + skew is expired.
    let c = claims(Color::Green, 1);
    let code = f.ed.mint(&c).unwrap();
    assert_eq!(f.reason(&code, c.exp + 29), Reason::Ok);
    assert_eq!(f.reason(&code, c.exp + 30), Reason::Expired);
    // exp - iat = max_validity is fine, one more second is too long.
    let mut c = claims(Color::Green, 1);
    c.exp = c.iat + 86_400;
    assert_eq!(f.reason(&f.ed.mint(&c).unwrap(), NOW), Reason::Ok);
    c.exp += 1;
    assert_eq!(
        f.reason(&f.ed.mint(&c).unwrap(), NOW),
        Reason::ValidityTooLong
    );
}

#[test]
fn custom_limits_apply() {
    let mut s = Settings::default();
    s.limits.skew = 0;
    s.limits.max_validity = 100;
    let f = fixture(s);
    let mut c = claims(Color::Green, 1);
    c.iat = NOW + 1;
    c.exp = NOW + 50;
    assert_eq!(f.reason(&f.ed.mint(&c).unwrap(), NOW), Reason::NotYetValid);
    c.iat = NOW - 10;
    c.exp = NOW + 100;
    assert_eq!(
        f.reason(&f.ed.mint(&c).unwrap(), NOW),
        Reason::ValidityTooLong
    );
}

#[test]
fn es256_and_eddsa_both_verify_and_forgeries_fail() {
    let f = fixture(Settings::default());
    let c = claims(Color::Yellow, 1);
    for i in [&f.ed, &f.es] {
        let code = i.mint(&c).unwrap();
        let d = f.v.decide(&code, "bus", NOW).unwrap();
        assert_eq!(d.holder.verdict, Verdict::Allow);
        assert_eq!(d.holder.conditions.names().collect::<Vec<_>>(), ["mask"]);
        // The same claims signed by another key under this kid: bad signature.
        let forger = Issuer {
            kid: i.kid.clone(),
            issuer: "CN-33".into(),
            key: SigningKey::generate(i.key.alg()).unwrap(),
        };
        assert_eq!(
            f.reason(&forger.mint(&c).unwrap(), NOW),
            Reason::BadSignature
        );
    }
}

#[test]
fn version_order_of_status() {
    let f = fixture(Settings::default());
    let c = claims(Color::Green, 5);
    let code = f.ed.mint(&c).unwrap();
    let status =
        |color, ver| gateway_issuer::events::PLAIN.status(&c.sub, color, ver, None, NOW as i64);
    // Equal version: the token stands.
    assert_eq!(
        f.feed(&status(Color::Red, 5)),
        Applied::Status(StatusApplied::Updated)
    );
    assert_eq!(f.reason(&code, NOW), Reason::Ok);
    // Higher version: red replaces green, and the gate is told the status changed.
    f.feed(&status(Color::Red, 6));
    let d = f.v.decide(&code, "bus", NOW).unwrap();
    assert_eq!(
        (d.holder.verdict, d.holder.reason, d.holder.color),
        (Verdict::Deny, Reason::StatusChanged, Some(Color::Red))
    );
    // An older event arriving late changes nothing.
    assert_eq!(
        f.feed(&status(Color::Green, 4)),
        Applied::Status(StatusApplied::Stale)
    );
    assert_eq!(f.reason(&code, NOW), Reason::StatusChanged);
}

#[test]
fn cached_token_is_still_checked_every_time() {
    let f = fixture(Settings::default());
    let c = claims(Color::Green, 1);
    let code = f.ed.mint(&c).unwrap();
    assert_eq!(f.reason(&code, NOW), Reason::Ok);
    assert_eq!(f.reason(&code, NOW), Reason::Ok);
    let cache = f.v.sig_cache().unwrap();
    assert_eq!(cache.hits_misses(), (1, 1));
    // Time is checked on a hit.
    assert_eq!(f.reason(&code, c.exp + 30), Reason::Expired);
    // So is the token revocation, a moment after the token was cached.
    let cti = gateway_core::b64::encode(&c.cti);
    f.feed(&serde_json::json!({"type": "revoke_token", "cti": cti, "exp": c.exp}).to_string());
    assert_eq!(f.reason(&code, NOW), Reason::TokenRevoked);
    // And a key revocation.
    let other = f.es.mint(&claims(Color::Green, 1)).unwrap();
    assert_eq!(f.reason(&other, NOW), Reason::TokenRevoked); // same cti
    let mut c2 = claims(Color::Green, 1);
    c2.cti = vec![7; 12];
    let other = f.es.mint(&c2).unwrap();
    assert_eq!(f.reason(&other, NOW), Reason::Ok);
    assert_eq!(
        f.feed(&f.root.key_revoke_event(&gateway_core::b64::encode(b"es-1"))),
        Applied::KeyRevoked
    );
    assert_eq!(f.reason(&other, NOW), Reason::KeyRevoked);
}

#[test]
fn replaced_key_invalidates_cached_signatures() {
    let f = fixture(Settings::default());
    let code = f.ed.mint(&claims(Color::Green, 1)).unwrap();
    assert_eq!(f.reason(&code, NOW), Reason::Ok);
    // The kid now names another key: the cached result must not be used.
    let replacement = issuer(Alg::EdDsa, b"Xd-1");
    let mut entry = replacement.trust_entry(NOW as i64 - DAY, NOW as i64 + DAY);
    entry.kid = gateway_core::b64::encode(b"ed-1");
    assert_eq!(f.feed(&f.root.key_add_event(&entry)), Applied::KeyAdded);
    assert_eq!(f.reason(&code, NOW), Reason::BadSignature);
}

#[test]
fn key_checks_in_order() {
    let f = fixture(Settings::default());
    let c = claims(Color::Green, 1);
    let unknown = issuer(Alg::EdDsa, b"zz");
    assert_eq!(
        f.reason(&unknown.mint(&c).unwrap(), NOW),
        Reason::UnknownKey
    );
    // EdDSA header under the ES256 kid.
    let wrong_alg = Issuer {
        kid: b"es-1".to_vec(),
        issuer: "CN-33".into(),
        key: SigningKey::ed25519(&[3; 32]),
    };
    assert_eq!(
        f.reason(&wrong_alg.mint(&c).unwrap(), NOW),
        Reason::AlgMismatch
    );
    let mut other_iss = c.clone();
    other_iss.iss = "CN-44".into();
    assert_eq!(
        f.reason(&f.ed.mint(&other_iss).unwrap(), NOW),
        Reason::IssuerMismatch
    );
    // A key valid only for tokens issued in a window that ended before iat.
    let old = issuer(Alg::EdDsa, b"old");
    let entry = old.trust_entry(NOW as i64 - 10 * DAY, NOW as i64 - 2 * DAY);
    f.feed(&f.root.key_add_event(&entry));
    assert_eq!(
        f.reason(&old.mint(&c).unwrap(), NOW),
        Reason::KeyNotValidAtIssue
    );
    let mut inside = c.clone();
    inside.iat = NOW - 2 * DAY as u64;
    inside.exp = inside.iat + 86_400;
    // Issued on the window's last second: still verifies until it expires (it has).
    assert_eq!(f.reason(&old.mint(&inside).unwrap(), NOW), Reason::Expired);
    assert_eq!(
        f.reason(&old.mint(&inside).unwrap(), inside.exp - 100),
        Reason::Ok
    );
}

#[test]
fn revoked_kid_stays_revoked_when_added_again() {
    let f = fixture(Settings::default());
    let code = f.ed.mint(&claims(Color::Green, 1)).unwrap();
    f.feed(&f.root.key_revoke_event(&gateway_core::b64::encode(b"ed-1")));
    let entry = f.ed.trust_entry(NOW as i64 - DAY, NOW as i64 + DAY);
    f.feed(&f.root.key_add_event(&entry));
    assert_eq!(f.reason(&code, NOW), Reason::KeyRevoked);
}

#[test]
fn an_older_key_document_cannot_roll_a_rekeyed_kid_back() {
    let f = fixture(Settings::default());
    let (nb, na) = (NOW as i64 - DAY, NOW as i64 + DAY);
    // Two key pairs under one kid: the old one, and the one it was re-keyed to.
    let keyed = |seed: u8| Issuer {
        kid: b"rk-1".to_vec(),
        issuer: "CN-33".into(),
        key: SigningKey::ed25519(&[seed; 32]),
    };
    let (old, new) = (keyed(0x41), keyed(0x42));
    let (old_code, new_code) = (
        old.mint(&claims(Color::Green, 1)).unwrap(),
        new.mint(&claims(Color::Green, 1)).unwrap(),
    );
    let add = |i: &Issuer, seq| f.root.key_add_event_seq(&i.trust_entry(nb, na), seq);
    assert_eq!(f.feed(&add(&old, Some(1))), Applied::KeyAdded);
    assert_eq!(f.feed(&add(&new, Some(2))), Applied::KeyAdded);
    assert_eq!(f.reason(&new_code, NOW), Reason::Ok);
    // The old document replayed, or an unsequenced one: kept out.
    assert_eq!(f.feed(&add(&old, Some(1))), Applied::KeyKept);
    assert_eq!(f.feed(&add(&old, None)), Applied::KeyKept);
    assert_eq!(f.reason(&new_code, NOW), Reason::Ok);
    assert_eq!(f.reason(&old_code, NOW), Reason::BadSignature);
    // The same document again changes nothing (feed.md revision 4), and a higher seq
    // re-keys.
    assert_eq!(f.feed(&add(&new, Some(2))), Applied::KeyKept);
    assert_eq!(f.feed(&add(&old, Some(3))), Applied::KeyAdded);
    assert_eq!(f.reason(&old_code, NOW), Reason::Ok);
    // Documents without seq work as before: the latest add wins.
    let unsequenced = |seed: u8| Issuer {
        kid: b"ns-1".to_vec(),
        issuer: "CN-33".into(),
        key: SigningKey::ed25519(&[seed; 32]),
    };
    let (a, b) = (unsequenced(0x43), unsequenced(0x44));
    assert_eq!(f.feed(&add(&a, None)), Applied::KeyAdded);
    assert_eq!(f.feed(&add(&b, None)), Applied::KeyAdded);
    assert_eq!(
        f.reason(&b.mint(&claims(Color::Green, 1)).unwrap(), NOW),
        Reason::Ok
    );
}

#[test]
fn signed_documents_with_bad_signatures_change_nothing() {
    let f = fixture(Settings::default());
    let impostor = RootSigner::from_seed(&[0x66; 32]);
    let line = impostor.policy_event(&reference_policy_json(99));
    assert_eq!(
        feed_event::parse(line.as_bytes(), Some(&f.root_key))
            .unwrap_err()
            .kind(),
        "signature"
    );
    let line = impostor.key_revoke_event(&gateway_core::b64::encode(b"ed-1"));
    assert_eq!(
        feed_event::parse(line.as_bytes(), Some(&f.root_key))
            .unwrap_err()
            .kind(),
        "signature"
    );
    assert_eq!(f.v.policy().unwrap().version(), 7);
}

#[test]
fn policy_replaced_only_by_a_newer_version() {
    let f = fixture(Settings::default());
    let mut doc: serde_json::Value = serde_json::from_str(&reference_policy_json(8)).unwrap();
    doc["venues"]["school"]["yellow"] = "allow".into();
    assert_eq!(
        f.feed(&f.root.policy_event(&doc.to_string())),
        Applied::Policy(Change::InForce { version: 8 })
    );
    let code = f.ed.mint(&claims(Color::Yellow, 1)).unwrap();
    let d = f.v.decide(&code, "school", NOW).unwrap();
    assert_eq!((d.holder.verdict, d.policy_version), (Verdict::Allow, 8));
    for version in [8, 3] {
        let line = f.root.policy_event(&reference_policy_json(version));
        let ev = feed_event::parse(line.as_bytes(), Some(&f.root_key)).unwrap();
        assert!(f.v.apply(ev, NOW).is_err());
    }
    assert_eq!(f.v.policy().unwrap().version(), 8);
    assert_eq!(
        f.v.decide(&code, "spaceport", NOW),
        Err(RequestError::UnknownVenue)
    );
}

#[test]
fn companions_each_decided_with_their_own_status() {
    let f = fixture(Settings::default());
    let mut c = claims(Color::Green, 1);
    let kid_a = Sub([0xa; 16]);
    let kid_b = Sub([0xb; 16]);
    c.with = Some(vec![
        Companion {
            sub: kid_a,
            color: Color::Green,
            ver: 1,
        },
        Companion {
            sub: kid_b,
            color: Color::Red,
            ver: 3,
        },
    ]);
    f.feed(&gateway_issuer::events::PLAIN.status(&kid_a, Color::Red, 2, Some(4), NOW as i64));
    f.feed(&gateway_issuer::events::PLAIN.status(&kid_b, Color::Green, 4, None, NOW as i64));
    let d = f.v.decide(&f.ed.mint(&c).unwrap(), "metro", NOW).unwrap();
    let comp = d.companions.unwrap();
    let got: Vec<_> = comp
        .as_slice()
        .iter()
        .map(|j| (j.verdict, j.color, j.reason))
        .collect();
    assert_eq!(
        got,
        [
            (Verdict::Deny, Some(Color::Red), Reason::StatusChanged),
            (Verdict::Allow, Some(Color::Green), Reason::StatusChanged)
        ]
    );
}

/// A shadow policy (`policy.md` revision 4) judges beside the one in force: every
/// judgement where its table says otherwise carries both outcomes (holder, companions,
/// card checks; cached and uncached, alone and in batches), and the answer stays the
/// policy in force's.
#[test]
fn a_shadow_judges_everyone_beside_the_policy_in_force() {
    use gateway_core::policy::{Outcome, ShadowDiff};
    let f = fixture(Settings::default());
    let mut shadow: serde_json::Value = serde_json::from_str(&reference_policy_json(8)).unwrap();
    shadow["venues"]["museum"]["yellow"] = "allow_mask".into();
    shadow["shadow"] = true.into();
    let ev = f.root.policy_event(&shadow.to_string());
    assert!(matches!(
        f.feed(&ev),
        Applied::Policy(Change::Shadow { version: 8 })
    ));
    assert_eq!(f.v.policy().unwrap().version(), 7, "the one in force stays");
    let diff = Some(ShadowDiff {
        from: Outcome::Deny,
        to: Outcome::AllowMask,
    });
    let mut c = claims(Color::Green, 1);
    c.with = Some(vec![Companion {
        sub: Sub([0x44; 16]),
        color: Color::Yellow,
        ver: 0,
    }]);
    let code = f.ed.mint(&c).unwrap();
    for _ in 0..2 {
        // Uncached, then cached.
        let d = f.v.decide(&code, "museum", NOW).unwrap();
        assert_eq!((d.holder.verdict, d.holder.shadow), (Verdict::Allow, None));
        let comp = d.companions.unwrap().as_slice()[0];
        assert_eq!((comp.verdict, comp.shadow), (Verdict::Deny, diff));
        assert_eq!(d.policy_version, 7);
    }
    let yellow = f.ed.mint(&claims(Color::Yellow, 1)).unwrap();
    let many =
        f.v.decide_many(&[(&yellow, "museum"), (&yellow, "bus")], NOW);
    assert_eq!(many[0].as_ref().unwrap().holder.shadow, diff);
    assert_eq!(
        many[1].as_ref().unwrap().holder.shadow,
        None,
        "same outcome at the bus"
    );
    let sub = PseudonymKey::new(&[1; 32]).pseudonym(CardKind::CitizenCard, "3301000012345678");
    f.feed(&gateway_issuer::events::PLAIN.status(&sub, Color::Yellow, 1, None, NOW as i64));
    let card =
        f.v.decide_card(CardKind::CitizenCard, "3301000012345678", "museum", NOW)
            .unwrap();
    assert_eq!(
        (card.holder.verdict, card.holder.shadow),
        (Verdict::Deny, diff)
    );
    // A policy in force ends the shadow.
    f.feed(&f.root.policy_event(&reference_policy_json(9)));
    let d = f.v.decide(&yellow, "museum", NOW).unwrap();
    assert_eq!((d.holder.shadow, d.policy_version), (None, 9));
}

#[test]
fn card_checks() {
    let f = fixture(Settings::default());
    let d =
        f.v.decide_card(CardKind::CitizenCard, "3301 0000 1234 5678", "museum", NOW)
            .unwrap();
    assert_eq!(d.holder.verdict, Verdict::Allow);
    assert_eq!(
        d.holder.conditions.names().collect::<Vec<_>>(),
        ["mask", "short_stay"]
    );
    let sub = PseudonymKey::new(&[1; 32]).pseudonym(CardKind::CitizenCard, "3301000012345678");
    f.v.apply(
        Event::Status {
            sub,
            status: Status {
                color: Color::Yellow,
                ver: 1,
                at: NOW,
            },
            why: None,
        },
        NOW,
    )
    .unwrap();
    let d =
        f.v.decide_card(CardKind::CitizenCard, "3301000012345678", "bus", NOW)
            .unwrap();
    assert_eq!(
        (d.holder.verdict, d.holder.color),
        (Verdict::Allow, Some(Color::Yellow))
    );
    assert_eq!(d.holder.conditions.names().collect::<Vec<_>>(), ["mask"]);
    let d =
        f.v.decide_card(CardKind::CitizenCard, "3301000012345678", "museum", NOW)
            .unwrap();
    assert_eq!(
        (d.holder.verdict, d.holder.reason),
        (Verdict::Deny, Reason::VenueRestricted)
    );
    assert!(d.holder.conditions.is_empty());
}

#[test]
fn works_without_cache() {
    let f = fixture(Settings {
        sig_cache_capacity: 0,
        ..Settings::default()
    });
    let code = f.ed.mint(&claims(Color::Green, 1)).unwrap();
    assert_eq!(f.reason(&code, NOW), Reason::Ok);
    assert!(f.v.sig_cache().is_none());
}

#[test]
fn forgetting_follows_feed_md() {
    let f = fixture(Settings::default());
    let at = NOW as i64;
    f.feed(&gateway_issuer::events::PLAIN.status(&Sub([1; 16]), Color::Green, 1, None, at));
    f.feed(&gateway_issuer::events::PLAIN.status(&Sub([2; 16]), Color::Red, 1, None, at));
    f.feed(
        &serde_json::json!({"type": "revoke_token", "cti": "AQEBAQEBAQE", "exp": NOW + 10})
            .to_string(),
    );
    assert_eq!(f.v.forget(NOW + 86_400), (0, 1));
    assert_eq!(f.v.forget(NOW + 86_401), (1, 0));
    assert_eq!(f.v.status().len(), 1);
}

#[test]
fn decide_many_gives_the_same_answers_as_decide() {
    let batched = fixture(Settings::default());
    // The same keys and policy, no cache: every answer from a single verification.
    let single = Verifier::new(
        Settings {
            sig_cache_capacity: 0,
            ..Settings::default()
        },
        (*batched.v.trust()).clone(),
        batched.v.policy().map(|p| (*p).clone()),
        None,
    );
    let mut codes = Vec::new();
    for i in 0..20u8 {
        let mut c = claims(
            [Color::Green, Color::Yellow, Color::Red][usize::from(i % 3)],
            1,
        );
        c.sub = Sub([i; 16]);
        c.cti = vec![i; 9];
        let issuer = if i % 5 == 0 { &batched.es } else { &batched.ed };
        codes.push(issuer.mint(&c).unwrap());
    }
    // A forgery (right kid, wrong key), a malformed code, an expired one.
    let forger = Issuer {
        kid: b"ed-1".to_vec(),
        issuer: "CN-33".into(),
        key: SigningKey::ed25519(&[0x77; 32]),
    };
    codes.push(forger.mint(&claims(Color::Green, 1)).unwrap());
    codes.push("JKM1:ABC".into());
    let mut old = claims(Color::Green, 1);
    old.iat = NOW - 7200;
    old.exp = NOW - 3600;
    codes.push(batched.ed.mint(&old).unwrap());
    let venues = ["bus", "school", "moon"];
    let items: Vec<(&str, &str)> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), if i < 20 { venues[i % 3] } else { "bus" }))
        .collect();
    // Twice: the first pass batches (and meets the forgery), the second runs after it.
    for _ in 0..2 {
        let got = batched.v.decide_many(&items, NOW);
        let want: Vec<_> = items
            .iter()
            .map(|(c, v)| single.decide(c, v, NOW))
            .collect();
        assert_eq!(got, want);
    }
    let reasons: Vec<Reason> = batched
        .v
        .decide_many(&items, NOW)
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .map(|d| d.holder.reason)
        .collect();
    assert!(
        reasons.contains(&Reason::BadSignature)
            && reasons.contains(&Reason::Malformed)
            && reasons.contains(&Reason::Expired)
    );
}

#[test]
fn decide_many_batches_clean_traffic_into_the_cache() {
    let f = fixture(Settings::default());
    let codes: Vec<String> = (0..16u8)
        .map(|i| {
            let mut c = claims(Color::Green, 1);
            c.sub = Sub([i; 16]);
            f.ed.mint(&c).unwrap()
        })
        .collect();
    let items: Vec<(&str, &str)> = codes.iter().map(|c| (c.as_str(), "bus")).collect();
    let got = f.v.decide_many(&items, NOW);
    assert!(got
        .iter()
        .all(|d| d.as_ref().unwrap().holder.verdict == Verdict::Allow));
    // The batch's verdicts were recorded: every code is now a cache hit.
    assert_eq!(f.v.sig_cache().unwrap().len(), 16);
    for c in &codes {
        assert!(cached(&f.v, c, "bus", NOW).unwrap().is_some());
    }
    // The server's first try: a cached code is decided, a new one is left for the batch,
    // one that fails before the signature is decided.
    let d = cached(&f.v, &codes[3], "bus", NOW).unwrap().unwrap();
    assert_eq!(d.holder.verdict, Verdict::Allow);
    let new = f.ed.mint(&claims(Color::Red, 9)).unwrap();
    assert_eq!(cached(&f.v, &new, "bus", NOW), Ok(None));
    let d = cached(&f.v, "JKM1:garbage", "bus", NOW).unwrap().unwrap();
    assert_eq!(d.holder.reason, Reason::Malformed);
    assert_eq!(
        cached(&f.v, &codes[3], "moon", NOW),
        Err(RequestError::UnknownVenue)
    );
}

/// The read path's first step as "decided at once, or left for its signature".
fn cached(
    v: &Verifier,
    code: &str,
    venue: &str,
    now: u64,
) -> Result<Option<gateway_core::Decision>, RequestError> {
    v.begin(code, venue, now).map(|b| match b {
        gateway_core::decide::Begun::Decided(d) => Some(d),
        gateway_core::decide::Begun::Pending(_) => None,
    })
}

/// CBOR of a COSE_Sign1 rebuilt from its parts, in the shapes a sender may choose
/// without touching what the signature covers.
fn reencode(
    protected: &[u8],
    unprotected: &[u8],
    payload: &[u8],
    sig: &[u8],
    tagged: bool,
    long_heads: bool,
) -> String {
    let bstr = |out: &mut Vec<u8>, b: &[u8]| {
        if long_heads {
            // A two-byte length head where one (or none) would do.
            out.push(0x59);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        } else if b.len() < 24 {
            out.push(0x40 | b.len() as u8);
        } else if b.len() < 256 {
            out.extend_from_slice(&[0x58, b.len() as u8]);
        } else {
            out.push(0x59);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(b);
    };
    let mut out = Vec::new();
    if tagged {
        out.push(0xd2);
    }
    out.push(0x84);
    bstr(&mut out, protected);
    out.extend_from_slice(unprotected);
    bstr(&mut out, payload);
    bstr(&mut out, sig);
    gateway_core::token::encode_text(&out)
}

/// The P-256 group order, for the high-S twin of an ES256 signature.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn twin_s(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = d.rem_euclid(256) as u8;
    }
    out
}

/// One genuine code sent in many byte-distinct forms (tagged or not, an empty or a
/// filled unprotected map, non-minimal length heads, ES256's high-S twin) costs one
/// signature verification: the first form misses the cache, every other form hits.
#[test]
fn byte_variants_of_one_token_share_one_cache_entry() {
    for alg in [Alg::EdDsa, Alg::Es256] {
        let f = fixture(Settings::default());
        let issuer = if alg == Alg::EdDsa { &f.ed } else { &f.es };
        let code = issuer.mint(&claims(Color::Green, 1)).unwrap();
        let bytes = gateway_core::token::decode_text(&code).unwrap();
        let cose = gateway_core::cose::Sign1::parse(&bytes).unwrap();
        let (p, pl, sig) = (cose.protected, cose.payload, cose.signature.to_vec());
        let filled = [0xa1, 0x21, 0x43, 1, 2, 3]; // {-2: h'010203'}
        let mut variants = vec![
            reencode(p, &[0xa0], pl, &sig, false, false),
            reencode(p, &[0xa0], pl, &sig, true, true),
            reencode(p, &filled, pl, &sig, true, false),
            reencode(p, &filled, pl, &sig, false, true),
        ];
        if alg == Alg::Es256 {
            let mut twin = sig[..32].to_vec();
            twin.extend_from_slice(&twin_s(&sig[32..]));
            variants.push(reencode(p, &[0xa0], pl, &twin, true, false));
        }
        // The original first: a miss, verified, recorded.
        assert!(cached(&f.v, &code, "bus", NOW).unwrap().is_none());
        assert_eq!(
            f.v.decide(&code, "bus", NOW).unwrap().holder.verdict,
            Verdict::Allow
        );
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v, &code);
            let d = cached(&f.v, v, "bus", NOW).unwrap();
            let d = d.unwrap_or_else(|| panic!("{alg:?} variant {i} missed the cache"));
            assert_eq!(
                d,
                f.v.decide(&code, "bus", NOW).unwrap(),
                "{alg:?} variant {i}"
            );
        }
        assert_eq!(f.v.sig_cache().unwrap().len(), 1);
        // A real forgery in the same shapes is still a miss and still fails.
        let mut forged = sig.clone();
        forged[10] ^= 1;
        let bad = reencode(p, &filled, pl, &forged, true, false);
        assert!(cached(&f.v, &bad, "bus", NOW).unwrap().is_none());
        assert_eq!(
            f.v.decide(&bad, "bus", NOW).unwrap().holder.reason,
            Reason::BadSignature
        );
    }
}

/// feed.md revision 4: `seq` is compared whatever the public key, so a replayed older
/// document cannot widen a narrowed window, and a document without `seq` never
/// replaces one with it; a restore from the documents kept gives the live state.
#[test]
fn a_replayed_document_for_the_same_key_cannot_widen_its_window() {
    let f = fixture(Settings::default());
    let i = Issuer {
        kid: b"nw-1".to_vec(),
        issuer: "CN-33".into(),
        key: SigningKey::ed25519(&[0x51; 32]),
    };
    let code = i.mint(&claims(Color::Green, 1)).unwrap();
    let wide = f
        .root
        .key_add_event_seq(&i.trust_entry(NOW as i64 - DAY, NOW as i64 + DAY), Some(1));
    // Narrowed: the window ended before the code was issued.
    let narrow = f.root.key_add_event_seq(
        &i.trust_entry(NOW as i64 - DAY, NOW as i64 - DAY / 2),
        Some(2),
    );
    let unsequenced = f
        .root
        .key_add_event_seq(&i.trust_entry(NOW as i64 - DAY, NOW as i64 + DAY), None);
    assert_eq!(f.feed(&wide), Applied::KeyAdded);
    assert_eq!(f.reason(&code, NOW), Reason::Ok);
    assert_eq!(f.feed(&narrow), Applied::KeyAdded);
    assert_eq!(f.reason(&code, NOW), Reason::KeyNotValidAtIssue);
    assert_eq!(
        f.feed(&wide),
        Applied::KeyKept,
        "the older document replayed"
    );
    assert_eq!(
        f.feed(&unsequenced),
        Applied::KeyKept,
        "a document without seq"
    );
    assert_eq!(f.reason(&code, NOW), Reason::KeyNotValidAtIssue);
    // The documents a snapshot would carry: one per kid, the one in force.
    let docs = f.v.key_docs();
    assert_eq!(docs.len(), 1);
    let restored = fixture(Settings::default());
    for d in &docs {
        let ev = gateway_core::feed_event::key_event(&restored.root_key, d).unwrap();
        restored.v.apply(ev, NOW).unwrap();
    }
    assert_eq!(restored.reason(&code, NOW), Reason::KeyNotValidAtIssue);
}

/// Receipts (`api.md` revision 4): every deny carries one that checks for its subject
/// (the holder's, each denied companion's, 16 zero bytes for a code that does not
/// decode, the card's pseudonym), an allow none, and none at all without a key.
#[test]
fn every_deny_carries_a_receipt_for_its_subject() {
    use gateway_core::decide::receipt::{Receipt, ReceiptKey};
    use gateway_core::feed_auth::FeedKey;
    let key = ReceiptKey::derive(&FeedKey::new(&[2; 32]));
    let f = fixture(Settings {
        receipt_key: Some(*key.bytes()),
        ..Settings::default()
    });
    let check = |r: Option<Receipt>, sub: &Sub, reason: u8| {
        let r = r.expect("a receipt");
        let b = Receipt::decode(r.as_str()).unwrap();
        assert!(key.check(&b, sub), "{r:?}");
        assert_eq!(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64, NOW);
        assert_eq!(b[4], 15, "bus");
        assert_eq!(b[5], reason);
    };
    // A red holder with a green and a red companion.
    let mut c = claims(Color::Red, 1);
    c.with = Some(vec![
        Companion {
            sub: Sub([0x31; 16]),
            color: Color::Green,
            ver: 0,
        },
        Companion {
            sub: Sub([0x32; 16]),
            color: Color::Red,
            ver: 0,
        },
    ]);
    let d = f.v.decide(&f.ed.mint(&c).unwrap(), "bus", NOW).unwrap();
    check(d.holder.receipt, &c.sub, 14);
    let comp = d.companions.unwrap();
    assert_eq!(comp.as_slice()[0].receipt, None, "an allowed companion");
    check(comp.as_slice()[1].receipt, &Sub([0x32; 16]), 14);
    // A green holder: none.
    let d =
        f.v.decide(&f.ed.mint(&claims(Color::Green, 1)).unwrap(), "bus", NOW);
    assert_eq!(d.unwrap().holder.receipt, None);
    // Malformed: 16 zero bytes.
    let d = f.v.decide("JKM1:NOT-A-CODE", "bus", NOW).unwrap();
    check(d.holder.receipt, &Sub([0; 16]), 1);
    // Expired, decided after the claims were read: the holder's sub.
    let mut old = claims(Color::Green, 1);
    old.iat = NOW - 3 * 86_400;
    old.exp = NOW - 2 * 86_400;
    let d = f.v.decide(&f.ed.mint(&old).unwrap(), "bus", NOW).unwrap();
    check(d.holder.receipt, &old.sub, 9);
    // Without a key: no receipts.
    let plain = fixture(Settings::default());
    let d = plain.v.decide(&f.ed.mint(&c).unwrap(), "bus", NOW).unwrap();
    assert_eq!(d.holder.receipt, None);
}
