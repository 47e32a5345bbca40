//! A lean HTTP/3 client for load generation: requests are written as raw HTTP/3 frames
//! on quinn streams (a QPACK field section of literal lines, no Huffman coding, no
//! dynamic table) and answers are read back by a small frame reader that takes the
//! status and the DATA payload and nothing else. It does much less work per request than
//! the h3 crate's client (no header map, no Huffman coding, no per-request encoder
//! state), so a generator on one core keeps headroom against a server on another.
//! Correctness of the answers is checked with the full client (`Conn::H3`); this one is
//! for the timed loop.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};

use crate::answer::Answer;
use crate::error::{At, ClientError, Phase};
use crate::fields::{prefixed, read_prefixed, status_literal};
use crate::target::Target;
use crate::tls::connect_quic;

/// HTTP/3 frame types (RFC 9114 §7.2).
const DATA: u64 = 0x00;
const HEADERS: u64 = 0x01;
const SETTINGS: u64 = 0x04;
/// Unidirectional stream type of the control stream.
const CONTROL: u64 = 0x00;
/// The most of an answer read.
const MAX_ANSWER: usize = 4 << 20;

/// One QUIC connection speaking HTTP/3 by hand.
pub struct RawH3 {
    conn: quinn::Connection,
    /// The client's control stream (SETTINGS), open as long as the connection.
    _control: quinn::SendStream,
    /// Kept so that the UDP socket lives as long as the connection.
    _endpoint: quinn::Endpoint,
}

impl RawH3 {
    /// Connects and sends the client's (empty) SETTINGS on its control stream.
    pub async fn connect(t: &Target) -> Result<RawH3, ClientError> {
        let (endpoint, conn) = connect_quic(t).await?;
        let mut control = conn.open_uni().await.at(Phase::Connect)?;
        let mut b = BytesMut::new();
        varint(&mut b, CONTROL);
        varint(&mut b, SETTINGS);
        varint(&mut b, 0);
        control.write_all(&b).await.at(Phase::Connect)?;
        Ok(RawH3 {
            conn,
            _control: control,
            _endpoint: endpoint,
        })
    }

    /// Sends one request on a new stream and reads the whole answer (status and body;
    /// no header fields).
    pub async fn request(
        &self,
        t: &Target,
        method: &Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, ClientError> {
        let frames = encode_request(t, method, path, headers, body);
        let (mut send, mut recv) = self.conn.open_bi().await.at(Phase::Send)?;
        send.write_all(&frames).await.at(Phase::Send)?;
        send.finish().at(Phase::Send)?;
        let raw = recv.read_to_end(MAX_ANSWER).await.at(Phase::Body)?;
        decode_answer(Bytes::from(raw))
    }
}

/// A QUIC variable-length integer (RFC 9000 §16).
fn varint(b: &mut BytesMut, v: u64) {
    match v {
        0..=63 => b.put_u8(v as u8),
        64..=16_383 => b.put_u16(0x4000 | v as u16),
        16_384..=1_073_741_823 => b.put_u32(0x8000_0000 | v as u32),
        _ => b.put_u64(0xc000_0000_0000_0000 | v),
    }
}

/// A field line with a literal name and value, neither Huffman-coded
/// (RFC 9204 §4.5.6: `001NHxxx`).
fn literal(b: &mut BytesMut, name: &str, value: &str) {
    prefixed(b, 0b0010_0000, 3, name.len());
    b.put_slice(name.as_bytes());
    prefixed(b, 0, 7, value.len());
    b.put_slice(value.as_bytes());
}

/// The HEADERS frame and, when there is a body, one DATA frame.
fn encode_request(
    t: &Target,
    method: &Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> BytesMut {
    let mut fields = BytesMut::with_capacity(256);
    // Required Insert Count 0 and Base 0: no dynamic table.
    fields.put_slice(&[0, 0]);
    literal(&mut fields, ":method", method.as_str());
    literal(&mut fields, ":scheme", "https");
    literal(&mut fields, ":authority", &t.server_name);
    literal(&mut fields, ":path", path);
    for (k, v) in headers {
        literal(&mut fields, k, v);
    }
    let mut out = BytesMut::with_capacity(fields.len() + body.len() + 16);
    varint(&mut out, HEADERS);
    varint(&mut out, fields.len() as u64);
    out.put_slice(&fields);
    if !body.is_empty() {
        varint(&mut out, DATA);
        varint(&mut out, body.len() as u64);
        out.put_slice(body);
    }
    out
}

/// Reads a QUIC varint from the front of `b`.
fn read_varint(b: &mut Bytes) -> Option<u64> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    if b.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for &x in &b[1..len] {
        v = (v << 8) | u64::from(x);
    }
    b.advance(len);
    Some(v)
}

/// `:status` in the QPACK static table (RFC 9204 Appendix A): index → status.
fn static_status(index: usize) -> Option<u16> {
    Some(match index {
        24 => 103,
        25 => 200,
        26 => 304,
        27 => 404,
        28 => 503,
        63 => 100,
        64 => 204,
        65 => 206,
        66 => 302,
        67 => 400,
        68 => 403,
        69 => 421,
        70 => 425,
        71 => 500,
        _ => return None,
    })
}

/// The status from a field section's first line: an indexed static `:status`, or a
/// literal value (plain or Huffman-coded digits) with a static `:status` name.
fn status_of(mut section: Bytes) -> Option<u16> {
    // Required Insert Count and Base: this client allows no dynamic table.
    if read_prefixed(&mut section, 8)? != 0 {
        return None;
    }
    read_prefixed(&mut section, 7)?;
    let first = *section.first()?;
    if first & 0b1100_0000 == 0b1100_0000 {
        // Indexed field line, static table.
        return static_status(read_prefixed(&mut section, 6)?);
    }
    if first & 0b1101_0000 == 0b0101_0000 {
        // Literal with a static name reference.
        let index = read_prefixed(&mut section, 4)?;
        static_status(index)?;
        return status_literal(&mut section);
    }
    None
}

/// The status of the first HEADERS frame and the payload of the DATA frames.
fn decode_answer(mut raw: Bytes) -> Result<Answer, ClientError> {
    let bad = |what: &str| ClientError::new(Phase::Body, what);
    let mut status = None;
    let mut body = BytesMut::new();
    while !raw.is_empty() {
        let ty = read_varint(&mut raw).ok_or_else(|| bad("truncated frame type"))?;
        let len = read_varint(&mut raw).ok_or_else(|| bad("truncated frame length"))?;
        let len = usize::try_from(len).map_err(|_| bad("frame too long"))?;
        if raw.len() < len {
            return Err(bad("truncated frame"));
        }
        let payload = raw.split_to(len);
        match ty {
            HEADERS if status.is_none() => {
                status = Some(status_of(payload).ok_or_else(|| bad("unreadable :status"))?);
            }
            DATA => body.put_slice(&payload),
            _ => {} // trailers, reserved and unknown frames
        }
    }
    let status = status.ok_or_else(|| bad("no HEADERS frame"))?;
    Ok(Answer {
        status: StatusCode::from_u16(status).map_err(|_| bad("status out of range"))?,
        headers: HeaderMap::new(),
        body: body.freeze(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_are_read_and_bad_ones_refused() {
        // :status 200 indexed (0xc0 | 25), then a DATA frame.
        let mut raw = BytesMut::new();
        raw.put_slice(&[0x01, 0x03, 0x00, 0x00, 0xd9, 0x00, 0x02, b'o', b'k']);
        let a = decode_answer(raw.freeze()).unwrap();
        assert_eq!((a.status.as_u16(), &a.body[..]), (200, &b"ok"[..]));
        // :status 429 as a literal with the static name :status (index 24).
        let mut raw = BytesMut::from(&[0x01, 0x08, 0x00, 0x00, 0x5f, 0x09, 0x03][..]);
        raw.put_slice(b"429");
        assert_eq!(decode_answer(raw.freeze()).unwrap().status.as_u16(), 429);
        // :status 401 as a literal whose value is Huffman-coded (as h3 sends it).
        let raw = Bytes::from_static(&[0x01, 0x07, 0x00, 0x00, 0x5f, 0x09, 0x82, 0x68, 0x01]);
        assert_eq!(decode_answer(raw).unwrap().status.as_u16(), 401);
        for bad in [
            &[0x01, 0x05, 0x00][..],
            &[0x00, 0x01, b'x'][..],
            &[0x01][..],
        ] {
            assert!(
                decode_answer(Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    /// Any bytes at all: an answer or an error, never a panic.
    #[test]
    fn arbitrary_answers_never_panic() {
        let mut next = crate::fields::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let n = (next() % 24) as usize;
            let mut raw: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            // Often a HEADERS frame of the right length, so the field decoder is reached.
            if n > 2 && next().is_multiple_of(2) {
                raw[0] = 0x01;
                raw[1] = (n - 2) as u8;
            }
            let _ = decode_answer(Bytes::from(raw.clone()));
            let _ = crate::fields::huffman_digits(&raw);
        }
    }
}
