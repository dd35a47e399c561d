//! The whole relay, as `Relay::start` runs it, between an old-master double (3.0.16 behaviour,
//! pushing its dump with the real `rsync` client into the relay's R+3000) and new-slave doubles
//! (real `rsync --daemon` on their port+1000): full sync upstream, full sync and incremental
//! downstream, a slave joining later, a 3.3-protocol slave, and a relay restart in the middle.

#[path = "support/net.rs"]
mod net;
#[path = "support/relay.rs"]
mod relay;

use pika_relay::sim::new_slave::{NewSlave, NewSlaveConfig, SlaveVersion};
use pika_relay::sim::old_master::{Flavor, OldMaster};
use pika_relay::sim::workload;
use relay::{converged, master_config, start_relay, start_relay_with};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(60);

fn write_round(m: &OldMaster, tag: &str) {
    for c in workload::every_type(tag) {
        m.write(&c).unwrap_or_else(|e| panic!("{tag}: {e}"));
    }
}

async fn slave(port: u16, dir: &std::path::Path, relay_port: u16, v: SlaveVersion) -> NewSlave {
    let mut cfg = NewSlaveConfig::new(
        format!("127.0.0.1:{relay_port}").parse().unwrap(),
        port,
        dir.to_path_buf(),
    );
    cfg.version = v;
    cfg.reconnect_delay = Duration::from_millis(300);
    cfg.meta_sync_interval = Duration::from_millis(300);
    NewSlave::start(cfg).await.unwrap()
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_master_through_the_relay_to_new_slaves_with_a_restart() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let mcfg = master_config(Flavor::V30, tmp.path().join("master-dumps"));
    let master = OldMaster::start(mcfg).await.unwrap();
    write_round(&master, "w1");

    let port = net::free_base(&[1000, 2000, 3000]);
    let data = tmp.path().join("relay");
    let relay = start_relay(&master, port, &data).await;

    // A fresh relay full-syncs from the master, then streams.
    let s1 = slave(
        net::free_base(&[1000]),
        &tmp.path().join("s1"),
        port,
        SlaveVersion::V32,
    )
    .await;
    write_round(&master, "w2");
    converged(&master, &relay, &s1, "s1", T).await;
    assert_eq!(s1.view().full_syncs, 1, "s1 loaded the relay's dump");
    let st = relay.status();
    assert_eq!(st.epoch, 1, "one upstream full sync");
    // The dump is a real (Snappy-compressed) RocksDB dump: progress counts its file bytes.
    let dump_bytes = dir_bytes(&data.join("dumps/epoch-1"));
    assert!(
        dump_bytes > 4096 && st.fullsync_bytes >= dump_bytes,
        "full-sync progress counts the dump: {} of {dump_bytes}",
        st.fullsync_bytes
    );
    assert!(st.upstream.link_up, "{:?}", st.upstream);
    assert_eq!(
        st.upstream.position,
        master.producer(),
        "relay holds the master's position"
    );

    // A slave joining later, speaking the 3.3 protocol.
    let s2 = slave(
        net::free_base(&[1000]),
        &tmp.path().join("s2"),
        port,
        SlaveVersion::V33,
    )
    .await;
    write_round(&master, "w3");
    converged(&master, &relay, &s2, "s2", T).await;
    converged(&master, &relay, &s1, "s1", T).await;

    // INFO over port R as redis-cli asks it, and /metrics.
    let mut c = tokio::net::TcpStream::connect(relay.ports.admin)
        .await
        .unwrap();
    c.write_all(b"*2\r\n$4\r\ninfo\r\n$11\r\nreplication\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 16384];
    let n = c.read(&mut buf).await.unwrap();
    let info = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(info.contains("master_link_status:up"), "{info}");
    assert!(info.contains("connected_slaves:2"), "{info}");
    assert_eq!(
        info.matches("lag=(db0:0),lag_entries=0").count(),
        2,
        "{info}"
    );
    let mut m = tokio::net::TcpStream::connect(relay.ports.metrics.unwrap())
        .await
        .unwrap();
    m.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
    let mut text = String::new();
    m.read_to_string(&mut text).await.unwrap();
    assert!(text.contains("pika_relay_slaves 2"), "{text}");

    // Restart the relay on the same data dir while the master keeps writing: it resumes trysync
    // from its journal (no new full sync), and the slaves resume from their positions.
    relay.shutdown().await.expect("clean shutdown");
    write_round(&master, "w4");
    let relay = start_relay(&master, port, &data).await;
    write_round(&master, "w5");
    converged(&master, &relay, &s1, "s1 after restart", T).await;
    converged(&master, &relay, &s2, "s2 after restart", T).await;
    assert_eq!(
        relay.status().epoch,
        1,
        "no second upstream full sync after a restart"
    );
    assert_eq!(s1.view().full_syncs, 1, "s1 resumed incrementally");
    assert_eq!(s2.view().full_syncs, 1, "s2 resumed incrementally");
    relay.shutdown().await.unwrap();
    s1.stop().await;
    s2.stop().await;
    master.shutdown();
}

/// A slave streaming live from the journal's in-memory tail while the journal rotates its files
/// again and again (4 KiB files): every rotation hands the slave from the end of one file to the
/// first item of the next. (A reader at a file's end once found no item in the ring and spun
/// between ring and disk forever, at 100% CPU, with the slave stuck.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_slave_follows_the_journal_across_file_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let mcfg = master_config(Flavor::V30, tmp.path().join("master-dumps"));
    let master = OldMaster::start(mcfg).await.unwrap();
    write_round(&master, "w0");
    let port = net::free_base(&[1000, 2000, 3000]);
    let relay = start_relay_with(&master, port, &tmp.path().join("relay"), |c| {
        c.journal.binlog_file_size = 4096;
    })
    .await;
    let mut cfg = NewSlaveConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
        net::free_base(&[1000]),
        tmp.path().join("s1"),
    );
    cfg.binlog_file_size = 4096;
    cfg.reconnect_delay = Duration::from_millis(300);
    cfg.meta_sync_interval = Duration::from_millis(300);
    let s1 = NewSlave::start(cfg).await.unwrap();
    converged(&master, &relay, &s1, "s1 after its full sync", T).await;
    let first = relay.status().journal_end;
    for i in 0..40 {
        write_round(&master, &format!("r{i}"));
    }
    converged(&master, &relay, &s1, "s1 across rotations", T).await;
    let end = relay.status().journal_end;
    assert!(
        end.filenum >= first.filenum + 5,
        "the journal rotated at least 5 times while s1 streamed: {first} .. {end}"
    );
    assert_eq!(s1.view().full_syncs, 1, "streamed, never re-synced");
    relay.shutdown().await.unwrap();
}
