//! Cairn's storage node: a Gitaly-compatible gRPC server.
//!
//! Requests flow listener → handshake detection ([`transport`]) → the tower
//! layer stack ([`server::middleware`]) → a service handler ([`service`]) →
//! the git layer ([`git`]), which alone touches repositories.

pub mod auth;
pub mod client;
pub mod transport;
