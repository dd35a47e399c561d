//! A fast path for the request a streaming slave sends most: the BinlogSync ack, decoded straight
//! from the wire into a [`BinlogAck`] without allocating (the table name is kept inline when it
//! is short; the slave's `Node` is checked, not kept: the master does not use it).
//!
//! The fast path takes only a plain, well-formed ack: `type = kBinlogSync` and a `binlog_sync`
//! body, every field exactly once with its own wire type, values as prost would read them, and
//! nothing else. Anything else (another request, unknown or repeated fields, any malformation)
//! goes to [`decode_request`](super::pb::decode_request) as before, so what the fast path accepts
//! decodes identically with prost and every error is prost's (or the required-field check's).

use super::pb::{decode_request, inner_request, BinlogOffset, InnerRequest, Type};
use super::FormatError;

/// Bytes of a table name kept inline.
const INLINE: usize = 23;

/// A table name; inline (no allocation) up to 23 bytes.
#[derive(Debug, Clone)]
pub struct TableName(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Heap(String),
}

impl TableName {
    /// `s` inline, if it fits.
    fn inline(s: &str) -> Option<TableName> {
        let mut buf = [0; INLINE];
        buf.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
        Some(TableName(Repr::Inline(s.len() as u8, buf)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(len, buf) => {
                std::str::from_utf8(&buf[..*len as usize]).expect("checked when built")
            }
            Repr::Heap(s) => s,
        }
    }
}

impl From<String> for TableName {
    fn from(s: String) -> TableName {
        TableName(Repr::Heap(s))
    }
}

impl PartialEq for TableName {
    fn eq(&self, other: &TableName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TableName {}

/// The fields of a BinlogSync request the master uses.
#[derive(Debug, Clone, PartialEq)]
pub struct BinlogAck {
    /// `table_name`.
    pub table: TableName,
    /// `partition_id`.
    pub partition_id: u32,
    /// `ack_range_start`.
    pub start: BinlogOffset,
    /// `ack_range_end`.
    pub end: BinlogOffset,
    /// `session_id`.
    pub session_id: i32,
    /// `first_send`.
    pub first_send: bool,
}

impl From<inner_request::BinlogSync> for BinlogAck {
    fn from(b: inner_request::BinlogSync) -> BinlogAck {
        BinlogAck {
            table: b.table_name.into(),
            partition_id: b.partition_id,
            start: b.ack_range_start,
            end: b.ack_range_end,
            session_id: b.session_id,
            first_send: b.first_send,
        }
    }
}

/// A decoded request: an ack from the fast path, or any request from prost.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A BinlogSync ack (fast path).
    Ack(BinlogAck),
    /// Any request, as prost decoded it (a BinlogSync the fast path did not take included).
    Other(Box<InnerRequest>),
}

/// Decodes a request body: the fast path for a plain ack, [`decode_request`] for the rest.
pub fn decode(body: &[u8]) -> Result<Request, FormatError> {
    match decode_binlog_ack(body) {
        Some(a) => Ok(Request::Ack(a)),
        None => decode_request(body).map(|r| Request::Other(Box::new(r))),
    }
}

/// The fast path alone: `None` unless `body` is a plain, well-formed BinlogSync request.
pub fn decode_binlog_ack(body: &[u8]) -> Option<BinlogAck> {
    let mut w = Wire(body);
    let (mut ty, mut sync) = (None, None);
    while !w.0.is_empty() {
        match w.key()? {
            (1, 0) if ty.is_none() => ty = Some(w.varint()?),
            (5, 2) if sync.is_none() => sync = Some(w.bytes()?),
            _ => return None,
        }
    }
    if ty? != Type::KBinlogSync as u64 {
        return None;
    }
    binlog_sync(sync?)
}

fn binlog_sync(body: &[u8]) -> Option<BinlogAck> {
    let mut w = Wire(body);
    let mut node = false;
    let (mut table, mut partition, mut start, mut end) = (None, None, None, None);
    let (mut session, mut first) = (None, None);
    while !w.0.is_empty() {
        match w.key()? {
            (1, 2) if !node => {
                if !check_node(w.bytes()?) {
                    return None;
                }
                node = true;
            }
            (2, 2) if table.is_none() => {
                table = Some(TableName::inline(std::str::from_utf8(w.bytes()?).ok()?)?)
            }
            (3, 0) if partition.is_none() => partition = Some(uint32(w.varint()?)?),
            (4, 2) if start.is_none() => start = Some(offset(w.bytes()?)?),
            (5, 2) if end.is_none() => end = Some(offset(w.bytes()?)?),
            (6, 0) if session.is_none() => session = Some(int32(w.varint()?)?),
            (7, 0) if first.is_none() => first = Some(boolean(w.varint()?)?),
            _ => return None,
        }
    }
    if !node {
        return None;
    }
    Some(BinlogAck {
        table: table?,
        partition_id: partition?,
        start: start?,
        end: end?,
        session_id: session?,
        first_send: first?,
    })
}

/// Whether a `Node` has its `ip` (UTF-8) and `port`, each once, and nothing else.
fn check_node(body: &[u8]) -> bool {
    let mut w = Wire(body);
    let (mut ip, mut port) = (false, false);
    while !w.0.is_empty() {
        match w.key() {
            Some((1, 2)) if !ip => {
                ip = w.bytes().is_some_and(|b| std::str::from_utf8(b).is_ok());
                if !ip {
                    return false;
                }
            }
            Some((2, 0)) if !port => {
                port = w.varint().and_then(int32).is_some();
                if !port {
                    return false;
                }
            }
            _ => return false,
        }
    }
    ip && port
}

/// A `BinlogOffset`: `filenum` and `offset` once, `term` and `index` at most once.
fn offset(body: &[u8]) -> Option<BinlogOffset> {
    let mut w = Wire(body);
    let (mut filenum, mut offset, mut term, mut index) = (None, None, None, None);
    while !w.0.is_empty() {
        match w.key()? {
            (1, 0) if filenum.is_none() => filenum = Some(uint32(w.varint()?)?),
            (2, 0) if offset.is_none() => offset = Some(w.varint()?),
            (3, 0) if term.is_none() => term = Some(uint32(w.varint()?)?),
            (4, 0) if index.is_none() => index = Some(w.varint()?),
            _ => return None,
        }
    }
    Some(BinlogOffset {
        filenum: filenum?,
        offset: offset?,
        term,
        index,
    })
}

/// A `uint32` as written by a conforming encoder.
fn uint32(v: u64) -> Option<u32> {
    u32::try_from(v).ok()
}

/// An `int32` as written by a conforming encoder (negatives sign-extended to 64 bits).
fn int32(v: u64) -> Option<i32> {
    i32::try_from(v as i64).ok()
}

/// A `bool` written as 0 or 1.
fn boolean(v: u64) -> Option<bool> {
    match v {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The rest of a message being read.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return None;
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.0 = &self.0[i + 1..];
                return Some(v);
            }
        }
        None
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }

    /// A length-delimited value.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (v, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(v)
    }
}
