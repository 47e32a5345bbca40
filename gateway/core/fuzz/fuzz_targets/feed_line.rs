#![no_main]
//! One feed message, with a root key so signed documents are opened too; the fast path
//! for common lines must give what serde_json alone gives.
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn root() -> &'static gateway_core::trust::RootKey {
    static ROOT: OnceLock<gateway_core::trust::RootKey> = OnceLock::new();
    ROOT.get_or_init(|| {
        let signer = gateway_issuer::RootSigner::from_seed(&[0x52; 32]);
        gateway_core::trust::RootKey::from_b64(&signer.public_b64()).expect("valid root")
    })
}

fuzz_target!(|line: &[u8]| {
    let fast = gateway_core::feed_event::parse(line, Some(root()));
    let generic = gateway_core::feed_event::parse_generic(line, Some(root()));
    assert_eq!(format!("{fast:?}"), format!("{generic:?}"));
});
