//! What commands print: views from the node (and reports from the journal or a bench) turned
//! into text for people or JSON for scripts. Nothing here talks to a node.
//!
//! # Layout
//! - [`text`]: tables and lines (`status`, `list`, `tasks`, `events`, `queue`, `approvals`,
//!   `metrics`, `health`, `validate`, the end of `run`).
//! - [`json`]: the `--json` objects of the same views.
//! - [`bench`]: the text of `troupe bench` reports (figure, baseline, ratio).
//! - [`dashboard`]: drawing the `troupe dashboard` screen (ratatui).

pub(crate) mod bench;
pub(crate) mod dashboard;
pub(crate) mod json;
pub(crate) mod text;
