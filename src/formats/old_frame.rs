//! 3.0.x binlog-channel frames (master → slave port+1000): a 6-byte transfer header (`u16` type,
//! `u32` body length, little-endian) then the body. Type 1 = auth (`*2 $4 auth $N <sid>`), type 2 =
//! one on-disk logical record: a binlog item (34-byte header + RESP), or for 3.0.0–3.0.4 MSETs
//! several items back to back.

use super::item::BinlogItem;
use super::{resp, FormatError};

/// Transfer header size.
pub const FRAME_HEADER_LEN: usize = 6;
/// Transfer type of the auth message.
pub const TYPE_AUTH: u16 = 1;
/// Transfer type of a binlog record.
pub const TYPE_BINLOG: u16 = 2;
/// Default cap on a frame body (Pika's `REDIS_MAX_MESSAGE`, 512 MiB).
pub const DEFAULT_MAX_BODY: usize = 1 << 29;

/// A decoded 3.0.x frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldFrame {
    /// `auth <sid>`: the session id from the latest `trysync` reply.
    Auth {
        /// The sid as sent (decimal text).
        sid: String,
    },
    /// One master record: its items (usually one) and the body length, which is the logical
    /// record length the master's writer used (needed to follow its positions).
    Binlog {
        /// Items in the record.
        items: Vec<BinlogItem>,
        /// Body length in bytes.
        body_len: usize,
    },
}

/// Decodes one frame at the start of `buf`. `Ok(None)`: not complete yet. Frames whose announced
/// body exceeds `max_body` are rejected before any allocation.
pub fn decode_frame(buf: &[u8], max_body: usize) -> Result<Option<(OldFrame, usize)>, FormatError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let ty = u16::from_le_bytes([buf[0], buf[1]]);
    let len = u32::from_le_bytes(buf[2..6].try_into().unwrap()) as usize;
    if ty != TYPE_AUTH && ty != TYPE_BINLOG {
        return Err(FormatError::invalid(
            "3.0 binlog frame",
            format!("transfer type {ty}: only 1 (auth) and 2 (binlog) exist"),
        ));
    }
    if len > max_body {
        return Err(FormatError::TooLarge {
            what: "3.0 binlog frame",
            len: len as u64,
            max: max_body as u64,
        });
    }
    if buf.len() < FRAME_HEADER_LEN + len {
        return Ok(None);
    }
    let body = &buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    let frame = if ty == TYPE_AUTH {
        let argv = resp::parse_argv_exact(body)?;
        if argv.len() != 2 || argv[0] != b"auth" {
            return Err(FormatError::invalid(
                "3.0 auth frame",
                format!(
                    "expected `auth <sid>`, got {}",
                    resp::display_argv(&argv, 32)
                ),
            ));
        }
        let sid = String::from_utf8(argv[1].clone())
            .map_err(|_| FormatError::invalid("3.0 auth frame", "sid is not text"))?;
        OldFrame::Auth { sid }
    } else {
        let items = BinlogItem::decode_many(body)?;
        for it in &items {
            resp::parse_argv_exact(&it.content)?;
        }
        OldFrame::Binlog {
            items,
            body_len: len,
        }
    };
    Ok(Some((frame, FRAME_HEADER_LEN + len)))
}

/// Encodes the auth frame for `sid`.
pub fn encode_auth(sid: &str) -> Vec<u8> {
    let body = resp::encode_argv(&[b"auth".as_ref(), sid.as_bytes()]);
    encode_raw(TYPE_AUTH, &body)
}

/// Encodes a binlog frame carrying one record body (one or more encoded items).
pub fn encode_binlog(body: &[u8]) -> Vec<u8> {
    encode_raw(TYPE_BINLOG, body)
}

fn encode_raw(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::BinlogPos;
    use proptest::prelude::*;

    #[test]
    fn auth_bytes_match_spec() {
        let f = encode_auth("1");
        assert_eq!(
            f,
            b"\x01\x00\x15\x00\x00\x00*2\r\n$4\r\nauth\r\n$1\r\n1\r\n".to_vec()
        );
        assert_eq!(
            decode_frame(&f, DEFAULT_MAX_BODY).unwrap().unwrap().0,
            OldFrame::Auth { sid: "1".into() }
        );
    }

    #[test]
    fn hostile() {
        assert!(decode_frame(b"\x07\x00\x00\x00\x00\x00", 100).is_err());
        assert!(decode_frame(b"\x02\x00\x00\x00\x00\x40", 1 << 29).is_err()); // 1 GiB
        assert_eq!(
            decode_frame(b"\x02\x00\x05\x00\x00\x00ab", 100).unwrap(),
            None
        );
        assert!(decode_frame(b"\x02\x00\x02\x00\x00\x00ab", 100).is_err());
        let auth = resp::encode_argv(&[b"AUTH".as_ref(), b"1"]);
        assert!(decode_frame(&encode_raw(1, &auth), 100).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(n in 1usize..4, val in prop::collection::vec(any::<u8>(), 0..100)) {
            let mut body = Vec::new();
            for i in 0..n {
                BinlogItem { exec_time: 1, server_id: 1, logic_id: i as u64, pos: BinlogPos::new(0, 10),
                    content: resp::encode_argv(&[b"set".as_ref(), b"k", &val]) }.encode_into(&mut body);
            }
            let f = encode_binlog(&body);
            let (dec, used) = decode_frame(&f, DEFAULT_MAX_BODY).unwrap().unwrap();
            prop_assert_eq!(used, f.len());
            match dec { OldFrame::Binlog { items, body_len } => { prop_assert_eq!(items.len(), n); prop_assert_eq!(body_len, body.len()); }
                        _ => prop_assert!(false) }
        }
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frame(&bytes, 1 << 20);
        }
    }
}
