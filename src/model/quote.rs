//! How user-provided text (ids, names, keys, durations) appears inside error messages.
//!
//! Such text comes from a file or a command line that may be careless or hostile: it can be
//! 10,000 characters long, or hold a newline and text that forges the next line of output,
//! an escape sequence that clears the terminal, or a Unicode bidirectional control that
//! reorders how the line reads. Every message in the model that quotes user text does so
//! through `quoted`, which escapes those characters and shortens long text to a prefix and
//! its length.
//!
//! Text output that shows such text whole (run and workflow names, commands, approvers and
//! their reasons in the CLI's tables and event log) passes it through [`printable`], which
//! escapes the same characters without cutting or quoting.

use std::fmt;

/// Text of at most this many characters is quoted whole: every valid task id
/// ([`super::ids::MAX_TASK_ID_LEN`] bytes) fits.
pub(crate) const MAX_QUOTED_CHARS: usize = 128;

/// Characters kept before `…` when text is longer than [`MAX_QUOTED_CHARS`].
pub(crate) const QUOTED_PREFIX_CHARS: usize = 48;

/// `text`, ready to put in an error message.
///
/// `{}` prints it in backticks (`` `build` ``), the style of troupe's own messages; `{:?}`
/// prints it in double quotes (`"90 parsecs"`), the style of Rust's `Debug` for strings.
/// Either way control and bidi characters are escaped (`\n`, `\u{1b}`, `\u{202e}`), and text
/// longer than [`MAX_QUOTED_CHARS`] characters is cut to its first [`QUOTED_PREFIX_CHARS`]
/// and followed by its length: `` `aaaa…` (10000 characters) ``.
pub(crate) fn quoted(text: &str) -> Quoted<'_> {
    Quoted(text)
}

/// See [`quoted`].
#[derive(Clone, Copy)]
pub(crate) struct Quoted<'a>(&'a str);

/// Whether `c` is written as an escape: control characters (C0, DEL, C1: newline, tab, ESC,
/// ...) and the bidirectional controls ("Trojan Source", CVE-2021-42574).
fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control or bidi character written as an escape (`\n`, `\u{1b}`), whole
/// and unquoted: for text output of names, commands and reasons (the CLI's tables and the
/// event log), where a raw newline would forge a line and an escape sequence drive the
/// terminal. Borrowed when there is nothing to escape (the usual case).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Quoted<'_> {
    fn write(&self, f: &mut fmt::Formatter<'_>, quote: char) -> fmt::Result {
        let total = self.0.chars().count();
        let shown = if total > MAX_QUOTED_CHARS {
            QUOTED_PREFIX_CHARS
        } else {
            total
        };
        write!(f, "{quote}")?;
        for c in self.0.chars().take(shown) {
            if escaped(c) || (quote == '"' && matches!(c, '"' | '\\')) {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if shown < total {
            write!(f, "…{quote} ({total} characters)")
        } else {
            write!(f, "{quote}")
        }
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, '`')
    }
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, '"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_whole() {
        assert_eq!(quoted("build").to_string(), "`build`");
        assert_eq!(format!("{:?}", quoted("10 parsecs")), "\"10 parsecs\"");
        assert_eq!(format!("{:?}", quoted("a\"b\\c")), r#""a\"b\\c""#);
        let id = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quoted(&id).to_string(), format!("`{id}`"));
    }

    #[test]
    fn long_text_is_cut_with_its_length() {
        let long = "a".repeat(10_000);
        assert_eq!(
            quoted(&long).to_string(),
            format!("`{}…` (10000 characters)", "a".repeat(QUOTED_PREFIX_CHARS))
        );
        assert_eq!(
            format!("{:?}", quoted(&long)),
            format!(
                "\"{}…\" (10000 characters)",
                "a".repeat(QUOTED_PREFIX_CHARS)
            )
        );
        // Characters, not bytes: a multi-byte prefix is not split.
        let wide = "é".repeat(200);
        assert_eq!(
            quoted(&wide).to_string(),
            format!("`{}…` (200 characters)", "é".repeat(QUOTED_PREFIX_CHARS))
        );
    }

    #[test]
    fn printable_escapes_control_and_bidi_characters_only() {
        assert_eq!(printable("release 1.2 — ünï"), "release 1.2 — ünï");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            printable("x\n  42  approval_rejected"),
            "x\\n  42  approval_rejected"
        );
        assert_eq!(
            printable("\u{1b}[2J\u{7f}\u{9b}\t\r\"q\""),
            "\\u{1b}[2J\\u{7f}\\u{9b}\\t\\r\"q\""
        );
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            quoted("a\nb\u{1b}[2J\u{7f}\u{85}\t").to_string(),
            r"`a\nb\u{1b}[2J\u{7f}\u{85}\t`"
        );
        let shown = quoted("x\ny").to_string();
        assert!(!shown.contains('\n'));
        assert_eq!(quoted("a\u{202e}b").to_string(), r"`a\u{202e}b`");
        assert_eq!(quoted("ünï — ok").to_string(), "`ünï — ok`");
    }
}
