//! The dump `info` file a master writes beside a bgsave and pushes last in a full sync:
//!
//! ```text
//! 0s          <- bgsave duration (ignored)
//! 127.0.0.1   <- master ip
//! 29221       <- master port
//! 0           <- binlog filenum of the snapshot
//! 156700      <- binlog offset of the snapshot
//! ```
//! Five `\n`-terminated lines; lines 3–5 strict non-negative integers; a sixth line is an error
//! (as Pika's slave parses it).

use super::{BinlogPos, FormatError};

/// A parsed `info` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpInfo {
    /// Line 1, e.g. `0s`.
    pub duration: String,
    /// Line 2: the master ip.
    pub ip: String,
    /// Line 3: the master port.
    pub port: u16,
    /// Lines 4 and 5: the binlog position of the snapshot.
    pub pos: BinlogPos,
}

impl DumpInfo {
    /// Parses an `info` file. The error names the line that is missing or garbled.
    pub fn parse(text: &[u8]) -> Result<DumpInfo, FormatError> {
        const WHAT: &str = "dump info file";
        let text =
            std::str::from_utf8(text).map_err(|_| FormatError::invalid(WHAT, "not UTF-8 text"))?;
        let lines: Vec<&str> = text.lines().collect();
        let names = [
            "duration",
            "master ip",
            "master port",
            "binlog filenum",
            "binlog offset",
        ];
        if lines.len() < 5 {
            return Err(FormatError::invalid(
                WHAT,
                format!(
                    "line {} ({}) is missing: the file has {} lines, 5 expected",
                    lines.len() + 1,
                    names[lines.len()],
                    lines.len()
                ),
            ));
        }
        if lines.len() > 5 {
            return Err(FormatError::invalid(
                WHAT,
                format!("line 6 ({:?}) is extra: 5 lines expected", lines[5]),
            ));
        }
        let num = |i: usize| -> Result<u64, FormatError> {
            let s = lines[i].trim_end_matches('\r');
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FormatError::invalid(
                    WHAT,
                    format!(
                        "line {} ({}) is {:?}, a non-negative integer expected",
                        i + 1,
                        names[i],
                        s
                    ),
                ));
            }
            s.parse::<u64>().map_err(|_| {
                FormatError::invalid(WHAT, format!("line {} ({}) overflows", i + 1, names[i]))
            })
        };
        let port = num(2)?;
        let filenum = num(3)?;
        let offset = num(4)?;
        let port = u16::try_from(port).map_err(|_| {
            FormatError::invalid(WHAT, format!("line 3 (master port) {port} is over 65535"))
        })?;
        let filenum = u32::try_from(filenum).map_err(|_| {
            FormatError::invalid(
                WHAT,
                format!("line 4 (binlog filenum) {filenum} is over 2^32"),
            )
        })?;
        if lines[1].is_empty() {
            return Err(FormatError::invalid(WHAT, "line 2 (master ip) is empty"));
        }
        Ok(DumpInfo {
            duration: lines[0].to_string(),
            ip: lines[1].to_string(),
            port,
            pos: BinlogPos::new(filenum, offset),
        })
    }

    /// Renders the five lines as Pika writes them.
    pub fn render(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            self.duration, self.ip, self.port, self.pos.filenum, self.pos.offset
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let i = DumpInfo::parse(b"0s\n127.0.0.1\n29221\n0\n156700\n").unwrap();
        assert_eq!(i.pos, BinlogPos::new(0, 156700));
        assert_eq!(i.port, 29221);
        assert_eq!(i.render(), "0s\n127.0.0.1\n29221\n0\n156700\n");
    }

    #[test]
    fn errors_name_the_line() {
        let e = DumpInfo::parse(b"0s\n127.0.0.1\n29221\n0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5 (binlog offset) is missing"), "{e}");
        let e = DumpInfo::parse(b"0s\n127.0.0.1\n29221\nx\n5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4 (binlog filenum)"), "{e}");
        let e = DumpInfo::parse(b"0s\n1\n2\n3\n4\n5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6"), "{e}");
        assert!(DumpInfo::parse(b"0s\n1\n-2\n3\n4\n").is_err());
        assert!(DumpInfo::parse(b"\xff\xfe").is_err());
        assert!(DumpInfo::parse(b"0s\n1\n99999\n3\n4\n").is_err());
    }
}
