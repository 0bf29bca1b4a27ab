//! Positions: byte offsets to 1-based lines and columns, and the spans kept from the parse
//! so that problems found on the values (by `Workflow::build`) can name a line.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use crate::model::workflow::{Loc, Locate};

/// 1-based line and column (in characters) of byte `offset` in `bytes`.
pub(super) fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Byte spans kept from the parse so semantic problems can name a line.
pub(super) struct SourceMap<'t> {
    pub(super) text: &'t str,
    pub(super) name: Option<Range<usize>>,
    pub(super) max_concurrency: Option<Range<usize>>,
    pub(super) pools: BTreeMap<String, Range<usize>>,
    pub(super) defaults: BTreeMap<&'static str, Range<usize>>,
    /// Other top-level keys (`output`, `authority`).
    pub(super) top: BTreeMap<&'static str, Range<usize>>,
    pub(super) tasks: Vec<TaskSpans>,
}

/// Byte spans of one `[[task]]`.
pub(super) struct TaskSpans {
    pub(super) table: Range<usize>,
    pub(super) id: Range<usize>,
    pub(super) depends_on: Vec<Range<usize>>,
    pub(super) fields: Vec<(&'static str, Range<usize>)>,
}

impl Locate for SourceMap<'_> {
    fn locate(&self, loc: Loc<'_>) -> Option<(usize, usize)> {
        let span = match loc {
            Loc::Nowhere => return None,
            Loc::Name => self.name.clone(),
            Loc::MaxConcurrency => self.max_concurrency.clone(),
            Loc::Pool(name) => self.pools.get(name).cloned(),
            Loc::Defaults(field) => self.defaults.get(field).cloned(),
            Loc::Top(field) => self.top.get(field).cloned(),
            Loc::Task(t) => self.tasks.get(t as usize).map(|s| s.id.clone()),
            Loc::TaskField(t, field) => self.tasks.get(t as usize).map(|s| {
                s.fields
                    .iter()
                    .find(|(f, _)| *f == field)
                    .map_or_else(|| s.table.clone(), |(_, span)| span.clone())
            }),
            Loc::Dependency(t, i) => self
                .tasks
                .get(t as usize)
                .and_then(|s| s.depends_on.get(i).cloned()),
        }?;
        Some(line_col(self.text.as_bytes(), span.start))
    }
}

/// The span of an optional field, if it is set.
pub(super) fn span_of<T>(field: &Option<Spanned<T>>) -> Option<Range<usize>> {
    field.as_ref().map(Spanned::span)
}

/// The value of an optional field, without its span.
pub(super) fn inner<T>(field: Option<Spanned<T>>) -> Option<T> {
    field.map(Spanned::into_inner)
}
