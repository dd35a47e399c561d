//! The relay's status and its rendering as `INFO` in Pika's field layout, so that tools that
//! read a Pika's `info replication` read the relay too.

use crate::downstream::registry::SlaveStatus;
use crate::formats::BinlogPos;
use std::fmt::Write as _;

/// The upstream link as shown to operators.
#[derive(Debug, Clone, Default)]
pub struct UpstreamView {
    /// `host:port` of the old master.
    pub master: String,
    /// State machine state (`connecting`, `streaming`, `full sync`, `backoff`...).
    pub state: String,
    /// Session id from the last `trysync` reply.
    pub sid: Option<String>,
    /// The last upstream position durably in the journal.
    pub position: BinlogPos,
    /// The upstream position after the last entry received (handed to the journal, maybe not
    /// synced yet): `position` trails it by the time a sync takes.
    pub received: BinlogPos,
    /// Whether entries are flowing.
    pub link_up: bool,
}

/// Everything `INFO`, metrics and the embedding API report.
#[derive(Debug, Clone, Default)]
pub struct RelayStatus {
    /// Upstream link.
    pub upstream: UpstreamView,
    /// Synced end of the journal.
    pub journal_end: BinlogPos,
    /// Logic id the next journal item will get (= items written).
    pub journal_next_logic_id: u64,
    /// `binlog-file-size` (for lag in bytes across files).
    pub file_size: u64,
    /// Current dump epoch and its journal start.
    pub epoch: u64,
    /// J_e of the epoch.
    pub epoch_start: BinlogPos,
    /// Downstream slaves.
    pub slaves: Vec<SlaveStatus>,
    /// Entries received from the old master.
    pub entries_in: u64,
    /// Bytes of binlog received from the old master.
    pub bytes_in: u64,
    /// Bytes of the journal on disk.
    pub journal_bytes: u64,
    /// How long the journal's commits (`fdatasync`) took.
    pub journal_sync: crate::journal::sync_stats::SyncStatsView,
    /// Bytes received by the running, or else the last, upstream full sync.
    pub fullsync_bytes: u64,
    /// Old commands dropped by translation (policy `skip`, or malformed).
    pub translate_skipped: u64,
    /// Non-replayable old commands forwarded under policy `pass`.
    pub translate_passed_unsafe: u64,
    /// Redis-protocol targets.
    pub targets: Vec<crate::downstream::resp::TargetStatus>,
    /// nemo → blackwidow conversion of a received 2.3 dump: keys and bytes of the running (or
    /// last) one, whether one runs, and how many failed.
    pub convert: ConvertView,
}

/// Journal items a target has not applied yet.
pub fn target_lag_entries(t: &crate::downstream::resp::TargetStatus, s: &RelayStatus) -> u64 {
    if t.applied >= s.journal_end {
        0
    } else {
        s.journal_next_logic_id.saturating_sub(t.applied_next_id)
    }
}

/// Progress of dump conversions (2.3 masters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertView {
    /// Keys converted by the running (or last) conversion.
    pub keys: u64,
    /// Bytes of keys and values converted by it.
    pub bytes: u64,
    /// Whether a conversion runs now.
    pub running: bool,
    /// Conversions finished.
    pub done: u64,
    /// Conversions failed.
    pub failed: u64,
}

/// Bytes between two positions, counting whole files of `file_size` in between (Pika's lag).
pub fn lag_bytes(from: BinlogPos, to: BinlogPos, file_size: u64) -> u64 {
    if to <= from {
        return 0;
    }
    let files = u64::from(to.filenum - from.filenum);
    (files * file_size + to.offset).saturating_sub(from.offset)
}

/// Renders `INFO [section]`. Sections: `server`, `replication`, `translate`, `targets`, `log`;
/// `all`/none = every one.
pub fn render(section: &str, s: &RelayStatus) -> String {
    let section = section.to_ascii_lowercase();
    let all = section.is_empty() || section == "all" || section == "default";
    let mut out = String::new();
    if all || section == "server" {
        out.push_str("# Server\r\n");
        let _ = write!(
            out,
            "pika_relay_version:{}\r\nrole:relay\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
    }
    if all || section == "replication" {
        replication(&mut out, s);
    }
    if all || section == "translate" {
        let _ = write!(
            out,
            "# Translate\r\ntranslate_skipped:{}\r\ntranslate_passed_unsafe:{}\r\n\r\n",
            s.translate_skipped, s.translate_passed_unsafe
        );
    }
    if all || section == "targets" {
        targets(&mut out, s);
    }
    if all || section == "log" {
        out.push_str("# Log\r\n");
        let _ = write!(
            out,
            "binlog_file_size:{}\r\ndb0:binlog_offset={} {},safety_purge=none\r\nepoch:{}\r\nepoch_start={} {}\r\n",
            s.file_size,
            s.journal_end.filenum,
            s.journal_end.offset,
            s.epoch,
            s.epoch_start.filenum,
            s.epoch_start.offset
        );
        journal_syncs(&mut out, &s.journal_sync);
        let c = &s.convert;
        let _ = write!(
            out,
            "dump_convert:state={},keys={},bytes={},done={},failed={}\r\n\r\n",
            if c.running { "running" } else { "idle" },
            c.keys,
            c.bytes,
            c.done,
            c.failed
        );
    }
    out
}

/// The journal's commit timings: one summary line, and the histogram (bucket `i` = commits
/// shorter than `2^i` µs) for tools that want quantiles over an interval.
fn journal_syncs(out: &mut String, j: &crate::journal::sync_stats::SyncStatsView) {
    use crate::journal::sync_stats::SyncStatsView;
    let ms = |us: u64| us as f64 / 1000.0;
    let avg = |us: u64| {
        if j.commits == 0 {
            0.0
        } else {
            ms(us) / j.commits as f64
        }
    };
    let _ = write!(
        out,
        "journal_syncs:commits={},avg_data_ms={:.3},avg_meta_ms={:.3},p99_ms_below={:.3},max_ms={:.3}\r\njournal_sync_hist_us:{}\r\n",
        j.commits,
        avg(j.data_us),
        avg(j.meta_us),
        ms(SyncStatsView::quantile_us(&j.hist, 0.99)),
        ms(j.max_us),
        j.hist.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
    );
}

fn replication(out: &mut String, s: &RelayStatus) {
    let u = &s.upstream;
    let (host, port) = u
        .master
        .rsplit_once(':')
        .unwrap_or((u.master.as_str(), "0"));
    out.push_str("# Replication(Master && SLAVE)\r\nrole:master&&slave\r\n");
    let _ = write!(
        out,
        "master_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nslave_read_only:1\r\n",
        if u.link_up { "up" } else { "down" }
    );
    let _ = write!(
        out,
        "upstream_state:{}\r\nupstream_sid:{}\r\nupstream_binlog_offset={} {}\r\nupstream_received_offset={} {}\r\n",
        u.state,
        u.sid.as_deref().unwrap_or("-"),
        u.position.filenum,
        u.position.offset,
        u.received.filenum,
        u.received.offset
    );
    let _ = write!(out, "connected_slaves:{}\r\n", s.slaves.len());
    for (i, sl) in s.slaves.iter().enumerate() {
        let lag = lag_bytes(sl.acked, s.journal_end, s.file_size);
        let lag_entries = if sl.state.label() == "BinlogSync" {
            s.journal_next_logic_id
                .saturating_sub(sl.acked_next_logic_id)
                .to_string()
        } else {
            "not syncing".to_string()
        };
        let _ = write!(
            out,
            "slave{i}:ip={},port={},state={},session={},acked_offset={} {},sent_offset={} {},lag=(db0:{lag}),lag_entries={lag_entries},protocol={}\r\n",
            sl.ip,
            sl.port,
            sl.state.label(),
            sl.session_id,
            sl.acked.filenum,
            sl.acked.offset,
            sl.sent.filenum,
            sl.sent.offset,
            if sl.v33 { "3.3+" } else { "3.1/3.2" }
        );
    }
    let _ = write!(
        out,
        "db0 binlog_offset={} {},safety_purge=none\r\n\r\n",
        s.journal_end.filenum, s.journal_end.offset
    );
}

fn targets(out: &mut String, s: &RelayStatus) {
    out.push_str("# Targets\r\n");
    let _ = write!(out, "targets:{}\r\n", s.targets.len());
    for (i, t) in s.targets.iter().enumerate() {
        let _ = write!(
            out,
            "target{i}:name={},url={},state={},conns={},transactions={},epoch={},applied_offset={} {},lag=(db0:{}),lag_entries={},applied_entries={},rate={:.1},full_syncs={},fullsync_keys={},fullsync_records={},skipped={},reconnects={}\r\n",
            t.name,
            t.url,
            t.state.label(),
            t.conns,
            u8::from(t.transactions),
            t.epoch,
            t.applied.filenum,
            t.applied.offset,
            lag_bytes(t.applied, s.journal_end, s.file_size),
            target_lag_entries(t, s),
            t.applied_entries,
            t.rate,
            t.full_syncs,
            t.fullsync_keys,
            t.fullsync_records,
            t.skipped,
            t.reconnects
        );
        if let Some(e) = &t.last_error {
            let e: String = e
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                .collect();
            let _ = write!(out, "target{i}_last_error:{e}\r\n");
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_across_files() {
        let fs = 1000;
        assert_eq!(
            lag_bytes(BinlogPos::new(0, 900), BinlogPos::new(1, 50), fs),
            150
        );
        assert_eq!(
            lag_bytes(BinlogPos::new(1, 50), BinlogPos::new(1, 50), fs),
            0
        );
        assert_eq!(
            lag_bytes(BinlogPos::new(2, 0), BinlogPos::new(1, 50), fs),
            0
        );
    }

    #[test]
    fn log_section_shows_the_journal_commit_timings() {
        let st = crate::journal::sync_stats::SyncStats::default();
        for _ in 0..99 {
            st.record(
                std::time::Duration::from_micros(700),
                std::time::Duration::from_micros(200),
            );
        }
        st.record(
            std::time::Duration::from_millis(40),
            std::time::Duration::ZERO,
        );
        let s = RelayStatus {
            journal_sync: st.view(),
            ..RelayStatus::default()
        };
        let text = render("log", &s);
        assert!(
            text.contains("journal_syncs:commits=100,avg_data_ms=1.093,avg_meta_ms=0.198,p99_ms_below=1.024,max_ms=40.000\r\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "journal_sync_hist_us:0,0,0,0,0,0,0,0,0,0,99,0,0,0,0,0,1,0,0,0,0,0,0\r\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn replication_section_layout() {
        let s = RelayStatus {
            upstream: UpstreamView {
                master: "10.0.0.5:9221".into(),
                state: "streaming".into(),
                sid: Some("3".into()),
                position: BinlogPos::new(0, 156700),
                received: BinlogPos::new(0, 160000),
                link_up: true,
            },
            journal_end: BinlogPos::new(0, 227652),
            file_size: 104857600,
            ..Default::default()
        };
        let text = render("replication", &s);
        assert!(text.starts_with("# Replication(Master && SLAVE)\r\nrole:master&&slave\r\n"));
        assert!(
            text.contains("master_host:10.0.0.5\r\nmaster_port:9221\r\nmaster_link_status:up\r\n")
        );
        assert!(text.contains("upstream_binlog_offset=0 156700\r\n"));
        assert!(text.contains("upstream_received_offset=0 160000\r\n"));
        assert!(text.contains("connected_slaves:0\r\n"));
        assert!(text.contains("db0 binlog_offset=0 227652,safety_purge=none\r\n"));
        assert!(!text.contains("# Log"));
    }
}
