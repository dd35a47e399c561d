//! The doubles in `src/sim` against the recorded real servers (`tests/vectors`): the bytes a
//! double sends must be the bytes the real server sent in the same scenario, with only the fields
//! that legitimately differ between two runs masked (exec times, ports, the rsync client's
//! capability string).
//!
//! - the old-master doubles (3.0.16 and 2.3.6 flavours): their replies to the recorded client
//!   workload, to the recorded trysyncs (incremental, forced, after the full sync) and heartbeat,
//!   their binlog push, and their rsync client's command lines;
//! - the new-slave double (3.2 flavour): its protobuf requests against the 3.2.9 master's
//!   recorded answers.

#[path = "support/net.rs"]
mod net;
#[path = "support/vectors.rs"]
mod vectors;

use pika_relay::formats::item::BinlogItem;
use pika_relay::formats::old_frame::{decode_frame, OldFrame, DEFAULT_MAX_BODY};
use pika_relay::formats::pb::{self, InnerRequest};
use pika_relay::formats::resp::encode_argv;
use pika_relay::rsync::receiver::{ModuleSpec, Receiver, ReceiverConfig};
use pika_relay::sim::new_slave::{NewSlave, NewSlaveConfig};
use pika_relay::sim::old_master::{
    Flavor, MasterTimings, OldMaster, OldMasterConfig, RsyncCliDelivery,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(20);

/// Reads from `s` until `buf` holds `n` bytes (or fails after `T`).
async fn read_n(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) {
    tokio::time::timeout(T, async {
        let mut chunk = vec![0u8; 65536];
        while buf.len() < n {
            let k = s.read(&mut chunk).await.unwrap();
            assert!(k > 0, "closed after {} of {n} bytes", buf.len());
            buf.extend_from_slice(&chunk[..k]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} bytes within {T:?}", buf.len()));
}

/// The recorded trysync request with the slave's port replaced by `port`.
fn trysync_as(recorded: &str, port: u16) -> Vec<u8> {
    let rec = vectors::read(recorded);
    let (argv, used) = pika_relay::formats::resp::parse_argv(&rec)
        .unwrap()
        .unwrap();
    assert_eq!(used, rec.len());
    let mut argv = argv;
    assert_eq!(argv[0], b"trysync");
    argv[2] = port.to_string().into_bytes();
    encode_argv(&argv)
}

/// Absolute expiry times (`pksetexat k <t>`, `expireat k <t>`) masked: the master computes them
/// from its clock at execution (the client sent a relative TTL) or the client computed them from
/// its clock; either way they depend on when the workload ran. Their length is kept (the
/// positions, compared unmasked, depend on it).
fn mask_times(content: &[u8]) -> Vec<u8> {
    let mut argv = pika_relay::formats::resp::parse_argv_exact(content).unwrap();
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    if (name == "pksetexat" || name == "expireat") && argv.len() >= 3 {
        let t = String::from_utf8_lossy(&argv[2]).into_owned();
        assert!(t.parse::<i64>().is_ok(), "{name} time {t:?}");
        argv[2] = format!("<time:{} digits>", t.len()).into_bytes();
    }
    encode_argv(&argv)
}

/// 3.0 frames of a push stream, each item's `exec_time` zeroed and absolute expiry times masked
/// (the fields that depend on when the workload ran).
fn frames_masked(mut buf: &[u8]) -> Vec<(u16, Vec<BinlogItem>)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (f, used) = decode_frame(buf, DEFAULT_MAX_BODY)
            .unwrap()
            .expect("whole frames");
        out.push(match f {
            OldFrame::Auth { sid } => (
                1,
                vec![BinlogItem {
                    content: sid.into_bytes(),
                    ..Default::default()
                }],
            ),
            OldFrame::Binlog { items, .. } => (
                2,
                items
                    .into_iter()
                    .map(|mut it| {
                        assert!(it.exec_time > 0);
                        it.content = mask_times(&it.content);
                        it.exec_time = 0;
                        it
                    })
                    .collect(),
            ),
        });
        buf = &buf[used..];
    }
    out
}

/// A recording proxy in front of the relay's embedded rsync receiver: every connection that
/// carries data is forwarded, and what the client sent up to the end of its argument list is
/// kept, in connection order.
async fn recording_rsync_proxy(
    l: TcpListener,
    target: std::net::SocketAddr,
) -> Arc<std::sync::Mutex<Vec<Vec<u8>>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            let slot = {
                let mut v = seen.lock().unwrap();
                v.push(Vec::new());
                v.len() - 1
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut u) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut cr, mut cw) = c.split();
                let (mut ur, mut uw) = u.split();
                let up = async {
                    let mut b = vec![0u8; 65536];
                    loop {
                        let n = match cr.read(&mut b).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        {
                            let mut v = seen.lock().unwrap();
                            if v[slot].len() < 4096 {
                                v[slot].extend_from_slice(&b[..n]);
                            }
                        }
                        if uw.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = uw.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut ur, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    out
}

/// The client's greeting, module and arguments, with the module's `ip:port` and the protocol
/// capability string (after `e.` in the short options, which depends on the client's build)
/// masked.
fn rsync_request_masked(bytes: &[u8], master_port: u16) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let end = text.find("\0\0").unwrap();
    let text = text[..end].replace(&format!(":{master_port}"), ":<port>");
    let (greeting, rest) = text.split_once('\n').unwrap();
    let (module, args) = rest.split_once('\n').unwrap();
    let mut out = vec![
        greeting
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        module.to_string(),
    ];
    for a in args.split('\0') {
        out.push(match a.split_once("e.") {
            Some((opts, _)) if a.starts_with('-') && !a.starts_with("--") => {
                format!("{opts}e.<caps>")
            }
            _ => a.to_string(),
        });
    }
    out
}

/// One recorded old master: where its streams are and what differs between the versions.
struct Recorded {
    /// Directory under the vectors (`pika-3.0.16`).
    dir: &'static str,
    flavor: Flavor,
    /// The recorded master's port (named in the rsync module).
    master_port: u16,
    /// The push stream decoded and masked, one string per frame (3.0) or array (2.3).
    push: fn(&[u8]) -> Vec<String>,
}

impl Recorded {
    fn read(&self, stream: &str) -> Vec<u8> {
        vectors::read(&format!("{}/streams/{stream}", self.dir))
    }
}

/// 3.0.16's push: 3.0 frames ([`frames_masked`]).
fn push_30(buf: &[u8]) -> Vec<String> {
    frames_masked(buf)
        .into_iter()
        .map(|f| format!("{f:?}"))
        .collect()
}

/// 2.3.6's push: plain RESP arrays, `auth <sid>` then each stored array with its four affiliated
/// arguments (`__PIKA_X#$SKGI`, server id, 16-byte `binlog_info`, hub flag). Masked: the
/// `exec_time` (first 4 bytes of `binlog_info`) and absolute expiry times; the filenum and
/// offset inside `binlog_info` are compared.
fn push_23(mut buf: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (mut argv, used) = pika_relay::formats::resp::parse_argv(buf)
            .unwrap()
            .expect("whole arrays");
        if argv[0] != b"auth" {
            let n = argv.len();
            assert!(n >= 5, "array without affiliated arguments: {argv:?}");
            assert_eq!(argv[n - 4], b"__PIKA_X#$SKGI");
            let info = &mut argv[n - 2];
            assert_eq!(info.len(), 16, "binlog_info size");
            assert!(info[..4] != [0, 0, 0, 0], "exec_time set");
            info[..4].fill(0);
            let cmd = mask_times(&encode_argv(&argv[..n - 4]));
            let mut masked = pika_relay::formats::resp::parse_argv_exact(&cmd).unwrap();
            masked.extend_from_slice(&argv[n - 4..]);
            argv = masked;
        }
        out.push(format!("{argv:?}"));
        buf = &buf[used..];
    }
    out
}

/// The old-master double of `rec.flavor` against the recorded real master: its replies to the
/// recorded client workload, trysyncs and heartbeat, its binlog push, its rsync command lines.
async fn old_master_double_matches(rec: Recorded) {
    let tmp = tempfile::tempdir().unwrap();
    let mut mcfg = OldMasterConfig::new(rec.flavor, tmp.path().join("dumps"));
    mcfg.timings = MasterTimings {
        hb_idle: Duration::from_secs(60),
        hb_stage1_limit: Duration::from_secs(60),
        ..MasterTimings::fast()
    };
    let delivery = RsyncCliDelivery::as_recorded(rec.flavor);
    let probes = delivery.probe_first;
    mcfg.delivery = Some(Arc::new(delivery));
    let m = OldMaster::start(mcfg).await.unwrap();
    let mport = m.addr().port();

    // The recorded client workload w1, byte for byte: the same replies.
    let mut c = TcpStream::connect(m.addr()).await.unwrap();
    c.write_all(&rec.read("01-client-w1.c2s.bin"))
        .await
        .unwrap();
    let want = rec.read("01-client-w1.s2c.bin");
    let mut got = Vec::new();
    read_n(&mut c, &mut got, want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "client replies to w1"
    );

    // We are the slave: binlog receiver on S+1000, rsync daemon on S+3000.
    let s = net::free_base(&[1000, 3000]);
    let binlog = TcpListener::bind(("127.0.0.1", s + 1000)).await.unwrap();
    let rsyncd = TcpListener::bind(("127.0.0.1", s + 3000)).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let receiver = Receiver::start(
        ReceiverConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            tmp.path().join("staging"),
            vec![ModuleSpec::prefix("document")],
        ),
        cancel.clone(),
    )
    .await
    .unwrap();
    let seen = recording_rsync_proxy(rsyncd, receiver.local_addr).await;
    let trysync = |name: &str| trysync_as(&format!("{}/streams/{name}", rec.dir), s);

    // trysync 0 0 → `:1`, as recorded.
    let mut t = TcpStream::connect(m.addr()).await.unwrap();
    t.write_all(&trysync("02-trysync-incremental.c2s.bin"))
        .await
        .unwrap();
    let want = rec.read("02-trysync-incremental.s2c.bin");
    let mut got = Vec::new();
    read_n(&mut t, &mut got, want.len()).await;
    assert_eq!(got, want, "trysync 0 0 reply");

    // The binlog push: auth with sid 1, then every w1 record, as recorded.
    let (mut push, _) = tokio::time::timeout(T, binlog.accept())
        .await
        .unwrap()
        .unwrap();
    let want = rec.read("04-binlog-push-incremental.c2s.bin");
    let mut got = Vec::new();
    read_n(&mut push, &mut got, want.len()).await;
    assert_eq!(got.len(), want.len());
    let (g, w) = ((rec.push)(&got), (rec.push)(&want));
    assert_eq!(g.len(), w.len(), "frame count");
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert_eq!(a, b, "push frame {i} (exec_time masked)");
    }

    // The heartbeat, as recorded: `spci 1` → `+OK`, `ping` → `+PONG`.
    let mut hb = TcpStream::connect(("127.0.0.1", mport + 2000))
        .await
        .unwrap();
    hb.write_all(&rec.read("03-heartbeat-incremental.c2s.bin"))
        .await
        .unwrap();
    let want = rec.read("03-heartbeat-incremental.s2c.bin");
    let mut got = Vec::new();
    read_n(&mut hb, &mut got, want.len()).await;
    assert_eq!(got, want, "heartbeat replies");
    // `slaveof no one` on the recorded slave closed its heartbeat: the master forgets it.
    drop(hb);
    drop(push);
    tokio::time::timeout(T, async {
        while !m.slaves().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the double forgets a slave whose heartbeat closed");

    // Forced trysync → `wait`, as recorded; then the rsync push's command line.
    let mut t = TcpStream::connect(m.addr()).await.unwrap();
    t.write_all(&trysync("05-trysync-force.c2s.bin"))
        .await
        .unwrap();
    let want = rec.read("05-trysync-force.s2c.bin");
    let mut got = Vec::new();
    read_n(&mut t, &mut got, want.len()).await;
    assert_eq!(got, want, "forced trysync reply");
    // The pushes, recorded between the double's real `rsync` client and the relay's receiver:
    // every type directory, the `--delete` passes in the master's order, `info` last.
    tokio::time::timeout(T, async {
        while m.stats().deliveries == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the double delivers its dump");
    let conns = seen.lock().unwrap().clone();
    // 3.0.16's connect-only probe (recorded as 06-rsync-01-probe) comes first; 2.3.6 has none.
    assert_eq!(
        conns[0].is_empty(),
        probes,
        "a bare connect before the first push"
    );
    let pushes: Vec<Vec<String>> = conns
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| rsync_request_masked(c, mport))
        .collect();
    let recorded: Vec<Vec<String>> = (2..=12)
        .map(|i| {
            let name = if i == 12 {
                "12-info".to_string()
            } else {
                format!("{i:02}")
            };
            rsync_request_masked(
                &rec.read(&format!("06-rsync-{name}.c2s.bin")),
                rec.master_port,
            )
        })
        .collect();
    assert_eq!(pushes.len(), recorded.len(), "{pushes:#?}");
    // Copy passes: the master lists its dump directory (file-system order), so compare as sets.
    let mut copies = pushes[..5].to_vec();
    let mut want_copies = recorded[..5].to_vec();
    copies.sort();
    want_copies.sort();
    assert_eq!(copies, want_copies, "copy passes");
    assert_eq!(
        pushes[5..],
        recorded[5..],
        "--delete passes in order, then info"
    );

    // After the full sync the slave resumes at the dump's position: `:3`, as recorded.
    let mut t = TcpStream::connect(m.addr()).await.unwrap();
    t.write_all(&trysync("07-trysync-after-fullsync.c2s.bin"))
        .await
        .unwrap();
    let want = rec.read("07-trysync-after-fullsync.s2c.bin");
    let mut got = Vec::new();
    read_n(&mut t, &mut got, want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "trysync after the full sync"
    );
    m.shutdown();
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_master_double_replies_and_pushes_like_3_0_16() {
    old_master_double_matches(Recorded {
        dir: "pika-3.0.16",
        flavor: Flavor::V30,
        master_port: 29221,
        push: push_30,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_master_double_replies_and_pushes_like_2_3_6() {
    old_master_double_matches(Recorded {
        dir: "pika-2.3.6",
        flavor: Flavor::V23,
        master_port: 30021,
        push: push_23,
    })
    .await;
}

/// Protobuf frames of a stream, decoded as requests.
fn requests(mut buf: &[u8]) -> Vec<InnerRequest> {
    let mut out = Vec::new();
    while let Some((body, used)) = pb::split_frame(buf, 1 << 30).unwrap() {
        out.push(pb::decode_request(body).unwrap());
        buf = &buf[used..];
    }
    assert!(buf.is_empty(), "{} trailing bytes", buf.len());
    out
}

/// Sets every node (ip, port) of a request to a fixed value.
fn mask_node(mut r: InnerRequest) -> InnerRequest {
    let fix = |n: &mut pb::Node| {
        n.ip = "<ip>".into();
        n.port = 0;
    };
    if let Some(m) = r.meta_sync.as_mut() {
        fix(&mut m.node);
    }
    if let Some(t) = r.try_sync.as_mut() {
        fix(&mut t.node);
    }
    if let Some(b) = r.binlog_sync.as_mut() {
        fix(&mut b.node);
    }
    if let Some(d) = r.db_sync.as_mut() {
        fix(&mut d.node);
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_slave_double_requests_like_3_2_9() {
    // A master that answers with the recorded 3.2.9 frames: MetaSync, TrySync, then the whole w1
    // BinlogSync push after first_send.
    let s2c = vectors::read("pika-3.2.9/streams/03-pb-incremental.s2c.bin");
    let mut answers = Vec::new();
    let mut rest = &s2c[..];
    while let Some((_, used)) = pb::split_frame(rest, 1 << 30).unwrap() {
        answers.push(rest[..used].to_vec());
        rest = &rest[used..];
    }
    assert_eq!(answers.len(), 3);
    let want = requests(&vectors::read(
        "pika-3.2.9/streams/03-pb-incremental.c2s.bin",
    ));
    assert_eq!(want.len(), 4);

    let p = net::free_base(&[2000]);
    let probe = TcpListener::bind(("127.0.0.1", p)).await.unwrap();
    let repl = TcpListener::bind(("127.0.0.1", p + 2000)).await.unwrap();
    tokio::spawn(async move {
        loop {
            if probe.accept().await.is_err() {
                return;
            }
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let cfg = NewSlaveConfig::new(
        format!("127.0.0.1:{p}").parse().unwrap(),
        net::free_base(&[1000]),
        tmp.path().to_path_buf(),
    );
    let slave = NewSlave::start(cfg).await.unwrap();

    let (mut sock, _) = tokio::time::timeout(T, repl.accept())
        .await
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    tokio::time::timeout(T, async {
        while got.len() < want.len() {
            while let Some((body, used)) = pb::split_frame(&buf, 1 << 30).unwrap() {
                got.push(pb::decode_request(body).unwrap());
                buf.drain(..used);
                match got.len() {
                    1 => sock.write_all(&answers[0]).await.unwrap(),
                    2 => sock.write_all(&answers[1]).await.unwrap(),
                    3 => sock.write_all(&answers[2]).await.unwrap(),
                    _ => {}
                }
            }
            if got.len() >= want.len() {
                break;
            }
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the double closed after {} requests", got.len());
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} requests: {got:?}", got.len()));
    for (i, (g, w)) in got.into_iter().zip(want).enumerate() {
        assert_eq!(
            mask_node(g),
            mask_node(w),
            "request {i} (node ip/port masked)"
        );
    }
    slave.stop().await;
}
