//! Connections to every configured node, dialed lazily and kept.
//!
//! Each connection starts with the backchannel handshake, so nodes can open
//! sidechannels towards the router (proxied upload-pack) and call the
//! router's own services back over the same connection (transaction votes).

use crate::config::Config;
use cairn_node::client::{Connection, DialError, DialOptions, dial};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long one dial may take before the node counts as unreachable.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// One storage on one node.
pub struct Node {
    pub virtual_storage: String,
    pub storage: String,
    pub address: String,
    pub token: String,
    backchannel_routes: Option<tonic::service::Routes>,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("virtual_storage", &self.virtual_storage)
            .field("storage", &self.storage)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// The node's connection, dialing it first if needed.
    pub async fn connection(&self) -> Result<Connection, DialError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let opts = DialOptions {
            token: Some(self.token.clone()).filter(|t| !t.is_empty()),
            backchannel: true,
            tls_ca: std::env::var_os("SSL_CERT_FILE").map(Into::into),
            backchannel_server: self.backchannel_routes.clone(),
        };
        let dialed = tokio::time::timeout(DIAL_TIMEOUT, dial(&self.address, opts))
            .await
            .map_err(|_| DialError::Connect { address: self.address.clone(), message: "timed out".to_owned() })??;
        *conn = Some(dialed.clone());
        Ok(dialed)
    }

    /// `gitaly-servers` entry for this node: how another node reaches it.
    pub fn server_info(&self) -> serde_json::Value {
        serde_json::json!({ "address": self.address, "token": self.token })
    }
}

/// Every node of every virtual storage.
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    by_virtual_storage: Arc<BTreeMap<String, Vec<Arc<Node>>>>,
}

impl Nodes {
    /// One entry per configured node; nothing is dialed yet.
    /// `backchannel_routes` are the router services nodes may call back.
    pub fn new(config: &Config, backchannel_routes: Option<tonic::service::Routes>) -> Self {
        let by_virtual_storage = config
            .virtual_storages
            .iter()
            .map(|vs| {
                let nodes = vs
                    .nodes
                    .iter()
                    .map(|n| {
                        Arc::new(Node {
                            virtual_storage: vs.name.clone(),
                            storage: n.storage.clone(),
                            address: n.address.clone(),
                            token: n.token.clone(),
                            backchannel_routes: backchannel_routes.clone(),
                            conn: Mutex::new(None),
                        })
                    })
                    .collect();
                (vs.name.clone(), nodes)
            })
            .collect();
        Self { by_virtual_storage: Arc::new(by_virtual_storage) }
    }

    pub fn virtual_storages(&self) -> impl Iterator<Item = &str> {
        self.by_virtual_storage.keys().map(String::as_str)
    }

    /// The nodes of a virtual storage, in configuration order.
    pub fn of(&self, virtual_storage: &str) -> &[Arc<Node>] {
        self.by_virtual_storage.get(virtual_storage).map_or(&[], Vec::as_slice)
    }

    pub fn get(&self, virtual_storage: &str, storage: &str) -> Option<&Arc<Node>> {
        self.of(virtual_storage).iter().find(|n| n.storage == storage)
    }

    /// Storage names of a virtual storage, in configuration order.
    pub fn storages(&self, virtual_storage: &str) -> Vec<String> {
        self.of(virtual_storage).iter().map(|n| n.storage.clone()).collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.by_virtual_storage.values().flatten()
    }
}
