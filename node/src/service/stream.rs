//! Streaming answers produced by blocking code (gix is synchronous).
//!
//! A producer runs on the blocking pool and hands messages to the RPC
//! through a small bounded channel, so a slow client slows the producer
//! down instead of letting responses pile up in memory. When the client
//! goes away, the next send fails and the producer stops.

use crate::error::{Error, Result};
use tonic::codegen::BoxStream;

/// Messages in flight between producer and client.
const DEPTH: usize = 4;

/// Where a producer sends messages.
#[derive(Debug)]
pub(crate) struct Sink<T> {
    tx: tokio::sync::mpsc::Sender<tonic::Result<T>>,
}

impl<T> Sink<T> {
    /// Sends one message, waiting while the client is behind. Fails once
    /// the client has gone away; producers return that error.
    pub(crate) fn send(&self, msg: T) -> Result<()> {
        self.tx.blocking_send(Ok(msg)).map_err(|_| Error::canceled("client went away"))
    }
}

/// Runs `produce` on the blocking pool and streams what it sends. An error
/// it returns ends the stream with that status.
pub(crate) fn blocking_stream<T: Send + 'static>(
    produce: impl FnOnce(&Sink<T>) -> Result<()> + Send + 'static,
) -> BoxStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || {
        let sink = Sink { tx };
        if let Err(e) = produce(&sink) {
            let _ = sink.tx.blocking_send(Err(e.into()));
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Upstream's batching of list answers: items are gathered into one message
/// until the next would take it past 1 MiB.
pub(crate) struct Chunker<'a, I, M> {
    sink: &'a Sink<M>,
    items: Vec<I>,
    size: usize,
    /// Builds each message; a closure so the first message can carry
    /// extra fields.
    make: Box<dyn FnMut(Vec<I>) -> M + 'a>,
}

/// Encoded size limit of one batched message.
const MAX_BATCH: usize = 1024 * 1024;

impl<'a, I: prost::Message, M> Chunker<'a, I, M> {
    pub(crate) fn new(sink: &'a Sink<M>, make: impl FnMut(Vec<I>) -> M + 'a) -> Self {
        Self { sink, items: Vec::new(), size: 0, make: Box::new(make) }
    }

    /// Adds an item, sending the batch first if the item would overflow it.
    pub(crate) fn push(&mut self, item: I) -> Result<()> {
        let len = item.encoded_len();
        if !self.items.is_empty() && self.size + len >= MAX_BATCH {
            self.flush()?;
        }
        self.size += len;
        self.items.push(item);
        Ok(())
    }

    /// Sends what is gathered, if anything.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        self.size = 0;
        self.sink.send((self.make)(std::mem::take(&mut self.items)))
    }
}
