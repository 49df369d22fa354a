//! Client side of the RPCs that carry a process's stdio (SSH and hook
//! RPCs): the request stream built from stdin, and the parts of each answer.

use cairn_proto::gitaly::{
    PostReceiveHookResponse, PreReceiveHookResponse, ReferenceTransactionHookResponse, SshReceivePackResponse,
    SshUploadArchiveResponse, SshUploadPackResponse, UpdateHookResponse,
};
use futures::StreamExt as _;
use tokio::io::AsyncRead;

/// The request stream of a bidi stdio RPC: `first`, then stdin in chunks.
pub fn requests<T: Send + 'static>(
    first: T,
    stdin: impl AsyncRead + Send + 'static,
    chunk: fn(Vec<u8>) -> T,
) -> impl futures::Stream<Item = T> + Send + 'static {
    let reader = tokio_util::io::ReaderStream::with_capacity(stdin, 64 * 1024);
    let rest = tokio_stream::StreamExt::map_while(reader, Result::ok).map(move |b| chunk(b.to_vec()));
    futures::stream::once(async move { first }).chain(rest)
}

/// An answer carrying stdout, stderr and maybe an exit status.
pub trait StdioResponse {
    fn parts(self) -> (Vec<u8>, Vec<u8>, Option<i32>);
}

macro_rules! stdio_response {
    ($($t:ty),*) => {$(
        impl StdioResponse for $t {
            fn parts(self) -> (Vec<u8>, Vec<u8>, Option<i32>) {
                (self.stdout, self.stderr, self.exit_status.map(|s| s.value))
            }
        }
    )*};
}
stdio_response!(
    SshUploadPackResponse,
    SshReceivePackResponse,
    SshUploadArchiveResponse,
    PreReceiveHookResponse,
    PostReceiveHookResponse,
    UpdateHookResponse,
    ReferenceTransactionHookResponse
);
