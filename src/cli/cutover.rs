//! `pika-relay cutover`: asks a running relay (its admin port R) to fence the old master and wait
//! until every new side acknowledged the fence ([`crate::relay::cutover`]). Exit code 0 when all
//! caught up, 1 when one lags (named with how far), 2 when the cutover could not run.

use crate::formats::resp::Reply;
use crate::verify::conn::{show, Conn};
use std::time::Duration;

/// Arguments of `pika-relay cutover`.
#[derive(Debug, Clone, clap::Args)]
pub struct CutoverArgs {
    /// The relay's admin port R, `host:port`.
    #[arg(long)]
    pub relay: String,
    /// How long to wait for every new slave / target to acknowledge the fence.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// The relay's `requirepass`, if set.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// Leave the fence key on the old master.
    #[arg(long)]
    pub keep_fence: bool,
    /// Make the old master refuse writes first (Pika 2.3.x and 3.0.0–3.0.4 only; it stays
    /// read-only: `readonly off` on it undoes that).
    #[arg(long)]
    pub pause_writes: bool,
}

/// What `cutover` concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutoverOutcome {
    /// Every consumer caught up (exit 0); the relay's report.
    CaughtUp(String),
    /// One lags or timed out (exit 1); the report.
    Lagging(String),
    /// Could not run (exit 2).
    Failed(String),
}

/// Sends `CUTOVER` to the relay and waits for its report.
pub async fn run(a: &CutoverArgs) -> CutoverOutcome {
    let timeout = Duration::from_secs(a.timeout_secs.max(1));
    let mut c = match Conn::connect(
        &a.relay,
        a.requirepass.as_deref(),
        timeout + Duration::from_secs(30),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return CutoverOutcome::Failed(format!("relay {e}")),
    };
    let mut argv = vec![
        b"cutover".to_vec(),
        b"timeout".to_vec(),
        timeout.as_secs().to_string().into_bytes(),
    ];
    if a.keep_fence {
        argv.push(b"keepfence".to_vec());
    }
    if a.pause_writes {
        argv.push(b"pausewrites".to_vec());
    }
    match c.one(argv).await {
        Ok(Reply::Bulk(Some(b))) => {
            let text = String::from_utf8_lossy(&b).into_owned();
            if text.starts_with("result:ok") {
                CutoverOutcome::CaughtUp(text)
            } else if text.starts_with("result:lagging") {
                CutoverOutcome::Lagging(text)
            } else {
                CutoverOutcome::Failed(text)
            }
        }
        Ok(other) => CutoverOutcome::Failed(format!(
            "relay {} answered {} (is it a pika-relay with cutover support, and the password right?)",
            a.relay,
            show(&other)
        )),
        Err(e) => CutoverOutcome::Failed(format!("relay {e}")),
    }
}
