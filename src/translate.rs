//! Old entry → canonical 3.x commands, in one table of rules.
//!
//! A new Pika (3.1/3.2) slave *re-encodes* every command it receives with its own `ToBinlog` and
//! appends that to its own binlog; its acks and its TrySync positions are positions in that binlog.
//! So the relay must only ever journal commands that a 3.x `ToBinlog` writes back unchanged
//! ("canonical" forms), otherwise (a) TTLs would be recomputed from the slave's clock and (b) the
//! slave's positions would drift away from the journal's. The rules below turn what an old master
//! (2.3.x, 3.0.x) logged into exactly what a 3.2.9 master would have logged for the same client
//! command, computed from the entry's `exec_time` the way 3.2.9 computes it from `time(NULL)`.
//!
//! # The rules (matched on the command name, case-insensitively)
//!
//! | old form (as logged) | new form | reason |
//! |---|---|---|
//! | `set k v … EX s` / `PX ms` with no `NX`/`XX`/`VX` (2.3.x, 3.0.0–3.0.7 log it relative) | `pksetexat k <int32(t+s)> v`, PX: `s = ms/1000` (truncated, may give `t+0`); the last EX/PX wins | 3.2.9 `SetCmd::ToBinlog` (condition `kEXORPX`) |
//! | `set` with `NX`/`XX`/`VX`, or plain `set k v` | verbatim | 3.2.9 logs these verbatim (a `set … NX EX` keeps its relative TTL, as on 3.2.9) |
//! | `setex k s v` (2.3.x, 3.0.0–3.0.7) | `pksetexat k <int32(t+s)> v` | 3.2.9 `SetexCmd::ToBinlog` |
//! | `psetex k ms v` (3.0.2–3.0.7) | `pksetexat k <int32(t+ms/1000)> v` | 3.2.9 `PsetexCmd::ToBinlog` |
//! | `expire k s` (no old version logs it; defensive) | `expireat k <t+s>` (64-bit) | 3.2.9 `ExpireCmd::ToBinlog` |
//! | `pexpire k ms` (defensive) | `expireat k <t+ms/1000>` (64-bit) | 3.2.9 `PexpireCmd::ToBinlog` |
//! | `pexpireat k ms` (defensive) | `expireat k <ms/1000>` | 3.2.9 `PexpireatCmd::ToBinlog` |
//! | `flushall` | `flushdb` | 3.2.9 `FlushallCmd::ToBinlog` (a slave would rewrite it anyway, shifting positions) |
//! | a record holding several `set k v` (2.3.x MSET/MSETNX; 3.0.0–3.0.4 multi-item MSET) | one `mset k1 v1 k2 v2 …` | 3.2.9 logs one `mset` item; identical bytes when the client sent `mset` in lower case |
//! | `padding …` (fillers of a padded old binlog) | dropped, counted, logged at debug | not data; the relay's own positions do not follow the old master's |
//! | `spop k …` | [`Policy`] (default: pass, logged) | non-deterministic: the slave pops a random member of its own copy, as between real Pikas |
//! | `flushdb <type>` | [`Policy`] (default: pass, logged) | type-scoped flush: 3.x understands the same type names (`string`, `hash`, `set`, `zset`, `list`) |
//! | `setnx k v` (never logged by old masters, which write `set`) | verbatim, logged | a 3.1/3.2 slave re-logs it as `set` or as an empty item: unexpected input |
//! | everything else (`incr`, `incrby`, `pksetexat`, `expireat`, `mset`, `hset`, `SET k v` …) | verbatim, name case kept | 3.2.9 logs the client argv verbatim, command name case included |
//!
//! `t` is the entry's `exec_time` (the old master's `time(NULL)` when it wrote the entry), the
//! value 3.2.9 would have used. `int32(…)` is the wrapping conversion of 3.2.9's
//! `int32_t time_stamp = time(nullptr) + sec_`; `expireat` keeps 64 bits (`int64_t expireat`).
//! Numbers are formatted as `ll2string` does (plain decimal, `-` for negatives).
//!
//! Relative forms whose number a 3.x slave could not parse (not an integer in `string2l`'s
//! strict syntax, or `set … EX 0`) cannot have been accepted by the old master; they are skipped
//! with an error line, because forwarding them would make every 3.x slave fail on the item and
//! reconnect forever.
//!
//! Command-name case: Pika logs the client's argv verbatim, so `SET k v` stays `SET k v` (3.2.9
//! does the same; the recorded workload has no upper-case command, so the vectors cannot show it).
//! Rewritten forms use the lower-case names 3.2.9 writes (`pksetexat`, `expireat`, `flushdb`,
//! `mset`).

use crate::formats::resp::{display_argv, Argv};
use crate::pipeline::{NewEntry, OldEntry};
use serde::Deserialize;

/// What to do with a command that cannot be replayed faithfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Forward it as logged (what a real Pika slave of the old master would do), with a warning.
    #[default]
    Pass,
    /// Drop it, with a warning.
    Skip,
    /// Refuse it: [`Translator::translate`] returns an error naming the entry's upstream
    /// position, and the relay stops (nothing of the entry is journaled, so after the operator
    /// changes the policy a restart resumes exactly at it).
    Reject,
}

/// Translation settings (`[translate]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranslateConfig {
    /// `spop` (non-deterministic on replay).
    pub spop: Policy,
    /// `flushdb <type>` (flushes one data-type store only).
    pub flushdb_type: Policy,
}

/// Counters of what the translator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TranslateStats {
    /// Entries translated.
    pub entries: u64,
    /// Commands whose form was rewritten (relative → absolute TTL, flushall, merged MSET).
    pub rewritten: u64,
    /// `padding` commands dropped.
    pub padding_dropped: u64,
    /// Commands dropped by a [`Policy::Skip`] or because they were malformed.
    pub skipped: u64,
    /// Non-replayable commands forwarded under [`Policy::Pass`].
    pub passed_unsafe: u64,
    /// Entries refused under [`Policy::Reject`] (the relay stops at the first).
    pub rejected: u64,
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A command under [`Policy::Reject`].
    #[error("entry at {at} refused by policy: {cmd}")]
    Rejected {
        /// Upstream start position of the entry.
        at: crate::formats::BinlogPos,
        /// The command, shortened for the log.
        cmd: String,
    },
}

/// The outcome of one rule.
enum Out {
    /// Emit this argv; `true` when it differs from the input.
    Emit(Argv, bool),
    /// Drop: padding.
    Padding,
    /// Drop: malformed (why).
    Malformed(&'static str),
    /// A non-replayable command: apply the policy.
    Unsafe(Policy, &'static str),
}

type Rule = fn(u32, &Argv, &TranslateConfig) -> Out;

/// The rule table: lower-case command name → rule. Names not listed are passed verbatim.
const RULES: &[(&str, Rule)] = &[
    ("set", rule_set),
    ("setex", rule_setex),
    ("psetex", rule_psetex),
    ("expire", rule_expire),
    ("pexpire", rule_pexpire),
    ("pexpireat", rule_pexpireat),
    ("flushall", rule_flushall),
    ("flushdb", rule_flushdb),
    ("padding", |_, _, _| Out::Padding),
    ("spop", |_, a, c| {
        Out::Unsafe(
            c.spop,
            if a.len() > 2 {
                "spop with count"
            } else {
                "spop"
            },
        )
    }),
    ("setnx", |_, a, _| {
        Out::Unsafe(
            Policy::Pass,
            if a.len() == 3 {
                "setnx"
            } else {
                "setnx (bad arity)"
            },
        )
    }),
];

/// Turns [`OldEntry`]s into canonical [`NewEntry`]s by the rules in the module documentation.
#[derive(Debug, Default)]
pub struct Translator {
    cfg: TranslateConfig,
    stats: TranslateStats,
    /// A copy of `stats` others can read while the translator runs on its own task.
    shared: std::sync::Arc<std::sync::Mutex<TranslateStats>>,
}

impl Translator {
    /// A translator with these policies.
    pub fn new(cfg: TranslateConfig) -> Self {
        Translator {
            cfg,
            ..Translator::default()
        }
    }

    /// What was done so far.
    pub fn stats(&self) -> TranslateStats {
        self.stats
    }

    /// A reader of the counters that stays valid after the translator moved to another task
    /// (for `INFO` and `/metrics`); updated after every entry.
    pub fn stats_reader(&self) -> impl Fn() -> TranslateStats + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || *shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Translates one entry. An empty result is normal (padding, skipped commands); the caller
    /// still advances its upstream position past the entry.
    pub fn translate(&mut self, e: &OldEntry) -> Result<Vec<NewEntry>, TranslateError> {
        let r = self.translate_entry(e);
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = self.stats;
        r
    }

    fn translate_entry(&mut self, e: &OldEntry) -> Result<Vec<NewEntry>, TranslateError> {
        self.stats.entries += 1;
        if let Some(m) = merge_sets(&e.commands) {
            self.stats.rewritten += 1;
            return Ok(vec![NewEntry {
                exec_time: e.exec_time,
                argv: m,
            }]);
        }
        let mut out = Vec::with_capacity(e.commands.len());
        for argv in &e.commands {
            if let Some(a) = self.one(e, argv)? {
                out.push(NewEntry {
                    exec_time: e.exec_time,
                    argv: a,
                });
            }
        }
        Ok(out)
    }

    fn one(&mut self, e: &OldEntry, argv: &Argv) -> Result<Option<Argv>, TranslateError> {
        let Some(name) = argv.first() else {
            self.stats.skipped += 1;
            tracing::error!(at = %e.start, "translate: empty command skipped");
            return Ok(None);
        };
        let rule = RULES
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, r)| *r);
        let Some(rule) = rule else {
            return Ok(Some(argv.clone()));
        };
        match rule(e.exec_time, argv, &self.cfg) {
            Out::Emit(a, changed) => {
                if changed {
                    self.stats.rewritten += 1;
                }
                Ok(Some(a))
            }
            Out::Padding => {
                self.stats.padding_dropped += 1;
                tracing::debug!(at = %e.start, "translate: padding dropped");
                Ok(None)
            }
            Out::Malformed(why) => {
                self.stats.skipped += 1;
                tracing::error!(at = %e.start, cmd = %display_argv(argv, 32),
                    "translate: {why}; a 3.x slave could not parse it, skipped");
                Ok(None)
            }
            Out::Unsafe(policy, what) => match policy {
                Policy::Pass => {
                    self.stats.passed_unsafe += 1;
                    tracing::warn!(at = %e.start, cmd = %display_argv(argv, 32),
                        "translate: {what} cannot be replayed faithfully; passed as logged (policy pass)");
                    Ok(Some(argv.clone()))
                }
                Policy::Skip => {
                    self.stats.skipped += 1;
                    tracing::warn!(at = %e.start, cmd = %display_argv(argv, 32),
                        "translate: {what} cannot be replayed faithfully; dropped (policy skip)");
                    Ok(None)
                }
                Policy::Reject => {
                    self.stats.rejected += 1;
                    tracing::error!(at = %e.start, cmd = %display_argv(argv, 32),
                        "translate: {what} refused (policy reject)");
                    Err(TranslateError::Rejected {
                        at: e.start,
                        cmd: display_argv(argv, 32),
                    })
                }
            },
        }
    }
}

/// Several `set k v` in one record (2.3.x MSET/MSETNX, 3.0.0–3.0.4 MSET) → one `mset`.
fn merge_sets(cmds: &[Argv]) -> Option<Argv> {
    if cmds.len() < 2
        || !cmds
            .iter()
            .all(|c| c.len() == 3 && c[0].eq_ignore_ascii_case(b"set"))
    {
        return None;
    }
    let mut m = Vec::with_capacity(1 + 2 * cmds.len());
    m.push(b"mset".to_vec());
    for c in cmds {
        m.push(c[1].clone());
        m.push(c[2].clone());
    }
    Some(m)
}

/// Redis/slash `string2ll`: optional `-`, no `+`, no leading zeros, no spaces, 64-bit range.
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    match s {
        [] => None,
        [b'0'] => Some(0),
        _ => {
            let (neg, digits) = match s[0] {
                b'-' => (true, &s[1..]),
                _ => (false, s),
            };
            if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
                return None;
            }
            let mut v: u64 = 0;
            for &d in digits {
                if !d.is_ascii_digit() {
                    return None;
                }
                v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            }
            if neg {
                if v > i64::MAX as u64 + 1 {
                    None
                } else {
                    Some((v as i64).wrapping_neg())
                }
            } else {
                i64::try_from(v).ok()
            }
        }
    }
}

/// 3.2.9's `int32_t time_stamp = time(nullptr) + sec` (wrapping to 32 bits).
pub fn abs_time_i32(exec_time: u32, secs: i64) -> i32 {
    i64::from(exec_time).wrapping_add(secs) as i32
}

/// 3.2.9's `int64_t expireat = time(nullptr) + sec`.
pub fn abs_time_i64(exec_time: u32, secs: i64) -> i64 {
    i64::from(exec_time).wrapping_add(secs)
}

fn num(v: impl ToString) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn pksetexat(key: &[u8], at: i32, value: &[u8]) -> Argv {
    vec![b"pksetexat".to_vec(), key.to_vec(), num(at), value.to_vec()]
}

fn expireat(key: &[u8], at: i64) -> Argv {
    vec![b"expireat".to_vec(), key.to_vec(), num(at)]
}

/// `SET key value [NX] [XX] [VX target] [EX s] [PX ms]`, parsed as 3.2.9's `SetCmd::DoInitial`.
fn rule_set(t: u32, a: &Argv, _: &TranslateConfig) -> Out {
    if a.len() < 3 {
        return Out::Emit(a.clone(), false);
    }
    let mut cond_other = false; // NX / XX / VX seen
    let mut ttl: Option<i64> = None;
    let mut i = 3;
    while i < a.len() {
        let o = &a[i];
        if o.eq_ignore_ascii_case(b"nx") || o.eq_ignore_ascii_case(b"xx") {
            cond_other = true;
        } else if o.eq_ignore_ascii_case(b"vx") {
            cond_other = true;
            i += 1;
            if i == a.len() {
                return Out::Malformed("set … VX without a target");
            }
        } else if o.eq_ignore_ascii_case(b"ex") || o.eq_ignore_ascii_case(b"px") {
            i += 1;
            let Some(v) = a.get(i).and_then(|n| parse_i64_strict(n)) else {
                return Out::Malformed("set … EX/PX without a valid integer");
            };
            if v <= 0 {
                return Out::Malformed("set … EX/PX with a non-positive time");
            }
            ttl = Some(if o.eq_ignore_ascii_case(b"px") {
                v / 1000
            } else {
                v
            });
        } else {
            return Out::Malformed("set with an unknown option");
        }
        i += 1;
    }
    match ttl {
        Some(s) if !cond_other => Out::Emit(pksetexat(&a[1], abs_time_i32(t, s), &a[2]), true),
        _ => Out::Emit(a.clone(), false),
    }
}

fn rule_setex(t: u32, a: &Argv, _: &TranslateConfig) -> Out {
    match (a.len(), a.get(2).and_then(|n| parse_i64_strict(n))) {
        (4, Some(s)) => Out::Emit(pksetexat(&a[1], abs_time_i32(t, s), &a[3]), true),
        _ => Out::Malformed("setex needs `key seconds value`"),
    }
}

fn rule_psetex(t: u32, a: &Argv, _: &TranslateConfig) -> Out {
    match (a.len(), a.get(2).and_then(|n| parse_i64_strict(n))) {
        (4, Some(ms)) => Out::Emit(pksetexat(&a[1], abs_time_i32(t, ms / 1000), &a[3]), true),
        _ => Out::Malformed("psetex needs `key milliseconds value`"),
    }
}

fn rule_expire(t: u32, a: &Argv, _: &TranslateConfig) -> Out {
    match (a.len(), a.get(2).and_then(|n| parse_i64_strict(n))) {
        (3, Some(s)) => Out::Emit(expireat(&a[1], abs_time_i64(t, s)), true),
        _ => Out::Malformed("expire needs `key seconds`"),
    }
}

fn rule_pexpire(t: u32, a: &Argv, _: &TranslateConfig) -> Out {
    match (a.len(), a.get(2).and_then(|n| parse_i64_strict(n))) {
        (3, Some(ms)) => Out::Emit(expireat(&a[1], abs_time_i64(t, ms / 1000)), true),
        _ => Out::Malformed("pexpire needs `key milliseconds`"),
    }
}

fn rule_pexpireat(_: u32, a: &Argv, _: &TranslateConfig) -> Out {
    match (a.len(), a.get(2).and_then(|n| parse_i64_strict(n))) {
        (3, Some(ms)) => Out::Emit(expireat(&a[1], ms / 1000), true),
        _ => Out::Malformed("pexpireat needs `key milliseconds`"),
    }
}

fn rule_flushall(_: u32, a: &Argv, _: &TranslateConfig) -> Out {
    if a.len() != 1 {
        return Out::Malformed("flushall takes no argument");
    }
    Out::Emit(vec![b"flushdb".to_vec()], true)
}

fn rule_flushdb(_: u32, a: &Argv, c: &TranslateConfig) -> Out {
    match a.len() {
        1 => Out::Emit(a.clone(), false),
        2 => Out::Unsafe(c.flushdb_type, "type-scoped flushdb"),
        _ => Out::Malformed("flushdb takes at most one argument"),
    }
}
