//! `pika-relay verify`: proves the new side holds the old side's data.
//!
//! The old side's keyspace is walked with `SCAN` (on Pika ≤ 3.x a name held by several types is
//! returned once per type: nemo 2.3 walks kv, hash, list, zset, set; blackwidow 3.x strings,
//! hashes, sets, lists, zsets), each batch of names is probed and compared on both sides in
//! pipelines ([`compare`]), names that differ are compared once more after a pause (a write during
//! the walk is not a difference), and every finding is streamed to a sink as it is known
//! ([`report`]). With `both_ways` the new side is walked too, for names the old side lacks.
//!
//! Memory is bounded by the batch (names × one page per type) plus the set of names found with
//! more than one type on the old side (Pika's shared names, rare), kept so that their second
//! sighting in `SCAN` is not compared twice.

pub mod compare;
pub mod conn;
pub mod report;

use compare::{KType, Meta, Verdict};
use conn::Conn;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Settings of one verification.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The old side, `host:port`.
    pub old: String,
    /// The new side, `host:port`.
    pub new: String,
    /// Password of the old side.
    pub old_auth: Option<String>,
    /// Password of the new side.
    pub new_auth: Option<String>,
    /// Compare one name in `sample` (1 = every name).
    pub sample: u64,
    /// TTL difference tolerated, seconds.
    pub ttl_slack_secs: i64,
    /// At most this many names compared per second (`None` = no limit).
    pub rate: Option<u64>,
    /// Also walk the new side and report names the old side lacks.
    pub both_ways: bool,
    /// Names per `SCAN` batch.
    pub batch: usize,
    /// Pause before re-checking names that differed.
    pub recheck_delay: Duration,
    /// Connect and per-request timeout.
    pub timeout: Duration,
}

impl VerifyOptions {
    /// Defaults for comparing `old` with `new`.
    pub fn new(old: impl Into<String>, new: impl Into<String>) -> Self {
        VerifyOptions {
            old: old.into(),
            new: new.into(),
            old_auth: None,
            new_auth: None,
            sample: 1,
            ttl_slack_secs: 2,
            rate: None,
            both_ways: false,
            batch: 256,
            recheck_delay: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One reported name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Absent from the new side.
    Missing {
        /// The name.
        key: Vec<u8>,
        /// Its types on the old side.
        types: Vec<KType>,
    },
    /// Present on both sides but not equal.
    Different {
        /// The name.
        key: Vec<u8>,
        /// The first differences.
        diffs: Vec<String>,
    },
    /// On the new side only (`both_ways`).
    Extra {
        /// The name.
        key: Vec<u8>,
        /// Its types on the new side that the old side lacks.
        types: Vec<KType>,
    },
}

/// Counters of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Names returned by the old side's `SCAN` (with Pika's repeats of shared names).
    pub scanned: u64,
    /// Names compared.
    pub checked: u64,
    /// Equal names.
    pub equal: u64,
    /// Names missing on the new side.
    pub missing: u64,
    /// Names that differ.
    pub different: u64,
    /// Names only on the new side (`both_ways`).
    pub extra: u64,
    /// Names gone from the old side between the scan and the comparison.
    pub vanished: u64,
    /// Names that differed once and were compared again.
    pub rechecked: u64,
    /// Names left out by sampling.
    pub skipped: u64,
    /// Names holding more than one type on the old side (Pika).
    pub shared_names: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl Summary {
    /// Whether the sides were found equal.
    pub fn is_equal(&self) -> bool {
        self.missing == 0 && self.different == 0 && self.extra == 0
    }
}

/// Where findings and progress go.
pub trait Sink {
    /// A finding, as soon as it is final.
    fn finding(&mut self, f: &Finding);
    /// Progress after each batch.
    fn progress(&mut self, _s: &Summary) {}
}

/// Keeps the names compared per second under the limit.
struct Pacer {
    rate: Option<u64>,
    start: Instant,
}

impl Pacer {
    /// Sleeps until `done` names are due at the rate.
    async fn wait(&self, done: u64) {
        if let Some(r) = self.rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(done as f64 / r as f64);
            let spent = self.start.elapsed();
            if due > spent {
                tokio::time::sleep(due - spent).await;
            }
        }
    }
}

/// Runs a verification, streaming findings to `sink`. `Err` when a side cannot be read.
pub async fn run(opts: &VerifyOptions, sink: &mut dyn Sink) -> Result<Summary, String> {
    let start = Instant::now();
    let mut old = Conn::connect(&opts.old, opts.old_auth.as_deref(), opts.timeout)
        .await
        .map_err(|e| format!("old side {e}"))?;
    let mut new = Conn::connect(&opts.new, opts.new_auth.as_deref(), opts.timeout)
        .await
        .map_err(|e| format!("new side {e}"))?;
    let mut s = Summary::default();
    let batch = match opts.rate {
        Some(r) if r > 0 => opts.batch.min(r as usize).max(1),
        _ => opts.batch.max(1),
    };
    let pacer = Pacer {
        rate: opts.rate,
        start: Instant::now(),
    };
    let sample = opts.sample.max(1);
    let mut shared: HashSet<Vec<u8>> = HashSet::new();
    let mut cursor = b"0".to_vec();
    let mut seen_in_walk = 0u64;
    loop {
        let (next, names) = compare::scan(&mut old, &cursor, batch).await?;
        s.scanned += names.len() as u64;
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(names.len());
        for k in names {
            if shared.contains(&k) || keys.contains(&k) {
                continue;
            }
            seen_in_walk += 1;
            if (seen_in_walk - 1) % sample != 0 {
                s.skipped += 1;
                continue;
            }
            keys.push(k);
        }
        if !keys.is_empty() {
            check(&mut old, &mut new, keys, opts, &mut s, &mut shared, sink).await?;
        }
        s.elapsed = start.elapsed();
        sink.progress(&s);
        if next == b"0" {
            break;
        }
        cursor = next;
        pacer.wait(s.checked + s.vanished).await;
    }
    if opts.both_ways {
        extra_walk(&mut old, &mut new, batch, &mut s, sink, &pacer).await?;
    }
    s.elapsed = start.elapsed();
    Ok(s)
}

async fn check(
    old: &mut Conn,
    new: &mut Conn,
    keys: Vec<Vec<u8>>,
    opts: &VerifyOptions,
    s: &mut Summary,
    shared: &mut HashSet<Vec<u8>>,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    let (metas, new_metas) = compare::probe_both(old, new, &keys).await?;
    for (k, m) in keys.iter().zip(&metas) {
        if m.types.len() > 1 && shared.insert(k.clone()) {
            s.shared_names += 1;
        }
    }
    let verdicts =
        compare::compare_batch(old, new, &keys, &metas, &new_metas, opts.ttl_slack_secs).await?;
    let mut again: Vec<Vec<u8>> = Vec::new();
    for (k, v) in keys.iter().zip(verdicts) {
        match v {
            Verdict::Equal => {
                s.checked += 1;
                s.equal += 1;
            }
            Verdict::Vanished => s.vanished += 1,
            _ => again.push(k.clone()),
        }
    }
    if again.is_empty() {
        return Ok(());
    }
    // Written during the walk? Compare once more after a pause, from a fresh probe.
    tokio::time::sleep(opts.recheck_delay).await;
    s.rechecked += again.len() as u64;
    let (metas, new_metas): (Vec<Meta>, Vec<Meta>) = compare::probe_both(old, new, &again).await?;
    let verdicts =
        compare::compare_batch(old, new, &again, &metas, &new_metas, opts.ttl_slack_secs).await?;
    for (key, v) in again.into_iter().zip(verdicts) {
        match v {
            Verdict::Equal => {
                s.checked += 1;
                s.equal += 1;
            }
            Verdict::Vanished => s.vanished += 1,
            Verdict::Missing(types) => {
                s.checked += 1;
                s.missing += 1;
                sink.finding(&Finding::Missing { key, types });
            }
            Verdict::Different(diffs) => {
                s.checked += 1;
                s.different += 1;
                sink.finding(&Finding::Different { key, diffs });
            }
        }
    }
    Ok(())
}

/// Walks the new side for names whose types the old side lacks.
async fn extra_walk(
    old: &mut Conn,
    new: &mut Conn,
    batch: usize,
    s: &mut Summary,
    sink: &mut dyn Sink,
    pacer: &Pacer,
) -> Result<(), String> {
    let mut cursor = b"0".to_vec();
    let mut reported: HashSet<Vec<u8>> = HashSet::new();
    let mut walked = 0u64;
    loop {
        let (next, mut names) = compare::scan(new, &cursor, batch).await?;
        names.sort();
        names.dedup();
        walked += names.len() as u64;
        if !names.is_empty() {
            let (om, nm) = compare::probe_both(old, new, &names).await?;
            for ((k, n), o) in names.into_iter().zip(nm).zip(om) {
                let lacking: Vec<KType> = n
                    .types
                    .iter()
                    .map(|t| t.0)
                    .filter(|t| !o.types.iter().any(|x| x.0 == *t))
                    .collect();
                // A name with types on both sides was compared (and reported) in the main walk.
                if !lacking.is_empty() && o.types.is_empty() && !reported.contains(&k) {
                    if n.types.len() > 1 {
                        reported.insert(k.clone());
                    }
                    s.extra += 1;
                    sink.finding(&Finding::Extra {
                        key: k,
                        types: lacking,
                    });
                }
            }
            pacer.wait(walked).await;
        }
        sink.progress(s);
        if next == b"0" {
            return Ok(());
        }
        cursor = next;
    }
}
