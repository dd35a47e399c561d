//! Daemon handshake (plain text lines): greetings, version negotiation, module line, and the
//! `@RSYNCD: AUTHREQD` challenge / MD5 response.

use md5::{Digest, Md5};

use super::error::{ProtoError, Result};

/// The highest protocol we speak. We never advertise 32 (it would require a digest list).
pub const PROTOCOL_MAX: u32 = 31;
/// The lowest protocol we accept.
pub const PROTOCOL_MIN: u32 = 30;
/// Longest handshake line accepted.
pub const MAX_LINE: usize = 4096;

/// Our greeting line for `protocol` (always with the `.0` sub-protocol, never a digest list).
pub fn greeting(protocol: u32) -> String {
    format!("@RSYNCD: {protocol}.0\n")
}

/// A parsed `@RSYNCD: <maj>.<sub>[ <digests>]` greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Major protocol version.
    pub protocol: u32,
    /// Sub-protocol (0 for releases).
    pub sub: u32,
    /// The auth digest list, if the peer sent one.
    pub digests: Option<String>,
}

/// Parse a greeting line (without the trailing newline).
pub fn parse_greeting(line: &str) -> Result<Greeting> {
    let rest = line
        .strip_prefix("@RSYNCD: ")
        .ok_or_else(|| ProtoError::invalid("protocol startup error"))?;
    let (ver, digests) = match rest.split_once(' ') {
        Some((v, d)) => (v, Some(d.to_string())),
        None => (rest, None),
    };
    let (maj, sub) = match ver.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (ver, None),
    };
    let protocol: u32 = maj
        .parse()
        .map_err(|_| ProtoError::invalid("protocol startup error"))?;
    let sub = match sub {
        Some(s) => s
            .parse()
            .map_err(|_| ProtoError::invalid("protocol startup error"))?,
        None if protocol >= 30 => {
            return Err(ProtoError::invalid(format!(
                "your client omitted the subprotocol value: {line}"
            )))
        }
        None => 0,
    };
    Ok(Greeting {
        protocol,
        sub,
        digests,
    })
}

/// The protocol to run with a peer that sent `peer`, given our maximum `ours`.
///
/// Follows stock rsync: a peer at a higher version is met at ours; a pre-release peer
/// (non-zero sub) at or below ours counts one lower. Below [`PROTOCOL_MIN`] is refused with
/// the line to send back.
pub fn negotiate(peer: &Greeting, ours: u32) -> Result<u32> {
    let mut p = peer.protocol.min(ours);
    if peer.protocol <= ours && peer.sub != 0 {
        p -= 1;
    }
    if p < PROTOCOL_MIN {
        return Err(ProtoError::Unsupported(format!(
            "protocol version mismatch: client speaks {}, need >= {PROTOCOL_MIN}",
            peer.protocol
        )));
    }
    Ok(p)
}

/// What the client asked for in its module line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRequest {
    /// A module name.
    Module(String),
    /// A module listing (empty line or `#list`).
    List,
    /// `#early_input=<n>`: n raw bytes follow, then the real module line.
    EarlyInput(usize),
    /// Some other `#command`.
    Unknown(String),
}

/// Classify a module line (without the trailing newline).
pub fn parse_module_line(line: &str) -> ModuleRequest {
    if line.is_empty() || line == "#list" {
        ModuleRequest::List
    } else if let Some(n) = line.strip_prefix("#early_input=") {
        match n.parse::<usize>() {
            Ok(n) if n <= 5000 => ModuleRequest::EarlyInput(n),
            _ => ModuleRequest::Unknown(line.to_string()),
        }
    } else if line.starts_with('#') {
        ModuleRequest::Unknown(line.to_string())
    } else {
        ModuleRequest::Module(line.to_string())
    }
}

/// Standard base64 without `=` padding, as rsync's auth uses.
pub fn base64_nopad(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len() * 4 / 3 + 3);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        let chars = c.len() + 1;
        for i in 0..chars {
            s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// A fresh unpredictable challenge: base64 of 16 random bytes (22 characters).
pub fn new_challenge() -> String {
    let bytes: [u8; 16] = rand::random();
    base64_nopad(&bytes)
}

/// The response to a challenge at protocol >= 30 when the server listed no digests:
/// `b64nopad(MD5(password ‖ challenge))`.
pub fn auth_response(password: &str, challenge: &str) -> String {
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(challenge.as_bytes());
    base64_nopad(&h.finalize())
}

/// Check a client's `<user> <response>` line against the expected user and password.
/// `user = None` accepts any user name. The comparison is constant time in the response.
pub fn check_auth_line(
    line: &str,
    user: Option<&str>,
    password: &str,
    challenge: &str,
) -> Result<String> {
    let (u, resp) = line
        .split_once(' ')
        .ok_or_else(|| ProtoError::Auth("invalid challenge response".into()))?;
    if let Some(expected) = user {
        if u != expected {
            return Err(ProtoError::Auth(format!("unknown user `{u}`")));
        }
    }
    let want = auth_response(password, challenge);
    let (a, b) = (want.as_bytes(), resp.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    if diff != 0 {
        return Err(ProtoError::Auth(format!("bad password for user `{u}`")));
    }
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings() {
        let g = parse_greeting("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4").unwrap();
        assert_eq!(g.protocol, 32);
        assert_eq!(g.digests.as_deref(), Some("sha512 sha256 sha1 md5 md4"));
        assert_eq!(negotiate(&g, 31).unwrap(), 31);
        assert_eq!(
            negotiate(&parse_greeting("@RSYNCD: 30.0").unwrap(), 31).unwrap(),
            30
        );
        assert_eq!(
            negotiate(&parse_greeting("@RSYNCD: 31.3").unwrap(), 31).unwrap(),
            30
        );
        assert!(negotiate(&parse_greeting("@RSYNCD: 29").unwrap(), 31).is_err());
        assert!(parse_greeting("@RSYNCD: 31").is_err());
        assert!(parse_greeting("GET / HTTP/1.1").is_err());
        assert!(parse_greeting("@RSYNCD: x.0").is_err());
        assert_eq!(greeting(31), "@RSYNCD: 31.0\n");
    }

    #[test]
    fn capture_01_auth() {
        let c = "kaXML0rKo//eLQhM4icaRw";
        assert_eq!(auth_response("default", c), "tPFVNtUip9Ytog/ToBYekw");
        assert!(check_auth_line(
            "rsync_user tPFVNtUip9Ytog/ToBYekw",
            Some("rsync_user"),
            "default",
            c
        )
        .is_ok());
        assert!(check_auth_line(
            "rsync_user tPFVNtUip9Ytog/ToBYekx",
            Some("rsync_user"),
            "default",
            c
        )
        .is_err());
        assert!(check_auth_line(
            "other tPFVNtUip9Ytog/ToBYekw",
            Some("rsync_user"),
            "default",
            c
        )
        .is_err());
        assert!(check_auth_line("garbage", None, "default", c).is_err());
        assert_eq!(new_challenge().len(), 22);
    }

    #[test]
    fn base64() {
        assert_eq!(base64_nopad(b""), "");
        assert_eq!(base64_nopad(b"f"), "Zg");
        assert_eq!(base64_nopad(b"fo"), "Zm8");
        assert_eq!(base64_nopad(b"foo"), "Zm9v");
        assert_eq!(base64_nopad(b"foob"), "Zm9vYg");
    }

    #[test]
    fn module_lines() {
        assert_eq!(
            parse_module_line("document_127.0.0.1:29221"),
            ModuleRequest::Module("document_127.0.0.1:29221".into())
        );
        assert_eq!(parse_module_line(""), ModuleRequest::List);
        assert_eq!(
            parse_module_line("#early_input=12"),
            ModuleRequest::EarlyInput(12)
        );
        assert!(matches!(
            parse_module_line("#foo"),
            ModuleRequest::Unknown(_)
        ));
    }
}
