//! Configuration of the upstream session: who the master is, how the relay presents itself, and
//! every timer (all configurable so tests run in milliseconds; defaults are Pika's own).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which binlog-channel format the master speaks on our port+1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum OldVersion {
    /// 2.3.x: raw RESP arrays with four trailing fields (`__PIKA_X#$SKGI`, server id,
    /// binlog_info, hub flag); dump directories `kv hash list set zset`.
    V23,
    /// 3.0.x: 6-byte transfer header + 34-byte item + RESP; dump directories
    /// `strings hashes lists sets zsets`.
    V30,
    /// Decide per binlog connection from its first byte (`*` = 2.3, `\x01`/`\x02` = 3.0).
    Auto,
}

impl OldVersion {
    /// The dump type directories a full sync must contain.
    pub fn dump_dirs(self) -> &'static [&'static [&'static str]] {
        const V30: &[&str] = &["strings", "hashes", "lists", "sets", "zsets"];
        const V23: &[&str] = &["kv", "hash", "list", "set", "zset"];
        match self {
            OldVersion::V30 => &[V30],
            // The relay converts a 2.3 (nemo) dump to the 3.x layout as it arrives.
            OldVersion::V23 => &[V23, V30],
            OldVersion::Auto => &[V30, V23],
        }
    }
}

/// Timers of the session. Defaults follow Pika (spec Appendix C).
#[derive(Debug, Clone)]
pub struct Timings {
    /// TCP connect timeout towards the master (trysync and heartbeat), Pika: 1.5 s.
    pub connect_timeout: Duration,
    /// Read/write timeout of the short trysync exchange, Pika: 30 s.
    pub trysync_io_timeout: Duration,
    /// First back-off after a failed attempt.
    pub backoff_initial: Duration,
    /// Back-off cap.
    pub backoff_max: Duration,
    /// Wait after `-ERR AlreadyExist`: the master forgets a slave 20 s after its heartbeat went
    /// silent (30 s for a slave that never sent `spci`), so 21 s by default.
    pub already_exist_wait: Duration,
    /// Pause after a lost link before the next trysync (Pika: 2 s).
    pub relink_delay: Duration,
    /// Heartbeat period (Pika: 1 s).
    pub ping_interval: Duration,
    /// Per-request heartbeat I/O timeout (Pika: 1 s).
    pub ping_io_timeout: Duration,
    /// The heartbeat is dead after this long without a good reply (Pika: 30 s).
    pub ping_dead_after: Duration,
    /// After `:sid`, how long to wait for the master's binlog connection (it connects 2 s after the
    /// reply and retries every ~3 s) before concluding the sender is gone and re-trysyncing.
    pub binlog_connect_grace: Duration,
    /// After a binlog connection ends, how long to wait for the master's sender to reconnect
    /// before re-trysyncing.
    pub binlog_reconnect_grace: Duration,
    /// How long to wait for a full-sync dump after `wait` (Pika waits forever; pika_port only
    /// warns after 1800 s). On expiry: log and trysync again.
    pub full_sync_timeout: Duration,
    /// 2.3.x: how long a group of arrays with the same binlog_info is held, with nothing more to
    /// read, before it is taken as a complete record (an MSET record arrives in one send()).
    pub raw_group_linger: Duration,
    /// How long a connection to the binlog port may stay without sending `auth <sid>` (Pika's
    /// sender sends it right after connecting); then it is closed.
    pub binlog_auth_timeout: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            connect_timeout: Duration::from_millis(1500),
            trysync_io_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            already_exist_wait: Duration::from_secs(21),
            relink_delay: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            ping_io_timeout: Duration::from_secs(1),
            ping_dead_after: Duration::from_secs(30),
            binlog_connect_grace: Duration::from_secs(15),
            binlog_reconnect_grace: Duration::from_secs(10),
            full_sync_timeout: Duration::from_secs(3600),
            raw_group_linger: Duration::from_millis(50),
            binlog_auth_timeout: Duration::from_secs(10),
        }
    }
}

impl Timings {
    /// Millisecond timers for tests.
    pub fn fast() -> Self {
        Timings {
            connect_timeout: Duration::from_millis(500),
            trysync_io_timeout: Duration::from_secs(2),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            already_exist_wait: Duration::from_millis(300),
            relink_delay: Duration::from_millis(50),
            ping_interval: Duration::from_millis(50),
            ping_io_timeout: Duration::from_millis(500),
            ping_dead_after: Duration::from_secs(2),
            binlog_connect_grace: Duration::from_secs(3),
            binlog_reconnect_grace: Duration::from_secs(2),
            full_sync_timeout: Duration::from_secs(10),
            raw_group_linger: Duration::from_millis(20),
            binlog_auth_timeout: Duration::from_secs(2),
        }
    }
}

/// Everything the upstream session needs to pose as a slave of one old master.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The master's client port address (`trysync` goes here; heartbeat to port+2000).
    pub master: SocketAddr,
    /// `auth` sent before `trysync` when set; must equal the master's `requirepass`. Leave unset
    /// when the master has no password (a needless `auth` is refused by the master).
    pub masterauth: Option<String>,
    /// IP advertised in `trysync`: the master connects back to it and only accepts heartbeats
    /// from it. Must be the relay's address as the master sees it.
    pub advertise_ip: String,
    /// The relay's base port R advertised in `trysync`; the master pushes binlog to R+1000 and
    /// full-sync dumps to R+3000.
    pub relay_port: u16,
    /// Where the binlog receiver listens; `None` = `0.0.0.0:R+1000`.
    pub binlog_listen: Option<SocketAddr>,
    /// Binlog-channel format.
    pub old_version: OldVersion,
    /// 2.3.3+ and all 3.0 masters send `auth <sid>` first on the binlog channel; 2.3.0–2.3.2 do
    /// not. When false a connection may start with binlog directly (it is still accepted only
    /// while a session is streaming).
    pub binlog_auth: bool,
    /// The master's `binlog-file-size` (default 100 MiB); needed to follow its roll-overs.
    pub binlog_file_size: u64,
    /// First trysync asks for a full sync (`4294967295 0`), as `slaveof ... force`; cleared
    /// after a full sync completes.
    pub force_full_sync: bool,
    /// Never full-sync: when the master answers `wait`, stop with an error (pika_port `-e`).
    pub refuse_full_sync: bool,
    /// On `-ERR InvalidOffset`, switch to a forced full sync instead of retrying as is.
    pub full_sync_on_invalid_offset: bool,
    /// Check every record's header position against the expected next position (3.0.5+
    /// originating masters, 2.3 with binlog_info). Off for a master that relays another's
    /// binlog (its headers carry the other master's positions).
    pub trust_item_positions: bool,
    /// Relay data directory; full-sync dumps are promoted to `<data_dir>/dumps/epoch-<n>/`.
    pub data_dir: PathBuf,
    /// Largest accepted binlog frame body (Pika's slave: 512 MiB).
    pub max_frame: usize,
    /// Most connections to the binlog port waiting to authenticate at once; more are closed on
    /// arrival (Pika's master opens one, plus one while it reconnects).
    pub max_pending_binlog_conns: usize,
    /// Most bytes buffered for a connection's first message when `binlog_auth` is set (the
    /// `auth <sid>` message is about 30 bytes); a larger announced frame is refused at once.
    pub max_pre_auth_bytes: usize,
    /// Capacity of the event channel towards the journal (backpressure beyond it).
    pub channel_capacity: usize,
    /// Timers.
    pub timings: Timings,
}

impl UpstreamConfig {
    /// A config with Pika's defaults for the given master and relay identity.
    pub fn new(
        master: SocketAddr,
        advertise_ip: impl Into<String>,
        relay_port: u16,
        data_dir: PathBuf,
    ) -> Self {
        UpstreamConfig {
            master,
            masterauth: None,
            advertise_ip: advertise_ip.into(),
            relay_port,
            binlog_listen: None,
            old_version: OldVersion::Auto,
            binlog_auth: true,
            binlog_file_size: 104_857_600,
            force_full_sync: false,
            refuse_full_sync: false,
            full_sync_on_invalid_offset: false,
            trust_item_positions: true,
            data_dir,
            max_frame: crate::formats::old_frame::DEFAULT_MAX_BODY,
            max_pending_binlog_conns: 16,
            max_pre_auth_bytes: 1024,
            channel_capacity: 1024,
            timings: Timings::default(),
        }
    }

    /// The binlog receiver's listen address.
    pub fn binlog_listen_addr(&self) -> SocketAddr {
        self.binlog_listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.relay_port.wrapping_add(1000))))
    }

    /// The master's heartbeat address (port + 2000).
    pub fn heartbeat_addr(&self) -> SocketAddr {
        let mut a = self.master;
        a.set_port(a.port().wrapping_add(2000));
        a
    }

    /// The rsync module name Pika's master pushes to: `document_<master ip>:<master port>`.
    pub fn rsync_module(&self) -> String {
        format!("document_{}:{}", self.master.ip(), self.master.port())
    }
}
