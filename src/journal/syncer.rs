//! Durability beside the appends: the writer hands a [`SyncReq`] (the files written since the
//! last commit and the meta record naming the new end) to the [`Syncer`] and keeps appending;
//! the syncer `fdatasync`s the files, stores meta, rewrites the manifest and only then publishes
//! the new [`Synced`] state. The accepted watermark is therefore exactly what it was with inline
//! syncs (nothing past it is sent downstream or resumed from), but reading the upstream never
//! waits for the disk.
//!
//! Requests made while a commit runs are merged (the newest meta, the union of the files), so
//! commits happen back to back and each one covers everything appended before it was taken.
//! A request is taken from the queue and committed while holding the committer, so commits
//! happen in request order and meta never moves backwards. Without a syncer thread (a bare
//! [`JournalWriter`](super::JournalWriter)), the writer commits its own requests.

use super::meta::{Meta, MetaFile};
use super::recovery::manifest_of;
use super::{retention, JournalError, Shared, Synced};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};

/// Everything appended up to one point, to be made durable.
#[derive(Debug)]
pub(crate) struct SyncReq {
    /// Increases with every request of one writer.
    pub gen: u64,
    /// Data files with unsynced writes (a rotation adds the next one), oldest first.
    pub files: Vec<Arc<File>>,
    /// The record to store once the files are synced.
    pub meta: Meta,
    /// Bytes the writer had produced up to `meta.end` (for back-pressure).
    pub produced: u64,
    /// A rotation happened: run retention after the commit.
    pub purge: bool,
}

impl SyncReq {
    /// `self` (older) followed by `newer`: newer meta, every file of both.
    fn merge(mut self, newer: SyncReq) -> SyncReq {
        for f in newer.files {
            if !self.files.iter().any(|g| Arc::ptr_eq(g, &f)) {
                self.files.push(f);
            }
        }
        SyncReq {
            gen: newer.gen,
            files: self.files,
            meta: newer.meta,
            produced: newer.produced,
            purge: self.purge || newer.purge,
        }
    }
}

/// Owns the meta record and the manifest: turns requests into accepted state.
#[derive(Debug)]
pub(crate) struct Committer {
    pub shared: Arc<Shared>,
    pub meta: MetaFile,
    pub manifest: File,
}

impl Committer {
    fn commit(&mut self, req: &SyncReq) -> Result<Synced, JournalError> {
        let t0 = std::time::Instant::now();
        for f in &req.files {
            f.sync_data().map_err(|e| {
                JournalError::io(
                    format!("fdatasync a data file in {}", self.shared.cfg.dir.display()),
                    e,
                )
            })?;
        }
        let t1 = std::time::Instant::now();
        let meta = req.meta;
        self.meta
            .store(meta)
            .map_err(|e| JournalError::io("store relay-meta", e))?;
        self.shared.sync_stats.record(t1 - t0, t1.elapsed());
        let img = manifest_of(meta.end, meta.logic_id).encode(self.shared.cfg.manifest_layout);
        self.manifest
            .write_all_at(&img[..24], 0)
            .map_err(|e| JournalError::io("write manifest", e))?;
        let st = Synced {
            end: meta.end,
            logic_id: meta.logic_id,
            upstream: meta.upstream,
            epoch: meta.epoch,
            epoch_start: meta.epoch_start,
            entries: meta.entries,
        };
        self.shared.state.send_replace(st);
        if req.purge {
            retention::purge(&self.shared);
        }
        Ok(st)
    }
}

#[derive(Debug, Default)]
struct Slot {
    next: Option<SyncReq>,
    done_gen: u64,
    done_produced: u64,
    error: Option<String>,
    stop: bool,
}

/// The queue between the writer and the committer (see the module documentation).
#[derive(Debug)]
pub(crate) struct Syncer {
    committer: Mutex<Committer>,
    slot: Mutex<Slot>,
    cv: Condvar,
}

impl Syncer {
    pub fn new(committer: Committer, produced: u64) -> Syncer {
        Syncer {
            committer: Mutex::new(committer),
            slot: Mutex::new(Slot {
                done_produced: produced,
                ..Slot::default()
            }),
            cv: Condvar::new(),
        }
    }

    fn failed(msg: &str) -> JournalError {
        JournalError::WriterStopped(format!("an earlier sync failed: {msg}"))
    }

    /// Queues `req` (merged with a request not yet taken). Fails once a commit failed.
    pub fn submit(&self, req: SyncReq) -> Result<(), JournalError> {
        let mut s = self.slot.lock().unwrap();
        if let Some(e) = &s.error {
            return Err(Self::failed(e));
        }
        s.next = Some(match s.next.take() {
            Some(older) => older.merge(req),
            None => req,
        });
        self.cv.notify_all();
        Ok(())
    }

    /// Takes the queued request, if any, and commits it (waiting for a commit in progress).
    pub fn commit_pending(&self) -> Result<(), JournalError> {
        let mut c = self.committer.lock().unwrap();
        let Some(req) = self.slot.lock().unwrap().next.take() else {
            return Ok(());
        };
        let r = c.commit(&req);
        drop(c);
        let mut s = self.slot.lock().unwrap();
        match &r {
            Ok(_) => {
                s.done_gen = s.done_gen.max(req.gen);
                s.done_produced = s.done_produced.max(req.produced);
            }
            Err(e) => s.error = Some(e.to_string()),
        }
        self.cv.notify_all();
        r.map(|_| ())
    }

    /// Commits (here or on the syncer thread) until request `gen` is durable.
    pub fn wait_done(&self, gen: u64) -> Result<(), JournalError> {
        loop {
            {
                let s = self.slot.lock().unwrap();
                if let Some(e) = &s.error {
                    return Err(Self::failed(e));
                }
                if s.done_gen >= gen {
                    return Ok(());
                }
            }
            self.commit_pending()?;
        }
    }

    /// Blocks while more than `max` bytes produced (up to `produced`) are not durable.
    pub fn wait_room(&self, produced: u64, max: u64) -> Result<(), JournalError> {
        let mut s = self.slot.lock().unwrap();
        loop {
            if let Some(e) = &s.error {
                return Err(Self::failed(e));
            }
            if produced.saturating_sub(s.done_produced) <= max || s.stop {
                return Ok(());
            }
            s = self.cv.wait(s).unwrap();
        }
    }

    /// The syncer thread: commits requests as they come until [`stop`](Self::stop).
    pub fn run(&self) {
        loop {
            {
                let mut s = self.slot.lock().unwrap();
                while s.next.is_none() && !s.stop {
                    s = self.cv.wait(s).unwrap();
                }
                if s.next.is_none() {
                    return;
                }
            }
            if let Err(e) = self.commit_pending() {
                let c = self.committer.lock().unwrap();
                tracing::error!(
                    "journal: sync failed: {e}; the relay stops accepting entries (nothing unsynced was acknowledged); check the disk of {}",
                    c.shared.cfg.dir.display()
                );
                *c.shared.failure.lock().unwrap() = Some(e.to_string());
                return;
            }
        }
    }

    /// Ends [`run`](Self::run) once the queue is empty.
    pub fn stop(&self) {
        self.slot.lock().unwrap().stop = true;
        self.cv.notify_all();
    }
}
