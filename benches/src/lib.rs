//! Shared fixtures for the benchmarks: frozen inputs from the spec's vectors (fixed
//! keys, fixed codes, fixed clock), and the status-map design that lost (kept so the
//! comparison in `benches/README.md` can be rerun).

use std::path::PathBuf;

/// The allocator the gateway runs with, so memory and timing match production.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use gateway_core::token::{self, Token};
use gateway_core::trust::{PublicKey, TrustList};
use gateway_core::{Policy, Settings, Sub, Verifier};
use serde_json::Value;

/// The clock of every vector.
pub const NOW: u64 = 1_780_000_000;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}

/// One vector case by file and name.
pub fn case(file: &str, name: &str) -> Value {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    all.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no case {name} in {file}"))
}

/// A verifier holding the vectors' trust list and policy.
pub fn verifier(sig_cache_capacity: usize) -> Verifier {
    let c = case("valid.json", "es256_green_bus");
    let (trust, _) = TrustList::from_json(c["trust"].to_string().as_bytes()).expect("trust");
    let policy = Policy::from_json(c["policy"].to_string().as_bytes()).expect("policy");
    let settings = Settings {
        sig_cache_capacity,
        ..Settings::default()
    };
    Verifier::new(settings, trust, Some(policy), None)
}

/// [`verifier`] with a receipt key (from a feed key of 32 bytes of 2): every deny then
/// carries a receipt.
pub fn verifier_with_receipts(sig_cache_capacity: usize) -> Verifier {
    let c = case("valid.json", "es256_green_bus");
    let (trust, _) = TrustList::from_json(c["trust"].to_string().as_bytes()).expect("trust");
    let policy = Policy::from_json(c["policy"].to_string().as_bytes()).expect("policy");
    let key = gateway_core::decide::receipt::ReceiptKey::derive(
        &gateway_core::feed_auth::FeedKey::new(&[2; 32]),
    );
    let settings = Settings {
        sig_cache_capacity,
        receipt_key: Some(*key.bytes()),
        ..Settings::default()
    };
    Verifier::new(settings, trust, Some(policy), None)
}

/// [`verifier`] with a shadow policy (`policy.md` revision 4) beside the one in force:
/// the same table a version up, with green at the bus `allow_mask` instead of `allow`,
/// so every bus decision of a green code differs and records the difference (the worst
/// case).
pub fn verifier_with_shadow(sig_cache_capacity: usize) -> Verifier {
    let v = verifier(sig_cache_capacity);
    let mut doc = case("valid.json", "es256_green_bus")["policy"].clone();
    let version = doc["version"].as_u64().expect("version");
    doc["version"] = (version + 1).into();
    doc["venues"]["bus"]["green"] = "allow_mask".into();
    doc["shadow"] = true.into();
    let shadow = Policy::from_json(doc.to_string().as_bytes()).expect("shadow policy");
    v.offer_policy(shadow, NOW)
        .expect("a shadow above the one in force");
    v
}

/// What a bare signature check of `code` takes: the signed bytes (COSE Sig_structure),
/// the signature, and its trust-list key (from [`verifier`]'s list).
pub fn signed_parts(code: &str) -> (Vec<u8>, [u8; 64], PublicKey) {
    let bytes = token::decode_text(code).expect("decodes");
    let t = Token::parse(&bytes).expect("parses");
    let v = verifier(0);
    let trust = v.trust();
    let key = trust.get(t.cose.kid).expect("listed").public_key.clone();
    (t.cose.signed_bytes(), *t.cose.signature, key)
}

/// The frozen EdDSA and ES256 codes (both valid at [`NOW`], at `bus`).
pub fn codes() -> (String, String) {
    let ed = case("policy.json", "policy_bus_green")["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let es = case("valid.json", "es256_green_bus")["code"]
        .as_str()
        .expect("code")
        .to_owned();
    (ed, es)
}

/// Deterministic pseudo-random subjects (xorshift), as uniform as real pseudonyms.
pub fn subjects(n: usize, seed: u64) -> Vec<Sub> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let mut s = [0u8; 16];
            s[..8].copy_from_slice(&next().to_le_bytes());
            s[8..].copy_from_slice(&next().to_le_bytes());
            Sub(s)
        })
        .collect()
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The first design, replaced: 1,024 shards of `RwLock<hashbrown::HashMap>`, same
/// packed entry, same hash. Two cache lines per lookup (control bytes, then bucket).
pub mod hb {
    use gateway_core::status::SubHash;
    use gateway_core::Sub;
    use hashbrown::HashMap;
    use parking_lot::RwLock;

    use super::dash::Packed;

    #[repr(align(128))]
    struct Shard(RwLock<HashMap<Sub, Packed, SubHash>>);

    pub struct HbStatus(Box<[Shard]>);

    impl HbStatus {
        pub fn with_capacity(n: usize) -> Self {
            HbStatus(
                (0..1024)
                    .map(|_| {
                        Shard(RwLock::new(HashMap::with_capacity_and_hasher(
                            n / 1024,
                            SubHash,
                        )))
                    })
                    .collect(),
            )
        }

        fn shard(&self, sub: &Sub) -> &RwLock<HashMap<Sub, Packed, SubHash>> {
            &self.0[usize::from(u16::from_le_bytes([sub.0[8], sub.0[9]])) % 1024].0
        }

        pub fn apply(&self, sub: Sub, ver: u64, at: u32, color: u8) {
            let p = Packed {
                ver: ver.to_le_bytes(),
                at: at.to_le_bytes(),
                color,
            };
            let mut s = self.shard(&sub).write();
            let e = s.entry(sub).or_insert(p);
            if ver > u64::from_le_bytes(e.ver) {
                *e = p;
            }
        }

        pub fn get(&self, sub: &Sub) -> Option<(u8, u64)> {
            self.shard(sub)
                .read()
                .get(sub)
                .map(|e| (e.color, u64::from_le_bytes(e.ver)))
        }
    }
}

/// The alternative status map: dashmap with the same packed entry and hash.
pub mod dash {
    use dashmap::DashMap;
    use gateway_core::status::SubHash;
    use gateway_core::Sub;

    /// Same layout as the core's entry: version, time, color, alignment 1.
    #[derive(Clone, Copy)]
    pub struct Packed {
        pub ver: [u8; 8],
        pub at: [u8; 4],
        pub color: u8,
    }

    pub struct DashStatus(pub DashMap<Sub, Packed, SubHash>);

    impl DashStatus {
        pub fn with_capacity(n: usize) -> Self {
            DashStatus(DashMap::with_capacity_and_hasher(n, SubHash))
        }

        pub fn apply(&self, sub: Sub, ver: u64, at: u32, color: u8) {
            let p = Packed {
                ver: ver.to_le_bytes(),
                at: at.to_le_bytes(),
                color,
            };
            self.0
                .entry(sub)
                .and_modify(|e| {
                    if ver > u64::from_le_bytes(e.ver) {
                        *e = p;
                    }
                })
                .or_insert(p);
        }

        pub fn get(&self, sub: &Sub) -> Option<(u8, u64)> {
            self.0
                .get(sub)
                .map(|e| (e.color, u64::from_le_bytes(e.ver)))
        }
    }
}

/// The fixed answer of the minimal servers: a verify answer of the gateway's shape.
pub const FIXED_ANSWER: &str = r#"{"decision":"allow","color":"green","reason":"ok","conditions":[],"policy_version":1,"feed_seq":0,"stale":false}"#;

/// The baseline servers' arguments `CERT KEY ADDR`, the certificate chain and key read.
pub fn server_args(
    usage: &str,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
    String,
) {
    let args: Vec<String> = std::env::args().collect();
    let [_, cert, key, addr] = args.as_slice() else {
        eprintln!("usage: {usage} CERT KEY ADDR");
        std::process::exit(2);
    };
    let certs = rustls_pemfile::certs(&mut std::fs::read(cert).expect("cert").as_slice())
        .collect::<Result<_, _>>()
        .expect("pem");
    let key = rustls_pemfile::private_key(&mut std::fs::read(key).expect("key").as_slice())
        .expect("pem")
        .expect("a key");
    (certs, key, addr.clone())
}
