//! `troupe dashboard [--interval DUR]`: a live terminal view of the node serving the data dir,
//! pushed by the node once per interval (a dashboard subscription). When the node goes away
//! the screen says why and reconnects once per interval. `q` (or
//! Esc, or Ctrl-C) quits. The drawing is [`crate::render::dashboard`].

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use troupe::client::Client;
use troupe::messages::control::{DashboardView, Response, Subscription};
use troupe::model::Timestamp;

use crate::common::{EXIT_INTERNAL, EXIT_INVALID};
use crate::render::dashboard::{draw, Screen};

/// Queue entries asked for (more than any terminal shows).
const QUEUE_ROWS: u32 = 50;

/// How often the screen looks for keys and new frames.
const KEY_POLL: Duration = Duration::from_millis(50);

/// Keeps a dashboard subscription open and sends each view (or why there is none) to
/// `frames`; after a failure it reconnects once per `interval`. Ends when `frames` closes.
async fn subscribe(
    data_dir: std::path::PathBuf,
    interval: Duration,
    frames: std::sync::mpsc::Sender<Result<DashboardView, String>>,
) {
    loop {
        let subscription = Subscription::Dashboard {
            limit: QUEUE_ROWS,
            every: interval,
        };
        let stream = match Client::connect(&data_dir).await {
            Ok(c) => c.subscribe(subscription).await,
            Err(e) => Err(e),
        };
        let failure = match stream {
            Err(e) => e.to_string(),
            Ok(mut stream) => loop {
                let frame = match stream.next().await {
                    Ok(Some(Response::Dashboard(v))) => Ok(*v),
                    Ok(Some(Response::Error(e))) => break e.to_string(),
                    Ok(Some(other)) => break format!("unexpected answer {other:?}"),
                    Ok(None) => break "the node closed the connection".to_string(),
                    Err(e) => break e.to_string(),
                };
                if frames.send(frame).is_err() {
                    return;
                }
            },
        };
        if frames.send(Err(failure)).is_err() {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Runs the dashboard until `q`.
pub(crate) fn run(data_dir: &Path, interval: Duration) -> ExitCode {
    if interval < Duration::from_millis(50) {
        eprintln!("troupe dashboard: --interval must be at least 50ms");
        return ExitCode::from(EXIT_INVALID);
    }
    // ratatui::init panics without a terminal (and leaves an escape on stdout): refuse first.
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        eprintln!(
            "troupe dashboard: needs a terminal on stdin and stdout; for a script use \
             `troupe status --json`, `troupe queue --json` or `troupe metrics --json`"
        );
        return ExitCode::from(EXIT_INVALID);
    }
    let rt = crate::common::runtime();
    let (frames, received) = std::sync::mpsc::channel();
    rt.spawn(subscribe(data_dir.to_owned(), interval, frames));
    let mut terminal = ratatui::init();
    let mut screen = Screen {
        view: None,
        error: None,
        fetched_in: Duration::ZERO,
        interval,
    };
    let result = (|| -> std::io::Result<()> {
        let mut dirty = true;
        loop {
            // Frames pushed by the node since the last look; the newest wins.
            while let Ok(frame) = received.try_recv() {
                match frame {
                    Ok(v) => {
                        // How old the view was when it arrived.
                        screen.fetched_in = Timestamp::from_system_time(SystemTime::now())
                            .saturating_since(v.queue.now);
                        screen.view = Some(v);
                        screen.error = None;
                    }
                    Err(e) => screen.error = Some(e),
                }
                dirty = true;
            }
            if dirty {
                terminal.draw(|f| draw(f, &screen))?;
                dirty = false;
            }
            // Keys, looking for frames again every 50 ms.
            if !event::poll(KEY_POLL)? {
                continue;
            }
            match event::read()? {
                Event::Key(k) => {
                    let quit = k.kind == KeyEventKind::Press
                        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                            || (k.code == KeyCode::Char('c')
                                && k.modifiers.contains(KeyModifiers::CONTROL)));
                    if quit {
                        return Ok(());
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    })();
    ratatui::restore();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("troupe dashboard: {e}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}
