//! JSON workflow files: the TOML format spelled in JSON, read by the same rules.
//!
//! A JSON workflow is one object with the fields of the TOML top-level table; `pools`,
//! `defaults`, `retry`, `env`, ... are objects, and `task` is an array of task objects (the
//! JSON spelling of `[[task]]`). This module only turns the text into the spanned parse tree
//! the TOML reader works on ([`DeValue`] with byte spans into the JSON text); from there the
//! same [`Table`](super::reader::Table) readers and [`Workflow::build`](super::Workflow)
//! checks judge it, so a field added to the TOML readers is a JSON field at once, with the
//! same type, checks and messages, and every position is a line and column of the JSON text.
//!
//! Mapping: a JSON object is a table (its key span is the key's opening quote), an array an
//! array, a string a string (borrowed from the text unless it has escapes), `true`/`false` a
//! boolean, a number an integer when it has no fraction or exponent and a float otherwise
//! (so `3.0` is refused where an integer is expected, as in TOML). The format has no null:
//! `null` is refused at its place (leave the field out instead), as is a key given twice.
//!
//! The parser is written here rather than taken from `serde_json` because `serde_json` does
//! not report where a value is. It follows RFC 8259 (no comments, no trailing commas, no
//! unescaped control characters in strings, no lone surrogates) and stops at the first
//! syntax error, with its line and column; it nests at most [`MAX_DEPTH`] levels so that a
//! hostile file cannot overflow the stack. It is one pass over the bytes with no copy of a
//! string that has no escape: about a third of the time `toml` takes to build the tree of the
//! same workflow in TOML (docs/benchmarks.md, "JSON workflows").
//!
//! The fast path ([`super::fast`]) reads the same text with the same parser through
//! [`stream`]: member by member, a task's strings and arrays of strings straight from the
//! text, with no tree of the tasks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeArray, DeString, DeTable, DeValue};
use toml::map::Entry;
use toml::Spanned;

use super::fast::{Shape, Visitor};
use crate::model::quote::quoted;

/// Deepest nesting of arrays and objects accepted (serde_json's default limit too).
pub(super) const MAX_DEPTH: usize = 128;

/// A problem found while reading the JSON text: where (byte offset) and what.
#[derive(Debug)]
pub(super) struct JsonProblem {
    /// Byte offset in the text.
    pub(super) offset: usize,
    /// What is wrong, for the user.
    pub(super) message: String,
}

/// The spanned parse tree of a JSON workflow, or its problems: the first syntax error, or
/// every `null` and duplicate key (the text is read to its end past those, so that all of
/// them are reported at once).
pub(super) fn tree(text: &str) -> Result<Spanned<DeValue<'_>>, Vec<JsonProblem>> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        numbers: HashMap::new(),
        problems: Vec::new(),
    };
    p.skip_ws();
    if p.peek() != Some(b'{') {
        return Err(vec![p.problem(
            p.pos,
            "a JSON workflow is one object: { \"name\": ..., \"task\": [ ... ] }",
        )]);
    }
    let root = match p.value() {
        Ok(root) => root,
        Err(e) => return Err(vec![e]),
    };
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(vec![
            p.problem(p.pos, "unexpected text after the workflow object")
        ]);
    }
    if p.problems.is_empty() {
        Ok(root)
    } else {
        Err(p.problems)
    }
}

/// Reads JSON `text` into `visitor` without building the tree of the tasks (the fast path,
/// see [`super::fast`]): each top-level member but `task` as a spanned value, then each member
/// of each task object as one. `None` at the first problem of any kind (syntax, `null`, a
/// duplicate key inside a value, or the visitor giving up); the visitor sees duplicate keys of
/// the top level and of a task object itself.
pub(super) fn stream<'t>(text: &'t str, visitor: &mut impl Visitor<'t>) -> Option<()> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        numbers: HashMap::new(),
        problems: Vec::new(),
    };
    // Reused for every array of strings.
    let mut strings = Vec::new();
    p.skip_ws();
    p.members(|p, key| {
        if key != "task" {
            let value = p.value().ok()?;
            if !p.problems.is_empty() {
                return None;
            }
            return visitor.top(&key, value);
        }
        visitor.tasks_begin()?;
        p.skip_ws();
        if p.peek() != Some(b'[') {
            return None;
        }
        p.open().ok()?;
        p.skip_ws();
        if p.peek() == Some(b']') {
            p.pos += 1;
            p.depth -= 1;
            return Some(());
        }
        loop {
            p.skip_ws();
            p.members(|p, key| {
                p.skip_ws();
                let start = p.pos;
                let shape = visitor.task_shape(&key);
                if shape == Shape::String && p.peek() == Some(b'"') {
                    let s = p.string().ok()?;
                    return visitor.task_string(&key, start..p.pos, s);
                }
                if shape == Shape::Strings && p.peek() == Some(b'[') && p.strings(&mut strings)? {
                    return visitor.task_strings(&key, start..p.pos, &mut strings);
                }
                let value = p.value().ok()?;
                if !p.problems.is_empty() {
                    return None;
                }
                visitor.task_field(&key, value)
            })?;
            visitor.task_end()?;
            if !p.next_element(b']', "").ok()? {
                return Some(());
            }
        }
    })?;
    p.skip_ws();
    (p.pos == p.bytes.len() && p.problems.is_empty()).then_some(())
}

/// A recursive-descent reader of JSON text into [`DeValue`]s.
struct Parser<'t> {
    /// The whole text, to borrow strings and number literals from.
    text: &'t str,
    /// The same text as bytes, for scanning.
    bytes: &'t [u8],
    /// Byte offset of the next byte to read.
    pos: usize,
    /// Arrays and objects open around `pos`, against [`MAX_DEPTH`].
    depth: usize,
    /// Number literals already converted (workflows repeat a few small numbers; converting
    /// goes through the TOML value parser, see [`Parser::number`]).
    numbers: HashMap<&'t str, DeValue<'t>>,
    /// `null`s and duplicate keys found so far; the parse goes on past them.
    problems: Vec<JsonProblem>,
}

type Parsed<T> = Result<T, JsonProblem>;

impl<'t> Parser<'t> {
    fn problem(&self, offset: usize, message: impl Into<String>) -> JsonProblem {
        JsonProblem {
            offset,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// "expected X" at the current position, or "unexpected end of file" there.
    fn expected(&self, what: &str) -> JsonProblem {
        match self.peek() {
            None => self.problem(self.pos, format!("unexpected end of file, expected {what}")),
            Some(_) => {
                let found = self.text[self.pos..].chars().next().unwrap_or(' ');
                let found = if found.is_control() {
                    format!("{:?}", found)
                } else {
                    format!("`{found}`")
                };
                self.problem(self.pos, format!("expected {what}, found {found}"))
            }
        }
    }

    /// One value, at the next non-blank byte.
    fn value(&mut self) -> Parsed<Spanned<DeValue<'t>>> {
        self.skip_ws();
        let start = self.pos;
        let value = match self.peek() {
            Some(b'{') => DeValue::Table(self.object()?),
            Some(b'[') => DeValue::Array(self.array()?),
            Some(b'"') => DeValue::String(self.string()?),
            Some(b't') if self.bytes[start..].starts_with(b"true") => {
                self.pos += 4;
                DeValue::Boolean(true)
            }
            Some(b'f') if self.bytes[start..].starts_with(b"false") => {
                self.pos += 5;
                DeValue::Boolean(false)
            }
            Some(b'n') if self.bytes[start..].starts_with(b"null") => {
                self.pos += 4;
                self.problems.push(self.problem(
                    start,
                    "`null` is not a value in a workflow file; leave the field out instead",
                ));
                // Stands in for the null: the tree is not checked when there is a problem.
                DeValue::Boolean(false)
            }
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.expected("a value")),
        };
        Ok(Spanned::new(start..self.pos, value))
    }

    /// Enters an array or object (at its opening bracket).
    fn open(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.problem(
                self.pos,
                format!("arrays and objects nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.pos += 1;
        Ok(())
    }

    /// After an element: `,` then another one (`true`), or the closing bracket (`false`).
    fn next_element(&mut self, close: u8, what: &str) -> Parsed<bool> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                let comma = self.pos;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    return Err(self.problem(
                        comma,
                        format!(
                            "trailing comma before `{}` (JSON allows none)",
                            char::from(close)
                        ),
                    ));
                }
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                self.depth -= 1;
                Ok(false)
            }
            _ => Err(self.expected(&format!("`,` or `{}` {what}", char::from(close)))),
        }
    }

    /// An object (at its opening brace) member by member: `member` reads each value, after
    /// its key and `:`. `None` at a syntax error or when `member` gives up.
    fn members(
        &mut self,
        mut member: impl FnMut(&mut Self, DeString<'t>) -> Option<()>,
    ) -> Option<()> {
        if self.peek() != Some(b'{') {
            return None;
        }
        self.open().ok()?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return None;
            }
            let key = self.string().ok()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return None;
            }
            self.pos += 1;
            member(self, key)?;
            if !self.next_element(b'}', "").ok()? {
                return Some(());
            }
        }
    }

    /// An array (at its opening bracket) whose elements are all strings, into `out` with
    /// their spans: `Some(true)`. `Some(false)` if an element is something else: nothing is
    /// read then (the position is back at the bracket, `out` empty). `None` at a syntax
    /// error.
    fn strings(&mut self, out: &mut Vec<(Range<usize>, DeString<'t>)>) -> Option<bool> {
        let (start, depth) = (self.pos, self.depth);
        self.open().ok()?;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Some(true);
        }
        loop {
            self.skip_ws();
            let at = self.pos;
            if self.peek() != Some(b'"') {
                out.clear();
                (self.pos, self.depth) = (start, depth);
                return Some(false);
            }
            let s = self.string().ok()?;
            out.push((at..self.pos, s));
            if !self.next_element(b']', "").ok()? {
                return Some(true);
            }
        }
    }

    fn array(&mut self) -> Parsed<DeArray<'t>> {
        self.open()?;
        let mut items = DeArray::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(items);
        }
        loop {
            items.push(self.value()?);
            if !self.next_element(b']', "after an array element")? {
                return Ok(items);
            }
        }
    }

    fn object(&mut self) -> Parsed<DeTable<'t>> {
        self.open()?;
        let mut table = DeTable::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(table);
        }
        loop {
            self.skip_ws();
            let key_start = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.expected("a key in double quotes"));
            }
            let key = self.string()?;
            let key = Spanned::new(key_start..self.pos, key);
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.expected("`:` after the key"));
            }
            self.pos += 1;
            let value = self.value()?;
            match table.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(first) => {
                    let message = format!("duplicate key {}", quoted(first.key().get_ref()));
                    self.problems.push(self.problem(key_start, message));
                }
            }
            if !self.next_element(b'}', "after an object member")? {
                return Ok(table);
            }
        }
    }

    /// A string (at its opening quote): borrowed from the text unless it has escapes.
    fn string(&mut self) -> Parsed<DeString<'t>> {
        let open = self.pos;
        self.pos += 1;
        let begin = self.pos;
        self.plain_run();
        match self.peek() {
            Some(b'"') => {
                let s = &self.text[begin..self.pos];
                self.pos += 1;
                Ok(Cow::Borrowed(s))
            }
            Some(b'\\') => {
                let mut owned = String::with_capacity(self.pos - begin + 16);
                owned.push_str(&self.text[begin..self.pos]);
                self.escaped(open, owned).map(Cow::Owned)
            }
            Some(_) => Err(self.control_character()),
            None => Err(self.never_closed(open)),
        }
    }

    /// Moves past the characters of a string that stand for themselves (up to a quote, a
    /// backslash, a control character or the end).
    fn plain_run(&mut self) {
        let rest = &self.bytes[self.pos..];
        self.pos += rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(rest.len());
    }

    fn never_closed(&self, open: usize) -> JsonProblem {
        self.problem(open, "string is never closed (no ending `\"`)")
    }

    fn control_character(&self) -> JsonProblem {
        self.problem(
            self.pos,
            format!(
                "control character {:?} in a string (write it as an escape, e.g. \\n)",
                char::from(self.bytes[self.pos])
            ),
        )
    }

    /// The rest of a string (opened at `open`) that has escapes, from the first backslash.
    fn escaped(&mut self, open: usize, mut out: String) -> Parsed<String> {
        loop {
            let begin = self.pos;
            self.plain_run();
            out.push_str(&self.text[begin..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let at = self.pos;
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape(at)?;
                            out.push(c);
                            continue;
                        }
                        _ => return Err(self.problem(
                            at,
                            "invalid escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                        )),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.control_character()),
                None => return Err(self.never_closed(open)),
            }
        }
    }

    /// Four hex digits (after `\u`), as a UTF-16 code unit.
    fn hex4(&mut self, at: usize) -> Parsed<u16> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.problem(at, "invalid \\u escape (four hex digits expected)"))?;
        self.pos += 4;
        Ok(u16::from_str_radix(digits, 16).expect("four hex digits"))
    }

    /// The character of a `\uXXXX` escape (at `at`), with its low surrogate if it needs one.
    fn unicode_escape(&mut self, at: usize) -> Parsed<char> {
        let lone = |p: &Self| p.problem(at, "\\u escape of a lone UTF-16 surrogate");
        let unit = self.hex4(at)?;
        match unit {
            0xD800..=0xDBFF => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err(lone(self));
                }
                self.pos += 2;
                let low = self.hex4(at)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(lone(self));
                }
                let c = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                Ok(char::from_u32(c).expect("a surrogate pair is a scalar value"))
            }
            0xDC00..=0xDFFF => Err(lone(self)),
            _ => Ok(char::from_u32(u32::from(unit)).expect("not a surrogate")),
        }
    }

    fn digits(&mut self) -> usize {
        let n = self.bytes[self.pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.pos += n;
        n
    }

    /// A number, checked against the JSON grammar, then converted by the TOML value parser
    /// (every JSON number is a TOML integer or float literal of the same value and kind),
    /// so that it deserializes exactly as the same number in a TOML file does.
    fn number(&mut self) -> Parsed<DeValue<'t>> {
        let start = self.pos;
        let invalid = |p: &Self| p.problem(start, "invalid number");
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.problem(start, "invalid number: leading zero"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(invalid(self)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(invalid(self));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(invalid(self));
            }
        }
        let literal = &self.text[start..self.pos];
        if let Some(v) = self.numbers.get(literal) {
            return Ok(v.clone());
        }
        let v = DeValue::parse(literal)
            .map_err(|_| invalid(self))?
            .into_inner();
        self.numbers.insert(literal, v.clone());
        Ok(v)
    }
}
