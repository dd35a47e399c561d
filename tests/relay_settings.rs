//! Settings that must do what they say, checked on a whole relay (`Relay::start_tuned`) between
//! an old-master double and the journal: translation policies (`skip` counted in INFO and
//! /metrics, `reject` stops the relay at the entry's position) and the binlog port's limits on
//! unauthenticated connections.

#[path = "support/net.rs"]
mod net;
#[path = "support/relay.rs"]
mod relay;

use pika_relay::config::Config;
use pika_relay::relay::RelayHandle;
use pika_relay::sim::old_master::{Flavor, OldMaster};
use pika_relay::translate::Policy;
use relay::{master_config, start_relay_with};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(60);

async fn master() -> (tempfile::TempDir, OldMaster) {
    let tmp = tempfile::tempdir().unwrap();
    // As 3.0.16: a bare connect to R+3000 before the first push (the relay must shrug it off).
    let mcfg = master_config(Flavor::V30, tmp.path().join("master-dumps"));
    let m = OldMaster::start(mcfg).await.unwrap();
    (tmp, m)
}

async fn caught_up(relay: &RelayHandle, m: &OldMaster) {
    let want = m.producer();
    let ok = tokio::time::timeout(T, async {
        while relay.status().upstream.position != want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "relay at {:?}, master at {want}",
        relay.status().upstream
    );
}

async fn info(relay: &RelayHandle, section: &str) -> String {
    let mut c = tokio::net::TcpStream::connect(relay.ports.admin)
        .await
        .unwrap();
    let cmd = format!("*2\r\n$4\r\ninfo\r\n${}\r\n{section}\r\n", section.len());
    c.write_all(cmd.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16384];
    let n = c.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn metrics(relay: &RelayHandle) -> String {
    let mut m = tokio::net::TcpStream::connect(relay.ports.metrics.unwrap())
        .await
        .unwrap();
    m.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
    let mut text = String::new();
    m.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translate_policies_skip_counts_and_reject_stops_at_the_entry() {
    let (tmp, m) = master().await;
    m.write(&["set", "a", "1"]).unwrap();
    m.write(&["sadd", "s", "x"]).unwrap();
    let port = net::free_base(&[1000, 2000, 3000]);
    let data = tmp.path().join("relay");

    // skip: the entry is dropped, the stream goes on, the drop is counted where operators look.
    let relay =
        start_relay_with(&m, port, &data, |c| c.translate.flushdb_type = Policy::Skip).await;
    caught_up(&relay, &m).await;
    m.write(&["flushdb", "string"]).unwrap();
    m.write(&["set", "b", "2"]).unwrap();
    caught_up(&relay, &m).await;
    assert_eq!(relay.status().translate_skipped, 1);
    let i = info(&relay, "translate").await;
    assert!(i.contains("translate_skipped:1\r\n"), "{i}");
    let t = metrics(&relay).await;
    assert!(t.contains("pika_relay_translate_skipped_total 1\n"), "{t}");
    relay.shutdown().await.unwrap();

    // reject: the relay stops with the entry's upstream position; nothing of it is journaled.
    let relay = start_relay_with(&m, port, &data, |c| {
        c.translate.flushdb_type = Policy::Reject
    })
    .await;
    caught_up(&relay, &m).await;
    let at = m.producer();
    m.write(&["flushdb", "hash"]).unwrap();
    m.write(&["set", "c", "3"]).unwrap();
    let stopped = tokio::time::timeout(T, async {
        while !relay.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(stopped.is_ok(), "the relay must stop on a rejected entry");
    assert_eq!(
        relay.status().upstream.position,
        at,
        "nothing past the rejected entry"
    );
    let e = relay.shutdown().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("upstream entry {at}.."))
            && e.contains("refused by policy")
            && e.contains("flushdb"),
        "{e}"
    );

    // After the operator changes the policy, a restart resumes exactly at the rejected entry.
    let relay =
        start_relay_with(&m, port, &data, |c| c.translate.flushdb_type = Policy::Pass).await;
    caught_up(&relay, &m).await;
    assert_eq!(relay.status().translate_passed_unsafe, 1);
    relay.shutdown().await.unwrap();
    m.shutdown();
}

/// Waits for the relay to close `s`, within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration, what: &str) {
    let mut b = [0u8; 16];
    let r = tokio::time::timeout(within, s.read(&mut b))
        .await
        .unwrap_or_else(|_| panic!("{what}: still open after {within:?}"));
    assert!(matches!(r, Ok(0) | Err(_)), "{what}: the relay wrote {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_port_limits_come_from_the_file() {
    let (tmp, m) = master().await;
    m.write(&["set", "a", "1"]).unwrap();
    let port = net::free_base(&[1000, 2000, 3000]);
    // Each limit below the default, so a relay ignoring the keys fails each check.
    let cfg = Config::from_toml(
        "[upstream]\nbinlog_max_pending_conns = 2\nbinlog_auth_timeout_secs = 1\n\
         binlog_max_pre_auth_bytes = 64\n",
    )
    .unwrap();
    let relay = start_relay_with(&m, port, &tmp.path().join("relay"), |c| {
        c.upstream.binlog_max_pending_conns = cfg.upstream.binlog_max_pending_conns;
        c.upstream.binlog_auth_timeout_secs = cfg.upstream.binlog_auth_timeout_secs;
        c.upstream.binlog_max_pre_auth_bytes = cfg.upstream.binlog_max_pre_auth_bytes;
    })
    .await;
    caught_up(&relay, &m).await;
    let binlog = ("127.0.0.1", port + 1000);

    // A first message announcing 100 bytes (3.0 auth frame header) is over 64: refused at once.
    let mut big = tokio::net::TcpStream::connect(binlog).await.unwrap();
    big.write_all(&[1, 0, 100, 0, 0, 0, b'x']).await.unwrap();
    closed_within(&mut big, Duration::from_millis(800), "100-byte auth frame").await;

    // Two silent strangers fill the pending slots: a third is closed on arrival.
    let mut a = tokio::net::TcpStream::connect(binlog).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(binlog).await.unwrap();
    let mut c = tokio::net::TcpStream::connect(binlog).await.unwrap();
    closed_within(
        &mut c,
        Duration::from_millis(800),
        "third pending connection",
    )
    .await;
    // The silent ones go after 1 s (the default is 10 s).
    closed_within(&mut a, Duration::from_secs(5), "silent connection").await;
    closed_within(&mut b, Duration::from_secs(5), "silent connection").await;

    // The master's own link never noticed.
    m.write(&["set", "b", "2"]).unwrap();
    caught_up(&relay, &m).await;
    relay.shutdown().await.unwrap();
}
