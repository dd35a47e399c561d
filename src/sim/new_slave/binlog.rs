//! The slave double's own 3.x binlog: every received item is re-encoded as a real slave does
//! (`ToBinlog` with the received header fields, non-canonical commands rewritten with the slave's
//! own clock and state) and appended with the 3.x record layer and rotation rule. Its producer
//! position is what the slave acks and TrySyncs with, so a relay that sends anything a real slave
//! would re-encode differently shows up as an ack mismatch.

use crate::formats::item::BinlogItem;
use crate::formats::padding::{producer_padding, PaddingStyle};
use crate::formats::{record, resp, BinlogPos};
use crate::sim::keyspace::Keyspace;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// The slave's Pika version, for the rewrites and filler that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveVersion {
    /// 3.1.x: logs `incr`/`incrby`/`decr`/`decrby`/`incrbyfloat` as `set key <new value>`.
    V31,
    /// 3.2.x.
    V32,
    /// 3.3.x / 3.4.x: `setnx` logged as sent; type-6 padding; term/index in acks.
    V33,
}

/// The binlog directory `log_db0` of the double.
pub struct SlaveBinlog {
    dir: PathBuf,
    file_size: u64,
    version: SlaveVersion,
    producer: BinlogPos,
    file: Option<File>,
    /// Items written since the last SetProducerStatus (the slave's own logic id).
    pub logic_id: u64,
}

fn ascii_lower(a: &[u8]) -> Vec<u8> {
    a.to_ascii_lowercase()
}

fn n(a: &[u8]) -> Option<i64> {
    std::str::from_utf8(a).ok()?.parse().ok()
}

impl SlaveBinlog {
    /// An empty binlog at 0:0 in `dir`.
    pub fn new(dir: PathBuf, file_size: u64, version: SlaveVersion) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut b = SlaveBinlog {
            dir,
            file_size,
            version,
            producer: BinlogPos::default(),
            file: None,
            logic_id: 0,
        };
        b.open(0, true)?;
        Ok(b)
    }

    /// The binlog of a restarted slave: continues `write2file<N>` at `producer`.
    pub fn reopen(
        dir: PathBuf,
        file_size: u64,
        version: SlaveVersion,
        producer: BinlogPos,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut b = SlaveBinlog {
            dir,
            file_size,
            version,
            producer,
            file: None,
            logic_id: 0,
        };
        b.open(producer.filenum, false)?;
        Ok(b)
    }

    fn path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("write2file{n}"))
    }

    fn open(&mut self, n: u32, truncate: bool) -> std::io::Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .append(!truncate)
            .write(true)
            .truncate(truncate)
            .open(self.path(n))?;
        self.file = Some(f);
        Ok(())
    }

    /// The producer position.
    pub fn producer(&self) -> BinlogPos {
        self.producer
    }

    /// `SetProducerStatus`: restart the binlog at `pos` with the version's filler.
    pub fn set_producer_status(&mut self, pos: BinlogPos, now: u32) -> std::io::Result<()> {
        for n in [0, pos.filenum] {
            let _ = std::fs::remove_file(self.path(n));
        }
        let style = if self.version == SlaveVersion::V33 {
            PaddingStyle::Stars
        } else {
            PaddingStyle::Items
        };
        let (img, stored) = producer_padding(pos.offset, style, now);
        std::fs::write(self.path(pos.filenum), &img)?;
        self.open(pos.filenum, false)?;
        self.producer = BinlogPos::new(pos.filenum, stored);
        if self.version == SlaveVersion::V33 {
            self.logic_id = 0;
        }
        Ok(())
    }

    /// The binlog form a real slave of this version writes for `argv`, given its keyspace before
    /// the command and its clock; `None` when it writes nothing (a failed SETNX on 3.1/3.2).
    pub fn binlog_form(&self, argv: &[Vec<u8>], ks: &Keyspace, now: u32) -> Option<Vec<Vec<u8>>> {
        let name = ascii_lower(&argv[0]);
        let abs = |secs: i64| (i64::from(now) + secs).to_string().into_bytes();
        let arg = |i: usize| argv.get(i).cloned().unwrap_or_default();
        let v = |s: &str| s.as_bytes().to_vec();
        match name.as_slice() {
            b"set" if argv.len() == 5 => {
                let opt = ascii_lower(&argv[3]);
                let t = n(&argv[4])?;
                match opt.as_slice() {
                    b"ex" => Some(vec![v("pksetexat"), arg(1), abs(t), arg(2)]),
                    b"px" => Some(vec![v("pksetexat"), arg(1), abs(t / 1000), arg(2)]),
                    _ => Some(argv.to_vec()),
                }
            }
            b"setex" => Some(vec![v("pksetexat"), arg(1), abs(n(&arg(2))?), arg(3)]),
            b"psetex" => Some(vec![
                v("pksetexat"),
                arg(1),
                abs(n(&arg(2))? / 1000),
                arg(3),
            ]),
            b"setnx" if self.version != SlaveVersion::V33 => {
                let exists = ks.contains(&arg(1), u64::from(now));
                (!exists).then(|| vec![v("set"), arg(1), arg(2)])
            }
            b"expire" => Some(vec![v("expireat"), arg(1), abs(n(&arg(2))?)]),
            b"pexpire" => Some(vec![v("expireat"), arg(1), abs(n(&arg(2))? / 1000)]),
            b"pexpireat" => Some(vec![
                v("expireat"),
                arg(1),
                (n(&arg(2))? / 1000).to_string().into_bytes(),
            ]),
            b"incr" | b"incrby" | b"decr" | b"decrby" | b"incrbyfloat"
                if self.version == SlaveVersion::V31 =>
            {
                // `set key <new value>`, the form the 3.1.1 master's binlog shows (`set cnt 1`,
                // `set cnt 42`, `set cnt 41`). A failed command writes what Pika writes for it:
                // the command as sent.
                let mut after = ks.clone();
                match after.exec(&argv.to_vec(), u64::from(now)) {
                    Ok(resp::Reply::Integer(n)) => {
                        Some(vec![v("set"), arg(1), n.to_string().into_bytes()])
                    }
                    Ok(resp::Reply::Bulk(Some(val))) => Some(vec![v("set"), arg(1), val]),
                    _ => Some(argv.to_vec()),
                }
            }
            _ => Some(argv.to_vec()),
        }
    }

    /// Appends one item with the received header fields and the given command; returns the new
    /// producer position.
    pub fn append(
        &mut self,
        header: &BinlogItem,
        argv: &[Vec<u8>],
        now: u32,
    ) -> std::io::Result<BinlogPos> {
        if self.producer.offset > self.file_size {
            self.producer = BinlogPos::new(self.producer.filenum + 1, 0);
            self.open(self.producer.filenum, true)?;
        }
        let item = BinlogItem {
            exec_time: header.exec_time,
            server_id: header.server_id,
            logic_id: header.logic_id,
            pos: header.pos,
            content: resp::encode_argv(argv),
        };
        let mut out = Vec::new();
        let end = record::encode_record(self.producer.offset, &item.encode(), now, &mut out);
        if let Some(f) = self.file.as_mut() {
            f.write_all(&out)?;
        }
        self.producer.offset = end;
        self.logic_id += 1;
        Ok(self.producer)
    }
}
