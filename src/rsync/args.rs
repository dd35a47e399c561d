//! The `--server` argument list a client sends after `@RSYNCD: OK`.
//!
//! We accept the option sets that Pika masters send (`-vlogDtpre.<info> [--bwlimit=N |
//! --delete] --partial . <module>/<path>`) plus options that do not change the stream
//! layout, and refuse everything else by name.

use super::checksum::{parse_checksum_choice, ChecksumKind};
use super::error::{ProtoError, Result};

/// Most arguments accepted in one list.
pub const MAX_ARGS: usize = 64;
/// Longest single argument accepted.
pub const MAX_ARG_LEN: usize = 4096;

/// What the client asked the server side to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerArgs {
    /// `--sender`: the client wants to pull (refused by a receiver).
    pub sender: bool,
    /// `-r`.
    pub recursive: bool,
    /// `-l`: symlink entries carry their target.
    pub links: bool,
    /// `-o`: uids in entries (and a uid name list unless `numeric_ids`).
    pub owner: bool,
    /// `-g`: gids in entries (and a gid name list unless `numeric_ids`).
    pub group: bool,
    /// Device entries carry rdev (`-D` / `--devices`).
    pub devices: bool,
    /// Special entries (fifo/socket) are preserved (`-D` / `--specials`).
    pub specials: bool,
    /// `-t`.
    pub times: bool,
    /// `-p`.
    pub perms: bool,
    /// `-c`: each regular file entry carries a 16-byte checksum.
    pub checksum: bool,
    /// `-I`: never skip a file by the quick check.
    pub ignore_times: bool,
    /// `--numeric-ids`: no uid/gid name lists.
    pub numeric_ids: bool,
    /// Any `--delete*` option: a filter list precedes the file list.
    pub delete: bool,
    /// `-m`: also makes the client send a filter list.
    pub prune_empty_dirs: bool,
    /// `-s`: the rest of the arguments follow in a second list.
    pub secluded: bool,
    /// The client-info letters after `-e` (e.g. `.iLsfxCIvu`).
    pub client_info: String,
    /// `--bwlimit` value as sent (informational).
    pub bwlimit: Option<String>,
    /// `--checksum-choice=X[,Y]`: fixed (transfer, file-list) sums, no negotiation.
    pub checksum_choice: Option<(ChecksumKind, ChecksumKind)>,
    /// File arguments after the `.` separator (for a push: the destination).
    pub paths: Vec<String>,
}

impl ServerArgs {
    /// Whether the client will send a filter list before the file list.
    pub fn wants_filter_list(&self) -> bool {
        self.delete || self.prune_empty_dirs
    }
}

fn refuse(opt: &str) -> ProtoError {
    ProtoError::Unsupported(format!(
        "{opt}: unknown option (not supported by this receiver)"
    ))
}

fn short_name(c: char) -> &'static str {
    match c {
        'H' => "-H (--hard-links)",
        'A' => "-A (--acls)",
        'X' => "-X (--xattrs)",
        'U' => "-U (--atimes)",
        'N' => "-N (--crtimes)",
        'R' => "-R (--relative)",
        'z' => "-z (--compress)",
        'n' => "-n (--dry-run)",
        'T' => "-T (--temp-dir)",
        _ => "",
    }
}

/// Long options that neither change the stream layout nor need handling here.
const HARMLESS_LONG: &[&str] = &[
    "partial",
    "stats",
    "force",
    "ignore-errors",
    "size-only",
    "msgs2stderr",
    "no-msgs2stderr",
    "safe-links",
    "copy-unsafe-links",
    "fsync",
    "mkpath",
    "open-noatime",
    "preallocate",
    "no-r",
    "use-qsort",
    "super",
    "no-super",
    "existing",
    "ignore-existing",
    "ignore-missing-args",
    "omit-dir-times",
    "omit-link-times",
    "whole-file",
    "no-whole-file",
    "sparse",
    "keep-dirlinks",
    "copy-links",
    "copy-dirlinks",
    "one-file-system",
    "fuzzy",
    "update",
    "backup",
    "perms",
    "executability",
    "times",
    "recursive",
];
/// Long `--name=value` options whose value is irrelevant here.
const HARMLESS_VALUED: &[&str] = &[
    "timeout",
    "log-format",
    "out-format",
    "max-delete",
    "min-size",
    "max-size",
    "modify-window",
    "checksum-seed",
    "max-alloc",
    "info",
    "debug",
    "contimeout",
    "block-size",
    "suffix",
];
const DELETE_LONG: &[&str] = &[
    "delete",
    "del",
    "delete-before",
    "delete-during",
    "delete-delay",
    "delete-after",
    "delete-excluded",
];

impl ServerArgs {
    fn long(&mut self, arg: &str) -> Result<()> {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        match (name, value) {
            ("sender", None) => self.sender = true,
            ("numeric-ids", None) => self.numeric_ids = true,
            ("devices", None) => self.devices = true,
            ("specials", None) => self.specials = true,
            ("no-specials", None) => self.specials = false,
            ("no-devices", None) => self.devices = false,
            ("bwlimit", Some(v)) => self.bwlimit = Some(v.to_string()),
            ("checksum-choice", Some(v)) => {
                self.checksum_choice = parse_checksum_choice(v)
                    .map_err(|n| refuse(&format!("--checksum-choice={n}")))?;
            }
            (n, None) if DELETE_LONG.contains(&n) => self.delete = true,
            (n, None) if HARMLESS_LONG.contains(&n) => {}
            (n, Some(_)) if HARMLESS_VALUED.contains(&n) => {}
            _ => return Err(refuse(&format!("--{name}"))),
        }
        Ok(())
    }

    fn cluster(&mut self, cluster: &str) -> Result<()> {
        for (i, c) in cluster.char_indices() {
            match c {
                'e' => {
                    self.client_info = cluster[i + 1..].to_string();
                    return Ok(());
                }
                // Short options with an attached value: the rest of the cluster is the value.
                'B' | '@' => return Ok(()),
                's' => self.secluded = true,
                'r' => self.recursive = true,
                'l' => self.links = true,
                'o' => self.owner = true,
                'g' => self.group = true,
                'D' => {
                    self.devices = true;
                    self.specials = true;
                }
                't' => self.times = true,
                'p' => self.perms = true,
                'c' => self.checksum = true,
                'I' => self.ignore_times = true,
                'm' => self.prune_empty_dirs = true,
                'v' | 'q' | 'E' | 'd' | 'W' | 'S' | 'x' | 'K' | 'O' | 'J' | 'y' | 'u' | 'b'
                | 'i' | 'L' | 'k' => {}
                other => {
                    let named = short_name(other);
                    let label = if named.is_empty() {
                        format!("-{other}")
                    } else {
                        named.to_string()
                    };
                    return Err(refuse(&label));
                }
            }
        }
        Ok(())
    }
}

/// Parse a complete argument list (both lists joined for `-s`; the dummy `rsync` removed).
pub fn parse_server_args(args: &[String]) -> Result<ServerArgs> {
    if args.len() > MAX_ARGS {
        return Err(ProtoError::Limit(format!("{} arguments", args.len())));
    }
    if args.iter().any(|a| a.len() > MAX_ARG_LEN) {
        return Err(ProtoError::Limit("argument too long".into()));
    }
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("--server") {
        return Err(ProtoError::invalid(
            "argument list does not start with --server",
        ));
    }
    let mut out = ServerArgs::default();
    let mut saw_dot = false;
    for a in it.by_ref() {
        if a == "." {
            saw_dot = true;
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            out.long(long)?;
        } else if let Some(cluster) = a.strip_prefix('-') {
            out.cluster(cluster)?;
        } else {
            return Err(ProtoError::invalid(format!(
                "unexpected argument `{a}` before `.`"
            )));
        }
    }
    if !saw_dot {
        return Err(ProtoError::invalid("argument list has no `.` separator"));
    }
    out.paths = it.map(|p| unescape(p)).collect();
    Ok(out)
}

/// Remove one level of backslash escaping (newer clients escape special characters).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the first argument list announces a second (secluded-args) list.
pub fn needs_second_list(first: &[String]) -> bool {
    first.iter().skip(1).take_while(|a| *a != ".").any(|a| {
        a.strip_prefix('-')
            .filter(|c| !c.starts_with('-'))
            .map(|c| c.split('e').next().unwrap_or("").contains('s'))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn pika_command_lines() {
        let a = parse_server_args(&v(&[
            "--server",
            "-vlogDtpre.iLsfxCIvu",
            "--bwlimit=1048576",
            "--partial",
            ".",
            "document_127.0.0.1:29221/strings/",
        ]))
        .unwrap();
        assert!(a.recursive && a.owner && a.group && a.links && a.devices && a.specials && a.times);
        assert!(!a.delete && !a.wants_filter_list() && !a.secluded);
        assert_eq!(a.client_info, ".iLsfxCIvu");
        assert_eq!(a.paths, ["document_127.0.0.1:29221/strings/"]);
        let d = parse_server_args(&v(&[
            "--server",
            "-vlogDtpre.iLsfxCIvu",
            "--delete",
            "--partial",
            ".",
            "document/db0/strings/",
        ]))
        .unwrap();
        assert!(d.delete && d.wants_filter_list());
        let old = parse_server_args(&v(&[
            "--server",
            "-vlogDtpre.iLf",
            "--bwlimit=128000",
            "--partial",
            ".",
            "x/",
        ]))
        .unwrap();
        assert_eq!(old.client_info, ".iLf");
    }

    #[test]
    fn refusals_name_the_option() {
        for (arg, name) in [
            ("-vlogDtpHre.iL", "--hard-links"),
            ("-rze.iL", "--compress"),
            ("--inplace", "--inplace"),
            ("--delay-updates", "--delay-updates"),
            ("-rQe.", "-Q"),
            ("--checksum-choice=sha1", "--checksum-choice=sha1"),
            ("--checksum-choice=md5,md4", "--checksum-choice=md4"),
        ] {
            let e = parse_server_args(&v(&["--server", arg, ".", "d/"]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{arg}: {e}");
        }
        assert!(parse_server_args(&v(&["--server", "-r"])).is_err());
        assert!(parse_server_args(&v(&["-r", ".", "x"])).is_err());
    }

    #[test]
    fn secluded_detection() {
        assert!(needs_second_list(&v(&[
            "--server",
            "-svlogDtpre.iLsfxCIvu"
        ])));
        assert!(!needs_second_list(&v(&[
            "--server",
            "-vlogDtpre.iLsfxCIvu",
            "--bwlimit=1"
        ])));
        let a = parse_server_args(&v(&[
            "--server",
            "-svlogDtpre.iLsfxCIvu",
            "--bwlimit=1024",
            "--partial",
            ".",
            "document/db0/strings/",
        ]))
        .unwrap();
        assert!(a.secluded);
    }

    #[test]
    fn unescapes_paths() {
        let a = parse_server_args(&v(&["--server", "-re.", ".", "a\\ b/"])).unwrap();
        assert_eq!(a.paths, ["a b/"]);
    }
}
