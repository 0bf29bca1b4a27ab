//! `troupe gc` and `[retention] runs`: remove finished runs older than a cutoff.
//!
//! The scheduler decides `runs_removed` (the fold drops the runs, here and in the read
//! model), sends it to the journal, then at once a snapshot of its state (which holds the
//! event) and the purge: the journal's mailbox is FIFO, so the purge runs after the snapshot
//! that covers it and deletes the runs' events, stream index entries up to the event. A
//! task then removes the runs' logs and answers the caller. A dry run changes nothing and
//! reports what would go.

use std::path::Path;
use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};

use super::super::state::now;
use super::super::SchedulerState;
use crate::layout::DataDir;
use crate::messages::control::{ControlError, GcReport, Response};
use crate::messages::journal::JournalMsg;
use crate::messages::scheduler::SchedulerMsg;
use crate::model::{Event, RunId, Timestamp};
use crate::storage::Journal;

impl SchedulerState {
    /// Removes (or with `dry_run` lists) the finished runs older than `older_than`; answers
    /// `reply` with a [`GcReport`] once their events and logs are gone.
    pub(crate) fn gc(
        &mut self,
        myself: &ActorRef<SchedulerMsg>,
        older_than: Option<std::time::Duration>,
        dry_run: bool,
        reply: RpcReplyPort<Response>,
    ) {
        let Some(older_than) = older_than.or(self.shared.config.retention.runs) else {
            let _ = reply.send(Response::Error(ControlError::Refused(
                "no retention is set: give --older-than, or set [retention] runs in troupe.toml"
                    .into(),
            )));
            return;
        };
        let older_than_ms = older_than.as_millis() as u64;
        let cutoff = Timestamp(now().0.saturating_sub(older_than_ms));
        let runs = self.state.removable_runs(cutoff);
        let layout = self.shared.config.layout();
        let journal = self.shared.journal.clone();
        let mut report = GcReport {
            dry_run,
            older_than_ms,
            runs: runs.clone(),
            ..GcReport::default()
        };
        if dry_run || runs.is_empty() {
            tokio::task::spawn_blocking(move || {
                let answer = match footprint(&journal, &layout, &runs, &mut report) {
                    Ok(()) => Response::Gc(Box::new(report)),
                    Err(e) => Response::Error(ControlError::Internal(e)),
                };
                let _ = reply.send(answer);
            });
            return;
        }
        if let Err(e) = self.decide(Event::RunsRemoved {
            runs: runs.clone(),
            older_than_ms,
        }) {
            let _ = reply.send(Response::Error(e.into()));
            return;
        }
        self.flush(myself);
        let upto = self.state.last_seq();
        self.snapshot_seq = upto;
        let (snap, _) = ractor::concurrency::oneshot();
        let (purged_tx, purged_rx) = ractor::concurrency::oneshot();
        let actor = self.journal.actor();
        let sent = actor
            .cast(JournalMsg::Snapshot {
                state: Arc::new(self.state.clone()),
                reply: snap.into(),
            })
            .and_then(|()| {
                actor.cast(JournalMsg::Purge {
                    runs: runs.clone(),
                    upto,
                    reply: purged_tx.into(),
                })
            });
        if let Err(e) = sent {
            let _ = reply.send(Response::Error(ControlError::Internal(e.to_string())));
            return;
        }
        tracing::info!(runs = runs.len(), upto, "retention: removing finished runs");
        tokio::spawn(async move {
            let answer = match purged_rx.await {
                Ok(Ok((events, bytes))) => {
                    report.events = events;
                    report.event_bytes = bytes;
                    let removed = tokio::task::spawn_blocking(move || {
                        remove_logs(&layout, &runs, &mut report);
                        report
                    })
                    .await;
                    match removed {
                        Ok(report) => Response::Gc(Box::new(report)),
                        Err(e) => Response::Error(ControlError::Internal(e.to_string())),
                    }
                }
                Ok(Err(e)) => Response::Error(ControlError::Internal(e.to_string())),
                Err(_) => Response::Error(ControlError::Internal(
                    "the journal stopped before the purge".into(),
                )),
            };
            let _ = reply.send(answer);
        });
    }
}

/// What removing `runs` would free: their events and bytes, their log files and bytes.
fn footprint(
    journal: &Journal,
    layout: &DataDir,
    runs: &[RunId],
    report: &mut GcReport,
) -> Result<(), String> {
    for &run in runs {
        let (n, bytes) = journal.run_footprint(run).map_err(|e| e.to_string())?;
        report.events += n;
        report.event_bytes += bytes;
        let (files, bytes) = tree_size(&layout.run_logs(run));
        report.log_files += files;
        report.log_bytes += bytes;
    }
    Ok(())
}

/// Removes `logs/RUN` of every run, counting what it held.
fn remove_logs(layout: &DataDir, runs: &[RunId], report: &mut GcReport) {
    for &run in runs {
        let dir = layout.run_logs(run);
        let (files, bytes) = tree_size(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                report.log_files += files;
                report.log_bytes += bytes;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(run = %run, error = %e, "retention: could not remove the run's logs")
            }
        }
    }
}

/// Files and bytes under `dir` (0 if it does not exist).
fn tree_size(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let (mut files, mut bytes) = (0, 0);
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => {
                let (f, b) = tree_size(&entry.path());
                files += f;
                bytes += b;
            }
            Ok(m) => {
                files += 1;
                bytes += m.len();
            }
            Err(_) => {}
        }
    }
    (files, bytes)
}
