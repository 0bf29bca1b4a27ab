//! Reads of a stopped node's journal: what `troupe events` and `troupe metrics` show when no
//! node serves the data dir.
//!
//! [`open`] takes the journal's lock like a node does, so it fails with
//! [`JournalError::Locked`] (exit 3) while a node runs; ask that node instead.
//!
//! ```no_run
//! use std::time::Duration;
//! use troupe::model::Timestamp;
//! use troupe::read::offline;
//!
//! let journal = offline::open("/var/lib/troupe".as_ref())?;
//! for event in journal.events(None)? {
//!     let (seq, record) = event?;
//!     println!("{seq} {}", record.event.type_name());
//! }
//! let now = Timestamp::from_system_time(std::time::SystemTime::now());
//! let report = journal.metrics(now, Duration::from_secs(3600))?;
//! println!("{} buckets", report.buckets);
//! # Ok::<(), offline::OfflineError>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::rollup::MetricsReport;
use crate::model::{EventRecord, RunId, Seq, Timestamp};
use crate::storage::journal::EventIter;
use crate::storage::{Journal, JournalError};

/// What went wrong reading a stopped node's journal.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The data dir has no journal: nothing has run with it. Check the data dir given.
    #[error("no journal in {} (nothing has run with this data dir)", data_dir.display())]
    NoJournal {
        /// The data dir looked in.
        data_dir: PathBuf,
    },
    /// The journal directory cannot be inspected (permissions, not a directory). Fix the data
    /// dir's permissions or run as its owner.
    #[error("{}: {source}", path.display())]
    Unreadable {
        /// The journal directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Opening or reading the journal failed (a node holds it, a damaged record); see
    /// [`JournalError`].
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl OfflineError {
    /// The CLI exit code (DESIGN.md): 3 for no journal (as for no node), 2 for a data dir this
    /// user cannot read, else [`JournalError::exit_code`].
    pub fn exit_code(&self) -> i32 {
        match self {
            OfflineError::NoJournal { .. } => 3,
            OfflineError::Unreadable { .. } => 2,
            OfflineError::Journal(e) => e.exit_code(),
        }
    }
}

/// The journal of a data dir that no node serves, open for reads. Holds the journal's lock
/// until dropped, so no node can start on the data dir meanwhile.
pub struct OfflineJournal {
    /// The open journal (read handle; no writer is ever taken).
    journal: Journal,
}

/// Opens the journal of `data_dir` (in `DATA_DIR/journal`) for offline reads. Unlike a node,
/// it creates nothing: a data dir without a journal is [`OfflineError::NoJournal`].
pub fn open(data_dir: &Path) -> Result<OfflineJournal, OfflineError> {
    let dir = data_dir.join("journal");
    match std::fs::metadata(dir.join("CURRENT")) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OfflineError::NoJournal {
                data_dir: data_dir.to_path_buf(),
            })
        }
        Err(source) => return Err(OfflineError::Unreadable { path: dir, source }),
    }
    Ok(OfflineJournal {
        journal: Journal::open(&dir)?,
    })
}

impl OfflineJournal {
    /// The journaled events, oldest first: all of them, or those of one run. A run's events
    /// are read up front (an unknown run has none); all events are read lazily, so an error
    /// can come part way through.
    pub fn events(&self, run: Option<RunId>) -> Result<Events<'_>, OfflineError> {
        Ok(Events(match run {
            Some(run) => Source::Run(self.journal.run_events(run)?.into_iter()),
            None => Source::All(self.journal.events_from(1)),
        }))
    }

    /// The output of `task` of `run` (`troupe output` without a node): the run's events are
    /// folded on their own to find its workflow (expansions included) and the task's state.
    pub fn output(
        &self,
        run: RunId,
        task: &crate::model::TaskId,
    ) -> Result<crate::messages::control::OutputView, crate::messages::control::ControlError> {
        let state = self.run_state(run)?;
        let outputs = crate::read::outputs::Outputs::new(self.journal.clone());
        crate::read::outputs::output_view(&outputs, &state, run, task)
    }

    /// The workflow of `run` as it is now, mapped tasks expanded (`troupe graph --run`
    /// without a node).
    pub fn workflow(
        &self,
        run: RunId,
    ) -> Result<crate::model::Workflow, crate::messages::control::ControlError> {
        let state = self.run_state(run)?;
        let r = state.run(run).ok_or_else(|| {
            crate::messages::control::ControlError::NotFound(format!("no run {run}"))
        })?;
        Ok((**r.workflow()).clone())
    }

    /// The events of `run` folded on their own (no other run's event changes it).
    fn run_state(
        &self,
        run: RunId,
    ) -> Result<crate::model::State, crate::messages::control::ControlError> {
        use crate::messages::control::ControlError;
        let internal = |e: String| ControlError::Internal(e);
        let mut state = crate::model::State::new();
        let events = self
            .journal
            .run_events(run)
            .map_err(|e| internal(e.to_string()))?;
        for (seq, record) in events {
            state
                .apply(seq, &record)
                .map_err(|e| internal(format!("event {seq}: {e}")))?;
        }
        Ok(state)
    }

    /// Every record, stream index entry and snapshot checked (`troupe journal verify`); see
    /// [`Journal::verify`].
    pub fn verify(&self) -> Result<crate::storage::journal::VerifyReport, OfflineError> {
        Ok(self.journal.verify()?)
    }

    /// The open journal (for `troupe gc` and `troupe backup` of a stopped node).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Throughput, latency, error rate and retries over the window `since` before `now`,
    /// overall and per pool, from the durable per-minute rollups (what a node answers to
    /// `Request::Metrics`).
    pub fn metrics(&self, now: Timestamp, since: Duration) -> Result<MetricsReport, OfflineError> {
        Ok(crate::read::metrics::metrics_report(
            &self.journal,
            now,
            since,
        )?)
    }
}

/// Events of [`OfflineJournal::events`], oldest first, with their sequence numbers.
pub struct Events<'j>(Source<'j>);

/// Where [`Events`] come from.
enum Source<'j> {
    /// One run's events, already read.
    Run(std::vec::IntoIter<(Seq, EventRecord)>),
    /// Every event, read as iterated.
    All(EventIter<'j>),
}

impl Iterator for Events<'_> {
    type Item = Result<(Seq, EventRecord), OfflineError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Source::Run(events) => events.next().map(Ok),
            Source::All(events) => events.next().map(|e| e.map_err(OfflineError::from)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_without_a_journal_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = open(dir.path()) else {
            panic!("opened a journal that does not exist");
        };
        assert!(matches!(e, OfflineError::NoJournal { .. }), "{e:?}");
        assert_eq!(e.exit_code(), 3);
        assert!(
            !dir.path().join("journal").exists(),
            "open created the journal"
        );
    }

    #[test]
    fn events_of_a_run_are_its_own_and_all_events_are_every_one() {
        let dir = tempfile::tempdir().unwrap();
        let wf = crate::model::parse_workflow(
            "name = \"w\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
        )
        .unwrap();
        let run = RunId::from_ulid(ulid::Ulid::from_parts(1, 1));
        {
            let journal = Journal::open(&dir.path().join("journal")).unwrap();
            let mut writer = journal
                .writer(&crate::storage::JournalOptions::default())
                .unwrap();
            writer
                .stage(&[
                    EventRecord {
                        time: Timestamp(0),
                        event: crate::model::Event::RunSubmitted {
                            run,
                            workflow: std::sync::Arc::new(wf),
                        },
                    },
                    EventRecord {
                        time: Timestamp(1),
                        event: crate::model::Event::NodeHalted { kill: false },
                    },
                ])
                .unwrap();
            writer.commit().unwrap();
        }
        let journal = open(dir.path()).unwrap();
        let all: Vec<Seq> = journal
            .events(None)
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(all, [1, 2]);
        let of_run: Vec<Seq> = journal
            .events(Some(run))
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(of_run, [1]);
    }
}
