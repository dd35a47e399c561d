//! The recorded real Pika pushes (tests/vectors/*/streams/*rsync-*, copied from the shared recordings): Debian rsync 3.2.7
//! client against a stock 3.2.7 daemon, protocol 32. We parse the text phase and the argument
//! list with our codecs (and accept the arguments), then walk every multiplexed frame of both
//! directions to the end. The file-list contents are not decoded: at protocol 32 with compat
//! flags 0x1FF (varint flags, inline names, incremental recursion) they diverge from the
//! protocol-31/compat-0 layout we serve.

use std::path::{Path, PathBuf};

use pika_relay::rsync::args::parse_server_args;
use pika_relay::rsync::handshake::{parse_greeting, parse_module_line, ModuleRequest};
use pika_relay::rsync::mux::{decode_control, decode_header, tag};
use pika_relay::rsync::wire::{get_varint, get_vstring, take};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn line<'a>(c: &mut &'a [u8]) -> &'a str {
    let i = c.iter().position(|&b| b == b'\n').expect("newline");
    let l = std::str::from_utf8(&c[..i]).unwrap();
    *c = &c[i + 1..];
    l
}

/// Walk frames to the end; returns the concatenated MSG_DATA payload and the other tags seen.
fn frames(mut c: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut data, mut tags) = (vec![], vec![]);
    while !c.is_empty() {
        let h = take(&mut c, 4).expect("whole frame header");
        let (t, len) = decode_header([h[0], h[1], h[2], h[3]]).unwrap();
        let p = take(&mut c, len).expect("whole frame payload");
        if t == tag::DATA {
            data.extend_from_slice(p);
        } else {
            decode_control(t, p).unwrap();
            tags.push(t);
        }
    }
    (data, tags)
}

struct Push {
    name: String,
    args: Vec<String>,
    data: Vec<u8>,
}

fn parse_pair(c2s: &[u8], s2c: &[u8], name: &str) -> Push {
    // Server side: greeting, [AUTHREQD], OK, compat varint, checksum list, seed, frames.
    let mut s = s2c;
    let g = parse_greeting(line(&mut s)).unwrap();
    assert_eq!(
        (g.protocol, g.digests.as_deref()),
        (32, Some("sha512 sha256 sha1 md5 md4")),
        "{name}"
    );
    let mut l = line(&mut s);
    let auth = l.starts_with("@RSYNCD: AUTHREQD ");
    if auth {
        l = line(&mut s);
    }
    assert_eq!(l, "@RSYNCD: OK", "{name}");
    assert_eq!(get_varint(&mut s).unwrap(), 0x1FF, "{name}: compat flags");
    assert_eq!(
        get_vstring(&mut s, 256).unwrap(),
        b"xxh128 xxh3 xxh64 md5 md4 sha1 none"
    );
    take(&mut s, 4).unwrap(); // seed
    let (sdata, _) = frames(s);
    assert_eq!(
        sdata.last(),
        Some(&0),
        "{name}: the daemon's goodbye NDX_DONE"
    );

    // Client side: greeting, module, [auth], args, checksum list, frames.
    let mut c = c2s;
    assert_eq!(parse_greeting(line(&mut c)).unwrap().protocol, 32);
    let ModuleRequest::Module(module) = parse_module_line(line(&mut c)) else {
        panic!("{name}: module line")
    };
    assert!(module.starts_with("document"), "{name}: {module}");
    if auth {
        let l = line(&mut c);
        let (user, resp) = l.split_once(' ').unwrap();
        assert_eq!(
            (user, resp.len()),
            ("rsync_user", 86),
            "{name}: sha512 response"
        );
    }
    let mut args = vec![];
    loop {
        let i = c.iter().position(|&b| b == 0).unwrap();
        let a = String::from_utf8(c[..i].to_vec()).unwrap();
        c = &c[i + 1..];
        if a.is_empty() {
            break;
        }
        args.push(a);
    }
    assert_eq!(
        get_vstring(&mut c, 256).unwrap(),
        b"xxh128 xxh3 xxh64 md5 md4 sha1"
    );
    let (data, tags) = frames(c);
    assert!(
        tags.iter().all(|&t| t == tag::NOOP || t == tag::INFO),
        "{name}: {tags:?}"
    );
    assert_eq!(
        &data[data.len() - 1..],
        &[0],
        "{name}: sender's last NDX_DONE"
    );
    Push {
        name: name.into(),
        args,
        data,
    }
}

fn pushes(version: &str, prefix: &str) -> Vec<Push> {
    let dir = vectors().join(version).join("streams");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("vectors missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".s2c.bin"))
        .collect();
    names.sort();
    let mut out = vec![];
    for n in names {
        let stem = n.trim_end_matches(".s2c.bin");
        let s2c = std::fs::read(dir.join(&n)).unwrap();
        let c2s = std::fs::read(dir.join(format!("{stem}.c2s.bin"))).unwrap_or_default();
        if c2s.is_empty() {
            // Connect-only probe: the daemon's greeting went out anyway.
            assert!(stem.ends_with("probe"), "{stem}");
            let mut s = &s2c[..];
            assert_eq!(parse_greeting(line(&mut s)).unwrap().protocol, 32);
            assert!(s.is_empty());
            continue;
        }
        out.push(parse_pair(&c2s, &s2c, stem));
    }
    out
}

fn check(version: &str, prefix: &str, dest_prefix: &str, types: [&str; 5], bwlimit: &str) {
    let p = pushes(version, prefix);
    assert_eq!(p.len(), 11, "{version}: 5 pushes, 5 delete passes, info");
    for push in &p {
        let a = parse_server_args(&push.args)
            .unwrap_or_else(|e| panic!("{}: {:?} refused: {e}", push.name, push.args));
        assert_eq!(a.client_info, ".iLsfxCIvu");
        assert!(a.recursive && a.links && a.owner && a.group && a.devices && a.times && a.perms);
        assert_eq!(a.paths.len(), 1);
        assert!(
            a.paths[0].starts_with(dest_prefix),
            "{}: {}",
            push.name,
            a.paths[0]
        );
        // Delete passes send the (empty) filter list first; the others start with the file list.
        assert_eq!(push.data[..4] == [0, 0, 0, 0], a.delete, "{}", push.name);
        if !a.delete {
            assert!(
                push.args.contains(&format!("--bwlimit={bwlimit}")),
                "{}",
                push.name
            );
        }
    }
    let deletes: Vec<_> = p
        .iter()
        .filter(|x| x.args.contains(&"--delete".to_string()))
        .collect();
    assert_eq!(deletes.len(), 5);
    for ty in types {
        assert!(
            p.iter()
                .any(|x| x.args.last().unwrap().ends_with(&format!("/{ty}/"))),
            "{version}: {ty}"
        );
    }
    assert!(
        p.last().unwrap().args.last().unwrap().ends_with("/info"),
        "{version}: info last"
    );
}

#[test]
fn pika_3_0_16_pushes() {
    check(
        "pika-3.0.16",
        "06-rsync-",
        "document_127.0.0.1:29221/",
        ["strings", "hashes", "lists", "sets", "zsets"],
        "1048576",
    );
}

#[test]
fn pika_2_3_6_pushes() {
    check(
        "pika-2.3.6",
        "06-rsync-",
        "document_127.0.0.1:30021/",
        ["kv", "hash", "list", "set", "zset"],
        "128000",
    );
}

#[test]
fn pika_3_2_9_pushes() {
    check(
        "pika-3.2.9",
        "08-rsync-",
        "document/db0/",
        ["strings", "hashes", "lists", "sets", "zsets"],
        "1048576",
    );
}

#[test]
fn pika_3_1_1_and_3_3_6_pushes() {
    check(
        "pika-3.1.1",
        "08-rsync-",
        "document/db0/",
        ["strings", "hashes", "lists", "sets", "zsets"],
        "1048576",
    );
    check(
        "pika-3.3.6",
        "08-rsync-",
        "document/db0/",
        ["strings", "hashes", "lists", "sets", "zsets"],
        "1048576",
    );
}
