//! `pika-relay inspect`: human-readable dumps of binlog files, manifests and dump `info` files.

use crate::formats::binlog_file::{decode_file, EntryBody, Flavor};
use crate::formats::info::DumpInfo;
use crate::formats::manifest::{Manifest, ManifestLayout};
use crate::formats::resp::{display_argv, parse_argv_exact};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// Longest argument printed in full; longer ones are shortened with their size.
const MAX_ARG: usize = 64;

/// Lists the `write2file<N>` files of a directory in numeric order, or the file itself.
pub fn binlog_files(path: &Path) -> io::Result<Vec<(u32, PathBuf)>> {
    if path.is_file() {
        let n = file_number(path).unwrap_or(0);
        return Ok(vec![(n, path.to_path_buf())]);
    }
    let mut files = Vec::new();
    for e in std::fs::read_dir(path)? {
        let p = e?.path();
        if let Some(n) = file_number(&p) {
            files.push((n, p));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no write2file<N> files in {}", path.display()),
        ));
    }
    Ok(files)
}

fn file_number(p: &Path) -> Option<u32> {
    p.file_name()?
        .to_str()?
        .strip_prefix("write2file")?
        .parse()
        .ok()
}

/// Renders every entry of the binlog file(s) at `path`, one line each:
/// `<filenum>:<start>-<end>  <header fields>  <command>`.
pub fn binlog(path: &Path, flavor: Flavor) -> io::Result<String> {
    let mut out = String::new();
    for (n, file) in binlog_files(path)? {
        let buf = std::fs::read(&file)?;
        let (entries, err) = decode_file(&buf, 0, flavor);
        let _ = writeln!(
            out,
            "# {} ({} bytes, {} entries)",
            file.display(),
            buf.len(),
            entries.len()
        );
        for e in &entries {
            let at = format!("{n}:{}-{}", e.start, e.end);
            match &e.body {
                EntryBody::Items(items) => {
                    for it in items {
                        let cmd = match parse_argv_exact(&it.content) {
                            Ok(argv) => display_argv(&argv, MAX_ARG),
                            Err(err) => format!("<undecodable content: {err}>"),
                        };
                        let _ = writeln!(
                            out,
                            "{at}  exec_time={} server_id={} logic_id={} pos={}  {cmd}",
                            it.exec_time, it.server_id, it.logic_id, it.pos
                        );
                    }
                }
                EntryBody::Raw(arrays) => {
                    for a in arrays {
                        let info = match &a.info {
                            Some(i) => format!("exec_time={} pos={}", i.exec_time, i.pos),
                            None => {
                                format!("binlog_info={:?}", String::from_utf8_lossy(&a.info_raw))
                            }
                        };
                        let _ = writeln!(
                            out,
                            "{at}  {info} server_id={} hub={}  {}",
                            String::from_utf8_lossy(&a.server_id),
                            String::from_utf8_lossy(&a.hub_flag),
                            display_argv(&a.argv, MAX_ARG)
                        );
                    }
                }
                EntryBody::Padding(len) => {
                    let _ = writeln!(out, "{at}  <padding record: {len} bytes of '*'>");
                }
                EntryBody::Blank(len) => {
                    let _ = writeln!(out, "{at}  <blank filler: {len} bytes of ' '>");
                }
            }
        }
        if let Some((pos, err)) = err {
            let _ = writeln!(out, "{n}:{pos}  ERROR: {err}");
        }
    }
    Ok(out)
}

/// Guesses a manifest's layout: the 2.3 layout keeps a `u64` offset at byte 0, the 3.x layouts
/// a `u32` filenum there and the offset at byte 4.
pub fn guess_layout(buf: &[u8]) -> ManifestLayout {
    if buf.len() >= 36 {
        let hi = &buf[4..8];
        let lo = &buf[0..4];
        let dm23 = &buf[24..36];
        if hi == [0, 0, 0, 0] && lo != [0, 0, 0, 0] && buf[12..20].iter().all(|&b| b == 0) {
            let _ = dm23;
            return ManifestLayout::V23;
        }
        if buf[20..24] != [0, 0, 0, 0] {
            return ManifestLayout::V33;
        }
    }
    ManifestLayout::V31
}

/// Renders a manifest. `layout` None = guess (and say so).
pub fn manifest(path: &Path, layout: Option<ManifestLayout>) -> io::Result<String> {
    let buf = std::fs::read(path)?;
    let (layout, guessed) = match layout {
        Some(l) => (l, false),
        None => (guess_layout(&buf), true),
    };
    let m = Manifest::decode(&buf, layout).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    let mut out = format!(
        "{}: {} bytes, layout {:?}{}\nproducer position: {}\n",
        path.display(),
        buf.len(),
        layout,
        if guessed {
            " (guessed; force with --layout)"
        } else {
            ""
        },
        m.pos
    );
    match layout {
        ManifestLayout::V23 => {
            let _ = writeln!(out, "double-master receive position: {}", m.dm_recv);
        }
        ManifestLayout::V30 => {
            let _ = writeln!(
                out,
                "logic_id: {}\ndouble-master receive position: {}",
                m.logic_id, m.dm_recv
            );
        }
        ManifestLayout::V31 => {
            let _ = writeln!(out, "logic_id: {}", m.logic_id);
        }
        ManifestLayout::V33 => {
            let _ = writeln!(out, "logic_id: {}\nterm: {}", m.logic_id, m.term);
        }
    }
    Ok(out)
}

/// Renders a dump `info` file, or says which line is wrong.
pub fn info(path: &Path) -> io::Result<String> {
    let buf = std::fs::read(path)?;
    let i = DumpInfo::parse(&buf).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    Ok(format!(
        "{}: master {}:{}, snapshot at binlog position {} (bgsave took {})\n",
        path.display(),
        i.ip,
        i.port,
        i.pos,
        i.duration
    ))
}
