//! The `pika-relay` command line. All logic lives in the library; this file only parses
//! arguments and prints results.

use clap::{Parser, Subcommand};
use pika_relay::cli::{inspect, seed_manifest};
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
    /// Print binlog files, manifests and dump `info` files in human-readable form.
    #[command(subcommand)]
    Inspect(InspectCmd),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<String, String> = match cli.cmd {
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
