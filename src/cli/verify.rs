//! `pika-relay verify`: the command line of [`crate::verify`]. Exit code 0 only when the sides are
//! equal; 1 when they differ; 2 when a side could not be read.

use crate::verify::report::{Format, StreamSink};
use crate::verify::{self, VerifyOptions};
use std::time::Duration;

/// Arguments of `pika-relay verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The old side (the old Pika master), `host:port`.
    #[arg(long)]
    pub old: String,
    /// The new side (a new Pika or a Redis-protocol target), `host:port`.
    #[arg(long)]
    pub new: String,
    /// Password of the old side.
    #[arg(long)]
    pub old_auth: Option<String>,
    /// Password of the new side.
    #[arg(long)]
    pub new_auth: Option<String>,
    /// Compare one name in N (1 = every name).
    #[arg(long, default_value_t = 1)]
    pub sample: u64,
    /// TTL difference tolerated, in seconds.
    #[arg(long, default_value_t = 2)]
    pub ttl_slack_secs: i64,
    /// At most N names compared per second (0 = no limit), to spare a production server.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Also walk the new side and report names only it holds.
    #[arg(long)]
    pub both_ways: bool,
    /// Names per SCAN batch (each batch is compared in a few pipelines).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Connect and per-request timeout, seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
}

/// What `verify` concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Equal: exit 0.
    Equal,
    /// Differences were reported: exit 1.
    Different,
    /// A side could not be read: exit 2.
    Failed,
}

/// Runs `verify`, writing the report to stdout (progress to stderr on a terminal).
pub async fn run(a: VerifyArgs) -> Outcome {
    let mut o = VerifyOptions::new(a.old, a.new);
    o.old_auth = a.old_auth;
    o.new_auth = a.new_auth;
    o.sample = a.sample.max(1);
    o.ttl_slack_secs = a.ttl_slack_secs.max(0);
    o.rate = (a.rate > 0).then_some(a.rate);
    o.both_ways = a.both_ways;
    o.batch = a.batch.max(1);
    o.timeout = Duration::from_secs(a.timeout_secs.max(1));
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut sink = StreamSink::new(std::io::stdout(), a.format, progress);
    match verify::run(&o, &mut sink).await {
        Ok(s) => {
            sink.finish(&s);
            if let Some(e) = sink.error {
                eprintln!("pika-relay verify: writing the report failed: {e}");
                return Outcome::Failed;
            }
            if s.is_equal() {
                Outcome::Equal
            } else {
                Outcome::Different
            }
        }
        Err(e) => {
            eprintln!("pika-relay verify: {e}; nothing concluded (check the address, the password and that the server answers SCAN)");
            Outcome::Failed
        }
    }
}
