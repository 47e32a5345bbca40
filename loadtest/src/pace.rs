//! The open loop's clock: waits until a scheduled moment with microsecond precision, on
//! the runtime's own thread.
//!
//! tokio's timer ticks by the millisecond and rounds every deadline up to its next tick,
//! so a schedule paced with it sends its requests in bursts up to 1 ms late; timed from
//! the schedule (as an open loop must be), every latency then carries up to a
//! millisecond of the generator's own making (p50 ≈ 1 ms against a server answering in
//! 100 µs). A pacing thread of its own fixed that but doubled the generator's CPU (every
//! request crossed threads on one core). So the pacer arms a `timerfd` at the absolute
//! moment (CLOCK_MONOTONIC, the clock `Instant` reads) and waits for it through tokio's
//! reactor like any socket: one `timerfd_settime` and one `read` per wait, on the thread
//! that sends. Waits are at least [`GRANULARITY`] apart: requests that fall due in
//! between go out together when it ends, each still timed from its own moment, so a
//! request is at most that late and wake-ups stay ≤ 20,000 a second at any rate
//! (measured: at 25 µs the generator needed all of its core to pace 40,000 HTTP/2
//! requests a second, at 50 µs it kept some headroom, at 100 µs p50 grew by ~50 µs). Where
//! `timerfd` is missing it falls back to tokio's timer (and says so on stderr).

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    clock_gettime, timerfd_create, timerfd_settime, ClockId, Itimerspec, TimerfdClockId,
    TimerfdFlags, TimerfdTimerFlags, Timespec,
};
use tokio::io::unix::AsyncFd;

/// The shortest time between two waits (see the module's note).
pub const GRANULARITY: Duration = Duration::from_micros(50);

/// Waits for scheduled moments.
pub struct Pacer {
    timer: Option<Timer>,
    /// When the last wait ended.
    last: Option<Instant>,
}

struct Timer {
    fd: AsyncFd<OwnedFd>,
    /// An `Instant` and the same moment on CLOCK_MONOTONIC, read together.
    base: Instant,
    base_mono: Duration,
}

impl Timer {
    fn new() -> io::Result<Timer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let base = Instant::now();
        let now = clock_gettime(ClockId::Monotonic);
        let base_mono = Duration::new(now.tv_sec.max(0) as u64, now.tv_nsec.max(0) as u32);
        // `AsyncFd::new` is deprecated because it accepts any raw descriptor, which may be
        // closed under it; this one is an `OwnedFd` that the `AsyncFd` owns and closes
        // only after deregistering it, the sound case (`register`, the replacement, is
        // `unsafe`, which this crate forbids).
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Timer {
            fd,
            base,
            base_mono,
        })
    }

    async fn until(&self, t: Instant) -> io::Result<()> {
        let at = self.base_mono + t.saturating_duration_since(self.base);
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: at.as_secs() as i64,
                tv_nsec: i64::from(at.subsec_nanos()),
            },
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::ABSTIME, &spec)?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(r) => return r.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}

impl Pacer {
    /// A pacer on `timerfd`, or on tokio's timer where that cannot be had.
    pub fn new() -> Pacer {
        Pacer {
            timer: Timer::new().ok(),
            last: None,
        }
    }

    /// Whether waits are finer than tokio's millisecond timer.
    pub fn fine(&self) -> bool {
        self.timer.is_some()
    }

    /// Returns at once if `t` has passed; otherwise at `t`, or at [`GRANULARITY`] after
    /// the last wait ended if that is later. Never before `t`.
    pub async fn until(&mut self, t: Instant) {
        let now = Instant::now();
        if t <= now {
            return;
        }
        let wake = match self.last {
            Some(last) => t.max(last + GRANULARITY),
            None => t,
        };
        let woke = match &self.timer {
            Some(timer) => timer.until(wake).await.is_ok(),
            None => false,
        };
        if !woke {
            tokio::time::sleep_until(wake.into()).await;
        }
        self.last = Some(Instant::now());
    }
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On Linux the pacer has its fine timer, and never wakes early. (How late it
    /// wakes is a measurement: `benches/README.md`, open loop.)
    #[tokio::test]
    async fn waits_until_the_moment_and_not_before() {
        let mut pacer = Pacer::new();
        assert!(pacer.fine(), "timerfd unavailable");
        for i in 0..200u64 {
            let t = Instant::now() + Duration::from_micros(30 + (i % 7) * 37);
            pacer.until(t).await;
            let now = Instant::now();
            assert!(now >= t, "woke {:?} early", t - now);
        }
    }

    /// Moments already past return at once.
    #[tokio::test]
    async fn past_moments_do_not_wait() {
        let mut pacer = Pacer::new();
        let past = Instant::now();
        pacer.until(past).await;
        assert!(pacer.last.is_none());
    }
}
