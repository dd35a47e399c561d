//! `verify` against Pika's per-type keyspaces (the Pika-keyspace double, which follows nemo 2.3's
//! and blackwidow 3.x's SCAN/TYPE/TTL orders): a string and a hash sharing one name are both
//! compared, once; a new side lacking one of them is named; a real Redis new side (one keyspace)
//! cannot hold both and is reported.

#[path = "support/redis.rs"]
mod redis;

use pika_relay::sim::pika_keyspace::{Generation, PikaResponder};
use pika_relay::verify::conn::{cmd, Conn};
use pika_relay::verify::report::Collect;
use pika_relay::verify::{self, Finding, VerifyOptions};
use std::time::Duration;

fn load(p: &PikaResponder, extra_hash_field: bool) {
    for c in [
        cmd(&["set", "dup", "string value"]),
        cmd(&["hset", "dup", "f1", "v1", "f2", "v2"]),
        cmd(&["set", "a", "1"]),
        cmd(&["rpush", "l", "x", "y"]),
        cmd(&["sadd", "s", "m1", "m2"]),
        cmd(&["zadd", "z", "1", "one", "2", "two"]),
        cmd(&["hset", "h", "f", "v"]),
        cmd(&["set", "t", "v"]),
        cmd(&["expire", "t", "1000"]),
    ] {
        p.exec(&c).unwrap();
    }
    for i in 0..40 {
        p.exec(&["set".to_string(), format!("k{i}"), format!("v{i}")])
            .unwrap();
    }
    if extra_hash_field {
        p.exec(&["hset", "dup", "f3", "v3"]).unwrap();
    }
}

async fn run(old: &str, new: &str) -> (verify::Summary, Vec<Finding>) {
    let mut o = VerifyOptions::new(old, new);
    o.batch = 7; // SCAN pages cross the type sections.
    o.recheck_delay = Duration::from_millis(10);
    let mut sink = Collect::default();
    let s = verify::run(&o, &mut sink).await.expect("verify runs");
    (s, sink.findings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_and_a_hash_with_one_name() {
    for gen in [Generation::V23, Generation::V3] {
        let old = PikaResponder::start(gen).await.unwrap();
        let new = PikaResponder::start(Generation::V3).await.unwrap();
        load(&old, false);
        load(&new, false);
        // SCAN returns the shared name twice (once per type keyspace); TYPE says only "string".
        let mut c = Conn::connect(&old.addr.to_string(), None, Duration::from_secs(5))
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut cursor = b"0".to_vec();
        loop {
            let (next, keys) = pika_relay::verify::compare::scan(&mut c, &cursor, 5)
                .await
                .unwrap();
            seen.extend(keys);
            if next == b"0" {
                break;
            }
            cursor = next;
        }
        assert_eq!(
            seen.iter().filter(|k| k.as_slice() == b"dup").count(),
            2,
            "{gen:?}"
        );
        assert_eq!(seen.len(), 48, "{gen:?}");

        let (s, f) = run(&old.addr.to_string(), &new.addr.to_string()).await;
        assert!(f.is_empty(), "{gen:?}: {f:?}");
        assert_eq!(s.checked, 47, "{gen:?}: each name once: {s:?}");
        assert_eq!(s.shared_names, 1, "{gen:?}");
        assert!(s.is_equal());

        // The hash under the shared name differs (a field the new side lacks).
        old.exec(&["hset", "dup", "f3", "v3"]).unwrap();
        let (s, f) = run(&old.addr.to_string(), &new.addr.to_string()).await;
        assert_eq!(s.different, 1, "{gen:?}: {f:?}");
        match &f[0] {
            Finding::Different { key, diffs } => {
                assert_eq!(key, b"dup");
                assert_eq!(diffs, &vec!["hash length differs: old 3 new 2".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        // The new side lacks the hash entirely but keeps the string.
        new.exec(&["del", "dup"]).unwrap();
        new.exec(&["set", "dup", "string value"]).unwrap();
        let (_, f) = run(&old.addr.to_string(), &new.addr.to_string()).await;
        match &f[0] {
            Finding::Different { key, diffs } => {
                assert_eq!(key, b"dup");
                assert!(
                    diffs[0].starts_with("type hash missing on new (new has string)"),
                    "{diffs:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_pika_against_a_real_redis() {
    let old = PikaResponder::start(Generation::V3).await.unwrap();
    load(&old, true);
    let r = redis::RedisServer::scratch();
    let mut c = Conn::connect(&r.addr(), None, Duration::from_secs(5))
        .await
        .unwrap();
    let mut cmds = vec![
        cmd(&["set", "dup", "string value"]),
        cmd(&["set", "a", "1"]),
        cmd(&["rpush", "l", "x", "y"]),
        cmd(&["sadd", "s", "m1", "m2"]),
        cmd(&["zadd", "z", "1", "one", "2", "two"]),
        cmd(&["hset", "h", "f", "v"]),
        cmd(&["set", "t", "v", "ex", "1000"]),
    ];
    for i in 0..40 {
        cmds.push(cmd(&["set".to_string(), format!("k{i}"), format!("v{i}")]));
    }
    c.pipeline(&cmds).await.unwrap();
    let (s, f) = run(&old.addr.to_string(), &r.addr()).await;
    assert_eq!((s.checked, s.different, s.missing), (47, 1, 0), "{f:?}");
    match &f[0] {
        Finding::Different { key, diffs } => {
            assert_eq!(key, b"dup");
            assert!(
                diffs[0].starts_with("type hash missing on new"),
                "{diffs:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}
