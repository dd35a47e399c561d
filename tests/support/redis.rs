//! A real `redis-server` child on a free loopback port, a tiny blocking client, and a dump of a
//! target's keyspace in the doubles' terms (marker keys left out), for comparisons.

#![allow(dead_code)]

use pika_relay::formats::resp::{encode_argv, parse_reply, Reply};
use pika_relay::sim::keyspace::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    aof: bool,
    extra: Vec<String>,
    /// The temporary directory of a [`RedisServer::scratch`] server, removed with it.
    _scratch: Option<tempfile::TempDir>,
}

// Test files that also load `net.rs` get a second copy; redis-servers take their ports from a
// range of their own (`free_port_in(1)`), so the two copies' counters cannot hand out one port.
#[allow(clippy::duplicate_mod)]
#[path = "net.rs"]
mod net;

/// A free loopback port below the ephemeral range (see `net.rs`).
fn free_port() -> u16 {
    net::free_port_in(1)
}

impl RedisServer {
    /// Starts one in `dir` (created); `aof` makes its data survive a restart.
    pub fn start(dir: &Path, aof: bool) -> RedisServer {
        Self::start_with(dir, aof, &[])
    }

    /// [`RedisServer::start`] on a given port.
    pub fn start_on(dir: &Path, port: u16) -> RedisServer {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = RedisServer {
            child: None,
            port,
            dir: dir.to_path_buf(),
            aof: false,
            extra: Vec::new(),
            _scratch: None,
        };
        s.spawn();
        s
    }

    /// A free loopback port.
    pub fn free_port() -> u16 {
        free_port()
    }

    /// [`RedisServer::start`] with extra server arguments.
    pub fn start_with(dir: &Path, aof: bool, extra: &[&str]) -> RedisServer {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            aof,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _scratch: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = Client::connect(self.port) {
                if c.cmd(&["PING"]) == Reply::Simple("PONG".into()) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on {} did not start", self.port);
    }

    /// One without persistence in a temporary directory of its own.
    pub fn scratch() -> RedisServer {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Self::start(tmp.path(), false);
        s._scratch = Some(tmp);
        s
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it with SIGTERM (an AOF server writes its data) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id(), "TERM");
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A client.
    pub fn client(&self) -> Client {
        Client::connect(self.port).unwrap()
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A blocking RESP client.
pub struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client { s, buf: Vec::new() })
    }

    /// Sends a command, returns its reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Reply {
        self.s.write_all(&encode_argv(argv)).unwrap();
        loop {
            if let Some((r, used)) = parse_reply(&self.buf).unwrap() {
                self.buf.drain(..used);
                return r;
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "redis closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn bulk(r: Reply) -> Vec<u8> {
    match r {
        Reply::Bulk(Some(b)) => b,
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

fn array(r: Reply) -> Vec<Vec<u8>> {
    match r {
        Reply::Array(Some(v)) => v.into_iter().map(bulk).collect(),
        other => panic!("expected an array reply, got {other:?}"),
    }
}

/// Every key of the target's db 0 except the relay's markers: value and absolute expiry in
/// unix milliseconds.
pub fn target_data(port: u16) -> BTreeMap<Vec<u8>, (Value, Option<i64>)> {
    let mut c = Client::connect(port).unwrap();
    let mut keys = Vec::new();
    let mut cursor = b"0".to_vec();
    loop {
        let r = c.cmd(&[&b"SCAN"[..], &cursor, b"COUNT", b"1000"]);
        let Reply::Array(Some(mut parts)) = r else {
            panic!("SCAN: {r:?}")
        };
        let ks = array(parts.pop().unwrap());
        cursor = bulk(parts.pop().unwrap());
        keys.extend(ks);
        if cursor == b"0" {
            break;
        }
    }
    let mut out = BTreeMap::new();
    for k in keys {
        if k.starts_with(b"pika-relay:applied:") {
            continue;
        }
        let ty = match c.cmd(&[&b"TYPE"[..], &k]) {
            Reply::Simple(s) => s,
            other => panic!("TYPE: {other:?}"),
        };
        let v = match ty.as_str() {
            "string" => Value::Str(bulk(c.cmd(&[&b"GET"[..], &k]))),
            "hash" => {
                let a = array(c.cmd(&[&b"HGETALL"[..], &k]));
                Value::Hash(a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
            }
            "list" => Value::List(array(c.cmd(&[&b"LRANGE"[..], &k, b"0", b"-1"])).into()),
            "set" => Value::Set(array(c.cmd(&[&b"SMEMBERS"[..], &k])).into_iter().collect()),
            "zset" => {
                let a = array(c.cmd(&[&b"ZRANGE"[..], &k, b"0", b"-1", b"WITHSCORES"]));
                Value::ZSet(
                    a.chunks(2)
                        .map(|p| {
                            let s: f64 = String::from_utf8_lossy(&p[1]).parse().unwrap();
                            (p[0].clone(), s)
                        })
                        .collect(),
                )
            }
            "none" => continue,
            other => panic!("unexpected type {other}"),
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let exp = match c.cmd(&[&b"PTTL"[..], &k]) {
            Reply::Integer(-1) => None,
            Reply::Integer(-2) => continue,
            Reply::Integer(ms) => Some(now_ms + ms),
            other => panic!("PTTL: {other:?}"),
        };
        out.insert(k, (v, exp));
    }
    out
}

/// Differences between the master double's live keyspace and the target (TTLs compared within
/// one second); empty when equal.
pub fn differences(
    master: &BTreeMap<Vec<u8>, (Value, Option<u64>)>,
    target: &BTreeMap<Vec<u8>, (Value, Option<i64>)>,
) -> Vec<String> {
    use pika_relay::formats::resp::escape;
    let mut d = Vec::new();
    for (k, (v, exp)) in master {
        match target.get(k) {
            None => d.push(format!("missing {}", escape(k))),
            Some((tv, texp)) => {
                if tv != v {
                    let short = |x: &Value| {
                        let t = format!("{x:?}");
                        t.chars().take(160).collect::<String>()
                    };
                    d.push(format!(
                        "value of {}: master {} target {}",
                        escape(k),
                        short(v),
                        short(tv)
                    ));
                }
                let ok = match (exp, texp) {
                    (None, None) => true,
                    (Some(s), Some(ms)) => (*s as i64 * 1000 - ms).abs() <= 1000,
                    _ => false,
                };
                if !ok {
                    d.push(format!(
                        "ttl of {}: master {exp:?} s, target {texp:?} ms",
                        escape(k)
                    ));
                }
            }
        }
    }
    for k in target.keys() {
        if !master.contains_key(k) {
            d.push(format!("extra {}", escape(k)));
        }
    }
    d
}
