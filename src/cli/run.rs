//! `pika-relay run`: loads the TOML config (if any), applies the command-line flags over it,
//! runs the pre-flight checks, starts the relay and stops it gracefully on SIGINT/SIGTERM
//! (journal synced, upstream heartbeat closed).

use crate::config::{Config, ConfigError};
use crate::relay::{preflight, Relay};
use std::path::PathBuf;
use std::time::Duration;
use tracing::{info, warn};

/// Flags that override the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// The old Pika master, HOST:PORT.
    #[arg(long)]
    pub master: Option<String>,
    /// The relay's base port R (R+1000, R+2000, R+3000 are used too).
    #[arg(long)]
    pub port: Option<u16>,
    /// Directory for the journal, received dumps and state.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The ip the master and the new slaves reach the relay at (new slaves must `slaveof` it).
    #[arg(long)]
    pub advertise_ip: Option<String>,
    /// Address the listeners bind to (default 0.0.0.0).
    #[arg(long)]
    pub bind: Option<std::net::IpAddr>,
    /// The old master's requirepass.
    #[arg(long)]
    pub masterauth: Option<String>,
    /// Password new slaves must send as masterauth.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// Start with a full sync from the master (like `slaveof ... force`).
    #[arg(long)]
    pub force_full_sync: bool,
    /// Stop with a message instead of taking a full sync (like `pika_port -e`).
    #[arg(long)]
    pub refuse_full_sync: bool,
    /// TOML config file (see pika-relay.example.toml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log level or tracing filter (overrides relay.log_level).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Policy for `spop` (overrides translate.spop): pass, skip or reject.
    #[arg(long, value_enum)]
    pub spop_policy: Option<crate::translate::Policy>,
    /// Policy for `flushdb <type>` (overrides translate.flushdb_type): pass, skip or reject.
    #[arg(long, value_enum)]
    pub flushdb_type_policy: Option<crate::translate::Policy>,
    /// Skip the master checks of the pre-flight (ports and data dir are always checked).
    #[arg(long)]
    pub skip_master_check: bool,
    /// A Redis-protocol target to replay into, `redis://[user:password@]host:port[/db]`
    /// (repeatable; added to the file's `[[targets]]`).
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Parallel connections per target (every target).
    #[arg(long)]
    pub target_threads: Option<usize>,
}

impl RunArgs {
    /// The log filter: `--log-level`, else the config file's `relay.log_level`, else `info`
    /// (logging starts before the rest of the config is checked; a file that does not load is
    /// reported by [`run`]).
    pub fn log_filter(&self) -> String {
        if let Some(l) = &self.log_level {
            return l.clone();
        }
        self.config
            .as_ref()
            .and_then(|p| Config::load(p).ok())
            .map(|c| c.relay.log_level)
            .unwrap_or_else(|| "info".into())
    }

    /// The config file (or defaults) with these flags applied.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(v) = &self.master {
            c.upstream.master = v.clone();
        }
        if let Some(v) = self.port {
            c.relay.port = v;
        }
        if let Some(v) = &self.data_dir {
            c.relay.data_dir = v.clone();
        }
        if let Some(v) = &self.advertise_ip {
            c.relay.advertise_ip = v.clone();
        }
        if let Some(v) = self.bind {
            c.relay.bind = v;
        }
        if let Some(v) = &self.masterauth {
            c.upstream.masterauth = v.clone();
        }
        if let Some(v) = &self.requirepass {
            c.downstream.requirepass = v.clone();
        }
        if self.force_full_sync {
            c.upstream.force_full_sync = true;
        }
        if self.refuse_full_sync {
            c.upstream.full_sync = crate::config::FullSyncPolicy::Refuse;
        }
        if let Some(v) = &self.log_level {
            c.relay.log_level = v.clone();
        }
        if let Some(v) = self.spop_policy {
            c.translate.spop = v;
        }
        if let Some(v) = self.flushdb_type_policy {
            c.translate.flushdb_type = v;
        }
        for url in &self.targets {
            c.targets.push(crate::config::TargetSection {
                url: url.clone(),
                ..Default::default()
            });
        }
        if let Some(n) = self.target_threads {
            for t in &mut c.targets {
                t.threads = n;
            }
        }
        c.validate()?;
        Ok(c)
    }
}

/// Runs the relay until a signal or a fatal error. Returns the process exit message on failure.
pub async fn run(args: RunArgs) -> Result<(), String> {
    let cfg = args.config().map_err(|e| e.to_string())?;
    preflight::check_ports(&cfg).map_err(|e| e.to_string())?;
    preflight::check_data_dir(&cfg.relay.data_dir, 256 << 20).map_err(|e| e.to_string())?;
    if !args.skip_master_check {
        let facts = preflight::check_master(&cfg, Duration::from_secs(2), 100e6)
            .await
            .map_err(|e| e.to_string())?;
        info!(
            "pre-flight: master {} at binlog {:?}, binlog-file-size {:?}, expire-logs-nums {:?}, writing {:.0} bytes/s",
            cfg.upstream.master,
            facts.binlog_offset,
            facts.binlog_file_size,
            facts.expire_logs_nums,
            facts.write_rate.unwrap_or(0.0)
        );
        for w in &facts.warnings {
            warn!("pre-flight: {w}");
        }
    }
    let relay = Relay::start(cfg).await.map_err(|e| e.to_string())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { info!("SIGINT: shutting down"); break; }
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = check.tick() => if relay.is_finished() { warn!("a relay stage stopped; shutting down"); break; },
        }
    }
    relay.shutdown().await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::Policy;

    fn with_file(text: &str) -> (tempfile::TempDir, RunArgs) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("relay.toml");
        std::fs::write(&p, text).unwrap();
        let args = RunArgs {
            config: Some(p),
            ..RunArgs::default()
        };
        (dir, args)
    }

    #[test]
    fn log_level_comes_from_the_file_unless_the_flag_is_given() {
        let (_d, mut args) = with_file("[relay]\nlog_level = \"pika_relay=debug\"\n");
        assert_eq!(args.log_filter(), "pika_relay=debug");
        args.log_level = Some("warn".into());
        assert_eq!(args.log_filter(), "warn");
        assert_eq!(RunArgs::default().log_filter(), "info");
    }

    #[test]
    fn translate_policies_come_from_the_file_and_the_flags() {
        let (_d, mut args) = with_file(
            "[upstream]\nmaster = \"10.0.0.5:9221\"\n[translate]\nspop = \"skip\"\nflushdb_type = \"reject\"\n",
        );
        let c = args.config().unwrap();
        assert_eq!(
            (c.translate.spop, c.translate.flushdb_type),
            (Policy::Skip, Policy::Reject)
        );
        args.spop_policy = Some(Policy::Reject);
        args.flushdb_type_policy = Some(Policy::Pass);
        let c = args.config().unwrap();
        assert_eq!(
            (c.translate.spop, c.translate.flushdb_type),
            (Policy::Reject, Policy::Pass)
        );
        let (_d, args) = with_file("[translate]\nspop = \"maybe\"\n");
        let e = args.config().unwrap_err().0;
        assert!(e.contains("maybe"), "{e}");
    }
}
