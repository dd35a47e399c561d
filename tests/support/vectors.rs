//! Access to the recorded real-Pika vectors (copied into `tests/vectors`) and their `*.entries.tsv`
//! listings (written by an independent decoder; columns documented in the vectors README).

#![allow(dead_code)]

use sha1::{Digest, Sha1};
use std::path::PathBuf;

/// The vectors directory: `$PIKA_VECTORS`, or the copy in `tests/vectors`. A missing
/// directory fails the test: the vectors are the ground truth and must not be skipped.
pub fn dir() -> PathBuf {
    let p = std::env::var_os("PIKA_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"));
    assert!(
        p.join("README.md").is_file(),
        "recorded vectors not found at {} (set PIKA_VECTORS)",
        p.display()
    );
    p
}

/// Reads a file under the vectors directory.
pub fn read(rel: &str) -> Vec<u8> {
    let p = dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One argument as listed in a TSV: exact bytes, a big value by size and SHA-1, or a
/// placeholder describing filler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Exact bytes.
    Bytes(Vec<u8>),
    /// `<N bytes sha1=HEX>`.
    Sized { len: usize, sha1: String },
    /// Any other `<...>` text (filler descriptions).
    Note(String),
}

impl Arg {
    /// Whether `actual` is what this listing says.
    pub fn matches(&self, actual: &[u8]) -> bool {
        match self {
            Arg::Bytes(b) => b == actual,
            Arg::Sized { len, sha1 } => *len == actual.len() && hex(&Sha1::digest(actual)) == *sha1,
            Arg::Note(_) => false,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses Python's `repr()` of a bytes object: `b'...'` or `b"..."` with `\\`, `\'`, `\"`, `\n`,
/// `\r`, `\t` and `\xNN` escapes.
pub fn py_bytes(s: &str) -> Vec<u8> {
    let s = s.strip_prefix('b').expect("bytes repr starts with b");
    let q = s.chars().next().unwrap();
    let inner = &s[1..s.len() - 1];
    assert!(s.ends_with(q));
    let mut out = Vec::new();
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let c = b[i + 1];
            match c {
                b'x' => {
                    out.push(u8::from_str_radix(&inner[i + 2..i + 4], 16).unwrap());
                    i += 4;
                    continue;
                }
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'\\' | b'\'' | b'"' => out.push(c),
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn parse_arg(s: &str) -> Arg {
    if let Some(rest) = s.strip_prefix('<') {
        let rest = rest.trim_end_matches('>');
        if let Some((n, sha)) = rest.split_once(" bytes sha1=") {
            if let Ok(len) = n.parse() {
                return Arg::Sized {
                    len,
                    sha1: sha.to_string(),
                };
            }
        }
        return Arg::Note(rest.to_string());
    }
    Arg::Bytes(py_bytes(s))
}

/// One TSV row. Numeric columns are `None` where the file leaves them empty.
#[derive(Debug, Clone)]
pub struct Row {
    /// Column 1: start offset (binlog files) or frame type (streams).
    pub c1: Option<u64>,
    /// Column 2: end offset (binlog files) or body length (streams).
    pub c2: Option<u64>,
    /// exec_time
    pub exec_time: Option<u64>,
    /// server_id
    pub server_id: Option<u64>,
    /// logic_id
    pub logic_id: Option<u64>,
    /// item filenum
    pub filenum: Option<u64>,
    /// item offset
    pub offset: Option<u64>,
    /// argv
    pub argv: Vec<Arg>,
}

/// Parses an `*.entries.tsv` file.
pub fn tsv(rel: &str) -> Vec<Row> {
    let text = String::from_utf8(read(rel)).unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.splitn(8, '\t').collect();
            assert_eq!(cols.len(), 8, "row {l:?}");
            let n = |i: usize| cols[i].parse::<u64>().ok();
            let args: Vec<String> = serde_json::from_str(cols[7]).unwrap();
            Row {
                c1: n(0),
                c2: n(1),
                exec_time: n(2),
                server_id: n(3),
                logic_id: n(4),
                filenum: n(5),
                offset: n(6),
                argv: args.iter().map(|a| parse_arg(a)).collect(),
            }
        })
        .collect()
}

/// Asserts that `argv` is what `row` lists.
pub fn assert_argv(row: &Row, argv: &[Vec<u8>], ctx: &str) {
    assert_eq!(row.argv.len(), argv.len(), "{ctx}: argc differs: {row:?}");
    for (i, (want, got)) in row.argv.iter().zip(argv).enumerate() {
        assert!(
            want.matches(got),
            "{ctx}: argument {i} differs: listed {want:?}, decoded {:?}",
            String::from_utf8_lossy(&got[..got.len().min(80)])
        );
    }
}
