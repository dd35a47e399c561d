//! One sink: the life of one target. Connect → read the markers → full sync (when the target
//! holds no position of the current epoch, or one the journal no longer has) → stream from the
//! journal; a lost target is reconnected with backoff and resumed from its markers; a refused
//! command stops the sink under policy `stop`. Each sink has its own journal cursor, so a slow
//! or dead target holds back nobody else.

use super::conn::{ConnError, RespConn};
use super::fullsync::{open_source, record_commands};
use super::marker::{load_state, marker_key, save_state, Marker};
use super::rules::{conn_of, has_rule, plan, Plan};
use super::status::{TargetRegistry, TargetState, TargetStatus};
use super::wire::{pipeline_safe, scan_command};
use super::writer::{self, Cmds, Op, WriterCtx, WriterEnd, WriterStats};
use super::{OnError, SinkConfig};
use crate::downstream::source::{JournalCursor, JournalSource, Located};
use crate::dump::DumpRecord;
use crate::formats::item::{BinlogItem, ITEM_HEADER_LEN, ITEM_TYPE};
use crate::formats::resp::{display_argv, Argv, Reply};
use crate::formats::BinlogPos;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Items dispatched and not yet known applied, in journal order: (end, next logic id,
/// (connection, its op sequence number) or `None` when nothing had to be applied).
type Inflight = VecDeque<(BinlogPos, u64, Option<(usize, u64)>)>;

/// How a session ended.
enum End {
    Cancelled,
    /// Start a new session at once (new epoch, journal moved under us).
    Restart(String),
    /// The target went away: reconnect with backoff.
    Lost(String),
    /// A refused batch lies before an applied one: the next session full-syncs.
    Hole(String),
    /// Stop the sink.
    Stopped(String),
}

impl From<ConnError> for End {
    fn from(e: ConnError) -> End {
        match e {
            ConnError::Lost(s) => End::Lost(s),
            ConnError::Refused(s) => End::Stopped(s),
        }
    }
}

impl From<WriterEnd> for End {
    fn from(e: WriterEnd) -> End {
        match e {
            WriterEnd::Lost(s) => End::Lost(s),
            WriterEnd::Rejected(s) => End::Stopped(s),
            WriterEnd::Hole(s) => End::Hole(s),
        }
    }
}

/// Runs a sink until `cancel`.
pub async fn run<J: JournalSource>(
    cfg: SinkConfig,
    journal: J,
    reg: TargetRegistry,
    cancel: CancellationToken,
) {
    let name = cfg.name.clone();
    reg.upsert(TargetStatus::new(&name, &cfg.url.to_string(), cfg.conns));
    let pin: std::sync::Mutex<Option<(u32, J::Cursor)>> = std::sync::Mutex::new(None);
    if let Some(m) = cfg.state_path.as_deref().and_then(load_state) {
        reg.update(&name, |s| {
            s.epoch = m.epoch;
            s.applied = m.pos;
            s.applied_next_id = m.next_id;
        });
        repin(&journal, &pin, m.epoch, m.pos);
    }
    let mut backoff = Duration::from_millis(200);
    let mut force_full = false;
    // Batches in flight per connection; lowered to 1 for good after a hole under policy skip.
    let mut in_flight = cfg.in_flight;
    loop {
        let started = Instant::now();
        let mut s = Session {
            cfg: &cfg,
            journal: &journal,
            reg: &reg,
            cancel: &cancel,
            pin: &pin,
            last_save: Instant::now() - Duration::from_secs(10),
            force_full: &mut force_full,
            in_flight,
        };
        let end = match s.run().await {
            End::Hole(why) => {
                force_full = true;
                match cfg.on_error {
                    OnError::Stop => End::Stopped(why),
                    OnError::Skip => {
                        // A batch the target keeps refusing would make the same hole after
                        // every full sync: with one batch on the wire a refused one is retried
                        // without its refused commands, in order, as `skip` means.
                        if in_flight > 1 {
                            warn!("resp target {name}: in_flight lowered from {in_flight} to 1 until the relay restarts, so that a refused batch can be skipped in order instead of forcing full syncs");
                            in_flight = 1;
                        }
                        End::Lost(why)
                    }
                }
            }
            e => e,
        };
        match end {
            End::Cancelled | End::Hole(_) => return,
            End::Restart(why) => {
                info!("resp target {name}: {why}; starting over");
            }
            End::Lost(why) => {
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(200);
                }
                warn!("resp target {name}: {why}; reconnecting in {backoff:?} (resumes from the target's markers)");
                reg.update(&name, |s| {
                    s.state = TargetState::Reconnecting;
                    s.last_error = Some(why.clone());
                    s.reconnects += 1;
                });
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(cfg.max_backoff);
            }
            End::Stopped(why) => {
                error!("resp target {name} STOPPED: {why}. Fix the target (or set on_error = \"skip\"), then restart the relay: it resumes from the target's markers");
                reg.update(&name, |s| {
                    s.state = TargetState::Stopped;
                    s.last_error = Some(why.clone());
                });
                cancel.cancelled().await;
                return;
            }
        }
    }
}

/// Keeps a registered cursor at the applied position so retention keeps the journal the
/// target still needs (like a slave's cursor).
fn repin<J: JournalSource>(
    journal: &J,
    pin: &std::sync::Mutex<Option<(u32, J::Cursor)>>,
    epoch: u64,
    pos: BinlogPos,
) {
    let mut pin = pin.lock().unwrap();
    if pin.as_ref().is_some_and(|(f, _)| *f == pos.filenum) {
        return;
    }
    if epoch == journal.synced().epoch && journal.locate(pos) == Located::InRange {
        if let Ok(c) = journal.open(pos) {
            *pin = Some((pos.filenum, c));
        }
    }
}

/// The writers of one session.
struct Writers {
    txs: Vec<mpsc::Sender<Vec<Op>>>,
    stats: Vec<Arc<WriterStats>>,
    ends: mpsc::Receiver<WriterEnd>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Writers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Writers {
    fn spawn(conns: Vec<RespConn>, base: WriterCtx, skip: &[Option<BinlogPos>]) -> Writers {
        let (end_tx, ends) = mpsc::channel(conns.len().max(1));
        let mut w = Writers {
            txs: Vec::new(),
            stats: Vec::new(),
            ends,
            tasks: Vec::new(),
        };
        for (i, conn) in conns.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(64);
            let stats = Arc::new(WriterStats::default());
            let ctx = WriterCtx {
                conn: i,
                skip_through: skip.get(i).copied().flatten(),
                ..base.clone()
            };
            let end_tx = end_tx.clone();
            let st = stats.clone();
            w.tasks.push(tokio::spawn(async move {
                if let Some(e) = writer::run(conn, rx, ctx, st).await {
                    let _ = end_tx.send(e).await;
                }
            }));
            w.txs.push(tx);
            w.stats.push(stats);
        }
        w
    }

    async fn failure(&mut self) -> End {
        match tokio::time::timeout(Duration::from_secs(5), self.ends.recv()).await {
            Ok(Some(e)) => e.into(),
            _ => End::Lost("a writer stopped without saying why".into()),
        }
    }

    async fn send(&mut self, c: usize, op: Op, cancel: &CancellationToken) -> Result<(), End> {
        self.send_many(c, vec![op], cancel).await
    }

    /// Sends every connection its collected ops (emptying `bufs`).
    async fn flush(&mut self, bufs: &mut [Vec<Op>], cancel: &CancellationToken) -> Result<(), End> {
        for (c, b) in bufs.iter_mut().enumerate() {
            if !b.is_empty() {
                self.send_many(c, std::mem::take(b), cancel).await?;
            }
        }
        Ok(())
    }

    async fn send_many(
        &mut self,
        c: usize,
        ops: Vec<Op>,
        cancel: &CancellationToken,
    ) -> Result<(), End> {
        let tx = self.txs[c].clone();
        tokio::select! {
            r = tx.send(ops) => match r {
                Ok(()) => Ok(()),
                Err(_) => Err(self.failure().await),
            },
            Some(e) = self.ends.recv() => Err(e.into()),
            _ = cancel.cancelled() => Err(End::Cancelled),
        }
    }

    /// Waits until connections `which` applied everything sent to them.
    async fn fence(&mut self, which: &[usize], cancel: &CancellationToken) -> Result<(), End> {
        let mut rxs = Vec::new();
        for &c in which {
            let (tx, rx) = oneshot::channel();
            self.send(c, Op::Fence(tx), cancel).await?;
            rxs.push(rx);
        }
        for rx in rxs {
            tokio::select! {
                r = rx => if r.is_err() { return Err(self.failure().await) },
                Some(e) = self.ends.recv() => return Err(e.into()),
                _ = cancel.cancelled() => return Err(End::Cancelled),
            }
        }
        Ok(())
    }

    fn all(&self) -> Vec<usize> {
        (0..self.txs.len()).collect()
    }
}

struct Session<'a, J: JournalSource> {
    cfg: &'a SinkConfig,
    journal: &'a J,
    reg: &'a TargetRegistry,
    cancel: &'a CancellationToken,
    pin: &'a std::sync::Mutex<Option<(u32, J::Cursor)>>,
    last_save: Instant,
    /// Full-sync whatever the markers say (a refused batch lies before an applied one).
    force_full: &'a mut bool,
    /// Batches on the wire per connection this session.
    in_flight: usize,
}

/// Where streaming starts.
struct Start {
    pos: BinlogPos,
    next_id: u64,
    skip: Vec<Option<BinlogPos>>,
}

impl<J: JournalSource> Session<'_, J> {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn connect(&self, n: usize, into: &mut Vec<RespConn>) -> Result<(), End> {
        while into.len() < n {
            let c = tokio::select! {
                r = RespConn::connect(&self.cfg.url, self.cfg.reply_timeout) => r?,
                _ = self.cancel.cancelled() => return Err(End::Cancelled),
            };
            into.push(c);
        }
        into.truncate(n);
        Ok(())
    }

    async fn read_marker(&self, conn: &mut RespConn, c: usize) -> Result<Option<Marker>, End> {
        match conn
            .call(&vec![b"GET".to_vec(), marker_key(self.name(), c)])
            .await?
        {
            Reply::Bulk(Some(v)) => {
                let m = Marker::decode(&v);
                if m.is_none() {
                    warn!(
                        "resp target {}: marker {} holds {:?}, not a marker; the target will be full-synced",
                        self.name(),
                        String::from_utf8_lossy(&marker_key(self.name(), c)),
                        String::from_utf8_lossy(&v)
                    );
                }
                Ok(m)
            }
            Reply::Bulk(None) => Ok(None),
            Reply::Error(e) => Err(End::Stopped(format!(
                "{}: GET of the marker key refused: {e}",
                conn.name
            ))),
            other => Err(End::Lost(format!(
                "{}: unexpected GET reply {other:?}",
                conn.name
            ))),
        }
    }

    async fn run(&mut self) -> End {
        match self.run_inner().await {
            Ok(()) => End::Cancelled,
            Err(e) => e,
        }
    }

    async fn run_inner(&mut self) -> Result<(), End> {
        // The relay has no data until its first full sync from the old master.
        let synced = self.journal.synced();
        if synced.upstream.is_none() && synced.epoch == 0 {
            self.reg
                .update(self.name(), |s| s.state = TargetState::WaitingDump);
            let mut rx = self.journal.watch();
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.cancel.cancelled() => return Err(End::Cancelled),
            }
            return Err(End::Restart("waiting for the relay's first dump".into()));
        }
        let mut conns = Vec::new();
        self.connect(1, &mut conns).await?;
        let transactions = conns[0].supports_multi().await?;
        let epoch = self.journal.epoch();
        let mut n = self.cfg.conns;
        if let Some(m0) = self.read_marker(&mut conns[0], 0).await? {
            if m0.epoch == epoch.number && m0.conns != n {
                warn!(
                    "resp target {}: it was applied with {} connections; keeping {} (the key → connection mapping must not change mid-epoch; it changes at the next full sync)",
                    self.name(), m0.conns, m0.conns
                );
                n = m0.conns;
            }
        }
        self.connect(n, &mut conns).await?;
        let mut markers = Vec::with_capacity(n);
        for c in 0..n {
            let m = self.read_marker(&mut conns[0], c).await?;
            markers.push(m);
        }
        self.reg.update(self.name(), |s| {
            s.conns = n;
            s.transactions = transactions;
        });
        let base = WriterCtx {
            name: self.cfg.name.clone(),
            conn: 0,
            conns: n,
            epoch: epoch.number,
            transactions,
            on_error: self.cfg.on_error,
            skip_through: None,
            batch_cmds: self.cfg.batch_cmds,
            batch_bytes: self.cfg.batch_bytes,
            in_flight: self.in_flight,
            coalesce_sets: self.cfg.coalesce_sets,
        };
        let resume = if *self.force_full {
            info!(
                "resp target {}: full sync (a refused batch lay before an applied one)",
                self.name()
            );
            None
        } else {
            self.resume_point(&markers, epoch.number)?
        };
        let (start, mut w) = match resume {
            Some(start) => {
                info!(
                    "resp target {}: resuming at journal position {} (epoch {}, {n} connections, {})",
                    self.name(),
                    start.pos,
                    epoch.number,
                    if transactions { "MULTI/EXEC: exactly once" } else { "no MULTI: at least once" }
                );
                let w = Writers::spawn(conns, base, &start.skip);
                (start, w)
            }
            None => {
                // Forget the old position first: a load cut short starts over.
                let mut del: Argv = vec![b"DEL".to_vec()];
                del.extend((0..n.max(self.cfg.conns)).map(|c| marker_key(self.name(), c)));
                if let Reply::Error(e) = conns[0].call(&del).await? {
                    return Err(End::Stopped(format!(
                        "{}: DEL of the marker keys refused: {e}",
                        conns[0].name
                    )));
                }
                let mut w = Writers::spawn(conns, base, &[]);
                let start = self.full_sync(&mut w, &epoch).await?;
                *self.force_full = false;
                (start, w)
            }
        };
        self.stream(&mut w, start, epoch.number).await
    }

    /// Where the markers let streaming resume, or `None` for a full sync.
    fn resume_point(&self, markers: &[Option<Marker>], epoch: u64) -> Result<Option<Start>, End> {
        let mut ms = Vec::new();
        for m in markers {
            match m {
                Some(m) if m.epoch == epoch => ms.push(*m),
                Some(m) => {
                    info!(
                        "resp target {}: its markers are of epoch {}, the relay is at epoch {epoch}: full sync",
                        self.name(),
                        m.epoch
                    );
                    return Ok(None);
                }
                None => return Ok(None),
            }
        }
        for m in &ms {
            match self.journal.locate(m.pos) {
                Located::InRange => {}
                Located::Purged => {
                    warn!(
                        "resp target {}: applied up to {} but the journal no longer holds it: full sync",
                        self.name(),
                        m.pos
                    );
                    return Ok(None);
                }
                other => {
                    return Err(End::Stopped(format!(
                        "its marker says applied up to {} of epoch {epoch}, but that is {other:?} in this relay's journal (ends at {}): the target was fed by another relay or journal; delete its keys {}{}:* to full-sync it",
                        m.pos,
                        self.journal.synced().end,
                        super::marker::MARKER_PREFIX,
                        self.name()
                    )))
                }
            }
        }
        let Some(min) = ms.iter().min_by_key(|m| m.pos) else {
            return Ok(None);
        };
        Ok(Some(Start {
            pos: min.pos,
            next_id: min.next_id,
            skip: ms.iter().map(|m| Some(m.pos)).collect(),
        }))
    }

    async fn full_sync(
        &mut self,
        w: &mut Writers,
        epoch: &crate::downstream::source::Epoch,
    ) -> Result<Start, End> {
        let name = self.cfg.name.clone();
        self.reg.update(&name, |s| {
            s.state = TargetState::FullSync;
            s.full_syncs += 1;
            s.fullsync_keys = 0;
            s.fullsync_records = 0;
        });
        let started = Instant::now();
        let n = w.txs.len();
        let (mut records, mut keys) = (0u64, 0u64);
        match &epoch.dump_dir {
            Some(dir) => {
                info!(
                    "resp target {name}: full sync from epoch {}'s dump {} (then the journal from {})",
                    epoch.number,
                    dir.display(),
                    epoch.start
                );
                let (rtx, mut rrx) = mpsc::channel::<Result<DumpRecord, String>>(64);
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    let mut src = match open_source(&dir) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = rtx.blocking_send(Err(e.to_string()));
                            return;
                        }
                    };
                    loop {
                        let r = match src.next_record() {
                            Ok(Some(r)) => Ok(r),
                            Ok(None) => return,
                            Err(e) => Err(e.to_string()),
                        };
                        let stop = r.is_err();
                        if rtx.blocking_send(r).is_err() || stop {
                            return;
                        }
                    }
                });
                loop {
                    let r = tokio::select! {
                        r = rrx.recv() => r,
                        _ = self.cancel.cancelled() => return Err(End::Cancelled),
                    };
                    let Some(r) = r else { break };
                    let rec = r.map_err(|e| End::Stopped(format!("full sync: {e}")))?;
                    records += 1;
                    keys += u64::from(rec.first);
                    let c = conn_of(&rec.key, n);
                    w.send(
                        c,
                        Op::Load(Cmds::encode(&record_commands(&rec, self.cfg.max_members))),
                        self.cancel,
                    )
                    .await?;
                    if records % 1000 == 0 {
                        self.reg.update(&name, |s| {
                            s.fullsync_records = records;
                            s.fullsync_keys = keys;
                        });
                        if self.journal.synced().epoch != epoch.number {
                            return Err(End::Restart(
                                "the relay took a new full sync during the load".into(),
                            ));
                        }
                    }
                }
            }
            None if epoch.number == 0 => {
                info!(
                    "resp target {name}: the journal began without a dump; streaming it from {}",
                    epoch.start
                );
            }
            None => {
                return Err(End::Lost(format!(
                    "epoch {}'s dump is missing from the data dir; cannot full-sync",
                    epoch.number
                )))
            }
        }
        // Everything loaded, then every marker moves to J_e in one step.
        let all = w.all();
        w.fence(&all, self.cancel).await?;
        let synced = self.journal.synced();
        let next_id = if synced.end == epoch.start {
            synced.logic_id
        } else {
            0
        };
        w.send(
            0,
            Op::Barrier {
                end: epoch.start,
                next_id,
                cmds: Cmds::default(),
            },
            self.cancel,
        )
        .await?;
        w.fence(&[0], self.cancel).await?;
        let commands: u64 = w
            .stats
            .iter()
            .map(|s| s.commands.load(Ordering::Relaxed))
            .sum();
        info!(
            "resp target {name}: full sync done: {keys} keys ({records} records, {commands} commands) in {:.1?}",
            started.elapsed()
        );
        self.reg.update(&name, |s| {
            s.fullsync_records = records;
            s.fullsync_keys = keys;
            s.epoch = epoch.number;
            s.applied = epoch.start;
            s.applied_next_id = next_id;
        });
        Ok(Start {
            pos: epoch.start,
            next_id,
            skip: Vec::new(),
        })
    }

    async fn stream(&mut self, w: &mut Writers, start: Start, epoch: u64) -> Result<(), End> {
        let name = self.cfg.name.clone();
        let n = w.txs.len();
        let mut cursor = match self.journal.open(start.pos) {
            Ok(c) => c,
            Err(e) => {
                return Err(End::Restart(format!(
                    "cannot open the journal at {}: {e}",
                    start.pos
                )))
            }
        };
        self.reg.update(&name, |s| s.state = TargetState::Streaming);
        let mut watch = self.journal.watch();
        let mut seq: Vec<u64> = w
            .stats
            .iter()
            .map(|s| s.done.load(Ordering::Acquire))
            .collect();
        let mut inflight: Inflight = VecDeque::new();
        let mut bufs: Vec<Vec<Op>> = (0..n).map(|_| Vec::new()).collect();
        let mut p = Progress {
            applied: start.pos,
            next_id: start.next_id,
            entries: 0,
            skipped: 0,
            rate_at: Instant::now(),
            rate_entries: 0,
            rate: 0.0,
        };
        let base_entries = self.reg.get(&name).map(|s| s.applied_entries).unwrap_or(0);
        loop {
            if self.journal.synced().epoch != epoch {
                return Err(End::Restart(
                    "the relay took a new full sync from the old master (new epoch)".into(),
                ));
            }
            let mut got = 0;
            while got < 512 {
                let it = match cursor.try_next().await {
                    Ok(Some(it)) => it,
                    Ok(None) => break,
                    Err(e) => return Err(End::Restart(format!("journal read failed: {e}"))),
                };
                got += 1;
                let next_id = it.logic_id + 1;
                // The common case: a per-key command without a rule of its own goes to the
                // target as the journal holds it (no decode, no copy).
                if let Some((c, solo)) = fast_path(&it.bytes, n) {
                    let mut wire = it.bytes;
                    bytes::Buf::advance(&mut wire, ITEM_HEADER_LEN);
                    let cmds = Cmds::one(wire);
                    seq[c] += 1;
                    inflight.push_back((it.end, next_id, Some((c, seq[c]))));
                    bufs[c].push(Op::Item {
                        end: it.end,
                        next_id,
                        cmds,
                        solo,
                    });
                    continue;
                }
                let item = BinlogItem::decode(&it.bytes)
                    .and_then(|i| i.argv())
                    .map_err(|e| {
                        End::Stopped(format!("journal item at {} is undecodable: {e}", it.start))
                    })?;
                match plan(&item) {
                    Plan::PerKey(cmds) => {
                        let mut per: Vec<Vec<Argv>> = vec![Vec::new(); n];
                        for (k, c) in cmds {
                            per[conn_of(&k, n)].push(c);
                        }
                        for (c, cmds) in per.into_iter().enumerate() {
                            if cmds.is_empty() {
                                continue;
                            }
                            let solo = !cmds.iter().all(|a| pipeline_safe(&a[0], a.len()));
                            seq[c] += 1;
                            inflight.push_back((it.end, next_id, Some((c, seq[c]))));
                            bufs[c].push(Op::Item {
                                end: it.end,
                                next_id,
                                cmds: Cmds::encode(&cmds),
                                solo,
                            });
                        }
                    }
                    Plan::Barrier(cmds) => {
                        w.flush(&mut bufs, self.cancel).await?;
                        let all = w.all();
                        w.fence(&all, self.cancel).await?;
                        seq[0] += 1;
                        inflight.push_back((it.end, next_id, Some((0, seq[0]))));
                        w.send(
                            0,
                            Op::Barrier {
                                end: it.end,
                                next_id,
                                cmds: Cmds::encode(&cmds),
                            },
                            self.cancel,
                        )
                        .await?;
                        w.fence(&[0], self.cancel).await?;
                    }
                    Plan::Nothing => inflight.push_back((it.end, next_id, None)),
                    Plan::Unsupported(why) => {
                        let what = format!(
                            "journal item at {} (epoch {epoch}) `{}` cannot be replayed: {why}",
                            it.start,
                            display_argv(&item, 48)
                        );
                        match self.cfg.on_error {
                            OnError::Stop => {
                                w.flush(&mut bufs, self.cancel).await?;
                                let all = w.all();
                                w.fence(&all, self.cancel).await?;
                                self.progress(w, &mut inflight, &mut p, base_entries);
                                return Err(End::Stopped(what));
                            }
                            OnError::Skip => {
                                warn!("resp target {name}: {what}; skipped (policy skip)");
                                p.skipped += 1;
                                inflight.push_back((it.end, next_id, None));
                            }
                        }
                    }
                }
            }
            w.flush(&mut bufs, self.cancel).await?;
            self.progress(w, &mut inflight, &mut p, base_entries);
            if got == 0 {
                tokio::select! {
                    r = watch.changed() => if r.is_err() { return Err(End::Cancelled) },
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    Some(e) = w.ends.recv() => return Err(e.into()),
                    _ = self.cancel.cancelled() => {
                        self.progress(w, &mut inflight, &mut p, base_entries);
                        self.save(epoch, &p, true);
                        return Err(End::Cancelled);
                    }
                }
            }
        }
    }

    /// Moves the applied position over every item all of whose parts are applied.
    fn progress(
        &mut self,
        w: &Writers,
        inflight: &mut Inflight,
        p: &mut Progress,
        base_entries: u64,
    ) {
        while let Some(&(end, next_id, who)) = inflight.front() {
            if let Some((c, s)) = who {
                if w.stats[c].done.load(Ordering::Acquire) < s {
                    break;
                }
            }
            p.applied = end;
            p.next_id = next_id;
            p.entries += 1;
            inflight.pop_front();
        }
        let dt = p.rate_at.elapsed();
        if dt >= Duration::from_secs(1) {
            p.rate = (p.entries - p.rate_entries) as f64 / dt.as_secs_f64();
            p.rate_entries = p.entries;
            p.rate_at = Instant::now();
        }
        let commands: u64 = w
            .stats
            .iter()
            .map(|s| s.commands.load(Ordering::Relaxed))
            .sum();
        let skipped: u64 = w
            .stats
            .iter()
            .map(|s| s.skipped.load(Ordering::Relaxed))
            .sum();
        let epoch = self.journal.synced().epoch;
        self.reg.update(&self.cfg.name, |s| {
            s.epoch = epoch;
            s.applied = p.applied;
            s.applied_next_id = p.next_id;
            s.applied_entries = base_entries + p.entries;
            s.commands = commands;
            s.rate = p.rate;
            s.skipped = skipped + p.skipped;
        });
        repin(self.journal, self.pin, epoch, p.applied);
        self.save(epoch, p, false);
    }

    fn save(&mut self, epoch: u64, p: &Progress, now: bool) {
        let Some(path) = &self.cfg.state_path else {
            return;
        };
        if !now && self.last_save.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_save = Instant::now();
        let m = Marker {
            epoch,
            pos: p.applied,
            next_id: p.next_id,
            conns: self.cfg.conns,
        };
        if let Err(e) = save_state(path, &m) {
            warn!(
                "resp target {}: cannot write {}: {e}",
                self.cfg.name,
                path.display()
            );
        }
    }
}

struct Progress {
    applied: BinlogPos,
    next_id: u64,
    entries: u64,
    skipped: u64,
    rate_at: Instant,
    rate_entries: u64,
    rate: f64,
}

/// A journal item replayed verbatim (its own bytes after the header): its connection and
/// whether it must travel alone. `None` when the item needs the rule table (or is malformed:
/// the strict decoder then names the fault).
fn fast_path(item: &[u8], n: usize) -> Option<(usize, bool)> {
    if item.len() < ITEM_HEADER_LEN
        || u16::from_le_bytes([item[0], item[1]]) != ITEM_TYPE
        || u32::from_le_bytes(item[30..34].try_into().ok()?) as usize
            != item.len() - ITEM_HEADER_LEN
    {
        return None;
    }
    let content = &item[ITEM_HEADER_LEN..];
    let shape = scan_command(content)?;
    let key = shape.key.clone()?;
    let name = &content[shape.name.clone()];
    // `set` has a rule only for Pika's `… VX` form, which needs more than three arguments.
    if has_rule(name) && !(shape.argc == 3 && name.eq_ignore_ascii_case(b"set")) {
        return None;
    }
    let solo = !pipeline_safe(name, shape.argc);
    let c = conn_of(&content[key], n);
    Some((c, solo))
}
