//! Every rule of `translate`, with TTL arithmetic at its boundaries and binary-safe arguments.

use pika_relay::formats::BinlogPos;
use pika_relay::pipeline::OldEntry;
use pika_relay::translate::{
    parse_i64_strict, Policy, TranslateConfig, TranslateError, Translator,
};

fn entry(t: u32, cmds: &[&[&[u8]]]) -> OldEntry {
    OldEntry {
        start: BinlogPos::new(0, 0),
        end: BinlogPos::new(0, 10),
        exec_time: t,
        server_id: 1,
        commands: cmds
            .iter()
            .map(|c| c.iter().map(|a| a.to_vec()).collect())
            .collect(),
    }
}

fn tr_cfg(cfg: TranslateConfig, t: u32, cmd: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
    let out = Translator::new(cfg).translate(&entry(t, &[cmd])).unwrap();
    assert!(out.iter().all(|e| e.exec_time == t));
    out.into_iter().map(|e| e.argv).collect()
}

fn tr(t: u32, cmd: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
    tr_cfg(TranslateConfig::default(), t, cmd)
}

fn v(args: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
    vec![args.iter().map(|a| a.to_vec()).collect()]
}

const T: u32 = 1_795_313_939;

#[test]
fn set_ex_px_become_pksetexat() {
    assert_eq!(
        tr(T, &[b"set", b"k", b"v", b"ex", b"1000"]),
        v(&[b"pksetexat", b"k", b"1795314939", b"v"])
    );
    assert_eq!(
        tr(T, &[b"SET", b"k", b"v", b"EX", b"1000"]),
        v(&[b"pksetexat", b"k", b"1795314939", b"v"])
    );
    assert_eq!(
        tr(T, &[b"set", b"k", b"v", b"px", b"1000000"]),
        v(&[b"pksetexat", b"k", b"1795314939", b"v"])
    );
    // PX is truncated to whole seconds, possibly to now+0.
    assert_eq!(
        tr(T, &[b"set", b"k", b"v", b"Px", b"999"]),
        v(&[b"pksetexat", b"k", b"1795313939", b"v"])
    );
    assert_eq!(
        tr(T, &[b"set", b"k", b"v", b"px", b"1999"]),
        v(&[b"pksetexat", b"k", b"1795313940", b"v"])
    );
    // The last EX/PX wins, as in SetCmd::DoInitial.
    assert_eq!(
        tr(T, &[b"set", b"k", b"v", b"ex", b"10", b"px", b"5000"]),
        v(&[b"pksetexat", b"k", b"1795313944", b"v"])
    );
}

#[test]
fn set_with_conditions_or_plain_is_verbatim() {
    for cmd in [
        &[b"set".as_ref(), b"k", b"v", b"nx", b"ex", b"10"][..],
        &[b"set", b"k", b"v", b"ex", b"10", b"XX"],
        &[b"set", b"k", b"v", b"vx", b"old", b"ex", b"10"],
        &[b"SET", b"k", b"v"],
        &[b"set", b"k", b"v", b"nx"],
    ] {
        assert_eq!(tr(T, cmd), v(cmd), "{cmd:?}");
    }
}

#[test]
fn malformed_relative_forms_are_skipped() {
    for cmd in [
        &[b"set".as_ref(), b"k", b"v", b"ex", b"0"][..],
        &[b"set", b"k", b"v", b"ex", b"-5"],
        &[b"set", b"k", b"v", b"ex", b"abc"],
        &[b"set", b"k", b"v", b"ex"],
        &[b"set", b"k", b"v", b"bogus"],
        &[b"set", b"k", b"v", b"vx"],
        &[b"setex", b"k", b"+5", b"v"],
        &[b"setex", b"k", b"5"],
        &[b"psetex", b"k", b"007", b"v"],
        &[b"expire", b"k"],
        &[b"pexpire", b"k", b"1.5"],
        &[b"pexpireat", b"k", b" 1"],
        &[b"flushall", b"x"],
        &[b"flushdb", b"a", b"b"],
    ] {
        let mut t = Translator::default();
        assert!(
            t.translate(&entry(T, &[cmd])).unwrap().is_empty(),
            "{cmd:?}"
        );
        assert_eq!(t.stats().skipped, 1);
    }
}

#[test]
fn setex_psetex_int32_arithmetic() {
    assert_eq!(
        tr(T, &[b"setex", b"k", b"1000", b"v"]),
        v(&[b"pksetexat", b"k", b"1795314939", b"v"])
    );
    assert_eq!(
        tr(T, &[b"SETEX", b"k", b"0", b"v"]),
        v(&[b"pksetexat", b"k", b"1795313939", b"v"])
    );
    assert_eq!(
        tr(T, &[b"setex", b"k", b"-5", b"v"]),
        v(&[b"pksetexat", b"k", b"1795313934", b"v"])
    );
    assert_eq!(
        tr(T, &[b"psetex", b"k", b"1000000", b"v"]),
        v(&[b"pksetexat", b"k", b"1795314939", b"v"])
    );
    // C division truncates toward zero.
    assert_eq!(
        tr(T, &[b"psetex", b"k", b"-1500", b"v"]),
        v(&[b"pksetexat", b"k", b"1795313938", b"v"])
    );
    // int32_t time_stamp = time + sec: wraps at the i32 limit like 3.2.9 does.
    assert_eq!(
        tr(i32::MAX as u32, &[b"setex", b"k", b"1", b"v"]),
        v(&[b"pksetexat", b"k", b"-2147483648", b"v"])
    );
    assert_eq!(
        tr(i32::MAX as u32 - 1, &[b"setex", b"k", b"1", b"v"]),
        v(&[b"pksetexat", b"k", b"2147483647", b"v"])
    );
    assert_eq!(
        tr(u32::MAX, &[b"setex", b"k", b"10", b"v"]),
        v(&[b"pksetexat", b"k", b"9", b"v"])
    );
    assert_eq!(
        tr(T, &[b"setex", b"k", b"9223372036854775807", b"v"]),
        v(&[
            b"pksetexat",
            b"k",
            (i64::from(T).wrapping_add(i64::MAX) as i32)
                .to_string()
                .as_bytes(),
            b"v"
        ])
    );
}

#[test]
fn expire_family_int64_arithmetic() {
    assert_eq!(
        tr(T, &[b"expire", b"k", b"1000"]),
        v(&[b"expireat", b"k", b"1795314939"])
    );
    assert_eq!(
        tr(T, &[b"EXPIRE", b"k", b"-1"]),
        v(&[b"expireat", b"k", b"1795313938"])
    );
    assert_eq!(
        tr(u32::MAX, &[b"expire", b"k", b"1000"]),
        v(&[b"expireat", b"k", b"4294968295"])
    );
    assert_eq!(
        tr(T, &[b"pexpire", b"k", b"1000000"]),
        v(&[b"expireat", b"k", b"1795314939"])
    );
    assert_eq!(
        tr(T, &[b"pexpire", b"k", b"999"]),
        v(&[b"expireat", b"k", b"1795313939"])
    );
    assert_eq!(
        tr(T, &[b"pexpireat", b"k", b"1795317539999"]),
        v(&[b"expireat", b"k", b"1795317539"])
    );
    assert_eq!(
        tr(T, &[b"pexpireat", b"k", b"-1500"]),
        v(&[b"expireat", b"k", b"-1"])
    );
    // Already absolute forms pass verbatim.
    assert_eq!(
        tr(T, &[b"expireat", b"k", b"5"]),
        v(&[b"expireat", b"k", b"5"])
    );
    assert_eq!(
        tr(T, &[b"pksetexat", b"k", b"5", b"v"]),
        v(&[b"pksetexat", b"k", b"5", b"v"])
    );
}

#[test]
fn flush_spop_padding_setnx_policies() {
    assert_eq!(tr(T, &[b"flushall"]), v(&[b"flushdb"]));
    assert_eq!(tr(T, &[b"FLUSHDB"]), v(&[b"FLUSHDB"]));
    let pass = TranslateConfig::default();
    let skip = TranslateConfig {
        spop: Policy::Skip,
        flushdb_type: Policy::Skip,
    };
    let reject = TranslateConfig {
        spop: Policy::Reject,
        flushdb_type: Policy::Reject,
    };
    for cmd in [
        &[b"flushdb".as_ref(), b"hash"][..],
        &[b"spop", b"s"],
        &[b"SPOP", b"s", b"3"],
    ] {
        assert_eq!(tr_cfg(pass, T, cmd), v(cmd));
        assert!(tr_cfg(skip, T, cmd).is_empty());
        let e = Translator::new(reject)
            .translate(&entry(T, &[cmd]))
            .unwrap_err();
        assert!(matches!(e, TranslateError::Rejected { .. }));
    }
    let mut t = Translator::default();
    let pad = entry(0, &[&[b"padding", b"*****"]]);
    assert!(t.translate(&pad).unwrap().is_empty());
    assert_eq!(t.stats().padding_dropped, 1);
    assert_eq!(tr(T, &[b"setnx", b"k", b"v"]), v(&[b"setnx", b"k", b"v"]));
}

#[test]
fn multi_set_records_become_one_mset() {
    let e = entry(
        T,
        &[
            &[b"set", b"m:1", b"a"],
            &[b"SET", b"m:2", b"b"],
            &[b"set", b"m:3", b"c"],
        ],
    );
    let mut t = Translator::default();
    let out = t.translate(&e).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].argv,
        v(&[b"mset", b"m:1", b"a", b"m:2", b"b", b"m:3", b"c"])[0]
    );
    // Mixed records are translated command by command.
    let e = entry(T, &[&[b"set", b"a", b"1"], &[b"setex", b"b", b"5", b"2"]]);
    let out: Vec<_> = Translator::default()
        .translate(&e)
        .unwrap()
        .into_iter()
        .map(|e| e.argv)
        .collect();
    assert_eq!(
        out,
        vec![
            v(&[b"set", b"a", b"1"])[0].clone(),
            v(&[b"pksetexat", b"b", b"1795313944", b"2"])[0].clone()
        ]
    );
    // A single set stays a set; an empty record gives nothing.
    assert_eq!(tr(T, &[b"set", b"a", b"1"]), v(&[b"set", b"a", b"1"]));
    assert!(Translator::default()
        .translate(&entry(T, &[]))
        .unwrap()
        .is_empty());
}

#[test]
fn binary_safe_and_verbatim_passthrough() {
    let key: &[u8] = b"bin\x00key\r\n\xff";
    let val: &[u8] = b"\r\n$3\r\n*1\x00\xfe";
    assert_eq!(
        tr(T, &[b"setex", key, b"10", val]),
        v(&[b"pksetexat", key, b"1795313949", val])
    );
    assert_eq!(
        tr(T, &[b"set", key, val, b"ex", b"1"]),
        v(&[b"pksetexat", key, b"1795313940", val])
    );
    assert_eq!(
        tr(T, &[b"pexpire", key, b"2000"]),
        v(&[b"expireat", key, b"1795313941"])
    );
    for cmd in [
        &[b"incr".as_ref(), b"cnt"][..],
        &[b"incrby", b"cnt", b"41"],
        &[b"set", b"cnt", b"42"],
        &[b"hset", key, val, val],
        &[b"mset", b"a", b"1"],
        &[b"msetnx", b"a", b"1", b"b", b"2"],
        &[b"Append", key, val],
    ] {
        assert_eq!(tr(T, cmd), v(cmd));
    }
}

#[test]
fn strict_integer_syntax() {
    assert_eq!(parse_i64_strict(b"0"), Some(0));
    assert_eq!(parse_i64_strict(b"-1"), Some(-1));
    assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"+5",
        b"007",
        b"-0",
        b"1 ",
        b"9223372036854775808",
        b"1e3",
        b"-9223372036854775809",
    ] {
        assert_eq!(
            parse_i64_strict(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
