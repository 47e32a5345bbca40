//! Offline gates (`offline.md`, revision 4): status lists in the form of the IETF Token
//! Status List (CWT, two bits per index, zlib), their signed updates, and what a
//! validator decides from them. Pure like the rest of the core: bytes and the time in,
//! checked values out.
//!
//! - [`inflate`]: zlib with a bound (a bomb is refused at the bound);
//! - [`bits`]: the two-bit array, index 0 in the low bits of byte 0;
//! - [`bundle`]: what a verifier holds as the feed-shaped bundle;
//! - [`decide`]: the offline decision, on the online pipeline's steps;
//! - [`held`]: one list with its updates applied in order (early ones held aside);
//! - [`list`]: status list tokens and updates, parsed, verified against the trust list,
//!   held to this profile;
//! - [`store`]: the lists a gateway keeps and relays, within the spec's bounds.

pub mod bits;
pub mod bundle;
pub mod decide;
pub mod held;
pub mod inflate;
pub mod list;
pub mod store;
