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

/// Bytes a buffered entry costs beyond its key and value (its index slot).
pub const ENTRY_OVERHEAD: usize = 16;

/// The entries of one column family: bytes in one arena, sorted through an index.
pub struct Sorter {
    cmp: Cmp,
    arena: Vec<u8>,
    idx: Vec<(usize, u32, u32)>,
    runs: Vec<PathBuf>,
    tmp: PathBuf,
    name: String,
}

impl Sorter {
    /// A sorter spilling into `tmp` (created on first spill) with files named after `name`.
    pub fn new(cmp: Cmp, tmp: &Path, name: &str) -> Self {
        Sorter {
            cmp,
            arena: Vec::new(),
            idx: Vec::new(),
            runs: Vec::new(),
            tmp: tmp.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// Buffers one entry whose key and value are the concatenations of their parts; returns
    /// the bytes it costs.
    pub fn push_parts(&mut self, key: &[&[u8]], value: &[&[u8]]) -> usize {
        let off = self.arena.len();
        for p in key {
            self.arena.extend_from_slice(p);
        }
        let kl = self.arena.len() - off;
        for p in value {
            self.arena.extend_from_slice(p);
        }
        let vl = self.arena.len() - off - kl;
        self.idx.push((off, kl as u32, vl as u32));
        kl + vl + ENTRY_OVERHEAD
    }

    /// Buffers one entry; returns the bytes it costs.
    pub fn push(&mut self, key: Vec<u8>, value: Vec<u8>) -> usize {
        self.push_parts(&[&key], &[&value])
    }

    fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        let (off, kl, vl) = self.idx[i];
        let (kl, vl) = (kl as usize, vl as usize);
        (
            &self.arena[off..off + kl],
            &self.arena[off + kl..off + kl + vl],
        )
    }

    fn sort_buf(&mut self) {
        let cmp = self.cmp;
        let arena = &self.arena;
        let key = |e: &(usize, u32, u32)| &arena[e.0..e.0 + e.1 as usize];
        self.idx.sort_unstable_by(|a, b| cmp(key(a), key(b)));
    }

    /// Writes the buffer as a sorted run file and empties it.
    pub fn spill(&mut self) -> io::Result<()> {
        if self.idx.is_empty() {
            return Ok(());
        }
        self.sort_buf();
        std::fs::create_dir_all(&self.tmp)?;
        let path = self
            .tmp
            .join(format!("{}.run{}", self.name, self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        for i in 0..self.idx.len() {
            let (k, v) = self.entry(i);
            w.write_all(&(k.len() as u32).to_le_bytes())?;
            w.write_all(&(v.len() as u32).to_le_bytes())?;
            w.write_all(k)?;
            w.write_all(v)?;
        }
        w.flush()?;
        self.runs.push(path);
        self.idx = Vec::new();
        self.arena = Vec::new();
        Ok(())
    }

    /// The entries in order, each passed to `out`; `Err(key)` of the first duplicate key.
    pub fn drain(mut self, out: &mut EntrySink<'_>) -> io::Result<Result<(), Vec<u8>>> {
        let cmp = self.cmp;
        if self.runs.is_empty() {
            self.sort_buf();
            for i in 1..self.idx.len() {
                if cmp(self.entry(i - 1).0, self.entry(i).0) == Ordering::Equal {
                    return Ok(Err(self.entry(i).0.to_vec()));
                }
            }
            for i in 0..self.idx.len() {
                let (k, v) = self.entry(i);
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
