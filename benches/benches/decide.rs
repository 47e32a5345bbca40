//! Decision costs with frozen inputs and clock: decoding alone, full decisions cold
//! (signature verified) and warm (signature cache hit), against the bare signature
//! verifications of the same bytes in the same run; Ed25519 batch verification; and the
//! two candidate signature caches.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use gateway_benches::{codes, signed_parts, verifier, NOW};
use gateway_core::token::{self, Token};
use gateway_core::trust::PublicKey;

fn decisions(c: &mut Criterion) {
    let (ed, es) = codes();
    let cold = verifier(0);
    let warm = verifier(1_000_000);
    assert!(gateway_core::decide::allowed(
        &cold.decide(&ed, "bus", NOW).expect("venue")
    ));
    assert!(gateway_core::decide::allowed(
        &cold.decide(&es, "bus", NOW).expect("venue")
    ));

    let mut g = c.benchmark_group("decision");
    g.bench_function("decode_only", |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            token::decode_text_into(black_box(&ed), &mut buf).expect("decodes");
            black_box(Token::parse(&buf).expect("parses").claims.ver)
        })
    });

    let (msg, sig, key) = signed_parts(&ed);
    let PublicKey::Ed25519(vk) = key else {
        panic!("EdDSA key")
    };
    let signature = Signature::from_bytes(&sig);
    g.bench_function("bare_ed25519_verify", |b| {
        b.iter(|| {
            vk.verify_strict(black_box(&msg), black_box(&signature))
                .is_ok()
        })
    });
    g.bench_function("bare_ed25519_verify_nonstrict", |b| {
        b.iter(|| {
            ed25519_dalek::Verifier::verify(&vk, black_box(&msg), black_box(&signature)).is_ok()
        })
    });
    g.bench_function("cold_eddsa", |b| {
        b.iter(|| cold.decide(black_box(&ed), "bus", NOW))
    });

    let (msg, sig, key) = signed_parts(&es);
    let PublicKey::Es256(point) = key else {
        panic!("ES256 key")
    };
    // The same verifier as the gateway's (aws-lc-rs, the key parsed at load).
    g.bench_function("bare_es256_verify", |b| {
        b.iter(|| {
            point
                .parsed()
                .verify_sig(black_box(&msg), black_box(&sig))
                .is_ok()
        })
    });
    g.bench_function("cold_es256", |b| {
        b.iter(|| cold.decide(black_box(&es), "bus", NOW))
    });

    warm.decide(&ed, "bus", NOW).expect("venue");
    g.bench_function("warm_eddsa", |b| {
        b.iter(|| warm.decide(black_box(&ed), "bus", NOW))
    });
    g.bench_function("sha256_digest_of_token", |b| {
        let bytes = token::decode_text(&ed).expect("decodes");
        b.iter(|| gateway_core::sigcache::SigCache::digest(black_box(&bytes)))
    });
    // The cache key the verifier uses: over what the signature covers.
    g.bench_function("sig_cache_key_of_token", |b| {
        let bytes = token::decode_text(&ed).expect("decodes");
        let cose = gateway_core::cose::Sign1::parse(&bytes).expect("parses");
        b.iter(|| gateway_core::sigcache::SigCache::key(black_box(&cose)))
    });
    g.finish();
}

/// Per-signature cost of ed25519-dalek's batch verification, and of a batch holding one
/// forgery (the batch fails, then each signature is checked alone to find it).
fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("ed25519_batch");
    for n in [8usize, 32, 64] {
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
            .collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 180]).collect();
        let sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("batch_{n}"), |b| {
            b.iter(|| ed25519_dalek::verify_batch(black_box(&refs), &sigs, &vks).is_ok())
        });
        let mut forged = sigs.clone();
        let mut raw = forged[n / 2].to_bytes();
        raw[0] ^= 1;
        forged[n / 2] = Signature::from_bytes(&raw);
        g.bench_function(format!("batch_{n}_one_forged_then_singles"), |b| {
            b.iter(|| {
                if ed25519_dalek::verify_batch(&refs, &forged, &vks).is_ok() {
                    return n;
                }
                (0..n)
                    .filter(|&i| vks[i].verify_strict(refs[i], &forged[i]).is_ok())
                    .count()
            })
        });
    }
    g.finish();
}

/// The two candidate signature caches at one million entries: a hit each.
fn caches(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let keys: Vec<[u8; 32]> = (0..N as u64)
        .map(|i| gateway_core::sigcache::SigCache::digest(&i.to_le_bytes()))
        .collect();
    let mut g = c.benchmark_group("sig_cache_hit_1m");
    let qc = quick_cache::sync::Cache::<[u8; 32], u64>::new(N);
    for k in &keys {
        qc.insert(*k, 1);
    }
    let mut i = 0usize;
    g.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            qc.get(&keys[i])
        })
    });
    drop(qc);
    let moka = moka::sync::Cache::<[u8; 32], u64>::new(N as u64);
    for k in &keys {
        moka.insert(*k, 1);
    }
    moka.run_pending_tasks();
    g.bench_function("moka", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            moka.get(&keys[i])
        })
    });
    g.finish();
}

/// Cold decisions of distinct codes, one by one against `decide_many` (batch
/// verification of the cache misses), per code. The codes are the spec vectors' valid
/// EdDSA codes; each iteration starts from an empty cache.
fn many(c: &mut Criterion) {
    let codes: Vec<String> = (0..1)
        .flat_map(|_| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../spec/vectors/policy.json");
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).expect("vectors"))
                    .expect("json");
            v.as_array()
                .expect("cases")
                .iter()
                .map(|c| c["code"].as_str().expect("code").to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let items: Vec<(&str, &str)> = codes.iter().map(|c| (c.as_str(), "public")).collect();
    let mut g = c.benchmark_group("cold_distinct_codes");
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("decide_each", |b| {
        b.iter_batched(
            || verifier(1000),
            |v| {
                items
                    .iter()
                    .filter(|(c, ve)| v.decide(c, ve, NOW).is_ok())
                    .count()
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("decide_many", |b| {
        b.iter_batched(
            || verifier(1000),
            |v| v.decide_many(&items, NOW).len(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// What a receipt costs a warm deny (`api.md` revision 4; issue 26): the same red code at
/// a school, decided from the signature cache by a verifier without a receipt key and
/// by one with (one HMAC-SHA256 over 22 bytes, the text written inline).
fn receipts(c: &mut Criterion) {
    let red = gateway_benches::case("policy.json", "policy_school_red")["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let plain = verifier(1_000_000);
    let with = gateway_benches::verifier_with_receipts(1_000_000);
    for v in [&plain, &with] {
        let d = v.decide(&red, "school", NOW).expect("venue");
        assert!(!gateway_core::decide::allowed(&d));
    }
    assert!(with
        .decide(&red, "school", NOW)
        .expect("venue")
        .holder
        .receipt
        .is_some());
    assert!(plain
        .decide(&red, "school", NOW)
        .expect("venue")
        .holder
        .receipt
        .is_none());
    let mut g = c.benchmark_group("receipt");
    g.bench_function("warm_deny_without_feed_key", |b| {
        b.iter(|| plain.decide(black_box(&red), "school", NOW))
    });
    g.bench_function("warm_deny_with_receipt", |b| {
        b.iter(|| with.decide(black_box(&red), "school", NOW))
    });
    g.finish();
}

/// What a shadow policy costs a warm decision (`policy.md` revision 4; issue 26: target
/// at most 5 %): the same green code at the bus, from the signature cache, by a verifier
/// without a shadow and by one whose shadow judges every such decision otherwise (a
/// second table lookup and the difference recorded in the judgement).
fn shadow(c: &mut Criterion) {
    let (ed, _) = codes();
    let plain = verifier(1_000_000);
    let shadowed = gateway_benches::verifier_with_shadow(1_000_000);
    let p = plain.decide(&ed, "bus", NOW).expect("venue");
    let s = shadowed.decide(&ed, "bus", NOW).expect("venue");
    assert!(p.holder.shadow.is_none());
    assert!(s.holder.shadow.is_some(), "the shadow judges otherwise");
    assert_eq!(
        p.holder.verdict, s.holder.verdict,
        "the answer is the policy in force's"
    );
    let mut g = c.benchmark_group("shadow");
    g.bench_function("warm_allow_without_shadow", |b| {
        b.iter(|| plain.decide(black_box(&ed), "bus", NOW))
    });
    g.bench_function("warm_allow_with_shadow", |b| {
        b.iter(|| shadowed.decide(black_box(&ed), "bus", NOW))
    });
    g.finish();
}

criterion_group!(benches, decisions, batch, caches, many, receipts, shadow);
criterion_main!(benches);
