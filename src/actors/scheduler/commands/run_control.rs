//! Cancel, suspend and resume a run or one task. Cancelling terminates the attempts it
//! closes once the cancel is durable.

use super::*;
use crate::messages::control::{ControlError, Target};
use crate::model::{Event, RunId, TaskId, TaskState};

impl SchedulerState {
    /// Cancels a run: its running attempts are terminated once that is durable.
    pub(crate) fn cancel_run(&mut self, run: RunId) -> Result<(), ControlError> {
        self.decide(Event::RunCancelled { run })
            .map_err(to_control_error)?;
        let r = self.state.run(run).expect("just applied");
        let kill = self.running_where(|rr, t| rr == run && r.task(t).state != TaskState::Running);
        self.after_persist(Effect::Terminate(kill));
        Ok(())
    }

    /// Cancels one task: its running attempt is terminated once that is durable.
    pub(crate) fn cancel_task(&mut self, run: RunId, task: TaskId) -> Result<(), ControlError> {
        let t = self.task_index(run, &task)?;
        self.decide(Event::TaskCancelled { run, task })
            .map_err(to_control_error)?;
        let kill = self.running_where(|rr, tt| rr == run && tt == t);
        self.after_persist(Effect::Terminate(kill));
        Ok(())
    }

    /// Suspends a run or a task (nothing new starts; running attempts go on).
    pub(crate) fn suspend(&mut self, target: Target) -> Result<(), ControlError> {
        let event = match target {
            Target::Run(run) => Event::RunSuspended { run },
            Target::Task(run, task) => Event::TaskSuspended { run, task },
        };
        self.decide(event).map_err(to_control_error)
    }

    /// Resumes a suspended run or task.
    pub(crate) fn resume(&mut self, target: Target) -> Result<(), ControlError> {
        let event = match target {
            Target::Run(run) => Event::RunResumed { run },
            Target::Task(run, task) => Event::TaskResumed { run, task },
        };
        self.decide(event).map_err(to_control_error)
    }
}
