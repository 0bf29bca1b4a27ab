//! Reading the workflow format, in TOML or JSON, into a [`Workflow`], with file positions in
//! every error.
//!
//! # Layout
//! - `mod.rs`: the entry points ([`WorkflowFormat::parse`] and the TOML shorthands
//!   [`parse_workflow`], [`parse_workflow_bytes`]) and which problems are reported (syntax
//!   errors kept, sorted by position); both formats meet in one place, the checks of a
//!   spanned parse tree (the full path).
//! - `fast`: the fast path, for files with no problem (most of them): the tasks streamed
//!   straight into their specs and checked as they come, no spans; at the first problem it
//!   gives up and the full path reads the file to report every problem. Never more
//!   permissive: it runs the same readers and checks.
//! - `json`: JSON text to the same spanned parse tree the `toml` parser builds (byte spans
//!   into the JSON text), so that the readers below judge a JSON file by the same rules; and
//!   the same text streamed member by member for the fast path.
//! - `reader`: reading the spanned parse tree one field at a time, collecting a located
//!   problem per field that does not read (the `Table` trait).
//! - `top_level`: the top-level table (`name`, `max_concurrency`, `[pools]`, `[defaults]`,
//!   `[[task]]`) and turning it into a [`WorkflowSpec`](super::spec::WorkflowSpec).
//! - `defaults`: the `[defaults]` table and the `retry`/`compensate_retry` tables.
//! - `task`: one `[[task]]` table and its spec (`command`/`shell`, `compensate`).
//! - `duration`: humantime duration values.
//! - `position`: byte spans to lines and columns; the spans kept to locate problems found
//!   on the values.
//!
//! The format is the one in `../shared/DESIGN.md` (every field name there is public). Beyond
//! it: `retry` also takes `jitter` (see [`super::retry`]); a task also takes `labels` (tags
//! node approval rules match) and `compensate_retry` (its compensation's retry policy, same
//! fields as `retry`); `[defaults]` takes any of `timeout`, `retry`, `env`, `cwd`, `pool`,
//! `priority`, `requires_approval`, `approval_timeout`, `compensate_retry`. Durations are
//! [humantime](https://docs.rs/humantime) strings (`"90s"`, `"10m"`, `"1h 30m"`), at most
//! [`super::spec::MAX_WORKFLOW_DURATION`] (100 years). Unknown fields are errors.
//!
//! A JSON workflow (a `.json` file, [`WorkflowFormat::of_path`]) is the same format: one
//! object whose members are the top-level fields, `task` an array of task objects.
//!
//! # What is reported
//! Every problem found, at once, each with its line and column, sorted by position:
//! 1. **TOML syntax errors**, all of them but their echoes: the `toml` parser recovers and
//!    goes on ([`toml::de::DeTable::parse_recoverable`]), which can make one mistake show up
//!    many times, so only the first error of each line is kept, and when an array or inline
//!    table is never closed (the parser then reads the rest of the file as its elements) only
//!    the first error and the "unclosed" one. If there is any syntax error, only these are
//!    reported: what the parser recovers past a syntax error is not necessarily what the file
//!    meant, and checking it would report problems the file does not have. In JSON, the
//!    first syntax error (the reader stops there), or else every `null` and repeated key.
//! 2. **Field errors.** Every field of every table (the top level, `[pools]`, `[defaults]`,
//!    each `[[task]]`, each `retry` and `compensate_retry` table) is read on its own from the
//!    spanned parse tree, so each unknown field, wrong type, bad duration and invalid task id
//!    is reported, as is a missing `name` or task `id`.
//! 3. **Checks on the values** (the rules of [`Workflow::from_spec`]: commands, pools,
//!    durations, retry ranges, ..., then duplicate ids, dependencies and cycles) on what was
//!    read. A `[[task]]` with a field error is checked for structure only: it keeps its `id`
//!    and `depends_on` (if those read), so the duplicate-id, dependency and cycle checks see
//!    it and another task depending on it is not reported, but its other fields are not
//!    checked; a `[[task]]` whose `id` did not read is left out of every check. A
//!    `[defaults]` with a field error makes every task structure-only (their effective
//!    settings are unknown); a `pools` that is not a table leaves pool references unchecked.
//!
//! User text quoted in messages (ids, keys, names, durations) has its control characters
//! escaped and, beyond 128 characters, is cut to a prefix and its length.

mod defaults;
mod duration;
mod fast;
#[cfg(test)]
mod fast_tests;
mod json;
#[cfg(test)]
mod json_tests;
mod position;
mod reader;
mod task;
#[cfg(test)]
mod tests;
mod top_level;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::spec::{Problem, SpecError};
use super::workflow::Workflow;
use position::line_col;
use reader::Reader;
use top_level::RawWorkflow;

/// Largest workflow text accepted, in bytes (32 MiB). A 100,000-task workflow is about 7 MiB;
/// the cap keeps a wrong file (a log, a database) from being read into memory whole.
pub const MAX_WORKFLOW_BYTES: usize = 32 * 1024 * 1024;

/// The two spellings of the workflow format: TOML (the reference) and JSON (the same tables,
/// fields, types and checks; see the `json` module). A file's format is chosen by its name
/// ([`WorkflowFormat::of_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkflowFormat {
    /// TOML: `[[task]]` tables (the format of `../shared/DESIGN.md`).
    #[default]
    Toml,
    /// JSON: one object; `task` is an array of task objects.
    Json,
}

impl WorkflowFormat {
    /// [`Json`](Self::Json) for a name ending in `.json` (any case), else
    /// [`Toml`](Self::Toml).
    pub fn of_path(path: &std::path::Path) -> Self {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("json") => WorkflowFormat::Json,
            _ => WorkflowFormat::Toml,
        }
    }

    /// `"toml"` or `"json"`, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            WorkflowFormat::Toml => "toml",
            WorkflowFormat::Json => "json",
        }
    }

    /// Parses and validates workflow bytes: UTF-8 check, size cap, syntax, semantic checks,
    /// plan.
    pub fn parse_bytes(self, bytes: &[u8]) -> Result<Workflow, SpecError> {
        if bytes.len() > MAX_WORKFLOW_BYTES {
            return Err(SpecError::whole(too_large_message(bytes.len() as u64)));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let (line, column) = line_col(bytes, e.valid_up_to());
            SpecError {
                source_name: None,
                problems: vec![Problem {
                    line: Some(line),
                    column: Some(column),
                    message: format!(
                        "file is not valid UTF-8 ({} files must be UTF-8)",
                        self.name().to_uppercase()
                    ),
                }],
            }
        })?;
        self.parse(text)
    }

    /// Parses and validates workflow text, reporting every problem found (see the module
    /// docs for exactly which).
    pub fn parse(self, text: &str) -> Result<Workflow, SpecError> {
        if text.trim().is_empty() {
            return Err(SpecError::whole(
                "file is empty; a workflow needs at least `name` and one [[task]]",
            ));
        }
        // A file with no problem is read by the fast path; any problem, and the full path
        // reads it again to report every problem with its place.
        let fast = match self {
            WorkflowFormat::Toml => fast::toml(text),
            WorkflowFormat::Json => fast::json(text),
        };
        if let Some(wf) = fast {
            return Ok(wf);
        }
        self.parse_full(text)
    }

    /// [`parse`](Self::parse) without the fast path: what reports problems.
    fn parse_full(self, text: &str) -> Result<Workflow, SpecError> {
        match self {
            WorkflowFormat::Toml => parse_toml(text),
            WorkflowFormat::Json => match json::tree(text) {
                Ok(root) => check_tree(text, root),
                Err(found) => {
                    let mut reader = Reader {
                        text,
                        problems: Vec::new(),
                    };
                    for p in found {
                        reader.at(&(p.offset..p.offset), p.message);
                    }
                    Err(sorted(reader.problems))
                }
            },
        }
    }
}

impl std::str::FromStr for WorkflowFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "toml" => Ok(WorkflowFormat::Toml),
            "json" => Ok(WorkflowFormat::Json),
            other => Err(format!(
                "unknown format {other:?}: expected `toml` or `json`"
            )),
        }
    }
}

/// Parses and validates TOML workflow bytes ([`WorkflowFormat::parse_bytes`]).
pub fn parse_workflow_bytes(bytes: &[u8]) -> Result<Workflow, SpecError> {
    WorkflowFormat::Toml.parse_bytes(bytes)
}

/// The message for a file over [`MAX_WORKFLOW_BYTES`].
pub fn too_large_message(len: u64) -> String {
    format!(
        "file is {:.1} MiB, larger than the {} MiB limit for workflow files",
        len as f64 / (1024.0 * 1024.0),
        MAX_WORKFLOW_BYTES / (1024 * 1024)
    )
}

/// Parses and validates TOML workflow text ([`WorkflowFormat::parse`]).
pub fn parse_workflow(text: &str) -> Result<Workflow, SpecError> {
    WorkflowFormat::Toml.parse(text)
}

/// TOML text: its syntax errors, or the checks of [`check_tree`] on its parse tree.
fn parse_toml(text: &str) -> Result<Workflow, SpecError> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        let mut reader = Reader {
            text,
            problems: Vec::new(),
        };
        for e in worth_showing(syntax_errors) {
            reader.toml_error(&e, 0..0);
        }
        let mut e = sorted(reader.problems);
        e.problems.dedup_by_key(|p| p.line);
        return Err(e);
    }
    check_tree(
        text,
        Spanned::new(root.span(), DeValue::Table(root.into_inner())),
    )
}

/// The field errors and checks on the values (steps 2 and 3 of the module docs) of a parse
/// tree whose spans are byte offsets in `text`, whichever format it was read from.
fn check_tree(text: &str, root: Spanned<DeValue<'_>>) -> Result<Workflow, SpecError> {
    let mut reader = Reader {
        text,
        problems: Vec::new(),
    };
    let raw = reader
        .read::<RawWorkflow>(root)
        .expect("the document is a table")
        .fields;
    let mut problems = reader.problems;
    let field_errors = !problems.is_empty();
    let task_given = raw.task_given;
    let (spec, map) = raw.into_spec(text, &mut problems);
    if field_errors && task_given && spec.tasks.is_empty() {
        // No [[task]] read: "no tasks" would be wrong, the other rules still apply.
        problems.append(&mut Workflow::field_problems(&spec, &map));
        return Err(sorted(problems));
    }
    match Workflow::build(spec, &map) {
        Ok(wf) if problems.is_empty() => Ok(wf),
        Ok(_) => Err(sorted(problems)),
        Err(mut more) => {
            problems.append(&mut more);
            Err(sorted(problems))
        }
    }
}

/// The syntax errors to report, in file order. When an array or inline table is never closed,
/// the parser reads the rest of the file as its elements: then only the first error and that
/// one, since every error between them is an echo of the missing bracket. (The caller keeps
/// the first error of each line, for the same reason.)
fn worth_showing(mut errors: Vec<toml::de::Error>) -> Vec<toml::de::Error> {
    errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let unclosed = errors.iter().position(|e| {
        let m = e.message();
        m.starts_with("unclosed array,") || m.starts_with("unclosed inline table")
    });
    if let Some(i) = unclosed {
        let unclosed = errors.remove(i);
        errors.truncate(i.min(1));
        errors.push(unclosed);
    }
    errors
}

fn sorted(mut problems: Vec<Problem>) -> SpecError {
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    SpecError {
        source_name: None,
        problems,
    }
}
