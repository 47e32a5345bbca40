//! The ratios of benches/README.md, measured interleaved so that the machine's drift
//! (frequency, neighbours) hits both sides of each ratio alike: rounds of a block of the
//! baseline then a block of our operation, the median of the per-round ratios reported.
//! `cargo run --release -p gateway-benches --bin ratios`

use std::hint::black_box;
use std::time::Instant;

use ed25519_dalek::Signature;
use gateway_benches::{codes, signed_parts, verifier, NOW};
use gateway_core::trust::PublicKey;

const ROUNDS: usize = 100;
const BLOCK: usize = 200;

fn per_op(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..BLOCK {
        f();
    }
    t.elapsed().as_nanos() as f64 / BLOCK as f64
}

/// Median over rounds of (ours / baseline), with the medians of each side in ns.
fn ratio(base: &mut dyn FnMut(), ours: &mut dyn FnMut()) -> (f64, f64, f64) {
    let (mut r, mut b, mut o) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which side goes first, so neither always runs on a warmer core.
        let (x, y) = if round % 2 == 0 {
            let x = per_op(base);
            (x, per_op(ours))
        } else {
            let y = per_op(ours);
            (per_op(base), y)
        };
        r.push(y / x);
        b.push(x);
        o.push(y);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (med(&mut r), med(&mut b), med(&mut o))
}

fn main() {
    let (ed, es) = codes();
    let cold = verifier(0);
    let warm = verifier(1_000_000);
    let (ed_msg, ed_sig, ed_key) = signed_parts(&ed);
    let PublicKey::Ed25519(vk) = ed_key else {
        panic!("EdDSA key")
    };
    let sig = Signature::from_bytes(&ed_sig);
    let (es_msg, es_sig, es_key) = signed_parts(&es);
    let PublicKey::Es256(point) = es_key else {
        panic!("ES256 key")
    };

    let report = |name: &str, (r, b, o): (f64, f64, f64)| {
        println!("{name:<44} ratio {r:>6.3}   baseline {b:>10.0} ns   ours {o:>10.0} ns");
    };
    report(
        "cold EdDSA decision / bare verify",
        ratio(
            &mut || {
                black_box(ed25519_dalek::Verifier::verify(&vk, black_box(&ed_msg), &sig).is_ok());
            },
            &mut || {
                black_box(cold.decide(black_box(&ed), "bus", NOW).is_ok());
            },
        ),
    );
    report(
        "cold EdDSA decision / bare verify_strict",
        ratio(
            &mut || {
                black_box(vk.verify_strict(black_box(&ed_msg), &sig).is_ok());
            },
            &mut || {
                black_box(cold.decide(black_box(&ed), "bus", NOW).is_ok());
            },
        ),
    );
    report(
        "cold ES256 decision / bare aws-lc-rs ES256 verify",
        ratio(
            &mut || {
                black_box(
                    point
                        .parsed()
                        .verify_sig(black_box(&es_msg), &es_sig)
                        .is_ok(),
                );
            },
            &mut || {
                black_box(cold.decide(black_box(&es), "bus", NOW).is_ok());
            },
        ),
    );
    warm.decide(&ed, "bus", NOW).expect("venue");
    report(
        "warm EdDSA decision / bare verify",
        ratio(
            &mut || {
                black_box(ed25519_dalek::Verifier::verify(&vk, black_box(&ed_msg), &sig).is_ok());
            },
            &mut || {
                black_box(warm.decide(black_box(&ed), "bus", NOW).is_ok());
            },
        ),
    );
}
