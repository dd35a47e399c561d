//! The protobuf master against the recorded real 3.2.9 slave requests, against new-slave doubles
//! (each with its own binlog and a real `rsync --daemon`), and against hostile peers.

#[path = "support/mem_journal.rs"]
mod mem_journal;
#[path = "support/net.rs"]
mod net;
#[path = "support/vectors.rs"]
mod vectors;

use mem_journal::MemJournal;
use pika_relay::admin;
use pika_relay::downstream::pb::{self, DumpPusher, PbConfig, Shared};
use pika_relay::downstream::positions::PositionStore;
use pika_relay::downstream::registry::Registry;
use pika_relay::downstream::source::JournalSource;
use pika_relay::formats::binlog_file::{decode_file, EntryBody, Flavor};
use pika_relay::formats::pb::{decode_response, split_frame, InnerResponse};
use pika_relay::formats::BinlogPos;
use pika_relay::sim::keyspace::Keyspace;
use pika_relay::sim::new_slave::{AckMode, DbState, NewSlave, NewSlaveConfig, SlaveVersion};
use prost::Message;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct Relay {
    port: u16,
    shared: Arc<Shared<MemJournal>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

async fn start_relay(
    journal: MemJournal,
    mut cfg: PbConfig,
    pusher: Option<Arc<dyn DumpPusher>>,
) -> Relay {
    let port = net::free_base(&[2000]);
    cfg.port = port;
    let shared = Arc::new(Shared {
        config: cfg,
        journal,
        registry: Registry::default(),
        next_session: AtomicI32::new(0),
        pusher,
        cancel: CancellationToken::new(),
        positions: PositionStore::in_memory(),
    });
    let pb_listener = TcpListener::bind(("127.0.0.1", port + 2000)).await.unwrap();
    tokio::spawn(pb::serve(pb_listener, shared.clone()));
    let admin_listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let s2 = shared.clone();
    let status: admin::StatusFn = Arc::new(move || admin::info::RelayStatus {
        journal_end: s2.journal.synced().end,
        journal_next_logic_id: s2.journal.synced().logic_id,
        file_size: s2.journal.file_size(),
        slaves: s2.registry.snapshot(),
        ..Default::default()
    });
    tokio::spawn(admin::serve(
        admin_listener,
        status,
        None,
        shared.cancel.clone(),
    ));
    Relay { port, shared }
}

/// The items of the real 3.2.9 master's binlog, as encoded bytes with their end positions.
fn real_329_items() -> Vec<(Vec<u8>, BinlogPos)> {
    let buf = vectors::read("pika-3.2.9/master-log/log_db0/write2file0");
    let (entries, err) = decode_file(&buf, 0, Flavor::New);
    assert!(err.is_none());
    entries
        .into_iter()
        .filter_map(|e| match e.body {
            EntryBody::Items(mut v) => Some((v.remove(0).encode(), BinlogPos::new(0, e.end))),
            _ => None,
        })
        .collect()
}

fn frames(buf: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (body, used) = split_frame(&buf[pos..], 1 << 30).unwrap().unwrap();
        out.push(body.to_vec());
        pos += used;
    }
    out
}

/// A response flattened for comparison: frames of BinlogSync items are split per item (batching
/// is timing, not protocol), keepalives dropped, our extra `run_id` cleared.
fn normalise(rs: Vec<InnerResponse>) -> Vec<InnerResponse> {
    let mut out = Vec::new();
    for mut r in rs {
        if let Some(m) = r.meta_sync.as_mut() {
            m.run_id = None;
        }
        if r.binlog_sync.is_empty() {
            out.push(r);
            continue;
        }
        for it in std::mem::take(&mut r.binlog_sync) {
            if it.binlog.is_empty() {
                continue;
            }
            let mut one = r.clone();
            one.binlog_sync = vec![it];
            out.push(one);
        }
    }
    out
}

async fn read_responses(
    sock: &mut TcpStream,
    until: impl Fn(&[InnerResponse]) -> bool,
) -> Vec<InnerResponse> {
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            while let Some((body, used)) = split_frame(&buf, 1 << 30).unwrap() {
                got.push(decode_response(body).unwrap());
                buf.drain(..used);
            }
            if until(&normalise(got.clone())) {
                return;
            }
            let mut chunk = vec![0u8; 65536];
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "relay closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "timed out; got {:?}",
        normalise(got.clone()).len()
    );
    got
}

#[tokio::test]
async fn recorded_real_329_slave_requests_get_the_real_masters_answers() {
    let items = real_329_items();
    assert_eq!(items.len(), 49);
    let journal = MemJournal::new(104_857_600, BinlogPos::default());
    let (w1, w2): (Vec<_>, Vec<_>) = items
        .into_iter()
        .partition(|(_, end)| end.offset <= 156_700);
    for (bytes, end) in &w1 {
        assert_eq!(
            journal.append_raw(bytes.clone()).end,
            *end,
            "journal positions = real master's"
        );
    }
    #[derive(Clone, Default)]
    struct Recording {
        requests: Arc<std::sync::Mutex<Vec<pb::PushRequest>>>,
    }
    let pusher = Recording::default();
    impl DumpPusher for Recording {
        fn push(
            &self,
            req: pb::PushRequest,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send>>
        {
            self.requests.lock().unwrap().push(req);
            Box::pin(async { Ok(0) })
        }
    }
    let relay = start_relay(
        journal.clone(),
        PbConfig::default(),
        Some(Arc::new(pusher.clone())),
    )
    .await;

    for (stream, grow) in [
        ("03-pb-incremental", false),
        ("06-pb-force-fullsync-then-w2", true),
    ] {
        if grow {
            // The real master made its dump at 0:156700 before stream 06.
            journal.new_epoch(None);
        }
        let reqs = frames(&vectors::read(&format!(
            "pika-3.2.9/streams/{stream}.c2s.bin"
        )));
        let expected = normalise(
            frames(&vectors::read(&format!(
                "pika-3.2.9/streams/{stream}.s2c.bin"
            )))
            .iter()
            .map(|b| decode_response(b).unwrap())
            .collect(),
        );
        let mut sock = TcpStream::connect(("127.0.0.1", relay.port + 2000))
            .await
            .unwrap();
        let mut got = Vec::new();
        for body in &reqs {
            let req = pika_relay::formats::pb::decode_request(body).unwrap();
            sock.write_all(&(body.len() as u32).to_be_bytes())
                .await
                .unwrap();
            sock.write_all(body).await.unwrap();
            let bs = req.binlog_sync.as_ref();
            let want_more = match req.r#type {
                1..=3 => 1,
                4 if bs.is_some_and(|b| b.first_send) => {
                    if grow {
                        // w2 is written on the master after the slave attached.
                        for (bytes, _) in &w2 {
                            journal.append_raw(bytes.clone());
                        }
                    }
                    if grow {
                        w2.len()
                    } else {
                        w1.len()
                    }
                }
                _ => 0,
            };
            if want_more > 0 {
                let before = normalise(got.clone()).len();
                let more = read_responses(&mut sock, |n| n.len() >= want_more).await;
                assert!(normalise(more.clone()).len() >= want_more);
                got.extend(more);
                let _ = before;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = normalise(got);
        assert_eq!(got.len(), expected.len(), "{stream}: answer count");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "{stream}: answer {i} differs from the real master's");
            assert_eq!(
                g.encode_to_vec(),
                e.encode_to_vec(),
                "{stream}: answer {i} bytes"
            );
        }
        // Every ack of the recording matched our window (a mismatch closes the connection).
        let slaves = relay.shared.registry.snapshot();
        assert_eq!(slaves.len(), 1, "{stream}: the slave is still attached");
        let want_acked = if grow {
            BinlogPos::new(0, 227_652)
        } else {
            BinlogPos::new(0, 156_700)
        };
        assert_eq!(slaves[0].acked, want_acked, "{stream}");
        drop(sock);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pushes = pusher.requests.lock().unwrap().clone();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].target.port(), 29521 + 1000);
    assert_eq!(pushes[0].password, "default");
    assert_eq!(pushes[0].remote_path, "db0");
    assert_eq!(
        pushes[0].info,
        format!("0s\n127.0.0.1\n{}\n0\n156700\n", relay.port)
    );
}

/// The time data is compared at.
const NOW: u64 = 1_700_000_100;

fn a(s: &[&str]) -> Vec<Vec<u8>> {
    s.iter().map(|x| x.as_bytes().to_vec()).collect()
}

/// A workload of every data type, absolute TTLs only (what the relay's translate emits).
fn workload(round: u32) -> Vec<Vec<Vec<u8>>> {
    let r = round.to_string();
    let k = |p: &str| format!("{p}:{r}");
    vec![
        a(&["set", &k("s"), "v"]),
        a(&["pksetexat", &k("ttl"), "2145916800", "v"]),
        a(&["incrby", &k("n"), "7"]),
        a(&["append", &k("s"), "\u{0}\r\nbin"]),
        a(&["hset", &k("h"), "f", "v"]),
        a(&["hmset", &k("h"), "a", "1", "b", "2"]),
        a(&["rpush", &k("l"), "x", "y", "z"]),
        a(&["lpop", &k("l")]),
        a(&["sadd", &k("st"), "m1", "m2"]),
        a(&["zadd", &k("z"), "1.5", "a", "3", "b"]),
        a(&["expireat", &k("h"), "2145916800"]),
        a(&["del", &k("gone")]),
    ]
}

async fn start_slave(
    relay: &Relay,
    dir: &std::path::Path,
    f: impl FnOnce(&mut NewSlaveConfig),
) -> NewSlave {
    let s = net::free_base(&[1000]);
    let mut cfg = NewSlaveConfig::new(
        format!("127.0.0.1:{}", relay.port).parse().unwrap(),
        s,
        dir.to_path_buf(),
    );
    cfg.reconnect_delay = Duration::from_millis(200);
    cfg.meta_sync_interval = Duration::from_millis(200);
    f(&mut cfg);
    NewSlave::start(cfg).await.unwrap()
}

#[tokio::test]
async fn three_slaves_at_different_positions_converge() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = MemJournal::new(4096, BinlogPos::default());
    let mut model = Keyspace::default();
    let mut models_at = Vec::new();
    for round in 0..6 {
        for c in workload(round) {
            let refs: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
            journal.append(&refs, 1_700_000_000);
            model.exec(&c, 1_700_000_000).unwrap();
        }
        models_at.push((journal.synced().end, model.clone()));
    }
    // Epoch 1: a dump of the data after round 2; everything before it is purged.
    let dump = tmp.path().join("dump");
    pika_relay::sim::dump::write_dump(
        &dump,
        pika_relay::sim::old_master::Flavor::V30,
        &models_at[2].1,
        1_700_000_000,
        "127.0.0.1",
        1,
        models_at[2].0,
    )
    .unwrap();
    let je = models_at[2].0;
    // Re-create the epoch boundary at je: items before it are dropped, the dump stands for them.
    journal.purge_before(je);
    set_epoch(&journal, je, dump.clone());
    let pusher = Counting::default();
    let relay = start_relay(
        journal.clone(),
        PbConfig::default(),
        Some(Arc::new(pusher.clone())),
    )
    .await;

    let fresh = start_slave(&relay, &tmp.path().join("fresh"), |c| {
        c.binlog_file_size = 4096;
        c.version = SlaveVersion::V33;
    })
    .await;
    let (mid_pos, mid_model) = models_at[3].clone();
    let mid = start_slave(&relay, &tmp.path().join("mid"), |c| {
        c.binlog_file_size = 4096;
        c.seed = Some((mid_pos, mid_model));
    })
    .await;
    let (old_pos, old_model) = models_at[1].clone();
    let purged = start_slave(&relay, &tmp.path().join("purged"), |c| {
        c.binlog_file_size = 4096;
        c.seed = Some((old_pos, old_model));
    })
    .await;

    // More writes while they attach.
    for round in 6..8 {
        for c in workload(round) {
            let refs: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
            journal.append(&refs, 1_700_000_000);
            model.exec(&c, 1_700_000_000).unwrap();
        }
    }
    let end = journal.synced().end;
    assert!(end.filenum >= 1, "the journal rotated files ({end})");
    for (name, s) in [("fresh", &fresh), ("mid", &mid), ("purged", &purged)] {
        let v = s
            .wait_for(Duration::from_secs(30), |v| {
                v.state == DbState::Connected && v.producer == end
            })
            .await
            .unwrap_or_else(|v| panic!("{name} did not catch up: {v:?}"));
        assert_eq!(
            s.lines(NOW),
            model.lines(NOW),
            "{name} holds different data"
        );
        let full = if name == "mid" { 0 } else { 1 };
        assert_eq!(v.full_syncs, full, "{name}: full syncs");
    }
    assert_eq!(
        pusher.0.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "two full syncs pushed"
    );
    // The registry shows each at the journal end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for st in relay.shared.registry.snapshot() {
        assert_eq!(st.acked, end, "{}:{}", st.ip, st.port);
    }
    // INFO replication over the relay's port R, as redis-cli would ask.
    let mut c = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    c.write_all(b"*2\r\n$4\r\ninfo\r\n$11\r\nreplication\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let n = c.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.contains("connected_slaves:3"), "{text}");
    assert_eq!(text.matches("state=BinlogSync").count(), 3, "{text}");
    assert!(
        text.contains(&format!("db0 binlog_offset={} {}", end.filenum, end.offset)),
        "{text}"
    );
    assert_eq!(
        text.matches("lag=(db0:0),lag_entries=0").count(),
        3,
        "{text}"
    );
    assert_eq!(text.matches("protocol=3.3+").count(), 1, "{text}");
    for s in [fresh, mid, purged] {
        s.stop().await;
    }
}

fn set_epoch(j: &MemJournal, at: BinlogPos, dump: std::path::PathBuf) {
    j.set_epoch_at(at, Some(dump));
}

/// Writes `rounds` rounds of the workload into the journal and the model.
fn fill(journal: &MemJournal, model: &mut Keyspace, rounds: std::ops::Range<u32>) {
    for round in rounds {
        for c in workload(round) {
            let refs: Vec<&[u8]> = c.iter().map(|x| x.as_slice()).collect();
            journal.append(&refs, 1_700_000_000);
            model.exec(&c, 1_700_000_000).unwrap();
        }
    }
}

#[tokio::test]
async fn wrong_acks_disconnect_and_a_silent_slave_stalls_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = MemJournal::new(104_857_600, BinlogPos::default());
    let mut model = Keyspace::default();
    fill(&journal, &mut model, 0..3);
    let cfg = PbConfig {
        window_items: 10,
        frame_items: 5,
        ..PbConfig::default()
    };
    let relay = start_relay(journal.clone(), cfg, None).await;
    let wrong = start_slave(&relay, &tmp.path().join("wrong"), |c| {
        c.ack_mode = AckMode::Wrong
    })
    .await;
    let silent = start_slave(&relay, &tmp.path().join("silent"), |c| {
        c.ack_mode = AckMode::Silent
    })
    .await;
    let good = start_slave(&relay, &tmp.path().join("good"), |_| {}).await;
    fill(&journal, &mut model, 3..10);
    let end = journal.synced().end;
    good.wait_for(Duration::from_secs(20), |v| v.producer == end)
        .await
        .expect("the good slave is not held back by the others");
    assert_eq!(good.lines(NOW), model.lines(NOW));
    // The wrong-acking slave was disconnected at its first impossible ack; re-attached, its own
    // position maps to nothing the relay sent, so it is told to full-sync (which this relay,
    // without a pusher, refuses).
    wrong
        .wait_for(Duration::from_secs(20), |v| {
            v.meta_syncs >= 2
                && matches!(&v.state, DbState::Error(e) if e.starts_with("DBSync refused"))
        })
        .await
        .expect("disconnected, reconnected and sent to full sync");
    // The silent one got exactly one window of items and no more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sv = silent.view();
    assert_eq!(sv.items, 10, "silent slave received one window");
    let st = relay
        .shared
        .registry
        .snapshot()
        .into_iter()
        .find(|s| s.acked == BinlogPos::default() && s.sent != BinlogPos::default())
        .expect("silent slave listed with a full window in flight");
    assert_eq!(st.state.label(), "BinlogSync");
    for s in [wrong, silent, good] {
        s.stop().await;
    }
}

/// An ack-only slave (the load harness's slave that is never the bottleneck) follows the
/// journal to its end with acks the relay's window accepts, beside a real one, and holds no data.
#[tokio::test]
async fn an_ack_only_slave_acks_everything_and_applies_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = MemJournal::new(104_857_600, BinlogPos::default());
    let mut model = Keyspace::default();
    fill(&journal, &mut model, 0..2);
    let cfg = PbConfig {
        window_items: 10,
        frame_items: 5,
        ..PbConfig::default()
    };
    let relay = start_relay(journal.clone(), cfg, None).await;
    let acker = start_slave(&relay, &tmp.path().join("acker"), |c| {
        c.ack_mode = AckMode::AckOnly
    })
    .await;
    let good = start_slave(&relay, &tmp.path().join("good"), |_| {}).await;
    fill(&journal, &mut model, 2..8);
    let end = journal.synced().end;
    let v = acker
        .wait_for(Duration::from_secs(20), |v| v.producer == end)
        .await
        .expect("the ack-only slave acks up to the journal's end");
    good.wait_for(Duration::from_secs(20), |v| v.producer == end)
        .await
        .expect("the real slave too");
    assert_eq!(v.state, DbState::Connected);
    assert_eq!(v.meta_syncs, 1, "never disconnected for a bad ack");
    assert_eq!(v.items, good.view().items, "received every item");
    assert!(acker.lines(NOW).is_empty(), "applied nothing");
    assert_eq!(good.lines(NOW), model.lines(NOW));
    // The relay took its acks: both slaves acked the end.
    let acked = || -> Vec<BinlogPos> {
        relay
            .shared
            .registry
            .snapshot()
            .iter()
            .map(|s| s.acked)
            .collect()
    };
    for _ in 0..200 {
        if acked() == vec![end, end] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(acked(), vec![end, end]);
    for s in [acker, good] {
        s.stop().await;
    }
}

async fn raw(relay: &Relay) -> TcpStream {
    TcpStream::connect(("127.0.0.1", relay.port + 2000))
        .await
        .unwrap()
}

async fn closed(sock: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn frame(msg: &pika_relay::formats::pb::InnerRequest) -> Vec<u8> {
    pika_relay::formats::pb::encode_frame(msg)
}

fn meta(auth: Option<&str>) -> pika_relay::formats::pb::InnerRequest {
    use pika_relay::formats::pb::*;
    InnerRequest {
        r#type: Type::KMetaSync as i32,
        meta_sync: Some(inner_request::MetaSync {
            node: Node {
                ip: "127.0.0.1".into(),
                port: 9999,
            },
            auth: auth.map(String::from),
        }),
        ..Default::default()
    }
}

fn try_sync(table: &str, pos: BinlogPos) -> pika_relay::formats::pb::InnerRequest {
    use pika_relay::formats::pb::*;
    InnerRequest {
        r#type: Type::KTrySync as i32,
        try_sync: Some(inner_request::TrySync {
            node: Node {
                ip: "127.0.0.1".into(),
                port: 9999,
            },
            partition: Partition {
                table_name: table.into(),
                partition_id: 0,
            },
            binlog_offset: BinlogOffset {
                filenum: pos.filenum,
                offset: pos.offset,
                term: None,
                index: None,
            },
        }),
        ..Default::default()
    }
}

async fn one_response(sock: &mut TcpStream) -> InnerResponse {
    read_responses(sock, |n| !n.is_empty()).await.remove(0)
}

#[tokio::test]
async fn hostile_and_broken_requests() {
    use pika_relay::formats::pb::{inner_response::try_sync::ReplyCode, StatusCode};
    let journal = MemJournal::new(104_857_600, BinlogPos::default());
    let mut model = Keyspace::default();
    fill(&journal, &mut model, 0..2);
    let cfg = PbConfig {
        requirepass: Some("sekret".into()),
        ..PbConfig::default()
    };
    let relay = start_relay(journal.clone(), cfg, None).await;

    // Oversized length prefix: closed before any allocation.
    let mut s = raw(&relay).await;
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    assert!(
        closed(&mut s).await,
        "oversized frame closes the connection"
    );
    // Bytes that are not protobuf.
    let mut s = raw(&relay).await;
    s.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert!(closed(&mut s).await, "garbage closes the connection");
    // A MetaSync without its required node.
    let mut s = raw(&relay).await;
    s.write_all(&[0, 0, 0, 4, 0x08, 0x01, 0x12, 0x00])
        .await
        .unwrap();
    assert!(
        closed(&mut s).await,
        "missing required field closes the connection"
    );
    // A frame cut in the middle.
    let mut s = raw(&relay).await;
    let f = frame(&meta(Some("sekret")));
    s.write_all(&f[..f.len() - 3]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed(&mut s).await);

    // Wrong password: an error reply naming the cause, as Pika answers.
    let mut s = raw(&relay).await;
    s.write_all(&frame(&meta(Some("nope")))).await.unwrap();
    let r = one_response(&mut s).await;
    assert_eq!(r.code, StatusCode::KError as i32);
    assert_eq!(
        r.reply.as_deref(),
        Some("Auth with master error, Invalid masterauth")
    );
    // Requests before a successful MetaSync close the connection.
    s.write_all(&frame(&try_sync("db0", BinlogPos::default())))
        .await
        .unwrap();
    assert!(closed(&mut s).await);

    let mut s = raw(&relay).await;
    s.write_all(&frame(&meta(Some("sekret")))).await.unwrap();
    assert_eq!(one_response(&mut s).await.code, StatusCode::KOk as i32);
    // Unknown db.
    s.write_all(&frame(&try_sync("db7", BinlogPos::default())))
        .await
        .unwrap();
    let r = one_response(&mut s).await;
    assert_eq!(r.code, StatusCode::KError as i32);
    assert_eq!(
        r.try_sync.unwrap().reply_code,
        ReplyCode::KError as i32,
        "required fields set even on error"
    );
    // Beyond the end, and inside an item: positions the relay cannot serve are answered
    // `purged`, on which a slave full-syncs by itself (`kSyncPointLarger`/`kError` would leave
    // it stuck until an operator runs `slaveof ... force`).
    let end = journal.synced().end;
    s.write_all(&frame(&try_sync(
        "db0",
        BinlogPos::new(end.filenum, end.offset + 100),
    )))
    .await
    .unwrap();
    let r = one_response(&mut s).await;
    assert_eq!(
        r.try_sync.unwrap().reply_code,
        ReplyCode::KSyncPointBePurged as i32
    );
    s.write_all(&frame(&try_sync("db0", BinlogPos::new(0, 5))))
        .await
        .unwrap();
    let r = one_response(&mut s).await;
    assert_eq!(
        r.try_sync.unwrap().reply_code,
        ReplyCode::KSyncPointBePurged as i32
    );
    // And the connection still serves: a valid TrySync gets kOk.
    s.write_all(&frame(&try_sync("db0", BinlogPos::default())))
        .await
        .unwrap();
    let r = one_response(&mut s).await;
    assert_eq!(r.try_sync.unwrap().reply_code, ReplyCode::KOk as i32);

    // After all that, a real slave double attaches and gets everything.
    let tmp = tempfile::tempdir().unwrap();
    let good = start_slave(&relay, tmp.path(), |c| c.masterauth = Some("sekret".into())).await;
    good.wait_for(Duration::from_secs(20), |v| v.producer == end)
        .await
        .expect("relay still serving");
    assert_eq!(good.lines(NOW), model.lines(NOW));
    good.stop().await;
}

/// The relay's embedded rsync sender, counting pushes.
#[derive(Clone, Default)]
struct Counting(Arc<std::sync::atomic::AtomicUsize>);

impl DumpPusher for Counting {
    fn push(
        &self,
        req: pb::PushRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        pika_relay::downstream::dbsync::RsyncPusher::default().push(req)
    }
}

/// A MetaSync announcing a port that cannot have a port+1000 (the slave's rsync port) is refused
/// with an error reply naming the port; the connection then serves nothing, and a well-formed
/// MetaSync on a new connection is accepted.
#[tokio::test]
async fn meta_sync_with_an_out_of_range_port_is_refused() {
    use pika_relay::formats::pb::StatusCode;
    let journal = MemJournal::new(104_857_600, BinlogPos::default());
    let relay = start_relay(journal.clone(), PbConfig::default(), None).await;
    for port in [70_000, 65_000, 0, -5] {
        let mut s = raw(&relay).await;
        let mut m = meta(None);
        m.meta_sync.as_mut().unwrap().node.port = port;
        s.write_all(&frame(&m)).await.unwrap();
        let r = one_response(&mut s).await;
        assert_eq!(r.code, StatusCode::KError as i32, "port {port}");
        let reply = r.reply.unwrap_or_default();
        assert!(
            reply.contains(&format!("announced port {port} is out of range")),
            "{reply}"
        );
        // Not attached: the next request closes the connection.
        s.write_all(&frame(&try_sync("db0", BinlogPos::default())))
            .await
            .unwrap();
        assert!(closed(&mut s).await, "port {port}");
    }
    let mut s = raw(&relay).await;
    let mut m = meta(None);
    m.meta_sync.as_mut().unwrap().node.port = 64_535;
    s.write_all(&frame(&m)).await.unwrap();
    assert_eq!(one_response(&mut s).await.code, StatusCode::KOk as i32);
}
