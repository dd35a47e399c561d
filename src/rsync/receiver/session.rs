//! The multiplexed part of one push: filter list, file list, requests, file data, and the
//! end-of-run NDX_DONE choreography (§10–§13 of the spec).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::tcp::OwnedReadHalf;

use super::front::Accepted;
use super::progress::Progress;
use super::staging::{sanitize_dest, Dest, Staging};
use super::{Limits, Shared, TransferEvent};
use crate::rsync::args::ServerArgs;
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::{
    decode_id_list, mode, validate_name, FileEntry, FlistDecoder, FlistItem, FlistOptions, MAX_PATH,
};
use crate::rsync::mux::{tag, Control, MuxReader};
use crate::rsync::ndx::{NdxState, NDX_DONE};
use crate::rsync::outbox::Outbox;
use crate::rsync::sort::sort_by_name;
use crate::rsync::token::{decode_token, FileSum, Token, EMPTY_SUM_HEAD, SUM_LEN};
use crate::rsync::wire::{get_u16, put_u16, take};

/// `ITEM_TRANSFER | ITEM_IS_NEW`: "send this file, all of it".
const REQUEST_IFLAGS: u16 = 0x8000 | 0x2000;
const ITEM_TRANSFER: u16 = 0x8000;
/// Flags we never set, so a sender never echoes them.
const ITEM_BASIS_OR_XNAME: u16 = 0x0800 | 0x1000;
/// Literal data is written to disk in pieces of this size.
const WRITE_CHUNK: usize = 1 << 20;

struct Session<'a> {
    protocol: u32,
    module: String,
    limits: &'a Limits,
    rd: MuxReader<OwnedReadHalf>,
    out: Outbox,
    wndx: NdxState,
    rndx: NdxState,
    staging: Option<Staging>,
    progress: Progress,
    io_error: i32,
    not_sent: Vec<String>,
    files: Vec<PathBuf>,
    skipped: usize,
    delete_pass: bool,
}

/// Run the session after setup; returns the reader so the caller can drain it after the
/// write side is closed.
pub(super) async fn run(
    acc: Accepted,
    peer: SocketAddr,
    shared: &Shared,
    rd: OwnedReadHalf,
    leftover: &[u8],
    out: Outbox,
) -> MuxReader<OwnedReadHalf> {
    let cfg = &shared.config;
    let mut rd = MuxReader::new(rd, leftover);
    rd.idle_timeout = Some(cfg.limits.idle_timeout);
    let mut s = Session {
        protocol: acc.protocol,
        module: acc.module.clone(),
        limits: &cfg.limits,
        rd,
        out,
        wndx: NdxState::default(),
        rndx: NdxState::default(),
        staging: None,
        progress: Progress::new(peer, &acc.module, cfg.progress_interval),
        io_error: 0,
        not_sent: vec![],
        files: vec![],
        skipped: 0,
        delete_pass: acc.args.as_ref().is_ok_and(|a| a.delete),
    };
    let root = cfg.staging_root.join(&acc.module);
    let result = match acc.args {
        Ok(args) => s.transfer(&args, root.clone()).await,
        Err(e) => Err(e),
    };
    let result = match result {
        Ok(()) if s.io_error != 0 || !s.not_sent.is_empty() => Err(format!(
            "client reported read errors (io_error {:#x}); files not sent: {:?}",
            s.io_error, s.not_sent
        )),
        Ok(()) => {
            tracing::info!(
                "rsync receiver: {peer}: module `{}`: done{}: {} files written, {} up to date, {:.1} MiB in {:.1}s ({:.1} MB/s)",
                s.module,
                if s.delete_pass { " (delete pass)" } else { "" },
                s.progress.files,
                s.skipped,
                s.progress.bytes as f64 / (1 << 20) as f64,
                s.progress.elapsed().as_secs_f64(),
                s.progress.rate_mb()
            );
            Ok(())
        }
        Err(e) => {
            if let Some(st) = s.staging.as_mut() {
                st.discard().await;
            }
            tracing::warn!("rsync receiver: {peer}: module `{}`: {e}", s.module);
            if !matches!(e, ProtoError::Eof(_) | ProtoError::Timeout(_)) {
                s.report_fatal(&e).await;
            }
            s.files.clear();
            Err(e.to_string())
        }
    };
    let _ = shared.events.send(TransferEvent {
        peer,
        module: s.module.clone(),
        module_root: root,
        files: std::mem::take(&mut s.files),
        skipped: s.skipped,
        bytes: s.progress.bytes,
        delete_pass: s.delete_pass,
        result,
    });
    s.rd
}

impl Session<'_> {
    fn staging(&mut self) -> &mut Staging {
        self.staging.as_mut().expect("staging opened before use")
    }

    async fn data(&self, payload: Vec<u8>) -> Result<()> {
        self.out.send(tag::DATA, payload).await
    }

    /// Tell the client why we stop (§13.2): MSG_ERROR, then at protocol 31 the
    /// MSG_ERROR_EXIT exchange; at 30 the caller just closes.
    async fn report_fatal(&mut self, e: &ProtoError) {
        let text = format!("rsync: [Receiver] {e} (in {})\n", self.module);
        let _ = self.out.send(tag::ERROR, text.into_bytes()).await;
        if self.protocol >= 31 {
            let _ = self
                .out
                .send(tag::ERROR_EXIT, e.exit_code().to_le_bytes().to_vec())
                .await;
            let waited =
                tokio::time::timeout(Duration::from_secs(5), self.rd.drain_until_error_exit())
                    .await;
            if matches!(waited, Ok(Ok(()))) {
                let _ = self.out.send(tag::ERROR_EXIT, vec![]).await;
            }
        }
        let _ = self.out.flush().await;
    }

    /// Handle out-of-band messages received so far.
    fn controls(&mut self, entries: &[FileEntry]) -> Result<()> {
        while let Some(c) = self.rd.controls.pop_front() {
            match c {
                Control::NoSend(ndx) => {
                    let name = usize::try_from(ndx)
                        .ok()
                        .and_then(|i| entries.get(i))
                        .map(FileEntry::display);
                    self.not_sent
                        .push(name.unwrap_or_else(|| format!("#{ndx}")));
                }
                Control::IoError(v) => self.io_error |= v,
                Control::ErrorExit(code) => {
                    return Err(ProtoError::Peer(format!(
                        "client aborted (exit code {})",
                        code.unwrap_or(-1)
                    )))
                }
                Control::Text(t, msg) if t == tag::INFO => {
                    tracing::debug!("rsync receiver: client says: {msg}")
                }
                Control::Text(_, msg) => tracing::warn!(
                    "rsync receiver: module `{}`: client says: {msg}",
                    self.module
                ),
                Control::Deleted(_) | Control::Success(_) => {}
            }
        }
        Ok(())
    }

    async fn transfer(&mut self, args: &ServerArgs, root: PathBuf) -> Result<()> {
        if args.sender {
            return Err(ProtoError::Unsupported(
                "module is write only (pulls are refused)".into(),
            ));
        }
        if args.paths.len() != 1 {
            return Err(ProtoError::Unsupported(format!(
                "{} destination arguments (need exactly 1)",
                args.paths.len()
            )));
        }
        let (dest_rel, trailing) = sanitize_dest(&args.paths[0], &self.module)?;
        self.staging = Some(Staging::open(root).await?);
        if args.wants_filter_list() {
            self.skip_filter_list().await?;
        }
        let mut entries = self.read_file_list(args).await?;
        for wanted in [args.owner, args.group] {
            if wanted && !args.numeric_ids {
                self.rd.decode(1 << 20, decode_id_list).await?;
            }
        }
        sort_by_name(&mut entries, |e| (&e.name[..], e.is_dir()));
        if let Some(w) = entries.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ProtoError::invalid(format!(
                "duplicate file-list entry `{}`",
                w[0].display()
            )));
        }
        let dest = self
            .staging()
            .resolve(&dest_rel, trailing, &entries)
            .await?;
        let mut wanted = vec![false; entries.len()];
        self.plan(args, &entries, &dest, &mut wanted).await?;

        let mut redo = vec![];
        self.receive_phase(&entries, &dest, &mut wanted, &mut redo, 0)
            .await?;
        let mut msg = vec![];
        for &i in &redo {
            self.request(&mut msg, i);
            wanted[i] = true;
        }
        let dones = if self.protocol >= 31 { 3 } else { 2 };
        msg.resize(msg.len() + dones, 0u8);
        self.data(msg).await?;
        self.receive_phase(&entries, &dest, &mut wanted, &mut redo, 1)
            .await?;
        self.expect_done(&entries).await?;
        if self.protocol >= 31 {
            self.expect_done(&entries).await?;
        }
        if args.delete && self.io_error == 0 {
            let n = self
                .staging
                .as_mut()
                .expect("open")
                .delete_extraneous(&dest, &entries)
                .await?;
            if n > 0 {
                tracing::info!(
                    "rsync receiver: module `{}`: --delete removed {n} entries",
                    self.module
                );
            }
        }
        self.staging().finish_dirs().await;
        self.data(vec![0]).await?; // goodbye
        self.out.flush().await
    }

    async fn skip_filter_list(&mut self) -> Result<()> {
        for _ in 0..10_000 {
            let len = self.rd.read_i32().await?;
            if len == 0 {
                return Ok(());
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= 8192)
                .ok_or_else(|| ProtoError::invalid("bad filter rule length"))?;
            self.rd.decode(len, |c| take(c, len).map(|_| ())).await?;
        }
        Err(ProtoError::Limit("more than 10000 filter rules".into()))
    }

    async fn read_file_list(&mut self, args: &ServerArgs) -> Result<Vec<FileEntry>> {
        let opts = FlistOptions {
            protocol: self.protocol,
            owner: args.owner,
            group: args.group,
            devices: args.devices,
            specials: args.specials,
            links: args.links,
            checksum: args.checksum,
        };
        let mut dec = FlistDecoder::new(opts);
        let mut entries = vec![];
        let mut declared: u64 = 0;
        loop {
            let item = self.rd.decode(MAX_PATH + 8192, |c| dec.decode(c)).await?;
            let e = match item {
                FlistItem::End => break,
                FlistItem::EndWithIoError(err) => {
                    self.io_error |= err;
                    break;
                }
                FlistItem::Entry(e) => e,
            };
            validate_name(&e.name)?;
            match e.mode & mode::IFMT {
                mode::IFREG | mode::IFDIR => {}
                mode::IFLNK => {
                    return Err(ProtoError::Unsafe(format!(
                        "symlink entry `{}` refused",
                        e.display()
                    )))
                }
                _ => {
                    return Err(ProtoError::Unsafe(format!(
                        "device/special entry `{}` refused",
                        e.display()
                    )))
                }
            }
            if entries.len() >= self.limits.max_files {
                return Err(ProtoError::Limit(format!(
                    "more than {} files in one transfer",
                    self.limits.max_files
                )));
            }
            if e.is_file() {
                if e.size as u64 > self.limits.max_file_bytes {
                    return Err(ProtoError::Limit(format!(
                        "file `{}` of {} bytes is over the per-file cap of {} bytes",
                        e.display(),
                        e.size,
                        self.limits.max_file_bytes
                    )));
                }
                declared += e.size as u64;
                if declared > self.limits.max_total_bytes {
                    return Err(ProtoError::Limit(format!(
                        "transfer over the total cap of {} bytes",
                        self.limits.max_total_bytes
                    )));
                }
            }
            entries.push(e);
        }
        Ok(entries)
    }

    fn request(&mut self, out: &mut Vec<u8>, i: usize) {
        self.wndx.encode(out, i as i32);
        put_u16(out, REQUEST_IFLAGS);
        out.extend_from_slice(&EMPTY_SUM_HEAD);
    }

    /// Create directories, quick-check files and send the phase-0 requests, then DONE.
    async fn plan(
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

    async fn read_ndx(&mut self, entries: &[FileEntry]) -> Result<i32> {
        let st = &mut self.rndx;
        let ndx = self.rd.decode(8, |c| st.decode(c)).await?;
        self.controls(entries)?;
        Ok(ndx)
    }

    async fn expect_done(&mut self, entries: &[FileEntry]) -> Result<()> {
        match self.read_ndx(entries).await? {
            NDX_DONE => Ok(()),
            n => Err(ProtoError::invalid(format!(
                "expected NDX_DONE at end of run, got {n}"
            ))),
        }
    }

    /// Read file records until the sender's DONE for this phase.
    async fn receive_phase(
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

    /// Receive one file's tokens and checksum; commit it if the MD5 matches.
    async fn receive_file(&mut self, e: &FileEntry, target: PathBuf) -> Result<bool> {
        let mut w = self.staging().begin(&target).await?;
        let mut sum = FileSum::new(self.protocol, 0)?;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        let mut got: u64 = 0;
        while let Token::Literal(n) = self.rd.decode(4, decode_token).await? {
            got += n as u64;
            self.progress.bytes += n as u64;
            if got > self.limits.max_file_bytes {
                return Err(ProtoError::Limit(format!(
                    "file `{}` is over the per-file cap of {} bytes",
                    e.display(),
                    self.limits.max_file_bytes
                )));
            }
            if self.progress.bytes > self.limits.max_total_bytes {
                return Err(ProtoError::Limit(format!(
                    "transfer over the total cap of {} bytes",
                    self.limits.max_total_bytes
                )));
            }
            let mut left = n;
            while left > 0 {
                if self.rd.data().is_empty() {
                    self.rd.fill_more().await?;
                }
                let k = left.min(self.rd.data().len());
                let chunk = &self.rd.data()[..k];
                sum.update(chunk);
                buf.extend_from_slice(chunk);
                self.rd.consume(k);
                left -= k;
                if buf.len() >= WRITE_CHUNK {
                    w.write(&buf).await?;
                    buf.clear();
                    self.progress.tick();
                }
            }
        }
        w.write(&buf).await?;
        let theirs = self
            .rd
            .decode(SUM_LEN, |c| take(c, SUM_LEN).map(<[u8]>::to_vec))
            .await?;
        if sum.finish()[..] != theirs[..] {
            self.staging().abort(w).await;
            return Ok(false);
        }
        if got != e.size as u64 {
            tracing::warn!("rsync receiver: module `{}`: `{}` changed while sent ({} bytes listed, {got} received)", self.module, e.display(), e.size);
        }
        self.staging().commit(w, e).await?;
        self.files.push(target);
        self.progress.files += 1;
        self.progress.tick();
        Ok(true)
    }
}
