//! Primitive encodings: little-endian ints, varint / varlong, vstring.
//!
//! Decoders take a cursor (`&mut &[u8]`) and advance it only on success; on a short
//! buffer they return [`ProtoError::Incomplete`] and leave it untouched.

use super::error::{ProtoError, Result};

/// Number of extra bytes announced by a varint/varlong lead byte (its leading 1-bits, max 6).
pub fn var_extra_bytes(lead: u8) -> usize {
    (lead.leading_ones() as usize).min(6)
}

/// Take `n` bytes from the cursor.
pub fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(ProtoError::Incomplete);
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// Read one byte.
pub fn get_u8(buf: &mut &[u8]) -> Result<u8> {
    Ok(take(buf, 1)?[0])
}

/// Read a little-endian u16 ("shortint").
pub fn get_u16(buf: &mut &[u8]) -> Result<u16> {
    let b = take(buf, 2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

/// Read a little-endian i32 ("int").
pub fn get_i32(buf: &mut &[u8]) -> Result<i32> {
    let b = take(buf, 4)?;
    Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decode a varlong with `min` mandatory bytes (3 for sizes, 4 for times).
pub fn get_varlong(buf: &mut &[u8], min: usize) -> Result<i64> {
    let mut c = *buf;
    let head = take(&mut c, min)?;
    let lead = head[0];
    let extra = var_extra_bytes(lead);
    let more = take(&mut c, extra)?;
    let mut bytes = [0u8; 16];
    let mut n = 0;
    for &b in head[1..].iter().chain(more.iter()) {
        bytes[n] = b;
        n += 1;
    }
    bytes[n] = if extra == 0 {
        lead
    } else {
        lead & ((1u16 << (8 - extra)) - 1) as u8
    };
    if bytes[8..].iter().any(|&b| b != 0) {
        return Err(ProtoError::invalid("varlong overflows 64 bits"));
    }
    *buf = c;
    let mut v = [0u8; 8];
    v.copy_from_slice(&bytes[..8]);
    Ok(i64::from_le_bytes(v))
}

/// Decode a varint (an i32; at most 4 extra bytes).
pub fn get_varint(buf: &mut &[u8]) -> Result<i32> {
    let lead = *buf.first().ok_or(ProtoError::Incomplete)?;
    let extra = var_extra_bytes(lead);
    if extra > 4 {
        return Err(ProtoError::invalid("varint overflow"));
    }
    let v = get_varlong(buf, 1)?;
    // As rsync does, anything above the low 32 bits is dropped.
    Ok(v as u32 as i32)
}

/// Decode a vstring (1- or 2-byte length, then bytes), capped at `max` bytes.
pub fn get_vstring<'a>(buf: &mut &'a [u8], max: usize) -> Result<&'a [u8]> {
    let mut c = *buf;
    let b0 = get_u8(&mut c)? as usize;
    let len = if b0 & 0x80 != 0 {
        ((b0 & 0x7F) << 8) | get_u8(&mut c)? as usize
    } else {
        b0
    };
    if len > max {
        return Err(ProtoError::Limit(format!(
            "string of {len} bytes (max {max})"
        )));
    }
    let s = take(&mut c, len)?;
    *buf = c;
    Ok(s)
}

/// Append a little-endian u16.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Append a little-endian i32.
pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Append a varlong with `min` mandatory bytes, in the shortest form.
pub fn put_varlong(out: &mut Vec<u8>, v: i64, min: usize) {
    let mut b = [0u8; 9];
    b[1..9].copy_from_slice(&v.to_le_bytes());
    let mut cnt = 8usize;
    while cnt > min && b[cnt] == 0 {
        cnt -= 1;
    }
    let bit: u32 = 1 << (7 + min - cnt);
    if u32::from(b[cnt]) >= bit {
        cnt += 1;
        b[0] = !((bit - 1) as u8);
    } else if cnt > min {
        b[0] = b[cnt] | !((bit * 2 - 1) as u8);
    } else {
        b[0] = b[cnt];
    }
    out.extend_from_slice(&b[..cnt]);
}

/// Append a varint in the shortest form.
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    let mut b = [0u8; 5];
    b[1..5].copy_from_slice(&v.to_le_bytes());
    let mut cnt = 4usize;
    while cnt > 1 && b[cnt] == 0 {
        cnt -= 1;
    }
    let bit: u32 = 1 << (8 - cnt);
    if u32::from(b[cnt]) >= bit {
        cnt += 1;
        b[0] = !((bit - 1) as u8);
    } else if cnt > 1 {
        b[0] = b[cnt] | !((bit * 2 - 1) as u8);
    } else {
        b[0] = b[cnt];
    }
    out.extend_from_slice(&b[..cnt]);
}

/// Append a vstring. Strings longer than 0x7FFF bytes are truncated (callers never send them).
pub fn put_vstring(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(0x7FFF)];
    if s.len() > 0x7F {
        out.push(0x80 | (s.len() >> 8) as u8);
        out.push(s.len() as u8);
    } else {
        out.push(s.len() as u8);
    }
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn spec_examples() {
        for (h, v) in [
            ("00", 0),
            ("01", 1),
            ("8098", 0x98),
            ("81ff", 0x1FF),
            ("c0feff", 65534),
            ("f032157b29", 695932210),
            ("f0feffffff", -2),
        ] {
            let b = hex(h);
            assert_eq!(get_varint(&mut &b[..]).unwrap(), v, "{h}");
            let mut out = vec![];
            put_varint(&mut out, v);
            assert_eq!(out, b, "{h}");
        }
        for (h, v) in [
            ("000010", 4096),
            ("000800", 8),
            ("100000", 1 << 20),
            ("84000000", 64 << 20),
        ] {
            let b = hex(h);
            assert_eq!(get_varlong(&mut &b[..], 3).unwrap(), v, "{h}");
            let mut out = vec![];
            put_varlong(&mut out, v, 3);
            assert_eq!(out, b);
        }
        let b = hex("65257d93");
        assert_eq!(get_varlong(&mut &b[..], 4).unwrap(), 1704164645);
    }

    #[test]
    fn short_input_is_incomplete_and_cursor_untouched() {
        let b = hex("c0fe");
        let mut c = &b[..];
        assert!(matches!(get_varint(&mut c), Err(ProtoError::Incomplete)));
        assert_eq!(c.len(), 2);
        assert!(matches!(
            get_varint(&mut &[0xF8u8, 0, 0, 0, 0, 0][..]),
            Err(ProtoError::Invalid(_))
        ));
    }

    proptest! {
        #[test]
        fn varint_roundtrip(v in any::<i32>()) {
            let mut out = vec![];
            put_varint(&mut out, v);
            let mut c = &out[..];
            prop_assert_eq!(get_varint(&mut c).unwrap(), v);
            prop_assert!(c.is_empty());
        }

        #[test]
        fn varlong_roundtrip(v in any::<i64>(), min in 3usize..=8) {
            let mut out = vec![];
            put_varlong(&mut out, v, min);
            let mut c = &out[..];
            prop_assert_eq!(get_varlong(&mut c, min).unwrap(), v);
            prop_assert!(c.is_empty());
        }

        #[test]
        fn vstring_roundtrip(s in proptest::collection::vec(any::<u8>(), 0..1000)) {
            let mut out = vec![];
            put_vstring(&mut out, &s);
            prop_assert_eq!(get_vstring(&mut &out[..], 0x7FFF).unwrap(), &s[..]);
        }

        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = get_varint(&mut &b[..]);
            let _ = get_varlong(&mut &b[..], 3);
            let _ = get_varlong(&mut &b[..], 4);
            let _ = get_vstring(&mut &b[..], 100);
        }
    }
}
