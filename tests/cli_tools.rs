//! The offline subcommands, run as a user would run them, on the recorded real-Pika files.

#[path = "support/vectors.rs"]
mod vectors;

use std::process::Command;

fn relay(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .args(args)
        .output()
        .expect("run pika-relay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Masks the write-time bytes (3..7) of the record headers at each 64 KiB chunk start, the only
/// bytes of a SetProducerStatus image that depend on the clock.
fn mask_times(mut img: Vec<u8>) -> Vec<u8> {
    let mut at = 0;
    while at + 8 <= img.len() {
        img[at + 3..at + 7].fill(0);
        at += 65536;
    }
    img
}

#[test]
fn seed_manifest_matches_what_each_real_new_pika_wrote_after_its_full_sync() {
    // (dump to seed from, --pika-version, the real slave's binlog after a full sync, position)
    let cases = [
        (
            "pika-3.0.16/master-dump/20261122",
            "3.2",
            "pika-3.2.9/slave-log/log_db0",
            156700u64,
        ),
        (
            "pika-3.1.1/master-dump/20261122/db0",
            "3.1",
            "pika-3.1.1/slave-log/log_db0",
            156710,
        ),
        (
            "pika-3.3.6/master-dump/20261122/db0",
            "3.3",
            "pika-3.3.6/slave-log/log_db0",
            156783,
        ),
    ];
    for (dump, version, real, offset) in cases {
        let dump = vectors::dir().join(dump);
        let dump = if dump.join("info").is_file() {
            dump
        } else {
            dump.parent().unwrap().to_path_buf()
        };
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log_db0");
        let (ok, out, err) = relay(&[
            "seed-manifest",
            "--dump",
            dump.to_str().unwrap(),
            "--log-path",
            log.to_str().unwrap(),
            "--pika-version",
            version,
        ]);
        assert!(ok, "{version}: {err}");
        assert!(out.contains(&format!("0:{offset}")), "{out}");
        let ours = std::fs::read(log.join("write2file0")).unwrap();
        let theirs = vectors::read(&format!("{real}/write2file0"));
        assert_eq!(ours.len() as u64, offset, "{version}");
        assert!(
            mask_times(ours) == mask_times(theirs[..offset as usize].to_vec()),
            "{version}: seeded binlog differs from the real slave's first {offset} bytes"
        );
        let (ok, out, _) = relay(&[
            "inspect",
            "manifest",
            log.join("manifest").to_str().unwrap(),
        ]);
        assert!(ok);
        assert!(
            out.contains(&format!("producer position: 0:{offset}")),
            "{out}"
        );

        // A second run refuses to overwrite, --force overwrites.
        let args = [
            "seed-manifest",
            "--dump",
            dump.to_str().unwrap(),
            "--log-path",
            log.to_str().unwrap(),
            "--pika-version",
            version,
        ];
        let (ok, _, err) = relay(&args);
        assert!(
            !ok && err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        let mut forced = args.to_vec();
        forced.push("--force");
        assert!(relay(&forced).0);
    }
}

#[test]
fn seed_manifest_names_what_is_wrong_with_a_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    let log = tmp.path().join("log_db0");
    let args = [
        "seed-manifest",
        "--dump",
        dump.to_str().unwrap(),
        "--log-path",
        log.to_str().unwrap(),
    ];
    let (ok, _, err) = relay(&args);
    assert!(!ok && err.contains("no `info` file"), "{err}");
    std::fs::write(dump.join("info"), "0s\n127.0.0.1\n9221\n0\n").unwrap();
    let (ok, _, err) = relay(&args);
    assert!(
        !ok && err.contains("line 5 (binlog offset) is missing"),
        "{err}"
    );
    std::fs::write(dump.join("info"), "0s\n127.0.0.1\n9221\nzero\n100\n").unwrap();
    let (ok, _, err) = relay(&args);
    assert!(!ok && err.contains("line 4 (binlog filenum)"), "{err}");
    assert!(!log.join("manifest").exists());
}

#[test]
fn inspect_binlog_prints_the_recorded_workload() {
    for (dir, entries) in [
        ("pika-3.2.9/master-log/log_db0", 49),
        ("pika-3.0.16/master-log", 49),
        ("pika-2.3.6/master-log", 51),
    ] {
        let path = vectors::dir().join(dir);
        let (ok, out, err) = relay(&["inspect", "binlog", path.to_str().unwrap()]);
        assert!(ok, "{err}");
        assert!(!out.contains("ERROR"), "{out}");
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("0:")).collect();
        assert_eq!(lines.len(), entries, "{dir}");
        assert!(lines[0].starts_with("0:0-"), "{}", lines[0]);
        assert!(out.contains(r#""set" "str:1" "v1""#), "{dir}");
        assert!(
            out.contains(r#""big" "\x00\x07\x0e"#),
            "{dir}: big value escaped and shortened"
        );
        assert!(out.contains("<153600 bytes>"), "{dir}");
    }
    let (ok, _, err) = relay(&["inspect", "binlog", "/nonexistent/x"]);
    assert!(!ok && err.contains("/nonexistent/x"), "{err}");
}
