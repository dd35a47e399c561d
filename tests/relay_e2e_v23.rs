//! A Pika 2.3 master double (nemo dumps) → the relay → new-slave doubles of 3.2 and 3.3: the
//! relay converts the received nemo dump to blackwidow before it becomes the epoch's dump, the
//! slaves load it through the dump reader and then stream on incrementally, all data equal. A
//! conversion that fails leaves no epoch and no dump to serve; the next full sync succeeds.

#[path = "support/net.rs"]
mod net;
#[path = "support/relay.rs"]
mod relay;

use pika_relay::sim::new_slave::{NewSlave, NewSlaveConfig, SlaveVersion};
use pika_relay::sim::old_master::{Flavor, OldMaster};
use pika_relay::sim::workload;
use relay::{converged, master_config, start_relay};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(90);

/// Every type, as a 2.3 master accepts it (2.3.6 has no PSETEX), plus a list and a hash bigger
/// than one dump chunk.
fn write_round(m: &OldMaster, tag: &str) {
    for c in workload::every_type(tag) {
        if c.first().is_some_and(|n| n.eq_ignore_ascii_case(b"psetex")) {
            continue;
        }
        m.write(&c).unwrap_or_else(|e| panic!("{tag}: {e}"));
    }
    let key = format!("{tag}:biglist").into_bytes();
    let mut push = vec![b"rpush".to_vec(), key];
    push.extend((0..3000).map(|i| format!("item-{i}").into_bytes()));
    m.write(&push).unwrap();
    let key = format!("{tag}:bighash").into_bytes();
    let mut hm = vec![b"hmset".to_vec(), key];
    for i in 0..2500 {
        hm.push(format!("f{i}").into_bytes());
        hm.push(vec![b'v'; i % 50]);
    }
    m.write(&hm).unwrap();
}

async fn slave(port: u16, dir: &std::path::Path, relay_port: u16, v: SlaveVersion) -> NewSlave {
    let mut cfg = NewSlaveConfig::new(
        format!("127.0.0.1:{relay_port}").parse().unwrap(),
        port,
        dir.to_path_buf(),
    );
    cfg.version = v;
    cfg.reconnect_delay = Duration::from_millis(300);
    NewSlave::start(cfg).await.unwrap()
}

async fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    tokio::time::timeout(T, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_3_master_reaches_3_2_and_3_3_slaves_through_a_converted_dump() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let mcfg = master_config(Flavor::V23, tmp.path().join("master-dumps"));
    let master = OldMaster::start(mcfg).await.unwrap();
    write_round(&master, "w1");

    let port = net::free_base(&[1000, 2000, 3000]);
    let data = tmp.path().join("relay");
    // The first conversion cannot write its output (a file stands where its directory goes):
    // the full sync fails, no epoch, nothing served; once the obstacle is gone the relay's next
    // attempt converts and serves.
    let staging = data.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let blocker = staging.join(format!(
        "document_127.0.0.1:{}.converted",
        master.addr().port()
    ));
    std::fs::write(&blocker, b"in the way").unwrap();
    let relay = start_relay(&master, port, &data).await;
    let s1 = slave(
        net::free_base(&[1000]),
        &tmp.path().join("s1"),
        port,
        SlaveVersion::V32,
    )
    .await;
    assert!(
        wait_until(|| relay.status().convert.failed >= 1).await,
        "{:?}",
        relay.status()
    );
    let st = relay.status();
    assert_eq!(st.epoch, 0, "a failed conversion makes no epoch");
    assert_eq!(s1.view().full_syncs, 0, "nothing was served");
    assert!(!data.join("dumps/epoch-1").exists(), "no dump was promoted");
    std::fs::remove_file(&blocker).unwrap();

    write_round(&master, "w2");
    converged(&master, &relay, &s1, "s1 (3.2)", T).await;
    assert_eq!(s1.view().full_syncs, 1);
    let st = relay.status();
    assert_eq!(st.epoch, 1);
    assert!(
        st.convert.done >= 1 && !st.convert.running,
        "{:?}",
        st.convert
    );
    assert!(st.convert.keys >= 15, "{:?}", st.convert);
    let epoch_dir = data.join("dumps/epoch-1");
    assert!(
        epoch_dir.join("strings/CURRENT").is_file(),
        "the epoch holds blackwidow"
    );
    assert!(!epoch_dir.join("kv").exists(), "and not the nemo dump");

    // A 3.3 slave joining later full-syncs from the converted epoch dump, then streams.
    let s2 = slave(
        net::free_base(&[1000]),
        &tmp.path().join("s2"),
        port,
        SlaveVersion::V33,
    )
    .await;
    write_round(&master, "w3");
    converged(&master, &relay, &s2, "s2 (3.3)", T).await;
    converged(&master, &relay, &s1, "s1 (3.2)", T).await;
    assert_eq!(s2.view().full_syncs, 1);
    assert_eq!(
        relay.status().epoch,
        1,
        "one converted upstream full sync serves both"
    );

    // INFO and /metrics show the conversion.
    let mut c = tokio::net::TcpStream::connect(relay.ports.admin)
        .await
        .unwrap();
    c.write_all(b"*2\r\n$4\r\ninfo\r\n$3\r\nlog\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 16384];
    let n = c.read(&mut buf).await.unwrap();
    let info = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(info.contains("dump_convert:state=idle,keys="), "{info}");
    let failed: u64 = info
        .split(",failed=")
        .nth(1)
        .and_then(|r| r.split('\r').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(failed >= 1, "{info}");
    let mut m = tokio::net::TcpStream::connect(relay.ports.metrics.unwrap())
        .await
        .unwrap();
    m.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
    let mut text = String::new();
    m.read_to_string(&mut text).await.unwrap();
    assert!(
        text.contains(&format!("pika_relay_dump_converts_failed_total {failed}")),
        "{text}"
    );

    relay.shutdown().await.unwrap();
    s1.stop().await;
    s2.stop().await;
    master.shutdown();
}
