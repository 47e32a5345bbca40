#![no_main]
//! Status list tokens and updates (`offline.md`): any bytes parsed as a signed list or
//! update, and opened against a trust list, without a panic; any bytes inflated under a
//! small bound never yield more than it; any bytes as `changes` give pairs with values
//! 0 to 3.
use libfuzzer_sys::fuzz_target;

use gateway_core::offline::inflate;
use gateway_core::offline::list::{decode_changes, Envelope, ListUpdate, StatusList};
use gateway_core::trust::TrustList;

fuzz_target!(|bytes: &[u8]| {
    let (trust, _) = TrustList::from_json(br#"{"keys": []}"#).expect("empty trust list");
    if let Ok(env) = Envelope::parse(bytes) {
        if let Some((_, lst)) = env.claims.status_list {
            if let Ok(raw) = inflate::zlib(lst, 1 << 16) {
                assert!(raw.len() <= 1 << 16);
            }
        }
    }
    let _ = StatusList::open(bytes, &trust, 1_800_000_000, 30);
    let _ = ListUpdate::open(bytes, &trust, 1_800_000_000, 30);
    match inflate::zlib(bytes, 1 << 12) {
        Ok(raw) => assert!(raw.len() <= 1 << 12),
        Err(_) => {}
    }
    if let Ok(pairs) = decode_changes(bytes) {
        assert!(pairs.iter().all(|(_, v)| *v <= 3));
    }
});
