#![no_main]
//! A code's claims with the `status` claim (`offline.md`, "The status claim"): any bytes
//! as a claims map parse or are refused without a panic; a parsed `status_list` has an
//! `idx` below 2^32 and a `uri` ending in `/status-lists/NAME`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(c) = gateway_core::token::parse_claims(bytes) {
        if let Some(st) = c.status {
            assert!(gateway_core::token::list_name(st.uri).is_some());
            assert!(st.uri.len() <= 255);
        }
    }
});
