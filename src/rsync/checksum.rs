//! The whole-file checksum and its negotiation (spec §10.3, §11).
//!
//! Without negotiation (protocol 30, or a client that does not offer the `v` capability)
//! the sum is plain MD5. A protocol-31 client that offers `v` gets compat flag
//! `CF_VARINT_FLIST_FLAGS`; both sides then exchange checksum name lists and use the first
//! name in the *client's* list that the server also lists. We list the xxhash family first,
//! so a stock 3.2+ client lands on `xxh128`.

use md5::{Digest, Md5};
use xxhash_rust::xxh3::Xxh3Default;
use xxhash_rust::xxh64::Xxh64;

use super::error::{ProtoError, Result};

/// Longest whole-file checksum we produce.
pub const MAX_SUM_LEN: usize = 16;

/// A whole-file checksum algorithm we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumKind {
    /// MD5 (the only choice without negotiation at protocol >= 30).
    #[default]
    Md5,
    /// XXH3-128, seed 0; low 64 bits LE then high 64 bits LE.
    Xxh128,
    /// XXH3-64, seed 0, LE.
    Xxh3,
    /// XXH64, seed 0, LE.
    Xxh64,
}

impl ChecksumKind {
    /// What we offer in a negotiation, most preferred first.
    pub const OFFERED: [ChecksumKind; 4] = [
        ChecksumKind::Xxh128,
        ChecksumKind::Xxh3,
        ChecksumKind::Xxh64,
        ChecksumKind::Md5,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumKind::Md5 => "md5",
            ChecksumKind::Xxh128 => "xxh128",
            ChecksumKind::Xxh3 => "xxh3",
            ChecksumKind::Xxh64 => "xxh64",
        }
    }

    /// Parse a wire or command-line name (`xxhash` is rsync's alias of `xxh64`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "md5" => ChecksumKind::Md5,
            "xxh128" => ChecksumKind::Xxh128,
            "xxh3" => ChecksumKind::Xxh3,
            "xxh64" | "xxhash" => ChecksumKind::Xxh64,
            _ => return None,
        })
    }

    /// Digest length on the wire (also the `-c` file-list checksum length).
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumKind::Md5 | ChecksumKind::Xxh128 => 16,
            ChecksumKind::Xxh3 | ChecksumKind::Xxh64 => 8,
        }
    }

    /// Our list as sent in the negotiation (without the vstring length).
    pub fn offer_list() -> String {
        let names: Vec<&str> = Self::OFFERED.iter().map(|k| k.name()).collect();
        names.join(" ")
    }

    /// The server's choice from the client's list: its first name that we implement.
    pub fn choose(client_list: &str) -> Result<Self> {
        client_list
            .split_ascii_whitespace()
            .find_map(Self::from_name)
            .ok_or_else(|| {
                ProtoError::Unsupported(format!(
                    "no common checksum: client offers `{client_list}`, we offer `{}`",
                    Self::offer_list()
                ))
            })
    }
}

/// `--checksum-choice=X[,Y]` as sent to the server: X for transfers, Y for `-c` sums.
/// `auto` (negotiate) gives `None`; an unknown name is `Err` with the name.
pub fn parse_checksum_choice(
    value: &str,
) -> std::result::Result<Option<(ChecksumKind, ChecksumKind)>, String> {
    let one = |s: &str| -> std::result::Result<Option<ChecksumKind>, String> {
        if s.eq_ignore_ascii_case("auto") {
            Ok(None)
        } else {
            ChecksumKind::from_name(s)
                .map(Some)
                .ok_or_else(|| s.to_string())
        }
    };
    let (x, y) = match value.split_once(',') {
        Some((x, y)) => (one(x)?, one(y)?),
        None => {
            let x = one(value)?;
            (x, x)
        }
    };
    // rsync resolves `auto` without negotiation to MD5 at protocol >= 30.
    Ok(match (x, y) {
        (None, None) => None,
        (x, y) => Some((
            x.unwrap_or(ChecksumKind::Md5),
            y.unwrap_or(ChecksumKind::Md5),
        )),
    })
}

/// The state of one whole-file checksum.
pub enum FileSum {
    /// MD5.
    Md5(Md5),
    /// XXH3 (128- or 64-bit output from the same state).
    Xxh3(Box<Xxh3Default>, bool),
    /// XXH64.
    Xxh64(Xxh64),
}

impl FileSum {
    /// A new checksum of `kind` for `protocol` (the seed never enters whole-file sums at
    /// protocol >= 30).
    pub fn new(protocol: u32, kind: ChecksumKind) -> Result<Self> {
        if protocol < 30 {
            return Err(ProtoError::Unsupported(format!(
                "whole-file checksum for protocol {protocol}"
            )));
        }
        Ok(match kind {
            ChecksumKind::Md5 => FileSum::Md5(Md5::new()),
            ChecksumKind::Xxh128 => FileSum::Xxh3(Box::new(Xxh3Default::new()), true),
            ChecksumKind::Xxh3 => FileSum::Xxh3(Box::new(Xxh3Default::new()), false),
            ChecksumKind::Xxh64 => FileSum::Xxh64(Xxh64::new(0)),
        })
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            FileSum::Md5(h) => h.update(data),
            FileSum::Xxh3(h, _) => h.update(data),
            FileSum::Xxh64(h) => h.update(data),
        }
    }

    /// The digest as sent on the wire ([`ChecksumKind::digest_len`] bytes).
    pub fn finish(self) -> Vec<u8> {
        match self {
            FileSum::Md5(h) => h.finalize().to_vec(),
            FileSum::Xxh3(h, true) => h.digest128().to_le_bytes().to_vec(),
            FileSum::Xxh3(h, false) => h.digest().to_le_bytes().to_vec(),
            FileSum::Xxh64(h) => h.digest().to_le_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn sum(kind: ChecksumKind, data: &[u8]) -> Vec<u8> {
        let mut s = FileSum::new(31, kind).unwrap();
        for piece in data.chunks(3) {
            s.update(piece);
        }
        let d = s.finish();
        assert_eq!(d.len(), kind.digest_len());
        d
    }

    #[test]
    fn digests() {
        // Capture 20: a stock 3.5.0 pair negotiated xxh128; "hello\n" and "world!!\n".
        assert_eq!(
            hex(&sum(ChecksumKind::Xxh128, b"hello\n")),
            "9ce4c8f135b4105a6df569e0c786ba6b"
        );
        assert_eq!(
            hex(&sum(ChecksumKind::Xxh128, b"world!!\n")),
            "a6451944e77b953e4aabffa2ba04e52a"
        );
        assert_eq!(
            hex(&sum(ChecksumKind::Md5, b"")),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        // Reference values of the one-shot functions, serialised LE.
        let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(
            sum(ChecksumKind::Xxh3, &big),
            xxhash_rust::xxh3::xxh3_64(&big).to_le_bytes()
        );
        assert_eq!(
            sum(ChecksumKind::Xxh64, &big),
            xxhash_rust::xxh64::xxh64(&big, 0).to_le_bytes()
        );
        assert_eq!(
            sum(ChecksumKind::Xxh128, &big),
            xxhash_rust::xxh3::xxh3_128(&big).to_le_bytes()
        );
        assert!(FileSum::new(29, ChecksumKind::Md5).is_err());
    }

    #[test]
    fn negotiation_takes_the_clients_first_known_name() {
        assert_eq!(ChecksumKind::offer_list(), "xxh128 xxh3 xxh64 md5");
        let stock = "xxh128 xxh3 xxh64 md5 md4 sha1";
        assert_eq!(ChecksumKind::choose(stock).unwrap(), ChecksumKind::Xxh128);
        assert_eq!(
            ChecksumKind::choose("sha1 md5 xxh128").unwrap(),
            ChecksumKind::Md5
        );
        assert_eq!(ChecksumKind::choose("xxhash").unwrap(), ChecksumKind::Xxh64);
        assert!(ChecksumKind::choose("md4 sha1").is_err());
        assert!(ChecksumKind::choose("").is_err());
    }

    #[test]
    fn checksum_choice_values() {
        use ChecksumKind::*;
        assert_eq!(parse_checksum_choice("auto"), Ok(None));
        assert_eq!(parse_checksum_choice("auto,auto"), Ok(None));
        assert_eq!(parse_checksum_choice("md5"), Ok(Some((Md5, Md5))));
        assert_eq!(parse_checksum_choice("xxh128"), Ok(Some((Xxh128, Xxh128))));
        assert_eq!(parse_checksum_choice("xxh3,md5"), Ok(Some((Xxh3, Md5))));
        assert_eq!(parse_checksum_choice("sha1"), Err("sha1".into()));
    }
}
