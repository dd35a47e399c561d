//! The relay's settings: one TOML file (see `pika-relay.example.toml`, which documents every
//! key) whose values command-line flags override. Defaults are Pika's where Pika has one.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// Every setting of a relay.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening ports and addresses.
    pub relay: RelaySection,
    /// The old master.
    pub upstream: UpstreamSection,
    /// New slaves.
    pub downstream: DownstreamSection,
    /// The durable journal.
    pub journal: JournalSection,
    /// Embedded rsync.
    pub rsync: RsyncSection,
    /// Prometheus endpoint.
    pub metrics: MetricsSection,
    /// What to do with old commands a 3.x slave cannot replay faithfully.
    pub translate: crate::translate::TranslateConfig,
    /// Redis-protocol targets (`[[targets]]`), replayed by `downstream::resp`.
    pub targets: Vec<TargetSection>,
}

/// `[[targets]]`: one Redis-protocol target (Redis, Codis, any Pika as a plain client).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TargetSection {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Name for marker keys, the state file, INFO and metrics; empty = `host:port/db`.
    pub name: String,
    /// Parallel connections (`--target-threads`); keys are spread by hash.
    pub threads: usize,
    /// `stop` (default) or `skip` when the target refuses a command.
    pub on_error: crate::downstream::resp::OnError,
    /// Most commands per batch (one MULTI/EXEC).
    pub batch_cmds: usize,
    /// Most batches on the wire at once per connection (each with its own marker).
    pub in_flight: usize,
    /// Send runs of plain `set key value` as one `MSET` (one command for the target to run;
    /// a batch of nothing else carries its marker inside that `MSET`, atomic without `MULTI`).
    /// Turn off for a target or proxy without `MSET` across keys (Redis Cluster).
    pub coalesce_sets: bool,
}

impl Default for TargetSection {
    fn default() -> Self {
        TargetSection {
            url: String::new(),
            name: String::new(),
            threads: 4,
            on_error: crate::downstream::resp::OnError::Stop,
            batch_cmds: 1000,
            in_flight: 1,
            coalesce_sets: true,
        }
    }
}

impl TargetSection {
    /// The sink settings, with the state file under `data_dir`.
    pub fn sink_config(
        &self,
        data_dir: &std::path::Path,
    ) -> Result<crate::downstream::resp::SinkConfig, ConfigError> {
        let url = crate::downstream::resp::TargetUrl::parse(&self.url).map_err(ConfigError)?;
        let mut c = crate::downstream::resp::SinkConfig::new(url, self.threads);
        if !self.name.is_empty() {
            c.name = self.name.clone();
        }
        c.on_error = self.on_error;
        c.batch_cmds = self.batch_cmds.max(1);
        c.in_flight = self.in_flight.max(1);
        c.coalesce_sets = self.coalesce_sets;
        c.state_path = Some(crate::downstream::resp::marker::state_path(
            data_dir, &c.name,
        ));
        Ok(c)
    }
}

/// `[relay]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    /// Base port R; the relay also listens on R+1000, R+2000 and R+3000.
    pub port: u16,
    /// Address the listeners bind to.
    pub bind: IpAddr,
    /// The ip the old master and the new slaves use to reach the relay (sent in `trysync`,
    /// written to DBSync `info` files; new slaves must `slaveof` exactly this ip).
    pub advertise_ip: String,
    /// Journal, dumps and state.
    pub data_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace` (or a tracing filter).
    pub log_level: String,
}

/// What to do when the old master wants a full sync.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FullSyncPolicy {
    /// Receive the dump on R+3000 and continue.
    Allow,
    /// Stop with a message (like `pika_port -e`).
    Refuse,
}

/// Which old protocol the master speaks.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum OldVersion {
    /// 2.3.x: raw RESP arrays on R+1000.
    #[serde(rename = "2.3")]
    V23,
    /// 3.0.x: framed items on R+1000.
    #[serde(rename = "3.0")]
    V30,
    /// Detect from the first bytes the master pushes.
    #[serde(rename = "auto")]
    Auto,
}

/// `[upstream]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSection {
    /// `host:port` of the old master.
    pub master: String,
    /// The master's `requirepass` (sent as `auth`); empty = none.
    pub masterauth: String,
    /// 2.3, 3.0 or auto.
    pub old_version: OldVersion,
    /// Start with a full sync (`slaveof ... force`: trysync 4294967295 0).
    pub force_full_sync: bool,
    /// allow or refuse.
    pub full_sync: FullSyncPolicy,
    /// How long to wait for the master's dump to arrive.
    pub full_sync_timeout_secs: u64,
    /// The master's `binlog-file-size` (needed to follow its positions).
    pub master_binlog_file_size: u64,
    /// Most connections to the binlog port R+1000 waiting to authenticate at once.
    pub binlog_max_pending_conns: usize,
    /// Seconds a connection to R+1000 may take to send `auth <sid>`.
    pub binlog_auth_timeout_secs: u64,
    /// Most bytes a connection to R+1000 may send before it authenticated.
    pub binlog_max_pre_auth_bytes: usize,
}

/// `[downstream]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamSection {
    /// Password new slaves must send as `masterauth`; empty = none.
    pub requirepass: String,
    /// `databases` of the new slaves: must be 1 (the old keyspace flows into db0; there is no
    /// source for other databases, so more are refused at start).
    pub databases: u32,
    /// Items in flight per slave (Pika's `sync-window-size`).
    pub window_items: usize,
    /// Keepalive interval in milliseconds.
    pub keepalive_ms: u64,
    /// Drop a slave that sent nothing for this long (seconds).
    pub slave_timeout_secs: u64,
}

/// Durability of appends.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync after every entry.
    Always,
    /// fsync every `sync_every_entries` entries or `sync_every_ms`, whichever first.
    Group,
}

/// `[journal]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    /// Must equal the new slaves' `binlog-file-size`.
    pub binlog_file_size: u64,
    /// always or group.
    pub sync: SyncMode,
    /// Group commit: entries per fsync at most.
    pub sync_every_entries: usize,
    /// Group commit: milliseconds between fsyncs at most.
    pub sync_every_ms: u64,
    /// Keep at least this many files.
    pub retention_files: usize,
    /// Purge files older than this (hours) once over `retention_files`, unless a slave needs them.
    pub retention_hours: u64,
    /// Hard cap on journal bytes (0 = none); over it, files are purged even if a slave needs them.
    pub disk_cap_bytes: u64,
    /// Zero-fill the live journal file ahead of the data in chunks of this many bytes (0 = off),
    /// as Pika 3.1/3.2 do: commits then `fdatasync` without a filesystem journal commit.
    pub preallocate_bytes: u64,
}

/// `[rsync]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RsyncSection {
    /// Most files one full sync may create.
    pub max_files: u64,
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Largest dump.
    pub max_total_bytes: u64,
    /// Bandwidth limit of pushes to new slaves, KiB/s (0 = none).
    pub bwlimit_kbps: u64,
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `ip:port` of the Prometheus endpoint; empty = off.
    pub listen: String,
}

impl Default for RelaySection {
    fn default() -> Self {
        RelaySection {
            port: 9301,
            bind: IpAddr::from([0, 0, 0, 0]),
            advertise_ip: String::new(),
            data_dir: PathBuf::from("./pika-relay-data"),
            log_level: "info".into(),
        }
    }
}

impl Default for UpstreamSection {
    fn default() -> Self {
        UpstreamSection {
            master: String::new(),
            masterauth: String::new(),
            old_version: OldVersion::Auto,
            force_full_sync: false,
            full_sync: FullSyncPolicy::Allow,
            full_sync_timeout_secs: 3600,
            master_binlog_file_size: 104_857_600,
            binlog_max_pending_conns: 16,
            binlog_auth_timeout_secs: 10,
            binlog_max_pre_auth_bytes: 1024,
        }
    }
}

impl Default for DownstreamSection {
    fn default() -> Self {
        DownstreamSection {
            requirepass: String::new(),
            databases: 1,
            window_items: 9000,
            keepalive_ms: 2000,
            slave_timeout_secs: 20,
        }
    }
}

impl Default for JournalSection {
    fn default() -> Self {
        JournalSection {
            binlog_file_size: 104_857_600,
            sync: SyncMode::Group,
            sync_every_entries: 1000,
            sync_every_ms: 10,
            retention_files: 10,
            retention_hours: 168,
            disk_cap_bytes: 0,
            preallocate_bytes: crate::journal::DEFAULT_PREALLOCATE,
        }
    }
}

impl Default for RsyncSection {
    fn default() -> Self {
        RsyncSection {
            max_files: 1_000_000,
            max_file_bytes: 1 << 40,
            max_total_bytes: 4 << 40,
            bwlimit_kbps: 0,
        }
    }
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9401".into(),
        }
    }
}

/// A setting that makes no sense; the text says which key and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("config: {e}")))
    }

    /// Reads and parses a file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("config {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Checks the values; every message names the key and what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = |s: String| Err(ConfigError(s));
        if self.upstream.master.is_empty() {
            return e(
                "upstream.master is not set: pass --master HOST:PORT (the old Pika master)".into(),
            );
        }
        if !self.upstream.master.contains(':') {
            return e(format!(
                "upstream.master {:?} must be HOST:PORT",
                self.upstream.master
            ));
        }
        if self.relay.port == 0 || self.relay.port > 65535 - 3000 {
            return e(format!(
                "relay.port {} leaves no room for R+3000: pick a port below 62535",
                self.relay.port
            ));
        }
        for (k, v) in [
            ("journal.binlog_file_size", self.journal.binlog_file_size),
            (
                "upstream.master_binlog_file_size",
                self.upstream.master_binlog_file_size,
            ),
        ] {
            if !(1024..=1 << 30).contains(&v) {
                return e(format!(
                    "{k} = {v}: Pika accepts 1024 .. 1073741824 (and must match the peer's)"
                ));
            }
        }
        let u = &self.upstream;
        if !(2..=1024).contains(&u.binlog_max_pending_conns) {
            return e(format!(
                "upstream.binlog_max_pending_conns = {}: use 2..1024 (the master opens one \
                 connection, a second while it reconnects)",
                u.binlog_max_pending_conns
            ));
        }
        if !(1..=3600).contains(&u.binlog_auth_timeout_secs) {
            return e(format!(
                "upstream.binlog_auth_timeout_secs = {}: use 1..3600",
                u.binlog_auth_timeout_secs
            ));
        }
        if !(64..=1 << 20).contains(&u.binlog_max_pre_auth_bytes) {
            return e(format!(
                "upstream.binlog_max_pre_auth_bytes = {}: use 64..1048576 (`auth <sid>` is \
                 about 30 bytes)",
                u.binlog_max_pre_auth_bytes
            ));
        }
        if self.downstream.databases != 1 {
            return e(format!(
                "downstream.databases = {}: the relay carries one old keyspace into db0 and has no \
                 source for other databases (it would serve db0's data to each of them), so only 1 \
                 is accepted: set `databases 1` on the new slaves",
                self.downstream.databases
            ));
        }
        if self.downstream.window_items == 0 || self.downstream.window_items > 90_000 {
            return e(format!(
                "downstream.window_items = {}: Pika allows 1..90000",
                self.downstream.window_items
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            crate::downstream::resp::TargetUrl::parse(&t.url)
                .map_err(|e| ConfigError(format!("targets[{i}].url: {e}")))?;
            if !(1..=64).contains(&t.threads) {
                return e(format!(
                    "targets[{i}].threads = {}: use 1..64 (--target-threads)",
                    t.threads
                ));
            }
        }
        if self.journal.sync == SyncMode::Group && self.journal.sync_every_entries == 0 {
            return e("journal.sync_every_entries must be at least 1".into());
        }
        Ok(())
    }

    /// The warning to log at start when the relay is open to anyone: no `downstream.requirepass`
    /// while the listeners are not on loopback. Like a Pika master without `requirepass`, anyone
    /// reaching R+2000 can then attach as a slave and make the relay push a full dump to an
    /// address of their choosing, and read INFO on R. Pika's behaviour is kept (no refusal).
    pub fn exposure_warning(&self) -> Option<String> {
        if !self.downstream.requirepass.is_empty() || self.relay.bind.is_loopback() {
            return None;
        }
        Some(format!(
            "SECURITY: downstream.requirepass is empty and the listeners bind {}: anyone who \
             reaches port {} can attach as a new slave and make the relay push its full dump to \
             any address it names. Set downstream.requirepass (--requirepass, the new slaves' \
             masterauth) and bind to a private address (relay.bind / --bind), or firewall ports \
             {}..{}",
            self.relay.bind,
            u32::from(self.relay.port) + 2000,
            self.relay.port,
            u32::from(self.relay.port) + 3000
        ))
    }

    /// The ip written into `trysync` and DBSync `info` files.
    pub fn advertise_ip(&self) -> String {
        if !self.relay.advertise_ip.is_empty() {
            return self.relay.advertise_ip.clone();
        }
        if self.relay.bind.is_unspecified() {
            "127.0.0.1".into()
        } else {
            self.relay.bind.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_to_the_defaults_it_documents() {
        let text = include_str!("../pika-relay.example.toml");
        let c = Config::from_toml(text).unwrap();
        let mut d = Config::default();
        d.upstream.master = "10.0.0.5:9221".into();
        d.relay.advertise_ip = "10.0.0.9".into();
        d.relay.data_dir = "/var/lib/pika-relay".into();
        assert_eq!(c, d);
        c.validate().unwrap();
    }

    #[test]
    fn an_open_relay_is_warned_about() {
        let mut c = Config::default();
        c.relay.port = 9301;
        let w = c.exposure_warning().expect("0.0.0.0 without requirepass");
        assert!(
            w.contains("downstream.requirepass is empty")
                && w.contains("0.0.0.0")
                && w.contains("11301"),
            "{w}"
        );
        c.relay.bind = "10.0.0.9".parse().unwrap();
        assert!(c.exposure_warning().is_some());
        c.downstream.requirepass = "sekret".into();
        assert_eq!(c.exposure_warning(), None);
        c.downstream.requirepass.clear();
        c.relay.bind = "127.0.0.1".parse().unwrap();
        assert_eq!(c.exposure_warning(), None);
        c.relay.bind = "::1".parse().unwrap();
        assert_eq!(c.exposure_warning(), None);
    }

    #[test]
    fn binlog_port_limits_are_checked() {
        let mut c = Config::default();
        c.upstream.master = "m:1".into();
        c.upstream.binlog_max_pending_conns = 1;
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("binlog_max_pending_conns = 1"));
        c.upstream.binlog_max_pending_conns = 16;
        c.upstream.binlog_auth_timeout_secs = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("binlog_auth_timeout_secs = 0"));
        c.upstream.binlog_auth_timeout_secs = 10;
        c.upstream.binlog_max_pre_auth_bytes = 10;
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("binlog_max_pre_auth_bytes = 10"));
        c.upstream.binlog_max_pre_auth_bytes = 1024;
        c.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::from_toml("[relay]\nprot = 1\n").unwrap_err().0;
        assert!(e.contains("prot"), "{e}");
        let mut c = Config::default();
        assert!(c.validate().unwrap_err().0.contains("--master"));
        c.upstream.master = "m:1".into();
        c.downstream.databases = 2;
        let e = c.validate().unwrap_err().0;
        assert!(
            e.contains("downstream.databases = 2") && e.contains("only 1"),
            "{e}"
        );
        c.downstream.databases = 1;
        c.journal.binlog_file_size = 10;
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("journal.binlog_file_size"));
    }

    #[test]
    fn targets_from_toml() {
        let c = Config::from_toml(
            "[upstream]\nmaster = \"m:1\"\n[[targets]]\nurl = \"redis://:pw@h:6379/2\"\nthreads = 2\non_error = \"skip\"\n[[targets]]\nurl = \"redis://h2:1\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.targets.len(), 2);
        let s = c.targets[0]
            .sink_config(std::path::Path::new("/d"))
            .unwrap();
        assert_eq!((s.name.as_str(), s.conns, s.url.db), ("h:6379/2", 2, 2));
        assert_eq!(s.on_error, crate::downstream::resp::OnError::Skip);
        assert_eq!(c.targets[1].threads, 4);
        let mut bad = c.clone();
        bad.targets[1].url = "h2:1".into();
        assert!(bad.validate().unwrap_err().0.contains("targets[1].url"));
    }
}
