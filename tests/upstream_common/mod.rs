//! Shared helpers for the `upstream_*` tests: a relay harness (session + a fake journal that
//! marks entries durable as it collects them) and a scripted master for recorded replies.
#![allow(dead_code)]

#[path = "../support/vectors.rs"]
mod vectors_support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pika_relay::formats::resp::parse_argv;
use pika_relay::formats::BinlogPos;
use pika_relay::sim::old_master::Keyspace;
use pika_relay::upstream::{
    self, DirFullSyncReceiver, Durable, Timings, UpstreamConfig, UpstreamEvent, UpstreamHandle,
    UpstreamStatus,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Binds 127.0.0.1:q with q > 1000 so that the relay port R = q - 1000 is valid.
pub async fn bind_binlog_listener() -> (TcpListener, u16) {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let q = l.local_addr().unwrap().port();
        if q > 1000 && q - 1000 < 62535 {
            return (l, q - 1000);
        }
    }
}

pub struct Relay {
    pub handle: UpstreamHandle,
    pub durable: watch::Sender<Durable>,
    pub events: Arc<Mutex<Vec<UpstreamEvent>>>,
    pub relay_port: u16,
    pub dir: tempfile::TempDir,
    pub staging: PathBuf,
    pub cfg: UpstreamConfig,
}

pub fn base_config(master: SocketAddr, relay_port: u16, data_dir: PathBuf) -> UpstreamConfig {
    let mut cfg = UpstreamConfig::new(master, "127.0.0.1", relay_port, data_dir);
    cfg.timings = Timings::fast();
    cfg.channel_capacity = 16;
    cfg
}

impl Relay {
    /// Starts a session; `tweak` adjusts the config. The fake journal collects events and
    /// publishes each entry's end as durable.
    pub async fn start(
        master: SocketAddr,
        init: Durable,
        tweak: impl FnOnce(&mut UpstreamConfig),
    ) -> Relay {
        Self::start_in(tempfile::tempdir().unwrap(), master, init, tweak).await
    }

    /// As `start`, in a given directory (its `data/staging` is the full-sync staging directory).
    pub async fn start_in(
        dir: tempfile::TempDir,
        master: SocketAddr,
        init: Durable,
        tweak: impl FnOnce(&mut UpstreamConfig),
    ) -> Relay {
        let (listener, relay_port) = bind_binlog_listener().await;
        let mut cfg = base_config(master, relay_port, dir.path().join("data"));
        tweak(&mut cfg);
        let staging = dir.path().join("data").join("staging");
        let (durable, durable_rx) = watch::channel(init);
        let fs = Arc::new(DirFullSyncReceiver::new(staging.clone()));
        let mut handle = upstream::start_with_listener(cfg.clone(), durable_rx, fs, listener)
            .await
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut rx = handle.take_events();
        let (ev2, d2) = (events.clone(), durable.clone());
        tokio::spawn(async move {
            let mut epoch = init.epoch;
            while let Some(e) = rx.recv().await {
                match &e {
                    UpstreamEvent::Entry(en) => {
                        let _ = d2.send(Durable { epoch, pos: en.end });
                    }
                    UpstreamEvent::FullSync(d) => {
                        epoch = d.epoch;
                        let _ = d2.send(Durable {
                            epoch,
                            pos: d.info.pos,
                        });
                    }
                }
                ev2.lock().unwrap().push(e);
            }
        });
        Relay {
            handle,
            durable,
            events,
            relay_port,
            dir,
            staging,
            cfg,
        }
    }

    pub fn status(&self) -> UpstreamStatus {
        self.handle.status.borrow().clone()
    }

    pub fn entries(&self) -> Vec<pika_relay::pipeline::OldEntry> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                UpstreamEvent::Entry(x) => Some(x.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn events(&self) -> Vec<UpstreamEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until the last emitted entry ends at `pos`.
    pub async fn wait_pos(&self, pos: BinlogPos, limit: Duration) {
        let ok = wait_until(limit, || {
            self.status().last_pos == pos && self.entries().last().map(|e| e.end) == Some(pos)
        })
        .await;
        assert!(ok, "relay did not reach {pos}: status {:?}", self.status());
    }
}

pub async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Entries must be contiguous: each starts where the previous ended (no gap, no duplicate).
/// A position past `binlog_file_size` is followed by the next file's start (the master rolls
/// over before writing).
pub fn assert_contiguous(
    entries: &[pika_relay::pipeline::OldEntry],
    from: BinlogPos,
    binlog_file_size: u64,
) {
    let mut at = from;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            e.start,
            pika_relay::upstream::receiver::normalize(at, binlog_file_size),
            "entry {i} ({:?}) does not start where the previous ended",
            e.commands
                .first()
                .map(|c| String::from_utf8_lossy(&c[0]).into_owned())
        );
        assert!(e.end > e.start);
        at = e.end;
    }
}

/// Applies every command of the entries to `ks` at `now`.
pub fn apply(ks: &mut Keyspace, entries: &[pika_relay::pipeline::OldEntry], now: u64) {
    for e in entries {
        for c in &e.commands {
            ks.exec(c, now)
                .unwrap_or_else(|err| panic!("replaying {:?}: {err}", c));
        }
    }
}

/// A master that answers trysyncs with scripted bytes and runs a trivial heartbeat server on
/// port+2000; it records what it received.
pub struct ScriptedMaster {
    pub addr: SocketAddr,
    pub replies: Arc<Mutex<VecDeque<Vec<u8>>>>,
    pub requests: Arc<Mutex<Vec<Vec<u8>>>>,
    pub heartbeat: Arc<Mutex<Vec<u8>>>,
    pub hb_kill: Arc<tokio::sync::Notify>,
}

impl ScriptedMaster {
    pub async fn start(replies: Vec<Vec<u8>>) -> ScriptedMaster {
        let (client, hb) = loop {
            let c = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let p = c.local_addr().unwrap().port();
            if p > 63000 {
                continue;
            }
            if let Ok(h) = TcpListener::bind(("127.0.0.1", p + 2000)).await {
                break (c, h);
            }
        };
        let m = ScriptedMaster {
            addr: client.local_addr().unwrap(),
            replies: Arc::new(Mutex::new(replies.into())),
            requests: Arc::new(Mutex::new(Vec::new())),
            heartbeat: Arc::new(Mutex::new(Vec::new())),
            hb_kill: Arc::new(tokio::sync::Notify::new()),
        };
        let (replies, requests) = (m.replies.clone(), m.requests.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = client.accept().await {
                let (replies, requests) = (replies.clone(), requests.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut replied = false;
                    loop {
                        if !replied {
                            let mut rest = &buf[..];
                            while let Ok(Some((argv, used))) = parse_argv(rest) {
                                rest = &rest[used..];
                                if argv[0] == b"trysync" {
                                    let r = replies
                                        .lock()
                                        .unwrap()
                                        .pop_front()
                                        .unwrap_or_else(|| b":99\r\n".to_vec());
                                    let _ = s.write_all(&r).await;
                                    replied = true;
                                    break;
                                }
                            }
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    requests.lock().unwrap().push(buf);
                });
            }
        });
        let (heartbeat, kill) = (m.heartbeat.clone(), m.hb_kill.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = hb.accept().await {
                let (heartbeat, kill) = (heartbeat.clone(), kill.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        while let Ok(Some((argv, used))) = parse_argv(&buf) {
                            heartbeat.lock().unwrap().extend_from_slice(&buf[..used]);
                            buf.drain(..used);
                            let r: &[u8] = if argv[0] == b"spci" {
                                b"+OK\r\n"
                            } else {
                                b"+PONG\r\n"
                            };
                            if s.write_all(r).await.is_err() {
                                return;
                            }
                        }
                        let mut chunk = [0u8; 1024];
                        tokio::select! {
                            _ = kill.notified() => return,
                            r = s.read(&mut chunk) => match r {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    }
                });
            }
        });
        m
    }
}

/// One argv element from an entries.tsv: a bytes repr, or `<N bytes sha1=...>` for the
/// workload's big values `bytes((i * 7) % 251 for i in range(N))`.
pub fn tsv_arg(s: &str) -> Vec<u8> {
    if let Some(rest) = s.strip_prefix('<') {
        let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
        return (0..n).map(|i| ((i * 7) % 251) as u8).collect();
    }
    vectors_support::py_bytes(s)
}

/// Splits the JSON list of an entries.tsv argv column.
pub fn tsv_argv(col: &str) -> Vec<Vec<u8>> {
    let v: Vec<String> = serde_json::from_str(col).expect("argv column is a JSON list");
    v.iter().map(|s| tsv_arg(s)).collect()
}

/// The recorded vectors directory (fails when missing: the vectors must not be skipped).
pub fn vectors() -> PathBuf {
    vectors_support::dir()
}
