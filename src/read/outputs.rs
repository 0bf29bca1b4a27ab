//! Task outputs, read from the journal when something needs them: a dependent's inputs and
//! templates at dispatch, a mapped task's expansion, `troupe output`.
//!
//! Outputs are never held by the scheduler or the projection (a queued task costs no memory
//! for them): the `task_output` event of a task is found through the task's stream index. A
//! small cache keeps the last few parsed outputs, so the instances of a fan-out do not each
//! parse the upstream array again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::model::{Event, Expansion, RunId, TaskId, TaskIndex, Workflow};
use crate::storage::{Journal, JournalError};

/// Parsed outputs kept by [`Outputs`] (a fan-out reads one upstream output once per
/// instance; a handful of entries covers the fan-outs running at once).
const CACHE_ENTRIES: usize = 8;

/// Parsed outputs by (run, task), newest last.
type Cache = VecDeque<((RunId, TaskId), Arc<Value>)>;

/// Reads outputs from the journal (cheap to clone; clones share the cache).
#[derive(Clone)]
pub struct Outputs {
    /// Where outputs are read.
    source: Source,
    /// The last outputs parsed, newest last.
    cache: Arc<Mutex<Cache>>,
}

/// Where [`Outputs`] reads.
#[derive(Clone)]
enum Source {
    /// The node's journal.
    Journal(Journal),
    /// A worker node's copy of the outputs one attempt reads, sent with its order.
    Fixed(Arc<std::collections::HashMap<TaskId, Arc<Value>>>),
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outputs")
    }
}

/// Why an output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The journal could not be read (retry later or report).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A journaled output is not JSON (a damaged or foreign journal).
    #[error("the journaled output of `{task}` is not JSON: {error}")]
    Damaged {
        /// The task.
        task: TaskId,
        /// The parser's message.
        error: String,
    },
}

impl Outputs {
    /// Outputs of `journal`.
    pub fn new(journal: Journal) -> Self {
        Outputs {
            source: Source::Journal(journal),
            cache: Arc::default(),
        }
    }

    /// Outputs given by value (a worker node's attempt: what its order carried). A task not
    /// given reads as `null`.
    pub fn fixed(values: impl IntoIterator<Item = (TaskId, Value)>) -> Self {
        Outputs {
            source: Source::Fixed(Arc::new(
                values.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            )),
            cache: Arc::default(),
        }
    }

    /// The output of task `id` of `run` as journaled (compact JSON text), `None` if it has
    /// none (it did not succeed, or wrote no output: `null`).
    pub fn text(&self, run: RunId, id: &TaskId) -> Result<Option<String>, OutputError> {
        let journal = match &self.source {
            Source::Journal(j) => j,
            Source::Fixed(map) => {
                return Ok(map.get(id).filter(|v| !v.is_null()).map(|v| v.to_string()))
            }
        };
        let events = journal.task_events(run, id)?;
        Ok(events.into_iter().rev().find_map(|(_, r)| match r.event {
            Event::TaskOutput { output, .. } => Some(output),
            _ => None,
        }))
    }

    /// The output of task `t` of `run` (workflow `wf`) as a value: `null` when it wrote none;
    /// for an expanded mapped task, the array of its instances' outputs in index order.
    pub fn value(
        &self,
        run: RunId,
        wf: &Workflow,
        t: TaskIndex,
    ) -> Result<Arc<Value>, OutputError> {
        let id = wf.task_id(t);
        if let Source::Fixed(map) = &self.source {
            return Ok(map
                .get(id)
                .cloned()
                .unwrap_or_else(|| Arc::new(Value::Null)));
        }
        let key = (run, id.clone());
        if let Some(v) = self.cached(&key) {
            return Ok(v);
        }
        let value = match wf.task(t).expansion() {
            Some(Expansion::Mapped { count }) => {
                let mut items = Vec::with_capacity(count as usize);
                for i in 0..count {
                    items.push(self.parse(run, &TaskId::instance(id, i))?);
                }
                Value::Array(items)
            }
            _ => self.parse(run, id)?,
        };
        let value = Arc::new(value);
        if value.is_null() {
            // Possibly not written yet: never cache an absence.
            return Ok(value);
        }
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() == CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back((key, Arc::clone(&value)));
        Ok(value)
    }

    /// The ballot of swarm task `t`'s vote: `[{"replica": N, "output": VALUE}, ...]` for
    /// each replica that wrote an output, in replica order (replicas that failed, were
    /// cancelled or wrote none have nothing to vote for).
    pub fn ballot(&self, run: RunId, wf: &Workflow, t: TaskIndex) -> Result<Value, OutputError> {
        let Some(Expansion::Swarm { replicas }) = wf.task(t).expansion() else {
            return Ok(Value::Array(Vec::new()));
        };
        let base = wf.task_id(t);
        let mut ballot = Vec::new();
        for i in 0..replicas {
            let id = TaskId::instance(base, i);
            let value = match &self.source {
                Source::Fixed(map) => map.get(&id).map(|v| (**v).clone()).unwrap_or(Value::Null),
                Source::Journal(_) => self.parse(run, &id)?,
            };
            if !value.is_null() {
                ballot.push(serde_json::json!({ "replica": i, "output": value }));
            }
        }
        Ok(Value::Array(ballot))
    }

    fn cached(&self, key: &(RunId, TaskId)) -> Option<Arc<Value>> {
        let cache = self.cache.lock().expect("not poisoned");
        cache
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Arc::clone(v))
    }

    fn parse(&self, run: RunId, id: &TaskId) -> Result<Value, OutputError> {
        match self.text(run, id)? {
            None => Ok(Value::Null),
            Some(text) => serde_json::from_str(&text).map_err(|e| OutputError::Damaged {
                task: id.clone(),
                error: e.to_string(),
            }),
        }
    }
}

/// The answer to `troupe output RUN/TASK` from a folded `state` (the projection, or an
/// offline replay of the run): the task's state and, once it succeeded, its output.
pub fn output_view(
    outputs: &Outputs,
    state: &crate::model::State,
    run: RunId,
    task: &TaskId,
) -> Result<crate::messages::control::OutputView, crate::messages::control::ControlError> {
    use crate::messages::control::{ControlError, OutputView};
    let r = state
        .run(run)
        .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
    let t = r
        .workflow()
        .task_index(task.as_str())
        .ok_or_else(|| ControlError::NotFound(format!("run {run} has no task `{task}`")))?;
    let task_state = r.task(t).state;
    let output = if task_state == crate::model::TaskState::Succeeded
        || task_state == crate::model::TaskState::Compensated
    {
        outputs
            .value(run, r.workflow(), t)
            .map_err(|e| ControlError::Internal(e.to_string()))?
            .to_string()
    } else {
        "null".to_owned()
    };
    Ok(OutputView {
        run,
        task: task.clone(),
        state: task_state,
        output,
    })
}
