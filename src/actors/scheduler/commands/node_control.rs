//! Halt and unhalt the node: nothing is dispatched while halted (`--kill` also terminates
//! what runs); a `STOP` file in the data dir halts it too and must go before an unhalt.

use super::*;
use crate::messages::control::ControlError;
use crate::model::Event;

impl SchedulerState {
    /// Halts dispatch; with `kill`, terminates every running attempt once that is durable.
    pub(crate) fn halt(&mut self, kill: bool) -> Result<(), ControlError> {
        self.decide(Event::NodeHalted { kill })
            .map_err(to_control_error)?;
        if kill {
            let all = self.running_where(|_, _| true);
            self.after_persist(Effect::Terminate(all));
        }
        Ok(())
    }

    /// Resumes dispatch, unless a `STOP` file still halts the node.
    pub(crate) fn unhalt(&mut self, stop_file: &std::path::Path) -> Result<(), ControlError> {
        if stop_file.exists() {
            return Err(ControlError::Refused(format!(
                "{} exists; remove it first (it halts the node while present)",
                stop_file.display()
            )));
        }
        self.decide(Event::NodeUnhalted).map_err(to_control_error)
    }
}
