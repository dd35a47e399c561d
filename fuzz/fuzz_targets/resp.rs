#![no_main]
use libfuzzer_sys::fuzz_target;
use pika_relay::formats::resp;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((argv, used))) = resp::parse_argv(data) {
        assert!(used <= data.len());
        assert_eq!(resp::encode_argv(&argv).len(), resp::encoded_len(&argv));
    }
    let _ = resp::parse_reply(data);
});
