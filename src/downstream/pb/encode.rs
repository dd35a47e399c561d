//! A BinlogSync frame written straight into a reused buffer: the bytes prost would produce for
//! [`frames::binlog_sync`](super::frames::binlog_sync) of [`frames::binlog_item`]s (same fields,
//! same order), without building the messages. The fan-out's per-slave, per-item cost is then a
//! few varints and one copy of the item into the slave's buffer: no allocation (the buffer keeps
//! its capacity from frame to frame). Several frames may be built one after another in the
//! buffer and written with one call ([`BinlogFrame::pending`]).
//!
//! [`frames::binlog_item`]: super::frames::binlog_item

use crate::formats::pb::{StatusCode, Type};
use crate::formats::BinlogPos;

/// Builds frames one at a time in a buffer kept across frames.
#[derive(Debug, Default)]
pub struct BinlogFrame {
    /// Finished frames not taken yet, then the frame being built.
    buf: Vec<u8>,
    /// Where the frame being built starts.
    start: usize,
    /// End of the finished frames.
    done: usize,
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A varint field (`tag` = field << 3).
fn field_u64(buf: &mut Vec<u8>, field: u8, v: u64) {
    buf.push(field << 3);
    varint(buf, v);
}

fn field_u64_len(v: u64) -> usize {
    1 + varint_len(v)
}

/// A length-delimited field header.
fn field_len(buf: &mut Vec<u8>, field: u8, len: usize) {
    buf.push((field << 3) | 2);
    varint(buf, len as u64);
}

fn field_len_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

impl BinlogFrame {
    /// Starts a frame after the finished ones: length placeholder, `type = kBinlogSync`,
    /// `code = kOk`.
    pub fn begin(&mut self) {
        self.start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        field_u64(&mut self.buf, 1, Type::KBinlogSync as u64);
        field_u64(&mut self.buf, 2, StatusCode::KOk as u64);
    }

    /// Appends one `BinlogSync` element (as [`frames::binlog_item`](super::frames::binlog_item)
    /// with partition id 0).
    pub fn item(
        &mut self,
        table: &str,
        end: BinlogPos,
        term_index: Option<(u32, u64)>,
        binlog: &[u8],
        session_id: i32,
    ) {
        let partition = field_len_len(table.len()) + field_u64_len(0);
        let mut offset = field_u64_len(end.filenum as u64) + field_u64_len(end.offset);
        if let Some((t, i)) = term_index {
            offset += field_u64_len(t as u64) + field_u64_len(i);
        }
        // int32 fields are sign-extended to 64 bits on the wire.
        let session = session_id as i64 as u64;
        let element = field_len_len(partition)
            + field_len_len(offset)
            + field_len_len(binlog.len())
            + field_u64_len(session);
        let b = &mut self.buf;
        b.reserve(field_len_len(element));
        field_len(b, 7, element);
        field_len(b, 1, partition);
        field_len(b, 1, table.len());
        b.extend_from_slice(table.as_bytes());
        field_u64(b, 2, 0);
        field_len(b, 2, offset);
        field_u64(b, 1, end.filenum as u64);
        field_u64(b, 2, end.offset);
        if let Some((t, i)) = term_index {
            field_u64(b, 3, t as u64);
            field_u64(b, 4, i);
        }
        field_len(b, 3, binlog.len());
        b.extend_from_slice(binlog);
        field_u64(b, 4, session);
    }

    /// Ends the frame: its length prefixed, ready to write. Returns it.
    pub fn finish(&mut self) -> &[u8] {
        let at = self.start;
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.done = self.buf.len();
        &self.buf[at..]
    }

    /// Drops the frame being built (begun, not finished).
    pub fn cancel(&mut self) {
        self.buf.truncate(self.done);
    }

    /// Every finished frame not taken yet, in order, for one write.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.done]
    }

    /// Forgets the finished frames (after writing them); keeps the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.done = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::pb::frames;
    use crate::formats::pb::{decode_response, encode_frame, split_frame};

    type Item = (&'static str, BinlogPos, Option<(u32, u64)>, Vec<u8>, i32);

    fn check(items: &[Item]) {
        let mut f = BinlogFrame::default();
        // A previous, longer frame must leave nothing behind.
        f.begin();
        f.item("db15", BinlogPos::new(9, 9), None, &[7; 300], 1);
        f.finish();
        f.clear();
        f.begin();
        for (t, e, ti, b, s) in items {
            f.item(t, *e, *ti, b, *s);
        }
        let ours = f.finish().to_vec();
        let msg = frames::binlog_sync(
            items
                .iter()
                .map(|(t, e, ti, b, s)| frames::binlog_item(t, *e, *ti, b.clone(), *s))
                .collect(),
        );
        assert_eq!(ours, encode_frame(&msg), "items {items:?}");
        assert_eq!(decode_response(&ours[4..]).unwrap(), msg);
    }

    #[test]
    fn same_bytes_as_the_prost_messages() {
        check(&[]);
        check(&[("db0", BinlogPos::default(), None, Vec::new(), 0)]);
        check(&[("db0", BinlogPos::default(), Some((0, 0)), Vec::new(), -1)]);
        check(&[(
            "db0",
            BinlogPos::new(3, 1 << 40),
            Some((1, u64::MAX)),
            vec![0xAB; 200],
            i32::MIN,
        )]);
        let big = vec![1u8; 70_000];
        check(&[
            ("db1", BinlogPos::new(0, 127), None, big.clone(), i32::MAX),
            (
                "db10",
                BinlogPos::new(u32::MAX, 128),
                Some((1, 300)),
                big,
                5,
            ),
            ("db2", BinlogPos::new(1, 16_384), None, vec![2; 127], -2),
        ]);
    }

    #[test]
    fn frames_in_a_row_are_written_together_and_a_cancelled_one_leaves_nothing() {
        let mut f = BinlogFrame::default();
        let mut want = Vec::new();
        for k in 0..3u64 {
            f.begin();
            f.item("db0", BinlogPos::new(0, k), None, &[k as u8; 10], 0);
            want.extend_from_slice(f.finish());
            f.begin();
            f.cancel();
        }
        assert_eq!(f.pending(), want.as_slice());
        let mut at = 0;
        for k in 0..3u64 {
            let (body, used) = split_frame(&want[at..], 1 << 20).unwrap().unwrap();
            let msg = frames::binlog_sync(vec![frames::binlog_item(
                "db0",
                BinlogPos::new(0, k),
                None,
                vec![k as u8; 10],
                0,
            )]);
            assert_eq!(decode_response(body).unwrap(), msg);
            at += used;
        }
        assert_eq!(at, want.len());
        f.clear();
        assert!(f.pending().is_empty());
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }
}
