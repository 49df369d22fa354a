//! Shared test helpers.

#![allow(dead_code, reason = "each test module uses a different subset")]

pub mod bg;
pub mod cluster;
pub mod pg;
