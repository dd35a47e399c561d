//! What precedes the file data: the filter list (skipped) and the file list, checked
//! against the safety rules and the configured caps as it arrives.

use super::Session;
use crate::rsync::args::ServerArgs;
use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::{
    mode, validate_name, FileEntry, FlistDecoder, FlistItem, FlistOptions, MAX_PATH,
};
use crate::rsync::wire::take;

impl Session<'_> {
    pub(super) async fn skip_filter_list(&mut self) -> Result<()> {
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

    pub(super) async fn read_file_list(&mut self, args: &ServerArgs) -> Result<Vec<FileEntry>> {
        let opts = FlistOptions {
            protocol: self.protocol,
            owner: args.owner,
            group: args.group,
            devices: args.devices,
            specials: args.specials,
            links: args.links,
            checksum: args.checksum,
            checksum_len: self.setup.file_sum.digest_len(),
            varint_flags: self.setup.varint_flags,
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
}
