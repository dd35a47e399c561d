//! Crash harness: a continuous workload flows from the old-master double through a relay
//! **process** to K new-slave doubles; the relay is killed with SIGKILL at random moments and
//! restarted on the same data directory. At the end every slave must hold exactly the master's
//! data. Reports runs, restarts, upstream full syncs after the first, and divergences; exits
//! non-zero on any divergence.
//!
//! `cargo bench --bench relay_crash` (CRASH_RUNS=8 CRASH_SLAVES=2 CRASH_SEED=<u64>)

#[path = "support.rs"]
mod support;

use pika_relay::sim::new_slave::DbState;
use pika_relay::sim::old_master::{
    unix_now, EmbeddedRsyncDelivery, Flavor, MasterTimings, OldMaster, OldMasterConfig,
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
        mc.timings = MasterTimings::fast();
        mc.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
        let master = Arc::new(OldMaster::start(mc).await.unwrap());
        let port = free_base(&[1000, 2000, 3000]);
        let data = tmp.path().join("relay");
        let log = |i: u64| tmp.path().join(format!("relay-{i}.log"));
        let mut child = spawn_relay(&master.addr().to_string(), port, &data, &log(0));
        let mut slaves = Vec::new();
        for i in 0..k {
            slaves.push(slave(port, &tmp.path().join(format!("slave{i}"))).await);
        }
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
        let _ = child.kill();
        let _ = child.wait();
        for s in slaves {
            s.stop().await;
        }
        master.shutdown();
        divergent == 0
    });
    if !ok {
        std::process::exit(1);
    }
}
