//! The heartbeat to the master's port+2000 (spec §4): `spci <sid>` once, then `ping` every
//! second; each reply must be `+OK` / `+PONG` (case-insensitive). The master deletes us (and stops
//! our binlog sender) after 20 s of silence, so a lost heartbeat means the session is over.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::config::Timings;
use crate::formats::resp::{encode_argv, parse_reply, Reply};

/// Runs the heartbeat for `sid` until it fails; returns why (for the log line). Cancel by
/// dropping the future (that closes the socket, which tells the master we left).
pub async fn run(addr: SocketAddr, sid: u32, t: &Timings) -> String {
    let mut sock = match timeout(t.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return format!("cannot connect to the master's heartbeat port {addr}: {e}"),
        Err(_) => return format!("connecting to the master's heartbeat port {addr} timed out"),
    };
    let _ = sock.set_nodelay(true);
    let mut msg = encode_argv(&[b"spci".as_ref(), sid.to_string().as_bytes()]);
    let ping = encode_argv(&[b"ping".as_ref()]);
    let mut last_ok = Instant::now();
    let mut buf = Vec::with_capacity(64);
    loop {
        match exchange(&mut sock, &msg, &mut buf, t).await {
            Ok(Some(reply)) => {
                let text = match &reply {
                    Reply::Simple(s) | Reply::Error(s) => s.to_ascii_lowercase(),
                    _ => String::new(),
                };
                if text != "ok" && text != "pong" {
                    return format!("master {addr} answered the heartbeat with {reply:?} (expected +OK / +PONG)");
                }
                last_ok = Instant::now();
            }
            Ok(None) => {
                if last_ok.elapsed() > t.ping_dead_after {
                    return format!(
                        "no heartbeat reply from master {addr} for {:?}",
                        last_ok.elapsed()
                    );
                }
            }
            Err(e) => return format!("heartbeat to master {addr} failed: {e}"),
        }
        msg.clone_from(&ping);
        tokio::time::sleep(t.ping_interval).await;
    }
}

/// Sends one message and reads one reply. `Ok(None)` = timed out (tolerated for a while).
async fn exchange(
    sock: &mut TcpStream,
    msg: &[u8],
    buf: &mut Vec<u8>,
    t: &Timings,
) -> std::io::Result<Option<Reply>> {
    match timeout(t.ping_io_timeout, sock.write_all(msg)).await {
        Ok(r) => r?,
        Err(_) => return Ok(None),
    }
    let deadline = tokio::time::Instant::now() + t.ping_io_timeout;
    loop {
        match parse_reply(buf) {
            Ok(Some((r, used))) => {
                buf.drain(..used);
                return Ok(Some(r));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                ))
            }
        }
        let mut chunk = [0u8; 512];
        match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
            Err(_) => return Ok(None),
            Ok(Ok(0)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed by the master",
                ))
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
}
