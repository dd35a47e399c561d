//! The record layer of `write2file<N>` (identical in 2.3.x, 3.0.x and 3.x): 64 KiB blocks, each
//! physical record an 8-byte header (`u24` length, `u32` write time, `u8` type, little-endian) plus
//! a fragment; a logical record is one FULL fragment or FIRST, MIDDLE…, LAST. No checksum.
//!
//! Writer rule (Pika's `Produce`): if fewer than 8 bytes remain in the block they are zero-filled;
//! when exactly 8 remain a zero-length header is written there and the record continues in the
//! next block. A reader skips block tails of ≤ 8 bytes and does not insist on FIRST before
//! MIDDLE/LAST. A header of type 0 or length 0 ends the data (pre-allocated zero tails).

use super::FormatError;

/// Block size of binlog files.
pub const BLOCK_SIZE: u64 = 65536;
/// Physical record header size.
pub const HEADER_LEN: u64 = 8;
/// Largest fragment one physical record can carry.
pub const MAX_FRAGMENT: u64 = BLOCK_SIZE - HEADER_LEN;

/// Physical record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// 0: zero / pre-allocated space.
    Zero = 0,
    /// 1: a whole logical record.
    Full = 1,
    /// 2: first fragment.
    First = 2,
    /// 3: middle fragment.
    Middle = 3,
    /// 4: last fragment.
    Last = 4,
    /// 5: internal end-of-file marker.
    Eof = 5,
    /// 6: 3.3+ writes padding records with this type (payload of `*`).
    Bad = 6,
}

impl RecordType {
    fn from_u8(v: u8) -> Option<RecordType> {
        Some(match v {
            0 => RecordType::Zero,
            1 => RecordType::Full,
            2 => RecordType::First,
            3 => RecordType::Middle,
            4 => RecordType::Last,
            5 => RecordType::Eof,
            6 => RecordType::Bad,
            _ => return None,
        })
    }
}

/// Encodes a physical record header.
pub fn header(len: u32, time: u32, ty: RecordType) -> [u8; 8] {
    let l = len.to_le_bytes();
    let t = time.to_le_bytes();
    [l[0], l[1], l[2], t[0], t[1], t[2], t[3], ty as u8]
}

/// Appends the physical records of one logical record of `payload`, written at file offset
/// `offset` with write time `time`, to `out`. Returns the offset just past the record (the
/// producer position Pika would report).
pub fn encode_record(offset: u64, payload: &[u8], time: u32, out: &mut Vec<u8>) -> u64 {
    let mut offset = offset;
    let mut left = payload;
    let mut begin = true;
    loop {
        let room = BLOCK_SIZE - offset % BLOCK_SIZE;
        if room < HEADER_LEN {
            out.resize(out.len() + room as usize, 0);
            offset += room;
        }
        let avail = (BLOCK_SIZE - offset % BLOCK_SIZE - HEADER_LEN) as usize;
        let frag = left.len().min(avail);
        let end = frag == left.len();
        let ty = match (begin, end) {
            (true, true) => RecordType::Full,
            (true, false) => RecordType::First,
            (false, true) => RecordType::Last,
            (false, false) => RecordType::Middle,
        };
        out.extend_from_slice(&header(frag as u32, time, ty));
        out.extend_from_slice(&left[..frag]);
        offset += HEADER_LEN + frag as u64;
        left = &left[frag..];
        begin = false;
        if end {
            return offset;
        }
    }
}

/// Where a logical record of `len` payload bytes written at `offset` ends (the arithmetic of
/// [`encode_record`] without the bytes; "Option A" in the old-protocol spec).
pub fn record_end(offset: u64, len: u64) -> u64 {
    let mut offset = offset;
    let mut left = len;
    loop {
        let room = BLOCK_SIZE - offset % BLOCK_SIZE;
        if room < HEADER_LEN {
            offset += room;
        }
        let avail = BLOCK_SIZE - offset % BLOCK_SIZE - HEADER_LEN;
        let frag = left.min(avail);
        offset += HEADER_LEN + frag;
        left -= frag;
        if left == 0 {
            return offset;
        }
    }
}

/// What a logical record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Normal data (an item, or 2.3.x RESP arrays).
    Data,
    /// A 3.3+ type-6 padding record (payload of `*`).
    Padding,
    /// Header-less filler: a block region of raw spaces written by 2.3.x/3.0.0–3.0.9
    /// `AppendBlank` and by manifest_generator. Not readable binlog.
    Blank,
}

/// One logical record read back from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalRecord {
    /// File offset where the record begins (the producer position before it was written).
    pub start: u64,
    /// File offset just past the record.
    pub end: u64,
    /// Write time of its first physical record.
    pub time: u32,
    /// The reassembled payload.
    pub payload: Vec<u8>,
    /// Data, padding or blank filler.
    pub kind: RecordKind,
}

/// Result of reading at one position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A complete logical record.
    Record(LogicalRecord),
    /// End of data: a zero header, or the buffer ends exactly at a record boundary.
    End,
    /// The buffer ends inside a record (a torn tail, or more bytes not written yet).
    Incomplete,
}

/// Reads the logical record that starts at file offset `offset`, from `buf` whose first byte is
/// at file offset `base`.
pub fn read_record(buf: &[u8], base: u64, offset: u64) -> Result<ReadOutcome, FormatError> {
    if offset < base {
        return Err(FormatError::invalid(
            "binlog read",
            format!("offset {offset} before buffer start {base}"),
        ));
    }
    let start = offset;
    let mut pos = offset;
    let mut payload = Vec::new();
    let mut time = None;
    loop {
        // Block tails of <= 8 bytes hold zeros or a zero-length FIRST header: skip them. The
        // record's `start` stays where the caller asked (positions count the skipped tail).
        if BLOCK_SIZE - pos % BLOCK_SIZE <= HEADER_LEN {
            pos += BLOCK_SIZE - pos % BLOCK_SIZE;
        }
        let room = BLOCK_SIZE - pos % BLOCK_SIZE;
        let rel = (pos - base) as usize;
        if rel >= buf.len() {
            return Ok(if time.is_none() && payload.is_empty() {
                ReadOutcome::End
            } else {
                ReadOutcome::Incomplete
            });
        }
        if buf.len() - rel < HEADER_LEN as usize {
            // Partial header: zero bytes mean a pre-allocated tail, anything else is torn.
            return Ok(if buf[rel..].iter().all(|&b| b == 0) && time.is_none() {
                ReadOutcome::End
            } else {
                ReadOutcome::Incomplete
            });
        }
        let h = &buf[rel..rel + 8];
        if time.is_none() && h.iter().all(|&b| b == b' ') {
            // Header-less blank filler up to the end of the block.
            let end = pos + (BLOCK_SIZE - pos % BLOCK_SIZE);
            let have = (buf.len() - rel) as u64;
            if have < end - pos {
                return Ok(ReadOutcome::Incomplete);
            }
            return Ok(ReadOutcome::Record(LogicalRecord {
                start,
                end,
                time: 0,
                payload: Vec::new(),
                kind: RecordKind::Blank,
            }));
        }
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as u64;
        let t = u32::from_le_bytes([h[3], h[4], h[5], h[6]]);
        let ty = RecordType::from_u8(h[7]).ok_or_else(|| {
            FormatError::invalid(
                "binlog record",
                format!("unknown record type {} at offset {pos}", h[7]),
            )
        })?;
        if ty == RecordType::Zero || (len == 0 && ty != RecordType::First) {
            if time.is_none() {
                return Ok(ReadOutcome::End);
            }
            return Err(FormatError::invalid(
                "binlog record",
                format!("record starting at {start} cut by an empty header at {pos}"),
            ));
        }
        if len > room - HEADER_LEN {
            return Err(FormatError::invalid(
                "binlog record",
                format!(
                    "fragment of {len} bytes at offset {pos} crosses the 64 KiB block boundary"
                ),
            ));
        }
        let body = rel + HEADER_LEN as usize;
        if buf.len() < body + len as usize {
            return Ok(ReadOutcome::Incomplete);
        }
        time.get_or_insert(t);
        payload.extend_from_slice(&buf[body..body + len as usize]);
        pos += HEADER_LEN + len;
        match ty {
            RecordType::Full | RecordType::Last | RecordType::Bad => {
                return Ok(ReadOutcome::Record(LogicalRecord {
                    start,
                    end: pos,
                    time: time.unwrap_or(0),
                    payload,
                    kind: if ty == RecordType::Bad {
                        RecordKind::Padding
                    } else {
                        RecordKind::Data
                    },
                }))
            }
            RecordType::First | RecordType::Middle => continue,
            RecordType::Eof => {
                return Err(FormatError::invalid(
                    "binlog record",
                    format!("EOF marker record at offset {pos}"),
                ))
            }
            RecordType::Zero => unreachable!("handled above"),
        }
    }
}

/// Iterates the logical records of a whole file image from `offset`, stopping at end of data.
/// A torn or corrupt record ends the iteration with an error naming its offset.
pub fn records(
    buf: &[u8],
    offset: u64,
) -> impl Iterator<Item = Result<LogicalRecord, FormatError>> + '_ {
    let mut pos = Some(offset);
    std::iter::from_fn(move || {
        let p = pos?;
        match read_record(buf, 0, p) {
            Ok(ReadOutcome::Record(r)) => {
                pos = Some(r.end);
                Some(Ok(r))
            }
            Ok(ReadOutcome::End) => {
                pos = None;
                None
            }
            Ok(ReadOutcome::Incomplete) => {
                pos = None;
                Some(Err(FormatError::Truncated {
                    what: "binlog record (torn tail)",
                    need: 1,
                }))
            }
            Err(e) => {
                pos = None;
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exactly_eight_left_emits_empty_first() {
        let mut out = vec![0u8; (BLOCK_SIZE - 8) as usize];
        let end = encode_record(BLOCK_SIZE - 8, b"hello", 7, &mut out);
        assert_eq!(
            &out[(BLOCK_SIZE - 8) as usize..BLOCK_SIZE as usize],
            &header(0, 7, RecordType::First)
        );
        assert_eq!(out[BLOCK_SIZE as usize + 7], RecordType::Last as u8);
        assert_eq!(end, BLOCK_SIZE + 8 + 5);
        assert_eq!(record_end(BLOCK_SIZE - 8, 5), end);
        match read_record(&out, 0, BLOCK_SIZE - 8).unwrap() {
            ReadOutcome::Record(r) => {
                assert_eq!(r.payload, b"hello");
                assert_eq!(r.end, end);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fewer_than_eight_left_zero_fill() {
        let mut out = vec![0u8; (BLOCK_SIZE - 3) as usize];
        let end = encode_record(BLOCK_SIZE - 3, b"x", 1, &mut out);
        assert_eq!(end, BLOCK_SIZE + 9);
        assert_eq!(out.len() as u64, end);
    }

    #[test]
    fn zero_tail_is_end() {
        let mut out = Vec::new();
        let end = encode_record(0, b"abc", 1, &mut out);
        out.resize(4096, 0);
        let recs: Vec<_> = records(&out, 0).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].end, end);
    }

    #[test]
    fn torn_and_garbage() {
        let mut out = Vec::new();
        encode_record(0, &[9u8; 100000], 1, &mut out);
        assert_eq!(
            read_record(&out[..70000], 0, 0).unwrap(),
            ReadOutcome::Incomplete
        );
        let mut bad = out.clone();
        bad[7] = 9;
        assert!(read_record(&bad, 0, 0).is_err());
        let mut big = out.clone();
        big[0] = 0xff;
        big[1] = 0xff;
        big[2] = 0x01; // fragment over the block
        assert!(read_record(&big, 0, 0).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(start in 0u64..200_000, sizes in prop::collection::vec(1usize..150_000, 1..6)) {
            let mut out = vec![0u8; start as usize];
            let mut ends = Vec::new();
            let mut off = start;
            for (i, s) in sizes.iter().enumerate() {
                let payload = vec![(i as u8).wrapping_add(1); *s];
                let e = encode_record(off, &payload, 5, &mut out);
                prop_assert_eq!(e, record_end(off, *s as u64));
                prop_assert_eq!(out.len() as u64, e);
                ends.push(e);
                off = e;
            }
            let mut pos = start;
            for (i, s) in sizes.iter().enumerate() {
                match read_record(&out, 0, pos).unwrap() {
                    ReadOutcome::Record(r) => {
                        prop_assert_eq!(r.payload.len(), *s);
                        prop_assert_eq!(r.end, ends[i]);
                        pos = r.end;
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(read_record(&out, 0, pos).unwrap(), ReadOutcome::End);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), off in 0u64..600) {
            let _ = read_record(&bytes, 0, off);
            let _ = records(&bytes, 0).count();
        }
    }
}
