//! One connection's writer: takes ops in order, packs them into batches and keeps up to
//! `in_flight` batches on the wire at once (the target answers in order, so each batch's replies
//! settle it in turn). A batch is applied either inside `MULTI … SET <marker> … EXEC` (targets
//! with transactions: data and marker land together or not at all) or as plain pipelined
//! commands followed by the marker (targets without: at least once, see the module
//! documentation of [`super`]).
//!
//! Several batches in flight and exactness: a relay killed with K batches in flight leaves the
//! target with a prefix of them applied, each with its own marker, so resuming from the markers
//! is still exact. A batch the target *refuses as a whole* (`EXECABORT`, `OOM`, `READONLY` …)
//! while later batches were already sent is the one case a prefix does not hold: the writer then
//! reads the replies of every later batch; if all of them were refused as well, nothing after the
//! marker is applied and the batch is retried or the sink stops exactly as with one batch in
//! flight; if one of them was applied, the marker no longer describes the target (a refused
//! batch lies before it), so the connection's marker is deleted and the target is full-synced
//! ([`WriterEnd::Hole`]). Commands outside the pipeline-safe table
//! ([`super::wire::pipeline_safe`]), which the target may refuse for a reason of their own
//! (unknown name, arity), travel in a batch of their own with nothing else in flight.

use super::coalesce::{plain_set_pairs, SetRun};
use super::conn::{ConnError, RespConn};
use super::marker::{marker_key, Marker};
use super::wire::{error_text, exec_reply, put_cmd, reply_len, ExecReply};
use super::OnError;
use crate::formats::resp::{display_argv, parse_argv_exact, Argv};
use crate::formats::BinlogPos;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Encoded Redis commands (canonical RESP arrays, back to back).
#[derive(Debug, Clone, Default)]
pub struct Cmds {
    /// The encoded commands.
    pub wire: Bytes,
    /// How many.
    pub n: usize,
}

impl Cmds {
    /// Encodes argvs.
    pub fn encode(cmds: &[Argv]) -> Cmds {
        let mut out = BytesMut::new();
        for c in cmds {
            let parts: Vec<&[u8]> = c.iter().map(|p| p.as_slice()).collect();
            put_cmd(&mut out, &parts);
        }
        Cmds {
            wire: out.freeze(),
            n: cmds.len(),
        }
    }

    /// One command already encoded (a journal item's content, zero copy).
    pub fn one(wire: Bytes) -> Cmds {
        Cmds { wire, n: 1 }
    }
}

/// Work for a writer.
#[derive(Debug)]
pub enum Op {
    /// Full-sync commands of one record (no marker; a full sync restarts from the beginning).
    Load(Cmds),
    /// The commands of one journal item that belong to this connection.
    Item {
        /// End of the item in the journal.
        end: BinlogPos,
        /// Logic id of the item after it.
        next_id: u64,
        /// Redis commands.
        cmds: Cmds,
        /// Send it in a batch of its own with nothing else in flight (the target may refuse
        /// it when queued for a reason of its own).
        solo: bool,
    },
    /// Commands applied after everything else was, moving every connection's marker to `end`
    /// (multi-key commands, the end of a full sync).
    Barrier {
        /// Position every marker moves to.
        end: BinlogPos,
        /// Logic id of the next item.
        next_id: u64,
        /// Redis commands (may be empty).
        cmds: Cmds,
    },
    /// Answered once everything sent before is applied.
    Fence(oneshot::Sender<()>),
}

/// Why a writer stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterEnd {
    /// The target went away: reconnect and resume from the markers.
    Lost(String),
    /// The target refused a command under policy `stop` (or refused us): stop the sink.
    Rejected(String),
    /// The target refused a batch as a whole and applied a later one: the connection's marker
    /// was dropped, the target needs a full sync.
    Hole(String),
}

/// Counters a writer shares with its sink.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Ops of kind Item/Barrier completed (applied or skipped as already applied), in order.
    pub done: AtomicU64,
    /// Commands acknowledged.
    pub commands: AtomicU64,
    /// Commands refused and skipped.
    pub skipped: AtomicU64,
}

/// What a writer needs to know.
#[derive(Debug, Clone)]
pub struct WriterCtx {
    /// Sink name (marker keys).
    pub name: String,
    /// This connection's index.
    pub conn: usize,
    /// Connections of the sink.
    pub conns: usize,
    /// Epoch written into markers.
    pub epoch: u64,
    /// Use `MULTI`/`EXEC`.
    pub transactions: bool,
    /// What to do when the target refuses a command.
    pub on_error: OnError,
    /// Items ending at or before this are already applied on this connection (its marker).
    pub skip_through: Option<BinlogPos>,
    /// Most commands per batch.
    pub batch_cmds: usize,
    /// Most bytes per batch.
    pub batch_bytes: usize,
    /// Most batches on the wire at once.
    pub in_flight: usize,
    /// Runs of plain `set`s go as one `MSET` ([`super::coalesce`]).
    pub coalesce_sets: bool,
}

/// One batch on the wire, waiting for its replies.
struct Flight {
    /// Sent inside `MULTI … EXEC`.
    tx: bool,
    /// The whole batch as sent (empty: encode it from the parts).
    wire: Bytes,
    /// The data commands, encoded.
    data: Bytes,
    /// Journal position of each data command (`None`: full sync); for an `MSET` of a run of
    /// `set`s, the position of the first.
    ats: Vec<Option<BinlogPos>>,
    /// Journal commands each data command stands for (more than one for an `MSET` run).
    sizes: Vec<u32>,
    /// One `MSET` that carries the markers as its last pairs: a single reply settles it, and an
    /// error means nothing of it was applied.
    atomic: bool,
    /// Marker `SET`s after the data.
    markers: Vec<Argv>,
    /// Items completed with it.
    items: u64,
    /// Fences answered with it.
    fences: Vec<oneshot::Sender<()>>,
    /// Nothing else in flight with it.
    solo: bool,
    /// Top-level replies read so far.
    got: usize,
    /// Errors answered when queued (tx) or run (plain): index among data + markers.
    errs: Vec<(usize, String)>,
    /// `MULTI` refused.
    multi_err: Option<String>,
}

impl Flight {
    fn n(&self) -> usize {
        self.ats.len()
    }

    fn expected(&self) -> usize {
        if self.atomic {
            return 1;
        }
        self.n() + self.markers.len() + if self.tx { 2 } else { 0 }
    }

    /// Journal commands the batch applies.
    fn count(&self) -> u64 {
        self.sizes.iter().map(|&k| u64::from(k)).sum()
    }

    /// The data command at `idx`, decoded (error paths only).
    fn cmd(&self, idx: usize) -> Argv {
        let mut p = 0;
        for _ in 0..idx {
            match reply_len(&self.data[p..]) {
                Ok(Some(l)) => p += l,
                _ => return Vec::new(),
            }
        }
        match reply_len(&self.data[p..]) {
            Ok(Some(l)) => parse_argv_exact(&self.data[p..p + l]).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The same batch without the data commands at `drop` (sorted), ready to be sent again.
    fn without(mut self, drop: &[usize]) -> Flight {
        let mut data = BytesMut::with_capacity(self.data.len());
        let mut ats = Vec::with_capacity(self.ats.len());
        let mut sizes = Vec::with_capacity(self.ats.len());
        let mut p = 0;
        for (i, at) in self.ats.iter().enumerate() {
            let l = match reply_len(&self.data[p..]) {
                Ok(Some(l)) => l,
                _ => break,
            };
            if drop.binary_search(&i).is_err() {
                data.extend_from_slice(&self.data[p..p + l]);
                ats.push(*at);
                sizes.push(self.sizes[i]);
            }
            p += l;
        }
        self.data = data.freeze();
        self.wire = Bytes::new();
        self.ats = ats;
        self.sizes = sizes;
        if self.atomic {
            // The markers travelled inside the dropped MSET: they go as plain SETs now.
            self.atomic = false;
            self.tx = false;
        }
        self.reset();
        self
    }

    fn reset(&mut self) {
        self.got = 0;
        self.errs.clear();
        self.multi_err = None;
    }
}

/// What a batch's replies said.
enum Outcome {
    /// Applied (plain, or `EXEC` ran); the errors among its commands.
    Applied(Vec<(usize, String)>),
    /// Nothing of it was applied (tx refused as a whole): why.
    Refused(String),
}

/// The marker `SET`s of a batch ending at `m`: this connection's, or every connection's (`all`).
fn marker_cmds(ctx: &WriterCtx, m: Marker, all: bool) -> Vec<Argv> {
    let conns: Vec<usize> = if all {
        (0..ctx.conns).collect()
    } else {
        vec![ctx.conn]
    };
    conns
        .into_iter()
        .map(|c| vec![b"SET".to_vec(), marker_key(&ctx.name, c), m.encode()])
        .collect()
}

/// Closes the run of sets gathered so far (if any) into one `MSET` data command.
fn flush_run(
    run: &mut SetRun,
    data: &mut BytesMut,
    ats: &mut Vec<Option<BinlogPos>>,
    sizes: &mut Vec<u32>,
) {
    if !run.is_empty() {
        ats.push(run.first());
        sizes.push(run.flush(data, &[]) as u32);
    }
}

/// Runs a writer until its channel closes (`None`) or it fails.
pub async fn run(
    mut conn: RespConn,
    rx: mpsc::Receiver<Vec<Op>>,
    ctx: WriterCtx,
    stats: Arc<WriterStats>,
) -> Option<WriterEnd> {
    let mut w = Writer {
        ctx,
        stats,
        pending: VecDeque::new(),
        flights: VecDeque::new(),
        resend: VecDeque::new(),
        waiting_since: Instant::now(),
        run: SetRun::default(),
    };
    w.run(&mut conn, rx).await.err()
}

/// Most ops held before being sent (bounds memory when the target is slower than the journal).
const MAX_PENDING: usize = 8192;

struct Writer {
    ctx: WriterCtx,
    stats: Arc<WriterStats>,
    /// Ops received, not yet in a batch.
    pending: VecDeque<Op>,
    /// Batches on the wire, oldest first.
    flights: VecDeque<Flight>,
    /// Batches to send again (all refused; policy skip), before anything else, one at a time.
    resend: VecDeque<Flight>,
    /// Since when the oldest flight waits for a reply.
    waiting_since: Instant,
    /// `set`s gathered for the next `MSET` (kept for its buffer).
    run: SetRun,
}

fn lost(e: ConnError) -> WriterEnd {
    match e {
        ConnError::Lost(s) => WriterEnd::Lost(s),
        ConnError::Refused(s) => WriterEnd::Rejected(s),
    }
}

impl Writer {
    async fn run(
        &mut self,
        conn: &mut RespConn,
        mut rx: mpsc::Receiver<Vec<Op>>,
    ) -> Result<(), WriterEnd> {
        let mut closed = false;
        // The reply timeout is checked once a second rather than armed per wait (a timer per
        // wakeup costs more than the replies it waits for).
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while let Some((f, outcome)) = self.take_replies(conn)? {
                self.settle(conn, f, outcome).await?;
            }
            while !closed && self.pending.len() < MAX_PENDING {
                match rx.try_recv() {
                    Ok(ops) => self.pending.extend(ops),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                }
            }
            if let Some(f) = self.next_flight() {
                self.send(conn, f).await?;
                continue;
            }
            if closed && self.flights.is_empty() && self.pending.is_empty() {
                return Ok(());
            }
            let want_ops = !closed && self.pending.len() < MAX_PENDING;
            tokio::select! {
                v = rx.recv(), if want_ops => match v {
                    Some(ops) => self.pending.extend(ops),
                    None => closed = true,
                },
                r = conn.fill(None), if !self.flights.is_empty() => {
                    r.map_err(lost)?;
                    self.waiting_since = Instant::now();
                }
                _ = tick.tick(), if !self.flights.is_empty() => {
                    if self.waiting_since.elapsed() > conn.timeout() {
                        return Err(WriterEnd::Lost(format!(
                            "{}: read: no reply in {:?}",
                            conn.name,
                            conn.timeout()
                        )));
                    }
                }
            }
        }
    }

    fn window_open(&self, solo: bool) -> bool {
        if solo || !self.resend.is_empty() || self.flights.iter().any(|f| f.solo) {
            self.flights.is_empty()
        } else {
            self.flights.len() < self.ctx.in_flight.max(1)
        }
    }

    /// The next batch to send, if the window allows one. Fences and already-applied items that
    /// need no batch of their own ride with the last batch in flight.
    fn next_flight(&mut self) -> Option<Flight> {
        if !self.resend.is_empty() {
            return if self.flights.is_empty() {
                self.resend.pop_front()
            } else {
                None
            };
        }
        loop {
            let first = self.pending.front()?;
            let solo = matches!(first, Op::Barrier { .. } | Op::Item { solo: true, .. });
            if !self.window_open(solo) {
                return None;
            }
            // One buffer for the whole batch, sized up front: the journal's bytes are copied once.
            let est: usize = self
                .pending
                .iter()
                .take(self.ctx.batch_cmds)
                .map(|op| match op {
                    Op::Load(c) | Op::Item { cmds: c, .. } | Op::Barrier { cmds: c, .. } => {
                        c.wire.len()
                    }
                    Op::Fence(_) => 0,
                })
                .sum();
            let mut data = BytesMut::with_capacity(est.min(self.ctx.batch_bytes) + 256);
            let head = if self.ctx.transactions {
                put_cmd(&mut data, &[b"MULTI"]);
                data.len()
            } else {
                0
            };
            let mut ats = Vec::with_capacity(self.pending.len().min(self.ctx.batch_cmds));
            let mut sizes: Vec<u32> = Vec::with_capacity(ats.capacity());
            let mut count = 0usize;
            let mut items = 0u64;
            let mut fences = Vec::new();
            let mut marker: Option<(Marker, bool)> = None;
            let run = &mut self.run;
            while let Some(op) = self.pending.front() {
                let boundary = matches!(op, Op::Barrier { .. } | Op::Item { solo: true, .. });
                if boundary && (items > 0 || count > 0) {
                    break;
                }
                if count >= self.ctx.batch_cmds
                    || data.len() - head + run.bytes() >= self.ctx.batch_bytes
                {
                    break;
                }
                let op = self.pending.pop_front().expect("front");
                let (at, cmds, all, next_id, item) = match op {
                    Op::Fence(tx) => {
                        fences.push(tx);
                        break;
                    }
                    Op::Load(cmds) => (None, cmds, false, 0, false),
                    Op::Item {
                        end, next_id, cmds, ..
                    } => (Some(end), cmds, false, next_id, true),
                    Op::Barrier { end, next_id, cmds } => (Some(end), cmds, true, next_id, false),
                };
                if let Some(end) = at {
                    items += 1;
                    if self.ctx.skip_through.is_some_and(|s| end <= s) {
                        if boundary {
                            break;
                        }
                        continue;
                    }
                    let m = Marker {
                        epoch: self.ctx.epoch,
                        pos: end,
                        next_id,
                        conns: self.ctx.conns,
                    };
                    marker = Some((m, all || marker.is_some_and(|(_, a)| a)));
                }
                count += cmds.n;
                match plain_set_pairs(&cmds.wire)
                    .filter(|_| item && cmds.n == 1 && self.ctx.coalesce_sets)
                {
                    Some(pairs) => run.push(pairs, at),
                    None => {
                        flush_run(run, &mut data, &mut ats, &mut sizes);
                        data.extend_from_slice(&cmds.wire);
                        ats.extend(std::iter::repeat_n(at, cmds.n));
                        sizes.extend(std::iter::repeat_n(1, cmds.n));
                    }
                }
                if boundary {
                    break;
                }
            }
            let markers = marker
                .map(|(m, all)| marker_cmds(&self.ctx, m, all))
                .unwrap_or_default();
            // A batch of nothing but one run of sets, on a target with transactions: the markers
            // become the last pairs of its MSET (atomic on its own), with no MULTI/EXEC around.
            let atomic =
                ats.is_empty() && !run.is_empty() && self.ctx.transactions && !markers.is_empty();
            let (tx, wire, data, ats, sizes) = if atomic {
                let mut wire = BytesMut::with_capacity(run.bytes() + 64 + 96 * markers.len());
                let first = run.first();
                let extra: Vec<(&[u8], &[u8])> =
                    markers.iter().map(|m| (&m[1][..], &m[2][..])).collect();
                let n = run.flush(&mut wire, &extra);
                let wire = wire.freeze();
                (false, wire.clone(), wire, vec![first], vec![n as u32])
            } else {
                flush_run(run, &mut data, &mut ats, &mut sizes);
                if ats.is_empty() && markers.is_empty() {
                    // Nothing to send: complete with the last batch in flight, or now.
                    match self.flights.back_mut() {
                        Some(f) => {
                            f.items += items;
                            f.fences.append(&mut fences);
                        }
                        None => self.complete(items, fences),
                    }
                    continue;
                }
                let tx = self.ctx.transactions && !markers.is_empty();
                let data_end = data.len();
                for m in &markers {
                    put_cmd(&mut data, &[&m[0], &m[1], &m[2]]);
                }
                if tx {
                    put_cmd(&mut data, &[b"EXEC"]);
                }
                let all = data.freeze();
                let (wire, data) = if tx {
                    (all.clone(), all.slice(head..data_end))
                } else {
                    (all.slice(head..), all.slice(head..data_end))
                };
                (tx, wire, data, ats, sizes)
            };
            return Some(Flight {
                tx,
                wire,
                data,
                ats,
                sizes,
                atomic,
                markers,
                items,
                fences,
                solo,
                got: 0,
                errs: Vec::new(),
                multi_err: None,
            });
        }
    }

    fn complete(&self, items: u64, fences: Vec<oneshot::Sender<()>>) {
        self.stats.done.fetch_add(items, Ordering::Release);
        for f in fences {
            let _ = f.send(());
        }
    }

    async fn send(&mut self, conn: &mut RespConn, f: Flight) -> Result<(), WriterEnd> {
        if self.flights.is_empty() {
            self.waiting_since = Instant::now();
        }
        if !f.wire.is_empty() {
            let wire = f.wire.clone();
            self.flights.push_back(f);
            return conn.send(&wire).await.map_err(lost);
        }
        let mut out = BytesMut::with_capacity(f.data.len() + 64 + 96 * f.markers.len());
        if f.tx {
            put_cmd(&mut out, &[b"MULTI"]);
        }
        out.extend_from_slice(&f.data);
        for m in &f.markers {
            put_cmd(&mut out, &[&m[0], &m[1], &m[2]]);
        }
        if f.tx {
            put_cmd(&mut out, &[b"EXEC"]);
        }
        self.flights.push_back(f);
        conn.send(&out).await.map_err(lost)
    }

    /// Reads the replies already received; returns the oldest batch once all of its replies are
    /// in.
    fn take_replies(
        &mut self,
        conn: &mut RespConn,
    ) -> Result<Option<(Flight, Outcome)>, WriterEnd> {
        let Some(f) = self.flights.front_mut() else {
            return Ok(None);
        };
        let exp = f.expected();
        while f.got < exp {
            let buf = conn.rbuf();
            let len = match reply_len(buf) {
                Ok(Some(l)) => l,
                Ok(None) => return Ok(None),
                Err(e) => return Err(WriterEnd::Lost(format!("{}: bad reply: {e}", conn.name))),
            };
            let r = &buf[..len];
            let idx = f.got;
            if f.atomic {
                // One MSET with the markers inside: applied whole, or (an error) not at all.
                let outcome = match error_text(r) {
                    None => Outcome::Applied(Vec::new()),
                    Some(e) => {
                        f.errs.push((0, e.clone()));
                        Outcome::Refused(e)
                    }
                };
                conn.consume(len);
                let f = self.flights.pop_front().expect("front");
                self.waiting_since = Instant::now();
                return Ok(Some((f, outcome)));
            } else if f.tx && idx == 0 {
                f.multi_err = error_text(r);
            } else if f.tx && idx == exp - 1 {
                let outcome = match exec_reply(r) {
                    ExecReply::Ran(errs) if f.errs.is_empty() && f.multi_err.is_none() => {
                        Outcome::Applied(errs)
                    }
                    ExecReply::Ran(_) => {
                        return Err(WriterEnd::Lost(format!(
                            "{}: EXEC ran a transaction the target had refused to queue",
                            conn.name
                        )))
                    }
                    ExecReply::Refused(e) => Outcome::Refused(e),
                    ExecReply::Null => Outcome::Refused("EXEC answered null".into()),
                    ExecReply::Unexpected(e) => {
                        return Err(WriterEnd::Lost(format!(
                            "{}: unexpected EXEC reply {e:?}",
                            conn.name
                        )))
                    }
                };
                conn.consume(len);
                let f = self.flights.pop_front().expect("front");
                self.waiting_since = Instant::now();
                return Ok(Some((f, outcome)));
            } else if let Some(e) = error_text(r) {
                f.errs.push((idx - usize::from(f.tx), e));
            }
            conn.consume(len);
            f.got += 1;
        }
        // Plain batch: every reply read.
        let f = self.flights.pop_front().expect("front");
        self.waiting_since = Instant::now();
        let errs = f.errs.clone();
        Ok(Some((f, Outcome::Applied(errs))))
    }

    fn describe(&self, f: &Flight, idx: usize, err: &str) -> String {
        let (cmd, at) = if idx < f.n() {
            (f.cmd(idx), f.ats[idx])
        } else {
            (f.markers[idx - f.n()].clone(), None)
        };
        let key = cmd
            .get(1)
            .map(|k| crate::formats::resp::escape(k))
            .unwrap_or_else(|| "-".into());
        let at = match at {
            Some(p) => format!("journal position {p} (epoch {})", self.ctx.epoch),
            None if idx >= f.n() => "the sink's marker".to_string(),
            None => format!("full sync of epoch {}", self.ctx.epoch),
        };
        let run = match f.sizes.get(idx) {
            Some(&k) if k > 1 => format!(", {k} `set`s sent as one MSET"),
            _ => String::new(),
        };
        format!(
            "the target refused `{}` (key `{key}`{run}) from {at}: {err}",
            display_argv(&cmd, 48)
        )
    }

    /// Refused commands under the policy: `stop` → the error; `skip` → logged and counted.
    fn refused(&self, what: String, applied_rest: bool) -> Result<(), WriterEnd> {
        match self.ctx.on_error {
            OnError::Stop => Err(WriterEnd::Rejected(if applied_rest {
                format!("{what}; the other commands of its batch were applied (Redis does not roll back a transaction)")
            } else {
                what
            })),
            OnError::Skip => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "resp target {}: {what}; skipped (policy skip)",
                    self.ctx.name
                );
                Ok(())
            }
        }
    }

    async fn settle(
        &mut self,
        conn: &mut RespConn,
        f: Flight,
        outcome: Outcome,
    ) -> Result<(), WriterEnd> {
        match outcome {
            Outcome::Applied(errs) => {
                let n = f.n();
                let mut first_err = None;
                for (i, e) in &errs {
                    if *i >= n {
                        return Err(WriterEnd::Rejected(self.describe(&f, *i, e)));
                    }
                    if first_err.is_none() {
                        if let Err(x) = self.refused(self.describe(&f, *i, e), true) {
                            first_err = Some(x);
                        }
                    }
                }
                if let Some(e) = first_err {
                    return Err(e);
                }
                self.stats.commands.fetch_add(f.count(), Ordering::Relaxed);
                self.complete(f.items, f.fences);
                Ok(())
            }
            Outcome::Refused(why) => self.refused_batch(conn, f, why).await,
        }
    }

    /// A transaction refused as a whole (nothing of it applied).
    async fn refused_batch(
        &mut self,
        conn: &mut RespConn,
        f: Flight,
        why: String,
    ) -> Result<(), WriterEnd> {
        // The batches sent after it: applied or refused too?
        let mut later = Vec::new();
        let mut applied_later = false;
        while !self.flights.is_empty() {
            match self.take_replies(conn) {
                Ok(Some((g, o))) => {
                    applied_later |= matches!(o, Outcome::Applied(_));
                    later.push(g);
                }
                Ok(None) => {
                    let deadline =
                        tokio::time::Instant::from_std(self.waiting_since + conn.timeout());
                    if let Err(e) = conn.fill(Some(deadline)).await {
                        return Err(self
                            .hole(
                                conn,
                                &f,
                                &format!("{why}; then the link failed before the later batches were answered ({e})"),
                            )
                            .await);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if applied_later {
            let why = match f.errs.first() {
                Some((i, e)) => format!("{}; {why}", self.describe(&f, *i, e)),
                None => why,
            };
            return Err(self.hole(conn, &f, &why).await);
        }
        if let Some(e) = &f.multi_err {
            return Err(WriterEnd::Rejected(format!(
                "the target refused MULTI: {e}"
            )));
        }
        let n = f.n();
        let data_errs: Vec<(usize, String)> =
            f.errs.iter().filter(|(i, _)| *i < n).cloned().collect();
        if data_errs.is_empty() {
            if let Some((i, e)) = f.errs.first() {
                return Err(WriterEnd::Rejected(self.describe(&f, *i, e)));
            }
            let first = if n > 0 {
                display_argv(&f.cmd(0), 48)
            } else {
                String::new()
            };
            return Err(WriterEnd::Rejected(format!(
                "the target refused EXEC of a batch starting with `{first}`: {why}"
            )));
        }
        // EXECABORT: nothing of the batch (nor of the later ones) was applied.
        for (i, e) in &data_errs {
            self.refused(self.describe(&f, *i, e), false)?;
        }
        let drop: Vec<usize> = data_errs.iter().map(|(i, _)| *i).collect();
        self.resend.push_back(f.without(&drop));
        for mut g in later {
            g.reset();
            self.resend.push_back(g);
        }
        Ok(())
    }

    /// A refused batch lies before an applied one: drop this connection's marker (the target
    /// then full-syncs) and say so.
    async fn hole(&mut self, conn: &mut RespConn, f: &Flight, why: &str) -> WriterEnd {
        let at = f
            .ats
            .iter()
            .flatten()
            .next()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let key = marker_key(&self.ctx.name, self.ctx.conn);
        let dropped = match conn.call(&vec![b"DEL".to_vec(), key.clone()]).await {
            Ok(r) if error_text_of(&r).is_none() => "its marker was deleted".to_string(),
            Ok(r) => format!(
                "deleting its marker failed ({}): delete {} by hand",
                error_text_of(&r).unwrap_or_default(),
                String::from_utf8_lossy(&key)
            ),
            Err(e) => format!(
                "deleting its marker failed ({e}): delete {} by hand",
                String::from_utf8_lossy(&key)
            ),
        };
        WriterEnd::Hole(format!(
            "connection {} had its batch from journal position {at} refused ({why}) while a later batch was applied; {dropped} and the target will be full-synced",
            self.ctx.conn
        ))
    }
}

fn error_text_of(r: &crate::formats::resp::Reply) -> Option<String> {
    match r {
        crate::formats::resp::Reply::Error(e) => Some(e.clone()),
        _ => None,
    }
}
