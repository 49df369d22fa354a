//! Router integration tests: a real PostgreSQL, real node processes, real
//! gRPC on loopback and Unix sockets.

#![allow(unreachable_pub, reason = "a test binary has no public API")]

mod cli;
mod db;
mod info_service;
mod support;
