//! `pika-relay sim old-master` / `sim new-slave` as the processes the container topologies run,
//! here on loopback (no Docker needed): the relay (`pika-relay run`) between them carries a
//! workload of every type, the slave's data equals the master's over the network
//! (`SIM.DIGEST`), and a master killed with SIGKILL comes back from its command log with the
//! same data and binlog, so the relay resumes and later writes arrive too.

#[allow(dead_code)]
mod compose_support;

use compose_support::{call, digest, unix_now};
use pika_relay::formats::resp::Reply;
use pika_relay::sim::workload;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pika-relay");

/// A loopback port p with p+s free for every shift s, and not in `avoid` (nor its shifts).
fn free_base(shifts: &[u16], avoid: &[u16]) -> u16 {
    for _ in 0..500 {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p > 60000 {
            continue;
        }
        let ports: Vec<u16> = shifts.iter().map(|s| p + s).collect();
        let clash = ports
            .iter()
            .any(|q| avoid.iter().any(|a| (*a..*a + 3001).contains(q)));
        if !clash
            && ports
                .iter()
                .all(|q| TcpListener::bind(("127.0.0.1", *q)).is_ok())
        {
            return p;
        }
    }
    panic!("no free loopback ports");
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if start.elapsed() > Duration::from_secs(60) => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn write(master: &str, tag: &str) {
    for c in workload::every_type(tag)
        .into_iter()
        .chain(workload::small_sets(tag, 50))
    {
        let argv: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        let r = call(master, &argv).unwrap();
        assert!(!matches!(r, Reply::Error(_)), "{c:?}: {r:?}");
    }
}

fn converged(master: &str, slave: &str) -> Result<(), String> {
    let now = unix_now();
    let (m, s) = (digest(master, now)?, digest(slave, now)?);
    if m == s && m.0 > 0 {
        Ok(())
    } else {
        Err(format!("master {m:?}, slave {s:?}"))
    }
}

#[test]
fn sim_processes_replicate_through_the_relay_and_a_killed_master_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let mp = free_base(&[0, 2000], &[]);
    let rp = free_base(&[0, 1000, 2000, 3000], &[mp]);
    let sp = free_base(&[0, 1000], &[mp, rp]);
    let (mps, rps, sps) = (mp.to_string(), rp.to_string(), sp.to_string());
    let master = format!("127.0.0.1:{mp}");
    let slave = format!("127.0.0.1:{sp}");
    let master_args = [
        "sim",
        "old-master",
        "--flavour",
        "3.0",
        "--port",
        &mps,
        "--bind",
        "127.0.0.1",
        "--data-dir",
        &d("master"),
    ];
    let mut m = spawn(&master_args);
    wait("master up", || call(&master, &[b"PING"]));
    let _relay = spawn(&[
        "run",
        "--master",
        &master,
        "--port",
        &rps,
        "--bind",
        "127.0.0.1",
        "--advertise-ip",
        "127.0.0.1",
        "--data-dir",
        &d("relay"),
        "--skip-master-check",
    ]);
    let relay_slaveof = format!("127.0.0.1:{rp}");
    let _s = spawn(&[
        "sim",
        "new-slave",
        "--version",
        "3.3",
        "--port",
        &sps,
        "--bind",
        "127.0.0.1",
        "--slaveof",
        &relay_slaveof,
        "--data-dir",
        &d("slave"),
        "--timeout-secs",
        "5",
    ]);
    write(&master, "a");
    wait("first convergence", || converged(&master, &slave));
    let before = digest(&master, unix_now()).unwrap();

    // SIGKILL: the restarted master replays its command log.
    drop(m);
    m = spawn(&master_args);
    let after = wait("master back", || digest(&master, unix_now()));
    assert_eq!(
        after, before,
        "the killed master came back with the same data"
    );
    write(&master, "b");
    wait("convergence after the master's restart", || {
        converged(&master, &slave)
    });
    assert_ne!(digest(&master, unix_now()).unwrap(), before);

    // The slave's client port is read-only, as a slave's.
    let r = call(&slave, &[b"set", b"k", b"v"]).unwrap();
    assert!(matches!(r, Reply::Error(_)), "{r:?}");
    drop(m);
}
