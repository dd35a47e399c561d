//! The Prometheus endpoint: `GET /metrics` answers the text exposition format built from the
//! same [`RelayStatus`] as `INFO`. A deliberately small HTTP/1.1 responder (one request per
//! connection), so the relay needs no HTTP stack.

use super::info::{lag_bytes, RelayStatus};
use super::StatusFn;
use std::fmt::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Renders the metrics.
pub fn render(s: &RelayStatus) -> String {
    let mut o = String::new();
    let mut g = |name: &str, help: &str, kind: &str, samples: &[(String, f64)]| {
        let _ = writeln!(
            o,
            "# HELP pika_relay_{name} {help}\n# TYPE pika_relay_{name} {kind}"
        );
        for (labels, v) in samples {
            let _ = writeln!(o, "pika_relay_{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v as f64)];
    let state = format!("{{state=\"{}\"}}", s.upstream.state);
    g(
        "upstream_link_up",
        "1 when the old master's binlog is flowing",
        "gauge",
        &[(state, f64::from(u8::from(s.upstream.link_up)))],
    );
    g(
        "upstream_filenum",
        "file number of the last upstream position in the journal",
        "gauge",
        &one(u64::from(s.upstream.position.filenum)),
    );
    g(
        "upstream_offset",
        "offset of the last upstream position in the journal",
        "gauge",
        &one(s.upstream.position.offset),
    );
    g(
        "entries_in_total",
        "entries received from the old master",
        "counter",
        &one(s.entries_in),
    );
    g(
        "bytes_in_total",
        "binlog bytes received from the old master",
        "counter",
        &one(s.bytes_in),
    );
    g(
        "journal_filenum",
        "file number of the journal's synced end",
        "gauge",
        &one(u64::from(s.journal_end.filenum)),
    );
    g(
        "journal_offset",
        "offset of the journal's synced end",
        "gauge",
        &one(s.journal_end.offset),
    );
    g(
        "journal_entries_total",
        "items written to the journal",
        "counter",
        &one(s.journal_next_logic_id),
    );
    g(
        "journal_bytes",
        "bytes of journal files on disk",
        "gauge",
        &one(s.journal_bytes),
    );
    g("epoch", "current dump epoch", "gauge", &one(s.epoch));
    g(
        "fullsync_bytes",
        "bytes received by the running (or last) upstream full sync",
        "gauge",
        &one(s.fullsync_bytes),
    );
    g(
        "translate_skipped_total",
        "old commands dropped by translation (policy skip, or malformed)",
        "counter",
        &one(s.translate_skipped),
    );
    g(
        "translate_passed_unsafe_total",
        "non-replayable old commands forwarded under policy pass",
        "counter",
        &one(s.translate_passed_unsafe),
    );
    g(
        "dump_convert_keys",
        "keys converted by the running (or last) 2.3 dump conversion",
        "gauge",
        &one(s.convert.keys),
    );
    g(
        "dump_convert_bytes",
        "bytes converted by the running (or last) 2.3 dump conversion",
        "gauge",
        &one(s.convert.bytes),
    );
    g(
        "dump_convert_running",
        "1 while a received 2.3 dump is being converted",
        "gauge",
        &one(u64::from(s.convert.running)),
    );
    g(
        "dump_converts_failed_total",
        "2.3 dump conversions that failed",
        "counter",
        &one(s.convert.failed),
    );
    g(
        "slaves",
        "downstream slaves attached",
        "gauge",
        &one(s.slaves.len() as u64),
    );
    let per = |f: &dyn Fn(&crate::downstream::registry::SlaveStatus) -> f64| -> Vec<(String, f64)> {
        s.slaves
            .iter()
            .map(|sl| {
                (
                    format!(
                        "{{slave=\"{}:{}\",state=\"{}\"}}",
                        sl.ip,
                        sl.port,
                        sl.state.label()
                    ),
                    f(sl),
                )
            })
            .collect()
    };
    g(
        "slave_acked_filenum",
        "file number a slave acknowledged",
        "gauge",
        &per(&|sl| f64::from(sl.acked.filenum)),
    );
    g(
        "slave_acked_offset",
        "offset a slave acknowledged",
        "gauge",
        &per(&|sl| sl.acked.offset as f64),
    );
    g(
        "slave_lag_bytes",
        "journal bytes a slave has not acknowledged",
        "gauge",
        &per(&|sl| lag_bytes(sl.acked, s.journal_end, s.file_size) as f64),
    );
    g(
        "slave_lag_entries",
        "journal items a slave has not acknowledged",
        "gauge",
        &per(&|sl| {
            s.journal_next_logic_id
                .saturating_sub(sl.acked_next_logic_id) as f64
        }),
    );
    let tgt = |f: &dyn Fn(&crate::downstream::resp::TargetStatus) -> f64| -> Vec<(String, f64)> {
        s.targets
            .iter()
            .map(|t| {
                (
                    format!("{{target=\"{}\",state=\"{}\"}}", t.name, t.state.label()),
                    f(t),
                )
            })
            .collect()
    };
    g(
        "target_up",
        "1 when a Redis-protocol target is streaming",
        "gauge",
        &tgt(&|t| {
            f64::from(u8::from(
                t.state == crate::downstream::resp::TargetState::Streaming,
            ))
        }),
    );
    g(
        "target_applied_filenum",
        "file number a target applied up to",
        "gauge",
        &tgt(&|t| f64::from(t.applied.filenum)),
    );
    g(
        "target_applied_offset",
        "offset a target applied up to",
        "gauge",
        &tgt(&|t| t.applied.offset as f64),
    );
    g(
        "target_lag_bytes",
        "journal bytes a target has not applied",
        "gauge",
        &tgt(&|t| lag_bytes(t.applied, s.journal_end, s.file_size) as f64),
    );
    g(
        "target_lag_entries",
        "journal items a target has not applied",
        "gauge",
        &tgt(&|t| super::info::target_lag_entries(t, s) as f64),
    );
    g(
        "target_applied_entries_total",
        "journal items a target applied",
        "counter",
        &tgt(&|t| t.applied_entries as f64),
    );
    g(
        "target_rate",
        "journal items per second a target applied (last second)",
        "gauge",
        &tgt(&|t| t.rate),
    );
    g(
        "target_fullsync_records",
        "dump records loaded by a target's running or last full sync",
        "gauge",
        &tgt(&|t| t.fullsync_records as f64),
    );
    g(
        "target_skipped_total",
        "commands a target refused that were skipped",
        "counter",
        &tgt(&|t| t.skipped as f64),
    );
    g(
        "target_reconnects_total",
        "reconnects to a target",
        "counter",
        &tgt(&|t| t.reconnects as f64),
    );
    o
}

/// Serves `/metrics` until cancelled.
pub async fn serve(listener: TcpListener, status: StatusFn, cancel: CancellationToken) {
    info!(addr = ?listener.local_addr().ok(), "metrics: Prometheus endpoint at /metrics");
    loop {
        let (mut sock, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!("metrics: accept failed: {e}");
                    continue;
                }
            },
        };
        let status = status.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            let head_done = loop {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sock.read(&mut buf[n..]),
                )
                .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break true;
                        }
                        if n == buf.len() {
                            break false;
                        }
                    }
                }
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let (code, body) = if !head_done {
                ("400 Bad Request", "incomplete request\n".to_string())
            } else if req.starts_with("GET /metrics ") || req.starts_with("GET / ") {
                ("200 OK", render(&status()))
            } else {
                ("404 Not Found", "only GET /metrics\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = sock.write_all(resp.as_bytes()).await {
                warn!("metrics: {peer}: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::BinlogPos;

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let st: StatusFn = std::sync::Arc::new(|| RelayStatus {
            journal_end: BinlogPos::new(0, 227652),
            entries_in: 49,
            ..Default::default()
        });
        let cancel = CancellationToken::new();
        tokio::spawn(serve(l, st, cancel.clone()));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("pika_relay_journal_offset 227652\n"), "{out}");
        assert!(out.contains("pika_relay_entries_in_total 49\n"), "{out}");
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"POST /x HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 404"), "{out}");
        cancel.cancel();
    }
}
