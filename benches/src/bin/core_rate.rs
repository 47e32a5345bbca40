//! Cold decisions per second on one thread for SECONDS (default 3): the core's rate that
//! the HTTP cold benchmarks are compared with, measured in the same run. EdDSA, or ES256
//! with a second argument `es256`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gateway_benches::{codes, verifier, NOW};

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let (ed, es) = codes();
    let code = match std::env::args().nth(2).as_deref() {
        Some("es256") => es,
        _ => ed,
    };
    let v = verifier(0);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..100 {
            black_box(v.decide(black_box(&code), "bus", NOW).is_ok());
        }
        n += 100;
    }
    println!("{:.0}", n as f64 / start.elapsed().as_secs_f64());
}
