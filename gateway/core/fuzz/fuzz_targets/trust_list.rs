#![no_main]
//! A trust.json file.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|doc: &[u8]| {
    let _ = gateway_core::trust::TrustList::from_json(doc);
});
