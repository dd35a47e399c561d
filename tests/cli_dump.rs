//! `pika-relay inspect dump` and `pika-relay convert-dump` on the recorded real dumps, through
//! the built binary.

#[path = "support/vectors.rs"]
mod vectors;

use std::collections::BTreeMap;
use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dump_time(v: &str) -> i64 {
    let text = String::from_utf8(vectors::read(&format!("pika-{v}/phases.txt"))).unwrap();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.contains("full sync") {
            return lines.next().unwrap().trim().parse::<f64>().unwrap() as i64;
        }
    }
    panic!()
}

fn b64(s: &str) -> Vec<u8> {
    let alpha = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        bits = bits << 6 | alpha.iter().position(|a| *a == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// (key, type) → the whole JSON object, from JSONL.
fn jsonl(text: &str) -> BTreeMap<(Vec<u8>, String), serde_json::Value> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let k = b64(v["key"].as_str().unwrap());
            ((k, v["type"].as_str().unwrap().to_string()), v)
        })
        .collect()
}

fn dump_dir(v: &str) -> String {
    vectors::dir()
        .join(format!("pika-{v}/master-dump"))
        .display()
        .to_string()
}

#[test]
fn inspect_dump_jsonl_reproduces_each_recorded_dump() {
    for v in ["2.3.6", "3.0.16", "3.1.1", "3.2.9", "3.3.6"] {
        let at = (dump_time(v) * 1000).to_string();
        let (ok, out, err) = run(&[
            "inspect",
            "dump",
            &dump_dir(v),
            "--format",
            "jsonl",
            "--at-ms",
            &at,
        ]);
        assert!(ok, "{v}: {err}");
        let keys = jsonl(&out);
        assert_eq!(keys.len(), out.lines().count(), "{v}: one line per key");
        let get = |k: &str, t: &str| {
            keys.get(&(k.as_bytes().to_vec(), t.to_string()))
                .unwrap_or_else(|| panic!("{v}: {k}"))
        };
        let l = get("l", "list");
        let items: Vec<Vec<u8>> = l["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| b64(x.as_str().unwrap()))
            .collect();
        assert_eq!(
            items,
            vec![b"b".to_vec(), b"a".to_vec(), b"x".to_vec(), b"y".to_vec()],
            "{v}"
        );
        let z = &get("z", "zset")["value"];
        assert_eq!(b64(z[0][0].as_str().unwrap()), b"three", "{v}: score order");
        assert_eq!(z[0][1].as_f64(), Some(3.5));
        assert_eq!(z[1][1].as_f64(), Some(11.0));
        let h = &get("h", "hash")["value"];
        let fields: Vec<Vec<u8>> = h
            .as_array()
            .unwrap()
            .iter()
            .map(|p| b64(p[0].as_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            vec![b"f1".to_vec(), b"f2".to_vec(), b"n".to_vec()],
            "{v}"
        );
        let bin = &keys[&(b"bin\x00key\r\n\xff".to_vec(), "string".to_string())];
        assert_eq!(
            b64(bin["value"].as_str().unwrap()),
            b"bin\x00value",
            "{v}: binary-safe"
        );
        let big = get("big", "string");
        assert_eq!(b64(big["value"].as_str().unwrap()).len(), 153_600);
        assert!(get("str:ex", "string")["expire_at_ms"].as_i64().unwrap() > dump_time(v) * 1000);
        assert!(get("persist", "string")["expire_at_ms"].is_null());
        assert!(
            !keys.keys().any(|(k, _)| k == b"del:me"),
            "{v}: deleted key"
        );
    }
}

#[test]
fn inspect_dump_text_names_type_key_ttl_and_sizes() {
    let at = (dump_time("3.2.9") * 1000).to_string();
    let (ok, out, err) = run(&["inspect", "dump", &dump_dir("3.2.9"), "--at-ms", &at]);
    assert!(ok, "{err}");
    assert!(out.contains("blackwidow (3.1+)"), "{out}");
    assert!(
        out.contains("string big ttl=- len=153600 bytes=153600"),
        "{out}"
    );
    assert!(out.contains("list l ttl=- members=4 bytes=4"), "{out}");
    let (ok, out, _) = run(&[
        "inspect",
        "dump",
        &dump_dir("2.3.6"),
        "--values",
        "--at-ms",
        &at,
    ]);
    assert!(ok);
    assert!(
        out.contains("  3.5 three") && out.contains("  11.0 one"),
        "{out}"
    );
    let (ok, _, err) = run(&["inspect", "dump", "/nonexistent-dir"]);
    assert!(!ok && err.contains("not a directory"), "{err}");
}

#[test]
fn convert_dump_keeps_every_key_value_and_expiry_instant_of_a_2_3_dump() {
    let t = tempfile::tempdir().unwrap();
    let at = (dump_time("2.3.6") * 1000).to_string();
    let (_, src, _) = run(&[
        "inspect",
        "dump",
        &dump_dir("2.3.6"),
        "--format",
        "jsonl",
        "--at-ms",
        &at,
    ]);
    for (ver, inner) in [("3.2", "db0/strings"), ("3.0", "strings")] {
        let out = t.path().join(ver);
        // Converted "now": the recorded TTL keys have run out, so convert at dump time through
        // the library, and check the CLI separately below.
        let st = pika_relay::dump::convert::convert(
            &vectors::dir().join("pika-2.3.6/master-dump"),
            &out,
            if ver == "3.0" {
                pika_relay::dump::Engine::Blackwidow30
            } else {
                pika_relay::dump::Engine::Blackwidow31
            },
            dump_time("2.3.6") * 1000,
            None,
        )
        .unwrap();
        assert!(out.join(inner).join("CURRENT").is_file());
        assert!(out
            .join(if ver == "3.0" { "info" } else { "db0/info" })
            .is_file());
        let (ok, conv, err) = run(&[
            "inspect",
            "dump",
            out.to_str().unwrap(),
            "--format",
            "jsonl",
            "--at-ms",
            &at,
        ]);
        assert!(ok, "{err}");
        assert_eq!(
            jsonl(&conv),
            jsonl(&src),
            "{ver}: the converted dump holds exactly the 2.3 data"
        );
        assert_eq!(st.keys as usize, src.lines().count());
    }
    // The converted 2.3.6 data equals what a real 3.2.9 master held after the same workload
    // (values and which keys have a TTL; the instants differ: other wall clock).
    let at329 = (dump_time("3.2.9") * 1000).to_string();
    let (_, real, _) = run(&[
        "inspect",
        "dump",
        &dump_dir("3.2.9"),
        "--format",
        "jsonl",
        "--at-ms",
        &at329,
    ]);
    let strip = |m: BTreeMap<(Vec<u8>, String), serde_json::Value>| -> BTreeMap<_, _> {
        m.into_iter()
            .map(|(k, v)| (k, (v["value"].clone(), v["expire_at_ms"].is_null())))
            .collect()
    };
    let ours = strip(jsonl(
        &String::from_utf8(
            Command::new(env!("CARGO_BIN_EXE_pika-relay"))
                .args([
                    "inspect",
                    "dump",
                    t.path().join("3.2").to_str().unwrap(),
                    "--format",
                    "jsonl",
                    "--at-ms",
                    &at,
                ])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    ));
    let theirs = strip(jsonl(&real));
    // 2.3.6 has no PSETEX: that one key is missing there.
    let mut theirs_wo = theirs.clone();
    theirs_wo.remove(&(b"str:psetex".to_vec(), "string".to_string()));
    assert_eq!(ours, theirs_wo);

    // The CLI converts at the wall clock: the recorded TTL keys are gone, the rest is there.
    let out = t.path().join("cli");
    let (ok, msg, err) = run(&[
        "convert-dump",
        "--from",
        &dump_dir("2.3.6"),
        "--to",
        out.to_str().unwrap(),
        "--pika-version",
        "3.3",
    ]);
    assert!(ok, "{err}");
    assert!(
        msg.contains("converted") && msg.contains("nemo (2.3)"),
        "{msg}"
    );
    let (_, now_keys, _) = run(&[
        "inspect",
        "dump",
        out.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    let now_keys = jsonl(&now_keys);
    assert!(now_keys.values().all(|v| v["expire_at_ms"].is_null()));
    assert_eq!(
        now_keys.len(),
        jsonl(&src)
            .values()
            .filter(|v| v["expire_at_ms"].is_null())
            .count()
    );
    // Refused: converting into a non-empty directory.
    let (ok, _, err) = run(&[
        "convert-dump",
        "--from",
        &dump_dir("2.3.6"),
        "--to",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("not empty"), "{err}");
}
