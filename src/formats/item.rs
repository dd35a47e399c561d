//! The 34-byte binlog item shared by 3.0.x (inside binlog-channel frames and on disk) and 3.x (on
//! disk and inside `BinlogSync.binlog`):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 2 | item type, always 1 |
//! | 2 | 4 | exec_time (unix seconds) |
//! | 6 | 4 | server_id (≤ 3.2) or term (3.3+) |
//! | 10 | 8 | logic_id |
//! | 18 | 4 | filenum of the writer's producer *before* this item |
//! | 22 | 8 | offset of the writer's producer *before* this item |
//! | 30 | 4 | content length |
//! | 34 | n | content: one RESP command |
//!
//! All integers little-endian.

use super::{resp, BinlogPos, FormatError};

/// Size of the fixed item header.
pub const ITEM_HEADER_LEN: usize = 34;
/// The only item type any Pika writes or accepts (`TypeFirst`).
pub const ITEM_TYPE: u16 = 1;

/// One binlog item with its content bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinlogItem {
    /// Unix seconds at which the originating master executed the command.
    pub exec_time: u32,
    /// `server_id` in 3.0–3.2, `term` in 3.3+ (same four bytes).
    pub server_id: u32,
    /// The writer's item counter (3.2: before this item; 3.3+: after it).
    pub logic_id: u64,
    /// The writer's producer position before this item.
    pub pos: BinlogPos,
    /// One RESP command (canonical encoding when written by the relay).
    pub content: Vec<u8>,
}

impl BinlogItem {
    /// Encoded size: header plus content.
    pub fn encoded_len(&self) -> usize {
        ITEM_HEADER_LEN + self.content.len()
    }

    /// Appends the encoded item to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&ITEM_TYPE.to_le_bytes());
        out.extend_from_slice(&self.exec_time.to_le_bytes());
        out.extend_from_slice(&self.server_id.to_le_bytes());
        out.extend_from_slice(&self.logic_id.to_le_bytes());
        out.extend_from_slice(&self.pos.filenum.to_le_bytes());
        out.extend_from_slice(&self.pos.offset.to_le_bytes());
        out.extend_from_slice(&(self.content.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.content);
    }

    /// The encoded item.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// Decodes a buffer that holds exactly one item. The content is everything after the header
    /// (as real slaves do; the inner content length must agree).
    pub fn decode(buf: &[u8]) -> Result<BinlogItem, FormatError> {
        let (item, used) = Self::decode_prefix(buf)?;
        if used != buf.len() {
            return Err(FormatError::invalid(
                "binlog item",
                format!(
                    "content length field says {} but {} bytes follow the header",
                    used - ITEM_HEADER_LEN,
                    buf.len() - ITEM_HEADER_LEN
                ),
            ));
        }
        Ok(item)
    }

    /// Decodes one item at the start of `buf` using its content-length field; returns the item
    /// and the bytes used. Used for the 3.0.0–3.0.4 multi-item MSET bodies.
    pub fn decode_prefix(buf: &[u8]) -> Result<(BinlogItem, usize), FormatError> {
        if buf.len() < ITEM_HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "binlog item header",
                need: ITEM_HEADER_LEN - buf.len(),
            });
        }
        let u16_at = |o: usize| u16::from_le_bytes([buf[o], buf[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
        let ty = u16_at(0);
        if ty != ITEM_TYPE {
            return Err(FormatError::invalid(
                "binlog item",
                format!("item type {ty}, only type 1 exists"),
            ));
        }
        let len = u32_at(30) as usize;
        let end = ITEM_HEADER_LEN
            .checked_add(len)
            .filter(|&e| e <= buf.len())
            .ok_or(FormatError::Truncated {
                what: "binlog item content",
                need: (ITEM_HEADER_LEN + len).saturating_sub(buf.len()),
            })?;
        Ok((
            BinlogItem {
                exec_time: u32_at(2),
                server_id: u32_at(6),
                logic_id: u64_at(10),
                pos: BinlogPos::new(u32_at(18), u64_at(22)),
                content: buf[ITEM_HEADER_LEN..end].to_vec(),
            },
            end,
        ))
    }

    /// Decodes a body holding one or more back-to-back items (3.0.0–3.0.4 wrote MSET as several
    /// items in one record). A trailing remainder shorter than a header is an error.
    pub fn decode_many(buf: &[u8]) -> Result<Vec<BinlogItem>, FormatError> {
        let mut out = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            let (item, used) = Self::decode_prefix(rest)?;
            out.push(item);
            rest = &rest[used..];
        }
        if out.is_empty() {
            return Err(FormatError::Truncated {
                what: "binlog item header",
                need: ITEM_HEADER_LEN,
            });
        }
        Ok(out)
    }

    /// The command in the content.
    pub fn argv(&self) -> Result<resp::Argv, FormatError> {
        resp::parse_argv_exact(&self.content)
    }

    /// Whether the content is a `padding` command (filler written by SetProducerStatus).
    pub fn is_padding(&self) -> bool {
        self.content.starts_with(b"*2\r\n$7\r\npadding\r\n")
    }
}

/// Smallest item a padding item can fill (header + `*2 $7 padding $NNNNN` + CRLF, no stars).
pub const MIN_PADDING_ITEM: usize = 61;

/// Builds a padding item of exactly `total` bytes (header fields all zero, content
/// `*2\r\n$7\r\npadding\r\n$NNNNN\r\n<stars>\r\n` with a 5-digit zero-padded length), as Pika's
/// `ConstructPaddingBinlog` does. `None` when `total` is below [`MIN_PADDING_ITEM`] or the star
/// count would need more than five digits.
pub fn padding_item(total: usize) -> Option<Vec<u8>> {
    let stars = total.checked_sub(MIN_PADDING_ITEM)?;
    if stars > 99_999 {
        return None;
    }
    let mut content = Vec::with_capacity(total - ITEM_HEADER_LEN);
    content.extend_from_slice(b"*2\r\n$7\r\npadding\r\n$");
    content.extend_from_slice(format!("{stars:05}").as_bytes());
    content.extend_from_slice(b"\r\n");
    content.resize(content.len() + stars, b'*');
    content.extend_from_slice(b"\r\n");
    let item = BinlogItem {
        content,
        ..Default::default()
    };
    let enc = item.encode();
    debug_assert_eq!(enc.len(), total);
    Some(enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_example_set_k_v() {
        let item = BinlogItem {
            exec_time: 1_600_000_000,
            server_id: 1,
            logic_id: 0,
            pos: BinlogPos::new(0, 0),
            content: resp::encode_argv(&[b"set".as_ref(), b"k", b"v"]),
        };
        let enc = item.encode();
        assert_eq!(enc.len(), 61);
        assert_eq!(
            &enc[..34],
            &[
                1, 0, 0, 0x10, 0x5e, 0x5f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0x1b, 0, 0, 0
            ]
        );
        assert_eq!(BinlogItem::decode(&enc).unwrap(), item);
    }

    #[test]
    fn padding_sizes() {
        let p = padding_item(65528).unwrap();
        assert_eq!(p.len(), 65528);
        assert!(std::str::from_utf8(&p[34..60]).unwrap().contains("$65467"));
        let item = BinlogItem::decode(&p).unwrap();
        assert!(item.is_padding());
        assert_eq!(item.argv().unwrap()[1].len(), 65467);
        assert!(padding_item(60).is_none());
        assert_eq!(padding_item(61).unwrap().len(), 61);
    }

    #[test]
    fn bad_items() {
        assert!(BinlogItem::decode(&[1, 0, 0]).is_err());
        let mut enc = BinlogItem::default().encode();
        enc[0] = 2;
        assert!(BinlogItem::decode(&enc).is_err());
        let mut enc = BinlogItem::default().encode();
        enc[30] = 200; // content length beyond buffer
        assert!(BinlogItem::decode(&enc).is_err());
        assert!(BinlogItem::decode_many(&[]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(exec in any::<u32>(), sid in any::<u32>(), lid in any::<u64>(), f in any::<u32>(),
                     o in any::<u64>(), content in prop::collection::vec(any::<u8>(), 0..200), n in 1usize..4) {
            let item = BinlogItem { exec_time: exec, server_id: sid, logic_id: lid, pos: BinlogPos::new(f, o), content };
            prop_assert_eq!(BinlogItem::decode(&item.encode()).unwrap(), item.clone());
            let mut many = Vec::new();
            for _ in 0..n { item.encode_into(&mut many); }
            prop_assert_eq!(BinlogItem::decode_many(&many).unwrap().len(), n);
        }
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = BinlogItem::decode(&bytes);
            let _ = BinlogItem::decode_many(&bytes);
        }
    }
}
