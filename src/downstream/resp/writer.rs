//! One connection's writer: takes ops in order, packs them into pipelined batches, and applies
//! each batch either inside `MULTI … SET <marker> … EXEC` (targets with transactions: data and
//! marker land together or not at all) or as plain pipelined commands followed by the marker
//! (targets without: at least once, see the module documentation of [`super`]).

use super::conn::{ConnError, RespConn};
use super::marker::{marker_key, Marker};
use super::OnError;
use crate::formats::resp::{display_argv, encode_argv_into, Argv, Reply};
use crate::formats::BinlogPos;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Work for a writer.
#[derive(Debug)]
pub enum Op {
    /// Full-sync commands of one record (no marker; a full sync restarts from the beginning).
    Load(Vec<Argv>),
    /// The commands of one journal item that belong to this connection.
    Item {
        /// End of the item in the journal.
        end: BinlogPos,
        /// Logic id of the item after it.
        next_id: u64,
        /// Redis commands.
        cmds: Vec<Argv>,
    },
    /// Commands applied after everything else was, moving every connection's marker to `end`
    /// (multi-key commands, the end of a full sync).
    Barrier {
        /// Position every marker moves to.
        end: BinlogPos,
        /// Logic id of the next item.
        next_id: u64,
        /// Redis commands (may be empty).
        cmds: Vec<Argv>,
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
}

/// One command of a batch with where it came from.
struct Sent {
    cmd: Argv,
    /// Journal position of its item, or `None` for a full-sync command.
    at: Option<BinlogPos>,
}

/// Runs a writer until its channel closes (`None`) or it fails.
pub async fn run(
    mut conn: RespConn,
    mut rx: mpsc::Receiver<Op>,
    ctx: WriterCtx,
    stats: Arc<WriterStats>,
) -> Option<WriterEnd> {
    let mut w = Writer {
        ctx,
        stats,
        pending_barrier: None,
    };
    loop {
        let first = rx.recv().await?;
        let mut ops = vec![first];
        let mut n = op_cmds(&ops[0]);
        let mut bytes = op_bytes(&ops[0]);
        // A fence or a barrier ends a batch; a barrier is alone in its batch.
        if !matches!(ops[0], Op::Fence(_) | Op::Barrier { .. }) {
            while n < w.ctx.batch_cmds && bytes < w.ctx.batch_bytes {
                match rx.try_recv() {
                    Ok(op @ Op::Fence(_)) => {
                        ops.push(op);
                        break;
                    }
                    Ok(op @ Op::Barrier { .. }) => {
                        w.pending_barrier = Some(op);
                        break;
                    }
                    Ok(op) => {
                        n += op_cmds(&op);
                        bytes += op_bytes(&op);
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
        }
        if let Err(e) = w.apply(&mut conn, ops).await {
            return Some(e);
        }
        if let Some(op) = w.pending_barrier.take() {
            if let Err(e) = w.apply(&mut conn, vec![op]).await {
                return Some(e);
            }
        }
    }
}

fn op_cmds(op: &Op) -> usize {
    match op {
        Op::Load(c) | Op::Item { cmds: c, .. } | Op::Barrier { cmds: c, .. } => c.len(),
        Op::Fence(_) => 0,
    }
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Load(c) | Op::Item { cmds: c, .. } | Op::Barrier { cmds: c, .. } => c
            .iter()
            .map(|a| a.iter().map(|p| p.len() + 16).sum::<usize>())
            .sum(),
        Op::Fence(_) => 0,
    }
}

struct Writer {
    ctx: WriterCtx,
    stats: Arc<WriterStats>,
    /// A barrier taken out of the channel while filling a batch, applied right after it.
    pending_barrier: Option<Op>,
}

fn lost(e: ConnError) -> WriterEnd {
    match e {
        ConnError::Lost(s) => WriterEnd::Lost(s),
        ConnError::Refused(s) => WriterEnd::Rejected(s),
    }
}

impl Writer {
    fn describe(&self, s: &Sent, err: &str) -> String {
        let key = s
            .cmd
            .get(1)
            .map(|k| crate::formats::resp::escape(k))
            .unwrap_or_else(|| "-".into());
        let at = match s.at {
            Some(p) => format!("journal position {p} (epoch {})", self.ctx.epoch),
            None => format!("full sync of epoch {}", self.ctx.epoch),
        };
        format!(
            "the target refused `{}` (key `{key}`) from {at}: {err}",
            display_argv(&s.cmd, 48)
        )
    }

    /// Applies a batch of ops; answers fences; counts completed ops.
    async fn apply(&mut self, conn: &mut RespConn, ops: Vec<Op>) -> Result<(), WriterEnd> {
        let mut sent: Vec<Sent> = Vec::new();
        let mut counted = 0u64;
        let mut fences = Vec::new();
        let mut marker: Option<Marker> = None;
        let mut all_markers = false;
        for op in ops {
            match op {
                Op::Load(cmds) => sent.extend(cmds.into_iter().map(|cmd| Sent { cmd, at: None })),
                Op::Item { end, next_id, cmds } => {
                    counted += 1;
                    if self.ctx.skip_through.is_some_and(|s| end <= s) {
                        continue;
                    }
                    sent.extend(cmds.into_iter().map(|cmd| Sent { cmd, at: Some(end) }));
                    marker = Some(self.marker(end, next_id));
                }
                Op::Barrier { end, next_id, cmds } => {
                    counted += 1;
                    if self.ctx.skip_through.is_some_and(|s| end <= s) {
                        continue;
                    }
                    sent.extend(cmds.into_iter().map(|cmd| Sent { cmd, at: Some(end) }));
                    marker = Some(self.marker(end, next_id));
                    all_markers = true;
                }
                Op::Fence(tx) => fences.push(tx),
            }
        }
        if !sent.is_empty() || marker.is_some() {
            let mut markers = Vec::new();
            if let Some(m) = marker {
                let conns: Vec<usize> = if all_markers {
                    (0..self.ctx.conns).collect()
                } else {
                    vec![self.ctx.conn]
                };
                for c in conns {
                    markers.push(vec![
                        b"SET".to_vec(),
                        marker_key(&self.ctx.name, c),
                        m.encode(),
                    ]);
                }
            }
            if self.ctx.transactions && !markers.is_empty() {
                self.apply_tx(conn, sent, markers).await?;
            } else {
                self.apply_plain(conn, sent, markers).await?;
            }
        }
        self.stats.done.fetch_add(counted, Ordering::Release);
        for f in fences {
            let _ = f.send(());
        }
        Ok(())
    }

    fn marker(&self, end: BinlogPos, next_id: u64) -> Marker {
        Marker {
            epoch: self.ctx.epoch,
            pos: end,
            next_id,
            conns: self.ctx.conns,
        }
    }

    /// Refused commands under the policy: `stop` → the error; `skip` → logged and counted.
    fn refused(&self, s: &Sent, err: &str, applied_rest: bool) -> Result<(), WriterEnd> {
        let what = self.describe(s, err);
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

    async fn apply_plain(
        &mut self,
        conn: &mut RespConn,
        sent: Vec<Sent>,
        markers: Vec<Argv>,
    ) -> Result<(), WriterEnd> {
        let mut buf = Vec::new();
        for s in &sent {
            encode_argv_into(&s.cmd, &mut buf);
        }
        for m in &markers {
            encode_argv_into(m, &mut buf);
        }
        conn.send(&buf).await.map_err(lost)?;
        let mut first_err = None;
        for s in &sent {
            if let Reply::Error(e) = conn.reply().await.map_err(lost)? {
                if first_err.is_none() {
                    if let Err(x) = self.refused(s, &e, true) {
                        first_err = Some(x);
                    }
                }
            }
        }
        for m in &markers {
            if let Reply::Error(e) = conn.reply().await.map_err(lost)? {
                let s = Sent {
                    cmd: m.clone(),
                    at: None,
                };
                return Err(WriterEnd::Rejected(self.describe(&s, &e)));
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        self.stats
            .commands
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn apply_tx(
        &mut self,
        conn: &mut RespConn,
        mut sent: Vec<Sent>,
        markers: Vec<Argv>,
    ) -> Result<(), WriterEnd> {
        loop {
            let mut buf = Vec::new();
            encode_argv_into(&[b"MULTI"], &mut buf);
            for s in &sent {
                encode_argv_into(&s.cmd, &mut buf);
            }
            for m in &markers {
                encode_argv_into(m, &mut buf);
            }
            encode_argv_into(&[b"EXEC"], &mut buf);
            conn.send(&buf).await.map_err(lost)?;
            if let Reply::Error(e) = conn.reply().await.map_err(lost)? {
                return Err(WriterEnd::Rejected(format!(
                    "the target refused MULTI: {e}"
                )));
            }
            let mut queue_err: Vec<(usize, String)> = Vec::new();
            for (i, _) in sent.iter().enumerate() {
                if let Reply::Error(e) = conn.reply().await.map_err(lost)? {
                    queue_err.push((i, e));
                }
            }
            let mut marker_err = None;
            for _ in &markers {
                if let Reply::Error(e) = conn.reply().await.map_err(lost)? {
                    marker_err.get_or_insert(e);
                }
            }
            let exec = conn.reply().await.map_err(lost)?;
            if queue_err.is_empty() {
                if let Some(e) = marker_err {
                    let s = Sent {
                        cmd: markers[0].clone(),
                        at: None,
                    };
                    return Err(WriterEnd::Rejected(self.describe(&s, &e)));
                }
            } else {
                // EXECABORT: nothing of the batch was applied.
                for (i, e) in &queue_err {
                    self.refused(&sent[*i], e, false)?;
                }
                let bad: Vec<usize> = queue_err.iter().map(|(i, _)| *i).collect();
                let mut i = 0;
                sent.retain(|_| {
                    let keep = !bad.contains(&i);
                    i += 1;
                    keep
                });
                continue;
            }
            match exec {
                Reply::Array(Some(replies)) => {
                    for (s, r) in sent.iter().zip(replies.iter()) {
                        if let Reply::Error(e) = r {
                            self.refused(s, e, true)?;
                        }
                    }
                    self.stats
                        .commands
                        .fetch_add(sent.len() as u64, Ordering::Relaxed);
                    return Ok(());
                }
                Reply::Error(e) => {
                    return Err(WriterEnd::Rejected(format!(
                        "the target refused EXEC of a batch starting with `{}`: {e}",
                        sent.first()
                            .map(|s| display_argv(&s.cmd, 48))
                            .unwrap_or_default()
                    )))
                }
                other => {
                    return Err(WriterEnd::Lost(format!(
                        "{}: unexpected EXEC reply {other:?}",
                        conn.name
                    )))
                }
            }
        }
    }
}
