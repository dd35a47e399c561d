//! The write half of a multiplexed connection, run as its own task.
//!
//! Reading and writing must proceed independently (a peer blocked on writing to us does not
//! read, so a single task that writes before it reads can deadlock); protocol code therefore
//! queues payloads here and a writer task frames and sends them, with an optional bandwidth
//! limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::error::{ProtoError, Result};
use super::mux::{encode_header, MAX_FRAME};

enum Item {
    Frame(u8, Vec<u8>),
    Raw(Vec<u8>),
    Flush(oneshot::Sender<()>),
}

/// Handle used by protocol code to queue outgoing frames.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Item>,
}

impl Outbox {
    /// Queue one message (split into frames as needed).
    pub async fn send(&self, tag: u8, payload: Vec<u8>) -> Result<()> {
        self.tx
            .send(Item::Frame(tag, payload))
            .await
            .map_err(|_| ProtoError::Eof("while writing"))
    }

    /// Queue raw (unframed) bytes, used before multiplexing starts.
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<()> {
        self.tx
            .send(Item::Raw(bytes))
            .await
            .map_err(|_| ProtoError::Eof("while writing"))
    }

    /// Wait until everything queued so far has been written to the socket.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Item::Flush(tx))
            .await
            .map_err(|_| ProtoError::Eof("while writing"))?;
        rx.await.map_err(|_| ProtoError::Eof("while writing"))
    }
}

/// Simple token-bucket pacing: at most `rate` bytes per second, 100 ms burst.
struct Pacer {
    rate: u64,
    start: Instant,
    sent: u64,
}

impl Pacer {
    async fn pace(&mut self, n: usize) {
        if self.rate == 0 {
            return;
        }
        self.sent += n as u64;
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed + Duration::from_millis(100) {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Spawn the writer task. `capacity` bounds the queue (in messages); `bwlimit` is bytes per
/// second (0 = unlimited). The task ends when every [`Outbox`] is dropped; it then flushes,
/// shuts the write side down and returns the writer.
pub fn spawn_writer<W>(w: W, capacity: usize, bwlimit: u64) -> (Outbox, JoinHandle<Result<W>>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Item>(capacity.max(1));
    let task = tokio::spawn(async move {
        let mut w = BufWriter::with_capacity(256 * 1024, w);
        let mut pacer = Pacer {
            rate: bwlimit,
            start: Instant::now(),
            sent: 0,
        };
        while let Some(item) = rx.recv().await {
            match item {
                Item::Frame(tag, payload) => {
                    if payload.is_empty() {
                        w.write_all(&encode_header(tag, 0)).await?;
                    }
                    for chunk in payload.chunks(MAX_FRAME) {
                        w.write_all(&encode_header(tag, chunk.len())).await?;
                        w.write_all(chunk).await?;
                        pacer.pace(chunk.len() + 4).await;
                    }
                }
                Item::Raw(bytes) => w.write_all(&bytes).await?,
                Item::Flush(done) => {
                    w.flush().await?;
                    let _ = done.send(());
                    continue;
                }
            }
            if rx.is_empty() {
                w.flush().await?;
            }
        }
        w.flush().await?;
        let mut inner = w.into_inner();
        let _ = inner.shutdown().await;
        Ok(inner)
    });
    (Outbox { tx }, task)
}
