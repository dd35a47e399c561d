//! The binlog receiver on the relay's port R+1000. The master connects here and pushes its
//! binlog; nothing is ever written back. Each connection must first authenticate with the sid of
//! the current session (`auth <sid>`); then records are decoded (3.0.x frames or 2.3.x raw
//! arrays), given their upstream (start, end) positions, checked against the position expected
//! next, and emitted in order. Idle authenticated connections are never timed out.
//!
//! Before `auth` a connection is anybody's: at most `max_pending_binlog_conns` unauthenticated
//! connections are kept (more are closed at once), each must authenticate within
//! `binlog_auth_timeout`, and at most `max_pre_auth_bytes` are buffered for its first message
//! (a frame or bulk string announcing more is refused from its header, before its bytes arrive).
//! So a flood of strangers costs a bounded amount of memory and never touches the live link.
//!
//! Position rules (spec §3.3, §3.8):
//! - start = the record's own header position (3.0 item header / 2.3 binlog_info), rolled over to
//!   `(filenum+1, 0)` when its offset exceeds `binlog-file-size`; padding items (all-zero header)
//!   and untrusted headers take the expected position instead;
//! - end = [`record_end`]`(start, L)`, L = frame body length (3.0) or the total bytes of the
//!   arrays sharing one binlog_info (2.3), the master writer's arithmetic.
//! - end ≤ last accepted end → duplicate (a re-send after reconnect), dropped;
//! - start ≠ expected → records were lost in flight (or the stream is inconsistent): the
//!   connection is closed and the session re-trysyncs from the last accepted position. The one
//!   exception is the first record after a trysync, which the master may have rounded up to the
//!   next record boundary (logged).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::config::{OldVersion, UpstreamConfig};
use super::{Durable, UpstreamEvent, UpstreamStatus};
use crate::formats::old_frame::{decode_frame, OldFrame};
use crate::formats::old_raw::{RawDecoder, RawEntry, RawMessage};
use crate::formats::record::record_end;
use crate::formats::resp::{self, Argv};
use crate::formats::{BinlogPos, FormatError};
use crate::pipeline::OldEntry;

/// What the receiver tells the session about the binlog link.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A connection authenticated with the current sid.
    Up { conn: u64, peer: SocketAddr },
    /// The active connection ended (EOF, error, protocol violation).
    Down {
        conn: u64,
        peer: SocketAddr,
        why: String,
    },
    /// Records were lost or the positions are inconsistent: re-trysync.
    Desync { peer: SocketAddr, why: String },
    /// The journal dropped its receiver: nothing can be accepted any more.
    ConsumerGone,
}

/// The position bookkeeping shared by all connections (guarded by one async mutex, so records
/// are judged and emitted strictly one at a time).
#[derive(Debug)]
pub(crate) struct StreamState {
    /// Dump epoch of the positions below.
    pub epoch: u64,
    /// End of the last accepted record: the next record must start here.
    pub accepted: BinlogPos,
    /// No record accepted since the last trysync (the master may round the position up).
    pub fresh: bool,
}

/// One decoded master record, before positions are assigned.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Position from the record's own header, if it has a meaningful one.
    pub header_pos: Option<BinlogPos>,
    /// Logical record length as the master's writer counted it.
    pub len: u64,
    pub exec_time: u32,
    pub server_id: u32,
    pub commands: Vec<Argv>,
}

enum Verdict {
    Emit(OldEntry),
    Duplicate,
    Gap(String),
}

/// Records judged and emitted together at most (one socket read rarely holds more).
const MAX_BATCH: usize = 1024;

/// Rolls `(f, o)` with `o > binlog_file_size` over to `(f+1, 0)` (the master rolls before
/// writing, so such a position names the start of the next file).
pub fn normalize(pos: BinlogPos, binlog_file_size: u64) -> BinlogPos {
    if pos.offset > binlog_file_size {
        BinlogPos::new(pos.filenum.wrapping_add(1), 0)
    } else {
        pos
    }
}

impl StreamState {
    fn judge(&mut self, d: Decoded, cfg: &UpstreamConfig, peer: SocketAddr) -> Verdict {
        let expected = normalize(self.accepted, cfg.binlog_file_size);
        let start = match d.header_pos {
            Some(p) if cfg.trust_item_positions => normalize(p, cfg.binlog_file_size),
            _ => expected,
        };
        let end = BinlogPos::new(start.filenum, record_end(start.offset, d.len));
        if end <= self.accepted {
            return Verdict::Duplicate;
        }
        if start != expected {
            if self.fresh && start > expected {
                tracing::warn!(
                    "master {peer} started the stream at {start}, not at the requested {expected}: \
                     it rounded a mid-record position up to the next record (anything in between \
                     was skipped)"
                );
            } else {
                return Verdict::Gap(format!(
                    "record at {start}..{end} does not follow the last accepted position {} \
                     (records lost in flight or a reordered stream)",
                    self.accepted
                ));
            }
        }
        self.fresh = false;
        Verdict::Emit(OldEntry {
            start,
            end,
            exec_time: d.exec_time,
            server_id: d.server_id,
            commands: d.commands,
        })
    }
}

/// State shared between the listener, its connections and the session.
pub(crate) struct Shared {
    pub cfg: Arc<UpstreamConfig>,
    /// Sid whose binlog connections are accepted; `None` while not streaming.
    pub sid: watch::Sender<Option<u32>>,
    pub stream: Mutex<StreamState>,
    pub events: mpsc::Sender<UpstreamEvent>,
    pub status: watch::Sender<UpstreamStatus>,
    pub link: mpsc::UnboundedSender<LinkEvent>,
    /// The authenticated connection currently allowed to deliver records.
    active: StdMutex<Option<(u64, CancellationToken)>>,
    next_conn: AtomicU64,
    /// Permits for unauthenticated connections (`max_pending_binlog_conns`).
    pending: Arc<Semaphore>,
    /// Connections rejected so far (their log lines are thinned out in a flood).
    rejected: AtomicU64,
    /// The session's shutdown signal (a blocked send to the journal must not hold shutdown up).
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn new(
        cfg: Arc<UpstreamConfig>,
        events: mpsc::Sender<UpstreamEvent>,
        status: watch::Sender<UpstreamStatus>,
        link: mpsc::UnboundedSender<LinkEvent>,
        init: Durable,
        shutdown: CancellationToken,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            pending: Arc::new(Semaphore::new(cfg.max_pending_binlog_conns.max(1))),
            cfg,
            sid: watch::channel(None).0,
            stream: Mutex::new(StreamState {
                epoch: init.epoch,
                accepted: init.pos,
                fresh: true,
            }),
            events,
            status,
            link,
            active: StdMutex::new(None),
            next_conn: AtomicU64::new(1),
            rejected: AtomicU64::new(0),
            shutdown,
        })
    }

    /// Closes every binlog connection (the session ended or changed).
    pub fn close_all(&self) {
        if let Some((_, tok)) = self.active.lock().unwrap().take() {
            tok.cancel();
        }
        self.status.send_modify(|s| s.binlog_connected = false);
    }

    fn is_active(&self, conn: u64) -> bool {
        matches!(&*self.active.lock().unwrap(), Some((c, _)) if *c == conn)
    }

    fn reject(&self, peer: SocketAddr, why: &str) {
        let n = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        // In a flood, log the first 10 and then every power of two (the count is in INFO).
        if n <= 10 || n.is_power_of_two() {
            tracing::warn!(
                "binlog connection from {peer} rejected: {why} ({n} rejected so far; only the \
                 master's sender should connect to this port: firewall it from anyone else)"
            );
        }
        self.status.send_modify(|s| {
            s.binlog_rejected += 1;
            s.last_error = Some(format!("binlog connection from {peer} rejected: {why}"));
        });
    }

    /// Judges records in order and emits the accepted ones: one lock, one status update and
    /// one channel reservation per batch (a read from the socket), not per record. `Err` ends
    /// the connection with that reason (records before a gap are still emitted).
    async fn process(
        &self,
        conn: u64,
        peer: SocketAddr,
        batch: Vec<Decoded>,
    ) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut st = self.stream.lock().await;
        if !self.is_active(conn) {
            return Err("superseded by a newer connection".into());
        }
        let (before, fresh) = (st.accepted, st.fresh);
        let mut out = Vec::with_capacity(batch.len());
        let (mut dups, mut bytes) = (0u64, 0u64);
        let mut gap = None;
        for d in batch {
            let len = d.len;
            match st.judge(d, &self.cfg, peer) {
                Verdict::Emit(entry) => {
                    st.accepted = entry.end;
                    bytes += len;
                    out.push(entry);
                }
                Verdict::Duplicate => dups += 1,
                Verdict::Gap(why) => {
                    gap = Some(why);
                    break;
                }
            }
        }
        let emitted = out.len() as u64;
        let mut sent_end = before;
        let mut out = out.into_iter().peekable();
        let chunk = self.events.max_capacity().max(1);
        let mut failed = None;
        while out.peek().is_some() {
            let n = out.len().min(chunk);
            let permits = tokio::select! {
                r = self.events.reserve_many(n) => r,
                _ = self.shutdown.cancelled() => {
                    failed = Some("relay shutting down".to_string());
                    break;
                }
            };
            let Ok(permits) = permits else {
                let _ = self.link.send(LinkEvent::ConsumerGone);
                failed = Some("the journal stopped consuming entries".to_string());
                break;
            };
            for (permit, entry) in permits.zip(out.by_ref()) {
                sent_end = entry.end;
                permit.send(UpstreamEvent::Entry(entry));
            }
        }
        let unsent = out.len() as u64;
        if failed.is_some() {
            // What was not handed over is not accepted.
            st.accepted = sent_end;
            st.fresh = fresh && sent_end == before;
        }
        let sent = emitted - unsent;
        if sent > 0 || dups > 0 {
            let last = st.accepted;
            self.status.send_modify(|s| {
                s.entries += sent;
                s.bytes += if unsent == 0 { bytes } else { 0 };
                s.duplicates += dups;
                if sent > 0 {
                    s.last_pos = last;
                }
            });
        }
        if let Some(why) = failed {
            return Err(why);
        }
        if let Some(why) = gap {
            let _ = self.link.send(LinkEvent::Desync {
                peer,
                why: why.clone(),
            });
            return Err(why);
        }
        Ok(())
    }
}

/// Accepts binlog connections until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((sock, peer)) => {
                let Ok(permit) = shared.pending.clone().try_acquire_owned() else {
                    shared.reject(
                        peer,
                        &format!(
                            "{} connections are already waiting to authenticate \
                             (max_pending_binlog_conns)",
                            shared.cfg.max_pending_binlog_conns
                        ),
                    );
                    drop(sock);
                    continue;
                };
                if let Err(e) = crate::net::replication_link(&sock) {
                    tracing::debug!("binlog connection from {peer}: socket options: {e}");
                }
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { handle(shared, sock, peer, permit, shutdown).await });
            }
            Err(e) => {
                tracing::warn!("binlog listener accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    shared.close_all();
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    V30,
    V23,
}

/// 2.3.x arrays of one record (same non-empty binlog_info), waiting for the record's end.
struct Group {
    entries: Vec<RawEntry>,
}

impl Group {
    fn same_record(&self, e: &RawEntry) -> bool {
        let first = &self.entries[0];
        !first.info_raw.is_empty() && first.info_raw == e.info_raw && e.info.is_some()
    }

    fn into_decoded(self) -> Decoded {
        let first = &self.entries[0];
        Decoded {
            header_pos: first.info.map(|i| i.pos),
            len: self.entries.iter().map(|e| e.encoded_len as u64).sum(),
            exec_time: first.info.map(|i| i.exec_time).unwrap_or(0),
            server_id: std::str::from_utf8(&first.server_id)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            commands: self.entries.into_iter().map(|e| e.argv).collect(),
        }
    }
}

fn frame_to_decoded(
    items: Vec<crate::formats::item::BinlogItem>,
    body_len: usize,
) -> Result<Decoded, FormatError> {
    let first = &items[0];
    let padding = first.exec_time == 0
        && first.server_id == 0
        && first.logic_id == 0
        && first.pos == BinlogPos::default();
    let header_pos = if padding { None } else { Some(first.pos) };
    let (exec_time, server_id) = (first.exec_time, first.server_id);
    let mut commands = Vec::with_capacity(items.len());
    for it in &items {
        commands.push(resp::parse_argv_exact(&it.content)?);
    }
    Ok(Decoded {
        header_pos,
        len: body_len as u64,
        exec_time,
        server_id,
        commands,
    })
}

enum Msg {
    Auth(String),
    Record(Decoded),
    Raw(RawEntry),
}

/// Decodes the messages of one connection; keeps the 2.3 parser's progress between reads.
struct Decoder {
    wire: Wire,
    raw: RawDecoder,
    /// Largest 3.0 frame body / 2.3 bulk string accepted.
    max_body: usize,
    /// Largest number of bytes buffered for one 2.3 array.
    max_buffered: usize,
}

impl Decoder {
    /// A decoder for the first message: `pre_auth` caps it at `pre_auth` bytes.
    fn new(wire: Wire, cfg: &UpstreamConfig, pre_auth: Option<usize>) -> Decoder {
        let mut d = Decoder {
            wire,
            raw: RawDecoder::new(),
            max_body: cfg.max_frame,
            max_buffered: cfg.max_frame.saturating_add(1 << 16),
        };
        if let Some(cap) = pre_auth {
            d.max_body = cap;
            d.max_buffered = cap;
            d.raw.set_limits(2, cap);
        }
        d
    }

    /// Lifts the pre-auth caps (between messages).
    fn authenticated(&mut self, cfg: &UpstreamConfig) {
        self.max_body = cfg.max_frame;
        self.max_buffered = cfg.max_frame.saturating_add(1 << 16);
        self.raw
            .set_limits(crate::formats::resp::MAX_ARGS, cfg.max_frame);
    }

    fn decode(&mut self, buf: &[u8]) -> Result<Option<(Msg, usize)>, FormatError> {
        match self.wire {
            Wire::V30 => Ok(match decode_frame(buf, self.max_body)? {
                None => None,
                Some((OldFrame::Auth { sid }, used)) => Some((Msg::Auth(sid), used)),
                Some((OldFrame::Binlog { items, body_len }, used)) => {
                    Some((Msg::Record(frame_to_decoded(items, body_len)?), used))
                }
            }),
            Wire::V23 => {
                // Bound the bytes buffered for one array (the parser checks the bulk caps).
                if buf.len() > self.max_buffered {
                    return Err(FormatError::TooLarge {
                        what: "2.3 binlog array",
                        len: buf.len() as u64,
                        max: self.max_buffered as u64,
                    });
                }
                Ok(match self.raw.decode(buf)? {
                    None => None,
                    Some((RawMessage::Auth { sid }, used)) => Some((Msg::Auth(sid), used)),
                    Some((RawMessage::Entry(e), used)) => Some((Msg::Raw(e), used)),
                })
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    mut sock: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let cfg = shared.cfg.clone();
    // Before `auth` only a tiny message is expected (unless the master sends none).
    let pre_auth = cfg.binlog_auth.then_some(cfg.max_pre_auth_bytes);
    let mut buf = BytesMut::with_capacity(pre_auth.map_or(64 * 1024, |c| c.min(4096)));
    // With `auth` the whole first message is due within the timeout; without it (2.3.0–2.3.2)
    // the first message is a record of any size, so the timeout counts silence instead.
    let mut deadline = tokio::time::Instant::now() + cfg.timings.binlog_auth_timeout;
    // Phase 1: the first bytes decide the wire format; the first message must be `auth <sid>`.
    let mut wire = match cfg.old_version {
        OldVersion::V30 => Some(Wire::V30),
        OldVersion::V23 => Some(Wire::V23),
        OldVersion::Auto => None,
    };
    let mut decoder = wire.map(|w| Decoder::new(w, &cfg, pre_auth));
    let mut pending_first: Option<Msg> = None;
    let sid_at_auth;
    loop {
        if let (None, Some(&b)) = (&decoder, buf.first()) {
            wire = match b {
                b'*' => Some(Wire::V23),
                1 | 2 => Some(Wire::V30),
                other => {
                    shared.reject(peer, &format!(
                        "first byte 0x{other:02x} is neither a 3.0 frame (type 1/2) nor a 2.3 RESP array ('*')"
                    ));
                    return;
                }
            };
            decoder = wire.map(|w| Decoder::new(w, &cfg, pre_auth));
        }
        if let Some(d) = decoder.as_mut() {
            match d.decode(&buf) {
                Ok(Some((msg, used))) => {
                    buf.advance(used);
                    let current = *shared.sid.borrow();
                    let Some(current) = current else {
                        shared.reject(peer, "no replication session is streaming (no trysync succeeded yet, or it ended)");
                        return;
                    };
                    match msg {
                        Msg::Auth(sid) if sid == current.to_string() => {}
                        Msg::Auth(sid) => {
                            shared.reject(peer, &format!(
                                "it authenticated with sid {sid:?} but the current session's sid is {current} \
                                 (a sender left over from an earlier session)"
                            ));
                            return;
                        }
                        other if !cfg.binlog_auth => pending_first = Some(other),
                        _ => {
                            shared.reject(peer, "the first message is not `auth <sid>` (set binlog_auth = false for 2.3.0–2.3.2 masters)");
                            return;
                        }
                    }
                    sid_at_auth = current;
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    let cap = match pre_auth {
                        Some(c) => format!(" (before `auth` at most {c} bytes are accepted)"),
                        None => String::new(),
                    };
                    shared.reject(peer, &format!("undecodable first message: {e}{cap}"));
                    return;
                }
            }
        }
        let r = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => {
                let what = if pre_auth.is_some() {
                    "no `auth <sid>` within"
                } else {
                    "no complete first message and nothing more received for"
                };
                shared.reject(peer, &format!(
                    "{what} {:?} ({} bytes received; binlog_auth_timeout)",
                    cfg.timings.binlog_auth_timeout, buf.len()
                ));
                return;
            }
            r = sock.read_buf(&mut buf) => r,
        };
        match r {
            Ok(0) => {
                tracing::info!("binlog connection from {peer} closed before authenticating");
                return;
            }
            Ok(_) if pre_auth.is_none() => {
                deadline = tokio::time::Instant::now() + cfg.timings.binlog_auth_timeout;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::info!("binlog connection from {peer} failed before authenticating: {e}");
                return;
            }
        }
    }
    let wire = wire.expect("decided above");
    let mut decoder = decoder.expect("decided above");
    decoder.authenticated(&cfg);
    drop(permit);
    buf.reserve(64 * 1024);
    // Phase 2: this connection becomes the active one (a newer one supersedes an older one).
    let token = CancellationToken::new();
    let superseded = shared.active.lock().unwrap().replace((conn, token.clone()));
    if let Some((old, tok)) = superseded {
        tracing::info!("binlog connection #{old} superseded by #{conn} from {peer}");
        tok.cancel();
        // Records may have died in flight on the old connection: from now on only an exact
        // continuation is accepted (a later start is a gap, not the master's rounding).
        shared.stream.lock().await.fresh = false;
    }
    tracing::info!("binlog connection #{conn} from {peer} authenticated with sid {sid_at_auth} ({wire:?} format)");
    shared.status.send_modify(|s| {
        s.binlog_connections += 1;
        s.binlog_connected = true;
    });
    let _ = shared.link.send(LinkEvent::Up { conn, peer });
    let why = stream_records(
        &shared,
        conn,
        &mut sock,
        peer,
        decoder,
        buf,
        pending_first,
        &token,
        &shutdown,
    )
    .await;
    let was_active = {
        let mut a = shared.active.lock().unwrap();
        if matches!(&*a, Some((c, _)) if *c == conn) {
            *a = None;
            true
        } else {
            false
        }
    };
    if *shared.sid.borrow() == Some(sid_at_auth) {
        // Same reason as when superseded: the master's sender reconnects after the records it
        // had handed to this connection's socket, delivered or not.
        shared.stream.lock().await.fresh = false;
    }
    if was_active {
        shared.status.send_modify(|s| s.binlog_connected = false);
        let _ = shared.link.send(LinkEvent::Down {
            conn,
            peer,
            why: why.clone(),
        });
    }
    tracing::info!("binlog connection #{conn} from {peer} closed: {why}");
}

#[allow(clippy::too_many_arguments)]
async fn stream_records(
    shared: &Shared,
    conn: u64,
    sock: &mut TcpStream,
    peer: SocketAddr,
    mut decoder: Decoder,
    mut buf: BytesMut,
    first: Option<Msg>,
    token: &CancellationToken,
    shutdown: &CancellationToken,
) -> String {
    let cfg = &shared.cfg;
    let mut group: Option<Group> = None;
    let mut next = first;
    let mut batch = Vec::new();
    loop {
        // Decode everything complete in the buffer, then judge and emit it as one batch.
        loop {
            if batch.len() >= MAX_BATCH {
                if let Err(why) = shared.process(conn, peer, std::mem::take(&mut batch)).await {
                    return why;
                }
            }
            let msg = match next.take() {
                Some(m) => m,
                None => match decoder.decode(&buf) {
                    Ok(Some((m, used))) => {
                        buf.advance(used);
                        m
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // What decoded before the bad bytes is still accepted.
                        if let Err(why) =
                            shared.process(conn, peer, std::mem::take(&mut batch)).await
                        {
                            return why;
                        }
                        let why = format!("undecodable binlog data from master {peer}: {e}");
                        tracing::error!("{why}; closing the connection (what was accepted before stays accepted)");
                        shared.status.send_modify(|s| {
                            s.binlog_rejected += 1;
                            s.last_error = Some(why.clone());
                        });
                        return why;
                    }
                },
            };
            let rec = match msg {
                Msg::Auth(sid) => {
                    if let Err(why) = shared.process(conn, peer, std::mem::take(&mut batch)).await {
                        return why;
                    }
                    return format!("unexpected second `auth {sid}` inside the stream");
                }
                Msg::Record(d) => d,
                Msg::Raw(e) => match group.take() {
                    Some(mut g) if g.same_record(&e) => {
                        g.entries.push(e);
                        group = Some(g);
                        continue;
                    }
                    Some(g) => {
                        group = Some(Group { entries: vec![e] });
                        g.into_decoded()
                    }
                    None => {
                        group = Some(Group { entries: vec![e] });
                        continue;
                    }
                },
            };
            batch.push(rec);
        }
        if let Err(why) = shared.process(conn, peer, std::mem::take(&mut batch)).await {
            return why;
        }
        let linger = group.is_some() && buf.is_empty();
        let r = tokio::select! {
            _ = shutdown.cancelled() => return "relay shutting down".into(),
            _ = token.cancelled() => return "closed by the relay (session ended or superseded)".into(),
            _ = tokio::time::sleep(cfg.timings.raw_group_linger), if linger => {
                let g = group.take().expect("linger only with a group");
                if let Err(why) = shared.process(conn, peer, vec![g.into_decoded()]).await {
                    return why;
                }
                continue;
            }
            r = sock.read_buf(&mut buf) => r,
        };
        match r {
            Ok(0) if buf.is_empty() => return "EOF from the master".into(),
            Ok(0) => {
                return format!(
                    "EOF from the master inside a message ({} bytes of it discarded)",
                    buf.len()
                )
            }
            Ok(_) => {}
            Err(e) => return format!("read error: {e}"),
        }
    }
}
