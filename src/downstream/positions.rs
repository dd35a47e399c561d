//! Per-slave position maps: where a slave's own binlog positions stand in the relay's journal.
//!
//! A slave acks (and later TrySyncs with) its **own** producer position. A 3.2+ slave re-encodes
//! every item the relay sends to the same bytes, so its positions are the relay's. A 3.1 slave
//! re-logs `incr`/`incrby`/`decr`/`decrby`/`incrbyfloat` as `set key <value>` (3.1.1 vectors;
//! Pika 3.1.1 `IncrCmd::ToBinlog`), so after the first such item its positions drift from the
//! relay's by a few bytes per counter. The relay learns the correspondence from the acks: each
//! ack names the first item of a frame (a relay position, echoed) and the slave's own position
//! after the frame, and the relay knows where that frame ended in its journal. The pairs
//! (slave position, relay position) of one slave DB form a [`PositionMap`].
//!
//! The [`PositionStore`] keeps the maps of every slave `(ip:port, db)` in memory and in small
//! files under the data dir (`<dir>/<ip>_<port>_<db>.pos`, written to a temporary file and
//! renamed), bounded to the last [`MAX_PAIRS`] pairs: a slave only ever asks for its latest
//! position or, after losing the unsynced tail of its binlog, one shortly before it.

use crate::downstream::source::{JournalCursor, JournalSource, Located};
use crate::formats::record::record_end;
use crate::formats::BinlogPos;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::warn;

/// Pairs kept per slave DB.
pub const MAX_PAIRS: usize = 32;
/// Slave DBs kept (in memory and on disk); beyond this, new slaves are not remembered.
pub const MAX_SLAVES: usize = 4096;
/// Largest map file read back (a hostile or damaged file is ignored beyond this).
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Disk writes of a map whose slave never drifted (it only confirms identity), and `fsync`s of
/// any map, are at most this frequent; a drifted slave's map is written at every change (a
/// rename, safe against a crash of the relay process). Memory is always current.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const MAGIC: &str = "pika-relay positions v1";

/// One slave DB's learned correspondence between its positions and the relay's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionMap {
    /// `(slave position, relay position)` at frame ends, oldest first.
    pairs: VecDeque<(BinlogPos, BinlogPos)>,
    /// Whether this slave's positions ever differed from the relay's (a 3.1 slave after a
    /// counter command). A slave that never drifted is assumed to share the relay's positions.
    pub drifted: bool,
}

impl PositionMap {
    /// Records that the slave's position `slave` is the relay's position `relay`. Returns whether
    /// the map changed.
    pub fn learn(&mut self, slave: BinlogPos, relay: BinlogPos) -> bool {
        if self.pairs.back() == Some(&(slave, relay)) {
            return false;
        }
        // A later pair supersedes anything at or after the same slave position (the slave
        // rewound, e.g. after a full sync).
        while self.pairs.back().is_some_and(|&(s, _)| s >= slave) {
            self.pairs.pop_back();
        }
        self.pairs.push_back((slave, relay));
        while self.pairs.len() > MAX_PAIRS {
            self.pairs.pop_front();
        }
        self.drifted |= slave != relay;
        true
    }

    /// Forgets every pair and starts over at `pos`, where slave and relay agree (after a full
    /// sync: the slave's binlog was set to the dump's journal position).
    pub fn reset_to(&mut self, pos: BinlogPos) {
        self.pairs.clear();
        self.pairs.push_back((pos, pos));
    }

    /// The relay position of the slave's position `slave`, if learned.
    pub fn lookup(&self, slave: BinlogPos) -> Option<BinlogPos> {
        self.pairs
            .iter()
            .rev()
            .find(|&&(s, _)| s == slave)
            .map(|&(_, r)| r)
    }

    /// The newest pair.
    pub fn latest(&self) -> Option<(BinlogPos, BinlogPos)> {
        self.pairs.back().copied()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair is known.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The text form written to disk.
    pub fn encode(&self) -> String {
        let mut s = format!("{MAGIC}\ndrifted {}\n", u8::from(self.drifted));
        for (a, b) in &self.pairs {
            s.push_str(&format!(
                "{} {} {} {}\n",
                a.filenum, a.offset, b.filenum, b.offset
            ));
        }
        s
    }

    /// Parses [`PositionMap::encode`]'s form; the error names the first bad line.
    pub fn decode(text: &str) -> Result<PositionMap, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("first line is not `{MAGIC}`"));
        }
        let drifted = match lines.next() {
            Some("drifted 0") => false,
            Some("drifted 1") => true,
            other => return Err(format!("bad `drifted` line {other:?}")),
        };
        let mut m = PositionMap {
            pairs: VecDeque::new(),
            drifted,
        };
        for (i, l) in lines.enumerate() {
            let f: Vec<&str> = l.split(' ').collect();
            let num = |k: usize| f.get(k).and_then(|x| x.parse::<u64>().ok());
            let fnum = |k: usize| num(k).and_then(|x| u32::try_from(x).ok());
            match (f.len(), fnum(0), num(1), fnum(2), num(3)) {
                (4, Some(a), Some(b), Some(c), Some(d)) => {
                    m.pairs
                        .push_back((BinlogPos::new(a, b), BinlogPos::new(c, d)));
                }
                _ => return Err(format!("bad pair on line {}: {l:?}", i + 3)),
            }
            if m.pairs.len() > MAX_PAIRS {
                m.pairs.pop_front();
            }
        }
        Ok(m)
    }
}

/// Where a slave that writes an item of `len` bytes at its position `pos` ends, with Pika's
/// rotation rule (a new file before an item once the file is over `file_size`).
pub fn advance(pos: BinlogPos, len: u64, file_size: u64) -> BinlogPos {
    let start = if pos.offset > file_size {
        BinlogPos::new(pos.filenum + 1, 0)
    } else {
        pos
    };
    BinlogPos::new(start.filenum, record_end(start.offset, len))
}

/// The command name of an encoded 3.x binlog item (34-byte header, then RESP), lower-cased.
pub fn command_name(item: &[u8]) -> Option<Vec<u8>> {
    raw_command_name(item).map(|n| n.to_ascii_lowercase())
}

/// The command name of a binlog item as written (any case), without copying it.
fn raw_command_name(item: &[u8]) -> Option<&[u8]> {
    raw_arg(item, 0)
}

/// Argument `n` of a binlog item's RESP array (after the 34-byte header), found in place: the
/// arguments before it are stepped over, nothing is copied or allocated.
fn raw_arg(item: &[u8], n: usize) -> Option<&[u8]> {
    let c = item.get(crate::formats::item::ITEM_HEADER_LEN..)?;
    let (_, mut c) = len_line(c.strip_prefix(b"*")?)?;
    for i in 0..=n {
        let (len, rest) = len_line(c.strip_prefix(b"$")?)?;
        if i == n {
            return rest.get(..len);
        }
        c = rest.get(len..)?.strip_prefix(b"\r\n")?;
    }
    None
}

/// A decimal length ended by CRLF, and what follows it.
fn len_line(c: &[u8]) -> Option<(usize, &[u8])> {
    let nl = c.iter().position(|&b| b == b'\n')?;
    let digits = c[..nl].strip_suffix(b"\r")?;
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + usize::from(d - b'0');
    }
    Some((v, &c[nl + 1..]))
}

/// Whether a 3.1 slave re-logs this item in a form of another size (`set key <new value>`).
/// Called for every item sent to every slave: compares in place, allocates nothing (nor does
/// [`relogged_len_range`]).
pub fn relogged_by_31(item: &[u8]) -> bool {
    raw_command_name(item).is_some_and(|n| {
        [&b"incr"[..], b"incrby", b"decr", b"decrby", b"incrbyfloat"]
            .iter()
            .any(|c| n.eq_ignore_ascii_case(c))
    })
}

/// The range of sizes a 3.1 slave's `set key <value>` form of the counter `item` can have:
/// its value is an int64 (1–20 characters) or, for `incrbyfloat`, a decimal of up to 64.
pub fn relogged_len_range(item: &[u8]) -> (u64, u64) {
    let header = crate::formats::item::ITEM_HEADER_LEN as u64;
    let key_len = key_len(item).unwrap_or(0) as u64;
    let max_val = if raw_command_name(item).is_some_and(|n| n.eq_ignore_ascii_case(b"incrbyfloat"))
    {
        64
    } else {
        20
    };
    let form = |v: u64| {
        // *3\r\n $3\r\nset\r\n $<k>\r\n<key>\r\n $<v>\r\n<value>\r\n
        4 + 9 + (3 + digits(key_len) + key_len + 2) + (3 + digits(v) + v + 2)
    };
    (header + form(1), header + form(max_val))
}

fn digits(n: u64) -> u64 {
    u64::from(n.checked_ilog10().unwrap_or(0)) + 1
}

fn key_len(item: &[u8]) -> Option<usize> {
    raw_arg(item, 1).map(|k| k.len())
}

/// What a slave's own position is in the relay's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The relay position it stands for.
    At(BinlogPos),
    /// Not mappable, with the reason (for the log line).
    Unmapped(String),
}

/// Items walked at most when a slave's position is past its last learned pair.
const MAX_WALK_ITEMS: usize = 50_000;

/// Maps a slave's own position `slave` to the relay's journal:
/// 1. a learned pair;
/// 2. past the newest pair, by walking the journal from it: every item the slave writes in the
///    same size advances both positions alike (with the record layer and rotation computed at
///    the slave's own offsets); a counter item stops the walk for a slave that drifts (its size
///    on the slave is unknown), and is taken at the relay's size for one that never did;
/// 3. with nothing learned and no drift seen, the relay's own position (3.2+ slaves, and slaves
///    that loaded a dump of the relay).
pub async fn resolve<J: JournalSource>(
    journal: &J,
    map: &PositionMap,
    slave: BinlogPos,
) -> Resolved {
    if let Some(r) = map.lookup(slave) {
        return Resolved::At(r);
    }
    if let Some((s0, r0)) = map.latest() {
        if slave > s0 {
            match walk(journal, map.drifted, s0, r0, slave).await {
                Ok(r) => return Resolved::At(r),
                Err(why) if map.drifted => return Resolved::Unmapped(why),
                Err(_) => {}
            }
        } else if map.drifted {
            return Resolved::Unmapped(format!(
                "it is before the slave's last position the relay learned ({s0}, its own; the relay's {r0}) and not one of the positions learned before"
            ));
        }
    }
    if map.drifted {
        return Resolved::Unmapped(
            "the relay has not learned where this slave's positions stand in its journal".into(),
        );
    }
    Resolved::At(slave)
}

async fn walk<J: JournalSource>(
    journal: &J,
    drifted: bool,
    s0: BinlogPos,
    r0: BinlogPos,
    target: BinlogPos,
) -> Result<BinlogPos, String> {
    if journal.locate(r0) != Located::InRange {
        return Err(format!(
            "its last learned position ({s0}, the relay's {r0}) is no longer in the relay's journal"
        ));
    }
    let mut cur = journal
        .open(r0)
        .map_err(|e| format!("cannot read the journal at {r0}: {e}"))?;
    let file_size = journal.file_size();
    let mut sim = s0;
    for _ in 0..MAX_WALK_ITEMS {
        let Some(it) = cur
            .try_next()
            .await
            .map_err(|e| format!("journal read failed: {e}"))?
        else {
            break;
        };
        if drifted && relogged_by_31(&it.bytes) {
            return Err(format!(
                "between its last learned position ({s0}, the relay's {r0}) and {target} the slave re-logged a counter command (the relay's item ending {}) in a size the relay cannot know; its acks for those items never arrived",
                it.end
            ));
        }
        sim = advance(sim, it.bytes.len() as u64, file_size);
        if sim == target {
            return Ok(it.end);
        }
        if sim > target {
            break;
        }
    }
    Err(format!(
        "it is not the end of any item the relay sent after the slave's last learned position ({s0}, the relay's {r0})"
    ))
}

/// Whether a slave that was at `slave_at` can be at `end` after writing the frame `items`
/// (`(relay size, size range if a 3.1 slave re-logs it)`): exact for frames without counters.
pub fn plausible_end(
    slave_at: BinlogPos,
    items: &[(u64, Option<(u64, u64)>)],
    file_size: u64,
    end: BinlogPos,
) -> bool {
    let (mut lo, mut hi) = (slave_at, slave_at);
    for &(len, relog) in items {
        let (a, b) = relog
            .map(|(a, b)| (a.min(len), b.max(len)))
            .unwrap_or((len, len));
        lo = advance(lo, a, file_size);
        hi = advance(hi, b, file_size);
    }
    lo <= end && end <= hi
}

struct Entry {
    map: PositionMap,
    dirty: bool,
    last_write: Option<Instant>,
    last_sync: Option<Instant>,
}

/// Every slave DB's map, in memory and (with a directory) on disk.
#[derive(Clone, Default)]
pub struct PositionStore {
    dir: Option<PathBuf>,
    maps: Arc<Mutex<HashMap<String, Entry>>>,
}

impl PositionStore {
    /// A store persisted in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PositionStore {
            dir: Some(dir.into()),
            maps: Arc::default(),
        }
    }

    /// A store kept in memory only (tests, or a relay without a data dir).
    pub fn in_memory() -> Self {
        PositionStore::default()
    }

    /// The key of a slave DB.
    pub fn key(ip: &str, port: i32, table: &str) -> String {
        format!("{ip}:{port} {table}")
    }

    fn file(&self, key: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let name: String = key
            .chars()
            .take(128)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Some(dir.join(format!("{name}.pos")))
    }

    /// The map of `key`: from memory, else from its file, else empty. A damaged file is logged
    /// and ignored (the slave is then treated as new: it full-syncs if its position is unknown).
    pub fn get(&self, key: &str) -> PositionMap {
        if let Some(e) = self.maps.lock().unwrap().get(key) {
            return e.map.clone();
        }
        let Some(path) = self.file(key) else {
            return PositionMap::default();
        };
        match read_capped(&path) {
            Ok(Some(text)) => match PositionMap::decode(&text) {
                Ok(m) => {
                    self.insert(key, m.clone(), false);
                    m
                }
                Err(e) => {
                    warn!(
                        "downstream: position map {} is damaged ({e}); ignored, slave {key} is treated as new",
                        path.display()
                    );
                    PositionMap::default()
                }
            },
            Ok(None) => PositionMap::default(),
            Err(e) => {
                warn!(
                    "downstream: cannot read position map {}: {e}; slave {key} is treated as new",
                    path.display()
                );
                PositionMap::default()
            }
        }
    }

    fn insert(&self, key: &str, map: PositionMap, dirty: bool) {
        let mut g = self.maps.lock().unwrap();
        if !g.contains_key(key) && g.len() >= MAX_SLAVES {
            warn!("downstream: more than {MAX_SLAVES} slave DBs seen; the positions of {key} are not remembered");
            return;
        }
        let e = g.entry(key.to_string()).or_insert(Entry {
            map: PositionMap::default(),
            dirty: false,
            last_write: None,
            last_sync: None,
        });
        e.map = map;
        e.dirty |= dirty;
    }

    /// Applies `f` to the map of `key` (loading it first) and marks it for writing if it changed.
    pub fn update(&self, key: &str, f: impl FnOnce(&mut PositionMap)) {
        let mut m = self.get(key);
        let before = m.clone();
        f(&mut m);
        if m != before {
            self.insert(key, m, true);
        }
    }

    /// As [`update`](Self::update) for a change that reports itself (`f` returns whether it
    /// changed the map): applied in place, nothing copied (the per-ack path of every slave).
    pub fn update_in_place(&self, key: &str, f: impl FnOnce(&mut PositionMap) -> bool) {
        {
            let mut g = self.maps.lock().unwrap();
            if let Some(e) = g.get_mut(key) {
                e.dirty |= f(&mut e.map);
                return;
            }
        }
        self.update(key, |m| {
            f(m);
        });
    }

    /// Writes the map of `key` if it changed: at once if `now` or the slave drifted, else when
    /// the last write is old enough. The file is synced if `now` or the last sync is old enough.
    pub fn flush(&self, key: &str, now: bool) {
        if self.dir.is_none() {
            return;
        }
        let (text, sync) = {
            let mut g = self.maps.lock().unwrap();
            let Some(e) = g.get_mut(key) else { return };
            let old = |t: Option<Instant>| t.is_none_or(|t| t.elapsed() >= FLUSH_EVERY);
            let due = now || e.map.drifted || old(e.last_write);
            if !e.dirty || !due {
                return;
            }
            let sync = now || old(e.last_sync);
            e.dirty = false;
            e.last_write = Some(Instant::now());
            if sync {
                e.last_sync = e.last_write;
            }
            (e.map.encode(), sync)
        };
        let Some(path) = self.file(key) else {
            return;
        };
        if let Err(e) = write_atomic(&path, text.as_bytes(), sync) {
            warn!(
                "downstream: cannot write position map {}: {e}; after a relay restart slave {key} may need a full sync",
                path.display()
            );
        }
    }
}

fn read_capped(path: &Path) -> io::Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(io::Error::other(format!(
            "{} bytes, more than the {MAX_FILE_BYTES} a map can have",
            meta.len()
        )));
    }
    let b = std::fs::read(path)?;
    String::from_utf8(b)
        .map(Some)
        .map_err(|_| io::Error::other("not UTF-8"))
}

/// Writes `path` crash-safely: a temporary file in the same directory (synced if `sync`), then
/// renamed over it.
fn write_atomic(path: &Path, data: &[u8], sync: bool) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("pos.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_data()?;
        }
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: u64) -> BinlogPos {
        BinlogPos::new(0, o)
    }

    #[test]
    fn learn_lookup_bound_and_drift() {
        let mut m = PositionMap::default();
        assert!(m.learn(p(100), p(100)));
        assert!(!m.drifted);
        assert!(!m.learn(p(100), p(100)), "same pair twice is no change");
        m.learn(p(206), p(200));
        assert!(m.drifted);
        assert_eq!(m.lookup(p(206)), Some(p(200)));
        assert_eq!(
            m.lookup(p(200)),
            None,
            "relay positions are not slave positions"
        );
        for i in 0..100 {
            m.learn(p(1000 + i * 10), p(990 + i * 10));
        }
        assert_eq!(m.len(), MAX_PAIRS);
        assert_eq!(m.latest(), Some((p(1990), p(1980))));
        // A rewind (full sync) drops the later pairs.
        m.learn(p(500), p(500));
        assert_eq!(m.latest(), Some((p(500), p(500))));
        assert!(m.lookup(p(1990)).is_none());
        m.reset_to(p(7));
        assert_eq!(m.len(), 1);
        assert!(m.drifted, "a full sync does not change the slave's version");
    }

    #[test]
    fn text_round_trip_and_hostile_files() {
        let mut m = PositionMap::default();
        m.learn(BinlogPos::new(1, 5), BinlogPos::new(1, 0));
        m.learn(BinlogPos::new(2, 77), BinlogPos::new(2, 70));
        assert_eq!(PositionMap::decode(&m.encode()).unwrap(), m);
        assert!(PositionMap::decode("").is_err());
        assert!(PositionMap::decode(&format!("{MAGIC}\ndrifted 2\n")).is_err());
        assert!(PositionMap::decode(&format!("{MAGIC}\ndrifted 0\n1 2 3\n")).is_err());
        assert!(PositionMap::decode(&format!("{MAGIC}\ndrifted 0\n1 2 3 x\n")).is_err());
        assert!(PositionMap::decode(&format!("{MAGIC}\ndrifted 0\n99999999999 2 3 4\n")).is_err());
    }

    #[test]
    fn store_persists_atomically_and_ignores_damage() {
        let tmp = tempfile::tempdir().unwrap();
        let s = PositionStore::new(tmp.path().join("positions"));
        let key = PositionStore::key("10.0.0.2", 9221, "db0");
        s.update(&key, |m| {
            m.learn(p(10), p(8));
        });
        s.flush(&key, true);
        let s2 = PositionStore::new(tmp.path().join("positions"));
        assert_eq!(s2.get(&key).lookup(p(10)), Some(p(8)));
        // No temp file left, one file per slave DB with a safe name.
        let names: Vec<String> = std::fs::read_dir(tmp.path().join("positions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["10_0_0_2_9221_db0.pos".to_string()]);
        // A hostile key cannot escape the directory.
        let evil = PositionStore::key("../../etc", 1, "db0/x");
        s.update(&evil, |m| {
            m.learn(p(1), p(1));
        });
        s.flush(&evil, true);
        assert!(tmp
            .path()
            .join("positions")
            .join("______etc_1_db0_x.pos")
            .is_file());
        // Damaged file: ignored.
        std::fs::write(
            tmp.path().join("positions/10_0_0_2_9221_db0.pos"),
            "garbage",
        )
        .unwrap();
        let s3 = PositionStore::new(tmp.path().join("positions"));
        assert!(s3.get(&key).is_empty());
    }

    #[test]
    fn command_names_and_relogged_sizes() {
        use crate::formats::item::BinlogItem;
        let item = |argv: &[&[u8]]| {
            BinlogItem {
                exec_time: 1,
                server_id: 1,
                logic_id: 0,
                pos: BinlogPos::default(),
                content: crate::formats::resp::encode_argv(argv),
            }
            .encode()
        };
        assert!(relogged_by_31(&item(&[b"INCR", b"cnt"])));
        assert!(relogged_by_31(&item(&[b"incrbyfloat", b"f", b"1.5"])));
        assert!(!relogged_by_31(&item(&[b"set", b"cnt", b"1"])));
        assert!(!relogged_by_31(&[0u8; 10]));
        assert_eq!(raw_arg(&item(&[b"set", b"k", b"v1"]), 2), Some(&b"v1"[..]));
        assert_eq!(raw_arg(&item(&[b"set", b"k", b"v1"]), 3), None);
        assert_eq!(command_name(&item(&[b"SeT", b"k"])), Some(b"set".to_vec()));
        for n in [0, 9, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(digits(n), n.to_string().len() as u64, "{n}");
        }
        // `set cnt 1` is exactly the lower bound for `incr cnt`; 20 digits the upper.
        let (lo, hi) = relogged_len_range(&item(&[b"incr", b"cnt"]));
        assert_eq!(lo, item(&[b"set", b"cnt", b"1"]).len() as u64);
        assert_eq!(hi, item(&[b"set", b"cnt", &[b'9'; 20]]).len() as u64);
        let key = vec![b'k'; 1000];
        let (lo, hi) = relogged_len_range(&item(&[b"incrbyfloat", &key, b"1.5"]));
        assert_eq!(lo, item(&[b"set", &key, b"1"]).len() as u64);
        assert_eq!(hi, item(&[b"set", &key, &[b'9'; 64]]).len() as u64);
        // Rotation: a slave over the file size starts the next file.
        assert_eq!(advance(p(10), 61, 1024), p(10 + 8 + 61));
        assert_eq!(
            advance(p(1025), 61, 1024),
            BinlogPos::new(1, 69),
            "rotates before the item"
        );
    }
}
