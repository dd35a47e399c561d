//! The relay's own port R. New Pika slaves connect here and close right away to learn their own
//! address before MetaSync (so R must accept); operators and tools send `PING`, `AUTH` and
//! `INFO [section]` (in Pika's layout, see [`info`]). Requests are parsed with the strict
//! [`crate::formats::resp`] parser (arrays or inline commands); replies are encoded with
//! `redis-protocol`.

pub mod info;
pub mod metrics;

use crate::formats::resp;
use bytes::{Buf, BytesMut};
use info::RelayStatus;
use redis_protocol::resp2::{encode::extend_encode, types::BytesFrame};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Produces the current status on demand.
pub type StatusFn = Arc<dyn Fn() -> RelayStatus + Send + Sync>;

/// A long-running admin command served besides PING/AUTH/INFO (e.g. `CUTOVER`): gets the
/// arguments after the command name, answers one reply.
pub type ExtraFn = Arc<
    dyn Fn(resp::Argv) -> std::pin::Pin<Box<dyn std::future::Future<Output = BytesFrame> + Send>>
        + Send
        + Sync,
>;

/// Extra admin commands by lower-case name.
pub type Extras = Arc<std::collections::HashMap<String, ExtraFn>>;

/// Largest request accepted on the admin port.
const MAX_REQUEST: usize = 64 * 1024;

/// Serves port R until cancelled.
pub async fn serve(
    listener: TcpListener,
    status: StatusFn,
    requirepass: Option<String>,
    cancel: CancellationToken,
) {
    serve_with(listener, status, requirepass, cancel, Extras::default()).await
}

/// Serves port R until cancelled, with extra commands.
pub async fn serve_with(
    listener: TcpListener,
    status: StatusFn,
    requirepass: Option<String>,
    cancel: CancellationToken,
    extras: Extras,
) {
    info!(addr = ?listener.local_addr().ok(), "admin: listening (probes, PING, AUTH, INFO)");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let status = status.clone();
                    let pass = requirepass.clone();
                    let cancel = cancel.clone();
                    let extras = extras.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            r = client(stream, peer, status, pass, extras) => if let Err(e) = r {
                                warn!("admin: client {peer}: {e}; connection closed");
                            }
                        }
                    });
                }
                Err(e) => {
                    warn!("admin: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn parse_request(buf: &[u8]) -> Result<Option<(resp::Argv, usize)>, String> {
    if buf.first() == Some(&b'*') {
        return resp::parse_argv(buf).map_err(|e| e.to_string());
    }
    // Inline command: one line of space-separated words.
    match buf.iter().position(|&b| b == b'\n') {
        None if buf.len() > MAX_REQUEST => Err("inline request line too long".into()),
        None => Ok(None),
        Some(i) => {
            let line = &buf[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let argv: resp::Argv = line
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .map(|w| w.to_vec())
                .collect();
            Ok(Some((argv, i + 1)))
        }
    }
}

async fn client(
    mut stream: TcpStream,
    peer: SocketAddr,
    status: StatusFn,
    pass: Option<String>,
    extras: Extras,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut authed = pass.is_none();
    loop {
        while let Some((argv, used)) = parse_request(&buf)? {
            buf.advance(used);
            if argv.is_empty() {
                continue;
            }
            let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
            let reply = match extras.get(&name) {
                Some(f) if authed => f(argv[1..].to_vec()).await,
                _ => answer(&argv, &status, pass.as_deref(), &mut authed),
            };
            let mut out = BytesMut::new();
            extend_encode(&mut out, &reply).map_err(|e| e.to_string())?;
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
        }
        if buf.len() > MAX_REQUEST {
            return Err(format!("request over {MAX_REQUEST} bytes"));
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                debug!("admin: {peer} closed (a slave's address probe closes at once)");
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn answer(
    argv: &resp::Argv,
    status: &StatusFn,
    pass: Option<&str>,
    authed: &mut bool,
) -> BytesFrame {
    let cmd = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let err = |s: &str| BytesFrame::Error(s.to_string().into());
    match cmd.as_str() {
        "ping" => BytesFrame::SimpleString("PONG".into()),
        "auth" => match (pass, argv.get(1)) {
            (None, _) => err("ERR Client sent AUTH, but no password is set"),
            (Some(p), Some(given)) if given.as_slice() == p.as_bytes() => {
                *authed = true;
                BytesFrame::SimpleString("OK".into())
            }
            (Some(_), Some(_)) => err("ERR invalid password"),
            (Some(_), None) => err("ERR wrong number of arguments for 'auth' command"),
        },
        _ if !*authed => err("NOAUTH Authentication required."),
        "info" => {
            let section = argv
                .get(1)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .unwrap_or_default();
            BytesFrame::BulkString(info::render(&section, &status()).into_bytes().into())
        }
        other => err(&format!(
            "ERR unknown command '{}' (the relay answers PING, AUTH, INFO)",
            resp::escape(other.as_bytes())
        )),
    }
}
