//! rsync's file-name order (protocol >= 29), which both sides use to number entries.
//!
//! A path `c1/…/cn` is compared as the sequence `(DIR, c1/) … (DIR, c(n-1)/), last`, where
//! `last` is `(DIR, cn/)` for a directory and `(ITEM, cn)` otherwise; `.` is `(ITEM, "")`.
//! Elements compare by kind first (`ITEM < DIR`), then as unsigned bytes; a prefix sorts
//! first. We flatten that into one byte key: `kind ‖ bytes ‖ 0x00` per element (names
//! never contain NUL or `/` inside a component, so the flattening preserves the order).

use std::cmp::Ordering;

const ITEM: u8 = 1;
const DIR: u8 = 2;

/// The flattened sort key of a path.
pub fn sort_key(name: &[u8], is_dir: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 8);
    if name == b"." {
        k.extend_from_slice(&[ITEM, 0]);
        return k;
    }
    let mut comps = name.split(|&b| b == b'/').peekable();
    while let Some(c) = comps.next() {
        let last = comps.peek().is_none();
        if last && !is_dir {
            k.push(ITEM);
            k.extend_from_slice(c);
        } else {
            k.push(DIR);
            k.extend_from_slice(c);
            k.push(b'/');
        }
        k.push(0);
    }
    k
}

/// Compare two paths in rsync order.
pub fn compare(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> Ordering {
    sort_key(a, a_dir).cmp(&sort_key(b, b_dir))
}

/// Sort items in rsync order, given a projection to `(name, is_dir)`.
pub fn sort_by_name<T>(items: &mut [T], f: impl Fn(&T) -> (&[u8], bool)) {
    items.sort_by_cached_key(|t| {
        let (n, d) = f(t);
        sort_key(n, d)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(list: &[(&str, bool)]) -> Vec<String> {
        let mut v: Vec<(&str, bool)> = list.to_vec();
        sort_by_name(&mut v, |(n, d)| (n.as_bytes(), *d));
        v.into_iter()
            .map(|(n, d)| format!("{n}{}", if d { "/" } else { "" }))
            .collect()
    }

    #[test]
    fn capture_01_order() {
        assert_eq!(
            sorted(&[
                (".", true),
                ("b.txt", false),
                ("sub", true),
                ("a.txt", false)
            ]),
            ["./", "a.txt", "b.txt", "sub/"]
        );
    }

    #[test]
    fn files_before_dirs_and_slash_rule() {
        let got = sorted(&[
            ("sub2", true),
            ("sub", true),
            ("sub-a", true),
            ("sub/x", false),
            ("a", true),
            ("a.txt", false),
            ("a/b", false),
            ("z", false),
            ("sub-a/q", false),
            ("a0", false),
            ("\u{1}x", false),
            ("é", false),
            ("a.b", false),
            ("a-b", false),
        ]);
        assert_eq!(
            got,
            [
                "\u{1}x", "a-b", "a.b", "a.txt", "a0", "z", "é", "a/", "a/b", "sub-a/", "sub-a/q",
                "sub/", "sub/x", "sub2/"
            ]
        );
    }

    #[test]
    fn deep_tree_keeps_subtrees_contiguous() {
        let got = sorted(&[
            ("d/e", true),
            ("d/e/f", false),
            ("d/a", false),
            ("d", true),
            ("d/e/g", true),
            ("d/e/g/h", false),
        ]);
        assert_eq!(got, ["d/", "d/a", "d/e/", "d/e/f", "d/e/g/", "d/e/g/h"]);
    }
}
