//! Journal item → Redis commands, in one table of rules (beside [`crate::translate`], which makes
//! the journal's canonical 3.x forms). The journal holds what a 3.2.9 master logs; a
//! Redis-protocol target (Redis, Codis, any Pika as a plain client) needs Redis forms, and the
//! sink needs to know which connection each command may go to.
//!
//! | journal form | Redis commands | route |
//! |---|---|---|
//! | `pksetexat k t v` (Pika only) | `SET k v` + `PEXPIREAT k t·1000` | `k` |
//! | `expireat k t` | `PEXPIREAT k t·1000` | `k` |
//! | `mset k1 v1 k2 v2 …` | `SET k1 v1`, `SET k2 v2`, … | each key |
//! | `del k1 k2 …`, `unlink …` | `DEL k1`, `DEL k2`, … | each key |
//! | `flushdb`, `flushall` | `FLUSHDB` (only the target's selected db) | all connections (barrier) |
//! | `msetnx`, `rename`, `renamenx`, `rpoplpush`, `lmove`, `smove`, `*store`, `bitop`, `pfmerge` | verbatim | all connections (barrier) |
//! | `padding …` (epoch fillers) | nothing | — |
//! | `flushdb <type>` (Pika: one type only) | unsupported: Redis has no per-type flush | — |
//! | `set … VX t`, `delvx` (Pika compare-and-set) | unsupported | — |
//! | everything else (`set`, `incr`, `hset`, `lpush`, `zadd`, `set k v NX EX s`, …) | verbatim | `argv[1]` |
//!
//! A "barrier" command touches several keys that may live on different connections: the sink
//! first lets every connection finish what it has, then applies the command on connection 0 and
//! moves every connection's marker past it in the same transaction, then continues.
//!
//! `set k v NX EX s` keeps its relative TTL (3.2.9 logs it so and a real slave applies it so:
//! splitting it into `SET NX` + `PEXPIREAT` would expire a key the `NX` did not set).

use crate::formats::resp::Argv;

/// Where an item's commands go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Commands each bound to the connection of their key (kept in this order per key).
    PerKey(Vec<(Vec<u8>, Argv)>),
    /// Commands that must run after everything before and before everything after, on one
    /// connection, with every connection's marker moved.
    Barrier(Vec<Argv>),
    /// Nothing to apply (padding).
    Nothing,
    /// No Redis form exists; the reason names the command.
    Unsupported(String),
}

type Rule = fn(&Argv) -> Plan;

/// Lower-case journal command name → rule. Names not listed: verbatim on `argv[1]`'s connection.
const RULES: &[(&str, Rule)] = &[
    ("pksetexat", rule_pksetexat),
    ("expireat", rule_expireat),
    ("mset", rule_mset),
    ("del", rule_del),
    ("unlink", rule_del),
    ("flushdb", rule_flush),
    ("flushall", rule_flush),
    ("padding", |_| Plan::Nothing),
    ("set", rule_set),
    ("delvx", |_| {
        Plan::Unsupported("delvx (Pika compare-and-delete) has no Redis form".into())
    }),
    ("msetnx", barrier),
    ("rename", barrier),
    ("renamenx", barrier),
    ("rpoplpush", barrier),
    ("brpoplpush", barrier),
    ("lmove", barrier),
    ("smove", barrier),
    ("sunionstore", barrier),
    ("sinterstore", barrier),
    ("sdiffstore", barrier),
    ("zunionstore", barrier),
    ("zinterstore", barrier),
    ("zdiffstore", barrier),
    ("bitop", barrier),
    ("pfmerge", barrier),
];

fn barrier(a: &Argv) -> Plan {
    Plan::Barrier(vec![a.clone()])
}

fn int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn ms(secs: i64) -> Vec<u8> {
    secs.saturating_mul(1000).to_string().into_bytes()
}

fn bad(a: &Argv, why: &str) -> Plan {
    Plan::Unsupported(format!(
        "{} {why}",
        String::from_utf8_lossy(&a[0]).to_ascii_lowercase()
    ))
}

fn rule_pksetexat(a: &Argv) -> Plan {
    match (a.len(), a.get(2).and_then(|t| int(t))) {
        (4, Some(t)) => Plan::PerKey(vec![
            (
                a[1].clone(),
                vec![b"SET".to_vec(), a[1].clone(), a[3].clone()],
            ),
            (
                a[1].clone(),
                vec![b"PEXPIREAT".to_vec(), a[1].clone(), ms(t)],
            ),
        ]),
        _ => bad(a, "needs `key unix-seconds value`"),
    }
}

fn rule_expireat(a: &Argv) -> Plan {
    match (a.len(), a.get(2).and_then(|t| int(t))) {
        (3, Some(t)) => Plan::PerKey(vec![(
            a[1].clone(),
            vec![b"PEXPIREAT".to_vec(), a[1].clone(), ms(t)],
        )]),
        _ => bad(a, "needs `key unix-seconds`"),
    }
}

fn rule_mset(a: &Argv) -> Plan {
    if a.len() < 3 || a.len() % 2 == 0 {
        return bad(a, "needs key/value pairs");
    }
    Plan::PerKey(
        a[1..]
            .chunks(2)
            .map(|p| {
                (
                    p[0].clone(),
                    vec![b"SET".to_vec(), p[0].clone(), p[1].clone()],
                )
            })
            .collect(),
    )
}

fn rule_del(a: &Argv) -> Plan {
    if a.len() < 2 {
        return bad(a, "needs a key");
    }
    Plan::PerKey(
        a[1..]
            .iter()
            .map(|k| (k.clone(), vec![b"DEL".to_vec(), k.clone()]))
            .collect(),
    )
}

fn rule_flush(a: &Argv) -> Plan {
    match a.len() {
        1 => Plan::Barrier(vec![vec![b"FLUSHDB".to_vec()]]),
        _ => bad(
            a,
            "with a type argument flushes one Pika type store; Redis has no per-type flush",
        ),
    }
}

fn rule_set(a: &Argv) -> Plan {
    if a.len() > 3 && a[3..].iter().any(|o| o.eq_ignore_ascii_case(b"vx")) {
        return bad(a, "… VX (Pika compare-and-set) has no Redis form");
    }
    verbatim(a)
}

fn verbatim(a: &Argv) -> Plan {
    match a.len() {
        0 => Plan::Nothing,
        1 => Plan::Barrier(vec![a.clone()]),
        _ => Plan::PerKey(vec![(a[1].clone(), a.clone())]),
    }
}

/// The Redis commands for one journal command.
pub fn plan(argv: &Argv) -> Plan {
    let Some(name) = argv.first() else {
        return Plan::Nothing;
    };
    match RULES
        .iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
    {
        Some((_, rule)) => rule(argv),
        None => verbatim(argv),
    }
}

/// Whether `name` has a rule of its own (else it is replayed verbatim on `argv[1]`'s
/// connection).
pub fn has_rule(name: &[u8]) -> bool {
    RULES
        .iter()
        .any(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// The connection (0..n) of a key.
pub fn conn_of(key: &[u8], n: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(parts: &[&str]) -> Argv {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_table() {
        assert_eq!(
            plan(&a(&["pksetexat", "k", "1800000000", "v"])),
            Plan::PerKey(vec![
                (b"k".to_vec(), a(&["SET", "k", "v"])),
                (b"k".to_vec(), a(&["PEXPIREAT", "k", "1800000000000"])),
            ])
        );
        assert_eq!(
            plan(&a(&["expireat", "k", "5"])),
            Plan::PerKey(vec![(b"k".to_vec(), a(&["PEXPIREAT", "k", "5000"]))])
        );
        assert_eq!(
            plan(&a(&["mset", "a", "1", "b", "2"])),
            Plan::PerKey(vec![
                (b"a".to_vec(), a(&["SET", "a", "1"])),
                (b"b".to_vec(), a(&["SET", "b", "2"])),
            ])
        );
        assert_eq!(
            plan(&a(&["flushall"])),
            Plan::Barrier(vec![a(&["FLUSHDB"])])
        );
        assert_eq!(plan(&a(&["flushdb"])), Plan::Barrier(vec![a(&["FLUSHDB"])]));
        assert!(
            matches!(plan(&a(&["flushdb", "hash"])), Plan::Unsupported(w) if w.contains("flushdb"))
        );
        assert!(matches!(
            plan(&a(&["set", "k", "v", "vx", "o"])),
            Plan::Unsupported(_)
        ));
        assert_eq!(plan(&a(&["padding", "***"])), Plan::Nothing);
        assert_eq!(
            plan(&a(&["RENAME", "a", "b"])),
            Plan::Barrier(vec![a(&["RENAME", "a", "b"])])
        );
        assert_eq!(
            plan(&a(&["incr", "c"])),
            Plan::PerKey(vec![(b"c".to_vec(), a(&["incr", "c"]))])
        );
        assert_eq!(
            plan(&a(&["SET", "k", "v", "NX", "EX", "10"])),
            Plan::PerKey(vec![(
                b"k".to_vec(),
                a(&["SET", "k", "v", "NX", "EX", "10"])
            )])
        );
        assert!(matches!(
            plan(&a(&["pksetexat", "k", "x", "v"])),
            Plan::Unsupported(_)
        ));
        assert!(matches!(plan(&a(&["mset", "k"])), Plan::Unsupported(_)));
        assert!(matches!(plan(&a(&["del"])), Plan::Unsupported(_)));
    }

    #[test]
    fn a_key_always_lands_on_the_same_connection() {
        for k in [&b"a"[..], b"user:1", b"\x00\xff"] {
            let c = conn_of(k, 4);
            assert!(c < 4);
            assert_eq!(c, conn_of(k, 4));
        }
        assert_eq!(conn_of(b"x", 1), 0);
        let spread: std::collections::HashSet<usize> = (0..100)
            .map(|i| conn_of(format!("k{i}").as_bytes(), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
