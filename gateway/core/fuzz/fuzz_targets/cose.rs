#![no_main]
//! COSE_Sign1 bytes and their claims (strict CBOR).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = gateway_core::token::Token::parse(bytes);
});
