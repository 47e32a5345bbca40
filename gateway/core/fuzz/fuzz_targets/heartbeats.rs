#![no_main]
//! Signs of life (feed.md revision 4): any sequence of messages and heartbeats, with any
//! clock, never panics; a heartbeat is counted only when newer than every one counted
//! before and within the window.
use gateway_core::feed::life::{Beat, Life, Window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|steps: Vec<(bool, u64, i64, Option<u64>, u64)>| {
    let window = Window {
        stale_after: 30,
        skew: 30,
    };
    let mut life = Life::default();
    let mut newest: Option<i64> = None;
    for (beat, position, at, prev, now) in steps {
        if !beat {
            life.message(position);
            continue;
        }
        if life.heartbeat(position, at, prev, now, window) == Beat::Alive {
            assert!(newest.is_none_or(|n| at > n));
            newest = Some(at);
            assert!(!life.gap() && !life.clock_behind());
        }
    }
});
