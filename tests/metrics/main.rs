//! The gateway's metrics recorder does not hold on to what its histograms record: the
//! exporter keeps every sample until an upkeep or a scrape folds it into its buckets, so
//! without the gateway's upkeep thread memory grew with every request for as long as no
//! one scraped. Measured here with jemalloc's own count of allocated bytes, in a process
//! of its own (the recorder is global).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes the allocator holds for the program now.
fn allocated() -> usize {
    tikv_jemalloc_ctl::epoch::advance().unwrap();
    tikv_jemalloc_ctl::stats::allocated::read().unwrap()
}

#[test]
fn histogram_samples_are_folded_without_a_scrape() {
    let handle = gateway::metrics::install().expect("the recorder installs");
    let latency = metrics::histogram!("gateway_request_duration_seconds", "route" => "verify");
    let before = allocated();
    for i in 0..2_000_000u32 {
        latency.record(f64::from(i % 1000) * 1e-6);
    }
    let held = allocated().saturating_sub(before);
    // The samples are held until the upkeep (8 bytes each): the test sees them.
    assert!(held > 8 << 20, "2 million samples held {held} bytes");
    // Within a few upkeeps, without any scrape, they are folded and their memory freed
    // (a few more samples now and then let the exporter's deferred frees run).
    let deadline = Instant::now() + gateway::metrics::UPKEEP_EVERY * 10;
    let mut left = held;
    while Instant::now() < deadline {
        latency.record(1e-4);
        left = allocated().saturating_sub(before);
        if left < 1 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        left < 1 << 20,
        "{left} bytes still held after {:?}",
        gateway::metrics::UPKEEP_EVERY * 10
    );
    // Nothing was lost: the folded samples are in the histogram's count.
    let text = handle.render();
    let count = text
        .lines()
        .find(|l| l.starts_with("gateway_request_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(count >= 2_000_000, "{count}");
}
