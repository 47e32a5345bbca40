//! Cold EdDSA decisions per second on one thread for SECONDS (default 3): the core's
//! rate that the HTTP cold benchmark is compared with, measured in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gateway_benches::{codes, verifier, NOW};

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let (ed, _) = codes();
    let v = verifier(0);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..100 {
            black_box(v.decide(black_box(&ed), "bus", NOW).is_ok());
        }
        n += 100;
    }
    println!("{:.0}", n as f64 / start.elapsed().as_secs_f64());
}
