//! `verify` between two real `redis-server`s: equal data → equal; each kind of change (a value, a
//! TTL, a type, a list's order, a missing hash field, a missing key, an extra key) → reported,
//! naming the key; a big hash and a big string compared in pages.

#[path = "support/redis.rs"]
mod redis;

use pika_relay::verify::conn::{cmd, Cmd, Conn};
use pika_relay::verify::report::Collect;
use pika_relay::verify::{self, Finding, VerifyOptions};
use redis::RedisServer;
use std::time::Duration;

async fn conn(addr: &str) -> Conn {
    Conn::connect(addr, None, Duration::from_secs(5))
        .await
        .unwrap()
}

/// The same data on both: every type, TTLs, a big hash (3 000 fields) and a 300 KiB string.
fn dataset() -> Vec<Cmd> {
    let mut v: Vec<Cmd> = vec![
        cmd(&["set", "s1", "hello"]),
        cmd(&["set", "s:ttl", "v"]),
        cmd(&["expire", "s:ttl", "1000"]),
        cmd(&["hset", "h", "f1", "v1", "f2", "v2", "f3", "v3"]),
        cmd(&["rpush", "l", "a", "b", "c", "d"]),
        cmd(&["sadd", "set", "x", "y", "z"]),
        cmd(&["zadd", "z", "1", "one", "2.5", "two", "3", "three"]),
        cmd(&["set", "bin\x00key\r\n", "v\x00\x01"]),
    ];
    let mut big = vec![b"hset".to_vec(), b"bighash".to_vec()];
    for i in 0..3000 {
        big.push(format!("field{i}").into_bytes());
        big.push(format!("value{i}").into_bytes());
    }
    v.push(big);
    let s: Vec<u8> = (0..300 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    v.push(vec![b"set".to_vec(), b"bigstr".to_vec(), s]);
    for i in 0..500 {
        v.push(cmd(&["set".to_string(), format!("k{i}"), format!("v{i}")]));
    }
    v
}

async fn load(addr: &str, cmds: &[Cmd]) {
    let mut c = conn(addr).await;
    for r in c.pipeline(cmds).await.unwrap() {
        assert!(
            !matches!(r, pika_relay::formats::resp::Reply::Error(_)),
            "{r:?}"
        );
    }
}

async fn verify(old: &str, new: &str, both: bool) -> (verify::Summary, Vec<Finding>) {
    let mut o = VerifyOptions::new(old, new);
    o.both_ways = both;
    o.batch = 64;
    o.recheck_delay = Duration::from_millis(20);
    let mut sink = Collect::default();
    let s = verify::run(&o, &mut sink).await.expect("verify runs");
    (s, sink.findings)
}

fn key_of(f: &Finding) -> &[u8] {
    match f {
        Finding::Missing { key, .. }
        | Finding::Different { key, .. }
        | Finding::Extra { key, .. } => key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_then_each_change_is_named() {
    let (a, b) = (RedisServer::scratch(), RedisServer::scratch());
    load(&a.addr(), &dataset()).await;
    load(&b.addr(), &dataset()).await;
    let (s, f) = verify(&a.addr(), &b.addr(), true).await;
    assert!(f.is_empty(), "{f:?}");
    assert!(s.is_equal());
    assert_eq!(s.checked, 509, "{s:?}");
    assert_eq!(s.equal, 509);

    // One change of each kind on the new side.
    let changes = vec![
        cmd(&["set", "s1", "hellO"]),
        cmd(&["expire", "s:ttl", "100"]),
        cmd(&["del", "set"]),
        cmd(&["set", "set", "now a string"]),
        cmd(&["del", "l"]),
        cmd(&["rpush", "l", "a", "c", "b", "d"]),
        cmd(&["hdel", "h", "f2"]),
        cmd(&["hset", "bighash", "field2999", "changed"]),
        cmd(&["setrange", "bigstr", "200000", "X"]),
        cmd(&["zadd", "z", "2.75", "two"]),
        cmd(&["del", "k7"]),
        cmd(&["set", "only-new", "1"]),
    ];
    load(&b.addr(), &changes).await;
    let (s, f) = verify(&a.addr(), &b.addr(), true).await;
    assert!(!s.is_equal());
    let find = |k: &str| {
        f.iter()
            .find(|x| key_of(x) == k.as_bytes())
            .unwrap_or_else(|| panic!("{k} not reported: {f:?}"))
            .clone()
    };
    let diff = |k: &str, needle: &str| match find(k) {
        Finding::Different { diffs, .. } => assert!(
            diffs.iter().any(|d| d.contains(needle)),
            "{k}: {diffs:?} lacks {needle:?}"
        ),
        other => panic!("{k}: {other:?}"),
    };
    diff("s1", "string value differs at byte 4");
    diff("s:ttl", "ttl differs");
    diff("set", "type set missing on new");
    diff("l", "list element 1 differs");
    diff("h", "hash length differs: old 3 new 2");
    diff("bighash", "field2999");
    diff("bigstr", "at byte 200000");
    diff("z", "zset element 1 differs");
    assert!(matches!(find("k7"), Finding::Missing { .. }));
    assert!(matches!(find("only-new"), Finding::Extra { .. }));
    assert_eq!(f.len(), 10, "{f:?}");
    assert_eq!((s.different, s.missing, s.extra), (8, 1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_hash_field_with_equal_lengths_and_the_cli_exit_code() {
    let (a, b) = (RedisServer::scratch(), RedisServer::scratch());
    load(&a.addr(), &dataset()).await;
    load(&b.addr(), &dataset()).await;
    // Same length, one field renamed: only the paged lookup can see it.
    load(
        &b.addr(),
        &[cmd(&["hdel", "h", "f3"]), cmd(&["hset", "h", "f9", "v3"])],
    )
    .await;
    let (s, f) = verify(&a.addr(), &b.addr(), false).await;
    assert_eq!(s.different, 1, "{f:?}");
    match &f[0] {
        Finding::Different { key, diffs } => {
            assert_eq!(key, b"h");
            assert!(
                diffs[0].contains("hash field \"f3\" missing on new"),
                "{diffs:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The binary: exit 1 naming the key, exit 0 when equal again, exit 2 when unreachable.
    let bin = env!("CARGO_BIN_EXE_pika-relay");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let out = run(&[
        "verify",
        "--old",
        &a.addr(),
        "--new",
        &b.addr(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("{\"kind\":\"different\",\"key\":\"h\""),
        "{text}"
    );
    assert!(
        text.contains("\"kind\":\"summary\",\"equal_sides\":false"),
        "{text}"
    );
    load(
        &b.addr(),
        &[cmd(&["hdel", "h", "f9"]), cmd(&["hset", "h", "f3", "v3"])],
    )
    .await;
    let out = run(&[
        "verify",
        "--old",
        &a.addr(),
        "--new",
        &b.addr(),
        "--rate",
        "100000",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("EQUAL: checked 509 names"));
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(&[
        "verify",
        "--old",
        &a.addr(),
        "--new",
        &free.to_string(),
        "--timeout-secs",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("new side"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_the_walk_is_rechecked_not_reported() {
    let (a, b) = (RedisServer::scratch(), RedisServer::scratch());
    load(&a.addr(), &dataset()).await;
    load(&b.addr(), &dataset()).await;
    load(&b.addr(), &[cmd(&["set", "s1", "stale"])]).await;
    // The "replication" catches up while verify waits to re-check.
    let b_addr = b.addr();
    let fix = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        load(&b_addr, &[cmd(&["set", "s1", "hello"])]).await;
    });
    let mut o = VerifyOptions::new(a.addr(), b.addr());
    o.recheck_delay = Duration::from_millis(800);
    let mut sink = Collect::default();
    let s = verify::run(&o, &mut sink).await.unwrap();
    fix.await.unwrap();
    assert!(s.is_equal(), "{:?}", sink.findings);
    assert_eq!(s.rechecked, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_compares_one_name_in_n() {
    let (a, b) = (RedisServer::scratch(), RedisServer::scratch());
    load(&a.addr(), &dataset()).await;
    load(&b.addr(), &dataset()).await;
    let mut o = VerifyOptions::new(a.addr(), b.addr());
    o.sample = 10;
    let mut sink = Collect::default();
    let s = verify::run(&o, &mut sink).await.unwrap();
    assert!(s.is_equal());
    assert_eq!(s.checked + s.skipped, 509, "{s:?}");
    assert_eq!(s.checked, 51, "names 1, 11, 21, ... of 509: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_answering_garbage_is_named_and_nothing_is_concluded() {
    let a = RedisServer::scratch();
    load(&a.addr(), &dataset()).await;
    let bad = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad_addr = bad.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = bad.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 4096];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(b"?what\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let o = VerifyOptions::new(a.addr(), &bad_addr);
    let e = verify::run(&o, &mut Collect::default()).await.unwrap_err();
    assert!(e.contains(&bad_addr) && e.contains("bad reply"), "{e}");
}
