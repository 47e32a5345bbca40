//! Writes N unique codes (one per line, each for its own subject) signed by the
//! development issuer of a state directory, for cold-path HTTP benchmarks:
//! `mint_codes STATE_DIR N OUT`.

use std::io::Write;

use gateway_core::token::NewClaims;
use gateway_core::{Color, Sub};
use gateway_issuer::mint::{Issuer, SigningKey};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, n, out] = args.as_slice() else {
        eprintln!("usage: mint_codes STATE_DIR N OUT");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N");
    let seed_text = std::fs::read_to_string(format!("{dir}/issuer.seed")).expect("issuer.seed");
    let seed = gateway_core::b64::decode_array::<32>(seed_text.trim()).expect("32 bytes");
    let issuer = Issuer {
        kid: b"dev-issuer-1".to_vec(),
        issuer: "CN-33".into(),
        key: SigningKey::ed25519(&seed),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("out"));
    for (i, sub) in gateway_benches::subjects(n, 99).into_iter().enumerate() {
        let claims = NewClaims {
            iss: "CN-33".into(),
            sub: Sub(sub.0),
            iat: now - 60,
            exp: now + 6 * 3600,
            cti: (i as u64).to_le_bytes().to_vec(),
            color: Color::Green,
            ver: 1,
            why: None,
            kind: None,
            with: None,
            status: None,
        };
        writeln!(f, "{}", issuer.mint(&claims).expect("mint")).expect("write");
    }
}
