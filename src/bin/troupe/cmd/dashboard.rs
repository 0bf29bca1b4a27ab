//! `troupe dashboard [--interval DUR]`: a live terminal view of the node serving the data dir,
//! refreshed with one [`Request::Dashboard`] round trip per interval. When the node goes away
//! the screen says "disconnected" and keeps trying to reconnect at every refresh. `q` (or
//! Esc, or Ctrl-C) quits. The drawing is [`crate::render::dashboard`].

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use troupe::client::Client;
use troupe::messages::control::{DashboardView, Request, Response};

use crate::common::{EXIT_INTERNAL, EXIT_INVALID};
use crate::render::dashboard::{draw, Screen};

/// Queue entries asked for (more than any terminal shows).
const QUEUE_ROWS: u32 = 50;

/// Fetches one view over `client`, connecting first if needed; on failure the client is
/// dropped so the next refresh reconnects.
async fn fetch(data_dir: &Path, client: &mut Option<Client>) -> Result<DashboardView, String> {
    if client.is_none() {
        *client = Some(Client::connect(data_dir).await.map_err(|e| e.to_string())?);
    }
    let c = client.as_mut().expect("just connected");
    match c.request(&Request::Dashboard { limit: QUEUE_ROWS }).await {
        Ok(Response::Dashboard(v)) => Ok(*v),
        Ok(Response::Error(e)) => Err(e.to_string()),
        Ok(other) => {
            *client = None;
            Err(format!("unexpected answer {other:?}"))
        }
        Err(e) => {
            *client = None;
            Err(e.to_string())
        }
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut terminal = ratatui::init();
    let mut client = None;
    let mut screen = Screen {
        view: None,
        error: None,
        fetched_in: Duration::ZERO,
        interval,
    };
    let result = (|| -> std::io::Result<()> {
        loop {
            let started = Instant::now();
            match rt.block_on(fetch(data_dir, &mut client)) {
                Ok(v) => {
                    screen.view = Some(v);
                    screen.error = None;
                }
                Err(e) => screen.error = Some(e),
            }
            screen.fetched_in = started.elapsed();
            terminal.draw(|f| draw(f, &screen))?;
            let next = started + interval;
            // Keys until the next refresh.
            loop {
                let left = next.saturating_duration_since(Instant::now());
                if left.is_zero() || !event::poll(left)? {
                    break;
                }
                if let Event::Key(k) = event::read()? {
                    let quit = k.kind == KeyEventKind::Press
                        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                            || (k.code == KeyCode::Char('c')
                                && k.modifiers.contains(KeyModifiers::CONTROL)));
                    if quit {
                        return Ok(());
                    }
                }
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
