//! Names are data, not terminal codes: text that came from outside (a
//! certificate's subject, a friendly name, a file name, an answer from a
//! server) is shown with its control characters escaped, so a crafted
//! subject cannot forge a line, clear a screen or recolour a terminal.
//! JSON output keeps the real characters (as JSON escapes).
//!
//! Escaped: C0 controls (newline and tab included: one value never spans
//! lines), DEL, C1 controls, and the Unicode bidirectional overrides and
//! isolates that reorder what a terminal shows.

use std::borrow::Cow;
use std::fmt::Write;

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with its control characters as `\n`, `\t`, `\r`, `\x1b` or
/// `\u{202e}`; borrowed when there is none (the usual case).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Each line of `s` escaped, its line breaks kept: for a text made of
/// lines certroll wrote itself.
pub fn escape_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&escape(line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(
            escape("CN=contoso.com, O=Ünïcode"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape("evil\nerror: forged\x1b[31m\u{202e}\u{9b}\t"),
            "evil\\nerror: forged\\x1b[31m\\u{202e}\\x9b\\t"
        );
        assert_eq!(escape_lines("a\x07\nb"), "a\\x07\nb");
    }
}
