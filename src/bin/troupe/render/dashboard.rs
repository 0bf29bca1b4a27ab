//! Drawing `troupe dashboard` (ratatui): one [`Screen`] onto a frame.
//!
//! What it shows: node state (running / halted), running attempts with elapsed time (green),
//! the queue (yellow), the last 10 completions (green succeeded, red otherwise), a throughput
//! sparkline of the last 60 s and the last hour's error rate; "disconnected" while no node
//! answers. The refresh loop is [`crate::cmd::dashboard`]; `troupe bench metrics` draws with
//! it too.

use std::time::Duration;

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use troupe::messages::control::DashboardView;
use troupe::model::quote::printable;
use troupe::model::{TaskState, Timestamp};

/// What the screen shows.
pub(crate) struct Screen {
    /// The last view fetched, if any.
    pub(crate) view: Option<DashboardView>,
    /// Why the last fetch failed (the node is gone or not started), if it did.
    pub(crate) error: Option<String>,
    /// How long the last fetch took.
    pub(crate) fetched_in: Duration,
    /// The refresh interval.
    pub(crate) interval: Duration,
}

/// `1h02m`-style text for a duration.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn state_color(state: TaskState) -> Color {
    match state {
        TaskState::Succeeded | TaskState::Running => Color::Green,
        TaskState::Ready
        | TaskState::Pending
        | TaskState::Retrying
        | TaskState::AwaitingApproval
        | TaskState::Suspended => Color::Yellow,
        _ => Color::Red,
    }
}

/// Draws `screen` on `frame`.
pub(crate) fn draw(frame: &mut Frame, screen: &Screen) {
    let area = frame.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(5),
            Constraint::Min(4),
            Constraint::Length(12),
            Constraint::Length(1),
        ])
        .split(area);
    frame.render_widget(header(screen), rows[0]);
    let footer = format!(
        " q quit · refresh {} · last fetch {:.1} ms",
        short(screen.interval),
        screen.fetched_in.as_secs_f64() * 1000.0
    );
    frame.render_widget(
        Paragraph::new(footer).style(Style::default().fg(Color::DarkGray)),
        rows[4],
    );
    let Some(v) = &screen.view else {
        return;
    };
    let now = v.queue.now;
    let top = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(70), Constraint::Percentage(30)])
        .split(rows[1]);
    let per_sec = v.queue.throughput;
    frame.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" throughput, last 60 s ({per_sec:.1}/s) ")),
            )
            .data(
                v.throughput
                    .iter()
                    .map(|&n| u64::from(n))
                    .collect::<Vec<_>>(),
            )
            .style(Style::default().fg(Color::Green)),
        top[0],
    );
    let rate_color = if v.error_rate > 0.10 {
        Color::Red
    } else if v.error_rate > 0.0 {
        Color::Yellow
    } else {
        Color::Green
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(
                format!("{:.1}%", v.error_rate * 100.0),
                Style::default().fg(rate_color).add_modifier(Modifier::BOLD),
            )),
            Line::from("of tasks failed, last hour"),
        ])
        .block(Block::default().borders(Borders::ALL).title(" error rate ")),
        top[1],
    );
    let mid = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(rows[2]);
    running_table(frame, v, now, mid[0]);
    queue_table(frame, v, now, mid[1]);
    completions_table(frame, v, now, rows[3]);
}

fn header(screen: &Screen) -> Paragraph<'static> {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let line = match (&screen.error, &screen.view) {
        (Some(e), _) => Line::from(vec![
            Span::styled(
                " troupe · DISCONNECTED ",
                bold.fg(Color::White).bg(Color::Red),
            ),
            Span::raw(format!(
                " {e} · reconnecting every {}",
                short(screen.interval)
            )),
        ]),
        (None, Some(v)) => {
            let n = &v.node;
            let (state, color) = if n.halted {
                ("halted", Color::Yellow)
            } else {
                ("running", Color::Green)
            };
            Line::from(vec![
                Span::styled(" troupe ", bold),
                Span::styled(format!("● {state}"), bold.fg(color)),
                Span::raw(format!(
                    " · node {} · {}/{} workers busy · {} active runs{} · {} ready · seq {}",
                    n.node_id,
                    n.running_attempts,
                    n.workers,
                    n.active_runs,
                    if n.active_child_runs > 0 {
                        format!(" ({} children)", n.active_child_runs)
                    } else {
                        String::new()
                    },
                    n.queued_tasks,
                    n.last_seq
                )),
            ])
        }
        (None, None) => Line::from(" troupe · connecting…"),
    };
    Paragraph::new(line)
}

fn running_table(frame: &mut Frame, v: &DashboardView, now: Timestamp, area: Rect) {
    let rows = v.running.iter().map(|a| {
        Row::new(vec![
            Cell::from(format!("{}/{}", a.run, a.task)),
            Cell::from(if a.compensation {
                format!("undo #{}", a.attempt)
            } else {
                format!("#{}", a.attempt)
            }),
            Cell::from(short(now.saturating_since(a.started_at))),
            Cell::from(crate::render::text::usage_text(&a.usage)),
        ])
        .style(Style::default().fg(Color::Green))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(20),
            Constraint::Length(8),
            Constraint::Length(8),
            // Usage only takes room when some running attempt reported any.
            Constraint::Length(if v.running.iter().any(|a| !a.usage.is_empty()) {
                24
            } else {
                0
            }),
        ],
    )
    .header(
        Row::new(["RUN/TASK", "ATTEMPT", "ELAPSED", "USAGE"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(format!(" running ({}) ", v.running.len())),
    );
    frame.render_widget(table, area);
}

fn queue_table(frame: &mut Frame, v: &DashboardView, now: Timestamp, area: Rect) {
    let rows = v.queue.entries.iter().map(|e| {
        Row::new(vec![
            Cell::from(format!("{}/{}", e.run, e.task)),
            Cell::from(e.state.as_str()),
            Cell::from(e.priority.to_string()),
            Cell::from(printable(e.pool.as_deref().unwrap_or_default()).into_owned()),
            Cell::from(short(now.saturating_since(e.waiting_since))),
            // Why a ready task waits: a cap, a breaker ("breaker api open until T").
            Cell::from(printable(e.blocked.as_deref().unwrap_or_default()).into_owned()),
        ])
        .style(Style::default().fg(state_color(e.state)))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(40),
            Constraint::Length(9),
            Constraint::Length(4),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new(["RUN/TASK", "STATE", "PRIO", "POOL", "WAIT", "HELD BY"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(format!(" queue ({}) ", v.queue.total)),
    );
    frame.render_widget(table, area);
}

fn completions_table(frame: &mut Frame, v: &DashboardView, now: Timestamp, area: Rect) {
    let rows = v.completions.iter().map(|c| {
        Row::new(vec![
            Cell::from(format!("{}/{}", c.run, c.task)),
            Cell::from(printable(&c.workflow).into_owned()),
            Cell::from(c.state.as_str()),
            Cell::from(c.attempts.to_string()),
            Cell::from(format!(
                "{} ago",
                short(now.saturating_since(c.finished_at))
            )),
        ])
        .style(Style::default().fg(state_color(c.state)))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(20),
            Constraint::Length(16),
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(12),
        ],
    )
    .header(
        Row::new(["RUN/TASK", "WORKFLOW", "STATE", "ATTEMPTS", "ENDED"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(" last completions "),
    );
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use troupe::messages::control::{Completion, NodeView, QueueEntry, QueueView, RunningAttempt};
    use troupe::model::{RunId, TaskId};

    fn text(t: &Terminal<TestBackend>) -> String {
        let b = t.backend().buffer();
        let mut out = String::new();
        for y in 0..b.area.height {
            for x in 0..b.area.width {
                out.push_str(b[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    fn color_of(t: &Terminal<TestBackend>, needle: &str) -> Color {
        let b = t.backend().buffer();
        for y in 0..b.area.height {
            let row: String = (0..b.area.width).map(|x| b[(x, y)].symbol()).collect();
            if let Some(x) = row.find(needle) {
                return b[(x as u16, y)].fg;
            }
        }
        panic!("{needle} not on screen:\n{}", text(t));
    }

    fn view() -> DashboardView {
        let run = RunId::from_ulid(ulid::Ulid::from_parts(1_000, 7));
        let now = Timestamp(1_000_000);
        DashboardView {
            node: NodeView {
                node_id: "NODE1".into(),
                pid: 1,
                halted: false,
                stop_file: false,
                fault: None,
                active_runs: 1,
                total_runs: 3,
                active_child_runs: 0,
                running_attempts: 1,
                queued_tasks: 1,
                workers: 4,
                last_seq: 42,
                waiting_tasks: 1,
                last_progress: now,
            },
            queue: QueueView {
                now,
                halted: false,
                running: 1,
                workers: 4,
                throughput: 2.5,
                total: 1,
                entries: vec![QueueEntry {
                    run,
                    task: TaskId::new("waiting-task").unwrap(),
                    workflow: "wf".into(),
                    state: TaskState::Ready,
                    priority: 5,
                    pool: Some("cc".into()),
                    waiting_since: Timestamp(now.0 - 3_000),
                    retry_at: None,
                    estimated_start: None,
                    blocked: None,
                    score: Default::default(),
                    deadline: None,
                    labels: Vec::new(),
                }],
            },
            running: vec![RunningAttempt {
                run,
                task: TaskId::new("busy-task").unwrap(),
                workflow: "wf".into(),
                attempt: 2,
                compensation: false,
                started_at: Timestamp(now.0 - 65_000),
                usage: Default::default(),
            }],
            completions: vec![
                Completion {
                    run,
                    task: TaskId::new("bad-task").unwrap(),
                    workflow: "wf".into(),
                    state: TaskState::Failed,
                    attempts: 3,
                    finished_at: Timestamp(now.0 - 1_000),
                },
                Completion {
                    run,
                    task: TaskId::new("good-task").unwrap(),
                    workflow: "wf".into(),
                    state: TaskState::Succeeded,
                    attempts: 1,
                    finished_at: Timestamp(now.0 - 2_000),
                },
            ],
            throughput: (0..60).collect(),
            error_rate: 0.5,
        }
    }

    #[test]
    fn draws_every_panel_with_state_colors() {
        let mut t = Terminal::new(TestBackend::new(180, 40)).unwrap();
        let screen = Screen {
            view: Some(view()),
            error: None,
            fetched_in: Duration::from_millis(3),
            interval: Duration::from_secs(1),
        };
        t.draw(|f| draw(f, &screen)).unwrap();
        let s = text(&t);
        for needle in [
            "● running",
            "1/4 workers busy",
            "busy-task",
            "1m05s",
            "waiting-task",
            "good-task",
            "bad-task",
            "50.0%",
            "throughput, last 60 s (2.5/s)",
            "q quit",
        ] {
            assert!(s.contains(needle), "{needle} missing:\n{s}");
        }
        assert_eq!(color_of(&t, "busy-task"), Color::Green);
        assert_eq!(color_of(&t, "waiting-task"), Color::Yellow);
        assert_eq!(color_of(&t, "bad-task"), Color::Red);
        assert_eq!(color_of(&t, "good-task"), Color::Green);
    }

    #[test]
    fn halted_and_disconnected_states_are_shown() {
        let mut t = Terminal::new(TestBackend::new(120, 30)).unwrap();
        let mut v = view();
        v.node.halted = true;
        let mut screen = Screen {
            view: Some(v),
            error: None,
            fetched_in: Duration::ZERO,
            interval: Duration::from_secs(1),
        };
        t.draw(|f| draw(f, &screen)).unwrap();
        assert!(text(&t).contains("● halted"));
        screen.error = Some("no node serves /tmp/x".into());
        t.draw(|f| draw(f, &screen)).unwrap();
        let s = text(&t);
        assert!(s.contains("DISCONNECTED"), "{s}");
        assert!(s.contains("no node serves /tmp/x"), "{s}");
        // The last view stays on screen below the banner.
        assert!(s.contains("busy-task"), "{s}");
    }
}
