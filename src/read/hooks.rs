//! `troupe hooks`: every hook call the state holds (unfinished ones and the newest 10,000
//! finished), from the projection.

use serde::{Deserialize, Serialize};

use crate::messages::control::ControlError;
use crate::model::state::{HookState, State};
use crate::model::{Failure, RunId, TaskId, Timestamp};

/// One hook call as `troupe hooks` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookCallView {
    /// The call's id (the number of calls queued before it).
    pub id: u64,
    /// The hook's name.
    pub hook: String,
    /// Its event (`task_failed`, ...).
    pub on: String,
    /// Whether it is a `task_ready` veto.
    pub veto: bool,
    /// The run the event is about, if any.
    pub run: Option<RunId>,
    /// The task, if any.
    pub task: Option<TaskId>,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed`.
    pub state: String,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Why the last attempt failed, if it did.
    pub last_failure: Option<Failure>,
    /// When the next attempt is due (retrying).
    pub retry_at: Option<Timestamp>,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When it last changed state.
    pub changed_at: Timestamp,
}

/// The spellings `--state` accepts.
pub const HOOK_STATES: [&str; 5] = ["queued", "running", "retrying", "succeeded", "failed"];

/// Hook calls, oldest first, only those in `state` if given (one of [`HOOK_STATES`]).
pub fn hook_calls(state: &State, only: Option<&str>) -> Result<Vec<HookCallView>, ControlError> {
    if let Some(s) = only.filter(|s| !HOOK_STATES.contains(s)) {
        return Err(ControlError::BadRequest(format!(
            "unknown hook call state {s:?}; expected one of {}",
            HOOK_STATES.join(", ")
        )));
    }
    Ok(state
        .hooks()
        .calls
        .iter()
        .filter(|(_, c)| only.is_none_or(|s| s == c.state.as_str()))
        .map(|(&id, c)| HookCallView {
            id,
            hook: c.call.hook.name.clone(),
            on: c.call.hook.on.as_str().to_owned(),
            veto: c.call.hook.veto,
            run: c.call.run,
            task: c.call.task.clone(),
            state: c.state.as_str().to_owned(),
            attempts: c.attempts,
            max_attempts: c.call.hook.max_attempts,
            last_failure: c.last_failure.clone(),
            retry_at: match c.state {
                HookState::Retrying { at } => Some(at),
                _ => None,
            },
            queued_at: c.queued_at,
            changed_at: c.changed_at,
        })
        .collect())
}
