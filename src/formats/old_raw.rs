//! 2.3.x binlog arrays: plain RESP, no item header. Each stored array is the command's argv plus
//! four trailing bulk strings:
//!
//! | extra | content |
//! |---|---|
//! | argc+0 | the magic `__PIKA_X#$SKGI` |
//! | argc+1 | originating server id, decimal text |
//! | argc+2 | binlog_info: 16 bytes (`u32 exec_time, u32 filenum, u64 offset`, LE), or empty / `X` |
//! | argc+3 | pika-hub flag (`1` / `0`) |
//!
//! The push stream on the slave's port+1000 is `*2 $4 auth $N <sid>` then the stored arrays
//! verbatim; one record (an MSET) may hold several arrays that share one binlog_info.

use super::{resp, BinlogPos, FormatError};

/// The magic that marks the four trailing fields.
pub const MAGIC: &[u8] = b"__PIKA_X#$SKGI";

/// The 16-byte binlog_info of a 2.3.x array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinlogInfo {
    /// Unix seconds of execution on the originating master.
    pub exec_time: u32,
    /// The master's producer position before the record.
    pub pos: BinlogPos,
}

/// One 2.3.x array, split into the command and its trailing fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The command without the four extras.
    pub argv: resp::Argv,
    /// The originating server id text (`1`).
    pub server_id: Vec<u8>,
    /// The binlog_info, when it is the 16-byte form.
    pub info: Option<BinlogInfo>,
    /// The raw binlog_info field (empty, `X`, or 16 bytes).
    pub info_raw: Vec<u8>,
    /// The hub flag.
    pub hub_flag: Vec<u8>,
    /// Size of the whole array in bytes, as stored and pushed.
    pub encoded_len: usize,
}

/// One message of a 2.3.x push stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawMessage {
    /// `auth <sid>` (2.3.3+), sent first.
    Auth {
        /// The sid text.
        sid: String,
    },
    /// A binlog array.
    Entry(RawEntry),
}

impl RawEntry {
    /// Splits a stored array. Arrays without the magic are an error: every binlog array a 2.3
    /// master writes carries it.
    pub fn from_argv(mut argv: resp::Argv, encoded_len: usize) -> Result<RawEntry, FormatError> {
        const WHAT: &str = "2.3 binlog array";
        if argv.len() < 5 || argv[argv.len() - 4] != MAGIC {
            return Err(FormatError::invalid(
                WHAT,
                format!(
                    "no `{}` magic before the last 3 fields: {}",
                    String::from_utf8_lossy(MAGIC),
                    resp::display_argv(&argv, 32)
                ),
            ));
        }
        let hub_flag = argv.pop().unwrap_or_default();
        let info_raw = argv.pop().unwrap_or_default();
        let server_id = argv.pop().unwrap_or_default();
        argv.pop();
        let info = if info_raw.len() == 16 {
            Some(BinlogInfo {
                exec_time: u32::from_le_bytes(info_raw[0..4].try_into().unwrap()),
                pos: BinlogPos::new(
                    u32::from_le_bytes(info_raw[4..8].try_into().unwrap()),
                    u64::from_le_bytes(info_raw[8..16].try_into().unwrap()),
                ),
            })
        } else {
            None
        };
        Ok(RawEntry {
            argv,
            server_id,
            info,
            info_raw,
            hub_flag,
            encoded_len,
        })
    }

    /// Re-encodes the stored array (argv plus extras) exactly as a 2.3 master stores it.
    pub fn encode(&self) -> Vec<u8> {
        let mut all: Vec<&[u8]> = self.argv.iter().map(|a| a.as_slice()).collect();
        all.push(MAGIC);
        all.push(&self.server_id);
        all.push(&self.info_raw);
        all.push(&self.hub_flag);
        resp::encode_argv(&all)
    }

    /// Builds an entry with a 16-byte binlog_info.
    pub fn new(argv: resp::Argv, server_id: u32, info: BinlogInfo, hub_flag: bool) -> RawEntry {
        let mut info_raw = Vec::with_capacity(16);
        info_raw.extend_from_slice(&info.exec_time.to_le_bytes());
        info_raw.extend_from_slice(&info.pos.filenum.to_le_bytes());
        info_raw.extend_from_slice(&info.pos.offset.to_le_bytes());
        let mut e = RawEntry {
            argv,
            server_id: server_id.to_string().into_bytes(),
            info: Some(info),
            info_raw,
            hub_flag: if hub_flag {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
            encoded_len: 0,
        };
        e.encoded_len = e.encode().len();
        e
    }
}

/// Decodes one message of a 2.3.x push stream at the start of `buf`; `Ok(None)` if incomplete.
pub fn decode_message(buf: &[u8]) -> Result<Option<(RawMessage, usize)>, FormatError> {
    RawDecoder::new().decode(buf)
}

/// A resumable decoder of a 2.3.x push stream: [`RawDecoder::decode`] is called with the
/// buffered bytes (the current message at its start) each time more arrive, and does not re-parse
/// the arguments already complete (see [`resp::ArgvParser`]).
#[derive(Debug, Clone, Default)]
pub struct RawDecoder {
    parser: resp::ArgvParser,
}

impl RawDecoder {
    /// A decoder with the default caps.
    pub fn new() -> Self {
        RawDecoder {
            parser: resp::ArgvParser::new(),
        }
    }

    /// Caps the next message: at most `max_args` arguments, no bulk string announcing more than
    /// `max_bulk` bytes (used before `auth`, whose message is tiny).
    pub fn set_limits(&mut self, max_args: usize, max_bulk: usize) {
        self.parser.set_limits(max_args, max_bulk);
    }

    /// Bytes examined so far (see [`resp::ArgvParser::scanned`]).
    pub fn scanned(&self) -> u64 {
        self.parser.scanned()
    }

    /// Continues decoding the message at the start of `buf`; `Ok(None)` if incomplete.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(RawMessage, usize)>, FormatError> {
        let Some((argv, used)) = self.parser.parse(buf)? else {
            return Ok(None);
        };
        message_from_argv(argv, used).map(Some)
    }
}

fn message_from_argv(argv: resp::Argv, used: usize) -> Result<(RawMessage, usize), FormatError> {
    if argv.len() == 2 && argv[0] == b"auth" {
        let sid = String::from_utf8(argv[1].clone())
            .map_err(|_| FormatError::invalid("2.3 auth message", "sid is not text"))?;
        return Ok((RawMessage::Auth { sid }, used));
    }
    Ok((RawMessage::Entry(RawEntry::from_argv(argv, used)?), used))
}

/// Decodes every array in a stored 2.3.x record payload (one or more arrays back to back).
pub fn decode_record(payload: &[u8]) -> Result<Vec<RawEntry>, FormatError> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        match resp::parse_argv(rest)? {
            None => {
                return Err(FormatError::Truncated {
                    what: "2.3 binlog record",
                    need: 1,
                })
            }
            Some((argv, used)) => {
                out.push(RawEntry::from_argv(argv, used)?);
                rest = &rest[used..];
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_and_rebuild() {
        let e = RawEntry::new(
            vec![b"set".to_vec(), b"a\r\nb".to_vec(), b"v".to_vec()],
            1,
            BinlogInfo {
                exec_time: 7,
                pos: BinlogPos::new(0, 13),
            },
            true,
        );
        let enc = e.encode();
        assert_eq!(enc.len(), e.encoded_len);
        let (m, used) = decode_message(&enc).unwrap().unwrap();
        assert_eq!(used, enc.len());
        assert_eq!(m, RawMessage::Entry(e));
    }

    #[test]
    fn hostile() {
        assert!(decode_message(&resp::encode_argv(&[b"set".as_ref(), b"k", b"v"])).is_err());
        assert!(decode_record(b"*1\r\n$1").is_err());
        assert_eq!(decode_message(b"*6\r\n$3\r\nset").unwrap(), None);
    }

    proptest! {
        #[test]
        fn roundtrip(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 1..5),
                     t in any::<u32>(), f in any::<u32>(), o in any::<u64>(), n in 1usize..4) {
            let e = RawEntry::new(args, 1, BinlogInfo { exec_time: t, pos: BinlogPos::new(f, o) }, false);
            let rec: Vec<u8> = (0..n).flat_map(|_| e.encode()).collect();
            let got = decode_record(&rec).unwrap();
            prop_assert_eq!(got.len(), n);
            prop_assert_eq!(&got[0], &e);
        }
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_message(&bytes);
            let _ = decode_record(&bytes);
        }
    }
}
