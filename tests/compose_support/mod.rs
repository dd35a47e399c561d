//! What the container driver (tests/compose_topologies.rs) needs: the engine and compose
//! commands, unique names, free subnets, and a small RESP client for the peers' client ports.

use pika_relay::formats::resp::{encode_argv, parse_reply, Reply};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Runs `prog args` with `env`, returning stdout, or an error naming the command and its
/// stderr.
pub fn run(prog: &str, args: &[&str], env: &[(&str, String)]) -> Result<String, String> {
    let mut c = Command::new(prog);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .output()
        .map_err(|e| format!("`{prog} {}`: cannot run: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `docker ...`.
pub fn docker(args: &[&str]) -> Result<String, String> {
    run("docker", args, &[])
}

/// The compose tool: `docker compose` (v2) or `docker-compose` (v1).
pub fn compose_tool() -> Result<Vec<String>, String> {
    if docker(&["compose", "version"]).is_ok() {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    run("docker-compose", &["version"], &[])
        .map(|_| vec!["docker-compose".into()])
        .map_err(|e| format!("neither `docker compose` nor `docker-compose` works: {e}"))
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A short id unique to this run (pid and clock), for project, image and network names.
pub fn unique_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos % 0xfffff)
}

/// Subnets (`a.b.c.0/…`) the engine's networks already use, as their first three octets.
pub fn used_prefixes() -> Vec<String> {
    let ids = docker(&["network", "ls", "-q"]).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec![
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids);
    docker(&args)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.rsplit_once('.').map(|x| x.0.to_string()))
        .collect()
}

/// Two free /24 prefixes `10.x.y` (replication and control networks), chosen from `seed`.
pub fn free_prefixes(seed: u64) -> (String, String) {
    let used = used_prefixes();
    let mut x = seed;
    loop {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (a, b) = (150 + (x >> 33) % 100, (x >> 17) % 254);
        let net = format!("10.{a}.{b}");
        let ctl = format!("10.{a}.{}", b + 1);
        if !used.iter().any(|u| *u == net || *u == ctl) {
            return (net, ctl);
        }
    }
}

/// One request on a fresh connection to `addr` (2 s timeouts).
pub fn call(addr: &str, argv: &[&[u8]]) -> Result<Reply, String> {
    let sa = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(2))
        .map_err(|e| format!("{addr}: connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.set_write_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(&encode_argv(argv))
        .map_err(|e| format!("{addr}: send: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some((r, _)) = parse_reply(&buf).map_err(|e| format!("{addr}: reply: {e}"))? {
            return Ok(r);
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("{addr}: read: {e}"))?;
        if n == 0 {
            return Err(format!("{addr}: connection closed before a whole reply"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `SIM.DIGEST now` → (live keys, digest).
pub fn digest(addr: &str, now: u64) -> Result<(i64, String), String> {
    let now = now.to_string();
    match call(addr, &[b"SIM.DIGEST", now.as_bytes()])? {
        Reply::Array(Some(v)) if v.len() == 2 => match (&v[0], &v[1]) {
            (Reply::Integer(n), Reply::Bulk(Some(d))) => {
                Ok((*n, String::from_utf8_lossy(d).into_owned()))
            }
            other => Err(format!("{addr}: SIM.DIGEST: unexpected {other:?}")),
        },
        other => Err(format!("{addr}: SIM.DIGEST: unexpected {other:?}")),
    }
}

/// `SIM.LINES now`.
pub fn lines(addr: &str, now: u64) -> Result<Vec<String>, String> {
    let now = now.to_string();
    match call(addr, &[b"SIM.LINES", now.as_bytes()])? {
        Reply::Array(Some(v)) => Ok(v
            .into_iter()
            .map(|r| match r {
                Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect()),
        other => Err(format!("{addr}: SIM.LINES: unexpected {other:?}")),
    }
}
