//! A new dump epoch starts at a position (J_e) that (1) no slave of an earlier epoch can hold,
//! and (2) a new Pika slave can reach with `SetProducerStatus` after loading the dump: its
//! 64 KiB-block remainder is 0 or at least 69 (new spec §4.5), for every journal position the
//! epoch may start from.

use pika_relay::formats::padding::{producer_padding, PaddingStyle};
use pika_relay::formats::BinlogPos;
use pika_relay::journal::{JournalConfig, JournalWriter};
use pika_relay::pipeline::NewEntry;
use proptest::prelude::*;

fn entry(len: usize) -> NewEntry {
    NewEntry {
        exec_time: 1_700_000_000,
        argv: vec![b"set".to_vec(), b"k".to_vec(), vec![b'v'; len]],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn epoch_start_is_reachable_and_unreachable_from_before(sizes in prop::collection::vec(1usize..70_000, 0..6)) {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = JournalConfig::new(d.path());
        cfg.binlog_file_size = 100_000;
        let (mut w, _) = JournalWriter::open(cfg).unwrap();
        let mut up = 0u64;
        for s in &sizes {
            up += 100;
            w.append(BinlogPos::new(0, up), &[entry(*s)]).unwrap();
        }
        let before = w.sync().unwrap().end;
        let st = w.begin_epoch(BinlogPos::new(0, up + 1)).unwrap();
        prop_assert_eq!(st.epoch, 1);
        prop_assert!(st.epoch_start > before, "J_e {} not past the old end {}", st.epoch_start, before);
        let rem = st.epoch_start.offset % 65536;
        prop_assert!(rem == 0 || rem >= 69, "J_e {} has block remainder {}", st.epoch_start, rem);
        for style in [PaddingStyle::Items, PaddingStyle::Stars] {
            prop_assert_eq!(producer_padding(st.epoch_start.offset, style, 0).1, st.epoch_start.offset);
        }
        prop_assert_eq!(st.end, st.epoch_start);
        prop_assert!(w.journal().check(st.epoch_start).is_ok());
    }
}
