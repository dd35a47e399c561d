//! One file's data: literal tokens into a temp file, the whole-file checksum (MD5 or the
//! negotiated one), and the commit or discard.

use std::path::PathBuf;

use super::Session;
use crate::rsync::checksum::FileSum;
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::FileEntry;
use crate::rsync::mux::Control;
use crate::rsync::token::{decode_token, Token};
use crate::rsync::wire::take;

/// Literal data is written to disk in pieces of this size (two buffers: one being filled
/// straight from the socket while the other is written by a blocking thread).
const WRITE_CHUNK: usize = 1 << 20;

impl Session<'_> {
    /// Receive one file's tokens and checksum; commit it if the checksum matches.
    pub(super) async fn receive_file(&mut self, e: &FileEntry, target: PathBuf) -> Result<bool> {
        let mut w = self.staging().begin(&target).await?;
        let mut sum = FileSum::new(self.protocol, self.setup.xfer_sum)?;
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
                let start = buf.len();
                let room = WRITE_CHUNK - start;
                let k = self.rd.read_data_into(&mut buf, left.min(room)).await?;
                if k == 0 {
                    self.peer_gave_up()?;
                    continue;
                }
                sum.update(&buf[start..]);
                left -= k;
                if buf.len() >= WRITE_CHUNK {
                    buf = w.write(buf).await?;
                    self.progress.tick();
                }
            }
        }
        if !buf.is_empty() {
            w.write(buf).await?;
        }
        let sum_len = self.setup.xfer_sum.digest_len();
        let theirs = self
            .rd
            .decode(sum_len, |c| take(c, sum_len).map(<[u8]>::to_vec))
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

    /// Stop if the client announced its exit while we wait for file data (other control
    /// messages stay queued for the next record boundary).
    fn peer_gave_up(&self) -> Result<()> {
        match self.rd.controls.iter().find_map(|c| match c {
            Control::ErrorExit(code) => Some(*code),
            _ => None,
        }) {
            Some(code) => Err(ProtoError::Peer(format!(
                "client aborted (exit code {})",
                code.unwrap_or(-1)
            ))),
            None => Ok(()),
        }
    }
}
