//! v2 token authentication, enforced and transitioning, with its metrics.

use crate::support::{Node, Token};
use cairn_proto::gitaly::ServerInfoRequest;
use cairn_proto::gitaly::server_service_client::ServerServiceClient;
use hmac::Mac as _;
use tonic::Code;

fn token_at(secret: &str, ts: i64) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(ts.to_string().as_bytes());
    format!("Bearer v2.{}.{ts}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

async fn call_with(node: &Node, header: Option<String>) -> Result<(), tonic::Status> {
    let mut client = ServerServiceClient::new(node.channel().await);
    let mut req = tonic::Request::new(ServerInfoRequest {});
    if let Some(h) = header {
        req.metadata_mut().insert("authorization", h.parse().expect("ascii"));
    }
    client.server_info(req).await.map(|_| ())
}

#[tokio::test]
async fn enforced_tokens() {
    let node = Node::start_with(|c| {
        c.auth.token = "secret".into();
        c.prometheus_listen_addr = Some("127.0.0.1:0".into());
    })
    .await;
    call_with(&node, Some(token_at("secret", now()))).await.expect("valid token");
    call_with(&node, Some(token_at("secret", now() + 25))).await.expect("within the window");
    for (header, code) in [
        (None, Code::Unauthenticated),
        (Some("Bearer".to_owned()), Code::Unauthenticated),
        (Some("Bearer v2.nothex.1".to_owned()), Code::Unauthenticated),
        (Some("Basic dXNlcjpwYXNz".to_owned()), Code::Unauthenticated),
        (Some(token_at("wrong", now())), Code::PermissionDenied),
        (Some(token_at("secret", now() - 120)), Code::PermissionDenied),
        (Some(token_at("secret", now() + 120)), Code::PermissionDenied),
        (Some(token_at("secret", now()).replace("v2.", "v1.")), Code::PermissionDenied),
    ] {
        let e = call_with(&node, header.clone()).await.expect_err("rejected");
        assert_eq!(e.code(), code, "{header:?}");
    }
    // The generated client interceptor works too.
    let mut c = ServerServiceClient::with_interceptor(node.channel().await, Token("secret".into()));
    c.server_info(ServerInfoRequest {}).await.expect("interceptor token");

    let metrics = node.metrics().await;
    assert!(metrics.contains(r#"gitaly_authentications_total{enforced="true",status="ok"} 3"#), "{metrics}");
    assert!(
        metrics.contains(r#"gitaly_authentications_total{enforced="true",status="unauthenticated"} 4"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gitaly_authentications_total{enforced="true",status="denied"} 4"#), "{metrics}");
    assert!(
        metrics.contains(r#"gitaly_authentication_errors_total{version="v2",error="timestamp too old"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"grpc_server_handled_total{grpc_type="unary",grpc_service="gitaly.ServerService",grpc_method="ServerInfo",grpc_code="Unauthenticated"} 4"#), "{metrics}");

    // Health checks need no token (Kubernetes probes cannot send one).
    let mut health = tonic_health::pb::health_client::HealthClient::new(node.channel().await);
    let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health");
    assert_eq!(status.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
}

#[tokio::test]
async fn transitioning_never_rejects_but_counts() {
    let node = Node::start_with(|c| {
        c.auth.token = "secret".into();
        c.auth.transitioning = true;
        c.prometheus_listen_addr = Some("127.0.0.1:0".into());
    })
    .await;
    call_with(&node, None).await.expect("missing token allowed");
    call_with(&node, Some(token_at("wrong", now()))).await.expect("bad token allowed");
    call_with(&node, Some(token_at("secret", now()))).await.expect("good token");
    let metrics = node.metrics().await;
    assert!(metrics.contains(r#"gitaly_authentications_total{enforced="false",status="would be ok"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"gitaly_authentications_total{enforced="false",status="unauthenticated"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gitaly_authentications_total{enforced="false",status="denied"} 1"#), "{metrics}");
}

#[tokio::test]
async fn empty_token_disables_authentication() {
    let node = Node::start_with(|c| c.prometheus_listen_addr = Some("127.0.0.1:0".into())).await;
    call_with(&node, None).await.expect("no auth configured");
    let metrics = node.metrics().await;
    assert!(metrics.contains(r#"status="server disabled authentication"} 1"#), "{metrics}");
}
