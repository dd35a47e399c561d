#![no_main]
use libfuzzer_sys::fuzz_target;
use pika_relay::formats::pb;

fuzz_target!(|data: &[u8]| {
    let _ = pb::split_frame(data, 1 << 20);
    let _ = pb::decode_request(data);
    let _ = pb::decode_response(data);
});
