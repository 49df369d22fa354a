//! RPCs without handlers answer UNIMPLEMENTED naming the method; unknown
//! paths say what is unknown; reflection lists the protocol.

use crate::support::Node;
use cairn_proto::gitaly::*;
use tonic::Code;

#[tokio::test]
async fn unimplemented_methods_are_named() {
    let node = Node::start().await;
    let channel = node.channel().await;
    // The Raft and partition services belong to upstream's write-ahead-log
    // mode, which Cairn does not implement.
    let e = raft_service_client::RaftServiceClient::new(channel.clone())
        .get_cluster_info(RaftClusterInfoRequest::default())
        .await
        .expect_err("unimplemented");
    assert_eq!((e.code(), e.message()), (Code::Unimplemented, "method GetClusterInfo not implemented"));

    let e = raft_service_client::RaftServiceClient::new(channel.clone())
        .get_partitions(GetPartitionsRequest::default())
        .await
        .expect_err("unimplemented stream");
    assert_eq!((e.code(), e.message()), (Code::Unimplemented, "method GetPartitions not implemented"));

    let e = partition_service_client::PartitionServiceClient::new(channel.clone())
        .list_partitions(ListPartitionsRequest::default())
        .await
        .expect_err("unimplemented");
    assert_eq!(e.message(), "method ListPartitions not implemented");

    let mut raw = tonic::client::Grpc::new(channel.clone());
    raw.ready().await.expect("ready");
    let e = raw
        .unary::<ServerInfoRequest, ServerInfoResponse, _>(
            tonic::Request::new(ServerInfoRequest {}),
            http::uri::PathAndQuery::from_static("/gitaly.NoSuchService/Nope"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("unknown service");
    assert_eq!((e.code(), e.message()), (Code::Unimplemented, "unknown method Nope for service gitaly.NoSuchService"));
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let node = Node::start().await;
    let mut client = ServerReflectionClient::new(node.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        client.server_reflection_info(futures::stream::iter(vec![req])).await.expect("reflection").into_inner();
    let msg = stream.message().await.expect("message").expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("unexpected {msg:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "gitaly.RepositoryService",
        "gitaly.ServerService",
        "gitaly.SSHService",
        "gitaly.RaftService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.starts_with("gitaly.")).count(), 20);
}
