//! The inbox (`troupe node start --inbox DIR`): workflow files dropped into a folder are
//! submitted.
//!
//! A file counts as complete when the OS watcher (inotify, through `notify`'s
//! `RecommendedWatcher`) sees it closed after writing or renamed into DIR. A file seen only by
//! a scan (the rescan at start, after the watcher's queue overflowed, or every
//! [`POLL_INTERVAL`] with the polling fallback) is read once its size and mtime stayed the
//! same for [`SETTLE`]; a file the OS watcher sees being written waits for its close. Dotfiles,
//! `*.tmp`, `*~` and the `submitted/` and `rejected/` folders are ignored.
//!
//! Each file is read, hashed (SHA-256) and validated like `troupe validate`; a valid one is
//! submitted with `origin = "inbox:sha256:HEX"` and, once the submission is durable, moved to
//! `submitted/RUN.EXT`; an invalid one moves to `rejected/NAME` beside `rejected/NAME.error`.
//! The scheduler returns the existing run for an origin it already holds, so a crash between
//! the submission and the move (the file is still in DIR at the next start) never submits
//! it twice. Up to [`IN_FLIGHT`] files are submitted at once, so the journal's group commit
//! batches them.
//!
//! # Layout
//! - this file: checking DIR ([`check_dir`]), the watcher and the loop that decides when a
//!   file is read ([`Inbox`]).
//! - `file`: one file: read, hash, validate, submit, move.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::context::{NodeContext, NodeError};

mod file;

pub use file::origin_of;
use file::Outcome;
pub use file::{REJECTED, SUBMITTED};

/// How long a file seen only by a scan must keep its size and mtime before it is read.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How often the polling fallback scans DIR, and how often settling files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Files submitted at once (their submissions share the journal's group commits).
pub const IN_FLIGHT: usize = 64;

/// Checks that `dir` can serve as an inbox: it is a directory and this process can write to
/// it (a probe file is created and removed); creates `submitted/` and `rejected/`. Returns
/// the absolute path. Errors name the path ([`NodeError::Inbox`]).
pub fn check_dir(dir: &Path) -> Result<PathBuf, NodeError> {
    let err = |message: String| NodeError::Inbox {
        path: dir.to_path_buf(),
        message,
    };
    let abs = std::path::absolute(dir).map_err(|e| err(e.to_string()))?;
    match std::fs::metadata(&abs) {
        Ok(m) if !m.is_dir() => return Err(err("is not a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err("does not exist (create the directory first)".into()))
        }
        Err(e) => return Err(err(e.to_string())),
    }
    let probe = abs.join(format!(".troupe-inbox-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        err(format!(
            "is not writable ({e}); the inbox moves files out of it"
        ))
    })?;
    let _ = std::fs::remove_file(&probe);
    for sub in [SUBMITTED, REJECTED] {
        let p = abs.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| err(format!("cannot create {sub}/: {e}")))?;
        if !std::fs::metadata(&p).is_ok_and(|m| m.is_dir()) {
            return Err(err(format!("{sub} is not a directory")));
        }
    }
    Ok(abs)
}

/// Whether a name in DIR is never a workflow file: dotfiles, `*.tmp`, `*~`, and the
/// `submitted` and `rejected` folders.
fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with('~')
        || name == SUBMITTED
        || name == REJECTED
}

/// What the watcher saw.
enum Seen {
    /// Closed after writing, or renamed into DIR: read it now.
    Complete(PathBuf),
    /// Being written (the OS watcher saw it created or modified): wait for its close.
    Writing(PathBuf),
    /// Seen by a scan or the polling watcher: read it once it settled.
    Candidate(PathBuf),
    /// Scan DIR: at start (`false`), or because events may have been lost (`true`: the OS
    /// watcher's queue overflowed; a close may be among them, so files being written are
    /// settled like the rest).
    Rescan(bool),
}

/// A running inbox; [`Inbox::stop`] ends it.
pub struct Inbox {
    /// Tells the loop to stop.
    stop: Arc<tokio::sync::Notify>,
    /// The loop; it ends after the files in flight are handled.
    task: tokio::task::JoinHandle<()>,
}

impl Inbox {
    /// Starts watching `dir` (checked by [`check_dir`]) and submitting to the node of
    /// `shared`. With `force_poll` (or when the OS watcher cannot start) DIR is polled.
    pub fn start(
        shared: Arc<NodeContext>,
        dir: PathBuf,
        force_poll: bool,
    ) -> Result<Inbox, NodeError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = watch(&dir, tx.clone(), force_poll).map_err(|message| NodeError::Inbox {
            path: dir.clone(),
            message,
        })?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(run(shared, dir, watcher, tx, rx, Arc::clone(&stop)));
        Ok(Inbox { stop, task })
    }

    /// Stops watching and waits for the files in flight (their submissions and moves).
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// Starts the OS watcher on `dir`, or the polling one when that fails or `force_poll`.
fn watch(
    dir: &Path,
    tx: mpsc::UnboundedSender<Seen>,
    force_poll: bool,
) -> Result<Box<dyn notify::Watcher + Send>, String> {
    use notify::{RecursiveMode, Watcher};
    if !force_poll {
        let os = tx.clone();
        let started = notify::RecommendedWatcher::new(
            move |res: notify::Result<notify::Event>| os_event(&os, res),
            notify::Config::default(),
        )
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
        match started {
            Ok(w) => return Ok(Box::new(w)),
            Err(e) => tracing::warn!(
                inbox = %dir.display(), error = %e,
                "inbox: the OS file watcher cannot start; polling instead"
            ),
        }
    }
    let mut w = notify::PollWatcher::new(
        move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if !matches!(ev.kind, notify::EventKind::Remove(_)) => {
                for p in ev.paths {
                    let _ = tx.send(Seen::Candidate(p));
                }
            }
            Ok(_) => {}
            Err(_) => {
                let _ = tx.send(Seen::Rescan(true));
            }
        },
        notify::Config::default().with_poll_interval(POLL_INTERVAL),
    )
    .map_err(|e| format!("cannot watch it: {e}"))?;
    w.watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch it: {e}"))?;
    tracing::info!(inbox = %dir.display(), "inbox: polling");
    Ok(Box::new(w))
}

/// Maps an OS watcher's event.
fn os_event(tx: &mpsc::UnboundedSender<Seen>, res: notify::Result<notify::Event>) {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    use notify::EventKind;
    let ev = match res {
        Ok(ev) => ev,
        Err(_) => {
            let _ = tx.send(Seen::Rescan(true));
            return;
        }
    };
    if ev.need_rescan() {
        let _ = tx.send(Seen::Rescan(true));
        return;
    }
    let seen: fn(PathBuf) -> Seen = match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Seen::Complete,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
            Seen::Writing
        }
        _ => return,
    };
    for p in ev.paths {
        let _ = tx.send(seen(p));
    }
}

/// A file waiting to settle: what it looked like when last seen to change.
struct Settling {
    /// Size in bytes and mtime at `since`.
    look: (u64, Option<SystemTime>),
    /// When `look` was first seen.
    since: Instant,
}

/// The loop's state.
struct Loop {
    shared: Arc<NodeContext>,
    dir: PathBuf,
    /// Files seen by a scan, waiting to settle.
    settling: HashMap<PathBuf, Settling>,
    /// Files the OS watcher saw being written and not yet closed: a scan leaves them alone.
    writing: HashSet<PathBuf>,
    /// Files being handled.
    busy: HashSet<PathBuf>,
    /// Files ready to be handled once fewer than [`IN_FLIGHT`] are.
    queued: VecDeque<PathBuf>,
    /// The files being handled.
    tasks: JoinSet<(PathBuf, Outcome)>,
}

async fn run(
    shared: Arc<NodeContext>,
    dir: PathBuf,
    watcher: Box<dyn notify::Watcher + Send>,
    tx: mpsc::UnboundedSender<Seen>,
    mut rx: mpsc::UnboundedReceiver<Seen>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut l = Loop {
        shared,
        dir,
        settling: HashMap::new(),
        writing: HashSet::new(),
        busy: HashSet::new(),
        queued: VecDeque::new(),
        tasks: JoinSet::new(),
    };
    // The watcher runs before the scan: a file that arrives meanwhile is seen by one or both.
    let _ = tx.send(Seen::Rescan(false));
    drop(tx);
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // All arms are cancellation safe: a Notify, mpsc recv, an interval, JoinSet::join_next.
            _ = stop.notified() => break,
            seen = rx.recv() => match seen {
                Some(s) => l.seen(s),
                None => break,
            },
            _ = tick.tick() => l.settle(),
            Some(done) = l.tasks.join_next() => {
                if let Ok((path, outcome)) = done {
                    l.busy.remove(&path);
                    if outcome == Outcome::Retry {
                        l.candidate(path);
                    }
                }
                l.admit();
            }
        }
    }
    drop(watcher);
    while l.tasks.join_next().await.is_some() {}
}

impl Loop {
    /// Whether `path` is a name in DIR the inbox handles.
    fn handles(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !ignored(n))
    }

    fn seen(&mut self, seen: Seen) {
        match seen {
            Seen::Complete(p) if self.handles(&p) => {
                self.settling.remove(&p);
                self.writing.remove(&p);
                self.ready(p);
            }
            Seen::Writing(p) if self.handles(&p) => {
                // Its close (a `Complete`) will say when to read it.
                self.settling.remove(&p);
                self.writing.insert(p);
            }
            Seen::Candidate(p) if self.handles(&p) => self.candidate(p),
            Seen::Rescan(lost) => {
                if lost {
                    self.writing.clear();
                }
                self.scan();
            }
            Seen::Complete(_) | Seen::Writing(_) | Seen::Candidate(_) => {}
        }
    }

    /// Makes every file in DIR a candidate.
    fn scan(&mut self) {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| !t.is_dir()) {
                        let p = e.path();
                        if self.handles(&p) {
                            self.candidate(p);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(inbox = %self.dir.display(), error = %e, "inbox: cannot scan")
            }
        }
    }

    /// Starts (or restarts) settling `path`.
    fn candidate(&mut self, path: PathBuf) {
        if self.busy.contains(&path) || self.writing.contains(&path) {
            return;
        }
        let look = look(&path);
        if let Some(look) = look {
            let since = Instant::now();
            self.settling
                .entry(path)
                .and_modify(|s| {
                    if s.look != look {
                        *s = Settling { look, since };
                    }
                })
                .or_insert(Settling { look, since });
        }
    }

    /// Reads the files that kept their look for [`SETTLE`]; forgets the ones that vanished.
    fn settle(&mut self) {
        let mut due = Vec::new();
        self.settling.retain(|p, s| match look(p) {
            None => false,
            Some(now) if now != s.look => {
                *s = Settling {
                    look: now,
                    since: Instant::now(),
                };
                true
            }
            Some(_) if s.since.elapsed() >= SETTLE => {
                due.push(p.clone());
                false
            }
            Some(_) => true,
        });
        for p in due {
            self.ready(p);
        }
    }

    fn ready(&mut self, path: PathBuf) {
        if self.busy.insert(path.clone()) {
            self.queued.push_back(path);
            self.admit();
        }
    }

    /// Starts queued files while fewer than [`IN_FLIGHT`] are in flight.
    fn admit(&mut self) {
        while self.tasks.len() < IN_FLIGHT {
            let Some(path) = self.queued.pop_front() else {
                return;
            };
            let (shared, dir) = (Arc::clone(&self.shared), self.dir.clone());
            self.tasks.spawn(async move {
                let outcome = file::handle(&shared, &dir, path.clone()).await;
                (path, outcome)
            });
        }
    }
}

/// A file's size and mtime; `None` if it is gone.
fn look(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_names() {
        for n in [".x.toml", "a.toml.tmp", "a.toml~", "submitted", "rejected"] {
            assert!(ignored(n), "{n}");
        }
        for n in ["a.toml", "b.json", "blob"] {
            assert!(!ignored(n), "{n}");
        }
    }
}
