//! P-256 (ES256) verification in each maintained Rust crate, on the same bytes: one
//! vector code's Sig_structure, signature and key, beside Ed25519's single verification
//! of another vector code. The measurement behind the gateway's choice of ES256 verifier
//! (`gateway/core/src/trust/signature.rs`): the CPU decides (AVX-512 and ADX code paths
//! differ between these libraries), so it is measured on the machine, not assumed.
//!
//! aws-lc-rs (the gateway's), ring (the TLS stack's) and p256 (RustCrypto, pure Rust)
//! are the workspace's own; OpenSSL (the library HAProxy's `jwt_verify` calls) joins with
//! `--features crypto-compare`, which builds it against the system's (libssl-dev):
//! `cargo bench -p gateway-benches --bench es256 --features crypto-compare`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gateway_benches::{codes, signed_parts};
use gateway_core::trust::PublicKey;

fn es256(c: &mut Criterion) {
    let (ed, es) = codes();
    let (msg, sig, key) = signed_parts(&es);
    let PublicKey::Es256(key) = key else {
        panic!("the ES256 vector has an ES256 key")
    };
    let point: [u8; 65] = *key.point();

    let mut g = c.benchmark_group("es256_verify");

    let ring_key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    assert!(ring_key.verify(&msg, &sig).is_ok());
    g.bench_function("ring", |b| {
        b.iter(|| ring_key.verify(black_box(&msg), black_box(&sig)).is_ok())
    });

    {
        use p256::ecdsa::signature::Verifier;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).expect("point");
        let s = p256::ecdsa::Signature::from_slice(&sig).expect("signature");
        assert!(vk.verify(&msg, &s).is_ok());
        g.bench_function("p256", |b| {
            b.iter(|| vk.verify(black_box(&msg), black_box(&s)).is_ok())
        });
    }

    {
        use aws_lc_rs::signature::{ParsedPublicKey, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
        let unparsed = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
        assert!(unparsed.verify(&msg, &sig).is_ok());
        g.bench_function("aws_lc_rs", |b| {
            b.iter(|| unparsed.verify(black_box(&msg), black_box(&sig)).is_ok())
        });
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).expect("point");
        assert!(parsed.verify_sig(&msg, &sig).is_ok());
        g.bench_function("aws_lc_rs_parsed_key", |b| {
            b.iter(|| parsed.verify_sig(black_box(&msg), black_box(&sig)).is_ok())
        });
    }

    #[cfg(feature = "crypto-compare")]
    {
        use openssl::bn::{BigNum, BigNumContext};
        use openssl::ec::{EcGroup, EcKey, EcPoint};
        use openssl::ecdsa::EcdsaSig;
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let mut ctx = BigNumContext::new().expect("context");
        let p = EcPoint::from_bytes(&group, &point, &mut ctx).expect("point");
        let pkey =
            PKey::from_ec_key(EcKey::from_public_key(&group, &p).expect("key")).expect("pkey");
        // JWS and COSE carry r ‖ s; OpenSSL verifies DER, as HAProxy converts before it.
        let der = EcdsaSig::from_private_components(
            BigNum::from_slice(&sig[..32]).expect("r"),
            BigNum::from_slice(&sig[32..]).expect("s"),
        )
        .and_then(|s| s.to_der())
        .expect("DER");
        let verify = |msg: &[u8], der: &[u8]| -> bool {
            openssl::sign::Verifier::new(MessageDigest::sha256(), &pkey)
                .and_then(|mut v| v.verify_oneshot(der, msg))
                .unwrap_or(false)
        };
        assert!(verify(&msg, &der));
        g.bench_function("openssl", |b| {
            b.iter(|| verify(black_box(&msg), black_box(&der)))
        });
    }
    g.finish();

    // The reference the issue's ratios are taken against: one Ed25519 verification.
    let (msg, sig, key) = signed_parts(&ed);
    let PublicKey::Ed25519(vk) = key else {
        panic!("the EdDSA vector has an Ed25519 key")
    };
    let signature = ed25519_dalek::Signature::from_bytes(&sig);
    c.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| {
            vk.verify_strict(black_box(&msg), black_box(&signature))
                .is_ok()
        })
    });
}

criterion_group!(benches, es256);
criterion_main!(benches);
