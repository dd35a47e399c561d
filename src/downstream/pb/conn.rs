//! The framed protobuf connection: a reader task that turns the socket into decoded requests
//! (4-byte big-endian length, size cap, proto2 required-field check; BinlogSync acks through the
//! allocation-free [`pb_ack`](crate::formats::pb_ack) path) and a writer.

use crate::formats::pb::{self, InnerResponse};
use crate::formats::pb_ack::{self, Request};
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadEnd {
    /// The peer closed the connection.
    Closed,
    /// A read error.
    Io(std::io::Error),
    /// A frame that cannot be decoded; the text says why.
    Bad(String),
}

/// Spawns the reader: decoded requests go to the returned channel; the last message is the
/// reason reading stopped.
pub fn spawn_reader(
    mut rd: OwnedReadHalf,
    max_frame: usize,
) -> mpsc::Receiver<Result<Request, ReadEnd>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            loop {
                match pb::split_frame(&buf, max_frame) {
                    Ok(Some((body, used))) => {
                        let msg = pb_ack::decode(body).map_err(|e| ReadEnd::Bad(e.to_string()));
                        buf.advance(used);
                        let stop = msg.is_err();
                        if tx.send(msg).await.is_err() || stop {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(ReadEnd::Bad(e.to_string()))).await;
                        return;
                    }
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) => {
                    let end = if buf.is_empty() {
                        ReadEnd::Closed
                    } else {
                        ReadEnd::Bad(format!(
                            "connection closed inside a frame ({} bytes of it read)",
                            buf.len()
                        ))
                    };
                    let _ = tx.send(Err(end)).await;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(ReadEnd::Io(e))).await;
                    return;
                }
            }
        }
    });
    rx
}

/// The writing half with the peer's address for error messages.
pub struct Writer {
    wr: OwnedWriteHalf,
    /// The peer.
    pub peer: SocketAddr,
}

impl Writer {
    /// Wraps a write half.
    pub fn new(wr: OwnedWriteHalf, peer: SocketAddr) -> Self {
        Writer { wr, peer }
    }

    /// Sends one response frame.
    pub async fn send(&mut self, msg: &InnerResponse) -> std::io::Result<()> {
        self.wr.write_all(&pb::encode_frame(msg)).await
    }

    /// Sends an already encoded frame (length prefix included).
    pub async fn send_raw(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(frame).await
    }
}
