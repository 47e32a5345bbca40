//! Property tests: no input to any decoder panics, and whatever a decoder accepts obeys
//! the spec's rules. At least 100,000 generated inputs per decoder, from a fixed seed
//! (a failure is reproducible), mixing random bytes with mutations of valid inputs so
//! the generated cases reach deep into each decoder. `fuzz/` has coverage-guided
//! targets for the same decoders, for longer runs.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;

use gateway_core::cbor::Reader;
use gateway_core::policy::{reference_policy_json, REQUIRED_VENUES};
use gateway_core::token::{self, Token};
use gateway_core::trust::{RootKey, TrustList};
use gateway_core::{base45, feed_event, Policy, Settings, Verifier};
use gateway_issuer::mint::RootSigner;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const CASES: usize = 100_000;

fn vectors() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("spec vectors") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
            out.extend(v.as_array().cloned().unwrap_or_default());
        }
    }
    out
}

/// The trust list the vectors share.
fn vector_trust() -> Value {
    vectors()
        .into_iter()
        .find_map(|c| c.get("trust").cloned())
        .expect("a case with a trust list")
}

fn codes() -> Vec<String> {
    vectors()
        .iter()
        .filter_map(|c| c["code"].as_str().map(str::to_owned))
        .collect()
}

/// One random byte-level change: flip, set, insert, delete, truncate, duplicate a span.
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        let len = b.len();
        match rng.gen_range(0..6) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                b[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=len);
                b.insert(i, rng.gen());
            }
            3 if len > 0 => {
                b.remove(rng.gen_range(0..len));
            }
            4 => b.truncate(rng.gen_range(0..=len)),
            _ if len > 1 => {
                let i = rng.gen_range(0..len - 1);
                let j = rng.gen_range(i + 1..=len.min(i + 16));
                let span = b[i..j].to_vec();
                let at = rng.gen_range(0..=b.len());
                b.splice(at..at, span);
            }
            _ => b.push(rng.gen()),
        }
    }
    b
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.gen_range(0..max);
    (0..n).map(|_| rng.gen()).collect()
}

/// A structure-aware change to a JSON value: replace, drop or retype one node.
fn mutate_json(rng: &mut StdRng, v: &mut Value) {
    let pick: u32 = rng.gen_range(0..10);
    match v {
        Value::Object(m) if !m.is_empty() && pick < 7 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.gen_range(0..keys.len())];
            if pick == 0 {
                m.remove(k);
            } else if let Some(child) = m.get_mut(k) {
                mutate_json(rng, child);
            }
        }
        Value::Array(a) if !a.is_empty() && pick < 7 => {
            let i = rng.gen_range(0..a.len());
            if pick == 0 {
                a.remove(i);
            } else {
                mutate_json(rng, &mut a[i]);
            }
        }
        Value::String(text) if pick < 6 => {
            // Keep the type, damage the content: reaches the value checks.
            *text = String::from_utf8_lossy(&mutate(rng, text.as_bytes())).into_owned();
        }
        Value::Number(_) if pick < 4 => *v = Value::from(rng.gen::<u64>() >> rng.gen_range(0..64)),
        _ => {
            *v = match rng.gen_range(0..7) {
                0 => Value::Null,
                1 => Value::Bool(rng.gen()),
                2 => Value::from(rng.gen::<i64>()),
                3 => Value::from(rng.gen::<u64>() % 1000),
                4 => Value::from(-rng.gen::<f64>()),
                5 => Value::from(
                    ["green", "red", "allow", "deny", "", "AAAA", "mask"][rng.gen_range(0..7)],
                ),
                _ => Value::Array(vec![Value::from(1)]),
            }
        }
    }
}

fn json_input(rng: &mut StdRng, seeds: &[String]) -> Vec<u8> {
    let seed = &seeds[rng.gen_range(0..seeds.len())];
    match rng.gen_range(0..4) {
        0 => mutate(rng, seed.as_bytes()),
        1 => random_bytes(rng, 64),
        _ => {
            let mut v: Value = serde_json::from_str(seed).expect("seed json");
            for _ in 0..rng.gen_range(1..3) {
                mutate_json(rng, &mut v);
            }
            v.to_string().into_bytes()
        }
    }
}

#[test]
fn code_text_decoder() {
    let mut rng = StdRng::seed_from_u64(1);
    let seeds = codes();
    let (mut ok, mut bad) = (0, 0);
    let mut buf = Vec::new();
    for _ in 0..CASES {
        let input = match rng.gen_range(0..3) {
            0 => random_bytes(&mut rng, 300),
            _ => {
                let i = rng.gen_range(0..seeds.len());
                mutate(&mut rng, seeds[i].as_bytes())
            }
        };
        let text = String::from_utf8_lossy(&input);
        match token::decode_text_into(&text, &mut buf) {
            Ok(()) => {
                ok += 1;
                assert!(text.starts_with("JKM1:") && text.len() <= token::MAX_TEXT_LEN);
                assert_eq!(
                    base45::encode(&buf),
                    text[5..],
                    "Base45 decoding is one-to-one"
                );
            }
            Err(_) => bad += 1,
        }
    }
    assert!(
        ok > 1000 && bad > 1000,
        "generator reached both outcomes: {ok} ok, {bad} refused"
    );
}

#[test]
fn cose_and_claims_decoder() {
    let mut rng = StdRng::seed_from_u64(2);
    let seeds: Vec<Vec<u8>> = codes()
        .iter()
        .filter_map(|c| token::decode_text(c).ok())
        .collect();
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..CASES {
        let input = match rng.gen_range(0..8) {
            0 => random_bytes(&mut rng, 200),
            _ => {
                let i = rng.gen_range(0..seeds.len());
                mutate(&mut rng, &seeds[i])
            }
        };
        // The generic skipper sees the same bytes.
        let _ = Reader::new(&input).skip(1);
        match Token::parse(&input) {
            Ok(t) => {
                ok += 1;
                let c = &t.claims;
                assert!(!t.cose.kid.is_empty() && t.cose.kid.len() <= 16);
                assert!(!c.iss.is_empty() && c.iss.len() <= 32);
                assert!((8..=16).contains(&c.cti.len()));
                assert!(c.iat < c.exp);
                assert!(c.with.map_or(0, |w| w.as_slice().len()) <= 8);
            }
            Err(_) => bad += 1,
        }
    }
    assert!(
        ok > 1000 && bad > 1000,
        "generator reached both outcomes: {ok} ok, {bad} refused"
    );
}

#[test]
fn full_decisions_on_mutated_codes_always_deny_or_verify() {
    // Through the whole pipeline, signatures included (fewer cases: each valid-looking
    // one costs a real verification). Every mutated code must be denied with a reason of
    // steps 1 to 8, unless the mutation touched only ignored bytes.
    let cases = vectors();
    let case = cases
        .iter()
        .find(|c| c["name"] == "policy_public_green")
        .expect("case");
    let (trust, _) = TrustList::from_json(case["trust"].to_string().as_bytes()).expect("trust");
    let policy = Policy::from_json(case["policy"].to_string().as_bytes()).expect("policy");
    let v = Verifier::new(Settings::default(), trust, Some(policy), None);
    let code = case["code"].as_str().expect("code");
    let now = case["now"].as_u64().expect("now");
    let mut rng = StdRng::seed_from_u64(3);
    let seed = token::decode_text(code).expect("decodes");
    let mut denied = 0;
    for _ in 0..20_000 {
        let text = token::encode_text(&mutate(&mut rng, &seed));
        let d = v.decide(&text, "public", now).expect("venue known");
        if d.holder.reason.is_token_failure() {
            denied += 1;
        } else {
            // Accepted: then the bytes must be a token the signature covers unchanged.
            let bytes = token::decode_text(&text).expect("decodes");
            let t = Token::parse(&bytes).expect("parses");
            let orig = Token::parse(&seed).expect("parses");
            assert_eq!(
                (t.cose.protected, t.cose.payload, t.cose.signature),
                (orig.cose.protected, orig.cose.payload, orig.cose.signature)
            );
        }
    }
    assert!(denied > 15_000, "{denied}");
}

/// The vectors' status events, a token revocation and a heartbeat.
fn unsigned_feed_lines() -> Vec<String> {
    let mut lines: Vec<String> = vectors()
        .iter()
        .flat_map(|c| c["status"].as_array().cloned().unwrap_or_default())
        .map(|e| e.to_string())
        .collect();
    lines.push(r#"{"type":"revoke_token","cti":"zSHAKrA5O2R1QKXWscpy3Q","exp":1780000000}"#.into());
    lines.push(r#"{"type":"heartbeat","at":"2026-05-28T20:24:40Z"}"#.into());
    lines
}

#[test]
fn feed_line_decoder() {
    let mut rng = StdRng::seed_from_u64(4);
    let root = RootSigner::from_seed(&[0x52; 32]);
    let root_key = RootKey::from_b64(&root.public_b64()).expect("root");
    let mut seeds = unsigned_feed_lines();
    seeds.push(root.key_revoke_event("emotZWQtMQ"));
    seeds.push(root.policy_event(&reference_policy_json(9)));
    let entry = vector_trust()["keys"][0].clone();
    let mut doc = entry.clone();
    doc["action"] = "add".into();
    seeds.push(
        serde_json::json!({"type": "key", "signed": root.sign_doc(doc.to_string().as_bytes())})
            .to_string(),
    );
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..CASES {
        let input = json_input(&mut rng, &seeds);
        match feed_event::parse(&input, Some(&root_key)) {
            Ok(_) => ok += 1,
            Err(e) => {
                bad += 1;
                assert!(!e.kind().is_empty());
            }
        }
    }
    assert!(
        ok > 1000 && bad > 1000,
        "generator reached both outcomes: {ok} ok, {bad} refused"
    );
}

/// Textual variations on a feed line that the fast path must either parse exactly as
/// serde does or hand over to serde: spacing, escapes, duplicates, `null`, floats,
/// leading zeros, huge numbers, unknown fields, trailing bytes.
fn feed_variant(rng: &mut StdRng, line: &str) -> Vec<u8> {
    const EDITS: &[(&str, &str)] = &[
        (",", " , "),
        (":", " :\t"),
        ("{", "\r\n{ "),
        ("}", " }\n"),
        ("\"ver\":", "\"ver\":0"),
        ("\"ver\":", "\"ver\":-"),
        ("\"ver\":", "\"ver\":1844674407370955161"),
        ("\"ver\":", "\"ver\":null,\"x\":"),
        ("\"exp\":", "\"exp\":0"),
        ("\"why\":", "\"why\":1.5,\"w\":"),
        ("\"type\"", "\"typ\\u0065\""),
        ("\"type\"", "\"type\":\"status\",\"type\""),
        ("\"color\":\"", "\"color\":\"\\u0072"),
        ("\"sub\":\"", "\"sub\":\"\u{e9}"),
        ("\"at\":\"", "\"at\":\"\t"),
        ("}", ",\"extra\":[1,{\"a\":2}]}"),
        ("}", ",}"),
        ("}", "}x"),
        ("}", "} "),
        ("\"ver\":", "\"ver\":1e3,\"v\":"),
        ("\"ver\":", "\"ver\": 0"),
    ];
    let mut s = line.to_owned();
    for _ in 0..rng.gen_range(1..4) {
        let (from, to) = EDITS[rng.gen_range(0..EDITS.len())];
        if let Some(i) = s.find(from) {
            s.replace_range(i..i + from.len(), to);
        }
    }
    s.into_bytes()
}

/// The fast path for common feed lines (`feed_scan.rs`) gives what serde alone gives,
/// value for value and error for error.
#[test]
fn feed_fast_path_matches_serde() {
    let mut rng = StdRng::seed_from_u64(14);
    let mut seeds = unsigned_feed_lines();
    seeds.push(r#"{"type":"status","sub":"AAAAAAAAAAAAAAAAAAAAAA","color":"red","ver":7,"why":3,"at":"2026-05-28T20:24:40+08:00"}"#.into());
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..CASES {
        let input = if rng.gen_bool(0.5) {
            let seed = &seeds[rng.gen_range(0..seeds.len())];
            feed_variant(&mut rng, seed)
        } else {
            json_input(&mut rng, &seeds)
        };
        let fast = format!("{:?}", feed_event::parse(&input, None));
        let generic = format!("{:?}", feed_event::parse_generic(&input, None));
        assert_eq!(fast, generic, "input {:?}", String::from_utf8_lossy(&input));
        if fast.starts_with("Ok") {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    assert!(ok > 10_000 && bad > 10_000, "{ok} parsed, {bad} refused");
}

#[test]
fn policy_decoder() {
    let mut rng = StdRng::seed_from_u64(5);
    let seeds = vec![reference_policy_json(7)];
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..CASES {
        let input = json_input(&mut rng, &seeds);
        match Policy::from_json(&input) {
            Ok(p) => {
                ok += 1;
                assert!(REQUIRED_VENUES.iter().all(|v| p.venue(v).is_some()));
            }
            Err(_) => bad += 1,
        }
    }
    assert!(
        ok > 1000 && bad > 1000,
        "generator reached both outcomes: {ok} ok, {bad} refused"
    );
}

#[test]
fn trust_list_decoder() {
    let mut rng = StdRng::seed_from_u64(6);
    let seeds = vec![vector_trust().to_string()];
    let (mut ok, mut bad, mut refused_keys) = (0, 0, 0);
    for _ in 0..CASES {
        let input = json_input(&mut rng, &seeds);
        match TrustList::from_json(&input) {
            Ok((list, refused)) => {
                ok += 1;
                refused_keys += refused.len();
                assert!(list
                    .keys()
                    .all(|k| k.not_before <= k.not_after && !k.issuer.is_empty()));
            }
            Err(_) => bad += 1,
        }
    }
    assert!(
        ok > 1000 && bad > 1000 && refused_keys > 1000,
        "{ok} ok, {bad} refused, {refused_keys} keys refused"
    );
}

#[test]
fn base45_round_trip() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..CASES {
        let b = random_bytes(&mut rng, 100);
        assert_eq!(
            base45::decode(base45::encode(&b).as_bytes()).expect("decodes"),
            b
        );
    }
}
