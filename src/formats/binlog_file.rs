//! Whole `write2file<N>` images decoded into entries: the record layer ([`super::record`]) plus
//! the payload format of the writing version (34-byte items for 3.0+, RESP arrays with trailing
//! fields for 2.3.x), with filler (padding items, 3.3+ type-6 records, header-less blanks)
//! told apart from data.

use super::item::BinlogItem;
use super::old_raw::{self, RawEntry};
use super::record::{self, LogicalRecord, RecordKind};
use super::FormatError;

/// Payload format of a binlog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// 2.3.x: RESP arrays with the `__PIKA_X#$SKGI` trailing fields.
    Old,
    /// 3.0.x and 3.x: 34-byte item header + RESP.
    New,
    /// Decide from the first data record.
    Auto,
}

/// What one logical record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// 3.0+/3.x items (one, or several for 3.0.0–3.0.4 MSETs). Padding items are items too
    /// (see [`BinlogItem::is_padding`]).
    Items(Vec<BinlogItem>),
    /// 2.3.x arrays (several for an MSET record).
    Raw(Vec<RawEntry>),
    /// 3.3+ type-6 padding record of this many `*` bytes.
    Padding(usize),
    /// Header-less or all-space filler (2.3.x / early 3.0 `AppendBlank`, manifest_generator).
    Blank(usize),
}

/// One logical record of a file with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Start offset.
    pub start: u64,
    /// End offset (the producer position after it).
    pub end: u64,
    /// Record write time.
    pub time: u32,
    /// Decoded payload.
    pub body: EntryBody,
}

fn classify(rec: LogicalRecord, flavor: Flavor) -> Result<FileEntry, FormatError> {
    let body = match rec.kind {
        RecordKind::Blank => EntryBody::Blank((rec.end - rec.start) as usize),
        RecordKind::Padding => EntryBody::Padding(rec.payload.len()),
        RecordKind::Data if rec.payload.iter().all(|&b| b == b' ') => {
            EntryBody::Blank(rec.payload.len())
        }
        RecordKind::Data => match flavor {
            Flavor::Old => EntryBody::Raw(old_raw::decode_record(&rec.payload)?),
            _ => EntryBody::Items(BinlogItem::decode_many(&rec.payload)?),
        },
    };
    Ok(FileEntry {
        start: rec.start,
        end: rec.end,
        time: rec.time,
        body,
    })
}

/// Decodes every entry of a file image from `offset` until end of data. Returns the entries read
/// and, if the file does not end cleanly, the error and the offset where decoding stopped.
pub fn decode_file(
    buf: &[u8],
    offset: u64,
    flavor: Flavor,
) -> (Vec<FileEntry>, Option<(u64, FormatError)>) {
    let mut flavor = flavor;
    let mut out = Vec::new();
    let mut pos = offset;
    loop {
        match record::read_record(buf, 0, pos) {
            Ok(record::ReadOutcome::End) => return (out, None),
            Ok(record::ReadOutcome::Incomplete) => {
                return (
                    out,
                    Some((
                        pos,
                        FormatError::Truncated {
                            what: "binlog record (torn tail)",
                            need: 1,
                        },
                    )),
                )
            }
            Err(e) => return (out, Some((pos, e))),
            Ok(record::ReadOutcome::Record(rec)) => {
                if flavor == Flavor::Auto && rec.kind == RecordKind::Data {
                    match rec.payload.first() {
                        Some(b'*') => flavor = Flavor::Old,
                        Some(b' ') | None => {}
                        Some(_) => flavor = Flavor::New,
                    }
                }
                let end = rec.end;
                match classify(rec, flavor) {
                    Ok(e) => out.push(e),
                    Err(e) => return (out, Some((pos, e))),
                }
                pos = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{resp, BinlogPos};

    #[test]
    fn auto_detects_both_flavors() {
        let mut buf = Vec::new();
        let item = BinlogItem {
            content: resp::encode_argv(&[b"set".as_ref(), b"k", b"v"]),
            ..Default::default()
        };
        record::encode_record(0, &item.encode(), 1, &mut buf);
        let (e, err) = decode_file(&buf, 0, Flavor::Auto);
        assert!(err.is_none());
        assert!(matches!(&e[0].body, EntryBody::Items(v) if v.len() == 1));

        let raw = RawEntry::new(
            vec![b"set".to_vec(), b"k".to_vec(), b"v".to_vec()],
            1,
            old_raw::BinlogInfo {
                exec_time: 1,
                pos: BinlogPos::new(0, 0),
            },
            true,
        );
        let mut buf = Vec::new();
        record::encode_record(0, &raw.encode(), 1, &mut buf);
        let (e, err) = decode_file(&buf, 0, Flavor::Auto);
        assert!(err.is_none());
        assert!(matches!(&e[0].body, EntryBody::Raw(v) if v.len() == 1));
    }

    #[test]
    fn torn_tail_reported_with_offset() {
        let mut buf = Vec::new();
        let item = BinlogItem {
            content: resp::encode_argv(&[b"set".as_ref(), b"k", b"v"]),
            ..Default::default()
        };
        let end = record::encode_record(0, &item.encode(), 1, &mut buf);
        record::encode_record(end, &item.encode(), 1, &mut buf);
        buf.truncate(buf.len() - 3);
        let (e, err) = decode_file(&buf, 0, Flavor::New);
        assert_eq!(e.len(), 1);
        assert_eq!(err.unwrap().0, end);
    }
}
