//! Router integration tests: a real PostgreSQL, real node processes, real
//! gRPC on loopback and Unix sockets.

mod db;
mod support;
