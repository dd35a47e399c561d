//! The transform stage: upstream events → translate → journal. Entries are appended with their
//! upstream end position (so a restart resumes `trysync` exactly there); a full sync starts a new
//! journal epoch at the dump's upstream position.

use crate::journal::{JournalHandle, Synced};
use crate::translate::Translator;
use crate::upstream::UpstreamEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Runs until the upstream closes its channel, the relay is cancelled, or the journal fails;
/// then closes the journal (syncing what was appended) and returns its final state.
pub async fn run(
    events: mpsc::Receiver<UpstreamEvent>,
    journal: JournalHandle,
    translator: Translator,
    cancel: CancellationToken,
) -> Result<Synced, String> {
    let r = feed(events, &journal, translator, cancel).await;
    let closed = journal.close().await.map_err(|e| e.to_string());
    r.and(closed)
}

/// Events taken from the upstream channel at most per journal message.
const BATCH: usize = 512;

async fn feed(
    mut events: mpsc::Receiver<UpstreamEvent>,
    journal: &JournalHandle,
    mut translator: Translator,
    cancel: CancellationToken,
) -> Result<(), String> {
    let mut evs = Vec::with_capacity(BATCH);
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            n = events.recv_many(&mut evs, BATCH) => n,
        };
        if n == 0 {
            return Ok(());
        }
        // Consecutive entries go to the journal as one message; a full sync ends the batch.
        let mut batch = Vec::with_capacity(evs.len());
        for ev in evs.drain(..) {
            match ev {
                UpstreamEvent::Entry(e) => {
                    let entries = match translator.translate(&e) {
                        Ok(v) => v,
                        Err(err) => {
                            // Everything before the rejected entry is journaled; the restart
                            // resumes at the rejected entry's start.
                            append(journal, std::mem::take(&mut batch)).await?;
                            let why = format!(
                                "translate: upstream entry {}..{} stops the relay: {err}; nothing of it \
                                 was journaled: change the [translate] policy (or the --*-policy flag) \
                                 to pass or skip and restart, which resumes at {}",
                                e.start, e.end, e.start
                            );
                            error!("{why}");
                            return Err(why);
                        }
                    };
                    batch.push((e.end, entries));
                }
                UpstreamEvent::FullSync(d) => {
                    append(journal, std::mem::take(&mut batch)).await?;
                    begin_epoch(journal, d).await?;
                }
            }
        }
        append(journal, batch).await?;
    }
}

async fn append(
    journal: &JournalHandle,
    batch: Vec<(crate::formats::BinlogPos, Vec<crate::pipeline::NewEntry>)>,
) -> Result<(), String> {
    journal.append_many(batch).await.map_err(|err| {
        error!(
            "journal: append failed: {err}; stopping the relay (nothing unsynced was acknowledged)"
        );
        err.to_string()
    })
}

async fn begin_epoch(journal: &JournalHandle, d: crate::upstream::DumpEpoch) -> Result<(), String> {
    match journal.begin_epoch(d.info.pos).await {
        Ok(s) => {
            if s.epoch != d.epoch {
                warn!(
                    "journal: epoch {} started, upstream promoted the dump as epoch {}",
                    s.epoch, d.epoch
                );
            }
            info!(
                "journal: epoch {} begins at {} (dump of master position {}, {})",
                s.epoch,
                s.epoch_start,
                d.info.pos,
                d.dir.display()
            );
            Ok(())
        }
        Err(err) => {
            error!("journal: cannot start epoch {}: {err}; stopping", d.epoch);
            Err(err.to_string())
        }
    }
}
