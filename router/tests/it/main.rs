//! Router integration tests: a real PostgreSQL, real node processes, real
//! gRPC on loopback and Unix sockets.

#![allow(unreachable_pub, reason = "a test binary has no public API")]

mod db;
mod failover;
mod front;
mod health;
mod outage;
mod replication;
mod routing;
mod support;
