#![no_main]
//! The code's text form: prefix, length and Base45, then COSE and claims.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(bytes) = gateway_core::token::decode_text(text) {
        let _ = gateway_core::token::Token::parse(&bytes);
    }
});
