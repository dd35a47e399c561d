//! The relay's side of `pika-relay cutover`: prove that every new side applied everything the old
//! master took before a fence.
//!
//! Without `pause_writes`: a unique fence key is written on the old master (its client port, with
//! `masterauth`), the journal is read from its end at that moment until the fence's `SET` shows
//! up (its end position is the fence), and every downstream consumer (new slaves, and whatever
//! else implements [`AckSource`]) is watched until it acknowledged a position at or past the
//! fence. The fence key is then deleted on the master, so the delete flows through too.
//!
//! With `pause_writes`, where the master's version can refuse writes (from Pika's source:
//! 2.3.x and 3.0.0–3.0.4 check a server-wide read-only flag on every client write, set by
//! `readonly on`, a command that waits for running writes to finish; from 3.0.5 on the flag only
//! applies to a slave, so a master cannot refuse writes), the master is made read-only first and
//! the fence is its binlog position from `INFO log` (`binlog_offset:F O`): no later write exists.
//! The master is left read-only (clients move to the new side); `readonly off` undoes it.

use crate::admin::info::lag_bytes;
use crate::downstream::registry::Registry;
use crate::downstream::source::{JournalCursor, JournalSource, RelayJournal};
use crate::formats::item::BinlogItem;
use crate::formats::resp::Reply;
use crate::formats::BinlogPos;
use crate::verify::conn::{cmd, show, Conn};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One downstream consumer's acknowledged position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAck {
    /// Who it is, as shown to operators (`slave 10.0.0.7:9221`, `target redis 10.0.0.8:6379`).
    pub name: String,
    /// The journal position up to which it acknowledged.
    pub acked: BinlogPos,
    /// Its state, as shown in INFO.
    pub state: String,
}

/// Anything that consumes the journal and acknowledges positions: the acknowledged positions of
/// all downstream consumers come from a list of these (new slaves via the [`Registry`]; other
/// consumer kinds add their own).
pub trait AckSource: Send + Sync {
    /// Every consumer it knows, now.
    fn acks(&self) -> Vec<ConsumerAck>;
}

impl AckSource for Registry {
    fn acks(&self) -> Vec<ConsumerAck> {
        self.snapshot()
            .into_iter()
            .map(|s| ConsumerAck {
                name: format!("slave {}:{}", s.ip, s.port),
                acked: s.acked,
                state: s.state.label().to_string(),
            })
            .collect()
    }
}

impl AckSource for crate::downstream::resp::TargetRegistry {
    fn acks(&self) -> Vec<ConsumerAck> {
        self.snapshot()
            .into_iter()
            .map(|t| ConsumerAck {
                name: format!("target {} ({})", t.name, t.url),
                acked: t.applied,
                state: t.state.label().to_string(),
            })
            .collect()
    }
}

/// What the relay needs to run a cutover.
#[derive(Clone)]
pub struct CutoverContext {
    /// The old master's client port.
    pub master: SocketAddr,
    /// `masterauth`.
    pub masterauth: Option<String>,
    /// The journal.
    pub journal: RelayJournal,
    /// Every consumer kind.
    pub consumers: Vec<Arc<dyn AckSource>>,
}

/// One cutover request (`CUTOVER [TIMEOUT secs] [KEEPFENCE] [PAUSEWRITES]` on port R).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverRequest {
    /// How long to wait for every consumer.
    pub timeout: Duration,
    /// Leave the fence key on the master.
    pub keep_fence: bool,
    /// Make the master refuse writes first, where its version can.
    pub pause_writes: bool,
}

impl CutoverRequest {
    /// Parses the admin command's arguments (after `CUTOVER`).
    pub fn parse(args: &[Vec<u8>]) -> Result<CutoverRequest, String> {
        let mut r = CutoverRequest {
            timeout: Duration::from_secs(60),
            keep_fence: false,
            pause_writes: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match String::from_utf8_lossy(a).to_ascii_lowercase().as_str() {
                "timeout" => {
                    let v = it.next().ok_or("TIMEOUT needs seconds")?;
                    let s: u64 = String::from_utf8_lossy(v)
                        .parse()
                        .map_err(|_| "TIMEOUT needs whole seconds".to_string())?;
                    r.timeout = Duration::from_secs(s.max(1));
                }
                "keepfence" => r.keep_fence = true,
                "pausewrites" => r.pause_writes = true,
                other => return Err(format!("unknown CUTOVER option {other:?}")),
            }
        }
        Ok(r)
    }
}

/// One consumer's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerResult {
    /// Who.
    pub name: String,
    /// Time from the fence write to its ack at or past the fence; `None` = it did not.
    pub caught_up_after: Option<Duration>,
    /// Its last acknowledged position.
    pub acked: BinlogPos,
    /// Bytes it still lacked up to the fence (0 when caught up).
    pub lag_bytes: u64,
    /// Whether it was still connected at the end.
    pub connected: bool,
}

/// The outcome of a cutover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutoverReport {
    /// Every consumer caught up.
    pub ok: bool,
    /// The fence key (empty with a paused master).
    pub fence_key: String,
    /// The fence's end in the journal.
    pub fence: Option<BinlogPos>,
    /// Per consumer.
    pub consumers: Vec<ConsumerResult>,
    /// What happened, in order (pause, fence removal, errors).
    pub notes: Vec<String>,
}

impl CutoverReport {
    /// Text for the operator; the first line is `result:ok` or `result:lagging` / `result:error`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let result = if self.ok {
            "ok"
        } else if self.fence.is_some() {
            "lagging"
        } else {
            "error"
        };
        let _ = writeln!(s, "result:{result}");
        if !self.fence_key.is_empty() {
            let _ = writeln!(s, "fence_key:{}", self.fence_key);
        }
        if let Some(f) = self.fence {
            let _ = writeln!(s, "fence_position:{} {}", f.filenum, f.offset);
        }
        for c in &self.consumers {
            match c.caught_up_after {
                Some(d) => {
                    let _ = writeln!(
                        s,
                        "caught_up: {} after {} ms (acked {} {})",
                        c.name,
                        d.as_millis(),
                        c.acked.filenum,
                        c.acked.offset
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "LAGGING: {} acked {} {}, {} bytes short of the fence{}",
                        c.name,
                        c.acked.filenum,
                        c.acked.offset,
                        c.lag_bytes,
                        if c.connected { "" } else { " (disconnected)" }
                    );
                }
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

/// Whether a master of this `pika_version` can be made to refuse client writes.
pub fn can_refuse_writes(version: &str) -> bool {
    let mut p = version
        .trim()
        .split('.')
        .map(|x| x.parse::<u32>().unwrap_or(u32::MAX));
    match (p.next(), p.next(), p.next()) {
        (Some(2), _, _) => true,
        (Some(3), Some(0), Some(patch)) => patch <= 4,
        _ => false,
    }
}

fn info_field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

fn all_acks(ctx: &CutoverContext) -> Vec<ConsumerAck> {
    ctx.consumers.iter().flat_map(|c| c.acks()).collect()
}

async fn master_conn(ctx: &CutoverContext) -> Result<Conn, String> {
    Conn::connect(
        &ctx.master.to_string(),
        ctx.masterauth.as_deref(),
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| format!("old master {e}"))
}

async fn bulk_text(c: &mut Conn, args: &[&str]) -> Result<String, String> {
    match c.one(cmd(args)).await? {
        Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
        other => Err(format!(
            "old master {}: {} answered {}",
            c.peer,
            args.join(" "),
            show(&other)
        )),
    }
}

/// Makes the master read-only and returns its binlog position then, or why it cannot.
async fn pause_master(m: &mut Conn, notes: &mut Vec<String>) -> Result<Option<BinlogPos>, String> {
    let server = bulk_text(m, &["info", "server"]).await?;
    let version = info_field(&server, "pika_version").unwrap_or_default();
    if !can_refuse_writes(&version) {
        notes.push(format!(
            "--pause-writes: Pika {} cannot refuse writes as a master (only 2.3.x and 3.0.0–3.0.4 can); stop the clients' writes yourself. Fencing with a key instead",
            if version.is_empty() { "(version unknown)" } else { &version }
        ));
        return Ok(None);
    }
    match m.one(cmd(&["readonly", "on"])).await? {
        Reply::Simple(_) => {}
        other => return Err(format!("old master: readonly on answered {}", show(&other))),
    }
    notes.push(format!(
        "old master (Pika {version}) is now read-only and refuses writes; `readonly off` on it undoes this"
    ));
    let log = bulk_text(m, &["info", "log"]).await?;
    let pos = info_field(&log, "binlog_offset")
        .and_then(|v| {
            let mut it = v.split_whitespace().map(|x| x.parse::<u64>().ok());
            Some(BinlogPos::new(
                u32::try_from(it.next()??).ok()?,
                it.next()??,
            ))
        })
        .ok_or_else(|| format!("old master: no binlog_offset in INFO log: {log:?}"))?;
    Ok(Some(pos))
}

/// Reads the journal from `from` until the `SET key` item; returns its end.
async fn find_fence(
    journal: &RelayJournal,
    from: BinlogPos,
    key: &[u8],
    deadline: Instant,
) -> Result<BinlogPos, String> {
    let mut cursor = journal
        .open(from)
        .map_err(|e| format!("journal at {from}: {e}"))?;
    let mut watch = journal.watch();
    let epoch = journal.synced().epoch;
    loop {
        match cursor
            .try_next()
            .await
            .map_err(|e| format!("journal: {e}"))?
        {
            Some(it) => {
                let Ok(item) = BinlogItem::decode(&it.bytes) else {
                    continue;
                };
                if let Ok(argv) = item.argv() {
                    if argv.len() >= 2 && argv[0].eq_ignore_ascii_case(b"set") && argv[1] == key {
                        return Ok(it.end);
                    }
                }
            }
            None => {
                if journal.synced().epoch != epoch {
                    return Err(
                        "the relay started a new full sync from the old master during the cutover"
                            .into(),
                    );
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err("the fence key never reached the journal: is the relay streaming from the old master?".into());
                }
                let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), watch.changed())
                    .await;
            }
        }
    }
}

/// Waits until the journal holds the master's binlog up to `pos`; returns the journal end then.
async fn journal_reaches(
    journal: &RelayJournal,
    pos: BinlogPos,
    deadline: Instant,
) -> Result<BinlogPos, String> {
    loop {
        let s = journal.synced();
        if s.upstream.is_some_and(|u| u >= pos) {
            return Ok(s.end);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the journal never reached the master's position {pos} (it holds {}): is the relay streaming?",
                s.upstream.map(|u| u.to_string()).unwrap_or_else(|| "nothing".into())
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one cutover.
pub async fn run(ctx: &CutoverContext, req: &CutoverRequest) -> CutoverReport {
    let mut rep = CutoverReport::default();
    let t0 = Instant::now();
    let deadline = t0 + req.timeout;
    let mut m = match master_conn(ctx).await {
        Ok(m) => m,
        Err(e) => {
            rep.notes.push(e);
            return rep;
        }
    };
    let waited_for: Vec<String> = all_acks(ctx).into_iter().map(|a| a.name).collect();
    let mut paused_at = None;
    if req.pause_writes {
        match pause_master(&mut m, &mut rep.notes).await {
            Ok(p) => paused_at = p,
            Err(e) => {
                rep.notes.push(e);
                return rep;
            }
        }
    }
    let fence = match paused_at {
        Some(pos) => journal_reaches(&ctx.journal, pos, deadline).await,
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            rep.fence_key = format!("pika-relay:fence:{nanos:x}:{:08x}", rand::random::<u32>());
            let from = ctx.journal.synced().end;
            match m.one(cmd(&["set", &rep.fence_key, &rep.fence_key])).await {
                Ok(Reply::Simple(_)) => {
                    find_fence(&ctx.journal, from, rep.fence_key.as_bytes(), deadline).await
                }
                Ok(other) => Err(format!(
                    "old master refused the fence write: {}",
                    show(&other)
                )),
                Err(e) => Err(e),
            }
        }
    };
    let fence = match fence {
        Ok(f) => f,
        Err(e) => {
            rep.notes.push(e);
            remove_fence(&mut m, req, &mut rep).await;
            return rep;
        }
    };
    rep.fence = Some(fence);
    let file_size = ctx.journal.file_size();
    let mut done: Vec<(String, Duration, BinlogPos)> = Vec::new();
    let mut last: Vec<ConsumerAck>;
    loop {
        last = all_acks(ctx);
        for a in &last {
            if a.acked >= fence && !done.iter().any(|d| d.0 == a.name) {
                done.push((a.name.clone(), t0.elapsed(), a.acked));
            }
        }
        let mut names: Vec<&String> = waited_for
            .iter()
            .chain(last.iter().map(|a| &a.name))
            .collect();
        names.sort();
        names.dedup();
        if !names.is_empty() && names.iter().all(|n| done.iter().any(|d| &d.0 == *n)) {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut names: Vec<String> = waited_for
        .into_iter()
        .chain(last.iter().map(|a| a.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    for n in names {
        let now = last.iter().find(|a| a.name == n);
        let r = match done.iter().find(|d| d.0 == n) {
            Some((_, after, acked)) => ConsumerResult {
                name: n,
                caught_up_after: Some(*after),
                acked: *acked,
                lag_bytes: 0,
                connected: now.is_some(),
            },
            None => ConsumerResult {
                name: n,
                caught_up_after: None,
                acked: now.map(|a| a.acked).unwrap_or_default(),
                lag_bytes: now
                    .map(|a| lag_bytes(a.acked, fence, file_size))
                    .unwrap_or(0),
                connected: now.is_some(),
            },
        };
        rep.consumers.push(r);
    }
    rep.ok = !rep.consumers.is_empty() && rep.consumers.iter().all(|c| c.caught_up_after.is_some());
    if rep.consumers.is_empty() {
        rep.notes
            .push("no new slave or target is connected to the relay: nothing has caught up".into());
    }
    remove_fence(&mut m, req, &mut rep).await;
    rep
}

async fn remove_fence(m: &mut Conn, req: &CutoverRequest, rep: &mut CutoverReport) {
    if rep.fence_key.is_empty() {
        return;
    }
    if req.keep_fence {
        rep.notes.push(format!(
            "fence key {} kept on the old master (--keep-fence)",
            rep.fence_key
        ));
        return;
    }
    match m.one(cmd(&["del", &rep.fence_key])).await {
        Ok(Reply::Integer(_)) => rep
            .notes
            .push("fence key deleted on the old master (the delete replicates too)".into()),
        Ok(other) => rep.notes.push(format!(
            "deleting the fence key failed: {}; delete {} by hand",
            show(&other),
            rep.fence_key
        )),
        Err(e) => rep.notes.push(format!(
            "deleting the fence key failed: {e}; delete {} by hand",
            rep.fence_key
        )),
    }
}

/// The `CUTOVER` admin command for port R.
pub fn admin_extras(ctx: CutoverContext) -> crate::admin::Extras {
    use redis_protocol::resp2::types::BytesFrame;
    let ctx = Arc::new(ctx);
    let f: crate::admin::ExtraFn = Arc::new(move |args| {
        let ctx = ctx.clone();
        Box::pin(async move {
            match CutoverRequest::parse(&args) {
                Ok(req) => {
                    tracing::info!("cutover: requested ({req:?})");
                    let rep = run(&ctx, &req).await;
                    let text = rep.render();
                    tracing::info!("cutover: {}", text.replace('\n', "; "));
                    BytesFrame::BulkString(text.into_bytes().into())
                }
                Err(e) => BytesFrame::Error(
                    format!("ERR {e} (CUTOVER [TIMEOUT secs] [KEEPFENCE] [PAUSEWRITES])").into(),
                ),
            }
        })
    });
    let mut m = std::collections::HashMap::new();
    m.insert("cutover".to_string(), f);
    Arc::new(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_that_can_refuse_writes() {
        for v in ["2.3.0", "2.3.6", "2.3.8", "3.0.0", "3.0.4"] {
            assert!(can_refuse_writes(v), "{v}");
        }
        for v in ["3.0.5", "3.0.16", "3.2.9", "", "x"] {
            assert!(!can_refuse_writes(v), "{v}");
        }
    }

    #[test]
    fn request_parsing() {
        let r = CutoverRequest::parse(&[b"timeout".to_vec(), b"7".to_vec(), b"KEEPFENCE".to_vec()])
            .unwrap();
        assert_eq!(r.timeout, Duration::from_secs(7));
        assert!(r.keep_fence && !r.pause_writes);
        assert!(CutoverRequest::parse(&[b"timeout".to_vec()]).is_err());
        assert!(CutoverRequest::parse(&[b"bogus".to_vec()]).is_err());
    }

    #[test]
    fn info_fields() {
        let t = "# Server\r\npika_version:2.3.6\r\n# Log\r\nbinlog_offset:0 228904\r\n";
        assert_eq!(info_field(t, "pika_version").as_deref(), Some("2.3.6"));
        assert_eq!(info_field(t, "binlog_offset").as_deref(), Some("0 228904"));
    }
}
