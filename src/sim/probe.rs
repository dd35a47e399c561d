//! How a driver checks a standalone double's data over the network (`pika-relay sim`): two
//! commands beside the Redis ones it answers.
//!
//! - `SIM.DIGEST [now]` → `*2 :<live keys> $<fnv-1a 64 of the sorted lines, hex>`;
//! - `SIM.LINES [now]` → an array of [`Keyspace::lines`] (for a diff when digests differ).
//!
//! `now` (unix seconds) lets the driver ask every peer about the same instant, so keys expiring
//! in between do not count as differences.

use crate::formats::resp::Argv;
use crate::sim::keyspace::Keyspace;
use crate::sim::old_master::unix_now;

/// FNV-1a 64 of the lines, each followed by `\n`.
pub fn digest(lines: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in lines {
        for b in l.bytes().chain(std::iter::once(b'\n')) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.extend(format!("${}\r\n", b.len()).bytes());
    out.extend(b);
    out.extend(b"\r\n");
}

/// The reply to `argv` when it is a `SIM.*` command, `None` otherwise. `ks` is called only
/// for those commands.
pub fn answer(argv: &Argv, ks: impl FnOnce() -> Keyspace) -> Option<Vec<u8>> {
    let name = String::from_utf8_lossy(argv.first()?).to_ascii_lowercase();
    if name != "sim.digest" && name != "sim.lines" {
        return None;
    }
    let now = match argv.get(1) {
        None => unix_now(),
        Some(a) => match std::str::from_utf8(a).ok().and_then(|s| s.parse().ok()) {
            Some(n) => n,
            None => return Some(b"-ERR now must be unix seconds\r\n".to_vec()),
        },
    };
    let lines = ks().lines(now);
    let mut out = Vec::new();
    if name == "sim.digest" {
        out.extend(format!("*2\r\n:{}\r\n", lines.len()).bytes());
        bulk(&mut out, format!("{:016x}", digest(&lines)).as_bytes());
    } else {
        out.extend(format!("*{}\r\n", lines.len()).bytes());
        for l in &lines {
            bulk(&mut out, l.as_bytes());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Argv {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn digest_and_lines_follow_the_keyspace() {
        let mut ks = Keyspace::default();
        ks.exec(&argv(&["set", "a", "1"]), 100).unwrap();
        ks.exec(&argv(&["set", "b", "2", "ex", "10"]), 100).unwrap();
        let d = |now: &str| answer(&argv(&["SIM.DIGEST", now]), || ks.clone()).unwrap();
        // At 105 both keys live; at 200 `b` expired: count and digest change.
        let (early, late) = (d("105"), d("200"));
        assert!(early.starts_with(b"*2\r\n:2\r\n$16\r\n"), "{early:?}");
        assert!(late.starts_with(b"*2\r\n:1\r\n$16\r\n"), "{late:?}");
        let lines = answer(&argv(&["sim.lines", "200"]), || ks.clone()).unwrap();
        assert_eq!(lines, b"*1\r\n$12\r\na string 1 -\r\n".to_vec());
        assert!(answer(&argv(&["get", "a"]), || unreachable!()).is_none());
        assert!(answer(&argv(&["sim.digest", "x"]), || ks.clone())
            .unwrap()
            .starts_with(b"-ERR"));
        assert_ne!(digest(&["a".into()]), digest(&["b".into()]));
    }
}
