//! Status lists (`offline.md`) against the draft's own examples: the two-bit encodings
//! decode to the values the draft sets (its `src/main.py`), and its CWT example parses
//! as a status list token, header and claims, before this profile refuses its `bits` 1.

use gateway_core::cbor::{self, Key, Reader};
use gateway_core::offline::bits::TwoBits;
use gateway_core::offline::inflate::{self, InflateError};
use gateway_core::offline::list::{Envelope, ListError, StatusList, TYP_LIST};
use gateway_core::trust::TrustList;

fn example(name: &str) -> String {
    let path = format!(
        "{}/tests/data/status-list-draft/{name}.md",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("example")
}

/// The hex after `encoded:` (or the whole file), whitespace removed.
fn hex_of(text: &str) -> Vec<u8> {
    let body = text.split("encoded:").last().unwrap_or(text);
    let h: String = body.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// `{"bits": b, "lst": z}` → (b, inflated lst).
fn encoding(cbor_bytes: &[u8]) -> (u64, Vec<u8>) {
    let mut r = Reader::new(cbor_bytes);
    let n = r.map_len().expect("map");
    let (mut bits, mut lst) = (None, None);
    for _ in 0..n {
        match r.key(1).expect("key") {
            Key::Str(cbor::TEXT, b"bits") => bits = Some(r.uint().expect("bits")),
            Key::Str(cbor::TEXT, b"lst") => lst = Some(r.bytes().expect("lst")),
            _ => panic!("unexpected key"),
        }
    }
    r.finish().expect("nothing after");
    let raw = inflate::zlib(lst.expect("lst"), inflate::MAX_LIST_BYTES).expect("inflates");
    (bits.expect("bits"), raw)
}

#[test]
fn the_two_bit_example_decodes_to_the_drafts_values() {
    let (bits, raw) = encoding(&hex_of(&example("status_list_encoding2_cbor")));
    assert_eq!(bits, 2);
    assert_eq!(raw, [0xc9, 0x44, 0xf9]);
    let list = TwoBits::from_bytes(raw);
    let want = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
    assert_eq!(list.len(), want.len());
    for (i, v) in want.iter().enumerate() {
        assert_eq!(list.get(i), Some(*v), "index {i}");
    }
}

#[test]
fn the_long_two_bit_example_decodes_to_the_drafts_values() {
    let (bits, raw) = encoding(&hex_of(&example("status_list_encoding2_long_cbor")));
    assert_eq!(bits, 2);
    let list = TwoBits::from_bytes(raw);
    assert_eq!(list.len(), 1 << 20);
    let set = [
        (0, 1),
        (1993, 2),
        (25460, 1),
        (159495, 3),
        (495669, 1),
        (554353, 1),
        (645645, 2),
        (723232, 1),
        (854545, 1),
        (934534, 2),
        (1000345, 3),
    ];
    let mut nonzero = 0;
    for i in 0..list.len() {
        let v = list.get(i).expect("in range");
        if v != 0 {
            nonzero += 1;
            assert!(set.contains(&(i, v)), "index {i} = {v}");
        }
    }
    assert_eq!(nonzero, set.len());
    // The same bytes under a bound below their length are refused, not truncated.
    let z = miniz_oxide::deflate::compress_to_vec_zlib(list.as_bytes(), 6);
    assert_eq!(
        inflate::zlib(&z, (1 << 18) - 1),
        Err(InflateError::TooLarge((1 << 18) - 1))
    );
}

#[test]
fn the_drafts_cwt_parses_and_this_profile_refuses_its_one_bit() {
    let bytes = hex_of(&example("status_list_cwt"));
    let env = Envelope::parse(&bytes).expect("a status list token, header and claims");
    assert_eq!(env.typ, TYP_LIST);
    assert_eq!(env.kid, b"12", "the kid from the unprotected header");
    assert_eq!(env.alg, gateway_core::cose::Alg::Es256);
    let c = &env.claims;
    assert_eq!(c.sub, Some("https://example.com/statuslists/1"));
    assert_eq!(c.iat, Some(1_686_920_170));
    assert_eq!(c.exp, Some(2_291_720_170));
    assert_eq!(c.ttl, Some(43_200));
    assert_eq!(c.iss, None);
    let (bits, lst) = c.status_list.expect("status_list");
    assert_eq!(bits, 1);
    // The draft's one-bit example list: bytes b9 a3.
    assert_eq!(inflate::zlib(lst, 1 << 20), Ok(vec![0xb9, 0xa3]));
    let (one_bit, raw) = encoding(&hex_of(&example("status_list_encoding_cbor")));
    assert_eq!((one_bit, raw), (1, vec![0xb9, 0xa3]));
    // This profile: two bits only, checked first.
    let (trust, _) = TrustList::from_json(br#"{"keys": []}"#).expect("empty trust list");
    assert_eq!(
        StatusList::open(&bytes, &trust, 1_700_000_000, 30),
        Err(ListError::Bits(1))
    );
    // Without its tag it is not a status list token.
    assert_eq!(
        Envelope::parse(&bytes[1..]).err(),
        Some(ListError::NotSign1)
    );
}

mod signed {
    use gateway_core::cose::Alg;
    use gateway_core::offline::bits::TwoBits;
    use gateway_core::offline::held::{HeldList, Offered, UpdateError};
    use gateway_core::offline::list::{
        build_signed, ListError, ListUpdate, NewList, NewUpdate, Revoked, StatusList, TYP_LIST,
        TYP_UPDATE,
    };
    use gateway_core::status::Cti;
    use gateway_core::trust::TrustList;
    use gateway_issuer::mint::{Issuer, SigningKey};

    const NOW: u64 = 1_800_000_000;
    const URI: &str = "https://health.example/status-lists/CN-33-1";

    fn issuer() -> Issuer {
        Issuer {
            kid: b"list-1".to_vec(),
            issuer: "CN-33".into(),
            key: SigningKey::ed25519(&[9; 32]),
        }
    }

    fn trust(i: &Issuer) -> TrustList {
        i.trust_list(NOW as i64 - 86_400, NOW as i64 + 86_400)
    }

    fn sign(i: &Issuer, typ: &str, payload: &[u8]) -> Vec<u8> {
        build_signed(Alg::EdDsa, &i.kid, typ, payload, |m| {
            i.key.sign(m).expect("signs")
        })
    }

    fn list(i: &Issuer, uri: &str, iat: u64, bits: &TwoBits, revoked: &[Revoked]) -> Vec<u8> {
        let payload = NewList {
            iss: &i.issuer,
            uri,
            iat,
            exp: Some(iat + 86_400),
            ttl: Some(300),
            bits,
            revoked,
        }
        .encode(6);
        sign(i, TYP_LIST, &payload)
    }

    fn update(i: &Issuer, base: u64, n: u64, iat: u64, changes: &[(u32, u8)]) -> Vec<u8> {
        let payload = NewUpdate {
            iss: &i.issuer,
            uri: URI,
            iat,
            base,
            n,
            changes,
            revoked: &[],
        }
        .encode(6);
        sign(i, TYP_UPDATE, &payload)
    }

    #[test]
    fn a_signed_list_opens_and_every_bad_one_is_refused() {
        let i = issuer();
        let t = trust(&i);
        let mut bits = TwoBits::zeros(40_000);
        bits.set(7, 1);
        bits.set(39_999, 2);
        let cti = Cti::new(&[5; 12]).expect("cti");
        let revoked = [Revoked { cti, exp: NOW + 60 }];
        let bytes = list(&i, URI, NOW - 10, &bits, &revoked);
        let l = StatusList::open(&bytes, &t, NOW, 30).expect("opens");
        assert_eq!(
            (l.iss.as_str(), l.uri.as_str(), l.iat),
            ("CN-33", URI, NOW - 10)
        );
        assert_eq!((l.ttl, l.exp), (Some(300), Some(NOW - 10 + 86_400)));
        assert_eq!(l.bits, bits);
        assert_eq!(l.revoked, revoked);
        // Its signature covers every byte of the claims.
        let mut forged = bytes.clone();
        let at = forged.len() - 70;
        forged[at] ^= 1;
        assert!(StatusList::open(&forged, &t, NOW, 30).is_err());
        // Ahead of the clock beyond the skew.
        assert_eq!(
            StatusList::open(&list(&i, URI, NOW + 31, &bits, &[]), &t, NOW, 30),
            Err(ListError::NotYetValid)
        );
        // A NAME that is not the issuer's.
        let other = "https://health.example/status-lists/CN-44-1";
        assert_eq!(
            StatusList::open(&list(&i, other, NOW, &bits, &[]), &t, NOW, 30),
            Err(ListError::NameNotIssuers)
        );
        // An update's typ is not a list's.
        let up = update(&i, NOW, 1, NOW + 1, &[]);
        assert!(matches!(
            StatusList::open(&up, &t, NOW, 30),
            Err(ListError::Typ)
        ));
        // An unknown key.
        let stranger = Issuer {
            kid: b"stranger".to_vec(),
            ..issuer()
        };
        assert_eq!(
            StatusList::open(&list(&stranger, URI, NOW, &bits, &[]), &t, NOW, 30),
            Err(ListError::Key("unknown kid"))
        );
        // A bomb: 65 MiB of zeros is one byte over 256 Mi indices' worth... refused.
        let huge = TwoBits::zeros((64 << 20) * 4 + 4);
        assert!(matches!(
            StatusList::open(&list(&i, URI, NOW, &huge, &[]), &t, NOW, 30),
            Err(ListError::Inflate(_))
        ));
    }

    #[test]
    fn updates_apply_in_order_early_ones_wait_and_bad_ones_change_nothing() {
        let i = issuer();
        let t = trust(&i);
        let base = NOW - 1000;
        let l = StatusList::open(&list(&i, URI, base, &TwoBits::zeros(64), &[]), &t, NOW, 30)
            .expect("list");
        let mut held = HeldList::new(l);
        let open = |b: Vec<u8>| ListUpdate::open(&b, &t, NOW, 30).expect("update opens");
        // Update 2 before 1: held aside, then both applied in order.
        let u2 = open(update(&i, base, 2, base + 20, &[(3, 1), (3, 2)]));
        assert_eq!(u2.changes, [(3, 1), (3, 2)]);
        assert_eq!(held.offer(u2), Ok(Offered::HeldAside));
        assert_eq!(held.value(3), Some(0), "not yet");
        assert_eq!(
            held.offer(open(update(&i, base, 1, base + 10, &[(5, 1)]))),
            Ok(Offered::Applied(1))
        );
        assert_eq!((held.applied(), held.time()), (2, base + 20));
        assert_eq!(
            (held.value(3), held.value(5)),
            (Some(2), Some(1)),
            "the last value of an index wins"
        );
        // Refusals change nothing.
        let before = (held.applied(), held.time(), held.list().bits.clone());
        let refused = [
            (
                update(&i, base + 1, 3, base + 30, &[(1, 1)]),
                UpdateError::OtherBase,
            ),
            (
                update(&i, base, 2, base + 30, &[(1, 1)]),
                UpdateError::Repeated,
            ),
            (
                update(&i, base, 3, base + 20, &[(1, 1)]),
                UpdateError::NotNewer,
            ),
            (
                update(&i, base, 3, base + 30, &[(64, 1)]),
                UpdateError::IndexBeyond,
            ),
        ];
        for (bytes, why) in refused {
            assert_eq!(held.offer(open(bytes)), Err(why));
            assert_eq!(
                (held.applied(), held.time(), held.list().bits.clone()),
                before
            );
        }
        // At most 64 wait for a gap.
        for n in 4..4 + 64 {
            assert_eq!(
                held.offer(open(update(&i, base, n, base + 30 + n, &[]))),
                Ok(Offered::HeldAside)
            );
        }
        assert_eq!(
            held.offer(open(update(&i, base, 100, base + 200, &[]))),
            Err(UpdateError::TooManyAside)
        );
        // The gap fills: all 65 applied.
        assert_eq!(
            held.offer(open(update(&i, base, 3, base + 31, &[]))),
            Ok(Offered::Applied(64))
        );
        assert_eq!(held.applied(), 67);
        // changes that are not pairs of small unsigned integers.
        assert!(gateway_core::offline::list::decode_changes(&[0x83, 1, 2, 3]).is_err());
        assert!(gateway_core::offline::list::decode_changes(&[0x82, 1, 4]).is_err());
        assert!(gateway_core::offline::list::decode_changes(&[0x82, 1, 2, 0]).is_err());
    }

    struct Held(Vec<HeldList>);

    impl gateway_core::offline::decide::Lists for Held {
        fn list(&self, uri: &str) -> Option<&HeldList> {
            self.0.iter().find(|h| h.list().uri == uri)
        }
        fn revoked(&self, cti: &Cti, now: u64) -> bool {
            self.0.iter().any(|h| h.is_revoked(cti, now))
        }
    }

    #[test]
    fn the_offline_decision_takes_the_color_from_a_newer_list() {
        use gateway_core::token::NewClaims;
        use gateway_core::{Color, Policy, Reason, Settings, Sub, Verdict, Verifier};
        let i = issuer();
        let t = trust(&i);
        let policy =
            Policy::from_json(gateway_core::policy::reference_policy_json(1).as_bytes()).unwrap();
        let v = Verifier::new(Settings::default(), trust(&i), Some(policy), None);
        let list_time = NOW - 100;
        let mut bits = TwoBits::zeros(16);
        bits.set(3, 1); // red
        bits.set(4, 2); // yellow
        let revoked_cti = [0x77; 12];
        let revoked = [Revoked {
            cti: Cti::new(&revoked_cti).unwrap(),
            exp: NOW + 600,
        }];
        let l = StatusList::open(&list(&i, URI, list_time, &bits, &revoked), &t, NOW, 30).unwrap();
        let lists = Held(vec![HeldList::new(l)]);
        let code = |color: Color, iat: u64, idx: u32, cti: [u8; 12]| {
            i.mint(&NewClaims {
                iss: "CN-33".into(),
                sub: Sub([idx as u8; 16]),
                iat,
                exp: iat + 3600,
                cti: cti.to_vec(),
                color,
                ver: 1,
                why: None,
                kind: None,
                with: None,
                status: Some((idx, URI.into())),
            })
            .unwrap()
        };
        let decide = |c: &str| v.decide_offline(c, "school", NOW, &lists).unwrap();
        // Issued before the list: the list's red decides.
        let d = decide(&code(Color::Green, list_time - 50, 3, [1; 12]));
        assert_eq!(
            (d.decision.holder.verdict, d.decision.holder.reason),
            (Verdict::Deny, Reason::StatusChanged)
        );
        assert_eq!((d.status_checked, d.list_time), (true, Some(list_time)));
        // A green index stays green.
        let d = decide(&code(Color::Green, list_time - 50, 5, [2; 12]));
        assert_eq!(
            (d.decision.holder.verdict, d.status_checked),
            (Verdict::Allow, true)
        );
        // Issued after the list: the token's color stands.
        let d = decide(&code(Color::Green, list_time + 10, 3, [3; 12]));
        assert_eq!(
            (d.decision.holder.verdict, d.status_checked, d.list_time),
            (Verdict::Allow, false, None)
        );
        // An index beyond the list: malformed.
        let d = decide(&code(Color::Green, list_time - 50, 16, [4; 12]));
        assert_eq!(d.decision.holder.reason, Reason::Malformed);
        // Revoked by the list.
        let d = decide(&code(Color::Green, list_time - 50, 5, revoked_cti));
        assert_eq!(d.decision.holder.reason, Reason::TokenRevoked);
        // Steps 2 to 7 as online: a forged code.
        let mut forged = code(Color::Green, list_time - 50, 5, [5; 12]);
        forged.pop();
        forged.push('A');
        assert_ne!(decide(&forged).decision.holder.verdict, Verdict::Allow);
        // Without a claim the token's color stands.
        let plain = i
            .mint(&NewClaims {
                iss: "CN-33".into(),
                sub: Sub([9; 16]),
                iat: list_time - 50,
                exp: list_time + 3600,
                cti: vec![6; 12],
                color: Color::Yellow,
                ver: 1,
                why: None,
                kind: None,
                with: None,
                status: None,
            })
            .unwrap();
        let d = decide(&plain);
        assert_eq!(
            (d.decision.holder.reason, d.status_checked),
            (Reason::VenueRestricted, false)
        );
    }
}
