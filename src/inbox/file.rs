//! One inbox file: read, hash, validate, submit, then move to `submitted/` or `rejected/`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::context::NodeContext;
use crate::messages::control::{ControlError, Request, Response};
use crate::model::parse::{too_large_message, WorkflowFormat, MAX_WORKFLOW_BYTES};
use crate::model::{SpecError, Workflow};

/// `DIR/submitted/`: files whose run is durable, as `RUN.EXT`.
pub const SUBMITTED: &str = "submitted";
/// `DIR/rejected/`: invalid files, each beside its `NAME.error`.
pub const REJECTED: &str = "rejected";

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Submitted (or found submitted by its origin) and moved to `submitted/`.
    Submitted,
    /// Invalid: moved to `rejected/` with its `.error`.
    Rejected,
    /// Gone before it was read, or not a regular file: nothing to do.
    Skipped,
    /// The node could not take it now (stopping, internal error): try again later.
    Retry,
}

/// A file read and checked, before submission.
enum Prepared {
    /// A valid workflow, its working directories anchored and its origin set.
    Valid(Box<Workflow>),
    /// Why the file is not a workflow, as `troupe validate` prints it.
    Invalid(String),
    /// Nothing to submit (vanished, or a directory).
    Skip,
}

/// The workflow origin of a file with these bytes: `inbox:sha256:HEX`.
pub fn origin_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(13 + 64);
    s.push_str("inbox:sha256:");
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The text of a `.error` file: what `troupe validate FILE` prints for it.
fn validation_text(e: &SpecError) -> String {
    let n = e.problems.len();
    format!(
        "{e}\n{n} problem{} found; the workflow is invalid\n",
        if n == 1 { "" } else { "s" }
    )
}

/// Reads and checks `path` (a file directly in the inbox `dir`): relative `cwd`s are
/// anchored at `dir`, and the origin is the hash of the bytes read.
fn prepare(dir: &Path, path: &Path) -> Prepared {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let invalid = |e: SpecError| Prepared::Invalid(validation_text(&e.with_source_name(&name)));
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Prepared::Skip,
        Err(e) => return invalid(SpecError::whole(format!("cannot read the file: {e}"))),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return invalid(SpecError::whole(format!("cannot read the file: {e}"))),
    };
    if !meta.is_file() {
        return Prepared::Skip;
    }
    if meta.len() > MAX_WORKFLOW_BYTES as u64 {
        return invalid(SpecError::whole(too_large_message(meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    if let Err(e) = file
        .take(MAX_WORKFLOW_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
    {
        return invalid(SpecError::whole(format!("cannot read the file: {e}")));
    }
    let origin = origin_of(&bytes);
    let workflow = WorkflowFormat::of_path(path)
        .parse_bytes(&bytes)
        .and_then(|w| crate::workflow_file::anchor(w, dir))
        .and_then(|w| {
            let mut spec = w.spec().clone();
            spec.origin = Some(origin);
            Workflow::from_spec(spec)
        });
    match workflow {
        Ok(w) => Prepared::Valid(Box::new(w)),
        Err(e) => invalid(e),
    }
}

/// `RUN.EXT` (or `RUN` for a file without an extension).
fn submitted_name(run: &str, path: &Path) -> PathBuf {
    match path.extension() {
        Some(ext) => PathBuf::from(format!("{run}.{}", ext.to_string_lossy())),
        None => PathBuf::from(run),
    }
}

/// Moves `path` to `rejected/NAME` after writing `rejected/NAME.error`.
fn reject(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default();
    let to = dir.join(REJECTED).join(name);
    let mut error = to.clone().into_os_string();
    error.push(".error");
    std::fs::write(&error, text)?;
    std::fs::rename(path, &to)
}

/// Handles one file: submits it and moves it. Errors are logged; what happened is returned.
pub(crate) async fn handle(shared: &Arc<NodeContext>, dir: &Path, path: PathBuf) -> Outcome {
    let (d, p) = (dir.to_path_buf(), path.clone());
    let prepared = match tokio::task::spawn_blocking(move || prepare(&d, &p)).await {
        Ok(p) => p,
        Err(_) => return Outcome::Retry,
    };
    let workflow = match prepared {
        Prepared::Skip => return Outcome::Skipped,
        Prepared::Invalid(text) => return rejected(shared, dir, &path, &text),
        Prepared::Valid(w) => w,
    };
    let response = crate::actors::control::route(shared, Request::Submit(workflow)).await;
    let run = match response {
        Ok(Response::Submitted { run, attached }) => {
            tracing::debug!(file = %path.display(), run_id = %run, attached, "inbox: submitted");
            run
        }
        Ok(Response::Error(
            e @ (ControlError::Refused(_)
            | ControlError::BadRequest(_)
            | ControlError::Denied(_)
            | ControlError::NotFound(_)),
        )) => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            return rejected(shared, dir, &path, &format!("{name}: {e}\n"));
        }
        Ok(other) => {
            tracing::warn!(file = %path.display(), answer = ?other, "inbox: the node did not take the file; trying again later");
            return Outcome::Retry;
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "inbox: the node did not take the file; trying again later");
            return Outcome::Retry;
        }
    };
    if shared.config.test_hooks
        && std::env::var("TROUPE_TEST_INBOX_EXIT_AFTER_SUBMIT").is_ok_and(|v| v == "1")
    {
        // Test hook: a crash between the durable submission and the move.
        eprintln!("test hook: exiting after the inbox's first submission");
        // SAFETY: _exit ends the process at once; no Rust state is touched afterwards.
        unsafe { libc::_exit(86) };
    }
    let to = dir
        .join(SUBMITTED)
        .join(submitted_name(&run.to_string(), &path));
    match std::fs::rename(&path, &to) {
        Ok(()) => {
            shared.metrics.inbox_file("submitted");
            Outcome::Submitted
        }
        // Moved by someone else meanwhile: the run is durable either way.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::Skipped,
        Err(e) => {
            tracing::error!(file = %path.display(), to = %to.display(), error = %e, "inbox: cannot move a submitted file (its run is durable; it is not submitted again)");
            Outcome::Skipped
        }
    }
}

/// Rejects `path` with `text`, counting it.
fn rejected(shared: &Arc<NodeContext>, dir: &Path, path: &Path, text: &str) -> Outcome {
    match reject(dir, path, text) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "inbox: rejected an invalid workflow file");
            shared.metrics.inbox_file("rejected");
            Outcome::Rejected
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::Skipped,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "inbox: cannot move a rejected file");
            Outcome::Skipped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_the_sha256_of_the_bytes() {
        assert_eq!(
            origin_of(b"abc"),
            "inbox:sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn submitted_names_keep_the_extension() {
        assert_eq!(
            submitted_name("R1", Path::new("/x/a.json")),
            PathBuf::from("R1.json")
        );
        assert_eq!(submitted_name("R1", Path::new("/x/a")), PathBuf::from("R1"));
    }
}
