//! After a failed append (a full disk, a failing device): the scheduler's state is ahead of
//! the journal, so it decides and dispatches nothing more. The node stays up and says why
//! (`status`, `health`, the log); reads keep working. `troupe unhalt` probes the journal with
//! a write and, once it succeeds, restarts the scheduler (its supervisor runs the recovery:
//! a fresh replay, interrupted attempts closed and retried), which continues the work.
//!
//! Not journaled (the journal refuses writes): a node restarted meanwhile starts normally
//! and meets the same failure at its first append if the disk is still full.

use std::sync::Arc;

use ractor::ActorProcessingErr;

use super::{Effect, SchedulerState};
use crate::context::NodeContext;
use crate::messages::control::{Command as AdminCommand, ControlError, Request, Response};
use crate::messages::scheduler::SchedulerMsg;

impl SchedulerState {
    /// An append failed with `why`: stop deciding and dispatching, and say so.
    pub(super) fn freeze(&mut self, shared: &Arc<NodeContext>, why: String) {
        let durable = self.durable;
        tracing::error!(
            error = %why,
            durable,
            "journal append failed: dispatch halted; free space (or fix the device), then `troupe unhalt`"
        );
        shared.facts.journal_failed(durable, why.clone());
        // What waited for durability never will be: callers hear why, barriers pass.
        for (_, effect) in self.effects.drain(..) {
            match effect {
                Effect::Reply(port, _) => {
                    let _ = port.send(Response::Error(ControlError::Refused(format!(
                        "not done: the journal refused the write ({why})"
                    ))));
                }
                Effect::Ack(port) => {
                    let _ = port.send(());
                }
                _ => {}
            }
        }
        self.frozen = Some(why);
    }
}

/// Handles `message` while frozen: reads' barriers pass, `unhalt` restarts us once the
/// journal takes a probe write, every other request is refused with the reason, and all else
/// is dropped (attempts that end meanwhile are closed as interrupted by the recovery).
pub(super) async fn while_frozen(
    why: &str,
    message: SchedulerMsg,
    s: &mut SchedulerState,
) -> Result<(), ActorProcessingErr> {
    match message {
        SchedulerMsg::Barrier(port) => {
            let _ = port.send(());
        }
        SchedulerMsg::Request {
            request: Request::Command(AdminCommand::Unhalt),
            reply,
        } => match s.journal.probe().await {
            Ok(()) => {
                tracing::info!("the journal takes writes again: restarting the scheduler");
                let _ = reply.send(Response::Done);
                return Err(format!("restart after the journal failure ({why})").into());
            }
            Err(e) => {
                let _ = reply.send(Response::Error(ControlError::Refused(format!(
                    "the journal still refuses writes ({e}); free space under the data dir and try again"
                ))));
            }
        },
        SchedulerMsg::Request { reply, .. } => {
            let _ = reply.send(Response::Error(ControlError::Refused(format!(
                "dispatch is halted: the journal refused a write ({why}); free space, then `troupe unhalt`"
            ))));
        }
        _ => {}
    }
    Ok(())
}
