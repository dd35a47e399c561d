//! The generator side: quick-check and request files (phase 0), read the sender's records
//! phase by phase, and collect the files to request again after a failed verification.

use super::Session;
use crate::rsync::args::ServerArgs;
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::FileEntry;
use crate::rsync::ndx::NDX_DONE;
use crate::rsync::receiver::staging::{Dest, Staging};
use crate::rsync::token::EMPTY_SUM_HEAD;
use crate::rsync::wire::{get_u16, put_u16, take};

/// `ITEM_TRANSFER | ITEM_IS_NEW`: "send this file, all of it".
const REQUEST_IFLAGS: u16 = 0x8000 | 0x2000;
const ITEM_TRANSFER: u16 = 0x8000;
/// Flags we never set, so a sender never echoes them.
const ITEM_BASIS_OR_XNAME: u16 = 0x0800 | 0x1000;

impl Session<'_> {
    pub(super) fn request(&mut self, out: &mut Vec<u8>, i: usize) {
        self.wndx.encode(out, i as i32);
        put_u16(out, REQUEST_IFLAGS);
        out.extend_from_slice(&EMPTY_SUM_HEAD);
    }

    /// Create directories, quick-check files and send the phase-0 requests, then DONE.
    pub(super) async fn plan(
        &mut self,
        args: &ServerArgs,
        entries: &[FileEntry],
        dest: &Dest,
        wanted: &mut [bool],
    ) -> Result<()> {
        let mut msg = vec![];
        for (i, e) in entries.iter().enumerate() {
            let target = Staging::target(dest, &e.name);
            if e.is_dir() {
                self.staging().ensure_dir(&target).await?;
                self.staging().dir_time(target, e.mtime);
            } else if !args.ignore_times
                && self.staging().up_to_date(&target, e.size, e.mtime).await
            {
                self.skipped += 1;
                self.files.push(target);
            } else {
                self.request(&mut msg, i);
                wanted[i] = true;
                self.progress.planned += 1;
                if msg.len() >= 64 * 1024 {
                    self.data(std::mem::take(&mut msg)).await?;
                }
            }
        }
        msg.push(0);
        self.data(msg).await
    }

    pub(super) async fn read_ndx(&mut self, entries: &[FileEntry]) -> Result<i32> {
        let st = &mut self.rndx;
        let ndx = self.rd.decode(8, |c| st.decode(c)).await?;
        self.controls(entries)?;
        Ok(ndx)
    }

    pub(super) async fn expect_done(&mut self, entries: &[FileEntry]) -> Result<()> {
        match self.read_ndx(entries).await? {
            NDX_DONE => Ok(()),
            n => Err(ProtoError::invalid(format!(
                "expected NDX_DONE at end of run, got {n}"
            ))),
        }
    }

    /// Read file records until the sender's DONE for this phase.
    pub(super) async fn receive_phase(
        &mut self,
        entries: &[FileEntry],
        dest: &Dest,
        wanted: &mut [bool],
        redo: &mut Vec<usize>,
        phase: u8,
    ) -> Result<()> {
        if phase == 1 {
            redo.clear();
        }
        loop {
            let ndx = self.read_ndx(entries).await?;
            if ndx == NDX_DONE {
                return Ok(());
            }
            let i = usize::try_from(ndx)
                .ok()
                .filter(|&i| i < entries.len() && wanted[i]);
            let i = i.ok_or_else(|| {
                ProtoError::invalid(format!("data for file index {ndx} that was not requested"))
            })?;
            wanted[i] = false;
            let iflags = self.rd.decode(2, get_u16).await?;
            if iflags & ITEM_BASIS_OR_XNAME != 0 || iflags & ITEM_TRANSFER == 0 {
                return Err(ProtoError::invalid(format!(
                    "unexpected item flags {iflags:#06x}"
                )));
            }
            let head = self
                .rd
                .decode(16, |c| take(c, 16).map(<[u8]>::to_vec))
                .await?;
            if head[..4] != [0, 0, 0, 0] {
                return Err(ProtoError::invalid(
                    "sender echoed block checksums we never sent",
                ));
            }
            let e = &entries[i];
            let ok = self.receive_file(e, Staging::target(dest, &e.name)).await?;
            if !ok && phase == 0 {
                tracing::warn!(
                    "rsync receiver: module `{}`: `{}` failed verification, requesting it again",
                    self.module,
                    e.display()
                );
                redo.push(i);
            } else if !ok {
                return Err(ProtoError::Peer(format!(
                    "`{}` failed verification twice",
                    e.display()
                )));
            }
        }
    }
}
