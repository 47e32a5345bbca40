//! What every listener shares to keep connections bounded: caps on how many are open
//! (in total and per client address), and a per-connection record of activity that a
//! watchdog reads to close connections that never send a request, stay idle, or hold a
//! request (or its answer) too long. Protocol-independent: TCP (HTTP/1.1, HTTP/2) and
//! QUIC (HTTP/3) use the same pieces.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over `--max-connections`.
    Total,
    /// Over `--max-connections-per-ip`.
    PerIp,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerIp => "per_ip",
        }
    }
}

/// Open connections of one transport, capped in total and per client address.
pub struct ConnCaps {
    max_total: usize,
    max_per_ip: usize,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    closed: Notify,
}

/// The address a client is counted under for `--max-connections-per-ip`: an IPv4
/// address as it is (also when it arrives IPv4-mapped in IPv6), an IPv6 address by its
/// /64 prefix (one subscriber's network: a client holds a whole /64 and may use any
/// address in it).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// One open connection's place under the caps; released on drop.
pub struct ConnPermit {
    caps: Arc<ConnCaps>,
    ip: IpAddr,
}

impl ConnCaps {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnCaps> {
        Arc::new(ConnCaps {
            max_total,
            max_per_ip,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            closed: Notify::new(),
        })
    }

    /// A place for a new connection from `ip`, or why there is none. Clients are
    /// counted by [`client_key`]: IPv6 per /64 (`api.md` revision 4).
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let ip = client_key(ip);
        let mut per_ip = self.per_ip.lock();
        if self.open.load(Ordering::Relaxed) >= self.max_total {
            return Err(Refused::Total);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(ConnPermit {
            caps: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Waits until no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut per_ip = self.caps.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.caps.open.fetch_sub(1, Ordering::Relaxed);
        drop(per_ip);
        self.caps.closed.notify_waiters();
    }
}

/// The timeouts a connection's watchdog applies.
#[derive(Debug, Clone, Copy)]
pub struct ConnTimeouts {
    /// From accept (after the handshake) to the first request head.
    pub first_request: Duration,
    /// Nothing in flight for this long.
    pub idle: Duration,
    /// A request in flight this long without any request starting or ending.
    pub request: Duration,
}

/// How often the coarse clock ticks.
const COARSE_TICK: Duration = Duration::from_millis(5);

/// Milliseconds since the first call, from a clock that a thread of its own advances
/// every `COARSE_TICK` (5 ms): reading it is one atomic load, where `Instant::now()` is a
/// clock read on every request begun and ended (measured in the HTTP/2 benchmark). The
/// watchdogs' bounds are seconds; a few milliseconds late is nothing to them.
pub fn coarse_ms() -> u64 {
    static NOW_MS: AtomicU64 = AtomicU64::new(0);
    static TICKING: AtomicBool = AtomicBool::new(false);
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if TICKING.load(Ordering::Acquire) {
        return NOW_MS.load(Ordering::Relaxed);
    }
    let epoch = *EPOCH.get_or_init(|| {
        let epoch = Instant::now();
        // Until the thread ticks (or if it could not start) the clock is read directly.
        let _ = std::thread::Builder::new()
            .name("coarse-clock".into())
            .spawn(move || loop {
                NOW_MS.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                TICKING.store(true, Ordering::Release);
                std::thread::sleep(COARSE_TICK);
            });
        epoch
    });
    epoch.elapsed().as_millis() as u64
}

/// Why a watchdog closed a connection (`gateway_timeouts_total{phase}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    FirstRequest,
    Idle,
    Request,
}

impl Expired {
    pub fn label(self) -> &'static str {
        match self {
            Expired::FirstRequest => "first_request",
            Expired::Idle => "idle",
            Expired::Request => "request",
        }
    }
}

/// What one connection is doing, written by its requests, read by its watchdog.
pub struct Activity {
    /// [`coarse_ms`] when the connection began.
    start_ms: u64,
    /// [`coarse_ms`] of the last request that began or ended.
    last_ms: AtomicU64,
    /// Short requests in flight (their answers included).
    active: AtomicUsize,
    /// Long-lived streams in flight (`/v1/verify/stream`, bounded on their own).
    streams: AtomicUsize,
    seen_request: AtomicBool,
}

/// A request's presence on its connection; ends on drop.
pub struct InFlight {
    activity: Arc<Activity>,
    long_lived: bool,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        let now = coarse_ms();
        Arc::new(Activity {
            start_ms: now,
            last_ms: AtomicU64::new(now),
            active: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            seen_request: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        self.last_ms.fetch_max(coarse_ms(), Ordering::Relaxed);
    }

    /// A request head has arrived.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.seen_request.store(true, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight {
            activity: self.clone(),
            long_lived: false,
        }
    }

    /// What the watchdog would close the connection for now, if anything, and otherwise
    /// how long until it should look again.
    pub fn check(&self, t: &ConnTimeouts) -> Result<Duration, Expired> {
        let now_ms = coarse_ms();
        let now = Duration::from_millis(now_ms.saturating_sub(self.start_ms));
        let since =
            Duration::from_millis(now_ms.saturating_sub(self.last_ms.load(Ordering::Relaxed)));
        // The time left before `limit` once `elapsed` has passed, or `why` if none is.
        let left = |limit: Duration, elapsed: Duration, why: Expired| {
            if elapsed >= limit {
                Err(why)
            } else {
                Ok(limit - elapsed)
            }
        };
        if !self.seen_request.load(Ordering::Relaxed) {
            return left(t.first_request, now, Expired::FirstRequest);
        }
        let active = self.active.load(Ordering::Relaxed);
        let streams = self.streams.load(Ordering::Relaxed);
        if active > 0 {
            return left(t.request, since, Expired::Request);
        }
        if streams > 0 {
            // Streams end themselves (stream idle and maximum duration); look again later.
            return Ok(t.idle);
        }
        left(t.idle, since, Expired::Idle)
    }

    /// Resolves when the connection has expired, with the reason.
    pub async fn expired(&self, t: ConnTimeouts) -> Expired {
        loop {
            match self.check(&t) {
                Err(e) => return e,
                Ok(wait) => tokio::time::sleep(wait.max(Duration::from_millis(10))).await,
            }
        }
    }
}

impl InFlight {
    /// This request is a long-lived stream: it no longer counts as a short request, so
    /// the request timeout does not apply to it (the stream has its own bounds).
    pub fn into_stream(mut self) -> InFlight {
        if !self.long_lived {
            self.activity.streams.fetch_add(1, Ordering::Relaxed);
            self.activity.active.fetch_sub(1, Ordering::Relaxed);
            self.long_lived = true;
        }
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.long_lived {
            self.activity.streams.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.activity.active.fetch_sub(1, Ordering::Relaxed);
        }
        self.activity.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_ip() {
        let caps = ConnCaps::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let p1 = caps.try_open(a).unwrap();
        let _p2 = caps.try_open(a).unwrap();
        assert_eq!(caps.try_open(a).err(), Some(Refused::PerIp));
        let _p3 = caps.try_open(b).unwrap();
        assert_eq!(caps.try_open(b).err(), Some(Refused::Total));
        drop(p1);
        assert_eq!(caps.open(), 2);
        assert!(caps.try_open(a).is_ok());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(client_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("::1")), ip("::"));
        // Two addresses of one /64 share its cap; another /64 has its own.
        let caps = ConnCaps::new(10, 2);
        let _a = caps.try_open(ip("2001:db8::1")).unwrap();
        let _b = caps.try_open(ip("2001:db8::ffff:2")).unwrap();
        assert_eq!(caps.try_open(ip("2001:db8::3")).err(), Some(Refused::PerIp));
        assert!(caps.try_open(ip("2001:db8:0:1::3")).is_ok());
        // A mapped IPv4 address counts with the IPv4 one.
        let _c = caps.try_open(ip("192.0.2.1")).unwrap();
        let _d = caps.try_open(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(caps.try_open(ip("192.0.2.1")).err(), Some(Refused::PerIp));
    }

    #[test]
    fn watchdog_phases() {
        let t = ConnTimeouts {
            first_request: Duration::ZERO,
            idle: Duration::ZERO,
            request: Duration::from_secs(60),
        };
        let a = Activity::new();
        assert_eq!(a.check(&t), Err(Expired::FirstRequest));
        let r = a.begin();
        assert!(a.check(&t).is_ok(), "a request in flight is not idle");
        let s = r.into_stream();
        assert!(a.check(&t).is_ok(), "a stream in flight is not idle");
        drop(s);
        assert_eq!(a.check(&t), Err(Expired::Idle));
        let t = ConnTimeouts {
            request: Duration::ZERO,
            ..t
        };
        let _r = a.begin();
        assert_eq!(a.check(&t), Err(Expired::Request));
    }
}
