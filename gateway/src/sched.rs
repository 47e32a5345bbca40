//! The scheduling policy of the gateway's threads.
//!
//! The runtime's I/O threads and the verification pool share the cores. Under the
//! default Linux policy (`SCHED_OTHER`) a thread woken by the network preempts the one
//! running, so on a core shared with the pool every burst of packets breaks into a batch
//! verification: about one context switch per seven cold requests, each also costing the
//! caches the verification had warmed, and about 6 % of the CPU per cold code against a
//! build that verified on the I/O thread (benches/README.md, "What the defences cost").
//! `SCHED_BATCH` keeps the same fair shares and niceness but makes no wake-up preempt a
//! running thread: the I/O thread runs when the pool waits for work or its time slice
//! ends, and the switches fall to about a third. Set on the main thread before any other
//! exists, so every thread (runtime, pool, feed, clock) inherits it; `--sched-policy
//! normal` leaves the system's default.

use serde::Deserialize;
use thread_priority::unix::{
    set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
    ThreadSchedulePolicy,
};
use thread_priority::ThreadPriority;

/// The policy every thread of `serve` runs under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedPolicy {
    /// `SCHED_BATCH`: fair shares, no preemption on wake-up.
    #[default]
    Batch,
    /// The system's default (`SCHED_OTHER`), left as it is.
    Normal,
}

/// What [`apply`] did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// `SCHED_BATCH` set, niceness kept.
    Batch,
    /// Nothing changed (`normal` asked for).
    Unchanged,
    /// `batch` asked for but not set, and why.
    Failed(String),
}

/// Sets `policy` on the calling thread (call it before starting any other thread).
pub fn apply(policy: SchedPolicy) -> Applied {
    if policy == SchedPolicy::Normal {
        return Applied::Unchanged;
    }
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    // The library sets a niceness with the policy: give it the one the thread has, so
    // an operator's `nice` or systemd `Nice=` is kept.
    let nice = match current_nice() {
        Some(n) => n,
        None => return Applied::Failed("cannot read the thread's niceness".into()),
    };
    let Some(priority) = (0u8..=99)
        .filter_map(|p| p.try_into().ok().map(ThreadPriority::Crossplatform))
        .find(|p| p.to_posix(batch).ok() == Some(nice))
    else {
        return Applied::Failed(format!("niceness {nice} cannot be kept"));
    };
    match set_thread_priority_and_policy(thread_native_id(), priority, batch) {
        Ok(()) => Applied::Batch,
        Err(e) => Applied::Failed(format!("{e:?}")),
    }
}

/// The calling thread's niceness (`/proc/thread-self/stat`, field 19).
fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(16)?.parse().ok()
}

/// The calling thread's policy is `SCHED_BATCH` (`/proc/thread-self/sched`).
pub fn is_batch() -> bool {
    std::fs::read_to_string("/proc/thread-self/sched")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("policy"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim() == "3")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_the_niceness_and_is_inherited() {
        // In a thread of its own, so the test runner's threads are left alone.
        let (applied, nice_before, nice_after, child_batch) = std::thread::spawn(|| {
            let before = current_nice();
            let applied = apply(SchedPolicy::Batch);
            let after = current_nice();
            let child = std::thread::spawn(is_batch).join().unwrap_or(false);
            (applied, before, after, child)
        })
        .join()
        .unwrap_or((Applied::Unchanged, None, None, false));
        assert_eq!(applied, Applied::Batch);
        assert!(nice_before.is_some());
        assert_eq!(nice_before, nice_after);
        assert!(child_batch, "a thread started after inherits SCHED_BATCH");
        assert_eq!(apply(SchedPolicy::Normal), Applied::Unchanged);
    }
}
