//! `validator check`: one offline decision (`offline.md` steps 1 to 10) from what DIR
//! holds, as one JSON line shaped like `/v1/verify`'s answer without `feed_seq` and
//! `stale`, with `"offline": true`, `"status_checked"` and `"list_age_s"`. No network.

use std::fmt::Write;
use std::io::Read;

use crate::args::CheckArgs;
use crate::{state, Error};

/// Longest code read from standard input.
const MAX_CODE: u64 = 64 * 1024;

/// The decision as its JSON line.
pub fn run(a: &CheckArgs) -> Result<String, Error> {
    let (root, text) = state::read(&a.dir)?;
    let now = a.now.unwrap_or_else(crate::unix_now);
    let code = if a.code == "-" {
        let mut s = String::new();
        std::io::stdin()
            .take(MAX_CODE)
            .read_to_string(&mut s)
            .map_err(|e| Error::Usage(format!("standard input: {e}")))?;
        s.trim().to_owned()
    } else {
        a.code.clone()
    };
    let v = state::empty_verifier();
    state::apply(&v, &root, &text, now);
    decide(&v, &code, &a.venue, now)
}

/// The JSON line for `code` at `venue` at `now` from what `v` holds.
pub fn decide(
    v: &gateway_core::Verifier,
    code: &str,
    venue: &str,
    now: u64,
) -> Result<String, Error> {
    let lists = v.lists();
    let d = v
        .decide_offline(code, venue, now, &*lists)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let mut out = String::with_capacity(200);
    gateway_core::decide::answer::write_decision(&mut out, &d.decision);
    let age = d
        .list_time
        .map_or("null".to_owned(), |t| now.saturating_sub(t).to_string());
    let _ = write!(
        out,
        r#","offline":true,"status_checked":{},"list_age_s":{}}}"#,
        d.status_checked, age
    );
    Ok(out)
}
