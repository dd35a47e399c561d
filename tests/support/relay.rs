//! The relay as the end-to-end tests start it: in process, on 127.0.0.1, with fast upstream
//! timers, following an old-master double; and that double as they configure it.

#![allow(dead_code)]

use pika_relay::config::Config;
use pika_relay::relay::{Relay, RelayHandle, Tuning};
use pika_relay::sim::new_slave::{DbState, NewSlave};
use pika_relay::sim::old_master::{
    unix_now, Flavor, MasterTimings, OldMaster, OldMasterConfig, RsyncCliDelivery,
};
use pika_relay::upstream::Timings;
use std::sync::Arc;
use std::time::Duration;

/// Starts a relay of `master` on base port `port` with its data in `data`.
pub async fn start_relay(master: &OldMaster, port: u16, data: &std::path::Path) -> RelayHandle {
    start_relay_with(master, port, data, |_| {}).await
}

/// [`start_relay`] with settings changed by `set` first.
pub async fn start_relay_with(
    master: &OldMaster,
    port: u16,
    data: &std::path::Path,
    set: impl FnOnce(&mut Config),
) -> RelayHandle {
    let mut cfg = Config::default();
    cfg.upstream.master = master.addr().to_string();
    cfg.relay.port = port;
    cfg.relay.bind = "127.0.0.1".parse().unwrap();
    cfg.relay.advertise_ip = "127.0.0.1".into();
    cfg.relay.data_dir = data.to_path_buf();
    cfg.metrics.listen = "127.0.0.1:0".into();
    set(&mut cfg);
    let tuning = Tuning {
        upstream_timings: Some(Timings::fast()),
        purge_interval: Some(Duration::from_millis(500)),
    };
    Relay::start_tuned(cfg, tuning).await.expect("relay starts")
}

/// An old-master double's settings with fast timers, pushing its dumps into `dumps` and on with
/// the real `rsync` client with the recorded master's command lines and probe.
pub fn master_config(flavor: Flavor, dumps: std::path::PathBuf) -> OldMasterConfig {
    let mut mcfg = OldMasterConfig::new(flavor, dumps);
    mcfg.timings = MasterTimings::fast();
    mcfg.delivery = Some(Arc::new(RsyncCliDelivery::as_recorded(flavor)));
    mcfg
}

/// Waits up to `within` until slave `s` is connected, at the relay's journal end, and holds
/// exactly the master's data; otherwise panics naming what is missing and what is extra.
pub async fn converged(
    m: &OldMaster,
    relay: &RelayHandle,
    s: &NewSlave,
    name: &str,
    within: Duration,
) {
    let r = tokio::time::timeout(within, async {
        loop {
            let end = relay.status().journal_end;
            let v = s.view();
            if v.state == DbState::Connected
                && v.producer == end
                && s.lines(unix_now()) == m.keyspace().lines(unix_now())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if r.is_err() {
        let got = s.lines(unix_now());
        let want = m.keyspace().lines(unix_now());
        let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).take(5).collect();
        panic!(
            "{name} did not converge: {:?}; relay {:?}; missing {missing:?}; extra {extra:?}",
            s.view(),
            relay.status()
        );
    }
}
