//! The standalone double's command log: every accepted write as a RESP array
//! `[exec-time, command, args...]`, appended before the reply is sent. A killed process keeps
//! what it acknowledged (the page cache outlives it, as a real master's RocksDB WAL and binlog
//! do), and replaying the log with the recorded exec times rebuilds the same keyspace and the
//! same binlog bytes, so a restarted double serves the positions the relay already holds.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::formats::resp::{encode_argv_into, parse_argv, Argv};

/// Appends one write executed at `now`.
pub fn append(f: &mut File, now: u64, argv: &Argv) -> io::Result<()> {
    let mut entry: Vec<&[u8]> = Vec::with_capacity(argv.len() + 1);
    let t = now.to_string();
    entry.push(t.as_bytes());
    entry.extend(argv.iter().map(|a| a.as_slice()));
    let mut out = Vec::new();
    encode_argv_into(&entry, &mut out);
    f.write_all(&out)
}

/// Opens `path` for appending (creating it and its directory).
pub fn open_append(path: &Path) -> io::Result<File> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Calls `apply(now, argv)` for every complete entry of `path` (none when it does not exist),
/// cuts a torn last entry off the file, and returns how many entries were applied. An entry
/// that is not a command array with a numeric time is an error naming its offset.
pub fn replay(path: &Path, mut apply: impl FnMut(u64, &Argv)) -> io::Result<u64> {
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let bad = |at: usize, why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: entry at byte {at}: {why}; move the file away to start empty",
                path.display()
            ),
        )
    };
    let (mut at, mut n) = (0usize, 0u64);
    while at < buf.len() {
        let Some((mut entry, used)) = parse_argv(&buf[at..]).map_err(|e| bad(at, e.to_string()))?
        else {
            // A write cut by the kill: never acknowledged, dropped.
            OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(at as u64)?;
            break;
        };
        let now = std::str::from_utf8(&entry[0])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad(at, "exec time is not a number".into()))?;
        if entry.len() < 2 {
            return Err(bad(at, "no command".into()));
        }
        entry.remove(0);
        apply(now, &entry);
        at += used;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_what_was_appended_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/commands.log");
        let mut f = open_append(&p).unwrap();
        let a: Argv = vec![b"set".to_vec(), b"k\r\n\x00".to_vec(), b"v".to_vec()];
        let b: Argv = vec![b"del".to_vec(), b"k".to_vec()];
        append(&mut f, 17, &a).unwrap();
        append(&mut f, 18, &b).unwrap();
        f.write_all(b"*3\r\n$2\r\n19\r\n$3\r\nset").unwrap();
        drop(f);
        let mut got = Vec::new();
        assert_eq!(replay(&p, |t, v| got.push((t, v.clone()))).unwrap(), 2);
        assert_eq!(got, vec![(17, a.clone()), (18, b)]);
        // The torn tail is gone: a new append lands right after the last whole entry.
        let mut f = open_append(&p).unwrap();
        append(&mut f, 20, &a).unwrap();
        let mut times = Vec::new();
        assert_eq!(replay(&p, |t, _| times.push(t)).unwrap(), 3);
        assert_eq!(times, vec![17, 18, 20]);
    }

    #[test]
    fn a_garbage_entry_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        std::fs::write(&p, b"*2\r\n$1\r\nx\r\n$3\r\nset\r\n").unwrap();
        let e = replay(&p, |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("c.log") && e.contains("byte 0"), "{e}");
    }
}
