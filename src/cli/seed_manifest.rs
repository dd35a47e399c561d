//! `pika-relay seed-manifest`: prepare a new Pika's binlog directory so that it claims the
//! position of an old dump, as Pika's `manifest_generator` does, but byte-for-byte what the chosen
//! new-Pika version itself writes for that position (`SetProducerStatus`).
//!
//! Use: copy an old master's dump (`dump/YYYYMMDD/`) into the new Pika's `db-path`, run this
//! against its `log-path/log_db0`, start the new Pika; it then resumes from the dump's position
//! (e.g. `slaveof <relay-ip> <relay-port>`, which TrySyncs from there).

use crate::formats::info::DumpInfo;
use crate::formats::manifest::{Manifest, ManifestLayout};
use crate::formats::padding::{producer_padding, PaddingStyle};
use crate::formats::BinlogPos;
use std::path::{Path, PathBuf};

/// New-Pika versions whose binlog layout can be seeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PikaVersion {
    /// 3.1.x
    #[value(name = "3.1")]
    V31,
    /// 3.2.x
    #[value(name = "3.2")]
    V32,
    /// 3.3.x
    #[value(name = "3.3")]
    V33,
    /// 3.4.x
    #[value(name = "3.4")]
    V34,
}

impl PikaVersion {
    fn style(self) -> (PaddingStyle, ManifestLayout) {
        match self {
            PikaVersion::V31 | PikaVersion::V32 => (PaddingStyle::Items, ManifestLayout::V31),
            PikaVersion::V33 | PikaVersion::V34 => (PaddingStyle::Stars, ManifestLayout::V33),
        }
    }
}

/// Why seeding failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The dump has no `info` file.
    #[error("dump {0} has no `info` file: point --dump at a Pika bgsave directory (dump/YYYYMMDD) that contains one")]
    NoInfo(PathBuf),
    /// `info` is garbled.
    #[error("dump info {path}: {err}")]
    BadInfo {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        err: crate::formats::FormatError,
    },
    /// A manifest exists already.
    #[error("{0} already exists: this log directory belongs to a Pika that has written binlog; pass --force to overwrite it")]
    Exists(PathBuf),
    /// File system error.
    #[error("{what} {path}: {err}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// Which path.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// The dump's info.
    pub info: DumpInfo,
    /// The position written to the manifest (may be lower than asked for, as Pika does, when the
    /// last chunk is too small for a filler record).
    pub stored: BinlogPos,
    /// The binlog file written.
    pub file: PathBuf,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SeedError {
    let path = path.to_path_buf();
    move |err| SeedError::Io { what, path, err }
}

/// Seeds `log_path` (a `log_db0` directory) from the `info` file of `dump`.
pub fn seed(
    dump: &Path,
    log_path: &Path,
    version: PikaVersion,
    force: bool,
    now: u32,
) -> Result<SeedReport, SeedError> {
    let info_path = dump.join("info");
    if !info_path.is_file() {
        return Err(SeedError::NoInfo(dump.to_path_buf()));
    }
    let text = std::fs::read(&info_path).map_err(io_err("reading", &info_path))?;
    let info = DumpInfo::parse(&text).map_err(|err| SeedError::BadInfo {
        path: info_path.clone(),
        err,
    })?;
    let manifest_path = log_path.join("manifest");
    if manifest_path.exists() && !force {
        return Err(SeedError::Exists(manifest_path));
    }
    std::fs::create_dir_all(log_path).map_err(io_err("creating", log_path))?;
    let (style, layout) = version.style();
    let (image, stored_offset) = producer_padding(info.pos.offset, style, now);
    for n in [0, info.pos.filenum] {
        let f = log_path.join(format!("write2file{n}"));
        if f.exists() {
            std::fs::remove_file(&f).map_err(io_err("removing", &f))?;
        }
    }
    let file = log_path.join(format!("write2file{}", info.pos.filenum));
    std::fs::write(&file, &image).map_err(io_err("writing", &file))?;
    let stored = BinlogPos::new(info.pos.filenum, stored_offset);
    let m = Manifest {
        pos: stored,
        ..Default::default()
    };
    let tmp = log_path.join("manifest.tmp");
    std::fs::write(&tmp, m.encode(layout)).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, &manifest_path).map_err(io_err("renaming", &manifest_path))?;
    Ok(SeedReport { info, stored, file })
}
