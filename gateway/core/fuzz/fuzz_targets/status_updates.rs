#![no_main]
//! A held status list offered any sequence of updates (`offline.md`): never a panic;
//! the applied count only grows, the list's time only grows, at most 64 wait aside, no
//! value is above 3 and the length never changes.
use libfuzzer_sys::fuzz_target;

use gateway_core::offline::bits::TwoBits;
use gateway_core::offline::held::{HeldList, MAX_ASIDE};
use gateway_core::offline::list::{ListUpdate, StatusList};

const URI: &str = "https://h.example/status-lists/CN-33-1";

fuzz_target!(|bytes: &[u8]| {
    let list = StatusList {
        iss: "CN-33".into(),
        uri: URI.into(),
        iat: 1000,
        exp: None,
        ttl: None,
        bits: TwoBits::zeros(64),
        revoked: Vec::new(),
    };
    let mut held = HeldList::new(list);
    for chunk in bytes.chunks(6) {
        let b = |i: usize| u64::from(chunk.get(i).copied().unwrap_or(0));
        let u = ListUpdate {
            iss: "CN-33".into(),
            uri: if b(5) == 255 { "other".into() } else { URI.into() },
            iat: 1000 + b(1),
            base: if b(4) == 255 { 999 } else { 1000 },
            n: b(0) % 80,
            changes: vec![(b(2) as u32, (b(3) % 4) as u8)],
            revoked: Vec::new(),
        };
        let (applied, time) = (held.applied(), held.time());
        let _ = held.offer(u);
        assert!(held.applied() >= applied && held.time() >= time);
        assert!(held.aside() <= MAX_ASIDE);
        assert_eq!(held.list().bits.len(), 64);
        assert!((0..64).all(|i| held.value(i).is_some_and(|v| v <= 3)));
    }
});
