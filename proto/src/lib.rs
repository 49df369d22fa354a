//! The Gitaly wire protocol.
//!
//! `gitaly` and `raftpb` are generated at build time from the .proto files in
//! `gitaly/`. [`facts`] describes every RPC (read or write, scope, where the
//! repository sits in the request) so that middleware and the router never
//! need per-RPC code.

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, rust_2018_idioms, reason = "generated code")]
pub mod gitaly {
    tonic::include_proto!("gitaly");
}

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, rust_2018_idioms, reason = "generated code")]
pub mod raftpb {
    tonic::include_proto!("raftpb");
}

pub mod facts;
pub mod raw;

/// The serialized `FileDescriptorSet` of every .proto file, for gRPC server
/// reflection and for tools that decode messages dynamically.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gitaly_descriptor.bin"));
