//! The recorded real master→slave exchanges (pika-3.0.16, pika-2.3.6) driven through the
//! upstream session and its binlog receiver.

mod upstream_common;

use std::time::Duration;

use pika_relay::formats::record::record_end;
use pika_relay::formats::BinlogPos;
use pika_relay::upstream::{Durable, OldVersion, SessionState};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use upstream_common::*;

const T: Duration = Duration::from_secs(10);

struct Row {
    body_len: u64,
    exec_time: u32,
    server_id: u32,
    pos: Option<BinlogPos>,
    argv: Vec<Vec<u8>>,
}

fn rows(path: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(vectors().join(path)).unwrap();
    text.lines()
        .map(|l| {
            let c: Vec<&str> = l.splitn(8, '\t').collect();
            let num = |s: &str| s.parse::<u64>().ok();
            Row {
                body_len: num(c[1]).unwrap(),
                exec_time: num(c[2]).unwrap_or(0) as u32,
                server_id: num(c[3]).unwrap_or(0) as u32,
                pos: num(c[5]).map(|f| BinlogPos::new(f as u32, num(c[6]).unwrap())),
                argv: tsv_argv(c[7]),
            }
        })
        .collect()
}

fn stream(path: &str) -> Vec<u8> {
    std::fs::read(vectors().join(path)).unwrap()
}

/// Runs a session against a scripted master that answers with the recorded reply, then writes the
/// recorded push stream into the relay's binlog port. Returns the relay and the scripted master.
async fn replay(
    version: &str,
    trysync: &str,
    push: &str,
    relay_port: u16,
    init: Durable,
    old: OldVersion,
    split: usize,
) -> (Relay, ScriptedMaster) {
    let reply = stream(&format!("{version}/streams/{trysync}.s2c.bin"));
    let m = ScriptedMaster::start(vec![reply]).await;
    let r = Relay::start(m.addr, init, |c| {
        c.relay_port = relay_port;
        c.old_version = old;
    })
    .await;
    assert!(
        wait_until(T, || r.status().state == SessionState::Streaming).await,
        "{:?}",
        r.status()
    );
    let bytes = stream(&format!("{version}/streams/{push}.c2s.bin"));
    let mut s = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    // Deliver in odd-sized pieces so frames straddle reads.
    for chunk in bytes.chunks(split) {
        s.write_all(chunk).await.unwrap();
    }
    s.flush().await.unwrap();
    // Keep the connection open: the master never closes it while streaming.
    std::mem::forget(s);
    (r, m)
}

fn check_30(r: &Relay, tsv: &str, from: BinlogPos, last_end: u64) {
    let rows: Vec<Row> = rows(tsv).into_iter().skip(1).collect(); // row 0 is the auth frame
    let es = r.entries();
    assert_eq!(es.len(), rows.len());
    assert_contiguous(&es, from, 104_857_600);
    for (e, row) in es.iter().zip(&rows) {
        let p = row.pos.unwrap();
        assert_eq!(e.start, p, "start from the item header");
        assert_eq!(
            e.end,
            BinlogPos::new(p.filenum, record_end(p.offset, row.body_len))
        );
        assert_eq!(e.exec_time, row.exec_time);
        assert_eq!(e.server_id, row.server_id);
        assert_eq!(e.commands, vec![row.argv.clone()]);
    }
    assert_eq!(es.last().unwrap().end, BinlogPos::new(0, last_end));
}

#[tokio::test]
async fn v3016_incremental_push_and_trysync_bytes() {
    init_log();
    let (r, m) = replay(
        "pika-3.0.16",
        "02-trysync-incremental",
        "04-binlog-push-incremental",
        29321,
        Durable::default(),
        OldVersion::V30,
        4093,
    )
    .await;
    r.wait_pos(BinlogPos::new(0, 156700), T).await;
    check_30(
        &r,
        "pika-3.0.16/streams/04-binlog-push-incremental.entries.tsv",
        BinlogPos::new(0, 0),
        156700,
    );
    assert_eq!(r.status().sid, Some(1));
    // What we sent on the master's port equals what the real 3.0.16 slave sent.
    assert!(wait_until(T, || !m.requests.lock().unwrap().is_empty()).await);
    assert_eq!(
        m.requests.lock().unwrap()[0],
        stream("pika-3.0.16/streams/02-trysync-incremental.c2s.bin")
    );
    // Heartbeat: spci 1 then pings, byte for byte as recorded.
    let hb = stream("pika-3.0.16/streams/03-heartbeat-incremental.c2s.bin");
    assert!(wait_until(T, || m.heartbeat.lock().unwrap().len() >= hb.len()).await);
    assert_eq!(&m.heartbeat.lock().unwrap()[..hb.len()], &hb[..]);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn v3016_push_after_fullsync_with_auto_detection() {
    init_log();
    let init = Durable {
        epoch: 1,
        pos: BinlogPos::new(0, 156700),
    };
    let (r, m) = replay(
        "pika-3.0.16",
        "07-trysync-after-fullsync",
        "09-binlog-push-after-fullsync",
        29321,
        init,
        OldVersion::Auto,
        1000,
    )
    .await;
    r.wait_pos(BinlogPos::new(0, 227652), T).await;
    check_30(
        &r,
        "pika-3.0.16/streams/09-binlog-push-after-fullsync.entries.tsv",
        BinlogPos::new(0, 156700),
        227652,
    );
    assert_eq!(r.status().sid, Some(3));
    assert_eq!(
        m.requests.lock().unwrap()[0],
        stream("pika-3.0.16/streams/07-trysync-after-fullsync.c2s.bin")
    );
    let hb = stream("pika-3.0.16/streams/08-heartbeat-after-fullsync.c2s.bin");
    assert!(wait_until(T, || m.heartbeat.lock().unwrap().len() >= 20).await);
    let got = m.heartbeat.lock().unwrap().clone();
    assert_eq!(&got[..], &hb[..got.len().min(hb.len())]);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn v3016_force_trysync_bytes_and_wait() {
    init_log();
    for (version, port) in [("pika-3.0.16", 29321), ("pika-2.3.6", 30221)] {
        let reply = stream(&format!("{version}/streams/05-trysync-force.s2c.bin"));
        let m = ScriptedMaster::start(vec![reply]).await;
        let r = Relay::start(m.addr, Durable::default(), |c| {
            c.relay_port = port;
            c.force_full_sync = true;
        })
        .await;
        assert!(
            wait_until(T, || r.status().state == SessionState::WaitingFullSync).await,
            "{:?}",
            r.status()
        );
        assert!(wait_until(T, || !m.requests.lock().unwrap().is_empty()).await);
        assert_eq!(
            m.requests.lock().unwrap()[0],
            stream(&format!("{version}/streams/05-trysync-force.c2s.bin"))
        );
        r.handle.shutdown().await.unwrap();
    }
}

fn check_23(r: &Relay, tsv: &str, from: BinlogPos, last_end: u64) {
    let rows: Vec<Row> = rows(tsv).into_iter().skip(1).collect();
    // Group rows into records: consecutive rows with the same (filenum, offset).
    let mut recs: Vec<Vec<&Row>> = Vec::new();
    for row in &rows {
        match recs.last_mut() {
            Some(g) if g[0].pos == row.pos => g.push(row),
            _ => recs.push(vec![row]),
        }
    }
    let es = r.entries();
    assert_eq!(es.len(), recs.len());
    assert!(
        recs.iter().any(|g| g.len() >= 2),
        "an mset is one record of several arrays"
    );
    assert_contiguous(&es, from, 104_857_600);
    for (e, g) in es.iter().zip(&recs) {
        let p = g[0].pos.unwrap();
        let len: u64 = g.iter().map(|r| r.body_len).sum();
        assert_eq!(e.start, p);
        assert_eq!(e.end, BinlogPos::new(p.filenum, record_end(p.offset, len)));
        assert_eq!(e.exec_time, g[0].exec_time);
        assert_eq!(e.server_id, g[0].server_id);
        let want: Vec<Vec<Vec<u8>>> = g
            .iter()
            .map(|r| r.argv[..r.argv.len() - 4].to_vec())
            .collect();
        assert_eq!(e.commands, want);
        for r in g {
            assert_eq!(r.argv[r.argv.len() - 4], b"__PIKA_X#$SKGI");
        }
    }
    assert_eq!(es.last().unwrap().end, BinlogPos::new(0, last_end));
}

#[tokio::test]
async fn v236_incremental_push_and_trysync_bytes() {
    init_log();
    let (r, m) = replay(
        "pika-2.3.6",
        "02-trysync-incremental",
        "04-binlog-push-incremental",
        30221,
        Durable::default(),
        OldVersion::V23,
        777,
    )
    .await;
    r.wait_pos(BinlogPos::new(0, 157592), T).await;
    check_23(
        &r,
        "pika-2.3.6/streams/04-binlog-push-incremental.entries.tsv",
        BinlogPos::new(0, 0),
        157592,
    );
    assert_eq!(
        m.requests.lock().unwrap()[0],
        stream("pika-2.3.6/streams/02-trysync-incremental.c2s.bin")
    );
    let hb = stream("pika-2.3.6/streams/03-heartbeat-incremental.c2s.bin");
    assert!(wait_until(T, || m.heartbeat.lock().unwrap().len() >= hb.len()).await);
    assert_eq!(&m.heartbeat.lock().unwrap()[..hb.len()], &hb[..]);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn v236_push_after_fullsync_auto() {
    init_log();
    let init = Durable {
        epoch: 1,
        pos: BinlogPos::new(0, 157592),
    };
    let (r, m) = replay(
        "pika-2.3.6",
        "07-trysync-after-fullsync",
        "09-binlog-push-after-fullsync",
        30221,
        init,
        OldVersion::Auto,
        100_000,
    )
    .await;
    r.wait_pos(BinlogPos::new(0, 228904), T).await;
    check_23(
        &r,
        "pika-2.3.6/streams/09-binlog-push-after-fullsync.entries.tsv",
        BinlogPos::new(0, 157592),
        228904,
    );
    assert_eq!(r.status().sid, Some(3));
    assert_eq!(
        m.requests.lock().unwrap()[0],
        stream("pika-2.3.6/streams/07-trysync-after-fullsync.c2s.bin")
    );
    r.handle.shutdown().await.unwrap();
}

/// The same recorded stream delivered twice on two connections (a master re-sending after a
/// reconnect): the second copy is dropped entry by entry.
#[tokio::test]
async fn v3016_resent_stream_is_deduplicated() {
    init_log();
    let (r, _m) = replay(
        "pika-3.0.16",
        "02-trysync-incremental",
        "04-binlog-push-incremental",
        29321,
        Durable::default(),
        OldVersion::V30,
        65536,
    )
    .await;
    r.wait_pos(BinlogPos::new(0, 156700), T).await;
    let bytes = stream("pika-3.0.16/streams/04-binlog-push-incremental.c2s.bin");
    let mut s = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    assert!(
        wait_until(T, || r.status().duplicates == 37).await,
        "{:?}",
        r.status()
    );
    assert_eq!(r.entries().len(), 37);
    r.handle.shutdown().await.unwrap();
}
