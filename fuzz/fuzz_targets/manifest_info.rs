#![no_main]
use libfuzzer_sys::fuzz_target;
use pika_relay::formats::info::DumpInfo;
use pika_relay::formats::manifest::{Manifest, ManifestLayout};

fuzz_target!(|data: &[u8]| {
    let _ = DumpInfo::parse(data);
    for l in [ManifestLayout::V23, ManifestLayout::V30, ManifestLayout::V31, ManifestLayout::V33] {
        let _ = Manifest::decode(data, l);
    }
});
