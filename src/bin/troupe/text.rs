//! Text that reaches a terminal.
//!
//! Workflow names, pool names, commands, approvers' names and reasons come from files and
//! from other users. Printed raw, a newline plus text forges a line of the audit trail
//! (`approval_rejected ... by alice`) and an escape sequence clears or rewrites the screen.
//! Text output therefore passes such fields through [`safe`]; JSON output is already safe
//! (serde_json escapes control characters).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: control characters (C0, DEL, C1: newline, tab,
/// ESC, ...) and the Unicode bidirectional controls that reorder how a line reads
/// ("Trojan Source", CVE-2021-42574).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control or bidi character written as a Rust escape (`\n`, `\u{1b}`);
/// borrowed when there is none (the usual case).
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(safe("release 1.2 — ünï"), "release 1.2 — ünï");
        assert_eq!(
            safe("x\n  42  approval_rejected"),
            "x\\n  42  approval_rejected"
        );
        assert_eq!(
            safe("\u{1b}[2J\u{7f}\u{9b}\t\r"),
            "\\u{1b}[2J\\u{7f}\\u{9b}\\t\\r"
        );
        assert_eq!(safe("a\u{202e}b"), "a\\u{202e}b");
    }
}
