//! The sink's wire work without per-command allocation: the shape of a journal item's RESP
//! command (so the common commands are written to the target straight from the journal's
//! bytes), encoding into a connection's output buffer, and scanning the target's replies.

use crate::formats::resp::MAX_ARGS;
use bytes::{BufMut, BytesMut};
use std::ops::Range;

/// Where the parts of one RESP command array lie in its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdShape {
    /// Number of arguments (the command name included).
    pub argc: usize,
    /// The command name.
    pub name: Range<usize>,
    /// The first argument (the key of every per-key command), if any.
    pub key: Option<Range<usize>>,
}

fn line(buf: &[u8], pos: usize, max: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let lim = rest.len().min(max);
    let i = rest[..lim].iter().position(|&b| b == b'\r')?;
    (rest.get(i + 1) == Some(&b'\n')).then(|| (&rest[..i], pos + i + 2))
}

fn decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The shape of `buf` if it is exactly one array of bulk strings (what every binlog item holds),
/// `None` for anything else (the caller then takes the strict parser's path and its error).
pub fn scan_command(buf: &[u8]) -> Option<CmdShape> {
    if buf.first() != Some(&b'*') {
        return None;
    }
    let (n, mut p) = line(buf, 1, 24)?;
    let argc = decimal(n)? as usize;
    if argc == 0 || argc > MAX_ARGS {
        return None;
    }
    let mut shape = CmdShape {
        argc,
        name: 0..0,
        key: None,
    };
    for i in 0..argc {
        if buf.get(p) != Some(&b'$') {
            return None;
        }
        let (l, start) = line(buf, p + 1, 24)?;
        let len = decimal(l)? as usize;
        let end = start.checked_add(len)?;
        if buf.get(end..end.checked_add(2)?) != Some(b"\r\n") {
            return None;
        }
        match i {
            0 => shape.name = start..end,
            1 => shape.key = Some(start..end),
            _ => {}
        }
        p = end + 2;
    }
    (p == buf.len()).then_some(shape)
}

/// Appends the canonical encoding of one command to `out`.
pub fn put_cmd(out: &mut BytesMut, parts: &[&[u8]]) {
    out.reserve(16 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    put_head(out, b'*', parts.len());
    for p in parts {
        put_bulk(out, p);
    }
}

/// Appends one bulk string (`$<len>`, the bytes, CRLF).
pub(crate) fn put_bulk(out: &mut BytesMut, p: &[u8]) {
    put_head(out, b'$', p.len());
    out.put_slice(p);
    out.put_slice(b"\r\n");
}

/// Writes a RESP header (`*<n>` or `$<n>`) and its CRLF.
pub(crate) fn put_head(out: &mut BytesMut, t: u8, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.put_u8(t);
    out.put_slice(&digits[i..]);
    out.put_slice(b"\r\n");
}

/// Deepest array nesting accepted in a reply.
const MAX_DEPTH: usize = 8;
/// Longest reply line other than a bulk body.
const MAX_LINE: usize = 64 * 1024;
/// Largest bulk reply accepted. The sink reads back only small things (markers, `+OK`,
/// `EXEC` arrays of them), so a bigger length is a broken or hostile peer, refused before
/// anything is buffered for it.
pub const MAX_BULK: i64 = 4 << 20;
/// Most elements of an array reply (an `EXEC` reply has one per command of a batch).
pub const MAX_ARRAY: i64 = 1 << 20;

/// Length of the complete reply at the start of `buf`: `Ok(None)` while incomplete, `Err` for
/// something that is not RESP.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    reply_len_at(buf, 0, 0)
}

fn reply_len_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, String> {
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((l, next)) = line(buf, pos + 1, MAX_LINE) else {
        if buf.len() - pos > MAX_LINE {
            return Err("reply line longer than 64 KiB".into());
        }
        return Ok(None);
    };
    let int = || -> Result<i64, String> {
        std::str::from_utf8(l)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(l)))
    };
    match t {
        b'+' | b'-' | b':' => Ok(Some(next)),
        b'$' => {
            let n = int()?;
            if n == -1 {
                return Ok(Some(next));
            }
            if !(0..=MAX_BULK).contains(&n) {
                return Err(format!("bulk reply length {n} outside 0..={MAX_BULK}"));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("bulk reply not followed by CRLF".into());
            }
            Ok(Some(end + 2))
        }
        b'*' => {
            let n = int()?;
            if !(-1..=MAX_ARRAY).contains(&n) {
                return Err(format!("array reply of {n} elements (at most {MAX_ARRAY})"));
            }
            if depth >= MAX_DEPTH {
                return Err("arrays nested too deeply".into());
            }
            let mut p = next;
            for _ in 0..n.max(0) {
                match reply_len_at(buf, p, depth + 1)? {
                    None => return Ok(None),
                    Some(np) => p = np,
                }
            }
            Ok(Some(p))
        }
        other => Err(format!("unknown reply type byte 0x{other:02x}")),
    }
}

/// The text of a complete reply if it is an error (`-…`).
pub fn error_text(reply: &[u8]) -> Option<String> {
    (reply.first() == Some(&b'-')).then(|| {
        let end = reply
            .iter()
            .position(|&b| b == b'\r')
            .unwrap_or(reply.len());
        String::from_utf8_lossy(&reply[1..end]).into_owned()
    })
}

/// An `EXEC` reply.
#[derive(Debug, PartialEq, Eq)]
pub enum ExecReply {
    /// The transaction ran: the errors among its replies, by index.
    Ran(Vec<(usize, String)>),
    /// `EXEC` failed (`EXECABORT`, `OOM`, …): nothing ran.
    Refused(String),
    /// A null reply (a watched key changed): nothing ran.
    Null,
    /// Something else.
    Unexpected(String),
}

/// Reads a complete `EXEC` reply.
pub fn exec_reply(reply: &[u8]) -> ExecReply {
    if let Some(e) = error_text(reply) {
        return ExecReply::Refused(e);
    }
    let head = line(reply, 1, MAX_LINE);
    match (reply.first(), head) {
        (Some(b'*'), Some((n, _))) if n == b"-1" => ExecReply::Null,
        (Some(b'*'), Some((n, mut p))) => {
            let n = decimal(n).unwrap_or(0) as usize;
            let mut errs = Vec::new();
            for i in 0..n {
                let Ok(Some(end)) = reply_len_at(reply, p, 1) else {
                    return ExecReply::Unexpected("truncated EXEC reply".into());
                };
                if let Some(e) = error_text(&reply[p..end]) {
                    errs.push((i, e));
                }
                p = end;
            }
            ExecReply::Ran(errs)
        }
        _ => ExecReply::Unexpected(String::from_utf8_lossy(&reply[..reply.len().min(64)]).into()),
    }
}

/// Queue-time arity of the commands written straight from the journal (Redis's arity rule:
/// positive = exactly, negative = at least), kept at least as strict as any Redis version's so
/// that such a command is never refused when queued for a reason of its own. A command outside
/// this table is sent in a batch of its own (no other batch of its connection in flight).
const VERBATIM: &[(&str, i32)] = &[
    ("set", -3),
    ("setnx", 3),
    ("setex", 4),
    ("psetex", 4),
    ("append", 3),
    ("incr", 2),
    ("decr", 2),
    ("incrby", 3),
    ("decrby", 3),
    ("incrbyfloat", 3),
    ("getset", 3),
    ("setrange", 4),
    ("setbit", 4),
    ("del", -2),
    ("expire", 3),
    ("pexpire", 3),
    ("pexpireat", 3),
    ("persist", 2),
    ("hset", 4),
    ("hmset", -4),
    ("hsetnx", 4),
    ("hdel", -3),
    ("hincrby", 4),
    ("hincrbyfloat", 4),
    ("lpush", -3),
    ("rpush", -3),
    ("lpushx", 3),
    ("rpushx", 3),
    ("lpop", 2),
    ("rpop", 2),
    ("lset", 4),
    ("ltrim", 4),
    ("lrem", 4),
    ("linsert", 5),
    ("sadd", -3),
    ("srem", -3),
    ("spop", 2),
    ("zadd", -4),
    ("zrem", -3),
    ("zincrby", 4),
    ("zremrangebyrank", 4),
    ("zremrangebyscore", 4),
    ("zremrangebylex", 4),
    ("pfadd", -2),
];

/// Whether a command of this name and argument count can share the pipeline with other batches
/// (see [`VERBATIM`]).
pub fn pipeline_safe(name: &[u8], argc: usize) -> bool {
    VERBATIM.iter().any(|(n, a)| {
        name.eq_ignore_ascii_case(n.as_bytes())
            && if *a > 0 {
                argc == *a as usize
            } else {
                argc >= a.unsigned_abs() as usize
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lengths_in_replies_are_refused_before_anything_is_buffered() {
        for (bad, why) in [
            (&b"$9223372036854775807\r\n"[..], "outside"),
            (b"$4194305\r\n", "outside"),
            (b"$-2\r\n", "outside"),
            (b"*1048577\r\n", "elements"),
            (b"*-5\r\n", "elements"),
            (b"*1\r\n$99999999999\r\n", "outside"),
        ] {
            let e = reply_len(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        // The largest allowed bulk just waits for its bytes.
        assert_eq!(reply_len(b"$4194304\r\nabc"), Ok(None));
        assert_eq!(reply_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(reply_len(b"*-1\r\n"), Ok(Some(5)));
    }
    use crate::formats::resp::encode_argv;

    #[test]
    fn command_shapes() {
        let b = encode_argv(&["SET", "key", "v"]);
        let s = scan_command(&b).unwrap();
        assert_eq!(s.argc, 3);
        assert_eq!(&b[s.name.clone()], b"SET");
        assert_eq!(&b[s.key.clone().unwrap()], b"key");
        let b = encode_argv(&["flushall"]);
        assert_eq!(scan_command(&b).unwrap().key, None);
        for bad in [
            &b""[..],
            b"*1\r\n$3\r\nSET\r\nX",
            b"*2\r\n$3\r\nSET\r\n",
            b"*1\r\n$4\r\nSET\r\n",
            b"*0\r\n",
            b"set k v\r\n",
            b"*1\r\n:3\r\n",
        ] {
            assert_eq!(scan_command(bad), None, "{bad:?}");
        }
        let mut out = BytesMut::new();
        put_cmd(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(&out[..], &encode_argv(&["SET", "k", ""])[..]);
    }

    #[test]
    fn replies() {
        assert_eq!(reply_len(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(reply_len(b"+OK\r"), Ok(None));
        assert_eq!(reply_len(b"$3\r\nabc\r\n:1\r\n"), Ok(Some(9)));
        assert_eq!(reply_len(b"$3\r\nab"), Ok(None));
        assert_eq!(reply_len(b"*2\r\n:1\r\n$-1\r\n"), Ok(Some(13)));
        assert_eq!(reply_len(b"*2\r\n:1\r\n"), Ok(None));
        assert!(reply_len(b"?x\r\n").is_err());
        assert_eq!(error_text(b"-ERR no\r\n").as_deref(), Some("ERR no"));
        assert_eq!(error_text(b"+OK\r\n"), None);
        assert_eq!(
            exec_reply(b"*3\r\n+OK\r\n-WRONGTYPE x\r\n*1\r\n:2\r\n"),
            ExecReply::Ran(vec![(1, "WRONGTYPE x".into())])
        );
        assert_eq!(
            exec_reply(b"-EXECABORT y\r\n"),
            ExecReply::Refused("EXECABORT y".into())
        );
        assert_eq!(exec_reply(b"*-1\r\n"), ExecReply::Null);
    }

    #[test]
    fn pipeline_safety_follows_arity() {
        assert!(pipeline_safe(b"SET", 3));
        assert!(pipeline_safe(b"set", 6));
        assert!(!pipeline_safe(b"set", 2));
        assert!(pipeline_safe(b"hset", 4));
        assert!(!pipeline_safe(b"hset", 6), "older Redis: exactly 4");
        assert!(!pipeline_safe(b"pkhset", 4), "unknown to the target, maybe");
    }
}
