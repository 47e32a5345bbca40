//! A lean HTTP/2 client for load generation: requests are written as raw HTTP/2 frames
//! (an HPACK block of literal lines, no Huffman coding, no dynamic table) and answers
//! are read back by a frame reader that takes the status and the DATA payload and
//! nothing else.
//!
//! What makes it cheap is less the framing than the writes: every request of a moment is
//! appended to one buffer and a single writer task sends them in one TLS record and one
//! `write` when it next runs, so an open loop that starts several requests on one
//! wake-up pays for one syscall, not one each (hyper's client, through a task per
//! connection and one per request, cost an open loop about 27 µs of its core per
//! HTTP/2 request). One reader task reads every answer on the connection and hands each
//! to the request waiting for it.
//!
//! The client announces a header table of size 0 (the server then keeps no dynamic table
//! for it, so an answer's `:status` is readable from its first field line alone), no
//! server push, and windows of 2^31 − 1 (so it never has to give credit for answers).
//! It keeps to the server's limits: its concurrent streams (requests beyond them wait
//! in order), the connection's send window (DATA waits for credit), its frame size.
//!
//! [`RawH2::request`] sends and waits like any client; [`RawH2::submit`] starts a
//! request and returns at once, the answer handed to a function run by the reader, so an
//! open loop needs no task of its own per request. Correctness of
//! the answers is checked with the full client (`Conn::H2`); this one is for the timed
//! loop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::answer::Answer;
use crate::error::{At, ClientError, Phase};
use crate::fields::{prefixed, read_prefixed, status_literal};
use crate::target::Target;
use crate::tls::tls_config;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
/// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Settings (RFC 9113 §6.5.2).
const HEADER_TABLE_SIZE: u16 = 0x1;
const ENABLE_PUSH: u16 = 0x2;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
const INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_FRAME_SIZE: u16 = 0x5;
/// The largest window, which this client offers for everything it receives.
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The default frame size, which this client receives (it announces no other).
const FRAME: usize = 16_384;
/// The most of one answer read.
const MAX_ANSWER: usize = 4 << 20;
/// Credit given back on the connection once this much DATA has come in.
const REFILL: u32 = 1 << 30;

/// One TCP (or TLS) connection speaking HTTP/2 by hand.
pub struct RawH2 {
    shared: Arc<Shared>,
    tasks: [JoinHandle<()>; 2],
}

/// What [`RawH2::submit`] calls with the answer (on the connection's reader task).
pub type OnAnswer = Box<dyn FnOnce(Result<Answer, ClientError>) + Send>;

/// Where an answer goes.
enum Reply {
    Wait(oneshot::Sender<Result<Answer, ClientError>>),
    Call(OnAnswer),
}

impl Reply {
    fn send(self, answer: Result<Answer, ClientError>) {
        match self {
            Reply::Wait(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Call(f) => f(answer),
        }
    }
}

impl Drop for RawH2 {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: there is something in `State::out`.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stream waiting for its answer.
struct Waiting {
    reply: Reply,
    /// Which submission (see `Forget`).
    seq: u64,
    status: Option<u16>,
    body: BytesMut,
}

/// A request waiting for one of the server's stream slots.
struct Queued {
    block: BytesMut,
    body: Bytes,
    reply: Reply,
    seq: u64,
}

struct State {
    /// Frames to send, in order.
    out: BytesMut,
    /// DATA frames waiting for the connection's send window: (payload length, frame).
    blocked: VecDeque<(usize, Bytes)>,
    /// The connection's send window.
    window: i64,
    /// The server's initial stream window: a request body must fit in it.
    stream_window: i64,
    /// The largest frame the server takes.
    max_frame: usize,
    next_id: u32,
    streams: HashMap<u32, Waiting>,
    /// The most streams the server allows open at once.
    max_streams: usize,
    /// Requests waiting for a stream slot, in order.
    queued: VecDeque<Queued>,
    /// Submissions so far.
    seq: u64,
    /// A header block still taking CONTINUATION frames: its stream and what came so far.
    continuing: Option<(u32, BytesMut, bool)>,
    /// DATA received since credit was last given back.
    received: u32,
    /// Why the connection takes no more requests.
    gone: Option<String>,
}

impl State {
    /// A new connection's state: the protocol's initial windows and frame size, and a
    /// stream limit of 100 until the server's SETTINGS say otherwise.
    fn new() -> State {
        State {
            out: BytesMut::with_capacity(16 * 1024),
            blocked: VecDeque::new(),
            window: 65_535,
            stream_window: 65_535,
            max_frame: FRAME,
            next_id: 1,
            streams: HashMap::new(),
            max_streams: 100,
            queued: VecDeque::new(),
            seq: 0,
            continuing: None,
            received: 0,
            gone: None,
        }
    }

    fn frame(&mut self, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
        put_head(&mut self.out, payload.len(), ty, flags, stream);
        self.out.put_slice(payload);
    }

    /// Sends the request on a new stream, or queues it while the server's streams are
    /// all open.
    fn open(&mut self, q: Queued) -> Result<(), Queued> {
        if self.streams.len() >= self.max_streams || !self.queued.is_empty() {
            self.queued.push_back(q);
            return Ok(());
        }
        self.send_now(q)
    }

    fn send_now(&mut self, q: Queued) -> Result<(), Queued> {
        let id = self.next_id;
        if id > MAX_WINDOW {
            self.gone = Some("stream ids used up".into());
            return Err(q);
        }
        self.next_id += 2;
        let Queued {
            block,
            body,
            reply,
            seq,
        } = q;
        let flags = END_HEADERS | if body.is_empty() { END_STREAM } else { 0 };
        self.frame(HEADERS, flags, id, &block);
        let mut chunks = body.chunks(self.max_frame).peekable();
        while let Some(chunk) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_STREAM
            } else {
                0
            };
            if self.blocked.is_empty() && chunk.len() as i64 <= self.window {
                self.window -= chunk.len() as i64;
                self.frame(DATA, flags, id, chunk);
            } else {
                let mut f = BytesMut::with_capacity(chunk.len() + 9);
                put_head(&mut f, chunk.len(), DATA, flags, id);
                f.put_slice(chunk);
                self.blocked.push_back((chunk.len(), f.freeze()));
            }
        }
        self.streams.insert(
            id,
            Waiting {
                reply,
                seq,
                status: None,
                body: BytesMut::new(),
            },
        );
        Ok(())
    }

    /// Opens queued requests as far as the server's stream slots allow.
    fn dequeue(&mut self, out: &mut Outcome) {
        while self.streams.len() < self.max_streams {
            let Some(q) = self.queued.pop_front() else {
                break;
            };
            if let Err(q) = self.send_now(q) {
                let e = ClientError::new(Phase::Send, "stream ids used up");
                out.done.push((q.reply, Err(e)));
            }
            out.wake_writer = true;
        }
    }

    /// Moves blocked DATA into `out` as far as the window allows.
    fn release(&mut self) {
        while let Some((len, _)) = self.blocked.front() {
            if (*len as i64) > self.window {
                break;
            }
            if let Some((len, frame)) = self.blocked.pop_front() {
                self.window -= len as i64;
                self.out.put_slice(&frame);
            }
        }
    }

    /// Ends the connection for new requests and fails every stream above `last` and
    /// every queued request.
    fn fail(&mut self, why: &str, last: u32) -> Vec<(Reply, Result<Answer, ClientError>)> {
        self.gone.get_or_insert_with(|| why.to_owned());
        let ids: Vec<u32> = self.streams.keys().copied().filter(|&i| i > last).collect();
        let streams = ids.into_iter().filter_map(|i| self.streams.remove(&i));
        let mut failed: Vec<Reply> = streams.map(|w| w.reply).collect();
        failed.extend(self.queued.drain(..).map(|q| q.reply));
        failed
            .into_iter()
            .map(|r| (r, Err(ClientError::new(Phase::Send, why))))
            .collect()
    }
}

fn put_head(b: &mut BytesMut, len: usize, ty: u8, flags: u8, stream: u32) {
    b.put_uint(len as u64, 3);
    b.put_u8(ty);
    b.put_u8(flags);
    b.put_u32(stream & MAX_WINDOW);
}

impl RawH2 {
    /// Connects (TLS with ALPN h2, or h2c with prior knowledge when the target is
    /// plaintext) and waits for the server's SETTINGS.
    pub async fn connect(t: &Target) -> Result<RawH2, ClientError> {
        let tcp = TcpStream::connect(t.addr).await.at(Phase::Connect)?;
        let _ = tcp.set_nodelay(true);
        if t.plain {
            return Self::start(tcp).await;
        }
        let name =
            rustls::pki_types::ServerName::try_from(t.server_name.clone()).at(Phase::Connect)?;
        let tls = tls_config(t.ca.as_ref(), b"h2", t.identity.as_ref())?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .at(Phase::Connect)?;
        Self::start(stream).await
    }

    async fn start<S>(io: S) -> Result<RawH2, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut state = State::new();
        state.out.put_slice(PREFACE);
        let mut settings = BytesMut::new();
        for (id, value) in [
            (HEADER_TABLE_SIZE, 0),
            (ENABLE_PUSH, 0),
            (INITIAL_WINDOW_SIZE, MAX_WINDOW),
        ] {
            settings.put_u16(id);
            settings.put_u32(value);
        }
        state.frame(SETTINGS, 0, 0, &settings);
        state.frame(WINDOW_UPDATE, 0, 0, &(MAX_WINDOW - 65_535).to_be_bytes());
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Notify::new(),
        });
        let (rd, wr) = tokio::io::split(io);
        let (ready, settled) = oneshot::channel();
        let reader = tokio::spawn(read_loop(rd, shared.clone(), ready));
        let writer = tokio::spawn(write_loop(wr, shared.clone()));
        shared.wake.notify_one();
        let Ok(()) = settled.await else {
            reader.abort();
            writer.abort();
            let why = shared.lock().gone.clone();
            return Err(ClientError::new(
                Phase::Connect,
                why.unwrap_or_else(|| "no SETTINGS from the server".into()),
            ));
        };
        Ok(RawH2 {
            shared,
            tasks: [reader, writer],
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
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let (tx, got) = oneshot::channel();
        let block = encode_fields(t, method, path, headers);
        let seq = self
            .begin(block, body, Reply::Wait(tx))
            .map_err(|(_, e)| e)?;
        // If this future is dropped (a timeout), the request is forgotten with it.
        let forget = Forget(&self.shared, seq);
        let answer = got.await;
        std::mem::forget(forget);
        answer.map_err(|_| ClientError::new(Phase::Send, "connection closed"))?
    }

    /// Starts one request and returns at once; `on_answer` gets the whole answer (or
    /// why there is none), called on the connection's reader task, so it must be quick.
    /// If the connection can take no more requests, `on_answer` comes back, uncalled.
    pub fn submit(
        &self,
        t: &Target,
        method: &Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        on_answer: OnAnswer,
    ) -> Result<(), (OnAnswer, ClientError)> {
        let block = encode_fields(t, method, path, headers);
        match self.begin(block, body, Reply::Call(on_answer)) {
            Ok(_) => Ok(()),
            Err((Reply::Call(f), e)) => Err((f, e)),
            Err((Reply::Wait(_), e)) => Err((Box::new(|_| {}), e)),
        }
    }

    /// Queues a request (its header block and body) for the writer; its submission
    /// number.
    fn begin(
        &self,
        block: BytesMut,
        body: Bytes,
        reply: Reply,
    ) -> Result<u64, (Reply, ClientError)> {
        let seq = {
            let mut s = self.shared.lock();
            if let Some(why) = &s.gone {
                let e = ClientError::new(Phase::Send, why);
                return Err((reply, e));
            }
            if block.len() > s.max_frame || body.len() as i64 > s.stream_window {
                let e = ClientError::new(Phase::Send, "request too large for the lean client");
                return Err((reply, e));
            }
            s.seq += 1;
            let seq = s.seq;
            let q = Queued {
                block,
                body,
                reply,
                seq,
            };
            if let Err(q) = s.open(q) {
                return Err((q.reply, ClientError::new(Phase::Send, "stream ids used up")));
            }
            seq
        };
        self.shared.wake.notify_one();
        Ok(seq)
    }
}

/// Forgets a request whose caller stopped waiting.
struct Forget<'a>(&'a Shared, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        let seq = self.1;
        let id = s
            .streams
            .iter()
            .find(|(_, w)| w.seq == seq)
            .map(|(id, _)| *id);
        if let Some(id) = id {
            s.streams.remove(&id);
        }
        s.queued.retain(|q| q.seq != seq);
    }
}

/// The request's header block: literal field lines without indexing (`0000xxxx`), the
/// pseudo-header names by their static index, no Huffman coding.
fn encode_fields(t: &Target, method: &Method, path: &str, headers: &[(&str, &str)]) -> BytesMut {
    let mut b = BytesMut::with_capacity(
        128 + headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>(),
    );
    let indexed_name = |b: &mut BytesMut, index: usize, value: &str| {
        prefixed(b, 0, 4, index);
        prefixed(b, 0, 7, value.len());
        b.put_slice(value.as_bytes());
    };
    indexed_name(&mut b, 2, method.as_str());
    indexed_name(&mut b, 6, t.scheme());
    indexed_name(&mut b, 1, &t.server_name);
    indexed_name(&mut b, 4, path);
    for (k, v) in headers {
        b.put_u8(0);
        prefixed(&mut b, 0, 7, k.len());
        b.put_slice(k.as_bytes());
        prefixed(&mut b, 0, 7, v.len());
        b.put_slice(v.as_bytes());
    }
    b
}

/// `:status` in the HPACK static table (RFC 7541 Appendix A): index → status.
fn static_status(index: usize) -> Option<u16> {
    Some(match index {
        8 => 200,
        9 => 204,
        10 => 206,
        11 => 304,
        12 => 400,
        13 => 404,
        14 => 500,
        _ => return None,
    })
}

/// The status from a header block's first field line (after any table size updates).
/// The client allowed no dynamic table, so that line is an indexed static `:status` or
/// a literal with a static `:status` name.
fn status_of(mut block: Bytes) -> Option<u16> {
    loop {
        let first = *block.first()?;
        if first & 0x80 != 0 {
            return static_status(read_prefixed(&mut block, 7)?);
        }
        let index = match first & 0xe0 {
            0x20 => {
                // A dynamic table size update (to 0): skip it.
                read_prefixed(&mut block, 5)?;
                continue;
            }
            0x40 | 0x60 => read_prefixed(&mut block, 6)?,
            _ => read_prefixed(&mut block, 4)?,
        };
        static_status(index)?;
        return status_literal(&mut block);
    }
}

/// The frames in `buf`, each handed to `on` as (type, flags, stream, payload);
/// `Err` on a frame larger than this client allows.
fn frames(
    buf: &mut BytesMut,
    mut on: impl FnMut(u8, u8, u32, Bytes) -> Result<(), String>,
) -> Result<(), String> {
    while buf.len() >= 9 {
        let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
        if len > FRAME {
            return Err(format!("a frame of {len} bytes"));
        }
        if buf.len() < 9 + len {
            break;
        }
        let mut head = buf.split_to(9);
        head.advance(3);
        let (ty, flags) = (head.get_u8(), head.get_u8());
        let stream = head.get_u32() & MAX_WINDOW;
        on(ty, flags, stream, buf.split_to(len).freeze())?;
    }
    Ok(())
}

/// Strips padding (and a HEADERS frame's priority fields) from a payload.
fn unpad(mut p: Bytes, flags: u8, priority: bool) -> Option<Bytes> {
    let pad = if flags & PADDED != 0 {
        let n = usize::from(*p.first()?);
        p.advance(1);
        n
    } else {
        0
    };
    if priority && flags & PRIORITY != 0 {
        if p.len() < 5 {
            return None;
        }
        p.advance(5);
    }
    let keep = p.len().checked_sub(pad)?;
    p.truncate(keep);
    Some(p)
}

/// What reading one batch of frames decided.
#[derive(Default)]
struct Outcome {
    done: Vec<(Reply, Result<Answer, ClientError>)>,
    wake_writer: bool,
}

/// Handles one frame from the server.
fn on_frame(
    s: &mut State,
    out: &mut Outcome,
    ready: &mut Option<oneshot::Sender<()>>,
    (ty, flags, id, payload): (u8, u8, u32, Bytes),
) -> Result<(), String> {
    if let Some((cid, _, _)) = &s.continuing {
        if ty != CONTINUATION || id != *cid {
            return Err("a header block broken off".into());
        }
    }
    match ty {
        DATA => {
            s.received = s.received.saturating_add(payload.len() as u32);
            if s.received >= REFILL {
                let n = std::mem::take(&mut s.received);
                s.frame(WINDOW_UPDATE, 0, 0, &n.to_be_bytes());
                out.wake_writer = true;
            }
            let data = unpad(payload, flags, false).ok_or("bad padding")?;
            if let Some(w) = s.streams.get_mut(&id) {
                if w.body.len() + data.len() > MAX_ANSWER {
                    if let Some(w) = s.streams.remove(&id) {
                        let e = ClientError::new(Phase::Body, "answer too long");
                        out.done.push((w.reply, Err(e)));
                    }
                } else {
                    w.body.put_slice(&data);
                }
            }
            if flags & END_STREAM != 0 {
                finish(s, out, id);
            }
        }
        HEADERS => {
            let block = unpad(payload, flags, true).ok_or("bad padding")?;
            if flags & END_HEADERS == 0 {
                s.continuing = Some((id, BytesMut::from(&block[..]), flags & END_STREAM != 0));
            } else {
                header_block(s, out, id, block, flags & END_STREAM != 0);
            }
        }
        CONTINUATION => {
            let Some((cid, mut block, end)) = s.continuing.take() else {
                return Err("CONTINUATION with no header block".into());
            };
            if block.len() + payload.len() > MAX_ANSWER {
                return Err("header block too long".into());
            }
            block.put_slice(&payload);
            if flags & END_HEADERS == 0 {
                s.continuing = Some((cid, block, end));
            } else {
                header_block(s, out, cid, block.freeze(), end);
            }
        }
        RST_STREAM => {
            if let Some(w) = s.streams.remove(&id) {
                out.done
                    .push((w.reply, Err(ClientError::new(Phase::Send, "stream reset"))));
            }
        }
        SETTINGS if flags & ACK == 0 => {
            if payload.len() % 6 != 0 {
                return Err("bad SETTINGS".into());
            }
            let mut p = payload;
            while p.has_remaining() {
                let (key, value) = (p.get_u16(), p.get_u32());
                match key {
                    MAX_CONCURRENT_STREAMS => s.max_streams = value as usize,
                    INITIAL_WINDOW_SIZE => s.stream_window = i64::from(value),
                    MAX_FRAME_SIZE => s.max_frame = (value as usize).clamp(FRAME, 1 << 24),
                    _ => {}
                }
            }
            s.frame(SETTINGS, ACK, 0, &[]);
            out.wake_writer = true;
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        PING if flags & ACK == 0 => {
            s.frame(PING, ACK, 0, &payload);
            out.wake_writer = true;
        }
        WINDOW_UPDATE if id == 0 => {
            let mut p = payload;
            if p.len() != 4 {
                return Err("bad WINDOW_UPDATE".into());
            }
            s.window += i64::from(p.get_u32() & MAX_WINDOW);
            s.release();
            out.wake_writer = true;
        }
        GOAWAY => {
            let last = if payload.len() >= 4 {
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & MAX_WINDOW
            } else {
                0
            };
            let failed = s.fail("the server sent GOAWAY", last);
            out.done.extend(failed);
        }
        PUSH_PROMISE => return Err("a push this client refused".into()),
        _ => {} // SETTINGS and PING acks, PRIORITY, stream WINDOW_UPDATE, unknown types
    }
    Ok(())
}

/// A whole header block: the answer's status (1xx heads are skipped), or trailers.
fn header_block(s: &mut State, out: &mut Outcome, id: u32, block: Bytes, end: bool) {
    if let Some(w) = s.streams.get_mut(&id) {
        if w.status.is_none() {
            match status_of(block) {
                Some(st) if (100..200).contains(&st) => {}
                Some(st) => w.status = Some(st),
                None => {
                    if let Some(w) = s.streams.remove(&id) {
                        let e = ClientError::new(Phase::Send, "unreadable :status");
                        out.done.push((w.reply, Err(e)));
                    }
                    return;
                }
            }
        }
    }
    if end {
        finish(s, out, id);
    }
}

/// The stream has ended: its answer is complete.
fn finish(s: &mut State, out: &mut Outcome, id: u32) {
    let Some(mut w) = s.streams.remove(&id) else {
        return;
    };
    let body = std::mem::take(&mut w.body).freeze();
    let answer = match w.status.and_then(|st| StatusCode::from_u16(st).ok()) {
        Some(status) => Ok(Answer {
            status,
            headers: HeaderMap::new(),
            body,
        }),
        None => Err(ClientError::new(Phase::Send, "stream ended with no status")),
    };
    out.done.push((w.reply, answer));
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    shared: Arc<Shared>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let why = loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) => break "the server closed the connection".to_owned(),
            Err(e) => break format!("read: {e}"),
            Ok(_) => {}
        }
        let mut out = Outcome::default();
        let result = {
            let mut s = shared.lock();
            let r = frames(&mut buf, |ty, flags, id, p| {
                on_frame(&mut s, &mut out, &mut ready, (ty, flags, id, p))
            });
            s.dequeue(&mut out);
            r
        };
        if out.wake_writer {
            shared.wake.notify_one();
        }
        for (reply, a) in out.done {
            reply.send(a);
        }
        if let Err(e) = result {
            break e;
        }
        if buf.capacity() - buf.len() < FRAME {
            buf.reserve(64 * 1024);
        }
    };
    let failed = shared.lock().fail(&why, 0);
    for (reply, e) in failed {
        reply.send(e);
    }
    // Wakes the writer so that it sees the connection gone.
    shared.wake.notify_one();
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, shared: Arc<Shared>) {
    loop {
        shared.wake.notified().await;
        // Requests that fall due together are started one after another: let the rest
        // of them append their frames before this one write.
        tokio::task::yield_now().await;
        let (out, gone) = {
            let mut s = shared.lock();
            (s.out.split(), s.gone.is_some())
        };
        if !out.is_empty() {
            let sent = async {
                wr.write_all(&out).await?;
                wr.flush().await
            };
            if let Err(e) = sent.await {
                let failed = shared.lock().fail(&format!("write: {e}"), 0);
                for (reply, e) in failed {
                    reply.send(e);
                }
                return;
            }
        }
        if gone {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state() -> State {
        State {
            window: 10,
            ..State::new()
        }
    }

    fn waiting(s: &mut State, id: u32) -> oneshot::Receiver<Result<Answer, ClientError>> {
        let (tx, got) = oneshot::channel();
        s.streams.insert(
            id,
            Waiting {
                reply: Reply::Wait(tx),
                seq: u64::from(id),
                status: None,
                body: BytesMut::new(),
            },
        );
        got
    }

    fn feed(s: &mut State, raw: &[u8]) -> (Result<(), String>, Outcome) {
        let mut out = Outcome::default();
        let mut buf = BytesMut::from(raw);
        let r = frames(&mut buf, |ty, f, id, p| {
            on_frame(s, &mut out, &mut None, (ty, f, id, p))
        });
        (r, out)
    }

    fn frame(ty: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_head(&mut b, payload.len(), ty, flags, id);
        b.put_slice(payload);
        b.to_vec()
    }

    #[test]
    fn statuses_are_read_from_the_static_table_and_literals() {
        assert_eq!(status_of(Bytes::from_static(&[0x88])), Some(200));
        // A table size update to 0, then :status 404 indexed.
        assert_eq!(status_of(Bytes::from_static(&[0x20, 0x8d])), Some(404));
        // :status 429 as a literal with incremental indexing, name index 8.
        assert_eq!(status_of(Bytes::from_static(b"\x48\x03429")), Some(429));
        // :status 401 without indexing, Huffman-coded.
        assert_eq!(
            status_of(Bytes::from_static(&[0x08, 0x82, 0x68, 0x01])),
            Some(401)
        );
        for bad in [&[0x82][..], &[0x41, 0x03], &[0xbe], &[], &[0x20]] {
            assert_eq!(status_of(Bytes::copy_from_slice(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn answers_are_assembled_across_frames() {
        let mut s = state();
        let mut got = waiting(&mut s, 3);
        let mut raw = frame(HEADERS, 0, 3, &[0x20]);
        raw.extend(frame(CONTINUATION, END_HEADERS, 3, &[0x88]));
        raw.extend(frame(DATA, PADDED, 3, &[2, b'o', 0, 0]));
        raw.extend(frame(DATA, END_STREAM, 3, b"k"));
        let (r, out) = feed(&mut s, &raw);
        assert!(r.is_ok());
        for (reply, a) in out.done {
            reply.send(a);
        }
        let a = got.try_recv().unwrap().unwrap();
        assert_eq!((a.status.as_u16(), &a.body[..]), (200, &b"ok"[..]));
        assert!(s.streams.is_empty());
    }

    #[test]
    fn data_waits_for_the_window_and_goaway_fails_later_streams() {
        let mut s = state();
        s.blocked.push_back((8, Bytes::from_static(b"12345678")));
        s.blocked.push_back((8, Bytes::from_static(b"abcdefgh")));
        s.release();
        assert_eq!(&s.out[..], b"12345678");
        let (r, _) = feed(&mut s, &frame(WINDOW_UPDATE, 0, 0, &6u32.to_be_bytes()));
        assert!(r.is_ok());
        assert_eq!(&s.out[..], b"12345678abcdefgh");
        let _one = waiting(&mut s, 1);
        let _three = waiting(&mut s, 3);
        let (_, out) = feed(&mut s, &frame(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]));
        assert_eq!(out.done.len(), 1);
        assert!(s.streams.contains_key(&1) && s.gone.is_some());
    }

    /// Any bytes from the server: frames handled or an error, never a panic.
    #[test]
    fn arbitrary_frames_never_panic() {
        let mut next = crate::fields::xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..100_000 {
            let mut s = state();
            let _w = waiting(&mut s, 1);
            let n = (next() % 40) as usize;
            let mut raw: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            // Often a well-formed frame head, so the handlers are reached.
            if n >= 9 && next().is_multiple_of(2) {
                raw[..3].copy_from_slice(&[0, 0, (n - 9) as u8]);
                raw[3] = (next() % 10) as u8;
                raw[5..9].copy_from_slice(&[0, 0, 0, (next() % 2) as u8]);
            }
            let _ = feed(&mut s, &raw);
            let _ = status_of(Bytes::from(raw));
        }
    }
}
