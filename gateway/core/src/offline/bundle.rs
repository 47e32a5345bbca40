//! The offline bundle (`offline.md`, "Gateways serve them"): what a verifier holds, as
//! feed events, one a line, in the order a validator applies them: each key document in
//! force (root-signed, revocations too), the policy in force and the pending one, then
//! each status list followed by its applied updates in order. The gateway serves it; the
//! validator keeps what it accepted in the same form.

use std::fmt::Write;

use crate::decide::Verifier;

/// The bundle of what `v` holds.
pub fn write(v: &Verifier) -> String {
    let mut out = String::new();
    let mut event = |ty: &str, signed: &str| {
        let _ = writeln!(out, "{}", serde_json::json!({"type": ty, "signed": signed}));
    };
    for doc in v.key_docs() {
        event("key", &doc);
    }
    let rules = v.rules();
    for p in [rules.in_force(), rules.pending()].into_iter().flatten() {
        if let Some(signed) = p.signed() {
            event("policy", signed);
        }
    }
    let lists = v.lists();
    for e in lists.entries() {
        event("status_list", &crate::b64::encode(e.list_bytes()));
        for u in e.updates_after(0) {
            event("status_list_update", &crate::b64::encode(u));
        }
    }
    out
}
