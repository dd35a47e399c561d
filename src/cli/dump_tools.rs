//! `pika-relay inspect dump DIR [--values] [--format text|jsonl] [--at-ms T]` and
//! `pika-relay convert-dump --from DIR --to DIR [--pika-version V]`.
//!
//! JSONL: one object per key, `{"key": B, "type": "string|hash|list|set|zset", "expire_at_ms":
//! N|null, "value": V}`, every byte string B standard base64; V is B (string), `[[field, value],
//! …]` (hash), `[B, …]` (list in order, set), `[[member, score], …]` (zset, score order). A key
//! is written as its chunks arrive (never held whole). Infinite scores print as ±1e999.

use std::io::{self, Write};
use std::path::Path;

use crate::dump::convert::{convert, ConvertStats};
use crate::dump::{self, DataType, DumpRecord, Engine, RecordValue};
use crate::formats::resp::escape;

/// Output format of `inspect dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    /// Readable text: type, key, ttl, sizes (and values with `--values`).
    Text,
    /// One JSON object per key.
    Jsonl,
}

/// Target version of `convert-dump`: the dump layout written (3.0: type directories at the
/// root; 3.1–3.4: under `db0/`); the data format is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetVersion {
    /// Pika 3.0.x.
    #[value(name = "3.0")]
    V30,
    /// Pika 3.1.x.
    #[value(name = "3.1")]
    V31,
    /// Pika 3.2.x.
    #[value(name = "3.2")]
    V32,
    /// Pika 3.3.x.
    #[value(name = "3.3")]
    V33,
    /// Pika 3.4.x.
    #[value(name = "3.4")]
    V34,
}

impl TargetVersion {
    /// The layout this version's dumps have.
    pub fn engine(self) -> Engine {
        match self {
            TargetVersion::V30 => Engine::Blackwidow30,
            _ => Engine::Blackwidow31,
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn score_json(s: f64) -> String {
    if s == f64::INFINITY {
        "1e999".into()
    } else if s == f64::NEG_INFINITY {
        "-1e999".into()
    } else {
        format!("{s:?}")
    }
}

fn q(b: &[u8]) -> String {
    format!("\"{}\"", base64(b))
}

/// Writes one record's part of its key's JSON line.
fn jsonl_record(out: &mut dyn Write, r: &DumpRecord) -> io::Result<()> {
    let t = r.value.data_type();
    if r.first {
        let exp = r
            .expire_at_ms
            .map(|e| e.to_string())
            .unwrap_or_else(|| "null".into());
        write!(
            out,
            "{{\"key\": {}, \"type\": \"{}\", \"expire_at_ms\": {exp}, \"value\": ",
            q(&r.key),
            t.name()
        )?;
        if t != DataType::String {
            out.write_all(b"[")?;
        }
    }
    let items: Vec<String> = match &r.value {
        RecordValue::String(v) => vec![q(v)],
        RecordValue::Hash(h) => h
            .iter()
            .map(|(f, v)| format!("[{}, {}]", q(f), q(v)))
            .collect(),
        RecordValue::List(l) => l.iter().map(|m| q(m)).collect(),
        RecordValue::Set(s) => s.iter().map(|m| q(m)).collect(),
        RecordValue::ZSet(z) => z
            .iter()
            .map(|(m, s)| format!("[{}, {}]", q(m), score_json(*s)))
            .collect(),
    };
    if !r.first && !items.is_empty() {
        out.write_all(b", ")?;
    }
    out.write_all(items.join(", ").as_bytes())?;
    if r.last {
        if t != DataType::String {
            out.write_all(b"]")?;
        }
        out.write_all(b"}\n")?;
    }
    Ok(())
}

/// Per-key totals for the text format.
#[derive(Default)]
struct KeyTotals {
    members: u64,
    bytes: u64,
}

fn ttl_text(exp: Option<i64>, at_ms: i64) -> String {
    match exp {
        None => "ttl=-".into(),
        Some(e) => format!("ttl={}s expire_at_ms={e}", (e - at_ms).div_euclid(1000)),
    }
}

fn text_record(
    out: &mut dyn Write,
    r: &DumpRecord,
    values: bool,
    at_ms: i64,
    tot: &mut KeyTotals,
) -> io::Result<()> {
    if r.first {
        *tot = KeyTotals::default();
    }
    let lines: Vec<String> = match &r.value {
        RecordValue::String(v) => {
            tot.bytes += v.len() as u64;
            tot.members = 1;
            vec![escape(v)]
        }
        RecordValue::Hash(h) => {
            tot.members += h.len() as u64;
            tot.bytes += h
                .iter()
                .map(|(f, v)| (f.len() + v.len()) as u64)
                .sum::<u64>();
            h.iter()
                .map(|(f, v)| format!("{} => {}", escape(f), escape(v)))
                .collect()
        }
        RecordValue::List(l) | RecordValue::Set(l) => {
            tot.members += l.len() as u64;
            tot.bytes += l.iter().map(|m| m.len() as u64).sum::<u64>();
            l.iter().map(|m| escape(m)).collect()
        }
        RecordValue::ZSet(z) => {
            tot.members += z.len() as u64;
            tot.bytes += z.iter().map(|(m, _)| m.len() as u64).sum::<u64>();
            z.iter()
                .map(|(m, s)| format!("{} {}", score_json(*s), escape(m)))
                .collect()
        }
    };
    if values && r.value.data_type() != DataType::String {
        if r.first {
            writeln!(
                out,
                "{} {} {}",
                r.value.data_type().name(),
                escape(&r.key),
                ttl_text(r.expire_at_ms, at_ms)
            )?;
        }
        for l in lines {
            writeln!(out, "  {l}")?;
        }
    }
    if r.last {
        let t = r.value.data_type();
        if values && t == DataType::String {
            writeln!(
                out,
                "string {} {} bytes={} value={}",
                escape(&r.key),
                ttl_text(r.expire_at_ms, at_ms),
                tot.bytes,
                match &r.value {
                    RecordValue::String(v) => escape(v),
                    _ => String::new(),
                }
            )?;
        } else if !values {
            writeln!(
                out,
                "{} {} {} {}={} bytes={}",
                t.name(),
                escape(&r.key),
                ttl_text(r.expire_at_ms, at_ms),
                if t == DataType::String {
                    "len"
                } else {
                    "members"
                },
                if t == DataType::String {
                    tot.bytes
                } else {
                    tot.members
                },
                tot.bytes
            )?;
        } else {
            writeln!(out, "  ({} members, {} bytes)", tot.members, tot.bytes)?;
        }
    }
    Ok(())
}

/// `inspect dump`: prints every live key of the dump in `dir` at `at_ms`. Returns the key count.
pub fn inspect_dump(
    dir: &Path,
    values: bool,
    format: DumpFormat,
    at_ms: i64,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let d = dump::OpenDump::open(dir).map_err(|e| e.to_string())?;
    if format == DumpFormat::Text {
        writeln!(
            out,
            "# {} dump at {}",
            d.layout.engine.describe(),
            d.layout.dir.display()
        )
        .map_err(|e| e.to_string())?;
    }
    let mut keys = 0u64;
    let mut tot = KeyTotals::default();
    let mut io_err: Option<io::Error> = None;
    d.read(at_ms, &mut |r| {
        let res = match format {
            DumpFormat::Jsonl => jsonl_record(out, &r),
            DumpFormat::Text => text_record(out, &r, values, at_ms, &mut tot),
        };
        if r.last {
            keys += 1;
        }
        match res {
            Ok(()) => true,
            Err(e) => {
                io_err = Some(e);
                false
            }
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = io_err {
        return Err(format!("writing the output failed: {e}"));
    }
    if format == DumpFormat::Text {
        writeln!(out, "# {keys} keys").map_err(|e| e.to_string())?;
    }
    Ok(keys)
}

/// `convert-dump`: converts a dump (normally nemo 2.3) into `to` for Pika `version`, keys live
/// now; expiry instants kept as stored (see [`crate::dump::convert`]).
pub fn convert_dump(
    from: &Path,
    to: &Path,
    version: TargetVersion,
    now_ms: i64,
) -> Result<ConvertStats, String> {
    convert(from, to, version.engine(), now_ms, None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bin\x00key\r\n\xff"), "YmluAGtleQ0K/w==");
    }
}
