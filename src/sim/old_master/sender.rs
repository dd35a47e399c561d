//! The double's binlog sender (spec §3.1): one task per registered slave.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::{Fault, Flavor, Inner};
use crate::formats::old_frame::{encode_auth, encode_binlog};
use crate::formats::resp::encode_argv;
use crate::formats::BinlogPos;

enum Next {
    Record(Vec<u8>, BinlogPos, Option<Fault>),
    Stop,
}

async fn next_record(inner: &Inner, pos: &mut BinlogPos, stop: &CancellationToken) -> Next {
    loop {
        {
            let mut st = inner.state.lock().unwrap();
            if let Some((payload, end)) = st.binlog.read(*pos) {
                let fault = st.sender_faults.pop_front();
                return Next::Record(payload, end, fault);
            }
            if st.binlog.has_file(pos.filenum + 1) {
                *pos = BinlogPos::new(pos.filenum + 1, 0);
                continue;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Next::Stop,
            _ = tokio::time::sleep(inner.cfg.timings.sender_poll) => {}
        }
    }
}

/// Streams the binlog from `pos` to `ip:port+1000` until `stop`.
pub(crate) async fn run(
    inner: Arc<Inner>,
    sid: u32,
    ip: String,
    port: u16,
    mut pos: BinlogPos,
    stop: CancellationToken,
) {
    let t = inner.cfg.timings.clone();
    let flavor = inner.cfg.flavor;
    let addr = format!("{ip}:{}", port as u32 + 1000);
    let mut history: VecDeque<BinlogPos> = VecDeque::new();
    let pause = |d| {
        let stop = stop.clone();
        async move {
            tokio::select! { _ = stop.cancelled() => false, _ = tokio::time::sleep(d) => true }
        }
    };
    'outer: loop {
        if !pause(t.sender_connect_delay).await {
            return;
        }
        let mut sock = match timeout(t.sender_connect_timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                if !pause(t.sender_retry).await {
                    return;
                }
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        inner.state.lock().unwrap().stats.sender_connects += 1;
        let auth = match flavor {
            Flavor::V30 => encode_auth(&sid.to_string()),
            Flavor::V23 => encode_argv(&[b"auth".to_vec(), sid.to_string().into_bytes()]),
        };
        if !matches!(
            timeout(t.send_timeout, sock.write_all(&auth)).await,
            Ok(Ok(()))
        ) {
            // Faithful to Pika: a failed auth send ends the sender for good.
            tracing::warn!("old-master double: sender for sid {sid} could not send auth; exiting");
            return;
        }
        loop {
            let (payload, end, fault) = match next_record(&inner, &mut pos, &stop).await {
                Next::Stop => return,
                Next::Record(p, e, f) => (p, e, f),
            };
            let frame = match flavor {
                Flavor::V30 => encode_binlog(&payload),
                Flavor::V23 => payload,
            };
            match fault {
                None => {}
                Some(Fault::CutNextFrame) | Some(Fault::CutAndRewind(_)) => {
                    let _ = sock.write_all(&frame[..frame.len() / 2]).await;
                    let _ = sock.flush().await;
                    drop(sock);
                    if let Some(Fault::CutAndRewind(k)) = fault {
                        if k > 0 && k <= history.len() {
                            pos = history[history.len() - k];
                        }
                    }
                    if !pause(t.sender_retry).await {
                        return;
                    }
                    continue 'outer;
                }
                Some(Fault::LoseInFlight(n)) => {
                    // This record and the n-1 after it "were sent" but never arrive.
                    history.push_back(pos);
                    pos = end;
                    for _ in 1..n {
                        if let Some((_, e)) = inner.state.lock().unwrap().binlog.read(pos) {
                            history.push_back(pos);
                            pos = e;
                        }
                    }
                    drop(sock);
                    if !pause(t.sender_retry).await {
                        return;
                    }
                    continue 'outer;
                }
            }
            let sent = tokio::select! {
                _ = stop.cancelled() => return,
                r = timeout(t.send_timeout, sock.write_all(&frame)) => matches!(r, Ok(Ok(()))),
            };
            if !sent {
                if !pause(t.sender_retry).await {
                    return;
                }
                continue 'outer; // re-send the same record on a new connection
            }
            inner.state.lock().unwrap().stats.records_sent += 1;
            history.push_back(pos);
            if history.len() > 64 {
                history.pop_front();
            }
            pos = end;
        }
    }
}
