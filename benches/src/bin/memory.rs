//! Bytes of resident memory per entry, each design in a fresh process:
//! `memory status-sharded|status-hashbrown|status-dashmap|cache-quick|cache-moka [N]`.
//! Prints one JSON line: design, entries, RSS before and after, bytes per entry.

use gateway_benches::dash::DashStatus;
use gateway_benches::{rss_bytes, subjects};
use gateway_core::status::{Status, StatusSet};
use gateway_core::Color;

fn main() {
    let mut args = std::env::args().skip(1);
    let design = args.next().unwrap_or_else(|| "status-sharded".into());
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let subs = subjects(n, 42);
    let before = rss_bytes();
    let keep: Box<dyn std::any::Any> = match design.as_str() {
        "status-sharded" => {
            let set = StatusSet::new();
            for (i, s) in subs.iter().enumerate() {
                set.apply(
                    *s,
                    Status {
                        color: Color::Red,
                        ver: i as u64,
                        at: 1_780_000_000,
                    },
                );
            }
            assert_eq!(set.len(), n);
            Box::new(set)
        }
        "status-hashbrown" => {
            let d = gateway_benches::hb::HbStatus::with_capacity(0);
            for (i, s) in subs.iter().enumerate() {
                d.apply(*s, i as u64, 1_780_000_000, 2);
            }
            Box::new(d)
        }
        "status-dashmap" => {
            let d = DashStatus::with_capacity(0);
            for (i, s) in subs.iter().enumerate() {
                d.apply(*s, i as u64, 1_780_000_000, 2);
            }
            Box::new(d)
        }
        "cache-quick" => {
            let c = quick_cache::sync::Cache::<[u8; 32], u64>::new(n);
            for s in &subs {
                let mut k = [0u8; 32];
                k[..16].copy_from_slice(&s.0);
                c.insert(k, 1);
            }
            Box::new(c)
        }
        "cache-moka" => {
            let c = moka::sync::Cache::<[u8; 32], u64>::new(n as u64);
            for s in &subs {
                let mut k = [0u8; 32];
                k[..16].copy_from_slice(&s.0);
                c.insert(k, 1);
            }
            c.run_pending_tasks();
            Box::new(c)
        }
        other => {
            eprintln!("unknown design {other}");
            std::process::exit(2);
        }
    };
    let after = rss_bytes();
    println!(
        "{{\"design\": \"{design}\", \"entries\": {n}, \"rss_before\": {before}, \"rss_after\": {after}, \"bytes_per_entry\": {:.1}}}",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    drop(keep);
}
