//! Embedding a relay in another Rust program: start it from a `Config`, read its status (the
//! same data as `INFO`), and shut it down gracefully.
//!
//! `cargo run --example embed -- 10.0.0.5:9221 9301 /var/lib/pika-relay`

use pika_relay::config::Config;
use pika_relay::relay::Relay;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(master), Some(port), Some(dir)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: embed <old master host:port> <relay port> <data dir>");
        std::process::exit(2);
    };
    let mut cfg = Config::default();
    cfg.upstream.master = master;
    cfg.relay.port = port.parse()?;
    cfg.relay.data_dir = dir.into();
    let relay = Relay::start(cfg).await?;
    for _ in 0..10 {
        let s = relay.status();
        println!(
            "upstream {} ({}), journal at {}, {} slaves",
            s.upstream.master,
            s.upstream.state,
            s.journal_end,
            s.slaves.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    relay.shutdown().await?;
    Ok(())
}
