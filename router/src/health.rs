//! What the router knows about node health, in two views:
//!
//! - local: this router's latest check of each node. Routing uses it, so a
//!   dead node stops receiving reads and writes at the next check.
//! - consensus: nodes a majority of live routers saw answering within
//!   `failover.health_window`, read from `node_status`. Primary elections use
//!   it, so one router with a broken network path cannot trigger failovers.
//!
//! The checker (see [`checker`]) updates both every
//! `failover.health_check_interval`.

pub mod checker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
struct Inner {
    /// (virtual storage, storage) -> answered the last check.
    local: BTreeMap<(String, String), bool>,
    /// virtual storage -> storages healthy by consensus.
    consensus: BTreeMap<String, BTreeSet<String>>,
    /// At least one full round of checks has completed.
    checked: bool,
    /// The last round could read and write `node_status`.
    database_ok: bool,
}

/// The shared, cheap-to-clone health state.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    inner: Arc<RwLock<Inner>>,
}

impl HealthView {
    pub fn locally_healthy(&self, virtual_storage: &str, storage: &str) -> bool {
        let inner = self.inner.read().expect("health lock is never poisoned");
        inner.local.get(&(virtual_storage.to_owned(), storage.to_owned())).copied().unwrap_or(false)
    }

    /// Storages of `virtual_storage` healthy by consensus.
    pub fn consensus(&self, virtual_storage: &str) -> BTreeSet<String> {
        let inner = self.inner.read().expect("health lock is never poisoned");
        inner.consensus.get(virtual_storage).cloned().unwrap_or_default()
    }

    pub fn healthy_by_consensus(&self, virtual_storage: &str, storage: &str) -> bool {
        let inner = self.inner.read().expect("health lock is never poisoned");
        inner.consensus.get(virtual_storage).is_some_and(|s| s.contains(storage))
    }

    /// A first round of checks completed.
    pub fn checked(&self) -> bool {
        self.inner.read().expect("health lock is never poisoned").checked
    }

    pub fn database_ok(&self) -> bool {
        self.inner.read().expect("health lock is never poisoned").database_ok
    }

    /// Records one node's check result.
    pub fn set_local(&self, virtual_storage: &str, storage: &str, healthy: bool) {
        let mut inner = self.inner.write().expect("health lock is never poisoned");
        inner.local.insert((virtual_storage.to_owned(), storage.to_owned()), healthy);
    }

    /// Replaces the consensus view after a round; `None` when the database
    /// could not be read, in which case the local view stands in for it.
    pub fn finish_round(&self, consensus: Option<BTreeMap<String, BTreeSet<String>>>) {
        let mut inner = self.inner.write().expect("health lock is never poisoned");
        inner.database_ok = consensus.is_some();
        inner.consensus = match consensus {
            Some(c) => c,
            None => {
                let mut local: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for ((vs, storage), healthy) in &inner.local {
                    if *healthy {
                        local.entry(vs.clone()).or_default().insert(storage.clone());
                    }
                }
                local
            }
        };
        inner.checked = true;
    }
}
