//! `pika-relay cutover` against a relay between an old-master double (3.0.16 behaviour) and
//! new-slave doubles, while a load keeps writing: exit 0 and every write acknowledged by the
//! master before the cutover started is on every slave; a slave that stopped acknowledging makes
//! it exit 1 naming that slave; the fence key is removed on the master and on the slaves.

#[path = "support/net.rs"]
mod net;
#[path = "support/relay.rs"]
mod relay;

use pika_relay::relay::RelayHandle;
use pika_relay::sim::new_slave::{AckMode, DbState, NewSlave, NewSlaveConfig};
use pika_relay::sim::old_master::{unix_now, Flavor, OldMaster};
use pika_relay::sim::workload;
use relay::{master_config, start_relay};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn slave(dir: &std::path::Path, relay_port: u16, ack: AckMode) -> (NewSlave, u16) {
    let port = net::free_base(&[1000]);
    let mut cfg = NewSlaveConfig::new(
        format!("127.0.0.1:{relay_port}").parse().unwrap(),
        port,
        dir.to_path_buf(),
    );
    cfg.ack_mode = ack;
    cfg.reconnect_delay = Duration::from_millis(300);
    (NewSlave::start(cfg).await.unwrap(), port)
}

async fn connected(s: &NewSlave) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while s.view().state != DbState::Connected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("slave connects");
}

fn cutover(relay: &RelayHandle, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .args(["cutover", "--relay", &relay.ports.admin.to_string()])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_under_load_then_with_a_stuck_slave() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let mcfg = master_config(Flavor::V30, tmp.path().join("master-dumps"));
    let master = Arc::new(OldMaster::start(mcfg).await.unwrap());
    for c in workload::every_type("w1") {
        master.write(&c).unwrap();
    }
    let port = net::free_base(&[1000, 2000, 3000]);
    let relay = start_relay(&master, port, &tmp.path().join("relay")).await;
    let (s1, _) = slave(&tmp.path().join("s1"), port, AckMode::Normal).await;
    let (s2, _) = slave(&tmp.path().join("s2"), port, AckMode::Normal).await;
    // The relay's own full sync from the master is done and both slaves hold the journal.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let st = relay.status();
            if st.epoch == 1
                && st.upstream.link_up
                && [&s1, &s2].iter().all(|s| {
                    let v = s.view();
                    v.state == DbState::Connected && v.producer == st.journal_end
                })
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("relay and slaves settle");

    // A running load: each write counts once the master acknowledged it.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (m, acked, stop) = (master.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                m.write(&[
                    b"set".to_vec(),
                    format!("load:{i}").into_bytes(),
                    format!("v{i}").into_bytes(),
                ])
                .unwrap();
                i += 1;
                acked.store(i, Ordering::SeqCst);
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = acked.load(Ordering::SeqCst);
    let relay_ref = &relay;
    let (code, out, err) =
        tokio::task::block_in_place(|| cutover(relay_ref, &["--timeout-secs", "30"]));
    assert_eq!(code, Some(0), "stdout {out}\nstderr {err}");
    assert!(before > 50, "the load was running: {before}");
    // Every write acknowledged before the cutover started is on every slave, right now.
    for (name, s) in [("s1", &s1), ("s2", &s2)] {
        let ks = s.keyspace();
        for i in 0..before {
            let k = format!("load:{i}");
            assert!(
                ks.contains(k.as_bytes(), unix_now()),
                "{name} lacks {k} after cutover returned 0"
            );
        }
    }
    assert_eq!(
        out.matches("caught_up: slave 127.0.0.1:").count(),
        2,
        "{out}"
    );
    assert!(
        out.starts_with("result:ok\nfence_key:pika-relay:fence:"),
        "{out}"
    );
    assert!(out.contains("fence key deleted on the old master"), "{out}");
    let fence = out
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("fence_key:")
        .unwrap()
        .to_string();
    assert!(
        !master.keyspace().contains(fence.as_bytes(), unix_now()),
        "fence removed on the master"
    );
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    // The delete flowed through too.
    tokio::time::timeout(Duration::from_secs(20), async {
        while s1.keyspace().contains(fence.as_bytes(), unix_now())
            || s2.keyspace().contains(fence.as_bytes(), unix_now())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("fence delete reaches the slaves");

    // A slave that stopped acknowledging: exit 1, naming it and how far it lags.
    let (stuck, stuck_port) = slave(&tmp.path().join("s3"), port, AckMode::Silent).await;
    connected(&stuck).await;
    for c in workload::every_type("w2") {
        master.write(&c).unwrap();
    }
    let (code, out, err) = tokio::task::block_in_place(|| {
        cutover(relay_ref, &["--timeout-secs", "6", "--keep-fence"])
    });
    assert_eq!(code, Some(1), "stdout {out}\nstderr {err}");
    let stuck_name = format!("LAGGING: slave 127.0.0.1:{}", stuck_port);
    let line = out
        .lines()
        .find(|l| l.starts_with(&stuck_name))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("bytes short of the fence"), "{line}");
    assert_eq!(
        out.matches("caught_up: ").count(),
        2,
        "the others caught up: {out}"
    );
    assert!(
        out.contains("kept on the old master (--keep-fence)"),
        "{out}"
    );
    let fence = out
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("fence_key:")
        .unwrap()
        .to_string();
    assert!(
        master.keyspace().contains(fence.as_bytes(), unix_now()),
        "--keep-fence keeps it"
    );

    relay.shutdown().await.unwrap();
    for s in [s1, s2, stuck] {
        s.stop().await;
    }
    master.shutdown();
}

/// `--pause-writes` on a master that can refuse writes (3.0.4): it is made read-only, the fence
/// is its binlog position, and then every write it ever acknowledged is on every slave; on
/// 3.0.16, which cannot, the note says so and a key fence is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_writes_where_the_version_can() {
    use pika_relay::formats::resp::Reply;
    use pika_relay::verify::conn::{cmd, Conn};
    for version in ["3.0.4", "3.0.16"] {
        let tmp = tempfile::tempdir().unwrap();
        let mut mcfg = master_config(Flavor::V30, tmp.path().join("master-dumps"));
        mcfg.pika_version = version.into();
        let master = OldMaster::start(mcfg).await.unwrap();
        let port = net::free_base(&[1000, 2000, 3000]);
        let relay = start_relay(&master, port, &tmp.path().join("relay")).await;
        let (s1, _) = slave(&tmp.path().join("s1"), port, AckMode::Normal).await;
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let st = relay.status();
                let v = s1.view();
                if st.epoch == 1 && st.upstream.link_up && v.state == DbState::Connected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("relay and slave settle");
        // Clients write through the client port until the master refuses.
        let addr = master.addr().to_string();
        let pausable = version == "3.0.4";
        let load = tokio::spawn(async move {
            let mut c = Conn::connect(&addr, None, Duration::from_secs(5))
                .await
                .unwrap();
            let mut ok = 0u64;
            let mut refused = None;
            // Until refused (3.0.4), or for a while (3.0.16 never refuses): a fixed count could
            // all be written before the cutover pauses the master on a fast machine.
            let until =
                std::time::Instant::now() + Duration::from_secs(if pausable { 60 } else { 3 });
            for i in 0.. {
                if std::time::Instant::now() > until {
                    break;
                }
                match c
                    .one(cmd(&["set".to_string(), format!("p:{i}"), "v".to_string()]))
                    .await
                    .unwrap()
                {
                    Reply::Simple(_) => ok += 1,
                    Reply::Error(e) => {
                        refused = Some(e);
                        break;
                    }
                    other => panic!("{other:?}"),
                }
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            (ok, refused)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let relay_ref = &relay;
        let (code, out, err) = tokio::task::block_in_place(|| {
            cutover(relay_ref, &["--timeout-secs", "30", "--pause-writes"])
        });
        assert_eq!(code, Some(0), "{version}: stdout {out}\nstderr {err}");
        if version == "3.0.4" {
            assert!(out.contains("is now read-only and refuses writes"), "{out}");
            assert!(
                !out.contains("fence_key:"),
                "no key fence on a paused master: {out}"
            );
            let (ok, refused) = load.await.unwrap();
            assert_eq!(refused.as_deref(), Some("ERR Server in read-only"));
            let ks = s1.keyspace();
            for i in 0..ok {
                assert!(
                    ks.contains(format!("p:{i}").as_bytes(), unix_now()),
                    "p:{i} of {ok} missing"
                );
            }
        } else {
            assert!(out.contains("cannot refuse writes as a master"), "{out}");
            assert!(out.contains("fence_key:"), "{out}");
            let (_, refused) = load.await.unwrap();
            assert_eq!(refused, None, "3.0.16 kept taking writes");
        }
        relay.shutdown().await.unwrap();
        s1.stop().await;
        master.shutdown();
    }
}
