//! Workloads for `demo`, the end-to-end tests and the load harness: client commands of every
//! data type, including the forms old masters rewrite (relative TTLs, `setnx`, `mset`, `incr`),
//! binary keys and values, and a value spanning several 64 KiB blocks.

/// One client command.
pub type Command = Vec<Vec<u8>>;

fn c(parts: &[&[u8]]) -> Command {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// The commands of round `tag`: every data type once, keys prefixed with `tag`.
pub fn every_type(tag: &str) -> Vec<Command> {
    let k = |s: &str| format!("{tag}:{s}").into_bytes();
    let big: Vec<u8> = (0..153_600usize).map(|i| ((i * 7) % 251) as u8).collect();
    let bin_key = [&k("bin")[..], b"\x00key\r\n\xff"].concat();
    vec![
        c(&[b"set", &k("str"), b"v1"]),
        c(&[b"SET", &k("str2"), b"v2"]),
        c(&[b"set", &k("ex"), b"v", b"ex", b"1000"]),
        c(&[b"setex", &k("setex"), b"1000", b"v"]),
        c(&[b"psetex", &k("psetex"), b"1000000", b"v"]),
        c(&[b"setnx", &k("nx"), b"first"]),
        c(&[b"setnx", &k("nx"), b"second"]),
        c(&[b"mset", &k("m1"), b"a", &k("m2"), b"b"]),
        c(&[b"incr", &k("cnt")]),
        c(&[b"incrby", &k("cnt"), b"41"]),
        c(&[b"decr", &k("cnt")]),
        c(&[b"append", &k("str"), b"-tail"]),
        c(&[b"set", &bin_key, b"bin\x00value\r\n"]),
        c(&[b"set", &k("big"), &big]),
        c(&[b"hset", &k("h"), b"f1", b"v1"]),
        c(&[b"hmset", &k("h"), b"f2", b"v2", b"f3", b"v3"]),
        c(&[b"hincrby", &k("h"), b"n", b"5"]),
        c(&[b"hdel", &k("h"), b"f3"]),
        c(&[b"lpush", &k("l"), b"a", b"b", b"c"]),
        c(&[b"rpush", &k("l"), b"x", b"y"]),
        c(&[b"lpop", &k("l")]),
        c(&[b"sadd", &k("s"), b"m1", b"m2", b"m3"]),
        c(&[b"srem", &k("s"), b"m2"]),
        c(&[
            b"zadd",
            &k("z"),
            b"1",
            b"one",
            b"2",
            b"two",
            b"3.5",
            b"three",
        ]),
        c(&[b"zincrby", &k("z"), b"10", b"one"]),
        c(&[b"zrem", &k("z"), b"two"]),
        c(&[b"set", &k("ttl"), b"v"]),
        c(&[b"expire", &k("ttl"), b"1000"]),
        // Pika stores expiry as i32 unix seconds: 2038-01-01, the far end it can hold.
        c(&[b"expireat", &k("h"), b"2145916800"]),
        c(&[b"set", &k("gone"), b"v"]),
        c(&[b"del", &k("gone")]),
    ]
}

/// `n` small `set`s (`<tag>:<i>` = 64 bytes), for load.
pub fn small_sets(tag: &str, n: usize) -> impl Iterator<Item = Command> + '_ {
    (0..n).map(move |i| {
        vec![
            b"set".to_vec(),
            format!("{tag}:{i}").into_bytes(),
            vec![b'x'; 64],
        ]
    })
}

/// `n` small writes of four kinds in turn, one new key each (`<tag>:<i>`): a 64-byte `set`, an
/// `hset` of one 64-byte field, an `lpush` of one 64-byte value and an `incr`. For load where not
/// every command is a plain `set`.
pub fn small_mixed(tag: &str, n: usize) -> impl Iterator<Item = Command> + '_ {
    (0..n).map(move |i| {
        let key = format!("{tag}:{i}").into_bytes();
        let v = vec![b'x'; 64];
        match i % 4 {
            0 => vec![b"set".to_vec(), key, v],
            1 => vec![b"hset".to_vec(), key, b"f".to_vec(), v],
            2 => vec![b"lpush".to_vec(), key, v],
            _ => vec![b"incr".to_vec(), key],
        }
    })
}
