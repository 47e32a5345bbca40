//! From the scanned text to a parsed token: Base45 ([`base45`]), strict deterministic
//! CBOR ([`cbor`]), COSE_Sign1 ([`cose`]) and the claims ([`token`]); base64url for the
//! JSON forms ([`b64`]). Nothing here knows a key: a token that parses is not yet
//! trusted.

pub mod b64;
pub mod base45;
pub mod cbor;
pub mod cose;
pub mod token;
