//! Answers read requests from the read model: `Node`, `Run`, `Summary`, `List`, `Queue`,
//! `Dashboard`, `Approvals`, `Events`, `Metrics`, `Failed` (dead letters), and dry runs of
//! commands (`DryRun`). None of them enters an actor's mailbox.

use crate::messages::control::{ControlError, Request, Response};
use crate::model::{RunId, Seq};
use crate::read::projection::{now, ReadModel};
use crate::read::views::{
    dashboard_view, failed_tasks, node_view, pending_approvals, queue_view, run_summary, run_view,
};
use crate::storage::codec::encode_message;
use crate::storage::Journal;

/// Most events one `Events` request returns.
pub const MAX_EVENTS_PER_REQUEST: u32 = 10_000;

/// Most encoded bytes of events one `Events` response carries (well under the 64 MiB frame
/// cap); at least one event is always returned.
pub const MAX_EVENTS_BYTES: usize = 16 << 20;

/// Whether `request` is a read this module answers.
pub fn is_read(request: &Request) -> bool {
    matches!(
        request,
        Request::Node
            | Request::Run(_)
            | Request::Summary(_)
            | Request::List
            | Request::Queue { .. }
            | Request::Dashboard { .. }
            | Request::Approvals
            | Request::Events { .. }
            | Request::Metrics { .. }
            | Request::DryRun(_)
            | Request::Output { .. }
            | Request::Workflow(_)
            | Request::Result(_)
            | Request::Tree(_)
            | Request::Agents
            | Request::Nodes
            | Request::Failed(_)
            | Request::Breakers
            | Request::Hooks { .. }
    )
}

/// Answers a read once the projection is fresh (see [`ReadModel::fresh`]). `None` if
/// `request` is not a read.
pub async fn answer(model: &ReadModel, request: &Request) -> Option<Response> {
    if !is_read(request) {
        return None;
    }
    if let Request::Events { run, after, limit } = *request {
        let journal = model.journal().clone();
        let r = tokio::task::spawn_blocking(move || events(&journal, run, after, limit)).await;
        return Some(r.unwrap_or_else(|e| Response::Error(ControlError::Internal(e.to_string()))));
    }
    if let Request::Output { run, ref task } = *request {
        if let Err(e) = model.fresh(false).await {
            return Some(Response::Error(e));
        }
        let _permit = model.journal_reads.acquire().await;
        // A copy of the one run, so the journal is read without holding the projection.
        let excerpt = model.read().state.excerpt(run);
        let outputs = crate::read::outputs::Outputs::new(model.journal().clone());
        let task = task.clone();
        let r = tokio::task::spawn_blocking(move || {
            crate::read::outputs::output_view(&outputs, &excerpt, run, &task)
        })
        .await;
        return Some(match r {
            Ok(Ok(v)) => Response::Output(Box::new(v)),
            Ok(Err(e)) => Response::Error(e),
            Err(e) => Response::Error(ControlError::Internal(e.to_string())),
        });
    }
    if let Request::Result(run) = *request {
        if let Err(e) = model.fresh(false).await {
            return Some(Response::Error(e));
        }
        let _permit = model.journal_reads.acquire().await;
        let excerpt = model.read().state.excerpt(run);
        let outputs = crate::read::outputs::Outputs::new(model.journal().clone());
        let r = tokio::task::spawn_blocking(move || {
            crate::read::agents::result_view(&outputs, &excerpt, run)
        })
        .await;
        return Some(match r {
            Ok(Ok(v)) => Response::Result(Box::new(v)),
            Ok(Err(e)) => Response::Error(e),
            Err(e) => Response::Error(ControlError::Internal(e.to_string())),
        });
    }
    if let Request::Metrics { since } = *request {
        let journal = model.journal().clone();
        let r = tokio::task::spawn_blocking(move || {
            crate::read::metrics::metrics_report(&journal, now(), since)
        })
        .await;
        return Some(match r {
            Ok(Ok(report)) => Response::Metrics(Box::new(report)),
            Ok(Err(e)) => Response::Error(ControlError::Internal(e.to_string())),
            Err(e) => Response::Error(ControlError::Internal(e.to_string())),
        });
    }
    // Views that show write-side facts (running attempts, free slots, STOP) wait for a
    // running scheduler; run views only need the journal's truth.
    let write_side = matches!(
        request,
        Request::Node | Request::Queue { .. } | Request::Dashboard { .. } | Request::Nodes
    );
    if let Err(e) = model.fresh(write_side).await {
        return Some(Response::Error(e));
    }
    Some(view(model, request))
}

/// Computes the answer to a read from the projection as it is now.
pub fn view(model: &ReadModel, request: &Request) -> Response {
    let p = model.read();
    let cx = model.context();
    let facts = &model.facts;
    let not_found = |run: RunId| Response::Error(ControlError::NotFound(format!("no run {run}")));
    match *request {
        Request::Node => Response::Node(node_view(&p, facts, cx)),
        Request::Nodes => Response::Nodes(facts.nodes()),
        Request::Run(run) => match p.state.run(run) {
            Some(r) => {
                let mut v = run_view(r, Some(facts));
                crate::read::views::with_nodes(&mut v, run, p.state.cluster());
                Response::Run(Box::new(v))
            }
            None => not_found(run),
        },
        Request::Summary(run) => match p.state.run(run) {
            Some(r) => Response::Runs(vec![run_summary(r)]),
            None => not_found(run),
        },
        Request::List => Response::Runs(p.state.runs().map(run_summary).collect()),
        Request::Queue { waiting, limit } => {
            Response::Queue(Box::new(queue_view(&p, facts, cx, waiting, limit, now())))
        }
        Request::Dashboard { limit } => {
            Response::Dashboard(Box::new(dashboard_view(&p, facts, cx, limit, now())))
        }
        Request::Approvals => Response::Approvals(pending_approvals(&p.state, cx.approval_timeout)),
        Request::Failed(ref filter) => Response::Failed(failed_tasks(&p.state, filter, now())),
        Request::Breakers => Response::Breakers(crate::read::breakers::breakers_view(&p.state, cx)),
        Request::Workflow(run) => match p.state.run(run) {
            Some(r) => Response::Workflow(Box::new((**r.workflow()).clone())),
            None => not_found(run),
        },
        Request::DryRun(ref command) => crate::read::dry_run::dry_run(&p, command, now()),
        Request::Agents => Response::Agents(crate::model::routing::stats(&p.state, &cx.agents)),
        Request::Tree(run) => match crate::read::agents::tree_view(&p.state, run) {
            Ok(v) => Response::Tree(Box::new(v)),
            Err(e) => Response::Error(e),
        },
        Request::Hooks { ref state } => {
            match crate::read::hooks::hook_calls(&p.state, state.as_deref()) {
                Ok(v) => Response::Hooks(v),
                Err(e) => Response::Error(e),
            }
        }
        ref other => Response::Error(ControlError::BadRequest(format!(
            "the read model does not answer {other:?}"
        ))),
    }
}

/// Up to `limit` (at most [`MAX_EVENTS_PER_REQUEST`]) journal events after `after`, of one
/// run or all, cut at [`MAX_EVENTS_BYTES`].
pub fn events(journal: &Journal, run: Option<RunId>, after: Seq, limit: u32) -> Response {
    let limit = limit.clamp(1, MAX_EVENTS_PER_REQUEST) as usize;
    let result = match run {
        Some(run) => journal.run_events_after(run, after, limit),
        None => journal
            .events_from(after.saturating_add(1))
            .take(limit)
            .collect::<Result<Vec<_>, _>>(),
    };
    match result {
        Ok(mut events) => {
            let mut bytes = 0;
            let keep = events
                .iter()
                .take_while(|(_, record)| {
                    let first = bytes == 0;
                    bytes += encode_message(record).map(|v| v.len()).unwrap_or(0);
                    first || bytes <= MAX_EVENTS_BYTES
                })
                .count();
            events.truncate(keep);
            Response::Events(events)
        }
        Err(e) => Response::Error(ControlError::Internal(e.to_string())),
    }
}
