//! Loopback port helpers for tests.
//!
//! Ports are handed out below Linux's ephemeral range (32768–60999): a port the OS picked for a
//! listener and released can be taken, before the test binds it again, as the local port of any
//! outgoing connection, which made tests fail now and then with "Address already in use". Below
//! that range only listeners compete; a per-process counter keeps the tests of one binary (they
//! run in parallel threads) from picking the same ports, and every port is checked free.

#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// First base port handed out; `base + 3000` stays below the ephemeral range.
const LOW: u16 = 20000;
/// Bases are taken from `LOW .. LOW + SPAN` (with shifts up to 3000 that is below 32768).
const SPAN: u16 = 900;

static NEXT: AtomicU16 = AtomicU16::new(0);

/// A port range start distinct for each call within this process, from a per-process offset.
fn next_candidate(salt: u16) -> u16 {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let start = (std::process::id() as u16).wrapping_mul(37) % SPAN;
    LOW + salt + (start.wrapping_add(n) % SPAN)
}

/// A base port `p` such that `p` and `p + shift` for every `shift` (at most 3000) are free on
/// 127.0.0.1, outside the ephemeral range.
pub fn free_base(shifts: &[u16]) -> u16 {
    assert!(shifts.iter().all(|s| *s <= 3000), "shifts up to 3000");
    for _ in 0..SPAN {
        let p = next_candidate(0);
        let ok = std::iter::once(0)
            .chain(shifts.iter().copied())
            .all(|s| TcpListener::bind(("127.0.0.1", p + s)).is_ok());
        if ok {
            return p;
        }
    }
    panic!("no free port set below the ephemeral range");
}

/// One free port outside the ephemeral range and outside the bases' shifted ranges.
pub fn free_port() -> u16 {
    free_port_in(0)
}

/// One free port from range `slot` (0 or 1), each range of its own: a second copy of this module
/// (loaded by another helper file) uses another slot so the two counters never meet.
pub fn free_port_in(slot: u16) -> u16 {
    assert!(slot < 2, "two port slots");
    for _ in 0..SPAN {
        // 24000 + slot * 1000 ..: above every base's shifted ports (at most 23900), below 32768.
        let p = next_candidate(4000 + slot * 1000);
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port below the ephemeral range");
}
