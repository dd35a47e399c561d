//! The double's replication session: probe, MetaSync, TrySync/DBSync, streaming and acks.

use super::binlog::{SlaveBinlog, SlaveVersion};
use super::{AckMode, DbState, NewSlaveConfig, SlaveView};
use crate::formats::info::DumpInfo;
use crate::formats::item::BinlogItem;
use crate::formats::pb::{
    self, inner_request, inner_response, BinlogOffset, InnerRequest, InnerResponse, Node,
    Partition, StatusCode, Type,
};
use crate::formats::{resp, BinlogPos};
use crate::sim::keyspace::Keyspace;
use bytes::{Buf, BytesMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub(super) fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

struct Session {
    cfg: NewSlaveConfig,
    /// The db-sync path (the rsync module root): full syncs land in `<dbsync>/db0/`.
    dbsync: std::path::PathBuf,
    binlog: SlaveBinlog,
    keyspace: Arc<Mutex<Keyspace>>,
    view: watch::Sender<SlaveView>,
    local_ip: String,
    state: DbState,
    session_id: i32,
    last_recv: Instant,
    /// When the last MetaSync was sent.
    last_meta_sync: Option<Instant>,
    /// [`AckMode::AckOnly`]: the last offset acked (its binlog is not written).
    ack_only_pos: Option<BinlogPos>,
}

fn offset(p: BinlogPos, ti: Option<(u32, u64)>) -> BinlogOffset {
    BinlogOffset {
        filenum: p.filenum,
        offset: p.offset,
        term: ti.map(|t| t.0),
        index: ti.map(|t| t.1),
    }
}

async fn send(s: &mut TcpStream, r: &InnerRequest) -> std::io::Result<()> {
    s.write_all(&pb::encode_frame(r)).await
}

async fn read_response(s: &mut TcpStream, buf: &mut BytesMut) -> Result<InnerResponse, String> {
    loop {
        if let Some((body, used)) =
            pb::split_frame(buf, pb::DEFAULT_MAX_FRAME).map_err(|e| e.to_string())?
        {
            let r = pb::decode_response(body).map_err(|e| format!("unparsable response: {e}"));
            buf.advance(used);
            return r;
        }
        match s.read_buf(buf).await {
            Ok(0) => return Err("master closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Runs until cancelled, reconnecting after connection loss as a real slave does.
pub(super) async fn run(
    cfg: NewSlaveConfig,
    dbsync: std::path::PathBuf,
    binlog: SlaveBinlog,
    keyspace: Arc<Mutex<Keyspace>>,
    view: watch::Sender<SlaveView>,
    cancel: CancellationToken,
) {
    let force = cfg.force_full_sync;
    let mut s = Session {
        cfg,
        dbsync,
        binlog,
        keyspace,
        view,
        local_ip: "127.0.0.1".into(),
        state: DbState::NoConnect,
        session_id: -1,
        last_recv: Instant::now(),
        last_meta_sync: None,
        ack_only_pos: None,
    };
    let mut force = force;
    loop {
        // Pika sends MetaSync at most once per PIKA_META_SYNC_MAX_WAIT_TIME.
        if let Some(t) = s.last_meta_sync {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until((t + s.cfg.meta_sync_interval).into()) => {}
            }
        }
        let r = tokio::select! {
            _ = cancel.cancelled() => return,
            r = s.connection(&mut force) => r,
        };
        match r {
            Err(e) if e.starts_with("sticky:") => {
                warn!(
                    "new-slave double {}: {e}; stays in error (like PIKA_REPL_ERROR)",
                    s.cfg.port
                );
                s.set_state(DbState::Error(e));
                cancel.cancelled().await;
                return;
            }
            Err(e) => {
                debug!("new-slave double {}: {e}; reconnecting", s.cfg.port);
                if !matches!(s.state, DbState::Error(_)) {
                    s.set_state(DbState::NoConnect);
                }
            }
            Ok(()) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(s.cfg.reconnect_delay) => {}
        }
    }
}

impl Session {
    /// The position it acks and TrySyncs with: its binlog's producer, or in
    /// [`AckMode::AckOnly`] the last offset acked.
    fn producer(&self) -> BinlogPos {
        self.ack_only_pos.unwrap_or_else(|| self.binlog.producer())
    }

    fn set_state(&mut self, st: DbState) {
        self.state = st.clone();
        let p = self.producer();
        let sid = self.session_id;
        self.view.send_modify(|v| {
            v.state = st;
            v.producer = p;
            v.session_id = sid;
        });
    }

    fn node(&self) -> Node {
        Node {
            ip: self.local_ip.clone(),
            port: i32::from(self.cfg.port),
        }
    }

    fn partition() -> Partition {
        Partition {
            table_name: "db0".into(),
            partition_id: 0,
        }
    }

    fn v33(&self) -> bool {
        self.cfg.version == SlaveVersion::V33
    }

    async fn probe(&mut self) -> Result<(), String> {
        let s = tokio::time::timeout(
            Duration::from_millis(1500),
            TcpStream::connect(self.cfg.master),
        )
        .await
        .map_err(|_| "probe of the master port timed out".to_string())?
        .map_err(|e| format!("probe of the master port failed: {e}"))?;
        self.local_ip = s
            .local_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| "127.0.0.1".into());
        Ok(())
    }

    async fn connection(&mut self, force: &mut bool) -> Result<(), String> {
        self.probe().await?;
        let repl = std::net::SocketAddr::new(self.cfg.master.ip(), self.cfg.master.port() + 2000);
        let mut sock = TcpStream::connect(repl)
            .await
            .map_err(|e| format!("connect {repl}: {e}"))?;
        let mut buf = BytesMut::new();
        let req = InnerRequest {
            r#type: Type::KMetaSync as i32,
            meta_sync: Some(inner_request::MetaSync {
                node: self.node(),
                auth: self.cfg.masterauth.clone(),
            }),
            ..Default::default()
        };
        send(&mut sock, &req).await.map_err(|e| e.to_string())?;
        self.last_meta_sync = Some(Instant::now());
        let r = read_response(&mut sock, &mut buf)
            .await
            .map_err(|e| format!("sticky: MetaSync: {e}"))?;
        if r.code != StatusCode::KOk as i32 {
            return Err(format!(
                "sticky: MetaSync refused: {}",
                r.reply.unwrap_or_default()
            ));
        }
        let ms = r
            .meta_sync
            .ok_or("sticky: MetaSync reply without meta_sync")?;
        let tables: Vec<(String, i32)> = ms
            .tables_info
            .iter()
            .map(|t| (t.table_name.clone(), t.partition_num))
            .collect();
        if !ms.classic_mode || tables != vec![("db0".to_string(), 1)] {
            return Err(format!(
                "sticky: MetaSync table mismatch: classic {} tables {tables:?}",
                ms.classic_mode
            ));
        }
        self.view.send_modify(|v| v.meta_syncs += 1);
        if self.cfg.version != SlaveVersion::V31 {
            self.probe().await?;
        }
        let first = if *force {
            DbState::TryDbSync
        } else {
            DbState::TryConnect
        };
        *force = false;
        self.set_state(first);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            match self.state {
                DbState::TryConnect => self.send_sync(&mut sock, false).await?,
                DbState::TryDbSync => self.send_db_sync(&mut sock).await?,
                _ => {}
            }
            tokio::select! {
                r = read_response(&mut sock, &mut buf) => {
                    let r = r?;
                    self.last_recv = Instant::now();
                    self.on_response(&mut sock, r).await?;
                }
                _ = tick.tick() => self.on_tick(&mut sock).await?,
            }
        }
    }

    /// Sends TrySync (`full == false`) or DBSync for db0 at the own producer position; both
    /// requests carry the same node, partition and offset.
    async fn send_sync(&mut self, sock: &mut TcpStream, full: bool) -> Result<(), String> {
        let (node, partition, binlog_offset) = (
            self.node(),
            Self::partition(),
            offset(self.producer(), None),
        );
        let req = if full {
            InnerRequest {
                r#type: Type::KDbSync as i32,
                db_sync: Some(inner_request::DbSync {
                    node,
                    partition,
                    binlog_offset,
                }),
                ..Default::default()
            }
        } else {
            InnerRequest {
                r#type: Type::KTrySync as i32,
                try_sync: Some(inner_request::TrySync {
                    node,
                    partition,
                    binlog_offset,
                }),
                ..Default::default()
            }
        };
        send(sock, &req).await.map_err(|e| e.to_string())?;
        self.set_state(DbState::WaitReply);
        Ok(())
    }

    fn dbsync_dir(&self) -> std::path::PathBuf {
        self.dbsync.join("db0")
    }

    /// `PrepareRsync`: an empty db-sync directory with the five type directories, then DBSync.
    async fn send_db_sync(&mut self, sock: &mut TcpStream) -> Result<(), String> {
        let dir = self.dbsync_dir();
        let _ = std::fs::remove_dir_all(&dir);
        for t in ["strings", "hashes", "lists", "sets", "zsets"] {
            std::fs::create_dir_all(dir.join(t)).map_err(|e| e.to_string())?;
        }
        self.send_sync(sock, true).await
    }

    async fn ack(
        &mut self,
        sock: &mut TcpStream,
        start: BinlogOffset,
        end: BinlogOffset,
        first: bool,
    ) -> Result<(), String> {
        let req = InnerRequest {
            r#type: Type::KBinlogSync as i32,
            binlog_sync: Some(inner_request::BinlogSync {
                node: self.node(),
                table_name: "db0".into(),
                partition_id: 0,
                ack_range_start: start,
                ack_range_end: end,
                session_id: self.session_id,
                first_send: first,
            }),
            ..Default::default()
        };
        send(sock, &req).await.map_err(|e| e.to_string())?;
        self.view.send_modify(|v| v.acks += 1);
        Ok(())
    }

    async fn on_response(&mut self, sock: &mut TcpStream, r: InnerResponse) -> Result<(), String> {
        match Type::try_from(r.r#type) {
            Ok(Type::KTrySync) => {
                if r.code != StatusCode::KOk as i32 {
                    warn!(
                        "new-slave double {}: TrySync answered with an error: {:?}",
                        self.cfg.port, r.reply
                    );
                    return Ok(());
                }
                let t = r.try_sync.ok_or("TrySync reply without try_sync")?;
                use inner_response::try_sync::ReplyCode;
                match ReplyCode::try_from(t.reply_code) {
                    Ok(ReplyCode::KOk) => {
                        self.session_id = t.session_id.unwrap_or(0);
                        let p = self.producer();
                        let ti = self.v33().then_some((0, 0));
                        self.ack(sock, offset(p, ti), offset(p, ti), true).await?;
                        self.set_state(DbState::Connected);
                    }
                    Ok(ReplyCode::KSyncPointBePurged) => self.set_state(DbState::TryDbSync),
                    other => self.set_state(DbState::Error(format!("TrySync reply {other:?}"))),
                }
            }
            Ok(Type::KDbSync) => {
                if r.code != StatusCode::KOk as i32 {
                    self.set_state(DbState::Error(format!("DBSync refused: {:?}", r.reply)));
                    return Ok(());
                }
                self.session_id = r.db_sync.map(|d| d.session_id).unwrap_or(0);
                self.set_state(DbState::WaitDbSync);
            }
            Ok(Type::KBinlogSync) => self.on_binlog(sock, r.binlog_sync).await?,
            other => debug!(
                "new-slave double {}: ignoring response {other:?}",
                self.cfg.port
            ),
        }
        Ok(())
    }

    async fn on_binlog(
        &mut self,
        sock: &mut TcpStream,
        items: Vec<inner_response::BinlogSync>,
    ) -> Result<(), String> {
        if !matches!(self.state, DbState::Connected | DbState::WaitDbSync) {
            return Ok(());
        }
        if self.cfg.ack_mode == AckMode::AckOnly {
            return self.ack_offsets(sock, &items).await;
        }
        let mut ack_start: Option<BinlogOffset> = None;
        let mut last_term = 0;
        for it in &items {
            if it.session_id != self.session_id {
                warn!(
                    "new-slave double {}: item with session {} (mine {}): back to TrySync",
                    self.cfg.port, it.session_id, self.session_id
                );
                self.set_state(DbState::TryConnect);
                return Ok(());
            }
            if it.binlog.is_empty() {
                continue;
            }
            ack_start.get_or_insert(it.binlog_offset);
            last_term = it.binlog_offset.term.unwrap_or(0);
            let decoded = BinlogItem::decode(&it.binlog)
                .map_err(|e| e.to_string())
                .and_then(|h| {
                    let argv = resp::parse_argv_exact(&h.content).map_err(|e| e.to_string())?;
                    Ok((h, argv))
                });
            let (header, argv) = match decoded {
                Ok(x) => x,
                Err(e) => {
                    warn!(
                        "new-slave double {}: bad item: {e}: back to TrySync",
                        self.cfg.port
                    );
                    self.set_state(DbState::TryConnect);
                    return Ok(());
                }
            };
            let t = now();
            let form = {
                let ks = self.keyspace.lock().unwrap();
                self.binlog.binlog_form(&argv, &ks, t)
            };
            if let Some(form) = form {
                self.binlog
                    .append(&header, &form, t)
                    .map_err(|e| e.to_string())?;
            }
            let applied = self.keyspace.lock().unwrap().exec(&argv, u64::from(t));
            if let Err(e) = applied {
                warn!(
                    "new-slave double {}: command rejected: {e}: back to TrySync",
                    self.cfg.port
                );
                self.set_state(DbState::TryConnect);
                return Ok(());
            }
            self.view.send_modify(|v| v.items += 1);
        }
        let p = self.binlog.producer();
        self.view.send_modify(|v| v.producer = p);
        let (start, end) = match ack_start {
            Some(s) if (s.filenum, s.offset) != (0, 0) => {
                let mut e = p;
                if self.cfg.ack_mode == AckMode::Wrong {
                    e.offset += 1 + self.view.borrow().acks;
                }
                let ti = self.v33().then_some((last_term, self.binlog.logic_id));
                (s, offset(e, ti))
            }
            _ => {
                let ti = self.v33().then_some((0, 0));
                (
                    offset(BinlogPos::default(), ti),
                    offset(BinlogPos::default(), ti),
                )
            }
        };
        if self.cfg.ack_mode != AckMode::Silent {
            self.ack(sock, start, end, false).await?;
        }
        Ok(())
    }

    /// [`AckMode::AckOnly`]: acks the frame's offsets as sent (the first item's and the last
    /// item's), applying nothing.
    async fn ack_offsets(
        &mut self,
        sock: &mut TcpStream,
        items: &[inner_response::BinlogSync],
    ) -> Result<(), String> {
        if let Some(it) = items.iter().find(|it| it.session_id != self.session_id) {
            warn!(
                "new-slave double {}: item with session {} (mine {}): back to TrySync",
                self.cfg.port, it.session_id, self.session_id
            );
            self.set_state(DbState::TryConnect);
            return Ok(());
        }
        let mut data = items.iter().filter(|it| !it.binlog.is_empty());
        let (start, end) = match (data.next(), items.iter().rfind(|it| !it.binlog.is_empty())) {
            (Some(f), Some(l)) => (f.binlog_offset, l.binlog_offset),
            _ => {
                let ti = self.v33().then_some((0, 0));
                let zero = offset(BinlogPos::default(), ti);
                (zero, zero)
            }
        };
        let n = items.iter().filter(|it| !it.binlog.is_empty()).count() as u64;
        if n > 0 {
            let p = BinlogPos::new(end.filenum, end.offset);
            self.ack_only_pos = Some(p);
            self.view.send_modify(|v| {
                v.items += n;
                v.producer = p;
            });
        }
        self.ack(sock, start, end, false).await
    }

    async fn on_tick(&mut self, _sock: &mut TcpStream) -> Result<(), String> {
        match self.state {
            DbState::WaitDbSync => {
                let info = self.dbsync_dir().join("info");
                if info.is_file() {
                    self.load_dump(&info)?;
                } else if self.last_recv.elapsed() > self.cfg.recv_timeout {
                    self.set_state(DbState::TryConnect);
                }
            }
            DbState::Connected if self.last_recv.elapsed() > self.cfg.recv_timeout => {
                warn!(
                    "new-slave double {}: nothing from the master for {:?}: back to TrySync",
                    self.cfg.port, self.cfg.recv_timeout
                );
                self.set_state(DbState::TryConnect);
            }
            _ => {}
        }
        Ok(())
    }

    fn load_dump(&mut self, info_path: &std::path::Path) -> Result<(), String> {
        let text = std::fs::read(info_path).map_err(|e| e.to_string())?;
        let info = match DumpInfo::parse(&text) {
            Ok(i) if i.ip == self.cfg.master_ip && i.port == self.cfg.master.port() => i,
            Ok(i) => {
                self.set_state(DbState::Error(format!(
                    "info names master {}:{}, not {}:{}",
                    i.ip,
                    i.port,
                    self.cfg.master_ip,
                    self.cfg.master.port()
                )));
                return Ok(());
            }
            Err(e) => {
                self.set_state(DbState::Error(format!("bad info file: {e}")));
                return Ok(());
            }
        };
        let ks = crate::sim::dump::load_types(
            &self.dbsync_dir(),
            crate::sim::old_master::Flavor::V30,
            u64::from(now()),
        )
        .map_err(|e| format!("loading the full sync: {e}"))?;
        let _ = std::fs::remove_file(info_path);
        *self.keyspace.lock().unwrap() = ks;
        self.binlog
            .set_producer_status(info.pos, now())
            .map_err(|e| e.to_string())?;
        if self.cfg.ack_mode == AckMode::AckOnly {
            self.ack_only_pos = Some(info.pos);
        }
        info!(
            "new-slave double {}: full sync loaded, binlog at {}",
            self.cfg.port,
            self.binlog.producer()
        );
        self.view.send_modify(|v| v.full_syncs += 1);
        self.set_state(DbState::TryConnect);
        Ok(())
    }
}
