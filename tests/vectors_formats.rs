//! Every binlog file, push stream, manifest, info file and protobuf stream recorded from real
//! Pika servers decodes to exactly what the vectors' listings say.

#[path = "support/vectors.rs"]
mod vectors;

use pika_relay::formats::binlog_file::{decode_file, EntryBody, Flavor};
use pika_relay::formats::info::DumpInfo;
use pika_relay::formats::manifest::{Manifest, ManifestLayout};
use pika_relay::formats::old_frame::{self, OldFrame};
use pika_relay::formats::old_raw::{self, RawMessage};
use pika_relay::formats::{pb, BinlogPos};
use prost::Message;
use vectors::{assert_argv, Arg, Row};

fn full_raw_argv(e: &old_raw::RawEntry) -> Vec<Vec<u8>> {
    let mut a = e.argv.clone();
    a.push(old_raw::MAGIC.to_vec());
    a.push(e.server_id.clone());
    a.push(e.info_raw.clone());
    a.push(e.hub_flag.clone());
    a
}

fn note_len(row: &Row) -> Option<usize> {
    match row.argv.as_slice() {
        [Arg::Note(n)] => n
            .split_once(" bytes")
            .and_then(|(head, _)| head.rsplit(' ').next())
            .and_then(|s| s.parse().ok()),
        _ => None,
    }
}

/// Checks one binlog file against its listing; returns the number of rows checked.
fn check_binlog(rel: &str) -> usize {
    let buf = vectors::read(rel);
    let rows = vectors::tsv(&format!("{rel}.entries.tsv"));
    let (entries, err) = decode_file(&buf, 0, Flavor::Auto);
    assert!(err.is_none(), "{rel}: {err:?}");
    let mut r = rows.iter();
    let mut checked = 0;
    for e in &entries {
        let ctx = format!("{rel} @{}", e.start);
        match &e.body {
            EntryBody::Items(items) => {
                for it in items {
                    let row = r
                        .next()
                        .unwrap_or_else(|| panic!("{ctx}: more entries than listed"));
                    assert_eq!((row.c1, row.c2), (Some(e.start), Some(e.end)), "{ctx}");
                    assert_eq!(row.exec_time, Some(it.exec_time as u64), "{ctx}");
                    assert_eq!(row.server_id, Some(it.server_id as u64), "{ctx}");
                    assert_eq!(row.logic_id, Some(it.logic_id), "{ctx}");
                    assert_eq!(row.filenum, Some(it.pos.filenum as u64), "{ctx}");
                    assert_eq!(row.offset, Some(it.pos.offset), "{ctx}");
                    assert_argv(row, &it.argv().unwrap(), &ctx);
                    checked += 1;
                }
            }
            EntryBody::Raw(arrays) => {
                for a in arrays {
                    let row = r
                        .next()
                        .unwrap_or_else(|| panic!("{ctx}: more entries than listed"));
                    assert_eq!((row.c1, row.c2), (Some(e.start), Some(e.end)), "{ctx}");
                    let info = a.info.expect("16-byte binlog_info");
                    assert_eq!(row.exec_time, Some(info.exec_time as u64), "{ctx}");
                    assert_eq!(row.filenum, Some(info.pos.filenum as u64), "{ctx}");
                    assert_eq!(row.offset, Some(info.pos.offset), "{ctx}");
                    assert_eq!(row.logic_id, None, "{ctx}: 2.x has no logic id");
                    assert_argv(row, &full_raw_argv(a), &ctx);
                    checked += 1;
                }
            }
            EntryBody::Padding(len) | EntryBody::Blank(len) => {
                let row = r
                    .next()
                    .unwrap_or_else(|| panic!("{ctx}: more entries than listed"));
                assert_eq!((row.c1, row.c2), (Some(e.start), Some(e.end)), "{ctx}");
                assert_eq!(note_len(row), Some(*len), "{ctx}: filler size, row {row:?}");
                let kind = if matches!(e.body, EntryBody::Padding(_)) {
                    "padding"
                } else {
                    "blank"
                };
                assert!(format!("{:?}", row.argv).contains(kind), "{ctx}: {row:?}");
                checked += 1;
            }
        }
    }
    assert!(
        r.next().is_none(),
        "{rel}: listing has more rows than decoded"
    );
    assert_eq!(checked, rows.len());
    checked
}

#[test]
fn every_recorded_binlog_file_decodes_as_listed() {
    let files = [
        ("pika-2.3.6/master-log/write2file0", 51),
        ("pika-2.3.6/slave-log/write2file0", 16),
        ("pika-3.0.16/master-log/write2file0", 49),
        ("pika-3.0.16/slave-log/write2file0", 15),
        ("pika-3.1.1/master-log/log_db0/write2file0", 49),
        ("pika-3.1.1/slave-log/log_db0/write2file0", 15),
        ("pika-3.2.9/master-log/log_db0/write2file0", 49),
        ("pika-3.2.9/slave-log/log_db0/write2file0", 15),
        ("pika-3.3.6/master-log/log_db0/write2file0", 50),
        ("pika-3.3.6/slave-log/log_db0/write2file0", 15),
    ];
    for (f, n) in files {
        assert_eq!(check_binlog(f), n, "{f}");
    }
}

#[test]
fn recorded_3_0_push_streams_decode_as_listed() {
    for s in [
        "04-binlog-push-incremental",
        "09-binlog-push-after-fullsync",
    ] {
        let rel = format!("pika-3.0.16/streams/{s}.c2s.bin");
        let buf = vectors::read(&rel);
        let rows = vectors::tsv(&format!("pika-3.0.16/streams/{s}.entries.tsv"));
        let mut pos = 0;
        let mut r = rows.iter();
        while pos < buf.len() {
            let (frame, used) = old_frame::decode_frame(&buf[pos..], old_frame::DEFAULT_MAX_BODY)
                .unwrap()
                .expect("complete frame");
            let ctx = format!("{rel} @{pos}");
            match frame {
                OldFrame::Auth { sid } => {
                    let row = r.next().unwrap();
                    assert_eq!(row.c1, Some(1), "{ctx}");
                    assert_eq!(row.c2, Some((used - 6) as u64), "{ctx}");
                    assert_argv(row, &[b"auth".to_vec(), sid.into_bytes()], &ctx);
                }
                OldFrame::Binlog { items, body_len } => {
                    for it in items {
                        let row = r.next().unwrap();
                        assert_eq!(row.c1, Some(2), "{ctx}");
                        assert_eq!(row.c2, Some(body_len as u64), "{ctx}");
                        assert_eq!(row.exec_time, Some(it.exec_time as u64), "{ctx}");
                        assert_eq!(row.logic_id, Some(it.logic_id), "{ctx}");
                        assert_eq!(row.offset, Some(it.pos.offset), "{ctx}");
                        assert_argv(row, &it.argv().unwrap(), &ctx);
                    }
                }
            }
            pos += used;
        }
        assert!(r.next().is_none(), "{rel}: rows left over");
    }
}

#[test]
fn recorded_2_3_push_streams_decode_as_listed() {
    for s in [
        "04-binlog-push-incremental",
        "09-binlog-push-after-fullsync",
    ] {
        let rel = format!("pika-2.3.6/streams/{s}.c2s.bin");
        let buf = vectors::read(&rel);
        let rows = vectors::tsv(&format!("pika-2.3.6/streams/{s}.entries.tsv"));
        let mut pos = 0;
        let mut r = rows.iter();
        let mut sids = Vec::new();
        while pos < buf.len() {
            let (msg, used) = old_raw::decode_message(&buf[pos..])
                .unwrap()
                .expect("complete");
            let row = r.next().expect("listed");
            let ctx = format!("{rel} @{pos}");
            assert_eq!(row.c2, Some(used as u64), "{ctx}: array size");
            match msg {
                RawMessage::Auth { sid } => {
                    assert_argv(row, &[b"auth".to_vec(), sid.clone().into_bytes()], &ctx);
                    sids.push(sid);
                }
                RawMessage::Entry(e) => {
                    let info = e.info.unwrap();
                    assert_eq!(row.exec_time, Some(info.exec_time as u64), "{ctx}");
                    assert_eq!(row.offset, Some(info.pos.offset), "{ctx}");
                    assert_argv(row, &full_raw_argv(&e), &ctx);
                }
            }
            pos += used;
        }
        assert!(r.next().is_none());
        assert_eq!(sids.len(), 1);
    }
}

#[test]
fn recorded_manifests_decode() {
    let cases = [
        (
            "pika-2.3.6/master-log/manifest",
            ManifestLayout::V23,
            228904,
            0,
            0,
        ),
        (
            "pika-2.3.6/slave-log/manifest",
            ManifestLayout::V23,
            228912,
            0,
            0,
        ),
        (
            "pika-3.0.16/master-log/manifest",
            ManifestLayout::V30,
            227652,
            49,
            0,
        ),
        (
            "pika-3.1.1/master-log/log_db0/manifest",
            ManifestLayout::V31,
            227669,
            49,
            0,
        ),
        (
            "pika-3.2.9/master-log/log_db0/manifest",
            ManifestLayout::V31,
            227652,
            49,
            0,
        ),
        (
            "pika-3.2.9/slave-log/log_db0/manifest",
            ManifestLayout::V31,
            227652,
            49,
            0,
        ),
        (
            "pika-3.3.6/master-log/log_db0/manifest",
            ManifestLayout::V33,
            227735,
            50,
            2866148688,
        ),
        (
            "pika-3.3.6/slave-log/log_db0/manifest",
            ManifestLayout::V33,
            227735,
            12,
            0,
        ),
    ];
    for (f, layout, offset, logic_id, term) in cases {
        let buf = vectors::read(f);
        assert_eq!(buf.len(), 65536, "{f}");
        let m = Manifest::decode(&buf, layout).unwrap();
        assert_eq!(m.pos, BinlogPos::new(0, offset), "{f}");
        assert_eq!(m.logic_id, logic_id, "{f}");
        assert_eq!(m.term, term, "{f}");
        // Our encoder writes the same image (all else is zero).
        assert_eq!(m.encode(layout), buf, "{f}: re-encoded manifest differs");
    }
}

#[test]
fn recorded_dump_info_files_parse() {
    let cases = [
        ("pika-2.3.6", 30021, 157592),
        ("pika-3.0.16", 29221, 156700),
        ("pika-3.1.1", 29821, 156710),
        ("pika-3.2.9", 29421, 156700),
        ("pika-3.3.6", 29621, 156783),
    ];
    for (v, port, offset) in cases {
        let root = vectors::dir().join(v).join("master-dump/20261122");
        let path = if root.join("info").is_file() {
            root.join("info")
        } else {
            root.join("db0/info")
        };
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let i = DumpInfo::parse(&text).unwrap();
        assert_eq!(i.ip, "127.0.0.1", "{v}");
        assert_eq!(i.port, port, "{v}");
        assert_eq!(i.pos, BinlogPos::new(0, offset), "{v}");
        assert_eq!(i.render().as_bytes(), &text[..], "{v}");
    }
}

/// Frame boundaries and sizes listed in a `*.decoded.txt` file: (byte, len, type line).
fn decoded_listing(rel: &str) -> Vec<(usize, usize, String)> {
    let text = String::from_utf8(vectors::read(rel)).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.strip_prefix("# frame ") {
            let (_, rest) = rest.split_once(" at byte ").unwrap();
            let (at, len) = rest.split_once(", ").unwrap();
            let len = len.trim_end_matches(" bytes");
            let ty = lines
                .next()
                .unwrap()
                .trim_start_matches("type: ")
                .to_string();
            out.push((at.parse().unwrap(), len.parse().unwrap(), ty));
        }
    }
    out
}

fn type_name(t: i32) -> String {
    pb::Type::try_from(t).unwrap().as_str_name().to_string()
}

#[test]
fn recorded_pb_streams_decode_and_reencode_byte_identical() {
    let mut frames = 0;
    for v in ["pika-3.1.1", "pika-3.2.9", "pika-3.3.6"] {
        for s in ["03-pb-incremental", "06-pb-force-fullsync-then-w2"] {
            for dir in ["c2s", "s2c"] {
                let rel = format!("{v}/streams/{s}.{dir}.bin");
                let buf = vectors::read(&rel);
                let listing = decoded_listing(&format!("{v}/streams/{s}.{dir}.decoded.txt"));
                let mut pos = 0;
                let mut i = 0;
                while pos < buf.len() {
                    let (body, used) = pb::split_frame(&buf[pos..], pb::DEFAULT_MAX_FRAME)
                        .unwrap()
                        .expect("complete frame");
                    let (at, len, ty) = &listing[i];
                    assert_eq!((pos, body.len()), (*at, *len), "{rel} frame {i}");
                    let (t, reenc) = if dir == "c2s" {
                        let m = pb::decode_request(body).unwrap();
                        (m.r#type, m.encode_to_vec())
                    } else {
                        let m = pb::decode_response(body).unwrap();
                        (m.r#type, m.encode_to_vec())
                    };
                    assert_eq!(&type_name(t), ty, "{rel} frame {i}");
                    assert_eq!(
                        reenc, body,
                        "{rel} frame {i}: our schema re-encodes differently"
                    );
                    pos += used;
                    i += 1;
                    frames += 1;
                }
                assert_eq!(i, listing.len(), "{rel}");
            }
        }
    }
    assert!(frames > 30, "{frames}");
}
