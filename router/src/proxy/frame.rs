//! gRPC message framing on raw HTTP/2 bodies: the proxy reads only the
//! first request message (to find and rewrite the repository) and passes
//! every other byte through untouched.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use tonic::Status;
use tonic::body::Body;

/// Largest first message the router reads ahead.
const MAX_FIRST_MESSAGE: usize = 16 * 1024 * 1024;

/// The first message of a request and whatever arrived after it.
#[derive(Debug)]
pub(crate) struct First {
    /// The message, without its 5-byte gRPC prefix.
    pub message: Bytes,
    /// Bytes read past the first message (the start of later messages).
    pub leftover: Bytes,
}

/// Reads the first message from `body`.
pub(crate) async fn read_first(body: &mut Body) -> Result<First, Status> {
    let mut buf = BytesMut::new();
    loop {
        if buf.len() >= 5 {
            if buf[0] != 0 {
                return Err(Status::unimplemented("compressed request messages are not supported by the router"));
            }
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len > MAX_FIRST_MESSAGE {
                return Err(Status::resource_exhausted(format!(
                    "first request message of {len} bytes exceeds the router's limit of {MAX_FIRST_MESSAGE}"
                )));
            }
            if buf.len() >= 5 + len {
                buf.advance(5);
                let message = buf.split_to(len).freeze();
                return Ok(First { message, leftover: buf.freeze() });
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.put(data);
                }
            }
            Some(Err(status)) => return Err(status),
            None => return Err(Status::internal("request stream ended before its first message")),
        }
    }
}

/// `message` with its gRPC prefix (uncompressed).
pub(crate) fn encode(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).expect("messages are smaller than 4 GiB"));
    out.put_slice(message);
    out.freeze()
}

/// A request body: the (rewritten) first message, the leftover bytes, then
/// the rest of the client's stream.
pub(crate) fn request_body(first: Bytes, leftover: Bytes, rest: Option<Body>) -> Body {
    use futures::StreamExt as _;
    let head = futures::stream::iter(
        [first, leftover].into_iter().filter(|b| !b.is_empty()).map(|b| Ok::<_, Status>(http_body::Frame::data(b))),
    );
    match rest {
        Some(rest) => Body::new(http_body_util::StreamBody::new(
            head.chain(http_body_util::BodyStream::new(rest).filter(|f| futures::future::ready(!is_empty_data(f)))),
        )),
        None => Body::new(http_body_util::StreamBody::new(head)),
    }
}

/// An empty DATA frame: nothing to forward, and h2 peers count them per
/// connection (hyper's server answers too many with GOAWAY
/// ENHANCE_YOUR_CALM, failing every call on the connection).
pub(crate) fn is_empty_data<E>(frame: &Result<http_body::Frame<Bytes>, E>) -> bool {
    matches!(frame, Ok(f) if f.data_ref().is_some_and(Bytes::is_empty))
}

/// A complete unary response carrying `message`.
pub(crate) fn unary_response(message: &impl prost::Message) -> http::Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, Status>(http_body::Frame::data(encode(&message.encode_to_vec()))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(frames)));
    http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(body)
        .expect("static response parts are valid")
}

/// The gRPC status code in a header map (response headers of a
/// trailers-only answer, or trailers).
pub(crate) fn grpc_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from(value))
}

/// A response collected whole (for fan-out and intercepted calls).
#[derive(Debug)]
pub(crate) struct Collected {
    pub head: http::response::Parts,
    pub data: Bytes,
    pub trailers: Option<http::HeaderMap>,
}

impl Collected {
    pub(crate) async fn read(response: http::Response<Body>) -> Result<Self, Status> {
        let (head, body) = response.into_parts();
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok(Self { head, data: collected.to_bytes(), trailers })
    }

    /// The call's status: from the trailers, or a trailers-only answer.
    pub(crate) fn status(&self) -> Status {
        let source = self.trailers.as_ref().filter(|t| t.contains_key("grpc-status")).unwrap_or(&self.head.headers);
        Status::from_header_map(source).unwrap_or_else(|| Status::internal("node answered without a gRPC status"))
    }

    /// The first message of the answer.
    pub(crate) fn message(&self) -> Option<&[u8]> {
        let d = &self.data;
        if d.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([d[1], d[2], d[3], d[4]]) as usize;
        d.get(5..5 + len)
    }

    pub(crate) fn into_response(self) -> http::Response<Body> {
        let frames = [Some(http_body::Frame::data(self.data)), self.trailers.map(http_body::Frame::trailers)];
        let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames.into_iter().flatten().map(Ok::<_, Status>),
        )));
        http::Response::from_parts(self.head, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwarded_bodies_drop_empty_data_frames() {
        let frames = ["a", "", "b", ""].map(|d| Ok::<_, Status>(http_body::Frame::data(Bytes::from(d))));
        let rest = Body::new(http_body_util::StreamBody::new(futures::stream::iter(frames)));
        let mut body = request_body(encode(b"first"), Bytes::new(), Some(rest));
        let mut sizes = Vec::new();
        while let Some(frame) = body.frame().await {
            sizes.push(frame.expect("frame").into_data().expect("data").len());
        }
        assert_eq!(sizes, [10, 1, 1], "the first message, then the two non-empty frames");
    }
}
