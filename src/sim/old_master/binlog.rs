//! The double's binlog: `write2file<N>` kept in memory, written with the real record layer
//! ([`encode_record`]) so every position is the one a real master would have, plus the
//! `Cmd::ToBinlog` rewrites of Pika 3.0.16 and 2.3.6 (spec §3.4).

use crate::formats::item::BinlogItem;
use crate::formats::old_raw::{BinlogInfo, RawEntry};
use crate::formats::record::{encode_record, read_record, ReadOutcome};
use crate::formats::resp::{encode_argv, Argv, Reply};
use crate::formats::BinlogPos;

/// Which old master the double emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Pika 3.0.16: 3.0 frames, `pksetexat` rewrites, `strings hashes lists sets zsets` dumps.
    V30,
    /// Pika 2.3.6: raw RESP with four trailing fields, `mset` as N `set` arrays in one record,
    /// `incr*` as `set`, `kv hash list set zset` dumps.
    V23,
}

/// In-memory binlog files.
#[derive(Debug, Clone)]
pub struct Binlog {
    /// `files[n]` = contents of `write2file<n>`; `None` once purged.
    pub files: Vec<Option<Vec<u8>>>,
    /// `binlog-file-size`.
    pub file_size: u64,
    /// Next logic id (3.0).
    pub logic_id: u64,
    /// `server-id`.
    pub server_id: u32,
    /// Payload format.
    pub flavor: Flavor,
}

impl Binlog {
    /// An empty binlog (`write2file0` exists, empty).
    pub fn new(flavor: Flavor, file_size: u64, server_id: u32) -> Self {
        Binlog {
            files: vec![Some(Vec::new())],
            file_size,
            logic_id: 0,
            server_id,
            flavor,
        }
    }

    /// The producer position (end of the current file).
    pub fn producer(&self) -> BinlogPos {
        let n = self.files.len() - 1;
        BinlogPos::new(
            n as u32,
            self.files[n].as_ref().map_or(0, |f| f.len() as u64),
        )
    }

    /// Appends one logical record holding `commands` (several only for 2.3 MSET); returns the
    /// item-header position (before the write, possibly the roll-over form) and the record's
    /// physical (start, end).
    pub fn put(
        &mut self,
        commands: &[Argv],
        exec_time: u32,
        hub_flag: bool,
    ) -> (BinlogPos, BinlogPos, BinlogPos) {
        let header_pos = self.producer();
        if header_pos.offset > self.file_size {
            self.files.push(Some(Vec::new()));
        }
        let payload = match self.flavor {
            Flavor::V30 => {
                let mut body = Vec::new();
                for c in commands {
                    BinlogItem {
                        exec_time,
                        server_id: self.server_id,
                        logic_id: self.logic_id,
                        pos: header_pos,
                        content: encode_argv(c),
                    }
                    .encode_into(&mut body);
                }
                self.logic_id += 1;
                body
            }
            Flavor::V23 => {
                let mut body = Vec::new();
                for c in commands {
                    body.extend(
                        RawEntry::new(
                            c.clone(),
                            self.server_id,
                            BinlogInfo {
                                exec_time,
                                pos: header_pos,
                            },
                            hub_flag,
                        )
                        .encode(),
                    );
                }
                body
            }
        };
        let n = self.files.len() - 1;
        let file = self.files[n]
            .as_mut()
            .expect("current file is never purged");
        let start = BinlogPos::new(n as u32, file.len() as u64);
        let end = encode_record(start.offset, &payload, exec_time, file);
        (header_pos, start, BinlogPos::new(n as u32, end))
    }

    /// Whether `write2file<n>` exists.
    pub fn has_file(&self, n: u32) -> bool {
        matches!(self.files.get(n as usize), Some(Some(_)))
    }

    /// Deletes files `<= n` (never the current one), like `purgelogsto write2file<n>`.
    pub fn purge_to(&mut self, n: u32) {
        let last = self.files.len() - 1;
        for i in 0..=(n as usize).min(last.saturating_sub(1)) {
            self.files[i] = None;
        }
    }

    /// The first record boundary at or after `pos` (the sender's trim); `None` if the file is
    /// gone or unreadable.
    pub fn trim(&self, pos: BinlogPos) -> Option<BinlogPos> {
        let file = self.files.get(pos.filenum as usize)?.as_ref()?;
        let mut off = 0u64;
        while off < pos.offset {
            match read_record(file, 0, off).ok()? {
                ReadOutcome::Record(r) => off = r.end,
                _ => break,
            }
        }
        Some(BinlogPos::new(
            pos.filenum,
            off.max(pos.offset.min(file.len() as u64)),
        ))
    }

    /// The record starting at `pos`: `Some((payload, end))`, or `None` at the end of the data.
    pub fn read(&self, pos: BinlogPos) -> Option<(Vec<u8>, BinlogPos)> {
        let file = self.files.get(pos.filenum as usize)?.as_ref()?;
        match read_record(file, 0, pos.offset) {
            Ok(ReadOutcome::Record(r)) => Some((r.payload, BinlogPos::new(pos.filenum, r.end))),
            _ => None,
        }
    }
}

fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

/// What the master logs for a command that succeeded with `reply` at `now`: zero or more records,
/// each a list of commands (spec §3.4). `new_value` is the key's value after `incr*` (2.3).
pub fn to_binlog(
    flavor: Flavor,
    argv: &Argv,
    reply: &Reply,
    now: u64,
    new_value: Option<Vec<u8>>,
) -> Vec<Vec<Argv>> {
    let name = lower(&argv[0]);
    let v = |s: &str| s.as_bytes().to_vec();
    let abs = |secs: i64| ((now as i64 + secs) as i32).to_string().into_bytes();
    let one = |c: Argv| vec![vec![c]];
    match name.as_str() {
        "expire" => one(vec![v("expireat"), argv[1].clone(), abs(int(&argv[2]))]),
        "pexpire" => one(vec![
            v("expireat"),
            argv[1].clone(),
            abs(int(&argv[2]) / 1000),
        ]),
        "pexpireat" => one(vec![
            v("expireat"),
            argv[1].clone(),
            (int(&argv[2]) / 1000).to_string().into_bytes(),
        ]),
        "setnx" => {
            if *reply == Reply::Integer(1) {
                one(vec![v("set"), argv[1].clone(), argv[2].clone()])
            } else {
                vec![]
            }
        }
        "setex" | "psetex" if flavor == Flavor::V30 => {
            let n = int(&argv[2]);
            let secs = if name == "setex" { n } else { n / 1000 };
            one(vec![
                v("pksetexat"),
                argv[1].clone(),
                abs(secs),
                argv[3].clone(),
            ])
        }
        "set" if flavor == Flavor::V30 && argv.len() == 5 => {
            let opt = lower(&argv[3]);
            if opt == "ex" || opt == "px" {
                let n = int(&argv[4]);
                let secs = if opt == "ex" { n } else { n / 1000 };
                one(vec![
                    v("pksetexat"),
                    argv[1].clone(),
                    abs(secs),
                    argv[2].clone(),
                ])
            } else {
                one(argv.clone())
            }
        }
        "incr" | "incrby" | "decr" | "decrby" if flavor == Flavor::V23 => one(vec![
            v("set"),
            argv[1].clone(),
            new_value.unwrap_or_default(),
        ]),
        "mset" | "msetnx" if flavor == Flavor::V23 => {
            if name == "msetnx" && *reply != Reply::Integer(1) {
                return vec![];
            }
            vec![argv[1..]
                .chunks(2)
                .map(|p| vec![v("set"), p[0].clone(), p[1].clone()])
                .collect()]
        }
        _ => one(argv.clone()),
    }
}

/// The 2.3 hub flag: `0` for hash- and set-type commands, `1` otherwise (2.3.6 vectors).
pub fn hub_flag(argv: &Argv) -> bool {
    let name = lower(&argv[0]);
    !(name.starts_with('h')
        || matches!(
            name.as_str(),
            "sadd" | "srem" | "spop" | "smove" | "sunionstore" | "sinterstore" | "sdiffstore"
        ))
}

fn int(b: &[u8]) -> i64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
