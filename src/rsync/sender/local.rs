//! Building the file list from the local tree.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::FileEntry;
use crate::rsync::sort::sort_by_name;

/// A file-list entry plus where its bytes live locally.
#[derive(Debug, Clone)]
pub struct LocalEntry {
    /// The entry as sent.
    pub entry: FileEntry,
    /// Local path (for regular files).
    pub path: PathBuf,
}

fn entry_of(name: Vec<u8>, path: &Path, m: &std::fs::Metadata) -> LocalEntry {
    LocalEntry {
        entry: FileEntry {
            name,
            size: if m.is_file() { m.len() as i64 } else { 0 },
            mtime: m.mtime(),
            mode: m.mode(),
            ..Default::default()
        },
        path: path.to_path_buf(),
    }
}

fn walk(dir: &Path, prefix: &[u8], out: &mut Vec<LocalEntry>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = std::fs::symlink_metadata(e.path())?;
        let mut name = prefix.to_vec();
        if !name.is_empty() {
            name.push(b'/');
        }
        name.extend_from_slice(e.file_name().as_bytes());
        if m.is_dir() {
            out.push(entry_of(name.clone(), &e.path(), &m));
            walk(&e.path(), &name, out)?;
        } else if m.is_file() {
            out.push(entry_of(name, &e.path(), &m));
        } else {
            tracing::warn!(
                "rsync sender: skipping non-regular file {}",
                e.path().display()
            );
        }
    }
    Ok(())
}

/// List `local` in rsync order: a directory gives `.` plus everything below it, a file
/// gives one entry named by its file name.
pub async fn list_local(local: &Path) -> Result<Vec<LocalEntry>> {
    let local = local.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Vec<LocalEntry>> {
        let m = std::fs::metadata(&local)?;
        let mut out = vec![];
        if m.is_dir() {
            out.push(entry_of(b".".to_vec(), &local, &m));
            walk(&local, b"", &mut out)?;
        } else if m.is_file() {
            let name = local
                .file_name()
                .ok_or_else(|| ProtoError::invalid("source has no file name"))?;
            out.push(entry_of(name.as_bytes().to_vec(), &local, &m));
        } else {
            return Err(ProtoError::invalid(format!(
                "{} is not a file or directory",
                local.display()
            )));
        }
        sort_by_name(&mut out, |e| (&e.entry.name[..], e.entry.is_dir()));
        Ok(out)
    })
    .await
    .map_err(|e| ProtoError::Io(std::io::Error::other(e)))?
}
