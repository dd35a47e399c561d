use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn pika_opts(protocol: u32) -> FlistOptions {
    FlistOptions {
        protocol,
        owner: true,
        group: true,
        devices: true,
        specials: true,
        links: true,
        checksum: false,
        checksum_len: 16,
        varint_flags: false,
    }
}

fn decode_all(opts: FlistOptions, bytes: &[u8]) -> (Vec<FileEntry>, FlistItem, usize) {
    let mut d = FlistDecoder::new(opts);
    let mut c = bytes;
    let mut v = vec![];
    loop {
        match d.decode(&mut c).unwrap() {
            FlistItem::Entry(e) => v.push(e),
            end => return (v, end, bytes.len() - c.len()),
        }
    }
}

#[test]
fn capture_01_list() {
    // MSG_DATA payload of capture 01 (header stripped).
    let b = hex("01012e00001065257d93ed41000000009805622e747874000800a48100009803737562000010ed4100009805612e747874000600a4810000000000");
    let (v, end, used) = decode_all(pika_opts(31), &b);
    assert_eq!(end, FlistItem::End);
    let names: Vec<_> = v.iter().map(|e| e.display()).collect();
    assert_eq!(names, [".", "b.txt", "sub", "a.txt"]);
    assert_eq!(v[1].size, 8);
    assert_eq!(v[1].mtime, 1704164645);
    assert!(v[2].is_dir() && v[1].is_file());
    let mut rest = &b[used..];
    assert!(decode_id_list(&mut rest).unwrap().is_empty());
    assert!(decode_id_list(&mut rest).unwrap().is_empty());
    assert!(rest.is_empty());
}

#[test]
fn capture_09_nsec_and_id_lists() {
    let b = hex("0520012e0000106b164e02f032157b29ed410000c0feffc0feff8420036f6e65000400f032157b29a48100000101842003737562000010f032157b29ed410000c0feffc0feff9c20066e6f72656164000700f032157b29008000009c20077375622f74776f000400f032157b29a48100000001066461656d6f6ec0feff066e6f626f64790001066461656d6f6ec0feff076e6f67726f757000");
    let (v, end, used) = decode_all(pika_opts(31), &b);
    assert_eq!(end, FlistItem::End);
    let names: Vec<_> = v.iter().map(|e| e.display()).collect();
    assert_eq!(names, [".", "one", "sub", "noread", "sub/two"]);
    assert_eq!(v[0].nsec, 695932210);
    let mut rest = &b[used..];
    let uids = decode_id_list(&mut rest).unwrap();
    assert_eq!(uids, [(1, b"daemon".to_vec()), (65534, b"nobody".to_vec())]);
    assert_eq!(decode_id_list(&mut rest).unwrap().len(), 2);
    assert!(rest.is_empty());
}

#[test]
fn capture_10_io_error_end_marker() {
    let (v, end, _) = decode_all(pika_opts(31), &hex("041001"));
    assert!(v.is_empty());
    assert_eq!(end, FlistItem::EndWithIoError(1));
}

#[test]
fn capture_07_single_file() {
    let (v, _, _) = decode_all(
        pika_opts(31),
        &hex("0108696e666f2e31323300160065257d93a48100000000000000"),
    );
    assert_eq!(v[0].display(), "info.123");
    assert_eq!(v[0].size, 22);
}

#[test]
fn unsafe_names() {
    for bad in [
        &b"../x"[..],
        b"/etc/x",
        b"a/../b",
        b"a//b",
        b"",
        b"a/./b",
        b"a\0b",
        b"x/..",
    ] {
        assert!(validate_name(bad).is_err(), "{:?}", bad);
    }
    for good in [&b"."[..], b"a", b"a/b", b"..a", b"a..", "é/ü".as_bytes()] {
        assert!(validate_name(good).is_ok());
    }
}

#[test]
fn capture_20_varint_flags_list() {
    // Capture 20 (stock 3.5.0 pair, compat 0x1ff): the first file-list frame's payload.
    // Flags are varints (`8c 01` = 0x0c01), and the list ends with varint 0 + io_error 0.
    let b = hex("8c01012e00001065257d93ed4100000004726f6f740004726f6f74809805622e747874000800a4810000809803737562000010ed410000809805612e747874000600a48100000000");
    let opts = FlistOptions {
        varint_flags: true,
        ..pika_opts(31)
    };
    let (v, end, used) = decode_all(opts, &b);
    assert_eq!(end, FlistItem::End);
    assert_eq!(used, b.len());
    let names: Vec<&[u8]> = v.iter().map(|e| &e.name[..]).collect();
    assert_eq!(names, [&b"."[..], b"b.txt", b"sub", b"a.txt"]);
    assert_eq!(v[0].flags, 0x0c01);
    assert_eq!((v[1].size, v[3].size), (8, 6));
    assert!(v[2].is_dir() && v[1].is_file());
    assert_eq!(v[1].mtime, v[0].mtime);
    // The end marker with an io_error, and flags beyond 16 bits (crtimes) are refused.
    let mut d = FlistDecoder::new(opts);
    assert_eq!(
        d.decode(&mut &[0u8, 5][..]).unwrap(),
        FlistItem::EndWithIoError(5)
    );
    assert!(d.decode(&mut &[0xc2u8, 0, 0, 0][..]).is_err());
    // The same flags byte without varint mode means something else entirely.
    let mut d = FlistDecoder::new(pika_opts(31));
    assert!(decode_all_checked(&mut d, &b).is_err());
}

fn decode_all_checked(d: &mut FlistDecoder, bytes: &[u8]) -> Result<()> {
    let mut c = bytes;
    while let FlistItem::Entry(_) = d.decode(&mut c)? {}
    if c.is_empty() {
        Ok(())
    } else {
        Err(ProtoError::invalid("trailing bytes"))
    }
}

proptest! {
    #[test]
    fn encode_decode_roundtrip(names in proptest::collection::vec("[a-z.é]{1,20}(/[a-z0-9]{1,8}){0,3}", 1..20), size in 0i64..(1 << 40), mtime in any::<i32>()) {
        let mut out = vec![];
        let entries: Vec<FileEntry> = names.iter().map(|n| FileEntry { name: n.as_bytes().to_vec(), size, mtime: i64::from(mtime), mode: 0o100644, ..Default::default() }).collect();
        for e in &entries { encode_entry(&mut out, e, false); }
        out.push(0);
        let opts = FlistOptions { protocol: 31, ..Default::default() };
        let (got, end, used) = decode_all(opts, &out);
        prop_assert_eq!(end, FlistItem::End);
        prop_assert_eq!(used, out.len());
        for (g, e) in got.iter().zip(&entries) {
            prop_assert_eq!(&g.name, &e.name);
            prop_assert_eq!(g.size, e.size);
            prop_assert_eq!(g.mtime, e.mtime);
            prop_assert_eq!(g.mode, e.mode);
        }
    }

    #[test]
    fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200), proto in 30u32..=31) {
        let mut d = FlistDecoder::new(pika_opts(proto));
        let mut c = &b[..];
        for _ in 0..50 {
            match d.decode(&mut c) { Ok(FlistItem::Entry(_)) => {}, _ => break }
        }
        let _ = decode_id_list(&mut &b[..]);
    }
}
