//! A decision as JSON (`api.md`, "Answers"): the fields every answer shares, written by
//! hand (every string is one of the closed labels or a receipt's alphabet, so nothing
//! needs escaping, and this is on every request's path). The gateway appends
//! `feed_seq` and `stale`, the offline validator `offline`, `status_checked` and
//! `list_age_s`; each closes the object.

use std::fmt::Write;

use super::Decision;
use crate::policy::Judgement;

fn write_judgement(out: &mut String, j: &Judgement) {
    out.push_str(r#"{"decision":""#);
    out.push_str(j.verdict.label());
    out.push_str(r#"","color":"#);
    match j.color {
        Some(c) => {
            out.push('"');
            out.push_str(c.name());
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push_str(r#","reason":""#);
    out.push_str(j.reason.label());
    out.push_str(r#"","conditions":["#);
    for (i, c) in j.conditions.names().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(c);
        out.push('"');
    }
    out.push(']');
    if let Some(r) = &j.receipt {
        out.push_str(r#","receipt":""#);
        out.push_str(r.as_str());
        out.push('"');
    }
}

/// Appends `{"decision": …, …, "companions": […], "policy_version": n` (the object
/// left open for the caller's own fields and its closing brace).
pub fn write_decision(out: &mut String, d: &Decision) {
    write_judgement(out, &d.holder);
    if let Some(c) = &d.companions {
        out.push_str(r#","companions":["#);
        for (i, j) in c.as_slice().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_judgement(out, j);
            out.push('}');
        }
        out.push(']');
    }
    let _ = write!(out, r#","policy_version":{}"#, d.policy_version);
}
