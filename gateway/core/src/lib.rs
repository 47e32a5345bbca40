//! The verification core of the gateway: no I/O, no clock, no async runtime.
//!
//! Data flows one way, and the folders follow it: code text → [`wire`] (Base45, strict
//! CBOR, COSE_Sign1, claims: a [`token::Token`]) → [`trust`] (the key, its signature,
//! through the signature cache) → time and revocation checks → [`status`] (who turned
//! red or yellow, revoked tokens, pseudonyms) → [`policy`] → [`decide`] (a
//! [`Decision`] and its [`Reason`]). The [`feed`]'s events are parsed and authenticated
//! there and written into the same state by [`Verifier::apply`]; [`snapshot`] saves and
//! restores it. Time is always an argument (`now`, seconds since the epoch), so every
//! rule can be tested at its boundary without waiting.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decide;
pub mod feed;
pub mod offline;
pub mod policy;
pub mod snapshot;
pub mod status;
pub mod trust;
pub mod wire;

// The stages' modules under the names the other crates use.
pub use feed::{auth as feed_auth, event as feed_event};
pub use status::pseudonym;
pub use trust::sigcache;
pub use wire::{b64, base45, cbor, cose, token};

pub use decide::reason::Reason;
pub use decide::{Applied, Authentic, Decision, Limits, RequestError, Settings, Verifier};
pub use policy::{Conditions, Judgement, Policy, Verdict};
pub use status::{Color, Sub};
