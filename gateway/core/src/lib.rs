//! The verification core of the gateway: no I/O, no clock, no async runtime.
//!
//! Data flows one way: code text → [`token`] (Base45, strict CBOR, COSE_Sign1, claims) →
//! [`signature`] (against the [`trust`] list, through the [`sigcache`]) → time and
//! revocation checks → [`status`] → [`policy`] → a [`Decision`]. The feed's events are
//! parsed by [`feed_event`] and written into the same state by [`Verifier::apply`].
//! Time is always an argument (`now`, seconds since the epoch), so every rule can be
//! tested at its boundary without waiting.

#![forbid(unsafe_code)]

pub mod b64;
pub mod base45;
pub mod cbor;
pub mod cose;
pub mod decide;
pub mod feed_auth;
pub mod feed_event;
mod feed_scan;
pub mod id;
pub mod policy;
pub mod pseudonym;
pub mod reason;
pub mod sigcache;
pub mod signature;
pub mod snapshot;
pub mod status;
mod status_table;
pub mod token;
pub mod trust;

pub use decide::{Applied, Authentic, Decision, Limits, RequestError, Settings, Verifier};
pub use policy::{Conditions, Judgement, Policy, Verdict};
pub use reason::Reason;
pub use status::{Color, Sub};
