//! The upstream session against the old-master double: incremental streaming of every data
//! type, binlog reconnects (cut frames, re-sends, lost records), heartbeat loss, full sync, and
//! the trysync error replies.

mod upstream_common;

use std::sync::Arc;
use std::time::Duration;

use pika_relay::formats::record::records;
use pika_relay::formats::BinlogPos;
use pika_relay::sim::old_master::dump::load_dump;
use pika_relay::sim::old_master::{
    unix_now, Binlog, CopyDelivery, Fault, Flavor, Keyspace, MasterTimings, OldMaster,
    OldMasterConfig,
};
use pika_relay::upstream::session::SessionError;
use pika_relay::upstream::{Durable, OldVersion, SessionState, UpstreamEvent};
use upstream_common::*;

const T: Duration = Duration::from_secs(15);

async fn master(
    flavor: Flavor,
    tweak: impl FnOnce(&mut OldMasterConfig),
) -> (OldMaster, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = OldMasterConfig::new(flavor, d.path().join("dumps"));
    cfg.timings = MasterTimings::fast();
    tweak(&mut cfg);
    (OldMaster::start(cfg).await.unwrap(), d)
}

fn w(m: &OldMaster, args: &[&[u8]]) {
    m.write(args).unwrap_or_else(|e| {
        panic!(
            "{:?}: {e}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        )
    });
}

/// Every data type and the rewrites (pksetexat, expireat, setnx, mset, incr, binary keys, a value
/// spanning several 64 KiB blocks).
fn workload(m: &OldMaster, tag: &str, flavor: Flavor) {
    let k = |s: &str| format!("{tag}:{s}").into_bytes();
    w(m, &[b"set", &k("str"), b"v1"]);
    w(m, &[b"SET", &k("str2"), b"v2"]);
    w(m, &[b"setnx", &k("nx"), b"first"]);
    w(m, &[b"setnx", &k("nx"), b"second"]);
    w(
        m,
        &[b"mset", &k("m1"), b"a", &k("m2"), b"b", &k("m3"), b"c"],
    );
    w(m, &[b"incr", &k("cnt")]);
    w(m, &[b"incrby", &k("cnt"), b"41"]);
    w(m, &[b"decr", &k("cnt")]);
    w(m, &[b"append", &k("str"), b"-tail"]);
    w(
        m,
        &[
            b"set",
            &[&k("bin")[..], b"\x00key\r\n\xff"].concat(),
            b"bin\x00value",
        ],
    );
    let big: Vec<u8> = (0..153_600usize).map(|i| ((i * 7) % 251) as u8).collect();
    w(m, &[b"set", &k("big"), &big]);
    w(m, &[b"hset", &k("h"), b"f1", b"v1"]);
    w(m, &[b"hmset", &k("h"), b"f2", b"v2", b"f3", b"v3"]);
    w(m, &[b"hincrby", &k("h"), b"n", b"5"]);
    w(m, &[b"hdel", &k("h"), b"f3"]);
    w(m, &[b"lpush", &k("l"), b"a", b"b", b"c"]);
    w(m, &[b"rpush", &k("l"), b"x", b"y"]);
    w(m, &[b"lpop", &k("l")]);
    w(m, &[b"sadd", &k("s"), b"m1", b"m2", b"m3"]);
    w(m, &[b"srem", &k("s"), b"m2"]);
    w(
        m,
        &[
            b"zadd",
            &k("z"),
            b"1",
            b"one",
            b"2",
            b"two",
            b"3.5",
            b"three",
        ],
    );
    w(m, &[b"zincrby", &k("z"), b"10", b"one"]);
    w(m, &[b"zrem", &k("z"), b"two"]);
    w(m, &[b"set", &k("ttl"), b"v"]);
    w(m, &[b"expire", &k("ttl"), b"1000"]);
    w(m, &[b"set", &k("pttl"), b"v"]);
    w(m, &[b"pexpire", &k("pttl"), b"1000000"]);
    w(m, &[b"hset", &k("httl"), b"f", b"v"]);
    w(m, &[b"expireat", &k("httl"), b"2145916800"]);
    w(m, &[b"set", &k("del"), b"v"]);
    w(m, &[b"del", &k("del")]);
    if flavor == Flavor::V30 {
        w(m, &[b"set", &k("ex"), b"v", b"ex", b"1000"]);
        w(m, &[b"set", &k("px"), b"v", b"px", b"1000000"]);
        w(m, &[b"setex", &k("setex"), b"1000", b"v"]);
        w(m, &[b"psetex", &k("psetex"), b"1000000", b"v"]);
        w(m, &[b"set", &k("persist"), b"v", b"ex", b"1000"]);
        w(m, &[b"persist", &k("persist")]);
    }
}

fn small_writes(m: &OldMaster, tag: &str, n: usize) {
    for i in 0..n {
        w(
            m,
            &[
                b"set",
                format!("{tag}:{i}").as_bytes(),
                format!("value-{i}").as_bytes(),
            ],
        );
        w(
            m,
            &[
                b"rpush",
                format!("{tag}:list").as_bytes(),
                format!("{i}").as_bytes(),
            ],
        );
    }
}

/// Physical (start, end) of every record in the master's binlog from `from` on.
fn master_records(b: &Binlog, from: BinlogPos) -> Vec<(BinlogPos, BinlogPos)> {
    let mut out = Vec::new();
    for (n, f) in b.files.iter().enumerate() {
        let Some(f) = f else { continue };
        for r in records(f, 0) {
            let r = r.unwrap();
            let (s, e) = (
                BinlogPos::new(n as u32, r.start),
                BinlogPos::new(n as u32, r.end),
            );
            if s >= from {
                out.push((s, e));
            }
        }
    }
    out
}

fn check_same_as_master(r: &Relay, m: &OldMaster, from: BinlogPos, base: Keyspace) {
    let es = r.entries();
    assert_contiguous(&es, from, r.cfg.binlog_file_size);
    let got: Vec<_> = es.iter().map(|e| (e.start, e.end)).collect();
    assert_eq!(
        got,
        master_records(&m.binlog(), from),
        "entry positions equal the master's records"
    );
    let now = unix_now();
    let mut ks = base;
    apply(&mut ks, &es, now);
    assert_eq!(
        ks.live(now),
        m.keyspace().live(now),
        "replayed data equals the master's"
    );
}

#[tokio::test]
async fn incremental_every_type_with_file_rollover() {
    init_log();
    let (m, _d) = master(Flavor::V30, |c| c.binlog_file_size = 4096).await;
    workload(&m, "before", Flavor::V30);
    let r = Relay::start(m.addr(), Durable::default(), |c| c.binlog_file_size = 4096).await;
    r.wait_pos(m.producer(), T).await;
    workload(&m, "after", Flavor::V30);
    small_writes(&m, "w", 200);
    r.wait_pos(m.producer(), T).await;
    assert!(
        m.producer().filenum >= 3,
        "the workload spans several binlog files"
    );
    check_same_as_master(&r, &m, BinlogPos::new(0, 0), Keyspace::default());
    let st = r.status();
    assert_eq!((st.sid, st.trysyncs, st.duplicates), (Some(1), 1, 0));
    assert_eq!(
        m.stats().trysync_log[0],
        (
            "127.0.0.1".into(),
            r.relay_port.to_string(),
            "0".into(),
            "0".into()
        )
    );
    assert_eq!(
        m.slaves()[0].stage,
        2,
        "the master sees the relay online (spci received)"
    );
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn binlog_reconnects_lose_nothing_and_duplicate_nothing() {
    init_log();
    let (m, _d) = master(Flavor::V30, |_| {}).await;
    let r = Relay::start(m.addr(), Durable::default(), |_| {}).await;
    assert!(wait_until(T, || r.status().binlog_connected).await);
    small_writes(&m, "a", 20);
    r.wait_pos(m.producer(), T).await;
    // A frame cut in half, then re-sent on a new connection.
    m.inject(Fault::CutNextFrame);
    small_writes(&m, "b", 20);
    r.wait_pos(m.producer(), T).await;
    // A cut frame, then the 3 records before it re-sent too: dropped as duplicates.
    m.inject(Fault::CutAndRewind(3));
    small_writes(&m, "c", 20);
    r.wait_pos(m.producer(), T).await;
    assert!(r.status().duplicates >= 3, "{:?}", r.status());
    assert_eq!(
        r.status().trysyncs,
        1,
        "re-sends are absorbed without a new trysync"
    );
    // Two records lost in flight: the gap is detected and the session re-trysyncs from the
    // last accepted position, so they are fetched again.
    m.inject(Fault::LoseInFlight(2));
    small_writes(&m, "d", 20);
    r.wait_pos(m.producer(), T).await;
    assert!(r.status().trysyncs >= 2, "{:?}", r.status());
    check_same_as_master(&r, &m, BinlogPos::new(0, 0), Keyspace::default());
    assert!(m.stats().sender_connects >= 4);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn records_lost_in_flight_before_any_was_accepted_are_fetched_again() {
    // The first records after a trysync die in flight (the container test's network cut):
    // the master's reconnected sender starts after them. That is a gap, not the master rounding
    // a mid-record position up: the session re-trysyncs and fetches them.
    init_log();
    let (m, _d) = master(Flavor::V30, |_| {}).await;
    let r = Relay::start(m.addr(), Durable::default(), |_| {}).await;
    assert!(wait_until(T, || r.status().binlog_connected).await);
    m.inject(Fault::LoseInFlight(3));
    small_writes(&m, "lost", 20);
    r.wait_pos(m.producer(), T).await;
    assert!(r.status().trysyncs >= 2, "{:?}", r.status());
    check_same_as_master(&r, &m, BinlogPos::new(0, 0), Keyspace::default());
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeat_loss_leads_to_a_new_trysync() {
    init_log();
    let (m, _d) = master(Flavor::V30, |_| {}).await;
    let r = Relay::start(m.addr(), Durable::default(), |_| {}).await;
    small_writes(&m, "a", 10);
    r.wait_pos(m.producer(), T).await;
    let first_end = m.producer();
    m.drop_heartbeats();
    assert!(
        wait_until(T, || r.status().sid == Some(2)
            && r.status().binlog_connected)
        .await,
        "{:?}",
        r.status()
    );
    assert!(r.status().heartbeat_losses >= 1);
    small_writes(&m, "b", 10);
    r.wait_pos(m.producer(), T).await;
    check_same_as_master(&r, &m, BinlogPos::new(0, 0), Keyspace::default());
    // The second trysync resumed from the last accepted position.
    let log = m.stats().trysync_log;
    assert_eq!(log[1].3, first_end.offset.to_string());
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn master_heartbeat_idle_timeout_is_never_hit_while_pinging() {
    init_log();
    let (m, _d) = master(Flavor::V30, |_| {}).await;
    let r = Relay::start(m.addr(), Durable::default(), |_| {}).await;
    assert!(wait_until(T, || r.status().binlog_connected).await);
    // Idle for well over the master's (shortened) 1 s heartbeat timeout: the 50 ms pings keep
    // the registration alive and the idle binlog connection is never timed out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let st = r.status();
    assert_eq!(
        (
            st.sid,
            st.trysyncs,
            st.heartbeat_losses,
            st.binlog_connected
        ),
        (Some(1), 1, 0, true)
    );
    small_writes(&m, "a", 3);
    r.wait_pos(m.producer(), T).await;
    r.handle.shutdown().await.unwrap();
}

async fn full_sync_case(purge: bool) {
    let td = tempfile::tempdir().unwrap();
    let staging = td.path().join("data").join("staging");
    let (m, _d) = master(Flavor::V30, |c| {
        c.binlog_file_size = 4096;
        c.delivery = Some(Arc::new(CopyDelivery {
            target: staging.clone(),
        }));
    })
    .await;
    workload(&m, "w1", Flavor::V30);
    small_writes(&m, "w1s", 50);
    if purge {
        m.purge_to(m.producer().filenum - 1);
    }
    let snapshot_pos = m.producer();
    let r = Relay::start_in(td, m.addr(), Durable::default(), |c| {
        c.binlog_file_size = 4096;
        c.force_full_sync = !purge;
    })
    .await;
    assert!(
        wait_until(T, || r.status().full_syncs == 1
            && r.status().binlog_connected)
        .await,
        "{:?}",
        r.status()
    );
    workload(&m, "w2", Flavor::V30);
    small_writes(&m, "w2s", 50);
    r.wait_pos(m.producer(), T).await;
    let evs = r.events();
    let UpstreamEvent::FullSync(d) = &evs[0] else {
        panic!("first event must be the new epoch: {:?}", evs[0])
    };
    assert_eq!(d.epoch, 1);
    assert_eq!(d.info.pos, snapshot_pos);
    assert_eq!(d.dir, r.cfg.data_dir.join("dumps").join("epoch-1"));
    assert!(
        !staging.join("info").exists(),
        "the staging directory was promoted by rename"
    );
    let (base, info) = load_dump(&d.dir, unix_now()).unwrap();
    assert_eq!(info.port, m.addr().port());
    check_same_as_master(&r, &m, snapshot_pos, base);
    let log = m.stats().trysync_log;
    let first = if purge {
        ("0".to_string(), "0".to_string())
    } else {
        ("4294967295".to_string(), "0".to_string())
    };
    assert_eq!((log[0].2.clone(), log[0].3.clone()), first);
    assert_eq!(
        (log[1].2.clone(), log[1].3.clone()),
        (
            snapshot_pos.filenum.to_string(),
            snapshot_pos.offset.to_string()
        )
    );
    assert_eq!(r.status().epoch, 1);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn forced_full_sync_then_resume_from_info_position() {
    init_log();
    full_sync_case(false).await;
}

#[tokio::test]
async fn purged_position_full_sync_then_resume_from_info_position() {
    init_log();
    full_sync_case(true).await;
}

#[tokio::test]
async fn refuse_full_sync_stops_the_session() {
    init_log();
    let (m, _d) = master(Flavor::V30, |_| {}).await;
    let r = Relay::start(m.addr(), Durable::default(), |c| {
        c.force_full_sync = true;
        c.refuse_full_sync = true;
    })
    .await;
    assert!(wait_until(T, || r.handle.is_finished()).await);
    assert_eq!(r.status().state, SessionState::Stopped);
    assert!(r.status().last_error.unwrap().contains("refuse_full_sync"));
    assert_eq!(
        r.handle.shutdown().await,
        Err(SessionError::FullSyncRefused)
    );
}

#[tokio::test]
async fn full_sync_timeout_asks_again() {
    init_log();
    // No delivery: the master schedules a dump but never pushes it.
    let (m, _d) = master(Flavor::V30, |_| {}).await;
    let r = Relay::start(m.addr(), Durable::default(), |c| {
        c.force_full_sync = true;
        c.timings.full_sync_timeout = Duration::from_millis(200);
    })
    .await;
    assert!(wait_until(T, || r.status().trysyncs >= 3).await);
    assert!(r.status().last_error.unwrap().contains("no full-sync dump"));
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn already_exist_and_invalid_offset_are_retried() {
    init_log();
    let (m, _d) = master(Flavor::V30, |_| {}).await;
    m.script_trysync_reply(b"-ERR AlreadyExist\r\n");
    m.script_trysync_reply(b"-ERR InvalidOffset\r\n");
    let r = Relay::start(m.addr(), Durable::default(), |_| {}).await;
    assert!(
        wait_until(T, || r.status().binlog_connected).await,
        "{:?}",
        r.status()
    );
    assert_eq!(r.status().trysyncs, 3);
    small_writes(&m, "a", 5);
    r.wait_pos(m.producer(), T).await;
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_offset_can_switch_to_full_sync() {
    init_log();
    let td = tempfile::tempdir().unwrap();
    let staging = td.path().join("data").join("staging");
    let (m, _d) = master(Flavor::V30, |c| {
        c.delivery = Some(Arc::new(CopyDelivery {
            target: staging.clone(),
        }))
    })
    .await;
    small_writes(&m, "a", 5);
    // The relay believes it is far ahead of the master (e.g. the master was replaced).
    let init = Durable {
        epoch: 0,
        pos: BinlogPos::new(0, 999_999),
    };
    let r = Relay::start_in(td, m.addr(), init, |c| c.full_sync_on_invalid_offset = true).await;
    assert!(
        wait_until(T, || r.status().full_syncs == 1
            && r.status().binlog_connected)
        .await,
        "{:?}",
        r.status()
    );
    small_writes(&m, "b", 5);
    r.wait_pos(m.producer(), T).await;
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn masterauth_rules() {
    init_log();
    let (m, _d) = master(Flavor::V30, |c| {
        c.requirepass = Some("root-pw".into());
        c.userpass = Some("user-pw".into());
    })
    .await;
    // No masterauth: NOAUTH.
    let r = Relay::start(m.addr(), Durable::default(), |_| {}).await;
    assert!(
        wait_until(T, || r
            .status()
            .last_error
            .is_some_and(|e| e.contains("NOAUTH")))
        .await
    );
    assert_ne!(r.status().state, SessionState::Streaming);
    r.handle.shutdown().await.unwrap();
    // The user password is not enough.
    let r = Relay::start(m.addr(), Durable::default(), |c| {
        c.masterauth = Some("user-pw".into())
    })
    .await;
    assert!(
        wait_until(T, || r
            .status()
            .last_error
            .is_some_and(|e| e.contains("NOAUTH")))
        .await
    );
    r.handle.shutdown().await.unwrap();
    // A wrong password.
    let r = Relay::start(m.addr(), Durable::default(), |c| {
        c.masterauth = Some("nope".into())
    })
    .await;
    assert!(
        wait_until(T, || r
            .status()
            .last_error
            .is_some_and(|e| e.contains("rejected `auth`")))
        .await
    );
    r.handle.shutdown().await.unwrap();
    // requirepass works.
    let r = Relay::start(m.addr(), Durable::default(), |c| {
        c.masterauth = Some("root-pw".into())
    })
    .await;
    small_writes(&m, "a", 3);
    r.wait_pos(m.producer(), T).await;
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn v23_double_incremental_mset_records_and_reconnect() {
    init_log();
    let (m, _d) = master(Flavor::V23, |_| {}).await;
    workload(&m, "before", Flavor::V23);
    for ver in [OldVersion::V23] {
        let r = Relay::start(m.addr(), Durable::default(), |c| c.old_version = ver).await;
        r.wait_pos(m.producer(), T).await;
        m.inject(Fault::CutAndRewind(2));
        workload(&m, "after", Flavor::V23);
        r.wait_pos(m.producer(), T).await;
        let es = r.entries();
        assert!(
            es.iter().any(|e| e.commands.len() == 3),
            "2.3 mset = one record of 3 set arrays"
        );
        check_same_as_master(&r, &m, BinlogPos::new(0, 0), Keyspace::default());
        r.handle.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn v23_double_with_auto_detection_and_full_sync() {
    init_log();
    let td = tempfile::tempdir().unwrap();
    let staging = td.path().join("data").join("staging");
    let (m, _d) = master(Flavor::V23, |c| {
        c.delivery = Some(Arc::new(CopyDelivery {
            target: staging.clone(),
        }))
    })
    .await;
    workload(&m, "w1", Flavor::V23);
    let pos = m.producer();
    let r = Relay::start_in(td, m.addr(), Durable::default(), |c| {
        c.force_full_sync = true
    })
    .await;
    assert!(
        wait_until(T, || r.status().full_syncs == 1
            && r.status().binlog_connected)
        .await,
        "{:?}",
        r.status()
    );
    workload(&m, "w2", Flavor::V23);
    r.wait_pos(m.producer(), T).await;
    let evs = r.events();
    let UpstreamEvent::FullSync(d) = &evs[0] else {
        panic!()
    };
    assert!(d.dir.join("kv").is_dir());
    let (base, _) = load_dump(&d.dir, unix_now()).unwrap();
    check_same_as_master(&r, &m, pos, base);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn resume_after_a_record_that_ended_past_binlog_file_size() {
    init_log();
    let (m, _d) = master(Flavor::V30, |c| c.binlog_file_size = 4096).await;
    let r = Relay::start(m.addr(), Durable::default(), |c| {
        c.binlog_file_size = 4096;
        c.full_sync_on_invalid_offset = true;
    })
    .await;
    small_writes(&m, "a", 5);
    let big = vec![b'x'; 10_000];
    w(&m, &[b"set", b"big", &big]);
    r.wait_pos(m.producer(), T).await;
    assert!(m.producer().offset > 4096 && m.producer().filenum == 0);
    // The link drops while the master has not rolled to write2file1 yet: trysync (1, 0) gets
    // InvalidOffset until the master writes again; no full sync is taken.
    m.drop_heartbeats();
    assert!(
        wait_until(T, || r
            .status()
            .last_error
            .is_some_and(|e| e.contains("only at its next write")))
        .await,
        "{:?}",
        r.status()
    );
    small_writes(&m, "b", 5);
    r.wait_pos(m.producer(), T).await;
    assert_eq!(r.status().full_syncs, 0);
    check_same_as_master(&r, &m, BinlogPos::new(0, 0), Keyspace::default());
    r.handle.shutdown().await.unwrap();
}
