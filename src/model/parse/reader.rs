//! The field-by-field reader of the spanned parse tree: each table of the format implements
//! [`Table`], and [`Reader`] reads it, collecting a located problem for every unknown,
//! missing or unreadable field.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeString, DeValue, ValueDeserializer};
use toml::Spanned;

use super::position::line_col;
use crate::model::quote::{quoted, MAX_QUOTED_CHARS};
use crate::model::spec::Problem;

/// Reads the spanned parse tree field by field, collecting a located problem for each field
/// that does not read.
pub(super) struct Reader<'t> {
    /// The file, to turn byte spans into lines and columns.
    pub(super) text: &'t str,
    /// Everything found so far, in reading order.
    pub(super) problems: Vec<Problem>,
}

/// A table of the format, read one field at a time by [`Reader::read`].
pub(super) trait Table: Default {
    /// Every field the table takes, for the "unknown field" message.
    const FIELDS: &'static [&'static str];
    /// Fields that must be present.
    const REQUIRED: &'static [&'static str];

    /// Reads field `key` from `value` into `self`: `None` if the table has no such field,
    /// else whether it read without a problem (problems go to `reader`).
    fn set(
        &mut self,
        key: &str,
        value: Spanned<DeValue<'_>>,
        reader: &mut Reader<'_>,
    ) -> Option<bool>;
}

/// A table as read: its fields, where it is, and whether every field read.
#[derive(Clone)]
pub(super) struct Read<T> {
    /// Byte span of the table in the file.
    pub(super) span: Range<usize>,
    /// The fields that read; those with a problem are left unset.
    pub(super) fields: T,
    /// Whether there was no problem: no unknown, missing or unreadable field.
    pub(super) complete: bool,
}

impl Reader<'_> {
    pub(super) fn at(&mut self, span: &Range<usize>, message: String) {
        let (line, column) = line_col(self.text.as_bytes(), span.start);
        self.problems.push(Problem {
            line: Some(line),
            column: Some(column),
            message,
        });
    }

    /// A problem found by the `toml` crate (syntax, or a value's type); at `fallback` if it
    /// carries no span.
    pub(super) fn toml_error(&mut self, e: &toml::de::Error, fallback: Range<usize>) {
        let span = e.span().unwrap_or(fallback);
        self.at(&span, e.message().trim_end().to_owned());
    }

    /// Reads `value` as a table of `T`; `None` (and a problem) if it is not a table.
    pub(super) fn read<T: Table>(&mut self, value: Spanned<DeValue<'_>>) -> Option<Read<T>> {
        let span = value.span();
        let table = match value.into_inner() {
            DeValue::Table(table) => table,
            other => {
                self.at(
                    &span,
                    format!("invalid type: {}, expected a table", other.type_str()),
                );
                return None;
            }
        };
        let mut fields = T::default();
        let mut complete = true;
        let mut missing: Vec<&str> = T::REQUIRED.to_vec();
        for (key, value) in table {
            let name: &str = key.get_ref();
            missing.retain(|m| *m != name);
            match fields.set(name, value, self) {
                Some(ok) => complete &= ok,
                None => {
                    self.unknown_field(&key, T::FIELDS);
                    complete = false;
                }
            }
        }
        for field in missing {
            self.at(&span, format!("missing field `{field}`"));
            complete = false;
        }
        Some(Read {
            span,
            fields,
            complete,
        })
    }

    /// Reads a nested table into `slot`, set only if it read completely.
    pub(super) fn table<T: Table>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        slot: &mut Option<Spanned<T>>,
    ) -> bool {
        match self.read::<T>(value) {
            Some(t) if t.complete => {
                *slot = Some(Spanned::new(t.span, t.fields));
                true
            }
            _ => false,
        }
    }

    /// Deserializes `value` as a `T` into `slot`; whether it did.
    pub(super) fn field<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        slot: &mut Option<Spanned<T>>,
    ) -> bool {
        let span = value.span();
        // serde quotes a string of the wrong type in full: keep a long one to shorten it.
        let long = value
            .get_ref()
            .as_str()
            .filter(|s| s.chars().count() > MAX_QUOTED_CHARS)
            .map(str::to_owned);
        match Spanned::<T>::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => {
                *slot = Some(v);
                true
            }
            Err(mut e) => {
                if let Some(long) = long {
                    let message = e
                        .message()
                        .replace(&format!("{long:?}"), &format!("{:?}", quoted(&long)));
                    e = serde::de::Error::custom(message);
                }
                self.toml_error(&e, span);
                false
            }
        }
    }

    pub(super) fn unknown_field(&mut self, key: &Spanned<DeString<'_>>, expected: &[&str]) {
        let expected: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
        self.at(
            &key.span(),
            format!(
                "unknown field {}, expected one of {}",
                quoted(key.get_ref()),
                expected.join(", ")
            ),
        );
    }
}
