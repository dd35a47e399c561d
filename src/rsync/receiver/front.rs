//! Per-connection front: text handshake (greeting, module, auth), argument list and setup,
//! then hand-off to the multiplexed [`session`](super::session).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::{session, ModuleSpec, Shared};
use crate::rsync::args::{needs_second_list, parse_server_args, ServerArgs, MAX_ARGS, MAX_ARG_LEN};
use crate::rsync::checksum::ChecksumKind;
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::handshake::{self, ModuleRequest, MAX_LINE, PROTOCOL_MAX};
use crate::rsync::outbox::{spawn_writer, Outbox};
use crate::rsync::wire::{get_vstring, put_varint, put_vstring};

/// `CF_VARINT_FLIST_FLAGS`: varint file-list flags and checksum negotiation.
const CF_VARINT_FLIST_FLAGS: i32 = 0x80;
/// Longest checksum list accepted from a client (rsync's own limit is 1024).
const MAX_NSTR: usize = 1024;

/// Buffered reads for the unmultiplexed phase.
pub(super) struct LineReader {
    pub rd: OwnedReadHalf,
    pub buf: BytesMut,
    pub total: usize,
}

impl LineReader {
    async fn more(&mut self) -> Result<bool> {
        let n = self.rd.read_buf(&mut self.buf).await?;
        self.total += n;
        Ok(n > 0)
    }

    /// Read up to `delim`, without it. `None` on a clean EOF before any byte of the item.
    async fn read_until(&mut self, delim: u8, max: usize) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == delim) {
                let item = self.buf[..i].to_vec();
                self.buf.advance(i + 1);
                return Ok(Some(item));
            }
            if self.buf.len() > max {
                return Err(ProtoError::Limit(format!(
                    "handshake item longer than {max} bytes"
                )));
            }
            if !self.more().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtoError::Eof("in the handshake"))
                };
            }
        }
    }

    async fn line(&mut self) -> Result<Option<String>> {
        Ok(self.read_until(b'\n', MAX_LINE).await?.map(|l| {
            let s = String::from_utf8_lossy(&l).into_owned();
            s.trim_end_matches('\r').to_string()
        }))
    }

    /// Read one vstring (still unmultiplexed).
    async fn vstring(&mut self, max: usize) -> Result<Vec<u8>> {
        loop {
            let mut c = &self.buf[..];
            match get_vstring(&mut c, max) {
                Ok(s) => {
                    let s = s.to_vec();
                    let used = self.buf.len() - c.len();
                    self.buf.advance(used);
                    return Ok(s);
                }
                Err(ProtoError::Incomplete) => {
                    if !self.more().await? {
                        return Err(ProtoError::Eof("in the checksum negotiation"));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn args(&mut self) -> Result<Vec<String>> {
        let mut v = vec![];
        loop {
            let a = self
                .read_until(0, MAX_ARG_LEN)
                .await?
                .ok_or(ProtoError::Eof("in the argument list"))?;
            if a.is_empty() {
                return Ok(v);
            }
            if v.len() >= MAX_ARGS {
                return Err(ProtoError::Limit("too many arguments".into()));
            }
            v.push(String::from_utf8_lossy(&a).into_owned());
        }
    }
}

/// Everything the handshake established.
pub(super) struct Accepted {
    pub protocol: u32,
    pub module: String,
    pub args: Result<ServerArgs>,
    pub setup: Setup,
}

/// What protocol setup settled besides the version.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Setup {
    /// `CF_VARINT_FLIST_FLAGS` was set: the file list uses varint flags.
    pub varint_flags: bool,
    /// Checksum of the file data (the sum after each file's tokens).
    pub xfer_sum: ChecksumKind,
    /// Checksum of `-c` file-list sums.
    pub file_sum: ChecksumKind,
    /// Whether `xfer_sum` was negotiated (as opposed to implied or `--checksum-choice`).
    pub negotiated: bool,
}

impl Setup {
    /// Compat flags for a client at `protocol` with these arguments: only
    /// `CF_VARINT_FLIST_FLAGS`, and only for protocol 31 clients that offer `v` (so protocol
    /// 30 and older 3.x clients keep the exact compat-0 stream with MD5).
    fn for_client(protocol: u32, args: Option<&ServerArgs>) -> Setup {
        let varint_flags = protocol >= 31 && args.is_some_and(|a| a.client_info.contains('v'));
        let (xfer_sum, file_sum) = args
            .and_then(|a| a.checksum_choice)
            .unwrap_or((ChecksumKind::Md5, ChecksumKind::Md5));
        Setup {
            varint_flags,
            xfer_sum,
            file_sum,
            negotiated: false,
        }
    }
}

enum Pre {
    /// Connect-only probe: closed without sending anything.
    Probe,
    /// Refuse with this `@ERROR` line (None: `@RSYNCD: EXIT`) and log this cause.
    Refuse(Option<String>, String),
}

impl From<ProtoError> for Pre {
    fn from(e: ProtoError) -> Self {
        let line = match e {
            ProtoError::Eof(_) | ProtoError::Io(_) => None,
            ref other => Some(other.to_string()),
        };
        Pre::Refuse(line, e.to_string())
    }
}

pub(super) async fn handle(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (out, writer) = spawn_writer(wr, 4096, 0);
    let mut lr = LineReader {
        rd,
        buf: BytesMut::with_capacity(8192),
        total: 0,
    };
    let limits = &shared.config.limits;
    let permit = shared.slots.clone().try_acquire_owned();
    let res = tokio::time::timeout(
        limits.handshake_timeout * 3,
        handshake(&mut lr, &out, &shared, permit.is_ok()),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Pre::Refuse(
            Some("timeout in the handshake".into()),
            "handshake timed out".into(),
        ))
    });
    let mut reader = None;
    match res {
        Err(Pre::Probe) => tracing::debug!("rsync receiver: {peer}: connect-only probe"),
        Err(Pre::Refuse(line, cause)) => {
            let line = match line {
                Some(l) => format!("@ERROR: {l}\n"),
                None if cause == "list" => "@RSYNCD: EXIT\n".to_string(),
                None => String::new(),
            };
            if !line.is_empty() {
                let _ = out.send_raw(line.into_bytes()).await;
            }
            if cause != "list" {
                tracing::warn!("rsync receiver: {peer}: {cause}");
            }
        }
        Ok(acc) => {
            let leftover = lr.buf.split().freeze();
            reader = Some(
                session::run(acc, peer, &shared, lr.rd, &leftover, out.clone())
                    .await
                    .into_inner(),
            );
        }
    }
    drop(out);
    let _ = writer.await;
    // Our write side is shut down; read to EOF so that closing sends no RST over our last frame.
    if let Some(mut rd) = reader {
        let mut scratch = vec![0u8; 64 * 1024];
        let drain = async { while matches!(rd.read(&mut scratch).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
    }
    drop(permit);
}

async fn handshake(
    lr: &mut LineReader,
    out: &Outbox,
    shared: &Shared,
    have_slot: bool,
) -> Result<Accepted, Pre> {
    let limits = &shared.config.limits;
    let t = limits.handshake_timeout;
    out.send_raw(handshake::greeting(PROTOCOL_MAX).into_bytes())
        .await?;
    let line = match tokio::time::timeout(t, lr.line()).await {
        Err(_) => return Err(Pre::Refuse(None, "no greeting from the client".into())),
        Ok(Ok(None)) if lr.total == 0 => return Err(Pre::Probe),
        Ok(r) => r?.ok_or(ProtoError::Eof("before the greeting"))?,
    };
    let g = handshake::parse_greeting(&line).map_err(|e| {
        Pre::Refuse(
            Some("protocol startup error".into()),
            format!("bad greeting {:?}: {e}", truncate(&line)),
        )
    })?;
    let protocol = handshake::negotiate(&g, PROTOCOL_MAX)
        .map_err(|e| Pre::Refuse(Some(e.to_string()), e.to_string()))?;
    let module = loop {
        let line = tokio::time::timeout(t, lr.line())
            .await
            .map_err(|_| ProtoError::Timeout("waiting for the module name"))??
            .ok_or(ProtoError::Eof("before the module name"))?;
        match handshake::parse_module_line(&line) {
            ModuleRequest::Module(m) => break m,
            ModuleRequest::List => return Err(Pre::Refuse(None, "list".into())),
            ModuleRequest::EarlyInput(n) => {
                while lr.buf.len() < n {
                    if !lr.more().await? {
                        return Err(ProtoError::Eof("in early input").into());
                    }
                }
                lr.buf.advance(n);
            }
            ModuleRequest::Unknown(c) => {
                return Err(Pre::Refuse(
                    Some(format!("Unknown command '{c}'")),
                    format!("unknown command `{c}`"),
                ))
            }
        }
    };
    let spec: Option<&ModuleSpec> = shared.config.modules.iter().find(|m| m.matches(&module));
    let bad_name = module.contains('/') || module == "." || module == ".." || module.contains('\0');
    let spec = match spec {
        Some(s) if !bad_name => s,
        _ => {
            return Err(Pre::Refuse(
                Some(format!("Unknown module '{module}'")),
                format!("module `{module}` unknown"),
            ))
        }
    };
    if !have_slot {
        let n = limits.max_connections;
        return Err(Pre::Refuse(
            Some(format!("max connections ({n}) reached -- try again later")),
            format!("module `{module}`: max connections ({n}) reached"),
        ));
    }
    if let Some(auth) = &spec.auth {
        let challenge = handshake::new_challenge();
        out.send_raw(format!("@RSYNCD: AUTHREQD {challenge}\n").into_bytes())
            .await?;
        let resp = tokio::time::timeout(t, lr.line())
            .await
            .map_err(|_| ProtoError::Timeout("waiting for the auth response"))??
            .ok_or(ProtoError::Eof("before the auth response"))?;
        if let Err(e) =
            handshake::check_auth_line(&resp, auth.user.as_deref(), &auth.password, &challenge)
        {
            return Err(Pre::Refuse(
                Some(format!("auth failed on module {module}")),
                format!("module `{module}`: {e}"),
            ));
        }
    }
    out.send_raw(b"@RSYNCD: OK\n".to_vec()).await?;
    let mut argv = tokio::time::timeout(t, lr.args())
        .await
        .map_err(|_| ProtoError::Timeout("waiting for arguments"))??;
    if needs_second_list(&argv) {
        let second = tokio::time::timeout(t, lr.args())
            .await
            .map_err(|_| ProtoError::Timeout("waiting for arguments"))??;
        argv.extend(second.into_iter().skip(1));
    }
    let mut args = parse_server_args(&argv);
    // Setup: compat flags (a varint; 0 is also the single byte older clients read), then,
    // with CF_VARINT_FLIST_FLAGS and no --checksum-choice, both sides' checksum lists
    // (neither side waits for the other's), then the checksum seed.
    let mut setup = Setup::for_client(protocol, args.as_ref().ok());
    let exchange = setup.varint_flags
        && args
            .as_ref()
            .is_ok_and(|a: &ServerArgs| a.checksum_choice.is_none());
    let mut bytes = vec![];
    put_varint(
        &mut bytes,
        if setup.varint_flags {
            CF_VARINT_FLIST_FLAGS
        } else {
            0
        },
    );
    if exchange {
        put_vstring(&mut bytes, ChecksumKind::offer_list().as_bytes());
    }
    let seed: i32 = rand::random::<i32>() & 0x7FFF_FFFF;
    bytes.extend_from_slice(&seed.to_le_bytes());
    out.send_raw(bytes).await?;
    if exchange {
        let theirs = tokio::time::timeout(t, lr.vstring(MAX_NSTR))
            .await
            .map_err(|_| ProtoError::Timeout("waiting for the checksum list"))??;
        let theirs = String::from_utf8_lossy(&theirs).into_owned();
        match ChecksumKind::choose(&theirs) {
            Ok(k) => {
                setup.xfer_sum = k;
                setup.file_sum = k;
                setup.negotiated = true;
            }
            // Reported by the session, after multiplexing starts.
            Err(e) => args = Err(e),
        }
    }
    Ok(Accepted {
        protocol,
        module,
        args,
        setup,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}
