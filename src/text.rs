//! Client-supplied text made safe to show: User-Name, Calling-Station-Id,
//! NAS-Identifier and anything else a RADIUS client or a browser chose. A
//! CR or LF in a log line forges another line; ESC, BEL, NUL and the C1
//! controls reach an administrator's terminal as commands. Every control
//! character (and the Unicode line and paragraph separators) is written as
//! `\u{..}` instead, the way Rust's `{:?}` writes them, so the text is still
//! readable. Backslashes are left alone: `CORP\alice` stays readable, and
//! the point is that nothing a client sends acts on the reader, not that
//! every input looks unique.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a log line or a terminal as itself.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every control character escaped; borrowed when there is none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// Appends `c`, escaped if it must be.
fn push_escaped(out: &mut String, c: char) {
    match c {
        c if is_unsafe(c) => {
            use fmt::Write;
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Displays a string with [`escape_controls`]: `%Escaped(&user)` in a log
/// macro, `{}` in CLI output.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so widths and alignment (`{:<20}`) apply to the escaped text.
        f.pad(&escape_controls(self.0))
    }
}

/// A [`fmt::Write`] that escapes what passes through it, for formatting
/// values of any type (a `Display` of a type holding client text) safely.
pub struct EscapingWriter<'a, W: fmt::Write + ?Sized>(pub &'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for EscapingWriter<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(&escape_controls(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(
            escape_controls("alice@example.com"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_controls("é ü 名前"), "é ü 名前");
        assert_eq!(
            escape_controls("bob\r\n2026 INFO forged"),
            "bob\\u{d}\\u{a}2026 INFO forged"
        );
        assert_eq!(
            escape_controls("\u{1b}[31mred\u{7}\u{0}"),
            "\\u{1b}[31mred\\u{7}\\u{0}"
        );
        assert_eq!(escape_controls("c1\u{9b}2J"), "c1\\u{9b}2J");
        assert_eq!(escape_controls("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(escape_controls("del\u{7f}"), "del\\u{7f}");
        assert!(matches!(escape_controls("CORP\\alice"), Cow::Borrowed(_)));
        assert_eq!(Escaped("a\nb").to_string(), "a\\u{a}b");
    }
}
