//! The two custom key orders of blackwidow (spec §5.4, §5.5), registered with RocksDB under their
//! exact names: without them RocksDB refuses to open `lists` and `zsets`, and a writer must sort
//! those column families in exactly this order.

use std::cmp::Ordering;

/// A key order (what a RocksDB comparator computes).
pub type KeyOrder = fn(&[u8], &[u8]) -> Ordering;

/// Name of the comparator of `lists/data_cf`.
pub const LISTS_DATA_KEY: &str = "blackwidow.ListsDataKeyComparator";
/// Name of the comparator of `zsets/score_cf`.
pub const ZSETS_SCORE_KEY: &str = "blackwidow.ZSetsScoreKeyComparator";

/// Splits `keylen:u32 | key | rest` (a short or hostile slice never panics: the key is clamped).
fn split_key(s: &[u8]) -> (&[u8], &[u8]) {
    if s.len() < 4 {
        return (s, &[]);
    }
    let n = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
    let end = 4usize.saturating_add(n).min(s.len());
    (&s[4..end], &s[end..])
}

/// `blackwidow.ListsDataKeyComparator`: key bytes (memcmp, then length), then version as signed
/// i32, then index as u64; a slice that ends earlier sorts first.
pub fn lists_data_key(a: &[u8], b: &[u8]) -> Ordering {
    let (ka, ra) = split_key(a);
    let (kb, rb) = split_key(b);
    match ka.cmp(kb) {
        Ordering::Equal => {}
        o => return o,
    }
    match (ra.is_empty(), rb.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    if ra.len() < 4 || rb.len() < 4 {
        return ra.cmp(rb);
    }
    let va = i32::from_le_bytes([ra[0], ra[1], ra[2], ra[3]]);
    let vb = i32::from_le_bytes([rb[0], rb[1], rb[2], rb[3]]);
    match va.cmp(&vb) {
        Ordering::Equal => {}
        o => return o,
    }
    let (ra, rb) = (&ra[4..], &rb[4..]);
    match (ra.is_empty(), rb.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    if ra.len() < 8 || rb.len() < 8 {
        return ra.cmp(rb);
    }
    let ia = u64::from_le_bytes(ra[..8].try_into().expect("8 bytes"));
    let ib = u64::from_le_bytes(rb[..8].try_into().expect("8 bytes"));
    ia.cmp(&ib).then_with(|| ra[8..].cmp(&rb[8..]))
}

/// `blackwidow.ZSetsScoreKeyComparator`: the raw `keylen | key | version` prefix (memcmp, then
/// length), then the score as a number, then the member bytes (memcmp, then length).
pub fn zsets_score_key(a: &[u8], b: &[u8]) -> Ordering {
    let pa = prefix_len(a);
    let pb = prefix_len(b);
    match a[..pa].cmp(&b[..pb]) {
        Ordering::Equal => {}
        o => return o,
    }
    let (ra, rb) = (&a[pa..], &b[pb..]);
    if ra.len() < 8 || rb.len() < 8 {
        return match (ra.len() < 8, rb.len() < 8) {
            (true, true) => ra.cmp(rb),
            (true, false) => Ordering::Less,
            _ => Ordering::Greater,
        };
    }
    let sa = f64::from_le_bytes(ra[..8].try_into().expect("8 bytes"));
    let sb = f64::from_le_bytes(rb[..8].try_into().expect("8 bytes"));
    if sa < sb {
        return Ordering::Less;
    }
    if sa > sb {
        return Ordering::Greater;
    }
    ra[8..].cmp(&rb[8..])
}

fn prefix_len(s: &[u8]) -> usize {
    if s.len() < 4 {
        return s.len();
    }
    let n = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
    n.saturating_add(8).min(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_key(key: &[u8], version: i32, index: u64) -> Vec<u8> {
        let mut k = (key.len() as u32).to_le_bytes().to_vec();
        k.extend_from_slice(key);
        k.extend_from_slice(&version.to_le_bytes());
        k.extend_from_slice(&index.to_le_bytes());
        k
    }

    fn score_key(key: &[u8], version: i32, score: f64, member: &[u8]) -> Vec<u8> {
        let mut k = (key.len() as u32).to_le_bytes().to_vec();
        k.extend_from_slice(key);
        k.extend_from_slice(&version.to_le_bytes());
        k.extend_from_slice(&score.to_le_bytes());
        k.extend_from_slice(member);
        k
    }

    #[test]
    fn list_indices_order_as_u64_not_bytes() {
        // The recorded file order (spec §5.5): 0x7ff…fd < 0x7ff…ff < 0x800…00 < 0x800…01.
        let idx = [
            0x7FFF_FFFF_FFFF_FFFDu64,
            0x7FFF_FFFF_FFFF_FFFE,
            0x7FFF_FFFF_FFFF_FFFF,
            0x8000_0000_0000_0000,
            0x8000_0000_0000_0001,
        ];
        for w in idx.windows(2) {
            let (a, b) = (list_key(b"l", 7, w[0]), list_key(b"l", 7, w[1]));
            assert_eq!(lists_data_key(&a, &b), Ordering::Less);
            assert_eq!(lists_data_key(&b, &a), Ordering::Greater);
        }
        // Key bytes first (not the length prefix), then signed version.
        assert_eq!(
            lists_data_key(&list_key(b"ab", 1, 0), &list_key(b"b", 1, 0)),
            Ordering::Less
        );
        assert_eq!(
            lists_data_key(&list_key(b"a", -1, 9), &list_key(b"a", 1, 0)),
            Ordering::Less
        );
        assert_eq!(
            lists_data_key(b"\x01\0\0\0a", &list_key(b"a", 0, 0)),
            Ordering::Less
        );
    }

    #[test]
    fn zset_scores_order_numerically_after_the_raw_prefix() {
        // Recorded order: 1.0 one, 2.0 two, 3.5 three, 11.0 one.
        let keys = [
            score_key(b"z", 5, -1e13, b"m"),
            score_key(b"z", 5, 1.0, b"one"),
            score_key(b"z", 5, 2.0, b"two"),
            score_key(b"z", 5, 3.5, b"three"),
            score_key(b"z", 5, 11.0, b""),
            score_key(b"z", 5, 11.0, b"one"),
            score_key(b"z", 6, -5.0, b"a"),
            // Different key: the LE length byte decides first.
            score_key(b"aa", 0, 0.0, b"a"),
        ];
        for w in keys.windows(2) {
            assert_eq!(zsets_score_key(&w[0], &w[1]), Ordering::Less, "{w:?}");
            assert_eq!(zsets_score_key(&w[1], &w[0]), Ordering::Greater);
        }
        assert_eq!(
            zsets_score_key(
                &score_key(b"z", 1, 0.0, b"m"),
                &score_key(b"z", 1, -0.0, b"m")
            ),
            Ordering::Equal
        );
        // A bare prefix (a seek target) sorts before every member of its key and version.
        let mut p = score_key(b"z", 5, 0.0, b"");
        p.truncate(p.len() - 8);
        assert_eq!(zsets_score_key(&p, &keys[0]), Ordering::Less);
    }

    #[test]
    fn hostile_short_slices_do_not_panic() {
        for a in [&b""[..], b"\xff", b"\xff\xff\xff\xff", b"\x05\0\0\0ab"] {
            for b in [&b""[..], b"\x01\0\0\0a\x01"] {
                let _ = lists_data_key(a, b);
                let _ = zsets_score_key(a, b);
            }
        }
    }
}
