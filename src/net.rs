//! Socket options of the relay's listeners and replication links (`socket2`).
//!
//! - Listeners get an explicit accept backlog ([`BACKLOG`]) instead of the platform default.
//! - Replication links (the master's binlog push on R+1000, new slaves on R+2000) get `TCP_NODELAY` (small frames and acks must not wait for Nagle) and TCP
//!   keepalive ([`KEEPALIVE_TIME`] idle, then probes every [`KEEPALIVE_INTERVAL`]): an
//!   authenticated binlog link is never timed out by the relay, so a peer host that vanished
//!   without a FIN is only noticed this way.

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Accept backlog of the relay's listeners.
pub const BACKLOG: i32 = 1024;
/// Idle time before the first keepalive probe on a replication link.
pub const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// Time between keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the kernel drops the link (60 s + 6 × 10 s = 2 min).
pub const KEEPALIVE_RETRIES: u32 = 6;

/// Binds a listener on `addr` with `SO_REUSEADDR` (as `std` does) and a [`BACKLOG`] backlog.
/// Must be called inside a tokio runtime.
pub fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    s.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// Sets `TCP_NODELAY` and keepalive on a replication link.
pub fn replication_link(sock: &tokio::net::TcpStream) -> io::Result<()> {
    let s = SockRef::from(sock);
    s.set_nodelay(true)?;
    let ka = TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    s.set_tcp_keepalive(&ka)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listener_and_link_options_are_set() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (a, _) = l.accept().await.unwrap();
        let before = SockRef::from(&a);
        assert!(!before.keepalive().unwrap());
        replication_link(&a).unwrap();
        let s = SockRef::from(&a);
        assert!(s.nodelay().unwrap());
        assert!(s.keepalive().unwrap());
        assert_eq!(s.keepalive_time().unwrap(), KEEPALIVE_TIME);
        assert_eq!(s.keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(s.keepalive_retries().unwrap(), KEEPALIVE_RETRIES);
        drop(c);
        // The port is taken while the listener lives.
        assert!(std::net::TcpListener::bind(addr).is_err());
    }
}
