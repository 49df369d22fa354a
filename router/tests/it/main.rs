//! Router integration tests: a real PostgreSQL, real node processes, real
//! gRPC on loopback and Unix sockets.

#![allow(unreachable_pub, reason = "a test binary has no public API")]

mod cli;
mod consistency;
mod db;
mod failover;
mod front;
mod health;
mod info_service;
mod outage;
mod replication;
mod routing;
mod support;
