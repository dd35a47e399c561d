//! One slave connection: the request handlers (MetaSync, TrySync, DBSync, BinlogSync acks,
//! RemoveSlaveNode), the binlog pump from a journal cursor, keepalives and timeouts.
//!
//! Any request that a real Pika master would answer by closing the connection (an ack outside
//! the window, a `first_send` with start ≠ end, an undecodable frame) closes it here too, with one
//! log line naming the slave and the cause. Other slaves are unaffected.
//!
//! Positions a slave names (TrySync, ack ends) are its own; they go through its
//! [`PositionMap`](crate::downstream::positions::PositionMap) (3.1 slaves drift). A position that
//! cannot be mapped is answered `kSyncPointBePurged`, on which every 3.1–3.4 slave starts a full
//! sync by itself. TrySync/DBSync that arrive before the journal has a consistent epoch are held
//! and answered once it has one; a new epoch is announced to streaming slaves by a session change.

use super::conn::{spawn_reader, ReadEnd, Writer};
use super::encode::BinlogFrame;
use super::frames;
use super::{PushRequest, Shared};
use crate::downstream::positions::{self, PositionStore, Resolved};
use crate::downstream::registry::{SlaveState, SlaveStatus};
use crate::downstream::source::{JournalCursor, JournalSource, Located};
use crate::downstream::window::SyncWindow;
use crate::formats::pb::{inner_request, inner_response::try_sync::ReplyCode, InnerRequest, Type};
use crate::formats::pb_ack::{BinlogAck, Request};
use crate::formats::BinlogPos;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// At most this many frames are sent per pump before requests are looked at again.
const FRAMES_PER_PUMP: usize = 40;
/// How long a slave told of a new epoch (by a session change) may take to TrySync before the
/// connection is closed instead.
const NEW_EPOCH_GRACE: Duration = Duration::from_secs(5);
/// How long a shutdown waits for the acks of frames in flight (so the slaves' positions are
/// learned before the relay stops).
const DRAIN: Duration = Duration::from_secs(1);

/// One frame in flight.
struct Frame {
    /// Relay end position of its first item (what the slave's ack starts with).
    first_end: BinlogPos,
    /// Relay end position of its last item.
    last_end: BinlogPos,
    /// Each item's size, with the size range a 3.1 slave may re-log it in.
    items: Vec<(u64, Option<(u64, u64)>)>,
}

struct Db<C> {
    session_id: i32,
    state: SlaveState,
    window: SyncWindow,
    /// (end, logic id) of items in flight, for lag in entries.
    in_flight_ids: VecDeque<(BinlogPos, u64)>,
    /// Logic id of the first item after the acknowledged position, once known.
    acked_next_id: Option<u64>,
    cursor: Option<C>,
    last_recv: Instant,
    last_send: Instant,
    v33: bool,
    /// The journal epoch this session's position belongs to.
    epoch: u64,
    /// Frames in flight, oldest first.
    frames: VecDeque<Frame>,
    /// The slave's own position after its last acknowledged frame.
    slave_at: Option<BinlogPos>,
    /// TrySync's answer: the slave's own position and the relay position it stands for.
    resume: Option<(BinlogPos, BinlogPos)>,
    /// Its key in the position store (`ip:port table`).
    map_key: String,
}

struct SlaveConn<J: JournalSource> {
    shared: Arc<Shared<J>>,
    w: Writer,
    peer: SocketAddr,
    /// `ip:port` the slave announced in MetaSync.
    key: Option<String>,
    node_ip: String,
    node_port: i32,
    auth: Option<String>,
    dbs: HashMap<String, Db<J::Cursor>>,
    push_tx: mpsc::Sender<(String, Result<u64, String>)>,
    /// TrySync/DBSync requests held until the journal has a consistent epoch.
    held: Vec<InnerRequest>,
    /// When the last keepalive went to a slave whose requests are held.
    held_ping: Instant,
    /// Running full-sync pushes, aborted when a new epoch replaces theirs.
    pushes: HashMap<String, tokio::task::AbortHandle>,
    /// Since when the slave has been told (by a session change) that its epoch ended.
    told_new_epoch: Option<Instant>,
    /// The BinlogSync frame being built (its buffer reused from frame to frame).
    frame: BinlogFrame,
}

/// Serves one slave connection until it closes, misbehaves or the relay shuts down.
pub async fn run<J: JournalSource>(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared<J>>) {
    let (rd, wr) = stream.into_split();
    let mut requests = spawn_reader(rd, shared.config.max_request_frame);
    let (push_tx, mut push_rx) = mpsc::channel(4);
    let mut end_rx = shared.journal.watch();
    let mut conn = SlaveConn {
        shared: shared.clone(),
        w: Writer::new(wr, peer),
        peer,
        key: None,
        node_ip: String::new(),
        node_port: 0,
        auth: None,
        dbs: HashMap::new(),
        push_tx,
        held: Vec::new(),
        held_ping: Instant::now(),
        pushes: HashMap::new(),
        told_new_epoch: None,
        frame: BinlogFrame::default(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut more = false;
    let why: String = loop {
        let step: Result<(), String> = tokio::select! {
            _ = shared.cancel.cancelled() => break "relay shutting down".into(),
            r = requests.recv() => match r {
                Some(Ok(req)) => conn.handle(req).await,
                Some(Err(ReadEnd::Closed)) | None => break "slave closed the connection".into(),
                Some(Err(ReadEnd::Io(e))) => break format!("read error: {e}"),
                Some(Err(ReadEnd::Bad(e))) => Err(format!("undecodable request: {e}")),
            },
            r = end_rx.changed() => match r {
                Ok(()) => Ok(()),
                Err(_) => break "journal closed".into(),
            },
            Some((db, result)) = push_rx.recv() => conn.push_done(&db, result),
            _ = tick.tick() => conn.timers().await,
            _ = std::future::ready(()), if more => Ok(()),
        };
        if let Err(e) = step {
            break e;
        }
        match conn.pump().await {
            Ok(m) => more = m,
            Err(e) => break e,
        }
    };
    if why.starts_with("relay shutting") || why.starts_with("journal closed") {
        conn.drain(&mut requests).await;
    }
    conn.flush_positions(true);
    let who = conn.who();
    if why.starts_with("slave closed") || why.starts_with("relay shutting") {
        info!("downstream: {who}: {why}");
    } else {
        warn!("downstream: {who}: {why}; connection closed (a real slave reconnects and TrySyncs again)");
    }
    if let Some(key) = &conn.key {
        shared.registry.remove_if_peer(key, peer);
    }
}

impl<J: JournalSource> SlaveConn<J> {
    fn map_key(&self, table: &str) -> String {
        PositionStore::key(&self.node_ip, self.node_port, table)
    }

    /// Writes the position maps of this slave's DBs (rate-limited unless `now`).
    fn flush_positions(&self, now: bool) {
        for t in self.dbs.keys() {
            self.shared.positions.flush(&self.map_key(t), now);
        }
    }

    /// At shutdown: waits a little for the acks of frames in flight, so the relay learns the
    /// slaves' positions after them (a 3.1 slave's are not computable).
    async fn drain(&mut self, requests: &mut mpsc::Receiver<Result<Request, ReadEnd>>) {
        let deadline = tokio::time::Instant::now() + DRAIN;
        while self.dbs.values().any(|d| !d.frames.is_empty()) {
            tokio::select! {
                r = requests.recv() => match r {
                    Some(Ok(req @ Request::Ack(_))) => {
                        if self.handle(req).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Request::Other(req))) if req.r#type == Type::KBinlogSync as i32 => {
                        if self.handle_message(*req).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Keeps a request until the journal has a consistent epoch (a fresh relay before its first
    /// full sync from the old master), as a master answers a slave after its bgsave.
    fn hold(&mut self, req: InnerRequest, table: &str) {
        let same = |r: &InnerRequest| {
            let t = r
                .try_sync
                .as_ref()
                .map(|t| &t.partition.table_name)
                .or(r.db_sync.as_ref().map(|d| &d.partition.table_name));
            t.is_some_and(|t| t == table)
        };
        self.held.retain(|r| !same(r));
        self.held.push(req);
        info!(
            "downstream: {}: {table} waits: the relay has no consistent data yet (its first full sync from the old master is running); answered when it has",
            self.who()
        );
    }

    /// Answers the held requests once the journal is consistent.
    async fn release_held(&mut self) -> Result<(), String> {
        if self.held.is_empty() || !self.shared.journal.consistent() {
            return Ok(());
        }
        info!(
            "downstream: {}: the relay has its first epoch; answering the held requests",
            self.who()
        );
        for req in std::mem::take(&mut self.held) {
            self.handle_message(req).await?;
        }
        Ok(())
    }

    fn who(&self) -> String {
        who(&self.key, self.peer)
    }

    async fn send(&mut self, msg: &crate::formats::pb::InnerResponse) -> Result<(), String> {
        self.w
            .send(msg)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    async fn handle(&mut self, req: Request) -> Result<(), String> {
        match req {
            Request::Ack(a) => self.binlog_sync(a).await,
            Request::Other(req) => self.handle_message(*req).await,
        }
    }

    async fn handle_message(&mut self, req: InnerRequest) -> Result<(), String> {
        match Type::try_from(req.r#type) {
            Ok(Type::KMetaSync) => match req.meta_sync {
                Some(m) => self.meta_sync(m).await,
                None => Err("MetaSync request without its meta_sync body".into()),
            },
            Ok(Type::KTrySync) => match req.try_sync {
                Some(t) => self.try_sync(t).await,
                None => Err("TrySync request without its try_sync body".into()),
            },
            Ok(Type::KDbSync) => match req.db_sync {
                Some(d) => self.db_sync(d).await,
                None => Err("DBSync request without its db_sync body".into()),
            },
            Ok(Type::KBinlogSync) => match req.binlog_sync {
                Some(b) => self.binlog_sync(b.into()).await,
                None => Err("BinlogSync request without its binlog_sync body".into()),
            },
            Ok(Type::KRemoveSlaveNode) => self.remove_slave_node(req.remove_slave_node).await,
            other => Err(format!(
                "unexpected request type {other:?} ({})",
                req.r#type
            )),
        }
    }

    fn table_known(&self, table: &str) -> bool {
        table
            .strip_prefix("db")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < self.shared.config.databases && table == format!("db{n}"))
    }

    async fn meta_sync(&mut self, m: inner_request::MetaSync) -> Result<(), String> {
        let cfg = &self.shared.config;
        if let Some(pass) = &cfg.requirepass {
            if m.auth.as_deref() != Some(pass.as_str()) {
                warn!(
                    "downstream: slave {}:{} (from {}) sent a wrong or no masterauth; set its `masterauth` to the relay's requirepass",
                    m.node.ip, m.node.port, self.peer
                );
                let r = frames::error(
                    Type::KMetaSync,
                    "Auth with master error, Invalid masterauth",
                );
                return self.send(&r).await;
            }
        }
        if let Err(why) = check_node_port(m.node.port) {
            warn!(
                "downstream: slave {}:{} (from {}) refused: {why}",
                m.node.ip, m.node.port, self.peer
            );
            return self.send(&frames::error(Type::KMetaSync, &why)).await;
        }
        let key = format!("{}:{}", m.node.ip, m.node.port);
        if let Some(old) = &self.key {
            if *old != key {
                self.shared.registry.remove_if_peer(old, self.peer);
            }
        }
        self.dbs.clear();
        self.node_ip = m.node.ip.clone();
        self.node_port = m.node.port;
        self.auth = m.auth.clone();
        self.shared.registry.upsert(
            &key,
            SlaveStatus {
                ip: m.node.ip.clone(),
                port: m.node.port,
                peer: self.peer,
                state: SlaveState::Attached,
                session_id: -1,
                acked: BinlogPos::default(),
                acked_next_logic_id: 0,
                sent: BinlogPos::default(),
                v33: false,
                last_recv: Instant::now(),
                dbsync_bytes: 0,
            },
        );
        info!(
            "downstream: slave {key} (from {}) attached (MetaSync)",
            self.peer
        );
        self.key = Some(key);
        let r = frames::meta_sync_ok(cfg.databases, &cfg.run_id);
        self.send(&r).await
    }

    fn require_meta(&self, what: &str) -> Result<(), String> {
        if self.key.is_none() {
            return Err(format!("{what} before MetaSync"));
        }
        Ok(())
    }

    /// The session id of an existing node, or a new one.
    fn session_for(&mut self, table: &str) -> i32 {
        if let Some(db) = self.dbs.get(table) {
            return db.session_id;
        }
        self.shared.next_session.fetch_add(1, Ordering::Relaxed)
    }

    fn new_db(&mut self, table: &str, session_id: i32, state: SlaveState, at: BinlogPos) {
        let now = Instant::now();
        self.dbs.insert(
            table.to_string(),
            Db {
                session_id,
                state,
                window: SyncWindow::new(self.shared.config.window_items, at),
                in_flight_ids: VecDeque::new(),
                acked_next_id: None,
                cursor: None,
                last_recv: now,
                last_send: now,
                v33: false,
                epoch: self.shared.journal.synced().epoch,
                frames: VecDeque::new(),
                slave_at: None,
                resume: None,
                map_key: self.map_key(table),
            },
        );
        self.update_status(table);
    }

    fn update_status(&self, table: &str) {
        if let Some(db) = self.dbs.get(table) {
            status(&self.shared, &self.key, table, db);
        }
    }

    async fn try_sync(&mut self, t: inner_request::TrySync) -> Result<(), String> {
        self.require_meta("TrySync")?;
        let table = t.partition.table_name.clone();
        if !self.shared.journal.consistent() && self.table_known(&table) {
            let req = InnerRequest {
                r#type: Type::KTrySync as i32,
                try_sync: Some(t),
                ..Default::default()
            };
            self.hold(req, &table);
            return Ok(());
        }
        self.told_new_epoch = None;
        let end = self.shared.journal.synced().end;
        if !self.table_known(&table) {
            warn!(
                "downstream: {}: TrySync for unknown db `{table}`; the relay serves db0..db{}",
                self.who(),
                self.shared.config.databases - 1
            );
            let mut r = frames::try_sync(&table, ReplyCode::KError, end, None);
            r.code = crate::formats::pb::StatusCode::KError as i32;
            r.reply = Some("Partition not found".into());
            return self.send(&r).await;
        }
        let pos = BinlogPos::new(t.binlog_offset.filenum, t.binlog_offset.offset);
        let map = self.shared.positions.get(&self.map_key(&table));
        let who = self.who();
        let full = "answering `purged`, on which the slave full-syncs by itself";
        let (code, sid) = match positions::resolve(&self.shared.journal, &map, pos).await {
            Resolved::Unmapped(why) => {
                warn!("downstream: {who}: TrySync {table} at {pos} (the slave's own position): {why}; {full}");
                (ReplyCode::KSyncPointBePurged, None)
            }
            Resolved::At(r) => {
                let mapped = if r == pos {
                    String::new()
                } else {
                    format!(" (the relay's {r})")
                };
                match self.shared.journal.locate(r) {
                    Located::InRange => {
                        let sid = self.session_for(&table);
                        self.new_db(&table, sid, SlaveState::WaitFirstSend, r);
                        if let Some(db) = self.dbs.get_mut(&table) {
                            db.resume = Some((pos, r));
                        }
                        info!("downstream: {who}: TrySync {table} at {pos}{mapped}: streaming from there (session {sid})");
                        (ReplyCode::KOk, Some(sid))
                    }
                    Located::Purged => {
                        info!(
                            "downstream: {who}: TrySync {table} at {pos}{mapped}: before the journal's current epoch (starts at {}); the slave will full-sync",
                            self.shared.journal.epoch().start
                        );
                        (ReplyCode::KSyncPointBePurged, None)
                    }
                    Located::BeyondEnd => {
                        warn!("downstream: {who}: TrySync {table} at {pos}{mapped} is beyond the relay's journal end {end}: the slave holds binlog the relay never sent; {full}");
                        (ReplyCode::KSyncPointBePurged, None)
                    }
                    Located::NotBoundary => {
                        warn!("downstream: {who}: TrySync {table} at {pos}{mapped} is not the end of an item in the journal (binlog-file-size differs from the relay's?); {full}");
                        (ReplyCode::KSyncPointBePurged, None)
                    }
                }
            }
        };
        let r = frames::try_sync(&table, code, end, sid);
        self.send(&r).await
    }

    async fn db_sync(&mut self, d: inner_request::DbSync) -> Result<(), String> {
        self.require_meta("DBSync")?;
        let table = d.partition.table_name.clone();
        if !self.table_known(&table) {
            return Err(format!("DBSync for unknown db `{table}`"));
        }
        if !self.shared.journal.consistent() {
            let req = InnerRequest {
                r#type: Type::KDbSync as i32,
                db_sync: Some(d),
                ..Default::default()
            };
            self.hold(req, &table);
            return Ok(());
        }
        self.told_new_epoch = None;
        let Some(pusher) = self.shared.pusher.clone() else {
            warn!("downstream: {}: DBSync requested but this relay has no rsync sender configured; refusing", self.who());
            let r = frames::error(Type::KDbSync, "full sync not available");
            return self.send(&r).await;
        };
        let sid = self.session_for(&table);
        let epoch = self.shared.journal.epoch();
        self.new_db(&table, sid, SlaveState::DbSync, epoch.start);
        // After loading the dump the slave's binlog is set to J_e: its positions are the relay's.
        let key = self.map_key(&table);
        self.shared
            .positions
            .update(&key, |m| m.reset_to(epoch.start));
        self.shared.positions.flush(&key, true);
        let r = frames::db_sync(&table, sid);
        self.send(&r).await?;
        let cfg = &self.shared.config;
        let ip: std::net::IpAddr = self
            .node_ip
            .parse()
            .map_err(|_| format!("slave announced ip {:?}, not an address", self.node_ip))?;
        let req = PushRequest {
            target: SocketAddr::new(ip, (self.node_port + 1000) as u16),
            password: self.auth.clone().unwrap_or_else(|| "default".into()),
            remote_path: table.clone(),
            dump_dir: epoch.dump_dir.clone(),
            info: format!(
                "0s\n{}\n{}\n{}\n{}\n",
                cfg.advertise_ip, cfg.port, epoch.start.filenum, epoch.start.offset
            ),
        };
        info!(
            "downstream: {}: DBSync {table}: pushing epoch {} (journal position {}) to {}",
            self.who(),
            epoch.number,
            epoch.start,
            req.target
        );
        let tx = self.push_tx.clone();
        let t2 = table.clone();
        let h = tokio::spawn(async move {
            let result = pusher.push(req).await;
            let _ = tx.send((t2, result)).await;
        });
        if let Some(old) = self.pushes.insert(table, h.abort_handle()) {
            old.abort();
        }
        Ok(())
    }

    fn push_done(&mut self, table: &str, result: Result<u64, String>) -> Result<(), String> {
        self.pushes.remove(table);
        match result {
            Ok(bytes) => {
                info!("downstream: {}: full sync of {table} pushed ({bytes} bytes); waiting for its TrySync", self.who());
                Ok(())
            }
            Err(e) => Err(format!(
                "full sync push of {table} failed: {e}; check the slave's rsync daemon on its port+1000 and its masterauth"
            )),
        }
    }

    async fn binlog_sync(&mut self, b: BinlogAck) -> Result<(), String> {
        self.require_meta("BinlogSync")?;
        let table = b.table.as_str();
        let start = BinlogPos::new(b.start.filenum, b.start.offset);
        let end = BinlogPos::new(b.end.filenum, b.end.offset);
        let Some(db) = self.dbs.get(table) else {
            debug!(
                "downstream: {}: BinlogSync for {table} which has no session; dropped",
                self.who()
            );
            return Ok(());
        };
        if b.session_id != db.session_id {
            debug!(
                "downstream: {}: BinlogSync with stale session {} (current {}); dropped",
                self.who(),
                b.session_id,
                db.session_id
            );
            return Ok(());
        }
        // Where the slave's own first_send position stands in the journal.
        let relay_start = if b.first_send && start == end {
            match db.resume {
                Some((s, r)) if s == start => r,
                _ => {
                    let map = self.shared.positions.get(&db.map_key);
                    match positions::resolve(&self.shared.journal, &map, start).await {
                        Resolved::At(r) => r,
                        Resolved::Unmapped(why) => {
                            return Err(format!("first BinlogSync at {start}: {why}"))
                        }
                    }
                }
            }
        } else {
            start
        };
        let file_size = self.shared.journal.file_size();
        let Some(db) = self.dbs.get_mut(table) else {
            return Ok(());
        };
        db.last_recv = Instant::now();
        if b.first_send {
            if start != end {
                return Err(format!(
                    "first BinlogSync has ack range {start}..{end}, start and end must be equal"
                ));
            }
            if self.shared.journal.locate(relay_start) != Located::InRange {
                return Err(format!(
                    "first BinlogSync at {start} (the relay's {relay_start}), which the journal cannot serve"
                ));
            }
            let cursor = self
                .shared
                .journal
                .open(relay_start)
                .map_err(|e| format!("cannot open the journal at {relay_start}: {e}"))?;
            db.cursor = Some(cursor);
            db.window = SyncWindow::new(self.shared.config.window_items, relay_start);
            db.in_flight_ids.clear();
            db.frames.clear();
            db.slave_at = Some(start);
            let synced = self.shared.journal.synced();
            db.acked_next_id = (relay_start == synced.end).then_some(synced.logic_id);
            db.state = SlaveState::BinlogSync;
            db.v33 = b.start.term.is_some();
            self.shared.positions.update(&db.map_key, |m| {
                m.learn(start, relay_start);
            });
            info!(
                "downstream: {}: {table} streaming from {start}{} ({} protocol)",
                who(&self.key, self.peer),
                if start == relay_start {
                    String::new()
                } else {
                    format!(" (the relay's {relay_start})")
                },
                if db.v33 { "3.3+" } else { "3.1/3.2" }
            );
        } else if start == BinlogPos::default() && end == BinlogPos::default() {
            // Keepalive answer.
        } else {
            if db.state != SlaveState::BinlogSync {
                return Err(format!("ack {start}..{end} while {table} is not streaming"));
            }
            // The ack's end is the slave's own position after the frame starting at `start`:
            // translate it to where that frame ends in the journal, if the slave can be there
            // (exactly for frames without counters). Otherwise the end must be the relay's own
            // end of an item in flight, as a real master requires (`SyncWindow::Update`).
            let via_frame =
                db.frames
                    .iter()
                    .position(|f| f.first_end == start)
                    .filter(|&i| match (i, db.slave_at) {
                        (0, Some(at)) => {
                            positions::plausible_end(at, &db.frames[0].items, file_size, end)
                        }
                        _ => true,
                    });
            let relay_end = match via_frame {
                Some(i) => db.frames[i].last_end,
                None => end,
            };
            let acked = db
                .window
                .ack(start, relay_end)
                .map_err(|e| match db.slave_at {
                    Some(at) => format!("{e} (the slave's previous position was {at})"),
                    None => e.to_string(),
                })?;
            if let Some(i) = via_frame {
                db.frames.remove(i);
            }
            while db.frames.front().is_some_and(|f| f.last_end <= acked) {
                db.frames.pop_front();
            }
            db.slave_at = Some(end);
            self.shared
                .positions
                .update_in_place(&db.map_key, |m| m.learn(end, relay_end));
            self.shared.positions.flush(&db.map_key, false);
            while let Some(&(end, id)) = db.in_flight_ids.front() {
                if end > acked {
                    break;
                }
                db.acked_next_id = Some(id + 1);
                db.in_flight_ids.pop_front();
            }
        }
        self.update_status(table);
        Ok(())
    }

    async fn remove_slave_node(
        &mut self,
        nodes: Vec<inner_request::RemoveSlaveNode>,
    ) -> Result<(), String> {
        self.require_meta("RemoveSlaveNode")?;
        if nodes.is_empty() {
            return Err("RemoveSlaveNode with an empty list".into());
        }
        let tables: Vec<String> = nodes
            .iter()
            .map(|n| n.partition.table_name.clone())
            .collect();
        for t in &tables {
            self.dbs.remove(t);
            info!(
                "downstream: {}: removed from {t} (dbslaveof no one)",
                self.who()
            );
        }
        let cfg = &self.shared.config;
        let r = frames::remove_slave_node(&cfg.advertise_ip, cfg.port as i32, &tables);
        self.send(&r).await
    }

    /// Sends keepalives and drops DB sessions the slave abandoned.
    async fn timers(&mut self) -> Result<(), String> {
        let cfg = self.shared.config.clone();
        let who = self.who();
        let mut pings = Vec::new();
        let mut dead = Vec::new();
        for (table, db) in self.dbs.iter_mut() {
            if db.last_recv.elapsed() > cfg.slave_timeout {
                dead.push(table.clone());
                continue;
            }
            if db.window.in_flight() == 0 && db.last_send.elapsed() >= cfg.keepalive {
                let ti = db.v33.then_some((0, 0));
                pings.push(frames::binlog_item(
                    table,
                    BinlogPos::default(),
                    ti,
                    Vec::new(),
                    db.session_id,
                ));
                db.last_send = Instant::now();
            }
        }
        for t in dead {
            self.dbs.remove(&t);
            warn!("downstream: {who}: no request for {t} in {:?}; session dropped (the slave will TrySync again)", cfg.slave_timeout);
        }
        if let Some(t) = self.told_new_epoch {
            if t.elapsed() > NEW_EPOCH_GRACE {
                return Err(format!(
                    "the slave did not TrySync within {NEW_EPOCH_GRACE:?} of being told of the relay's new epoch; closing so it reconnects and full-syncs"
                ));
            }
        }
        // A slave waiting for a held reply drops pushes in its state; they keep its 60 s idle
        // timer from closing the connection.
        if !self.held.is_empty() && self.held_ping.elapsed() >= cfg.keepalive {
            self.held_ping = Instant::now();
            pings.push(frames::binlog_item(
                "db0",
                BinlogPos::default(),
                None,
                Vec::new(),
                0,
            ));
        }
        self.flush_positions(false);
        if !pings.is_empty() {
            let r = frames::binlog_sync(pings);
            self.send(&r).await?;
        }
        Ok(())
    }

    /// A new dump epoch (the relay full-synced from the old master) invalidates every session of
    /// an earlier one: the slave's data does not continue into the new epoch. Without closing the
    /// connection, the slave is sent an empty BinlogSync with another session id: every 3.1–3.4
    /// slave then goes back to TrySync on the same connection (`kTryConnect`, also from
    /// `kWaitDBSync`), its position is before the new epoch, it is answered `purged` and
    /// full-syncs. Pushes of the old dump are stopped. If it does not TrySync within
    /// [`NEW_EPOCH_GRACE`], the connection is closed (see `timers`).
    async fn check_epoch(&mut self) -> Result<(), String> {
        let now = self.shared.journal.synced().epoch;
        let stale: Vec<String> = self
            .dbs
            .iter()
            .filter(|(_, db)| db.epoch != now)
            .map(|(t, _)| t.clone())
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let who = self.who();
        let mut items = Vec::new();
        for t in stale {
            let Some(db) = self.dbs.remove(&t) else {
                continue;
            };
            if let Some(h) = self.pushes.remove(&t) {
                h.abort();
            }
            info!(
                "downstream: {who}: the relay took a new full sync from the old master (epoch {now}); {t} followed epoch {}: its session is ended so that it TrySyncs again and full-syncs",
                db.epoch
            );
            let other = if db.session_id == -1 { -2 } else { -1 };
            let ti = db.v33.then_some((0, 0));
            items.push(frames::binlog_item(
                &t,
                BinlogPos::default(),
                ti,
                Vec::new(),
                other,
            ));
        }
        if let Some(key) = &self.key {
            self.shared.registry.update(key, |s| {
                s.state = SlaveState::Attached;
                s.session_id = -1;
            });
        }
        self.told_new_epoch = Some(Instant::now());
        let r = frames::binlog_sync(items);
        self.send(&r).await
    }

    /// Sends what the journal has for streaming DBs, within their windows: frames of up to
    /// `frame_items` items, gathered and written together (one write for up to
    /// [`WRITE_BATCH`] bytes of frames). Returns whether more could be sent right away.
    async fn pump(&mut self) -> Result<bool, String> {
        self.release_held().await?;
        self.check_epoch().await?;
        let SlaveConn {
            shared,
            w,
            key,
            dbs,
            frame,
            ..
        } = self;
        let (frame_items, frame_bytes) = (shared.config.frame_items, shared.config.frame_bytes);
        let mut more = false;
        for (table, db) in dbs.iter_mut() {
            if db.state != SlaveState::BinlogSync {
                continue;
            }
            let Some(cursor) = db.cursor.as_mut() else {
                continue;
            };
            let mut sent = 0;
            for _ in 0..FRAMES_PER_PUMP {
                let mut n = 0usize;
                let mut sizes = Vec::new();
                let (mut first_end, mut last_end) = (BinlogPos::default(), BinlogPos::default());
                let mut bytes = 0usize;
                let mut exhausted = false;
                frame.begin();
                while n < frame_items && db.window.room() > 0 && bytes < frame_bytes {
                    match cursor
                        .try_next()
                        .await
                        .map_err(|e| format!("journal read failed: {e}"))?
                    {
                        // An item of a newer epoch (its padding item) is never sent to a
                        // session of an older one: the session is ended first (check_epoch).
                        // The epoch is the one the item was checked against as synced (the
                        // cursor's), or the journal's now.
                        Some(_)
                            if cursor
                                .checked_epoch()
                                .unwrap_or_else(|| shared.journal.synced().epoch)
                                != db.epoch =>
                        {
                            exhausted = true;
                            break;
                        }
                        Some(it) => {
                            bytes += it.bytes.len();
                            let relog = positions::relogged_by_31(&it.bytes)
                                .then(|| positions::relogged_len_range(&it.bytes));
                            if n == 0 {
                                first_end = it.end;
                                // One allocation per frame (none for a pump with nothing).
                                sizes.reserve_exact(frame_items.min(db.window.room()));
                            }
                            last_end = it.end;
                            sizes.push((it.bytes.len() as u64, relog));
                            db.window.push(it.end);
                            db.in_flight_ids.push_back((it.end, it.logic_id));
                            db.acked_next_id.get_or_insert(it.logic_id);
                            let ti = db.v33.then_some((1, it.logic_id));
                            frame.item(table, it.end, ti, &it.bytes, db.session_id);
                            n += 1;
                        }
                        None => {
                            exhausted = true;
                            break;
                        }
                    }
                }
                if n == 0 {
                    frame.cancel();
                    break;
                }
                frame.finish();
                sent += 1;
                db.frames.push_back(Frame {
                    first_end,
                    last_end,
                    items: sizes,
                });
                if frame.pending().len() >= WRITE_BATCH {
                    write_frames(w, frame).await?;
                }
                if exhausted || db.window.room() == 0 {
                    break;
                }
                more = true;
            }
            if sent > 0 {
                db.last_send = Instant::now();
                status(shared, key, table, db);
            }
        }
        write_frames(w, frame).await?;
        Ok(more)
    }
}

/// Bytes of finished BinlogSync frames gathered before they are written.
const WRITE_BATCH: usize = 256 << 10;

/// Writes the gathered frames, if any, in one call.
async fn write_frames(w: &mut Writer, frame: &mut BinlogFrame) -> Result<(), String> {
    if frame.pending().is_empty() {
        return Ok(());
    }
    let r = w.send_raw(frame.pending()).await;
    frame.clear();
    r.map_err(|e| format!("write failed: {e}"))
}

/// Publishes one DB's state (db0 only) in the registry.
fn status<J: JournalSource>(
    shared: &Shared<J>,
    key: &Option<String>,
    table: &str,
    db: &Db<J::Cursor>,
) {
    let Some(key) = key else {
        return;
    };
    if table != "db0" {
        return;
    }
    let next_id = db.acked_next_id;
    shared.registry.update(key, |s| {
        s.state = db.state;
        s.session_id = db.session_id;
        s.acked = db.window.acked();
        s.sent = db.window.sent();
        s.v33 = db.v33;
        s.last_recv = db.last_recv;
        if let Some(id) = next_id {
            s.acked_next_logic_id = id;
        }
    });
}

/// The slave (once it announced itself) or the peer, for log lines.
fn who(key: &Option<String>, peer: SocketAddr) -> String {
    match key {
        Some(k) => format!("slave {k} (from {peer})"),
        None => format!("peer {peer}"),
    }
}

/// Highest base port a slave may announce: the relay pushes full syncs to its port+1000.
pub const MAX_NODE_PORT: i32 = u16::MAX as i32 - 1000;

/// Checks the port a slave announced in MetaSync (an `i32` on the wire) before it is used to
/// derive the slave's rsync port (port+1000).
pub fn check_node_port(port: i32) -> Result<u16, String> {
    if (1..=MAX_NODE_PORT).contains(&port) {
        Ok(port as u16)
    } else {
        Err(format!(
            "announced port {port} is out of range: it must be 1..={MAX_NODE_PORT} (the relay \
             pushes full syncs to port+1000); check the slave's `port` setting"
        ))
    }
}
