//! `redis://[user:password@]host:port[/db]`, the address of a Redis-protocol target.

use std::fmt;

/// A parsed target address.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// `host:port`.
    pub addr: String,
    /// ACL user (Redis 6+), if given.
    pub user: Option<String>,
    /// Password (`AUTH`), if given.
    pub password: Option<String>,
    /// Database (`SELECT`), 0 by default.
    pub db: u32,
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TargetUrl {
    /// The address without the password (for logs, INFO and marker keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}/{}", self.addr, self.db)
    }
}

fn pct_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape in {s:?}"))?;
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

impl TargetUrl {
    /// Parses `redis://[user:password@]host:port[/db]` (`redis://:password@host:port` gives a
    /// password without user). Every error names the URL part that is wrong.
    pub fn parse(url: &str) -> Result<TargetUrl, String> {
        let err = |why: &str| {
            format!("target {url:?}: {why} (expected redis://[user:password@]host:port[/db])")
        };
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| err("must start with redis://"))?;
        let (auth, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostport, db) = match hostpart.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (
                h,
                d.parse::<u32>()
                    .map_err(|_| err("the database must be a number"))?,
            ),
            None => (hostpart, 0),
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| err("host:port needs a port"))?;
        if host.is_empty() {
            return Err(err("empty host"));
        }
        port.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| err("port must be 1..65535"))?;
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (
                    (!u.is_empty())
                        .then(|| pct_decode(u))
                        .transpose()
                        .map_err(|e| err(&e))?,
                    Some(pct_decode(p).map_err(|e| err(&e))?),
                ),
                None => (None, Some(pct_decode(a).map_err(|e| err(&e))?)),
            },
        };
        Ok(TargetUrl {
            addr: hostport.to_string(),
            user,
            password,
            db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let u = TargetUrl::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.db, u.user, u.password),
            ("127.0.0.1:6379", 0, None, None)
        );
        let u = TargetUrl::parse("redis://bob:p%40ss@h:7000/3").unwrap();
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.db, 3);
        assert_eq!(
            u.to_string(),
            "redis://bob@h:7000/3",
            "no password in the display"
        );
        let u = TargetUrl::parse("redis://:secret@h:1/").unwrap();
        assert_eq!((u.user, u.password.as_deref()), (None, Some("secret")));
        for bad in [
            "h:1",
            "redis://h",
            "redis://h:0",
            "redis://h:1/x",
            "redis://:1",
        ] {
            let e = TargetUrl::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
