//! File-list index ("ndx") encoding for protocol >= 30.
//!
//! Each direction of a connection keeps its own [`NdxState`]: one for what we write and one
//! for what we read.

use super::error::{ProtoError, Result};
use super::wire::{get_u8, take};

/// End of a phase / end of run.
pub const NDX_DONE: i32 = -1;
/// End of the incremental file lists (incremental recursion only).
pub const NDX_FLIST_EOF: i32 = -2;
/// Deletion statistics follow (protocol 31).
pub const NDX_DEL_STATS: i32 = -3;
/// Base of the incremental sub-list indices.
pub const NDX_FLIST_OFFSET: i32 = -101;

/// The running "previous value" state of one ndx direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdxState {
    prev_pos: i32,
    prev_neg: i32,
}

impl Default for NdxState {
    fn default() -> Self {
        NdxState {
            prev_pos: -1,
            prev_neg: 1,
        }
    }
}

impl NdxState {
    /// Append the compact encoding of `ndx` and update the state.
    pub fn encode(&mut self, out: &mut Vec<u8>, ndx: i32) {
        let (v, diff) = if ndx >= 0 {
            let d = i64::from(ndx) - i64::from(self.prev_pos);
            self.prev_pos = ndx;
            (ndx, d)
        } else if ndx == NDX_DONE {
            out.push(0);
            return;
        } else {
            out.push(0xFF);
            let v = ndx.checked_neg().unwrap_or(i32::MAX);
            let d = i64::from(v) - i64::from(self.prev_neg);
            self.prev_neg = v;
            (v, d)
        };
        if diff > 0 && diff < 0xFE {
            out.push(diff as u8);
        } else if !(0..=0x7FFF).contains(&diff) {
            out.extend_from_slice(&[
                0xFE,
                ((v >> 24) as u8) | 0x80,
                v as u8,
                (v >> 8) as u8,
                (v >> 16) as u8,
            ]);
        } else {
            out.extend_from_slice(&[0xFE, (diff >> 8) as u8, diff as u8]);
        }
    }

    /// Decode one ndx from the cursor. On `Incomplete` neither the cursor nor the state moves.
    pub fn decode(&mut self, buf: &mut &[u8]) -> Result<i32> {
        let mut c = *buf;
        let mut b0 = get_u8(&mut c)?;
        let negative = b0 == 0xFF;
        if negative {
            b0 = get_u8(&mut c)?;
        } else if b0 == 0 {
            *buf = c;
            return Ok(NDX_DONE);
        }
        let prev = if negative {
            self.prev_neg
        } else {
            self.prev_pos
        };
        let num: i64 = if b0 == 0xFE {
            let b = take(&mut c, 2)?;
            if b[0] & 0x80 != 0 {
                let rest = take(&mut c, 2)?;
                i64::from(u32::from_le_bytes([b[1], rest[0], rest[1], b[0] & 0x7F]))
            } else {
                (i64::from(b[0]) << 8) + i64::from(b[1]) + i64::from(prev)
            }
        } else {
            i64::from(b0) + i64::from(prev)
        };
        if num > i64::from(i32::MAX) || num < 0 {
            return Err(ProtoError::invalid(format!(
                "file index {num} out of range"
            )));
        }
        let num = num as i32;
        *buf = c;
        if negative {
            self.prev_neg = num;
            Ok(-num)
        } else {
            self.prev_pos = num;
            Ok(num)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        let mut w = NdxState::default();
        let mut out = vec![];
        for n in [1, 2, NDX_DONE, NDX_DEL_STATS, 2, 300, 70000, 70000] {
            w.encode(&mut out, n);
        }
        assert_eq!(
            out,
            [
                2, 1, 0, 0xFF, 2, 0xFE, 0, 0, 0xFE, 0x01, 0x2A, 0xFE, 0x80, 0x70, 0x11, 0x01, 0xFE,
                0, 0
            ]
        );
        let mut r = NdxState::default();
        let mut c = &out[..];
        let got: Vec<i32> = (0..8).map(|_| r.decode(&mut c).unwrap()).collect();
        assert_eq!(got, [1, 2, NDX_DONE, NDX_DEL_STATS, 2, 300, 70000, 70000]);
        assert!(c.is_empty());
    }

    proptest! {
        #[test]
        fn roundtrip(seq in proptest::collection::vec(prop_oneof![0i32..1_000_000, Just(NDX_DONE), Just(NDX_DEL_STATS), Just(NDX_FLIST_EOF), any::<i32>().prop_map(|v| v.max(-1_000_000))], 0..50)) {
            let mut w = NdxState::default();
            let mut out = vec![];
            for &n in &seq { w.encode(&mut out, n); }
            let mut r = NdxState::default();
            let mut c = &out[..];
            for &n in &seq { prop_assert_eq!(r.decode(&mut c).unwrap(), n); }
            prop_assert!(c.is_empty());
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut r = NdxState::default();
            let mut c = &b[..];
            while r.decode(&mut c).is_ok() { if c.is_empty() { break; } }
        }
    }
}
