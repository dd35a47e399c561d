//! Data file names, listing, a bounded sequential record reader and the record-boundary check.

use crate::formats::record::{read_record, LogicalRecord, ReadOutcome, BLOCK_SIZE, HEADER_LEN};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Prefix of data files (`write2file<N>`, N decimal without padding).
pub const DATA_PREFIX: &str = "write2file";
/// Name of the manifest file.
pub const MANIFEST_FILE: &str = "manifest";

/// Path of data file `n` in `dir`.
pub fn data_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{DATA_PREFIX}{n}"))
}

/// Data file numbers present in `dir`, ascending.
pub fn list_data_files(dir: &Path) -> io::Result<Vec<u32>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix(DATA_PREFIX) {
            if !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n == "0" || !n.starts_with('0'))
            {
                if let Ok(n) = n.parse::<u32>() {
                    v.push(n);
                }
            }
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Reads logical records sequentially from one file through a bounded buffer: at most one
/// `chunk` of read-ahead plus the record being assembled.
#[derive(Debug)]
pub struct RecordReader {
    file: Arc<File>,
    buf: Vec<u8>,
    base: u64,
    chunk: usize,
}

/// Result of [`RecordReader::parse`].
#[derive(Debug)]
pub enum Parsed {
    /// A complete record.
    Record(LogicalRecord),
    /// The buffer does not hold the whole record: call [`RecordReader::fill`].
    NeedMore,
}

impl RecordReader {
    /// A reader over `file` reading `chunk` bytes at a time.
    pub fn new(file: Arc<File>, chunk: usize) -> Self {
        RecordReader {
            file,
            buf: Vec::new(),
            base: 0,
            chunk: chunk.max(4096),
        }
    }

    /// Parses the record at `pos` from buffered bytes, looking no further than `limit`
    /// (the accepted end of this file). No I/O.
    pub fn parse(&self, pos: u64, limit: u64) -> Result<Parsed, String> {
        if pos < self.base || pos > self.base + self.buf.len() as u64 {
            return Ok(Parsed::NeedMore);
        }
        let have = (self.buf.len() as u64).min(limit.saturating_sub(self.base)) as usize;
        match read_record(&self.buf[..have], self.base, pos) {
            Ok(ReadOutcome::Record(r)) => Ok(Parsed::Record(r)),
            Ok(ReadOutcome::Incomplete) | Ok(ReadOutcome::End)
                if self.base + (have as u64) < limit =>
            {
                Ok(Parsed::NeedMore)
            }
            Ok(ReadOutcome::Incomplete) => Err(format!(
                "record at {pos} runs past the accepted end {limit}"
            )),
            Ok(ReadOutcome::End) => {
                Err(format!("no record at {pos} below the accepted end {limit}"))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Blocking: makes the buffer start at `pos` and hold more bytes (up to `limit`).
    pub fn fill(&mut self, pos: u64, limit: u64) -> io::Result<()> {
        if pos < self.base || pos > self.base + self.buf.len() as u64 {
            self.buf.clear();
            self.base = pos;
        } else {
            let drop = (pos - self.base) as usize;
            self.buf.drain(..drop);
            self.base = pos;
        }
        let cur_end = self.base + self.buf.len() as u64;
        let want = (self.chunk as u64).max(self.buf.len() as u64);
        let target = (cur_end + want).min(limit);
        if target <= cur_end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "nothing left to read below the accepted end",
            ));
        }
        let old = self.buf.len();
        self.buf.resize(old + (target - cur_end) as usize, 0);
        let mut n = old;
        while n < self.buf.len() {
            match self
                .file
                .read_at(&mut self.buf[n..], self.base + n as u64)?
            {
                0 => {
                    self.buf.truncate(n);
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "file ends at {} below the accepted end {limit}",
                            self.base + n as u64
                        ),
                    ));
                }
                k => n += k,
            }
        }
        Ok(())
    }

    /// Blocking: the record at `pos` (reading as needed).
    pub fn read_blocking(&mut self, pos: u64, limit: u64) -> Result<LogicalRecord, String> {
        loop {
            match self.parse(pos, limit)? {
                Parsed::Record(r) => return Ok(r),
                Parsed::NeedMore => self.fill(pos, limit).map_err(|e| e.to_string())?,
            }
        }
    }

    /// Bytes currently buffered (for memory accounting in tests).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }
}

/// Whether `off` is a record boundary of a file whose accepted bytes end at `limit`: the start
/// of the file, the end, or the end of a logical record. Reads at most one 64 KiB block.
pub fn is_boundary(file: &File, off: u64, limit: u64) -> io::Result<bool> {
    if off == 0 || off == limit {
        return Ok(true);
    }
    if off > limit {
        return Ok(false);
    }
    let bs = off - off % BLOCK_SIZE;
    let end = (bs + BLOCK_SIZE).min(limit);
    let mut buf = vec![0u8; (end - bs) as usize];
    file.read_exact_at(&mut buf, bs)?;
    let hdr = |p: u64| -> Option<(u64, u8)> {
        let r = (p - bs) as usize;
        let h = buf.get(r..r + HEADER_LEN as usize)?;
        Some((u64::from(u32::from_le_bytes([h[0], h[1], h[2], 0])), h[7]))
    };
    let mut p = bs;
    let mut first = true;
    loop {
        if p == off {
            // At a block start the position is a boundary only if a record starts there.
            if p == bs {
                return Ok(matches!(hdr(p), Some((_, 1 | 2))));
            }
            return Ok(true);
        }
        if p > off || bs + BLOCK_SIZE - p <= HEADER_LEN {
            return Ok(false);
        }
        let Some((len, ty)) = hdr(p) else {
            return Ok(false);
        };
        match ty {
            3 | 4 if first => p += HEADER_LEN + len,
            1 => p += HEADER_LEN + len,
            _ => return Ok(false), // FIRST: the record runs past this block; others: not data
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::record::encode_record;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut t, bytes).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    #[test]
    fn boundaries_at_block_edges() {
        // A record ending exactly 8 bytes before the block end, then one starting there with a
        // zero-length FIRST header, continuing as LAST in the next block.
        let mut out = Vec::new();
        let a = encode_record(0, &vec![1u8; (BLOCK_SIZE - 16) as usize], 1, &mut out);
        assert_eq!(a, BLOCK_SIZE - 8);
        let b = encode_record(a, b"hello", 1, &mut out);
        // Then a record ending 3 bytes before the next block end, and one after the zero tail.
        let c = encode_record(
            b,
            &vec![2u8; (2 * BLOCK_SIZE - b - 3 - 8) as usize],
            1,
            &mut out,
        );
        assert_eq!(c, 2 * BLOCK_SIZE - 3);
        let d = encode_record(c, b"x", 1, &mut out);
        let (_t, f) = file_of(&out);
        let lim = d;
        for (off, want) in [
            (0, true),
            (1, false),
            (a, true),
            (a + 1, false),
            (BLOCK_SIZE, false), // starts with the LAST fragment of the record begun at `a`
            (b, true),
            (b + 1, false),
            (c, true),
            (c + 1, false),
            (2 * BLOCK_SIZE, true), // the record after the zero tail starts here (lenient)
            (d, true),
            (d + 1, false),
        ] {
            assert_eq!(is_boundary(&f, off, lim).unwrap(), want, "offset {off}");
        }
    }
}
