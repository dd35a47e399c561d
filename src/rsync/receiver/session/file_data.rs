//! One file's data: literal tokens into a temp file, the whole-file checksum (MD5 or the
//! negotiated one), and the commit or discard.

use std::path::PathBuf;

use super::Session;
use crate::rsync::checksum::FileSum;
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::FileEntry;
use crate::rsync::token::{decode_token, Token};
use crate::rsync::wire::take;

/// Literal data is written to disk in pieces of this size.
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
}
