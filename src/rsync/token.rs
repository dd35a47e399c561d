//! File data tokens (literal data only: we never hold a basis file) and the whole-file
//! checksum that follows them.

use md5::{Digest, Md5};

use super::error::{ProtoError, Result};
use super::wire::{get_i32, put_i32};

/// Largest literal chunk a stock sender emits; we send chunks of this size.
pub const CHUNK: usize = 32 * 1024;
/// Largest literal token we accept.
pub const MAX_TOKEN: usize = 1 << 20;
/// Length of the whole-file checksum at protocol 30/31 (MD5).
pub const SUM_LEN: usize = 16;

/// One token header of the data stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// `n` literal bytes follow.
    Literal(usize),
    /// End of this file's data; the checksum follows.
    End,
}

/// Decode a token header. Block-match tokens (negative) are a protocol error for us.
pub fn decode_token(buf: &mut &[u8]) -> Result<Token> {
    let mut c = *buf;
    let n = get_i32(&mut c)?;
    let t = match n {
        0 => Token::End,
        n if n > 0 && n as usize <= MAX_TOKEN => Token::Literal(n as usize),
        n if n > 0 => return Err(ProtoError::Limit(format!("literal token of {n} bytes"))),
        n => {
            return Err(ProtoError::invalid(format!(
                "block-match token {} without a basis file",
                -(n + 1)
            )))
        }
    };
    *buf = c;
    Ok(t)
}

/// Append `data` as literal tokens (without the end token).
pub fn encode_literal(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(CHUNK) {
        put_i32(out, chunk.len() as i32);
        out.extend_from_slice(chunk);
    }
}

/// Append the end-of-data token.
pub fn encode_end(out: &mut Vec<u8>) {
    put_i32(out, 0);
}

/// The empty checksum header we send with every request ("no basis: send it all"), and that
/// the sender echoes: count, block length, checksum2 length, remainder.
pub const EMPTY_SUM_HEAD: [u8; 16] = [0; 16];

/// The whole-file checksum.
///
/// At protocol 30 and 31 without checksum negotiation (our mode) it is plain MD5 of the
/// file's bytes; the checksum seed is *not* mixed in. Protocols below 30 (MD4 with the seed
/// as prefix) are not supported.
pub struct FileSum(Md5);

impl FileSum {
    /// A new checksum for `protocol`; `_seed` is accepted for symmetry (unused at >= 30).
    pub fn new(protocol: u32, _seed: i32) -> Result<Self> {
        if protocol < 30 {
            return Err(ProtoError::Unsupported(format!(
                "whole-file checksum for protocol {protocol}"
            )));
        }
        Ok(FileSum(Md5::new()))
    }
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The 16-byte digest.
    pub fn finish(self) -> [u8; SUM_LEN] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_01_tokens_and_sum() {
        let mut out = vec![];
        encode_literal(&mut out, b"hello\n");
        encode_end(&mut out);
        assert_eq!(
            out,
            [6, 0, 0, 0, b'h', b'e', b'l', b'l', b'o', b'\n', 0, 0, 0, 0]
        );
        let mut s = FileSum::new(31, 0x12345678).unwrap();
        s.update(b"hello\n");
        assert_eq!(s.finish()[..4], [0xb1, 0x94, 0x6a, 0xc9]);
        let empty = FileSum::new(30, 1).unwrap().finish();
        assert_eq!(empty[..4], [0xd4, 0x1d, 0x8c, 0xd9]);
        assert!(FileSum::new(29, 0).is_err());
    }

    #[test]
    fn token_decoding() {
        assert_eq!(decode_token(&mut &[0u8, 0, 0, 0][..]).unwrap(), Token::End);
        assert_eq!(
            decode_token(&mut &[0u8, 0x80, 0, 0][..]).unwrap(),
            Token::Literal(32768)
        );
        assert!(decode_token(&mut &[0xffu8, 0xff, 0xff, 0xff][..]).is_err());
        assert!(decode_token(&mut &[0u8, 0, 0x20, 0][..]).is_err());
        assert!(matches!(
            decode_token(&mut &[1u8][..]),
            Err(ProtoError::Incomplete)
        ));
        let mut big = vec![];
        encode_literal(&mut big, &vec![7u8; 70000]);
        assert_eq!(big.len(), 70000 + 3 * 4);
    }
}
