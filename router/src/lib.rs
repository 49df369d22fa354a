//! Cairn's router: a Praefect-compatible front for a cluster of storage
//! nodes. Clients address repositories on a virtual storage; the router
//! keeps, in PostgreSQL, which nodes hold each repository and how current
//! they are, proxies every RPC to the right node(s) after rewriting the
//! repository, replicates, health-checks and fails over.

pub mod background;
pub mod cli;
pub mod config;
pub mod db;
pub mod election;
pub mod health;
pub mod intents;
pub mod metrics;
pub mod nodes;
pub mod proxy;
pub mod reconcile;
pub mod replication;
pub mod server;
pub mod service;
pub mod transactions;
pub mod verifier;
