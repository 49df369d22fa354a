//! Relaying sidechannels. A client of `*WithSidechannel` RPCs waits for the
//! server to open a stream back over its backchannel; through the router,
//! the node opens it towards the router, and the router opens one towards
//! the client and copies bytes both ways, frames and all.

use cairn_node::client::Connection;
use cairn_node::transport::{BackchannelPeer, ConnInfo, SIDECHANNEL_ID_KEY, open_sidechannel, sidechannel_id};
use tonic::Status;

/// Replaces the client's sidechannel id in `headers` with one registered on
/// the node connection, and relays once the node opens it.
pub(crate) fn relay(
    extensions: &http::Extensions,
    headers: &mut http::HeaderMap,
    node: &Connection,
) -> Result<Option<tokio::task::JoinHandle<()>>, Status> {
    if !headers.contains_key(SIDECHANNEL_ID_KEY) {
        return Ok(None);
    }
    let metadata = tonic::metadata::MetadataMap::from_headers(headers.clone());
    let client_id = sidechannel_id(&metadata).unwrap_or(0);
    let peer: BackchannelPeer = extensions
        .get::<ConnInfo>()
        .and_then(|i| i.backchannel.clone())
        .ok_or_else(|| Status::internal("open sidechannel: fail to extract yamux session"))?;
    let (node_id, waiter) = node.sidechannels().register();
    headers.insert(SIDECHANNEL_ID_KEY, http::HeaderValue::from(node_id));
    Ok(Some(tokio::spawn(async move {
        // The node opens it at the start of the call; a call that fails
        // first never does, and the waiter must not linger.
        let node_side = match tokio::time::timeout(std::time::Duration::from_secs(30), waiter.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return tracing::debug!(error = %e, "node did not open the sidechannel"),
            Err(_) => return tracing::debug!("node did not open the sidechannel in time"),
        };
        let mut node_raw = match node_side.into_raw().await {
            Ok(s) => s,
            Err(e) => return tracing::debug!(error = %e, "sidechannel from node failed"),
        };
        let mut client_raw = match open_sidechannel(&peer, client_id).await {
            Ok(s) => s.into_raw(),
            Err(e) => return tracing::debug!(error = %e, "could not open the client's sidechannel"),
        };
        if let Err(e) = tokio::io::copy_bidirectional(&mut client_raw, &mut node_raw).await {
            tracing::debug!(error = %e, "sidechannel relay ended with an error");
        }
    })))
}
