//! One slave connection: the request handlers (MetaSync, TrySync, DBSync, BinlogSync acks,
//! RemoveSlaveNode), the binlog pump from a journal cursor, keepalives and timeouts.
//!
//! Any request that a real Pika master would answer by closing the connection (an ack outside
//! the window, a `first_send` with start ≠ end, an undecodable frame) closes it here too, with one
//! log line naming the slave and the cause. Other slaves are unaffected.

use super::conn::{spawn_reader, ReadEnd, Writer};
use super::frames;
use super::{PushRequest, Shared};
use crate::downstream::registry::{SlaveState, SlaveStatus};
use crate::downstream::source::{JournalCursor, JournalSource, Located};
use crate::downstream::window::SyncWindow;
use crate::formats::pb::{inner_request, inner_response::try_sync::ReplyCode, InnerRequest, Type};
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
    fn who(&self) -> String {
        match &self.key {
            Some(k) => format!("slave {k} (from {})", self.peer),
            None => format!("peer {}", self.peer),
        }
    }

    async fn send(&mut self, msg: &crate::formats::pb::InnerResponse) -> Result<(), String> {
        self.w
            .send(msg)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    async fn handle(&mut self, req: InnerRequest) -> Result<(), String> {
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
                Some(b) => self.binlog_sync(b).await,
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
            },
        );
        self.update_status(table);
    }

    fn update_status(&self, table: &str) {
        let (Some(key), Some(db)) = (&self.key, self.dbs.get(table)) else {
            return;
        };
        if table != "db0" {
            return;
        }
        let next_id = db.acked_next_id;
        self.shared.registry.update(key, |s| {
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

    async fn try_sync(&mut self, t: inner_request::TrySync) -> Result<(), String> {
        self.require_meta("TrySync")?;
        let table = t.partition.table_name.clone();
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
        let located = self.shared.journal.locate(pos);
        let (code, sid) = match located {
            Located::InRange => {
                let sid = self.session_for(&table);
                self.new_db(&table, sid, SlaveState::WaitFirstSend, pos);
                info!("downstream: {}: TrySync {table} at {pos}: streaming from there (session {sid})", self.who());
                (ReplyCode::KOk, Some(sid))
            }
            Located::Purged => {
                info!(
                    "downstream: {}: TrySync {table} at {pos}: before the journal's current epoch (starts at {}); the slave will full-sync",
                    self.who(),
                    self.shared.journal.epoch().start
                );
                (ReplyCode::KSyncPointBePurged, None)
            }
            Located::BeyondEnd => {
                warn!(
                    "downstream: {}: TrySync {table} at {pos} is beyond the relay's journal end {end}: the slave holds binlog the relay never sent; run `slaveof <relay> <port> force` on it",
                    self.who()
                );
                (ReplyCode::KSyncPointLarger, None)
            }
            Located::NotBoundary => {
                warn!(
                    "downstream: {}: TrySync {table} at {pos} is not the end of an item in the journal (binlog-file-size differs from the relay's?); run `slaveof <relay> <port> force` on it",
                    self.who()
                );
                (ReplyCode::KError, None)
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
        let Some(pusher) = self.shared.pusher.clone() else {
            warn!("downstream: {}: DBSync requested but this relay has no rsync sender configured; refusing", self.who());
            let r = frames::error(Type::KDbSync, "full sync not available");
            return self.send(&r).await;
        };
        let sid = self.session_for(&table);
        let epoch = self.shared.journal.epoch();
        self.new_db(&table, sid, SlaveState::DbSync, epoch.start);
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
        tokio::spawn(async move {
            let result = pusher.push(req).await;
            let _ = tx.send((table, result)).await;
        });
        Ok(())
    }

    fn push_done(&mut self, table: &str, result: Result<u64, String>) -> Result<(), String> {
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

    async fn binlog_sync(&mut self, b: inner_request::BinlogSync) -> Result<(), String> {
        self.require_meta("BinlogSync")?;
        let table = b.table_name.clone();
        let start = BinlogPos::new(b.ack_range_start.filenum, b.ack_range_start.offset);
        let end = BinlogPos::new(b.ack_range_end.filenum, b.ack_range_end.offset);
        let who = self.who();
        let Some(db) = self.dbs.get_mut(&table) else {
            debug!("downstream: {who}: BinlogSync for {table} which has no session; dropped");
            return Ok(());
        };
        if b.session_id != db.session_id {
            debug!(
                "downstream: {who}: BinlogSync with stale session {} (current {}); dropped",
                b.session_id, db.session_id
            );
            return Ok(());
        }
        db.last_recv = Instant::now();
        if b.first_send {
            if start != end {
                return Err(format!(
                    "first BinlogSync has ack range {start}..{end}, start and end must be equal"
                ));
            }
            if self.shared.journal.locate(start) != Located::InRange {
                return Err(format!(
                    "first BinlogSync at {start}, which the journal cannot serve"
                ));
            }
            let cursor = self
                .shared
                .journal
                .open(start)
                .map_err(|e| format!("cannot open the journal at {start}: {e}"))?;
            db.cursor = Some(cursor);
            db.window = SyncWindow::new(self.shared.config.window_items, start);
            db.in_flight_ids.clear();
            let synced = self.shared.journal.synced();
            db.acked_next_id = (start == synced.end).then_some(synced.logic_id);
            db.state = SlaveState::BinlogSync;
            db.v33 = b.ack_range_start.term.is_some();
            info!(
                "downstream: {who}: {table} streaming from {start} ({} protocol)",
                if db.v33 { "3.3+" } else { "3.1/3.2" }
            );
        } else if start == BinlogPos::default() && end == BinlogPos::default() {
            // Keepalive answer.
        } else {
            if db.state != SlaveState::BinlogSync {
                return Err(format!("ack {start}..{end} while {table} is not streaming"));
            }
            let acked = db.window.ack(start, end).map_err(|e| e.to_string())?;
            while let Some(&(end, id)) = db.in_flight_ids.front() {
                if end > acked {
                    break;
                }
                db.acked_next_id = Some(id + 1);
                db.in_flight_ids.pop_front();
            }
        }
        self.update_status(&table);
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
        if !pings.is_empty() {
            let r = frames::binlog_sync(pings);
            self.send(&r).await?;
        }
        Ok(())
    }

    /// A new dump epoch (the relay full-synced from the old master) invalidates every session of
    /// an earlier one: the slave's data does not continue into the new epoch. Closing makes it
    /// reconnect; its position is then before the epoch's start and it full-syncs.
    fn check_epoch(&self) -> Result<(), String> {
        let now = self.shared.journal.synced().epoch;
        match self.dbs.iter().find(|(_, db)| db.epoch != now) {
            Some((t, db)) => Err(format!(
                "the relay took a new full sync from the old master (epoch {now}); {t} of this slave follows epoch {}, so it must full-sync",
                db.epoch
            )),
            None => Ok(()),
        }
    }

    /// Sends what the journal has for streaming DBs, within their windows. Returns whether more
    /// could be sent right away.
    async fn pump(&mut self) -> Result<bool, String> {
        self.check_epoch()?;
        let cfg = self.shared.config.clone();
        let mut more = false;
        let tables: Vec<String> = self.dbs.keys().cloned().collect();
        for table in tables {
            for _ in 0..FRAMES_PER_PUMP {
                let Some(db) = self.dbs.get_mut(&table) else {
                    break;
                };
                if db.state != SlaveState::BinlogSync {
                    break;
                }
                let Some(cursor) = db.cursor.as_mut() else {
                    break;
                };
                let mut items = Vec::new();
                let mut bytes = 0usize;
                let mut exhausted = false;
                while items.len() < cfg.frame_items
                    && db.window.room() > 0
                    && bytes < cfg.frame_bytes
                {
                    match cursor
                        .try_next()
                        .await
                        .map_err(|e| format!("journal read failed: {e}"))?
                    {
                        Some(it) => {
                            bytes += it.bytes.len();
                            db.window.push(it.end);
                            db.in_flight_ids.push_back((it.end, it.logic_id));
                            db.acked_next_id.get_or_insert(it.logic_id);
                            let ti = db.v33.then_some((1, it.logic_id));
                            items.push(frames::binlog_item(
                                &table,
                                it.end,
                                ti,
                                it.bytes,
                                db.session_id,
                            ));
                        }
                        None => {
                            exhausted = true;
                            break;
                        }
                    }
                }
                if items.is_empty() {
                    break;
                }
                db.last_send = Instant::now();
                let room = db.window.room();
                let r = frames::binlog_sync(items);
                self.send(&r).await?;
                self.update_status(&table);
                if exhausted || room == 0 {
                    break;
                }
                more = true;
            }
        }
        Ok(more)
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
