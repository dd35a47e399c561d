//! The file sink: a module directory that writes can never leave.
//!
//! Paths come from the (already validated) file list; every directory on the way is checked
//! not to be a symlink, files are written to `.<name>.<random>.tmp` beside the target and
//! renamed only after their checksum matched. On failure everything this connection wrote
//! is removed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::rsync::error::{ProtoError, Result};
use crate::rsync::flist::FileEntry;

/// Where the entries of one transfer go (both relative to the module root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dest {
    /// Entry names are relative to this directory (`.` is the directory itself).
    Dir(PathBuf),
    /// The single non-directory entry is written as this file.
    File(PathBuf),
}

/// Sanitise the client's destination argument: strip the module prefix and leading `/`,
/// drop `.` components, refuse `..`. Returns the relative path and whether it ended in `/`.
pub(super) fn sanitize_dest(raw: &str, module: &str) -> Result<(PathBuf, bool)> {
    let rest = if raw == module {
        ""
    } else {
        raw.strip_prefix(module)
            .filter(|r| r.starts_with('/'))
            .unwrap_or(raw)
    };
    let trailing = rest.ends_with('/') || rest.is_empty();
    let mut out = PathBuf::new();
    for comp in rest.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                return Err(ProtoError::Unsafe(format!(
                    "destination `{raw}` contains `..`"
                )))
            }
            c if c.contains('\0') => {
                return Err(ProtoError::Unsafe("destination contains NUL".into()))
            }
            c => out.push(c),
        }
    }
    Ok((out, trailing))
}

fn bytes_path(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

/// A write running on the blocking pool; it hands back the file and the emptied buffer.
type Inflight = tokio::task::JoinHandle<(std::fs::File, Vec<u8>, std::io::Result<()>)>;

/// An open temp file being received. Writes are double-buffered: [`FileWriter::write`]
/// hands a full buffer to a blocking thread and returns the previous (emptied) one, so the
/// next chunk is received and hashed while this one goes to the page cache.
pub(super) struct FileWriter {
    file: Option<std::fs::File>,
    inflight: Option<Inflight>,
    spare: Vec<u8>,
    tmp: PathBuf,
    /// Target, relative to the module root.
    pub rel: PathBuf,
}

impl FileWriter {
    /// Queue `buf` for appending; returns an empty buffer with at least its capacity.
    pub async fn write(&mut self, buf: Vec<u8>) -> Result<Vec<u8>> {
        let mut file = self.settle().await?;
        let cap = buf.capacity();
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            let r = file.write_all(&buf);
            (file, buf, r)
        }));
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        next.reserve(cap);
        Ok(next)
    }

    /// Wait for the write in flight (if any) and take the file back.
    async fn settle(&mut self) -> Result<std::fs::File> {
        if let Some(h) = self.inflight.take() {
            let (file, buf, r) = h
                .await
                .map_err(|e| ProtoError::Io(std::io::Error::other(e)))?;
            self.spare = buf;
            r?;
            return Ok(file);
        }
        self.file.take().ok_or_else(|| {
            ProtoError::Io(std::io::Error::other("temp file lost after a failed write"))
        })
    }
}

/// The module directory and what this connection did to it.
pub(super) struct Staging {
    root: PathBuf,
    known_dirs: HashSet<PathBuf>,
    written: Vec<PathBuf>,
    temp: Option<PathBuf>,
    dir_times: Vec<(PathBuf, i64)>,
}

impl Staging {
    /// Open (creating) the module directory.
    pub async fn open(root: PathBuf) -> Result<Self> {
        tokio::fs::create_dir_all(&root).await?;
        Ok(Staging {
            root,
            known_dirs: HashSet::new(),
            written: vec![],
            temp: None,
            dir_times: vec![],
        })
    }

    /// Decide where entries go (rsync's destination rules; parents are created).
    pub async fn resolve(
        &mut self,
        dest: &Path,
        trailing: bool,
        entries: &[FileEntry],
    ) -> Result<Dest> {
        let abs = self.root.join(dest);
        let meta = tokio::fs::symlink_metadata(&abs).await.ok();
        if meta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
            return Err(ProtoError::Unsafe(format!(
                "destination `{}` is a symlink",
                dest.display()
            )));
        }
        if meta.as_ref().is_some_and(|m| m.is_dir()) || dest.as_os_str().is_empty() {
            self.ensure_dir(dest).await?;
            return Ok(Dest::Dir(dest.to_path_buf()));
        }
        if entries.len() > 1 || trailing || entries.first().is_some_and(FileEntry::is_dir) {
            if meta.is_some() {
                return Err(ProtoError::invalid(format!(
                    "destination `{}` is not a directory",
                    dest.display()
                )));
            }
            self.ensure_dir(dest).await?;
            return Ok(Dest::Dir(dest.to_path_buf()));
        }
        if let Some(parent) = dest.parent() {
            self.ensure_dir(parent).await?;
        }
        Ok(Dest::File(dest.to_path_buf()))
    }

    /// The relative target of an entry.
    pub fn target(dest: &Dest, name: &[u8]) -> PathBuf {
        match dest {
            Dest::File(p) => p.clone(),
            Dest::Dir(d) if name == b"." => d.clone(),
            Dest::Dir(d) => d.join(bytes_path(name)),
        }
    }

    /// Create `rel` and its parents inside the root, refusing symlinks and non-directories.
    pub async fn ensure_dir(&mut self, rel: &Path) -> Result<()> {
        if self.known_dirs.contains(rel) {
            return Ok(());
        }
        let mut cur = self.root.clone();
        let mut cur_rel = PathBuf::new();
        for comp in rel.components() {
            let Component::Normal(c) = comp else {
                return Err(ProtoError::Unsafe(format!(
                    "path `{}` leaves the module",
                    rel.display()
                )));
            };
            cur.push(c);
            cur_rel.push(c);
            if self.known_dirs.contains(&cur_rel) {
                continue;
            }
            match tokio::fs::symlink_metadata(&cur).await {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ProtoError::Unsafe(format!(
                        "`{}` is a symlink",
                        cur_rel.display()
                    )))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(ProtoError::invalid(format!(
                        "`{}` exists and is not a directory",
                        cur_rel.display()
                    )))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    match tokio::fs::create_dir(&cur).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.known_dirs.insert(cur_rel.clone());
        }
        Ok(())
    }

    /// Remember a directory's mtime, applied by [`Staging::finish_dirs`].
    pub fn dir_time(&mut self, rel: PathBuf, mtime: i64) {
        self.dir_times.push((rel, mtime));
    }

    /// rsync's quick check: same size and same mtime seconds.
    pub async fn up_to_date(&self, rel: &Path, size: i64, mtime: i64) -> bool {
        match tokio::fs::symlink_metadata(self.root.join(rel)).await {
            Ok(m) if m.is_file() => {
                let secs = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64);
                m.len() as i64 == size && secs == Some(mtime)
            }
            _ => false,
        }
    }

    /// Start receiving `rel`: checks the target and opens a temp file beside it.
    pub async fn begin(&mut self, rel: &Path) -> Result<FileWriter> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        self.ensure_dir(parent).await?;
        let abs = self.root.join(rel);
        if let Ok(m) = tokio::fs::symlink_metadata(&abs).await {
            if m.file_type().is_symlink() || m.is_dir() {
                return Err(ProtoError::Unsafe(format!(
                    "`{}` exists as a symlink or directory",
                    rel.display()
                )));
            }
        }
        let fname = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let short: String = fname.chars().take(100).collect();
        let tmp = self
            .root
            .join(parent)
            .join(format!(".{short}.{:08x}.tmp", rand::random::<u32>()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?
            .into_std()
            .await;
        self.temp = Some(tmp.clone());
        Ok(FileWriter {
            file: Some(file),
            inflight: None,
            spare: Vec::new(),
            tmp,
            rel: rel.to_path_buf(),
        })
    }

    /// Finish a verified file: set mode and mtime, rename into place.
    pub async fn commit(&mut self, mut w: FileWriter, e: &FileEntry) -> Result<()> {
        let std = w.settle().await?;
        let FileWriter { tmp, rel, .. } = w;
        let dest = self.root.join(&rel);
        let (mtime, perm) = (e.mtime, (e.mode & 0o777) | 0o600);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std.set_modified(time_of(mtime))?;
            std.set_permissions(std::fs::Permissions::from_mode(perm))?;
            drop(std);
            std::fs::rename(&tmp, &dest)
        })
        .await
        .map_err(|e| ProtoError::Io(std::io::Error::other(e)))??;
        self.temp = None;
        self.written.push(rel);
        Ok(())
    }

    /// Throw away a file being received.
    pub async fn abort(&mut self, mut w: FileWriter) {
        drop(w.settle().await);
        let _ = tokio::fs::remove_file(&w.tmp).await;
        self.temp = None;
    }

    /// Remove everything this connection wrote (the partial staging of a failed transfer).
    pub async fn discard(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = tokio::fs::remove_file(t).await;
        }
        for f in self.written.drain(..) {
            let _ = tokio::fs::remove_file(self.root.join(f)).await;
        }
    }

    /// Apply directory mtimes (after their contents were written).
    pub async fn finish_dirs(&mut self) {
        let dirs: Vec<_> = self
            .dir_times
            .drain(..)
            .map(|(r, t)| (self.root.join(r), t))
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for (d, t) in dirs.into_iter().rev() {
                if let Ok(f) = std::fs::File::open(&d) {
                    let _ = f.set_modified(time_of(t));
                }
            }
        })
        .await;
    }

    /// `--delete`: remove local entries inside the listed directories that the list lacks.
    /// Returns how many were removed.
    pub async fn delete_extraneous(&mut self, dest: &Dest, entries: &[FileEntry]) -> Result<usize> {
        let Dest::Dir(base) = dest else { return Ok(0) };
        let names: HashSet<PathBuf> = entries
            .iter()
            .map(|e| Self::target(dest, &e.name))
            .collect();
        let mut removed = 0;
        for e in entries
            .iter()
            .filter(|e| e.is_dir() && e.flags & crate::rsync::flist::xmit::NO_CONTENT_DIR == 0)
        {
            let dir = Self::target(dest, &e.name);
            if !dir.starts_with(base) {
                continue;
            }
            let mut rd = match tokio::fs::read_dir(self.root.join(&dir)).await {
                Ok(rd) => rd,
                Err(_) => continue,
            };
            while let Some(child) = rd.next_entry().await? {
                let rel = dir.join(child.file_name());
                if names.contains(&rel) {
                    continue;
                }
                let ft = child.file_type().await?;
                if ft.is_dir() {
                    tokio::fs::remove_dir_all(child.path()).await?;
                } else {
                    tokio::fs::remove_file(child.path()).await?;
                }
                tracing::debug!("rsync receiver: deleted {}", rel.display());
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn time_of(secs: i64) -> std::time::SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let m = "document";
        assert_eq!(
            sanitize_dest("document/db0/strings/", m).unwrap(),
            (PathBuf::from("db0/strings"), true)
        );
        assert_eq!(
            sanitize_dest("document/db0/info", m).unwrap(),
            (PathBuf::from("db0/info"), false)
        );
        assert_eq!(
            sanitize_dest("document_1.2.3.4:9/strings/", "document_1.2.3.4:9").unwrap(),
            (PathBuf::from("strings"), true)
        );
        assert_eq!(
            sanitize_dest("document", m).unwrap(),
            (PathBuf::new(), true)
        );
        assert_eq!(
            sanitize_dest("/./a//b", m).unwrap(),
            (PathBuf::from("a/b"), false)
        );
        assert!(sanitize_dest("document/../etc/", m).is_err());
        assert!(sanitize_dest("documentx/a", m).unwrap().0 == Path::new("documentx/a"));
    }
}
