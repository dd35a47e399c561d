//! The applied position of a sink: the marker keys on the target (the authority, written in the
//! same transaction as the data) and a copy in the relay's data dir (for INFO before the target
//! answers, and to protect the journal from retention while the target is away).

use crate::formats::BinlogPos;
use std::path::{Path, PathBuf};

/// Prefix of every marker key on a target.
pub const MARKER_PREFIX: &str = "pika-relay:applied:";

/// What a marker says: everything of `epoch` up to `pos` is applied on this connection's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Journal epoch (the dump the target was loaded from).
    pub epoch: u64,
    /// End of the last journal item applied (J_e right after a full sync).
    pub pos: BinlogPos,
    /// Logic id of the next item (for lag in entries; 0 when unknown).
    pub next_id: u64,
    /// Connections the sink ran with (the key → connection mapping depends on it).
    pub conns: usize,
}

impl Marker {
    /// `1 <epoch> <filenum> <offset> <next_id> <conns>`.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "1 {} {} {} {} {}",
            self.epoch, self.pos.filenum, self.pos.offset, self.next_id, self.conns
        )
        .into_bytes()
    }

    /// Parses [`Marker::encode`]'s form; `None` for anything else.
    pub fn decode(b: &[u8]) -> Option<Marker> {
        let s = std::str::from_utf8(b).ok()?;
        let f: Vec<&str> = s.split(' ').collect();
        if f.len() != 6 || f[0] != "1" {
            return None;
        }
        Some(Marker {
            epoch: f[1].parse().ok()?,
            pos: BinlogPos::new(f[2].parse().ok()?, f[3].parse().ok()?),
            next_id: f[4].parse().ok()?,
            conns: f[5].parse().ok().filter(|n| *n > 0)?,
        })
    }
}

/// The marker key of connection `c` of sink `name`.
pub fn marker_key(name: &str, c: usize) -> Vec<u8> {
    format!("{MARKER_PREFIX}{name}:{c}").into_bytes()
}

/// Where the data-dir copy of sink `name`'s applied position lives.
pub fn state_path(data_dir: &Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir.join("targets").join(format!("{safe}.applied"))
}

/// Writes the data-dir copy (temp file + rename, so a crash leaves the old or the new one).
pub fn save_state(path: &Path, m: &Marker) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, m.encode())?;
    std::fs::rename(&tmp, path)
}

/// Reads the data-dir copy, if present and readable.
pub fn load_state(path: &Path) -> Option<Marker> {
    Marker::decode(&std::fs::read(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_state_file() {
        let m = Marker {
            epoch: 3,
            pos: BinlogPos::new(2, 12345),
            next_id: 99,
            conns: 4,
        };
        assert_eq!(Marker::decode(&m.encode()), Some(m));
        for bad in [
            &b""[..],
            b"2 3 2 1 1 4",
            b"1 3 2 1 1 0",
            b"1 x 2 1 1 4",
            b"1 3 2 1 1",
        ] {
            assert_eq!(Marker::decode(bad), None, "{bad:?}");
        }
        assert_eq!(
            marker_key("h:1/0", 2),
            b"pika-relay:applied:h:1/0:2".to_vec()
        );
        let tmp = tempfile::tempdir().unwrap();
        let p = state_path(tmp.path(), "redis://h:1/0");
        assert!(p.ends_with("targets/redis___h_1_0.applied"), "{p:?}");
        assert_eq!(load_state(&p), None);
        save_state(&p, &m).unwrap();
        assert_eq!(load_state(&p), Some(m));
    }
}
