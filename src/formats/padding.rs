//! What a new Pika writes when it sets its producer position without data, after a full sync or
//! when an operator seeds a manifest (`Binlog::SetProducerStatus(filenum, offset)`): the file
//! `write2file<filenum>` filled from 0 to `offset` with one filler record per 64 KiB chunk.
//!
//! - 3.1/3.2: FULL (type 1) records whose payload is a padding item (`*2 $7 padding $NNNNN ***`),
//!   all header fields zero; a chunk too small for a padding item (payload < 61 bytes) or for a
//!   header (< 8 bytes) stops the filling, and the stored offset is what was written.
//! - 3.3+: type-6 records of `*` bytes, no minimum payload.
//! - Both: a requested offset below 4 becomes 0; 4–7 writes nothing and keeps the offset.

use super::item::padding_item;
use super::record::{header, RecordType, BLOCK_SIZE, HEADER_LEN};

/// Which Pika generation's filler to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingStyle {
    /// 3.1 and 3.2: type-1 records holding padding items.
    Items,
    /// 3.3 and later: type-6 records of `*`.
    Stars,
}

/// The file image and the offset Pika would store in the manifest for a requested `offset`.
pub fn producer_padding(offset: u64, style: PaddingStyle, time: u32) -> (Vec<u8>, u64) {
    if offset < 4 {
        return (Vec::new(), 0);
    }
    if offset < HEADER_LEN {
        return (Vec::new(), offset);
    }
    let mut out = Vec::with_capacity(offset as usize);
    let mut written = 0u64;
    while written < offset {
        let chunk = (BLOCK_SIZE - written % BLOCK_SIZE).min(offset - written);
        if chunk < HEADER_LEN {
            break;
        }
        let payload_len = (chunk - HEADER_LEN) as usize;
        match style {
            PaddingStyle::Items => {
                let Some(item) = padding_item(payload_len) else {
                    break;
                };
                out.extend_from_slice(&header(payload_len as u32, time, RecordType::Full));
                out.extend_from_slice(&item);
            }
            PaddingStyle::Stars => {
                out.extend_from_slice(&header(payload_len as u32, time, RecordType::Bad));
                out.resize(out.len() + payload_len, b'*');
            }
        }
        written += chunk;
    }
    (out, written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::binlog_file::{decode_file, EntryBody, Flavor};

    #[test]
    fn sizes_and_readback() {
        for style in [PaddingStyle::Items, PaddingStyle::Stars] {
            let (img, stored) = producer_padding(156_700, style, 9);
            assert_eq!(stored, 156_700);
            assert_eq!(img.len(), 156_700);
            let (entries, err) = decode_file(&img, 0, Flavor::New);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(entries.len(), 3);
            assert_eq!(entries[2].end, 156_700);
            if style == PaddingStyle::Items {
                assert!(matches!(&entries[0].body, EntryBody::Items(v) if v[0].is_padding()));
            } else {
                assert_eq!(entries[0].body, EntryBody::Padding(65528));
            }
        }
    }

    #[test]
    fn small_remainders() {
        assert_eq!(producer_padding(3, PaddingStyle::Items, 0), (vec![], 0));
        assert_eq!(producer_padding(6, PaddingStyle::Items, 0), (vec![], 6));
        // 65536 + 30: the 30-byte tail cannot hold a padding item (needs 69).
        let (img, stored) = producer_padding(65_566, PaddingStyle::Items, 0);
        assert_eq!(stored, 65_536);
        assert_eq!(img.len(), 65_536);
        // 3.3+ has no minimum beyond the header.
        assert_eq!(producer_padding(65_566, PaddingStyle::Stars, 0).1, 65_566);
        assert_eq!(producer_padding(65_540, PaddingStyle::Stars, 0).1, 65_536);
    }
}
