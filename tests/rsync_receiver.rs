//! The embedded receiver against the real `rsync` client, driven with Pika's command lines.

mod rsync_support;

use std::time::Duration;

use pika_relay::rsync::checksum::ChecksumKind;
use pika_relay::rsync::receiver::{Limits, ModuleSpec};
use rsync_support::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Pika 3.2.9: five pushes (one per type dir), five `--delete` passes, then `info` last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_3x_full_sync_sequence_is_byte_identical() {
    let mut r = start_receiver(
        vec![ModuleSpec::with_auth("document", "rsync_user", "default")],
        Limits::default(),
    )
    .await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 20);
    let pw = password_file(src.path(), "default");
    let (port, pwf) = (
        format!("--port={}", r.port),
        format!("--password-file={}", pw.display()),
    );
    for ty in TYPES {
        let o = run_rsync(
            &s(&[
                "-avP",
                "--bwlimit=1048576",
                &pwf,
                &port,
                &format!("{}/{ty}/", src.path().display()),
                &format!("rsync_user@127.0.0.1::document/db0/{ty}/"),
            ]),
            120,
        )
        .await;
        assert_ok(&o, ty);
        let ev = r.event().await;
        assert!(ev.result.is_ok(), "{ev:?}");
        assert!(!ev.delete_pass);
    }
    // An extraneous file the --delete pass must remove.
    let root = r.module_root("document");
    std::fs::write(root.join("db0/hashes/stale.sst"), b"old").unwrap();
    for ty in TYPES {
        let o = run_rsync(
            &s(&[
                "-avP",
                "--delete",
                &port,
                &pwf,
                &format!("{}/{ty}/", src.path().display()),
                &format!("rsync_user@127.0.0.1::document/db0/{ty}/"),
            ]),
            60,
        )
        .await;
        assert_ok(&o, &format!("--delete {ty}"));
        let ev = r.event().await;
        assert!(ev.result.is_ok() && ev.delete_pass, "{ev:?}");
        assert_eq!(
            ev.bytes, 0,
            "the quick check must skip every file of a fresh push: {ev:?}"
        );
        assert!(ev.skipped > 0);
    }
    assert!(
        !root.join("db0/hashes/stale.sst").exists(),
        "--delete pass kept an extraneous file"
    );
    // Bare probe, as Pika 3.2.9 makes before the info file.
    drop(
        tokio::net::TcpStream::connect(("127.0.0.1", r.port))
            .await
            .unwrap(),
    );
    std::fs::copy(src.path().join("info"), src.path().join("info.1700000000")).unwrap();
    let o = run_rsync(
        &s(&[
            "-avP",
            "--bwlimit=1048576",
            &pwf,
            &port,
            &format!("{}/info.1700000000", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/info",
        ]),
        60,
    )
    .await;
    assert_ok(&o, "info");
    let ev =
        r.rx.wait_for_file("document", "db0/info", Duration::from_secs(10))
            .await
            .expect("info event");
    assert_eq!(ev.files.len(), 1);
    std::fs::remove_file(src.path().join("info.1700000000")).unwrap();
    std::fs::remove_file(&pw).unwrap();
    assert_same_tree(src.path(), &root.join("db0"));
}

/// Pika 3.0.16 / 2.3.6: module `document_<ip>:<port>`, no auth, targets at the module root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_30_module_without_auth() {
    let mut r = start_receiver(vec![ModuleSpec::prefix("document")], Limits::default()).await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 1);
    let port = format!("--port={}", r.port);
    let module = "document_127.0.0.1:29221";
    for ty in ["strings", "zsets"] {
        let o = run_rsync(
            &s(&[
                "-avP",
                "--bwlimit=1048576",
                &port,
                &format!("{}/{ty}/", src.path().display()),
                &format!("127.0.0.1::{module}/{ty}/"),
            ]),
            60,
        )
        .await;
        assert_ok(&o, ty);
        assert!(r.event().await.result.is_ok());
        assert_same_tree(&src.path().join(ty), &r.module_root(module).join(ty));
    }
    let o = run_rsync(
        &s(&[
            "-avP",
            "--bwlimit=128000",
            &port,
            &format!("{}/info", src.path().display()),
            &format!("127.0.0.1::{module}/info"),
        ]),
        60,
    )
    .await;
    assert_ok(&o, "info");
    let ev =
        r.rx.wait_for_file(module, "info", Duration::from_secs(10))
            .await
            .expect("info event");
    assert_eq!(
        std::fs::read(ev.module_root.join("info")).unwrap(),
        std::fs::read(src.path().join("info")).unwrap()
    );
}

#[tokio::test]
async fn wrong_password_is_refused_with_exit_5() {
    let mut r = start_receiver(
        vec![ModuleSpec::with_auth("document", "rsync_user", "default")],
        Limits::default(),
    )
    .await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 0);
    let pw = password_file(src.path(), "wrong");
    let o = run_rsync(
        &s(&[
            "-avP",
            &format!("--password-file={}", pw.display()),
            &format!("--port={}", r.port),
            &format!("{}/strings/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/strings/",
        ]),
        30,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("auth failed on module document"));
    assert!(
        !r.module_root("document").exists(),
        "nothing may be written on auth failure"
    );
    // A correct client is still served.
    let pw = password_file(src.path(), "default");
    let o = run_rsync(
        &s(&[
            "-a",
            &format!("--password-file={}", pw.display()),
            &format!("--port={}", r.port),
            &format!("{}/lists/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/lists/",
        ]),
        30,
    )
    .await;
    assert_ok(&o, "after a refused client");
    assert!(r.event().await.result.is_ok());
}

#[tokio::test]
async fn unknown_module_is_refused() {
    let r = start_receiver(
        vec![ModuleSpec::with_auth("document", "rsync_user", "default")],
        Limits::default(),
    )
    .await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 0);
    let o = run_rsync(
        &s(&[
            "-a",
            &format!("--port={}", r.port),
            &format!("{}/sets/", src.path().display()),
            "127.0.0.1::backup/sets/",
        ]),
        30,
    )
    .await;
    assert_eq!(o.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Unknown module 'backup'"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_protocol_30() {
    let mut r = start_receiver(
        vec![ModuleSpec::with_auth("document", "rsync_user", "default")],
        Limits::default(),
    )
    .await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 2);
    let pw = password_file(src.path(), "default");
    let o = run_rsync(
        &s(&[
            "-avP",
            "--protocol=30",
            "--bwlimit=1048576",
            &format!("--password-file={}", pw.display()),
            &format!("--port={}", r.port),
            &format!("{}/strings/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/strings/",
        ]),
        60,
    )
    .await;
    assert_ok(&o, "--protocol=30");
    let ev = r.event().await;
    assert!(ev.result.is_ok(), "{ev:?}");
    assert_eq!(
        ev.checksum,
        ChecksumKind::Md5,
        "protocol 30 has no checksum negotiation: MD5"
    );
    assert_same_tree(
        &src.path().join("strings"),
        &r.module_root("document").join("db0/strings"),
    );
    let o = run_rsync(
        &s(&[
            "-avP",
            "--protocol=30",
            "--delete",
            &format!("--password-file={}", pw.display()),
            &format!("--port={}", r.port),
            &format!("{}/strings/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/strings/",
        ]),
        60,
    )
    .await;
    assert_ok(&o, "--protocol=30 --delete");
    let ev = r.event().await;
    assert!(ev.result.is_ok() && ev.bytes == 0, "{ev:?}");
}

#[tokio::test]
async fn changed_file_is_resent_and_replaced() {
    let mut r = start_receiver(vec![ModuleSpec::prefix("document")], Limits::default()).await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 0);
    let port = r.port;
    let args = |src: &std::path::Path| {
        s(&[
            "-a",
            &format!("--port={port}"),
            &format!("{}/sets/", src.display()),
            "127.0.0.1::document_x/sets/",
        ])
    };
    assert_ok(&run_rsync(&args(src.path()), 30).await, "first");
    assert!(r.event().await.result.is_ok());
    std::fs::write(src.path().join("sets/000007.sst"), b"rewritten").unwrap();
    assert_ok(&run_rsync(&args(src.path()), 30).await, "second");
    let ev = r.event().await;
    assert_eq!(ev.bytes, 9, "only the changed file is sent: {ev:?}");
    assert_same_tree(
        &src.path().join("sets"),
        &r.module_root("document_x").join("sets"),
    );
}

/// A stock 3.2+ client at protocol 31 offers `v`: we set CF_VARINT_FLIST_FLAGS, exchange
/// checksum lists and both ends use xxh128 (varint file-list flags, 16-byte XXH3-128 sums).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_client_negotiates_xxh128() {
    let mut r = start_receiver(
        vec![ModuleSpec::with_auth("document", "rsync_user", "default")],
        Limits::default(),
    )
    .await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 3);
    let pw = password_file(src.path(), "default");
    let (port, pwf) = (
        format!("--port={}", r.port),
        format!("--password-file={}", pw.display()),
    );
    let o = run_rsync(
        &s(&[
            "-avP",
            "--debug=NSTR",
            "--bwlimit=1048576",
            &pwf,
            &port,
            &format!("{}/strings/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/strings/",
        ]),
        60,
    )
    .await;
    assert_ok(&o, "default client");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Client negotiated checksum: xxh128"),
        "the client side must report the negotiation:\n{out}"
    );
    let ev = r.event().await;
    assert!(ev.result.is_ok(), "{ev:?}");
    assert_eq!(ev.checksum, ChecksumKind::Xxh128);
    assert!(ev.bytes > 3 << 20, "{ev:?}");
    assert_same_tree(
        &src.path().join("strings"),
        &r.module_root("document").join("db0/strings"),
    );

    // A fixed --checksum-choice skips the list exchange; xxh64 sums are 8 bytes, in the
    // file list too (-c) and after each file's data.
    let o = run_rsync(
        &s(&[
            "-ac",
            "--checksum-choice=xxh64",
            &pwf,
            &port,
            &format!("{}/hashes/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/hashes/",
        ]),
        60,
    )
    .await;
    assert_ok(&o, "--checksum-choice=xxh64 -c");
    let ev = r.event().await;
    assert!(ev.result.is_ok(), "{ev:?}");
    assert_eq!(ev.checksum, ChecksumKind::Xxh64);
    assert_same_tree(
        &src.path().join("hashes"),
        &r.module_root("document").join("db0/hashes"),
    );

    // A client that only offers sums we lack fails (as against a stock daemon: exit code 4);
    // the listener keeps serving.
    let mut cmd = tokio::process::Command::new(rsync_bin());
    let o = cmd
        .args(s(&[
            "-a",
            &pwf,
            &port,
            &format!("{}/lists/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/lists/",
        ]))
        .env("RSYNC_CHECKSUM_LIST", "sha1 md4")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("Failed to negotiate a checksum choice"),
        "{err}"
    );
    let o = run_rsync(
        &s(&[
            "-a",
            &pwf,
            &port,
            &format!("{}/lists/", src.path().display()),
            "rsync_user@127.0.0.1::document/db0/lists/",
        ]),
        60,
    )
    .await;
    assert_ok(&o, "after a failed negotiation");
    assert_eq!(r.event().await.checksum, ChecksumKind::Xxh128);
    std::fs::remove_file(&pw).unwrap();
}
