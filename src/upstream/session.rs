//! The upstream state machine (spec §2, §4, §9.3, §11):
//!
//! ```text
//!   ┌──────────► Connect ── auth? + trysync ──► reply
//!   │                                            ├─ :sid ──► Streaming (heartbeat + binlog) ── link lost ──┐
//!   │                                            ├─ wait ──► WaitingFullSync ── dump promoted ─────────────┤
//!   │                                            └─ error ─► Backoff (one log line: meaning + action) ─────┤
//!   └──────────────────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Every `trysync` resumes from the last accepted upstream position (the later of the last
//! emitted entry's end and the journal's durable position), so a lost link costs a re-send,
//! which the receiver drops as duplicates.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::config::UpstreamConfig;
use super::fullsync::{promote, validate_dump, FullSyncReceiver};
use super::receiver::{normalize, LinkEvent, Shared};
use super::{heartbeat, DumpEpoch, Durable, SessionState, UpstreamEvent};
use crate::formats::resp::{encode_argv_into, parse_reply, Reply};
use crate::formats::BinlogPos;

/// Why a session stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The master wants a full sync and `refuse_full_sync` is set.
    #[error("the master requires a full sync and refuse_full_sync is set")]
    FullSyncRefused,
    /// The event receiver was dropped.
    #[error("the journal stopped consuming upstream events")]
    ConsumerGone,
    /// A task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The position a forced full sync asks for (`slaveof ... force`).
pub const FORCE_POS: BinlogPos = BinlogPos::new(u32::MAX, 0);

/// The master's answer to `trysync`, classified as in spec §2.4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrySyncReply {
    /// `:<sid>`: registered; the binlog push and heartbeat follow.
    Sid(u32),
    /// `$4 wait`: a full sync was scheduled.
    Wait,
    /// `-ERR InvalidOffset`.
    InvalidOffset,
    /// `-ERR AlreadyExist`.
    AlreadyExist,
    /// `-ERR NOAUTH ...`.
    NoAuth,
    /// The `auth` before trysync was not answered `+OK`.
    AuthFailed(String),
    /// Anything else (text for the log).
    Unexpected(String),
}

/// The bytes a real slave sends on the master's port, in one write: `[auth pw]` + `trysync ip
/// port filenum offset` (spec §2.1 step 7).
pub fn trysync_request(masterauth: Option<&str>, ip: &str, port: u16, pos: BinlogPos) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    if let Some(pw) = masterauth {
        encode_argv_into(&[b"auth".as_ref(), pw.as_bytes()], &mut out);
    }
    let (p, f, o) = (
        port.to_string(),
        pos.filenum.to_string(),
        pos.offset.to_string(),
    );
    encode_argv_into(
        &[
            b"trysync".as_ref(),
            ip.as_bytes(),
            p.as_bytes(),
            f.as_bytes(),
            o.as_bytes(),
        ],
        &mut out,
    );
    out
}

/// Classifies the trysync reply (pink hands the slave only the payload text; a sid is any
/// integer text, `wait` is compared exactly).
pub fn classify(reply: &Reply) -> TrySyncReply {
    let text = match reply {
        Reply::Integer(n) => {
            return u32::try_from(*n)
                .map(TrySyncReply::Sid)
                .unwrap_or_else(|_| TrySyncReply::Unexpected(format!(":{n}")))
        }
        Reply::Simple(s) => s.clone(),
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Reply::Error(e) => {
            return if e == "ERR InvalidOffset" {
                TrySyncReply::InvalidOffset
            } else if e == "ERR AlreadyExist" {
                TrySyncReply::AlreadyExist
            } else if e.to_ascii_uppercase().starts_with("ERR NOAUTH") {
                TrySyncReply::NoAuth
            } else {
                TrySyncReply::Unexpected(format!("-{e}"))
            }
        }
        other => return TrySyncReply::Unexpected(format!("{other:?}")),
    };
    if text == "wait" {
        TrySyncReply::Wait
    } else if let Ok(n) = text.parse::<u32>() {
        TrySyncReply::Sid(n)
    } else {
        TrySyncReply::Unexpected(format!("{text:?}"))
    }
}

enum StreamEnd {
    Shutdown,
    ConsumerGone,
    Lost(String),
}

pub(crate) struct Session {
    cfg: Arc<UpstreamConfig>,
    shared: Arc<Shared>,
    durable: watch::Receiver<Durable>,
    durable_alive: bool,
    full_sync: Arc<dyn FullSyncReceiver>,
    link: mpsc::UnboundedReceiver<LinkEvent>,
    shutdown: CancellationToken,
    force: bool,
    backoff: Duration,
    /// The last resume position was rolled over to `(filenum+1, 0)`.
    rolled_over: bool,
}

impl Session {
    pub(crate) fn new(
        cfg: Arc<UpstreamConfig>,
        shared: Arc<Shared>,
        durable: watch::Receiver<Durable>,
        full_sync: Arc<dyn FullSyncReceiver>,
        link: mpsc::UnboundedReceiver<LinkEvent>,
        shutdown: CancellationToken,
    ) -> Self {
        let force = cfg.force_full_sync;
        let backoff = cfg.timings.backoff_initial;
        Session {
            cfg,
            shared,
            durable,
            durable_alive: true,
            full_sync,
            link,
            shutdown,
            force,
            backoff,
            rolled_over: false,
        }
    }

    fn set_state(&self, state: SessionState) {
        self.shared.status.send_modify(|s| s.state = state);
    }

    fn note_error(&self, msg: &str) {
        self.shared
            .status
            .send_modify(|s| s.last_error = Some(msg.to_string()));
    }

    /// Runs until shutdown or a terminal error.
    pub(crate) async fn run(mut self) -> Result<(), SessionError> {
        let r = self.run_inner().await;
        self.shared.sid.send_replace(None);
        self.shared.close_all();
        self.set_state(SessionState::Stopped);
        r
    }

    async fn run_inner(&mut self) -> Result<(), SessionError> {
        let master = self.cfg.master;
        loop {
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            let stop = self.shutdown.clone();
            let pos = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                p = self.resume_pos() => p,
            };
            self.set_state(SessionState::Connect);
            if let Err(e) = self.full_sync.prepare(&self.cfg.rsync_module()).await {
                tracing::warn!("full-sync receiver not ready ({e}); a full sync, if the master asks for one, may fail");
            }
            let reply = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                r = self.trysync(pos) => r,
            };
            self.shared.status.send_modify(|s| s.trysyncs += 1);
            let delay = match reply {
                Ok(TrySyncReply::Sid(sid)) => {
                    tracing::info!(
                        "master {master} accepted trysync from {pos} with sid {sid}: streaming"
                    );
                    self.backoff = self.cfg.timings.backoff_initial;
                    match self.stream(sid).await {
                        StreamEnd::Shutdown => return Ok(()),
                        StreamEnd::ConsumerGone => return Err(SessionError::ConsumerGone),
                        StreamEnd::Lost(why) => {
                            let msg = format!("replication link to master {master} lost: {why}; re-trysync from the last accepted position");
                            tracing::warn!("{msg}");
                            self.note_error(&msg);
                            self.cfg.timings.relink_delay
                        }
                    }
                }
                Ok(TrySyncReply::Wait) => {
                    if self.cfg.refuse_full_sync {
                        let msg = format!(
                            "master {master} answered `wait` to trysync {pos}: it needs a full sync (the position is purged or was \
                             forced) and refuse_full_sync is set; stopping (like pika_port -e). Start the relay without \
                             refuse_full_sync to accept a dump, or resume from a position the master still has"
                        );
                        tracing::error!("{msg}");
                        self.note_error(&msg);
                        return Err(SessionError::FullSyncRefused);
                    }
                    match self.full_sync().await {
                        Ok(()) => Duration::ZERO,
                        Err(StreamEnd::Shutdown) => return Ok(()),
                        Err(StreamEnd::ConsumerGone) => return Err(SessionError::ConsumerGone),
                        Err(StreamEnd::Lost(_)) => self.cfg.timings.relink_delay,
                    }
                }
                Ok(other) => {
                    let (msg, wait) = self.explain(&other, pos);
                    tracing::error!("{msg}");
                    self.note_error(&msg);
                    wait
                }
                Err(e) => {
                    let msg = format!("trysync to master {master} failed: {e}; retrying (check that the master is up and reachable)");
                    tracing::warn!("{msg}");
                    self.note_error(&msg);
                    self.next_backoff()
                }
            };
            if !delay.is_zero() {
                self.set_state(SessionState::Backoff);
                tokio::select! {
                    _ = self.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let d = self.backoff;
        self.backoff = (self.backoff * 2).min(self.cfg.timings.backoff_max);
        d
    }

    /// One log line per error reply: what it means, what to do, and how long we wait.
    fn explain(&mut self, reply: &TrySyncReply, pos: BinlogPos) -> (String, Duration) {
        let m = self.cfg.master;
        match reply {
            TrySyncReply::InvalidOffset if self.rolled_over => (
                format!(
                    "master {m} answered -ERR InvalidOffset to trysync {pos}: our last entry ended past \
                     binlog-file-size, and the master opens write2file{} only at its next write; retrying",
                    pos.filenum
                ),
                self.next_backoff(),
            ),
            TrySyncReply::InvalidOffset => {
                let action = if self.cfg.full_sync_on_invalid_offset {
                    self.force = true;
                    "switching to a forced full sync (full_sync_on_invalid_offset)"
                } else {
                    "the relay's position is ahead of the master's binlog (master restored or replaced?): \
                     restart the relay with force_full_sync to take a new dump; retrying"
                };
                (format!("master {m} answered -ERR InvalidOffset to trysync {pos}: {action}"), self.next_backoff())
            }
            TrySyncReply::AlreadyExist => {
                let w = self.cfg.timings.already_exist_wait;
                (
                    format!(
                        "master {m} answered -ERR AlreadyExist: it still holds our previous registration for \
                         {}:{} (it forgets it 20-30 s after the old heartbeat stopped); retrying in {w:?}. If this \
                         repeats, another process advertises the same ip:port",
                        self.cfg.advertise_ip, self.cfg.relay_port
                    ),
                    w,
                )
            }
            TrySyncReply::NoAuth => (
                format!("master {m} answered NOAUTH: it has a requirepass; set masterauth to the master's requirepass (its userpass is not enough); retrying"),
                self.next_backoff(),
            ),
            TrySyncReply::AuthFailed(t) => (
                format!("master {m} rejected `auth`: {t}; set masterauth to the master's requirepass, or unset it if the master has no password; retrying"),
                self.next_backoff(),
            ),
            TrySyncReply::Unexpected(t) => (
                format!(
                    "master {m} answered trysync with {t}, which no 2.3/3.0 Pika master sends (Pika >= 3.1 answers \
                     `-Err unknown or unsupported command 'trysync'`): check that master_addr points at an old Pika's client port; retrying"
                ),
                self.next_backoff(),
            ),
            TrySyncReply::Sid(_) | TrySyncReply::Wait => unreachable!("handled by the caller"),
        }
    }

    /// The position for the next trysync.
    async fn resume_pos(&mut self) -> BinlogPos {
        self.rolled_over = false;
        if self.force {
            return FORCE_POS;
        }
        let mut st = self.shared.stream.lock().await;
        let d = *self.durable.borrow();
        if d.epoch == st.epoch && d.pos > st.accepted {
            st.accepted = d.pos;
        }
        let pos = normalize(st.accepted, self.cfg.binlog_file_size);
        self.rolled_over = pos != st.accepted;
        pos
    }

    /// Connect, send `[auth] + trysync` in one write, read the reply (or replies), close.
    async fn trysync(&self, pos: BinlogPos) -> std::io::Result<TrySyncReply> {
        let t = &self.cfg.timings;
        let io = |what: String| std::io::Error::new(std::io::ErrorKind::TimedOut, what);
        let mut sock = timeout(t.connect_timeout, TcpStream::connect(self.cfg.master))
            .await
            .map_err(|_| io(format!("connect to {} timed out", self.cfg.master)))??;
        self.set_state(SessionState::TrySync);
        // An empty masterauth means none (a needless `auth` is refused by a password-less master).
        let pw = self.cfg.masterauth.as_deref().filter(|p| !p.is_empty());
        let req = trysync_request(pw, &self.cfg.advertise_ip, self.cfg.relay_port, pos);
        timeout(t.trysync_io_timeout, sock.write_all(&req))
            .await
            .map_err(|_| io("sending trysync timed out".into()))??;
        let deadline = Instant::now() + t.trysync_io_timeout;
        let mut buf = Vec::new();
        let mut expect_auth = pw.is_some();
        loop {
            match parse_reply(&buf) {
                Ok(Some((reply, used))) => {
                    buf.drain(..used);
                    if expect_auth {
                        expect_auth = false;
                        let text = match &reply {
                            Reply::Simple(s) | Reply::Error(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        if !text.eq_ignore_ascii_case("ok") {
                            return Ok(TrySyncReply::AuthFailed(text));
                        }
                        continue;
                    }
                    return Ok(classify(&reply));
                }
                Ok(None) => {}
                Err(e) => {
                    let shown = crate::formats::resp::escape(&buf[..buf.len().min(64)]);
                    return Ok(TrySyncReply::Unexpected(format!(
                        "undecodable bytes \"{shown}\" ({e})"
                    )));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, sock.read(&mut chunk))
                .await
                .map_err(|_| io("no reply to trysync".into()))??;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "master closed the connection without answering trysync",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Streaming: heartbeat + binlog receiver until the link is lost.
    async fn stream(&mut self, sid: u32) -> StreamEnd {
        while self.link.try_recv().is_ok() {}
        {
            let mut st = self.shared.stream.lock().await;
            st.fresh = true;
        }
        self.shared.sid.send_replace(Some(sid));
        self.shared.status.send_modify(|s| {
            s.state = SessionState::Streaming;
            s.sid = Some(sid);
        });
        let t = self.cfg.timings.clone();
        let hb_addr = self.cfg.heartbeat_addr();
        let mut hb = Box::pin(heartbeat::run(hb_addr, sid, &t));
        let mut grace = Some(Instant::now() + t.binlog_connect_grace);
        let mut active: Option<u64> = None;
        let end = loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break StreamEnd::Shutdown,
                why = &mut hb => {
                    self.shared.status.send_modify(|s| s.heartbeat_losses += 1);
                    break StreamEnd::Lost(format!("heartbeat: {why}"));
                }
                ev = self.link.recv() => match ev {
                    Some(LinkEvent::Up { conn, peer }) => {
                        tracing::debug!("binlog link up: master {peer}, connection #{conn}");
                        active = Some(conn);
                        grace = None;
                    }
                    Some(LinkEvent::Down { conn, peer, why }) if active == Some(conn) => {
                        tracing::info!("binlog connection from master {peer} ended ({why}); waiting up to {:?} for its sender to reconnect", t.binlog_reconnect_grace);
                        active = None;
                        grace = Some(Instant::now() + t.binlog_reconnect_grace);
                    }
                    Some(LinkEvent::Down { .. }) => {}
                    Some(LinkEvent::Desync { peer, why }) => break StreamEnd::Lost(format!("binlog from {peer}: {why}")),
                    Some(LinkEvent::ConsumerGone) | None => break StreamEnd::ConsumerGone,
                },
                _ = tokio::time::sleep_until(grace.unwrap_or_else(Instant::now)), if grace.is_some() => {
                    break StreamEnd::Lost(format!(
                        "no binlog connection from the master (its sender should connect to {}:{} within seconds)",
                        self.cfg.advertise_ip, self.cfg.relay_port as u32 + 1000
                    ));
                }
                r = self.durable.changed(), if self.durable_alive => {
                    if r.is_err() { self.durable_alive = false; } else {
                        let d = *self.durable.borrow();
                        self.shared.status.send_modify(|s| s.durable_pos = d.pos);
                    }
                }
            }
        };
        // Close the heartbeat first: the master then deletes our registration and its sender.
        drop(hb);
        self.shared.sid.send_replace(None);
        self.shared.close_all();
        self.shared.status.send_modify(|s| s.sid = None);
        end
    }

    /// WaitingFullSync: receive, validate and promote the dump; emit the new epoch.
    async fn full_sync(&mut self) -> Result<(), StreamEnd> {
        self.set_state(SessionState::WaitingFullSync);
        let module = self.cfg.rsync_module();
        let limit = self.cfg.timings.full_sync_timeout;
        tracing::info!(
            "master {} answered `wait`: it is taking a dump for us; waiting up to {limit:?} for it (rsync module {module})",
            self.cfg.master
        );
        let got = tokio::select! {
            _ = self.shutdown.cancelled() => return Err(StreamEnd::Shutdown),
            r = self.full_sync.wait_for_dump(&module, limit) => r,
        };
        let dir = match got {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let msg = format!("full-sync dump rejected: {e}");
                self.note_error(&msg);
                return Err(StreamEnd::Lost(msg));
            }
            Err(e) => {
                let msg = format!(
                    "no full-sync dump from master {} within {limit:?} ({e}): its bgsave or rsync push failed (see the \
                     master's log; check rsync is installed there and the module {module} matches the IP the master \
                     uses towards the relay); asking again",
                    self.cfg.master
                );
                tracing::warn!("{msg}");
                self.note_error(&msg);
                return Err(StreamEnd::Lost(msg));
            }
        };
        let info = match validate_dump(&dir, self.cfg.old_version, self.cfg.master.port()) {
            Ok(i) => i,
            Err(why) => {
                let msg = format!("full-sync dump rejected: {why}; discarding it and asking again");
                tracing::error!("{msg}");
                self.note_error(&msg);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(StreamEnd::Lost(msg));
            }
        };
        let mut st = self.shared.stream.lock().await;
        let (epoch, path) = match promote(&dir, &self.cfg.data_dir, st.epoch) {
            Ok(x) => x,
            Err(e) => {
                let msg = format!("cannot promote the full-sync dump: {e}");
                tracing::error!("{msg}");
                self.note_error(&msg);
                return Err(StreamEnd::Lost(msg));
            }
        };
        tracing::info!(
            "full sync done: dump at {} is epoch {epoch}, consistent with master position {}",
            path.display(),
            info.pos
        );
        let pos = info.pos;
        let ev = UpstreamEvent::FullSync(DumpEpoch {
            epoch,
            dir: path,
            info,
        });
        tokio::select! {
            r = self.shared.events.send(ev) => if r.is_err() {
                return Err(StreamEnd::ConsumerGone);
            },
            _ = self.shutdown.cancelled() => return Err(StreamEnd::Shutdown),
        }
        st.epoch = epoch;
        st.accepted = pos;
        st.fresh = true;
        drop(st);
        self.force = false;
        self.shared.status.send_modify(|s| {
            s.epoch = epoch;
            s.last_pos = pos;
            s.full_syncs += 1;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let r = trysync_request(Some("pw"), "10.0.0.5", 9221, BinlogPos::new(3, 1234));
        assert_eq!(
            r,
            b"*2\r\n$4\r\nauth\r\n$2\r\npw\r\n*5\r\n$7\r\ntrysync\r\n$8\r\n10.0.0.5\r\n$4\r\n9221\r\n$1\r\n3\r\n$4\r\n1234\r\n".to_vec()
        );
        assert!(trysync_request(None, "1.2.3.4", 1, FORCE_POS)
            .ends_with(b"$10\r\n4294967295\r\n$1\r\n0\r\n"));
    }

    #[test]
    fn replies() {
        assert_eq!(classify(&Reply::Integer(3)), TrySyncReply::Sid(3));
        assert_eq!(
            classify(&Reply::Bulk(Some(b"wait".to_vec()))),
            TrySyncReply::Wait
        );
        assert_eq!(
            classify(&Reply::Simple("WAIT".into())),
            TrySyncReply::Unexpected("\"WAIT\"".into())
        );
        assert_eq!(
            classify(&Reply::Error("ERR InvalidOffset".into())),
            TrySyncReply::InvalidOffset
        );
        assert_eq!(
            classify(&Reply::Error("ERR AlreadyExist".into())),
            TrySyncReply::AlreadyExist
        );
        assert_eq!(
            classify(&Reply::Error("ERR NOAUTH Authentication required.".into())),
            TrySyncReply::NoAuth
        );
        assert!(matches!(
            classify(&Reply::Integer(-1)),
            TrySyncReply::Unexpected(_)
        ));
    }
}
