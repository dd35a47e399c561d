//! The `pika-relay` command line. All logic lives in the library; this file only parses
//! arguments and prints results.

use clap::{Parser, Subcommand};
use pika_relay::cli::{cutover, demo, dump_tools, inspect, run, seed_manifest, sim, verify};
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
    /// Compare the old side's data with the new side's, key by key (type, value, TTL), in
    /// pipelined batches and paged big keys. Exit 0 only when equal, 1 when different, 2 when a
    /// side could not be read. The last step of a migration, after `cutover`.
    Verify(verify::VerifyArgs),
    /// Ask a running relay (admin port R) to write a fence key on the old master and wait until
    /// every new slave acknowledged it; reports how long each took. Exit 0 when all caught up,
    /// 1 naming who lags and by how much, 2 when it could not run.
    Cutover(cutover::CutoverArgs),
    /// Convert a Pika 2.3 (nemo) dump into a blackwidow dump that Pika 3.x loads, offline.
    /// Expiry instants are kept as stored; keys already expired now are left out.
    ConvertDump {
        /// The source dump directory (e.g. `dump/20261122`).
        #[arg(long)]
        from: PathBuf,
        /// The output directory (created; must be absent or empty).
        #[arg(long)]
        to: PathBuf,
        /// The new Pika's version: 3.0 writes the type directories at the root, 3.1–3.4 under db0/.
        #[arg(long, value_enum, default_value = "3.2")]
        pika_version: dump_tools::TargetVersion,
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
    /// Print the live keys of a dump (nemo 2.3 or blackwidow 3.x, detected): type, key, ttl,
    /// sizes; or one JSON object per key with `--format jsonl`.
    Dump {
        /// The dump directory (`…/20261122`, or its parent when it holds only that).
        dir: PathBuf,
        /// Also print every value.
        #[arg(long)]
        values: bool,
        /// `text` or `jsonl`.
        #[arg(long, value_enum, default_value = "text")]
        format: dump_tools::DumpFormat,
        /// Decide expiry at this unix time in milliseconds (default: now).
        #[arg(long)]
        at_ms: Option<i64>,
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
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
    let cli = match cli.cmd {
        Cmd::Verify(args) => {
            init_logs("warn");
            return match runtime().block_on(verify::run(args)) {
                verify::Outcome::Equal => ExitCode::SUCCESS,
                verify::Outcome::Different => ExitCode::from(1),
                verify::Outcome::Failed => ExitCode::from(2),
            };
        }
        Cmd::Cutover(args) => {
            init_logs("warn");
            return match runtime().block_on(cutover::run(&args)) {
                cutover::CutoverOutcome::CaughtUp(t) => {
                    print!("{t}");
                    ExitCode::SUCCESS
                }
                cutover::CutoverOutcome::Lagging(t) => {
                    print!("{t}");
                    ExitCode::from(1)
                }
                cutover::CutoverOutcome::Failed(t) => {
                    eprintln!("pika-relay cutover: {}", t.trim_end());
                    ExitCode::from(2)
                }
            };
        }
        cmd => Cli { cmd },
    };
    let result: Result<String, String> = match cli.cmd {
        Cmd::Run(args) => {
            init_logs(&args.log_filter());
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
        Cmd::Inspect(InspectCmd::Dump {
            dir,
            values,
            format,
            at_ms,
        }) => {
            let at = at_ms.unwrap_or_else(now_ms);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let r = dump_tools::inspect_dump(&dir, values, format, at, &mut out);
            std::io::Write::flush(&mut out)
                .map_err(|e| e.to_string())
                .and(r)
                .map(|_| String::new())
        }
        Cmd::ConvertDump {
            from,
            to,
            pika_version,
        } => dump_tools::convert_dump(&from, &to, pika_version, now_ms()).map(|s| {
            format!(
                "converted {} ({}) into {}: {} keys, {} bytes of data, {} SST files ({} bytes)\n",
                from.display(),
                s.from.describe(),
                to.display(),
                s.keys,
                s.bytes,
                s.written.files,
                s.written.sst_bytes
            )
        }),
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
        Cmd::Verify(_) | Cmd::Cutover(_) => unreachable!("handled above"),
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
