//! Replay into Redis-protocol targets (Redis, Codis, any Pika as a plain client): one sink per
//! target ([`sink`]), fed by its own journal cursor like a new slave, so a slow or dead target
//! holds back neither the other targets nor the protobuf slaves.
//!
//! - **Full sync** ([`fullsync`]): a target without a position in the current epoch is loaded
//!   from the epoch's dump through the dump record stream (`DEL`, then the value in chunks, then
//!   an absolute `PEXPIREAT`), then streamed from the dump's journal position `J_e`.
//! - **Stream** ([`rules`], [`writer`]): journal items become Redis commands by one rule table;
//!   commands go to one of N connections by key hash (a key's commands stay in order on one
//!   connection), pipelined in batches; the common commands go out as the journal holds them
//!   ([`wire`]).
//! - **Exactly once** ([`marker`]): connection *c* of sink *s* applies each batch as
//!   `MULTI <commands> SET pika-relay:applied:<s>:<c> "<epoch> <position> …" EXEC`. The data and
//!   the position land together or not at all (Redis discards a transaction whose `EXEC` never
//!   arrived, e.g. when the relay is SIGKILLed mid-batch). On (re)start the sink reads every
//!   connection's marker, opens the journal at the smallest, and each connection skips the items
//!   at or before its own marker. A command touching several keys (`rename`, `flushdb`, …) is a
//!   barrier: every connection drains, the command runs on connection 0 and every marker moves
//!   past it in the same transaction. The end of a full sync is such a barrier (markers := `J_e`);
//!   its start deletes the markers, so a load cut short is redone (each key is replaced, so a
//!   redone load is exact). The relay's data dir keeps a copy of the applied position
//!   (`targets/<name>.applied`) for INFO and to keep the journal from being purged while the
//!   target is away; the marker on the target is the authority.
//! - **Runs of plain `set`s** ([`coalesce`]): consecutive `set k v` of one batch go as one
//!   `MSET`; a batch of nothing else carries its marker inside that `MSET` (atomic on its own)
//!   instead of `MULTI … EXEC`.
//! - **Targets without `MULTI`** (Pika ≤ 3.4 and Codis as plain clients): batches are sent as
//!   plain pipelined commands followed by the marker `SET`. What remains is *at least once with a
//!   bounded window*: a relay killed after the target applied part of a batch but before the
//!   marker replays that part once more (at most `in_flight` batches, `in_flight × batch_cmds`
//!   commands, per connection); idempotent commands (`set`, `hset`, `sadd` of present members, `del`,
//!   `pexpireat`) are unaffected, counters and list pushes may be applied twice in that window.
//!   Nothing is ever missed. `in_flight = 1` and `batch_cmds = 1` shrink it to one command.
//! - **Several batches in flight** ([`writer`]): each connection keeps up to `in_flight` batches
//!   on the wire, each with its own marker; a crash leaves a prefix of them applied (exact). A
//!   batch refused as a whole before an applied one drops the connection's marker, so the
//!   target is full-synced (see `docs/resp-targets.md`).
//! - **Errors**: a command the target refuses (`WRONGTYPE`, `OOM`, `READONLY`, `NOAUTH` …) stops
//!   the sink with an error naming the command, the key and the journal position (policy
//!   `stop`, the default), or is logged and counted (`skip`). `READONLY`, `OOM` and `NOAUTH`
//!   are refused when queued, so nothing of that batch was applied and a restart retries it;
//!   `WRONGTYPE` happens inside `EXEC`, after which the rest of the batch is applied (Redis has
//!   no rollback) and the refused command is not retried. A target that goes away is reconnected
//!   with backoff (0.2 s doubling to `max_backoff`) and resumes from its markers.

pub mod coalesce;
pub mod conn;
pub mod fullsync;
pub mod marker;
pub mod rules;
pub mod sink;
pub mod status;
pub mod url;
pub mod wire;
pub mod writer;

use super::source::JournalSource;
use serde::Deserialize;
pub use status::{TargetRegistry, TargetState, TargetStatus};
use std::path::PathBuf;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
pub use url::TargetUrl;

/// What to do when a target refuses a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop this sink with the error (others continue).
    #[default]
    Stop,
    /// Log it, count it, continue.
    Skip,
}

/// Settings of one sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Name: marker keys (`pika-relay:applied:<name>:<c>`) and the state file use it.
    pub name: String,
    /// Target address.
    pub url: TargetUrl,
    /// Parallel connections (keys are spread by hash).
    pub conns: usize,
    /// Policy for refused commands.
    pub on_error: OnError,
    /// Most commands per batch (one transaction).
    pub batch_cmds: usize,
    /// Most bytes per batch.
    pub batch_bytes: usize,
    /// Most batches on the wire at once per connection.
    pub in_flight: usize,
    /// Runs of plain `set`s go as one `MSET` ([`writer`]).
    pub coalesce_sets: bool,
    /// Most members per full-sync command.
    pub max_members: usize,
    /// Data-dir copy of the applied position; `None` keeps none.
    pub state_path: Option<PathBuf>,
    /// Connect timeout and longest wait for a reply.
    pub reply_timeout: Duration,
    /// Longest pause between reconnects.
    pub max_backoff: Duration,
}

impl SinkConfig {
    /// Defaults for `url` with `conns` connections; the name is `host:port/db`.
    pub fn new(url: TargetUrl, conns: usize) -> SinkConfig {
        SinkConfig {
            name: format!("{}/{}", url.addr, url.db),
            url,
            conns: conns.max(1),
            on_error: OnError::Stop,
            batch_cmds: 1000,
            batch_bytes: 4 << 20,
            in_flight: 1,
            coalesce_sets: true,
            max_members: 512,
            state_path: None,
            reply_timeout: Duration::from_secs(60),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Starts one sink task per config; they stop on `cancel`.
pub fn spawn<J: JournalSource>(
    sinks: Vec<SinkConfig>,
    journal: J,
    registry: TargetRegistry,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    sinks
        .into_iter()
        .map(|cfg| {
            tokio::spawn(sink::run(
                cfg,
                journal.clone(),
                registry.clone(),
                cancel.clone(),
            ))
        })
        .collect()
}
