//! Body wrappers: the request body replays what was read ahead to find the
//! repository and counts received messages; the response body counts sent
//! messages, captures the final status from the trailers and reports once
//! when the call is over (or the client went away).

use bytes::{Buf as _, Bytes};
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body as TonicBody;

/// Counts gRPC messages in a byte stream by their 5-byte frame headers
/// (compression flag + big-endian length).
#[derive(Debug, Default)]
pub(crate) struct FrameCounter {
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
}

impl FrameCounter {
    /// Feeds bytes, returning how many messages started in them.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut started = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(data.len());
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                started += 1;
                self.remaining =
                    u64::from(u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]));
                self.header_len = 0;
            }
        }
        started
    }
}

/// Reads ahead until the first complete gRPC message of `body` is buffered
/// (or the body ends, or `max_len` would be exceeded). Returns the frames
/// read and the first message's bytes, if it was complete and uncompressed.
pub(crate) async fn read_first_message(
    body: &mut TonicBody,
    max_len: usize,
) -> (VecDeque<Frame<Bytes>>, Option<Bytes>, bool) {
    use http_body_util::BodyExt as _;
    let mut frames = VecDeque::new();
    let mut data = Vec::new();
    loop {
        if data.len() >= 5 {
            let compressed = data[0] != 0;
            let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
            if compressed || len > max_len {
                return (frames, None, false);
            }
            if data.len() >= 5 + len {
                return (frames, Some(Bytes::copy_from_slice(&data[5..5 + len])), false);
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    data.extend_from_slice(d.chunk());
                }
                frames.push_back(frame);
            }
            // Errors surface again when the service reads the body.
            Some(Err(_)) | None => return (frames, None, true),
        }
    }
}

pin_project_lite::pin_project! {
    /// The request body as the service sees it.
    pub(crate) struct InboundBody {
        replay: VecDeque<Frame<Bytes>>,
        #[pin]
        inner: TonicBody,
        ended: bool,
        frames: FrameCounter,
        on_message: Option<prometheus_client::metrics::counter::Counter>,
    }
}

impl InboundBody {
    pub(crate) fn new(
        replay: VecDeque<Frame<Bytes>>,
        inner: TonicBody,
        ended: bool,
        on_message: Option<prometheus_client::metrics::counter::Counter>,
    ) -> Self {
        Self { replay, inner, ended, frames: FrameCounter::default(), on_message }
    }
}

impl Body for InboundBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        let next = if let Some(f) = this.replay.pop_front() {
            Poll::Ready(Some(Ok(f)))
        } else if *this.ended {
            Poll::Ready(None)
        } else {
            this.inner.poll_frame(cx)
        };
        if let Poll::Ready(Some(Ok(frame))) = &next
            && let Some(d) = frame.data_ref()
        {
            let n = this.frames.feed(d.chunk());
            if let Some(c) = this.on_message {
                c.inc_by(n);
            }
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.replay.is_empty() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Called exactly once when a response is over.
pub(crate) trait OnFinish: Send + 'static {
    /// `status` is the final grpc-status and message, or `None` when the
    /// stream ended without one (the client went away).
    fn finish(self: Box<Self>, status: Option<(i32, String)>, sent_messages: u64);
}

pin_project_lite::pin_project! {
    /// The response body, observed.
    pub(crate) struct ObservedBody {
        #[pin]
        inner: TonicBody,
        frames: FrameCounter,
        sent: u64,
        status: Option<(i32, String)>,
        on_finish: Option<Box<dyn OnFinish>>,
    }

    impl PinnedDrop for ObservedBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.on_finish.take() {
                f.finish(this.status.take(), *this.sent);
            }
        }
    }
}

impl ObservedBody {
    /// `status` is the status already known from trailers-only headers.
    pub(crate) fn new(inner: TonicBody, status: Option<(i32, String)>, on_finish: Box<dyn OnFinish>) -> Self {
        Self { inner, frames: FrameCounter::default(), sent: 0, status, on_finish: Some(on_finish) }
    }
}

/// grpc-status and the decoded grpc-message from a header map.
pub(crate) fn status_of(headers: &http::HeaderMap) -> Option<(i32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers.get("grpc-message").and_then(|m| m.to_str().ok()).map(percent_decode).unwrap_or_default();
    Some((code, message))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a grpc-message value as the gRPC spec asks.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        let next = this.inner.poll_frame(cx);
        match &next {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    *this.sent += this.frames.feed(d.chunk());
                } else if let Some(s) = frame.trailers_ref().and_then(status_of) {
                    *this.status = Some(s);
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = this.on_finish.take() {
                    // A stream that ends without any status was answered OK
                    // only if the status came earlier (trailers-only).
                    f.finish(this.status.take().or(Some((0, String::new()))), *this.sent);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_frames_across_chunk_boundaries() {
        let mut msgs = Vec::new();
        for len in [0u32, 3, 70000] {
            msgs.push(0u8);
            msgs.extend_from_slice(&len.to_be_bytes());
            msgs.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for chunk in [1, 2, 5, 7, 4096, msgs.len()] {
            let mut c = FrameCounter::default();
            let n: u64 = msgs.chunks(chunk).map(|p| c.feed(p)).sum();
            assert_eq!(n, 3, "chunk size {chunk}");
        }
    }

    #[test]
    fn grpc_message_encoding() {
        assert_eq!(percent_encode("method X not implemented"), "method X not implemented");
        assert_eq!(percent_encode("100% é\n"), "100%25 %C3%A9%0A");
        assert_eq!(percent_decode("100%25 %C3%A9%0A"), "100% é\n");
        assert_eq!(percent_decode("bad %zz %"), "bad %zz %");
    }
}
