//! The status set at ten million subjects: lookups from one and two threads for the
//! chosen design and for dashmap, and feed events applied per second on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gateway_benches::dash::DashStatus;
use gateway_benches::hb::HbStatus;
use gateway_benches::{subjects, verifier};
use gateway_core::feed_auth::{FeedKey, FeedKeys};
use gateway_core::feed_event;
use gateway_core::status::{Status, StatusSet};
use gateway_core::Color;
use gateway_issuer::events::{Writer, PLAIN};

const N: usize = 10_000_000;
/// Subjects probed, in order: the map's accesses are random (hashing), the probe list's
/// are sequential, so the cost measured is the map's.
const PROBES: usize = 1 << 20;

/// Runs `per_thread` lookups on each of `threads` threads; returns wall time per lookup
/// on one thread (equal to the one-thread figure when the threads do not interfere).
fn parallel<F: Fn(usize) + Sync>(threads: usize, iters: u64, f: &F) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..iters as usize {
                    f(i.wrapping_add(t * (PROBES / 2)));
                }
            });
        }
    });
    start.elapsed()
}

fn lookups(c: &mut Criterion) {
    let subs = subjects(N, 42);
    let probes: Vec<_> = subs.iter().step_by(N / PROBES).copied().collect();
    let mut g = c.benchmark_group("status_lookup_10m");

    // The floor: one random read from a 512 MiB array, the cost of a cache and TLB miss
    // on this machine, in the same run.
    let memory: Vec<u64> = (0..64u64 << 20).collect();
    let mask = memory.len() - 1;
    for threads in [1, 2] {
        g.bench_function(format!("bare_random_read_512mib_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, &|i| {
                    let j = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
                    black_box(memory[j as usize & mask]);
                })
            })
        });
    }
    drop(memory);

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
    for threads in [1, 2] {
        g.bench_function(format!("chosen_line_table_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, &|i| {
                    black_box(set.get(&probes[i & (PROBES - 1)]));
                })
            })
        });
    }
    drop(set);

    let hb = HbStatus::with_capacity(0);
    for (i, s) in subs.iter().enumerate() {
        hb.apply(*s, i as u64, 1_780_000_000, 2);
    }
    for threads in [1, 2] {
        g.bench_function(format!("sharded_hashbrown_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, &|i| {
                    black_box(hb.get(&probes[i & (PROBES - 1)]));
                })
            })
        });
    }
    drop(hb);

    let dash = DashStatus::with_capacity(0);
    for (i, s) in subs.iter().enumerate() {
        dash.apply(*s, i as u64, 1_780_000_000, 2);
    }
    for threads in [1, 2] {
        g.bench_function(format!("dashmap_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, &|i| {
                    black_box(dash.get(&probes[i & (PROBES - 1)]));
                })
            })
        });
    }
    g.finish();
}

fn feed_apply(c: &mut Criterion) {
    const BATCH: usize = 100_000;
    let subs = subjects(BATCH, 7);
    let lines: Vec<String> = subs
        .iter()
        .enumerate()
        .map(|(i, s)| PLAIN.status(s, Color::Red, i as u64 + 1, Some(4), 1_780_000_000))
        .collect();
    let mut g = c.benchmark_group("feed_events");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.bench_function("parse_and_apply_status_lines", |b| {
        b.iter_batched(
            || verifier(0),
            |v| {
                for l in &lines {
                    let ev = feed_event::parse(l.as_bytes(), None).expect("valid line");
                    v.apply(ev, 1_780_000_000).expect("applies");
                }
                v
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("parse_status_lines", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(feed_event::parse(l.as_bytes(), None).expect("valid line"));
            }
        })
    });
    g.bench_function("parse_status_lines_serde_only", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(feed_event::parse_generic(l.as_bytes(), None).expect("valid line"));
            }
        })
    });
    // The same lines with the feed key on (feed.md revision 3): each carries its mac and
    // each parse checks it; against `parse_status_lines` in the same run.
    let key = FeedKey::new(&[7; 32]);
    let keys = FeedKeys::new(vec![FeedKey::new(&[7; 32])]);
    let macced: Vec<String> = subs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Writer::new(Some(&key)).status(s, Color::Red, i as u64 + 1, Some(4), 1_780_000_000)
        })
        .collect();
    g.bench_function("parse_status_lines_checking_mac", |b| {
        b.iter(|| {
            for l in &macced {
                black_box(feed_event::parse_with(l.as_bytes(), None, &keys).expect("valid line"));
            }
        })
    });
    let events: Vec<_> = lines
        .iter()
        .map(|l| feed_event::parse(l.as_bytes(), None).expect("valid line"))
        .collect();
    g.bench_function("apply_parsed_status_events", |b| {
        b.iter_batched(
            || (verifier(0), events.clone()),
            |(v, evs)| {
                for ev in evs {
                    v.apply(ev, 1_780_000_000).expect("applies");
                }
                v
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, lookups, feed_apply);
criterion_main!(benches);
