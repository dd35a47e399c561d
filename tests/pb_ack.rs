//! The allocation-free BinlogSync ack decoder agrees with prost: on constructed acks and a
//! hand-assembled one, whatever it accepts decodes to the same values with prost; everything else
//! (other requests, unknown or repeated fields, long table names, every truncation and many
//! single-byte corruptions of an ack) goes to prost, so errors stay exactly prost's.

#[path = "support/vectors.rs"]
mod vectors;

use pika_relay::formats::pb::{
    decode_request, inner_request, split_frame, BinlogOffset, InnerRequest, Node, Partition, Type,
};
use pika_relay::formats::pb_ack::{decode, decode_binlog_ack, BinlogAck, Request};
use prost::Message;

fn off(filenum: u32, offset: u64, ti: Option<(u32, u64)>) -> BinlogOffset {
    BinlogOffset {
        filenum,
        offset,
        term: ti.map(|t| t.0),
        index: ti.map(|t| t.1),
    }
}

fn ack(table: &str, start: BinlogOffset, end: BinlogOffset, session: i32, first: bool) -> Vec<u8> {
    InnerRequest {
        r#type: Type::KBinlogSync as i32,
        binlog_sync: Some(inner_request::BinlogSync {
            node: Node {
                ip: "127.0.0.1".into(),
                port: 9231,
            },
            table_name: table.into(),
            partition_id: 0,
            ack_range_start: start,
            ack_range_end: end,
            session_id: session,
            first_send: first,
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// What prost makes of `body`, as an ack.
fn slow(body: &[u8]) -> BinlogAck {
    decode_request(body).unwrap().binlog_sync.unwrap().into()
}

/// The fast path took `body`, with prost's values.
fn fast_agrees(body: &[u8]) {
    let a = decode_binlog_ack(body).expect("fast path takes it");
    assert_eq!(a, slow(body));
    assert_eq!(decode(body).unwrap(), Request::Ack(a));
}

/// `decode` answers exactly as prost does, and the fast path never takes what prost reads
/// differently or rejects.
fn same_as_prost(body: &[u8]) {
    match (decode(body), decode_request(body)) {
        (Ok(Request::Ack(a)), Ok(req)) => {
            assert_eq!(req.r#type, Type::KBinlogSync as i32);
            assert_eq!(a, BinlogAck::from(req.binlog_sync.unwrap()), "{body:02x?}");
        }
        (Ok(Request::Other(ours)), Ok(theirs)) => assert_eq!(*ours, theirs),
        (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string()),
        (ours, theirs) => panic!("{body:02x?}: ours {ours:?}, prost {theirs:?}"),
    }
}

#[test]
fn constructed_acks_decode_as_prost_decodes_them() {
    let offsets = [
        off(0, 0, None),
        off(0, 1234, None),
        off(7, 104_857_600, Some((1, 0))),
        off(u32::MAX, u64::MAX, Some((u32::MAX, u64::MAX))),
    ];
    for table in ["db0", "db15", "", "a_23_byte_table_name_xx"] {
        for s in &offsets {
            for e in &offsets {
                for session in [0, 1, -1, -2, i32::MIN, i32::MAX] {
                    for first in [false, true] {
                        fast_agrees(&ack(table, *s, *e, session, first));
                    }
                }
            }
        }
    }
    let a = decode_binlog_ack(&ack(
        "db3",
        off(1, 2, None),
        off(3, 4, Some((5, 6))),
        -1,
        true,
    ))
    .unwrap();
    assert_eq!(a.table.as_str(), "db3");
    assert_eq!(
        (a.start.filenum, a.start.offset, a.start.term),
        (1, 2, None)
    );
    assert_eq!((a.end.term, a.end.index), (Some(5), Some(6)));
    assert_eq!((a.session_id, a.first_send, a.partition_id), (-1, true, 0));
}

#[test]
fn a_hand_assembled_ack_decodes_the_same() {
    // type 4; binlog_sync { node { "10.0.0.2", 9221 }, "db0", 0, {0, 300}, {0, 600}, 2, false }.
    let body: &[u8] = &[
        0x08, 0x04, 0x2a, 0x28, 0x0a, 0x0d, 0x0a, 0x08, b'1', b'0', b'.', b'0', b'.', b'0', b'.',
        b'2', 0x10, 0x85, 0x48, 0x12, 0x03, b'd', b'b', b'0', 0x18, 0x00, 0x22, 0x05, 0x08, 0x00,
        0x10, 0xac, 0x02, 0x2a, 0x05, 0x08, 0x00, 0x10, 0xd8, 0x04, 0x30, 0x02, 0x38, 0x00,
    ];
    fast_agrees(body);
    let a = decode_binlog_ack(body).unwrap();
    assert_eq!((a.start.offset, a.end.offset, a.session_id), (300, 600, 2));
}

#[test]
fn anything_else_goes_to_prost() {
    let base = ack("db0", off(0, 10, None), off(0, 20, None), 1, false);
    // A long table name, an unknown field, a repeated field: prost reads them, the fast path not.
    let long = ack(
        "x".repeat(40).as_str(),
        off(0, 10, None),
        off(0, 20, None),
        1,
        false,
    );
    let mut unknown = base.clone();
    unknown.extend_from_slice(&[0x48, 0x01]); // field 9, varint
    let mut twice = base.clone();
    twice.extend_from_slice(&[0x08, 0x04]); // type again
    for body in [&long, &unknown, &twice] {
        assert!(decode_binlog_ack(body).is_none());
        assert!(matches!(decode(body).unwrap(), Request::Other(_)));
        same_as_prost(body);
    }
    // Another request.
    let meta = InnerRequest {
        r#type: Type::KMetaSync as i32,
        meta_sync: Some(inner_request::MetaSync {
            node: Node {
                ip: "10.0.0.2".into(),
                port: 9221,
            },
            auth: None,
        }),
        ..Default::default()
    };
    let body = meta.encode_to_vec();
    assert_eq!(decode(&body).unwrap(), Request::Other(Box::new(meta)));
    let try_sync = InnerRequest {
        r#type: Type::KTrySync as i32,
        try_sync: Some(inner_request::TrySync {
            node: Node::default(),
            partition: Partition::default(),
            binlog_offset: off(0, 0, None),
        }),
        ..Default::default()
    };
    assert!(decode_binlog_ack(&try_sync.encode_to_vec()).is_none());
}

#[test]
fn malformed_acks_give_prosts_errors() {
    let body = ack(
        "db0",
        off(2, 300, Some((1, 9))),
        off(2, 900, Some((1, 12))),
        -1,
        false,
    );
    for n in 0..body.len() {
        same_as_prost(&body[..n]);
    }
    for i in 0..body.len() {
        for v in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff] {
            let mut b = body.clone();
            b[i] = v;
            same_as_prost(&b);
            b[i] = body[i] ^ v;
            same_as_prost(&b);
        }
    }
    // Without the node, or with a non-UTF-8 table name: errors, the same as before.
    for bad in [
        &[0x08, 0x04, 0x2a, 0x00][..],
        &[0x08, 0x04, 0x2a, 0x05, 0x12, 0x03, 0xff, 0xfe, 0xfd][..],
        &[0xff, 0xff, 0xff][..],
    ] {
        assert!(decode(bad).is_err());
        same_as_prost(bad);
    }
}

/// Every request the real 3.1.1, 3.2.9 and 3.3.6 slaves sent in the recordings decodes through
/// the fast path or prost exactly as prost alone decodes it, and the real slaves' BinlogSync acks
/// do take the fast path.
#[test]
fn recorded_slave_requests_decode_as_prost_decodes_them() {
    for version in ["3.1.1", "3.2.9", "3.3.6"] {
        let mut acks = 0;
        for stream in ["03-pb-incremental", "06-pb-force-fullsync-then-w2"] {
            let buf = vectors::read(&format!("pika-{version}/streams/{stream}.c2s.bin"));
            let mut pos = 0;
            while pos < buf.len() {
                let (body, used) = split_frame(&buf[pos..], 1 << 30).unwrap().unwrap();
                pos += used;
                let prost = decode_request(body).unwrap();
                match decode(body).unwrap() {
                    Request::Ack(a) => {
                        acks += 1;
                        assert_eq!(prost.r#type, Type::KBinlogSync as i32);
                        assert_eq!(a, BinlogAck::from(prost.binlog_sync.unwrap()), "{version}");
                    }
                    Request::Other(r) => assert_eq!(*r, prost, "{version} {stream}"),
                }
            }
        }
        assert!(acks > 0, "{version}: no recorded ack took the fast path");
    }
}
