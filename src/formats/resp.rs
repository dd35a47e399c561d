//! RESP command arrays and simple replies.
//!
//! Commands that arrive from the network or from disk (binlog content, 2.3.x push streams, client
//! requests on the admin port) are parsed by [`parse_argv`], a strict, non-recursive parser: an
//! array of bulk strings, with caps on the argument count and bulk size. `redis-protocol`'s
//! decoder recurses on nested arrays, so a hostile peer could exhaust the stack with it; it is used
//! for encoding replies and for talking to Redis-protocol targets instead.
//!
//! Encoding is canonical (`*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per argument, decimal lengths,
//! no padding), which is exactly what Pika writes in binlog items.

use super::FormatError;

/// Most arguments one command may have (Pika's own limit is far larger, but no real command in a
/// binlog comes near it and a hostile count must not drive allocation).
pub const MAX_ARGS: usize = 1 << 20;
/// Largest bulk string accepted (Pika's `REDIS_MAX_MESSAGE`, 512 MiB).
pub const MAX_BULK: usize = 1 << 29;

/// One command: the command name followed by its arguments, binary-safe.
pub type Argv = Vec<Vec<u8>>;

/// Appends the canonical RESP encoding of `argv` to `out`.
pub fn encode_argv_into<A: AsRef<[u8]>>(argv: &[A], out: &mut Vec<u8>) {
    out.reserve(encoded_len(argv));
    out.push(b'*');
    push_decimal(out, argv.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in argv {
        let arg = arg.as_ref();
        out.push(b'$');
        push_decimal(out, arg.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The canonical RESP encoding of `argv`.
pub fn encode_argv<A: AsRef<[u8]>>(argv: &[A]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_argv_into(argv, &mut out);
    out
}

/// Length in bytes of the canonical encoding of `argv`.
pub fn encoded_len<A: AsRef<[u8]>>(argv: &[A]) -> usize {
    let mut n = 3 + decimal_len(argv.len() as u64);
    for a in argv {
        let l = a.as_ref().len();
        n += 1 + decimal_len(l as u64) + 2 + l + 2;
    }
    n
}

fn decimal_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Reads a `\r\n`-terminated decimal line starting at `pos` (after the type byte). Leading zeros
/// are allowed (Pika writes `$00039` in padding items). Returns the value and the position after
/// the `\r\n`, `Ok(None)` if the line is not complete yet.
fn read_len_line(
    buf: &[u8],
    pos: usize,
    what: &'static str,
) -> Result<Option<(u64, usize)>, FormatError> {
    let mut v: u64 = 0;
    let mut i = pos;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'0'..=b'9' => {
                if i - pos >= 19 {
                    return Err(FormatError::invalid(what, "length has more than 19 digits"));
                }
                v = v * 10 + u64::from(b - b'0');
            }
            b'\r' => {
                if i == pos {
                    return Err(FormatError::invalid(what, "empty length"));
                }
                return match buf.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((v, i + 2))),
                    Some(_) => Err(FormatError::invalid(what, "length line not ended by CRLF")),
                };
            }
            b'-' if i == pos => {
                return Err(FormatError::invalid(
                    what,
                    "negative (null) length in a command",
                ))
            }
            other => {
                return Err(FormatError::invalid(
                    what,
                    format!("unexpected byte 0x{other:02x} in a length"),
                ))
            }
        }
        i += 1;
    }
}

/// Parses one RESP array of bulk strings at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only a prefix of a valid array (read more and retry),
/// `Ok(Some((argv, consumed)))` for a complete one, and an error for anything that can never
/// become a valid command (wrong type byte, bad length, missing CRLF, over the caps).
///
/// Each call starts from the buffer's start; a reader that retries as bytes arrive should keep an
/// [`ArgvParser`] instead, which resumes where the previous call stopped.
pub fn parse_argv(buf: &[u8]) -> Result<Option<(Argv, usize)>, FormatError> {
    ArgvParser::new().parse(buf)
}

/// A resumable parser of one RESP command array, for a buffer that grows as bytes arrive.
///
/// [`ArgvParser::parse`] is called with the whole message so far (always starting at the
/// message's first byte); arguments already complete are kept and not scanned again, so feeding
/// an `n`-byte array in small pieces costs `O(n)` rather than `O(n²)`. After a complete array
/// (or an error) the parser is ready for the next message, which the caller must present at the
/// start of the buffer (advance the buffer by the consumed count).
#[derive(Debug, Clone)]
pub struct ArgvParser {
    /// Announced argument count of the array in progress (`None`: header not read yet).
    count: Option<usize>,
    /// Offset of the first byte not parsed yet.
    pos: usize,
    /// Arguments complete so far.
    argv: Argv,
    max_bulk: usize,
    max_args: usize,
    /// Bytes examined since creation (a work counter, for tests and metrics).
    scanned: u64,
}

impl Default for ArgvParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ArgvParser {
    /// A parser with the default caps ([`MAX_ARGS`], [`MAX_BULK`]).
    pub fn new() -> Self {
        Self::with_limits(MAX_ARGS, MAX_BULK)
    }

    /// A parser refusing arrays of more than `max_args` arguments or bulk strings announcing more
    /// than `max_bulk` bytes (refused from the length line, before the bytes arrive).
    pub fn with_limits(max_args: usize, max_bulk: usize) -> Self {
        ArgvParser {
            count: None,
            pos: 0,
            argv: Vec::new(),
            max_bulk: max_bulk.min(MAX_BULK),
            max_args: max_args.min(MAX_ARGS),
            scanned: 0,
        }
    }

    /// Changes the caps for the next message (call between messages).
    pub fn set_limits(&mut self, max_args: usize, max_bulk: usize) {
        self.max_args = max_args.min(MAX_ARGS);
        self.max_bulk = max_bulk.min(MAX_BULK);
    }

    /// Bytes examined so far over all calls (headers re-read after an incomplete line count
    /// again; complete arguments never do).
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// `true` when no message is in progress.
    pub fn is_idle(&self) -> bool {
        self.count.is_none() && self.pos == 0
    }

    fn reset(&mut self) {
        self.count = None;
        self.pos = 0;
        self.argv = Vec::new();
    }

    /// Continues parsing the message at the start of `buf` (see the type's doc). Same results
    /// as [`parse_argv`].
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<(Argv, usize)>, FormatError> {
        let r = self.step(buf);
        if !matches!(r, Ok(None)) {
            self.reset();
        }
        r
    }

    fn step(&mut self, buf: &[u8]) -> Result<Option<(Argv, usize)>, FormatError> {
        const WHAT: &str = "RESP command";
        let n = match self.count {
            Some(n) => n,
            None => {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first != b'*' {
                    return Err(FormatError::invalid(
                        WHAT,
                        format!("expected '*' (array), found 0x{first:02x}"),
                    ));
                }
                let line = read_len_line(buf, 1, WHAT)?;
                self.scanned += line.map_or(buf.len(), |(_, p)| p) as u64;
                let Some((n, pos)) = line else {
                    return Ok(None);
                };
                if n > self.max_args as u64 {
                    return Err(FormatError::TooLarge {
                        what: "RESP argument count",
                        len: n,
                        max: self.max_args as u64,
                    });
                }
                if n == 0 {
                    return Err(FormatError::invalid(WHAT, "empty array"));
                }
                // Do not trust `n` for allocation beyond what the buffer could possibly hold.
                self.argv = Vec::with_capacity((n as usize).min(buf.len() / 4 + 1));
                self.count = Some(n as usize);
                self.pos = pos;
                n as usize
            }
        };
        while self.argv.len() < n {
            let pos = self.pos;
            let Some(&t) = buf.get(pos) else {
                return Ok(None);
            };
            if t != b'$' {
                return Err(FormatError::invalid(
                    WHAT,
                    format!("expected '$' (bulk string) at byte {pos}, found 0x{t:02x}"),
                ));
            }
            let line = read_len_line(buf, pos + 1, WHAT)?;
            self.scanned += line.map_or(buf.len(), |(_, p)| p).saturating_sub(pos) as u64;
            let Some((len, p)) = line else {
                return Ok(None);
            };
            if len > self.max_bulk as u64 {
                return Err(FormatError::TooLarge {
                    what: "RESP bulk string",
                    len,
                    max: self.max_bulk as u64,
                });
            }
            let len = len as usize;
            if buf.len() < p + len + 2 {
                return Ok(None);
            }
            self.scanned += (len + 2) as u64;
            if &buf[p + len..p + len + 2] != b"\r\n" {
                return Err(FormatError::invalid(
                    WHAT,
                    format!("bulk string at byte {p} not followed by CRLF"),
                ));
            }
            self.argv.push(buf[p..p + len].to_vec());
            self.pos = p + len + 2;
        }
        Ok(Some((std::mem::take(&mut self.argv), self.pos)))
    }
}

/// Parses a buffer that must hold exactly one command (a binlog item's content).
pub fn parse_argv_exact(buf: &[u8]) -> Result<Argv, FormatError> {
    match parse_argv(buf)? {
        None => Err(FormatError::Truncated {
            what: "RESP command",
            need: 1,
        }),
        Some((argv, used)) if used == buf.len() => Ok(argv),
        Some((_, used)) => Err(FormatError::invalid(
            "RESP command",
            format!("{} trailing bytes after the array", buf.len() - used),
        )),
    }
}

/// A reply to a command, as the relay reads them from masters and targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text`
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$n` bulk, `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` of replies (nesting capped at [`MAX_REPLY_DEPTH`]); `None` for `*-1`.
    Array(Option<Vec<Reply>>),
}

/// Deepest array nesting accepted in a reply.
pub const MAX_REPLY_DEPTH: usize = 8;

/// Parses one reply at the start of `buf`: `Ok(None)` if incomplete.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, FormatError> {
    parse_reply_at(buf, 0, 0)
}

fn read_line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], pos + i + 2))
}

fn parse_reply_at(
    buf: &[u8],
    pos: usize,
    depth: usize,
) -> Result<Option<(Reply, usize)>, FormatError> {
    const WHAT: &str = "RESP reply";
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    // Bound the search for a line end so a peer cannot make us scan forever.
    let Some((line, next)) = read_line(buf, pos + 1) else {
        if buf.len() - pos > 64 * 1024 && t != b'$' {
            return Err(FormatError::TooLarge {
                what: "RESP reply line",
                len: (buf.len() - pos) as u64,
                max: 64 * 1024,
            });
        }
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || -> Result<i64, FormatError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| FormatError::invalid(WHAT, format!("bad integer {:?}", text())))
    };
    match t {
        b'+' => Ok(Some((Reply::Simple(text()), next))),
        b'-' => Ok(Some((Reply::Error(text()), next))),
        b':' => Ok(Some((Reply::Integer(int()?), next))),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let n = n as u64;
            if n > MAX_BULK as u64 {
                return Err(FormatError::TooLarge {
                    what: "RESP bulk reply",
                    len: n,
                    max: MAX_BULK as u64,
                });
            }
            let n = n as usize;
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err(FormatError::invalid(
                    WHAT,
                    "bulk reply not followed by CRLF",
                ));
            }
            Ok(Some((
                Reply::Bulk(Some(buf[next..next + n].to_vec())),
                next + n + 2,
            )))
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), next)));
            }
            if depth >= MAX_REPLY_DEPTH {
                return Err(FormatError::invalid(WHAT, "arrays nested too deeply"));
            }
            if n as u64 > MAX_ARGS as u64 {
                return Err(FormatError::TooLarge {
                    what: "RESP reply array",
                    len: n as u64,
                    max: MAX_ARGS as u64,
                });
            }
            let mut items = Vec::new();
            let mut p = next;
            for _ in 0..n {
                match parse_reply_at(buf, p, depth + 1)? {
                    None => return Ok(None),
                    Some((r, np)) => {
                        items.push(r);
                        p = np;
                    }
                }
            }
            Ok(Some((Reply::Array(Some(items)), p)))
        }
        other => Err(FormatError::invalid(
            WHAT,
            format!("unknown reply type byte 0x{other:02x}"),
        )),
    }
}

/// Renders bytes for logs and `inspect`: printable ASCII as is, everything else as `\xNN`
/// (and `\\`, `\"`), so binary keys and values never corrupt a terminal.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Renders a command for logs: each argument escaped and quoted, long ones shortened.
pub fn display_argv(argv: &[Vec<u8>], max_arg: usize) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if a.len() > max_arg {
            out.push_str(&format!(
                "\"{}\"...<{} bytes>",
                escape(&a[..max_arg]),
                a.len()
            ));
        } else {
            out.push('"');
            out.push_str(&escape(a));
            out.push('"');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_set() {
        let enc = encode_argv(&[b"set".as_ref(), b"k", b"v"]);
        assert_eq!(enc, b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n");
        assert_eq!(encoded_len(&[b"set".as_ref(), b"k", b"v"]), enc.len());
    }

    #[test]
    fn padding_leading_zeros_parse() {
        let buf = b"*2\r\n$7\r\npadding\r\n$00003\r\n***\r\n";
        let (argv, used) = parse_argv(buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(argv, vec![b"padding".to_vec(), b"***".to_vec()]);
    }

    #[test]
    fn hostile_inputs_error_not_panic() {
        assert!(parse_argv(b"*99999999999\r\n").is_err());
        assert!(parse_argv(b"*2\r\n$-1\r\n").is_err());
        assert!(parse_argv(b"*1\r\n*1\r\n").is_err());
        assert!(parse_argv(b"$3\r\nfoo\r\n").is_err());
        assert!(parse_argv(b"*1\r\n$3\r\nfooXX").is_err());
        assert!(parse_argv(b"*1\r\n$999999999999\r\n").is_err());
        assert_eq!(parse_argv(b"*1\r\n$3\r\nfo").unwrap(), None);
        assert_eq!(parse_argv(b"*1\r").unwrap(), None);
        assert!(parse_argv_exact(b"*1\r\n$1\r\na\r\nzz").is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(
            parse_reply(b":1\r\n").unwrap(),
            Some((Reply::Integer(1), 4))
        );
        assert_eq!(
            parse_reply(b"+wait\r\n").unwrap(),
            Some((Reply::Simple("wait".into()), 7))
        );
        assert!(matches!(
            parse_reply(b"-ERR InvalidOffset\r\n").unwrap(),
            Some((Reply::Error(_), _))
        ));
        assert_eq!(parse_reply(b"$5\r\nhel").unwrap(), None);
        let nested = b"*1\r\n".repeat(100);
        assert!(parse_reply(&nested).is_err());
        assert!(parse_reply(b"?x\r\n").is_err());
    }

    /// A 200 000-argument array fed 7 bytes at a time: the resumable parser examines each byte
    /// a bounded number of times (the restart-from-zero parser examined ~n²/14 bytes).
    #[test]
    fn resumable_parser_is_linear_on_a_huge_array_fed_in_pieces() {
        let argv: Argv = (0..200_000u32)
            .map(|i| format!("member-{i}").into_bytes())
            .collect();
        let enc = encode_argv(&argv);
        let mut p = ArgvParser::new();
        let mut done = None;
        let mut end = 0;
        while done.is_none() {
            end = (end + 7).min(enc.len());
            done = p.parse(&enc[..end]).unwrap();
        }
        let (got, used) = done.unwrap();
        assert_eq!(used, enc.len());
        assert_eq!(got, argv);
        assert!(
            p.scanned() <= 3 * enc.len() as u64,
            "examined {} bytes for a {}-byte array",
            p.scanned(),
            enc.len()
        );
        assert!(p.is_idle());
        // The next message starts afresh.
        assert_eq!(
            p.parse(b"*1\r\n$1\r\nx\r\n").unwrap(),
            Some((vec![b"x".to_vec()], 11))
        );
    }

    #[test]
    fn resumable_parser_refuses_an_announced_bulk_over_its_cap_from_the_length_line() {
        let mut p = ArgvParser::with_limits(2, 64);
        let head = b"*2\r\n$4\r\nauth\r\n$419430400\r\n";
        match p.parse(head) {
            Err(FormatError::TooLarge { len, max, .. }) => assert_eq!((len, max), (419430400, 64)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.parse(b"*3\r\n"),
            Err(FormatError::TooLarge { len: 3, .. })
        ));
    }

    #[test]
    fn escape_binary() {
        assert_eq!(escape(b"a\x00\xff\"\\"), "a\\x00\\xff\\\"\\\\");
    }

    proptest! {
        #[test]
        fn roundtrip(argv in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8)) {
            let enc = encode_argv(&argv);
            prop_assert_eq!(enc.len(), encoded_len(&argv));
            let (dec, used) = parse_argv(&enc).unwrap().unwrap();
            prop_assert_eq!(used, enc.len());
            prop_assert_eq!(dec, argv.clone());
            // every strict prefix is incomplete, never an error
            for cut in 0..enc.len() {
                prop_assert_eq!(parse_argv(&enc[..cut]).unwrap(), None);
            }
            // the resumable parser, fed growing prefixes, ends with the same result
            let mut p = ArgvParser::new();
            for cut in 0..enc.len() {
                prop_assert_eq!(p.parse(&enc[..cut]).unwrap(), None);
            }
            prop_assert_eq!(p.parse(&enc).unwrap(), Some((argv.clone(), enc.len())));
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_argv(&bytes);
            let _ = parse_reply(&bytes);
        }
    }
}
