//! The change stream's side of the core: one message → a checked [`event::Event`]
//! ([`event`], with a fast path for the common shape in `scan`), authenticated with the
//! feed keys ([`auth`], feed.md revision 3). The caller applies the event
//! (`Verifier::apply`).

pub mod auth;
pub mod event;
pub mod life;
mod scan;
