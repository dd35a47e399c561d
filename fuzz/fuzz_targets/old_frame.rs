#![no_main]
use libfuzzer_sys::fuzz_target;
use pika_relay::formats::old_frame::decode_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = decode_frame(data, 1 << 20) {
        assert!(used <= data.len());
    }
});
