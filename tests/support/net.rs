//! Loopback port helpers for tests.

#![allow(dead_code)]

use std::net::TcpListener;

/// A base port `p` such that `p` and `p + shift` for every `shift` are free on 127.0.0.1.
pub fn free_base(shifts: &[u16]) -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p > 60000 {
            continue;
        }
        let ok = shifts
            .iter()
            .all(|s| TcpListener::bind(("127.0.0.1", p + s)).is_ok());
        drop(l);
        if ok {
            return p;
        }
    }
    panic!("no free port set");
}
