#![no_main]
//! A snapshot file's bytes (feed.md revision 4): read and checked whole without a panic,
//! every record within an event's bounds when it reads back (ver below 2^53, token ids
//! of 8 to 16 bytes), under no key and under one.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    use gateway_core::snapshot::{read, Record, SnapshotKey};
    let key = SnapshotKey::derive(&gateway_core::feed_auth::FeedKey::new(&[7; 32]));
    for keys in [&[][..], std::slice::from_ref(&key)] {
        let mut records = Vec::new();
        if read(bytes, keys, |r| records.push(r)).is_ok() {
            for r in records {
                match r {
                    Record::Status(_, st) => assert!(st.ver < (1 << 53)),
                    Record::Revoked(cti, _) => {
                        assert!((8..=16).contains(&cti.as_bytes().len()))
                    }
                }
            }
        }
    }
});
