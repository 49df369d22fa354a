//! Integration tests of the storage node: the real server, real git, real
//! gRPC over Unix sockets and loopback.

#![allow(unreachable_pub, reason = "a test binary has no public API")]

mod support;

mod auth;
mod blob_service;
mod bundles;
mod cleanup_service;
mod cli;
mod commit_service;
mod compatibility;
mod diff_service;
mod gitlab_api;
mod hooks;
mod hostile_paths;
mod housekeeping;
mod object_pools;
mod observability;
mod operations;
mod pack_objects_cache;
mod read_freshness;
mod ref_service;
mod ref_writes;
mod remote_service;
mod replication;
mod repository_reads;
mod repository_service;
mod server_service;
mod transactions;
mod unimplemented;
mod walk_repos;
mod wire;
