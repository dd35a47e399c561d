//! The double's client port P: `auth`, `trysync` (spec §2.3–§2.6), `ping`, `config get
//! binlog-file-size`, and write commands.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{dump, sender, unix_now, write_locked, Inner, SlaveItem, State};
use crate::formats::resp::{parse_argv, Argv, Reply};
use crate::formats::BinlogPos;

pub(crate) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let acc = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        if let Ok((sock, _)) = acc {
            tokio::spawn(handle(inner.clone(), sock));
        }
    }
}

#[derive(PartialEq)]
enum Auth {
    Admin,
    Limited,
    NotAuthed,
}

fn encode_reply(r: &Reply, out: &mut Vec<u8>) {
    match r {
        Reply::Simple(s) => out.extend(format!("+{s}\r\n").bytes()),
        Reply::Error(s) => out.extend(format!("-{s}\r\n").bytes()),
        Reply::Integer(n) => out.extend(format!(":{n}\r\n").bytes()),
        Reply::Bulk(None) => out.extend(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            out.extend(format!("${}\r\n", b.len()).bytes());
            out.extend(b);
            out.extend(b"\r\n");
        }
        Reply::Array(None) => out.extend(b"*-1\r\n"),
        Reply::Array(Some(v)) => {
            out.extend(format!("*{}\r\n", v.len()).bytes());
            for x in v {
                encode_reply(x, out);
            }
        }
    }
}

async fn handle(inner: Arc<Inner>, mut sock: TcpStream) {
    let cfg = &inner.cfg;
    let mut auth = match (&cfg.userpass, &cfg.requirepass) {
        (None, None) => Auth::Admin,
        (None, Some(_)) => Auth::Limited,
        (Some(_), _) => Auth::NotAuthed,
    };
    let mut buf = Vec::new();
    loop {
        let mut out = Vec::new();
        loop {
            match parse_argv(&buf) {
                Ok(Some((argv, used))) => {
                    buf.drain(..used);
                    out.extend(command(&inner, &mut auth, argv));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if !out.is_empty() && sock.write_all(&out).await.is_err() {
            return;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            r = sock.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn command(inner: &Arc<Inner>, auth: &mut Auth, argv: Argv) -> Vec<u8> {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let cfg = &inner.cfg;
    let mut out = Vec::new();
    let err = |s: &str| format!("-{s}\r\n").into_bytes();
    match name.as_str() {
        "auth" => {
            if argv.len() != 2 {
                return err("ERR wrong number of arguments for 'auth' command");
            }
            let pw = String::from_utf8_lossy(&argv[1]).into_owned();
            if cfg.userpass.is_none() && cfg.requirepass.is_none() {
                return err("ERR Client sent AUTH, but no password is set");
            }
            if cfg.requirepass.as_deref() == Some(pw.as_str()) {
                *auth = Auth::Admin;
            } else if cfg.userpass.as_deref() == Some(pw.as_str()) {
                *auth = Auth::Limited;
            } else {
                return err("ERR invalid password");
            }
            b"+OK\r\n".to_vec()
        }
        "trysync" => {
            if *auth != Auth::Admin {
                return err("ERR NOAUTH Authentication required.");
            }
            if argv.len() != 5 {
                return err("ERR wrong number of arguments for 'trysync' command");
            }
            let s = |i: usize| String::from_utf8_lossy(&argv[i]).into_owned();
            inner
                .state
                .lock()
                .unwrap()
                .stats
                .trysync_log
                .push((s(1), s(2), s(3), s(4)));
            let (Some(port), Some(f), Some(o)) =
                (strict(&argv[2]), strict(&argv[3]), strict(&argv[4]))
            else {
                return err("ERR value is not an integer or out of range");
            };
            if port <= 0 || port > 65535 || f < 0 || o < 0 {
                return err("ERR value is not an integer or out of range");
            }
            trysync(
                inner,
                &s(1),
                port as u16,
                BinlogPos::new(f as u32, o as u64),
            )
        }
        "ping" => b"+PONG\r\n".to_vec(),
        "sim.digest" | "sim.lines" => {
            crate::sim::probe::answer(&argv, || inner.state.lock().unwrap().ks.clone())
                .unwrap_or_default()
        }
        "info" | "readonly" | "config" if *auth == Auth::NotAuthed => {
            err("ERR NOAUTH Authentication required.")
        }
        "info" => {
            let section = argv
                .get(1)
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .unwrap_or_default();
            let all = section.is_empty() || section == "all";
            let mut text = String::new();
            if all || section == "server" {
                text += &format!("# Server\r\npika_version:{}\r\n", cfg.pika_version);
            }
            if all || section == "log" {
                let p = inner.state.lock().unwrap().binlog.producer();
                text += &format!(
                    "# Log\r\nsafety_purge:none\r\nbinlog_offset:{} {}\r\n",
                    p.filenum, p.offset
                );
            }
            format!("${}\r\n{text}\r\n", text.len()).into_bytes()
        }
        // 2.3.x and 3.0.0–3.0.4 have `readonly on|off` (an admin command that waits for running
        // writes) and refuse every client write while it is on; later versions lack it.
        "readonly" if crate::relay::cutover::can_refuse_writes(&cfg.pika_version) => {
            if *auth != Auth::Admin {
                return err("ERR NOAUTH Authentication required.");
            }
            let on = match argv.get(1).map(|a| a.to_ascii_lowercase()) {
                Some(a) if argv.len() == 2 && (a == b"on" || a == b"1") => true,
                Some(a) if argv.len() == 2 && (a == b"off" || a == b"0") => false,
                _ => return err("ERR syntax error"),
            };
            inner.state.lock().unwrap().readonly = on;
            b"+OK\r\n".to_vec()
        }
        "readonly" => err("ERR unknown or unsupported command 'readonly'"),
        "config"
            if argv.len() == 4
                && argv[1].eq_ignore_ascii_case(b"set")
                && argv[2].eq_ignore_ascii_case(b"slave-read-only") =>
        {
            let v = argv[3].to_ascii_lowercase();
            let on = match v.as_slice() {
                b"1" | b"yes" => true,
                b"0" | b"no" => false,
                _ => return err("ERR Invalid argument for CONFIG SET 'slave-read-only'"),
            };
            inner.state.lock().unwrap().readonly = on;
            b"+OK\r\n".to_vec()
        }
        "config" if argv.len() == 3 && argv[2].eq_ignore_ascii_case(b"binlog-file-size") => {
            let v = cfg.binlog_file_size.to_string();
            format!("*2\r\n$16\r\nbinlog-file-size\r\n${}\r\n{v}\r\n", v.len()).into_bytes()
        }
        _ => {
            if *auth == Auth::NotAuthed {
                return err("ERR NOAUTH Authentication required.");
            }
            let mut st = inner.state.lock().unwrap();
            if st.readonly && crate::relay::cutover::can_refuse_writes(&cfg.pika_version) {
                return err("ERR Server in read-only");
            }
            let r = write_locked(&mut st, cfg.flavor, &argv);
            drop(st);
            match r {
                Ok(r) => encode_reply(&r, &mut out),
                Err(e) => encode_reply(&Reply::Error(e), &mut out),
            }
            out
        }
    }
}

/// `slash::string2l`: optional `-`, digits only.
fn strict(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The master's trysync algorithm (spec §2.5).
fn trysync(inner: &Arc<Inner>, ip: &str, port: u16, pos: BinlogPos) -> Vec<u8> {
    let mut st = inner.state.lock().unwrap();
    st.stats.trysyncs += 1;
    if let Some(r) = st.trysync_replies.pop_front() {
        return r;
    }
    let ip_port = format!("{ip}:{port}");
    if st.slaves.iter().any(|s| s.ip_port == ip_port) {
        return b"-ERR AlreadyExist\r\n".to_vec();
    }
    st.last_sid += 1;
    let sid = st.last_sid;
    let invalid = b"-ERR InvalidOffset\r\n".to_vec();
    if pos.offset > inner.cfg.binlog_file_size {
        return invalid;
    }
    let prod = st.binlog.producer();
    if pos.filenum != u32::MAX
        && (prod.filenum < pos.filenum || (prod.filenum == pos.filenum && prod.offset < pos.offset))
    {
        return invalid;
    }
    if !st.binlog.has_file(pos.filenum) {
        try_dbsync(inner, &mut st, ip, port);
        return b"$4\r\nwait\r\n".to_vec();
    }
    let Some(start) = st.binlog.trim(pos) else {
        return invalid;
    };
    let token = inner.shutdown.child_token();
    st.slaves.push(SlaveItem {
        sid,
        ip_port,
        hb_conn: None,
        stage: 1,
        sender: Some(token.clone()),
        created: Instant::now(),
    });
    tokio::spawn(sender::run(
        inner.clone(),
        sid,
        ip.to_string(),
        port,
        start,
        token,
    ));
    format!(":{sid}\r\n").into_bytes()
}

/// Schedules a DBSync for `ip:port+3000` (spec §2.6, §5.4).
fn try_dbsync(inner: &Arc<Inner>, st: &mut State, ip: &str, port: u16) {
    let cfg = &inner.cfg;
    let key = format!("{ip}:{}", port as u32 + 3000);
    if st.dbsync_running.contains(&key) {
        return;
    }
    let prod = st.binlog.producer();
    let reuse = match &st.bgsave {
        Some((dir, p)) => {
            dir.exists() && st.binlog.has_file(p.filenum) && prod.filenum - p.filenum <= 50
        }
        None => false,
    };
    if !reuse {
        st.dumps += 1;
        let dir = cfg.dump_root.join(format!("dump-{}", st.dumps));
        if let Err(e) = dump::write_dump(
            &dir,
            cfg.flavor,
            &st.ks,
            unix_now(),
            &cfg.host,
            inner.port,
            prod,
        ) {
            tracing::error!("old-master double: bgsave failed: {e}");
            return;
        }
        st.stats.bgsaves += 1;
        st.bgsave = Some((dir, prod));
    }
    let Some(delivery) = cfg.delivery.clone() else {
        return;
    };
    let dir = st.bgsave.as_ref().expect("set above").0.clone();
    st.dbsync_running.insert(key.clone());
    let inner = inner.clone();
    let ip = ip.to_string();
    let module = format!("document_{}:{}", cfg.host, inner.port);
    tokio::spawn(async move {
        tokio::time::sleep(inner.cfg.timings.dbsync_delay).await;
        let r = delivery
            .deliver(&dir, &ip, port.wrapping_add(3000), &module)
            .await;
        let mut st = inner.state.lock().unwrap();
        st.dbsync_running.remove(&key);
        match r {
            Ok(()) => st.stats.deliveries += 1,
            Err(e) => tracing::error!("old-master double: DBSync to {key} failed: {e}"),
        }
    });
}
