//! The UDP socket HTTP/3 listens on, with room for bursts.
//!
//! Linux gives a UDP socket a receive buffer of about 208 KiB (`net.core.rmem_default`):
//! some 150 full QUIC datagrams. A burst beyond that while the runtime is busy is
//! dropped by the kernel, and every drop costs its sender a loss-recovery wait: measured
//! on the gateway under an open loop of 45,000 HTTP/3 requests a second on one core, runs
//! with 2,900 drops had p50 167 ms and p99 1.6 s, runs with 115 had p50 0.14 ms (benches/README,
//! "UDP buffers"). So the socket asks for [`BUFFER`] each way; the kernel grants at
//! most `net.core.rmem_max` / `wmem_max`, and the gateway says at start what it got,
//! with a warning when it is less (docs/OPERATIONS.md says how to raise the limits).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// The receive and send buffer asked for.
pub const BUFFER: usize = 4 << 20;

/// What the kernel granted, in bytes as it reports them (Linux: twice the size set, the
/// other half being its own bookkeeping).
#[derive(Debug, Clone, Copy)]
pub struct Granted {
    pub receive: usize,
    pub send: usize,
}

impl Granted {
    /// Whether either buffer is smaller than [`BUFFER`].
    pub fn less_than_asked(&self) -> bool {
        let reported = if cfg!(target_os = "linux") {
            2 * BUFFER
        } else {
            BUFFER
        };
        self.receive < reported || self.send < reported
    }
}

/// A UDP socket bound to `addr` with buffers of up to [`BUFFER`].
pub fn socket(addr: SocketAddr) -> io::Result<(std::net::UdpSocket, Granted)> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a kernel that refuses keeps its default, which still works.
    let _ = s.set_recv_buffer_size(BUFFER);
    let _ = s.set_send_buffer_size(BUFFER);
    s.bind(&addr.into())?;
    let granted = Granted {
        receive: s.recv_buffer_size()?,
        send: s.send_buffer_size()?,
    };
    Ok((s.into(), granted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_below_the_ask_is_noticed() {
        let full = if cfg!(target_os = "linux") {
            2 * BUFFER
        } else {
            BUFFER
        };
        let all = Granted {
            receive: full,
            send: full,
        };
        assert!(!all.less_than_asked());
        // Linux's stock limit (212,992 bytes, reported doubled) on either side.
        for g in [
            Granted {
                receive: 425_984,
                send: full,
            },
            Granted {
                receive: full,
                send: 425_984,
            },
        ] {
            assert!(g.less_than_asked(), "{g:?}");
        }
    }
}
