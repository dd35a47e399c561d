//! Hostile and broken clients, scripted byte by byte. Each must get its error, write nothing
//! outside (or left over inside) the staging area, and leave the listener serving.

mod rsync_support;

use std::time::Duration;

use pika_relay::rsync::flist::{encode_entry, FileEntry};
use pika_relay::rsync::mux::{push_frame, tag};
use pika_relay::rsync::receiver::{Limits, ModuleSpec};
use pika_relay::rsync::wire::{put_i32, put_varint, put_varlong};
use rsync_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MODULE: &str = "document_127.0.0.1:29221";

struct Raw(TcpStream);

impl Raw {
    /// Handshake as an rsync 3.x client and send the `--server` arguments.
    async fn connect(port: u16, dest: &str) -> Raw {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("@RSYNCD: 31.0\n{MODULE}\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Raw(s);
        assert_eq!(raw.line().await, "@RSYNCD: 31.0");
        assert_eq!(raw.line().await, "@RSYNCD: OK");
        let mut args = vec![];
        for a in [
            "--server",
            "-rlte.LsfxC",
            ".",
            &format!("{MODULE}/{dest}"),
            "",
        ] {
            args.extend_from_slice(a.as_bytes());
            args.push(0);
        }
        raw.0.write_all(&args).await.unwrap();
        let mut setup = [0u8; 5];
        raw.0.read_exact(&mut setup).await.unwrap();
        assert_eq!(setup[0], 0, "compat flags");
        raw
    }

    async fn line(&mut self) -> String {
        let mut l = vec![];
        let mut b = [0u8; 1];
        while self.0.read_exact(&mut b).await.is_ok() && b[0] != b'\n' {
            l.push(b[0]);
        }
        String::from_utf8_lossy(&l).into_owned()
    }

    async fn data(&mut self, payload: &[u8]) {
        let mut out = vec![];
        for c in payload.chunks(60_000) {
            push_frame(&mut out, tag::DATA, c);
        }
        let _ = self.0.write_all(&out).await;
    }

    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(20), self.0.read_exact(&mut h))
            .await
            .ok()?
            .ok()?;
        let v = u32::from_le_bytes(h);
        let mut p = vec![0u8; (v & 0xFF_FFFF) as usize];
        self.0.read_exact(&mut p).await.ok()?;
        Some(((v >> 24) as u8 - 7, p))
    }

    /// Read until MSG_ERROR; then complete the protocol-31 MSG_ERROR_EXIT exchange.
    async fn expect_error(&mut self) -> String {
        let text = loop {
            let (t, p) = self
                .frame()
                .await
                .expect("server closed without an error message");
            if t == tag::ERROR {
                break String::from_utf8_lossy(&p).into_owned();
            }
        };
        let (t, p) = self.frame().await.expect("MSG_ERROR_EXIT");
        assert_eq!((t, p.len()), (tag::ERROR_EXIT, 4));
        let mut ack = vec![];
        push_frame(&mut ack, tag::ERROR_EXIT, &[]);
        self.0.write_all(&ack).await.unwrap();
        assert_eq!(self.frame().await.map(|f| f.0), Some(tag::ERROR_EXIT));
        text
    }
}

fn file(name: &str, size: i64) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        size,
        mtime: 1_700_000_000,
        mode: 0o100644,
        ..Default::default()
    }
}

fn list(entries: &[FileEntry]) -> Vec<u8> {
    let mut v = vec![];
    encode_entry(
        &mut v,
        &FileEntry {
            name: b".".to_vec(),
            mode: 0o040755,
            mtime: 1_700_000_000,
            ..Default::default()
        },
        true,
    );
    for e in entries {
        encode_entry(&mut v, e, false);
    }
    v.push(0);
    v
}

fn limits() -> Limits {
    Limits {
        max_files: 50_000,
        max_file_bytes: 1 << 20,
        ..Limits::default()
    }
}

/// No temp files and nothing outside the module root.
fn assert_clean(r: &TestReceiver) {
    let stage = r.staging.path().join("stage");
    let outside: Vec<_> = std::fs::read_dir(r.staging.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        ["stage"],
        "something was written outside the staging root"
    );
    if stage.exists() {
        let left: Vec<_> = list_files(&stage)
            .into_iter()
            .filter(|p| !p.starts_with(format!("{MODULE}/keep")))
            .collect();
        assert!(left.is_empty(), "partial staging left behind: {left:?}");
    }
}

async fn refused(r: &mut TestReceiver, entries_payload: Vec<u8>, want: &str) {
    let mut c = Raw::connect(r.port, "x/").await;
    c.data(&entries_payload).await;
    let text = c.expect_error().await;
    assert!(text.contains(want), "error text {text:?} lacks {want:?}");
    let ev = r.event().await;
    assert!(
        ev.result.as_ref().is_err_and(|e| e.contains(want)),
        "{ev:?}"
    );
    assert_clean(r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_get_errors_and_the_listener_survives() {
    let mut r = start_receiver(vec![ModuleSpec::prefix("document")], limits()).await;

    refused(&mut r, list(&[file("../x", 1)]), "`..`").await;
    refused(&mut r, list(&[file("/etc/x", 1)]), "absolute").await;
    // A symlink entry (-l: the target follows the mode).
    let mut sym = vec![];
    encode_entry(
        &mut sym,
        &FileEntry {
            name: b"evil".to_vec(),
            mode: 0o120777,
            mtime: 1,
            ..Default::default()
        },
        false,
    );
    put_varint(&mut sym, 4);
    sym.extend_from_slice(b"/etc");
    let mut payload = list(&[]);
    payload.pop();
    payload.extend_from_slice(&sym);
    payload.push(0);
    refused(&mut r, payload, "symlink entry `evil` refused").await;
    // 100 000 empty files over a 50 000 cap.
    let many: Vec<FileEntry> = (0..100_000).map(|i| file(&format!("f{i:06}"), 0)).collect();
    refused(&mut r, list(&many), "more than 50000 files").await;
    // Declared over the per-file cap.
    refused(&mut r, list(&[file("big", 2 << 20)]), "per-file cap").await;

    // Declared small, then sends more than the cap.
    let mut c = Raw::connect(r.port, "x/").await;
    c.data(&list(&[file("liar", 10)])).await;
    let (t, req) = c.frame().await.unwrap();
    assert_eq!(t, tag::DATA);
    assert_eq!(&req[..3], &[2, 0, 0xa0], "request for ndx 1");
    let mut rec = vec![2, 0, 0xa0];
    rec.extend_from_slice(&[0; 16]);
    let chunk = vec![7u8; 32768];
    for _ in 0..40 {
        put_i32(&mut rec, chunk.len() as i32);
        rec.extend_from_slice(&chunk);
    }
    c.data(&rec).await;
    assert!(c.expect_error().await.contains("per-file cap"));
    assert!(r.event().await.result.is_err());
    assert_clean(&r);

    // Stream cut mid-file.
    let mut c = Raw::connect(r.port, "x/").await;
    c.data(&list(&[file("a", 100_000)])).await;
    c.frame().await.unwrap();
    let mut rec = vec![2, 0, 0xa0];
    rec.extend_from_slice(&[0; 16]);
    put_i32(&mut rec, 32768);
    rec.extend_from_slice(&[1u8; 32768]);
    put_i32(&mut rec, 32768);
    rec.extend_from_slice(&[1u8; 1000]);
    c.data(&rec).await;
    drop(c);
    let ev = r.event().await;
    assert!(
        ev.result.as_ref().is_err_and(|e| e.contains("closed")),
        "{ev:?}"
    );
    assert_clean(&r);

    // Garbage greeting.
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut got)).await;
    assert_eq!(got, "@RSYNCD: 31.0\n@ERROR: protocol startup error\n");

    // Too-old protocol.
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(b"@RSYNCD: 29.0\n").await.unwrap();
    let mut got = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut got)).await;
    assert!(
        got.contains("@ERROR: unsupported: protocol version mismatch"),
        "{got}"
    );

    // Connect-only probe, and a truncated varlong in an otherwise fine list.
    drop(TcpStream::connect(("127.0.0.1", r.port)).await.unwrap());
    let mut bad = vec![0x40, 1, b'z'];
    put_varlong(&mut bad, 5, 3);
    let mut c = Raw::connect(r.port, "x/").await;
    c.data(&bad).await;
    drop(c);
    assert!(r.event().await.result.is_err());
    assert_clean(&r);

    // A good client is still served.
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 0);
    let o = run_rsync(
        &[
            "-avP".into(),
            format!("--port={}", r.port),
            format!("{}/strings/", src.path().display()),
            format!("127.0.0.1::{MODULE}/keep/"),
        ],
        30,
    )
    .await;
    assert_ok(&o, "good client after hostile ones");
    assert!(r.event().await.result.is_ok());
    assert_same_tree(
        &src.path().join("strings"),
        &r.module_root(MODULE).join("keep"),
    );
}

#[tokio::test]
async fn unsupported_option_is_named() {
    let r = start_receiver(vec![ModuleSpec::prefix("document")], Limits::default()).await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 0);
    let o = run_rsync(
        &[
            "-aH".into(),
            format!("--port={}", r.port),
            format!("{}/sets/", src.path().display()),
            format!("127.0.0.1::{MODULE}/sets/"),
        ],
        30,
    )
    .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--hard-links"), "{err}");
}
