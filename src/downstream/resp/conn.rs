//! One connection to a Redis-protocol target: connect, `AUTH`, `SELECT`, pipelined writes of
//! encoded commands and reading replies in order. It owns its buffers; nothing else touches the
//! socket.

use super::url::TargetUrl;
use crate::formats::resp::{encode_argv_into, parse_reply, Argv, Reply};
use bytes::{Buf, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The link is gone or the target is silent: reconnect and resume.
    #[error("{0}")]
    Lost(String),
    /// The target refused us (`AUTH`, `SELECT`): retrying will not help until an operator acts.
    #[error("{0}")]
    Refused(String),
}

/// A connection.
pub struct RespConn {
    stream: TcpStream,
    rbuf: BytesMut,
    /// `redis://host:port/db` without the password, for messages.
    pub name: String,
    timeout: Duration,
}

fn lost(name: &str, what: &str, e: impl std::fmt::Display) -> ConnError {
    ConnError::Lost(format!("{name}: {what}: {e}"))
}

impl RespConn {
    /// Connects, authenticates and selects the database. `timeout` bounds the connect and every
    /// later wait for a reply.
    pub async fn connect(url: &TargetUrl, timeout: Duration) -> Result<RespConn, ConnError> {
        let name = url.to_string();
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&url.addr))
            .await
            .map_err(|_| lost(&name, "connect", "timed out"))?
            .map_err(|e| lost(&name, "connect", e))?;
        let _ = stream.set_nodelay(true);
        let mut c = RespConn {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            name,
            timeout,
        };
        if let Some(p) = &url.password {
            let mut a: Argv = vec![b"AUTH".to_vec()];
            if let Some(u) = &url.user {
                a.push(u.as_bytes().to_vec());
            }
            a.push(p.as_bytes().to_vec());
            if let Reply::Error(e) = c.call(&a).await? {
                return Err(ConnError::Refused(format!(
                    "{}: AUTH refused: {e}; check the user and password in the target URL",
                    c.name
                )));
            }
        }
        if url.db != 0 {
            let a: Argv = vec![b"SELECT".to_vec(), url.db.to_string().into_bytes()];
            if let Reply::Error(e) = c.call(&a).await? {
                return Err(ConnError::Refused(format!(
                    "{}: SELECT {} refused: {e}",
                    c.name, url.db
                )));
            }
        }
        Ok(c)
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, argv: &Argv) -> Result<Reply, ConnError> {
        let mut buf = Vec::new();
        encode_argv_into(argv, &mut buf);
        self.send(&buf).await?;
        self.reply().await
    }

    /// Writes encoded commands.
    pub async fn send(&mut self, buf: &[u8]) -> Result<(), ConnError> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(buf)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(lost(&self.name, "write", e)),
            Err(_) => Err(lost(&self.name, "write", "timed out (target not reading)")),
        }
    }

    /// Reads the next reply.
    pub async fn reply(&mut self) -> Result<Reply, ConnError> {
        loop {
            match parse_reply(&self.rbuf) {
                Ok(Some((r, used))) => {
                    self.rbuf.advance(used);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(lost(&self.name, "bad reply", e)),
            }
            self.rbuf.reserve(64 * 1024);
            match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) => {
                    return Err(lost(&self.name, "read", "connection closed by the target"))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(lost(&self.name, "read", e)),
                Err(_) => {
                    return Err(lost(
                        &self.name,
                        "read",
                        format!("no reply in {:?}", self.timeout),
                    ))
                }
            }
        }
    }

    /// The longest wait for a reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Replies received and not yet consumed.
    pub fn rbuf(&self) -> &[u8] {
        &self.rbuf
    }

    /// Drops `n` bytes of [`RespConn::rbuf`] (replies handled).
    pub fn consume(&mut self, n: usize) {
        self.rbuf.advance(n);
    }

    /// Reads more replies into [`RespConn::rbuf`], failing at `deadline` if one is given.
    /// Cancel-safe.
    pub async fn fill(&mut self, deadline: Option<tokio::time::Instant>) -> Result<(), ConnError> {
        if self.rbuf.capacity() - self.rbuf.len() < 16 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        let read = self.stream.read_buf(&mut self.rbuf);
        let r = match deadline {
            Some(d) => tokio::time::timeout_at(d, read).await,
            None => Ok(read.await),
        };
        match r {
            Ok(Ok(0)) => Err(lost(&self.name, "read", "connection closed by the target")),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(lost(&self.name, "read", e)),
            Err(_) => Err(lost(
                &self.name,
                "read",
                format!("no reply in {:?}", self.timeout),
            )),
        }
    }

    /// Whether the target runs `MULTI`/`EXEC` (Redis, Pika 3.5+; not Pika ≤ 3.4, not Codis).
    pub async fn supports_multi(&mut self) -> Result<bool, ConnError> {
        match self.call(&vec![b"MULTI".to_vec()]).await? {
            Reply::Simple(_) => {
                self.call(&vec![b"DISCARD".to_vec()]).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
