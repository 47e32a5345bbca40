//! Status list sizes and costs (`offline.md`; issue 25 item 6), one run, one process:
//!
//! - the signed list's size at 1, 10 and 65 million subjects with 0.1 %, 1 % and 10 %
//!   flagged (red or yellow at random indices), in bits per flagged subject and per
//!   subject, beside a Bloom filter of the flagged at DCC's 10^-12 (computed);
//! - an update's size per changed subject (1,000 and 10,000 changes);
//! - building and signing a 10-million-subject list (the publisher) and opening it
//!   (signature, inflate: what a validator does on load);
//! - offline decisions per second on one core (a warm token, a held list).
//!
//! `cargo run --release -p gateway-benches --bin status_lists [quick]` (`quick`: 1 and
//! 10 million only). Prints a Markdown table per part.

use std::time::Instant;

use gateway_core::offline::bits::TwoBits;
use gateway_core::offline::held::HeldList;
use gateway_core::offline::list::{ListUpdate, NewList, NewUpdate, StatusList};
use gateway_core::token::NewClaims;
use gateway_core::trust::TrustList;
use gateway_core::{Color, Settings, Sub, Verifier};
use gateway_issuer::mint::{Issuer, SigningKey};
use rand::{Rng, SeedableRng};

const NOW: u64 = 1_800_000_000;
const URI: &str = "https://health.example/status-lists/CN-33-1";

fn issuer() -> Issuer {
    Issuer {
        kid: b"bench-list".to_vec(),
        issuer: "CN-33".into(),
        key: SigningKey::ed25519(&[3; 32]),
    }
}

fn trust(i: &Issuer) -> TrustList {
    i.trust_list(NOW as i64 - 86_400, NOW as i64 + 86_400)
}

/// A verifier trusting `i`, on the reference policy, with this signature cache.
fn verifier(i: &Issuer, sig_cache_capacity: usize) -> Verifier {
    let policy =
        gateway_core::Policy::from_json(gateway_core::policy::reference_policy_json(1).as_bytes())
            .expect("policy");
    let settings = Settings {
        sig_cache_capacity,
        ..Settings::default()
    };
    Verifier::new(settings, trust(i), Some(policy), None)
}

fn flagged(n: usize, share: f64, seed: u64) -> TwoBits {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bits = TwoBits::zeros(n);
    let k = (n as f64 * share) as usize;
    for _ in 0..k {
        let i = rng.gen_range(0..n);
        bits.set(i, if rng.gen_bool(0.5) { 1 } else { 2 });
    }
    bits
}

fn sign_list(i: &Issuer, bits: &TwoBits) -> Vec<u8> {
    i.sign_status_list(&NewList {
        iss: "CN-33",
        uri: URI,
        iat: NOW - 10,
        exp: None,
        ttl: Some(300),
        bits,
        revoked: &[],
    })
    .expect("signs")
}

/// `status_lists feed STATE_DIR`: prints feed lines of a 10 M-subject list (1 % flagged)
/// and three updates signed by that development state's issuer (`bundle_fanout.sh`).
fn feed(dir: &str) {
    let i = gateway_issuer::DevSetup::new(std::path::Path::new(dir))
        .issuer()
        .expect("the state directory's issuer");
    let now = gateway_issuer::unix_now();
    let uri = "https://localhost/status-lists/CN-33-big";
    let bits = flagged(10_000_000, 0.01, 5);
    let w = gateway_issuer::events::Writer::new(None);
    let list = i
        .sign_status_list(&NewList {
            iss: "CN-33",
            uri,
            iat: now - 100,
            exp: Some(now + 86_400),
            ttl: Some(300),
            bits: &bits,
            revoked: &[],
        })
        .expect("signs");
    println!("{}", w.status_list(&list));
    for n in 1..=3u64 {
        let u = i
            .sign_status_list_update(&NewUpdate {
                iss: "CN-33",
                uri,
                iat: now - 100 + n,
                base: now - 100,
                n,
                changes: &[(n as u32, 1)],
                revoked: &[],
            })
            .expect("signs");
        println!("{}", w.status_list_update(&u));
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("feed") {
        feed(
            &std::env::args()
                .nth(2)
                .unwrap_or_else(|| "gateway-state".into()),
        );
        return;
    }
    let quick = std::env::args().nth(1).as_deref() == Some("quick");
    let i = issuer();
    let t = trust(&i);
    println!("CPU: {}", cpu_model());
    println!("\n| subjects | flagged | signed list bytes | bits per flagged | bits per subject | Bloom 10^-12 bytes (flagged only) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let sizes: &[usize] = if quick {
        &[1_000_000, 10_000_000]
    } else {
        &[1_000_000, 10_000_000, 65_000_000]
    };
    for &n in sizes {
        for share in [0.001, 0.01, 0.1] {
            let bits = flagged(n, share, 7);
            let signed = sign_list(&i, &bits);
            let k = n as f64 * share;
            // A Bloom filter at p = 1e-12 needs -ln p / (ln 2)^2 ≈ 57.5 bits per entry.
            let bloom = k * (-(1e-12f64).ln()) / (2f64.ln().powi(2)) / 8.0;
            println!(
                "| {} M | {:.1} % | {} | {:.2} | {:.4} | {:.0} |",
                n / 1_000_000,
                share * 100.0,
                signed.len(),
                signed.len() as f64 * 8.0 / k,
                signed.len() as f64 * 8.0 / n as f64,
                bloom
            );
        }
    }
    // Updates: bytes per changed subject.
    println!("\n| changes in an update | signed update bytes | bytes per change |");
    println!("| --- | --- | --- |");
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for k in [1usize, 100, 1_000, 10_000] {
        let changes: Vec<(u32, u8)> = (0..k)
            .map(|_| (rng.gen_range(0..10_000_000), rng.gen_range(0..3)))
            .collect();
        let signed = i
            .sign_status_list_update(&NewUpdate {
                iss: "CN-33",
                uri: URI,
                iat: NOW,
                base: NOW - 10,
                n: 1,
                changes: &changes,
                revoked: &[],
            })
            .expect("signs");
        println!(
            "| {k} | {} | {:.2} |",
            signed.len(),
            signed.len() as f64 / k as f64
        );
    }
    // The publisher and the validator at 10 million, 1 % flagged.
    let n = 10_000_000;
    let bits = flagged(n, 0.01, 11);
    let started = Instant::now();
    let signed = sign_list(&i, &bits);
    let build = started.elapsed();
    let started = Instant::now();
    let list = StatusList::open(&signed, &t, NOW, 30).expect("opens");
    let open = started.elapsed();
    println!("\n| 10 M subjects, 1 % flagged | ms |");
    println!("| --- | --- |");
    println!(
        "| deflate and sign (publisher) | {:.1} |",
        build.as_secs_f64() * 1e3
    );
    println!(
        "| verify and inflate (validator load) | {:.1} |",
        open.as_secs_f64() * 1e3
    );
    // Offline decisions per second.
    let mut held = HeldList::new(list);
    let up = i
        .sign_status_list_update(&NewUpdate {
            iss: "CN-33",
            uri: URI,
            iat: NOW - 5,
            base: NOW - 10,
            n: 1,
            changes: &[(3, 1)],
            revoked: &[],
        })
        .expect("signs");
    let _ = held.offer(ListUpdate::open(&up, &t, NOW, 30).expect("update"));
    let lists = One(held);
    // As the validator runs: no signature cache (each code decided once).
    let v = verifier(&i, 0);
    let code = i
        .mint(&NewClaims {
            iss: "CN-33".into(),
            sub: Sub([1; 16]),
            iat: NOW - 100,
            exp: NOW + 3600,
            cti: vec![1; 12],
            color: Color::Green,
            ver: 1,
            why: None,
            kind: None,
            with: None,
            status: Some((3, URI.into())),
        })
        .expect("mint");
    let d = v
        .decide_offline(&code, "bus", NOW, &lists)
        .expect("decides");
    assert!(d.status_checked);
    let rounds = 200_000;
    let offline_rounds = 20_000;
    let started = Instant::now();
    for _ in 0..offline_rounds {
        std::hint::black_box(
            v.decide_offline(std::hint::black_box(&code), "bus", NOW, &lists)
                .ok(),
        );
    }
    let offline = started.elapsed().as_secs_f64() / offline_rounds as f64;
    let online = verifier(&i, 1_000_000);
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(online.decide(std::hint::black_box(&code), "bus", NOW).ok());
    }
    let online_warm = started.elapsed().as_secs_f64() / rounds as f64;
    let cold = verifier(&i, 0);
    let started = Instant::now();
    let cold_rounds = 20_000;
    for _ in 0..cold_rounds {
        std::hint::black_box(cold.decide(std::hint::black_box(&code), "bus", NOW).ok());
    }
    let online_cold = started.elapsed().as_secs_f64() / cold_rounds as f64;
    println!("\n| decision (one core) | per second | µs each |");
    println!("| --- | --- | --- |");
    for (what, s) in [
        (
            "offline (signature checked every time, as the validator runs)",
            offline,
        ),
        ("online, warm (signature cache hit)", online_warm),
        ("online, cold (no cache)", online_cold),
    ] {
        println!("| {what} | {:.0} | {:.2} |", 1.0 / s, s * 1e6);
    }
}

struct One(HeldList);

impl gateway_core::offline::decide::Lists for One {
    fn list(&self, uri: &str) -> Option<&HeldList> {
        (self.0.list().uri == uri).then_some(&self.0)
    }
    fn revoked(&self, cti: &gateway_core::status::Cti, now: u64) -> bool {
        self.0.is_revoked(cti, now)
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default()
}
