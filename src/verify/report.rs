//! Streaming a verification's findings as text lines or JSON lines, and its progress on a
//! terminal.

use super::{Finding, Sink, Summary};
use crate::formats::resp::escape;
use std::io::Write;
use std::time::Instant;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One human-readable line per finding, a summary at the end.
    Text,
    /// One JSON object per line: findings, then `{"kind":"summary",…}`.
    Jsonl,
}

/// A JSON string literal of `s`.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// One finding as a line (no newline).
pub fn finding_line(f: &Finding, format: Format) -> String {
    let names = |t: &[super::KType]| t.iter().map(|t| t.name()).collect::<Vec<_>>();
    match (format, f) {
        (Format::Text, Finding::Missing { key, types }) => {
            format!("MISSING   {} ({})", escape(key), names(types).join(", "))
        }
        (Format::Text, Finding::Extra { key, types }) => {
            format!(
                "EXTRA     {} ({}) only on the new side",
                escape(key),
                names(types).join(", ")
            )
        }
        (Format::Text, Finding::Different { key, diffs }) => {
            format!("DIFFERENT {}: {}", escape(key), diffs.join("; "))
        }
        (Format::Jsonl, Finding::Missing { key, types } | Finding::Extra { key, types }) => {
            let kind = if matches!(f, Finding::Missing { .. }) {
                "missing"
            } else {
                "extra"
            };
            let t: Vec<String> = names(types).iter().map(|n| json_str(n)).collect();
            format!(
                "{{\"kind\":\"{kind}\",\"key\":{},\"types\":[{}]}}",
                json_str(&escape(key)),
                t.join(",")
            )
        }
        (Format::Jsonl, Finding::Different { key, diffs }) => {
            let d: Vec<String> = diffs.iter().map(|x| json_str(x)).collect();
            format!(
                "{{\"kind\":\"different\",\"key\":{},\"diffs\":[{}]}}",
                json_str(&escape(key)),
                d.join(",")
            )
        }
    }
}

/// The summary as a line (no newline).
pub fn summary_line(s: &Summary, format: Format) -> String {
    let rate = s.checked as f64 / s.elapsed.as_secs_f64().max(1e-9);
    match format {
        Format::Text => format!(
            "{}: checked {} names in {:.1} s ({rate:.0}/s): equal {}, missing {}, different {}, extra {}; vanished during the walk {}, re-checked {}, skipped by sampling {}, names with several types {}",
            if s.is_equal() { "EQUAL" } else { "NOT EQUAL" },
            s.checked,
            s.elapsed.as_secs_f64(),
            s.equal,
            s.missing,
            s.different,
            s.extra,
            s.vanished,
            s.rechecked,
            s.skipped,
            s.shared_names
        ),
        Format::Jsonl => format!(
            "{{\"kind\":\"summary\",\"equal_sides\":{},\"scanned\":{},\"checked\":{},\"equal\":{},\"missing\":{},\"different\":{},\"extra\":{},\"vanished\":{},\"rechecked\":{},\"skipped\":{},\"shared_names\":{},\"seconds\":{:.3}}}",
            s.is_equal(),
            s.scanned,
            s.checked,
            s.equal,
            s.missing,
            s.different,
            s.extra,
            s.vanished,
            s.rechecked,
            s.skipped,
            s.shared_names,
            s.elapsed.as_secs_f64()
        ),
    }
}

/// Writes findings to `out` as they come; progress goes to stderr only when it is a terminal.
pub struct StreamSink<W: Write> {
    out: W,
    format: Format,
    progress: bool,
    last: Option<Instant>,
    /// The first write error, if any.
    pub error: Option<std::io::Error>,
}

impl<W: Write> StreamSink<W> {
    /// A sink writing `format` to `out`; `progress` = show progress on stderr.
    pub fn new(out: W, format: Format, progress: bool) -> Self {
        StreamSink {
            out,
            format,
            progress,
            last: None,
            error: None,
        }
    }

    /// Ends the progress line and writes the summary.
    pub fn finish(&mut self, s: &Summary) {
        if self.progress && self.last.is_some() {
            eprint!("\r\x1b[2K");
        }
        let line = summary_line(s, self.format);
        if let Err(e) = writeln!(self.out, "{line}").and_then(|_| self.out.flush()) {
            self.error.get_or_insert(e);
        }
    }
}

impl<W: Write> Sink for StreamSink<W> {
    fn finding(&mut self, f: &Finding) {
        let line = finding_line(f, self.format);
        if self.progress && self.last.is_some() {
            eprint!("\r\x1b[2K");
        }
        if let Err(e) = writeln!(self.out, "{line}").and_then(|_| self.out.flush()) {
            self.error.get_or_insert(e);
        }
    }

    fn progress(&mut self, s: &Summary) {
        if !self.progress || self.last.is_some_and(|t| t.elapsed().as_millis() < 250) {
            return;
        }
        self.last = Some(Instant::now());
        let rate = s.checked as f64 / s.elapsed.as_secs_f64().max(1e-9);
        eprint!(
            "\r\x1b[2Kverify: {} names checked ({rate:.0}/s), {} missing, {} different",
            s.checked, s.missing, s.different
        );
    }
}

/// A sink that keeps every finding in memory (tests and embedding).
#[derive(Debug, Default)]
pub struct Collect {
    /// The findings so far.
    pub findings: Vec<Finding>,
}

impl Sink for Collect {
    fn finding(&mut self, f: &Finding) {
        self.findings.push(f.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::compare::KType;

    #[test]
    /// The key is the name escaped as everywhere in the relay (`\xNN`, `\"`), then JSON-quoted.
    fn lines_escape_binary_names_and_quotes() {
        let f = Finding::Different {
            key: b"a\"b\x00\r\n".to_vec(),
            diffs: vec!["hash field \"f\" missing on new".into()],
        };
        assert_eq!(
            finding_line(&f, Format::Jsonl),
            r#"{"kind":"different","key":"a\\\"b\\x00\\r\\n","diffs":["hash field \"f\" missing on new"]}"#
        );
        let m = Finding::Missing {
            key: b"k".to_vec(),
            types: vec![KType::String, KType::Hash],
        };
        assert_eq!(finding_line(&m, Format::Text), "MISSING   k (string, hash)");
        assert_eq!(
            finding_line(&m, Format::Jsonl),
            r#"{"kind":"missing","key":"k","types":["string","hash"]}"#
        );
        assert_eq!(json_str("\u{1}"), "\"\\u0001\"");
    }
}
