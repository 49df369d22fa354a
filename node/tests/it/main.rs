//! Integration tests of the storage node: the real server, real git, real
//! gRPC over Unix sockets and loopback.

#![allow(unreachable_pub, reason = "a test binary has no public API")]

mod support;

mod auth;
mod cli;
mod compatibility;
mod hostile_paths;
mod observability;
mod repository_service;
mod server_service;
mod unimplemented;
