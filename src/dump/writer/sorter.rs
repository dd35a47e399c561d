//! External sort of one column family's entries in its comparator's order: entries are buffered
//! in memory, spilled as sorted runs to temporary files when the writer's memory budget is
//! reached, and merged at the end. Two equal keys are an error (a record stream that repeats a
//! member would otherwise make the stored count wrong).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A key order.
pub type Cmp = crate::dump::comparators::KeyOrder;

/// Receives the sorted entries.
pub type EntrySink<'a> = dyn FnMut(&[u8], &[u8]) -> io::Result<()> + 'a;

/// Bytes a buffered entry costs beyond its key and value.
pub const ENTRY_OVERHEAD: usize = 56;

/// The entries of one column family.
pub struct Sorter {
    cmp: Cmp,
    buf: Vec<(Vec<u8>, Vec<u8>)>,
    runs: Vec<PathBuf>,
    tmp: PathBuf,
    name: String,
}

impl Sorter {
    /// A sorter spilling into `tmp` (created on first spill) with files named after `name`.
    pub fn new(cmp: Cmp, tmp: &Path, name: &str) -> Self {
        Sorter {
            cmp,
            buf: Vec::new(),
            runs: Vec::new(),
            tmp: tmp.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// Buffers one entry; returns the bytes it costs.
    pub fn push(&mut self, key: Vec<u8>, value: Vec<u8>) -> usize {
        let n = key.len() + value.len() + ENTRY_OVERHEAD;
        self.buf.push((key, value));
        n
    }

    fn sort_buf(&mut self) {
        let cmp = self.cmp;
        self.buf.sort_unstable_by(|a, b| cmp(&a.0, &b.0));
    }

    /// Writes the buffer as a sorted run file and empties it.
    pub fn spill(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.sort_buf();
        std::fs::create_dir_all(&self.tmp)?;
        let path = self
            .tmp
            .join(format!("{}.run{}", self.name, self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        for (k, v) in self.buf.drain(..) {
            w.write_all(&(k.len() as u32).to_le_bytes())?;
            w.write_all(&(v.len() as u32).to_le_bytes())?;
            w.write_all(&k)?;
            w.write_all(&v)?;
        }
        w.flush()?;
        self.runs.push(path);
        Ok(())
    }

    /// The entries in order, each passed to `out`; `Err(key)` of the first duplicate key.
    pub fn drain(mut self, out: &mut EntrySink<'_>) -> io::Result<Result<(), Vec<u8>>> {
        let cmp = self.cmp;
        if self.runs.is_empty() {
            self.sort_buf();
            for w in self.buf.windows(2) {
                if cmp(&w[0].0, &w[1].0) == Ordering::Equal {
                    return Ok(Err(w[0].0.clone()));
                }
            }
            for (k, v) in &self.buf {
                out(k, v)?;
            }
            return Ok(Ok(()));
        }
        self.spill()?;
        let mut readers = Vec::new();
        for p in &self.runs {
            readers.push(BufReader::with_capacity(1 << 20, File::open(p)?));
        }
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some((k, v)) = read_entry(r)? {
                heap.push(Head { k, v, src: i, cmp });
            }
        }
        let mut prev: Option<Vec<u8>> = None;
        while let Some(Head { k, v, src, .. }) = heap.pop() {
            if let Some(p) = &prev {
                if cmp(p, &k) == Ordering::Equal {
                    return Ok(Err(k));
                }
            }
            out(&k, &v)?;
            prev = Some(k);
            if let Some((k, v)) = read_entry(&mut readers[src])? {
                heap.push(Head { k, v, src, cmp });
            }
        }
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
        Ok(Ok(()))
    }
}

fn read_entry(r: &mut impl Read) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let kl = u32::from_le_bytes(h[..4].try_into().expect("4")) as usize;
    let vl = u32::from_le_bytes(h[4..].try_into().expect("4")) as usize;
    let mut k = vec![0u8; kl];
    r.read_exact(&mut k)?;
    let mut v = vec![0u8; vl];
    r.read_exact(&mut v)?;
    Ok(Some((k, v)))
}

/// A run's current head; the heap pops the smallest key first.
struct Head {
    k: Vec<u8>,
    v: Vec<u8>,
    src: usize,
    cmp: Cmp,
}

impl PartialEq for Head {
    fn eq(&self, o: &Self) -> bool {
        Ord::cmp(self, o) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(Ord::cmp(self, o))
    }
}
impl Ord for Head {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.cmp)(&o.k, &self.k).then_with(|| o.src.cmp(&self.src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: Sorter) -> Result<Vec<Vec<u8>>, Vec<u8>> {
        let mut out = Vec::new();
        s.drain(&mut |k, _| {
            out.push(k.to_vec());
            Ok(())
        })
        .unwrap()
        .map(|()| out)
    }

    #[test]
    fn spilled_runs_merge_in_order_and_duplicates_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(|a, b| a.cmp(b), t.path(), "x");
        for i in (0..1000u32).rev() {
            s.push(i.to_be_bytes().to_vec(), vec![]);
            if i % 97 == 0 {
                s.spill().unwrap();
            }
        }
        let got = collect(s).unwrap();
        let want: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(got, want);
        let mut d = Sorter::new(|a, b| a.cmp(b), t.path(), "d");
        d.push(b"a".to_vec(), vec![]);
        d.spill().unwrap();
        d.push(b"a".to_vec(), vec![1]);
        assert_eq!(collect(d), Err(b"a".to_vec()));
    }
}
