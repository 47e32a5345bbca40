#![no_main]
//! A policy document's JSON.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|doc: &[u8]| {
    let _ = gateway_core::Policy::from_json(doc);
});
