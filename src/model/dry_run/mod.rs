//! Dry runs: what a command would do, computed from what is known without doing it. Pure:
//! no I/O, no clock (time is an argument), deterministic.
//!
//! # Layout
//! - [`workflow`]: `troupe run FILE --dry-run`: the plan of a workflow (waves within the
//!   file's caps, critical path, approvals, compensations, effective settings per task).
//! - [`command`]: `troupe cancel|suspend|resume|retry TARGET --dry-run`: the events an
//!   operator command would journal and the transitions the fold would make, folded into a
//!   copy of the state with the decisions the scheduler uses ([`super::decide::operator`]).

pub mod command;
pub mod workflow;

pub use command::{preview_command, CommandPreview};
pub use workflow::{preview_workflow, FanOut, TaskPlan, TemplateUse, WorkflowPreview};
