//! A small pipelined Redis-protocol client for `verify` and `cutover`: connect (with a timeout),
//! `AUTH`, then send a batch of commands in one write and read their replies in order.

use crate::formats::resp::{encode_argv_into, escape, parse_reply, Reply};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One command: its arguments.
pub type Cmd = Vec<Vec<u8>>;

/// Builds a command from string-like arguments.
pub fn cmd<A: AsRef<[u8]>>(args: &[A]) -> Cmd {
    args.iter().map(|a| a.as_ref().to_vec()).collect()
}

/// A connection to a Redis-protocol server (Pika or Redis).
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// `host:port`, for messages.
    pub peer: String,
    io_timeout: Duration,
}

impl Conn {
    /// Connects to `addr` within `timeout` and authenticates with `auth` when given. Every later
    /// request must answer within `timeout` too.
    pub async fn connect(
        addr: &str,
        auth: Option<&str>,
        timeout: Duration,
    ) -> Result<Conn, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: no connection within {timeout:?}"))?
            .map_err(|e| format!("{addr}: connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut c = Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            peer: addr.to_string(),
            io_timeout: timeout,
        };
        if let Some(pw) = auth {
            match c.one(cmd(&["auth", pw])).await? {
                Reply::Simple(_) => {}
                Reply::Error(e) => return Err(format!("{addr}: AUTH refused: {e}")),
                other => return Err(format!("{addr}: AUTH answered {other:?}")),
            }
        }
        Ok(c)
    }

    /// Sends one command and reads its reply.
    pub async fn one(&mut self, c: Cmd) -> Result<Reply, String> {
        let mut r = self.pipeline(&[c]).await?;
        Ok(r.pop().expect("one reply per command"))
    }

    /// Sends every command in one write, then reads one reply per command, in order.
    pub async fn pipeline(&mut self, cmds: &[Cmd]) -> Result<Vec<Reply>, String> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for c in cmds {
            encode_argv_into(c, &mut out);
        }
        let peer = self.peer.clone();
        tokio::time::timeout(self.io_timeout, self.stream.write_all(&out))
            .await
            .map_err(|_| format!("{peer}: write timed out"))?
            .map_err(|e| format!("{peer}: write: {e}"))?;
        let mut replies = Vec::with_capacity(cmds.len());
        let mut pos = 0;
        while replies.len() < cmds.len() {
            match parse_reply(&self.buf[pos..]) {
                Ok(Some((r, used))) => {
                    pos += used;
                    replies.push(r);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{peer}: bad reply: {e}")),
            }
            self.buf.drain(..pos);
            pos = 0;
            let mut chunk = [0u8; 64 * 1024];
            let n = tokio::time::timeout(self.io_timeout, self.stream.read(&mut chunk))
                .await
                .map_err(|_| format!("{peer}: no reply within {:?}", self.io_timeout))?
                .map_err(|e| format!("{peer}: read: {e}"))?;
            if n == 0 {
                return Err(format!("{peer}: connection closed by the server"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        self.buf.drain(..pos);
        Ok(replies)
    }
}

/// The reply as text for messages (bulk bytes escaped).
pub fn show(r: &Reply) -> String {
    match r {
        Reply::Simple(s) => s.clone(),
        Reply::Error(e) => format!("error {e:?}"),
        Reply::Integer(n) => n.to_string(),
        Reply::Bulk(None) | Reply::Array(None) => "nil".into(),
        Reply::Bulk(Some(b)) => format!("\"{}\"", escape(b)),
        Reply::Array(Some(v)) => format!("[{}]", v.iter().map(show).collect::<Vec<_>>().join(", ")),
    }
}
