//! Dynamic fan-out on the write side: once a mapped task's dependencies have succeeded (and
//! that is durable), read the output its `for_each` names from the journal and journal the
//! expansion.

use super::*;
use crate::model::template::{fan_out_count, parse_for_each, Root};
use crate::model::{Event, RunId, TaskIndex};

impl SchedulerState {
    /// Journals the expansion of mapped task `t` of `run` if it still awaits it. Runs as an
    /// effect (the upstream output is durable by then), also at boot for expansions a crash
    /// interrupted: the fold refuses a second expansion, so none is made twice.
    pub(crate) fn expand_mapped(&mut self, run: RunId, t: TaskIndex) {
        let Some(r) = self.state.run(run) else { return };
        if !r.awaits_expansion(t) {
            return;
        }
        let wf = std::sync::Arc::clone(r.workflow());
        let spec = wf.task(t);
        if let Some(swarm) = spec.swarm() {
            // A swarm task expands into its replicas, all known from the spec.
            let event = Event::TaskExpanded {
                run,
                task: spec.id.clone(),
                count: swarm.replicas,
            };
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "swarm expansion refused by the fold");
            }
            return;
        }
        let count = (|| -> Result<u32, String> {
            let expr = parse_for_each(spec.for_each().unwrap_or_default())?;
            let Root::Output(source) = &expr.root else {
                return Err("for_each names no task".into());
            };
            let s = wf
                .task_index(source.as_str())
                .ok_or_else(|| format!("no task `{source}`"))?;
            let value = self.outputs.value(run, &wf, s).map_err(|e| e.to_string())?;
            fan_out_count(&expr, &value, wf.max_fan_out(t))
        })();
        match count {
            Ok(count) => {
                let event = Event::TaskExpanded {
                    run,
                    task: spec.id.clone(),
                    count,
                };
                if let Err(e) = self.decide(event) {
                    tracing::error!(error = %e, "expansion refused by the fold");
                }
            }
            // Checked when the upstream task succeeded, so only a damaged journal gets here:
            // the task stays pending for an operator (cancel) to see.
            Err(e) => {
                tracing::error!(run_id = %run, task_id = %spec.id, error = %e, "cannot expand mapped task")
            }
        }
    }
}
