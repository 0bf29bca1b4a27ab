//! `troupe queue [--watch] [--verbose] [--json] [--limit N]`: tasks waiting to run, best first,
//! with `--watch` redrawn when it changes (pushed by the node, at most once a second).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use troupe::messages::control::{Request, Response, Subscription};

use crate::common::{block, connect, unexpected, wait_for_signal, Stream};
use crate::render::json::queue_json;
use crate::render::text::print_queue;

/// `troupe queue [--watch] [--verbose] [--json] [--limit N]`.
pub(crate) fn queue(
    data_dir: &Path,
    watch: bool,
    verbose: bool,
    json: bool,
    limit: u32,
) -> ExitCode {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    block("queue", async move {
        let mut conn = connect(data_dir).await?;
        let mut stream = None;
        if watch {
            let subscription = Subscription::Queue {
                waiting: verbose,
                limit,
                every: Duration::from_secs(1),
            };
            stream = Some(Stream::open(&conn, data_dir, subscription).await?);
        }
        // One signal listener for the whole watch: a SIGINT that arrives while a listing is
        // printed is still seen by the next wait.
        let signal = wait_for_signal();
        tokio::pin!(signal);
        let mut first = true;
        loop {
            let frame = match &mut stream {
                None => {
                    let request = Request::Queue {
                        waiting: verbose,
                        limit,
                    };
                    conn.request(request).await?
                }
                Some(stream) => tokio::select! {
                    // Both arms are cancellation safe (a frame cut off is not shown).
                    f = stream.next() => f?,
                    _ = &mut signal => return Ok(ExitCode::SUCCESS),
                },
            };
            let q = match frame {
                Response::Queue(q) => q,
                r => return Err(unexpected(r)),
            };
            let mut out = std::io::stdout().lock();
            if watch && !json {
                if terminal {
                    // Clear the screen and go home (ANSI), then redraw.
                    let _ = write!(out, "\x1b[2J\x1b[H");
                } else if !first {
                    // A pipe or file gets one listing after another, a blank line apart.
                    let _ = writeln!(out);
                }
            }
            first = false;
            let written = if json {
                writeln!(out, "{}", queue_json(&q))
            } else {
                print_queue(&q, verbose, &mut out)
            };
            let _ = out.flush();
            drop(out);
            if written.is_err() || !watch {
                return Ok(ExitCode::SUCCESS);
            }
        }
    })
}
