//! The two halves of a real `kill -9` test of the journal. The test binary re-runs itself as a
//! child (marked by an environment variable) that appends forever and prints every accepted
//! upstream position ([`report_synced`]); the parent ([`kill_rounds`]) SIGKILLs it at random
//! moments, reopens the journal and checks that it holds exactly the prefix of entries up to the
//! recovered upstream position, that this position is at least the last one the child reported
//! accepted, and that the next child resumes from it without duplicates.

use super::read_all_items;
use pika_relay::journal::{Journal, JournalConfig, JournalWriter};
use pika_relay::pipeline::NewEntry;
use rand::Rng;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Child side: prints `SYNCED <upstream offset> <logic id>` for every accepted state (needs a
/// tokio runtime).
pub fn report_synced(j: &Journal) {
    let mut rx = j.watch();
    tokio::spawn(async move {
        let mut out = std::io::stdout();
        while rx.changed().await.is_ok() {
            let st = *rx.borrow_and_update();
            if let Some(u) = st.upstream {
                let _ = writeln!(out, "SYNCED {} {}", u.offset, st.logic_id);
                let _ = out.flush();
            }
        }
    });
}

/// Parent side: five rounds of starting test `test` of this binary as a child with `child_env`
/// on journal `dir`, killing it, and checking the recovered journal (opened with `cfg`) against
/// `entries`, the items of old entry `i`.
pub fn kill_rounds(
    test: &str,
    child_env: &[(&str, &str)],
    dir: &Path,
    cfg: impl Fn(&Path) -> JournalConfig,
    entries: fn(u64) -> Vec<NewEntry>,
) {
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut last_recovered = 0u64;
    for round in 0..5 {
        let mut c = Command::new(&exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .envs(child_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = c.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("SYNCED ") {
                    let mut p = rest.split(' ').map(|x| x.parse::<u64>().unwrap());
                    let _ = tx.send((p.next().unwrap(), p.next().unwrap()));
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1200)));
        c.kill().unwrap(); // SIGKILL to this child's pid
        c.wait().unwrap();
        reader.join().unwrap();
        let reported: Vec<(u64, u64)> = rx.try_iter().collect();
        let (up, lid) = reported.last().copied().unwrap_or((last_recovered, 0));

        let (w, rec) = JournalWriter::open(cfg(dir)).unwrap();
        let got = rec.state.upstream.map_or(0, |p| p.offset);
        assert!(
            got >= up,
            "round {round}: recovered upstream {got} < reported accepted {up}"
        );
        assert!(rec.state.logic_id >= lid);
        assert!(got > last_recovered, "round {round}: no progress");
        let items = read_all_items(dir);
        let expected: Vec<_> = (0..got).flat_map(entries).collect();
        assert_eq!(items.len(), expected.len(), "round {round}");
        for (it, e) in items.iter().zip(&expected) {
            assert_eq!(it.argv().unwrap(), e.argv);
        }
        assert_eq!(rec.state.logic_id, items.len() as u64);
        eprintln!(
            "round {round}: killed after {} accepted reports; recovered upstream {got} ({} items in {} files, dropped tail {} bytes, removed files {:?})",
            reported.len(),
            items.len(),
            rec.state.end.filenum + 1,
            rec.dropped_tail_bytes,
            rec.removed_files
        );
        last_recovered = got;
        drop(w);
    }
}
