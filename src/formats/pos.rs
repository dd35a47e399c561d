use std::fmt;

/// A binlog position: file number and byte offset inside `write2file<filenum>`.
/// Ordered by file first, then offset, as Pika compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BinlogPos {
    /// The `N` of `write2file<N>`.
    pub filenum: u32,
    /// Byte offset inside that file.
    pub offset: u64,
}

impl BinlogPos {
    /// A position.
    pub const fn new(filenum: u32, offset: u64) -> Self {
        BinlogPos { filenum, offset }
    }
}

impl fmt::Display for BinlogPos {
    /// Pika's own notation, `filenum:offset`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.filenum, self.offset)
    }
}
