//! docs/compatibility.md against the running node: every RPC of the
//! protocol is called (with an empty request), and the table must say
//! "unimplemented" exactly for the ones that answer UNIMPLEMENTED.

use crate::support::Node;
use bytes::{Buf as _, BufMut as _};
use std::collections::BTreeMap;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Passes message bytes through unchanged, so any RPC can be called
/// without its generated types.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        *self
    }
    fn decoder(&mut self) -> Self {
        *self
    }
}

fn documented() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/compatibility.md")).expect("doc");
    let mut service = String::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("## ") {
            service = s.trim().to_owned();
        } else if line.starts_with("| ") && !line.starts_with("| RPC") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (method, status) = (cells[1], cells[4]);
            assert!(["implemented", "partial", "unimplemented"].contains(&status), "{line}");
            let prev = out.insert(format!("/{service}/{method}"), status.to_owned());
            assert!(prev.is_none(), "{service}/{method} listed twice");
        }
    }
    out
}

async fn call(channel: tonic::transport::Channel, facts: &cairn_proto::facts::RpcFacts) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static(facts.full_method);
    let one = || futures::stream::iter(vec![Vec::<u8>::new()]);
    let result = match (facts.client_streaming, facts.server_streaming) {
        (false, false) => grpc.unary(tonic::Request::new(Vec::new()), path, RawCodec).await.map(|_| ()),
        (true, false) => grpc.client_streaming(tonic::Request::new(one()), path, RawCodec).await.map(|_| ()),
        (false, true) => match grpc.server_streaming(tonic::Request::new(Vec::new()), path, RawCodec).await {
            Ok(r) => r.into_inner().message().await.map(|_| ()),
            Err(e) => Err(e),
        },
        (true, true) => match grpc.streaming(tonic::Request::new(one()), path, RawCodec).await {
            Ok(r) => r.into_inner().message().await.map(|_| ()),
            Err(e) => Err(e),
        },
    };
    result.err().unwrap_or_else(|| tonic::Status::ok(""))
}

#[tokio::test]
async fn table_matches_the_node() {
    let doc = documented();
    let all: Vec<String> = cairn_proto::facts::RPCS.iter().map(|r| r.full_method.to_owned()).collect();
    assert_eq!(
        doc.keys().cloned().collect::<Vec<_>>(),
        {
            let mut a = all.clone();
            a.sort();
            a
        },
        "every RPC listed once"
    );

    let node = Node::start().await;
    let channel = node.channel().await;
    let mut wrong = Vec::new();
    for facts in cairn_proto::facts::RPCS {
        let status = call(channel.clone(), facts).await;
        let answered_unimplemented = status.code() == Code::Unimplemented;
        let documented_unimplemented = doc[facts.full_method] == "unimplemented";
        if answered_unimplemented != documented_unimplemented {
            wrong.push(format!(
                "{} documented {:?} but answered {:?}",
                facts.full_method, doc[facts.full_method], status
            ));
        }
        if answered_unimplemented {
            assert_eq!(status.message(), format!("method {} not implemented", facts.method));
        }
    }
    assert!(wrong.is_empty(), "docs/compatibility.md is out of date:\n{}", wrong.join("\n"));
}
