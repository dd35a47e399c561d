#![no_main]
use libfuzzer_sys::fuzz_target;
use pika_relay::formats::binlog_file::{decode_file, Flavor};
use pika_relay::formats::item::BinlogItem;

fuzz_target!(|data: &[u8]| {
    let _ = decode_file(data, 0, Flavor::Auto);
    let _ = decode_file(data, 0, Flavor::Old);
    let _ = BinlogItem::decode_many(data);
});
