//! Bounds what HTTP/3 may buffer before parsing, by wrapping the QUIC streams that h3
//! reads from.
//!
//! h3 0.0.8 buffers a whole frame before it parses it, and checks
//! `max_field_section_size` only after decoding a HEADERS frame; a frame of an unknown
//! type is skipped only once all of it has arrived. So a client that declares a 1 GiB
//! HEADERS (or unknown) frame and keeps sending makes the gateway buffer it all, before
//! any authentication. Upgrading is no cure (no h3 release bounds this) and patching a
//! dependency is a maintenance debt, so the receive side is wrapped instead: each
//! stream's bytes pass through a small scanner of the frame headers (type and length,
//! both QUIC varints) as they arrive, and a frame other than DATA (whose payload h3
//! streams without buffering) that declares more than the limit closes the connection
//! with H3_EXCESSIVE_LOAD before its payload is read. On unidirectional streams the
//! control stream is scanned the same way; the QPACK streams (unused: the gateway
//! allows no dynamic table) and unknown stream types may carry at most the limit in
//! all.

use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};

/// H3_EXCESSIVE_LOAD (RFC 9114 §8.1).
pub const EXCESSIVE_LOAD: u32 = 0x0107;

/// HTTP/3 frame type of DATA.
const DATA: u64 = 0x00;

/// Where the scanner is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A unidirectional stream's type varint.
    StreamType,
    FrameType,
    FrameLen {
        ty: u64,
    },
    /// Inside a frame's payload, this many bytes left.
    Payload {
        left: u64,
    },
    /// An unframed stream (QPACK or unknown): this many bytes may still come.
    Unframed {
        left: u64,
    },
}

/// The frame-header scanner of one stream.
#[derive(Debug, Clone)]
pub struct Scan {
    state: State,
    /// A varint being read across chunks.
    varint: [u8; 8],
    have: usize,
    limit: u64,
}

/// A stream broke the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl Scan {
    /// For a request stream (bidirectional: frames from the first byte).
    pub fn request(limit: usize) -> Scan {
        Scan::with(State::FrameType, limit)
    }

    /// For a unidirectional stream (a stream type first).
    pub fn uni(limit: usize) -> Scan {
        Scan::with(State::StreamType, limit)
    }

    fn with(state: State, limit: usize) -> Scan {
        Scan {
            state,
            varint: [0; 8],
            have: 0,
            limit: limit as u64,
        }
    }

    /// Feeds one varint byte; the value once complete.
    fn varint_byte(&mut self, b: u8) -> Option<u64> {
        self.varint[self.have] = b;
        self.have += 1;
        let len = 1usize << (self.varint[0] >> 6);
        if self.have < len {
            return None;
        }
        let mut v = u64::from(self.varint[0] & 0x3f);
        for &x in &self.varint[1..len] {
            v = (v << 8) | u64::from(x);
        }
        self.have = 0;
        Some(v)
    }

    /// Scans the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            match self.state {
                State::Payload { left } => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[n as usize..];
                    self.state = if left == n {
                        State::FrameType
                    } else {
                        State::Payload { left: left - n }
                    };
                }
                State::Unframed { left } => {
                    let n = bytes.len() as u64;
                    if n > left {
                        return Err(TooLarge);
                    }
                    self.state = State::Unframed { left: left - n };
                    return Ok(());
                }
                State::StreamType | State::FrameType | State::FrameLen { .. } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    let Some(v) = self.varint_byte(b) else {
                        continue;
                    };
                    self.state = match self.state {
                        // Control stream: frames follow. Anything else: unframed.
                        State::StreamType if v == 0x00 => State::FrameType,
                        State::StreamType => State::Unframed { left: self.limit },
                        State::FrameType => State::FrameLen { ty: v },
                        State::FrameLen { ty } => {
                            if ty != DATA && v > self.limit {
                                return Err(TooLarge);
                            }
                            if v == 0 {
                                State::FrameType
                            } else {
                                State::Payload { left: v }
                            }
                        }
                        s => s,
                    };
                }
            }
        }
        Ok(())
    }
}

/// A QUIC connection for h3 whose receive streams are scanned.
pub struct Guarded {
    inner: h3_quinn::Connection,
    /// The connection's own stream opener (its `OpenStreams` side).
    open: GuardOpen,
    quic: quinn::Connection,
    limit: usize,
}

impl Guarded {
    pub fn new(conn: quinn::Connection, limit: usize) -> Guarded {
        let inner = h3_quinn::Connection::new(conn.clone());
        let open = GuardOpen {
            inner: quic::Connection::<Bytes>::opener(&inner),
            quic: conn.clone(),
            limit,
        };
        Guarded {
            inner,
            open,
            quic: conn,
            limit,
        }
    }
}

/// A receive stream under a [`Scan`].
pub struct GuardRecv {
    inner: h3_quinn::RecvStream,
    scan: Scan,
    quic: quinn::Connection,
}

/// A request stream whose receive side is under a [`Scan`].
pub struct GuardBidi<B: Buf> {
    send: h3_quinn::SendStream<B>,
    recv: GuardRecv,
}

fn poll_scanned(
    inner: &mut h3_quinn::RecvStream,
    scan: &mut Scan,
    quic: &quinn::Connection,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
    let r = quic::RecvStream::poll_data(inner, cx);
    if let Poll::Ready(Ok(Some(b))) = &r {
        if scan.feed(b.chunk()).is_err() {
            quic::RecvStream::stop_sending(inner, u64::from(EXCESSIVE_LOAD));
            quic.close(EXCESSIVE_LOAD.into(), b"frame over the size limit");
            return Poll::Ready(Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::ApplicationClose {
                    error_code: u64::from(EXCESSIVE_LOAD),
                },
            }));
        }
    }
    r
}

impl quic::RecvStream for GuardRecv {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        poll_scanned(&mut self.inner, &mut self.scan, &self.quic, cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        quic::RecvStream::stop_sending(&mut self.inner, error_code)
    }

    fn recv_id(&self) -> StreamId {
        quic::RecvStream::recv_id(&self.inner)
    }
}

impl<B: Buf> quic::RecvStream for GuardBidi<B> {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code)
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for GuardBidi<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code)
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

impl<B: Buf> quic::BidiStream<B> for GuardBidi<B> {
    type SendStream = h3_quinn::SendStream<B>;
    type RecvStream = GuardRecv;

    fn split(self) -> (Self::SendStream, Self::RecvStream) {
        (self.send, self.recv)
    }
}

/// Opens streams for the server side (its control stream); opened request streams are
/// never read by a server, but they get a scanner all the same.
pub struct GuardOpen {
    inner: h3_quinn::OpenStreams,
    quic: quinn::Connection,
    limit: usize,
}

fn wrap_bidi<B: Buf>(
    b: h3_quinn::BidiStream<B>,
    quic: &quinn::Connection,
    limit: usize,
) -> GuardBidi<B> {
    let (send, recv) = quic::BidiStream::split(b);
    GuardBidi {
        send,
        recv: GuardRecv {
            inner: recv,
            scan: Scan::request(limit),
            quic: quic.clone(),
        },
    }
}

impl<B: Buf> quic::OpenStreams<B> for GuardOpen {
    type BidiStream = GuardBidi<B>;
    type SendStream = h3_quinn::SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        let (quic, limit) = (&self.quic, self.limit);
        quic::OpenStreams::<B>::poll_open_bidi(&mut self.inner, cx)
            .map_ok(|b| wrap_bidi(b, quic, limit))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_send(&mut self.inner, cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        quic::OpenStreams::<B>::close(&mut self.inner, code, reason)
    }
}

impl<B: Buf> quic::OpenStreams<B> for Guarded {
    type BidiStream = GuardBidi<B>;
    type SendStream = h3_quinn::SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        self.open.poll_open_bidi(cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_send(&mut self.open, cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        quic::OpenStreams::<B>::close(&mut self.open, code, reason)
    }
}

impl<B: Buf> quic::Connection<B> for Guarded {
    type RecvStream = GuardRecv;
    type OpenStreams = GuardOpen;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::RecvStream, ConnectionErrorIncoming>> {
        let (quic, limit) = (&self.quic, self.limit);
        quic::Connection::<B>::poll_accept_recv(&mut self.inner, cx).map_ok(|inner| GuardRecv {
            inner,
            scan: Scan::uni(limit),
            quic: quic.clone(),
        })
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        let (quic, limit) = (&self.quic, self.limit);
        quic::Connection::<B>::poll_accept_bidi(&mut self.inner, cx)
            .map_ok(|b| wrap_bidi(b, quic, limit))
    }

    fn opener(&self) -> Self::OpenStreams {
        GuardOpen {
            inner: quic::Connection::<B>::opener(&self.inner),
            quic: self.quic.clone(),
            limit: self.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame head: type and length as QUIC varints (8-byte form for the length).
    fn head(ty: u8, len: u64) -> Vec<u8> {
        let mut v = vec![ty];
        v.push(0xc0 | ((len >> 56) as u8 & 0x3f));
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v
    }

    #[test]
    fn an_oversized_headers_frame_is_refused_at_its_head() {
        let mut s = Scan::request(16 * 1024);
        // A small HEADERS frame, then DATA of any size, pass.
        s.feed(&head(0x01, 100)).unwrap();
        s.feed(&[0; 100]).unwrap();
        s.feed(&head(0x00, 1 << 30)).unwrap();
        s.feed(&[0; 5000]).unwrap();
        let mut s = Scan::request(16 * 1024);
        assert_eq!(s.feed(&head(0x01, 1 << 30)), Err(TooLarge));
        // An unknown type too, even split byte by byte.
        let mut s = Scan::request(16 * 1024);
        let h = head(0x21, 1 << 20);
        let r: Result<Vec<()>, TooLarge> = h.iter().map(|b| s.feed(&[*b])).collect();
        assert_eq!(r, Err(TooLarge));
    }

    #[test]
    fn unidirectional_streams() {
        // The control stream: type 0, then frames.
        let mut s = Scan::uni(1024);
        s.feed(&[0x00]).unwrap();
        s.feed(&head(0x04, 10)).unwrap();
        s.feed(&[0; 10]).unwrap();
        assert_eq!(s.feed(&head(0x21, 5000)), Err(TooLarge));
        // A QPACK encoder stream: unframed, bounded in all.
        let mut s = Scan::uni(1024);
        s.feed(&[0x02]).unwrap();
        s.feed(&[0; 1000]).unwrap();
        assert_eq!(s.feed(&[0; 100]), Err(TooLarge));
    }
}
