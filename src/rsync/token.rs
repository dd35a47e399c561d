//! File data tokens (literal data only: we never hold a basis file). The whole-file
//! checksum that follows them is in [`checksum`](super::checksum).

use super::error::{ProtoError, Result};
use super::wire::{get_i32, put_i32};

/// Largest literal chunk a stock sender emits; we send chunks of this size.
pub const CHUNK: usize = 32 * 1024;
/// Largest literal token we accept.
pub const MAX_TOKEN: usize = 1 << 20;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rsync::checksum::{ChecksumKind, FileSum};

    #[test]
    fn capture_01_tokens_and_sum() {
        let mut out = vec![];
        encode_literal(&mut out, b"hello\n");
        encode_end(&mut out);
        assert_eq!(
            out,
            [6, 0, 0, 0, b'h', b'e', b'l', b'l', b'o', b'\n', 0, 0, 0, 0]
        );
        let mut s = FileSum::new(31, ChecksumKind::Md5).unwrap();
        s.update(b"hello\n");
        assert_eq!(s.finish()[..4], [0xb1, 0x94, 0x6a, 0xc9]);
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
