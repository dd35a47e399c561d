//! The multiplexed part of one push: the connection's lifecycle, the order of the steps
//! and the end-of-run NDX_DONE choreography (§10–§13 of the spec). The steps live in
//! [`file_list`] (filter and file lists), [`requests`] (the generator's requests and the
//! phase loop) and [`file_data`] (one file's tokens, checksum and commit).

mod file_data;
mod file_list;
mod requests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::tcp::OwnedReadHalf;

use super::front::{Accepted, Setup};
use super::progress::Progress;
use super::staging::{sanitize_dest, Staging};
use super::{Limits, Shared, TransferEvent};
use crate::rsync::args::ServerArgs;
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::{decode_id_list, FileEntry};
use crate::rsync::mux::{tag, Control, MuxReader};
use crate::rsync::ndx::NdxState;
use crate::rsync::outbox::Outbox;
use crate::rsync::sort::sort_by_name;

struct Session<'a> {
    protocol: u32,
    setup: Setup,
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
        setup: acc.setup,
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
                "rsync receiver: {peer}: module `{}`: done{}: {} files written, {} up to date, {:.1} MiB in {:.1}s ({:.1} MB/s, {}{})",
                s.module,
                if s.delete_pass { " (delete pass)" } else { "" },
                s.progress.files,
                s.skipped,
                s.progress.bytes as f64 / (1 << 20) as f64,
                s.progress.elapsed().as_secs_f64(),
                s.progress.rate_mb(),
                s.setup.xfer_sum.name(),
                if s.setup.negotiated { " negotiated" } else { "" }
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
        checksum: s.setup.xfer_sum,
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
}
