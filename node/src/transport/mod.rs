//! The node's transport layer: listeners, connection multiplexing, TLS.
//!
//! Every accepted connection (TCP, Unix socket, or TLS after its handshake)
//! is classified by its first 11 bytes ([`listen`]): the magic `backchannel`
//! turns it into a yamux session whose client-opened streams carry HTTP/2
//! gRPC and through which the server can open streams back to the client
//! ([`backchannel`]); anything else is replayed and served as plain HTTP/2.
//! Sidechannels ([`sidechannel`]) are such server-opened streams carrying an
//! RPC's bulk data.

mod backchannel;
mod conn;
mod listen;
pub(crate) mod mux;
mod sidechannel;
mod tls;

pub use backchannel::{BackchannelPeer, BackchannelRegistry};
pub use conn::{Conn, ConnInfo, TransportKind};
pub use listen::{DEFAULT_HANDSHAKE_TIMEOUT, Listeners};
pub use mux::MuxStream;
pub use sidechannel::{
    MAX_FRAME_PAYLOAD, SIDECHANNEL_ID_KEY, SIDECHANNEL_TIMEOUT, Sidechannel, SidechannelReader, SidechannelWriter,
    open_sidechannel, sidechannel_id,
};
pub use tls::{TlsError, server_tls_config};

pub(crate) use conn::Replay;
pub(crate) use tls::{load_certs, provider as tls_provider};

/// Length of every connection-type magic.
pub const MAGIC_LEN: usize = 11;
/// First bytes of a connection that asks for a yamux session.
pub const BACKCHANNEL_MAGIC: &[u8; MAGIC_LEN] = b"backchannel";
/// First bytes of a server-opened stream that carries a sidechannel.
pub const SIDECHANNEL_MAGIC: &[u8; MAGIC_LEN] = b"sidechannel";
