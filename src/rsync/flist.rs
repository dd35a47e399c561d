//! File-list entries (no incremental recursion; flags as a byte/short, or as a varint when
//! `CF_VARINT_FLIST_FLAGS` was set).

use super::error::{ProtoError, Result};
use super::wire::{
    get_i32, get_u8, get_varint, get_varlong, put_i32, put_varint, put_varlong, take,
};

/// Entry flag bits (`XMIT_*`).
#[allow(missing_docs)]
pub mod xmit {
    pub const TOP_DIR: u16 = 0x0001;
    pub const SAME_MODE: u16 = 0x0002;
    pub const EXTENDED_FLAGS: u16 = 0x0004;
    pub const SAME_UID: u16 = 0x0008;
    pub const SAME_GID: u16 = 0x0010;
    pub const SAME_NAME: u16 = 0x0020;
    pub const LONG_NAME: u16 = 0x0040;
    pub const SAME_TIME: u16 = 0x0080;
    pub const SAME_RDEV_MAJOR: u16 = 0x0100;
    pub const NO_CONTENT_DIR: u16 = 0x0100;
    pub const HLINKED: u16 = 0x0200;
    pub const USER_NAME_FOLLOWS: u16 = 0x0400;
    pub const GROUP_NAME_FOLLOWS: u16 = 0x0800;
    pub const IO_ERROR_ENDLIST: u16 = 0x1000;
    pub const MOD_NSEC: u16 = 0x2000;
    pub const SAME_ATIME: u16 = 0x4000;
}

/// File type bits of `st_mode`.
#[allow(missing_docs)]
pub mod mode {
    pub const IFMT: u32 = 0o170000;
    pub const IFREG: u32 = 0o100000;
    pub const IFDIR: u32 = 0o040000;
    pub const IFLNK: u32 = 0o120000;
    pub const IFCHR: u32 = 0o020000;
    pub const IFBLK: u32 = 0o060000;
    pub const IFIFO: u32 = 0o010000;
    pub const IFSOCK: u32 = 0o140000;
}

/// Longest path accepted in a file list.
pub const MAX_PATH: usize = 4095;

/// One file-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileEntry {
    /// Path relative to the transfer root, `/`-separated; the root is `.`.
    pub name: Vec<u8>,
    /// Size in bytes (0 for non-regular files).
    pub size: i64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds (protocol 31).
    pub nsec: u32,
    /// Raw `st_mode`.
    pub mode: u32,
    /// Flags as received (`XMIT_*`).
    pub flags: u16,
    /// Symlink target, when `-l` and the entry is a symlink.
    pub link_target: Option<Vec<u8>>,
    /// Whole-file checksum, when `-c` ([`FlistOptions::checksum_len`] bytes).
    pub checksum: Option<Vec<u8>>,
}

impl FileEntry {
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & mode::IFMT == mode::IFDIR
    }
    /// Whether the entry is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & mode::IFMT == mode::IFREG
    }
    /// The name as (lossy) UTF-8, for messages.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Which optional fields the stream carries (from the server arguments and protocol).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlistOptions {
    /// Negotiated protocol (30 or 31).
    pub protocol: u32,
    /// `-o`.
    pub owner: bool,
    /// `-g`.
    pub group: bool,
    /// Devices carry rdev.
    pub devices: bool,
    /// Specials carry rdev at protocol 30.
    pub specials: bool,
    /// `-l`.
    pub links: bool,
    /// `-c`.
    pub checksum: bool,
    /// Length of the `-c` sums (16 for MD5/xxh128, 8 for xxh3/xxh64).
    pub checksum_len: usize,
    /// `CF_VARINT_FLIST_FLAGS`: flags are one varint and the list ends with varint 0 plus
    /// a varint io_error.
    pub varint_flags: bool,
}

/// One decoded item of the file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlistItem {
    /// An entry.
    Entry(FileEntry),
    /// The end of the list.
    End,
    /// The protocol-31 end marker carrying the sender's io_error.
    EndWithIoError(i32),
}

/// Check that a received name is a safe relative path.
pub fn validate_name(name: &[u8]) -> Result<()> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.len() > MAX_PATH {
        return Err(ProtoError::Limit(format!("path of {} bytes", name.len())));
    }
    if name == b"." {
        return Ok(());
    }
    if name.is_empty() || name[0] == b'/' {
        return Err(ProtoError::Unsafe(format!(
            "absolute or empty path `{}`",
            shown()
        )));
    }
    if name.contains(&0) {
        return Err(ProtoError::Unsafe("path contains NUL".into()));
    }
    for comp in name.split(|&b| b == b'/') {
        if comp.is_empty() || comp == b"." || comp == b".." {
            return Err(ProtoError::Unsafe(format!(
                "path `{}` has a `{}` component",
                shown(),
                String::from_utf8_lossy(comp)
            )));
        }
    }
    Ok(())
}

/// Decoder state for one file list (the "previous entry" values).
#[derive(Debug, Default)]
pub struct FlistDecoder {
    opts: FlistOptions,
    last_name: Vec<u8>,
    mode: u32,
    mtime: i64,
    rdev_major: i32,
}

impl FlistDecoder {
    /// A decoder for a stream carrying the fields in `opts`.
    pub fn new(opts: FlistOptions) -> Self {
        FlistDecoder {
            opts,
            ..Default::default()
        }
    }

    /// Decode the next item. On `Incomplete` neither the cursor nor the state moves.
    pub fn decode(&mut self, buf: &mut &[u8]) -> Result<FlistItem> {
        let mut c = *buf;
        let flags = if self.opts.varint_flags {
            let f = get_varint(&mut c)?;
            if f == 0 {
                let err = get_varint(&mut c)?;
                *buf = c;
                return Ok(if err == 0 {
                    FlistItem::End
                } else {
                    FlistItem::EndWithIoError(err)
                });
            }
            u16::try_from(f).map_err(|_| {
                ProtoError::Unsupported(format!("file-list flags {f:#x} (crtimes?)"))
            })?
        } else {
            let mut flags = u16::from(get_u8(&mut c)?);
            if flags == 0 {
                *buf = c;
                return Ok(FlistItem::End);
            }
            if flags & xmit::EXTENDED_FLAGS != 0 {
                flags |= u16::from(get_u8(&mut c)?) << 8;
            }
            if self.opts.protocol >= 31 && flags == xmit::EXTENDED_FLAGS | xmit::IO_ERROR_ENDLIST {
                let err = get_varint(&mut c)?;
                *buf = c;
                return Ok(FlistItem::EndWithIoError(err));
            }
            flags
        };
        if flags & (xmit::HLINKED | xmit::SAME_ATIME) != 0 {
            return Err(ProtoError::Unsupported(format!(
                "file-list flags {flags:#06x} (hard links/atimes)"
            )));
        }
        let l1 = if flags & xmit::SAME_NAME != 0 {
            usize::from(get_u8(&mut c)?)
        } else {
            0
        };
        let l2 = if flags & xmit::LONG_NAME != 0 {
            usize::try_from(get_varint(&mut c)?)
                .map_err(|_| ProtoError::invalid("negative name length"))?
        } else {
            usize::from(get_u8(&mut c)?)
        };
        if l1 > self.last_name.len() {
            return Err(ProtoError::invalid("name prefix longer than previous name"));
        }
        if l1 + l2 > MAX_PATH {
            return Err(ProtoError::Limit(format!("path of {} bytes", l1 + l2)));
        }
        let mut name = self.last_name[..l1].to_vec();
        name.extend_from_slice(take(&mut c, l2)?);
        let size = get_varlong(&mut c, 3)?;
        let mtime = if flags & xmit::SAME_TIME == 0 {
            get_varlong(&mut c, 4)?
        } else {
            self.mtime
        };
        let nsec = if flags & xmit::MOD_NSEC != 0 && self.opts.protocol >= 31 {
            let n = get_varint(&mut c)?;
            if !(0..1_000_000_000).contains(&n) {
                return Err(ProtoError::invalid("nanoseconds out of range"));
            }
            n as u32
        } else {
            0
        };
        let fmode = if flags & xmit::SAME_MODE == 0 {
            get_i32(&mut c)? as u32
        } else {
            self.mode
        };
        if self.opts.owner && flags & xmit::SAME_UID == 0 {
            get_varint(&mut c)?;
            if flags & xmit::USER_NAME_FOLLOWS != 0 {
                let n = get_u8(&mut c)?;
                take(&mut c, usize::from(n))?;
            }
        }
        if self.opts.group && flags & xmit::SAME_GID == 0 {
            get_varint(&mut c)?;
            if flags & xmit::GROUP_NAME_FOLLOWS != 0 {
                let n = get_u8(&mut c)?;
                take(&mut c, usize::from(n))?;
            }
        }
        let ftype = fmode & mode::IFMT;
        let is_dev = ftype == mode::IFCHR || ftype == mode::IFBLK;
        let is_special = ftype == mode::IFIFO || ftype == mode::IFSOCK;
        let mut rdev_major = self.rdev_major;
        if (self.opts.devices && is_dev)
            || (self.opts.specials && is_special && self.opts.protocol < 31)
        {
            if flags & xmit::SAME_RDEV_MAJOR == 0 {
                rdev_major = get_varint(&mut c)?;
            }
            get_varint(&mut c)?;
        }
        let link_target = if self.opts.links && ftype == mode::IFLNK {
            let n = usize::try_from(get_varint(&mut c)?)
                .map_err(|_| ProtoError::invalid("negative link length"))?;
            if n > MAX_PATH {
                return Err(ProtoError::Limit("symlink target too long".into()));
            }
            Some(take(&mut c, n)?.to_vec())
        } else {
            None
        };
        let checksum = if self.opts.checksum && ftype == mode::IFREG {
            Some(take(&mut c, self.opts.checksum_len)?.to_vec())
        } else {
            None
        };
        if ![
            mode::IFREG,
            mode::IFDIR,
            mode::IFLNK,
            mode::IFCHR,
            mode::IFBLK,
            mode::IFIFO,
            mode::IFSOCK,
        ]
        .contains(&ftype)
        {
            return Err(ProtoError::invalid(format!("bad file mode {fmode:#o}")));
        }
        if size < 0 {
            return Err(ProtoError::invalid("negative file size"));
        }
        *buf = c;
        self.last_name.clone_from(&name);
        self.mode = fmode;
        self.mtime = mtime;
        self.rdev_major = rdev_major;
        Ok(FlistItem::Entry(FileEntry {
            name,
            size,
            mtime,
            nsec,
            mode: fmode,
            flags,
            link_target,
            checksum,
        }))
    }
}

/// Decode the uid or gid name list that follows the file list (`(id, name)*`, then id 0).
pub fn decode_id_list(buf: &mut &[u8]) -> Result<Vec<(i32, Vec<u8>)>> {
    let mut c = *buf;
    let mut out = vec![];
    loop {
        let id = get_varint(&mut c)?;
        if id == 0 {
            break;
        }
        let n = get_u8(&mut c)?;
        out.push((id, take(&mut c, usize::from(n))?.to_vec()));
        if out.len() > 65536 {
            return Err(ProtoError::Limit("id list too long".into()));
        }
    }
    *buf = c;
    Ok(out)
}

/// Encode an entry the simple way: full name (`LONG_NAME`), all fields present. The
/// options must not include `owner`/`group`/`links`/`checksum` (the sender never sets them).
pub fn encode_entry(out: &mut Vec<u8>, e: &FileEntry, top_dir: bool) {
    let flags = xmit::LONG_NAME | if top_dir { xmit::TOP_DIR } else { 0 };
    out.push(flags as u8);
    put_varint(out, e.name.len() as i32);
    out.extend_from_slice(&e.name);
    put_varlong(out, e.size, 3);
    put_varlong(out, e.mtime, 4);
    put_i32(out, e.mode as i32);
}

#[cfg(test)]
mod tests;
