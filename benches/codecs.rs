//! Codec throughput: old 3.0.x frames decoded and re-emitted as 3.x items (the relay's
//! per-entry work without I/O), and the 3.x binlog file writer, for `set k v` and 16 KiB values.
//! Each group also measures a plain memcpy of the same bytes as the baseline, so results can be
//! reported as ratios measured in the same run:
//!
//! `cargo bench --bench codecs`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pika_relay::formats::item::BinlogItem;
use pika_relay::formats::old_frame::{self, OldFrame};
use pika_relay::formats::{record, resp, BinlogPos};
use std::hint::black_box;

const N: usize = 1000;

fn frames(value_len: usize) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let mut stream = Vec::new();
    let mut pos = 0u64;
    for i in 0..N {
        let key = format!("key:{i}");
        let item = BinlogItem {
            exec_time: 1_700_000_000,
            server_id: 1,
            logic_id: i as u64,
            pos: BinlogPos::new(0, pos),
            content: resp::encode_argv(&[b"set".as_ref(), key.as_bytes(), &value]),
        };
        let body = item.encode();
        pos = record::record_end(pos, body.len() as u64);
        stream.extend_from_slice(&old_frame::encode_binlog(&body));
    }
    stream
}

/// Decode each frame, check its command, re-emit it as a 3.x item with the relay's own header.
fn translate_stream(stream: &[u8], out: &mut Vec<u8>) -> usize {
    let mut at = 0;
    let mut n = 0;
    let mut logic_id = 0;
    while at < stream.len() {
        let (frame, used) = old_frame::decode_frame(&stream[at..], old_frame::DEFAULT_MAX_BODY)
            .unwrap()
            .unwrap();
        if let OldFrame::Binlog { items, .. } = frame {
            for it in items {
                let argv = it.argv().unwrap();
                let new = BinlogItem {
                    exec_time: it.exec_time,
                    server_id: 1,
                    logic_id,
                    pos: BinlogPos::new(0, out.len() as u64),
                    content: resp::encode_argv(&argv),
                };
                new.encode_into(out);
                logic_id += 1;
                n += 1;
            }
        }
        at += used;
    }
    n
}

fn bench(c: &mut Criterion) {
    for (name, vlen) in [("small", 1usize), ("16KiB", 16 * 1024)] {
        let stream = frames(vlen);
        let mut g = c.benchmark_group(format!("old_frame_to_3x_item/{name}"));
        g.throughput(Throughput::Elements(N as u64));
        g.bench_function(BenchmarkId::new("translate", name), |b| {
            let mut out = Vec::with_capacity(stream.len() * 2);
            b.iter(|| {
                out.clear();
                black_box(translate_stream(&stream, &mut out))
            })
        });
        g.bench_function(BenchmarkId::new("baseline_memcpy", name), |b| {
            let mut out = Vec::with_capacity(stream.len() * 2);
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&stream));
                black_box(out.len())
            })
        });
        g.finish();

        let items: Vec<Vec<u8>> = (0..N)
            .map(|i| {
                BinlogItem {
                    content: resp::encode_argv(&[
                        b"set".as_ref(),
                        format!("k{i}").as_bytes(),
                        &vec![b'v'; vlen],
                    ]),
                    ..Default::default()
                }
                .encode()
            })
            .collect();
        let total: usize = items.iter().map(|i| i.len()).sum();
        let mut g = c.benchmark_group(format!("binlog_file_writer/{name}"));
        g.throughput(Throughput::Bytes(total as u64));
        g.bench_function(BenchmarkId::new("encode_records", name), |b| {
            let mut out = Vec::with_capacity(total * 2);
            b.iter(|| {
                out.clear();
                let mut off = 0;
                for it in &items {
                    off = record::encode_record(off, it, 1_700_000_000, &mut out);
                }
                black_box(off)
            })
        });
        g.bench_function(BenchmarkId::new("baseline_memcpy", name), |b| {
            let mut out = Vec::with_capacity(total * 2);
            b.iter(|| {
                out.clear();
                for it in &items {
                    out.extend_from_slice(it);
                }
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
