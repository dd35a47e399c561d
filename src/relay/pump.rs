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

async fn feed(
    mut events: mpsc::Receiver<UpstreamEvent>,
    journal: &JournalHandle,
    mut translator: Translator,
    cancel: CancellationToken,
) -> Result<(), String> {
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => return Ok(()),
            },
        };
        match ev {
            UpstreamEvent::Entry(e) => {
                let entries = match translator.translate(&e) {
                    Ok(v) => v,
                    Err(err) => {
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
                if let Err(err) = journal.append(e.end, entries).await {
                    error!("journal: append failed: {err}; stopping the relay (nothing unsynced was acknowledged)");
                    return Err(err.to_string());
                }
            }
            UpstreamEvent::FullSync(d) => match journal.begin_epoch(d.info.pos).await {
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
                }
                Err(err) => {
                    error!("journal: cannot start epoch {}: {err}; stopping", d.epoch);
                    return Err(err.to_string());
                }
            },
        }
    }
}
