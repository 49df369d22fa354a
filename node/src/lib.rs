//! Cairn's storage node: a Gitaly-compatible gRPC server.
//!
//! Requests flow listener → handshake detection ([`transport`]) → the tower
//! layer stack ([`server::middleware`]) → a service handler ([`service`]) →
//! the git layer ([`git`]), which alone touches repositories.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod frontdoor;
pub mod fsinfo;
pub mod git;
pub mod gitlab;
pub mod hooks;
pub mod protojson;
pub mod server;
pub mod service;
pub mod signing;
pub mod storage;
pub mod transaction;
pub mod transport;

/// The Gitaly protocol version this node speaks.
pub const GITALY_PROTOCOL_VERSION: &str = "18.9.0";

/// What ServerInfo reports as the server version: the protocol version
/// GitLab compares against, marked as Cairn's build.
pub fn server_version() -> String {
    format!("{GITALY_PROTOCOL_VERSION}-cairn-{}", env!("CARGO_PKG_VERSION"))
}
