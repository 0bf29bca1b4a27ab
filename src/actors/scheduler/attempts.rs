//! The end of an attempt: release its slot, journal how it ended.

use super::*;
use crate::messages::scheduler::{AttemptKind, AttemptOutcome, AttemptReport};
use crate::model::decide::{attempt_close, compensation_end, AttemptEnd, Handed};
use crate::model::{Failure, RunState};

impl SchedulerState {
    pub(crate) fn attempt_ended(&mut self, report: AttemptReport) {
        // After a shutdown's grace (or a second Ctrl-C) ends are not journaled: the next boot
        // closes those attempts as interrupted. The drain still completes.
        if self.release(&report) && !self.abandon {
            self.close_attempt(report);
        }
        self.answer_drain();
    }

    /// Journals the end of a released attempt (and what follows from it).
    pub(crate) fn close_attempt(&mut self, report: AttemptReport) {
        let (end, handed) = match report.outcome {
            AttemptOutcome::Succeeded { usage, handed } => {
                (AttemptEnd::Succeeded { usage }, handed)
            }
            AttemptOutcome::Failed {
                failure,
                usage,
                retryable,
                counters,
            } => (
                AttemptEnd::Failed {
                    failure,
                    retryable,
                    usage,
                },
                Handed {
                    output: None,
                    counters,
                },
            ),
            // Terminated without the task being cancelled (halt --kill, a worker restart):
            // the attempt was interrupted, not failed by its own doing.
            AttemptOutcome::Terminated { usage } => (
                AttemptEnd::Failed {
                    failure: Failure::Interrupted,
                    retryable: true,
                    usage,
                },
                Handed::default(),
            ),
        };
        let id = report.id;
        if id.kind == AttemptKind::Forward && !self.breakers.is_empty() {
            let failure = match &end {
                AttemptEnd::Succeeded { .. } => None,
                AttemptEnd::Failed { failure, .. } => Some(failure.clone()),
            };
            self.breaker_observe(id.run, id.task, failure.as_ref());
        }
        let sample = rand::random::<f64>();
        let events = match id.kind {
            AttemptKind::Forward => {
                // The task may have become ready again while this attempt was still out
                // (retry of a task whose cancelled attempt was being terminated): `fill`
                // skipped it then. A compensating run may have waited for this attempt.
                self.track(id.run, id.task);
                if self
                    .state
                    .run(id.run)
                    .is_some_and(|r| r.state() == RunState::Compensating)
                {
                    self.sagas.touch(id.run);
                }
                attempt_close(
                    &self.state,
                    id.run,
                    id.task,
                    id.attempt,
                    end,
                    handed,
                    now(),
                    sample,
                )
            }
            AttemptKind::Compensation => {
                self.sagas.touch(id.run);
                compensation_end(&self.state, id.run, id.task, id.attempt, end, now(), sample)
                    .into_iter()
                    .collect()
            }
        };
        for event in events {
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "attempt end refused by the fold");
            }
        }
    }
}
