//! A fast path for the shape every producer of feed events writes: one flat JSON object
//! of the event fields, each value an ASCII string without escapes or an unsigned
//! integer. Anything else (escapes, nested or unknown fields, floats, `null`, duplicate
//! fields, leading zeros) gets `None` here and goes through serde_json, so this path
//! changes how fast an event parses, never what it parses to (property-tested in
//! `tests/no_panic.rs` against serde alone). A full replay parses ten million of these;
//! serde's generic path was a tenth of the gateway's replay profile.

use std::borrow::Cow;

use serde::Deserialize;

/// Every field of every event type, all optional: one flat struct parses faster than
/// an internally tagged enum (serde buffers those), and unknown fields are ignored.
/// Filled here for the common shape, by serde otherwise; `feed_event` checks it.
#[derive(Deserialize, Default)]
pub(crate) struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(borrow, default)]
    pub sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub color: Option<Cow<'a, str>>,
    #[serde(default)]
    pub ver: Option<u64>,
    #[serde(default)]
    pub why: Option<u64>,
    #[serde(borrow, default)]
    pub at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub cti: Option<Cow<'a, str>>,
    #[serde(default)]
    pub exp: Option<u64>,
    #[serde(borrow, default)]
    pub signed: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub mac: Option<Cow<'a, str>>,
    #[serde(default)]
    pub prev: Option<u64>,
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A string of printable ASCII other than `"` and `\`.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                0x20..=0x7e => self.i += 1,
                _ => return None,
            }
        }
        let s = self.b.get(start..self.i)?;
        self.i += 1;
        std::str::from_utf8(s).ok()
    }

    /// An unsigned integer in JSON's grammar (no leading zero), within u64.
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.b.get(start) == Some(&b'0')) {
            return None;
        }
        Some(v)
    }
}

/// The event's fields, or `None` for anything off the fast path.
pub(crate) fn event(msg: &[u8]) -> Option<RawEvent<'_>> {
    let mut c = Cursor { b: msg, i: 0 };
    let mut ty = None;
    let mut raw = RawEvent::default();
    let mut seen = 0u16;
    c.ws();
    c.eat(b'{')?;
    c.ws();
    loop {
        let key = c.string()?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        let bit = match key {
            "type" => {
                ty = Some(c.string()?);
                1
            }
            "sub" => {
                raw.sub = Some(Cow::Borrowed(c.string()?));
                2
            }
            "color" => {
                raw.color = Some(Cow::Borrowed(c.string()?));
                4
            }
            "at" => {
                raw.at = Some(Cow::Borrowed(c.string()?));
                8
            }
            "cti" => {
                raw.cti = Some(Cow::Borrowed(c.string()?));
                16
            }
            "signed" => {
                raw.signed = Some(Cow::Borrowed(c.string()?));
                32
            }
            "ver" => {
                raw.ver = Some(c.uint()?);
                64
            }
            "why" => {
                raw.why = Some(c.uint()?);
                128
            }
            "exp" => {
                raw.exp = Some(c.uint()?);
                256
            }
            "mac" => {
                raw.mac = Some(Cow::Borrowed(c.string()?));
                512
            }
            "prev" => {
                raw.prev = Some(c.uint()?);
                1024
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        c.ws();
        match c.peek()? {
            b',' => {
                c.i += 1;
                c.ws();
            }
            b'}' => {
                c.i += 1;
                break;
            }
            _ => return None,
        }
    }
    c.ws();
    if c.i != msg.len() {
        return None;
    }
    raw.ty = Cow::Borrowed(ty?);
    Some(raw)
}
