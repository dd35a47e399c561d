//! One client connection: handshake, file list, answering the daemon's requests with
//! literal data, and the sender's side of the end-of-run choreography.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::local::LocalEntry;
use super::{PushStats, SendProgress, SenderConfig};
use crate::rsync::checksum::{ChecksumKind, FileSum};
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::encode_entry;
use crate::rsync::handshake::{self, MAX_LINE};
use crate::rsync::mux::{tag, Control, MuxReader};
use crate::rsync::ndx::{NdxState, NDX_DEL_STATS, NDX_DONE};
use crate::rsync::outbox::{spawn_writer, Outbox};
use crate::rsync::token::{encode_end, encode_literal};
use crate::rsync::wire::{
    get_i32, get_u16, get_u8, get_varint, get_vstring, put_i32, put_u16, put_vstring, take,
    var_extra_bytes,
};

const ITEM_TRANSFER: u16 = 0x8000;
const ITEM_BASIS_TYPE_FOLLOWS: u16 = 0x0800;
const ITEM_XNAME_FOLLOWS: u16 = 0x1000;
const CF_INC_RECURSE: i32 = 0x01;
const CF_VARINT_FLIST_FLAGS: i32 = 0x80;
const READ_CHUNK: usize = 256 * 1024;

/// Unmultiplexed reads before setup.
struct PreReader {
    rd: OwnedReadHalf,
    buf: BytesMut,
}

impl PreReader {
    async fn fill(&mut self, n: usize) -> Result<()> {
        while self.buf.len() < n {
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Err(ProtoError::Eof("during the daemon handshake"));
            }
        }
        Ok(())
    }

    async fn line(&mut self) -> Result<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l = String::from_utf8_lossy(&self.buf[..i])
                    .trim_end_matches('\r')
                    .to_string();
                self.buf.advance(i + 1);
                return Ok(l);
            }
            if self.buf.len() > MAX_LINE {
                return Err(ProtoError::Limit("daemon line too long".into()));
            }
            let n = self.buf.len() + 1;
            self.fill(n).await?;
        }
    }
}

/// Run one push over a new connection.
pub(super) async fn push(
    cfg: &SenderConfig,
    entries: Vec<LocalEntry>,
    target: &str,
    delete: bool,
) -> Result<PushStats> {
    let stream = tokio::time::timeout(cfg.timeout, TcpStream::connect(cfg.addr))
        .await
        .map_err(|_| ProtoError::Timeout("connecting to the rsync daemon"))??;
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let mut pre = PreReader {
        rd,
        buf: BytesMut::with_capacity(4096),
    };
    let t = cfg.timeout;
    let within = |what: &'static str| move |_| ProtoError::Timeout(what);

    // Phase A: greetings, module, auth.
    wr.write_all(handshake::greeting(cfg.protocol).as_bytes())
        .await?;
    let g = tokio::time::timeout(t, pre.line())
        .await
        .map_err(within("waiting for the greeting"))??;
    let g = handshake::parse_greeting(&g)
        .map_err(|_| ProtoError::invalid(format!("daemon sent {g:?} rather than a greeting")))?;
    let protocol = handshake::negotiate(&g, cfg.protocol)?;
    let module = target.split('/').next().unwrap_or_default();
    wr.write_all(format!("{module}\n").as_bytes()).await?;
    loop {
        let l = tokio::time::timeout(t, pre.line())
            .await
            .map_err(within("waiting for the daemon"))??;
        if l == "@RSYNCD: OK" {
            break;
        } else if let Some(ch) = l.strip_prefix("@RSYNCD: AUTHREQD ") {
            let user = cfg.user.clone().unwrap_or_else(|| "nobody".into());
            let pass = cfg.password.clone().unwrap_or_default();
            wr.write_all(format!("{user} {}\n", handshake::auth_response(&pass, ch)).as_bytes())
                .await?;
        } else if let Some(e) = l.strip_prefix("@ERROR") {
            return Err(ProtoError::Peer(format!(
                "daemon refused: {}",
                e.trim_start_matches(':').trim()
            )));
        } else if l == "@RSYNCD: EXIT" {
            return Err(ProtoError::Peer("daemon closed the session".into()));
        } else {
            tracing::info!("rsync sender: daemon says: {l}");
        }
    }

    // Phase B: arguments, then setup.
    let mut args: Vec<&str> = vec!["--server", "-rtpWe.LsfxC"];
    if delete {
        args.push("--delete");
    }
    args.extend([".", target, ""]);
    let mut argbuf = vec![];
    for a in args {
        argbuf.extend_from_slice(a.as_bytes());
        argbuf.push(0);
    }
    wr.write_all(&argbuf).await?;
    tokio::time::timeout(t, pre.fill(1))
        .await
        .map_err(within("waiting for setup"))??;
    let need = 1 + var_extra_bytes(pre.buf[0]);
    pre.fill(need).await?;
    let compat = get_varint(&mut &pre.buf[..need])?;
    pre.buf.advance(need);
    if compat & (CF_INC_RECURSE | CF_VARINT_FLIST_FLAGS) != 0 {
        return Err(ProtoError::Unsupported(format!(
            "daemon chose compat flags {compat:#x}"
        )));
    }
    pre.fill(4).await?;
    let _seed = get_i32(&mut &pre.buf[..4])?;
    pre.buf.advance(4);

    let mut rd = MuxReader::new(pre.rd, &pre.buf);
    rd.idle_timeout = Some(t.max(Duration::from_secs(30)));
    let (out, writer) = spawn_writer(wr, 64, cfg.bwlimit);
    let mut s = Sender {
        cfg,
        protocol,
        rd,
        out,
        wndx: NdxState::default(),
        rndx: NdxState::default(),
        errors: vec![],
        stats: PushStats::default(),
        progress: SendProgress {
            target: target.into(),
            ..Default::default()
        },
        last: Instant::now(),
    };
    let res = s.run(&entries, delete).await;
    let Sender {
        rd,
        out,
        errors,
        stats,
        ..
    } = s;
    drop(out);
    let _ = writer.await;
    let mut inner = rd.into_inner();
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while matches!(inner.read(&mut scratch).await, Ok(n) if n > 0) {}
    })
    .await;
    match res {
        Ok(()) if errors.is_empty() => Ok(stats),
        Ok(()) => Err(ProtoError::Peer(errors.join("; "))),
        Err(e) if errors.is_empty() => Err(e),
        Err(e) => Err(ProtoError::Peer(format!(
            "{e}; daemon said: {}",
            errors.join("; ")
        ))),
    }
}

struct Sender<'a> {
    cfg: &'a SenderConfig,
    protocol: u32,
    rd: MuxReader<OwnedReadHalf>,
    out: Outbox,
    wndx: NdxState,
    rndx: NdxState,
    errors: Vec<String>,
    stats: PushStats,
    progress: SendProgress,
    last: Instant,
}

impl Sender<'_> {
    async fn run(&mut self, entries: &[LocalEntry], delete: bool) -> Result<()> {
        let mut msg = vec![];
        if delete {
            put_i32(&mut msg, 0); // empty filter list
        }
        for (i, e) in entries.iter().enumerate() {
            encode_entry(&mut msg, &e.entry, i == 0 && e.entry.name == b".");
            self.progress.total_bytes += e.entry.size as u64;
        }
        msg.push(0);
        self.out.send(tag::DATA, msg).await?;
        self.stats.listed = entries.len() as u64;

        let mut phase = 0;
        loop {
            let ndx = self.read_ndx().await?;
            if ndx == NDX_DONE {
                phase += 1;
                if phase > 2 {
                    break;
                }
                self.out.send(tag::DATA, vec![0]).await?;
                continue;
            }
            self.answer(entries, ndx).await?;
        }
        self.out.send(tag::DATA, vec![0]).await?;
        // Final goodbye: at protocol 31 the daemon sends DONE, we echo, it sends DONE again.
        let mut n = self.read_ndx().await?;
        if self.protocol >= 31 && n == NDX_DONE {
            self.out.send(tag::DATA, vec![0]).await?;
            n = self.read_ndx().await?;
        }
        if n != NDX_DONE {
            return Err(ProtoError::invalid(format!(
                "invalid packet at end of run ({n})"
            )));
        }
        self.report();
        self.out.flush().await
    }

    fn report(&mut self) {
        self.last = Instant::now();
        if let Some(cb) = &self.cfg.progress {
            cb(&self.progress);
        }
    }

    /// Next ndx, skipping delete statistics and handling daemon messages.
    async fn read_ndx(&mut self) -> Result<i32> {
        loop {
            let st = &mut self.rndx;
            let n = self.rd.decode(8, |c| st.decode(c)).await?;
            self.controls().await?;
            if n == NDX_DEL_STATS {
                self.rd
                    .decode(32, |c| (0..5).try_for_each(|_| get_varint(c).map(|_| ())))
                    .await?;
                continue;
            }
            return Ok(n);
        }
    }

    async fn controls(&mut self) -> Result<()> {
        while let Some(c) = self.rd.controls.pop_front() {
            match c {
                Control::Text(t, m) if t == tag::INFO => {
                    tracing::debug!("rsync sender: daemon: {m}")
                }
                Control::Text(_, m) => {
                    tracing::warn!("rsync sender: daemon: {m}");
                    self.errors.push(m);
                }
                Control::ErrorExit(Some(code)) => {
                    let _ = self.out.send(tag::ERROR_EXIT, vec![]).await;
                    return Err(ProtoError::Peer(format!("daemon exited with code {code}")));
                }
                Control::Deleted(p) => tracing::debug!(
                    "rsync sender: daemon deleted {}",
                    String::from_utf8_lossy(&p)
                ),
                _ => {}
            }
        }
        Ok(())
    }

    /// Answer one request from the daemon's generator.
    async fn answer(&mut self, entries: &[LocalEntry], ndx: i32) -> Result<()> {
        let e = usize::try_from(ndx)
            .ok()
            .and_then(|i| entries.get(i))
            .ok_or_else(|| ProtoError::invalid(format!("daemon requested unknown index {ndx}")))?;
        let iflags = self.rd.decode(2, get_u16).await?;
        let mut echo = vec![];
        self.wndx.encode(&mut echo, ndx);
        put_u16(&mut echo, iflags);
        if iflags & ITEM_BASIS_TYPE_FOLLOWS != 0 {
            echo.push(self.rd.decode(1, get_u8).await?);
        }
        if iflags & ITEM_XNAME_FOLLOWS != 0 {
            let x = self
                .rd
                .decode(0x8002, |c| get_vstring(c, 0x7FFF).map(<[u8]>::to_vec))
                .await?;
            put_vstring(&mut echo, &x);
        }
        if iflags & ITEM_TRANSFER == 0 {
            return self.out.send(tag::DATA, echo).await;
        }
        if !e.entry.is_file() {
            return Err(ProtoError::invalid(format!(
                "daemon requested non-regular file `{}`",
                e.entry.display()
            )));
        }
        let head = self
            .rd
            .decode(16, |c| take(c, 16).map(<[u8]>::to_vec))
            .await?;
        let mut h = &head[..];
        let (count, _blen, s2len) = (get_i32(&mut h)?, get_i32(&mut h)?, get_i32(&mut h)?);
        if !(0..=1 << 24).contains(&count) || !(0..=64).contains(&s2len) {
            return Err(ProtoError::invalid("bad checksum header from daemon"));
        }
        // Block sums for a basis file: we send everything as literal data, so skip them.
        for _ in 0..count {
            let n = 4 + s2len as usize;
            self.rd.decode(n, |c| take(c, n).map(|_| ())).await?;
        }
        let mut file = match tokio::fs::File::open(&e.path).await {
            Ok(f) => f,
            Err(err) => {
                tracing::warn!("rsync sender: cannot open {}: {err}", e.path.display());
                self.out
                    .send(tag::NO_SEND, ndx.to_le_bytes().to_vec())
                    .await?;
                self.errors
                    .push(format!("cannot open {}: {err}", e.path.display()));
                return Ok(());
            }
        };
        echo.extend_from_slice(&head);
        self.out.send(tag::DATA, echo).await?;
        let mut sum = FileSum::new(self.protocol, ChecksumKind::Md5)?;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            sum.update(&buf[..n]);
            let mut msg = Vec::with_capacity(n + n / 8192 + 8);
            encode_literal(&mut msg, &buf[..n]);
            self.out.send(tag::DATA, msg).await?;
            self.progress.bytes += n as u64;
            self.stats.bytes += n as u64;
            if self.last.elapsed() >= Duration::from_millis(500) {
                self.report();
            }
        }
        let mut tail = vec![];
        encode_end(&mut tail);
        tail.extend_from_slice(&sum.finish());
        self.out.send(tag::DATA, tail).await?;
        self.stats.files += 1;
        self.progress.files += 1;
        Ok(())
    }
}
