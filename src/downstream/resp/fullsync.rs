//! Full sync of a target from the current epoch's dump: dump records → Redis commands. Every
//! key is replaced (`DEL` on its first chunk), big values go in commands of at most
//! `max_members` members (memory stays bounded by the reader's chunk and this), and the TTL is
//! set last as an absolute `PEXPIREAT` (a key already expired by then disappears at once, as on
//! the master).

use crate::dump::{DumpError, DumpRecord, RecordSource, RecordValue};
use crate::formats::resp::Argv;
use std::path::Path;

/// Opens the record stream of a dump directory. The only place that picks a dump reader.
/// Any layout `crate::dump` reads (blackwidow 3.x, and nemo 2.3 should one arrive unconverted);
/// keys already expired now are not records.
pub fn open_source(dir: &Path) -> Result<Box<dyn RecordSource>, DumpError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    crate::dump::open(dir, now_ms)
}

fn fmt_score(s: f64) -> Vec<u8> {
    if s == f64::INFINITY {
        b"+inf".to_vec()
    } else if s == f64::NEG_INFINITY {
        b"-inf".to_vec()
    } else {
        // Rust prints the shortest text that parses back to the same f64.
        format!("{s}").into_bytes()
    }
}

/// The commands that apply one record.
pub fn record_commands(r: &DumpRecord, max_members: usize) -> Vec<Argv> {
    let key = r.key.to_vec();
    let max = max_members.max(1);
    let mut out = Vec::new();
    if r.first {
        out.push(vec![b"DEL".to_vec(), key.clone()]);
    }
    let head = |name: &[u8]| vec![name.to_vec(), key.clone()];
    match &r.value {
        RecordValue::String(v) => {
            let mut c = head(b"SET");
            c.push(v.to_vec());
            out.push(c);
        }
        RecordValue::Hash(fv) => {
            for ch in fv.chunks(max) {
                let mut c = head(b"HMSET");
                for (f, v) in ch {
                    c.push(f.to_vec());
                    c.push(v.to_vec());
                }
                out.push(c);
            }
        }
        RecordValue::List(m) | RecordValue::Set(m) => {
            let name: &[u8] = if matches!(r.value, RecordValue::List(_)) {
                b"RPUSH"
            } else {
                b"SADD"
            };
            for ch in m.chunks(max) {
                let mut c = head(name);
                c.extend(ch.iter().map(|v| v.to_vec()));
                out.push(c);
            }
        }
        RecordValue::ZSet(m) => {
            for ch in m.chunks(max) {
                let mut c = head(b"ZADD");
                for (member, score) in ch {
                    c.push(fmt_score(*score));
                    c.push(member.to_vec());
                }
                out.push(c);
            }
        }
    }
    if r.last {
        if let Some(at) = r.expire_at_ms {
            out.push(vec![
                b"PEXPIREAT".to_vec(),
                key,
                at.to_string().into_bytes(),
            ]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn strs(v: &[Argv]) -> Vec<String> {
        v.iter()
            .map(|a| {
                a.iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn records_to_commands() {
        let r = DumpRecord {
            key: Bytes::from_static(b"z"),
            expire_at_ms: Some(1_800_000_000_123),
            value: RecordValue::ZSet(vec![
                (Bytes::from_static(b"a"), 1.5),
                (Bytes::from_static(b"b"), -3.0),
                (Bytes::from_static(b"c"), f64::INFINITY),
            ]),
            first: true,
            last: true,
        };
        assert_eq!(
            strs(&record_commands(&r, 2)),
            [
                "DEL z",
                "ZADD z 1.5 a -3 b",
                "ZADD z +inf c",
                "PEXPIREAT z 1800000000123"
            ]
        );
        let mid = DumpRecord {
            key: Bytes::from_static(b"l"),
            expire_at_ms: Some(5),
            value: RecordValue::List(vec![Bytes::from_static(b"x")]),
            first: false,
            last: false,
        };
        assert_eq!(
            strs(&record_commands(&mid, 10)),
            ["RPUSH l x"],
            "no DEL, no TTL mid-key"
        );
        let h = DumpRecord {
            key: Bytes::from_static(b"h"),
            expire_at_ms: None,
            value: RecordValue::Hash(vec![(Bytes::from_static(b"f"), Bytes::from_static(b"v"))]),
            first: true,
            last: true,
        };
        assert_eq!(strs(&record_commands(&h, 10)), ["DEL h", "HMSET h f v"]);
    }
}
