#![no_main]
use libfuzzer_sys::fuzz_target;
use pika_relay::formats::old_raw::{decode_message, decode_record};

fuzz_target!(|data: &[u8]| {
    let _ = decode_message(data);
    let _ = decode_record(data);
});
