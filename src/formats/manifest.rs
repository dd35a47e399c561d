//! Binlog `manifest` files: a 65536-byte, zero-filled file whose first bytes hold the producer
//! position. Layouts differ by version (all little-endian):
//!
//! | version | layout |
//! |---|---|
//! | 2.3.x | `u64 offset`@0, `u32 filenum`@20, `u64` double-master recv offset @24, `u32` recv filenum @32 |
//! | 3.0.x | `u32 filenum`@0, `u64 offset`@4, `u64 logic_id`@12, `u32` dm recv num @20, `u64` dm recv offset @24 |
//! | 3.1/3.2 | `u32 filenum`@0, `u64 offset`@4, `u64 logic_id`@12 |
//! | 3.3+ | as 3.1/3.2 plus `u32 term`@20 |

use super::{BinlogPos, FormatError};

/// Size of every manifest file.
pub const MANIFEST_LEN: usize = 65536;

/// Which layout a manifest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestLayout {
    /// Pika 2.3.x.
    V23,
    /// Pika 3.0.x.
    V30,
    /// Pika 3.1 and 3.2 (term slot unused, written as zero).
    V31,
    /// Pika 3.3 and later (term at byte 20).
    V33,
}

/// The decoded content of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Producer position.
    pub pos: BinlogPos,
    /// Items written (3.x); zero in 2.3.x.
    pub logic_id: u64,
    /// Term (3.3+); double-master receive filenum in 3.0.x; zero otherwise.
    pub term: u32,
    /// Double-master receive position (2.3.x / 3.0.x only).
    pub dm_recv: BinlogPos,
}

impl Manifest {
    /// Encodes into a full 65536-byte image.
    pub fn encode(&self, layout: ManifestLayout) -> Vec<u8> {
        let mut b = vec![0u8; MANIFEST_LEN];
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        match layout {
            ManifestLayout::V23 => {
                put(&mut b, 0, &self.pos.offset.to_le_bytes());
                put(&mut b, 20, &self.pos.filenum.to_le_bytes());
                put(&mut b, 24, &self.dm_recv.offset.to_le_bytes());
                put(&mut b, 32, &self.dm_recv.filenum.to_le_bytes());
            }
            ManifestLayout::V30 | ManifestLayout::V31 | ManifestLayout::V33 => {
                put(&mut b, 0, &self.pos.filenum.to_le_bytes());
                put(&mut b, 4, &self.pos.offset.to_le_bytes());
                put(&mut b, 12, &self.logic_id.to_le_bytes());
                match layout {
                    ManifestLayout::V30 => {
                        put(&mut b, 20, &self.dm_recv.filenum.to_le_bytes());
                        put(&mut b, 24, &self.dm_recv.offset.to_le_bytes());
                    }
                    ManifestLayout::V33 => put(&mut b, 20, &self.term.to_le_bytes()),
                    _ => {}
                }
            }
        }
        b
    }

    /// Decodes a manifest image with the given layout. Only the first 36 bytes are needed; a
    /// shorter file is an error.
    pub fn decode(buf: &[u8], layout: ManifestLayout) -> Result<Manifest, FormatError> {
        if buf.len() < 36 {
            return Err(FormatError::Truncated {
                what: "manifest",
                need: 36 - buf.len(),
            });
        }
        let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
        Ok(match layout {
            ManifestLayout::V23 => Manifest {
                pos: BinlogPos::new(u32_at(20), u64_at(0)),
                logic_id: 0,
                term: 0,
                dm_recv: BinlogPos::new(u32_at(32), u64_at(24)),
            },
            ManifestLayout::V30 => Manifest {
                pos: BinlogPos::new(u32_at(0), u64_at(4)),
                logic_id: u64_at(12),
                term: 0,
                dm_recv: BinlogPos::new(u32_at(20), u64_at(24)),
            },
            ManifestLayout::V31 => Manifest {
                pos: BinlogPos::new(u32_at(0), u64_at(4)),
                logic_id: u64_at(12),
                ..Default::default()
            },
            ManifestLayout::V33 => Manifest {
                pos: BinlogPos::new(u32_at(0), u64_at(4)),
                logic_id: u64_at(12),
                term: u32_at(20),
                ..Default::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_example_v32() {
        let m = Manifest {
            pos: BinlogPos::new(3, 69),
            logic_id: 10,
            ..Default::default()
        };
        let b = m.encode(ManifestLayout::V31);
        assert_eq!(b.len(), MANIFEST_LEN);
        assert_eq!(
            &b[..20],
            &[3, 0, 0, 0, 0x45, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(b[20..].iter().all(|&x| x == 0));
        assert!(Manifest::decode(&b[..10], ManifestLayout::V31).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(f in any::<u32>(), o in any::<u64>(), l in any::<u64>(), t in any::<u32>(), df in any::<u32>(), d in any::<u64>()) {
            let m23 = Manifest { pos: BinlogPos::new(f, o), dm_recv: BinlogPos::new(df, d), ..Default::default() };
            prop_assert_eq!(Manifest::decode(&m23.encode(ManifestLayout::V23), ManifestLayout::V23).unwrap(), m23);
            let m30 = Manifest { pos: BinlogPos::new(f, o), logic_id: l, term: 0, dm_recv: BinlogPos::new(df, d) };
            prop_assert_eq!(Manifest::decode(&m30.encode(ManifestLayout::V30), ManifestLayout::V30).unwrap(), m30);
            let m33 = Manifest { pos: BinlogPos::new(f, o), logic_id: l, term: t, ..Default::default() };
            prop_assert_eq!(Manifest::decode(&m33.encode(ManifestLayout::V33), ManifestLayout::V33).unwrap(), m33);
        }
    }
}
