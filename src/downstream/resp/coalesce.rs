//! Runs of plain `set key value` sent as one `MSET` (`[[targets]] coalesce_sets`, on by default).
//!
//! `SET k v` without options and `MSET k v` do the same to a key in Redis: replace the value
//! of whatever type, drop any TTL. `MSET` sets its pairs left to right, so `MSET k 1 k 2`
//! leaves `2` exactly as the two `SET`s would, and a key's order is kept. For the target it is
//! one command to parse, queue and answer instead of hundreds, and `MSET` is atomic: a batch
//! made only of plain `set`s carries its marker as the last pair of its `MSET`, exactly once
//! without `MULTI` (see [`super::writer`]).
//!
//! The journal holds each `set` as the RESP array `*3 $3 set $<klen> <key> $<vlen> <value>`;
//! the pairs of an `MSET` are that array without its first 13 bytes, so a run is built by
//! copying, with nothing parsed.

use super::wire::{put_bulk, put_head};
use crate::formats::BinlogPos;
use bytes::BytesMut;

/// Bytes before the key of a 3-element `set` array: `*3\r\n$3\r\nset\r\n`.
const SET_HEAD: usize = 13;

/// The `key value` pairs of `wire` if it is exactly one plain `set key value` command.
pub fn plain_set_pairs(wire: &[u8]) -> Option<&[u8]> {
    if wire.len() > SET_HEAD
        && &wire[..8] == b"*3\r\n$3\r\n"
        && wire[8..11].eq_ignore_ascii_case(b"set")
        && &wire[11..13] == b"\r\n"
    {
        Some(&wire[SET_HEAD..])
    } else {
        None
    }
}

/// A run of `set`s being gathered into one `MSET`.
#[derive(Debug, Default)]
pub struct SetRun {
    pairs: Vec<u8>,
    n: usize,
    first: Option<BinlogPos>,
}

impl SetRun {
    /// Sets gathered.
    pub fn len(&self) -> usize {
        self.n
    }

    /// No set gathered.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bytes gathered.
    pub fn bytes(&self) -> usize {
        self.pairs.len()
    }

    /// Journal position of the run's first `set`.
    pub fn first(&self) -> Option<BinlogPos> {
        self.first
    }

    /// Adds the pairs of one `set` (from [`plain_set_pairs`]) found at `at`.
    pub fn push(&mut self, pairs: &[u8], at: Option<BinlogPos>) {
        if self.n == 0 {
            self.first = at;
        }
        self.pairs.extend_from_slice(pairs);
        self.n += 1;
    }

    /// Writes the run as one `MSET` into `out`, followed by the `extra` pairs (marker keys and
    /// values), and empties it. Returns how many `set`s it held.
    pub fn flush(&mut self, out: &mut BytesMut, extra: &[(&[u8], &[u8])]) -> usize {
        let n = self.n;
        put_head(out, b'*', 1 + 2 * (n + extra.len()));
        out.extend_from_slice(b"$4\r\nMSET\r\n");
        out.extend_from_slice(&self.pairs);
        for (k, v) in extra {
            put_bulk(out, k);
            put_bulk(out, v);
        }
        self.pairs.clear();
        self.n = 0;
        self.first = None;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::resp::{encode_argv, parse_argv_exact};

    #[test]
    fn only_plain_three_word_sets_are_recognised() {
        assert_eq!(
            plain_set_pairs(&encode_argv(&["set", "k", "v"])),
            Some(&b"$1\r\nk\r\n$1\r\nv\r\n"[..])
        );
        assert!(plain_set_pairs(&encode_argv(&["SET", "k", "v"])).is_some());
        for other in [
            encode_argv(&["set", "k", "v", "ex", "10"]),
            encode_argv(&["setnx", "k", "v"]),
            encode_argv(&["setex", "k", "10", "v"]),
            encode_argv(&["get", "k"]),
            encode_argv(&["sadd", "k", "v"]),
            encode_argv(&["set", "k"]),
        ] {
            assert_eq!(plain_set_pairs(&other), None, "{other:?}");
        }
    }

    #[test]
    fn a_run_becomes_one_mset_with_its_extra_pairs_last() {
        let mut run = SetRun::default();
        let at = BinlogPos::new(3, 100);
        for (k, v) in [("a", "1"), ("b", ""), ("a", "2")] {
            let wire = encode_argv(&["set", k, v]);
            run.push(plain_set_pairs(&wire).unwrap(), Some(at));
        }
        assert_eq!((run.len(), run.first()), (3, Some(at)));
        let mut out = BytesMut::new();
        assert_eq!(run.flush(&mut out, &[(b"m", b"3 100")]), 3);
        let argv = parse_argv_exact(&out).unwrap();
        let want: Vec<&[u8]> = vec![b"MSET", b"a", b"1", b"b", b"", b"a", b"2", b"m", b"3 100"];
        assert_eq!(argv, want.iter().map(|p| p.to_vec()).collect::<Vec<_>>());
        assert!(run.is_empty() && run.bytes() == 0 && run.first().is_none());
    }
}
