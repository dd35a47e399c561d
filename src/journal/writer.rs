//! The append side: [`JournalWriter`] (synchronous, owns the files) and [`JournalHandle`] (a
//! writer on its own thread, fed through a bounded channel, with group commit by a syncer thread
//! beside it, see [`syncer`](super::syncer)).

use super::files::data_path;
use super::meta::{sync_dir, Meta};
use super::recovery::{self, Recovery};
use super::syncer::{Committer, SyncReq, Syncer};
use super::tail::TailItem;
use super::{Journal, JournalConfig, JournalError, Shared, SyncPolicy, Synced};
use crate::formats::item::BinlogItem;
use crate::formats::record::encode_record;
use crate::formats::record::BLOCK_SIZE;
use crate::formats::{resp, BinlogPos};
use crate::pipeline::NewEntry;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// Bytes buffered in memory before they are written to the file.
const WRITE_BUF: usize = 1 << 20;

/// Bytes written but not yet durable at most before appends wait for the syncer (a slow disk
/// slows the upstream reader instead of growing the page cache without bound).
const MAX_UNSYNCED: u64 = 64 << 20;

/// Entries taken from the channel at most before the writer looks at the sync policy again.
const APPEND_BATCH: usize = 256;

/// The journal's single writer. Appends are buffered and written; [`JournalWriter::sync`] makes
/// them durable and accepted ([`JournalWriter::request_sync`] only asks the syncer to). Dropping
/// it without `sync` loses the unsynced appends exactly as a crash would (which the tests use).
#[derive(Debug)]
pub struct JournalWriter {
    shared: Arc<Shared>,
    file: Arc<File>,
    /// Files rotated away since the last sync request (their tails are not durable yet).
    rotated_files: Vec<Arc<File>>,
    /// Items written since the last sync request, for the in-memory tail.
    new_items: Vec<TailItem>,
    syncer: Arc<Syncer>,
    /// Generation of the last sync request.
    gen: u64,
    /// Bytes of records produced since open.
    produced: u64,
    filenum: u32,
    /// Producer offset (bytes written plus buffered).
    offset: u64,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    logic_id: u64,
    entries: u64,
    upstream: Option<BinlogPos>,
    epoch: u64,
    epoch_start: BinlogPos,
    unsynced_items: u64,
    unsynced_bytes: u64,
    unsynced_since: Option<Instant>,
    dirty: bool,
    rotated: bool,
    /// Length of the live file on disk: data written plus zeros pre-allocated after it.
    file_len: u64,
}

impl JournalWriter {
    /// Opens the journal in `cfg.dir`, recovering it (see [`recovery`](super::recovery)).
    pub fn open(cfg: JournalConfig) -> Result<(JournalWriter, Recovery), JournalError> {
        if !(1024..=1 << 30).contains(&cfg.binlog_file_size) {
            return Err(JournalError::Config(format!(
                "binlog_file_size {} outside Pika's range [1024, 1 GiB]",
                cfg.binlog_file_size
            )));
        }
        if cfg.server_id > i32::MAX as u32 {
            return Err(JournalError::Config(format!(
                "server_id {} does not fit the signed int 3.1/3.2 slaves parse it into",
                cfg.server_id
            )));
        }
        let o = recovery::open(&cfg)?;
        let cfg_tail_bytes = cfg.tail_bytes;
        let m = o.meta.current();
        let (tx, _) = watch::channel(o.recovery.state);
        let shared = Arc::new(Shared {
            cfg,
            state: tx,
            first: AtomicU32::new(o.recovery.first_filenum),
            cursors: Mutex::new(HashMap::new()),
            next_cursor: AtomicU64::new(1),
            purge_lock: Mutex::new(()),
            failure: Mutex::new(None),
            tail: Mutex::new(super::tail::Tail::new(o.recovery.state.end, cfg_tail_bytes)),
            sync_stats: Default::default(),
        });
        let syncer = Arc::new(Syncer::new(
            Committer {
                shared: shared.clone(),
                meta: o.meta,
                manifest: o.manifest,
            },
            0,
        ));
        let w = JournalWriter {
            shared,
            file: Arc::new(o.file),
            rotated_files: Vec::new(),
            new_items: Vec::new(),
            syncer,
            gen: 0,
            produced: 0,
            filenum: m.end.filenum,
            offset: m.end.offset,
            buf: Vec::with_capacity(WRITE_BUF + 65536),
            scratch: Vec::new(),
            logic_id: m.logic_id,
            entries: m.entries,
            upstream: m.upstream,
            epoch: m.epoch,
            epoch_start: m.epoch_start,
            unsynced_items: 0,
            unsynced_bytes: 0,
            unsynced_since: None,
            dirty: false,
            rotated: false,
            file_len: m.end.offset,
        };
        Ok((w, o.recovery))
    }

    /// The read side (cursors, watch, retention).
    pub fn journal(&self) -> Journal {
        Journal {
            shared: self.shared.clone(),
        }
    }

    /// Producer position including unsynced appends.
    pub fn position(&self) -> BinlogPos {
        BinlogPos::new(self.filenum, self.offset)
    }

    /// Appends the translated items of one old entry whose upstream end is `upstream_end`. Not
    /// accepted until the next [`sync`](Self::sync). An empty `entries` only moves the upstream
    /// position (e.g. an entry that was all padding).
    ///
    /// Returns `false` (and writes nothing) when `upstream_end` is not past the upstream position
    /// already appended: a re-sent entry after a reconnect is never journaled twice.
    pub fn append(
        &mut self,
        upstream_end: BinlogPos,
        entries: &[NewEntry],
    ) -> Result<bool, JournalError> {
        if self.upstream.is_some_and(|u| upstream_end <= u) {
            tracing::warn!(upstream_end = %upstream_end, have = %self.upstream.unwrap_or_default(),
                "journal: old entry already journaled, dropped (duplicate after a reconnect?)");
            return Ok(false);
        }
        for e in entries {
            self.write_item(e.exec_time, &e.argv)?;
        }
        self.upstream = Some(upstream_end);
        self.dirty = true;
        self.unsynced_since.get_or_insert_with(Instant::now);
        Ok(true)
    }

    /// Writes one item (rotating first when the file is over `binlog_file_size`, as Pika does).
    fn write_item(&mut self, exec_time: u32, argv: &[Vec<u8>]) -> Result<(), JournalError> {
        let before = self.position();
        if self.offset > self.shared.cfg.binlog_file_size {
            self.rotate()?;
        }
        self.scratch.clear();
        resp::encode_argv_into(argv, &mut self.scratch);
        let item = ItemHeader {
            exec_time,
            server_id: self.shared.cfg.server_id,
            logic_id: self.logic_id,
            pos: before,
        };
        let payload = item.encode(&self.scratch);
        let start = self.offset;
        self.offset = encode_record(self.offset, &payload, exec_time, &mut self.buf);
        self.produced += self.offset - start;
        self.unsynced_bytes += self.offset - start;
        if self.shared.cfg.tail_bytes > 0 {
            self.new_items.push(TailItem {
                bytes: bytes::Bytes::from(payload),
                start: BinlogPos::new(self.filenum, start),
                end: self.position(),
                logic_id: self.logic_id,
            });
        }
        self.logic_id += 1;
        self.entries += 1;
        self.unsynced_items += 1;
        if self.buf.len() >= WRITE_BUF {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// After the last sync: the live file without its pre-allocated zeros, durably (a clean
    /// restart then finds nothing past the accepted end).
    fn close_file(&mut self) -> Result<(), JournalError> {
        if self.file_len > self.offset {
            self.trim()?;
            self.file.sync_all().map_err(self.live_err("sync"))?;
        }
        Ok(())
    }

    /// Makes everything appended durable, stores meta, updates the manifest and publishes the
    /// new [`Synced`] state (waiting for it). Runs retention after a rotation.
    pub fn sync(&mut self) -> Result<Synced, JournalError> {
        if self.dirty {
            self.request()?;
        }
        self.syncer.wait_done(self.gen)?;
        Ok(*self.shared.state.borrow())
    }

    /// Hands everything appended so far to the syncer without waiting for it (the syncer
    /// thread of a [`JournalHandle`] commits it; a bare writer commits on its next
    /// [`sync`](Self::sync)). Waits only when more than 64 MiB are not durable yet.
    pub fn request_sync(&mut self) -> Result<(), JournalError> {
        if self.dirty {
            self.request()?;
        }
        self.syncer.wait_room(self.produced, MAX_UNSYNCED)
    }

    /// Whether so much is appended since the last request that it should go now whatever the
    /// policy says (big values under a high `max_entries`).
    fn over_unsynced_limit(&self) -> bool {
        self.dirty && self.unsynced_bytes >= MAX_UNSYNCED / 4
    }

    fn request(&mut self) -> Result<(), JournalError> {
        self.flush_buf()?;
        // Readers at the tail find every item below the synced end in memory.
        self.shared
            .tail
            .lock()
            .unwrap()
            .extend(self.new_items.drain(..));
        let mut files = std::mem::take(&mut self.rotated_files);
        files.push(self.file.clone());
        self.gen += 1;
        let req = SyncReq {
            gen: self.gen,
            files,
            meta: Meta {
                seq: 0,
                end: self.position(),
                logic_id: self.logic_id,
                upstream: self.upstream,
                epoch: self.epoch,
                epoch_start: self.epoch_start,
                entries: self.entries,
            },
            produced: self.produced,
            purge: std::mem::take(&mut self.rotated),
        };
        self.unsynced_items = 0;
        self.unsynced_bytes = 0;
        self.unsynced_since = None;
        self.dirty = false;
        self.syncer.submit(req)
    }

    /// Length of the epoch padding item's argument such that the item ends at a position a new
    /// slave can reach with `SetProducerStatus`: its 64 KiB-block remainder must be 0 or at least
    /// 69 (a smaller last chunk cannot hold a filler record, and the slave would store a lower
    /// offset, new spec §4.5).
    fn epoch_padding_len(&self) -> usize {
        let start = if self.offset > self.shared.cfg.binlog_file_size {
            0
        } else {
            self.offset
        };
        let mut stars = 64usize;
        for _ in 0..4 {
            let content = resp::encoded_len(&[b"padding".as_slice(), &vec![b'*'; stars]]);
            let end = crate::formats::record::record_end(
                start,
                (crate::formats::item::ITEM_HEADER_LEN + content) as u64,
            );
            match end % BLOCK_SIZE {
                0 | 69.. => return stars,
                rem => stars += (69 - rem) as usize,
            }
        }
        stars
    }

    /// Starts dump epoch `e+1`: writes one `padding` item, then records `J_e` = the journal end
    /// after it and sets the upstream position to `upstream` (the dump's binlog position from its
    /// `info` file).
    ///
    /// The padding item makes `J_e` a position no slave of an earlier epoch can hold: a slave
    /// that streamed up to the old end (or a fresh one at 0:0 when the journal was empty) asks for
    /// a position before `J_e`, is told it is purged and full-syncs; only a slave that loaded this
    /// epoch's dump names `J_e` itself. No slave ever receives the item (cursors start at `J_e`).
    pub fn begin_epoch(&mut self, upstream: BinlogPos) -> Result<Synced, JournalError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        // Everything before belongs to the old epoch; the padding item and the switch become
        // visible together in one sync, so no cursor of the old epoch can reach J_e.
        self.sync()?;
        let stars = self.epoch_padding_len();
        self.write_item(now, &[b"padding".to_vec(), vec![b'*'; stars]])?;
        debug_assert!(matches!(self.offset % BLOCK_SIZE, 0 | 69..));
        self.epoch += 1;
        self.epoch_start = self.position();
        self.upstream = Some(upstream);
        self.dirty = true;
        let st = self.sync()?;
        tracing::info!(epoch = st.epoch, j_e = %st.epoch_start, upstream = %upstream, "journal: new dump epoch");
        Ok(st)
    }

    /// Whether the sync policy asks for a sync now.
    pub fn sync_due(&self) -> bool {
        if !self.dirty {
            return false;
        }
        match self.shared.cfg.sync {
            SyncPolicy::Always => true,
            SyncPolicy::Group {
                max_entries,
                max_delay_ms,
            } => {
                self.unsynced_items >= max_entries
                    || self
                        .unsynced_since
                        .is_some_and(|t| t.elapsed() >= Duration::from_millis(max_delay_ms))
            }
        }
    }

    /// When the pending appends must be synced at the latest.
    pub fn sync_deadline(&self) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        match self.shared.cfg.sync {
            SyncPolicy::Always => Some(Instant::now()),
            SyncPolicy::Group { max_delay_ms, .. } => self
                .unsynced_since
                .map(|t| t + Duration::from_millis(max_delay_ms)),
        }
    }

    fn flush_buf(&mut self) -> Result<(), JournalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = self.offset;
        let start = end - self.buf.len() as u64;
        let r = self
            .preallocate(end)
            .and_then(|_| self.file.write_all_at(&self.buf, start));
        self.buf.clear();
        self.file_len = self.file_len.max(end);
        r.map_err(self.live_err("write"))
    }

    /// Maps an I/O error of `what` (write, truncate, sync) on the live data file, naming it.
    /// The name is formatted only when an error happens.
    fn live_err<'a>(&'a self, what: &'a str) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
        move |e| {
            let path = data_path(&self.shared.cfg.dir, self.filenum);
            JournalError::io(format!("{what} {}", path.display()), e)
        }
    }

    /// Zero-fills the live file ahead of the data up to the next multiple of
    /// [`JournalConfig::preallocate`] (never past `binlog_file_size`, unless the data already
    /// is), as Pika 3.1/3.2 pre-allocate their binlog files. Appends then overwrite blocks that
    /// exist and change no file size, so the `fdatasync` of a commit writes data and flushes the
    /// disk without a filesystem journal commit; only the commit after each extension pays for
    /// one. Measured: a cheaper typical commit; long stalls beside a neighbour saturating the
    /// disk remain (see `docs/DESIGN-NOTES.md`).
    fn preallocate(&mut self, end: u64) -> std::io::Result<()> {
        let chunk = self.shared.cfg.preallocate;
        if chunk == 0 || end <= self.file_len {
            return Ok(());
        }
        let target = end
            .div_ceil(chunk)
            .saturating_mul(chunk)
            .min(self.shared.cfg.binlog_file_size.max(end));
        let mut at = self.file_len.max(end);
        static ZEROS: [u8; 65536] = [0; 65536];
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        self.file_len = self.file_len.max(target);
        Ok(())
    }

    /// Cuts the live file's pre-allocated zeros (at a rotation, or a clean close), so finished
    /// files end at their last record.
    fn trim(&mut self) -> Result<(), JournalError> {
        if self.file_len > self.offset {
            self.file
                .set_len(self.offset)
                .map_err(self.live_err("truncate"))?;
            self.file_len = self.offset;
        }
        Ok(())
    }

    /// Starts the next file. The finished one is synced by the next commit, before any meta
    /// naming a position in the new file is stored. Waits for the commits requested so far
    /// (as the inline sync of the finished file did before), so a commit never has more than
    /// the files of one rotation to sync.
    fn rotate(&mut self) -> Result<(), JournalError> {
        self.syncer.wait_done(self.gen)?;
        self.flush_buf()?;
        // The commit that syncs this file (before any meta names the next one) makes the cut
        // durable too.
        self.trim()?;
        let dir = &self.shared.cfg.dir;
        let next = self.filenum + 1;
        let p = data_path(dir, next);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .map_err(|e| JournalError::io(format!("create {}", p.display()), e))?;
        sync_dir(dir).map_err(|e| JournalError::io(format!("sync {}", dir.display()), e))?;
        tracing::info!(
            from = self.filenum,
            to = next,
            size = self.offset,
            "journal: rotated"
        );
        let old = std::mem::replace(&mut self.file, Arc::new(f));
        self.rotated_files.push(old);
        self.filenum = next;
        self.offset = 0;
        self.file_len = 0;
        self.rotated = true;
        Ok(())
    }
}

/// The fixed fields of an item header (content comes separately, to avoid a copy).
struct ItemHeader {
    exec_time: u32,
    server_id: u32,
    logic_id: u64,
    pos: BinlogPos,
}

impl ItemHeader {
    fn encode(&self, content: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(crate::formats::item::ITEM_HEADER_LEN + content.len());
        BinlogItem {
            exec_time: self.exec_time,
            server_id: self.server_id,
            logic_id: self.logic_id,
            pos: self.pos,
            content: Vec::new(),
        }
        .encode_into(&mut v);
        // Patch the content length (encode_into wrote 0) and append the content.
        v[30..34].copy_from_slice(&(content.len() as u32).to_le_bytes());
        v.extend_from_slice(content);
        v
    }
}

enum Cmd {
    Append(BinlogPos, Vec<NewEntry>),
    AppendMany(Vec<(BinlogPos, Vec<NewEntry>)>),
    Sync(oneshot::Sender<Result<Synced, String>>),
    Epoch(BinlogPos, oneshot::Sender<Result<Synced, String>>),
    Close(oneshot::Sender<Result<Synced, String>>),
}

/// A [`JournalWriter`] running on its own thread. Appends go through a bounded channel (so a
/// slow disk slows the upstream reader, nothing grows without bound) and are synced by the
/// configured [`SyncPolicy`]. Acceptance is observed on [`Journal::watch`]. Dropping the handle
/// syncs what was sent and stops the thread.
#[derive(Debug)]
pub struct JournalHandle {
    tx: mpsc::Sender<Cmd>,
    journal: Journal,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Append(..) => "Append",
            Cmd::AppendMany(..) => "AppendMany",
            Cmd::Sync(_) => "Sync",
            Cmd::Epoch(..) => "Epoch",
            Cmd::Close(_) => "Close",
        })
    }
}

impl JournalHandle {
    /// Starts `w` on a thread named `journal-writer`.
    pub fn spawn(w: JournalWriter) -> Result<JournalHandle, JournalError> {
        let journal = w.journal();
        let (tx, rx) = mpsc::channel(journal.shared.cfg.channel_capacity.max(1));
        let syncer = w.syncer.clone();
        let sync_thread = {
            let syncer = syncer.clone();
            std::thread::Builder::new()
                .name("journal-sync".into())
                .spawn(move || syncer.run())
                .map_err(|e| JournalError::io("spawn syncer thread", e))?
        };
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                run(w, rx);
                syncer.stop();
                let _ = sync_thread.join();
            })
            .map_err(|e| JournalError::io("spawn writer thread", e))?;
        Ok(JournalHandle {
            tx,
            journal,
            thread: Some(thread),
        })
    }

    /// The read side.
    pub fn journal(&self) -> Journal {
        self.journal.clone()
    }

    fn stopped(&self) -> JournalError {
        JournalError::WriterStopped(self.journal.failure().unwrap_or_else(|| "closed".into()))
    }

    /// Queues the items of one old entry (waits only when the channel is full). Accepted once
    /// [`Journal::watch`] shows `upstream >= upstream_end`.
    pub async fn append(
        &self,
        upstream_end: BinlogPos,
        entries: Vec<NewEntry>,
    ) -> Result<(), JournalError> {
        self.tx
            .send(Cmd::Append(upstream_end, entries))
            .await
            .map_err(|_| self.stopped())
    }

    /// Queues the items of several consecutive old entries in one message (one channel send
    /// for a whole read from the upstream). Each is accepted once [`Journal::watch`] shows
    /// `upstream >=` its end.
    pub async fn append_many(
        &self,
        batch: Vec<(BinlogPos, Vec<NewEntry>)>,
    ) -> Result<(), JournalError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Cmd::AppendMany(batch))
            .await
            .map_err(|_| self.stopped())
    }

    /// [`append`](Self::append) for non-async callers (must not be called on a runtime thread).
    pub fn append_blocking(
        &self,
        upstream_end: BinlogPos,
        entries: Vec<NewEntry>,
    ) -> Result<(), JournalError> {
        self.tx
            .blocking_send(Cmd::Append(upstream_end, entries))
            .map_err(|_| self.stopped())
    }

    async fn ask(
        &self,
        f: impl FnOnce(oneshot::Sender<Result<Synced, String>>) -> Cmd,
    ) -> Result<Synced, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(f(tx)).await.map_err(|_| self.stopped())?;
        rx.await
            .map_err(|_| self.stopped())?
            .map_err(JournalError::WriterStopped)
    }

    /// Syncs everything queued so far and returns the accepted state.
    pub async fn sync(&self) -> Result<Synced, JournalError> {
        self.ask(Cmd::Sync).await
    }

    /// Blocking [`sync`](Self::sync).
    pub fn sync_blocking(&self) -> Result<Synced, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .blocking_send(Cmd::Sync(tx))
            .map_err(|_| self.stopped())?;
        rx.blocking_recv()
            .map_err(|_| self.stopped())?
            .map_err(JournalError::WriterStopped)
    }

    /// Starts a new dump epoch at upstream position `upstream` (see [`JournalWriter::begin_epoch`]).
    pub async fn begin_epoch(&self, upstream: BinlogPos) -> Result<Synced, JournalError> {
        self.ask(|tx| Cmd::Epoch(upstream, tx)).await
    }

    /// Syncs, stops the writer thread and waits for it.
    pub async fn close(mut self) -> Result<Synced, JournalError> {
        let r = self.ask(Cmd::Close).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        r
    }
}

fn run(mut w: JournalWriter, mut rx: mpsc::Receiver<Cmd>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fail(&w, format!("writer runtime: {e}"));
            return;
        }
    };
    rt.block_on(async move {
        let mut cmds = Vec::with_capacity(APPEND_BATCH);
        loop {
            let n = match w.sync_deadline() {
                Some(d) => tokio::select! {
                    biased;
                    n = rx.recv_many(&mut cmds, APPEND_BATCH) => n,
                    _ = tokio::time::sleep_until(d.into()) => {
                        if let Err(e) = w.request_sync() { return fail(&w, e.to_string()); }
                        continue;
                    }
                },
                None => rx.recv_many(&mut cmds, APPEND_BATCH).await,
            };
            if n == 0 {
                if let Err(e) = w.sync() {
                    fail(&w, e.to_string());
                }
                return;
            }
            for cmd in cmds.drain(..) {
                let r = match cmd {
                    Cmd::Append(up, entries) => w.append(up, &entries).map(|_| ()),
                    Cmd::AppendMany(batch) => batch
                        .iter()
                        .try_for_each(|(up, entries)| w.append(*up, entries).map(|_| ())),
                    Cmd::Sync(reply) => {
                        let r = w.sync();
                        let _ = reply.send(r.as_ref().map(|s| *s).map_err(|e| e.to_string()));
                        r.map(|_| ())
                    }
                    Cmd::Epoch(up, reply) => {
                        let r = w.begin_epoch(up);
                        let _ = reply.send(r.as_ref().map(|s| *s).map_err(|e| e.to_string()));
                        r.map(|_| ())
                    }
                    Cmd::Close(reply) => {
                        let r = w.sync().and_then(|s| w.close_file().map(|_| s));
                        let _ = reply.send(r.as_ref().map(|s| *s).map_err(|e| e.to_string()));
                        return;
                    }
                };
                if let Err(e) = r.and_then(|_| {
                    if w.sync_due() || w.over_unsynced_limit() {
                        w.request_sync()
                    } else {
                        Ok(())
                    }
                }) {
                    return fail(&w, e.to_string());
                }
            }
            // Nothing else queued: hand what was appended to the syncer now instead of waiting
            // for the group-commit deadline. While a commit runs, requests merge, so the
            // syncer commits back to back and each fsync covers everything appended during the
            // previous one (group commit by itself); `max_entries` / `max_delay_ms` bound the
            // batches while appends keep coming.
            if rx.is_empty() && w.dirty {
                if let Err(e) = w.request_sync() {
                    return fail(&w, e.to_string());
                }
            }
        }
    });
}

fn fail(w: &JournalWriter, msg: String) {
    tracing::error!("journal writer stopped: {msg}");
    *w.shared.failure.lock().unwrap() = Some(msg);
}
