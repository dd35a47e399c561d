//! Hostile or broken peers: every case ends with a log/status line naming the peer, the relay
//! keeps serving (a good connection afterwards works), and nothing accepted is lost.

mod upstream_common;

use std::time::Duration;

use pika_relay::formats::item::BinlogItem;
use pika_relay::formats::old_frame::{encode_auth, encode_binlog};
use pika_relay::formats::old_raw::{BinlogInfo, RawEntry};
use pika_relay::formats::record::record_end;
use pika_relay::formats::resp::encode_argv;
use pika_relay::formats::BinlogPos;
use pika_relay::upstream::{Durable, OldVersion, SessionState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use upstream_common::*;

const T: Duration = Duration::from_secs(10);

/// The n-th test record (`set k<n> v<n>`) with its header position, and its end.
fn record(at: BinlogPos, n: usize) -> (Vec<u8>, BinlogPos) {
    let content = encode_argv(&[
        b"set".to_vec(),
        format!("k{n}").into_bytes(),
        format!("v{n}").into_bytes(),
    ]);
    let body = BinlogItem {
        exec_time: 1_700_000_000,
        server_id: 1,
        logic_id: n as u64,
        pos: at,
        content,
    }
    .encode();
    let end = BinlogPos::new(at.filenum, record_end(at.offset, body.len() as u64));
    (encode_binlog(&body), end)
}

async fn streaming_relay(old: OldVersion) -> (Relay, ScriptedMaster) {
    let m = ScriptedMaster::start(vec![b":1\r\n".to_vec()]).await;
    let r = Relay::start(m.addr, Durable::default(), |c| c.old_version = old).await;
    assert!(
        wait_until(T, || r.status().state == SessionState::Streaming).await,
        "{:?}",
        r.status()
    );
    (r, m)
}

/// Waits for the relay to close `s` (read returns EOF or an error).
async fn closed_by_relay(s: &mut TcpStream) {
    let mut b = [0u8; 16];
    let r = tokio::time::timeout(T, s.read(&mut b))
        .await
        .expect("the relay must close the connection");
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "the relay never writes on the binlog channel"
    );
}

async fn good_connection(r: &Relay, at: BinlogPos, n: usize) -> (TcpStream, BinlogPos) {
    let mut s = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    s.write_all(&encode_auth("1")).await.unwrap();
    let (f, end) = record(at, n);
    s.write_all(&f).await.unwrap();
    r.wait_pos(end, T).await;
    (s, end)
}

fn last_error(r: &Relay) -> String {
    r.status().last_error.unwrap_or_default()
}

#[tokio::test]
async fn wrong_sid_is_rejected_and_the_right_one_accepted() {
    init_log();
    let (r, _m) = streaming_relay(OldVersion::V30).await;
    let mut bad = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    let peer = bad.local_addr().unwrap().to_string();
    bad.write_all(&encode_auth("7")).await.unwrap();
    let (f, _) = record(BinlogPos::new(0, 0), 0);
    let _ = bad.write_all(&f).await;
    closed_by_relay(&mut bad).await;
    assert!(wait_until(T, || r.status().binlog_rejected == 1).await);
    let e = last_error(&r);
    assert!(
        e.contains(&peer) && e.contains("\"7\"") && e.contains("sid is 1"),
        "{e}"
    );
    assert!(
        r.entries().is_empty(),
        "nothing from the impostor was accepted"
    );
    let (_s, _) = good_connection(&r, BinlogPos::new(0, 0), 0).await;
    assert_eq!(r.entries().len(), 1);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_frame_type_closes_only_that_connection() {
    init_log();
    let (r, _m) = streaming_relay(OldVersion::V30).await;
    let (mut s, end) = good_connection(&r, BinlogPos::new(0, 0), 0).await;
    let peer = s.local_addr().unwrap().to_string();
    s.write_all(b"\x07\x00\x03\x00\x00\x00abc").await.unwrap();
    closed_by_relay(&mut s).await;
    assert!(
        wait_until(T, || last_error(&r).contains("transfer type 7")).await,
        "{:?}",
        r.status()
    );
    assert!(last_error(&r).contains(&peer));
    // The master's sender reconnects and continues: accepted, nothing lost.
    let (_s2, end2) = good_connection(&r, end, 1).await;
    let es = r.entries();
    assert_eq!(es.len(), 2);
    assert_eq!((es[0].end, es[1].start, es[1].end), (end, end, end2));
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn one_gib_frame_header_is_refused_without_allocating() {
    init_log();
    let (r, _m) = streaming_relay(OldVersion::Auto).await;
    let (mut s, end) = good_connection(&r, BinlogPos::new(0, 0), 0).await;
    let peer = s.local_addr().unwrap().to_string();
    s.write_all(&[2, 0, 0, 0, 0, 0x40]).await.unwrap(); // type 2, length 1 GiB
    closed_by_relay(&mut s).await;
    assert!(
        wait_until(T, || last_error(&r).contains("1073741824")).await,
        "{:?}",
        r.status()
    );
    assert!(last_error(&r).contains(&peer));
    let (_s2, _) = good_connection(&r, end, 1).await;
    assert_eq!(r.entries().len(), 2);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn truncated_frame_is_discarded_and_the_resend_accepted_once() {
    init_log();
    let (r, _m) = streaming_relay(OldVersion::V30).await;
    let (mut s, end) = good_connection(&r, BinlogPos::new(0, 0), 0).await;
    let (f, end2) = record(end, 1);
    s.write_all(&f[..f.len() - 5]).await.unwrap();
    drop(s); // the link dies mid-frame
    assert!(wait_until(T, || !r.status().binlog_connected).await);
    assert_eq!(r.entries().len(), 1, "the partial frame is not accepted");
    // The master re-sends the whole record, and the one before it, on a new connection.
    let mut s2 = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    s2.write_all(&encode_auth("1")).await.unwrap();
    s2.write_all(&record(BinlogPos::new(0, 0), 0).0)
        .await
        .unwrap();
    s2.write_all(&f).await.unwrap();
    r.wait_pos(end2, T).await;
    let es = r.entries();
    assert_eq!(es.len(), 2);
    assert_eq!(r.status().duplicates, 1);
    assert_eq!(es[1].commands[0][1], b"k1");
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_before_any_session_and_non_protocol_bytes_are_refused() {
    init_log();
    // A master that never answers trysync sensibly: the relay never streams.
    let m = ScriptedMaster::start(vec![b"-ERR InvalidOffset\r\n".to_vec(); 100]).await;
    let r = Relay::start(m.addr, Durable::default(), |_| {}).await;
    let mut s = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    s.write_all(&encode_auth("1")).await.unwrap();
    closed_by_relay(&mut s).await;
    assert!(
        wait_until(T, || last_error(&r)
            .contains("no replication session is streaming")
            || r.status().binlog_rejected == 1)
        .await
    );
    let mut s = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    closed_by_relay(&mut s).await;
    assert!(wait_until(T, || r.status().binlog_rejected == 2).await);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn v23_array_without_trailing_fields_is_rejected() {
    init_log();
    let (r, _m) = streaming_relay(OldVersion::V23).await;
    let mut s = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    s.write_all(&encode_argv(&[b"auth".as_ref(), b"1"]))
        .await
        .unwrap();
    let e = RawEntry::new(
        vec![b"set".to_vec(), b"a".to_vec(), b"1".to_vec()],
        1,
        BinlogInfo {
            exec_time: 5,
            pos: BinlogPos::new(0, 0),
        },
        true,
    );
    s.write_all(&e.encode()).await.unwrap();
    r.wait_pos(BinlogPos::new(0, record_end(0, e.encoded_len as u64)), T)
        .await;
    s.write_all(&encode_argv(&[b"set".as_ref(), b"b", b"2"]))
        .await
        .unwrap();
    closed_by_relay(&mut s).await;
    assert!(
        wait_until(T, || last_error(&r).contains("magic")).await,
        "{:?}",
        r.status()
    );
    assert_eq!(r.entries().len(), 1);
    r.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_trysync_replies_are_logged_and_retried() {
    init_log();
    let m = ScriptedMaster::start(vec![
        b"+HELLO\r\n".to_vec(),
        b"\x00\x01\x02garbage\r\n".to_vec(),
        b"-Err unknown or unsupported command 'trysync'\r\n".to_vec(),
        b":1\r\n".to_vec(),
    ])
    .await;
    let r = Relay::start(m.addr, Durable::default(), |_| {}).await;
    let mut errors = Vec::new();
    assert!(
        wait_until(T, || {
            if let Some(e) = r.status().last_error {
                if errors.last() != Some(&e) {
                    errors.push(e);
                }
            }
            r.status().state == SessionState::Streaming
        })
        .await
    );
    let all = errors.join("\n");
    assert!(all.contains("\"HELLO\""), "{all}");
    assert!(all.contains("undecodable bytes"), "{all}");
    assert!(all.contains("unknown or unsupported command"), "{all}");
    assert!(
        all.contains(&m.addr.to_string()),
        "the master is named: {all}"
    );
    assert_eq!(r.status().trysyncs, 4);
    let (_s, _) = good_connection(&r, BinlogPos::new(0, 0), 0).await;
    r.handle.shutdown().await.unwrap();
}

/// Strangers on the binlog port: a bounded number may wait to authenticate, each for a bounded
/// time and a bounded number of bytes (a huge announced first frame is refused from its header),
/// and none of it disturbs the authenticated link, which keeps delivering throughout.
#[tokio::test]
async fn a_flood_of_unauthenticated_connections_is_bounded_and_the_live_link_keeps_delivering() {
    init_log();
    let m = ScriptedMaster::start(vec![b":1\r\n".to_vec()]).await;
    let r = Relay::start(m.addr, Durable::default(), |c| {
        c.old_version = OldVersion::Auto;
        c.max_pending_binlog_conns = 8;
        c.timings.binlog_auth_timeout = Duration::from_millis(700);
    })
    .await;
    assert!(wait_until(T, || r.status().state == SessionState::Streaming).await);
    let (mut live, mut end) = good_connection(&r, BinlogPos::new(0, 0), 0).await;
    let mut n = 1;

    // (a) 8 silent strangers hold every pre-auth slot: the 9th is closed at once.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(r.handle.binlog_addr).await.unwrap());
    }
    let mut ninth = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    closed_by_relay(&mut ninth).await;
    assert!(
        wait_until(T, || last_error(&r)
            .contains("already waiting to authenticate"))
        .await,
        "{:?}",
        r.status()
    );
    end = deliver(&mut live, end, n).await;
    n += 1;
    r.wait_pos(end, T).await;

    // (b) The silent ones are closed when their time to authenticate runs out.
    for s in &mut idle {
        closed_by_relay(s).await;
    }
    assert!(
        wait_until(T, || last_error(&r).contains("no `auth <sid>` within")).await,
        "{:?}",
        r.status()
    );

    // (c) A first frame announcing 400 MiB (3.0 header / 2.3 bulk length) is refused from its
    // header, with only the header and a few bytes sent: nothing of it is waited for.
    let huge = 400u32 << 20;
    let mut h30 = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    let mut head = vec![1u8, 0];
    head.extend_from_slice(&huge.to_le_bytes());
    h30.write_all(&head).await.unwrap();
    closed_by_relay(&mut h30).await;
    assert!(
        wait_until(T, || {
            let e = last_error(&r);
            e.contains(&huge.to_string()) && e.contains("at most 1024 bytes")
        })
        .await,
        "{:?}",
        r.status()
    );
    let mut h23 = TcpStream::connect(r.handle.binlog_addr).await.unwrap();
    h23.write_all(format!("*2\r\n$4\r\nauth\r\n${huge}\r\n12345").as_bytes())
        .await
        .unwrap();
    closed_by_relay(&mut h23).await;
    assert!(
        wait_until(T, || {
            let e = last_error(&r);
            e.contains(&huge.to_string()) && e.contains("RESP bulk string")
        })
        .await,
        "{:?}",
        r.status()
    );

    // (d) A flood of garbage while the live link streams: every stranger is closed, every
    // record of the live link arrives.
    let rejected_before = r.status().binlog_rejected;
    let mut flood = Vec::new();
    for i in 0..120usize {
        let Ok(mut s) = TcpStream::connect(r.handle.binlog_addr).await else {
            continue;
        };
        let junk: Vec<u8> = match i % 4 {
            0 => [&head[..], &vec![0x41u8; 2048][..]].concat(),
            1 => [
                b"*2\r\n$4\r\nauth\r\n$99999\r\n".as_ref(),
                &vec![0x42u8; 2048],
            ]
            .concat(),
            2 => vec![0x01; 5], // an unfinished 3.0 header, then silence
            _ => vec![b'*'; 3000],
        };
        let _ = s.write_all(&junk).await;
        flood.push(s);
        if i % 10 == 0 {
            end = deliver(&mut live, end, n).await;
            n += 1;
        }
    }
    r.wait_pos(end, T).await;
    for s in &mut flood {
        closed_by_relay(s).await;
    }
    assert!(
        wait_until(T, || r.status().binlog_rejected >= rejected_before + 120).await,
        "{:?}",
        r.status()
    );
    // The live link was never touched: still connected, still delivering, nothing lost.
    end = deliver(&mut live, end, n).await;
    r.wait_pos(end, T).await;
    let st = r.status();
    assert!(st.binlog_connected);
    assert_eq!(st.binlog_connections, 1, "{st:?}");
    let es = r.entries();
    assert_eq!(es.len(), n + 1);
    assert_contiguous(&es, BinlogPos::new(0, 0), r.cfg.binlog_file_size);
    r.handle.shutdown().await.unwrap();
}

/// Writes the n-th test record at `at` on `live` and returns its end.
async fn deliver(live: &mut TcpStream, at: BinlogPos, n: usize) -> BinlogPos {
    let (f, end) = record(at, n);
    live.write_all(&f).await.unwrap();
    end
}
