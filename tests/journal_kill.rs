//! A real `kill -9` ([`support::kill9`]) of a child (env `PIKA_JOURNAL_KILL_CHILD`) that appends
//! one entry per message through the threaded writer with group commit.

mod support;

use pika_relay::formats::BinlogPos;
use pika_relay::journal::{Journal, JournalConfig, SyncPolicy};
use pika_relay::pipeline::NewEntry;
use support::{kill9, tiny};

const ENV: &str = "PIKA_JOURNAL_KILL_CHILD";

/// The items of old entry `i` (0, 1 or 2 of them).
fn entries(i: u64) -> Vec<NewEntry> {
    let one = |j: u64| NewEntry {
        exec_time: 1_700_000_000 + i as u32,
        argv: vec![
            b"set".to_vec(),
            format!("k{i}.{j}").into_bytes(),
            vec![(i % 251) as u8; ((i * 37) % 3000) as usize],
        ],
    };
    match (i % 7, i % 11) {
        (3, _) => vec![],
        (_, 5) => vec![one(0), one(1)],
        _ => vec![one(0)],
    }
}

fn cfg(dir: &std::path::Path) -> JournalConfig {
    JournalConfig {
        sync: SyncPolicy::Group {
            max_entries: 64,
            max_delay_ms: 2,
        },
        ..tiny(dir, 64 * 1024)
    }
}

fn child(dir: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (j, h, rec) = Journal::open(cfg(std::path::Path::new(dir))).unwrap();
        let mut i = rec.state.upstream.map_or(0, |p| p.offset);
        kill9::report_synced(&j);
        loop {
            h.append(BinlogPos::new(0, i + 1), entries(i))
                .await
                .unwrap();
            i += 1;
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
}

#[test]
fn kill9_at_random_moments_keeps_the_accepted_prefix() {
    if let Ok(dir) = std::env::var(ENV) {
        child(&dir);
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_str().unwrap();
    kill9::kill_rounds(
        "kill9_at_random_moments_keeps_the_accepted_prefix",
        &[(ENV, dir)],
        d.path(),
        cfg,
        entries,
    );
}
