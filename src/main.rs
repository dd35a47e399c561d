//! The `pika-relay` command line. All logic lives in the library; this file only parses
//! arguments and prints results.

use clap::{Parser, Subcommand};
use pika_relay::cli::{demo, inspect, run, seed_manifest, sim};
use pika_relay::formats::binlog_file::Flavor;
use pika_relay::formats::manifest::ManifestLayout;
use std::path::PathBuf;
use std::process::ExitCode;

/// Replication proxy that moves a live Pika 2.3/3.0 deployment to Pika 3.1+ without downtime.
#[derive(Parser)]
#[command(name = "pika-relay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the relay: pose as a slave of the old master, serve new Pika slaves on R+2000.
    /// `pika-relay run --master HOST:PORT --port R --data-dir DIR [--advertise-ip IP]
    /// [--masterauth PW] [--requirepass PW] [--force-full-sync] [--config FILE]`
    Run(run::RunArgs),
    /// A whole migration in one process: an old Pika 3.0 master double, a relay, two new-slave
    /// doubles (one full-syncing at once, one joining later), a few seconds of writes, then a
    /// check that both slaves hold exactly the master's data. Exit code 0 only when they do.
    Demo {
        /// Seconds of streaming writes.
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        /// Keys on the master before the relay starts (they travel by full sync).
        #[arg(long, default_value_t = 20_000)]
        initial_keys: usize,
        /// Streaming writes per second.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
    },
    /// Print binlog files, manifests and dump `info` files in human-readable form.
    #[command(subcommand)]
    Inspect(InspectCmd),
    /// Run one simulated peer as a server (container test topologies):
    /// `sim old-master --flavour 2.3|3.0 --port P --data-dir DIR` or
    /// `sim new-slave --version 3.1|3.2|3.3 --port S --slaveof HOST:PORT --data-dir DIR`.
    #[command(subcommand)]
    Sim(sim::SimCmd),
    /// Seed a new Pika's `log_db0` (manifest + write2file<N>) from an old dump's `info` file, so
    /// that the new Pika starts at the dump's binlog position (what `manifest_generator` does,
    /// byte-for-byte as the chosen Pika version writes it).
    SeedManifest {
        /// The dump directory (contains `info`), e.g. `dump/20261122`.
        #[arg(long)]
        dump: PathBuf,
        /// The new Pika's binlog directory, e.g. `log/log_db0`.
        #[arg(long)]
        log_path: PathBuf,
        /// The new Pika's version: filler records and manifest layout differ between 3.1/3.2 and
        /// 3.3/3.4.
        #[arg(long, value_enum, default_value = "3.2")]
        pika_version: seed_manifest::PikaVersion,
        /// Overwrite an existing manifest.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum InspectCmd {
    /// Print every entry of a binlog file, or of every write2file<N> in a directory: position,
    /// exec time, header fields and the command (binary bytes escaped as \xNN).
    Binlog {
        /// A `write2file<N>` file or a directory of them.
        path: PathBuf,
        /// Payload format: `old` = 2.3.x arrays, `new` = 3.0+ items, `auto` = detect.
        #[arg(long, value_enum, default_value = "auto")]
        format: Flavor,
    },
    /// Print a binlog `manifest` (producer position, logic id, term).
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Layout: 2.3, 3.0, 3.2 (= 3.1/3.2), 3.3 (= 3.3+); guessed when omitted.
        #[arg(long, value_parser = parse_layout)]
        layout: Option<ManifestLayout>,
    },
    /// Check and print a dump `info` file (master ip/port and the snapshot's binlog position).
    Info {
        /// The `info` file.
        path: PathBuf,
    },
}

fn parse_layout(s: &str) -> Result<ManifestLayout, String> {
    Ok(match s {
        "2.3" => ManifestLayout::V23,
        "3.0" => ManifestLayout::V30,
        "3.1" | "3.2" => ManifestLayout::V31,
        "3.3" | "3.4" => ManifestLayout::V33,
        _ => return Err(format!("unknown layout {s:?}: use 2.3, 3.0, 3.2 or 3.3")),
    })
}

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn init_logs(filter: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn demo_summary(r: &demo::DemoReport) -> String {
    let mut s = String::from("\n== pika-relay demo summary ==\n");
    s += &format!("entries relayed by binlog : {}\n", r.entries_relayed);
    s += &format!(
        "write throughput          : {:.0} entries/s (master side, paced)\n",
        r.throughput
    );
    s += &format!(
        "end-to-end lag            : p50 {:.1} ms, p99 {:.1} ms (master write → slave A)\n",
        r.lag_p50_ms, r.lag_p99_ms
    );
    s += &format!(
        "full sync (upstream)      : {} bytes, done {:.2} s after start\n",
        r.full_sync_bytes,
        r.upstream_full_sync.as_secs_f64()
    );
    s += &format!(
        "full sync (slave A)       : loaded {:.2} s after attaching\n",
        r.downstream_full_sync.as_secs_f64()
    );
    s += &format!("keys compared             : {}\n", r.keys);
    if r.data_matches {
        s += "result                    : both new slaves hold exactly the old master's data\n";
    } else {
        for p in &r.problems {
            s += &format!("MISMATCH                  : {p}\n");
        }
    }
    s
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<String, String> = match cli.cmd {
        Cmd::Run(args) => {
            let level = args.log_level.clone().unwrap_or_else(|| "info".into());
            init_logs(&level);
            runtime().block_on(run::run(args)).map(|()| String::new())
        }
        Cmd::Demo { seconds, initial_keys, rate } => {
            init_logs("warn");
            let opts = demo::DemoOptions { seconds, initial_keys, rate };
            match runtime().block_on(demo::run(opts, |l| println!("demo: {l}"))) {
                Ok(r) if r.data_matches => Ok(demo_summary(&r)),
                Ok(r) => Err(demo_summary(&r)),
                Err(e) => Err(format!("demo failed: {e}")),
            }
        }
        Cmd::Sim(cmd) => {
            init_logs("info");
            runtime().block_on(sim::run(cmd)).map(|()| String::new())
        }
        Cmd::Inspect(InspectCmd::Binlog { path, format }) => {
            inspect::binlog(&path, format).map_err(|e| format!("{}: {e}", path.display()))
        }
        Cmd::Inspect(InspectCmd::Manifest { path, layout }) => {
            inspect::manifest(&path, layout).map_err(|e| e.to_string())
        }
        Cmd::Inspect(InspectCmd::Info { path }) => inspect::info(&path).map_err(|e| e.to_string()),
        Cmd::SeedManifest {
            dump,
            log_path,
            pika_version,
            force,
        } => seed_manifest::seed(&dump, &log_path, pika_version, force, now())
            .map(|r| {
                format!(
                    "seeded {} at {} (dump of master {}:{} at {}); start the new Pika on this log path\n",
                    r.file.display(),
                    r.stored,
                    r.info.ip,
                    r.info.port,
                    r.info.pos
                )
            })
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pika-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
