//! The node's transport layer: listeners, connection multiplexing, TLS.
//!
//! Every accepted connection (TCP, Unix socket, or TLS after its handshake)
//! is classified by its first 11 bytes ([`listen`]): the magic `backchannel`
//! turns it into a yamux session whose client-opened streams carry HTTP/2
//! gRPC and through which the server can open streams back to the client
//! ([`backchannel`]); anything else is replayed and served as plain HTTP/2.
//! Sidechannels ([`sidechannel`]) are such server-opened streams carrying an
//! RPC's bulk data.

/// Implements tokio's `AsyncRead` for a type by forwarding to one field.
macro_rules! delegate_async_read {
    ($ty:ty, $field:ident) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.$field).poll_read(cx, buf)
            }
        }
    };
}

/// Implements tokio's `AsyncWrite` (vectored writes included) for a type by
/// forwarding to one field. Generic types list their bounds in brackets:
/// `delegate_async_write!([T: AsyncWrite + Unpin] Wrapper<T>, inner)`.
macro_rules! delegate_async_write {
    ([$($generics:tt)*] $ty:ty, $field:ident) => {
        impl<$($generics)*> tokio::io::AsyncWrite for $ty {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.$field).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.$field).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.$field).poll_shutdown(cx)
            }
        }
    };
    ($ty:ty, $field:ident) => {
        $crate::transport::delegate_async_write!([] $ty, $field);
    };
}
pub(crate) use {delegate_async_read, delegate_async_write};

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
