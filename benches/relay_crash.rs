//! Crash harness: a continuous workload flows from the old-master double through a relay
//! **process** to K new-slave doubles; the relay is killed with SIGKILL at random moments and
//! restarted on the same data directory. At the end every slave must hold exactly the master's
//! data, each slave must have full-synced exactly once (when it first attached, before the kills
//! began) and the relay must have taken exactly one full sync from upstream (its first start):
//! a restart resumes both links from the journal. Exits non-zero on any divergence or any
//! other count of full syncs.
//!
//! `cargo bench --bench relay_crash` (CRASH_RUNS=8 CRASH_SLAVES=2 CRASH_SEED=<u64>)

#[path = "support.rs"]
mod support;

use pika_relay::sim::new_slave::DbState;
use pika_relay::sim::old_master::{
    unix_now, EmbeddedRsyncDelivery, Flavor, OldMaster, OldMasterConfig,
};
use pika_relay::sim::workload;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs = env_num("CRASH_RUNS", 8);
    let k = env_num("CRASH_SLAVES", 2) as usize;
    let seed = env_num("CRASH_SEED", rand::random::<u32>() as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ok = rt.block_on(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let tmp = tempfile::tempdir().unwrap();
        let mut mc = OldMasterConfig::new(Flavor::V30, tmp.path().join("master-dumps"));
        mc.timings = master_timings();
        mc.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
        let master = Arc::new(OldMaster::start(mc).await.unwrap());
        let port = free_base(&[1000, 2000, 3000]);
        let data = tmp.path().join("relay");
        let log = |i: u64| tmp.path().join(format!("relay-{i}.log"));
        let mut child = spawn_relay(&master.addr().to_string(), port, &data, &log(0));
        // The slaves attach once the relay has its first dump (epoch 1), and the kills start once
        // they all stream: from then on no full sync is expected on either side.
        let admin: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let linked = wait_until(Duration::from_secs(60), || {
            std::net::TcpStream::connect(admin)
                .ok()
                .and_then(|mut c| info(&mut c, "replication"))
                .is_some_and(|t| t.contains("master_link_status:up"))
        })
        .await;
        assert!(linked, "the relay never linked to the master: see {}", log(0).display());
        let mut slaves = Vec::new();
        for i in 0..k {
            slaves.push(slave(port, &tmp.path().join(format!("slave{i}"))).await);
        }
        let attached = wait_until(Duration::from_secs(60), || {
            slaves.iter().all(|s| s.view().state == DbState::Connected)
        })
        .await;
        assert!(attached, "the slaves did not attach: see {}", log(0).display());
        // Continuous writes of every data type.
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let writer = {
            let (m, stop, written) = (master.clone(), stop.clone(), written.clone());
            tokio::spawn(async move {
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    for c in workload::every_type(&format!("r{round}")).into_iter().chain(workload::small_sets(&format!("s{round}"), 200)) {
                        m.write(&c).unwrap();
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    round += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        for run in 1..=runs {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(300..2500))).await;
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1000))).await;
            child = spawn_relay(&master.addr().to_string(), port, &data, &log(run));
            println!("relay_crash: run {run}: killed the relay with SIGKILL and restarted it ({} writes so far)", written.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        writer.await.unwrap();
        let now = unix_now();
        let want = master.keyspace().lines(now);
        let mut divergent = 0;
        for (i, s) in slaves.iter().enumerate() {
            let caught = wait_until(Duration::from_secs(120), || s.view().state == DbState::Connected && s.lines(now) == want).await;
            if !caught {
                divergent += 1;
                let got = s.lines(now);
                let missing = want.iter().filter(|l| !got.contains(l)).count();
                let extra = got.iter().filter(|l| !want.contains(l)).count();
                println!("relay_crash: slave {i} DIVERGES: {missing} missing/different keys, {extra} unexpected, {:?}", s.view());
            }
        }
        let full_syncs: Vec<u32> = slaves.iter().map(|s| s.view().full_syncs).collect();
        let upstream_full_syncs = std::fs::read_dir(data.join("dumps"))
            .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("epoch-")).count())
            .unwrap_or(0);
        println!(
            "relay_crash: seed {seed}: {runs} kill -9 restarts, {} writes, {} keys compared, {k} slaves, divergences {divergent}, slave full syncs {full_syncs:?}, upstream full syncs {upstream_full_syncs} (1 expected: the first start)",
            written.load(Ordering::Relaxed),
            want.len()
        );
        let mut ok = divergent == 0;
        if full_syncs.iter().any(|&f| f != 1) {
            println!("relay_crash: FAILED: every slave should have full-synced exactly once (before the kills), got {full_syncs:?}");
            ok = false;
        }
        if upstream_full_syncs != 1 {
            println!("relay_crash: FAILED: the relay took {upstream_full_syncs} full syncs from upstream, 1 expected (its first start)");
            ok = false;
        }
        let _ = child.kill();
        let _ = child.wait();
        for s in slaves {
            s.stop().await;
        }
        master.shutdown();
        ok
    });
    if !ok {
        std::process::exit(1);
    }
}
