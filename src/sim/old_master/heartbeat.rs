//! The double's heartbeat server on P+2000 (spec §4, master side).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::Inner;
use crate::formats::resp::parse_argv;

pub(crate) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let acc = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((sock, peer)) = acc else { continue };
        let mut ip = peer.ip().to_string();
        if ip == "127.0.0.1" {
            ip = inner.cfg.host.clone();
        }
        let (id, token) = {
            let mut st = inner.state.lock().unwrap();
            if !st.slaves.iter().any(|s| s.ip_port.contains(&ip)) {
                tracing::info!("old-master double: heartbeat from {peer} refused: no registered slave has ip {ip}");
                continue;
            }
            st.stats.hb_connects += 1;
            let id = st.next_hb;
            st.next_hb += 1;
            let token = inner.shutdown.child_token();
            st.hb_conns.insert(id, token.clone());
            (id, token)
        };
        let inner2 = inner.clone();
        tokio::spawn(async move {
            conn(&inner2, sock, id, &token).await;
            inner2.state.lock().unwrap().hb_conns.remove(&id);
            inner2.delete_slaves(|s| s.hb_conn == Some(id));
        });
    }
}

async fn conn(
    inner: &Inner,
    mut sock: TcpStream,
    id: u64,
    token: &tokio_util::sync::CancellationToken,
) {
    let mut buf = Vec::new();
    loop {
        let mut out = Vec::new();
        loop {
            match parse_argv(&buf) {
                Ok(Some((argv, used))) => {
                    buf.drain(..used);
                    if argv.len() == 2 && argv[0] == b"spci" {
                        let sid = std::str::from_utf8(&argv[1])
                            .ok()
                            .and_then(|s| s.parse::<u32>().ok());
                        let mut st = inner.state.lock().unwrap();
                        if let Some(s) = st.slaves.iter_mut().find(|s| Some(s.sid) == sid) {
                            s.hb_conn = Some(id);
                            s.stage = 2;
                        }
                        out.extend(b"+OK\r\n");
                    } else if argv.len() == 1 && argv[0] == b"ping" {
                        out.extend(b"+PONG\r\n");
                    } else {
                        out.extend(b"-ERR What the fuck are u sending\r\n");
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if !out.is_empty() && sock.write_all(&out).await.is_err() {
            return;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::select! {
            _ = token.cancelled() => return,
            r = timeout(inner.cfg.timings.hb_idle, sock.read(&mut chunk)) => match r {
                Err(_) => { tracing::info!("old-master double: heartbeat #{id} idle for {:?}: closing", inner.cfg.timings.hb_idle); return }
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => n,
            },
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Deletes slaves still in stage 1 after the stage-1 limit (the master's 1 s cron).
pub(crate) async fn cron(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(inner.cfg.timings.cron) => {}
        }
        let limit = inner.cfg.timings.hb_stage1_limit;
        inner.delete_slaves(|s| s.stage == 1 && s.created.elapsed() > limit);
    }
}
